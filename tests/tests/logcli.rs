//! logcli against a real `skald`.
//!
//! `tests/data/logcli/requests.json` lists the requests logcli (grafana/loki `cmd/logcli`,
//! `pkg/logcli`) sends for `query` (with its batching), `instant-query`, `labels`, `series`,
//! `query --tail`, `stats`, `volume`, `volume_range` and `detected-fields`, transcribed from its
//! source (`tests/data/logcli/PROVENANCE.md`). The replay test sends each with its exact
//! parameters and headers (`User-Agent: loki-logcli/<version>`, `X-Scope-OrgID`, upper-case
//! `direction`, `match` instead of `match[]`, float-second `step`) and checks what logcli
//! decodes. When a real logcli is on PATH, the second test runs it against Skald and checks
//! what it prints; without one it says so and passes.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use skald_integration_tests::{
    data_dir, get, grafana_tool_on_path, not_run, now_ns, post, temp_dir, Resp, Skald,
};

const TENANT: &str = "logcli-tenant";
const LOGCLI_VERSION: &str = "3.7.6";
const CONFIG: &str = "auth_enabled: true
limits_config:
  allow_structured_metadata: true
  volume_enabled: true
";

const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;
const MS: i64 = 1_000_000;

// ------------------------------------------------------------------------------ the data

#[derive(Debug, Clone)]
struct Line {
    job: &'static str,
    host: Option<String>,
    ts: i64,
    line: String,
    level: &'static str,
}

/// 300 OpenSSH lines (two hosts), 300 JSON lines and 300 logfmt lines, one per stream every
/// 4 s, over the 20 minutes from `first`.
fn dataset(first: i64) -> Vec<Line> {
    let ssh = std::fs::read_to_string(data_dir().join("loghub").join("OpenSSH_2k.log")).unwrap();
    let mut lines: Vec<Line> = ssh
        .split('\n')
        .take(300)
        .enumerate()
        .map(|(i, l)| Line {
            job: "openssh",
            host: Some(format!("node-{}", i % 2 + 1)),
            ts: first + i as i64 * 4 * SEC,
            line: l.strip_suffix('\r').unwrap_or(l).to_string(),
            level: "unknown",
        })
        .collect();
    const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
    const STATUSES: [u32; 6] = [200, 200, 200, 201, 404, 500];
    for i in 0..300usize {
        let status = STATUSES[i % 6];
        let level = match status {
            404 => "warn",
            500 => "error",
            _ => "info",
        };
        let line = json!({"level": level, "method": METHODS[i % 4], "status": status,
                          "path": format!("/api/v1/items/{}", i % 10)})
        .to_string();
        lines.push(Line {
            job: "web",
            host: None,
            ts: first + i as i64 * 4 * SEC + SEC,
            line,
            level,
        });
    }
    const LEVELS: [&str; 6] = ["info", "info", "info", "warn", "error", "debug"];
    for i in 0..300usize {
        let level = LEVELS[i % 6];
        lines.push(Line {
            job: "worker",
            host: None,
            ts: first + i as i64 * 4 * SEC + 2 * SEC,
            line: format!(
                "level={level} msg=\"processed job\" job_id=job-{i:05} took={}ms",
                10 + i % 90
            ),
            level,
        });
    }
    lines
}

fn job<'a>(lines: &'a [Line], job: &str) -> Vec<&'a Line> {
    lines.iter().filter(|l| l.job == job).collect()
}

fn push(url: &str, lines: &[&Line]) {
    let mut streams: BTreeMap<String, (Value, Vec<Value>)> = BTreeMap::new();
    for l in lines {
        let mut s = json!({"job": l.job, "env": "logcli"});
        if let Some(h) = &l.host {
            s["host"] = json!(h);
        }
        let e = streams.entry(s.to_string()).or_insert_with(|| (s, Vec::new()));
        e.1.push(json!([l.ts.to_string(), l.line]));
    }
    let streams: Vec<Value> =
        streams.into_values().map(|(s, v)| json!({"stream": s, "values": v})).collect();
    let r = post(
        &format!("{url}/loki/api/v1/push"),
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", TENANT)],
        json!({ "streams": streams }).to_string().as_bytes(),
    );
    assert_eq!(r.status, 204, "push failed: {}", r.body);
}

/// Starts Skald with the dataset pushed and flushed; returns it, the lines and `(start, end)`
/// as logcli computes them for `--since 1h`.
fn start_with_data(tag: &str) -> (Skald, Vec<Line>, i64, i64) {
    let dir = temp_dir(tag);
    let skald = Skald::start(&dir, CONFIG);
    let lines = dataset(data_start(now_ns() / MS * MS));
    for j in ["openssh", "web", "worker"] {
        push(&skald.url, &job(&lines, j));
    }
    let r = post(&format!("{}/flush", skald.url), &[], b"");
    assert_eq!(r.status, 204, "flush: {}", r.body);
    let end = (now_ns() / MS + 1) * MS;
    (skald, lines, end - 60 * MIN, end)
}

