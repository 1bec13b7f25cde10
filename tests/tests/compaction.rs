//! Chunk compaction over a real `skald` (`-target=all`): many small chunks (one flush each,
//! as idle timeouts cut them) of several streams are merged into full ones and packed; log
//! and metric queries give the same answers before, while and after compacting; the object
//! count falls; orphans (a crash's leftovers) are deleted after the grace period; a delete
//! request over lines in a packed chunk takes their bytes out of every stored object; and a
//! compactor SIGKILLed at random points of its passes changes no answer and leaves no orphan.
//! On the local filesystem and on SeaweedFS (S3) with the index in DynamoDB Local.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skald_chunk_store::packs::{pack_of_idx, PackIndex};
use skald_integration_tests::{get, metric_sum, now_ns, post, relative_files, temp_dir, Skald};

#[path = "support/aws_bucket.rs"]
mod aws_bucket;
use aws_bucket::AwsBucket;

const NS: i64 = 1_000_000_000;
const HOUR: i64 = 3_600 * NS;
const DAY: i64 = 24 * HOUR;
const APPS: [&str; 5] = ["api", "web", "db", "cache", "auth"];

fn config(compaction: bool, interval: &str, storage: &str) -> String {
    format!(
        "auth_enabled: true
{storage}limits_config:
  reject_old_samples: false
  deletion_mode: filter-and-delete
ingester:
  sync_period: 0s
compactor:
  compaction_interval: {interval}
  retention_enabled: true
  retention_delete_delay: 0s
  delete_request_store: filesystem
  delete_request_cancel_period: 1s
  chunk_compaction_enabled: {compaction}
  chunk_compaction_min_age: 0s
  chunk_compaction_target_size: 64KB
  chunk_compaction_pack_size: 1MB
  chunk_compaction_orphan_grace: 2s
"
    )
}

/// Object storage as a test sees it.
struct Store<'a> {
    yaml: String,
    tenant: String,
    /// Object paths under a prefix.
    list: &'a dyn Fn(&str) -> Vec<String>,
    /// An object's bytes; `None` when it is gone (deleted since it was listed).
    get: &'a dyn Fn(&str) -> Option<Vec<u8>>,
    put: &'a dyn Fn(&str, &[u8]),
    ready: &'a dyn Fn(&Skald),
}

/// The day the test's data lives in: yesterday, from 06:00 (one day, settled).
fn base(now: i64) -> i64 {
    (now - DAY).div_euclid(DAY) * DAY + 6 * HOUR
}

fn line(app: &str, round: i64, i: i64) -> String {
    let level = if i % 5 == 0 { "error" } else { "info" };
    format!(
        "level={level} app={app} round={round} i={i} msg=\"served /api/items/{}\" took={}ms",
        i * 7 % 31,
        i % 13
    )
}

