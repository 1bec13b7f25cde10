//! End-to-end benchmark: starts a `skald` process, pushes the loghub samples replicated to the
//! requested volume (100 streams, shifted timestamps, numbers varied) as protobuf+snappy over
//! HTTP from two client threads, then runs a needle query and a per-job metric query over all
//! of it. Measures the server from outside (/proc): CPU seconds, peak RSS, bytes on disk.
//!
//! `cargo run --release -p skald-benches -- --mb 1024` (see benches/README.md).

mod burst;
mod compact;
mod disk;
mod frontend;
mod load;
mod logbench;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use skald_integration_tests::aws::{aws_storage_block, host_port, test_servers_from_env};

use crate::disk::{chunk_file_count, dir_bytes, file_count, filter_bytes, filter_table_bytes};
use crate::load::{post, push_body};

const SYSTEMS: [&str; 10] =
    ["Android", "Apache", "BGL", "HDFS", "HPC", "Hadoop", "Linux", "OpenSSH", "Spark", "Zookeeper"];
/// logbench's needle (`../shared/tools/logbench.py`), in 10 lines of the load.
const NEEDLE: &str = "needle-7f3a9c";
/// A needle in no line.
const ABSENT_NEEDLE: &str = "needle-0b5e47";
/// Default instances (streams) per loghub system.
const INSTANCES: usize = 10;

struct Args {
    mb: usize,
    bin: PathBuf,
    data: PathBuf,
    keep: bool,
    batch_kb: usize,
    /// YAML appended to the server's config.
    config: String,
    /// Run 3 ingesters (RF 3), a distributor and a querier as separate processes.
    cluster: bool,
    /// Chunks in S3 and the index in DynamoDB (the servers `scripts/test-servers/start.sh`
    /// started, named by its env file).
    aws: bool,
    /// With `aws`: S3 requests go through a proxy that delays each by this many ms.
    s3_delay_ms: u64,
    /// Streams per loghub system.
    instances: usize,
    /// Measure query latency while a push burst runs instead of the usual run.
    query_during_burst: bool,
    /// One of the query-frontend's figures instead of the usual run.
    frontend: Option<FrontendMode>,
    /// Minutes between the newest pushed timestamp and now (the frontend modes).
    age_min: u64,
    /// Minutes the pushed timestamps span (the frontend modes).
    span_min: u64,
    /// The dashboard's step and `$__interval`, in seconds.
    step_s: u64,
    /// Lines appended to the bench's `limits_config` block (the frontend modes).
    limits: String,
    /// After the usual run: chunk compaction (`src/compact.rs`).
    compact: Option<compact::CompactArgs>,
}

/// The query-frontend's figures (`src/frontend.rs`).
#[derive(Clone, Copy)]
enum FrontendMode {
    CacheRepeat,
    Dashboard,
    ScaleOut,
}

