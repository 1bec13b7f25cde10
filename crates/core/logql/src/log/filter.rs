//! Line filters (`|=`, `!=`, `|~`, `!~`, `|>`, `!>`, `or`, `ip()`) and the translation of Go
//! RE2 regular expressions to the `regex` crate.

use memchr::memmem;
use regex::Regex;
use skald_gocompat::utf8::lossy;

use super::error::{RegexError, StageError};
use super::ip::IpMatcher;
use super::pattern::Pattern;
use crate::syntax::ast::{LineFilter, LineFilterOp, LineFilterValue};

/// One positive line test.
#[derive(Debug, Clone)]
enum Test {
    /// Always true (`|= ""`).
    True,
    /// Substring search.
    Contains(Box<memmem::Finder<'static>>),
    /// Unanchored regex search.
    Regex(Regex),
    /// Pattern filter.
    Pattern(Pattern),
    /// IP search.
    Ip(IpMatcher),
}

impl Test {
    /// Literals are searched in the bytes; regexes, patterns and IPs read Go's text view of
    /// the line (each byte of an invalid sequence is one U+FFFD; borrowed when UTF-8).
    fn matches(&self, line: &[u8]) -> bool {
        match self {
            Test::True => true,
            Test::Contains(f) => f.find(line).is_some(),
            Test::Regex(r) => r.is_match(&lossy(line)),
            Test::Pattern(p) => p.test(&lossy(line)),
            Test::Ip(m) => m.matches_in(&lossy(line)),
        }
    }
}

/// A compiled line filter stage: positive alternatives, optionally negated.
#[derive(Debug, Clone)]
pub(crate) struct LineFilterC {
    alternatives: Vec<Test>,
    negate: bool,
}

impl LineFilterC {
    /// Compiles a filter. Errors carry Loki's message (without the stage prefix).
    pub(crate) fn new(f: &LineFilter) -> Result<LineFilterC, StageError> {
        let negate = matches!(
            f.op,
            LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern
        );
        let mut alternatives = Vec::with_capacity(1 + f.or.len());
        for v in std::iter::once(&f.value).chain(f.or.iter()) {
            alternatives.push(compile_test(f.op, v)?);
        }
        Ok(LineFilterC { alternatives, negate })
    }

