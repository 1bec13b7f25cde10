//! Logs Drilldown's discovery of labels and fields, with Loki's rules:
//!
//! - `/loki/api/v1/detected_labels`: the stream labels of the matching streams with their
//!   number of distinct values, leaving out labels whose values all look like IDs (numbers or
//!   UUIDs; two values `0`/`1` count as a boolean, not IDs) unless the label is one of
//!   `cluster`, `namespace`, `instance`, `pod`.
//! - `/loki/api/v1/detected_fields`: the query's newest `line_limit` lines (after its
//!   pipeline) are read; each entry's structured metadata are fields without a parser, and
//!   each line is parsed as JSON, or as logfmt when it is not valid JSON. A field's type is
//!   inferred from its value (int, float, boolean, duration, bytes, else string; the entry
//!   read last decides), its cardinality is its number of distinct values, `parsers` lists
//!   the parsers that found it and `jsonPath` the JSON keys it came from.
//! - `/loki/api/v1/detected_field/<name>/values`: the distinct values of one field; byte
//!   sizes are rewritten in a canonical form (`12KB` → `12kB`) so they can go into a query.
//!
//! Loki estimates cardinalities with HyperLogLog sketches; Skald counts exactly, which is
//! what those sketches give at these sizes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use skald_loghttp::params::{self, Params};
use skald_logql::engine::{self, QueryParams, QueryResult, ResultEntry};
use skald_logql::log::{Pipeline, ERROR_DETAILS_LABEL, ERROR_LABEL};
use skald_logql::syntax::ast::{Expr, ParserStage, Stage};
use skald_logql::syntax::{self, goutil};
use skald_model::{Direction, Labels};

use crate::error::QuerierError;
use crate::Querier;

/// Labels Loki always reports when they have values, whatever those look like.
const STATIC_LABELS: &[&str] = &["cluster", "namespace", "instance", "pod"];
/// Loki's label that keeps an error label through `drop`.
const PRESERVE_ERROR_LABEL: &str = "__preserve_error__";
/// Suffix Loki's parsers add to names that collide with stream labels.
const DUPLICATE_SUFFIX: &str = "_extracted";
const HOUR_NS: i64 = 3_600_000_000_000;
/// Default `line_limit` (Loki's default query limit).
const DEFAULT_LINE_LIMIT: i64 = 100;
/// Default `limit` of fields or values.
const DEFAULT_FIELD_LIMIT: i64 = 1000;
/// JSON nesting deeper than this is not walked (and such lines are not parsed as JSON), so a
/// hostile line cannot exhaust the stack of a recursive parser.
const MAX_JSON_DEPTH: usize = 128;

fn bad(msg: impl Into<String>) -> QuerierError {
    QuerierError::BadRequest(msg.into())
}

fn end_before_start() -> QuerierError {
    bad("end timestamp must not be before or equal to start time")
}

// ---------------------------------------------------------------------------------------------
// Value types, as Loki infers them with Go's parsers

fn is_go_bool(v: &str) -> bool {
    matches!(
        v,
        "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false" | "False"
    )
}

/// True when Go's `strconv.ParseFloat(v, 64)` accepts `v` (a value out of range is an error).
pub(crate) fn is_go_float(v: &str) -> bool {
    skald_gocompat::strconv::parse_float(v).is_ok()
}

/// The detected type of one value: the first of Go's `ParseInt`, `ParseFloat`, `ParseBool`,
/// `time.ParseDuration` and go-humanize's `ParseBytes` that accepts it, else `string`.
pub(crate) fn determine_type(v: &str) -> &'static str {
    if goutil::go_atoi(v).is_some() {
        "int"
    } else if is_go_float(v) {
        "float"
    } else if is_go_bool(v) {
        "boolean"
    } else if goutil::go_parse_duration(v).is_some() {
        "duration"
    } else if goutil::humanize_parse_bytes(v).is_some() {
        "bytes"
    } else {
        "string"
    }
}

/// Byte-size suffixes after which a parsed value is rewritten in canonical form.
const BYTES_SUFFIXES: &[&str] = &[
    "b", "kib", "kb", "mib", "mb", "gib", "gb", "tib", "tb", "pib", "pb", "eib", "eb", "ki", "k",
    "mi", "m", "gi", "g", "ti", "t", "pi", "p", "ei", "e",
];

