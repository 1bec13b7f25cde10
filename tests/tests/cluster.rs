//! Separate processes: 3 ingesters (`-target=ingester`, each with its own WAL), a distributor
//! and a querier (`-target=distributor`, `-target=querier`) over a static ring with
//! replication factor 3 and shared filesystem storage, talking gRPC over loopback.
//!
//! Fault test: a pusher sends uniquely numbered lines to the distributor while one ingester is
//! SIGKILLed at a random moment and restarted; afterwards every line whose push got a 204 is
//! returned by the querier exactly once. Then two ingesters down: pushes fail with a 5xx and,
//! once they are back, nothing acknowledged before is lost. Also a rolling restart (SIGTERM)
//! of all three ingesters under load. `SKALD_CLUSTER_ROUNDS=N` sets the number of kill rounds
//! (default 5; the longer stress mode is e.g. `SKALD_CLUSTER_ROUNDS=50`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use skald_integration_tests::{
    get, jitter_ms, lost_and_duplicated, metric_sum, now_ns, post, push_numbered_during,
    start_cluster, start_gossip_cluster, stored_ids, temp_dir, Cluster,
};

/// Pushes numbered lines to `url` from two threads while `during` runs.
fn run_pushers<F: FnOnce()>(url: &str, next: &Arc<AtomicU64>, during: F) -> (Vec<u64>, Vec<u16>) {
    push_numbered_during(url, "cluster", 50, next, during)
}

const LIMITS: &str = "limits_config:
  max_entries_limit_per_query: 1000000
  ingestion_rate_mb: 1024
  ingestion_burst_size_mb: 1024
  per_stream_rate_limit: 1GB
  per_stream_rate_limit_burst: 1GB
";

