//! Loki's pattern language: `<name>` captures, `<_>` wildcards and literal text. Used by the
//! `| pattern "..."` parser and the `|>` / `!>` line filters.

use super::error::PatternError;

/// One node of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// `<name>`; `_` is the unnamed wildcard.
    Capture(String),
    /// Literal text between captures.
    Literal(String),
}

impl Node {
    fn is_unnamed_capture(&self) -> bool {
        matches!(self, Node::Capture(n) if n == "_")
    }
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    nodes: Vec<Node>,
    names: Vec<String>,
}

fn parse_nodes(src: &str) -> Vec<Node> {
    let b = src.as_bytes();
    let mut nodes: Vec<Node> = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'<' && i + 1 < b.len() && (b[i + 1].is_ascii_alphabetic() || b[i + 1] == b'_') {
            let mut j = i + 2;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j < b.len() && b[j] == b'>' {
                if !lit.is_empty() {
                    nodes.push(Node::Literal(std::mem::take(&mut lit)));
                }
                nodes.push(Node::Capture(src[i + 1..j].to_string()));
                i = j + 1;
                continue;
            }
        }
        // one character of literal text
        let ch_len = src[i..].chars().next().map_or(1, char::len_utf8);
        lit.push_str(&src[i..i + ch_len]);
        i += ch_len;
    }
    if !lit.is_empty() {
        nodes.push(Node::Literal(lit));
    }
    nodes
}

fn check_consecutive(nodes: &[Node]) -> Result<(), PatternError> {
    for w in nodes.windows(2) {
        if let (Node::Capture(a), Node::Capture(b)) = (&w[0], &w[1]) {
            return Err(PatternError::ConsecutiveCaptures(a.clone(), b.clone()));
        }
    }
    Ok(())
}

impl Pattern {
    /// Compiles a pattern for the `pattern` parser: at least one named capture, no two
    /// captures in a row, unique names.
    pub(crate) fn for_parser(src: &str) -> Result<Pattern, PatternError> {
        let nodes = parse_nodes(src);
        if nodes.is_empty() {
            return Err(PatternError::Empty);
        }
        let names: Vec<String> = nodes
            .iter()
            .filter_map(|n| match n {
                Node::Capture(c) if c != "_" => Some(c.clone()),
                _ => None,
            })
            .collect();
        if names.is_empty() {
            return Err(PatternError::NoCapture);
        }
        check_consecutive(&nodes)?;
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(PatternError::DuplicateCapture(n.clone()));
            }
        }
        Ok(Pattern { nodes, names })
    }

    /// Compiles a pattern for the `|>` / `!>` line filters: only `<_>` captures, none in a row.
    pub(crate) fn for_filter(src: &str) -> Result<Pattern, PatternError> {
        let nodes = parse_nodes(src);
        check_consecutive(&nodes)?;
        if let Some(Node::Capture(c)) =
            nodes.iter().find(|n| matches!(n, Node::Capture(c) if c != "_"))
        {
            return Err(PatternError::NamedCaptureInFilter(c.clone()));
        }
        Ok(Pattern { nodes, names: Vec::new() })
    }

    /// Names of the named captures, in order.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// The literal parts, in order (used for prefiltering).
    pub(crate) fn literals(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Literal(l) => Some(l.as_str()),
            Node::Capture(_) => None,
        })
    }

    /// Matches `line` and returns the named captures found, in order. A capture whose
    /// following literal is missing takes the rest of the line and ends the match.
    pub(crate) fn matches<'a>(&self, line: &'a str) -> Vec<&'a str> {
        let mut out = Vec::new();
        if line.is_empty() || self.nodes.is_empty() {
            return out;
        }
        let mut input = line;
        let mut nodes = &self.nodes[..];
        if let Node::Literal(l) = &nodes[0] {
            if !input.starts_with(l.as_str()) {
                return out;
            }
            input = &input[l.len()..];
            nodes = &nodes[1..];
        }
        if nodes.is_empty() {
            return out;
        }
        while !nodes.is_empty() {
            if nodes.len() == 1 {
                if !nodes[0].is_unnamed_capture() {
                    out.push(input);
                }
                return out;
            }
            let unnamed = nodes[0].is_unnamed_capture();
            let lit = match &nodes[1] {
                Node::Literal(l) => l.as_str(),
                Node::Capture(_) => return out,
            };
            nodes = &nodes[2..];
            match memchr::memmem::find(input.as_bytes(), lit.as_bytes()) {
                None => {
                    if !unnamed {
                        out.push(input);
                    }
                    return out;
                }
                Some(i) => {
                    if !unnamed {
                        out.push(&input[..i]);
                    }
                    input = &input[i + lit.len()..];
                }
            }
        }
        out
    }

    /// The line filter test: every literal must appear in order, captures must be non-empty
    /// and a trailing literal must end the line.
    pub(crate) fn test(&self, line: &str) -> bool {
        if line.is_empty() || self.nodes.is_empty() {
            return line.is_empty() && self.nodes.is_empty();
        }
        let b = line.as_bytes();
        let mut off = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            let Node::Literal(lit) = n else { continue };
            let Some(j) = memchr::memmem::find(&b[off..], lit.as_bytes()) else {
                return false;
            };
            if i != 0 && j == 0 {
                return false;
            }
            off += j + lit.len();
        }
        let ends_on_capture = matches!(self.nodes.last(), Some(Node::Capture(_)));
        ends_on_capture == (off != b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_captures() {
        let p = Pattern::for_parser("<_> <_> <_> <host> sshd[<pid>]: <msg>").unwrap();
        assert_eq!(p.names(), ["host", "pid", "msg"]);
        let line = "Dec 10 11:04:43 LabSZ sshd[25544]: pam_unix(sshd:auth): authentication failure";
        assert_eq!(
            p.matches(line),
            ["LabSZ", "25544", "pam_unix(sshd:auth): authentication failure"]
        );
        // missing literal: the capture takes the rest of the line
        assert_eq!(p.matches("a b c d e"), ["d e"]);
        assert!(Pattern::for_parser("<a><b>").is_err());
        assert!(Pattern::for_parser("<_> x").is_err());
        assert!(Pattern::for_parser("<a> <a>").is_err());
        assert_eq!(
            Pattern::for_parser("<1> <a>").unwrap().literals().collect::<Vec<_>>(),
            ["<1> "]
        );
    }

    #[test]
    fn filter_test() {
        let p = Pattern::for_filter("<_> Invalid user <_> from <_>").unwrap();
        assert!(p.test("Dec 10 sshd[1]: Invalid user admin from 1.2.3.4"));
        assert!(!p.test("Dec 10 sshd[1]: Invalid user admin from "));
        assert!(!p.test("Invalid user admin from 1.2.3.4"));
        let p = Pattern::for_filter("<_>[notice]<_>").unwrap();
        assert!(p.test("[Sun Dec 04] [notice] workerEnv.init() ok"));
        assert!(!p.test("[Sun Dec 04] [error] mod_jk child"));
        assert!(Pattern::for_filter("<a> x").is_err());
        let p = Pattern::for_filter("foo <_>").unwrap();
        assert!(p.test("foo bar"));
        // like Loki, a leading literal is searched for, not anchored
        assert!(p.test("xfoo bar"));
        let p = Pattern::for_filter("<_> bar").unwrap();
        assert!(!p.test("foo bar baz"));
        assert!(p.test("foo bar"));
    }
}
