//! Skald on S3 (SeaweedFS) and DynamoDB (DynamoDB Local), the servers `scripts/test-servers`
//! starts: schema periods in sequence, a storage outage ridden out without loss, and the
//! table-manager as its own target.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skald_integration_tests::{
    aws_storage_block, get, helm_aws_storage_yaml, host_port, lost_and_duplicated, metric_sum,
    now_ns, post, push_numbered_during, stored_ids, temp_dir, test_servers, unique_prefix,
    wait_tables_synced, CuttableProxy, Skald,
};

const LIMITS: &str = "limits_config:
  reject_old_samples: false
  ingestion_rate_mb: 64
  ingestion_burst_size_mb: 128
  max_entries_limit_per_query: 1000000
  max_query_series: 100000
";

/// Two schema periods, the first with its index in DynamoDB weekly tables, the second (from
/// 2026-11-01) in the object-store index, both with chunks in S3. A stream pushed across the
/// boundary is answered as one.
#[test]
fn periods_in_sequence_are_queried_as_one() {
    let servers = test_servers();
    let dir = temp_dir("aws-periods");
    let prefix = unique_prefix("per");
    let tenant = prefix.trim_end_matches('_').to_string();
    let config = format!(
        "auth_enabled: true
{LIMITS}schema_config:
  configs:
  - from: 2020-05-15
    store: aws
    object_store: s3
    schema: v11
    index:
      prefix: {prefix}
      period: 168h
  - from: 2026-11-01
    store: tsdb
    object_store: s3
    schema: v13
    index:
      prefix: index_
      period: 24h
{storage}table_manager:
  index_tables_provisioning:
    enable_ondemand_throughput_mode: true
    enable_inactive_throughput_on_demand_mode: true
",
        storage = aws_storage_block(
            &servers,
            &host_port(&servers.s3_endpoint),
            &host_port(&servers.dynamodb_endpoint)
        ),
    );
    let skald = Skald::start(&dir, &config);
    wait_tables_synced(&skald.url, Duration::from_secs(120));
    // 2026-11-01T00:00:00Z; one line every 10 s from 23:00 the day before to 01:00
    const BOUNDARY: i64 = 1_793_491_200 * 1_000_000_000;
    const STEP: i64 = 10_000_000_000;
    let start = BOUNDARY - 3600 * 1_000_000_000;
    let lines: Vec<(i64, String)> =
        (0..720).map(|i| (start + i * STEP, format!("level=info n={i}"))).collect();
    let values: Vec<serde_json::Value> =
        lines.iter().map(|(t, l)| serde_json::json!([t.to_string(), l])).collect();
    let body = serde_json::json!({"streams": [
        {"stream": {"job": "boundary"}, "values": values},
        {"stream": {"job": "before"}, "values": [[(start + 5).to_string(), "only before"]]},
        {"stream": {"job": "after"}, "values": [[(BOUNDARY + 5).to_string(), "only after"]]},
    ]});
    let h = [("Content-Type", "application/json"), ("X-Scope-OrgID", tenant.as_str())];
    let r = post(&format!("{}/loki/api/v1/push", skald.url), &h, body.to_string().as_bytes());
    assert_eq!(r.status, 204, "{}", r.body);
    let r = post(&format!("{}/flush", skald.url), &[], b"");
    assert_eq!(r.status, 204, "{}", r.body);

    let q = |query: &str, from: i64, to: i64| {
        let (s, e) = (from.to_string(), to.to_string());
        let r = get(
            &format!("{}/loki/api/v1/query_range", skald.url),
            &[
                ("query", query),
                ("start", &s),
                ("end", &e),
                ("limit", "5000"),
                ("direction", "forward"),
                ("step", "10s"),
            ],
            &[("X-Scope-OrgID", tenant.as_str())],
        );
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        r.json()
    };
    let end = BOUNDARY + 3600 * 1_000_000_000;
    // every line once, in order, across the boundary
    let v = q(r#"{job="boundary"}"#, start, end);
    let got: Vec<String> = v["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = lines.iter().map(|l| l.1.clone()).collect();
    assert_eq!(got, want);
    // each side alone
    let v = q(r#"sum(count_over_time({job="boundary"}[1h]))"#, start, end);
    let at = |v: &serde_json::Value, t: i64| -> String {
        v["data"]["result"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p[0].as_f64().unwrap() as i64 == t / 1_000_000_000)
            .map(|p| p[1].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    // windows are (t-1h, t]: the hour before the boundary, the hour after it
    assert_eq!(at(&v, BOUNDARY - STEP), "360");
    assert_eq!(at(&v, BOUNDARY + 3600 * 1_000_000_000 - STEP), "360");
    let names = get(
        &format!("{}/loki/api/v1/label/job/values", skald.url),
        &[("start", &start.to_string()), ("end", &end.to_string())],
        &[("X-Scope-OrgID", tenant.as_str())],
    )
    .json();
    assert_eq!(names["data"], serde_json::json!(["after", "before", "boundary"]));
    let after = get(
        &format!("{}/loki/api/v1/label/job/values", skald.url),
        &[("start", &(BOUNDARY + 1).to_string()), ("end", &end.to_string())],
        &[("X-Scope-OrgID", tenant.as_str())],
    )
    .json();
    assert_eq!(after["data"], serde_json::json!(["after", "boundary"]));

    // the storage requests, timed under Loki's names and labels
    let text = get(&format!("{}/metrics", skald.url), &[], &[]).body;
    let count = |name: &str, labels: &[(&str, &str)]| -> f64 {
        text.lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{')))
            .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum()
    };
    let s3 = "loki_s3_request_duration_seconds_count";
    assert!(count(s3, &[("operation", "S3.PutObject"), ("status_code", "200")]) > 0.0, "{text}");
    assert!(count(s3, &[("operation", "S3.GetObject"), ("status_code", "200")]) > 0.0, "{text}");
    assert!(text.contains(r#"loki_s3_request_duration_seconds_bucket{operation="S3.PutObject",status_code="200",le="0.025"}"#), "Loki's buckets");
    // both indexes behind the periods, timed as one
    let index = "loki_index_request_duration_seconds_count";
    for op in ["index_chunk", "chunk_refs"] {
        let n = count(index, &[("operation", op), ("status_code", "200")]);
        assert!(n > 0.0, "no {op} in {text}");
    }
    let chunks = metric_sum(&skald.url, "loki_chunk_store_index_entries_per_chunk_count");
    let entries = metric_sum(&skald.url, "loki_chunk_store_index_entries_per_chunk_sum");
    assert!(chunks >= 3.0 && entries >= chunks, "{chunks} chunks, {entries} entries");
}

/// S3 and DynamoDB go away (a proxy in front of each is cut) while lines are pushed: pushes
/// still succeed, flushes back off and show in metrics and `/ready`, a query that needs the
/// store fails with a 5xx, a SIGKILL in the middle loses nothing (WAL); when the stores come
/// back every acknowledged line is flushed and read back from storage exactly once.
#[test]
fn a_storage_outage_loses_nothing() {
    let servers = test_servers();
    let s3 = CuttableProxy::start(&host_port(&servers.s3_endpoint));
    let ddb = CuttableProxy::start(&host_port(&servers.dynamodb_endpoint));
    let dir = temp_dir("aws-outage");
    let prefix = unique_prefix("out");
    let config = format!(
        "{LIMITS}ingester:
  chunk_idle_period: 1s
  max_chunk_age: 1m
  flush_check_period: 200ms
{}",
        helm_aws_storage_yaml(&servers, &s3.addr, &ddb.addr, &prefix)
    );
    let mut skald = Skald::start(&dir, &config);
    wait_tables_synced(&skald.url, Duration::from_secs(120));
    let started = now_ns();

    s3.cut();
    ddb.cut();
    let next = Arc::new(AtomicU64::new(0));
    let (mut acked, refused) = push_numbered_during(&skald.url, "outage", 50, &next, || {
        std::thread::sleep(Duration::from_secs(2));
    });
    assert!(refused.is_empty(), "pushes refused during the outage: {refused:?}");
    assert!(!acked.is_empty());
    // flushes fail and back off, and say so
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric_sum(&skald.url, "loki_ingester_chunks_flush_failures_total") < 2.0 {
        assert!(Instant::now() < deadline, "no flush failure reported");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(metric_sum(&skald.url, "skald_ingester_flush_backoff_seconds") > 0.0);
    let ready = get(&format!("{}/ready", skald.url), &[], &[]);
    assert_eq!(ready.status, 200);
    assert!(ready.body.contains("storage: flushes failing"), "{}", ready.body);
    // data a store must answer for: a clear 5xx
    let (s, e) = (
        (started - 7_200_000_000_000).to_string(),
        (started - 3_600_000_000_000 * 5 / 4).to_string(),
    );
    let r = get(
        &format!("{}/loki/api/v1/query_range", skald.url),
        &[("query", r#"{job="outage"}"#), ("start", &s), ("end", &e)],
        &[],
    );
    assert!(r.status >= 500, "status {}: {}", r.status, r.body);
    assert!(r.body.contains("index lookup failed"), "{}", r.body);
    // so does one for the recent lines (as in Loki, the store is always asked too)
    let (s, e) = ((started - 60_000_000_000).to_string(), (now_ns() + 1).to_string());
    let r = get(
        &format!("{}/loki/api/v1/query_range", skald.url),
        &[("query", r#"{job="outage"}"#), ("start", &s), ("end", &e)],
        &[],
    );
    assert_eq!(r.status, 500, "{}", r.body);

    // a crash in the middle of the outage: the WAL keeps what was acknowledged
    skald.kill_and_restart();
    let (more, refused) = push_numbered_during(&skald.url, "outage", 50, &next, || {
        std::thread::sleep(Duration::from_secs(1));
    });
    assert!(refused.is_empty(), "{refused:?}");
    acked.extend(more);

    s3.restore();
    ddb.restore();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held = metric_sum(&skald.url, "loki_ingester_memory_chunks");
        let ready = get(&format!("{}/ready", skald.url), &[], &[]).body;
        if held == 0.0 && !ready.contains("failing") {
            break;
        }
        assert!(Instant::now() < deadline, "still {held} chunks in memory: {ready}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // the ingester holds nothing now: these answers come from S3 + DynamoDB
    let seen = stored_ids(&skald.url, "outage", started);
    let (lost, dup) = lost_and_duplicated(&acked, &seen);
    println!("outage: {} acknowledged, {lost} lost, {dup} duplicated", acked.len());
    assert_eq!((lost, dup), (0, 0));
}

/// `-target=table-manager` runs alone and keeps the tables of the Helm storage block.
#[test]
fn the_table_manager_runs_as_its_own_target() {
    let servers = test_servers();
    let dir = temp_dir("aws-tm");
    let prefix = unique_prefix("tm");
    let storage = helm_aws_storage_yaml(
        &servers,
        &host_port(&servers.s3_endpoint),
        &host_port(&servers.dynamodb_endpoint),
        &prefix,
    );
    let skald = Skald::start(&dir, &format!("target: table-manager\n{storage}"));
    wait_tables_synced(&skald.url, Duration::from_secs(120));
    // weekly tables from 2020-05-15 up to now + 3h
    let now_week = now_ns() / 1_000_000_000 / (7 * 86_400);
    let first_week = 1_589_500_800 / (7 * 86_400);
    let expected = metric_sum(&skald.url, "loki_table_manager_expected_tables");
    assert!(
        (expected - (now_week - first_week + 1) as f64).abs() <= 1.0,
        "expected tables {expected}, weeks {}",
        now_week - first_week + 1
    );
    // the other services are not here
    let r = post(&format!("{}/loki/api/v1/push", skald.url), &[], b"{}");
    assert_eq!(r.status, 404);
}
