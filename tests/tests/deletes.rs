//! Loki's delete API over a real `skald` and real sockets: a request is created (204, its id
//! in `X-Delete-Request-Id`) and listed, the lines it covers vanish at once from log and
//! metric queries (chunks in the store and lines the ingester still holds alike), a second
//! request is cancelled within its window and its lines come back, one past its window can no
//! longer be cancelled, and a deletion pass (`POST /compactor/process_deletes`, until the
//! compactor runs it) rewrites the chunks: every stored chunk object is then read back with
//! `skald_chunk` and holds none of the deleted lines and every other line. Run on the local
//! filesystem and on SeaweedFS (S3) with the index in DynamoDB Local. Refusals carry Loki's
//! statuses and texts (recorded from Loki 3.x, `main-65e30f8`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use skald_chunk_store::{ChunkStore, ObjectChunkStore, ObjectChunkStoreConfig};
use skald_integration_tests::{
    get, helm_aws_storage_yaml, host_port, metric_sum, now_ns, post, temp_dir, test_servers,
    unique_prefix, wait_tables_synced, Resp, Skald,
};

const NS: i64 = 1_000_000_000;
/// Requests may be cancelled for 3 s, then a pass applies them.
const COMPACTOR: &str = "compactor:
  retention_enabled: true
  delete_request_store: filesystem
  delete_request_cancel_period: 3s
";

/// A skald and the tenant the test acts for.
struct Ctx<'a> {
    s: &'a Skald,
    tenant: String,
}

