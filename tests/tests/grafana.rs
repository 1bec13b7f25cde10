//! Grafana's Loki datasource and the Logs Drilldown app against a real `skald`.
//!
//! `tests/data/grafana/requests.json` lists the requests Grafana (backend `pkg/tsdb/loki`,
//! frontend `public/app/plugins/datasource/loki`) and Logs Drilldown send to Loki, transcribed
//! from their source (`tests/data/grafana/PROVENANCE.md`). This test pushes recent data (a
//! Loghub OpenSSH sample, JSON access lines, logfmt worker lines with structured metadata),
//! replays every request with its exact path, parameters and headers, and checks the fields
//! Grafana and Drilldown read: Save & test's single sample of value 2, categorize-labels
//! 3-tuples, the log-volume and panel matrices, the label browser, detected fields and labels,
//! index stats and volume, patterns, drilldown-limits, the empty `__stream_shard__` answer that
//! makes Grafana run one normal query, and the live tail over a WebSocket. Every request runs;
//! the failures are listed together at the end.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use skald_integration_tests::{data_dir, get, now_ns, post, temp_dir, Resp, Skald};

const TENANT: &str = "grafana-org";
const GRAFANA_VERSION: &str = "12.2.0";
/// Auth on (the datasource sends `X-Scope-OrgID` as a custom header), structured metadata
/// and volume on, patterns served: what Logs Drilldown needs.
const CONFIG: &str = "auth_enabled: true
limits_config:
  allow_structured_metadata: true
  volume_enabled: true
pattern_ingester:
  enabled: true
";

const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;
const MS: i64 = 1_000_000;

use skald_integration_tests::answer::{
    index_stats, label_keys, matrix, read_tail_frames, set, short, success, tail_entries, vector,
    Check, Tally,
};
use skald_integration_tests::ws;
use skald_integration_tests::{ensure, iso_ms as iso};

// ------------------------------------------------------------------------------ the data

/// One pushed line.
#[derive(Debug, Clone)]
struct Line {
    job: &'static str,
    host: Option<String>,
    ts: i64,
    line: String,
    trace_id: Option<String>,
    /// The level the line states (what `detected_level` must be), if any.
    level: Option<&'static str>,
}

impl Line {
    fn stream(&self) -> Value {
        let mut s = json!({"job": self.job, "env": "grafana"});
        if let Some(h) = &self.host {
            s["host"] = json!(h);
        }
        s
    }
}

struct Dataset {
    lines: Vec<Line>,
}

impl Dataset {
    /// 600 OpenSSH lines (two hosts, every 2 s), 600 JSON access lines and 300 logfmt worker
    /// lines, from 25 to about 5 minutes before `base`.
    fn build(base: i64) -> Dataset {
        let first = base - 25 * MIN;
        let mut lines = Vec::new();
        let ssh =
            std::fs::read_to_string(data_dir().join("loghub").join("OpenSSH_2k.log")).unwrap();
        for (i, l) in ssh.split('\n').take(600).enumerate() {
            lines.push(Line {
                job: "openssh",
                host: Some(format!("node-{}", i % 2 + 1)),
                ts: first + i as i64 * 2 * SEC,
                line: l.strip_suffix('\r').unwrap_or(l).to_string(),
                trace_id: None,
                level: None,
            });
        }
        const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
        const STATUSES: [u32; 6] = [200, 200, 200, 201, 404, 500];
        for i in 0..600usize {
            let status = STATUSES[i % 6];
            let level = match status {
                404 => "warn",
                500 => "error",
                _ => "info",
            };
            let line = json!({
                "level": level,
                "method": METHODS[i % 4],
                "path": format!("/api/v1/items/{}", i % 10),
                "status": status,
                "latency_ms": (i * 37) % 500,
                "upstream": {"host": format!("10.0.0.{}", i % 3), "port": 8080 + i % 3},
            })
            .to_string();
            lines.push(Line {
                job: "web",
                host: None,
                ts: first + i as i64 * 2 * SEC + 500 * MS,
                line,
                trace_id: (i % 50 == 49).then(|| format!("{:032x}", (i as u64 + 1) * 0x9e37_79b9)),
                level: Some(level),
            });
        }
        const LEVELS: [&str; 6] = ["info", "info", "info", "warn", "error", "debug"];
        for i in 0..300usize {
            let level = LEVELS[i % 6];
            let queue = if i % 2 == 0 { "fast" } else { "slow" };
            lines.push(Line {
                job: "worker",
                host: None,
                ts: first + i as i64 * 4 * SEC + 1000 * MS,
                line: format!(
                    "level={level} msg=\"processed job\" job_id=job-{i:05} queue={queue} took={}ms attempt={}",
                    10 + (i * 13) % 990,
                    1 + i % 3
                ),
                trace_id: None,
                level: Some(level),
            });
        }
        Dataset { lines }
    }

