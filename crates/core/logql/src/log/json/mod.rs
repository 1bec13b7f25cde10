//! The `json`, `json a="b.c"` and `unpack` parser stages, built on the JSON scanner with the
//! exact tolerance and error messages of the `jsonparser` library Loki uses
//! (`skald_gocompat::json::jsonparser`) and on the path expressions of Loki's `jsonexpr`
//! package (`jsonexpr.rs`). What stays here is LogQL's: label names, sanitising, collisions.

mod jsonexpr;

use std::borrow::Cow;

use skald_gocompat::json::jsonparser::{
    each_key, object_each, unescape, EachKeyResult, ObjectEachError, ValueType,
};
use skald_gocompat::utf8::lossy;

use self::jsonexpr::parse_json_path;
use super::error::StageError;
use super::labels::{Category, LabelsBuilder, DUPLICATE_SUFFIX};

const ERR_UNEXPECTED_OBJECT: &str = "expecting json object(6), but it is not";

/// The JSON parser error label value.
pub(crate) const JSON_PARSER_ERR: &str = "JSONParserErr";

/// Unescapes a JSON string value as Loki stores it in a label: invalid escapes give the empty
/// string and invalid UTF-8 / U+FFFD become spaces.
pub(crate) fn unescape_to_string(v: &[u8]) -> Cow<'_, str> {
    match unescape(v) {
        Ok(Cow::Borrowed(b)) => lossy_with_spaces(b),
        Ok(Cow::Owned(b)) => Cow::Owned(lossy_with_spaces(&b).into_owned()),
        Err(_) => Cow::Borrowed(""),
    }
}

/// Converts bytes to a string as Loki stores a parsed value: each byte of an invalid UTF-8
/// sequence (as Go reads it) and each U+FFFD becomes a space.
pub(crate) fn lossy_with_spaces(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) if !s.contains('\u{FFFD}') => Cow::Borrowed(s),
        _ => Cow::Owned(lossy(b).chars().map(|c| if c == '\u{FFFD}' { ' ' } else { c }).collect()),
    }
}

/// Sanitizes an extracted key into a label name: trims spaces, prefixes `_` before a leading
/// digit and maps every other character outside `[A-Za-z0-9_]` to `_`.
pub(crate) fn sanitize_label_key(key: &str) -> Cow<'_, str> {
    let key = key.trim();
    let b = key.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_digit)
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
    {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len() + 1);
    if b.first().is_some_and(u8::is_ascii_digit) {
        out.push('_');
    }
    for c in key.chars() {
        out.push(if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' });
    }
    Cow::Owned(out)
}

/// Appends a sanitized nested key part to a prefix being built (Loki's nested-key rules).
fn append_sanitized(to: &mut String, part: &str) {
    let part = part.trim();
    if part.is_empty() {
        return;
    }
    if to.is_empty() && part.as_bytes()[0].is_ascii_digit() {
        to.push('_');
    }
    for c in part.chars() {
        to.push(if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' });
    }
}

fn build_prefix(parts: &[String]) -> String {
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if p.trim().is_empty() {
            continue;
        }
        if i > 0 && !out.is_empty() {
            out.push('_');
        }
        append_sanitized(&mut out, p);
    }
    out
}

/// Reads a scalar JSON value the way Loki stores it in a label.
fn read_value(v: &[u8], ty: ValueType) -> Cow<'_, str> {
    match ty {
        ValueType::String => unescape_to_string(v),
        ValueType::Number => lossy_with_spaces(v),
        ValueType::Boolean => Cow::Borrowed(if v == b"true" { "true" } else { "false" }),
        _ => Cow::Borrowed(""),
    }
}

/// Deepest object nesting `| json` descends into. Deeper lines get `__error__` instead of
/// exhausting the stack (a pushed line could otherwise crash whoever parses it).
pub(crate) const MAX_JSON_DEPTH: usize = 512;

/// The error a line nested deeper than [`MAX_JSON_DEPTH`] gets.
const ERR_TOO_DEEP: &str = "json nesting too deep";

/// Not an error: the parser hints' names were all extracted, the rest of the line is not read.
const FOUND_ALL: &str = "found all required labels";

