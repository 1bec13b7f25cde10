//! The query sets Skald's answers are checked against, as requests any server can be asked:
//! the LogQL golden files (`tests/logql/*.logql`, with their `# defaults:` and `# params:`
//! directives) and the Loki reference lists (`tests/data/reference/queries*.json`), and
//! [`answers`], which runs them against a server's URL. The golden and reference tests run
//! them against one `skald`; a test of the query-frontend runs them against a frontend and a
//! querier and compares the answers ([`without_stats`]: split answers differ in `stats` only).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{data_dir, get, Resp};

/// One request: its name (a golden query's text, a reference request's name), the path,
/// query parameters (repeated keys allowed) and headers (`X-Scope-OrgID` among them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The golden query's text or the reference request's name.
    pub name: String,
    /// The path, `/loki/api/v1/query_range`.
    pub path: String,
    /// Query parameters, in order.
    pub params: Vec<(String, String)>,
    /// Headers.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// Sends the request to the server at `url` (`http://host:port`).
    pub fn send(&self, url: &str) -> Resp {
        let p: Vec<(&str, &str)> =
            self.params.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let h: Vec<(&str, &str)> =
            self.headers.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        get(&format!("{url}{}", self.path), &p, &h)
    }
}

/// Runs every request against the server at `url`, in order.
pub fn answers(url: &str, requests: &[Request]) -> Vec<Resp> {
    requests.iter().map(|r| r.send(url)).collect()
}

/// A JSON body without `data.stats` (pretty-printed JSON, so that two can be compared and
/// shown); any other body as it is.
pub fn without_stats(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(mut v) => {
            if let Some(data) = v.get_mut("data").and_then(Value::as_object_mut) {
                data.remove("stats");
            }
            serde_json::to_string_pretty(&v).unwrap_or_default()
        }
        Err(_) => body.to_string(),
    }
}

// ---- the reference lists ----

/// Every request of the reference lists, each with the directory of Loki's recorded answer
/// (`tests/data/reference/<dir>/<name>.json`): the 114 requests of the first recording
/// (`queries.json`), 8 range queries whose start, end and step are not multiples of each
/// other (`queries-unaligned.json`), and 37 requests on the evaluation edges
/// (`queries-edges.json`). Tenant `tenant-a`.
pub fn reference_requests() -> Vec<(Request, &'static str)> {
    let reference = data_dir().join("reference");
    let mut out = Vec::new();
    for (list, answers) in [
        ("queries.json", "loki"),
        ("queries-unaligned.json", "loki-unaligned"),
        ("queries-edges.json", "loki-edges"),
    ] {
        let text =
            std::fs::read_to_string(reference.join(list)).unwrap_or_else(|e| panic!("{list}: {e}"));
        let items: Vec<Value> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{list}: {e}"));
        out.extend(items.iter().map(|q| (reference_request(q), answers)));
    }
    out
}

fn reference_request(q: &Value) -> Request {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut params = Vec::new();
    for (k, v) in q["params"].as_object().into_iter().flatten() {
        match v {
            Value::Array(items) => params.extend(items.iter().map(|i| (k.clone(), text(i)))),
            other => params.push((k.clone(), text(other))),
        }
    }
    let mut headers = vec![("X-Scope-OrgID".to_string(), "tenant-a".to_string())];
    for (k, v) in q["headers"].as_object().into_iter().flatten() {
        headers.push((k.clone(), text(v)));
    }
    Request { name: text(&q["name"]), path: text(&q["path"]), params, headers }
}

// ---- the golden files ----

/// 2026-11-01T00:00:00Z, where the reference dataset starts (seconds).
pub const GOLDEN_T0: i64 = 1_793_491_200;
const NS: i64 = 1_000_000_000;

/// The golden query files, `tests/logql/*.logql`, sorted.
pub fn golden_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("logql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "logql"))
        .collect();
    files.sort();
    files
}

/// Parses an offset from T0 such as `0`, `90s`, `10m`, `1h30m` (units `h`, `m`, `s`, `ms`)
/// into nanoseconds.
fn offset_ns(s: &str) -> i64 {
    if s == "0" {
        return 0;
    }
    let mut total = 0i64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().unwrap_or_else(|_| panic!("bad offset {s:?}"));
        num.clear();
        total += match c {
            'h' => n * 3600 * NS,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                n * 1_000_000
            }
            'm' => n * 60 * NS,
            's' => n * NS,
            _ => panic!("bad offset {s:?}"),
        };
    }
    assert!(num.is_empty(), "offset {s:?} lacks a unit");
    total
}

/// The request parameters of one golden query: the defaults, overridden by a `# params:`
/// directive.
#[derive(Debug, Clone)]
pub struct GoldenParams {
    /// `/query` rather than `/query_range`.
    pub instant: bool,
    /// Offsets from T0, in ns.
    pub start: i64,
    /// Offset from T0, in ns.
    pub end: i64,
    /// Offset from T0, in ns.
    pub time: i64,
    /// `step`.
    pub step: String,
    /// `limit`.
    pub limit: String,
    /// `direction`.
    pub direction: String,
    /// `interval`.
    pub interval: Option<String>,
    /// `X-Loki-Response-Encoding-Flags: categorize-labels`.
    pub categorize: bool,
    /// The directive as written (empty when the defaults apply), echoed in the result.
    pub directive: String,
}

