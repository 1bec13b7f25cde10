//! Zero loss of acknowledged writes across SIGKILL: a pusher sends batches of uniquely
//! numbered lines while the single binary is SIGKILLed at a random moment and restarted; every
//! line whose push got a 204 must then be returned exactly once (WAL replay). Checkpoints,
//! segment rotation and flushes run every second meanwhile, so kills land in all of them.
//! `SKALD_WAL_KILLS=N` sets the number of kill/restart rounds (default 3).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use skald_integration_tests::{get, temp_dir, Skald};

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

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// A small pseudo-random number from the clock (the kill moment).
fn jitter_ms(max: u64) -> u64 {
    (now_ns() as u64 / 1000).wrapping_mul(6364136223846793005) % max
}

/// Pushes batches of 100 numbered lines until `stop`; returns the ids of acknowledged lines.
fn pusher(url: String, next_id: Arc<Mutex<u64>>, stop: Arc<AtomicBool>) -> Vec<u64> {
    let mut acked = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let first = {
            let mut n = next_id.lock().unwrap();
            let f = *n;
            *n += 100;
            f
        };
        let ts = now_ns();
        let values: Vec<Value> = (0..100u64)
            .map(|i| {
                json!([(ts + i as i64).to_string(), format!("wal test line id={}", first + i)])
            })
            .collect();
        let body = json!({"streams": [{"stream": {"job": "wal", "host": format!("h{}", first / 100 % 3)}, "values": values}]});
        let res = ureq::post(&format!("{url}/loki/api/v1/push"))
            .timeout(Duration::from_secs(10))
            .set("Content-Type", "application/json")
            .send_string(&body.to_string());
        match res {
            Ok(r) if r.status() == 204 => acked.extend(first..first + 100),
            // refused or the server died mid-request: not acknowledged
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    acked
}

fn ids_in_store(s: &Skald, start: i64) -> HashMap<u64, usize> {
    let (st, en) = (start.to_string(), (now_ns() + 60_000_000_000).to_string());
    let r = get(
        &format!("{}/loki/api/v1/query_range", s.url),
        &[
            ("query", "{job=\"wal\"}"),
            ("start", st.as_str()),
            ("end", en.as_str()),
            ("limit", "1000000"),
            ("direction", "forward"),
        ],
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for stream in v["data"]["result"].as_array().unwrap() {
        for pair in stream["values"].as_array().unwrap() {
            let line = pair[1].as_str().unwrap();
            let id: u64 = line.rsplit("id=").next().unwrap().parse().unwrap();
            *seen.entry(id).or_default() += 1;
        }
    }
    seen
}

#[test]
fn sigkill_loses_no_acknowledged_line() {
    let rounds: usize =
        std::env::var("SKALD_WAL_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let dir = temp_dir("wal-kill");
    let mut s = Skald::start(&dir, CONFIG);
    let start = now_ns() - 60_000_000_000;
    let next_id = Arc::new(Mutex::new(0u64));
    let mut acked: Vec<u64> = Vec::new();
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (url, next, stop) = (s.url.clone(), next_id.clone(), stop.clone());
                std::thread::spawn(move || pusher(url, next, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700 + jitter_ms(1500)));
        let killed_at = Instant::now();
        s.kill_and_restart();
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            acked.extend(h.join().unwrap());
        }
        let seen = ids_in_store(&s, start);
        let lost = acked.iter().filter(|id| !seen.contains_key(id)).count();
        let duplicated = seen.values().filter(|&&n| n > 1).count();
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
    let seen = ids_in_store(&s, start);
    assert!(acked.iter().all(|id| seen.get(id) == Some(&1)));
    let metrics = get(&format!("{}/metrics", s.url), &[], &[]).body;
    assert!(metrics.contains("loki_ingester_wal_recovered_entries_total"), "{metrics}");
}