/// `| json` without parameters: every scalar field (the parser hints' only), nested keys
/// joined with `_`.
pub(crate) fn parse_json(line: &[u8], lbs: &mut LabelsBuilder) {
    let mut prefix: Vec<String> = Vec::new();
    match json_object(line, &mut prefix, lbs) {
        Ok(()) => {}
        Err(e) if e == FOUND_ALL => {}
        Err(e) => lbs.set_error(JSON_PARSER_ERR, Some(e)),
    }
}

fn json_object(
    data: &[u8],
    prefix: &mut Vec<String>,
    lbs: &mut LabelsBuilder,
) -> Result<(), &'static str> {
    let r = object_each(data, |key, value, v| -> Result<(), &'static str> {
        match v.ty {
            ValueType::String | ValueType::Number | ValueType::Boolean => {
                json_label(key, value, v.ty, prefix, lbs);
                if lbs.all_required_extracted() {
                    return Err(FOUND_ALL);
                }
                Ok(())
            }
            ValueType::Object => {
                let len = prefix.len();
                if lbs.hints().is_some() {
                    prefix.push(lossy(key).into_owned());
                    let wanted = lbs.should_extract_prefix(&build_prefix(prefix));
                    prefix.truncate(len);
                    if !wanted {
                        return Ok(());
                    }
                }
                if len >= MAX_JSON_DEPTH {
                    return Err(ERR_TOO_DEEP);
                }
                prefix.push(lossy(key).into_owned());
                let r = json_object(value, prefix, lbs);
                prefix.truncate(len);
                r
            }
            _ => Ok(()),
        }
    });
    match r {
        Ok(()) => Ok(()),
        Err(ObjectEachError::Syntax(e)) | Err(ObjectEachError::Callback(e)) => Err(e),
    }
}

fn json_label(
    key: &[u8],
    value: &[u8],
    ty: ValueType,
    prefix: &mut Vec<String>,
    lbs: &mut LabelsBuilder,
) {
    let key_str = lossy(key);
    let name = if prefix.is_empty() {
        let mut name = sanitize_label_key(&key_str);
        if name.is_empty() {
            return;
        }
        if lbs.collides(&name) {
            name.to_mut().push_str(DUPLICATE_SUFFIX);
        }
        name
    } else {
        prefix.push(key_str.into_owned());
        let mut name = build_prefix(prefix);
        if lbs.collides(&name) {
            if let Some(last) = prefix.last_mut() {
                last.push_str(DUPLICATE_SUFFIX);
            }
            name = build_prefix(prefix);
        }
        prefix.pop();
        Cow::Owned(name)
    };
    if name.is_empty() || lbs.extracted(&name) || !lbs.should_extract(&name) {
        return;
    }
    let v = read_value(value, ty);
    lbs.set(Category::Parsed, &name, &v);
}

/// `| json a="path", b`: compiled extraction expressions.
#[derive(Debug, Clone)]
pub(crate) struct JsonExpressions {
    ids: Vec<String>,
    paths: Vec<Vec<String>>,
}

impl JsonExpressions {
    pub(crate) fn new(exprs: &[(String, String)]) -> Result<JsonExpressions, StageError> {
        let mut ids = Vec::new();
        let mut paths = Vec::new();
        for (id, expr) in exprs {
            let path = parse_json_path(expr)
                .map_err(|reason| StageError::JsonPath { expr: expr.clone(), reason })?;
            if !skald_model::labels::is_valid_label_name(id) {
                return Err(StageError::InvalidExtractedLabelName(id.clone()));
            }
            ids.push(id.clone());
            paths.push(path);
        }
        Ok(JsonExpressions { ids, paths })
    }