/// Pushes round `round`'s lines of every stream (`n` each, one a second, every seventh with
/// structured metadata) and flushes: one small chunk per stream.
fn push_round(s: &Skald, tenant: &str, now: i64, round: i64, n: i64) {
    let streams: Vec<Value> = APPS
        .iter()
        .map(|app| {
            let values: Vec<Value> = (0..n)
                .map(|i| {
                    let ts = (base(now) + round * 600 * NS + i * NS).to_string();
                    if i % 7 == 0 {
                        json!([ts, line(app, round, i), {"trace_id": format!("t{}", i % 3)}])
                    } else {
                        json!([ts, line(app, round, i)])
                    }
                })
                .collect();
            json!({"stream": {"app": app, "env": "prod"}, "values": values})
        })
        .collect();
    let r = post(
        &format!("{}/loki/api/v1/push", s.url),
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", tenant)],
        json!({ "streams": streams }).to_string().as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = post(&format!("{}/flush", s.url), &[], b"");
    assert_eq!(r.status, 204, "{}", r.body);
}

/// The answers of a set of log and metric queries over the test's day.
fn answers(s: &Skald, tenant: &str, now: i64) -> BTreeMap<String, Value> {
    let (start, end) = ((base(now) - HOUR).to_string(), (base(now) + 10 * HOUR).to_string());
    let range = |q: &str, extra: &[(&str, &str)]| {
        let mut p = vec![("query", q), ("start", start.as_str()), ("end", end.as_str())];
        p.extend_from_slice(extra);
        let r =
            get(&format!("{}/loki/api/v1/query_range", s.url), &p, &[("X-Scope-OrgID", tenant)]);
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        r.json()["data"]["result"].clone()
    };
    let mut out = BTreeMap::new();
    out.insert("all backward".into(), range(r#"{env="prod"}"#, &[("limit", "5000")]));
    out.insert(
        "forward, limit 37".into(),
        range(r#"{env="prod"}"#, &[("limit", "37"), ("direction", "forward")]),
    );
    out.insert("needle".into(), range(r#"{app="db"} |= "i=13 " "#, &[("limit", "1000")]));
    out.insert("metadata".into(), range(r#"{env="prod"} | trace_id="t1""#, &[("limit", "5000")]));
    out.insert(
        "count by app".into(),
        range(r#"sum by (app) (count_over_time({env="prod"}[1m]))"#, &[("step", "60")]),
    );
    out.insert(
        "error bytes".into(),
        range(r#"sum(bytes_over_time({env="prod"} |= "level=error" [10m]))"#, &[("step", "300")]),
    );
    out.insert(
        "rate by level".into(),
        range(r#"sum by (level) (rate({env="prod"} | logfmt [5m]))"#, &[("step", "120")]),
    );
    let t = (base(now) + 9 * HOUR).to_string();
    let r = get(
        &format!("{}/loki/api/v1/query", s.url),
        &[("query", r#"count_over_time({app="web"}[12h])"#), ("time", &t)],
        &[("X-Scope-OrgID", tenant)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    out.insert("instant".into(), r.json()["data"]["result"].clone());
    out
}

/// Files under `dir` (relative paths) below `prefix`.
fn files(dir: &Path, prefix: &str) -> Vec<String> {
    let prefix = format!("{prefix}/");
    relative_files(dir).into_iter().filter(|s| s.starts_with(&prefix)).collect()
}

/// Every line held by the tenant's stored chunks (own objects and packs), with the number of
/// chunks read; `None` when an object listed was deleted before it was read (a pass ran).
fn try_stored_lines(store: &Store) -> Option<(Vec<String>, usize)> {
    let t = &store.tenant;
    let mut objects: Vec<Vec<u8>> = Vec::new();
    for p in (store.list)(&format!("{t}/chunks")) {
        objects.push((store.get)(&p)?);
    }
    for idx in (store.list)(&format!("{t}/packs")).iter().filter(|p| p.ends_with(".idx")) {
        let (dir, bad) = PackIndex::parse(&String::from_utf8((store.get)(idx)?).unwrap());
        assert_eq!(bad, 0);
        let pack = (store.get)(&pack_of_idx(idx).unwrap())?;
        for (_, off, len) in dir.chunks {
            objects.push(pack[off as usize..(off + len) as usize].to_vec());
        }
    }
    let mut lines = Vec::new();
    for bytes in &objects {
        let chunk = skald_chunk::Chunk::parse(bytes).unwrap();
        lines.extend(chunk.iter_entries(i64::MIN, i64::MAX).map(|e| e.unwrap().line.to_string()));
    }
    lines.sort();
    lines.dedup();
    Some((lines, objects.len()))
}

/// [`try_stored_lines`], retried until no object vanishes while it reads.
fn stored_lines(store: &Store) -> (Vec<String>, usize) {
    for _ in 0..50 {
        if let Some(r) = try_stored_lines(store) {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("objects kept vanishing while they were read");
}

/// Chunks the index names (`index/stats`).
fn indexed_chunks(s: &Skald, tenant: &str, now: i64) -> u64 {
    let (start, end) = ((base(now) - HOUR).to_string(), (base(now) + 10 * HOUR).to_string());
    let r = get(
        &format!("{}/loki/api/v1/index/stats", s.url),
        &[("query", r#"{env="prod"}"#), ("start", &start), ("end", &end)],
        &[("X-Scope-OrgID", tenant)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["chunks"].as_u64().unwrap()
}

/// Waits until every chunk is packed, no marker is left and every object is needed: no chunk
/// object of its own, each pack with its directory, as many packed chunks as indexed ones.
/// Answers are checked against `want` meanwhile.
fn wait_compacted(s: &Skald, store: &Store, now: i64, want: &BTreeMap<String, Value>) {
    let t = &store.tenant;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let chunks = (store.list)(&format!("{t}/chunks"));
        let packs = (store.list)(&format!("{t}/packs"));
        let markers = (store.list)(&format!("compactor/markers/{t}"));
        let idx: Vec<&String> = packs.iter().filter(|p| p.ends_with(".idx")).collect();
        let paired = idx.len() * 2 == packs.len()
            && idx.iter().all(|i| packs.contains(&pack_of_idx(i).unwrap()));
        if chunks.is_empty() && markers.is_empty() && paired && !idx.is_empty() {
            let (_, packed) = stored_lines(store);
            if packed as u64 == indexed_chunks(s, t, now) {
                break;
            }
        }
        assert_eq!(&answers(s, t, now), want, "answers while compacting");
        assert!(
            Instant::now() < deadline,
            "not compacted: chunks {chunks:?}, packs {packs:?}, markers {markers:?}, {} packed chunks, {} indexed; log:\n{}",
            stored_lines(store).1,
            indexed_chunks(s, t, now),
            s.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn run(dir: &Path, store: &Store) {
    let t = store.tenant.as_str();
    let now = now_ns();
    // run A: no chunk compaction; 12 flushes of 5 streams
    let mut a = Skald::start(dir, &config(false, "1h", &store.yaml));
    (store.ready)(&a);
    for round in 0..12 {
        push_round(&a, t, now, round, 60);
    }
    let before = answers(&a, t, now);
    assert!(before["all backward"].as_array().unwrap().len() >= APPS.len());
    let chunks_before = (store.list)(&format!("{t}/chunks")).len();
    assert_eq!(chunks_before, 60);
    let (lines_before, _) = stored_lines(store);
    a.stop();

    // run B: a pass every second
    let b = Skald::start(dir, &config(true, "1s", &store.yaml));
    wait_compacted(&b, store, now, &before);
    assert_eq!(answers(&b, t, now), before, "same answers after compaction");
    assert_eq!(stored_lines(store).0, lines_before);
    let objects = (store.list)(&format!("{t}/packs")).len();
    assert!(objects <= 2, "all 60 chunks in one pack: {objects} objects");
    assert!(metric_sum(&b.url, "skald_compactor_merged_chunks_total") > 60.0);
    assert!(metric_sum(&b.url, "skald_compactor_packs_written_total") >= 1.0);

    // orphans: a chunk object no index ref names, a pack without directory
    let orphan = format!("{t}/chunks/00000000000000aa/1-2-00000003");
    let lone_pack = format!("{t}/packs/{}/00000000000000ab.pack", base(now) / DAY);
    (store.put)(&orphan, b"orphan");
    (store.put)(&lone_pack, b"lone");
    let deadline = Instant::now() + Duration::from_secs(30);
    while (store.list)(&format!("{t}/chunks")).contains(&orphan)
        || (store.list)(&format!("{t}/packs")).contains(&lone_pack)
    {
        assert!(Instant::now() < deadline, "orphans not deleted; log:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(metric_sum(&b.url, "skald_compactor_orphans_deleted_total") >= 2.0);

    // a delete request over lines in packed chunks: their bytes leave every object
    let (start, end) = ((base(now) - HOUR) / NS, (base(now) + 10 * HOUR) / NS);
    let r = post(
        &format!(
            "{}/loki/api/v1/delete?query={}&start={start}&end={end}",
            b.url,
            urlencode(r#"{app="db"} |= "round=3 ""#)
        ),
        &[("X-Scope-OrgID", t)],
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let deleted = |l: &String| l.contains("app=db round=3 ");
    let want: Vec<String> = lines_before.iter().filter(|l| !deleted(l)).cloned().collect();
    assert_eq!(lines_before.len() - want.len(), 60);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (lines, _) = stored_lines(store);
        let markers = (store.list)(&format!("compactor/markers/{t}"));
        if lines == want && markers.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "deleted lines still stored; log:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(b);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn small_chunks_are_merged_and_packed_with_the_same_answers() {
    let dir = temp_dir("compaction");
    let root = dir.join("data").join("chunks");
    let list = |p: &str| files(&root, p);
    let get = |p: &str| std::fs::read(root.join(p)).ok();
    let put = |p: &str, b: &[u8]| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b).unwrap();
    };
    let store = Store {
        yaml: String::new(),
        tenant: "t".into(),
        list: &list,
        get: &get,
        put: &put,
        ready: &|_| {},
    };
    run(&dir, &store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `test` over SeaweedFS (chunks, packs, filter tables) and DynamoDB Local (the index).
fn with_s3_store(name: &str, test: fn(&Path, &Store)) {
    let dir = temp_dir(name);
    let bucket = AwsBucket::new("cpt");
    let list = |p: &str| bucket.list(p);
    let get = |p: &str| bucket.get(p);
    let put = |p: &str, b: &[u8]| bucket.put(p, b);
    let store = Store {
        yaml: bucket.yaml.clone(),
        tenant: bucket.tenant.clone(),
        list: &list,
        get: &get,
        put: &put,
        ready: &AwsBucket::ready,
    };
    test(&dir, &store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// [`run`] over SeaweedFS and DynamoDB Local.
#[test]
fn compaction_on_s3_and_dynamodb() {
    with_s3_store("compaction-aws", run);
}

/// SIGKILLs the compactor at random points of its passes, 10 times, with new small chunks
/// flushed each round: every answer in between is the expected one, and after a last clean
/// run every chunk is packed and no object is left that no index ref needs.
#[test]
fn sigkill_mid_compaction_changes_no_answer_and_leaves_no_orphan() {
    let dir = temp_dir("compaction-kill");
    let root = dir.join("data").join("chunks");
    let list = |p: &str| files(&root, p);
    let get = |p: &str| std::fs::read(root.join(p)).ok();
    let put = |_: &str, _: &[u8]| {};
    let store = Store {
        yaml: String::new(),
        tenant: "t".into(),
        list: &list,
        get: &get,
        put: &put,
        ready: &|_| {},
    };
    kill_loop(&dir, &store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same SIGKILL loop over SeaweedFS and DynamoDB Local.
#[test]
fn sigkill_mid_compaction_on_s3_and_dynamodb() {
    with_s3_store("compaction-kill-aws", kill_loop);
}

/// The kill loop of the two tests above, over `store` (the compacting process's data in `dir`).
fn kill_loop(dir: &Path, store: &Store) {
    let t = store.tenant.as_str();
    let now = now_ns();
    // the oracle: the same pushes into a skald (on the filesystem) that never compacts
    let oracle_dir = temp_dir("compaction-kill-oracle");
    let oracle = Skald::start(&oracle_dir, &config(false, "1h", ""));
    let mut b = Skald::start(dir, &config(true, "1s", &store.yaml));
    (store.ready)(&b);
    let mut seed = 0x9e37_79b9_u64;
    for round in 0..10i64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        for r in [round * 2, round * 2 + 1] {
            push_round(&b, t, now, r, 40);
            push_round(&oracle, t, now, r, 40);
        }
        let want = answers(&oracle, t, now);
        assert_eq!(answers(&b, t, now), want, "round {round}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while metric_sum(&b.url, "loki_compactor_running") < 1.0 {
            assert!(Instant::now() < deadline, "round {round}: the lease never came");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(seed % 1500));
        assert_eq!(answers(&b, t, now), want, "round {round}, mid-pass");
        b.kill();
        b.start_again();
        (store.ready)(&b);
        assert_eq!(answers(&b, t, now), want, "round {round}, after the restart");
    }
    let want = answers(&oracle, t, now);
    // what the WAL replays after each kill (pushes since its last checkpoint) is flushed again
    // (duplicates of stored chunks, which compaction merges away)
    let r = post(&format!("{}/flush", b.url), &[], b"");
    assert_eq!(r.status, 204, "{}", r.body);
    std::thread::sleep(Duration::from_secs(2)); // past the orphan grace period
    wait_compacted(&b, store, now, &want);
    assert_eq!(answers(&b, t, now), want);
    // every pushed line is in the store, once packed
    let mut pushed: Vec<String> = APPS
        .iter()
        .flat_map(|a| (0..20).flat_map(move |r| (0..40).map(move |i| line(a, r, i))))
        .collect();
    pushed.sort();
    assert_eq!(stored_lines(store).0, pushed);
    drop(b);
    drop(oracle);
    let _ = std::fs::remove_dir_all(&oracle_dir);
}