fn parse_args() -> Result<Args> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut a = Args {
        mb: 1024,
        bin: root.join("target/release/skald"),
        data: root.join("tests/data/loghub"),
        keep: false,
        batch_kb: 1024,
        config: String::new(),
        cluster: false,
        aws: false,
        s3_delay_ms: 0,
        instances: INSTANCES,
        query_during_burst: false,
        frontend: None,
        age_min: 0,
        span_min: 50,
        step_s: 120,
        limits: String::new(),
        compact: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = || args.get(i + 1).cloned().context("flag needs a value");
        match args[i].as_str() {
            "--mb" => {
                a.mb = v()?.parse()?;
                i += 1;
            }
            "--bin" => {
                a.bin = PathBuf::from(v()?);
                i += 1;
            }
            "--data" => {
                a.data = PathBuf::from(v()?);
                i += 1;
            }
            "--batch-kb" => {
                a.batch_kb = v()?.parse()?;
                i += 1;
            }
            "--config" => {
                a.config = v()?;
                i += 1;
            }
            "--keep" => a.keep = true,
            "--cluster" => a.cluster = true,
            "--aws" => a.aws = true,
            "--s3-delay-ms" => {
                a.s3_delay_ms = v()?.parse()?;
                i += 1;
            }
            "--query-during-burst" => a.query_during_burst = true,
            "--compact" | "--delete" => {
                let c = a.compact.get_or_insert(compact::CompactArgs {
                    level: 19,
                    block_kb: 1024,
                    target_kb: 16384,
                    delete: false,
                });
                c.delete |= args[i] == "--delete";
            }
            "--compact-level" | "--compact-block-kb" | "--compact-target-kb" => {
                let n: usize = v()?.parse()?;
                let c = a.compact.as_mut().context("--compact first")?;
                match args[i].as_str() {
                    "--compact-level" => c.level = i32::try_from(n)?,
                    "--compact-block-kb" => c.block_kb = n,
                    _ => c.target_kb = n,
                }
                i += 1;
            }
            "--cache-repeat" => a.frontend = Some(FrontendMode::CacheRepeat),
            "--dashboard" => a.frontend = Some(FrontendMode::Dashboard),
            "--scale-out" => a.frontend = Some(FrontendMode::ScaleOut),
            "--age" => {
                a.age_min = v()?.parse()?;
                i += 1;
            }
            "--span" => {
                a.span_min = v()?.parse::<u64>()?.max(1);
                i += 1;
            }
            "--limits" => {
                a.limits = v()?;
                i += 1;
            }
            "--step" => {
                a.step_s = v()?.parse::<u64>()?.max(1);
                i += 1;
            }
            "--instances" => {
                a.instances = v()?.parse::<usize>()?.max(1);
                i += 1;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
        i += 1;
    }
    Ok(a)
}

const USAGE: &str =
    "usage: skald-bench [--mb N] [--bin PATH] [--data DIR] [--batch-kb N] [--config YAML] [--cluster] [--aws [--s3-delay-ms N]] [--instances N] [--keep] [--query-during-burst]
                   [--cache-repeat | --dashboard [--step S] | --scale-out] [--age MIN] [--span MIN] [--limits YAML] [--compact [--delete] [--compact-level N] [--compact-block-kb N] [--compact-target-kb N]]
  --mb N        raw megabytes of log to push (default 1024)
  --bin PATH    the skald binary to start (default target/release/skald)
  --data DIR    the loghub samples to replicate (default tests/data/loghub)
  --batch-kb N  raw kilobytes per push request (default 1024)
  --config YAML top-level YAML blocks appended to the server's config, e.g.
                $'ingester:\n  wal:\n    enabled: false\n'
  --cluster     run 3 ingesters (replication factor 3), a distributor and a querier as
                separate processes; CPU and RSS are summed over all five
  --aws         chunks in S3 and the index in DynamoDB tables (Loki's Helm `aws` storage
                block), on the servers of scripts/test-servers/start.sh: source its env file
  --s3-delay-ms N  with --aws: S3 through a proxy adding N ms to every request
  --instances N streams per loghub system (default 10, so 100 streams)
  --keep        keep the server's data directory afterwards
  --compact     after the usual run (logbench's queries left out), serve the data again with chunk compaction on until all
                is merged and packed: objects and bytes per raw byte before and after, its
                time and CPU, queries before and after (single process on the filesystem);
                --compact-level N (zstd, default 19), --compact-block-kb N (default 1024),
                --compact-target-kb N (default 16384) tune it; --delete then times a delete
                request over one stream
  --query-during-burst
                instead of the usual run: after a warm-up push (a sixteenth of --mb), time
                a labels and a small query_range request, repeated, for 10 s with no push
                running, then while --mb is pushed as fast as the server takes it; prints
                p50/p99/max latency of each (single process only)
  --cache-repeat
                instead of the usual run: logbench's per-job count over the whole push,
                twice in the single binary with the results cache on (freshness 1s), then
                with Cache-Control: no-cache; server CPU of each, ratio, answers compared
  --dashboard   instead of the usual run: a 24 h four-panel dashboard (volume, error rate,
                logs, bytes; all four at once), refreshed once cold and 21 times warm with
                the results cache on; cold time, warm p50/p90
  --step S      the dashboard's step and $__interval in seconds (default 120)
  --scale-out   instead of the usual run: the per-job count (cache off) through a
                query-frontend with two queriers against one querier alone, over the same
                flushed store, 3 alternating rounds; median wall time and CPU
  --age MIN     (frontend modes) the newest pushed timestamp MIN minutes before now
  --span MIN    (frontend modes) the pushed timestamps span MIN minutes (default 50; 1440
                spreads the data over the dashboard's 24 hours)
  --limits YAML (frontend modes) lines appended to every process's limits_config block,
                e.g. $'  split_queries_by_interval: 15m\n'";

fn load_lines(dir: &Path) -> Result<Vec<Vec<String>>> {
    SYSTEMS
        .iter()
        .map(|s| {
            let text = std::fs::read_to_string(dir.join(format!("{s}_2k.log")))
                .with_context(|| format!("reading {s}_2k.log"))?;
            Ok(text
                .split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
                .filter(|l| !l.is_empty())
                .collect())
        })
        .collect()
}

/// Two distinct free ports: both probe listeners are held at once.
fn free_port_pair() -> Result<(u16, u16)> {
    let a = std::net::TcpListener::bind("127.0.0.1:0")?;
    let b = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

const LIMITS: &str = "limits_config:\n  reject_old_samples: false\n  ingestion_rate_mb: 100000\n  ingestion_burst_size_mb: 100000\n  per_stream_rate_limit: 100000MB\n  per_stream_rate_limit_burst: 100000MB\n  max_entries_limit_per_query: 5000\n  query_timeout: 10m\n";

struct Server {
    child: Child,
    url: String,
    grpc_port: u16,
}

/// What is measured: one process, or a cluster of five.
struct Deployment {
    procs: Vec<Server>,
    push_url: String,
    query_url: String,
    /// Ingesters' HTTP URLs (for `/flush`).
    ingesters: Vec<String>,
    chunks: PathBuf,
    wal: Vec<PathBuf>,
}

impl Deployment {
    fn single(bin: &Path, dir: &Path, extra: &str) -> Result<Deployment> {
        Ok(Self::of_single(Server::start(bin, dir, extra)?, dir))
    }

    /// The single binary `s`, keeping its data under `dir/data`.
    pub(crate) fn of_single(s: Server, dir: &Path) -> Deployment {
        Deployment {
            push_url: s.url.clone(),
            query_url: s.url.clone(),
            ingesters: vec![s.url.clone()],
            chunks: dir.join("data").join("chunks"),
            wal: vec![dir.join("data").join("wal")],
            procs: vec![s],
        }
    }

    fn cluster(bin: &Path, dir: &Path, extra: &str) -> Result<Deployment> {
        let chunks = dir.join("shared-chunks");
        let storage =
            format!("storage_config:\n  filesystem:\n    directory: {}\n", chunks.display());
        let common = |name: &str| {
            format!(
                "common:\n  path_prefix: {}\n  replication_factor: 3\n",
                dir.join(name).join("data").display()
            )
        };
        let mut procs = Vec::new();
        let mut wal = Vec::new();
        for i in 0..3 {
            let name = format!("ingester-{i}");
            let body = format!("target: ingester\n{}{storage}{LIMITS}{extra}", common(&name));
            procs.push(Server::start_with(bin, &dir.join(&name), &body)?);
            wal.push(dir.join(&name).join("data").join("wal"));
        }
        let addrs: String =
            procs.iter().map(|s| format!("    - 127.0.0.1:{}\n", s.grpc_port)).collect();
        let client = format!("ingester_client:\n  addresses:\n{addrs}");
        let ingesters = procs.iter().map(|s| s.url.clone()).collect();
        let d = Server::start_with(
            bin,
            &dir.join("distributor"),
            &format!("target: distributor\n{}{LIMITS}{extra}{client}", common("distributor")),
        )?;
        let q = Server::start_with(
            bin,
            &dir.join("querier"),
            &format!("target: querier\n{}{storage}{LIMITS}{extra}{client}", common("querier")),
        )?;
        let (push_url, query_url) = (d.url.clone(), q.url.clone());
        procs.push(d);
        procs.push(q);
        Ok(Deployment { procs, push_url, query_url, ingesters, chunks, wal })
    }

    fn cpu_seconds(&self) -> f64 {
        self.procs.iter().map(Server::cpu_seconds).sum()
    }

    /// Peak RSS summed over the processes.
    fn peak_rss_mb(&self) -> f64 {
        self.procs.iter().map(Server::peak_rss_mb).sum()
    }

    fn flush(&self) -> Result<()> {
        for u in &self.ingesters {
            ureq::post(&format!("{u}/flush")).timeout(Duration::from_secs(900)).call()?;
        }
        Ok(())
    }

    fn wal_bytes(&self) -> u64 {
        self.wal.iter().map(|w| dir_bytes(w)).sum()
    }

    fn stop(self) -> Result<()> {
        for p in self.procs.into_iter().rev() {
            p.stop()?;
        }
        Ok(())
    }
}

impl Server {
    /// The single binary with its data under `dir/data`.
    fn start(bin: &Path, dir: &Path, extra: &str) -> Result<Server> {
        let body =
            format!("common:\n  path_prefix: {}\n{LIMITS}{extra}", dir.join("data").display());
        Self::start_with(bin, dir, &body)
    }

    /// `skald` with `body` after its `server` block.
    fn start_with(bin: &Path, dir: &Path, body: &str) -> Result<Server> {
        std::fs::create_dir_all(dir)?;
        let (hp, gp) = free_port_pair()?;
        let cfg = format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {hp}\n  grpc_listen_address: 127.0.0.1\n  grpc_listen_port: {gp}\n  log_level: warn\n{body}"
        );
        let cfg_path = dir.join("skald.yaml");
        std::fs::write(&cfg_path, cfg)?;
        let log = std::fs::File::create(dir.join("skald.log"))?;
        let child = Command::new(bin)
            .arg(format!("-config.file={}", cfg_path.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| {
                format!("starting {} (build it: cargo build --release --bin skald)", bin.display())
            })?;
        let url = format!("http://127.0.0.1:{hp}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ureq::get(&format!("{url}/ready")).call().is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("skald did not become ready");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Server { child, url, grpc_port: gp })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (utime + stime) in seconds, from /proc/<pid>/stat.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
            + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        ticks / 100.0
    }

    /// Peak RSS in MB (VmHWM).
    fn peak_rss_mb(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    }

    fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let _ = self.child.wait();
        Ok(())
    }
}

/// A server still running when the bench bails out (an error, a panic) is killed, not left
/// behind.
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `query_range` request's latency and raw body. `params` come after `query`, `start` and
/// `end`; `headers` are sent as given.
pub(crate) fn query_raw(
    url: &str,
    q: &str,
    (start, end): (i64, i64),
    params: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Result<(Duration, Vec<u8>)> {
    let t = Instant::now();
    let (s, e) = (start.to_string(), end.to_string());
    let mut req = ureq::get(&format!("{url}/loki/api/v1/query_range"))
        .timeout(Duration::from_secs(900))
        .query("query", q)
        .query("start", &s)
        .query("end", &e);
    for (k, v) in params {
        req = req.query(k, v);
    }
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = req.call().map_err(|e| anyhow::anyhow!("query {q} failed: {e}"))?;
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body)?;
    Ok((t.elapsed(), body))
}

/// A `query_range` request (`limit=1000`, plus `extra` parameters): its latency and answer.
fn query(
    url: &str,
    q: &str,
    range: (i64, i64),
    step: Option<&str>,
    extra: &[(&str, &str)],
) -> Result<(Duration, serde_json::Value)> {
    let mut params = vec![("limit", "1000")];
    if let Some(step) = step {
        params.push(("step", step));
    }
    params.extend_from_slice(extra);
    let (took, body) = query_raw(url, q, range, &params, &[])?;
    Ok((took, serde_json::from_slice(&body)?))
}

/// Pushes each loghub file once, unvaried, flushes, and reports stored/raw.
fn compression_once(args: &Args, lines: &[Vec<String>]) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("skald-bench-once-{}", std::process::id()));
    let server = Server::start(&args.bin, &dir, &args.config)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as i64;
    let t0 = now - 3_600_000_000_000;
    let mut raw = 0usize;
    for (si, sys) in SYSTEMS.iter().enumerate() {
        let entries: Vec<(i64, String)> = lines[si]
            .iter()
            .enumerate()
            .map(|(i, l)| {
                raw += l.len();
                (t0 + i as i64 * 1_000_000, l.clone())
            })
            .collect();
        post(
            &format!("{}/loki/api/v1/push", server.url),
            &push_body(vec![(format!("{{job=\"{}\"}}", sys.to_lowercase()), entries)])?,
        )?;
    }
    ureq::post(&format!("{}/flush", server.url)).call()?;
    let stored = dir_bytes(&dir.join("data").join("chunks"));
    println!(
        "loghub pushed once: raw {raw} bytes, stored {stored} bytes, stored/raw {:.4}",
        stored as f64 / raw as f64
    );
    server.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Loki's Helm `aws` storage block on the test servers, with a table prefix of this run; with
/// `s3_delay_ms`, S3 is reached through a proxy delaying each request that much.
fn aws_storage_yaml(
    s3_delay_ms: u64,
) -> Result<(String, Option<skald_integration_tests::proxy::DelayingProxy>)> {
    let servers = test_servers_from_env()?;
    let proxy = (s3_delay_ms > 0).then(|| {
        let delay = Duration::from_millis(s3_delay_ms);
        let p = skald_integration_tests::proxy::DelayingProxy::start(
            &host_port(&servers.s3_endpoint),
            delay,
        );
        println!("S3 through a proxy adding {s3_delay_ms} ms per request ({})", p.addr);
        p
    });
    let s3 = proxy.as_ref().map_or_else(|| host_port(&servers.s3_endpoint), |p| p.addr.clone());
    let yaml = format!(
        "schema_config:
  configs:
  - from: 2020-05-15
    store: aws
    object_store: s3
    schema: v11
    index:
      prefix: bench{pid}_
{storage}table_manager:
  index_tables_provisioning:
    enable_ondemand_throughput_mode: true
    enable_inactive_throughput_on_demand_mode: true
",
        pid = std::process::id(),
        storage = aws_storage_block(&servers, &s3, &host_port(&servers.dynamodb_endpoint)),
    );
    Ok((yaml, proxy))
}

/// Sum of the samples of metric `name` (all label sets) over `urls`' `/metrics`.
fn metric_sum(urls: &[String], name: &str) -> f64 {
    urls.iter()
        .filter_map(|u| ureq::get(&format!("{u}/metrics")).call().ok()?.into_string().ok())
        .flat_map(|body| {
            body.lines()
                .filter(|l| {
                    l.starts_with(name)
                        && matches!(l.as_bytes().get(name.len()), Some(b' ') | Some(b'{'))
                })
                .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
                .collect::<Vec<_>>()
        })
        .sum::<f64>()
        + 0.0 // an empty sum is -0.0
}

/// The read requests (`get`, `get_range`, `list`) the processes at `urls` sent to the object
/// store (`skald_object_store_requests_total`).
fn object_store_reads(urls: &[String]) -> f64 {
    ["get", "get_range", "list"]
        .iter()
        .map(|op| {
            metric_sum(urls, &format!("skald_object_store_requests_total{{operation=\"{op}\"}}"))
        })
        .sum()
}

fn main() -> Result<()> {
    let mut args = parse_args()?;
    // lives as long as the run: the server's S3 requests go through it
    let mut _s3_proxy = None;
    if args.aws {
        let (yaml, proxy) = aws_storage_yaml(args.s3_delay_ms)?;
        args.config.push_str(&yaml);
        _s3_proxy = proxy;
    }
    let lines = load_lines(&args.data)?;
    if args.compact.is_some() && (args.cluster || args.aws) {
        bail!("--compact runs on a single process over the filesystem");
    }
    if args.query_during_burst {
        return burst::query_during_burst(&args, lines);
    }
    match args.frontend {
        Some(FrontendMode::CacheRepeat) => return frontend::cache_repeat(&args, lines),
        Some(FrontendMode::Dashboard) => return frontend::dashboard(&args, lines),
        Some(FrontendMode::ScaleOut) => return frontend::scale_out(&args, lines),
        None => {}
    }
    if !args.aws {
        // measured on the filesystem, where stored bytes are a directory's size
        compression_once(&args, &lines)?;
    }

    let dir = std::env::temp_dir().join(format!("skald-bench-{}", std::process::id()));
    let server = if args.cluster {
        println!("cluster: 3 ingesters (replication factor 3), 1 distributor, 1 querier");
        Deployment::cluster(&args.bin, &dir, &args.config)?
    } else {
        Deployment::single(&args.bin, &dir, &args.config)?
    };
    if args.aws {
        let deadline = Instant::now() + Duration::from_secs(300);
        while metric_sum(&server.ingesters, "loki_table_manager_sync_success_timestamp_seconds")
            <= 0.0
        {
            if Instant::now() > deadline {
                bail!("the table-manager did not create the tables");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        println!("storage: S3 chunks + DynamoDB index (tables created by the table-manager)");
    }
    let target = args.mb * 1024 * 1024;
    let streams = SYSTEMS.len() * args.instances;
    let per_stream = target / streams;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as i64;
    // 100 streams over the last 50 minutes
    let span = 50 * 60 * 1_000_000_000i64;
    let t0 = now - span;
    let url = format!("{}/loki/api/v1/push", server.push_url);
    println!(
        "pushing {} MB of raw log in {streams} streams ({} KB per stream) to {}",
        args.mb,
        per_stream / 1024,
        server.push_url
    );
    let raw_total = Arc::new(AtomicUsize::new(0));
    let lines_total = Arc::new(AtomicUsize::new(0));
    let cpu0 = server.cpu_seconds();
    let started = Instant::now();
    let load = load::PushLoad {
        lines: Arc::new(lines),
        url,
        streams,
        per_stream,
        batch_bytes: args.batch_kb * 1024,
        t0,
        span,
        seed: 0x5eed,
    };
    let workers = load.spawn(&raw_total, &lines_total);
    for w in workers {
        w.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    let push_secs = started.elapsed().as_secs_f64();
    let cpu_push = server.cpu_seconds() - cpu0;
    let raw = raw_total.load(Ordering::Relaxed) as f64;
    let nlines = lines_total.load(Ordering::Relaxed) as f64;
    let flush_start = Instant::now();
    server.flush()?;
    let flush_secs = flush_start.elapsed().as_secs_f64();
    let cpu_ingest = server.cpu_seconds() - cpu0;
    let chunk_bytes = metric_sum(&server.ingesters, "loki_ingester_chunk_stored_bytes_total");
    let chunks_flushed = metric_sum(&server.ingesters, "loki_ingester_chunks_flushed_total");
    let stored = if args.aws { chunk_bytes } else { dir_bytes(&server.chunks) as f64 };
    let wal = server.wal_bytes() as f64;
    let mb = raw / 1e6;
    println!(
        "ingest: {:.1} MB raw, {:.0} lines in {:.1}s push + {:.1}s final flush",
        mb, nlines, push_secs, flush_secs
    );
    println!(
        "ingest throughput: {:.1} MB/s, {:.0} lines/s (wall, push phase)",
        mb / push_secs,
        nlines / push_secs
    );
    println!("server CPU: {:.1} s during push, {:.1} s incl. flush = {:.1} CPU-s per GB; {:.1} MB/s per server core-second",
        cpu_push, cpu_ingest, cpu_ingest / (raw / 1e9), mb / cpu_ingest);
    println!(
        "stored: {:.1} MB = {:.4} bytes per raw byte (chunks and index; the WAL holds {:.1} MB until its next checkpoint)",
        stored / 1e6,
        stored / raw,
        wal / 1e6
    );
    if !args.aws {
        let in_chunks = filter_bytes(&server.chunks) as f64;
        let tables = filter_table_bytes(&server.chunks) as f64;
        let filters = in_chunks + tables;
        println!(
            "n-gram filters: {:.2} MB = {:.2}% of stored bytes, {:.4} bytes per raw byte ({:.2} MB in the chunks, {:.2} MB in filter tables)",
            filters / 1e6,
            100.0 * filters / stored.max(1.0),
            filters / raw,
            in_chunks / 1e6,
            tables / 1e6
        );
    }
    println!("peak RSS after ingest: {:.0} MB", server.peak_rss_mb());
    let gb = raw / 1e9;
    if args.aws {
        let items = metric_sum(&server.ingesters, "skald_dynamo_items_written_total");
        let wcu = metric_sum(&server.ingesters, "loki_dynamo_consumed_capacity_total");
        let throttled = metric_sum(&server.ingesters, "loki_dynamo_throttled_total");
        println!(
            "S3 objects: {:.0} chunks = {:.1} per GB raw, {:.2} MB compressed per object; DynamoDB: {:.0} items = {:.1} per GB raw, {:.2} per chunk, {:.0} capacity units reported ({:.1} per GB), {:.0} throttled",
            chunks_flushed,
            chunks_flushed / gb,
            chunk_bytes / 1e6 / chunks_flushed.max(1.0),
            items,
            items / gb,
            items / chunks_flushed.max(1.0),
            wcu,
            wcu / gb,
            throttled
        );
    } else {
        let objects = file_count(&server.chunks) as f64;
        // chunk objects on disk (replicas flush the same chunk each: the flush counter is not
        // the objects' count in a cluster)
        let chunk_objects = chunk_file_count(&server.chunks) as f64;
        println!(
            "filesystem objects: {:.0} ({:.0} chunks + {:.0} index segments and filter tables) = {:.1} per GB raw, {:.2} MB per chunk ({:.0} chunks flushed)",
            objects,
            chunk_objects,
            objects - chunk_objects,
            objects / gb,
            chunk_bytes / 1e6 / chunks_flushed.max(1.0),
            chunks_flushed
        );
        // every process's writes (the ingesters'; the others write none)
        let urls: Vec<String> = server.procs.iter().map(|p| p.url.clone()).collect();
        let op = |o: &str| {
            metric_sum(&urls, &format!("skald_object_store_requests_total{{operation=\"{o}\"}}"))
        };
        let puts = op("put") + op("put_multipart");
        let skipped = metric_sum(&urls, "skald_object_store_puts_skipped_total");
        println!(
            "object store writes: {:.0} PUT requests for {:.0} objects = {:.2} per object; {:.0} HEADs, {:.0} chunk uploads skipped (already written by a replica)",
            puts,
            objects,
            puts / objects.max(1.0),
            op("head"),
            skipped
        );
    }

    let end = now + 60_000_000_000;
    let qs: [(&str, String, Option<&str>); 2] = [
        ("needle", format!("{{job=~\".+\"}} |= \"{NEEDLE}\""), None),
        (
            "sum by job count_over_time[1m]",
            "sum by (job) (count_over_time({job=~\".+\"}[1m]))".to_string(),
            Some("60"),
        ),
    ];
    for (name, q, step) in qs {
        let cpu_before = server.cpu_seconds();
        let (took, v) = query(&server.query_url, &q, (t0 - 1, end), step, &[])?;
        let cpu = server.cpu_seconds() - cpu_before;
        let n = v["data"]["result"].as_array().map(|a| a.len()).unwrap_or(0);
        let found: usize = v["data"]["result"]
            .as_array()
            .map(|a| a.iter().map(|s| s["values"].as_array().map(|x| x.len()).unwrap_or(0)).sum())
            .unwrap_or(0);
        println!(
            "query {name}: {:.2}s, {:.0} MB/s raw scanned (wall), {:.1} CPU-s = {:.0} MB/s per core; {n} series, {found} values",
            took.as_secs_f64(),
            mb / took.as_secs_f64(),
            cpu,
            if cpu > 0.0 { mb / cpu } else { 0.0 }
        );
    }
    let pushed = logbench::Pushed {
        mb,
        lines: nlines as usize,
        needles: load::NEEDLES_SENT.load(Ordering::Relaxed),
        start: t0,
        // one past the newest timestamp the load can write (see load.rs), not on any step
        end: t0 + span + 1000,
    };
    let querier = [server.query_url.clone()];
    let reads = || object_store_reads(&querier);
    if args.compact.is_none() {
        logbench::run(&server.query_url, &pushed, &|| server.cpu_seconds(), &reads)?;
    }
    println!("peak RSS overall: {:.0} MB", server.peak_rss_mb());
    server.stop()?;
    if let Some(c) = &args.compact {
        compact::run(&args.bin, &dir, &args.config, raw, (t0 - 1, end), c)?;
    }
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
