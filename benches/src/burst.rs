//! `--query-during-burst`: query latency on a process while a push burst runs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::load::PushLoad;
use crate::{Args, Deployment, SYSTEMS};

/// Latencies of the two probe requests of [`query_during_burst`].
#[derive(Default)]
struct Probes {
    labels: Vec<Duration>,
    query_range: Vec<Duration>,
}

impl Probes {
    /// One round: a `labels` request, then a small `query_range` (one stream, one minute,
    /// limit 10), both over `[start, end)`.
    fn round(&mut self, url: &str, start: i64, end: i64) -> Result<()> {
        let (s, e) = (start.to_string(), end.to_string());
        let t = Instant::now();
        ureq::get(&format!("{url}/loki/api/v1/labels"))
            .timeout(Duration::from_secs(120))
            .query("start", &s)
            .query("end", &e)
            .call()
            .map_err(|e| anyhow::anyhow!("labels failed: {e}"))?
            .into_string()?;
        self.labels.push(t.elapsed());
        let t = Instant::now();
        ureq::get(&format!("{url}/loki/api/v1/query_range"))
            .timeout(Duration::from_secs(120))
            .query("query", "{job=\"apache\", instance=\"i-0\"}")
            .query("start", &s)
            .query("end", &e)
            .query("limit", "10")
            .call()
            .map_err(|e| anyhow::anyhow!("query_range failed: {e}"))?
            .into_string()?;
        self.query_range.push(t.elapsed());
        Ok(())
    }

    fn report(&self, what: &str) {
        let stats = |v: &[Duration]| {
            let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
            ms.sort_by(f64::total_cmp);
            let at = |p: f64| {
                ms.get(((ms.len().saturating_sub(1)) as f64 * p).round() as usize)
                    .copied()
                    .unwrap_or(0.0)
            };
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests)",
                at(0.5),
                at(0.99),
                at(1.0),
                ms.len()
            )
        };
        println!(
            "{what}: labels {}; query_range {}",
            stats(&self.labels),
            stats(&self.query_range)
        );
    }
}

/// `--query-during-burst`: whether a push burst stalls queries on the same process. Pushes a
/// sixteenth of `--mb` (at least 8 MB) so that queries find data, measures a `labels` and a
/// small `query_range` request, repeated one after the other, first for 10 s with no push
/// running, then while the two push clients send `--mb` as fast as the server takes it.
pub(crate) fn query_during_burst(args: &Args, lines: Vec<Vec<String>>) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("skald-bench-burst-{}", std::process::id()));
    let server = Deployment::single(&args.bin, &dir, &args.config)?;
    let streams = SYSTEMS.len() * args.instances;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as i64;
    let span = 50 * 60 * 1_000_000_000i64;
    let t0 = now - span;
    // the warm-up fills the first half of the span, the burst the second
    let mut load = PushLoad {
        lines: Arc::new(lines),
        url: format!("{}/loki/api/v1/push", server.push_url),
        streams,
        per_stream: (args.mb * 1024 * 1024 / 16).max(8 << 20) / streams,
        batch_bytes: args.batch_kb * 1024,
        t0,
        span: span / 2,
        seed: 0x5eed,
    };
    let (raw, nlines) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    for w in load.spawn(&raw, &nlines) {
        w.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    let (start, end) = (t0 + span / 2 - 60_000_000_000, t0 + span / 2);
    let url = server.query_url.clone();
    let mut quiet = Probes::default();
    let quiet_started = Instant::now();
    while quiet_started.elapsed() < Duration::from_secs(10) {
        quiet.round(&url, start, end)?;
    }
    load.t0 = t0 + span / 2;
    load.per_stream = args.mb * 1024 * 1024 / streams;
    load.seed = 0xb0b5;
    raw.store(0, Ordering::Relaxed);
    let pushed = Arc::new(AtomicBool::new(false));
    let cpu0 = server.cpu_seconds();
    let started = Instant::now();
    let workers = load.spawn(&raw, &nlines);
    let prober = {
        let (pushed, url) = (pushed.clone(), url.clone());
        std::thread::spawn(move || -> Result<Probes> {
            let mut busy = Probes::default();
            while !pushed.load(Ordering::Relaxed) {
                busy.round(&url, start, end)?;
            }
            Ok(busy)
        })
    };
    let mut pushing = Ok(());
    for w in workers {
        let res = w.join().map_err(|_| anyhow::anyhow!("worker panicked"));
        if pushing.is_ok() {
            pushing = res.and_then(|r| r);
        }
    }
    let push_secs = started.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds() - cpu0;
    pushed.store(true, Ordering::Relaxed);
    let busy = prober.join().map_err(|_| anyhow::anyhow!("prober panicked"))??;
    pushing?;
    println!(
        "push burst: {:.1} MB raw in {push_secs:.1}s ({:.1} MB/s, {cpu:.1} server CPU-s)",
        raw.load(Ordering::Relaxed) as f64 / 1e6,
        raw.load(Ordering::Relaxed) as f64 / 1e6 / push_secs
    );
    quiet.report("no push running");
    busy.report("during the push burst");
    server.stop()?;
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