    fn job(&self, job: &str) -> Vec<&Line> {
        self.lines.iter().filter(|l| l.job == job).collect()
    }

    /// Pushes everything as Loki JSON (structured metadata as the third element).
    fn push(&self, url: &str) {
        for job in ["openssh", "web", "worker"] {
            for part in self.job(job).chunks(200) {
                let mut streams: BTreeMap<String, (Value, Vec<Value>)> = BTreeMap::new();
                for l in part {
                    let s = l.stream();
                    let v = match &l.trace_id {
                        Some(t) => json!([l.ts.to_string(), l.line, {"trace_id": t}]),
                        None => json!([l.ts.to_string(), l.line]),
                    };
                    streams.entry(s.to_string()).or_insert_with(|| (s, Vec::new())).1.push(v);
                }
                let body: Vec<Value> =
                    streams.into_values().map(|(s, v)| json!({"stream": s, "values": v})).collect();
                push_body(url, &json!({ "streams": body }));
            }
        }
    }
}

fn push_body(url: &str, body: &Value) {
    let r = post(
        &format!("{url}/loki/api/v1/push"),
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", TENANT)],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 204, "push failed: {}", r.body);
}

/// The time range of the replay and the data.
struct Ctx {
    start: i64,
    end: i64,
    mid: i64,
    data: Dataset,
}

// ------------------------------------------------------------------------------ requests.json

fn requests() -> Value {
    let path = data_dir().join("grafana").join("requests.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn substitute(s: &str, ctx: &Ctx) -> String {
    s.replace("${TENANT}", TENANT)
        .replace("${GRAFANA_VERSION}", GRAFANA_VERSION)
        .replace("${START_NS}", &ctx.start.to_string())
        .replace("${END_NS}", &ctx.end.to_string())
        .replace("${MID_NS}", &ctx.mid.to_string())
        .replace("${START_ISO}", &iso(ctx.start))
        .replace("${END_ISO}", &iso(ctx.end))
}

fn params_of(req: &Value, ctx: &Ctx) -> Vec<(String, String)> {
    req["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), substitute(p[1].as_str().unwrap(), ctx)))
        .collect()
}

fn headers_of(req: &Value, ctx: &Ctx) -> Vec<(String, String)> {
    req["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), substitute(v.as_str().unwrap(), ctx)))
        .collect()
}

fn replay(url: &str, req: &Value, ctx: &Ctx) -> Resp {
    let params = params_of(req, ctx);
    let headers = headers_of(req, ctx);
    let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    get(&format!("{url}{}", req["path"].as_str().unwrap()), &p, &h)
}

// ------------------------------------------------------------------------------ answer shapes

/// A 200 answer with a JSON body.
fn json_of(r: &Resp) -> Result<Value, String> {
    ensure!(r.status == 200, "status {}: {}", r.status, short(&r.body));
    ensure!(r.content_type.starts_with("application/json"), "content type {:?}", r.content_type);
    serde_json::from_str(&r.body).map_err(|e| format!("not JSON ({e}): {}", short(&r.body)))
}

/// One entry of a streams answer.
#[derive(Debug)]
struct Got {
    stream: Map<String, Value>,
    ts: i64,
    line: String,
    /// The third element of a categorize-labels 3-tuple.
    meta: Option<Map<String, Value>>,
}

/// The entries of a `streams` answer, checking what Grafana's parser needs: `stream` a map of
/// strings, values `[ns string, line]` or, with categorize-labels, `[ns, line, {structuredMetadata,
/// parsed}]` and `data.encodingFlags: ["categorize-labels"]`; each stream's values newest first
/// (backward).
fn streams(b: &Value, categorized: bool) -> Result<Vec<Got>, String> {
    success(b, "streams")?;
    if categorized {
        let flags = b["data"]["encodingFlags"].as_array().cloned().unwrap_or_default();
        ensure!(
            flags.contains(&json!("categorize-labels")),
            "data.encodingFlags is {} (want [\"categorize-labels\"])",
            b["data"]["encodingFlags"]
        );
    }
    let mut out = Vec::new();
    for s in b["data"]["result"].as_array().unwrap() {
        let stream = s["stream"].as_object().ok_or("a result without a stream object")?.clone();
        ensure!(stream.values().all(Value::is_string), "stream labels not strings: {stream:?}");
        let values = s["values"].as_array().ok_or("a stream without values")?;
        let mut last = i64::MAX;
        for v in values {
            let t = v.as_array().ok_or("a value that is not an array")?;
            let want = if categorized { 3 } else { 2 };
            ensure!(t.len() == want, "a value with {} elements (want {want}): {v}", t.len());
            let ts: i64 = t[0]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("timestamp is not a ns string: {}", t[0]))?;
            ensure!(ts <= last, "values not newest first in {stream:?}");
            last = ts;
            let line = t[1].as_str().ok_or("line is not a string")?.to_string();
            let meta = if categorized {
                let m = t[2].as_object().ok_or("third element is not an object")?.clone();
                for (k, v) in &m {
                    ensure!(
                        k == "structuredMetadata" || k == "parsed",
                        "unexpected key {k} in the third element"
                    );
                    let o = v.as_object().ok_or("structuredMetadata/parsed is not an object")?;
                    ensure!(o.values().all(Value::is_string), "metadata values not strings: {v}");
                }
                Some(m)
            } else {
                None
            };
            out.push(Got { stream: stream.clone(), ts, line, meta });
        }
    }
    Ok(out)
}

fn meta_field<'a>(g: &'a Got, kind: &str, key: &str) -> Option<&'a str> {
    g.meta.as_ref()?.get(kind)?.get(key)?.as_str()
}

fn string_set(v: &Value) -> Result<BTreeSet<String>, String> {
    let a = v.as_array().ok_or_else(|| format!("not an array: {v}"))?;
    a.iter()
        .map(|x| x.as_str().map(str::to_string).ok_or_else(|| format!("not a string: {x}")))
        .collect()
}

/// `(ts, line)` newest first.
fn newest_first(lines: &[&Line]) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = lines.iter().map(|l| (l.ts, l.line.clone())).collect();
    v.sort_by(|a, b| b.cmp(a));
    v
}