/// Where the dataset starts: inside logcli's default `--since 1h` (1 to 58 minutes before
/// `now`), about 40 minutes before `now` unless that would put a whole hour inside the data.
/// `volume_range --step 1h` cuts at whole hours and Loki pro-rates a chunk across a cut
/// into each step with truncation (unit tests in the querier's `volume.rs` cover that), so the
/// steps add up to the instant volume only when no chunk crosses an hour.
fn data_start(now: i64) -> i64 {
    const SPAN: i64 = 20 * MIN;
    let first = now - 40 * MIN;
    let hour = 60 * MIN;
    let cut = (first.div_euclid(hour) + 1) * hour;
    if cut > first + SPAN {
        first
    } else if cut + 30 * SEC + SPAN <= now - MIN {
        cut + 30 * SEC
    } else {
        cut - 30 * SEC - SPAN
    }
}

// ------------------------------------------------------------------------------ requests.json

fn requests() -> Value {
    let path = data_dir().join("logcli").join("requests.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

struct Ctx {
    start: i64,
    end: i64,
    lines: Vec<Line>,
}

fn substitute(s: &str, ctx: &Ctx) -> String {
    s.replace("${TENANT}", TENANT)
        .replace("${LOGCLI_VERSION}", LOGCLI_VERSION)
        .replace("${START_NS}", &ctx.start.to_string())
        .replace("${END_NS}", &ctx.end.to_string())
}

fn pairs(v: &Value, ctx: &Ctx) -> Vec<(String, String)> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|p| (p[0].as_str().unwrap().to_string(), substitute(p[1].as_str().unwrap(), ctx)))
            .collect(),
        Value::Object(o) => {
            o.iter().map(|(k, v)| (k.clone(), substitute(v.as_str().unwrap(), ctx))).collect()
        }
        _ => panic!("params/headers: {v}"),
    }
}

fn send(url: &str, path: &str, params: &[(String, String)], headers: &[(String, String)]) -> Resp {
    let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    get(&format!("{url}{path}"), &p, &h)
}

// ------------------------------------------------------------------------------ what logcli decodes

/// logcli treats every non-2xx answer as a failure, then decodes the body as JSON.
fn json_of(r: &Resp) -> Result<Value, String> {
    ensure!(r.status / 100 == 2, "status {}: {}", r.status, short(&r.body));
    serde_json::from_str(&r.body).map_err(|e| format!("not JSON ({e}): {}", short(&r.body)))
}

/// `(stream labels, ts, line)` of a streams answer as `loghttp.QueryResponse` decodes it:
/// values are `[ns string, line]` (no categorize-labels header, so 2 elements).
fn streams(b: &Value) -> Result<Vec<(LabelMap, i64, String)>, String> {
    success(b, "streams")?;
    let mut out = Vec::new();
    for s in b["data"]["result"].as_array().unwrap() {
        let stream = s["stream"].as_object().ok_or("a stream without labels")?.clone();
        ensure!(stream.values().all(Value::is_string), "labels not strings: {stream:?}");
        for v in s["values"].as_array().ok_or("a stream without values")? {
            let t = v.as_array().ok_or("a value that is not an array")?;
            ensure!(t.len() == 2, "value {v} (want [ts, line] without categorize-labels)");
            let ts =
                t[0].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| format!("ts {}", t[0]))?;
            let line = t[1].as_str().ok_or("line is not a string")?.to_string();
            out.push((stream.clone(), ts, line));
        }
    }
    Ok(out)
}

/// `(ts, line)` of `lines`, newest first.
fn newest_first(lines: &[&Line]) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = lines.iter().map(|l| (l.ts, l.line.clone())).collect();
    v.sort_by(|a, b| b.cmp(a));
    v
}