    pub(crate) fn process(&self, line: &[u8], lbs: &mut LabelsBuilder) {
        let data = line;
        if data.is_empty() {
            return;
        }
        if !matches!(data[0], b'"' | b'{' | b'[') {
            lbs.set_err(JSON_PARSER_ERR);
            return;
        }
        let mut matches = 0;
        let mut results: Vec<EachKeyResult<'_>> = Vec::new();
        each_key(data, &self.paths, |r| results.push(r));
        for (idx, r) in results {
            match r {
                Err(e) => lbs.set_error(JSON_PARSER_ERR, Some(e)),
                Ok((value, ty)) => {
                    let Some(idx) = idx else { continue };
                    let mut key = self.ids[idx].clone();
                    if lbs.collides(&key) {
                        key.push_str(DUPLICATE_SUFFIX);
                    }
                    let v = match ty {
                        ValueType::Null => Cow::Borrowed(""),
                        ValueType::Object => lossy_with_spaces(value),
                        _ => unescape_to_string(value),
                    };
                    lbs.set(Category::Parsed, &key, &v);
                    matches += 1;
                }
            }
        }
        if matches < self.ids.len() {
            for id in &self.ids {
                if lbs.get(id).is_none() {
                    lbs.set(Category::Parsed, id, "");
                }
            }
        }
    }
}