fn got_newest_first(got: &[Got]) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = got.iter().map(|g| (g.ts, g.line.clone())).collect();
    v.sort_by(|a, b| b.cmp(a));
    v
}

fn same_entries(got: &[Got], want: &[&Line]) -> Check {
    let (g, w) = (got_newest_first(got), newest_first(want));
    if g != w {
        let missing = w.iter().filter(|e| !g.contains(e)).count();
        let extra = g.iter().filter(|e| !w.contains(e)).count();
        return Err(format!(
            "{} entries, want {} ({missing} missing, {extra} unexpected)",
            g.len(),
            w.len()
        ));
    }
    Ok(())
}

/// Per-level counts of lines.
fn by_level(lines: &[&Line]) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for l in lines {
        *m.entry(l.level.unwrap_or("unknown").to_string()).or_insert(0.0) += 1.0;
    }
    m
}

/// The fields answer of `detected_fields` as Grafana's query builder and Drilldown read it.
fn check_detected_fields(b: &Value, limit: Option<u64>) -> Check {
    let fields = b["fields"]
        .as_array()
        .ok_or_else(|| format!("no fields array: {}", short(&b.to_string())))?;
    if let Some(l) = limit {
        ensure!(b["limit"] == json!(l), "limit {} (want {l})", b["limit"]);
    }
    let mut by = BTreeMap::new();
    for f in fields {
        let label = f["label"].as_str().ok_or_else(|| format!("field without label: {f}"))?;
        ensure!(f["type"].is_string(), "{label}: type {}", f["type"]);
        ensure!(f["cardinality"].as_u64().is_some(), "{label}: cardinality {}", f["cardinality"]);
        ensure!(
            f["parsers"].is_null() || f["parsers"].is_array(),
            "{label}: parsers {}",
            f["parsers"]
        );
        by.insert(label.to_string(), f.clone());
    }
    let json_field = |label: &str, typ: &str, card: Option<u64>, path: &[&str]| -> Check {
        let f = by.get(label).ok_or_else(|| format!("no field {label} in {:?}", by.keys()))?;
        ensure!(f["type"] == typ, "{label}: type {} (want {typ})", f["type"]);
        ensure!(
            f["parsers"] == json!(["json"]),
            "{label}: parsers {} (want [\"json\"])",
            f["parsers"]
        );
        ensure!(
            f["jsonPath"] == json!(path),
            "{label}: jsonPath {} (want {path:?})",
            f["jsonPath"]
        );
        if let Some(c) = card {
            ensure!(
                f["cardinality"] == json!(c),
                "{label}: cardinality {} (want {c})",
                f["cardinality"]
            );
        }
        Ok(())
    };
    json_field("method", "string", Some(4), &["method"])?;
    json_field("status", "int", Some(4), &["status"])?;
    json_field("path", "string", Some(10), &["path"])?;
    json_field("level", "string", Some(3), &["level"])?;
    json_field("latency_ms", "int", None, &["latency_ms"])?;
    json_field("upstream_host", "string", Some(3), &["upstream", "host"])?;
    json_field("upstream_port", "int", Some(3), &["upstream", "port"])?;
    for sm in ["detected_level", "trace_id"] {
        let f = by.get(sm).ok_or_else(|| format!("no structured-metadata field {sm}"))?;
        ensure!(
            f["parsers"].is_null(),
            "{sm}: parsers {} (want null: structured metadata)",
            f["parsers"]
        );
        ensure!(f["type"] == "string", "{sm}: type {}", f["type"]);
    }
    ensure!(
        by["detected_level"]["cardinality"] == json!(3),
        "detected_level cardinality {}",
        by["detected_level"]["cardinality"]
    );
    Ok(())
}

