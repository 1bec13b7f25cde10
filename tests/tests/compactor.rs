//! The compactor over a real `skald` (`-target=all`) and its data directory: retention hides
//! data past `retention_period` / `retention_stream` from queries even before the compactor
//! ran, the compactor then deletes the expired chunks' objects and index entries, and a day's
//! several index segments become one, with every query answer unchanged.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skald_integration_tests::{get, now_ns, post, temp_dir, Skald};

const NS: i64 = 1_000_000_000;
const HOUR: i64 = 3_600 * NS;
const DAY: i64 = 24 * HOUR;
/// 72h for every stream, 24h for `{app="short"}`; old samples accepted; `storage` (the
/// schema and storage blocks, empty for the local filesystem) appended.
fn config(retention_enabled: bool, interval: &str, storage: &str) -> String {
    format!(
        "auth_enabled: true
{storage}limits_config:
  reject_old_samples: false
  retention_period: 72h
  retention_stream:
  - selector: '{{app=\"short\"}}'
    priority: 1
    period: 24h
ingester:
  sync_period: 0s
compactor:
  compaction_interval: {interval}
  retention_enabled: {retention_enabled}
  retention_delete_delay: 0s
"
    )
}

/// What a run needs to know about its storage.
struct Store<'a> {
    /// Schema and storage blocks ("" for the local filesystem).
    yaml: String,
    tenant: String,
    /// Object paths under a prefix (relative to the store's root).
    list: &'a dyn Fn(&str) -> Vec<String>,
    /// Whether the index is kept as segments in the object store.
    segments: bool,
    /// Waits for what must be ready before pushing (DynamoDB tables).
    ready: &'a dyn Fn(&Skald),
}

fn push_flush(s: &Skald, tenant: &str, app: &str, ts: i64) {
    push_flush_labels(s, tenant, json!({"app": app}), app, ts);
}

