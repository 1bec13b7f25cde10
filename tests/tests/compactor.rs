//! The compactor over a real `skald` (`-target=all`) and its data directory: retention hides
//! data past `retention_period` / `retention_stream` from queries even before the compactor
//! ran, the compactor then deletes the expired chunks' objects and index entries, and a day's
//! several index segments become one, with every query answer unchanged.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skald_integration_tests::{get, now_ns, post, relative_files, temp_dir, Skald};

#[path = "support/aws_bucket.rs"]
mod aws_bucket;
use aws_bucket::AwsBucket;

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
    relative_files(dir).into_iter().filter(|s| s.contains(part)).collect()
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
    let dir = temp_dir("compactor-aws");
    let bucket = AwsBucket::new("cmp");
    let list = |p: &str| bucket.list(p);
    // the bucket is shared by the test run, but the lease is this index's (its tables' prefix
    // is this test's): the other tests' compactors never make this one wait
    let store = Store {
        yaml: bucket.yaml.clone(),
        tenant: bucket.tenant.clone(),
        list: &list,
        segments: false,
        ready: &AwsBucket::ready,
    };
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

/// What the kill loop needs of a store: its config blocks, the tenant, and its objects.
struct KillStore<'a> {
    yaml: String,
    tenant: String,
    /// Object paths under a prefix.
    list: &'a dyn Fn(&str) -> Vec<String>,
    /// An object's bytes, by a path `list` gave (`None`: deleted since).
    read: &'a dyn Fn(&str) -> Option<Vec<u8>>,
    ready: &'a dyn Fn(&Skald),
}

/// Retention (72h, `{app="short"}` 24h), a pass every second, delete requests applied 1 s after
/// they are made, chunk objects deleted 1 s after their index entries (so that kills often find
/// a marker whose chunks are out of the index and still in the store).
fn kill_config(storage: &str) -> String {
    config(true, "1s", storage).replace(
        "retention_delete_delay: 0s\n",
        "retention_delete_delay: 1s\n  delete_request_cancel_period: 1s\n",
    )
}