/// logcli's batching loop (`pkg/logcli/query/query.go` DoQuery, `print.go` printStream) for a
/// forward query: returns the printed `(ts, line)` and the number of requests.
fn batched_forward(
    url: &str,
    req: &Value,
    ctx: &Ctx,
) -> Result<(Vec<(i64, String)>, usize), String> {
    let limit = req["batching"]["limit"].as_u64().unwrap() as usize;
    let batch = req["batching"]["batch"].as_u64().unwrap() as usize;
    let headers = pairs(&req["headers"], ctx);
    let mut params = pairs(&req["params"], ctx);
    let mut printed: Vec<(i64, String)> = Vec::new();
    let mut last: Vec<(i64, String)> = Vec::new();
    let mut requests = 0;
    while printed.len() < limit {
        let mut bs = batch;
        if limit - printed.len() < batch {
            bs = limit - printed.len() + last.len();
        }
        for p in params.iter_mut() {
            if p.0 == "limit" {
                p.1 = bs.to_string();
            }
        }
        requests += 1;
        ensure!(requests <= 10, "the batching does not end");
        let r = send(url, req["path"].as_str().unwrap(), &params, &headers);
        let mut got: Vec<(i64, String)> =
            streams(&json_of(&r)?)?.into_iter().map(|(_, ts, line)| (ts, line)).collect();
        got.sort();
        if got.is_empty() {
            break;
        }
        let new: Vec<(i64, String)> = got.iter().filter(|e| !last.contains(e)).cloned().collect();
        printed.extend(new.iter().cloned());
        let last_ts = got[got.len() - 1].0;
        last = got.iter().filter(|e| e.0 == last_ts).cloned().collect();
        if new.len() == limit {
            break;
        }
        for p in params.iter_mut() {
            if p.0 == "start" {
                p.1 = last_ts.to_string();
            }
        }
    }
    Ok((printed, requests))
}

