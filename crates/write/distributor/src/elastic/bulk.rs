//! Bulk parsing: the NDJSON actions and sources of a bulk body, and the mapping of each
//! document to stream labels and an entry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use serde_json::{Map, Value};
use skald_model::{Entry, Label};

use super::ElasticConfig;
use crate::{normalize_metadata_name, PushError};
use skald_gocompat::json::jsoniter::{Cursor, Kind};

/// One item's outcome.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ItemResult {
    pub(super) action: String,
    pub(super) index: String,
    pub(super) id: String,
    pub(super) error: Option<(u16, &'static str, String)>,
}

/// A document ready to push: its item number, labels and entry.
pub(super) struct Doc {
    pub(super) item: usize,
    pub(super) labels: Vec<Label>,
    pub(super) entry: Entry,
}

static ID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A 20-character id like Elasticsearch's auto-generated ones (time + counter, base64url).
fn auto_id(now_ns: i64) -> String {
    let n = ID_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut b = [0u8; 15];
    b[..8].copy_from_slice(&now_ns.to_be_bytes());
    b[8..15].copy_from_slice(&n.to_be_bytes()[1..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Finds `path` in `obj`: literal dotted keys and nested objects both match. Returns the key
/// sequence that matched and the value.
fn lookup<'a>(obj: &'a Map<String, Value>, path: &str) -> Option<(Vec<String>, &'a Value)> {
    if let Some(v) = obj.get(path) {
        return Some((vec![path.to_string()], v));
    }
    for (i, _) in path.match_indices('.') {
        let (head, rest) = (&path[..i], &path[i + 1..]);
        if let Some(Value::Object(inner)) = obj.get(head) {
            if let Some((mut keys, v)) = lookup(inner, rest) {
                keys.insert(0, head.to_string());
                return Some((keys, v));
            }
        }
    }
    None
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Removal tree: key → (remove this member, removals below it).
#[derive(Default)]
struct Removals(HashMap<String, (bool, Removals)>);

impl Removals {
    fn add(&mut self, keys: &[String]) {
        if let Some((first, rest)) = keys.split_first() {
            let node = self.0.entry(first.clone()).or_default();
            if rest.is_empty() {
                node.0 = true;
            } else {
                node.1.add(rest);
            }
        }
    }
}

/// Rewrites the object at the cursor without the removed members (and without objects that
/// became empty through removal). Returns `None` when such an object is left empty.
fn rewrite(c: &mut Cursor<'_>, rm: &Removals, out: &mut String) -> Result<bool, ()> {
    let mut members: Vec<String> = Vec::new();
    let mut removed_any = false;
    if c.begin_object().map_err(|_| ())? {
        loop {
            c.skip_ws();
            let key_start = c.pos;
            let key = c.member_key().map_err(|_| ())?.into_owned();
            let key_raw = String::from_utf8_lossy(&c.b[key_start..c.pos]).trim_end().to_string();
            let key_raw = key_raw.strip_suffix(':').unwrap_or(&key_raw).trim_end().to_string();
            match rm.0.get(&key) {
                Some((true, _)) => {
                    c.skip_value().map_err(|_| ())?;
                    removed_any = true;
                }
                Some((false, below)) if c.kind().map_err(|_| ())? == Kind::Object => {
                    let mut inner = String::new();
                    if rewrite(c, below, &mut inner)? {
                        members.push(format!("{key_raw}:{inner}"));
                    } else {
                        removed_any = true;
                    }
                }
                _ => {
                    let (_, s, e) = c.skip_value().map_err(|_| ())?;
                    members.push(format!("{key_raw}:{}", String::from_utf8_lossy(&c.b[s..e])));
                }
            }
            if !c.next_member().map_err(|_| ())? {
                break;
            }
        }
    }
    if members.is_empty() && removed_any {
        return Ok(false);
    }
    out.push('{');
    out.push_str(&members.join(","));
    out.push('}');
    Ok(true)
}

/// Parses `@timestamp`-style values: RFC 3339 (a missing zone means UTC), epoch milliseconds
/// as a number or a string of digits.
fn parse_time(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            let ms =
                n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))?;
            ms.checked_mul(1_000_000)
        }
        Value::String(s) => {
            let s = s.trim();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                return s.parse::<i64>().ok()?.checked_mul(1_000_000);
            }
            let t = chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&chrono::Utc))
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                        .map(|t| t.and_utc())
                })
                .ok()?;
            t.timestamp_nanos_opt()
        }
        _ => None,
    }
}

