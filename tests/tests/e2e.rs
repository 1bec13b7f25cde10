//! End to end over real sockets: start `skald`, push real loghub lines (protobuf+snappy, JSON,
//! gzip), query them back, feed it bad inputs, restart it, and query again.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use skald_integration_tests::{data_dir, encode_push_protobuf, get, gzip, post, temp_dir, Skald};

const CONFIG: &str = "auth_enabled: true
limits_config:
  max_line_size: 8KB
  ingestion_rate_mb: 64
  ingestion_burst_size_mb: 128
";

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

fn loghub(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(data_dir().join("loghub").join(name)).unwrap();
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn query_range(s: &Skald, query: &str, start: i64, end: i64, extra: &[(&str, &str)]) -> Value {
    let (st, en) = (start.to_string(), end.to_string());
    let mut p = vec![("query", query), ("start", st.as_str()), ("end", en.as_str())];
    p.extend_from_slice(extra);
    let r = get(&format!("{}/loki/api/v1/query_range", s.url), &p, &[("X-Scope-OrgID", "t1")]);
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    r.json()
}

/// All lines returned for a log query, oldest first.
fn lines(v: &Value) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for s in v["data"]["result"].as_array().unwrap() {
        for e in s["values"].as_array().unwrap() {
            out.push((e[0].as_str().unwrap().parse().unwrap(), e[1].as_str().unwrap().to_string()));
        }
    }
    out.sort();
    out
}

fn count(s: &Skald, selector: &str, start: i64, end: i64) -> usize {
    lines(&query_range(s, selector, start, end, &[("limit", "5000"), ("direction", "forward")]))
        .len()
}

#[test]
fn push_query_restart_and_bad_inputs() {
    let dir = temp_dir("e2e");
    let mut s = Skald::start(&dir, CONFIG);
    let base = now_ns() - 30 * 60 * 1_000_000_000;
    let (start, end) = (base - 1_000_000_000, now_ns() + 60_000_000_000);
    let push_url = format!("{}/loki/api/v1/push", s.url);

    // protobuf + snappy, as promtail sends it
    let apache = loghub("Apache_2k.log");
    let entries: Vec<(i64, String)> = apache
        .iter()
        .enumerate()
        .map(|(i, l)| (base + i as i64 * 100_000_000, l.clone()))
        .collect();
    let body = encode_push_protobuf(&[("{job=\"apache\", env=\"e2e\"}", entries.clone())]);
    let r = post(
        &push_url,
        &[("Content-Type", "application/x-protobuf"), ("X-Scope-OrgID", "t1")],
        &body,
    );
    assert_eq!(r.status, 204, "{}", r.body);

    // JSON, and JSON + gzip
    let ssh = loghub("OpenSSH_2k.log");
    let values: Vec<Value> = ssh
        .iter()
        .enumerate()
        .map(|(i, l)| json!([(base + i as i64 * 100_000_000).to_string(), l]))
        .collect();
    let body = json!({"streams": [{"stream": {"job": "openssh", "env": "e2e"}, "values": values}]})
        .to_string();
    let r = post(
        &push_url,
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", "t1")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let hdfs = loghub("HDFS_2k.log");
    let values: Vec<Value> = hdfs
        .iter()
        .enumerate()
        .map(|(i, l)| json!([(base + i as i64 * 100_000_000).to_string(), l]))
        .collect();
    let body = json!({"streams": [{"stream": {"job": "hdfs", "env": "e2e"}, "values": values}]})
        .to_string();
    let r = post(
        &push_url,
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
            ("X-Scope-OrgID", "t1"),
        ],
        &gzip(body.as_bytes()),
    );
    assert_eq!(r.status, 204, "{}", r.body);

    // Everything reads back exactly.
    let got = lines(&query_range(&s, "{job=\"apache\"}", start, end, &[("limit", "5000")]));
    assert_eq!(got, entries, "apache lines differ");
    assert_eq!(count(&s, "{job=\"openssh\"}", start, end), ssh.len());
    assert_eq!(count(&s, "{job=\"hdfs\"}", start, end), hdfs.len());
    let needle = query_range(
        &s,
        "{env=\"e2e\"} |= \"Failed password for invalid user\"",
        start,
        end,
        &[("limit", "5000")],
    );
    let expected = ssh.iter().filter(|l| l.contains("Failed password for invalid user")).count();
    assert!(expected > 0);
    assert_eq!(lines(&needle).len(), expected);
    let m = query_range(
        &s,
        "sum by (job) (count_over_time({env=\"e2e\"}[1h]))",
        end - 1,
        end,
        &[("step", "60")],
    );
    let total: f64 = m["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["values"][0][1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(total as usize, apache.len() + ssh.len() + hdfs.len());
    let labels = get(
        &format!("{}/loki/api/v1/label/job/values", s.url),
        &[("start", &start.to_string()), ("end", &end.to_string())],
        &[("X-Scope-OrgID", "t1")],
    );
    assert_eq!(labels.json()["data"], json!(["apache", "hdfs", "openssh"]));

    // Bad inputs: each rejected with the right status, nothing accepted is lost.
    let garbage = snap::raw::Encoder::new().compress_vec(&[0xff, 0xff, 0xff, 0x01, 0x02]).unwrap();
    let r = post(
        &push_url,
        &[("Content-Type", "application/x-protobuf"), ("X-Scope-OrgID", "t1")],
        &garbage,
    );
    assert_eq!(r.status, 400, "malformed protobuf: {}", r.body);
    let r = post(
        &push_url,
        &[("Content-Type", "application/x-protobuf"), ("X-Scope-OrgID", "t1")],
        b"\xff\xff\xff\xff\xff not snappy",
    );
    assert_eq!(r.status, 400, "bad snappy: {}", r.body);
    let bomb = gzip(&vec![b'{'; 300 * 1024 * 1024]);
    let r = post(
        &push_url,
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
            ("X-Scope-OrgID", "t1"),
        ],
        &bomb,
    );
    assert_eq!(r.status, 413, "gzip bomb: {}", r.body);
    let long = "x".repeat(20_000);
    let body =
        json!({"streams": [{"stream": {"job": "long"}, "values": [[base.to_string(), long]]}]})
            .to_string();
    let r = post(
        &push_url,
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", "t1")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 400, "oversized line: {}", r.body);
    assert!(r.body.contains("exceeded"), "{}", r.body);
    let body =
        json!({"streams": [{"stream": {"0bad": "x"}, "values": [[base.to_string(), "hi"]]}]})
            .to_string();
    let r = post(
        &push_url,
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", "t1")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 400, "bad label name: {}", r.body);
    let r = post(&push_url, &[("Content-Type", "application/json")], b"{\"streams\":[]}");
    assert_eq!(r.status, 401, "missing tenant: {}", r.body);
    let r = post(
        &push_url,
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", "../etc")],
        b"{\"streams\":[]}",
    );
    assert!(r.status == 400 || r.status == 401, "bad tenant id: {} {}", r.status, r.body);
    let r = get(
        &format!("{}/loki/api/v1/query_range", s.url),
        &[("query", "{job=\"apache\"} |= ")],
        &[("X-Scope-OrgID", "t1")],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.starts_with("parse error at line 1, col "), "{}", r.body);
    assert_eq!(count(&s, "{job=\"apache\"}", start, end), apache.len());
    assert_eq!(count(&s, "{job=\"openssh\"}", start, end), ssh.len());

    // Grafana's Save & test.
    let r = get(
        &format!("{}/loki/api/v1/query", s.url),
        &[("query", "vector(1)+vector(1)"), ("time", "4")],
        &[("X-Scope-OrgID", "t1")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["result"][0]["value"][1], json!("2"));

    // SIGTERM writes a WAL checkpoint (Loki's default `flush_on_shutdown: false`); after a
    // restart all of it is replayed and served again.
    s.restart();
    let wal_files = walk(&dir.join("data").join("wal"));
    assert!(wal_files > 0, "no WAL checkpoint was written");
    let got = lines(&query_range(&s, "{job=\"apache\"}", start, end, &[("limit", "5000")]));
    assert_eq!(got, entries, "apache lines differ after restart");
    assert_eq!(count(&s, "{job=\"openssh\"}", start, end), ssh.len());
    assert_eq!(count(&s, "{job=\"hdfs\"}", start, end), hdfs.len());
    assert!(s.stop().success());
}

fn walk(dir: &std::path::Path) -> usize {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                n += walk(&p);
            } else {
                n += 1;
            }
        }
    }
    n
}

