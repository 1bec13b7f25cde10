//! The query-frontend's three figures (issue 16, "Numbers"):
//!
//! - `--cache-repeat`: logbench's `sum by (job) (count_over_time({env="bench"}[1m]))` over the
//!   whole pushed workload, run twice in the single binary with the results cache on and
//!   `max_cache_freshness_per_query: 1s`, then once more with `Cache-Control: no-cache`: the
//!   server CPU of each run, the ratio, and whether the answers match byte for byte apart from
//!   `stats`.
//! - `--dashboard`: a 24-hour, four-panel Grafana-like dashboard (volume, error rate, logs,
//!   bytes), its four queries sent at once as Grafana does, refreshed once cold and
//!   [`WARM_REFRESHES`] times warm with the results cache on (default freshness): cold time,
//!   warm p50 / p90.
//! - `--scale-out`: the same cold metric query (cache off) through `-target=query-frontend`
//!   with two queriers pulling work over gRPC against one `-target=querier` alone, over the
//!   same flushed store, alternated [`SCALE_OUT_ROUNDS`] times with fresh processes per run:
//!   median wall time and total CPU.
//!
//! CPU is read per thread from `/proc/<pid>/task/<tid>/schedstat` (nanoseconds), not from the
//! 10 ms ticks of `/proc/<pid>/stat`: a cached answer costs a few milliseconds.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::disk::dir_bytes;
use crate::load::{self, PushLoad};
use crate::logbench::Pushed;
use crate::{query_raw, Args, Deployment, Server, LIMITS, SYSTEMS};

/// logbench's per-job count (`../shared/tools/logbench.py`, `count_by_job`).
const COUNT_BY_JOB: &str = "sum by (job) (count_over_time({env=\"bench\"}[1m]))";
/// Warm refreshes of the dashboard.
pub(crate) const WARM_REFRESHES: usize = 21;
/// Refreshes of the dashboard with its range unaligned.
pub(crate) const UNALIGNED_REFRESHES: usize = 5;
/// Rounds of the scale-out comparison (each runs both deployments once).
pub(crate) const SCALE_OUT_ROUNDS: usize = 3;
const HOUR_NS: i64 = 3_600_000_000_000;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The host's load averages (`uptime`'s figures), for the log.
fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU nanoseconds per thread of `pid` (`schedstat`'s first field: time on a CPU).
fn thread_cpu_ns(pid: u32) -> HashMap<u32, u64> {
    let mut out = HashMap::new();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for e in rd.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let ns = std::fs::read_to_string(e.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        if let Some(ns) = ns {
            out.insert(tid, ns);
        }
    }
    out
}

/// The CPU some processes spend from `start()` to `seconds()`, thread by thread (a thread that
/// exits in between loses only what it spent in between; one that starts counts in full).
struct CpuProbe {
    before: Vec<(u32, HashMap<u32, u64>)>,
}

impl CpuProbe {
    fn start(pids: &[u32]) -> CpuProbe {
        CpuProbe { before: pids.iter().map(|&p| (p, thread_cpu_ns(p))).collect() }
    }

    /// CPU seconds per process since `start`, in the order of the pids.
    fn per_process(&self) -> Vec<f64> {
        self.before
            .iter()
            .map(|(pid, before)| {
                let ns: u64 = thread_cpu_ns(*pid)
                    .iter()
                    .map(|(tid, now)| now.saturating_sub(before.get(tid).copied().unwrap_or(0)))
                    .sum();
                ns as f64 / 1e9
            })
            .collect()
    }

    fn seconds(&self) -> f64 {
        self.per_process().iter().sum()
    }
}

/// `body` without its `"stats":{...}` member (and the comma before it): what must match byte
/// for byte between a computed and a cached answer. `None` when there is no such member.
fn without_stats(body: &[u8]) -> Option<Vec<u8>> {
    let key = b"\"stats\":";
    let at = body.windows(key.len()).rposition(|w| w == key)?;
    let mut i = at + key.len();
    // the value: an object, skipped by nesting depth outside strings
    if body.get(i) != Some(&b'{') {
        return None;
    }
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    while i < body.len() {
        let c = body[i];
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    if depth != 0 {
        return None;
    }
    let from = if at > 0 && body[at - 1] == b',' { at - 1 } else { at };
    let mut out = body[..from].to_vec();
    out.extend_from_slice(&body[i + 1..]);
    Some(out)
}

/// "MATCH" when the two answers are equal apart from `stats`, else "DIFFER" with the sizes.
fn compare(a: &[u8], b: &[u8]) -> String {
    match (without_stats(a), without_stats(b)) {
        (Some(x), Some(y)) if x == y => format!("MATCH ({} bytes apart from stats)", x.len()),
        (Some(x), Some(y)) => format!("DIFFER ({} vs {} bytes apart from stats)", x.len(), y.len()),
        _ => "DIFFER (no stats member found)".to_string(),
    }
}

/// The sum of every value of every series of a matrix answer.
fn matrix_total(body: &[u8]) -> f64 {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["data"]["result"].as_array().map_or(0.0, |a| {
        a.iter()
            .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p[1].as_str()?.parse::<f64>().ok())
            .fold(0.0, |a, b| a + b)
    })
}

fn median(v: &[f64]) -> f64 {
    percentile(v, 0.5)
}

/// The nearest-rank percentile `p` (0..=1) of `v`.
fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return 0.0;
    }
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