fn check(name: &str, url: &str, req: &Value, r: &Resp, ctx: &Ctx) -> Check {
    let lines = &ctx.lines;
    match name {
        "query" => {
            let got = streams(&json_of(r)?)?;
            ensure!(
                got.iter().all(|g| g.0.get("job") == Some(&json!("web"))),
                "entries of another job"
            );
            let mut got: Vec<(i64, String)> = got.into_iter().map(|g| (g.1, g.2)).collect();
            got.sort_by(|a, b| b.cmp(a));
            let mut want = newest_first(&job(lines, "web"));
            want.truncate(30);
            ensure!(got == want, "{} entries; want the 30 newest web lines", got.len());
            Ok(())
        }
        "query_batched_forward" => {
            json_of(r)?;
            let (printed, n) = batched_forward(url, req, ctx)?;
            let mut want: Vec<(i64, String)> = newest_first(&job(lines, "worker"));
            want.reverse();
            want.truncate(50);
            ensure!(
                printed == want,
                "printed {} lines over {n} requests; want the 50 oldest worker lines in order",
                printed.len()
            );
            ensure!(n == 3, "{n} requests (20 + 19 new + 11 new)");
            Ok(())
        }
        "query_metric_step" => {
            let m = matrix(&json_of(r)?)?;
            let mut sums: BTreeMap<String, f64> = BTreeMap::new();
            for (metric, points) in &m {
                ensure!(label_keys(metric) == set(&["detected_level"]), "metric {metric:?}");
                for (t, _) in points {
                    let ns = (t * 1000.0).round() as i64 * MS;
                    // Loki evaluates at multiples of the step counted from the epoch
                    ensure!(ns % (60 * SEC) == 0, "point {t} off the epoch's 60 s step grid");
                }
                *sums.entry(metric["detected_level"].as_str().unwrap().to_string()).or_default() +=
                    points.iter().map(|p| p.1).sum::<f64>();
            }
            let mut want: BTreeMap<String, f64> = BTreeMap::new();
            for l in job(lines, "worker") {
                *want.entry(l.level.to_string()).or_default() += 1.0;
            }
            ensure!(
                sums == want,
                "per level {sums:?} (want {want:?}: [1m] windows every 60 s count each line once)"
            );
            Ok(())
        }
        "query_interval" => {
            let got = streams(&json_of(r)?)?;
            ensure!(!got.is_empty(), "no entries");
            let mut per: BTreeMap<String, Vec<i64>> = BTreeMap::new();
            for g in &got {
                per.entry(Value::Object(g.0.clone()).to_string()).or_default().push(g.1);
            }
            for (s, ts) in &per {
                for w in ts.windows(2) {
                    ensure!(
                        (w[0] - w[1]).abs() >= 60 * SEC,
                        "entries {} s apart in {s} (interval 60 s)",
                        (w[0] - w[1]).abs() as f64 / 1e9
                    );
                }
            }
            ensure!(got.len() < 300, "{} entries: interval did not thin the 300 lines", got.len());
            Ok(())
        }
        "instant_query" => {
            let v = samples(&json_of(r)?)?;
            ensure!(v.len() == 1 && v[0].1 == 300.0, "samples {v:?} (want one of 300)");
            Ok(())
        }
        "labels" | "labels_tags_nocache" => {
            let b = json_of(r)?;
            ensure!(b["status"] == "success", "status {}", b["status"]);
            let got: BTreeSet<String> = b["data"]
                .as_array()
                .ok_or("no data")?
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect();
            ensure!(got == set(&["env", "host", "job", "service_name"]), "labels {got:?}");
            Ok(())
        }
        "label_values" => {
            let b = json_of(r)?;
            ensure!(b["data"] == json!(["openssh", "web", "worker"]), "values {}", b["data"]);
            Ok(())
        }
        "series" => {
            let b = json_of(r)?;
            ensure!(b["status"] == "success", "status {}", b["status"]);
            let mut got: Vec<String> =
                b["data"].as_array().ok_or("no data")?.iter().map(Value::to_string).collect();
            got.sort();
            let want: Vec<String> = (1..=2)
                .map(|n| json!({"env": "logcli", "host": format!("node-{n}"), "job": "openssh", "service_name": "openssh"}).to_string())
                .collect();
            ensure!(got == want, "series {got:?}");
            Ok(())
        }
        "stats" => {
            let b = json_of(r)?;
            ensure!(
                label_keys(b.as_object().ok_or("not an object")?)
                    == set(&["bytes", "chunks", "entries", "streams"]),
                "keys of {b}"
            );
            ensure!(b["bytes"].as_u64().is_some_and(|c| c > 0), "stats {b}");
            let n = |k: &str| b[k].as_u64().ok_or_else(|| format!("{k} in {b}"));
            let ts: Vec<i64> = job(lines, "web").iter().map(|l| l.ts).collect();
            check_index_stats(n("streams")?, n("chunks")?, n("entries")?, &ts, 1)
        }
        "volume" => {
            let v = samples(&json_of(r)?)?;
            let jobs: BTreeSet<String> = v
                .iter()
                .map(|(m, _)| m.get("job").and_then(Value::as_str).unwrap_or_default().to_string())
                .collect();
            ensure!(
                v.iter().all(|(m, x)| label_keys(m) == set(&["job"]) && *x > 0.0),
                "samples {v:?}"
            );
            ensure!(jobs == set(&["openssh", "web", "worker"]), "jobs {jobs:?}");
            Ok(())
        }
        "volume_target_labels" => {
            let v = samples(&json_of(r)?)?;
            let hosts: BTreeSet<String> =
                v.iter().map(|(m, _)| Value::Object(m.clone()).to_string()).collect();
            ensure!(
                hosts == set(&[r#"{"host":"node-1"}"#, r#"{"host":"node-2"}"#]),
                "metrics {hosts:?}"
            );
            Ok(())
        }
        "volume_aggregate_by_labels" => {
            let v = samples(&json_of(r)?)?;
            let mut by = BTreeMap::new();
            for (m, x) in &v {
                ensure!(
                    m.len() == 1 && m.values().all(|x| x == ""),
                    "metric {m:?} (want {{<label>: \"\"}})"
                );
                by.insert(m.keys().next().unwrap().clone(), *x);
            }
            ensure!(keys_of(&by) == set(&["env", "host", "job", "service_name"]), "labels {by:?}");
            ensure!(
                by["job"] == by["env"]
                    && by["job"] == by["service_name"]
                    && by["host"] < by["job"]
                    && by["host"] > 0.0,
                "volumes {by:?}"
            );
            Ok(())
        }
        "volume_range" => {
            // Loki answers a vector when no series has more than one bucket (a 1h window at
            // step 1h usually has one), a matrix otherwise (queryrange.ToPrometheusResponse)
            let b = json_of(r)?;
            let totals: Vec<(Map<String, Value>, f64)> = if b["data"]["resultType"] == "vector" {
                samples(&b)?
            } else {
                matrix(&b)?.into_iter().map(|(m, p)| (m, p.iter().map(|x| x.1).sum())).collect()
            };
            let jobs: BTreeSet<String> = totals
                .iter()
                .map(|(m, _)| m.get("job").and_then(Value::as_str).unwrap_or_default().to_string())
                .collect();
            ensure!(jobs == set(&["openssh", "web", "worker"]), "jobs {jobs:?}");
            ensure!(
                totals.iter().all(|(m, _)| label_keys(m) == set(&["job"])),
                "series {totals:?}"
            );
            // the same bytes as the instant volume
            let mut params: Vec<(String, String)> =
                pairs(&req["params"], ctx).into_iter().filter(|p| p.0 != "step").collect();
            params.sort();
            let headers = pairs(&req["headers"], ctx);
            let instant =
                samples(&json_of(&send(url, "/loki/api/v1/index/volume", &params, &headers))?)?;
            for (metric, total) in &totals {
                let want = instant.iter().find(|(i, _)| i == metric).map(|x| x.1);
                ensure!(
                    Some(*total) == want,
                    "{metric:?}: {total} over the steps, {want:?} from index/volume"
                );
            }
            Ok(())
        }
        "detected_fields" => {
            let b = json_of(r)?;
            let fields =
                b["fields"].as_array().ok_or_else(|| format!("no fields: {}", short(&r.body)))?;
            let mut by = BTreeMap::new();
            for f in fields {
                let label = f["label"].as_str().ok_or("a field without label")?;
                ensure!(f["type"].is_string() && f["cardinality"].is_u64(), "field {f}");
                ensure!(f["parsers"].is_null() || f["parsers"].is_array(), "field {f}");
                by.insert(label.to_string(), f.clone());
            }
            for (label, typ, card) in [
                ("method", "string", 4),
                ("status", "int", 4),
                ("path", "string", 10),
                ("level", "string", 3),
            ] {
                let f =
                    by.get(label).ok_or_else(|| format!("no field {label} in {:?}", by.keys()))?;
                ensure!(
                    f["type"] == typ && f["cardinality"] == card && f["parsers"] == json!(["json"]),
                    "field {f}"
                );
            }
            ensure!(
                by.get("detected_level").is_some_and(|f| f["parsers"].is_null()),
                "detected_level {:?}",
                by.get("detected_level")
            );
            Ok(())
        }
        "detected_field_values" => {
            let b = json_of(r)?;
            let got: BTreeSet<String> = b["values"]
                .as_array()
                .ok_or("no values")?
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect();
            ensure!(got == set(&["GET", "POST", "PUT", "DELETE"]), "values {got:?}");
            Ok(())
        }
        other => Err(format!("no check written for {other}")),
    }
}

/// `index/stats` for lines at `ts` in `streams` streams (the rules: `answer::index_stats`).
fn check_index_stats(s: u64, c: u64, e: u64, ts: &[i64], streams: u64) -> Check {
    index_stats(&format!("streams {s}, chunks {c}, entries {e}"), (s, c, e), ts, streams)
}

fn keys_of(m: &BTreeMap<String, f64>) -> BTreeSet<String> {
    m.keys().cloned().collect()
}

// ------------------------------------------------------------------------------ tail

use skald_integration_tests::answer::{
    self, index_stats, label_keys, matrix, read_tail_frames, set, short, success, vector, Check,
    LabelMap, Tally,
};
use skald_integration_tests::ensure;
use skald_integration_tests::ws::{self, Ws};

/// `(ts, line)` of `loghttp.TailResponse` frames (shape checked by `answer::tail_entries`).
fn tail_entries(frames: &[Value]) -> Result<Vec<(i64, String)>, String> {
    Ok(answer::tail_entries(frames)?.into_iter().map(|(_, ts, line)| (ts, line)).collect())
}

fn read_frames(w: &mut Ws, deadline: Instant, want: usize) -> Result<Vec<Value>, String> {
    read_tail_frames(w, deadline, |f| tail_entries(f).map(|e| e.len() >= want).unwrap_or(true))
}

fn check_tail(url: &str, req: &Value, ctx: &Ctx) -> Check {
    let params = pairs(&req["params"], ctx);
    let headers = pairs(&req["headers"], ctx);
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
    let history =
        tail_entries(&read_frames(&mut ws, Instant::now() + Duration::from_secs(10), 30)?)?;
    let mut got = history.clone();
    got.sort_by(|a, b| b.cmp(a));
    let mut want = newest_first(&job(&ctx.lines, "web"));
    want.truncate(30);
    ensure!(got == want, "{} history entries; want the newest 30 (limit=30)", history.len());
    let live = Line {
        job: "web",
        host: None,
        ts: now_ns(),
        line: "{\"msg\":\"live\"}".into(),
        level: "info",
    };
    push(url, &[&live]);
    let frames = read_frames(&mut ws, Instant::now() + Duration::from_secs(5), 1)?;
    ensure!(tail_entries(&frames)? == vec![(live.ts, live.line.clone())], "live frames {frames:?}");
    let _ = ws.close(None);
    Ok(())
}

// ------------------------------------------------------------------------------ replay

#[test]
fn logcli_requests_get_the_answers_logcli_decodes() {
    let (skald, lines, start, end) = start_with_data("logcli-replay");
    let ctx = Ctx { start, end, lines };
    let doc = requests();
    let mut tally = Tally::default();
    let mut tails = Vec::new();
    for req in doc["requests"].as_array().unwrap() {
        let name = req["name"].as_str().unwrap();
        assert_eq!(req["method"], "GET", "{name}");
        assert!(!req["source"].as_array().unwrap().is_empty(), "{name}: no source");
        let headers = pairs(&req["headers"], &ctx);
        assert!(
            headers.iter().any(|(k, v)| k == "User-Agent" && v.starts_with("loki-logcli/")),
            "{name}"
        );
        if req["websocket"] == true {
            tails.push(req);
            continue;
        }
        let r =
            send(&skald.url, req["path"].as_str().unwrap(), &pairs(&req["params"], &ctx), &headers);
        tally.record(name, check(name, &skald.url, req, &r, &ctx));
    }
    for req in tails {
        tally.record(req["name"].as_str().unwrap(), check_tail(&skald.url, req, &ctx));
    }
    tally.assert_all("logcli requests", "answered as logcli decodes them");
}

// ------------------------------------------------------------------------------ a real logcli

/// Runs logcli with `args` against `url` (60 s at most); returns stdout.
fn run(bin: &PathBuf, url: &str, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new(bin)
        .args([&format!("--addr={url}"), &format!("--org-id={TENANT}"), "--quiet"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn logcli: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            let stdout = String::from_utf8_lossy(&out.stdout).to_string();
            ensure!(
                status.success(),
                "logcli {args:?} exited with {status}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return Ok(stdout);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("logcli {args:?} did not finish in 60 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn out_lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

/// Checks what a logcli command printed.
type PrintCheck = Box<dyn Fn(&str) -> Check>;

fn real_checks(bin: &PathBuf, url: &str, lines: &[Line]) -> Tally {
    let web = job(lines, "web");
    let mut newest_web: Vec<String> = newest_first(&web).into_iter().map(|e| e.1).collect();
    newest_web.truncate(30);
    let mut oldest_worker: Vec<String> =
        newest_first(&job(lines, "worker")).into_iter().map(|e| e.1).collect();
    oldest_worker.reverse();
    oldest_worker.truncate(50);
    let web_ts: Vec<i64> = job(lines, "web").iter().map(|l| l.ts).collect();
    let cases: Vec<(&str, Vec<&str>, PrintCheck)> = vec![
        (
            "query",
            vec!["query", "--output=raw", "{job=\"web\"}"],
            Box::new(move |o| {
                ensure!(out_lines(o) == newest_web, "printed {:?}", short(o));
                Ok(())
            }),
        ),
        (
            "query batched forward",
            vec![
                "query",
                "--output=raw",
                "--limit=50",
                "--batch=20",
                "--forward",
                "{job=\"worker\"}",
            ],
            Box::new(move |o| {
                ensure!(
                    out_lines(o) == oldest_worker,
                    "printed {} lines: {}",
                    out_lines(o).len(),
                    short(o)
                );
                Ok(())
            }),
        ),
        (
            "instant-query",
            vec!["instant-query", "sum(count_over_time({job=\"web\"}[1h]))"],
            Box::new(|o| {
                let v: Value = serde_json::from_str(o).map_err(|e| format!("{e}: {o}"))?;
                ensure!(v[0]["value"][1] == "300", "printed {o}");
                Ok(())
            }),
        ),
        (
            "labels",
            vec!["labels"],
            Box::new(|o| {
                let got: BTreeSet<String> = out_lines(o).into_iter().collect();
                ensure!(got == set(&["env", "host", "job", "service_name"]), "printed {o}");
                Ok(())
            }),
        ),
        (
            "labels job",
            vec!["labels", "job"],
            Box::new(|o| {
                ensure!(out_lines(o) == ["openssh", "web", "worker"], "printed {o}");
                Ok(())
            }),
        ),
        (
            "series",
            vec!["series", "{job=\"openssh\"}"],
            Box::new(|o| {
                ensure!(
                    out_lines(o).len() == 2
                        && o.contains("host=\"node-1\"")
                        && o.contains("host=\"node-2\""),
                    "printed {o}"
                );
                Ok(())
            }),
        ),
        (
            "stats",
            vec!["stats", "{job=\"web\"}"],
            Box::new(move |o| {
                let n = |k: &str| {
                    o.lines()
                        .find_map(|l| l.trim().strip_prefix(&format!("{k}: ")))
                        .and_then(|v| v.parse::<u64>().ok())
                        .ok_or_else(|| format!("no {k} in {o}"))
                };
                check_index_stats(n("streams")?, n("chunks")?, n("entries")?, &web_ts, 1)
            }),
        ),
        (
            "volume",
            vec!["volume", "{job=~\".+\"}"],
            Box::new(|o| {
                let v: Value = serde_json::from_str(o).map_err(|e| format!("{e}: {o}"))?;
                ensure!(v.as_array().is_some_and(|a| a.len() == 3), "printed {o}");
                Ok(())
            }),
        ),
        (
            "volume_range",
            vec!["volume_range", "{job=~\".+\"}"],
            Box::new(|o| {
                // The dataset lies inside one hour (`data_start`), so at logcli's default 1h
                // step each series usually has one bucket and Loki answers a vector (`value`);
                // a matrix (`values`) when a step boundary cuts it. logcli prints either.
                let v: Value = serde_json::from_str(o).map_err(|e| format!("{e}: {o}"))?;
                ensure!(
                    v.as_array().is_some_and(|a| a.len() == 3
                        && a.iter().all(|s| s["values"].is_array() || s["value"].is_array())),
                    "printed {o}"
                );
                Ok(())
            }),
        ),
        (
            "detected-fields",
            vec!["detected-fields", "{job=\"web\"}"],
            Box::new(|o| {
                ensure!(
                    o.contains("label: method")
                        && o.contains("label: status")
                        && o.contains("type: int"),
                    "printed {o}"
                );
                Ok(())
            }),
        ),
        (
            "detected-fields method",
            vec!["detected-fields", "{job=\"web\"}", "method"],
            Box::new(|o| {
                ensure!(out_lines(o) == ["DELETE", "GET", "POST", "PUT"], "printed {o}");
                Ok(())
            }),
        ),
    ];
    let mut tally = Tally::default();
    for (name, args, check) in cases {
        tally.record(&format!("logcli {name}"), run(bin, url, &args).and_then(|o| check(&o)));
    }
    tally.record("logcli query --tail", real_tail(bin, url, lines));
    tally
}

/// `logcli query --tail`: the 30 newest lines, then a line pushed afterwards.
fn real_tail(bin: &PathBuf, url: &str, lines: &[Line]) -> Check {
    let mut child = Command::new(bin)
        .args([
            &format!("--addr={url}"),
            &format!("--org-id={TENANT}"),
            "--quiet",
            "query",
            "--tail",
            "--output=raw",
            "{job=\"web\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let result = (|| {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.len() < 30 && Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
                got.push(l);
            }
        }
        // a frame per stream: without categorize-labels detected_level splits the streams
        let mut want: Vec<String> =
            newest_first(&job(lines, "web")).into_iter().map(|e| e.1).take(30).collect();
        want.sort();
        let mut sorted = got.clone();
        sorted.sort();
        ensure!(sorted == want, "history {} lines: {:?}", got.len(), got.first());
        let live = Line {
            job: "web",
            host: None,
            ts: now_ns(),
            line: "{\"msg\":\"logcli live\"}".into(),
            level: "info",
        };
        push(url, &[&live]);
        let l = rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| "the pushed line did not arrive in 5 s".to_string())?;
        ensure!(l == live.line, "live line {l}");
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

#[test]
fn real_logcli_against_skald_when_on_path() {
    let Some(bin) = grafana_tool_on_path("logcli") else {
        not_run(
            "logcli::real_logcli_against_skald_when_on_path",
            "no Grafana logcli on PATH (scripts/test.sh puts one there from ../shared/tools/grafana; see tests/README.md)",
        );
        return;
    };
    println!("running {}", bin.display());
    let (skald, lines, _, _) = start_with_data("logcli-real");
    real_checks(&bin, &skald.url, &lines).assert_all("real logcli", "checks passed");
}

/// `(metric, value)` of a vector answer, as logcli prints them.
fn samples(b: &Value) -> Result<Vec<(LabelMap, f64)>, String> {
    Ok(vector(b)?.into_iter().map(|(m, _, v)| (m, v)).collect())
}

#[test]
fn the_dataset_never_spans_a_whole_hour() {
    let hour = 60 * MIN;
    let base = 1_793_491_200 * SEC; // 2026-11-01T00:00:00Z
    for s in (0..2 * 3600).step_by(7) {
        let now = base + s * SEC;
        let lines = dataset(data_start(now));
        let (lo, hi) =
            lines.iter().fold((i64::MAX, i64::MIN), |(a, b), l| (a.min(l.ts), b.max(l.ts)));
        assert!(lo >= now - 58 * MIN && hi <= now - MIN, "now +{s}s: {lo}..{hi}");
        assert_eq!(lo.div_euclid(hour), hi.div_euclid(hour), "now +{s}s: {lo}..{hi}");
    }
}

// ------------------------------------------------------------------------------ stats

/// Pushes `n` lines of `job` (`flush`: then flushes them to chunks), from `first`, 1 ms apart.
fn push_counted(url: &str, job: &str, first: i64, n: i64, flush: bool) {
    let values: Vec<Value> =
        (0..n).map(|i| json!([(first + i * MS).to_string(), format!("{job} line {i}")])).collect();
    let body = json!({"streams": [{"stream": {"job": job, "env": "stats"}, "values": values}]});
    let r = post(
        &format!("{url}/loki/api/v1/push"),
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", TENANT)],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 204, "push failed: {}", r.body);
    if flush {
        let r = post(&format!("{url}/flush"), &[], b"");
        assert_eq!(r.status, 204, "flush: {}", r.body);
    }
}

/// The `stats` of a query answer report what the query read: lines and bytes processed and
/// returned, the chunks fetched from the store (refs, downloads, sizes, lines) and what the
/// ingesters sent; the figures are non-zero and agree with each other.
#[test]
fn query_stats_report_what_was_read() {
    let dir = temp_dir("logcli-stats");
    let skald = Skald::start(&dir, CONFIG);
    let first = now_ns() - 10 * MIN;
    // 300 lines flushed to chunks, then 200 more that only the ingester holds
    push_counted(&skald.url, "stored", first, 300, true);
    push_counted(&skald.url, "recent", first, 200, false);
    let (start, end) = ((first - MIN).to_string(), now_ns().to_string());
    let query = |q: &str| {
        let r = get(
            &format!("{}/loki/api/v1/query_range", skald.url),
            &[("query", q), ("start", &start), ("end", &end), ("limit", "1000"), ("step", "60")],
            &[("X-Scope-OrgID", TENANT)],
        );
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        serde_json::from_str::<Value>(&r.body).unwrap()
    };
    let v = query(r#"{env="stats"}"#);
    let returned: u64 = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["values"].as_array().unwrap().len() as u64)
        .sum();
    assert_eq!(returned, 500);
    let st = &v["data"]["stats"];
    let n = |path: &[&str]| {
        let mut at = st;
        for k in path {
            at = &at[*k];
        }
        at.as_u64().unwrap_or_else(|| panic!("{path:?} in {st}"))
    };
    assert_eq!(n(&["summary", "totalEntriesReturned"]), returned, "{st}");
    assert!(n(&["summary", "totalLinesProcessed"]) >= 500, "{st}");
    assert!(n(&["summary", "totalBytesProcessed"]) >= 500 * 12, "{st}");
    assert!(st["summary"]["execTime"].as_f64().unwrap() > 0.0, "{st}");
    let chunk = |k: &str| n(&["querier", "store", "chunk", k]);
    assert!(n(&["querier", "store", "totalChunksRef"]) >= 1, "{st}");
    assert_eq!(
        n(&["querier", "store", "totalChunksDownloaded"]),
        n(&["querier", "store", "totalChunksRef"]),
        "{st}"
    );
    assert!(chunk("decompressedLines") >= 300, "{st}");
    assert!(chunk("decompressedBytes") >= 300 * 12, "{st}");
    assert!(chunk("compressedBytes") > 0, "{st}");
    assert!(chunk("compressedBytes") < chunk("decompressedBytes"), "{st}");
    assert!(n(&["ingester", "totalReached"]) >= 1, "{st}");
    assert!(n(&["ingester", "totalLinesSent"]) >= 200, "{st}");
    assert_eq!(
        n(&["ingester", "store", "chunk", "headChunkLines"]),
        n(&["ingester", "totalLinesSent"]),
        "{st}"
    );
    assert!(n(&["ingester", "store", "chunk", "headChunkBytes"]) >= 200 * 12, "{st}");
    // what was processed came from the chunks and the ingesters
    assert!(
        n(&["summary", "totalLinesProcessed"])
            <= chunk("decompressedLines") + n(&["ingester", "totalLinesSent"]),
        "{st}"
    );

    // a metric query reads the same chunks
    let v = query(r#"sum(count_over_time({env="stats"}[1m]))"#);
    let st = &v["data"]["stats"];
    assert!(st["querier"]["store"]["chunk"]["decompressedLines"].as_u64().unwrap() >= 300);
    assert!(st["querier"]["store"]["totalChunksDownloaded"].as_u64().unwrap() >= 1, "{st}");
}

/// `logcli query --stats` prints the answer's figures: non-zero ones for what was read.
#[test]
fn real_logcli_stats_are_not_zero_when_on_path() {
    let Some(bin) = grafana_tool_on_path("logcli") else {
        not_run(
            "logcli::real_logcli_stats_are_not_zero_when_on_path",
            "no Grafana logcli on PATH (scripts/test.sh puts one there from ../shared/tools/grafana; see tests/README.md)",
        );
        return;
    };
    let dir = temp_dir("logcli-stats-real");
    let skald = Skald::start(&dir, CONFIG);
    push_counted(&skald.url, "stored", now_ns() - 10 * MIN, 300, true);
    let out = Command::new(&bin)
        .args([&format!("--addr={}", skald.url), &format!("--org-id={TENANT}"), "--quiet"])
        .args(["query", "--stats", "--since=1h", "--limit=1000", r#"{env="stats"}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // logcli prints the statistics on stderr, `<Name> <tabs> <value>`
    let printed = String::from_utf8_lossy(&out.stderr);
    let figure = |name: &str| -> String {
        printed
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("no {name} in:\n{printed}"))
            .to_string()
    };
    assert_eq!(figure("Summary.TotalLinesProcessed"), "300", "{printed}");
    assert_eq!(figure("Querier.DecompressedLines"), "300", "{printed}");
    for name in ["Querier.TotalChunksRef", "Querier.TotalChunksDownloaded", "Ingester.TotalReached"]
    {
        assert_ne!(figure(name), "0", "{name}:\n{printed}");
    }
    for name in
        ["Querier.CompressedBytes", "Querier.DecompressedBytes", "Summary.TotalBytesProcessed"]
    {
        assert_ne!(figure(name), "0", "{name}:\n{printed}");
    }
}
