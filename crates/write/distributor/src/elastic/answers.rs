//! The answers: handshake bodies (`GET /`, `/_license`, `/_xpack`), Elasticsearch error bodies
//! and the bulk response ([`BulkOutcome`], with `filter_path`).

use serde_json::{json, Map, Value};

use super::bulk::ItemResult;
use super::ElasticConfig;
use crate::PushError;

/// `GET /`: the cluster info clients read the version from.
pub fn root_info(cfg: &ElasticConfig) -> Value {
    json!({
        "name": "skald",
        "cluster_name": cfg.cluster_name,
        "cluster_uuid": "c2thbGQtbG9ncy1zdG9yZQ",
        "version": {
            "number": cfg.version,
            "build_flavor": "default",
            "build_type": "skald",
            "build_hash": "skald",
            "build_date": "2025-01-01T00:00:00.000Z",
            "build_snapshot": false,
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    })
}

/// `GET /_license`: an active basic license (Filebeat's x-pack check).
pub fn license() -> Value {
    json!({
        "license": {
            "status": "active",
            "uid": "00000000-0000-0000-0000-00000000skald",
            "type": "basic",
            "issue_date": "2025-01-01T00:00:00.000Z",
            "issue_date_in_millis": 1_735_689_600_000_i64,
            "max_nodes": 1000,
            "max_resource_units": null,
            "issued_to": "skald",
            "issuer": "elasticsearch",
            "start_date_in_millis": -1,
        }
    })
}

/// `GET /_xpack`: build, license and features (ILM available), for clients that check.
pub fn xpack(cfg: &ElasticConfig) -> Value {
    let feature = |available: bool| json!({ "available": available, "enabled": available });
    json!({
        "build": { "hash": "skald", "date": "2025-01-01T00:00:00.000Z" },
        "license": {
            "uid": "00000000-0000-0000-0000-00000000skald",
            "type": "basic",
            "mode": "basic",
            "status": "active",
        },
        "features": {
            "ilm": feature(true),
            "data_streams": feature(true),
            "security": feature(false),
            "monitoring": feature(false),
            "ml": feature(false),
        },
        "tagline": format!("Skald speaks the Elasticsearch {} ingest API", cfg.version),
    })
}

/// An Elasticsearch error body: `{"error":{"root_cause":[..],"type","reason"},"status"}`.
pub fn error_response(status: u16, kind: &str, reason: &str) -> Value {
    let cause = json!({ "type": kind, "reason": reason });
    json!({
        "error": { "root_cause": [cause.clone()], "type": kind, "reason": reason },
        "status": status,
    })
}

/// The Elasticsearch error type for a whole-request push error.
pub fn error_type(e: &PushError) -> &'static str {
    match e.status_code() {
        413 => "content_too_long_exception",
        429 => "es_rejected_execution_exception",
        400 | 422 => "illegal_argument_exception",
        _ => "status_exception",
    }
}

/// A bulk request's answer (HTTP 200).
#[derive(Debug, Clone, PartialEq)]
pub struct BulkOutcome {
    /// Milliseconds spent.
    pub took: u64,
    /// Per-item results, in request order.
    pub(super) items: Vec<ItemResult>,
}

impl BulkOutcome {
    /// True when some item failed.
    pub fn errors(&self) -> bool {
        self.items.iter().any(|i| i.error.is_some())
    }

    /// Items that failed.
    pub fn failed(&self) -> usize {
        self.items.iter().filter(|i| i.error.is_some()).count()
    }

    /// The response body. `filter_path` (Elasticsearch's response filtering, as Filebeat sends
    /// `errors,items.*.error,items.*.status`) keeps only the listed top-level keys and item
    /// fields; `*` matches any action name.
    pub fn to_json(&self, filter_path: Option<&str>) -> Value {
        let items: Vec<Value> = self
            .items
            .iter()
            .enumerate()
            .map(|(seq, it)| {
                let mut m = Map::new();
                m.insert("_index".into(), json!(it.index));
                m.insert("_id".into(), json!(it.id));
                match &it.error {
                    None => {
                        m.insert("_version".into(), json!(1));
                        m.insert("result".into(), json!("created"));
                        m.insert(
                            "_shards".into(),
                            json!({"total": 1, "successful": 1, "failed": 0}),
                        );
                        m.insert("_seq_no".into(), json!(seq));
                        m.insert("_primary_term".into(), json!(1));
                        m.insert("status".into(), json!(201));
                    }
                    Some((status, kind, reason)) => {
                        m.insert("status".into(), json!(status));
                        m.insert("error".into(), json!({"type": kind, "reason": reason}));
                    }
                }
                let mut outer = Map::new();
                outer.insert(it.action.clone(), Value::Object(m));
                Value::Object(outer)
            })
            .collect();
        let mut body = Map::new();
        body.insert("took".into(), json!(self.took));
        body.insert("errors".into(), json!(self.errors()));
        body.insert("items".into(), Value::Array(items));
        match filter_path.map(str::trim).filter(|f| !f.is_empty()) {
            None => Value::Object(body),
            Some(f) => filter(Value::Object(body), f),
        }
    }
}

/// Elasticsearch's `filter_path`, for the shapes of the bulk response: `key`, `key.*.field`,
/// `items.*.field` (and `**` / `*` as "everything below").
fn filter(v: Value, spec: &str) -> Value {
    let paths: Vec<Vec<&str>> = spec.split(',').map(|p| p.trim().split('.').collect()).collect();
    fn keep(v: Value, paths: &[&[&str]]) -> Option<Value> {
        if paths.iter().any(|p| p.is_empty() || *p == ["**"]) {
            return Some(v);
        }
        match v {
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    let below: Vec<&[&str]> = paths
                        .iter()
                        .filter(|p| p[0] == "*" || p[0] == "**" || p[0] == k)
                        .map(|p| if p[0] == "**" { *p } else { &p[1..] })
                        .collect();
                    if below.is_empty() {
                        continue;
                    }
                    if let Some(x) = keep(x, &below) {
                        out.insert(k, x);
                    }
                }
                (!out.is_empty()).then_some(Value::Object(out))
            }
            Value::Array(a) => {
                Some(Value::Array(a.into_iter().filter_map(|x| keep(x, paths)).collect()))
            }
            _ => None,
        }
    }
    let refs: Vec<&[&str]> = paths.iter().map(Vec::as_slice).collect();
    keep(v, &refs).unwrap_or_else(|| json!({}))
}