/// A field value as `/detected_field/<name>/values` lists it: byte sizes with a unit become
/// go-humanize's form without the space (`12KB` → `12kB`, `1.5MB` → `1.5MB`).
fn canonical_value(v: &str) -> String {
    let lower = v.to_ascii_lowercase();
    match goutil::humanize_parse_bytes(v) {
        Some(n) if BYTES_SUFFIXES.iter().any(|s| lower.ends_with(s)) => goutil::humanize_bytes(n),
        _ => v.to_string(),
    }
}

/// `github.com/google/uuid`'s `Parse` forms: 36 characters with dashes, optionally in braces
/// or after `urn:uuid:`, or 32 hex digits.
fn is_uuid(v: &str) -> bool {
    let dashed = |s: &str| {
        s.len() == 36
            && s.char_indices().all(|(i, c)| {
                if matches!(i, 8 | 13 | 18 | 23) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    };
    match v.len() {
        32 => v.chars().all(|c| c.is_ascii_hexdigit()),
        36 => dashed(v),
        38 => v.starts_with('{') && v.ends_with('}') && dashed(&v[1..37]),
        45 => v.get(..9).is_some_and(|p| p.eq_ignore_ascii_case("urn:uuid:")) && dashed(&v[9..]),
        _ => false,
    }
}

/// Loki drops a label from `detected_labels` when it has no values or all its values are IDs
/// (numbers or UUIDs); up to two values that are all `0`/`1` are a boolean and kept.
fn reject_label(values: &BTreeSet<String>) -> bool {
    if values.is_empty() {
        return true;
    }
    if values.len() <= 2 && values.iter().all(|v| v == "0" || v == "1") {
        return false;
    }
    values.iter().all(|v| is_go_float(v) || is_uuid(v))
}

// ---------------------------------------------------------------------------------------------
// JSON key paths (document order), walked by gocompat's jsonparser_paths

pub(crate) use skald_gocompat::json::jsonparser_paths::Leaf as JsonLeaf;

/// Visits the members of the JSON object `line` in document order, nested objects included,
/// with their key paths (keys unescaped strictly, by serde_json). Stops at the first syntax
/// error.
pub(crate) fn walk_json(line: &str, visit: impl FnMut(&[String], JsonLeaf<'_>)) {
    skald_gocompat::json::jsonparser_paths::walk_object(
        line,
        MAX_JSON_DEPTH,
        |raw| serde_json::from_str::<String>(&format!("\"{raw}\"")).ok(),
        visit,
    );
}

/// True when brackets outside strings nest deeper than `max` somewhere in `line`.
fn nests_deeper_than(line: &str, max: usize) -> bool {
    let b = line.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// Top-level string members of a JSON object line: `(key, escaped text)`.
pub(crate) fn json_top_level_strings(line: &str, out: &mut Vec<(String, String)>) {
    walk_json(line, |path, leaf| {
        if let (1, JsonLeaf::String(v)) = (path.len(), leaf) {
            out.push((path[0].clone(), v.to_string()));
        }
    });
}

/// Sanitises a top-level key as Loki's `json` parser does: trimmed, `_` before a leading
/// digit, characters outside `[A-Za-z0-9_]` become `_`.
fn sanitize_key(key: &str) -> String {
    let key = key.trim();
    let mut out = String::with_capacity(key.len() + 1);
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }));
    out
}

/// The label name of a nested key: sanitised non-blank parts joined with `_`.
fn nested_name(parts: &[String]) -> String {
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        if i > 0 && !out.is_empty() {
            out.push('_');
        }
        if out.is_empty() && part.starts_with(|c: char| c.is_ascii_digit()) {
            out.push('_');
        }
        out.extend(
            part.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }),
        );
    }
    out
}

