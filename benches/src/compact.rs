//! `--compact`: after the ingest (flushed: every chunk is stored), the same data directory is
//! served again with chunk compaction on (a pass every 2 s) and the WAL off (its replay would
//! hold a second copy of the data in memory and flush it again), until every chunk is merged and packed; objects and
//! stored bytes per raw byte before and after, the compaction's wall time and CPU, and the
//! needle and metric queries' timings before and after. `--delete` then sends a delete
//! request over one stream and times its processing after the cancel period.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::disk::{chunk_file_count, dir_bytes, file_count};
use crate::{query, Deployment, Server, SYSTEMS};

/// How the compaction is tuned (`--compact-level`, `--compact-block-kb`, `--compact-target-kb`).
pub(crate) struct CompactArgs {
    pub(crate) level: i32,
    pub(crate) block_kb: usize,
    pub(crate) target_kb: usize,
    pub(crate) delete: bool,
}

fn compactor_yaml(c: &CompactArgs) -> String {
    format!(
        "ingester:\n  wal:\n    enabled: false\ncompactor:\n  compaction_interval: 2s\n  retention_enabled: true\n  retention_delete_delay: 0s\n  delete_request_store: filesystem\n  delete_request_cancel_period: 5s\n  chunk_compaction_enabled: true\n  chunk_compaction_min_age: 0s\n  chunk_compaction_zstd_level: {}\n  chunk_compaction_block_size: {}KB\n  chunk_compaction_target_size: {}KB\n  chunk_compaction_pack_size: 64MB\n  chunk_compaction_orphan_grace: 1h\n",
        c.level, c.block_kb, c.target_kb
    )
}

/// Objects and bytes under the store's root, and the chunk objects among them.
fn census(chunks: &Path) -> (f64, f64, f64) {
    (file_count(chunks) as f64, dir_bytes(chunks) as f64, chunk_file_count(chunks) as f64)
}

fn timed_queries(url: &str, range: (i64, i64)) -> Result<Vec<(String, f64, usize)>> {
    let qs: [(&str, String, Option<&str>); 2] = [
        ("needle", format!("{{job=~\".+\"}} |= \"{}\"", crate::NEEDLE), None),
        (
            "sum by job count_over_time[1m]",
            "sum by (job) (count_over_time({job=~\".+\"}[1m]))".to_string(),
            Some("60"),
        ),
    ];
    let mut out = Vec::new();
    for (name, q, step) in qs {
        let (took, v) = query(url, &q, range, step, &[])?;
        let values: usize = v["data"]["result"]
            .as_array()
            .map(|a| a.iter().map(|s| s["values"].as_array().map_or(0, Vec::len)).sum())
            .unwrap_or(0);
        out.push((name.to_string(), took.as_secs_f64(), values));
    }
    Ok(out)
}

/// Runs the compaction over `dir` (the stopped single binary's) and prints its figures.
pub(crate) fn run(
    bin: &Path,
    dir: &Path,
    extra: &str,
    raw: f64,
    range: (i64, i64),
    c: &CompactArgs,
) -> Result<()> {
    let chunks = dir.join("data").join("chunks");
    let gb = raw / 1e9;
    let (objects0, bytes0, chunk_objects0) = census(&chunks);
    println!(
        "before compaction: {objects0:.0} objects ({chunk_objects0:.0} chunks) = {:.1} per GB raw; {:.1} MB stored = {:.4} bytes per raw byte",
        objects0 / gb,
        bytes0 / 1e6,
        bytes0 / raw
    );
    let started = Instant::now();
    let server = Server::start(bin, dir, &format!("{extra}{}", compactor_yaml(c)))?;
    let d = Deployment::of_single(server, dir);
    let before = timed_queries(&d.query_url, range)?;
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let markers = file_count(&chunks.join("compactor").join("markers"));
        let packs = crate::metric_sum(
            std::slice::from_ref(&d.query_url),
            "skald_compactor_packs_written_total",
        );
        if chunk_file_count(&chunks) == 0 && markers == 0 && packs > 0.0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("compaction did not finish within an hour");
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = d.cpu_seconds();
    let (objects1, bytes1, chunk_objects1) = census(&chunks);
    let m = |n: &str| crate::metric_sum(std::slice::from_ref(&d.query_url), n);
    println!(
        "compaction (zstd level {}, blocks {} KB, chunks cut at {} KB, packs of 64 MB): {:.1}s wall, {:.1} CPU-s (server since its start) = {:.1} CPU-s per GB raw; {:.0} chunks merged into {:.0}, {:.0} packs written",
        c.level,
        c.block_kb,
        c.target_kb,
        wall,
        cpu,
        cpu / gb,
        m("skald_compactor_merged_chunks_total{side=\"in\"}"),
        m("skald_compactor_merged_chunks_total{side=\"out\"}"),
        m("skald_compactor_packs_written_total")
    );
    println!(
        "after compaction: {objects1:.0} objects ({chunk_objects1:.0} chunk objects of their own) = {:.1} per GB raw; {:.1} MB stored = {:.4} bytes per raw byte",
        objects1 / gb,
        bytes1 / 1e6,
        bytes1 / raw
    );
    let after = timed_queries(&d.query_url, range)?;
    for ((name, t0, v0), (_, t1, v1)) in before.iter().zip(&after) {
        println!("query {name}: {t0:.2}s before (first run on the restarted server), {t1:.2}s after compaction; {v0} values before, {v1} after");
        if v0 != v1 {
            bail!("query {name} changed its answer: {v0} values before, {v1} after");
        }
    }
    if c.delete {
        delete_one_stream(&d, &chunks, raw)?;
    }
    d.stop()
}

/// A delete request over one stream of the workload: the time from the end of its cancel
/// period to processed, the server's CPU meanwhile, and stored bytes before and after.
fn delete_one_stream(d: &Deployment, chunks: &Path, raw: f64) -> Result<()> {
    let pod = format!("{}-000", SYSTEMS[0].to_lowercase());
    let q = format!("{{pod=\"{pod}\"}}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let bytes0 = dir_bytes(chunks) as f64;
    let cpu0 = d.cpu_seconds();
    let sent = Instant::now();
    ureq::post(&format!("{}/loki/api/v1/delete", d.query_url))
        .query("query", &q)
        .query("start", &(now - 86_400).to_string())
        // Loki refuses an end in the future ("deletes in the future are not allowed")
        .query("end", &now.to_string())
        .call()?;
    let cancel_end = sent + Duration::from_secs(5);
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let body =
            ureq::get(&format!("{}/loki/api/v1/delete", d.query_url)).call()?.into_string()?;
        let list: serde_json::Value = serde_json::from_str(&body)?;
        let done = list
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(|r| r["status"] == "processed"));
        // processed, and the packs holding the stream's old chunks rewritten
        let markers = file_count(&chunks.join("compactor").join("markers"));
        if done && markers == 0 && chunk_file_count(chunks) == 0 {
            let after = Instant::now();
            let bytes1 = dir_bytes(chunks) as f64;
            println!(
                "delete request over {q} ({:.1} MB raw of {:.1}): processed {:.1}s after its cancel period ended; {:.1} server CPU-s from the request on; stored bytes {:.1} MB -> {:.1} MB ({:.1} MB removed)",
                raw / 100.0 / 1e6,
                raw / 1e6,
                after.saturating_duration_since(cancel_end).as_secs_f64(),
                d.cpu_seconds() - cpu0,
                bytes0 / 1e6,
                bytes1 / 1e6,
                (bytes0 - bytes1) / 1e6
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the delete request was not processed within 30 minutes");
        }
    }
}
