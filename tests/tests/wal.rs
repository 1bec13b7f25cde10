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

/// A tmpfs of `size` mounted at `dir` for the test's life (unmounted on drop, also on panic).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// `None` where this process may not mount (not root): the caller says so and skips.
    fn mount(dir: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` with one file until a write fails (ENOSPC).
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

/// Issue 13, item 1: a push whose WAL write fails (disk full) is refused with 503; its retry
/// once space is back is acknowledged only after the refused push's entries are logged, so a
/// SIGKILL then loses nothing that was acknowledged.
#[test]
fn a_full_wal_disk_loses_no_acknowledged_line() {
    let dir = temp_dir("wal-full");
    let wal_dir = dir.join("wal-tmpfs");
    let Some(_tmpfs) = Tmpfs::mount(&wal_dir, "4m") else {
        skald_integration_tests::not_run(
            "wal::a_full_wal_disk_loses_no_acknowledged_line",
            "cannot mount a tmpfs (needs root)",
        );
        return;
    };
    let config = format!(
        "{CONFIG}    dir: {}\n    fsync: always\n    checkpoint_duration: 1h\n",
        wal_dir.display()
    )
    .replace("    checkpoint_duration: 1s\n", "")
    .replace("chunk_idle_period: 1s", "chunk_idle_period: 1h")
    .replace("flush_check_period: 1s", "flush_check_period: 1h");
    let mut s = Skald::start(&dir, &config);
    let push_url = format!("{}/loki/api/v1/push", s.url);
    let base = now_ns() - 60_000_000_000;
    let batch = |from: u64, n: u64| -> Vec<u8> {
        let values: Vec<serde_json::Value> = (from..from + n)
            .map(|i| {
                serde_json::json!([(base + i as i64).to_string(), format!("full line id={i}")])
            })
            .collect();
        serde_json::json!({"streams": [{"stream": {"job": "full"}, "values": values}]})
            .to_string()
            .into_bytes()
    };
    let json = [("Content-Type", "application/json")];
    let r = skald_integration_tests::post(&push_url, &json, &batch(0, 100));
    assert_eq!(r.status, 204, "{}", r.body);

    // The WAL's disk fills up: the next push is refused, and so is its retry.
    let filler = wal_dir.join("filler");
    fill(&filler);
    let refused = batch(100, 200);
    for _ in 0..2 {
        let r = skald_integration_tests::post(&push_url, &json, &refused);
        assert_eq!(r.status, 503, "a push whose WAL write fails is refused: {}", r.body);
        assert!(r.body.contains("WAL"), "{}", r.body);
    }
    // Space comes back; the client retries the same body until it is acknowledged.
    std::fs::remove_file(&filler).unwrap();
    let mut acked = false;
    for _ in 0..20 {
        if skald_integration_tests::post(&push_url, &json, &refused).status == 204 {
            acked = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(acked, "the retry was never acknowledged: {}", s.log());
    let r = skald_integration_tests::post(&push_url, &json, &batch(300, 100));
    assert_eq!(r.status, 204, "{}", r.body);

    s.kill_and_restart();
    let seen = stored_ids(&s.url, "full", base - 1);
    let acked_ids: Vec<u64> = (0..400).collect();
    let (lost, duplicated) = lost_and_duplicated(&acked_ids, &seen);
    assert_eq!((lost, duplicated), (0, 0), "seen {} of 400; log:\n{}", seen.len(), s.log());
    let metrics = get(&format!("{}/metrics", s.url), &[], &[]).body;
    assert!(metrics.contains("skald_ingester_wal_write_failures_total"), "{metrics}");
    s.stop();
}
