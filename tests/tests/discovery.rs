//! Logs Drilldown's discovery endpoints over real sockets: `detected_labels`,
//! `detected_fields`, `detected_field/<name>/values`, `patterns` and `drilldown-limits`, on
//! recent loghub lines plus JSON and logfmt lines with structured metadata; and the patterns
//! of the reference dataset compared with what Loki found for it with a long retention.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use skald_integration_tests::{
    data_dir, get, now_ns, post, push_reference_dataset, temp_dir, Skald, REFERENCE_CONFIG,
};

const CONFIG: &str = "auth_enabled: true
limits_config:
  ingestion_rate_mb: 64
  ingestion_burst_size_mb: 128
  per_stream_rate_limit: 64MB
  per_stream_rate_limit_burst: 128MB
";

const TENANT: (&str, &str) = ("X-Scope-OrgID", "t1");
const SEC: i64 = 1_000_000_000;

fn loghub(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(data_dir().join("loghub").join(name)).unwrap();
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Structured metadata of one entry.
type Metadata = Vec<(String, String)>;

/// One stream of a JSON push: labels and `(ts, line, structured metadata)` entries.
struct Stream {
    labels: Value,
    entries: Vec<(i64, String, Metadata)>,
}

fn push(s: &Skald, streams: &[Stream]) {
    for chunk in streams.chunks(4) {
        let body = json!({"streams": chunk.iter().map(|st| json!({
            "stream": st.labels,
            "values": st.entries.iter().map(|(ts, line, sm)| {
                if sm.is_empty() {
                    json!([ts.to_string(), line])
                } else {
                    let m: serde_json::Map<String, Value> =
                        sm.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                    json!([ts.to_string(), line, m])
                }
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()});
        let r = post(
            &format!("{}/loki/api/v1/push", s.url),
            &[("Content-Type", "application/json"), TENANT],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 204, "{}", r.body);
    }
}

fn call(s: &Skald, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let r = get(&format!("{}{path}", s.url), params, &[TENANT]);
    let body = serde_json::from_str(&r.body).unwrap_or(Value::String(r.body.clone()));
    if r.status == 200 {
        assert_eq!(r.content_type, "application/json; charset=UTF-8", "{path}");
    }
    (r.status, body)
}

fn ok(s: &Skald, path: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = call(s, path, params);
    assert_eq!(status, 200, "{path} {params:?}: {body}");
    body
}

/// `label → cardinality` of a `detected_labels` answer.
fn detected_labels(v: &Value) -> BTreeMap<String, u64> {
    v.get("detectedLabels")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|l| {
                    (l["label"].as_str().unwrap().to_string(), l["cardinality"].as_u64().unwrap())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `label → field object` of a `detected_fields` answer.
fn fields(v: &Value) -> BTreeMap<String, Value> {
    v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["label"].as_str().unwrap().to_string(), f.clone()))
        .collect()
}

fn values(v: &Value) -> BTreeSet<String> {
    v["values"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

fn total(p: &Value) -> i64 {
    p["samples"].as_array().unwrap().iter().map(|s| s[1].as_i64().unwrap()).sum()
}

/// The web (JSON) and worker (logfmt) lines: deterministic, with structured metadata on every
/// 10th line.
fn synthetic(base: i64) -> (Stream, Stream) {
    let methods = ["GET", "POST", "PUT"];
    let statuses = [200, 201, 404, 500];
    let mut web = Vec::new();
    let mut worker = Vec::new();
    for i in 0..400i64 {
        let ts = base + i * 3 * SEC;
        let sm = if i % 10 == 9 {
            vec![("trace_id".to_string(), format!("trace-{}", i / 10))]
        } else {
            vec![]
        };
        let line = json!({
            "method": methods[(i % 3) as usize],
            "status": statuses[(i % 4) as usize],
            "latency_ms": 1.25 + (i % 7) as f64,
            "user": {"id": format!("u{}", i % 13), "tier": if i % 2 == 0 {"gold"} else {"free"}},
            "msg": format!("request {} served for user u{}", i, i % 13),
            "tags": ["a", "b"],
        });
        web.push((ts, line.to_string(), sm.clone()));
        let level = ["info", "warn", "error", "debug"][(i % 4) as usize];
        let took = ["1.5s", "250ms", "750us", "2m3s"][(i % 4) as usize];
        let size = ["12KB", "1.5MB", "512B", "3KiB"][(i % 4) as usize];
        worker.push((
            ts + 1,
            format!(
                r#"level={level} msg="job {} done" took={took} size={size} attempt={}"#,
                i % 5,
                i % 3
            ),
            sm,
        ));
    }
    (
        Stream { labels: json!({"job": "web", "env": "test", "format": "json"}), entries: web },
        Stream {
            labels: json!({"job": "worker", "env": "test", "format": "logfmt"}),
            entries: worker,
        },
    )
}

#[test]
fn discovery_endpoints_on_recent_data() {
    let dir = temp_dir("discovery");
    let s = Skald::start(&dir, CONFIG);
    let now = now_ns();
    let base = now - 30 * 60 * SEC;

    // openssh in 6 streams: host node-0/1 and a numeric `shard` label (1..3)
    let ssh = loghub("OpenSSH_2k.log");
    let mut streams: Vec<Stream> = Vec::new();
    for host in 0..2 {
        for shard in 1..=3 {
            let entries = ssh
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == host && (i % 3) + 1 == shard)
                .map(|(i, l)| (base + i as i64 * 500_000_000, l.clone(), vec![]))
                .collect();
            streams.push(Stream {
                labels: json!({"job": "openssh", "env": "test", "host": format!("node-{host}"), "shard": shard.to_string()}),
                entries,
            });
        }
    }
    // apache with a numeric static label (kept) and a boolean-like one (kept)
    let apache: Vec<_> = loghub("Apache_2k.log")
        .into_iter()
        .enumerate()
        .map(|(i, l)| (base + i as i64 * 500_000_000 + 1, l, vec![]))
        .collect();
    let (a0, a1): (Vec<_>, Vec<_>) = apache.into_iter().partition(|(ts, _, _)| (ts / SEC) % 2 == 0);
    streams.push(Stream {
        labels: json!({"job": "apache", "env": "test", "namespace": "42", "canary": "0"}),
        entries: a0,
    });
    streams.push(Stream {
        labels: json!({"job": "apache", "env": "test", "namespace": "42", "canary": "1"}),
        entries: a1,
    });
    let (web, worker) = synthetic(base);
    streams.push(web);
    streams.push(worker);
    // day-old data, outside the pattern retention (3h) but inside the query window below
    let old_base = now - 24 * 3600 * SEC;
    let old: Vec<_> = ssh
        .iter()
        .enumerate()
        .map(|(i, l)| (old_base + i as i64 * SEC, l.clone(), vec![]))
        .collect();
    streams.push(Stream { labels: json!({"job": "old-ssh", "env": "old"}), entries: old });
    push(&s, &streams);

    let (start, end) = ((now - 3600 * SEC).to_string(), (now + 60 * SEC).to_string());
    let window = [("start", start.as_str()), ("end", end.as_str())];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        let mut p: Vec<(&str, &str)> = window.to_vec();
        p.extend_from_slice(extra);
        p
    };

    // ---- detected_labels
    let v = ok(&s, "/loki/api/v1/detected_labels", &with(&[("query", r#"{env="test"}"#)]));
    let expected: BTreeMap<String, u64> = [
        ("canary", 2),
        ("env", 1),
        ("format", 2),
        ("host", 2),
        ("job", 4),
        ("namespace", 1),
        ("service_name", 4),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // `shard` (1, 2, 3) looks like an ID and is left out
    assert_eq!(detected_labels(&v), expected, "{v}");
    // Drilldown sends ISO-8601 times; an empty query means every stream
    let iso = skald_integration_tests::iso_ms;
    let (iso_start, iso_end) = (iso(now - 3600 * SEC), iso(now + 60 * SEC));
    let v = ok(
        &s,
        "/loki/api/v1/detected_labels",
        &[("query", ""), ("start", iso_start.as_str()), ("end", iso_end.as_str())],
    );
    assert_eq!(detected_labels(&v), expected, "{v}");
    let v = ok(
        &s,
        "/loki/api/v1/detected_labels",
        &[("query", r#"{job="nothing"}"#), window[0], window[1]],
    );
    assert_eq!(v, json!({}));
    let (status, _) = call(
        &s,
        "/loki/api/v1/detected_labels",
        &[("start", end.as_str()), ("end", start.as_str())],
    );
    assert_eq!(status, 400);

    // ---- detected_fields: JSON lines (the newest 1000 of 400 = all)
    let v = ok(
        &s,
        "/loki/api/v1/detected_fields",
        &with(&[("query", r#"{job="web"}"#), ("line_limit", "1000")]),
    );
    assert_eq!(v["limit"], 1000);
    let f = fields(&v);
    let names: Vec<&str> = f.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "detected_level",
            "latency_ms",
            "method",
            "msg",
            "status",
            "trace_id",
            "user_id",
            "user_tier"
        ],
        "{v}"
    );
    let check = |name: &str, ty: &str, card: u64, parsers: Value| {
        let x = &f[name];
        assert_eq!(
            (x["type"].as_str().unwrap(), x["cardinality"].as_u64().unwrap()),
            (ty, card),
            "{name}: {x}"
        );
        assert_eq!(x["parsers"], parsers, "{name}");
    };
    check("status", "int", 4, json!(["json"]));
    check("latency_ms", "float", 7, json!(["json"]));
    check("method", "string", 3, json!(["json"]));
    check("msg", "string", 400, json!(["json"]));
    check("user_id", "string", 13, json!(["json"]));
    check("user_tier", "string", 2, json!(["json"]));
    check("trace_id", "string", 40, Value::Null);
    check("detected_level", "string", 1, Value::Null);
    assert_eq!(f["user_id"]["jsonPath"], json!(["user", "id"]));
    assert_eq!(f["status"]["jsonPath"], json!(["status"]));
    assert!(f["trace_id"].get("jsonPath").is_none());
    // the default line_limit is 100 lines: 10 of them carry a trace id
    let v = ok(&s, "/loki/api/v1/detected_fields", &with(&[("query", r#"{job="web"}"#)]));
    assert_eq!(fields(&v)["trace_id"]["cardinality"], 10);
    assert_eq!(fields(&v)["msg"]["cardinality"], 100);
    // the query's pipeline applies first; `limit` caps the number of fields
    let v = ok(
        &s,
        "/loki/api/v1/detected_fields",
        &with(&[
            ("query", r#"{job="web"} | json | status=404"#),
            ("line_limit", "1000"),
            ("limit", "3"),
        ]),
    );
    assert_eq!(v["limit"], 3);
    assert_eq!(v["fields"].as_array().unwrap().len(), 3, "{v}");
    let v = ok(
        &s,
        "/loki/api/v1/detected_fields",
        &with(&[("query", r#"{job="web"} | json | status=404"#), ("line_limit", "1000")]),
    );
    assert_eq!(fields(&v)["msg"]["cardinality"], 100);
    assert_eq!(fields(&v)["status"]["cardinality"], 1);

    // ---- detected_fields: logfmt lines
    let v = ok(
        &s,
        "/loki/api/v1/detected_fields",
        &with(&[("query", r#"{job="worker"}"#), ("line_limit", "400")]),
    );
    let f = fields(&v);
    let check = |name: &str, ty: &str, card: u64| {
        let x = &f[name];
        assert_eq!(
            (x["type"].as_str().unwrap(), x["cardinality"].as_u64().unwrap()),
            (ty, card),
            "{name}: {x}"
        );
        assert_eq!(x["parsers"], json!(["logfmt"]), "{name}");
        assert!(x.get("jsonPath").is_none());
    };
    check("level", "string", 4);
    check("took", "duration", 4);
    check("size", "bytes", 4);
    check("attempt", "int", 3);
    check("msg", "string", 5);
    assert_eq!(f["detected_level"]["cardinality"], 4);

    // ---- detected_field/<name>/values
    let v =
        ok(&s, "/loki/api/v1/detected_field/status/values", &with(&[("query", r#"{job="web"}"#)]));
    assert_eq!(values(&v), ["200", "201", "404", "500"].map(String::from).into());
    assert_eq!(v["limit"], 1000);
    let v =
        ok(&s, "/loki/api/v1/detected_field/size/values", &with(&[("query", r#"{job="worker"}"#)]));
    assert_eq!(values(&v), ["12kB", "1.5MB", "512B", "3.1kB"].map(String::from).into());
    let v = ok(
        &s,
        "/loki/api/v1/detected_field/trace_id/values",
        &with(&[("query", r#"{job="web"}"#), ("line_limit", "1000")]),
    );
    assert_eq!(values(&v).len(), 40);
    let v = ok(
        &s,
        "/loki/api/v1/detected_field/level/values",
        &with(&[("query", r#"{job="worker"}"#), ("limit", "2")]),
    );
    assert_eq!(values(&v).len(), 2, "{v}");
    let v =
        ok(&s, "/loki/api/v1/detected_field/nope/values", &with(&[("query", r#"{job="web"}"#)]));
    assert_eq!(v, json!({}));

    // ---- bad requests
    for (params, needle) in [
        (with(&[]), "syntax error"),
        (
            with(&[("query", r#"{job="web"}"#), ("line_limit", "0")]),
            "limit must be a positive value",
        ),
        (with(&[("query", r#"{job="web"}"#), ("line_limit", "x")]), "strconv.Atoi"),
        (
            with(&[("query", r#"count_over_time({job="web"}[1m])"#)]),
            "only log selector is supported",
        ),
        (
            with(&[("query", r#"{job="web"}"#), ("line_limit", "6000")]),
            "max entries limit per query exceeded",
        ),
    ] {
        let (status, body) = call(&s, "/loki/api/v1/detected_fields", &params);
        assert_eq!(status, 400, "{params:?}: {body}");
        assert!(body.as_str().unwrap().contains(needle), "{params:?}: {body}");
    }

    // ---- patterns, first from the ingesters' memory, then from the store after a flush
    let openssh_patterns = |s: &Skald| {
        let v = ok(
            s,
            "/loki/api/v1/patterns",
            &with(&[("query", r#"{job="openssh"}"#), ("step", "60s")]),
        );
        assert_eq!(v["status"], "success");
        v["data"].as_array().unwrap().clone()
    };
    let before = openssh_patterns(&s);
    assert!(before.len() >= 5, "{before:#?}");
    let totals: Vec<i64> = before.iter().map(total).collect();
    assert!(totals.windows(2).all(|w| w[0] >= w[1]), "sorted by total: {totals:?}");
    assert!(totals.iter().all(|t| *t >= 30));
    let sum: i64 = totals.iter().sum();
    assert!((1500..=2000).contains(&sum), "{sum} of 2000 lines in patterns");
    let top = before[0]["pattern"].as_str().unwrap();
    assert!(top.contains("LabSZ sshd[<_>]:"), "{top}");
    for p in &before {
        let samples = p["samples"].as_array().unwrap();
        assert!(samples.windows(2).all(|w| w[1][0].as_i64().unwrap() > w[0][0].as_i64().unwrap()));
        assert!(samples.iter().all(|x| x[0].as_i64().unwrap() % 60 == 0));
        assert!(p["level"].is_string());
    }
    let flush = post(&format!("{}/flush", s.url), &[], b"");
    assert_eq!(flush.status, 204);
    assert_eq!(openssh_patterns(&s), before, "the same patterns from the store");

    // JSON lines are mined from their `msg` field; logfmt lines as key/value pairs
    let v = ok(&s, "/loki/api/v1/patterns", &with(&[("query", r#"{job="web"}"#)]));
    let p: Vec<&str> =
        v["data"].as_array().unwrap().iter().map(|p| p["pattern"].as_str().unwrap()).collect();
    assert_eq!(p, ["<_>request <_> served for user <_>"], "{v}");
    let v = ok(&s, "/loki/api/v1/patterns", &with(&[("query", r#"{job="worker"}"#)]));
    for p in v["data"].as_array().unwrap() {
        let (pattern, level) = (p["pattern"].as_str().unwrap(), p["level"].as_str().unwrap());
        assert!(pattern.starts_with(&format!("level={level} msg=")), "{pattern}");
    }
    assert_eq!(v["data"].as_array().unwrap().iter().map(total).sum::<i64>(), 400);

    // day-old lines: in the store, but outside the pattern retention
    let (old_start, old_end) =
        ((old_base - 60 * SEC).to_string(), (old_base + 3600 * SEC).to_string());
    let old_window = [("start", old_start.as_str()), ("end", old_end.as_str())];
    let v = ok(
        &s,
        "/loki/api/v1/detected_labels",
        &[("query", r#"{job="old-ssh"}"#), old_window[0], old_window[1]],
    );
    assert_eq!(detected_labels(&v)["job"], 1);
    let v = ok(
        &s,
        "/loki/api/v1/patterns",
        &[("query", r#"{job="old-ssh"}"#), old_window[0], old_window[1]],
    );
    assert_eq!(v, json!({"status": "success", "data": []}));
    let (status, _) = call(&s, "/loki/api/v1/patterns", &with(&[("query", "")]));
    assert_eq!(status, 400);
    let (status, _) =
        call(&s, "/loki/api/v1/patterns", &with(&[("query", r#"{job="openssh"}"#), ("step", "0")]));
    assert_eq!(status, 400);

    // ---- drilldown-limits
    let r = get(&format!("{}/loki/api/v1/drilldown-limits", s.url), &[], &[TENANT]);
    assert_eq!((r.status, r.content_type.as_str()), (200, "application/json"));
    let v = r.json();
    assert_eq!(v["pattern_ingester_enabled"], true);
    assert!(!v["version"].as_str().unwrap().is_empty());
    let limits = v["limits"].as_object().unwrap();
    assert_eq!(limits["max_query_length"], "30d1h");
    assert_eq!(limits["query_timeout"], "1m");
    assert_eq!(limits["discover_log_levels"], true);
    assert_eq!(limits["volume_enabled"], true);
    assert_eq!(limits["pattern_persistence_enabled"], false);
    assert_eq!(limits["metric_aggregation_enabled"], false);
    assert!(!limits.contains_key("ingestion_rate_mb"), "not published: {v}");
    let r = get(&format!("{}/loki/api/v1/drilldown-limits", s.url), &[], &[]);
    assert_eq!(r.status, 401, "a tenant is required: {}", r.body);
}

#[test]
fn patterns_can_be_disabled() {
    let dir = temp_dir("discovery-off");
    let s = Skald::start(&dir, &format!("{CONFIG}pattern_ingester:\n  enabled: false\n"));
    let (start, end) = ((now_ns() - 3600 * SEC).to_string(), now_ns().to_string());
    let r = get(
        &format!("{}/loki/api/v1/patterns", s.url),
        &[("query", r#"{job="x"}"#), ("start", start.as_str()), ("end", end.as_str())],
        &[TENANT],
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let v = get(&format!("{}/loki/api/v1/drilldown-limits", s.url), &[], &[TENANT]).json();
    assert_eq!(v["pattern_ingester_enabled"], false);
}

/// The reference dataset (three weeks old) with `pattern_ingester.retain_for: 8760h`: the
/// answers to `queries-patterns.json` next to what Loki found with the same retention
/// (`tests/data/reference/loki-patterns`). Drain is approximate, but both implement the same
/// algorithm with the same settings over the same lines, so the patterns, their levels and
/// their per-step counts are expected to agree; the comparison is printed.
#[test]
fn patterns_agree_with_loki_on_the_reference_dataset() {
    let dir = temp_dir("discovery-reference");
    let s =
        Skald::start(&dir, &format!("{REFERENCE_CONFIG}pattern_ingester:\n  retain_for: 8760h\n"));
    push_reference_dataset(&s, "tenant-a");
    let reference = data_dir().join("reference");
    let queries: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(reference.join("queries-patterns.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(queries.len(), 4);
    for q in &queries {
        let name = q["name"].as_str().unwrap();
        let params: Vec<(String, String)> = q["params"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let p: Vec<(&str, &str)> = params.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let r = get(
            &format!("{}{}", s.url, q["path"].as_str().unwrap()),
            &p,
            &[("X-Scope-OrgID", "tenant-a")],
        );
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let ours = r.json()["data"].as_array().unwrap().clone();
        let loki: Value = serde_json::from_str(
            &std::fs::read_to_string(reference.join("loki-patterns").join(format!("{name}.json")))
                .unwrap(),
        )
        .unwrap();
        let loki = loki["body"]["data"].as_array().unwrap().clone();
        let key = |p: &Value| {
            (p["pattern"].as_str().unwrap().to_string(), p["level"].as_str().unwrap().to_string())
        };
        let by_key = |v: &[Value]| -> BTreeMap<(String, String), Value> {
            v.iter().map(|p| (key(p), p.clone())).collect()
        };
        let (o, l) = (by_key(&ours), by_key(&loki));
        let common = o.keys().filter(|k| l.contains_key(*k)).count();
        let same_samples = o
            .iter()
            .filter(|(k, p)| l.get(*k).is_some_and(|x| x["samples"] == p["samples"]))
            .count();
        let sum = |v: &[Value]| v.iter().map(total).sum::<i64>();
        println!(
            "{name}: Loki {} patterns ({} lines), Skald {} ({} lines); {common} in common, {same_samples} with equal samples",
            l.len(),
            sum(&loki),
            o.len(),
            sum(&ours)
        );
        for k in o.keys().filter(|k| !l.contains_key(*k)) {
            println!("  only in Skald: {k:?}");
        }
        for k in l.keys().filter(|k| !o.contains_key(*k)) {
            println!("  only in Loki: {k:?}");
        }
        // the top patterns agree, in order of their totals
        let top = |v: &[Value]| -> Vec<((String, String), i64)> {
            v.iter().take(3).map(|p| (key(p), total(p))).collect()
        };
        assert_eq!(top(&ours), top(&loki), "{name}: top patterns");
        assert_eq!(
            o.keys().collect::<Vec<_>>(),
            l.keys().collect::<Vec<_>>(),
            "{name}: pattern sets"
        );
        assert_eq!(sum(&ours), sum(&loki), "{name}: lines in patterns");
        assert_eq!(same_samples, l.len(), "{name}: per-step counts");
    }
    // with Loki's default retention (3h) the same data is too old: the recorded empty answer
    let dir = temp_dir("discovery-reference-default");
    let s = Skald::start(&dir, REFERENCE_CONFIG);
    push_reference_dataset(&s, "tenant-a");
    let r = get(
        &format!("{}/loki/api/v1/patterns", s.url),
        &[
            ("query", r#"{job="openssh"}"#),
            ("start", "1793491200000000000"),
            ("end", "1793498400000000000"),
        ],
        &[("X-Scope-OrgID", "tenant-a")],
    );
    assert_eq!(r.json(), json!({"status": "success", "data": []}));
}
