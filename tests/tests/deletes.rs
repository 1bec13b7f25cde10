//! Loki's delete API over a real `skald` and real sockets: a request is created (204, its id
//! in `X-Delete-Request-Id`) and listed, the lines it covers vanish at once from log and
//! metric queries (chunks in the store and lines the ingester still holds alike), a second
//! request is cancelled within its window and its lines come back, one past its window can no
//! longer be cancelled, and a deletion pass (`POST /compactor/process_deletes`, until the
//! compactor runs it) rewrites the chunks: every stored chunk object is then read back with
//! `skald_chunk` and holds none of the deleted lines and every other line. Refusals carry
//! Loki's statuses and texts (recorded from Loki 3.x, `main-65e30f8`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use skald_integration_tests::{get, now_ns, post, temp_dir, Resp, Skald};

const NS: i64 = 1_000_000_000;
const TENANT: (&str, &str) = ("X-Scope-OrgID", "t");
/// Requests may be cancelled for 3 s, then a pass applies them.
const CONFIG: &str = "auth_enabled: true
compactor:
  delete_request_cancel_period: 3s
";

fn request(method: &str, url: &str, params: &[(&str, &str)]) -> (Resp, Option<String>) {
    let mut req =
        ureq::request(method, url).timeout(Duration::from_secs(60)).set(TENANT.0, TENANT.1);
    for (k, v) in params {
        req = req.query(k, v);
    }
    let r = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let id = r.header("X-Delete-Request-Id").map(str::to_string);
    let status = r.status();
    let content_type = r.header("Content-Type").unwrap_or("").to_string();
    let body = r.into_string().unwrap();
    (Resp { status, content_type, body }, id)
}

fn push(s: &Skald, stream: Value, values: Vec<(i64, String)>) {
    let values: Vec<Value> = values.into_iter().map(|(ts, l)| json!([ts.to_string(), l])).collect();
    let body = json!({"streams": [{"stream": stream, "values": values}]});
    let r = post(
        &format!("{}/loki/api/v1/push", s.url),
        &[("Content-Type", "application/json"), TENANT],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
}

fn flush(s: &Skald) {
    let r = post(&format!("{}/flush", s.url), &[], b"");
    assert_eq!(r.status, 204, "{}", r.body);
}

/// Every line a log query returns, sorted.
fn query_lines(s: &Skald, q: &str, (start, end): (i64, i64)) -> Vec<String> {
    let (start, end) = (start.to_string(), end.to_string());
    let params =
        [("query", q), ("start", start.as_str()), ("end", end.as_str()), ("limit", "5000")];
    let r = get(&format!("{}/loki/api/v1/query_range", s.url), &params, &[TENANT]);
    assert_eq!(r.status, 200, "{q}: {}", r.body);
    let mut out: Vec<String> = r.json()["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["values"].as_array().unwrap().iter().map(|v| v[1].as_str().unwrap().to_string())
        })
        .collect();
    out.sort();
    out
}

/// `sum(count_over_time(q[2h]))` at `end`.
fn count(s: &Skald, selector: &str, end: i64) -> i64 {
    let q = format!("sum(count_over_time({selector}[2h]))");
    let end = end.to_string();
    let params = [("query", q.as_str()), ("time", end.as_str())];
    let r = get(&format!("{}/loki/api/v1/query", s.url), &params, &[TENANT]);
    assert_eq!(r.status, 200, "{q}: {}", r.body);
    let v = r.json();
    match v["data"]["result"].as_array().unwrap().first() {
        Some(sample) => sample["value"][1].as_str().unwrap().parse().unwrap(),
        None => 0,
    }
}