/// `| unpack`: a JSON object whose `_entry` field becomes the line and whose other string
/// fields become labels. Returns the new line when the entry was packed.
pub(crate) fn unpack(line: &[u8], lbs: &mut LabelsBuilder) -> Option<Vec<u8>> {
    let data = line;
    if data.is_empty() {
        return None;
    }
    if data[0] != b'{' {
        lbs.set_error(JSON_PARSER_ERR, Some(ERR_UNEXPECTED_OBJECT));
        return None;
    }
    let mut entry: Option<Vec<u8>> = None;
    let mut pending: Vec<(String, String)> = Vec::new();
    let r = object_each(data, |key, value, v| -> Result<(), &'static str> {
        if v.ty != ValueType::String {
            return Ok(());
        }
        if key == b"_entry" {
            // the new line's bytes, as unescaped (a Go string: invalid UTF-8 kept)
            entry = Some(unescape(value)?.into_owned());
            return Ok(());
        }
        let mut k = lossy(key).into_owned();
        if lbs.collides(&k) {
            k.push_str(DUPLICATE_SUFFIX);
        }
        if lbs.extracted(&k) || !lbs.should_extract(&k) {
            return Ok(());
        }
        pending.push((sanitize_label_key(&k).into_owned(), unescape_to_string(value).into_owned()));
        Ok(())
    });
    match r {
        Ok(()) => {}
        Err(ObjectEachError::Syntax(e)) | Err(ObjectEachError::Callback(e)) => {
            lbs.set_error(JSON_PARSER_ERR, Some(e));
            return None;
        }
    }
    let entry = entry?;
    for (k, v) in pending {
        lbs.set(Category::Parsed, &k, &v);
    }
    Some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_gocompat::json::jsonparser::{
        ERR_MALFORMED_ARRAY, ERR_MALFORMED_JSON, ERR_MALFORMED_STRING,
    };
    use skald_model::Labels;

    fn builder() -> LabelsBuilder {
        LabelsBuilder::new(Labels::parse(r#"{env="test", format="json", job="web"}"#).unwrap())
    }

    const WEB: &str = r#"{"method":"PATCH","path":"/api/v1/orders","status":200,"latency_ms":439.539,"bytes":47276,"client_ip":"10.0.3.134","user_agent":"python-requests/2.32.3","duration":"439ms","upstream":{"host":"api-1","port":8081},"tags":["canary"]}"#;

    #[test]
    fn json_all_fields() {
        let mut b = builder();
        parse_json(WEB.as_bytes(), &mut b);
        let r = b.result();
        assert_eq!(
            r.parsed.to_string(),
            r#"{bytes="47276", client_ip="10.0.3.134", duration="439ms", latency_ms="439.539", method="PATCH", path="/api/v1/orders", status="200", upstream_host="api-1", upstream_port="8081", user_agent="python-requests/2.32.3"}"#
        );
    }

    #[test]
    fn json_cut_lines_keep_earlier_fields() {
        let cases = [
            (
                r#"{"method":"GET","path":"/api/v1/orders","status":200,"latency_ms":154.085,"bytes":4102,"client_ip":"172.16.15.125",""#,
                ERR_MALFORMED_JSON,
                true,
            ),
            (
                r#"{"method":"GET","path":"/api/v1/orders","status":404,"latency_ms":2.085,"bytes":18904,"client_ip":"172.16.1.1"#,
                ERR_MALFORMED_STRING,
                false,
            ),
            (
                r#"{"method":"GET","path":"/x","status":200,"latency_ms":6.787,"bytes":57132,"client_ip":"172.16.0.245","#,
                ERR_MALFORMED_ARRAY,
                true,
            ),
        ];
        for (line, err, has_ip) in cases {
            let mut b = builder();
            parse_json(line.as_bytes(), &mut b);
            assert_eq!(b.err(), JSON_PARSER_ERR);
            assert_eq!(b.err_details(), err, "{line}");
            assert_eq!(b.get("client_ip").is_some(), has_ip);
            assert!(b.get("bytes").is_some());
        }
    }

    #[test]
    fn json_collisions_and_escapes() {
        let mut b = builder();
        parse_json(
            (r#"{"job":"x","a b":{"1c":"\u00e9\n","d":null,"e":true},"arr":[1]}"#).as_bytes(),
            &mut b,
        );
        let r = b.result();
        assert_eq!(r.parsed.to_string(), r#"{a_b_1c="é\n", a_b_e="true", job_extracted="x"}"#);
        assert_eq!(r.stream.get("job"), Some("web"));
    }

    #[test]
    fn json_expressions() {
        let ex = JsonExpressions::new(&[
            ("method".into(), "method".into()),
            ("code".into(), "status".into()),
            ("up".into(), "upstream.host".into()),
            ("tag0".into(), "tags[0]".into()),
        ])
        .unwrap();
        let mut b = builder();
        ex.process(WEB.as_bytes(), &mut b);
        assert_eq!(
            b.result().parsed.to_string(),
            r#"{code="200", method="PATCH", tag0="canary", up="api-1"}"#
        );
        // a cut line: the missing ones are empty and there is no error
        let mut b = builder();
        ex.process(
            (r#"{"method":"GET","path":"/api/v1/orders","status":404,"latency_ms":2.085,"bytes":18904,"client_ip":"172.16.1.1"#).as_bytes(),
            &mut b,
        );
        assert_eq!(b.err(), "");
        assert_eq!(b.result().parsed.to_string(), r#"{code="404", method="GET", tag0="", up=""}"#);
        let ex = JsonExpressions::new(&[
            ("o".into(), "upstream".into()),
            ("t".into(), r#"["tags"]"#.into()),
        ])
        .unwrap();
        let mut b = builder();
        ex.process(WEB.as_bytes(), &mut b);
        assert_eq!(b.get("o"), Some(r#"{"host":"api-1","port":8081}"#));
        assert_eq!(b.get("t"), Some(r#"["canary"]"#));
        assert!(JsonExpressions::new(&[("a".into(), "a..b".into())]).is_err());
        assert!(JsonExpressions::new(&[("a".into(), "a[1.5]".into())]).is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let depth = 40_000;
        let line = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        let mut lbs = builder();
        parse_json(line.as_bytes(), &mut lbs);
        assert!(lbs.has_err());
        let ok = format!("{}1{}", r#"{"a":"#.repeat(10), "}".repeat(10));
        let mut lbs = builder();
        parse_json(ok.as_bytes(), &mut lbs);
        assert!(!lbs.has_err());
    }

    #[test]
    fn unpack_lines() {
        let mut b = builder();
        assert_eq!(unpack(WEB.as_bytes(), &mut b), None);
        assert_eq!(b.result().parsed.len(), 0);
        let mut b = builder();
        let line =
            unpack((r#"{"_entry":"hello \"x\"","container":"c1","n":1}"#).as_bytes(), &mut b);
        assert_eq!(line.as_deref(), Some(&br#"hello "x""#[..]));
        assert_eq!(b.get("container"), Some("c1"));
        let mut b = builder();
        assert_eq!(unpack((r#"{"method":"GET","path":"/api"#).as_bytes(), &mut b), None);
        assert_eq!(b.err(), JSON_PARSER_ERR);
        let mut b = builder();
        assert_eq!(unpack(b"plain", &mut b), None);
        assert_eq!(b.err_details(), ERR_UNEXPECTED_OBJECT);
    }
}