/// `index/stats` for `lines` in `streams` streams (the rules: `answer::index_stats`).
fn check_index_stats(b: &Value, lines: &[&Line], streams: u64) -> Check {
    let (s, c, e) = (b["streams"].as_u64(), b["chunks"].as_u64(), b["entries"].as_u64());
    let (Some(s), Some(c), Some(e)) = (s, c, e) else {
        return Err(format!("stats {b}"));
    };
    let ts: Vec<i64> = lines.iter().map(|l| l.ts).collect();
    index_stats(&format!("stats {b}"), (s, c, e), &ts, streams)
}

fn detected_labels(b: &Value) -> Result<BTreeMap<String, u64>, String> {
    let a = b["detectedLabels"]
        .as_array()
        .ok_or_else(|| format!("no detectedLabels array: {}", short(&b.to_string())))?;
    let mut m = BTreeMap::new();
    for l in a {
        let name = l["label"].as_str().ok_or_else(|| format!("label without name: {l}"))?;
        let c = l["cardinality"]
            .as_u64()
            .ok_or_else(|| format!("{name}: cardinality {}", l["cardinality"]))?;
        ensure!(c >= 1, "{name}: cardinality 0");
        m.insert(name.to_string(), c);
    }
    Ok(m)
}

// ------------------------------------------------------------------------------ the checks

