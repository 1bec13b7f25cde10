//! go-logfmt's `Decoder.ScanKeyval` loop (github.com/go-logfmt/logfmt, MIT) as Loki calls it
//! outside LogQL: pairs are read in order and the **first syntax error ends the line** (what
//! came before it stays read). The distributor's `detected_level` logfmt scan and the
//! querier's Drain tokenizer use it.
//!
//! Syntax errors: a `"` in a key or in an unquoted value, a `=` in an unquoted value, `=`
//! without a key, an unterminated quoted value. The scanner hands quoted values over still
//! escaped, so that each caller unescapes them with the rules of the Loki code it follows
//! (the distributor leniently, the querier strictly); a failed unescape is the caller's syntax
//! error. Compared with [`super::loki_decoder`] (LogQL's `| logfmt`): it does not go on after
//! an error, has no error texts, does not refuse keys holding U+FFFD and does not unquote.

use std::ops::Range;

/// A pair's value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A bare key (`k`) or an empty value (`k=`).
    None,
    /// An unquoted value: its byte range in the line.
    Plain(Range<usize>),
    /// A quoted value: the byte range between the quotes, and whether it holds a backslash.
    Quoted {
        /// The bytes between the quotes, still escaped.
        raw: Range<usize>,
        /// True when `raw` holds a backslash (and needs unescaping).
        escaped: bool,
    },
}

/// One `key[=value]`: the key's byte range and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The key's byte range in the line.
    pub key: Range<usize>,
    /// The value.
    pub value: Value,
}

/// A logfmt syntax error (the scan is over).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxError;

/// Reads `key[=value]` pairs from one line.
#[derive(Debug)]
pub struct Scanner<'a> {
    line: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `line`.
    pub fn new(line: &'a [u8]) -> Self {
        Scanner { line, pos: 0 }
    }

    /// The next pair; `Ok(None)` at the end of the line. After an error the scan is over.
    pub fn next_pair(&mut self) -> Result<Option<Pair>, SyntaxError> {
        let line = self.line;
        while self.pos < line.len() && line[self.pos] <= b' ' {
            self.pos += 1;
        }
        if self.pos >= line.len() {
            return Ok(None);
        }
        let start = self.pos;
        while self.pos < line.len() {
            match line[self.pos] {
                b'=' => break,
                b'"' => return self.fail(),
                c if c <= b' ' => {
                    return Ok(Some(Pair { key: start..self.pos, value: Value::None }))
                }
                _ => self.pos += 1,
            }
        }
        if self.pos >= line.len() {
            return Ok(Some(Pair { key: start..line.len(), value: Value::None }));
        }
        if self.pos == start {
            return self.fail(); // '=' without a key
        }
        let key = start..self.pos;
        self.pos += 1; // '='
        if self.pos >= line.len() || line[self.pos] <= b' ' {
            return Ok(Some(Pair { key, value: Value::None }));
        }
        if line[self.pos] == b'"' {
            let qstart = self.pos + 1;
            let mut i = qstart;
            let mut escaped = false;
            while i < line.len() {
                match line[i] {
                    b'\\' => {
                        escaped = true;
                        i += 2;
                    }
                    b'"' => {
                        self.pos = i + 1;
                        return Ok(Some(Pair {
                            key,
                            value: Value::Quoted { raw: qstart..i, escaped },
                        }));
                    }
                    _ => i += 1,
                }
            }
            return self.fail(); // unterminated
        }
        let vstart = self.pos;
        while self.pos < line.len() {
            match line[self.pos] {
                b'=' | b'"' => return self.fail(),
                c if c <= b' ' => break,
                _ => self.pos += 1,
            }
        }
        Ok(Some(Pair { key, value: Value::Plain(vstart..self.pos) }))
    }

    fn fail<T>(&mut self) -> Result<T, SyntaxError> {
        self.pos = self.line.len();
        Err(SyntaxError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(line: &str) -> (Vec<(&str, String)>, bool) {
        let mut sc = Scanner::new(line.as_bytes());
        let mut out = Vec::new();
        loop {
            match sc.next_pair() {
                Ok(Some(p)) => {
                    let v = match p.value {
                        Value::None => "-".to_string(),
                        Value::Plain(r) => format!("p:{}", &line[r]),
                        Value::Quoted { raw, escaped } => {
                            format!("q{}:{}", u8::from(escaped), &line[raw])
                        }
                    };
                    out.push((&line[p.key], v));
                }
                Ok(None) => return (out, true),
                Err(SyntaxError) => return (out, false),
            }
        }
    }

    #[test]
    fn pairs_until_the_first_error() {
        assert_eq!(
            scan(r#" a=1 b="x \"y\"" c d= e="""#),
            (
                vec![
                    ("a", "p:1".to_string()),
                    ("b", r#"q1:x \"y\""#.to_string()),
                    ("c", "-".to_string()),
                    ("d", "-".to_string()),
                    ("e", "q0:".to_string()),
                ],
                true
            )
        );
        assert_eq!(scan("a=1 b=c=d e=2"), (vec![("a", "p:1".to_string())], false));
        assert_eq!(scan("a=1 =x"), (vec![("a", "p:1".to_string())], false));
        assert_eq!(scan("a\"b=1"), (vec![], false));
        assert_eq!(scan("a=\"open"), (vec![], false));
        assert_eq!(scan("a=x\"y"), (vec![], false));
        assert_eq!(
            scan("a=\"x\"b=2"),
            (vec![("a", "q0:x".to_string()), ("b", "p:2".to_string())], true)
        );
    }
}