#[test]
fn replicated_cluster_loses_and_duplicates_nothing() {
    let rounds: usize =
        std::env::var("SKALD_CLUSTER_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let dir = temp_dir("cluster");
    let mut c = start_cluster(&dir, LIMITS);
    let start = now_ns() - 60_000_000_000;
    let next = Arc::new(AtomicU64::new(0));
    let mut acked: Vec<u64> = Vec::new();
    let url = c.distributor.url.clone();

    // The ring as the distributor and the querier see it: 3 ACTIVE ingesters, same tokens.
    let ring = |base: &str| -> Value {
        let r = get(&format!("{base}/ring"), &[], &[("Accept", "application/json")]);
        assert_eq!(r.status, 200, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    };
    let (d_ring, q_ring) = (ring(&url), ring(&c.querier.url));
    let shards = d_ring["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3);
    assert!(shards
        .iter()
        .all(|s| s["state"] == "ACTIVE" && s["tokens"].as_array().unwrap().len() == 128));
    let owned: f64 = shards.iter().map(|s| s["ownership"].as_f64().unwrap()).sum();
    assert!((owned - 100.0).abs() < 1e-6, "{owned}");
    let layout = |v: &Value| -> Vec<(Value, Value)> {
        v["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].clone(), s["tokens"].clone()))
            .collect()
    };
    assert_eq!(layout(&d_ring), layout(&q_ring), "distributor and querier disagree on the ring");
    let html = get(&format!("{url}/distributor/ring"), &[], &[]);
    assert!(html.content_type.starts_with("text/html"), "{}", html.content_type);
    assert_eq!(html.body.matches("<tr><td>").count(), 3, "{}", html.body);

    for round in 0..rounds {
        let victim = round % 3;
        let ingesters = &mut c.ingesters;
        let (a, refused) = run_pushers(&url, &next, || {
            std::thread::sleep(Duration::from_millis(300 + jitter_ms(700)));
            ingesters[victim].kill();
            std::thread::sleep(Duration::from_millis(500));
            ingesters[victim].start_again();
            std::thread::sleep(Duration::from_millis(300));
        });
        acked.extend(a);
        let seen = stored_ids(&c.querier.url, "cluster", start);
        let (lost, duplicated) = lost_and_duplicated(&acked, &seen);
        println!(
            "round {round}: killed ingester {victim}; {} acknowledged so far, {} refused this round, lost {lost}, duplicated {duplicated}",
            acked.len(),
            refused.len()
        );
        assert_eq!((lost, duplicated), (0, 0));
    }
    assert!(acked.len() > 1000, "too few pushes were acknowledged: {}", acked.len());
    // the distributor counted its pushes to each ingester, and those a killed one failed
    let per = |name: &str, i: usize| {
        let series = format!("{name}{{ingester=\"127.0.0.1:{}\"}}", c.ingesters[i].grpc_port);
        metric_sum(&url, &series)
    };
    for i in 0..3 {
        let (appends, failures) = (
            per("loki_distributor_ingester_appends_total", i),
            per("loki_distributor_ingester_append_failures_total", i),
        );
        println!("ingester {i}: {appends} appends, {failures} failed");
        assert!(appends > failures, "ingester {i}: {appends} appends, {failures} failed");
        assert!(rounds < i + 1 || failures > 0.0, "ingester {i} was killed, no append failed");
    }

    // Replication factor 3: a chunk the replicas cut alike is uploaded by the first of them to
    // flush it; the others find it there (a HEAD) and skip their upload. After the kill rounds
    // each replica lacks the lines of its own downtime, so whether any of their chunks still
    // match is chance; a stream pushed now, with all three up, is cut alike on at least two.
    let t = now_ns();
    let values: Vec<Value> = (0..2000)
        .map(|i| json!([(t + i).to_string(), format!("alike on every replica {i}")]))
        .collect();
    let body = json!({"streams": [{"stream": {"job": "alike"}, "values": values}]}).to_string();
    let r = post(
        &format!("{url}/loki/api/v1/push"),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    for i in &c.ingesters {
        let r = post(&format!("{}/flush", i.url), &[], b"");
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let sum = |name: &str| c.ingesters.iter().map(|i| metric_sum(&i.url, name)).sum::<f64>();
    let (flushed, skipped) =
        (sum("loki_ingester_chunks_flushed_total"), sum("skald_object_store_puts_skipped_total"));
    let heads = sum("skald_object_store_requests_total{operation=\"head\"}");
    println!("{flushed} chunks flushed by the replicas, {heads} HEADs, {skipped} uploads skipped");
    assert!(
        skipped > 0.0 && heads >= flushed,
        "{flushed} flushed, {heads} HEADs, {skipped} skipped"
    );
    // Loki's name for the same count (both read from one scrape of each ingester)
    for i in &c.ingesters {
        let text = get(&format!("{}/metrics", i.url), &[], &[]).body;
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or(-1.0)
        };
        let skipped = value("skald_object_store_puts_skipped_total");
        assert_eq!(value("loki_chunk_store_deduped_chunks_total"), skipped);
        assert!(value("loki_chunk_store_deduped_bytes_total") >= skipped, "{text}");
    }

    // Rolling restart under load: each ingester in turn stops cleanly (SIGTERM) and comes back.
    rolling_restart(&mut c, &next, &mut acked, start, "static", || {});
    // Two of three down: a quorum is impossible, pushes must fail with a 5xx.
    two_down(&mut c, &next, &acked, start, "static", || {});
}

/// Each ingester in turn stops cleanly (SIGTERM) and comes back under load (`back` waits for
/// it where the ring needs time to see it); then every acknowledged line is there exactly once.
fn rolling_restart(
    c: &mut Cluster,
    next: &Arc<AtomicU64>,
    acked: &mut Vec<u64>,
    start: i64,
    ring: &str,
    back: impl Fn(),
) {
    let url = c.distributor.url.clone();
    let ingesters = &mut c.ingesters;
    let (a, refused) = run_pushers(&url, next, || {
        for ing in ingesters.iter_mut() {
            std::thread::sleep(Duration::from_millis(300));
            ing.restart();
            back();
        }
        std::thread::sleep(Duration::from_millis(300));
    });
    acked.extend(a);
    let seen = stored_ids(&c.querier.url, "cluster", start);
    let (lost, duplicated) = lost_and_duplicated(acked, &seen);
    println!(
        "{ring}, rolling restart: {} acknowledged so far, {} refused, lost {lost}, duplicated {duplicated}",
        acked.len(),
        refused.len()
    );
    assert_eq!((lost, duplicated), (0, 0));
}

/// Two of three ingesters killed: no quorum, so every push fails with a 5xx and none is
/// acknowledged; once they are back (`back` waits where needed), nothing acknowledged before
/// is lost or duplicated.
fn two_down(
    c: &mut Cluster,
    next: &Arc<AtomicU64>,
    acked: &[u64],
    start: i64,
    ring: &str,
    back: impl Fn(),
) {
    c.ingesters[0].kill();
    c.ingesters[1].kill();
    let (a, refused) =
        run_pushers(&c.distributor.url, next, || std::thread::sleep(Duration::from_millis(500)));
    assert!(
        a.is_empty(),
        "{ring}: {} lines were acknowledged without a quorum ({} refused)",
        a.len(),
        refused.len()
    );
    assert!(!refused.is_empty() && refused.iter().all(|s| (500..600).contains(s)), "{refused:?}");
    c.ingesters[0].start_again();
    c.ingesters[1].start_again();
    back();
    let seen = stored_ids(&c.querier.url, "cluster", start);
    let (lost, duplicated) = lost_and_duplicated(acked, &seen);
    println!(
        "{ring}, after two ingesters were down: lost {lost}, duplicated {duplicated} of {}",
        acked.len()
    );
    assert_eq!((lost, duplicated), (0, 0));
}

/// The ring's ACTIVE instance ids as `base` serves them.
fn active(base: &str) -> Vec<String> {
    let r = get(&format!("{base}/ring"), &[], &[("Accept", "application/json")]);
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let mut ids: Vec<String> = v["shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "ACTIVE")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn wait_active(base: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if active(base).len() == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{base} did not see {n} ACTIVE ingesters: {:?}", active(base));
}

#[test]
fn gossip_cluster_replicates_and_survives_kills() {
    let dir = temp_dir("gossip-cluster");
    let mut c = start_gossip_cluster(&dir, LIMITS);
    let url = c.distributor.url.clone();
    wait_active(&url, 3);
    wait_active(&c.querier.url, 3);
    assert_eq!(active(&url), vec!["ingester-0", "ingester-1", "ingester-2"]);

    let start = now_ns() - 60_000_000_000;
    let next = Arc::new(AtomicU64::new(0));
    let querier_url = c.querier.url.clone();
    let mut acked: Vec<u64> = Vec::new();
    // Every ingester in turn, the seed member (ingester-0) included.
    for victim in [1, 2, 0] {
        let ingesters = &mut c.ingesters;
        let (a, refused) = run_pushers(&url, &next, || {
            std::thread::sleep(Duration::from_millis(400 + jitter_ms(600)));
            ingesters[victim].kill();
            std::thread::sleep(Duration::from_millis(800));
            ingesters[victim].start_again();
            // back in the ring with the same id, ACTIVE once its WAL is replayed
            wait_active(&querier_url, 3);
            wait_active(&url, 3);
            std::thread::sleep(Duration::from_millis(300));
        });
        acked.extend(a);
        let seen = stored_ids(&c.querier.url, "cluster", start);
        let (lost, duplicated) = lost_and_duplicated(&acked, &seen);
        println!(
            "gossip, killed ingester-{victim}: {} acknowledged so far, {} refused, lost {lost}, duplicated {duplicated}",
            acked.len(),
            refused.len()
        );
        assert_eq!((lost, duplicated), (0, 0));
    }
    assert!(acked.len() > 500, "too few pushes were acknowledged: {}", acked.len());

    // Rolling restart under load: each ingester in turn stops cleanly (LEAVING) and rejoins.
    let d_url = url.clone();
    let back = || {
        wait_active(&querier_url, 3);
        wait_active(&d_url, 3);
    };
    rolling_restart(&mut c, &next, &mut acked, start, "gossip", back);
    // Two of three down: dead ingesters keep their ring place, so there is no quorum.
    two_down(&mut c, &next, &acked, start, "gossip", || wait_active(&querier_url, 3));

    // A clean stop: the ingester announces LEAVING, then drops out of the ring.
    c.ingesters[2].stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while active(&url).len() != 2 {
        assert!(std::time::Instant::now() < deadline, "{:?}", active(&url));
        std::thread::sleep(Duration::from_millis(100));
    }
}