fn check(name: &str, r: &Resp, ctx: &Ctx) -> Check {
    let d = &ctx.data;
    match name {
        "save_and_test" => {
            let b = json_of(r)?;
            let v = vector(&b)?;
            ensure!(v.len() == 1, "{} samples (Grafana wants one frame with one row)", v.len());
            ensure!(v[0].0.is_empty(), "metric {:?} (want {{}})", v[0].0);
            ensure!(v[0].2 == 2.0, "value {} (Grafana wants 2)", v[0].2);
            ensure!(
                b["data"]["result"][0]["value"][1] == "2",
                "value {}",
                b["data"]["result"][0]["value"]
            );
            // Loki reads an integer of at most 10 digits as seconds: time=4000000000 is 4e9 s
            ensure!(
                v[0].1 == 4_000_000_000.0,
                "sample time {} (want 4000000000: Loki reads time=4000000000 as seconds)",
                v[0].1
            );
            Ok(())
        }
        "explore_log_query" => {
            let got = streams(&json_of(r)?, true)?;
            let want: Vec<&Line> = d
                .job("openssh")
                .into_iter()
                .filter(|l| l.line.contains("Failed password"))
                .collect();
            same_entries(&got, &want)?;
            for g in &got {
                let keys = label_keys(&g.stream);
                ensure!(
                    keys == set(&["env", "host", "job", "service_name"]),
                    "stream labels {keys:?} (categorize-labels keeps only indexed labels)"
                );
                ensure!(
                    g.stream["service_name"] == "openssh",
                    "service_name {}",
                    g.stream["service_name"]
                );
                ensure!(
                    meta_field(g, "structuredMetadata", "detected_level").is_some(),
                    "no structuredMetadata.detected_level: {:?}",
                    g.meta
                );
                ensure!(
                    g.meta
                        .as_ref()
                        .and_then(|m| m.get("parsed"))
                        .is_none_or(|p| p.as_object().is_some_and(Map::is_empty)),
                    "parsed labels without a parser: {:?}",
                    g.meta
                );
            }
            Ok(())
        }
        "explore_infinite_scroll" => {
            let got = streams(&json_of(r)?, true)?;
            let want: Vec<&Line> = d
                .job("openssh")
                .into_iter()
                .filter(|l| l.ts >= ctx.start && l.ts < ctx.mid)
                .collect();
            same_entries(&got, &want)
        }
        "logs_volume" => {
            let m = matrix(&json_of(r)?)?;
            let mut sums: BTreeMap<String, f64> = BTreeMap::new();
            for (metric, points) in &m {
                let keys = label_keys(metric);
                ensure!(keys == set(&["detected_level"]), "series labels {keys:?} (want detected_level only: level is no label without a parser)");
                for (t, _) in points {
                    let ms = (t * 1000.0).round() as i64;
                    // Loki evaluates at multiples of the step counted from the epoch: start
                    // moves down and end up to such a multiple
                    ensure!(ms % 2000 == 0, "point at {t} is not on the epoch's 2000ms step grid");
                    ensure!(
                        ms * MS > ctx.start - 2000 * MS && ms * MS < ctx.end + 2000 * MS,
                        "point at {t} outside the range"
                    );
                }
                let level = metric["detected_level"].as_str().unwrap_or_default().to_string();
                *sums.entry(level).or_insert(0.0) += points.iter().map(|p| p.1).sum::<f64>();
            }
            let want = by_level(&d.job("web"));
            ensure!(sums == want, "count per detected_level {sums:?} (want {want:?}: every line counted once with [2s] windows at step 2s)");
            Ok(())
        }
        "logs_sample" => {
            let got = streams(&json_of(r)?, true)?;
            let web = d.job("web");
            let mut want = newest_first(&web);
            want.truncate(100);
            ensure!(
                got_newest_first(&got) == want,
                "{} entries; want the 100 newest web lines",
                got.len()
            );
            for g in &got {
                ensure!(
                    label_keys(&g.stream) == set(&["env", "job", "service_name"]),
                    "stream labels {:?}",
                    g.stream
                );
                let line: Value = serde_json::from_str(&g.line)
                    .map_err(|e| format!("line is not the pushed JSON ({e}): {}", g.line))?;
                for key in ["method", "path", "status", "level", "upstream_host", "upstream_port"] {
                    ensure!(
                        meta_field(g, "parsed", key).is_some(),
                        "no parsed.{key}: {:?}",
                        g.meta
                    );
                }
                ensure!(
                    meta_field(g, "parsed", "status") == Some(&line["status"].to_string()),
                    "parsed.status {:?} for {}",
                    meta_field(g, "parsed", "status"),
                    g.line
                );
                let pushed =
                    web.iter().find(|l| l.ts == g.ts).ok_or("an entry that was not pushed")?;
                ensure!(
                    meta_field(g, "structuredMetadata", "trace_id") == pushed.trace_id.as_deref(),
                    "structuredMetadata.trace_id {:?} (want {:?})",
                    meta_field(g, "structuredMetadata", "trace_id"),
                    pushed.trace_id
                );
                ensure!(
                    meta_field(g, "structuredMetadata", "detected_level") == pushed.level,
                    "detected_level {:?} (want {:?})",
                    meta_field(g, "structuredMetadata", "detected_level"),
                    pushed.level
                );
            }
            Ok(())
        }
        "data_sample" => {
            let got = streams(&json_of(r)?, true)?;
            let worker = d.job("worker");
            let mut want = newest_first(&worker);
            want.truncate(10);
            ensure!(
                got_newest_first(&got) == want,
                "{} entries; want the 10 newest worker lines",
                got.len()
            );
            for g in &got {
                let pushed =
                    worker.iter().find(|l| l.ts == g.ts).ok_or("an entry that was not pushed")?;
                ensure!(
                    meta_field(g, "structuredMetadata", "detected_level") == pushed.level,
                    "detected_level {:?} (want {:?})",
                    meta_field(g, "structuredMetadata", "detected_level"),
                    pushed.level
                );
            }
            Ok(())
        }
        "dashboard_metric_range" => {
            let m = matrix(&json_of(r)?)?;
            let mut sums: BTreeMap<String, f64> = BTreeMap::new();
            for (metric, points) in &m {
                ensure!(label_keys(metric) == set(&["detected_level"]), "series labels {metric:?}");
                let level = metric["detected_level"].as_str().unwrap_or_default().to_string();
                *sums.entry(level).or_insert(0.0) += points.iter().map(|p| p.1).sum::<f64>();
            }
            // each line lies in exactly 30 of the [1m] windows evaluated every 2 s
            let want: BTreeMap<String, f64> =
                by_level(&d.job("worker")).into_iter().map(|(k, v)| (k, v * 30.0)).collect();
            ensure!(sums == want, "sum per detected_level {sums:?} (want {want:?})");
            Ok(())
        }
        "dashboard_instant_range_var" => {
            let v = vector(&json_of(r)?)?;
            ensure!(v.len() == 1 && v[0].0.is_empty(), "samples {v:?}");
            ensure!(
                v[0].2 == d.job("web").len() as f64,
                "value {} (want {})",
                v[0].2,
                d.job("web").len()
            );
            ensure!(
                (v[0].1 - ctx.end as f64 / 1e9).abs() < 0.001,
                "sample time {} (want the query time)",
                v[0].1
            );
            Ok(())
        }
        "alert_rule_instant" => {
            let v = vector(&json_of(r)?)?;
            let errors = d.job("worker").iter().filter(|l| l.level == Some("error")).count();
            ensure!(
                v.len() == 1 && v[0].2 == errors as f64,
                "samples {v:?} (want one of value {errors})"
            );
            Ok(())
        }
        "labels_all" | "drilldown_labels" => {
            let b = json_of(r)?;
            ensure!(b["status"] == "success", "status {}", b["status"]);
            let got = string_set(&b["data"])?;
            ensure!(got == set(&["env", "host", "job", "service_name"]), "labels {got:?}");
            Ok(())
        }
        "labels_for_selector" => {
            let got = string_set(&json_of(r)?["data"])?;
            ensure!(got == set(&["env", "job", "service_name"]), "labels {got:?}");
            Ok(())
        }
        "series_for_selector" => {
            let b = json_of(r)?;
            let mut got: Vec<String> = b["data"]
                .as_array()
                .ok_or("data is not an array")?
                .iter()
                .map(Value::to_string)
                .collect();
            got.sort();
            let want: Vec<String> = (1..=2)
                .map(|n| json!({"env": "grafana", "host": format!("node-{n}"), "job": "openssh", "service_name": "openssh"}).to_string())
                .collect();
            ensure!(got == want, "series {got:?}");
            Ok(())
        }
        "adhoc_filter_keys" => {
            let b = json_of(r)?;
            ensure!(
                b["data"] == json!([{"env": "grafana", "job": "web", "service_name": "web"}]),
                "series {}",
                b["data"]
            );
            Ok(())
        }
        "label_values" | "adhoc_filter_values" => {
            let b = json_of(r)?;
            ensure!(b["data"] == json!(["openssh", "web", "worker"]), "values {}", b["data"]);
            Ok(())
        }
        "label_values_for_selector" => {
            let b = json_of(r)?;
            ensure!(b["data"] == json!(["node-1", "node-2"]), "values {}", b["data"]);
            Ok(())
        }
        "query_builder_detected_fields" => check_detected_fields(&json_of(r)?, Some(1000)),
        "drilldown_detected_fields" => check_detected_fields(&json_of(r)?, None),
        "detected_field_values" | "drilldown_detected_field_values" => {
            let b = json_of(r)?;
            let want = if name == "detected_field_values" {
                set(&["GET", "POST", "PUT", "DELETE"])
            } else {
                set(&["200", "201", "404", "500"])
            };
            ensure!(string_set(&b["values"])? == want, "values {}", b["values"]);
            ensure!(b["limit"] == 1000, "limit {}", b["limit"]);
            Ok(())
        }
        "query_size_hint" => {
            let b = json_of(r)?;
            let keys = label_keys(b.as_object().ok_or("not an object")?);
            ensure!(keys == set(&["bytes", "chunks", "entries", "streams"]), "keys {keys:?}");
            ensure!(b["bytes"].as_u64().is_some_and(|c| c > 0), "bytes {}", b["bytes"]);
            check_index_stats(&b, &d.job("openssh"), 2)
        }
        "shard_values" => {
            let b = json_of(r)?;
            ensure!(b["status"] == "success", "status {}", b["status"]);
            ensure!(
                b.get("data").is_none() || b["data"] == json!([]) || b["data"].is_null(),
                "data {} (no shard values make Grafana run one normal query)",
                b["data"]
            );
            Ok(())
        }
        "shard_empty_value_matcher" => same_entries(&streams(&json_of(r)?, true)?, &d.job("web")),
        "drilldown_limits" => {
            let b = json_of(r)?;
            let limits = b["limits"]
                .as_object()
                .ok_or_else(|| format!("no limits object: {}", short(&r.body)))?;
            ensure!(
                b["pattern_ingester_enabled"] == true,
                "pattern_ingester_enabled {}",
                b["pattern_ingester_enabled"]
            );
            ensure!(
                b["version"].as_str().is_some_and(|v| !v.is_empty()),
                "version {}",
                b["version"]
            );
            for k in ["discover_log_levels", "max_line_size_truncate", "volume_enabled"] {
                ensure!(
                    limits.get(k).is_some_and(Value::is_boolean),
                    "limits.{k} {:?}",
                    limits.get(k)
                );
            }
            ensure!(
                limits["volume_enabled"] == true,
                "volume_enabled {}",
                limits["volume_enabled"]
            );
            for k in ["max_entries_limit_per_query", "max_query_series", "volume_max_series"] {
                ensure!(
                    limits.get(k).is_some_and(Value::is_number),
                    "limits.{k} {:?}",
                    limits.get(k)
                );
            }
            for k in [
                "max_query_length",
                "max_query_lookback",
                "max_query_range",
                "query_timeout",
                "retention_period",
            ] {
                ensure!(
                    limits.get(k).is_some_and(Value::is_string),
                    "limits.{k} {:?} (a duration string)",
                    limits.get(k)
                );
            }
            for k in ["discover_service_name", "log_level_fields"] {
                ensure!(
                    limits.get(k).is_some_and(Value::is_array),
                    "limits.{k} {:?}",
                    limits.get(k)
                );
            }
            Ok(())
        }
        "drilldown_service_volume" => {
            let v = vector(&json_of(r)?)?;
            let mut services = BTreeSet::new();
            for (metric, _, value) in &v {
                ensure!(
                    label_keys(metric) == set(&["service_name"]),
                    "metric {metric:?} (Drilldown reads metric.service_name)"
                );
                ensure!(*value > 0.0, "volume {value} for {metric:?}");
                services.insert(metric["service_name"].as_str().unwrap_or_default().to_string());
            }
            ensure!(services == set(&["openssh", "web", "worker"]), "services {services:?}");
            Ok(())
        }
        "drilldown_detected_labels_all" => {
            let m = detected_labels(&json_of(r)?)?;
            ensure!(m.get("host") == Some(&2), "host cardinality {:?} in {m:?}", m.get("host"));
            ensure!(
                m.get("service_name") == Some(&3),
                "service_name cardinality {:?} in {m:?}",
                m.get("service_name")
            );
            ensure!(!m.keys().any(|k| k.starts_with("__")), "internal labels in {m:?}");
            Ok(())
        }
        "drilldown_detected_labels_service" => {
            let m = detected_labels(&json_of(r)?)?;
            ensure!(m.get("host") == Some(&2), "host cardinality {:?} in {m:?}", m.get("host"));
            ensure!(m.get("job").is_none_or(|c| *c == 1), "job cardinality {:?}", m.get("job"));
            Ok(())
        }
        "drilldown_patterns" => {
            let b = json_of(r)?;
            ensure!(b["status"] == "success", "status {}", b["status"]);
            let data = b["data"].as_array().ok_or("data is not an array")?;
            ensure!(!data.is_empty(), "no patterns for 600 recent OpenSSH lines");
            let mut total = 0;
            for p in data {
                let pattern =
                    p["pattern"].as_str().ok_or_else(|| format!("pattern {}", p["pattern"]))?;
                ensure!(pattern.contains("<_>"), "pattern without a placeholder: {pattern}");
                ensure!(p.get("level").is_none_or(Value::is_string), "level {}", p["level"]);
                let samples = p["samples"].as_array().ok_or("samples is not an array")?;
                ensure!(!samples.is_empty(), "a pattern without samples");
                for s in samples {
                    let t = s[0]
                        .as_i64()
                        .ok_or_else(|| format!("sample time {s} is not integer seconds"))?;
                    let c = s[1]
                        .as_i64()
                        .ok_or_else(|| format!("sample count {s} is not an integer"))?;
                    ensure!(
                        t * SEC >= ctx.start - MIN && t * SEC <= ctx.end + MIN,
                        "sample time {t} outside the range"
                    );
                    ensure!(c >= 0, "negative count {c}");
                    total += c;
                }
            }
            ensure!(
                total > 0 && total <= 600,
                "{total} lines counted over the patterns (600 pushed)"
            );
            Ok(())
        }
        other => Err(format!("no check written for request {other}")),
    }
}