/// The single binary with `limits` appended to the bench's `limits_config` block and `extra`
/// (top-level blocks) after it.
fn single(args: &Args, dir: &Path, limits: &str, extra: &str) -> Result<Deployment> {
    let body = format!(
        "common:\n  path_prefix: {}\n{LIMITS}{limits}{}{}{extra}",
        dir.join("data").display(),
        args.limits,
        args.config
    );
    Ok(Deployment::of_single(Server::start_with(&args.bin, dir, &body)?, dir))
}

/// Pushes `--mb` with the bench's usual load (100 streams over `--span` minutes, 50 by
/// default, two clients), the newest timestamps `--age` minutes before now, then flushes.
/// Prints what it pushed.
fn push(args: &Args, lines: Vec<Vec<String>>, dep: &Deployment) -> Result<Pushed> {
    let streams = SYSTEMS.len() * args.instances;
    let per_stream = args.mb * 1024 * 1024 / streams;
    let span = args.span_min as i64 * 60 * 1_000_000_000i64;
    let t0 = now_ns() - args.age_min as i64 * 60_000_000_000 - span;
    let raw = Arc::new(AtomicUsize::new(0));
    let nlines = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let load = PushLoad {
        lines: Arc::new(lines),
        url: format!("{}/loki/api/v1/push", dep.push_url),
        streams,
        per_stream,
        batch_bytes: args.batch_kb * 1024,
        t0,
        span,
        seed: 0x5eed,
    };
    for w in load.spawn(&raw, &nlines) {
        w.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    let push_secs = started.elapsed().as_secs_f64();
    dep.flush()?;
    let mb = raw.load(Ordering::Relaxed) as f64 / 1e6;
    let pushed = Pushed {
        mb,
        lines: nlines.load(Ordering::Relaxed),
        needles: load::NEEDLES_SENT.load(Ordering::Relaxed),
        start: t0,
        end: t0 + span + 1000,
    };
    println!(
        "pushed {mb:.1} MB raw, {} lines in {push_secs:.1}s, timestamps {}..{} ({} min before now to {} min before now), flushed: {:.1} MB stored",
        pushed.lines,
        pushed.start,
        pushed.end,
        (now_ns() - pushed.start) / 60_000_000_000,
        (now_ns() - pushed.end) / 60_000_000_000,
        dir_bytes(&dep.chunks) as f64 / 1e6,
    );
    Ok(pushed)
}

/// logbench's count over the whole pushed range, as logbench sends it.
fn count_by_job(url: &str, p: &Pushed, headers: &[(&str, &str)]) -> Result<(Duration, Vec<u8>)> {
    query_raw(
        url,
        COUNT_BY_JOB,
        (p.start, p.end),
        &[("limit", "1000"), ("direction", "backward"), ("step", "60")],
        headers,
    )
}

/// `--cache-repeat`.
pub(crate) fn cache_repeat(args: &Args, lines: Vec<Vec<String>>) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("skald-bench-repeat-{}", std::process::id()));
    let dep = single(
        args,
        &dir,
        "  max_cache_freshness_per_query: 1s\n",
        "query_range:\n  cache_results: true\n",
    )?;
    println!("single binary, query_range.cache_results: true, max_cache_freshness_per_query: 1s");
    let pushed = push(args, lines, &dep)?;
    // The frontend aligns a split metric query's end up to a multiple of the step (Loki's
    // rule), so the last split ends up to a step after the data: it is cacheable only once
    // that aligned end is older than the freshness window (1 s).
    let step = 60_000_000_000i64;
    let aligned_end = (pushed.end + step - 1).div_euclid(step) * step;
    let wait = aligned_end + 2_000_000_000 - now_ns();
    if wait > 0 {
        println!("  waiting {:.0} s for the step-aligned end to be 1 s old", wait as f64 / 1e9);
        std::thread::sleep(Duration::from_nanos(wait as u64));
    }
    let pid = dep.procs[0].pid();
    let mut runs = Vec::new();
    for (name, headers) in [
        ("first", &[][..]),
        ("second (cached)", &[][..]),
        ("third, Cache-Control: no-cache", &[("Cache-Control", "no-cache")][..]),
    ] {
        let probe = CpuProbe::start(&[pid]);
        let ticks = dep.cpu_seconds();
        let (took, body) = count_by_job(&dep.query_url, &pushed, headers)?;
        let cpu = probe.seconds();
        let ticks = dep.cpu_seconds() - ticks;
        let total = matrix_total(&body);
        println!(
            "  {name}: {:.1} ms, server CPU {:.4} s (ticks: {ticks:.2} s), {} bytes, {total} lines counted (pushed {}), splits {}; {}; load {}",
            took.as_secs_f64() * 1e3,
            cpu,
            body.len(),
            pushed.lines,
            splits(&body),
            read_figures(&body),
            load_avg()
        );
        runs.push((cpu, body));
    }
    let ratio = runs[1].0 / runs[0].0.max(1e-9);
    println!(
        "second / first server CPU: {:.2}% (floor: at most 5%: {})",
        ratio * 100.0,
        if ratio <= 0.05 { "met" } else { "MISSED" }
    );
    println!("second vs first body: {}", compare(&runs[0].1, &runs[1].1));
    println!("no-cache vs first body: {}", compare(&runs[0].1, &runs[2].1));
    dep.stop()?;
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// One dashboard panel: its name, query and parameters.
struct Panel {
    name: &'static str,
    query: String,
    params: Vec<(&'static str, String)>,
}

fn panels(step_s: u64) -> Vec<Panel> {
    let i = format!("{step_s}s"); // Grafana's $__interval = the step here
    let metric = |name, query: String| Panel {
        name,
        query,
        params: vec![("step", step_s.to_string()), ("limit", "1000".to_string())],
    };
    vec![
        metric("volume", format!("sum by (job) (count_over_time({{env=\"bench\"}}[{i}]))")),
        metric("error rate", format!("sum by (job) (rate({{env=\"bench\"}} |= \"error\" [{i}]))")),
        Panel {
            name: "logs",
            query: "{job=\"apache\"}".to_string(),
            params: vec![("limit", "1000".to_string()), ("direction", "backward".to_string())],
        },
        metric("bytes", format!("sum(bytes_over_time({{env=\"bench\"}}[{i}]))")),
    ]
}

/// One refresh: every panel at once, over `now - 24h .. now`, with now rounded up to a multiple
/// of `align_ns` when it is given (as Grafana aligns a Prometheus range to its step). Wall time
/// of the whole and of each panel.
fn refresh(url: &str, panels: &[Panel], align_ns: Option<i64>) -> Result<(f64, Vec<f64>)> {
    let end = match align_ns {
        Some(a) => (now_ns() + a - 1).div_euclid(a) * a,
        None => now_ns(),
    };
    let start = end - 24 * HOUR_NS;
    let t = Instant::now();
    let per: Vec<Result<f64>> = std::thread::scope(|s| {
        let hs: Vec<_> = panels
            .iter()
            .map(|p| {
                s.spawn(move || -> Result<f64> {
                    let params: Vec<(&str, &str)> =
                        p.params.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    let (took, _) = query_raw(url, &p.query, (start, end), &params, &[])?;
                    Ok(took.as_secs_f64() * 1e3)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("panel thread panicked")))
            .collect()
    });
    let per = per.into_iter().collect::<Result<Vec<f64>>>()?;
    Ok((t.elapsed().as_secs_f64() * 1e3, per))
}

/// `--dashboard`.
pub(crate) fn dashboard(args: &Args, lines: Vec<Vec<String>>) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("skald-bench-dashboard-{}", std::process::id()));
    let dep = single(args, &dir, "", "query_range:\n  cache_results: true\n")?;
    println!(
        "single binary, query_range.cache_results: true, default max_cache_freshness_per_query (10m) and split_queries_by_interval (1h)"
    );
    let pushed = push(args, lines, &dep)?;
    let panels = panels(args.step_s);
    println!(
        "dashboard: now-24h..now per refresh (now rounded up to the step), step = $__interval = {}s, panels: {}",
        args.step_s,
        panels.iter().map(|p| format!("{} `{}`", p.name, p.query)).collect::<Vec<_>>().join(", ")
    );
    // What the newest split (the hour holding now, never cached) and the freshness window hold.
    let now = now_ns();
    let newest_split = now.div_euclid(HOUR_NS) * HOUR_NS;
    let share = |from: i64| {
        let lo = from.max(pushed.start);
        (pushed.end - lo).max(0) as f64 / (pushed.end - pushed.start) as f64
    };
    println!(
        "  the window holds all the data: {}; share of the data in the newest split (from {} min ago): {:.0}%, in the last 10 min: {:.0}%",
        now - 24 * HOUR_NS <= pushed.start && pushed.end <= now,
        (now - newest_split) / 60_000_000_000,
        share(newest_split) * 100.0,
        share(now - 600_000_000_000) * 100.0
    );
    let pid = dep.procs[0].pid();
    let align = Some(args.step_s as i64 * 1_000_000_000);
    let probe = CpuProbe::start(&[pid]);
    let (cold, cold_per) = refresh(&dep.query_url, &panels, align)?;
    println!(
        "  cold refresh: {cold:.1} ms (panels {}), server CPU {:.3} s; load {}",
        fmt_ms(&panels, &cold_per),
        probe.seconds(),
        load_avg()
    );
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut per_panel: Vec<Vec<f64>> = vec![Vec::new(); panels.len()];
    for _ in 0..WARM_REFRESHES {
        let probe = CpuProbe::start(&[pid]);
        let (wall, per) = refresh(&dep.query_url, &panels, align)?;
        cpus.push(probe.seconds());
        walls.push(wall);
        for (v, ms) in per_panel.iter_mut().zip(per) {
            v.push(ms);
        }
    }
    let p50 = median(&walls);
    println!(
        "  warm refreshes ({WARM_REFRESHES}): p50 {p50:.1} ms, p90 {:.1} ms, min {:.1}, max {:.1} ms; server CPU per refresh p50 {:.3} s; load {}",
        percentile(&walls, 0.9),
        percentile(&walls, 0.0),
        percentile(&walls, 1.0),
        median(&cpus),
        load_avg()
    );
    let p50s: Vec<f64> = per_panel.iter().map(|v| median(v)).collect();
    println!("  warm p50 per panel: {}", fmt_ms(&panels, &p50s));
    println!("  floor: warm p50 at most 50 ms: {}", if p50 <= 50.0 { "met" } else { "MISSED" });
    // Unaligned: each refresh's own now, to the nanosecond, as Grafana's Loki datasource sends
    // it (the frontend aligns a split metric query to multiples of the step itself).
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    for _ in 0..UNALIGNED_REFRESHES {
        let probe = CpuProbe::start(&[pid]);
        let (wall, _) = refresh(&dep.query_url, &panels, None)?;
        cpus.push(probe.seconds());
        walls.push(wall);
    }
    println!(
        "  unaligned refreshes ({UNALIGNED_REFRESHES}, range to the ns of each refresh): p50 {:.1} ms, max {:.1} ms; server CPU per refresh p50 {:.3} s; load {}",
        median(&walls),
        percentile(&walls, 1.0),
        median(&cpus),
        load_avg()
    );
    dep.stop()?;
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn fmt_ms(panels: &[Panel], ms: &[f64]) -> String {
    panels
        .iter()
        .zip(ms)
        .map(|(p, ms)| format!("{} {ms:.1} ms", p.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A querier reading `store` (the flushed single binary's chunks and index), asking the single
/// binary's ingester (empty after the flush) over gRPC; pulling from `frontend` when given.
fn start_querier(
    args: &Args,
    dir: &Path,
    store: &Path,
    ingester_grpc: u16,
    frontend: Option<u16>,
) -> Result<Server> {
    let worker = frontend
        .map(|p| format!("frontend_worker:\n  frontend_address: 127.0.0.1:{p}\n"))
        .unwrap_or_default();
    let body = format!(
        "target: querier\ncommon:\n  path_prefix: {}\n  replication_factor: 1\nstorage_config:\n  filesystem:\n    directory: {}\n{LIMITS}{}{}ingester_client:\n  addresses:\n    - 127.0.0.1:{ingester_grpc}\n{worker}",
        dir.join("data").display(),
        store.display(),
        args.limits,
        args.config
    );
    Server::start_with(&args.bin, dir, &body)
}

/// logbench's error rate (`error_rate_by_job`): a query that decodes every line, measured
/// beside the count for reference.
const ERROR_RATE_BY_JOB: &str = "sum by (job) (rate({env=\"bench\"} |~ \"(?i)error\" [5m]))";

/// One scale-out run on fresh processes: `query` (as logbench sends it), four times, either on
/// one querier alone or through a frontend with two queriers. Prints each; returns wall
/// seconds, total CPU seconds and the answer of each.
fn scale_out_run(
    args: &Args,
    dir: &Path,
    store: &Path,
    ingester: (u16, u32),
    query: &str,
    pushed: &Pushed,
    with_frontend: bool,
) -> Result<Vec<(f64, f64, Vec<u8>)>> {
    let (ingester_grpc, ingester_pid) = ingester;
    let fe = if with_frontend {
        let fdir = dir.join("frontend");
        Some(Server::start_with(
            &args.bin,
            &fdir,
            &format!(
                "target: query-frontend\ncommon:\n  path_prefix: {}\n{LIMITS}{}{}",
                fdir.join("data").display(),
                args.limits,
                args.config
            ),
        )?)
    } else {
        None
    };
    let n = if with_frontend { 2 } else { 1 };
    let qs = (0..n)
        .map(|i| {
            let grpc = fe.as_ref().map(|f| f.grpc_port);
            start_querier(args, &dir.join(format!("querier-{i}")), store, ingester_grpc, grpc)
        })
        .collect::<Result<Vec<_>>>()?;
    if with_frontend {
        // the workers connect once their querier is up; let them
        std::thread::sleep(Duration::from_secs(2));
    }
    let url = fe.as_ref().map_or(qs[0].url.clone(), |f| f.url.clone());
    let mut pids: Vec<u32> = fe.iter().map(Server::pid).collect();
    pids.extend(qs.iter().map(Server::pid));
    pids.push(ingester_pid);
    // Four times on the same processes: the first pays each fresh process's first-query costs
    // (its heap growing, page faults), the later ones only the query's (there is no chunk
    // cache; the results cache is off). Through the frontend, which querier takes a part is
    // the queue's choice, so the second querier may meet its first part in the second run.
    let mut runs = Vec::new();
    for run in ["fresh", "2nd", "3rd", "4th"] {
        let probe = CpuProbe::start(&pids);
        let (took, body) = query_raw(
            &url,
            query,
            (pushed.start, pushed.end),
            &[("limit", "1000"), ("direction", "backward"), ("step", "60")],
            &[],
        )?;
        let cpu = probe.per_process();
        let total: f64 = cpu.iter().sum();
        let parts = cpu.iter().map(|c| format!("{c:.2}")).collect::<Vec<_>>().join(" + ");
        println!(
            "    {} ({run}, pids {pids:?}): {:.0} ms, CPU {total:.2} s ({}{parts}, the last the ingester), splits {}; {}; load {}",
            if with_frontend { "frontend + 2 queriers" } else { "1 querier" },
            took.as_secs_f64() * 1e3,
            if with_frontend { "frontend + queriers: " } else { "querier: " },
            splits(&body),
            read_figures(&body),
            load_avg()
        );
        runs.push((took.as_secs_f64(), total, body));
    }
    for q in qs {
        q.stop()?;
    }
    if let Some(fe) = fe {
        fe.stop()?;
    }
    Ok(runs)
}

/// Wall and CPU seconds of the runs, for the summary.
#[derive(Default)]
struct Runs {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

impl Runs {
    fn push(&mut self, (wall, cpu, _): &(f64, f64, Vec<u8>)) {
        self.wall.push(*wall);
        self.cpu.push(*cpu);
    }
}

/// The summary line of one query and one kind of run, against the floor.
fn scale_out_summary(name: &str, kind: &str, one: &Runs, fe2: &Runs) {
    let (w1, w2) = (median(&one.wall), median(&fe2.wall));
    println!(
        "  {name} ({kind}): 1 querier median {:.0} ms, CPU {:.2} s; frontend + 2 queriers median {:.0} ms, CPU {:.2} s; wall ratio {:.2}, CPU ratio {:.2} (floor: frontend + 2 no slower: {})",
        w1 * 1e3,
        median(&one.cpu),
        w2 * 1e3,
        median(&fe2.cpu),
        w2 / w1,
        median(&fe2.cpu) / median(&one.cpu),
        if w2 <= w1 { "met" } else { "MISSED" }
    );
}

/// `--scale-out`.
pub(crate) fn scale_out(args: &Args, lines: Vec<Vec<String>>) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("skald-bench-scale-{}", std::process::id()));
    let dep = single(args, &dir.join("all"), "", "")?;
    println!(
        "pushing to a single binary, then flushing; it stays up as the queriers' (empty) ingester"
    );
    let pushed = push(args, lines, &dep)?;
    let store = dep.chunks.clone();
    let ingester = (dep.procs[0].grpc_port, dep.procs[0].pid());
    // The page cache: read the store once so that neither side pays for the disk.
    let (warm, _) = query_raw(
        &dep.query_url,
        ERROR_RATE_BY_JOB,
        (pushed.start, pushed.end),
        &[("limit", "1000"), ("step", "60")],
        &[],
    )?;
    println!(
        "  page cache warmed by one error-rate query on the single binary ({:.0} ms)",
        warm.as_secs_f64() * 1e3
    );
    for (name, query) in [("count_by_job", COUNT_BY_JOB), ("error_rate_by_job", ERROR_RATE_BY_JOB)]
    {
        println!("  {name} `{query}`, cache off, fresh processes per run:");
        let (mut one, mut fe2) =
            ([Runs::default(), Runs::default()], [Runs::default(), Runs::default()]);
        for round in 0..SCALE_OUT_ROUNDS {
            println!("   round {}:", round + 1);
            let rdir = dir.join(format!("{name}-{round}"));
            let alone =
                scale_out_run(args, &rdir.join("alone"), &store, ingester, query, &pushed, false)?;
            let split =
                scale_out_run(args, &rdir.join("fe"), &store, ingester, query, &pushed, true)?;
            for (i, r) in [0, 3].into_iter().enumerate() {
                one[i].push(&alone[r]);
                fe2[i].push(&split[r]);
            }
            println!(
                "    answers: {}; {}",
                compare(&alone[0].2, &split[0].2),
                compare(&alone[3].2, &split[3].2)
            );
        }
        scale_out_summary(name, "fresh processes", &one[0], &fe2[0]);
        scale_out_summary(name, "4th query on the same processes", &one[1], &fe2[1]);
    }
    dep.stop()?;
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// What an answer's `stats` say was read: lines and bytes processed, chunks referenced and
/// decoded.
fn read_figures(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let st = &v["data"]["stats"];
    format!(
        "stats: {} lines / {} bytes processed, {} chunks referenced, {} decompressed, execTime {}",
        st["summary"]["totalLinesProcessed"],
        st["summary"]["totalBytesProcessed"],
        st["querier"]["store"]["totalChunksRef"],
        st["querier"]["store"]["chunk"]["decompressedLines"],
        st["summary"]["execTime"]
    )
}

/// `stats.summary.splits` of an answer.
fn splits(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["data"]["stats"]["summary"]["splits"].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_cut_out_whole() {
        let a = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"x"},"values":[[1,"2"]]}],"stats":{"summary":{"execTime":0.5,"q":"}\"{"},"n":{"a":1}}}}"#;
        let b = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"x"},"values":[[1,"2"]]}],"stats":{"summary":{"execTime":0.1}}}}"#;
        let expect = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"x"},"values":[[1,"2"]]}]}}"#;
        assert_eq!(without_stats(a).as_deref(), Some(&expect[..]));
        assert!(compare(a, b).starts_with("MATCH"));
        let c = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"job":"x"},"values":[[1,"3"]]}],"stats":{}}}"#;
        assert!(compare(a, c).starts_with("DIFFER"));
        assert_eq!(without_stats(b"{}"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(median(&v), 3.0);
        assert_eq!(percentile(&v, 0.9), 5.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
