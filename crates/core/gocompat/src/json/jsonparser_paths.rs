//! A lenient walker over a JSON object's members with their key paths, in document order, as
//! Loki's `| json` parser (built on buger/jsonparser's `ObjectEach`, MIT) visits them when it
//! records each field's JSON path for Logs Drilldown (`detected_fields`' `jsonPath`).
//!
//! It differs from [`super::jsonparser`] on purpose (it answers another question, "which key
//! paths hold which leaves", and never extracts values):
//! - keys holding a backslash are decoded by the caller (the querier decodes them strictly, so
//!   a bad escape or a lone surrogate in a key stops the walk like a syntax error);
//! - string values are handed over still escaped; numbers and booleans are not validated
//!   (`Leaf::Scalar` is any other bare token but `null`);
//! - arrays are skipped without matching bracket kinds (`[}` closes), and yield `Leaf::Other`;
//! - nesting deeper than the caller's `max_depth` stops the walk;
//! - the first syntax error stops the walk; members visited before it stay visited.

/// What a JSON object member holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf<'a> {
    /// A string; the text between the quotes, still escaped.
    String(&'a str),
    /// A number, `true` or `false`.
    Scalar,
    /// `null`, an array or anything else that yields no field.
    Other,
}

struct Scan<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        let b = self.s.as_bytes();
        while self.i < b.len() && matches!(b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    /// At a `"`: the escaped text up to the closing quote, which is consumed.
    fn string(&mut self) -> Option<&'a str> {
        let b = self.s.as_bytes();
        let start = self.i + 1;
        let mut j = start;
        while j < b.len() {
            match b[j] {
                b'\\' => j += 2,
                b'"' => {
                    self.i = j + 1;
                    return self.s.get(start..j);
                }
                _ => j += 1,
            }
        }
        None
    }

    /// At `[` or `{`: skips the block.
    fn skip_block(&mut self) -> Option<()> {
        let b = self.s.as_bytes();
        let mut depth = 0usize;
        while self.i < b.len() {
            match b[self.i] {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        self.i += 1;
                        return Some(());
                    }
                }
                _ => {}
            }
            self.i += 1;
        }
        None
    }

    fn object(
        &mut self,
        path: &mut Vec<String>,
        max_depth: usize,
        decode_key: &mut dyn FnMut(&str) -> Option<String>,
        visit: &mut dyn FnMut(&[String], Leaf<'a>),
    ) -> Option<()> {
        if self.peek()? != b'{' || path.len() >= max_depth {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            if self.peek()? != b'"' {
                return None;
            }
            let raw = self.string()?;
            let key = if raw.contains('\\') { decode_key(raw)? } else { raw.to_string() };
            self.ws();
            if self.peek()? != b':' {
                return None;
            }
            self.i += 1;
            self.ws();
            path.push(key);
            match self.peek()? {
                b'{' => self.object(path, max_depth, decode_key, visit)?,
                b'[' => {
                    self.skip_block()?;
                    visit(path, Leaf::Other);
                }
                b'"' => {
                    let v = self.string()?;
                    visit(path, Leaf::String(v));
                }
                _ => {
                    let b = self.s.as_bytes();
                    let start = self.i;
                    while self.i < b.len()
                        && !matches!(b[self.i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                    {
                        self.i += 1;
                    }
                    let token = &self.s[start..self.i];
                    let leaf = if token == "null" { Leaf::Other } else { Leaf::Scalar };
                    visit(path, leaf);
                }
            }
            path.pop();
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Visits the members of the JSON object `line` in document order, nested objects included,
/// with their key paths (keys holding a backslash are decoded by `decode_key`, which gets the
/// text between the quotes; `None` stops the walk). Stops at the
/// first syntax error and at objects nested `max_depth` deep.
pub fn walk_object(
    line: &str,
    max_depth: usize,
    mut decode_key: impl FnMut(&str) -> Option<String>,
    mut visit: impl FnMut(&[String], Leaf<'_>),
) {
    let mut scan = Scan { s: line, i: 0 };
    scan.ws();
    let _ = scan.object(&mut Vec::new(), max_depth, &mut decode_key, &mut visit);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(line: &str, max_depth: usize) -> Vec<(String, String)> {
        let mut out = Vec::new();
        walk_object(
            line,
            max_depth,
            |k| Some(k.replace("\\u0041", "A")),
            |p, leaf| {
                out.push((p.join("."), format!("{leaf:?}")));
            },
        );
        out
    }

    #[test]
    fn walks_in_document_order_and_stops_at_errors() {
        assert_eq!(
            paths(
                r#" {"a": "x\"y", "b": {"c": 1, "d": null}, "e": [1, {"f": 2}], "\u0041": true}"#,
                8
            ),
            vec![
                ("a".to_string(), format!("{:?}", Leaf::String(r#"x\"y"#))),
                ("b.c".to_string(), "Scalar".to_string()),
                ("b.d".to_string(), "Other".to_string()),
                ("e".to_string(), "Other".to_string()),
                ("A".to_string(), "Scalar".to_string()),
            ]
        );
        // fields before a syntax error stay visited
        assert_eq!(paths(r#"{"a": 1, "b" 2}"#, 8), vec![("a".to_string(), "Scalar".to_string())]);
        // too deep: the walk stops at the nested object
        assert_eq!(
            paths(r#"{"a": 1, "b": {"c": 2}}"#, 1),
            vec![("a".to_string(), "Scalar".to_string())]
        );
        // a key the caller refuses stops the walk
        let mut n = 0;
        walk_object(r#"{"a": 1, "\\u0042": 2}"#, 8, |_| None, |_, _| n += 1);
        assert_eq!(n, 1);
    }
}