// ------------------------------------------------------------------------------ live tail

fn check_live_tail(url: &str, req: &Value, ctx: &Ctx) -> Check {
    let params = params_of(req, ctx);
    let headers = headers_of(req, ctx);
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    let headers: Vec<(&str, &str)> =
        headers.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    let mut ws = match ws::open(url, req["path"].as_str().unwrap(), &params, &headers) {
        Ok(w) => w,
        Err(ws::OpenError::Refused(status)) => {
            return Err(format!("upgrade refused with {status}"))
        }
        Err(ws::OpenError::Failed(e)) => return Err(format!("tail connection failed: {e}")),
    };
    // history: Loki's defaults (start now-1h, limit 100) for the web stream
    let web = ctx.data.job("web");
    let want_history = web.len().min(100);
    let frames = read_tail_frames(&mut ws, Instant::now() + Duration::from_secs(10), |f| {
        tail_entries(f).map(|e| e.len() >= want_history).unwrap_or(true)
    })?;
    let history = tail_entries(&frames)?;
    ensure!(
        history.len() == want_history,
        "{} history entries (want Loki's default limit, {want_history})",
        history.len()
    );
    let mut want: Vec<i64> = web.iter().map(|l| l.ts).collect();
    want.sort_unstable();
    let want_ts = want[want.len() - want_history..].to_vec();
    let mut got_ts: Vec<i64> = history.iter().map(|e| e.1).collect();
    got_ts.sort_unstable();
    ensure!(got_ts == want_ts, "history is not the newest {want_history} web lines");
    ensure!(
        history.iter().all(|e| e.0.get("job") == Some(&json!("web"))),
        "history from another stream"
    );

    // live: lines pushed now arrive, in order
    let base = now_ns();
    let live: Vec<(i64, String)> = (0..3)
        .map(|i| (base + i, format!("{{\"level\":\"info\",\"msg\":\"live {i}\"}}")))
        .collect();
    let values: Vec<Value> = live.iter().map(|(ts, l)| json!([ts.to_string(), l])).collect();
    push_body(
        url,
        &json!({"streams": [{"stream": {"job": "web", "env": "grafana"}, "values": values}]}),
    );
    let pushed = Instant::now();
    let frames = read_tail_frames(&mut ws, pushed + Duration::from_secs(5), |f| {
        tail_entries(f).map(|e| e.len() >= live.len()).unwrap_or(true)
    })?;
    let got: Vec<(i64, String)> = tail_entries(&frames)?.into_iter().map(|e| (e.1, e.2)).collect();
    ensure!(got == live, "live entries {got:?} (want {live:?})");
    println!("live tail: {} lines arrived {:?} after the push", live.len(), pushed.elapsed());
    let _ = ws.close(None);
    Ok(())
}