/// Pushes a chunk of `{app="long", name}` with a line to keep and one to delete at `ts`.
fn push_flush_secret(s: &Skald, tenant: &str, name: &str, ts: i64) {
    let body = json!({"streams": [{"stream": {"app": "long", "name": name}, "values": [
        [ts.to_string(), format!("{name} keep at {ts}")],
        [(ts + NS).to_string(), format!("{name} secret at {}", ts + NS)],
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

/// Creates a delete request of `query` from `start_ns` to now.
fn delete_request(s: &Skald, tenant: &str, query: &str, start_ns: i64) {
    let r = ureq::post(&format!("{}/loki/api/v1/delete", s.url))
        .set("X-Scope-OrgID", tenant)
        .query("query", query)
        .query("start", &(start_ns / NS).to_string())
        .call();
    match r {
        Ok(r) => assert_eq!(r.status(), 204),
        Err(e) => panic!("delete request: {e}"),
    }
}

/// Every line of the tenant's chunk objects, sorted (duplicates kept).
fn stored_lines(store: &KillStore) -> Vec<String> {
    let mut lines = Vec::new();
    for path in (store.list)(&format!("{}/chunks", store.tenant)) {
        let Some(bytes) = (store.read)(&path) else { continue };
        let chunk = skald_chunk::Chunk::parse(&bytes).unwrap();
        for e in chunk.iter_entries(i64::MIN, i64::MAX) {
            lines.push(e.unwrap().line.to_string());
        }
    }
    lines.sort();
    lines
}

/// SIGKILLs a compactor (`-target=all`) at random points of its passes, 10 times, while
/// retention expires chunks and delete requests rewrite others: kills land mid-rewrite, between
/// a marker's index removal and its object deletion, mid-compaction. Every answer in between
/// is the expected one (deleted lines are hidden from the moment their request exists), and
/// after a last clean run the tenant's chunk objects hold exactly the kept lines, once each: no
/// orphan (an old chunk left by a rewrite, an expired chunk never deleted), nothing lost.
fn kill_loop(dir: &Path, store: &KillStore) {
    let t = store.tenant.as_str();
    let now = now_ns();
    // the age (from the test's start) each day's chunks get: 6h from any retention boundary
    let at = |d: i64| if d == 0 { now - HOUR } else { now - d * DAY - 6 * HOUR };
    let kept =
        |app: &str, ts: i64| if app == "long" { ts >= now - 3 * DAY } else { ts >= now - DAY };
    let mut expected = Vec::new();
    let mut b = Skald::start(dir, &kill_config(&store.yaml));
    (store.ready)(&b);
    let started = Instant::now();
    for d in [0i64, 1, 2, 4] {
        for app in ["long", "short"] {
            let ts = at(d);
            push_flush_labels(&b, t, json!({"app": app, "name": app}), app, ts);
            if kept(app, ts) {
                expected.push(format!("{app} line at {ts}"));
                expected.push(format!("{app} line at {}", ts + NS));
            }
        }
    }
    let mut seed = 0x2545_f491_u64;
    let (mut with_marker, mut mid_delete) = (0, 0);
    for round in 0..10i64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // new work: chunks to expire, one to keep, one with a line a request deletes
        for d in [1i64, 2, 4] {
            for app in ["long", "short"] {
                let ts = at(d) + round * 10 * NS;
                let name = format!("{app}{round}");
                push_flush_labels(&b, t, json!({"app": app, "name": name}), &name, ts);
                if kept(app, ts) {
                    expected.push(format!("{name} line at {ts}"));
                    expected.push(format!("{name} line at {}", ts + NS));
                }
            }
        }
        let ts = at(1) + round * 10 * NS + 5 * NS;
        let name = format!("mix{round}");
        push_flush_secret(&b, t, &name, ts);
        expected.push(format!("{name} keep at {ts}"));
        delete_request(&b, t, &format!("{{app=\"long\"}} |= \"{name} secret\""), ts - HOUR);
        expected.sort();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = all_lines(&b, t, now);
            if got == expected {
                break;
            }
            assert!(Instant::now() < deadline, "round {round}: {got:?}\n!= {expected:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while skald_integration_tests::metric_sum(&b.url, "loki_compactor_running") < 1.0 {
            assert!(Instant::now() < deadline, "round {round}: the lease never came");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(seed % 1500));
        b.kill();
        // where the kill landed
        if !(store.list)(&format!("compactor/markers/{t}")).is_empty() {
            with_marker += 1;
        }
        if stored_lines(store).iter().any(|l| l.contains(" secret at ")) {
            mid_delete += 1;
        }
        b.start_again();
        (store.ready)(&b);
        assert_eq!(all_lines(&b, t, now), expected, "round {round}, after the kill");
    }
    // a clean run finishes the work. The stored chunks then hold every kept line and no
    // expired or deleted one, each line once (no chunk left behind unindexed). The ingester's
    // WAL, replayed after each kill, holds the lines pushed since its last checkpoint and
    // flushes their chunks again, the original of a rewritten chunk included, after its
    // request was processed: the compactor's deletion pass applies processed requests again
    // to such chunks (`reapply_period`, crates/store/deletes), so no secret line stays.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let markers = (store.list)(&format!("compactor/markers/{t}")).len();
        let stored = stored_lines(store);
        if markers == 0 && stored == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{markers} markers; stored lines (left) differ from the kept ones (right):\n{stored:?}\n{expected:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(all_lines(&b, t, now), expected);
    println!(
        "kill loop: 10 kills in {:?}; {with_marker} left a marker (chunks out of the index, objects not yet deleted), {mid_delete} left secret lines in the store; none after the clean run",
        started.elapsed()
    );
    drop(b);
}

#[test]
fn sigkill_with_deletes_on_the_filesystem() {
    let dir = temp_dir("compactor-kill-deletes");
    let root = dir.join("data").join("chunks");
    let list = |prefix: &str| files(&root, &format!("{prefix}/"));
    let read = |path: &str| std::fs::read(root.join(path)).ok();
    let store = KillStore {
        yaml: String::new(),
        tenant: "t".into(),
        list: &list,
        read: &read,
        ready: &|_| {},
    };
    kill_loop(&dir, &store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same on SeaweedFS (chunks, filter tables, markers, the lease) and DynamoDB Local (the
/// index).
#[test]
fn sigkill_with_deletes_on_s3_and_dynamodb() {
    let dir = temp_dir("compactor-kill-aws");
    let bucket = AwsBucket::new("kill");
    let list = |p: &str| bucket.list(p);
    let read = |p: &str| bucket.get(p);
    let store = KillStore {
        yaml: bucket.yaml.clone(),
        tenant: bucket.tenant.clone(),
        list: &list,
        read: &read,
        ready: &AwsBucket::ready,
    };
    kill_loop(&dir, &store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A chunk of `{app="short"}` (24h rule; the tenant keeps 72h) across the rule's cutoff: log
/// and metric queries return only its lines inside retention, whether the lines are still in
/// the ingester or flushed to a chunk, read nearest the start or the end, before the compactor
/// deletes the chunk (it goes once its last line is past the cutoff).
#[test]
fn a_chunk_across_a_stream_rule_cutoff_returns_only_its_kept_lines() {
    let dir = temp_dir("compactor-straddle");
    let s = Skald::start(&dir, &config(false, "1h", ""));
    let now = now_ns();
    let (old, new) = (now - DAY - 10 * 60 * NS, now - DAY + 10 * 60 * NS);
    let body = json!({"streams": [
        {"stream": {"app": "short"}, "values": [
            [old.to_string(), "short expired"], [new.to_string(), "short kept"]]},
        {"stream": {"app": "long"}, "values": [
            [old.to_string(), "long kept old"], [(new + NS).to_string(), "long kept new"]]},
    ]});
    let r = post(
        &format!("{}/loki/api/v1/push", s.url),
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", "t")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let (start, end) = ((now - 7 * DAY).to_string(), (now + 60 * NS).to_string());
    let lines = |direction: &str, limit: &str| -> Vec<String> {
        let r = get(
            &format!("{}/loki/api/v1/query_range", s.url),
            &[
                ("query", r#"{app=~"long|short"}"#),
                ("start", &start),
                ("end", &end),
                ("limit", limit),
                ("direction", direction),
            ],
            &[("X-Scope-OrgID", "t")],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let mut out: Vec<String> = r.json()["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                s["values"].as_array().unwrap().iter().map(|e| e[1].as_str().unwrap().to_string())
            })
            .collect();
        out.sort();
        out
    };
    let count = |selector: &str| -> f64 {
        let q = format!("sum(count_over_time({selector}[3d]))");
        let r = get(
            &format!("{}/loki/api/v1/query", s.url),
            &[("query", q.as_str()), ("time", &end)],
            &[("X-Scope-OrgID", "t")],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["data"]["result"][0]["value"][1].as_str().unwrap().parse().unwrap()
    };
    let all = vec!["long kept new", "long kept old", "short kept"];
    for stage in ["in the ingester", "in a chunk"] {
        assert_eq!(lines("backward", "100"), all, "{stage}");
        assert_eq!(lines("forward", "100"), all, "{stage}");
        // the limit counts kept lines only, from either end
        assert_eq!(lines("forward", "1"), vec!["long kept old"], "{stage}");
        assert_eq!(lines("backward", "1"), vec!["long kept new"], "{stage}");
        assert_eq!(count(r#"{app="short"}"#), 1.0, "{stage}");
        assert_eq!(count(r#"{app=~"long|short"}"#), 3.0, "{stage}");
        let r = post(&format!("{}/flush", s.url), &[], b"");
        assert_eq!(r.status, 204, "{}", r.body);
    }
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The value of the series of `name` whose labels include every `k="v"` of `labels`.
fn series_value(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            return None;
        }
        let (series, value) = rest.rsplit_once(' ')?;
        labels.iter().all(|kv| series.contains(kv)).then(|| value.parse().ok())?
    })
}

/// After a retention pass (one expired chunk, one kept) and a deletion pass, `/metrics`
/// carries every metric Loki's Retention and Deletion dashboards read, with Loki's names,
/// types and labels, and values that say what happened (`docs/metrics.md`).
#[test]
fn retention_metrics_have_lokis_names_and_values() {
    let dir = temp_dir("compactor-metrics");
    let yaml = config(true, "1s", "").replace(
        "retention_delete_delay: 0s\n",
        "retention_delete_delay: 0s\n  delete_request_cancel_period: 1s\n",
    );
    let before = now_ns() as f64 / 1e9;
    let s = Skald::start(&dir, &yaml);
    let now = now_ns();
    let expired_ts = now - 5 * DAY;
    push_flush(&s, "t", "long", expired_ts);
    push_flush(&s, "t", "long", now - HOUR);
    push_flush_secret(&s, "t", "mix", now - 2 * HOUR);
    delete_request(&s, "t", r#"{app="long"} |= "mix secret""#, now - 3 * HOUR);
    let expired_table = format!("index_{}", expired_ts.div_euclid(DAY));
    let metrics = || get(&format!("{}/metrics", s.url), &[], &[]).body;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = metrics();
        let swept = series_value(
            &m,
            "loki_boltdb_shipper_retention_sweeper_marker_files_deleted_total",
            &[],
        );
        let deleted = series_value(&m, "loki_compactor_deleted_lines", &[r#"user="t""#]);
        if swept == Some(1.0) && deleted == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "no retention and deletion pass yet:\n{m}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // the pass after the one that did the work has ended too
    std::thread::sleep(Duration::from_millis(2500));
    let m = metrics();
    let after = now_ns() as f64 / 1e9;
    let v = |name: &str, labels: &[&str]| -> f64 {
        series_value(&m, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in:\n{m}"))
    };
    let is_type = |name: &str, t: &str| {
        assert!(m.contains(&format!("# TYPE {name} {t}\n")), "{name} is not a {t}");
    };
    // compaction
    assert_eq!(v("loki_boltdb_shipper_compactor_running", &[]), 1.0);
    assert_eq!(v("loki_compactor_running", &[]), 1.0);
    is_type("loki_boltdb_shipper_compact_tables_operation_total", "counter");
    assert!(
        v("loki_boltdb_shipper_compact_tables_operation_total", &[r#"status="success""#]) >= 2.0
    );
    let took = v("loki_boltdb_shipper_compact_tables_operation_duration_seconds", &[]);
    assert!(took > 0.0 && took < 30.0, "{took}");
    let last = "loki_boltdb_shipper_compact_tables_operation_last_successful_run_timestamp_seconds";
    is_type(last, "gauge");
    assert!((before..=after).contains(&v(last, &[])));
    assert_eq!(
        v(
            "loki_compactor_locked_table_successive_compaction_skips",
            &[&format!(r#"table_name="index_{}""#, (now - HOUR).div_euclid(DAY))]
        ),
        0.0
    );
    // retention
    assert!(v("loki_compactor_apply_retention_operation_total", &[r#"status="success""#]) >= 2.0);
    assert!(v("loki_compactor_apply_retention_operation_duration_seconds", &[]) > 0.0);
    let last = v("loki_compactor_apply_retention_last_successful_run_timestamp_seconds", &[]);
    assert!((before..=after).contains(&last));
    let table = format!(r#"table="{expired_table}""#);
    is_type("loki_boltdb_shipper_retention_marker_count_total", "counter");
    assert_eq!(v("loki_boltdb_shipper_retention_marker_count_total", &[&table]), 1.0);
    let processed = "loki_boltdb_shipper_retention_marker_table_processed_total";
    assert!(v(processed, &[&table, r#"user_id="t""#, r#"action="deleted""#]) >= 1.0);
    let marking = "loki_boltdb_shipper_retention_marker_table_processed_duration_seconds";
    is_type(marking, "histogram");
    assert!(v(&format!("{marking}_count"), &[&table, r#"status="success""#]) >= 1.0);
    // the sweeper
    let sweep = "loki_boltdb_shipper_retention_sweeper_chunk_deleted_duration_seconds";
    is_type(sweep, "histogram");
    assert_eq!(v(&format!("{sweep}_count"), &[r#"status="success""#]), 1.0);
    assert_eq!(v("loki_boltdb_shipper_retention_sweeper_marker_files_current", &[]), 0.0);
    let lag = "loki_boltdb_shipper_retention_sweeper_marker_file_processing_current_time";
    assert_eq!(v(lag, &[]), 0.0, "0 between sweeps");
    assert_eq!(v("loki_boltdb_shipper_retention_sweeper_marker_files_deleted_total", &[]), 1.0);
    assert_eq!(v("skald_compactor_deleted_chunks_total", &[]), 1.0);
    // deletion
    let user = r#"user="t""#;
    assert_eq!(v("loki_compactor_delete_requests_received_total", &[user]), 1.0);
    assert!(v("loki_compactor_delete_requests_processed_total", &[user]) >= 1.0);
    assert_eq!(v("loki_compactor_deleted_lines", &[user]), 1.0);
    let loads = v("loki_compactor_load_pending_requests_attempts_total", &[r#"status="success""#]);
    assert!(loads >= 2.0, "{loads}");
    is_type("loki_compactor_pending_delete_requests_count", "gauge");
    assert_eq!(v("loki_compactor_pending_delete_requests_count", &[]), 0.0, "all applied");
    assert_eq!(v("loki_compactor_oldest_pending_delete_request_age_seconds", &[]), 0.0);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Size-based retention over a real `skald`: a tenant's runtime override
/// `retention_max_bytes` makes the compactor delete its oldest chunks (across streams) until
/// its chunks weigh at most the limit; the other tenant (no limit) keeps everything; queries
/// then return the newest lines only.
#[test]
fn retention_max_bytes_deletes_the_oldest_chunks_of_that_tenant() {
    let dir = temp_dir("compactor-size");
    let root = dir.join("data").join("chunks");
    let now = now_ns();
    // run A, retention off: four chunks per tenant over two streams, an hour apart
    let mut a = Skald::start(&dir, &config(false, "1h", ""));
    let stamps = [now - 4 * HOUR, now - 3 * HOUR, now - 2 * HOUR, now - HOUR];
    for (i, ts) in stamps.iter().enumerate() {
        let app = if i % 2 == 0 { "long" } else { "short" };
        for tenant in ["small", "big"] {
            push_flush(&a, tenant, app, *ts);
        }
    }
    a.stop();
    // each chunk object of `small` by its first line's time, and its size
    let mut sizes: Vec<(i64, u64)> = files(&root, "small/chunks/")
        .iter()
        .map(|p| {
            let bytes = std::fs::read(root.join(p)).unwrap();
            let chunk = skald_chunk::Chunk::parse(&bytes).unwrap();
            let first = chunk.iter_entries(i64::MIN, i64::MAX).next().unwrap().unwrap().ts;
            (first, bytes.len() as u64)
        })
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes.len(), 4, "{sizes:?}");
    // room for the two newest and half of the next: the two oldest must go
    let limit = sizes[2].1 + sizes[3].1 + sizes[1].1 / 2;
    let overrides = dir.join("overrides.yaml");
    std::fs::write(&overrides, format!("overrides:\n  small:\n    retention_max_bytes: {limit}\n"))
        .unwrap();
    let yaml =
        format!("{}runtime_config:\n  file: {}\n", config(true, "1s", ""), overrides.display());
    let b = Skald::start(&dir, &yaml);
    let deadline = Instant::now() + Duration::from_secs(30);
    while files(&root, "small/chunks/").len() != 2 {
        assert!(Instant::now() < deadline, "not deleted; log:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let kept: Vec<String> = stamps[2..]
        .iter()
        .enumerate()
        .flat_map(|(i, ts)| {
            let app = if i % 2 == 0 { "long" } else { "short" };
            [format!("{app} line at {ts}"), format!("{app} line at {}", ts + NS)]
        })
        .collect();
    let mut kept = kept;
    kept.sort();
    assert_eq!(all_lines(&b, "small", now), kept);
    assert_eq!(all_lines(&b, "big", now).len(), 8, "no limit: everything kept");
    assert_eq!(files(&root, "big/chunks/").len(), 4);
    let stored: u64 = files(&root, "small/chunks/")
        .iter()
        .map(|p| std::fs::metadata(root.join(p)).unwrap().len())
        .sum();
    assert!(stored <= limit, "{stored} > {limit}");
    assert!(b.log().contains("deleting its oldest chunks"));
    // a second look a few passes later: nothing more goes
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(files(&root, "small/chunks/").len(), 2);
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}
