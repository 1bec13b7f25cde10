//! The five queries of `../shared/tools/logbench.py` (the workload real Loki was measured
//! with), sent exactly as logbench sends them: over the pushed range with an unaligned start
//! and end (nanoseconds, not on any step), `limit=1000`, `direction=backward`, step 60 (3600
//! for the `[1h]` query). Each prints its latency, the server CPU it took, raw MB per
//! CPU-second, and its answer, checked where the answer is known.

use anyhow::Result;

use crate::{ABSENT_NEEDLE, NEEDLE};

/// What the five queries know about the pushed data.
pub(crate) struct Pushed {
    /// Raw megabytes pushed.
    pub(crate) mb: f64,
    /// Lines pushed.
    pub(crate) lines: usize,
    /// Lines carrying the needle.
    pub(crate) needles: usize,
    /// First and one past the last pushed timestamp (ns).
    pub(crate) start: i64,
    pub(crate) end: i64,
}

/// The sum of every value of every series of a matrix (0, not the -0 of an empty `sum`).
fn total(v: &serde_json::Value) -> f64 {
    let values = |s: &serde_json::Value| -> f64 {
        s["values"].as_array().map_or(0.0, |vs| {
            vs.iter().filter_map(|p| p[1].as_str()?.parse::<f64>().ok()).fold(0.0, |a, b| a + b)
        })
    };
    v["data"]["result"].as_array().map_or(0.0, |a| a.iter().map(values).fold(0.0, |a, b| a + b))
}

fn entries(v: &serde_json::Value) -> usize {
    v["data"]["result"]
        .as_array()
        .map_or(0, |a| a.iter().map(|s| s["values"].as_array().map_or(0, Vec::len)).sum())
}

/// `chunks fetched of chunk refs` from a query's `stats`.
fn chunks_fetched(v: &serde_json::Value) -> String {
    let store = &v["data"]["stats"]["querier"]["store"];
    let (fetched, refs) =
        (store["totalChunksDownloaded"].as_u64(), store["totalChunksRef"].as_u64());
    match (fetched, refs) {
        (Some(f), Some(r)) if r > 0 => {
            format!("{f} of {r} chunks fetched ({:.2}%)", 100.0 * f as f64 / r as f64)
        }
        (Some(f), Some(r)) => format!("{f} of {r} chunks fetched"),
        _ => "no store stats".to_string(),
    }
}

/// Runs the five queries against `url`, then the two needle queries for a needle in no line;
/// `cpu` reads the server's CPU seconds so far, `reads` the read requests it sent to the
/// object store so far.
pub(crate) fn run(
    url: &str,
    pushed: &Pushed,
    cpu: &dyn Fn() -> f64,
    reads: &dyn Fn() -> f64,
) -> Result<()> {
    let qs: [(&str, String, Option<&str>); 7] = [
        (
            "needle_count",
            format!("sum(count_over_time({{env=\"bench\"}} |= \"{NEEDLE}\" [1h]))"),
            Some("3600"),
        ),
        ("needle_lines", format!("{{env=\"bench\"}} |= \"{NEEDLE}\""), None),
        (
            "count_by_job",
            "sum by (job) (count_over_time({env=\"bench\"}[1m]))".to_string(),
            Some("60"),
        ),
        (
            "error_rate_by_job",
            "sum by (job) (rate({env=\"bench\"} |~ \"(?i)error\" [5m]))".to_string(),
            Some("60"),
        ),
        ("recent_one_stream", "{job=\"apache\", pod=\"apache-001\"}".to_string(), None),
        (
            "absent_count",
            format!("sum(count_over_time({{env=\"bench\"}} |= \"{ABSENT_NEEDLE}\" [1h]))"),
            Some("3600"),
        ),
        ("absent_lines", format!("{{env=\"bench\"}} |= \"{ABSENT_NEEDLE}\""), None),
    ];
    println!(
        "logbench's five queries, start {} and end {} (unaligned ns), limit 1000, backward:",
        pushed.start, pushed.end
    );
    for (name, q, step) in qs.iter().cloned() {
        let (cpu_before, reads_before) = (cpu(), reads());
        let (took, v) =
            crate::query(url, &q, (pushed.start, pushed.end), step, &[("direction", "backward")])?;
        let took = took.as_secs_f64();
        let cpu_s = cpu() - cpu_before;
        let store =
            || format!("{}, {:.0} object store reads", chunks_fetched(&v), reads() - reads_before);
        let answer = match name {
            "needle_count" => {
                let got = total(&v);
                format!("{got} needles (pushed {}); {}", pushed.needles, store())
            }
            "needle_lines" => {
                format!("{} lines (pushed {}); {}", entries(&v), pushed.needles, store())
            }
            "absent_count" => format!("{} needles (pushed 0); {}", total(&v), store()),
            "absent_lines" => format!("{} lines (pushed 0); {}", entries(&v), store()),
            "count_by_job" => {
                let got = total(&v);
                let verdict = if got as usize == pushed.lines { "each once" } else { "MISMATCH" };
                format!("{got} lines counted (pushed {}: {verdict})", pushed.lines)
            }
            "error_rate_by_job" => {
                format!("{} series", v["data"]["result"].as_array().map_or(0, Vec::len))
            }
            _ => format!("{} lines", entries(&v)),
        };
        println!(
            "  {name}: {:.1} ms, {:.3} CPU-s = {:.0} MB raw per CPU-s; {answer}",
            took * 1e3,
            cpu_s,
            if cpu_s > 0.0 { pushed.mb / cpu_s } else { f64::INFINITY },
        );
    }
    // One run of a millisecond query is mostly noise on a shared machine: repeat it.
    let (name, q, _) = &qs[4];
    let mut ms = Vec::with_capacity(RECENT_REPEATS);
    for _ in 0..RECENT_REPEATS {
        let (took, _) =
            crate::query(url, q, (pushed.start, pushed.end), None, &[("direction", "backward")])?;
        ms.push(took.as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "  {name} repeated {RECENT_REPEATS} times: min {:.1} ms, median {:.1} ms, max {:.1} ms",
        ms[0],
        ms[RECENT_REPEATS / 2],
        ms[RECENT_REPEATS - 1]
    );
    Ok(())
}

/// How often the recent-lines query is repeated after the five.
const RECENT_REPEATS: usize = 21;
