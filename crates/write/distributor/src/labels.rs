//! Parsing of pushed stream label strings (`{a="b", c="d"}`) the way Loki's push path reads
//! them: duplicates are kept (so validation can report them), pairs with empty values are
//! dropped, and the result is sorted by name.

use skald_model::labels::{is_valid_label_name, unquote_at};
use skald_model::Label;

use crate::error::LabelsError;

/// Parses a Prometheus-style series description: an optional metric name (which becomes
/// `__name__`) followed by `{name="value", ...}`. Names may be quoted (`{"a"="b"}`) but must be
/// valid label names. Values are Go string literals (double-quoted or backtick).
pub(crate) fn parse_stream_labels(s: &str) -> Result<Vec<Label>, LabelsError> {
    let b = s.as_bytes();
    let mut i = 0;
    let err = |pos: usize, msg: &str| LabelsError { column: pos + 1, message: msg.to_string() };
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let ident_end = |start: usize| {
        let mut j = start;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b':') {
            j += 1;
        }
        j
    };
    let mut out: Vec<Label> = Vec::new();
    skip_ws(&mut i);
    if i >= b.len() {
        return Err(err(i, "unexpected end of input"));
    }
    if b[i] != b'{' {
        let end = ident_end(i);
        if end == i || b[i].is_ascii_digit() {
            return Err(err(i, &format!("unexpected character: {:?}", char::from(b[i]))));
        }
        out.push(Label::new("__name__", &s[i..end]));
        i = end;
        skip_ws(&mut i);
        if i >= b.len() {
            return Ok(finish(out));
        }
        if b[i] != b'{' {
            return Err(err(i, &format!("unexpected character: {:?}", char::from(b[i]))));
        }
    }
    i += 1; // '{'
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            return Err(err(i, "unexpected end of input inside braces"));
        }
        if b[i] == b'}' {
            i += 1;
            break;
        }
        // label name: identifier or quoted string
        let name = if b[i] == b'"' || b[i] == b'`' {
            let (n, used) = unquote_at(&s[i..]).map_err(|m| err(i, &m.to_string()))?;
            i += used;
            n
        } else {
            let end = ident_end(i);
            if end == i {
                return Err(err(
                    i,
                    &format!(
                        "unexpected character inside braces: {:?}",
                        s[i..].chars().next().unwrap_or('?')
                    ),
                ));
            }
            let n = s[i..end].to_string();
            i = end;
            n
        };
        if !is_valid_label_name(&name) {
            return Err(err(i, &format!("invalid label name {name:?}")));
        }
        skip_ws(&mut i);
        if i >= b.len() || b[i] != b'=' {
            return Err(err(
                i,
                &format!("unexpected end of label matcher after {name:?}, expected \"=\""),
            ));
        }
        i += 1;
        skip_ws(&mut i);
        if i >= b.len() {
            return Err(err(i, "unexpected end of input, expected label value"));
        }
        let (value, used) = unquote_at(&s[i..]).map_err(|m| err(i, &m.to_string()))?;
        i += used;
        out.push(Label::new(name, value));
        skip_ws(&mut i);
        if i < b.len() && b[i] == b',' {
            i += 1;
            continue;
        }
        if i < b.len() && b[i] == b'}' {
            i += 1;
            break;
        }
        return Err(err(i, "unexpected character, expected \",\" or \"}\""));
    }
    skip_ws(&mut i);
    if i != b.len() {
        return Err(err(i, "unexpected characters after the label set"));
    }
    Ok(finish(out))
}

fn finish(mut v: Vec<Label>) -> Vec<Label> {
    v.retain(|l| !l.value.is_empty());
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// The first value of `name` in a sorted label list.
pub(crate) fn get<'a>(labels: &'a [Label], name: &str) -> Option<&'a str> {
    labels.iter().find(|l| l.name == name).map(|l| l.value.as_str())
}

/// Sets `name` to `value` in a sorted label list, replacing every existing pair of that name.
pub(crate) fn set(labels: &mut Vec<Label>, name: &str, value: &str) {
    labels.retain(|l| l.name != name);
    let at = labels.partition_point(|l| l.name.as_str() < name);
    labels.insert(at, Label::new(name, value));
}

/// Prints a label list as Loki does: `{a="1", b="2"}` with Go quoting.
pub(crate) fn to_string(labels: &[Label]) -> String {
    let mut out = String::with_capacity(2 + labels.len() * 16);
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&l.name);
        out.push('=');
        out.push_str(&skald_model::labels::go_quote(&l.value));
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_loki() {
        let l = parse_stream_labels(r#"{ "foo"="bar2",      environment="prod"   }"#).unwrap();
        assert_eq!(to_string(&l), r#"{environment="prod", foo="bar2"}"#);
        let l = parse_stream_labels(r#"{b="1", a="2", b="3", e=""}"#).unwrap();
        assert_eq!(to_string(&l), r#"{a="2", b="1", b="3"}"#);
        let l = parse_stream_labels(r#"up{a="1",}"#).unwrap();
        assert_eq!(to_string(&l), r#"{__name__="up", a="1"}"#);
        assert!(parse_stream_labels("{}").unwrap().is_empty());
        for bad in
            ["", "{", "{a}", "{a=1}", "{1a=\"x\"}", "{a=\"x\"} x", "{\"a-b\"=\"x\"}", "{a=\"x"]
        {
            assert!(parse_stream_labels(bad).is_err(), "{bad:?}");
        }
        let mut l = parse_stream_labels(r#"{job="x"}"#).unwrap();
        set(&mut l, "service_name", "x");
        set(&mut l, "app", "y");
        assert_eq!(to_string(&l), r#"{app="y", job="x", service_name="x"}"#);
        assert_eq!(get(&l, "job"), Some("x"));
    }
}
