//! Zero loss of acknowledged writes across SIGKILL: a pusher sends batches of uniquely
//! numbered lines while the single binary is SIGKILLed at a random moment and restarted; every
//! line whose push got a 204 must then be returned exactly once (WAL replay). Checkpoints,
//! segment rotation and flushes run every second meanwhile, so kills land in all of them.
//! `SKALD_WAL_KILLS=N` sets the number of kill/restart rounds (default 3).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skald_integration_tests::{
    get, jitter_ms, lost_and_duplicated, now_ns, push_numbered_during, stored_ids, temp_dir, Skald,
};

const CONFIG: &str = "limits_config:
  max_entries_limit_per_query: 1000000
  ingestion_rate_mb: 1024
  ingestion_burst_size_mb: 1024
  per_stream_rate_limit: 1GB
  per_stream_rate_limit_burst: 1GB
ingester:
  chunk_idle_period: 1s
  flush_check_period: 1s
  chunk_block_size: 16384
  chunk_target_size: 65536
  wal:
    checkpoint_duration: 1s
    segment_size: 256KB
";

#[test]
fn sigkill_loses_no_acknowledged_line() {
    let rounds: usize =
        std::env::var("SKALD_WAL_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let dir = temp_dir("wal-kill");
    let mut s = Skald::start(&dir, CONFIG);
    let start = now_ns() - 60_000_000_000;
    let next = Arc::new(AtomicU64::new(0));
    let mut acked: Vec<u64> = Vec::new();
    for round in 0..rounds {
        let mut killed_at = Instant::now();
        let (a, _) = push_numbered_during(&s.url.clone(), "wal", 100, &next, || {
            std::thread::sleep(Duration::from_millis(700 + jitter_ms(1500)));
            killed_at = Instant::now();
            s.kill_and_restart();
        });
        acked.extend(a);
        let seen = stored_ids(&s.url, "wal", start);
        let (lost, duplicated) = lost_and_duplicated(&acked, &seen);
        println!(
            "round {round}: {} acknowledged lines so far, {} stored, lost {lost}, duplicated {duplicated}, restart took {:?}",
            acked.len(),
            seen.len(),
            killed_at.elapsed()
        );
        assert_eq!((lost, duplicated), (0, 0), "log:\n{}", s.log());
    }
    assert!(acked.len() > 1000, "too few pushes were acknowledged: {}", acked.len());
    // A clean stop and start serves the same lines (from the checkpoint or from storage).
    s.restart();
    let seen = stored_ids(&s.url, "wal", start);
    assert!(acked.iter().all(|id| seen.get(id) == Some(&1)));
    let metrics = get(&format!("{}/metrics", s.url), &[], &[]).body;
    assert!(metrics.contains("loki_ingester_wal_recovered_entries_total"), "{metrics}");
}