/// The JSON key path of each label `| json` extracts from `line` for a stream with labels
/// `stream` (the same names as `skald_logql`'s `json` stage: first occurrence wins, names
/// colliding with stream labels get `_extracted`, which the path leaves out).
pub(crate) fn json_paths(line: &str, stream: &Labels) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    walk_json(line, |path, leaf| {
        if leaf == JsonLeaf::Other {
            return;
        }
        let (name, json_path) = if path.len() == 1 {
            let mut name = sanitize_key(&path[0]);
            if name.is_empty() {
                return;
            }
            if stream.get(&name).is_some() {
                name.push_str(DUPLICATE_SUFFIX);
            }
            (name, vec![path[0].clone()])
        } else {
            let mut name = nested_name(path);
            if stream.get(&name).is_some() {
                let mut parts = path.to_vec();
                if let Some(last) = parts.last_mut() {
                    last.push_str(DUPLICATE_SUFFIX);
                }
                name = nested_name(&parts);
            }
            let json_path = path
                .iter()
                .map(|p| p.strip_suffix(DUPLICATE_SUFFIX).unwrap_or(p).to_string())
                .collect();
            (name, json_path)
        };
        if !name.is_empty() {
            out.entry(name).or_insert(json_path);
        }
    });
    out
}

// ---------------------------------------------------------------------------------------------
// Fields of log entries

/// What is known about one detected field.
#[derive(Debug)]
struct Field {
    values: HashSet<String>,
    ty: &'static str,
    parsers: Vec<&'static str>,
    json_path: Option<Vec<String>>,
}

impl Field {
    fn new() -> Field {
        Field { values: HashSet::new(), ty: "string", parsers: Vec::new(), json_path: None }
    }
}

/// Fields parsed from one entry.
struct ParsedEntry {
    /// Name → distinct values, in first-seen order of names.
    fields: Vec<(String, Vec<String>)>,
    /// `json` or `logfmt`; `None` when neither applied.
    parser: Option<&'static str>,
    /// JSON key paths of the names (when the parser is `json`).
    paths: HashMap<String, Vec<String>>,
}

fn is_error_label(name: &str) -> bool {
    name == ERROR_LABEL || name == ERROR_DETAILS_LABEL || name == PRESERVE_ERROR_LABEL
}

fn push_value(fields: &mut Vec<(String, Vec<String>)>, name: &str, value: &str) {
    match fields.iter_mut().find(|(n, _)| n == name) {
        Some((_, vals)) => {
            if !vals.iter().any(|v| v == value) {
                vals.push(value.to_string());
            }
        }
        None => fields.push((name.to_string(), vec![value.to_string()])),
    }
}

/// The `json` and `logfmt` parsers Loki runs over every line.
struct Parsers {
    json: Pipeline,
    logfmt: Pipeline,
}

impl Parsers {
    fn new() -> Result<Parsers, QuerierError> {
        let json = Pipeline::new(&[Stage::Parser(ParserStage::Json(Vec::new()))])
            .map_err(|e| QuerierError::Internal(e.to_string()))?;
        let logfmt = Pipeline::new(&[Stage::Parser(ParserStage::Logfmt {
            strict: false,
            keep_empty: false,
            extractions: Vec::new(),
        })])
        .map_err(|e| QuerierError::Internal(e.to_string()))?;
        Ok(Parsers { json, logfmt })
    }

    /// Parses one entry: the labels its query already parsed, then JSON, or logfmt when the
    /// line is not valid JSON. The parsers see the stream labels (without names the query
    /// parsed) but not the structured metadata.
    fn parse(&self, stream: &Labels, entry: &ResultEntry) -> ParsedEntry {
        let mut fields: Vec<(String, Vec<String>)> = Vec::new();
        for l in entry.parsed.iter().filter(|l| !is_error_label(&l.name)) {
            push_value(&mut fields, &l.name, &l.value);
        }
        let base = if entry.parsed.is_empty() {
            stream.clone()
        } else {
            Labels::from_vec(
                stream.iter().filter(|l| entry.parsed.get(&l.name).is_none()).cloned().collect(),
            )
        };
        let run = |p: &Pipeline| -> Option<Labels> {
            let mut sp = p.for_stream(&base);
            sp.process_ref(entry.ts, &entry.line, &[]).map(|r| r.labels().parsed)
        };
        let json = if nests_deeper_than(&entry.line.to_str_lossy(), MAX_JSON_DEPTH) {
            None
        } else {
            run(&self.json)
        };
        let (parsed, parser) = match json {
            Some(parsed) if parsed.get(ERROR_LABEL).is_none() => (parsed, "json"),
            _ => match run(&self.logfmt) {
                Some(parsed) if parsed.get(ERROR_LABEL).is_none() => (parsed, "logfmt"),
                _ => return ParsedEntry { fields, parser: None, paths: HashMap::new() },
            },
        };
        for l in parsed.iter().filter(|l| !is_error_label(&l.name)) {
            push_value(&mut fields, &l.name, &l.value);
        }
        let paths = if parser == "json" {
            json_paths(&entry.line.to_str_lossy(), &base)
        } else {
            HashMap::new()
        };
        ParsedEntry { fields, parser: Some(parser), paths }
    }
}