    /// True when the line passes.
    pub(crate) fn matches(&self, line: &[u8]) -> bool {
        let any = self.alternatives.iter().any(|t| t.matches(line));
        any != self.negate
    }
}

fn compile_test(op: LineFilterOp, v: &LineFilterValue) -> Result<Test, StageError> {
    match v {
        LineFilterValue::Ip(p) => match op {
            LineFilterOp::Contains | LineFilterOp::NotContains => Ok(Test::Ip(IpMatcher::new(p)?)),
            _ => Err(StageError::IpOperation),
        },
        LineFilterValue::Literal(s) => match op {
            LineFilterOp::Contains | LineFilterOp::NotContains => {
                if s.is_empty() {
                    Ok(Test::True)
                } else {
                    Ok(Test::Contains(Box::new(memmem::Finder::new(s.as_bytes()).into_owned())))
                }
            }
            LineFilterOp::Regex | LineFilterOp::NotRegex => {
                if let Some(lit) = plain_literal(s) {
                    if lit.is_empty() {
                        return Ok(Test::True);
                    }
                    return Ok(Test::Contains(Box::new(
                        memmem::Finder::new(lit.as_bytes()).into_owned(),
                    )));
                }
                Ok(Test::Regex(compile_go_regex(s, false)?))
            }
            LineFilterOp::Pattern | LineFilterOp::NotPattern => {
                Ok(Test::Pattern(Pattern::for_filter(s)?))
            }
        },
    }
}

/// The literal a regex matches when it has no metacharacters at all.
pub(crate) fn plain_literal(re: &str) -> Option<&str> {
    const META: &[char] = &['\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$'];
    if re.contains(META) {
        None
    } else {
        Some(re)
    }
}

/// Compiles a Go RE2 expression with Go's semantics where they differ from the `regex` crate
/// (ASCII-only `\d`, `\w`, `\s`, `\b`; `\Q...\E` quoting). With `anchored`, the whole value
/// must match (label filters). Errors use Go's `regexp` wording.
pub(crate) fn compile_go_regex(src: &str, anchored: bool) -> Result<Regex, RegexError> {
    let translated = translate_go_regex(src);
    // validate with regex-syntax to report Go-style errors
    if let Err(e) = regex_syntax::ast::parse::Parser::new().parse(&translated) {
        return Err(go_regex_error(src, &e));
    }
    let pat = if anchored { format!("^(?:{translated})$") } else { translated };
    Regex::new(&pat).map_err(|e| match e {
        regex::Error::CompiledTooBig(_) => {
            RegexError { code: "expression too large".to_string(), expr: src.to_string() }
        }
        other => RegexError { code: first_line(&other.to_string()), expr: src.to_string() },
    })
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim_start_matches("error: ").to_string()
}

/// Maps a regex-syntax error to Go's `regexp/syntax` message.
fn go_regex_error(src: &str, e: &regex_syntax::ast::Error) -> RegexError {
    use regex_syntax::ast::ErrorKind as K;
    let span = e.span();
    let frag = |s: usize, t: usize| -> String {
        let s = s.min(src.len());
        // an empty span points at one character
        let t = if t <= s {
            s + src[s..].chars().next().map_or(0, char::len_utf8)
        } else {
            t.min(src.len())
        };
        src.get(s..t).unwrap_or(src).to_string()
    };
    let (code, arg) = match e.kind() {
        K::GroupUnclosed => ("missing closing )", src.to_string()),
        K::GroupUnopened => ("unexpected )", src.to_string()),
        K::ClassUnclosed => ("missing closing ]", frag(span.start.offset, src.len())),
        K::RepetitionMissing => {
            ("missing argument to repetition operator", frag(span.start.offset, span.end.offset))
        }
        K::RepetitionCountInvalid | K::RepetitionCountDecimalEmpty | K::DecimalInvalid => {
            ("invalid repeat count", frag(span.start.offset, span.end.offset))
        }
        K::RepetitionCountUnclosed => ("missing closing }", src.to_string()),
        K::ClassRangeInvalid => {
            ("invalid character class range", frag(span.start.offset, span.end.offset))
        }
        K::EscapeUnrecognized
        | K::EscapeHexInvalid
        | K::EscapeHexInvalidDigit
        | K::EscapeHexEmpty => {
            ("invalid escape sequence", frag(span.start.offset, span.end.offset))
        }
        K::EscapeUnexpectedEof => ("trailing backslash at end of expression", String::new()),
        K::GroupNameInvalid | K::GroupNameEmpty | K::GroupNameUnexpectedEof => {
            ("invalid named capture", frag(span.start.offset, span.end.offset))
        }
        K::GroupNameDuplicate { .. } => {
            ("duplicate capture group name", frag(span.start.offset, span.end.offset))
        }
        K::NestLimitExceeded(_) => ("expression nests too deeply", src.to_string()),
        _ => ("invalid or unsupported Perl syntax", frag(span.start.offset, span.end.offset)),
    };
    RegexError { code: code.to_string(), expr: arg }
}

/// Rewrites Go-only or differently-behaving constructs for the `regex` crate.
pub(crate) fn translate_go_regex(src: &str) -> String {
    let mut out = String::with_capacity(src.len() + 8);
    let mut chars = src.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        if c == '\\' {
            let Some(&n) = chars.peek() else {
                out.push(c);
                break;
            };
            chars.next();
            match n {
                'd' => out.push_str("[0-9]"),
                'D' => out.push_str("[^0-9]"),
                'w' => out.push_str("[0-9A-Za-z_]"),
                'W' => out.push_str("[^0-9A-Za-z_]"),
                's' => out.push_str("[\\t\\n\\f\\r ]"),
                'S' => out.push_str("[^\\t\\n\\f\\r ]"),
                'b' if !in_class => out.push_str("(?-u:\\b)"),
                'B' if !in_class => out.push_str("(?-u:\\B)"),
                'Q' if !in_class => {
                    // quote until \E or the end
                    let mut lit = String::new();
                    while let Some(q) = chars.next() {
                        if q == '\\' && chars.peek() == Some(&'E') {
                            chars.next();
                            break;
                        }
                        lit.push(q);
                    }
                    out.push_str(&regex::escape(&lit));
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
            continue;
        }
        if in_class {
            if c == ']' {
                in_class = false;
            } else if c == '[' && chars.peek() == Some(&':') {
                // POSIX class [:alpha:]: copy through
                out.push(c);
                for p in chars.by_ref() {
                    out.push(p);
                    if p == ']' {
                        break;
                    }
                }
                continue;
            } else if c == '[' {
                // a literal '[' inside a class in Go; nested classes in Rust
                out.push_str("\\[");
                continue;
            } else if matches!(c, '&' | '~' | '-') && chars.peek() == Some(&c) {
                // Rust class set operators `&&`, `~~`, `--` are literals in Go
                out.push('\\');
                out.push(c);
                continue;
            }
            out.push(c);
            continue;
        }
        if c == '[' {
            in_class = true;
            out.push(c);
            // a leading ']' (after an optional '^') is a literal
            if chars.peek() == Some(&'^') {
                chars.next();
                out.push('^');
            }
            if chars.peek() == Some(&']') {
                chars.next();
                out.push_str("\\]");
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(op: LineFilterOp, v: &str, or: &[&str]) -> LineFilterC {
        LineFilterC::new(&LineFilter {
            op,
            value: LineFilterValue::Literal(v.into()),
            or: or.iter().map(|s| LineFilterValue::Literal((*s).into())).collect(),
        })
        .unwrap()
    }

    #[test]
    fn contains_and_or() {
        let c = f(LineFilterOp::Contains, "Failed password", &[]);
        assert!(c.matches(b"Dec 10 sshd[1]: Failed password for root"));
        assert!(!c.matches(b"Accepted password"));
        let o = f(LineFilterOp::Contains, "FATAL", &["SEVERE"]);
        assert!(o.matches(b"x SEVERE y"));
        assert!(!o.matches(b"INFO"));
        // negated `or` means none of them
        let n = f(LineFilterOp::NotContains, "a", &["b"]);
        assert!(n.matches(b"xyz"));
        assert!(!n.matches(b"xbz"));
        assert!(f(LineFilterOp::Contains, "", &[]).matches(b"anything"));
        // every line contains "": like Loki, `!= ""` keeps nothing
        assert!(!f(LineFilterOp::NotContains, "", &[]).matches(b"anything"));
    }

    #[test]
    fn regexes() {
        let r = f(LineFilterOp::Regex, "(?i)exception", &[]);
        assert!(r.matches(b"java.io.IOException: x"));
        let n = f(LineFilterOp::NotRegex, "INFO", &[]);
        assert!(!n.matches(b"081109 INFO dfs"));
        assert!(n.matches(b"081109 WARN dfs"));
        let d = f(LineFilterOp::Regex, r"^\d+$", &[]);
        assert!(d.matches(b"123"));
        assert!(!d.matches("١٢٣".as_bytes()));
        let q = f(LineFilterOp::Regex, r"\Qa.b\E", &[]);
        assert!(q.matches(b"xa.by"));
        assert!(!q.matches(b"xaxby"));
        let esc = f(LineFilterOp::Regex, r"\x1b\[", &[]);
        assert!(esc.matches(b"a\x1b[1m"));
        let e = LineFilterC::new(&LineFilter {
            op: LineFilterOp::Regex,
            value: LineFilterValue::Literal("(unclosed".into()),
            or: vec![],
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "error parsing regexp: missing closing ): `(unclosed`");
        assert_eq!(
            compile_go_regex("a[b", false).unwrap_err().to_string(),
            "error parsing regexp: missing closing ]: `[b`"
        );
        assert_eq!(
            compile_go_regex("*a", false).unwrap_err().to_string(),
            "error parsing regexp: missing argument to repetition operator: `*`"
        );
        assert!(compile_go_regex("[]a]", false).unwrap().is_match("]"));
        assert!(compile_go_regex("[a[]", false).unwrap().is_match("["));
    }

    #[test]
    fn ip_filter_ops() {
        let ip = LineFilterC::new(&LineFilter {
            op: LineFilterOp::Contains,
            value: LineFilterValue::Ip("173.234.31.0/24".into()),
            or: vec![],
        })
        .unwrap();
        assert!(ip.matches(b"from 173.234.31.186 port 38926"));
        let bad = LineFilterC::new(&LineFilter {
            op: LineFilterOp::Regex,
            value: LineFilterValue::Ip("1.1.1.1".into()),
            or: vec![],
        });
        assert_eq!(bad.unwrap_err().to_string(), "ip: invalid operation");
    }
}
