//! The path expressions of `| json a="b.c"`, with the grammar and error texts of Loki's
//! `jsonexpr` package.

use crate::log::error::JsonPathError;

/// Parses a `json` extraction expression (`a.b[0]`, `["a b"].c`) into path segments; array
/// indexes become `[N]`.
pub(crate) fn parse_json_path(expr: &str) -> Result<Vec<String>, JsonPathError> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut expect_field = true; // at start a field is allowed, after a DOT a field is required
    let mut after_dot = false;
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' || c == '\t' || c == '\n' {
            i += 1;
            continue;
        }
        if c == '.' {
            if out.is_empty() || after_dot {
                return Err(JsonPathError::Syntax("unexpected DOT"));
            }
            after_dot = true;
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            if !expect_field && !after_dot {
                return Err(JsonPathError::Syntax("unexpected FIELD"));
            }
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
            after_dot = false;
            expect_field = false;
            continue;
        }
        if c == '[' {
            if after_dot {
                return Err(JsonPathError::Syntax("unexpected LSB, expecting FIELD"));
            }
            i += 1;
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if i < chars.len() && chars[i] == '"' {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '"' && chars[i] != ']' {
                    i += 1;
                }
                out.push(chars[start..i].iter().collect());
                if i < chars.len() && chars[i] == '"' {
                    i += 1;
                }
            } else if i < chars.len() && chars[i].is_ascii_digit() {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                if i < chars.len() && chars[i] == '.' {
                    return Err(JsonPathError::FloatIndex);
                }
                let n: String = chars[start..i].iter().collect();
                let n: usize = n.parse().map_err(|_| JsonPathError::NonInteger(n.clone()))?;
                out.push(format!("[{n}]"));
            } else {
                return Err(JsonPathError::Syntax("unexpected end of index"));
            }
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if i >= chars.len() || chars[i] != ']' {
                return Err(JsonPathError::Syntax("missing RSB"));
            }
            i += 1;
            expect_field = false;
            continue;
        }
        return Err(JsonPathError::UnexpectedChar(c));
    }
    if out.is_empty() || after_dot {
        return Err(JsonPathError::Syntax("unexpected $end"));
    }
    Ok(out)
}