/// Detected fields of `streams` (newest entries first within a stream), at most `limit`
/// fields, in the order Loki visits entries (the last entry visited sets a field's type).
fn detect_fields(
    streams: &[(Labels, Vec<ResultEntry>)],
    limit: usize,
    parsers: &Parsers,
) -> BTreeMap<String, Field> {
    let mut fields: HashMap<String, Field> = HashMap::new();
    for (labels, entries) in streams {
        for entry in entries {
            let mut metadata: Vec<(String, Vec<String>)> = Vec::new();
            for l in entry.structured_metadata.iter() {
                push_value(&mut metadata, &l.name, &l.value);
            }
            for (name, vals) in &metadata {
                if !fields.contains_key(name) && fields.len() >= limit {
                    continue;
                }
                let f = fields.entry(name.clone()).or_insert_with(Field::new);
                if let Some(first) = vals.first() {
                    f.ty = determine_type(first);
                }
                f.values.extend(vals.iter().cloned());
            }
            let parsed = parsers.parse(labels, entry);
            for (name, vals) in &parsed.fields {
                if !fields.contains_key(name) && fields.len() >= limit {
                    continue;
                }
                let f = fields.entry(name.clone()).or_insert_with(Field::new);
                if let Some(p) = parsed.parser {
                    if !f.parsers.contains(&p) {
                        f.parsers.push(p);
                    }
                    if p == "json" {
                        f.json_path = parsed.paths.get(name).cloned();
                    }
                }
                if let Some(first) = vals.first() {
                    f.ty = determine_type(first);
                }
                f.values.extend(vals.iter().cloned());
            }
        }
    }
    fields.into_iter().collect()
}

/// Distinct values of field `name` in `streams`, stopping once `limit` values are known.
fn field_values(
    streams: &[(Labels, Vec<ResultEntry>)],
    name: &str,
    limit: usize,
    parsers: &Parsers,
) -> BTreeSet<String> {
    let mut values = BTreeSet::new();
    for (labels, entries) in streams {
        for entry in entries {
            if values.len() >= limit {
                break;
            }
            for l in entry.structured_metadata.iter().filter(|l| l.name == name) {
                values.insert(l.value.clone());
            }
            let parsed = parsers.parse(labels, entry);
            if let Some((_, vals)) = parsed.fields.iter().find(|(n, _)| n == name) {
                values.extend(vals.iter().map(|v| canonical_value(v)));
            }
        }
    }
    values
}

fn fields_json(fields: BTreeMap<String, Field>) -> Vec<Value> {
    fields
        .into_iter()
        .map(|(label, f)| {
            let mut m = Map::new();
            m.insert("label".into(), Value::String(label));
            m.insert("type".into(), Value::String(f.ty.to_string()));
            m.insert("cardinality".into(), json!(f.values.len()));
            let parsers = if f.parsers.is_empty() { Value::Null } else { json!(f.parsers) };
            m.insert("parsers".into(), parsers);
            if let Some(path) = f.json_path.filter(|p| !p.is_empty()) {
                m.insert("jsonPath".into(), json!(path));
            }
            Value::Object(m)
        })
        .collect()
}

/// Parses Loki's integer parameters (`strconv.Atoi`), which must be positive.
fn positive_int(p: &Params, names: &[&str], default: i64) -> Result<i64, QuerierError> {
    let raw = names.iter().find_map(|n| p.get(n).filter(|v| !v.is_empty()));
    let Some(raw) = raw else { return Ok(default) };
    let n = skald_gocompat::strconv::atoi(raw).map_err(|e| bad(e.go_text()))?;
    if n <= 0 {
        return Err(bad("limit must be a positive value"));
    }
    if n > u32::MAX as i64 {
        return Err(bad(format!("{} value {n} is out of range [0, {}]", names[0], u32::MAX)));
    }
    Ok(n)
}

