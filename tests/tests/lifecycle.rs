//! Loki's ingester lifecycle endpoints on the single binary: `/ingester/prepare_shutdown`
//! (GET/POST/DELETE) and `/ingester/shutdown` (flush, then stop the process), over real HTTP.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use skald_integration_tests::{get, post, temp_dir, Skald};

/// Files under `dir`, except the compactor's own (its lease).
fn files_under(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .filter(|e| e.file_name() != "compactor")
        .map(|e| if e.path().is_dir() { files_under(&e.path()) } else { 1 })
        .sum()
}

#[test]
fn prepare_shutdown_and_shutdown_flush_then_stop() {
    let dir = temp_dir("lifecycle");
    let mut s = Skald::start(&dir, "");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
    let values: Vec<Value> =
        (0..50).map(|i| json!([(now + i).to_string(), format!("lifecycle line {i}")])).collect();
    let body = json!({"streams": [{"stream": {"job": "life"}, "values": values}]}).to_string();
    let r = post(
        &format!("{}/loki/api/v1/push", s.url),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);

    let url = format!("{}/ingester/prepare_shutdown", s.url);
    assert_eq!(get(&url, &[], &[]).body, "unset");
    assert_eq!(post(&url, &[], b"").status, 204);
    assert_eq!(get(&url, &[], &[]).body, "set");
    let r = ureq::delete(&url).call().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&url, &[], &[]).body, "unset");

    let r = post(&format!("{}/ingester/shutdown?flush=maybe", s.url), &[], b"");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("invalid syntax"), "{}", r.body);

    // Nothing is in storage yet: the lines are in memory and the WAL.
    let chunks = dir.join("data").join("chunks");
    assert_eq!(files_under(&chunks), 0);
    let r = post(&format!("{}/ingester/shutdown", s.url), &[], b"");
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(s.wait_exit(Duration::from_secs(30)).success());
    assert!(files_under(&chunks) > 0, "shutdown did not flush; log:\n{}", s.log());

    s.start_again();
    let (st, en) = ((now - 60_000_000_000).to_string(), (now + 60_000_000_000).to_string());
    let r = get(
        &format!("{}/loki/api/v1/query_range", s.url),
        &[("query", "{job=\"life\"}"), ("start", &st), ("end", &en), ("limit", "1000")],
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let n: usize = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["values"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, 50);
}