impl Default for GoldenParams {
    fn default() -> Self {
        GoldenParams {
            instant: false,
            start: 0,
            end: 7200 * NS,
            time: 3600 * NS,
            step: "60s".into(),
            limit: "20".into(),
            direction: "forward".into(),
            interval: None,
            categorize: false,
            directive: String::new(),
        }
    }
}

impl GoldenParams {
    /// Applies `key=value` pairs to `self`.
    pub fn with_directive(&self, text: &str) -> GoldenParams {
        let directive = format!("{} {text}", self.directive).trim().to_string();
        let mut p = GoldenParams { directive, ..self.clone() };
        for kv in text.split_whitespace() {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("bad param {kv:?}"));
            let flag = |v: &str| v.parse().unwrap_or_else(|_| panic!("bad param {kv:?}"));
            match k {
                "instant" => p.instant = flag(v),
                "start" => p.start = offset_ns(v),
                "end" => p.end = offset_ns(v),
                "time" => p.time = offset_ns(v),
                "step" => p.step = v.to_string(),
                "limit" => p.limit = v.to_string(),
                "direction" => p.direction = v.to_string(),
                "interval" => p.interval = Some(v.to_string()),
                "categorize" => p.categorize = flag(v),
                _ => panic!("unknown param {k:?} in `# params: {text}`"),
            }
        }
        p
    }

    /// The request of `query` with these parameters, as tenant `tenant-a`.
    pub fn request(&self, query: &str) -> Request {
        let abs = |off: i64| (GOLDEN_T0 * NS + off).to_string();
        let mut params = vec![("query".to_string(), query.to_string())];
        let path = if self.instant {
            params.push(("time".into(), abs(self.time)));
            "/loki/api/v1/query"
        } else {
            params.push(("start".into(), abs(self.start)));
            params.push(("end".into(), abs(self.end)));
            params.push(("step".into(), self.step.clone()));
            "/loki/api/v1/query_range"
        };
        params.push(("limit".into(), self.limit.clone()));
        params.push(("direction".into(), self.direction.clone()));
        if let Some(i) = &self.interval {
            params.push(("interval".into(), i.clone()));
        }
        let mut headers = vec![("X-Scope-OrgID".to_string(), "tenant-a".to_string())];
        if self.categorize {
            headers.push(("X-Loki-Response-Encoding-Flags".into(), "categorize-labels".into()));
        }
        Request { name: query.to_string(), path: path.to_string(), params, headers }
    }
}

/// The queries of one golden file, each with its parameters (the file's `# defaults:`, and
/// the `# params:` line before it).
pub fn golden_file_queries(file: &Path) -> Vec<(String, GoldenParams)> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut out = Vec::new();
    let mut defaults = GoldenParams::default();
    let mut next_params: Option<GoldenParams> = None;
    for q in text.lines() {
        let q = q.trim();
        if let Some(d) = q.strip_prefix("# defaults:") {
            defaults = GoldenParams::default().with_directive(d.trim());
            continue;
        }
        if let Some(d) = q.strip_prefix("# params:") {
            assert!(next_params.is_none(), "{}: two `# params:` lines in a row", file.display());
            next_params = Some(defaults.with_directive(d.trim()));
            continue;
        }
        if q.is_empty() || q.starts_with("--") {
            continue;
        }
        out.push((q.to_string(), next_params.take().unwrap_or_else(|| defaults.clone())));
    }
    assert!(next_params.is_none(), "{}: `# params:` without a query", file.display());
    out
}

/// Every request of every golden file, in file order.
pub fn golden_requests() -> Vec<Request> {
    golden_files().iter().flat_map(|f| golden_file_queries(f)).map(|(q, p)| p.request(&q)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_sets_are_read() {
        let reference = reference_requests();
        assert_eq!(reference.len(), 159);
        assert!(reference.iter().all(|(r, _)| r.path.starts_with('/') && !r.name.is_empty()));
        let golden = golden_requests();
        assert!(golden.len() > 100, "{}", golden.len());
        // a `# params:` line applies to the query after it only
        let p = GoldenParams::default().with_directive("instant=true time=90s limit=5");
        let r = p.request("count_over_time({a=\"b\"}[1m])");
        assert_eq!(r.path, "/loki/api/v1/query");
        assert!(r.params.contains(&("time".into(), (GOLDEN_T0 * NS + 90 * NS).to_string())));
        assert_eq!(
            without_stats(r#"{"data":{"result":[],"stats":{"a":1}},"status":"success"}"#),
            without_stats(r#"{"data":{"result":[]},"status":"success"}"#)
        );
    }
}