/// Lines pushed with old timestamps (a backfill) answer before they are flushed, whatever
/// `query_ingesters_within` says (Loki hides them until then); lines of one stream with one
/// timestamp come back in the order they were pushed (reversed backward), as Loki returns them.
#[test]
fn backfilled_lines_answer_before_flush_and_equal_timestamps_keep_push_order() {
    let dir = temp_dir("backfill");
    let config = format!("{CONFIG}querier:\n  query_ingesters_within: 3h\n");
    let s = Skald::start(&dir, &config);
    let day = 24 * 3600 * 1_000_000_000i64;
    let old = now_ns() - 2 * day;
    let values: Vec<Value> = (0..50)
        .map(|i| json!([(old + i * 1_000_000_000).to_string(), format!("backfill {i}")]))
        .collect();
    // three lines with one timestamp, pushed in an order that is not the lines' text order
    let same: Vec<Value> =
        ["zeta", "alpha", "mid"].iter().map(|l| json!([(old + day).to_string(), l])).collect();
    for vals in [values, same] {
        let body = json!({"streams": [{"stream": {"job": "backfill"}, "values": vals}]});
        let r = post(
            &format!("{}/loki/api/v1/push", s.url),
            &[("Content-Type", "application/json"), ("X-Scope-OrgID", "t1")],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let (start, end) = (old - 1, old + day + 1);
    assert_eq!(count(&s, r#"{job="backfill"}"#, start, end), 53);
    let in_order = |direction: &str, limit: &str| -> Vec<String> {
        let v = query_range(
            &s,
            r#"{job="backfill"} |= "a""#,
            old + day - 1,
            end,
            &[("limit", limit), ("direction", direction)],
        );
        v["data"]["result"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[1].as_str().unwrap().to_string())
            .collect()
    };
    // real Loki (main-65e30f8) answered the same pushes (zeta, alpha, mid, alpha again) with
    // zeta, alpha, mid forward and mid, alpha, zeta backward; limit 1 gave zeta and mid
    assert_eq!(in_order("forward", "100"), ["zeta", "alpha"]);
    assert_eq!(in_order("backward", "100"), ["alpha", "zeta"]);
    assert_eq!(in_order("forward", "1"), ["zeta"]);
    assert_eq!(in_order("backward", "1"), ["alpha"]);
}
