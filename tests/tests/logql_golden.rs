//! LogQL golden tests: every query in `tests/logql/*.logql` against a real `skald` holding
//! the reference dataset, compared with `tests/logql/<name>.result` (see tests/logql/README.md).
//! `SKALD_BLESS=1` rewrites the `.result` files instead of comparing.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;
use skald_integration_tests::{
    get, push_reference_dataset, push_reference_dataset_to, temp_dir, Skald, REFERENCE_CONFIG,
};

const T0: i64 = 1_793_491_200;
const NS: i64 = 1_000_000_000;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("logql")
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

/// The request parameters of one query: the defaults, overridden by a `# params:` directive.
#[derive(Debug, Clone)]
struct QueryParams {
    instant: bool,
    /// Offsets from T0, in ns.
    start: i64,
    end: i64,
    time: i64,
    step: String,
    limit: String,
    direction: String,
    interval: Option<String>,
    categorize: bool,
    /// The directive as written (empty when the defaults apply), echoed in the result.
    directive: String,
}

impl Default for QueryParams {
    fn default() -> Self {
        QueryParams {
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

/// Applies `key=value` pairs to `base`.
fn parse_directive(base: &QueryParams, text: &str) -> QueryParams {
    let directive = format!("{} {text}", base.directive).trim().to_string();
    let mut p = QueryParams { directive, ..base.clone() };
    for kv in text.split_whitespace() {
        let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("bad param {kv:?}"));
        match k {
            "instant" => p.instant = v.parse().unwrap(),
            "start" => p.start = offset_ns(v),
            "end" => p.end = offset_ns(v),
            "time" => p.time = offset_ns(v),
            "step" => p.step = v.to_string(),
            "limit" => p.limit = v.to_string(),
            "direction" => p.direction = v.to_string(),
            "interval" => p.interval = Some(v.to_string()),
            "categorize" => p.categorize = v.parse().unwrap(),
            _ => panic!("unknown param {k:?} in `# params: {text}`"),
        }
    }
    p
}

fn answer(skald: &Skald, query: &str, qp: &QueryParams) -> String {
    let abs = |off: i64| (T0 * NS + off).to_string();
    let (start, end, time) = (abs(qp.start), abs(qp.end), abs(qp.time));
    let mut params: Vec<(&str, &str)> = vec![("query", query)];
    let path = if qp.instant {
        params.push(("time", time.as_str()));
        "query"
    } else {
        params.extend([("start", start.as_str()), ("end", end.as_str())]);
        params.push(("step", qp.step.as_str()));
        "query_range"
    };
    params.push(("limit", qp.limit.as_str()));
    params.push(("direction", qp.direction.as_str()));
    if let Some(i) = &qp.interval {
        params.push(("interval", i.as_str()));
    }
    let mut headers = vec![("X-Scope-OrgID", "tenant-a")];
    if qp.categorize {
        headers.push(("X-Loki-Response-Encoding-Flags", "categorize-labels"));
    }
    let r = get(&format!("{}/loki/api/v1/{path}", skald.url), &params, &headers);
    if r.status != 200 {
        return format!("status {}\n{}\n", r.status, r.body.trim_end());
    }
    let body: Value = serde_json::from_str(&r.body).unwrap();
    let data = &body["data"];
    let mut shown = serde_json::json!({"resultType": data["resultType"], "result": data["result"]});
    if qp.categorize {
        shown["encodingFlags"] = data["encodingFlags"].clone();
    }
    format!("status 200\n{}\n", serde_json::to_string_pretty(&shown).unwrap())
}

/// The golden queries over data flushed to the store.
#[test]
fn golden_queries() {
    let dir = temp_dir("golden");
    let skald = Skald::start(&dir, REFERENCE_CONFIG);
    push_reference_dataset(&skald, "tenant-a");
    run_golden(&skald, std::env::var_os("SKALD_BLESS").is_some());
}

/// The same queries, with the same answers, over data still held by the ingester: the querier
/// asks it whatever the age, and it runs each query's pipeline (and limit) itself.
#[test]
fn golden_queries_from_the_ingester() {
    let dir = temp_dir("golden-ingester");
    let config = format!("{REFERENCE_CONFIG}querier:\n  query_ingesters_within: 0s\n");
    let skald = Skald::start(&dir, &config);
    push_reference_dataset_to(&skald.url, &[], "tenant-a");
    run_golden(&skald, false);
}

fn run_golden(skald: &Skald, bless: bool) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "logql"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    let mut total = 0;
    for file in &files {
        let mut out = String::new();
        let mut defaults = QueryParams::default();
        let mut next_params: Option<QueryParams> = None;
        for q in std::fs::read_to_string(file).unwrap().lines() {
            let q = q.trim();
            if let Some(d) = q.strip_prefix("# defaults:") {
                defaults = parse_directive(&QueryParams::default(), d.trim());
                continue;
            }
            if let Some(d) = q.strip_prefix("# params:") {
                assert!(
                    next_params.is_none(),
                    "{}: two `# params:` lines in a row",
                    file.display()
                );
                next_params = Some(parse_directive(&defaults, d.trim()));
                continue;
            }
            if q.is_empty() || q.starts_with("--") {
                continue;
            }
            total += 1;
            let qp = next_params.take().unwrap_or_else(|| defaults.clone());
            let shown_params = if qp.directive.is_empty() {
                String::new()
            } else {
                format!("# params: {}\n", qp.directive)
            };
            writeln!(out, "== {q}\n{shown_params}{}", answer(skald, q, &qp)).unwrap();
        }
        assert!(next_params.is_none(), "{}: `# params:` without a query", file.display());
        let result = file.with_extension("result");
        if bless {
            std::fs::write(&result, &out).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&result).unwrap_or_default();
        if expected != out {
            let first = expected
                .split("\n== ")
                .zip(out.split("\n== "))
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("expected:\n{a}\ngot:\n{b}"))
                .unwrap_or_else(|| "different number of queries".to_string());
            failures.push(format!("{}: {first}", file.display()));
        }
    }
    println!("golden: {total} queries in {} files", files.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