/// The parameters of `/detected_fields` and `/detected_field/<name>/values`.
struct FieldsRequest {
    start: i64,
    end: i64,
    line_limit: u32,
    limit: usize,
}

fn fields_request(p: &Params) -> Result<FieldsRequest, QuerierError> {
    let (start, end) = params::parse_range(p, HOUR_NS)?;
    if end < start {
        return Err(end_before_start());
    }
    let line_limit = positive_int(p, &["line_limit"], DEFAULT_LINE_LIMIT)? as u32;
    let limit = positive_int(p, &["limit", "field_limit"], DEFAULT_FIELD_LIMIT)? as usize;
    // `step` is validated as Loki validates it, and not used otherwise
    params::parse_step(p, start, end)?;
    Ok(FieldsRequest { start, end, line_limit, limit })
}

impl Querier {
    /// `/loki/api/v1/detected_labels`.
    pub async fn detected_labels(&self, tenant: &str, p: &Params) -> Result<Value, QuerierError> {
        let (start, end) = params::parse_range(p, HOUR_NS)?;
        if end < start {
            return Err(end_before_start());
        }
        let matchers = match p.get("query").filter(|q| !q.trim().is_empty()) {
            None => Vec::new(),
            Some(q) => syntax::parse_matchers(q).map_err(|e| bad(e.to_string()))?,
        };
        self.check_query_length(tenant, start, end)?;
        let streams = self.stream_labels(tenant, &matchers, start, end).await?;
        let mut by_name: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for labels in &streams {
            for l in labels.iter() {
                by_name.entry(&l.name).or_default().insert(l.value.clone());
            }
        }
        let detected: Vec<Value> = by_name
            .into_iter()
            .filter(|(name, values)| {
                (STATIC_LABELS.contains(name) && !values.is_empty()) || !reject_label(values)
            })
            .map(|(name, values)| json!({"label": name, "cardinality": values.len()}))
            .collect();
        if detected.is_empty() {
            // Loki omits the empty list
            return Ok(json!({}));
        }
        Ok(json!({ "detectedLabels": detected }))
    }

    /// Runs a detected-fields request's log query: its newest `line_limit` entries with
    /// structured metadata and parsed labels apart, by stream.
    async fn fields_query(
        self: &Arc<Self>,
        tenant: &str,
        p: &Params,
        req: &FieldsRequest,
    ) -> Result<Vec<(Labels, Vec<ResultEntry>)>, QuerierError> {
        let expr =
            syntax::parse_expr(p.get("query").unwrap_or("")).map_err(|e| bad(e.to_string()))?;
        if !matches!(expr, Expr::Log(_)) {
            return Err(bad("only log selector is supported"));
        }
        self.check_query_length(tenant, req.start, req.end)?;
        let qp = QueryParams {
            start: req.start,
            end: req.end,
            step_ns: 0,
            interval_ns: 0,
            limit: req.line_limit,
            direction: Direction::Backward,
            instant: false,
            categorize_labels: true,
        };
        // the engine refuses a line_limit above max_entries_limit_per_query (0: no limit)
        let max_entries = match self.limits(tenant).max_entries_limit_per_query {
            0 => u32::MAX,
            n => n.min(u32::MAX as usize) as u32,
        };
        let limits = engine::Limits {
            max_entries_limit_per_query: max_entries,
            ..self.engine_limits(tenant)
        };
        let out = self
            .on_source(tenant, move |source, _| engine::evaluate(&expr, &qp, &limits, source))
            .await?;
        match out.result {
            QueryResult::Streams(streams) => {
                Ok(streams.into_iter().map(|s| (s.labels, s.entries)).collect())
            }
            _ => Err(bad("only log selector is supported")),
        }
    }

    /// `/loki/api/v1/detected_fields`.
    pub async fn detected_fields(
        self: &Arc<Self>,
        tenant: &str,
        p: &Params,
    ) -> Result<Value, QuerierError> {
        let req = fields_request(p)?;
        let streams = self.fields_query(tenant, p, &req).await?;
        let parsers = Parsers::new()?;
        let limit = req.limit;
        let fields = tokio::task::spawn_blocking(move || detect_fields(&streams, limit, &parsers))
            .await
            .map_err(|e| QuerierError::Internal(format!("detected fields task failed: {e}")))?;
        if fields.is_empty() {
            return Ok(json!({}));
        }
        Ok(json!({"fields": fields_json(fields), "limit": req.limit}))
    }

