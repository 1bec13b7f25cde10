//! `/loki/api/v1/index/stats`, `/index/volume` and `/index/volume_range` over a real `skald`
//! and real sockets, with data both flushed to the store and still in the ingester: chunk
//! sizes counted as Loki counts them (lines, 8 bytes per structured-metadata pair, distinct
//! structured-metadata strings once) in whole KiB, pro-rated by time for chunks partly in
//! range, the same answers before and after the ingester flushes, chunks cut at sync points,
//! and Loki's errors. (The byte-exact comparison with Loki's recorded answers is in
//! `reference.rs`.)

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use serde_json::{json, Value};
use skald_integration_tests::{get, now_ns, post, temp_dir, Resp, Skald};

/// 2026-11-01T00:00:00Z in seconds.
const T0: i64 = 1_793_491_200;
const NS: i64 = 1_000_000_000;
const TENANT: (&str, &str) = ("X-Scope-OrgID", "t");

/// Ingesters are asked whatever the data's age (the data is from 2026), no detected_level is
/// added (so that the sizes are the lines' and metadata's alone), and no chunk is cut at a
/// sync point (`chunks_are_cut_at_sync_points` covers that).
const CONFIG: &str = "auth_enabled: true
limits_config:
  reject_old_samples: false
  discover_log_levels: false
querier:
  query_ingesters_within: 0s
ingester:
  sync_period: 0s
";

/// Pushes `n` entries of `stream`, one per second from `start` (seconds), lines of `len`
/// bytes, each with the structured metadata `meta` when given.
fn push(s: &Skald, stream: Value, start: i64, n: i64, len: usize, meta: Option<Value>) {
    let values: Vec<Value> = (0..n)
        .map(|i| {
            let ts = ((start + i) * NS).to_string();
            let line = format!("{i:0len$}");
            match &meta {
                Some(m) => json!([ts, line, m]),
                None => json!([ts, line]),
            }
        })
        .collect();
    let body = json!({"streams": [{"stream": stream, "values": values}]}).to_string();
    let r = post(
        &format!("{}/loki/api/v1/push", s.url),
        &[("Content-Type", "application/json"), TENANT],
        body.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
}

fn flush(s: &Skald) {
    let r = post(&format!("{}/flush", s.url), &[], b"");
    assert_eq!(r.status, 204, "{}", r.body);
}

fn index(s: &Skald, endpoint: &str, params: &[(&str, &str)]) -> Resp {
    get(&format!("{}/loki/api/v1/index/{endpoint}", s.url), params, &[TENANT])
}

fn ok(r: Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.content_type, "application/json; charset=UTF-8");
    r.json()
}

/// The `data.result` of a volume answer without `stats`, and its result type.
fn result(v: &Value) -> (String, Value) {
    assert_eq!(v["status"], "success");
    (v["data"]["resultType"].as_str().unwrap().to_string(), v["data"]["result"].clone())
}

const KIB: i64 = 1024;

/// A millisecond timestamp as Loki writes it in a matrix: float seconds.
fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Everything the answers below depend on, asked in one go, so that it can be asked again
/// after a flush (volume answers without their `stats`, whose `execTime` varies).
fn answers(s: &Skald) -> Vec<Value> {
    let mut v = ask(s);
    for a in &mut v {
        if let Some(data) = a.get_mut("data").and_then(Value::as_object_mut) {
            assert!(data.remove("stats").is_some_and(|st| st["summary"].is_object()));
        }
    }
    v
}

