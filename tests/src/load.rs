//! The load generator: numbered pushes while something else happens (a kill, a restart, an
//! outage), and the accounting of what came back (lost and duplicated lines).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::{get, now_ns};

/// Pushes batches of `batch` lines `<job> line id=<n>` (ids taken from `next`, so unique
/// across pushers) for `{job="<job>", shard=...}` to `url` until `stop`. Returns the ids of
/// acknowledged (204) lines and the statuses of refused pushes (0: no answer).
fn push_numbered_until(
    url: &str,
    job: &str,
    batch: u64,
    next: &AtomicU64,
    stop: &AtomicBool,
) -> (Vec<u64>, Vec<u16>) {
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    while !stop.load(Ordering::Relaxed) {
        let first = next.fetch_add(batch, Ordering::Relaxed);
        let ts = now_ns();
        let values: Vec<serde_json::Value> = (0..batch)
            .map(|i| {
                serde_json::json!([
                    (ts + i as i64).to_string(),
                    format!("{job} line id={}", first + i)
                ])
            })
            .collect();
        let stream = serde_json::json!({"job": job, "shard": format!("s{}", first / batch % 8)});
        let body = serde_json::json!({"streams": [{"stream": stream, "values": values}]});
        let res = ureq::post(&format!("{url}/loki/api/v1/push"))
            .timeout(Duration::from_secs(10))
            .set("Content-Type", "application/json")
            .send_string(&body.to_string());
        match res {
            Ok(r) if r.status() == 204 => {
                acked.extend(first..first + batch);
                continue;
            }
            Ok(r) => refused.push(r.status()),
            Err(ureq::Error::Status(code, _)) => refused.push(code),
            Err(_) => refused.push(0),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (acked, refused)
}

/// Runs two [`push_numbered_until`] threads while `during` runs; returns what they saw.
pub fn push_numbered_during<F: FnOnce()>(
    url: &str,
    job: &str,
    batch: u64,
    next: &Arc<AtomicU64>,
    during: F,
) -> (Vec<u64>, Vec<u16>) {
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (url, job, next, stop) =
                (url.to_string(), job.to_string(), next.clone(), stop.clone());
            std::thread::spawn(move || push_numbered_until(&url, &job, batch, &next, &stop))
        })
        .collect();
    during();
    stop.store(true, Ordering::Relaxed);
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    for h in handles {
        let (a, r) = h.join().expect("pusher thread");
        acked.extend(a);
        refused.extend(r);
    }
    (acked, refused)
}

/// How often each id of the numbered lines of `{job="<job>"}` since `start_ns` comes back
/// from `url`'s `query_range`.
pub fn stored_ids(url: &str, job: &str, start_ns: i64) -> HashMap<u64, usize> {
    let (st, en) = (start_ns.to_string(), (now_ns() + 60_000_000_000).to_string());
    let query = format!("{{job=\"{job}\"}}");
    let r = get(
        &format!("{url}/loki/api/v1/query_range"),
        &[
            ("query", query.as_str()),
            ("start", st.as_str()),
            ("end", en.as_str()),
            ("limit", "1000000"),
            ("direction", "forward"),
        ],
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for stream in v["data"]["result"].as_array().expect("streams") {
        for pair in stream["values"].as_array().expect("values") {
            let line = pair[1].as_str().expect("line");
            let id = line.rsplit("id=").next().and_then(|n| n.parse().ok()).expect("numbered line");
            *seen.entry(id).or_default() += 1;
        }
    }
    seen
}

/// (acknowledged ids missing from `seen`, ids seen more than once).
pub fn lost_and_duplicated(acked: &[u64], seen: &HashMap<u64, usize>) -> (usize, usize) {
    let lost = acked.iter().filter(|id| !seen.contains_key(id)).count();
    (lost, seen.values().filter(|&&n| n > 1).count())
}