/// Pushes two lines `<name> line at <ts>` of the stream `labels` at `ts` and a second later,
/// then flushes.
fn push_flush_labels(s: &Skald, tenant: &str, labels: Value, name: &str, ts: i64) {
    let body = json!({"streams": [{"stream": labels, "values": [
        [ts.to_string(), format!("{name} line at {ts}")],
        [(ts + NS).to_string(), format!("{name} line at {}", ts + NS)],
    ]}]});
    let r = post(
        &format!("{}/loki/api/v1/push", s.url),
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", tenant)],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = post(&format!("{}/flush", s.url), &[], b"");
    assert_eq!(r.status, 204, "{}", r.body);
}

/// Every line `{app=~"long|short"}` returns over the last 7 days, sorted.
fn all_lines(s: &Skald, tenant: &str, now: i64) -> Vec<String> {
    let (start, end) = ((now - 7 * DAY).to_string(), (now + 60 * NS).to_string());
    let r = get(
        &format!("{}/loki/api/v1/query_range", s.url),
        &[("query", r#"{app=~"long|short"}"#), ("start", &start), ("end", &end), ("limit", "1000")],
        &[("X-Scope-OrgID", tenant)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = r.json();
    let mut out: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["values"].as_array().unwrap().iter().map(|e| e[1].as_str().unwrap().to_string())
        })
        .collect();
    out.sort();
    out
}

/// Paths (relative) of the files under `dir` whose path contains `part`.
fn files(dir: &Path, part: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let s = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
                if s.contains(part) {
                    out.push(s);
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn retention_hides_then_deletes_and_compaction_keeps_answers() {
    let dir = temp_dir("compactor");
    let root = dir.join("data").join("chunks");
    let list = |prefix: &str| files(&root, &format!("{prefix}/"));
    let store = Store {
        yaml: String::new(),
        tenant: "t".into(),
        list: &list,
        segments: true,
        ready: &|_| {},
    };
    run(&dir, &store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same over SeaweedFS (chunks, filter tables) and DynamoDB Local (the index).
#[test]
fn retention_on_s3_and_dynamodb() {
    let servers = skald_integration_tests::test_servers();
    let dir = temp_dir("compactor-aws");
    let prefix = skald_integration_tests::unique_prefix("cmp");
    let tenant = prefix.trim_end_matches('_').to_string();
    let yaml = skald_integration_tests::helm_aws_storage_yaml(
        &servers,
        &skald_integration_tests::host_port(&servers.s3_endpoint),
        &skald_integration_tests::host_port(&servers.dynamodb_endpoint),
        &prefix,
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let s3 = skald_chunk_store::ObjectChunkStore::s3(
        &skald_chunk_store::S3Config {
            prefix: String::new(),
            ..skald_chunk_store::testsuite::s3_config_from_test_env("compactor")
        },
        Default::default(),
    )
    .unwrap();
    let list = |p: &str| {
        use skald_chunk_store::ChunkStore;
        rt.block_on(s3.list_prefix(p)).unwrap()
    };
    let ready =
        |s: &Skald| skald_integration_tests::wait_tables_synced(&s.url, Duration::from_secs(120));
    // the bucket is shared by the test run, but the lease is this index's (its tables' prefix
    // is this test's): the other tests' compactors never make this one wait
    let store = Store { yaml, tenant, list: &list, segments: false, ready: &ready };
    run(&dir, &store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn run(dir: &Path, store: &Store) {
    let t = store.tenant.as_str();
    let chunk_files = || (store.list)(&format!("{t}/chunks")).len();
    let segments_of_day = |day: i64| (store.list)(&format!("{t}/index/{day}")).len();
    let now = now_ns();
    // a day of several segments: two days ago, well inside the day
    let d2 = (now - 2 * DAY).div_euclid(DAY) * DAY + 12 * HOUR;
    let day2 = d2 / DAY;

    // run A: retention off, no compaction after the start-up pass
    let mut a = Skald::start(dir, &config(false, "1h", &store.yaml));
    (store.ready)(&a);
    for ts in [now - 6 * DAY, now - 5 * DAY] {
        push_flush(&a, t, "long", ts);
    }
    for i in 0..3 {
        push_flush(&a, t, "long", d2 + i * 10 * NS);
    }
    push_flush(&a, t, "short", d2 + 100 * NS);
    push_flush(&a, t, "long", now - HOUR);
    push_flush(&a, t, "short", now - HOUR);
    let expected: Vec<String> = {
        let mut v: Vec<String> = [d2, d2 + 10 * NS, d2 + 20 * NS, now - HOUR]
            .iter()
            .flat_map(|t| [format!("long line at {t}"), format!("long line at {}", t + NS)])
            .chain([
                format!("short line at {}", now - HOUR),
                format!("short line at {}", now - HOUR + NS),
            ])
            .collect();
        v.sort();
        v
    };
    // queries hide what is past retention before any compactor ran
    let before = all_lines(&a, t, now);
    assert_eq!(before, expected);
    let chunks_before = chunk_files();
    assert_eq!(chunks_before, 8, "{:?}", (store.list)(&format!("{t}/chunks")));
    if store.segments {
        assert!(segments_of_day(day2) >= 4, "{:?}", (store.list)(&format!("{t}/index")));
    }
    // the compactor block is read and shown
    let r = get(&format!("{}/config", a.url), &[], &[]);
    assert!(r.body.contains("retention_delete_worker_count: 150"), "{}", r.body);
    assert!(r.body.contains("compaction_interval: 1h"), "{}", r.body);
    a.stop();

    // run B: retention on, a pass every second
    let b = Skald::start(dir, &config(true, "1s", &store.yaml));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let chunks = chunk_files();
        let segs = if store.segments { segments_of_day(day2) } else { 1 };
        let markers = (store.list)(&format!("compactor/markers/{t}")).len();
        if chunks == chunks_before - 3 && segs == 1 && markers == 0 {
            break;
        }
        // answers never change meanwhile
        assert_eq!(all_lines(&b, t, now), expected);
        assert!(
            Instant::now() < deadline,
            "compactor did not finish: {chunks} chunks, {segs} segments of day {day2}, {markers} markers; log:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(all_lines(&b, t, now), expected, "same answer after compaction");
    // whole expired days lost their segments and filter tables
    for ts in [now - 6 * DAY, now - 5 * DAY] {
        let day = ts.div_euclid(DAY);
        assert_eq!(segments_of_day(day), 0);
        assert!((store.list)(&format!("{t}/filters/{day}")).is_empty());
    }
    let log = b.log();
    assert!(log.contains("retention: deleted chunk objects"), "{log}");
    let metrics = get(&format!("{}/metrics", b.url), &[], &[]).body;
    assert!(metrics.contains("loki_compactor_running 1"), "{metrics}");
    assert!(
        metrics.contains("loki_boltdb_shipper_compact_tables_operation_total{status=\"success\"}")
    );
    drop(b);
}

/// SIGKILLs a compactor at random points of its passes, 10 times, over a store with many
/// segments and expired chunks: every answer in between is the same, and after a last clean
/// run no marker, no expired chunk object and no second segment of a day remains.
#[test]
fn sigkill_mid_pass_changes_no_answer_and_leaves_no_orphan() {
    let dir = temp_dir("compactor-kill");
    let root = dir.join("data").join("chunks");
    let t = "t";
    let now = now_ns();
    let mut a = Skald::start(&dir, &config(false, "1h", ""));
    // 8 days back, 4 streams, 3 flushes a day: 96 chunks, 12 segments a day
    let mut expected = Vec::new();
    for d in 0..8i64 {
        let base = (now - d * DAY).div_euclid(DAY) * DAY + 6 * HOUR;
        let base = base.min(now - HOUR);
        for k in 0..3i64 {
            for app in ["long", "short", "long2", "short2"] {
                let app_label = if app.starts_with("long") { "long" } else { "short" };
                let ts = base + k * 10 * NS + if app.ends_with('2') { NS / 2 } else { 0 };
                push_flush_stream(&a, t, app_label, app, ts);
                let kept = if app_label == "long" { ts >= now - 3 * DAY } else { ts >= now - DAY };
                if kept {
                    expected.push(format!("{app} line at {ts}"));
                    expected.push(format!("{app} line at {}", ts + NS));
                }
            }
        }
    }
    expected.sort();
    assert_eq!(all_lines(&a, t, now), expected);
    a.stop();

    let mut b = Skald::start(&dir, &config(true, "1s", ""));
    let mut seed = 0x9e37_79b9_u64;
    for round in 0..10i64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // new work for this round: expired and kept chunks, more segments in old days
        for d in [2i64, 4, 6] {
            let ts = (now - d * DAY).div_euclid(DAY) * DAY + 7 * HOUR + round * NS * 10;
            for (app, name) in [("long", "long3"), ("short", "short3")] {
                push_flush_stream(&b, t, app, name, ts);
                let kept = if app == "long" { ts >= now - 3 * DAY } else { ts >= now - DAY };
                if kept {
                    expected.push(format!("{name} line at {ts}"));
                    expected.push(format!("{name} line at {}", ts + NS));
                }
            }
        }
        expected.sort();
        assert_eq!(all_lines(&b, t, now), expected, "round {round}");
        // killed once it works, at a random point of its passes
        let deadline = Instant::now() + Duration::from_secs(30);
        while skald_integration_tests::metric_sum(&b.url, "loki_compactor_running") < 1.0 {
            assert!(Instant::now() < deadline, "round {round}: the lease never came");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(seed % 400));
        assert_eq!(all_lines(&b, t, now), expected, "round {round}, mid-pass");
        b.kill();
        b.start_again();
    }
    // a clean run finishes the work
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let markers = files(&root, "compactor/markers/").len();
        let days = files(&root, "t/index/");
        let mut per_day = std::collections::BTreeMap::new();
        for p in &days {
            let day = p.split('/').nth(2).unwrap_or_default().to_string();
            *per_day.entry(day).or_insert(0) += 1;
        }
        let chunks = files(&root, "t/chunks/").len();
        if markers == 0 && per_day.values().all(|n| *n == 1) && chunks * 2 == expected.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{markers} markers, segments {per_day:?}, {chunks} chunks for {} kept lines",
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(all_lines(&b, t, now), expected);
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}

fn push_flush_stream(s: &Skald, tenant: &str, app: &str, name: &str, ts: i64) {
    push_flush_labels(s, tenant, json!({"app": app, "name": name}), name, ts);
}