/// The mapping of one document to labels and an entry.
pub(super) fn map_document(
    cfg: &ElasticConfig,
    index: &str,
    source: &[u8],
    now_ns: i64,
) -> Result<(Vec<Label>, Entry), (&'static str, String)> {
    let parse_err = |e: String| ("document_parsing_exception", format!("failed to parse: {e}"));
    let doc: Value = serde_json::from_slice(source).map_err(|e| parse_err(e.to_string()))?;
    let Value::Object(obj) = &doc else {
        return Err(parse_err("the document is not a JSON object".to_string()));
    };
    let mut lbls: Vec<Label> = Vec::new();
    let set = |lbls: &mut Vec<Label>, name: String, value: String| {
        if value.is_empty() || lbls.iter().any(|l| l.name == name) {
            return;
        }
        lbls.push(Label::new(name, value));
    };
    if !cfg.index_label.is_empty() {
        set(&mut lbls, cfg.index_label.clone(), index.to_string());
    }
    let mut removals = Removals::default();
    for (field, label) in &cfg.label_fields {
        if let Some((keys, v)) = lookup(obj, field) {
            if let Some(text) = scalar_text(v) {
                set(&mut lbls, label.clone(), text);
                removals.add(&keys);
            }
        }
    }
    for (path, prefix) in &cfg.label_prefixes {
        if let Some((keys, Value::Object(members))) = lookup(obj, path) {
            for (k, v) in members {
                let Some(text) = scalar_text(v) else { continue };
                let Ok(name) = normalize_metadata_name(&format!("{prefix}{k}")) else { continue };
                set(&mut lbls, name, text);
                let mut full = keys.clone();
                full.push(k.clone());
                removals.add(&full);
            }
        }
    }
    let ts = if cfg.timestamp_field.is_empty() {
        now_ns
    } else {
        match lookup(obj, &cfg.timestamp_field) {
            None | Some((_, Value::Null)) => now_ns,
            Some((_, v)) => parse_time(v).ok_or_else(|| {
                (
                    "document_parsing_exception",
                    format!(
                        "failed to parse field [{}] of type [date]: {} is neither RFC 3339 nor epoch_millis",
                        cfg.timestamp_field, v
                    ),
                )
            })?,
        }
    };
    let line = if cfg.keep_label_fields || removals.0.is_empty() {
        String::from_utf8_lossy(source).trim().to_string()
    } else {
        let mut out = String::new();
        let mut c = Cursor::new(source);
        match rewrite(&mut c, &removals, &mut out) {
            Ok(true) => out,
            Ok(false) => "{}".to_string(),
            Err(()) => return Err(parse_err("the document could not be rewritten".to_string())),
        }
    };
    lbls.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((lbls, Entry { ts, line: line.into(), structured_metadata: Vec::new() }))
}

/// What [`parse_bulk`] found: per-item results so far and the documents to push.
pub(super) struct Parsed {
    pub(super) items: Vec<ItemResult>,
    pub(super) docs: Vec<Doc>,
}

fn bad_request(msg: String) -> PushError {
    PushError::BadRequest(msg)
}

/// Splits an NDJSON bulk body into actions and sources. A malformed action line fails the
/// whole request (as in Elasticsearch); a bad source fails only its item.
pub(super) fn parse_bulk(
    cfg: &ElasticConfig,
    url_index: Option<&str>,
    data: &[u8],
    now_ns: i64,
) -> Result<Parsed, PushError> {
    let mut lines = data
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| l.iter().any(|b| !b.is_ascii_whitespace()));
    let mut parsed = Parsed { items: Vec::new(), docs: Vec::new() };
    while let Some((n, line)) = lines.next() {
        let action: Value = serde_json::from_slice(line).map_err(|e| {
            bad_request(format!(
                "Malformed action/metadata line [{n}], expected a JSON object: {e}"
            ))
        })?;
        let Value::Object(obj) = action else {
            return Err(bad_request(format!(
                "Malformed action/metadata line [{n}], expected START_OBJECT"
            )));
        };
        if obj.len() != 1 {
            return Err(bad_request(format!(
                "Malformed action/metadata line [{n}], expected one action, found {}",
                obj.len()
            )));
        }
        let Some((name, meta)) = obj.into_iter().next() else { continue };
        let meta = match meta {
            Value::Object(m) => m,
            _ => {
                return Err(bad_request(format!(
                    "Malformed action/metadata line [{n}], expected START_OBJECT after [{name}]"
                )))
            }
        };
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| url_index.map(str::to_string))
            .unwrap_or_default();
        let id = meta.get("_id").and_then(scalar_text);
        let item = parsed.items.len();
        let mut result = ItemResult {
            action: name.clone(),
            index: index.clone(),
            id: id.clone().unwrap_or_default(),
            error: None,
        };
        match name.as_str() {
            "index" | "create" => {
                let Some((_, source)) = lines.next() else {
                    return Err(bad_request(format!(
                        "Malformed action/metadata line [{n}]: the [{name}] action has no source line"
                    )));
                };
                if result.id.is_empty() {
                    result.id = auto_id(now_ns);
                }
                if index.is_empty() {
                    result.error = Some((
                        400,
                        "action_request_validation_exception",
                        "Validation Failed: 1: index is missing;".to_string(),
                    ));
                } else {
                    match map_document(cfg, &index, source, now_ns) {
                        Ok((labels, entry)) => parsed.docs.push(Doc { item, labels, entry }),
                        Err((kind, reason)) => result.error = Some((400, kind, reason)),
                    }
                }
            }
            "update" | "delete" => {
                if name == "update" && lines.next().is_none() {
                    return Err(bad_request(format!(
                        "Malformed action/metadata line [{n}]: the [update] action has no source line"
                    )));
                }
                result.error = Some((
                    400,
                    "illegal_argument_exception",
                    format!("the bulk action [{name}] is not supported: Skald stores logs append-only (use index or create)"),
                ));
            }
            other => {
                return Err(bad_request(format!(
                    "Malformed action/metadata line [{n}], expected field [create], [delete], [index] or [update] but found [{other}]"
                )))
            }
        }
        parsed.items.push(result);
    }
    if parsed.items.is_empty() {
        return Err(bad_request("Validation Failed: 1: no requests added;".to_string()));
    }
    Ok(parsed)
}

/// A document as stored: its stream labels and its entry.
pub type BulkDocument = (Vec<Label>, Entry);

/// The documents of an (uncompressed) bulk body that would be stored, as `(labels, entry)`,
/// and the number of items; for tools and fuzzing. Errors as [`Distributor::push_elastic`]'s
/// whole-request failures.
pub fn bulk_documents(
    cfg: &ElasticConfig,
    url_index: Option<&str>,
    data: &[u8],
    now_ns: i64,
) -> Result<(usize, Vec<BulkDocument>), PushError> {
    let p = parse_bulk(cfg, url_index, data, now_ns)?;
    Ok((p.items.len(), p.docs.into_iter().map(|d| (d.labels, d.entry)).collect()))
}