// ------------------------------------------------------------------------------ the tests

#[test]
fn requests_file_names_its_sources_and_every_request_has_a_check() {
    let doc = requests();
    let reqs = doc["requests"].as_array().unwrap();
    let mut names = BTreeSet::new();
    for r in reqs {
        let name = r["name"].as_str().unwrap();
        assert!(names.insert(name.to_string()), "duplicate request name {name}");
        assert_eq!(r["method"], "GET", "{name}: Grafana and Drilldown read with GET");
        assert!(r["path"].as_str().unwrap().starts_with("/loki/api/v1/"), "{name}: path");
        assert!(r["params"].is_array() && r["headers"].is_object(), "{name}: params/headers");
        assert!(!r["reads"].as_array().unwrap().is_empty(), "{name}: what the client reads");
        let sources = r["source"].as_array().unwrap();
        assert!(!sources.is_empty(), "{name}: no source");
        for s in sources {
            assert!(s["repo"].is_string() && s["path"].is_string(), "{name}: source {s}");
            assert!(
                s["commit"].is_string() || s["stored_version_id"].is_string(),
                "{name}: source without a version: {s}"
            );
        }
        let headers = r["headers"].as_object().unwrap();
        assert!(headers.contains_key("X-Scope-OrgID"), "{name}: the datasource's tenant header");
        if r["path"] == "/loki/api/v1/query_range" || r["path"] == "/loki/api/v1/query" {
            assert_eq!(headers["X-Loki-Response-Encoding-Flags"], "categorize-labels", "{name}");
        }
    }
    // the checker knows every name (a dummy answer reaches the per-name arm, not the fallback)
    let ctx = Ctx { start: 0, end: 0, mid: 0, data: Dataset { lines: Vec::new() } };
    let dummy = Resp { status: 599, content_type: String::new(), body: String::new() };
    for name in &names {
        if name == "live_tail" {
            continue;
        }
        let e = check(name, &dummy, &ctx).unwrap_err();
        assert!(!e.starts_with("no check written"), "{e}");
    }
    assert_eq!(iso(1_793_491_200_000_000_000), "2026-11-01T00:00:00.000Z");
    assert_eq!(iso(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123Z");
    assert_eq!(iso(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
}

#[test]
fn grafana_and_drilldown_requests_get_the_answers_they_read() {
    let dir = temp_dir("grafana");
    let skald = Skald::start(&dir, CONFIG);
    let base = now_ns() / MS * MS;
    let data = Dataset::build(base);
    data.push(&skald.url);
    let r = post(&format!("{}/flush", skald.url), &[], b"");
    assert_eq!(r.status, 204, "flush: {}", r.body);
    let end = (now_ns() / MS + 1) * MS;
    let start = end - 30 * MIN;
    let ctx = Ctx { start, end, mid: start + 15 * MIN, data };

    let doc = requests();
    let mut tally = Tally::default();
    let mut websockets = Vec::new();
    for req in doc["requests"].as_array().unwrap() {
        let name = req["name"].as_str().unwrap();
        if req["websocket"] == true {
            websockets.push(req);
            continue;
        }
        let resp = replay(&skald.url, req, &ctx);
        if let Ok(dump) = std::env::var("SKALD_GRAFANA_DUMP") {
            std::fs::create_dir_all(&dump).unwrap();
            let body = serde_json::from_str::<Value>(&resp.body).unwrap_or(json!(resp.body));
            let out =
                json!({"status": resp.status, "content_type": resp.content_type, "body": body});
            std::fs::write(
                format!("{dump}/{name}.json"),
                serde_json::to_string_pretty(&out).unwrap(),
            )
            .unwrap();
        }
        tally.record(name, check(name, &resp, &ctx));
    }
    // last: the tail pushes new lines
    for req in websockets {
        tally.record(req["name"].as_str().unwrap(), check_live_tail(&skald.url, req, &ctx));
    }
    tally.assert_all("grafana requests", "answered as Grafana/Drilldown read them");
}