/// Every line of every chunk object of tenant `t` under `dir`, read with `skald_chunk`.
fn stored_lines(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    let mut lines = Vec::new();
    let mut chunks = 0;
    for f in files.iter().filter(|p| p.to_string_lossy().contains("/t/chunks/")) {
        let bytes = std::fs::read(f).unwrap();
        let chunk = skald_chunk::Chunk::parse(&bytes).unwrap();
        chunks += 1;
        for e in chunk.iter_entries(i64::MIN, i64::MAX) {
            lines.push(e.unwrap().line);
        }
    }
    assert!(chunks > 0, "no chunk objects under {}", dir.display());
    lines.sort();
    lines
}

#[test]
fn delete_requests_hide_then_remove_lines() {
    let dir = temp_dir("deletes");
    let s = Skald::start(&dir, CONFIG);
    let delete_url = format!("{}/loki/api/v1/delete", s.url);
    let t0 = now_ns() - 30 * 60 * NS;
    let line = |app: &str, i: usize| {
        if i.is_multiple_of(5) {
            format!("{app} {i} password=secret")
        } else {
            format!("{app} {i} ok")
        }
    };
    // flushed chunks of two streams, each with secrets
    for app in ["a", "b"] {
        let values = (0..100).map(|i| (t0 + i as i64 * NS, line(app, i))).collect();
        push(&s, json!({"app": app}), values);
    }
    flush(&s);
    let range = (t0 - NS, now_ns());
    let all_a: Vec<String> = query_lines(&s, r#"{app="a"}"#, range);
    assert_eq!(all_a.len(), 100);

    // refusals, with Loki's texts
    let (r, _) = request("POST", &delete_url, &[("query", r#"{app="a"}"#)]);
    assert_eq!((r.status, r.body.as_str()), (400, "start time not set\n"));
    let (r, _) = request("POST", &delete_url, &[]);
    assert_eq!((r.status, r.body.as_str()), (400, "query not set\n"));
    assert_eq!(r.content_type, "text/plain; charset=utf-8");
    let start = ((t0 - 60 * NS) / NS).to_string();
    let (r, _) = request("POST", &delete_url, &[("query", "{app=\"a\""), ("start", &start)]);
    assert_eq!((r.status, r.body.as_str()), (400, "invalid query expression\n"));
    let future = (now_ns() / NS + 3600).to_string();
    let (r, _) = request(
        "POST",
        &delete_url,
        &[("query", r#"{app="a"}"#), ("start", &start), ("end", &future)],
    );
    assert_eq!((r.status, r.body.as_str()), (400, "deletes in the future are not allowed\n"));

    // create: the secrets of app=a, and everything of app=b
    let (r, deleted_a) =
        request("POST", &delete_url, &[("query", r#"{app="a"} |= "secret""#), ("start", &start)]);
    assert_eq!(r.status, 204, "{}", r.body);
    let deleted_a = deleted_a.expect("X-Delete-Request-Id");
    let (r, all_b) = request("PUT", &delete_url, &[("query", r#"{app="b"}"#), ("start", &start)]);
    assert_eq!(r.status, 204, "{}", r.body);
    let all_b = all_b.unwrap();
    let (r, _) = request("GET", &delete_url, &[]);
    assert_eq!((r.status, r.content_type.as_str()), (200, "application/json"));
    let listed: Value = serde_json::from_str(&r.body).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{}", r.body);
    assert_eq!(listed[0]["request_id"], deleted_a.as_str());
    assert_eq!(listed[0]["query"], r#"{app="a"} |= "secret""#);
    assert_eq!(listed[0]["status"], "received");
    assert_eq!(listed[0]["start_time"].as_i64().unwrap(), t0 / NS - 60);
    assert!(listed[0]["created_at"].as_f64().unwrap() > 0.0);
    assert_eq!(listed[0]["user_id"], "");

    // lines the ingester still holds are hidden too
    let late: Vec<(i64, String)> = (100..110).map(|i| (t0 + i as i64 * NS, line("a", i))).collect();
    push(&s, json!({"app": "a"}), late);

    // hidden at once, from log and metric queries
    let range = (t0 - NS, now_ns());
    let kept_a: Vec<String> =
        (0..110usize).filter(|i| !i.is_multiple_of(5)).map(|i| line("a", i)).collect::<Vec<_>>();
    let mut kept_sorted = kept_a.clone();
    kept_sorted.sort();
    assert_eq!(query_lines(&s, r#"{app="a"}"#, range), kept_sorted);
    assert!(query_lines(&s, r#"{app="a"} |= "secret""#, range).is_empty());
    assert!(query_lines(&s, r#"{app="b"}"#, range).is_empty());
    assert_eq!(count(&s, r#"{app="a"}"#, range.1), kept_a.len() as i64);
    assert_eq!(count(&s, r#"{app="b"}"#, range.1), 0);
    assert_eq!(count(&s, r#"{app=~"a|b"} |= "ok""#, range.1), kept_a.len() as i64);

    // cancel app=b within its window: its lines come back at once
    let (r, _) = request("DELETE", &delete_url, &[("request_id", &all_b)]);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(query_lines(&s, r#"{app="b"}"#, range).len(), 100);
    assert_eq!(count(&s, r#"{app="b"}"#, range.1), 100);
    let (r, _) = request("DELETE", &delete_url, &[("request_id", &all_b)]);
    assert_eq!((r.status, r.body.as_str()), (404, "could not find delete request with given id\n"));

    // a request past its cancel period can no longer be cancelled
    let (r, nothing) =
        request("POST", &delete_url, &[("query", r#"{app="none"}"#), ("start", &start)]);
    assert_eq!(r.status, 204, "{}", r.body);
    flush(&s);
    std::thread::sleep(Duration::from_millis(3500));
    let (r, _) = request("DELETE", &delete_url, &[("request_id", &nothing.unwrap())]);
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "deletion of request which is in process or already processed is not allowed\n")
    );

    // the deletion pass: the bytes are gone from the stored chunks, nothing else is
    let before = stored_lines(&s.dir);
    assert!(before.iter().any(|l| l.starts_with("a ") && l.contains("secret")));
    let r = post(&format!("{}/compactor/process_deletes", s.url), &[TENANT], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    let report = r.json();
    assert_eq!(report["lines_deleted"], 22, "{report}");
    assert_eq!(report["parts_processed"], 2, "{report}");
    let after = stored_lines(&s.dir);
    let mut expected: Vec<String> = kept_a.clone();
    expected.extend((0..100).map(|i| line("b", i)));
    expected.sort();
    assert_eq!(after, expected);

    // queries answer the same; the request is listed as processed
    assert_eq!(query_lines(&s, r#"{app="a"}"#, range), kept_sorted);
    assert_eq!(count(&s, r#"{app="a"}"#, range.1), kept_a.len() as i64);
    let (r, _) = request("GET", &delete_url, &[]);
    let listed: Value = serde_json::from_str(&r.body).unwrap();
    let processed: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["request_id"] == deleted_a.as_str())
        .collect();
    assert_eq!(processed[0]["status"], "processed", "{}", r.body);
    let (r, _) = request("DELETE", &delete_url, &[("request_id", &deleted_a)]);
    assert_eq!(r.status, 400, "{}", r.body);

    drop(s);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn disabled_tenants_get_lokis_403() {
    let dir = temp_dir("deletes-off");
    let s = Skald::start(&dir, "auth_enabled: true\nlimits_config:\n  deletion_mode: disabled\n");
    let url = format!("{}/loki/api/v1/delete", s.url);
    for method in ["GET", "POST", "DELETE"] {
        let (r, _) = request(method, &url, &[("query", r#"{a="b"}"#), ("start", "1796430000")]);
        assert_eq!(
            (r.status, r.body.as_str()),
            (403, "deletion is not available for this tenant\n"),
            "{method}"
        );
    }
    drop(s);
    std::fs::remove_dir_all(&dir).ok();
}
