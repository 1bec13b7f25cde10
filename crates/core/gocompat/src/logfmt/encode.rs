//! go-logfmt's encoder (github.com/go-logfmt/logfmt, MIT) for one value: bare unless it holds
//! a rune up to a space, `=`, `"` or U+FFFD; otherwise quoted with Go's escapes (`\\`, `\"`,
//! `\n`, `\r`, `\t`, other control characters as `\u00XX`).
//!
//! go-logfmt also quotes a *string* value that reads `null`, so that it cannot be taken for a
//! nil one; a `[]byte` value (what Loki's Drain tokenizer passes) is not. Callers pick with
//! [`write_string_value`] or [`write_bytes_value`].

use std::fmt::Write as _;

/// Writes `value` as go-logfmt writes a `string` value: as [`write_bytes_value`] does, except
/// that `null` is quoted.
pub fn write_string_value(out: &mut String, value: &str) {
    if value == "null" {
        out.push_str("\"null\"");
    } else {
        write_bytes_value(out, value);
    }
}

/// Writes `value` as go-logfmt writes a non-nil `[]byte` value.
pub fn write_bytes_value(out: &mut String, value: &str) {
    if !value.chars().any(needs_quotes) {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// go-logfmt's `needsQuotedValueRune`, which is also its `invalidKeyRune`: a value holding
/// one is quoted, a key holding one cannot be written.
pub fn needs_quotes(c: char) -> bool {
    c <= ' ' || c == '=' || c == '"' || c == '\u{fffd}'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(v: &str) -> String {
        let mut s = String::new();
        write_string_value(&mut s, v);
        s
    }

    fn bytes(v: &str) -> String {
        let mut s = String::new();
        write_bytes_value(&mut s, v);
        s
    }

    #[test]
    fn values_are_bare_or_quoted_as_go_logfmt_writes_them() {
        assert_eq!(string("plain"), "plain");
        assert_eq!(string(""), "");
        assert_eq!(string("a b"), r#""a b""#);
        assert_eq!(string("k=v"), r#""k=v""#);
        assert_eq!(string(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(string("a\\b c"), r#""a\\b c""#);
        assert_eq!(string("x\u{fffd}"), "\"x\u{fffd}\"");
        assert_eq!(string("l1\nl2\r\t\u{1}"), r#""l1\nl2\r\t\u0001""#);
        assert_eq!(string("naïve"), "naïve");
    }

    #[test]
    fn only_a_string_null_is_quoted() {
        assert_eq!(string("null"), r#""null""#);
        assert_eq!(bytes("null"), "null");
        assert_eq!(bytes("a b"), string("a b"));
    }
}