    /// `/loki/api/v1/detected_field/<name>/values`.
    pub async fn detected_field_values(
        self: &Arc<Self>,
        tenant: &str,
        name: &str,
        p: &Params,
    ) -> Result<Value, QuerierError> {
        let req = fields_request(p)?;
        let streams = self.fields_query(tenant, p, &req).await?;
        let parsers = Parsers::new()?;
        let (limit, name) = (req.limit, name.to_string());
        let values =
            tokio::task::spawn_blocking(move || field_values(&streams, &name, limit, &parsers))
                .await
                .map_err(|e| QuerierError::Internal(format!("detected values task failed: {e}")))?;
        if values.is_empty() {
            return Ok(json!({}));
        }
        Ok(json!({"values": values, "limit": req.limit}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_model::Label;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_vec(pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect())
    }

    #[test]
    fn types_follow_go_parsers_in_order() {
        for (v, ty) in [
            ("42", "int"),
            ("-7", "int"),
            ("+3", "int"),
            ("9223372036854775808", "float"),
            ("1.5", "float"),
            ("1e3", "float"),
            (".5", "float"),
            ("NaN", "float"),
            ("-Inf", "float"),
            ("0x1p-2", "float"),
            ("true", "boolean"),
            ("F", "boolean"),
            ("250ms", "duration"),
            ("1h2m3.5s", "duration"),
            ("2m3s", "duration"),
            ("750us", "duration"),
            ("12KB", "bytes"),
            ("1.5MB", "bytes"),
            ("512B", "bytes"),
            ("3KiB", "bytes"),
            ("1,000", "bytes"),
            ("10 MB", "bytes"),
            ("", "string"),
            ("hello", "string"),
            ("10.0.0.1", "string"),
            ("1e400", "string"),
            ("0x10", "string"),
            // Go's ParseFloat grammar: underscores between digits, hex with a `p` exponent,
            // signed inf but unsigned nan; out of range is an error
            ("1_000", "float"),
            ("1__0", "string"),
            ("0x1.8p3", "float"),
            ("0x_1p0", "float"),
            ("0x1p1024", "string"),
            ("-Infinity", "float"),
            ("NaN", "float"),
            ("+nan", "string"),
            ("1d", "string"),
        ] {
            assert_eq!(determine_type(v), ty, "{v:?}");
        }
    }

    #[test]
    fn byte_values_are_canonical() {
        assert_eq!(canonical_value("12KB"), "12kB");
        assert_eq!(canonical_value("1.5MB"), "1.5MB");
        assert_eq!(canonical_value("512B"), "512B");
        assert_eq!(canonical_value("3KiB"), "3.1kB");
        assert_eq!(canonical_value("5m"), "5.0MB"); // Loki's rule, quirk included
        assert_eq!(canonical_value("200"), "200");
        assert_eq!(canonical_value("info"), "info");
    }

    #[test]
    fn id_like_labels_are_rejected() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert!(reject_label(&set(&[])));
        assert!(reject_label(&set(&["1", "2", "3"])));
        assert!(reject_label(&set(&["123e4567-e89b-12d3-a456-426614174000", "7"])));
        assert!(!reject_label(&set(&["0", "1"])));
        assert!(!reject_label(&set(&["1"])));
        assert!(!reject_label(&set(&["test"])));
        assert!(!reject_label(&set(&["1", "2", "x"])));
        assert!(is_uuid("{123e4567-e89b-12d3-a456-426614174000}"));
        assert!(is_uuid("urn:uuid:123e4567-e89b-12d3-a456-426614174000"));
        assert!(is_uuid("123e4567e89b12d3a456426614174000"));
        assert!(!is_uuid("123e4567-e89b-12d3-a456-42661417400g"));
    }

    #[test]
    fn json_paths_follow_the_json_parser_names() {
        let stream = labels(&[("job", "web"), ("status", "x")]);
        let line = r#"{"method":"GET","status":200,"upstream":{"host":"a","port":8081,"job":{"x":1}},"tags":["a"],"n":null,"1st key":true,"a\"b":1}"#;
        let paths = json_paths(line, &stream);
        assert_eq!(paths["method"], ["method"]);
        assert_eq!(paths["status_extracted"], ["status"]);
        assert_eq!(paths["upstream_host"], ["upstream", "host"]);
        assert_eq!(paths["upstream_port"], ["upstream", "port"]);
        assert_eq!(paths["upstream_job_x"], ["upstream", "job", "x"]);
        assert_eq!(paths["_1st_key"], ["1st key"]);
        assert_eq!(paths["a_b"], ["a\"b"]);
        assert!(!paths.contains_key("tags") && !paths.contains_key("n"));
        // the names agree with the json stage's
        let parsers = Parsers::new().unwrap();
        let entry = ResultEntry {
            ts: 1,
            line: line.into(),
            structured_metadata: Labels::default(),
            parsed: Labels::default(),
        };
        let parsed = parsers.parse(&stream, &entry);
        assert_eq!(parsed.parser, Some("json"));
        let mut names: Vec<&String> = parsed.fields.iter().map(|(n, _)| n).collect();
        names.sort();
        let mut expected: Vec<&String> = paths.keys().collect();
        expected.sort();
        assert_eq!(names, expected);
    }

    #[test]
    fn deeply_nested_json_is_not_walked() {
        let deep = format!("{}{}", r#"{"a":"#.repeat(200_000), "}".repeat(200_000));
        assert!(nests_deeper_than(&deep, MAX_JSON_DEPTH));
        assert!(!nests_deeper_than(r#"{"a":{"b":"{{{{"}}"#, 2));
        assert!(json_paths(&deep, &Labels::default()).is_empty());
        let parsers = Parsers::new().unwrap();
        let entry = ResultEntry {
            ts: 1,
            line: deep.into(),
            structured_metadata: Labels::default(),
            parsed: Labels::default(),
        };
        assert_ne!(parsers.parse(&Labels::default(), &entry).parser, Some("json"));
    }

    #[test]
    fn lines_that_are_not_json_fall_back_to_logfmt() {
        let parsers = Parsers::new().unwrap();
        let stream = labels(&[("job", "worker")]);
        let entry = |line: &str| ResultEntry {
            ts: 1,
            line: line.into(),
            structured_metadata: Labels::default(),
            parsed: Labels::default(),
        };
        let p = parsers.parse(&stream, &entry(r#"level=info msg="a b" took=1.5s"#));
        assert_eq!(p.parser, Some("logfmt"));
        assert_eq!(p.fields.len(), 3);
        // a cut JSON line: logfmt finds nothing in it
        let p = parsers.parse(&stream, &entry(r#"{"method":"GET","path":"/x","#));
        assert_eq!(p.parser, Some("logfmt"));
        assert!(p.fields.is_empty());
    }

    #[test]
    fn fields_count_types_parsers_and_metadata() {
        let parsers = Parsers::new().unwrap();
        let stream = labels(&[("job", "web")]);
        let entry = |line: &str, sm: &[(&str, &str)]| ResultEntry {
            ts: 1,
            line: line.into(),
            structured_metadata: labels(sm),
            parsed: Labels::default(),
        };
        let streams = vec![(
            stream,
            vec![
                entry(r#"{"status":200,"latency":"1.5"}"#, &[("detected_level", "info")]),
                entry(
                    r#"{"status":404,"latency":"2"}"#,
                    &[("detected_level", "info"), ("trace_id", "abc")],
                ),
                entry("status=500 extra=yes", &[]),
            ],
        )];
        let fields = detect_fields(&streams, 1000, &parsers);
        let status = &fields["status"];
        assert_eq!((status.ty, status.values.len()), ("int", 3));
        assert_eq!(status.parsers, ["json", "logfmt"]);
        // the entry visited last decides the type
        assert_eq!(fields["latency"].ty, "int");
        assert_eq!(fields["detected_level"].parsers, Vec::<&str>::new());
        assert_eq!(fields["trace_id"].values.len(), 1);
        let json = fields_json(detect_fields(&streams, 2, &parsers));
        assert_eq!(json.len(), 2);
        let first = &fields_json(detect_fields(&streams, 1000, &parsers))[0];
        assert_eq!(first["label"], "detected_level");
        assert_eq!(first["parsers"], Value::Null);
        assert!(first.get("jsonPath").is_none());
        let values = field_values(&streams, "status", 1000, &parsers);
        assert_eq!(values.into_iter().collect::<Vec<_>>(), ["200", "404", "500"]);
    }
}