fn ask(s: &Skald) -> Vec<Value> {
    let (start, end) = ((T0 * NS).to_string(), ((T0 + 3600) * NS).to_string());
    let range: [(&str, &str); 2] = [("start", &start), ("end", &end)];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut p: Vec<(&str, &str)> = range.to_vec();
        p.extend_from_slice(extra);
        p
    };
    let part = ((T0 + 50) * NS).to_string();
    vec![
        ok(index(s, "stats", &with(&[("query", r#"{env="a"}"#)]))),
        ok(index(s, "stats", &[("query", r#"{env="a"}"#), ("start", &part), ("end", &end)])),
        ok(index(s, "volume", &with(&[("query", r#"{env="a"}"#)]))),
        ok(index(s, "volume", &with(&[("query", r#"{env="a"}"#), ("targetLabels", "host")]))),
        ok(index(
            s,
            "volume",
            &with(&[("query", r#"{env="a"}"#), ("targetLabels", "host"), ("limit", "1")]),
        )),
        ok(index(s, "volume", &with(&[("query", r#"{job=~".+"}"#), ("aggregateBy", "labels")]))),
        ok(index(
            s,
            "volume_range",
            &[("query", r#"{job="vol"}"#), ("start", &start), ("end", &end), ("step", "600")],
        )),
    ]
}

#[test]
fn stats_and_volume_count_stored_and_held_chunks_alike() {
    let dir = temp_dir("volume");
    let s = Skald::start(&dir, CONFIG);
    // h1, first chunk (stored): 100 × (1000 + 8) + "trace_id" + "abc" = 100 811 B → 98 KiB
    push(
        &s,
        json!({"job": "vol", "env": "a", "host": "h1"}),
        T0,
        100,
        1000,
        Some(json!({"trace_id": "abc"})),
    );
    // h2 (stored): 100 × 256 B = 25 KiB, across the 10-minute mark
    push(&s, json!({"job": "vol", "env": "a", "host": "h2"}), T0 + 550, 100, 256, None);
    flush(&s);
    // h1, second chunk (in the ingester): 100 × 2000 B = 195.3 KiB → 195
    push(&s, json!({"job": "vol", "env": "a", "host": "h1"}), T0 + 1200, 100, 2000, None);
    // another job (in the ingester): 10 × 100 B → 1 KiB
    push(&s, json!({"job": "other", "env": "b"}), T0 + 1500, 10, 100, None);

    let before = answers(&s);

    // all of it: 3 chunks of env="a"
    assert_eq!(
        before[0],
        json!({"streams": 2, "chunks": 3, "entries": 300, "bytes": (98 + 25 + 195) * KIB})
    );
    // from T0+50s: h1's first chunk counts for 49 of its 99 seconds (48 KiB, 49 entries)
    assert_eq!(
        before[1],
        json!({"streams": 2, "chunks": 3, "entries": 249, "bytes": (48 + 25 + 195) * KIB})
    );
    // one series per value of the matched labels, stamped with the end
    let end = T0 + 3600;
    assert_eq!(
        result(&before[2]),
        (
            "vector".into(),
            json!([{"metric": {"env": "a"}, "value": [end, ((98 + 25 + 195) * KIB).to_string()]}])
        )
    );
    // targetLabels: grouped by host, largest first; limit keeps the largest
    let h1 = json!({"metric": {"host": "h1"}, "value": [end, ((98 + 195) * KIB).to_string()]});
    let h2 = json!({"metric": {"host": "h2"}, "value": [end, (25 * KIB).to_string()]});
    assert_eq!(result(&before[3]), ("vector".into(), json!([h1.clone(), h2])));
    assert_eq!(result(&before[4]), ("vector".into(), json!([h1])));
    // aggregateBy=labels: per label name (service_name is added from job); ties by name
    let all = ((98 + 25 + 195 + 1) * KIB).to_string();
    let host = ((98 + 25 + 195) * KIB).to_string();
    assert_eq!(
        result(&before[5]),
        (
            "vector".into(),
            json!([
                {"metric": {"env": ""}, "value": [end, all]},
                {"metric": {"job": ""}, "value": [end, all]},
                {"metric": {"service_name": ""}, "value": [end, all]},
                {"metric": {"host": ""}, "value": [end, host]},
            ])
        )
    );
    // volume_range, 10-minute steps stamped with each step's last millisecond (the last with
    // the end): h2's chunk is split between the first two steps (12 KiB each, truncated), the
    // second h1 chunk is in the third, nothing in the rest
    assert_eq!(
        result(&before[6]),
        (
            "matrix".into(),
            json!([{"metric": {"job": "vol"}, "values": [
                [secs(T0 * 1000 + 599_999), ((98 + 12) * KIB).to_string()],
                [secs(T0 * 1000 + 1_199_999), (12 * KIB).to_string()],
                [secs(T0 * 1000 + 1_799_999), (195 * KIB).to_string()],
            ]}])
        )
    );

    // once everything is flushed, the index says the same
    flush(&s);
    assert_eq!(answers(&s), before);

    // POST with a form body
    let body = format!("query=%7Benv%3D%22a%22%7D&start={}&end={}", T0 * NS, end * NS);
    let r = post(
        &format!("{}/loki/api/v1/index/stats", s.url),
        &[("Content-Type", "application/x-www-form-urlencoded"), TENANT],
        body.as_bytes(),
    );
    assert_eq!(ok(r), before[0]);
}

#[test]
fn recent_data_is_found_in_the_ingester_with_default_settings() {
    let dir = temp_dir("volume-recent");
    let s = Skald::start(&dir, "auth_enabled: true\n");
    let start = now_ns() / NS - 120;
    push(&s, json!({"job": "recent"}), start, 60, 100, None);
    let (from, to) = (((start - 60) * NS).to_string(), ((start + 120) * NS).to_string());
    let st =
        ok(index(&s, "stats", &[("query", r#"{job="recent"}"#), ("start", &from), ("end", &to)]));
    // (a UTC midnight inside the range would count the stream once per day)
    assert!(st["streams"].as_u64().unwrap() >= 1, "{st}");
    assert!(st["entries"].as_u64().unwrap() >= 59, "{st}");
    assert!(st["bytes"].as_u64().unwrap() >= 6 * 1024, "{st}");
    let v =
        ok(index(&s, "volume", &[("query", r#"{job="recent"}"#), ("start", &from), ("end", &to)]));
    assert_eq!(v["data"]["result"][0]["metric"], json!({"job": "recent"}), "{v}");
}

#[test]
fn chunks_are_cut_at_sync_points() {
    // a chunk is 10% full after 2 kB: every sync point crossed cuts
    let config = "auth_enabled: true
limits_config:
  reject_old_samples: false
  discover_log_levels: false
ingester:
  chunk_target_size: 20000
";
    let dir = temp_dir("volume-sync");
    let s = Skald::start(&dir, config);
    // 65 minutes, one 100-byte line every 30 s
    let values: Vec<Value> =
        (0..130).map(|i| json!([((T0 + i * 30) * NS).to_string(), format!("{i:0100}")])).collect();
    let body = json!({"streams": [{"stream": {"job": "sync"}, "values": values}]}).to_string();
    let r = post(
        &format!("{}/loki/api/v1/push", s.url),
        &[("Content-Type", "application/json"), TENANT],
        body.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    flush(&s);
    // The stream {job="sync", service_name="sync"} has Loki fingerprint (xxHash64 of its
    // labels) 11378348238046213798, which puts its sync points at T0 + 2561.95 s + k hours:
    // the entry at T0 + 2580 s starts a new chunk. 86 × 100 B → 8 KiB, 44 × 100 B → 4 KiB.
    let (from, to) = ((T0 * NS).to_string(), ((T0 + 7200) * NS).to_string());
    let st =
        ok(index(&s, "stats", &[("query", r#"{job="sync"}"#), ("start", &from), ("end", &to)]));
    assert_eq!(st, json!({"streams": 1, "chunks": 2, "entries": 130, "bytes": 12 * KIB}));
    // the first 2580 s: all of the first chunk, none of the second
    let cut = ((T0 + 2580) * NS).to_string();
    let st =
        ok(index(&s, "stats", &[("query", r#"{job="sync"}"#), ("start", &from), ("end", &cut)]));
    assert_eq!(st, json!({"streams": 1, "chunks": 1, "entries": 86, "bytes": 8 * KIB}));

    // with sync_period: 0s the same data stays one chunk
    let dir = temp_dir("volume-nosync");
    let s = Skald::start(&dir, &format!("{config}  sync_period: 0s\n"));
    let r = post(
        &format!("{}/loki/api/v1/push", s.url),
        &[("Content-Type", "application/json"), TENANT],
        body.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    flush(&s);
    let st =
        ok(index(&s, "stats", &[("query", r#"{job="sync"}"#), ("start", &from), ("end", &to)]));
    assert_eq!(st, json!({"streams": 1, "chunks": 1, "entries": 130, "bytes": 13 * KIB}));
}

#[test]
fn errors_are_lokis() {
    let dir = temp_dir("volume-errors");
    let s = Skald::start(&dir, "auth_enabled: true\nlimits_config:\n  volume_enabled: false\n");
    let text = |r: Resp, status: u16, body: &str| {
        assert_eq!((r.status, r.body.as_str()), (status, body));
        assert_eq!(r.content_type, "text/plain; charset=utf-8");
    };
    text(index(&s, "stats", &[]), 400, "parse error : syntax error: unexpected $end");
    text(
        index(&s, "stats", &[("query", r#"{job="a"} |= "x""#)]),
        400,
        "only label matchers are supported",
    );
    text(
        index(&s, "stats", &[("query", r#"{job="a"}"#), ("start", "2"), ("end", "1")]),
        400,
        "end timestamp must not be before or equal to start time",
    );
    // parameters are checked before volume_enabled, the query after it
    text(
        index(&s, "volume", &[("query", r#"{job="a"}"#), ("aggregateBy", "streams")]),
        400,
        "invalid aggregation option",
    );
    text(
        index(&s, "volume", &[("query", r#"{job="a"}"#), ("limit", "-1")]),
        400,
        "limit must be a positive value",
    );
    text(
        index(&s, "volume_range", &[("query", r#"{job="a"}"#), ("step", "0")]),
        400,
        "zero or negative query resolution step widths are not accepted. Try a positive integer",
    );
    text(index(&s, "volume", &[("query", r#"{job="a"}"#)]), 404, "not found");
    text(index(&s, "volume_range", &[]), 404, "not found");
    // stats do not depend on volume_enabled
    assert_eq!(
        ok(index(&s, "stats", &[("query", r#"{job="a"}"#)])),
        json!({"streams": 0, "chunks": 0, "entries": 0, "bytes": 0})
    );

    let dir = temp_dir("volume-errors-enabled");
    let s = Skald::start(&dir, "auth_enabled: true\n");
    text(index(&s, "volume", &[]), 400, "parse error : syntax error: unexpected $end");
    text(
        index(&s, "volume", &[("query", r#"{job=~".*"}"#)]),
        400,
        r#"parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~".*" does not meet this requirement, but app=~".+" will"#,
    );
    // nothing stored: empty answers of the right shapes
    let v = ok(index(&s, "volume", &[("query", r#"{job="a"}"#)]));
    assert_eq!(result(&v), ("vector".into(), json!([])));
    let v = ok(index(&s, "volume", &[("query", "{}")]));
    assert_eq!(result(&v), ("vector".into(), json!([])));
}