impl Ctx<'_> {
    fn request(&self, method: &str, params: &[(&str, &str)]) -> (Resp, Option<String>) {
        let url = format!("{}/loki/api/v1/delete", self.s.url);
        let mut req = ureq::request(method, &url)
            .timeout(Duration::from_secs(60))
            .set("X-Scope-OrgID", &self.tenant);
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

    fn push(&self, stream: Value, values: Vec<(i64, String)>) {
        let values: Vec<Value> =
            values.into_iter().map(|(ts, l)| json!([ts.to_string(), l])).collect();
        let body = json!({"streams": [{"stream": stream, "values": values}]});
        let r = post(
            &format!("{}/loki/api/v1/push", self.s.url),
            &[("Content-Type", "application/json"), ("X-Scope-OrgID", &self.tenant)],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 204, "{}", r.body);
    }

    fn flush(&self) {
        let r = post(&format!("{}/flush", self.s.url), &[], b"");
        assert_eq!(r.status, 204, "{}", r.body);
    }

    /// Every line a log query returns, sorted.
    fn lines(&self, q: &str, (start, end): (i64, i64)) -> Vec<String> {
        let (start, end) = (start.to_string(), end.to_string());
        let params =
            [("query", q), ("start", start.as_str()), ("end", end.as_str()), ("limit", "5000")];
        let r = get(
            &format!("{}/loki/api/v1/query_range", self.s.url),
            &params,
            &[("X-Scope-OrgID", &self.tenant)],
        );
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

    /// `sum(count_over_time(selector[2h]))` at `end`.
    fn count(&self, selector: &str, end: i64) -> i64 {
        let q = format!("sum(count_over_time({selector}[2h]))");
        let end = end.to_string();
        let params = [("query", q.as_str()), ("time", end.as_str())];
        let r = get(
            &format!("{}/loki/api/v1/query", self.s.url),
            &params,
            &[("X-Scope-OrgID", &self.tenant)],
        );
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        let v = r.json();
        match v["data"]["result"].as_array().unwrap().first() {
            Some(sample) => sample["value"][1].as_str().unwrap().parse().unwrap(),
            None => 0,
        }
    }
}

/// The lines of the given chunk objects' bytes, sorted.
fn chunk_lines(objects: Vec<Vec<u8>>) -> Vec<String> {
    assert!(!objects.is_empty(), "no chunk objects");
    let mut lines = Vec::new();
    for bytes in objects {
        let chunk = skald_chunk::Chunk::parse(&bytes).unwrap();
        for e in chunk.iter_entries(i64::MIN, i64::MAX) {
            lines.push(e.unwrap().line.to_string());
        }
    }
    lines.sort();
    lines
}

/// Every chunk object of `tenant` under `dir` (filesystem storage).
fn fs_chunks(dir: &Path, tenant: &str) -> Vec<Vec<u8>> {
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
    let marker = format!("/{tenant}/chunks/");
    files
        .iter()
        .filter(|p| p.to_string_lossy().contains(&marker))
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// The whole flow; `stored` reads every chunk object of the tenant.
fn delete_flow(cx: &Ctx<'_>, stored: &dyn Fn() -> Vec<Vec<u8>>) {
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
        cx.push(json!({"app": app}), values);
    }
    cx.flush();
    let range = (t0 - NS, now_ns());
    assert_eq!(cx.lines(r#"{app="a"}"#, range).len(), 100);

    // refusals, with Loki's texts
    let (r, _) = cx.request("POST", &[("query", r#"{app="a"}"#)]);
    assert_eq!((r.status, r.body.as_str()), (400, "start time not set\n"));
    let (r, _) = cx.request("POST", &[]);
    assert_eq!((r.status, r.body.as_str()), (400, "query not set\n"));
    assert_eq!(r.content_type, "text/plain; charset=utf-8");
    let start = ((t0 - 60 * NS) / NS).to_string();
    let (r, _) = cx.request("POST", &[("query", "{app=\"a\""), ("start", &start)]);
    assert_eq!((r.status, r.body.as_str()), (400, "invalid query expression\n"));
    let future = (now_ns() / NS + 3600).to_string();
    let (r, _) =
        cx.request("POST", &[("query", r#"{app="a"}"#), ("start", &start), ("end", &future)]);
    assert_eq!((r.status, r.body.as_str()), (400, "deletes in the future are not allowed\n"));

    // create: the secrets of app=a, and everything of app=b
    let (r, deleted_a) =
        cx.request("POST", &[("query", r#"{app="a"} |= "secret""#), ("start", &start)]);
    assert_eq!(r.status, 204, "{}", r.body);
    let deleted_a = deleted_a.expect("X-Delete-Request-Id");
    let (r, all_b) = cx.request("PUT", &[("query", r#"{app="b"}"#), ("start", &start)]);
    assert_eq!(r.status, 204, "{}", r.body);
    let all_b = all_b.unwrap();
    let (r, _) = cx.request("GET", &[]);
    assert_eq!((r.status, r.content_type.as_str()), (200, "application/json"));
    let listed: Value = serde_json::from_str(&r.body).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{}", r.body);
    // both were created in the same millisecond at times, so find ours by id, not by place
    let first = listed.iter().find(|d| d["request_id"] == deleted_a.as_str()).expect("listed");
    assert!(listed.iter().any(|d| d["request_id"] == all_b.as_str()), "{}", r.body);
    assert_eq!(first["query"], r#"{app="a"} |= "secret""#);
    assert_eq!(first["status"], "received");
    assert_eq!(first["start_time"].as_i64().unwrap(), t0 / NS - 60);
    assert!(first["created_at"].as_f64().unwrap() > 0.0);
    assert_eq!(first["user_id"], "");

    // lines the ingester still holds are hidden too
    let late: Vec<(i64, String)> = (100..110).map(|i| (t0 + i as i64 * NS, line("a", i))).collect();
    cx.push(json!({"app": "a"}), late);

    // hidden at once, from log and metric queries
    let range = (t0 - NS, now_ns());
    let kept_a: Vec<String> =
        (0..110usize).filter(|i| !i.is_multiple_of(5)).map(|i| line("a", i)).collect();
    let mut kept_sorted = kept_a.clone();
    kept_sorted.sort();
    assert_eq!(cx.lines(r#"{app="a"}"#, range), kept_sorted);
    assert!(cx.lines(r#"{app="a"} |= "secret""#, range).is_empty());
    assert!(cx.lines(r#"{app="b"}"#, range).is_empty());
    assert_eq!(cx.count(r#"{app="a"}"#, range.1), kept_a.len() as i64);
    assert_eq!(cx.count(r#"{app="b"}"#, range.1), 0);
    assert_eq!(cx.count(r#"{app=~"a|b"} |= "ok""#, range.1), kept_a.len() as i64);

    // cancel app=b within its window: its lines come back at once
    let (r, _) = cx.request("DELETE", &[("request_id", &all_b)]);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(cx.lines(r#"{app="b"}"#, range).len(), 100);
    assert_eq!(cx.count(r#"{app="b"}"#, range.1), 100);
    let (r, _) = cx.request("DELETE", &[("request_id", &all_b)]);
    assert_eq!((r.status, r.body.as_str()), (404, "could not find delete request with given id\n"));

    // a request past its cancel period can no longer be cancelled
    let (r, nothing) = cx.request("POST", &[("query", r#"{app="none"}"#), ("start", &start)]);
    assert_eq!(r.status, 204, "{}", r.body);
    cx.flush();
    std::thread::sleep(Duration::from_millis(3500));
    let (r, _) = cx.request("DELETE", &[("request_id", &nothing.unwrap())]);
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "deletion of request which is in process or already processed is not allowed\n")
    );

    // the deletion pass: the bytes are gone from the stored chunks, nothing else is
    let before = chunk_lines(stored());
    assert!(before.iter().any(|l| l.starts_with("a ") && l.contains("secret")));
    let r = post(
        &format!("{}/compactor/process_deletes", cx.s.url),
        &[("X-Scope-OrgID", &cx.tenant)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let report = r.json();
    assert_eq!(report["lines_deleted"], 22, "{report}");
    assert_eq!(report["parts_processed"], 2, "{report}");
    // Loki's metric names
    assert_eq!(metric_sum(&cx.s.url, "loki_compactor_deleted_lines"), 22.0);
    assert_eq!(metric_sum(&cx.s.url, "loki_compactor_delete_requests_received_total"), 3.0);
    assert_eq!(metric_sum(&cx.s.url, "loki_compactor_delete_requests_processed_total"), 2.0);
    let mut expected: Vec<String> = kept_a.clone();
    expected.extend((0..100).map(|i| line("b", i)));
    expected.sort();
    assert_eq!(chunk_lines(stored()), expected);

    // queries answer the same; the request is listed as processed and cannot be cancelled
    assert_eq!(cx.lines(r#"{app="a"}"#, range), kept_sorted);
    assert_eq!(cx.count(r#"{app="a"}"#, range.1), kept_a.len() as i64);
    let (r, _) = cx.request("GET", &[]);
    let listed: Value = serde_json::from_str(&r.body).unwrap();
    let processed: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["request_id"] == deleted_a.as_str())
        .collect();
    assert_eq!(processed[0]["status"], "processed", "{}", r.body);
    let (r, _) = cx.request("DELETE", &[("request_id", &deleted_a)]);
    assert_eq!(r.status, 400, "{}", r.body);

    // a second pass has nothing left to do
    let r = post(
        &format!("{}/compactor/process_deletes", cx.s.url),
        &[("X-Scope-OrgID", &cx.tenant)],
        b"",
    );
    assert_eq!(r.json()["parts_processed"], 0, "{}", r.body);

    // lines of the window flushed after the request was processed (late, or again from an
    // ingester's WAL after a crash) are removed by the next pass too (`reapply_period`)
    let late: Vec<(i64, String)> = (110..120).map(|i| (t0 + i as i64 * NS, line("a", i))).collect();
    cx.push(json!({"app": "a"}), late);
    cx.flush();
    assert!(chunk_lines(stored()).iter().any(|l| l.starts_with("a 11") && l.contains("secret")));
    let r = post(
        &format!("{}/compactor/process_deletes", cx.s.url),
        &[("X-Scope-OrgID", &cx.tenant)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["parts_processed"], 0, "{}", r.body);
    let kept_late = (110..120usize).filter(|i| !i.is_multiple_of(5)).map(|i| line("a", i));
    expected.extend(kept_late);
    expected.sort();
    assert_eq!(chunk_lines(stored()), expected);
}

#[test]
fn delete_requests_hide_then_remove_lines() {
    let dir = temp_dir("deletes");
    let s = Skald::start(&dir, &format!("auth_enabled: true\n{COMPACTOR}"));
    let cx = Ctx { s: &s, tenant: "t".to_string() };
    delete_flow(&cx, &|| fs_chunks(&dir, "t"));
    drop(s);
    std::fs::remove_dir_all(&dir).ok();
}

/// The same on SeaweedFS (chunks) and DynamoDB Local (index): the chunk objects are listed and
/// read from the bucket.
#[test]
fn delete_requests_on_s3_and_dynamodb() {
    let servers = test_servers();
    let dir = temp_dir("deletes-aws");
    let prefix = unique_prefix("del");
    let (s3, dynamo) = (host_port(&servers.s3_endpoint), host_port(&servers.dynamodb_endpoint));
    let config = format!(
        "auth_enabled: true\n{COMPACTOR}{}",
        helm_aws_storage_yaml(&servers, &s3, &dynamo, &prefix)
    );
    let s = Skald::start(&dir, &config);
    wait_tables_synced(&s.url, Duration::from_secs(120));
    let tenant = prefix.trim_end_matches('_').to_string();
    let cx = Ctx { s: &s, tenant: tenant.clone() };
    let bucket = Arc::new(
        ObjectChunkStore::s3(
            &skald_chunk_store::S3Config {
                bucket: servers.s3_bucket.clone(),
                region: "us-east-1".to_string(),
                endpoint: Some(servers.s3_endpoint.clone()),
                force_path_style: true,
                credentials: Some(skald_chunk_store::S3Credentials {
                    access_key_id: servers.s3_key.clone(),
                    secret_access_key: servers.s3_secret.clone(),
                    session_token: None,
                }),
                ..Default::default()
            },
            ObjectChunkStoreConfig::default(),
        )
        .unwrap(),
    );
    let stored = || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let paths = bucket.list_prefix(&format!("{tenant}/chunks")).await.unwrap();
            let mut out = Vec::new();
            for p in paths {
                out.push(bucket.get_object(&p).await.unwrap().to_vec());
            }
            out
        })
    };
    delete_flow(&cx, &stored);
    drop(s);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn disabled_tenants_get_lokis_403() {
    let dir = temp_dir("deletes-off");
    let config =
        format!("auth_enabled: true\n{COMPACTOR}limits_config:\n  deletion_mode: disabled\n");
    let s = Skald::start(&dir, &config);
    let cx = Ctx { s: &s, tenant: "t".to_string() };
    for method in ["GET", "POST", "DELETE"] {
        let (r, _) = cx.request(method, &[("query", r#"{a="b"}"#), ("start", "1796430000")]);
        assert_eq!(
            (r.status, r.body.as_str()),
            (403, "deletion is not available for this tenant\n"),
            "{method}"
        );
    }
    drop(s);
    std::fs::remove_dir_all(&dir).ok();
}

/// Without `compactor.retention_enabled: true` Loki serves no delete API (404, recorded from
/// Loki 3.x `main-65e30f8`); neither does Skald.
#[test]
fn no_delete_api_without_retention() {
    let dir = temp_dir("deletes-none");
    let s = Skald::start(&dir, "auth_enabled: true\n");
    let cx = Ctx { s: &s, tenant: "t".to_string() };
    for method in ["GET", "POST", "DELETE"] {
        let (r, _) = cx.request(method, &[("query", r#"{a="b"}"#), ("start", "1796430000")]);
        assert_eq!(r.status, 404, "{method}: {}", r.body);
    }
    drop(s);
    std::fs::remove_dir_all(&dir).ok();
}

/// `deletion_mode: filter-only`: a request hides its lines, and a pass past the cancel period
/// leaves the chunks as they are (the request stays `received`).
#[test]
fn filter_only_hides_without_rewriting() {
    let dir = temp_dir("deletes-filter-only");
    let config =
        format!("auth_enabled: true\n{COMPACTOR}limits_config:\n  deletion_mode: filter-only\n");
    let s = Skald::start(&dir, &config);
    let cx = Ctx { s: &s, tenant: "t".to_string() };
    let t0 = now_ns() - 10 * 60 * NS;
    cx.push(
        json!({"app": "a"}),
        vec![(t0, "a 0 password=secret".to_string()), (t0 + NS, "a 1 ok".to_string())],
    );
    cx.flush();
    let start = ((t0 - 60 * NS) / NS).to_string();
    let (r, _) = cx.request("POST", &[("query", r#"{app="a"} |= "secret""#), ("start", &start)]);
    assert_eq!(r.status, 204, "{}", r.body);
    let range = (t0 - NS, now_ns());
    assert_eq!(cx.lines(r#"{app="a"}"#, range), vec!["a 1 ok"]);
    std::thread::sleep(Duration::from_millis(3500));
    let r = post(&format!("{}/compactor/process_deletes", s.url), &[("X-Scope-OrgID", "t")], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["parts_processed"], 0, "{}", r.body);
    assert_eq!(chunk_lines(fs_chunks(&dir, "t")), vec!["a 0 password=secret", "a 1 ok"]);
    assert_eq!(cx.lines(r#"{app="a"}"#, range), vec!["a 1 ok"]);
    let (r, _) = cx.request("GET", &[]);
    assert!(r.body.contains(r#""status":"received""#), "{}", r.body);
    drop(s);
    std::fs::remove_dir_all(&dir).ok();
}

/// The compactor's own pass processes requests once their cancel period is over: no call to
/// `/compactor/process_deletes`, and within a few compaction intervals the lines are gone from
/// the stored chunks.
#[test]
fn the_compactor_processes_requests_by_itself() {
    let dir = temp_dir("deletes-compactor");
    let config = "auth_enabled: true
compactor:
  retention_enabled: true
  compaction_interval: 1s
  delete_request_cancel_period: 1s
";
    let s = Skald::start(&dir, config);
    let cx = Ctx { s: &s, tenant: "t".to_string() };
    let t0 = now_ns() - 30 * 60 * NS;
    let values = (0..50).map(|i| (t0 + i * NS, format!("line {i} token={}", i % 2))).collect();
    cx.push(json!({"app": "c"}), values);
    cx.flush();
    let start = ((t0 - 60 * NS) / NS).to_string();
    let (r, _) = cx.request("POST", &[("query", r#"{app="c"} |= "token=1""#), ("start", &start)]);
    assert_eq!(r.status, 204, "{}", r.body);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let lines = chunk_lines(fs_chunks(&dir, "t"));
        if lines.len() == 25 {
            assert!(lines.iter().all(|l| l.ends_with("token=0")), "{lines:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not processed: {} lines", lines.len());
        std::thread::sleep(Duration::from_millis(300));
    }
    let (r, _) = cx.request("GET", &[]);
    assert!(r.body.contains("\"processed\""), "{}", r.body);
    drop(s);
    std::fs::remove_dir_all(&dir).ok();
}

/// Loki's layout: the compactor runs alone (`-target=compactor`, no querier in its process)
/// and owns the delete API and the deletion passes; the write and read paths run in another
/// process (`-target=ingester,distributor,querier`, no compactor) over the same filesystem
/// store. A request posted to the compactor hides its lines at the querier at once (the
/// querier reads the same requests) and the compactor alone removes them from the chunks.
#[test]
fn a_compactor_alone_serves_the_api_and_applies_requests() {
    let dir = temp_dir("deletes-split");
    let common = "auth_enabled: true
compactor:
  retention_enabled: true
  compaction_interval: 1s
  delete_request_cancel_period: 10s
";
    let rest = Skald::start(&dir, &format!("target: ingester,distributor,querier\n{common}"));
    let compactor = Skald::start(&dir, &format!("target: compactor\n{common}"));
    // no query path on the compactor, no compactor in the other process
    let r = get(&format!("{}/services", compactor.url), &[], &[]);
    assert!(r.body.contains("compactor") && !r.body.contains("querier"), "{}", r.body);
    let r = get(&format!("{}/services", rest.url), &[], &[]);
    assert!(!r.body.contains("compactor"), "{}", r.body);
    let r = get(
        &format!("{}/loki/api/v1/query_range", compactor.url),
        &[("query", r#"{app="c"}"#)],
        &[("X-Scope-OrgID", "t")],
    );
    assert_eq!(r.status, 404, "{}", r.body);

    let writer = Ctx { s: &rest, tenant: "t".to_string() };
    let admin = Ctx { s: &compactor, tenant: "t".to_string() };
    let t0 = now_ns() - 30 * 60 * NS;
    let values = (0..50).map(|i| (t0 + i * NS, format!("line {i} token={}", i % 2))).collect();
    writer.push(json!({"app": "c"}), values);
    writer.flush();
    let range = (t0 - NS, now_ns());
    assert_eq!(writer.lines(r#"{app="c"}"#, range).len(), 50);

    let start = ((t0 - 60 * NS) / NS).to_string();
    let (r, id) =
        admin.request("POST", &[("query", r#"{app="c"} |= "token=1""#), ("start", &start)]);
    assert_eq!(r.status, 204, "{}", r.body);
    let id = id.expect("X-Delete-Request-Id");
    let (r, _) = admin.request("GET", &[]);
    assert!(r.body.contains(&id) && r.body.contains("\"received\""), "{}", r.body);
    // hidden at the querier of the other process within its cache's few seconds, while the
    // stored chunk still holds every line (the cancel period is not over)
    let posted = std::time::Instant::now();
    loop {
        let lines = writer.lines(r#"{app="c"}"#, range);
        if lines.len() == 25 {
            assert!(lines.iter().all(|l| l.ends_with("token=0")), "{lines:?}");
            break;
        }
        assert!(posted.elapsed() < Duration::from_secs(10), "not hidden: {} lines", lines.len());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(chunk_lines(fs_chunks(&dir, "t")).len(), 50, "applied before its cancel period");
    // applied by the compactor's own passes
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let lines = chunk_lines(fs_chunks(&dir, "t"));
        if lines.len() == 25 {
            assert!(lines.iter().all(|l| l.ends_with("token=0")), "{lines:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not processed: {} lines", lines.len());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(writer.lines(r#"{app="c"}"#, range).len(), 25);
    let (r, _) = admin.request("GET", &[]);
    assert!(r.body.contains("\"processed\""), "{}", r.body);
    let processed = "loki_compactor_delete_requests_processed_total";
    assert!(metric_sum(&compactor.url, processed) >= 1.0);
    assert_eq!(metric_sum(&rest.url, processed), 0.0);
    drop(compactor);
    drop(rest);
    std::fs::remove_dir_all(&dir).ok();
}
