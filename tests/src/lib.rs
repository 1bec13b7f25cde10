//! Test harness for Skald's integration tests: starts the real `skald` binary on free
//! loopback ports with its own data directory, and speaks HTTP to it over real sockets.

pub mod compare;

pub mod answer;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Finds the `skald` binary: `$SKALD_BIN`, or `target/<profile>/skald` next to the test
/// executable's `deps/` folder.
pub fn skald_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SKALD_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile_dir.join("skald");
    assert!(
        bin.try_exists().unwrap_or(false),
        "{} not found: build it first with `cargo build -p skald-server --bin skald` (the README test command does)",
        bin.display()
    );
    bin
}

/// A Grafana command-line tool (`logcli`, `promtail`) on PATH, if one is there and its
/// `--version` names it (`<name>, version ...`), so that another program of the same name is
/// not mistaken for it.
pub fn grafana_tool_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let bin = std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())?;
    let out = Command::new(&bin).arg("--version").output().ok()?;
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    text.contains(&format!("{name}, version")).then_some(bin)
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Two distinct free ports (HTTP and gRPC): both probe listeners are held at once, so the OS
/// cannot hand out the same port twice, as two calls to [`free_port`] can.
pub fn free_port_pair() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    (a.local_addr().expect("local addr").port(), b.local_addr().expect("local addr").port())
}

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("skald-test-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// The repository's `tests/data` folder.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

/// A running `skald` process.
pub struct Skald {
    child: Option<Child>,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// HTTP port.
    pub http_port: u16,
    /// gRPC port.
    pub grpc_port: u16,
    /// Working directory (data lives under it).
    pub dir: PathBuf,
    /// The config file used.
    pub config_path: PathBuf,
    log_path: PathBuf,
}

impl Skald {
    /// Starts `skald` with `extra_yaml` appended to a config that listens on free ports and
    /// keeps data under `dir`. Waits until `/ready` answers.
    pub fn start(dir: &Path, extra_yaml: &str) -> Skald {
        let (http_port, grpc_port) = free_port_pair();
        let config = format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {http_port}\n  grpc_listen_address: 127.0.0.1\n  grpc_listen_port: {grpc_port}\n  log_level: info\ncommon:\n  path_prefix: {}\n{extra_yaml}",
            dir.join("data").display()
        );
        let config_path = dir.join("skald.yaml");
        std::fs::write(&config_path, config).expect("write config");
        Self::start_with_config(dir, &config_path, http_port, grpc_port)
    }

    /// Starts `skald -config.file=<config_path>` (ports must match the file).
    pub fn start_with_config(
        dir: &Path,
        config_path: &Path,
        http_port: u16,
        grpc_port: u16,
    ) -> Skald {
        let log_path = dir.join(format!("skald-{http_port}.log"));
        let log = std::fs::File::create(&log_path).expect("create log file");
        let log2 = log.try_clone().expect("clone log handle");
        let child = Command::new(skald_bin())
            .arg(format!("-config.file={}", config_path.display()))
            .current_dir(dir)
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .expect("spawn skald");
        let s = Skald {
            child: Some(child),
            url: format!("http://127.0.0.1:{http_port}"),
            http_port,
            grpc_port,
            dir: dir.to_path_buf(),
            config_path: config_path.to_path_buf(),
            log_path,
        };
        s.wait_ready(Duration::from_secs(30));
        s
    }

    fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(r) =
                ureq::get(&format!("{}/ready", self.url)).timeout(Duration::from_secs(1)).call()
            {
                if r.status() == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("skald did not become ready within {timeout:?}; log:\n{}", self.log());
    }

    /// The process's resident memory (`VmRSS` of `/proc/<pid>/status`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS in /proc/<pid>/status")
            * 1024
    }

    /// The process's log output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits for a clean exit (the ingester flushes first).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("skald did not stop within 60s after SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process without letting it flush.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit by itself (e.g. after `/ingester/shutdown`).
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("skald did not exit within {timeout:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the process again with the same config and ports (after it exited).
    pub fn start_again(&mut self) {
        let s = Self::start_with_config(
            &self.dir.clone(),
            &self.config_path.clone(),
            self.http_port,
            self.grpc_port,
        );
        *self = s;
    }

    /// SIGKILLs the process (no flush, no checkpoint) and starts it again with the same
    /// config and ports.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        let s = Self::start_with_config(
            &self.dir.clone(),
            &self.config_path.clone(),
            self.http_port,
            self.grpc_port,
        );
        *self = s;
    }

    /// Restarts with the same config and ports.
    pub fn restart(&mut self) {
        self.stop();
        let s = Self::start_with_config(
            &self.dir.clone(),
            &self.config_path.clone(),
            self.http_port,
            self.grpc_port,
        );
        *self = s;
    }
}

impl Drop for Skald {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A response: status, content type and body text.
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Content-Type header.
    pub content_type: String,
    /// Body as text.
    pub body: String,
}

impl Resp {
    /// Parses the body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

fn to_resp(r: Result<ureq::Response, ureq::Error>) -> Resp {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = resp.status();
    let content_type = resp.header("Content-Type").unwrap_or("").to_string();
    let mut body = String::new();
    resp.into_reader().take(512 * 1024 * 1024).read_to_string(&mut body).expect("read body");
    Resp { status, content_type, body }
}

/// POSTs `body` with the given headers.
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut req = ureq::post(url).timeout(Duration::from_secs(120));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    to_resp(req.send_bytes(body))
}

/// GETs `url` with query parameters (repeated keys allowed) and headers.
pub fn get(url: &str, params: &[(&str, &str)], headers: &[(&str, &str)]) -> Resp {
    let mut req = ureq::get(url).timeout(Duration::from_secs(120));
    for (k, v) in params {
        req = req.query(k, v);
    }
    for (k, v) in headers {
        req = req.set(k, v);
    }
    to_resp(req.call())
}

/// Encodes a Loki `PushRequest` as protobuf and compresses it with raw snappy, the way
/// promtail sends it.
pub fn encode_push_protobuf(streams: &[(&str, Vec<(i64, String)>)]) -> Vec<u8> {
    use prost::Message;
    use skald_proto::logproto::{EntryAdapter, PushRequest, StreamAdapter};
    let req = PushRequest {
        streams: streams
            .iter()
            .map(|(labels, entries)| StreamAdapter {
                labels: labels.to_string(),
                entries: entries
                    .iter()
                    .map(|(ts, line)| EntryAdapter {
                        timestamp: Some(prost_types::Timestamp {
                            seconds: ts.div_euclid(1_000_000_000),
                            nanos: ts.rem_euclid(1_000_000_000) as i32,
                        }),
                        line: line.clone(),
                        structured_metadata: vec![],
                        parsed: vec![],
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
        format: String::new(),
    };
    let raw = req.encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&raw).expect("snappy compress")
}

/// Gzips `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip finish")
}

/// Pushes every recorded push body of `tests/data/reference/push` (JSON) as tenant `tenant`,
/// then flushes so the data is read back from the store, as the Loki recording did.
pub fn push_reference_dataset(skald: &Skald, tenant: &str) {
    push_reference_dataset_to(&skald.url, std::slice::from_ref(&skald.url), tenant);
}

/// [`push_reference_dataset`] for split deployments: pushes to `push_url`, then flushes every
/// ingester in `flush_urls`.
pub fn push_reference_dataset_to(push_url: &str, flush_urls: &[String], tenant: &str) {
    let dir = data_dir().join("reference").join("push");
    let mut bodies: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("reference push dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    bodies.sort();
    assert_eq!(bodies.len(), 26, "recorded push bodies in {}", dir.display());
    for path in &bodies {
        let body = std::fs::read(path).expect("push body");
        let r = post(
            &format!("{push_url}/loki/api/v1/push"),
            &[("Content-Type", "application/json"), ("X-Scope-OrgID", tenant)],
            &body,
        );
        assert_eq!(r.status, 204, "push {} failed: {}", path.display(), r.body);
    }
    for url in flush_urls {
        let r = post(&format!("{url}/flush"), &[], b"");
        assert_eq!(r.status, 204, "{}", r.body);
    }
}

/// The limits the reference dataset needs (weeks-old timestamps, 26 large bodies), with auth on
/// as in the recording (tenant `tenant-a`).
pub const REFERENCE_CONFIG: &str = "auth_enabled: true
limits_config:
  reject_old_samples: false
  ingestion_rate_mb: 64
  ingestion_burst_size_mb: 128
  per_stream_rate_limit: 64MB
  per_stream_rate_limit_burst: 128MB
  max_entries_limit_per_query: 5000
  allow_structured_metadata: true
  volume_enabled: true
";

/// A cluster on loopback: 3 ingesters (`-target=ingester`, each with its own WAL and data
/// directory), a distributor and a querier, over a static ring with replication factor 3 and
/// one shared filesystem store.
pub struct Cluster {
    /// The ingesters.
    pub ingesters: Vec<Skald>,
    /// Where pushes go.
    pub distributor: Skald,
    /// Where queries go.
    pub querier: Skald,
}

/// Starts one process of a cluster under `dir/<name>` with `body` as the rest of its config.
fn start_member(dir: &Path, name: &str, body: &str) -> Skald {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).expect("member dir");
    let (http, grpc) = free_port_pair();
    let config = format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {http}\n  grpc_listen_address: 127.0.0.1\n  grpc_listen_port: {grpc}\n  log_level: info\n{body}"
    );
    let path = dir.join("skald.yaml");
    std::fs::write(&path, config).expect("write config");
    Skald::start_with_config(&dir, &path, http, grpc)
}

/// Starts a [`Cluster`]; `extra` (top-level YAML blocks other than `common`, `ingester`,
/// `storage_config`, `ingester_client` and `target`, e.g. `limits_config`) goes to every
/// process.
pub fn start_cluster(dir: &Path, extra: &str) -> Cluster {
    let shared = dir.join("shared-chunks");
    let storage = format!("storage_config:\n  filesystem:\n    directory: {}\n", shared.display());
    let common = |name: &str| {
        format!(
            "common:\n  path_prefix: {}\n  replication_factor: 3\n",
            dir.join(name).join("data").display()
        )
    };
    let ingesters: Vec<Skald> = (0..3)
        .map(|i| {
            let name = format!("ingester-{i}");
            let body = format!(
                "target: ingester\n{}{storage}{extra}ingester:\n  chunk_idle_period: 1s\n  flush_check_period: 1s\n  wal:\n    checkpoint_duration: 2s\n",
                common(&name)
            );
            start_member(dir, &name, &body)
        })
        .collect();
    let addrs: String =
        ingesters.iter().map(|s| format!("    - 127.0.0.1:{}\n", s.grpc_port)).collect();
    let client = format!("ingester_client:\n  addresses:\n{addrs}");
    let distributor = start_member(
        dir,
        "distributor",
        &format!("target: distributor\n{}{extra}{client}", common("distributor")),
    );
    let querier = start_member(
        dir,
        "querier",
        &format!("target: querier\n{}{storage}{extra}{client}", common("querier")),
    );
    Cluster { ingesters, distributor, querier }
}

fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral UDP port");
    s.local_addr().expect("local addr").port()
}

/// Like [`start_cluster`], but the ingesters are found through gossip (`memberlist` with
/// `join_members`, as in Loki's configs) instead of `ingester_client.addresses`: ingesters
/// publish JOINING, then ACTIVE once their WAL is replayed, and heartbeat their ring entry.
pub fn start_gossip_cluster(dir: &Path, extra: &str) -> Cluster {
    let shared = dir.join("shared-chunks");
    let storage = format!("storage_config:\n  filesystem:\n    directory: {}\n", shared.display());
    let seed_port = free_udp_port();
    let memberlist = |name: &str, port: u16| {
        format!(
            "memberlist:\n  node_name: {name}\n  bind_addr: [127.0.0.1]\n  bind_port: {port}\n  gossip_interval: 100ms\n  join_members: [127.0.0.1:{seed_port}]\n"
        )
    };
    let common = |name: &str| {
        format!(
            "common:\n  path_prefix: {}\n  replication_factor: 3\n",
            dir.join(name).join("data").display()
        )
    };
    let lifecycler =
        "  lifecycler:\n    heartbeat_period: 500ms\n    ring:\n      heartbeat_timeout: 10s\n";
    let ingesters: Vec<Skald> = (0..3)
        .map(|i| {
            let name = format!("ingester-{i}");
            let port = if i == 0 { seed_port } else { free_udp_port() };
            let body = format!(
                "target: ingester\n{}{storage}{extra}{}ingester:\n  chunk_idle_period: 1s\n  flush_check_period: 1s\n{lifecycler}  wal:\n    checkpoint_duration: 2s\n",
                common(&name),
                memberlist(&name, port)
            );
            start_member(dir, &name, &body)
        })
        .collect();
    let client_side = |name: &str, target: &str, storage: &str| {
        format!(
            "target: {target}\n{}{storage}{extra}{}ingester:\n{lifecycler}",
            common(name),
            memberlist(name, free_udp_port())
        )
    };
    let distributor =
        start_member(dir, "distributor", &client_side("distributor", "distributor", ""));
    let querier = start_member(dir, "querier", &client_side("querier", "querier", &storage));
    Cluster { ingesters, distributor, querier }
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A small pseudo-random number below `max` from the clock (when to kill a process).
pub fn jitter_ms(max: u64) -> u64 {
    (now_ns() as u64 / 1000).wrapping_mul(6_364_136_223_846_793_005) % max.max(1)
}

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

/// Bytes of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                dir_bytes(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

/// The S3 and DynamoDB servers `scripts/test-servers/start.sh` started (its env file, which the
/// README's test command sources, names them).
#[derive(Debug, Clone)]
pub struct TestServers {
    /// `http://127.0.0.1:<port>` of SeaweedFS's S3 API.
    pub s3_endpoint: String,
    /// A bucket that exists.
    pub s3_bucket: String,
    /// S3 access key id.
    pub s3_key: String,
    /// S3 secret.
    pub s3_secret: String,
    /// `http://127.0.0.1:<port>` of DynamoDB Local.
    pub dynamodb_endpoint: String,
    /// DynamoDB access key id.
    pub dynamodb_key: String,
    /// DynamoDB secret.
    pub dynamodb_secret: String,
}

/// Reads the servers' environment; a missing variable fails the test with what to run.
pub fn test_servers() -> TestServers {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: run scripts/test-servers/start.sh and source the env file it writes (the README's test command does both)")
        })
    };
    TestServers {
        s3_endpoint: var("SKALD_TEST_S3_ENDPOINT"),
        s3_bucket: var("SKALD_TEST_S3_BUCKET"),
        s3_key: var("SKALD_TEST_S3_ACCESS_KEY"),
        s3_secret: var("SKALD_TEST_S3_SECRET_KEY"),
        dynamodb_endpoint: var("SKALD_TEST_DYNAMODB_ENDPOINT"),
        dynamodb_key: var("SKALD_TEST_DYNAMODB_ACCESS_KEY"),
        dynamodb_secret: var("SKALD_TEST_DYNAMODB_SECRET_KEY"),
    }
}

/// `host:port` of an `http://host:port` URL.
pub fn host_port(url: &str) -> String {
    url.trim_start_matches("http://").trim_end_matches('/').to_string()
}

/// A table prefix (and S3 key space) no other test run uses.
pub fn unique_prefix(tag: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("sk{tag}{}x{}_", std::process::id(), nanos % 1_000_000_000)
}

/// A TCP forwarder on loopback that a test can cut (refusing new connections and closing open
/// ones) and restore: a storage outage, without touching the shared servers.
pub struct CuttableProxy {
    /// `127.0.0.1:<port>` to point clients at.
    pub addr: String,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl CuttableProxy {
    /// Forwards a free loopback port to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> CuttableProxy {
        use std::sync::Mutex;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (up2, open2, upstream) = (up.clone(), open.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&upstream) else { continue };
                let pump = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                };
                if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                    let mut o = open2.lock().unwrap_or_else(|e| e.into_inner());
                    if let (Ok(c3), Ok(s3)) = (client.try_clone(), server.try_clone()) {
                        o.push(c3);
                        o.push(s3);
                    }
                    drop(o);
                    pump(client, s2);
                    pump(server, c2);
                }
            }
        });
        CuttableProxy { addr, up, open }
    }

    /// Refuses new connections and closes the open ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut o = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for s in o.drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Loki's storage block as a Helm user has it (the example), with the endpoints
/// pointed at `s3` and `dynamodb` (`host:port`) and a table prefix of the test's own.
pub fn helm_aws_storage_yaml(
    servers: &TestServers,
    s3: &str,
    dynamodb: &str,
    prefix: &str,
) -> String {
    format!(
        "schema_config:
  configs:
  - from: 2020-05-15
    store: aws
    object_store: s3
    schema: v11
    index:
      prefix: {prefix}
{}table_manager:
  creation_grace_period: 3h
  retention_deletes_enabled: false
  retention_period: 0s
  chunk_tables_provisioning:
    enable_ondemand_throughput_mode: true
    enable_inactive_throughput_on_demand_mode: true
  index_tables_provisioning:
    enable_ondemand_throughput_mode: true
    enable_inactive_throughput_on_demand_mode: true
",
        aws_storage_block(servers, s3, dynamodb)
    )
}

/// The `storage_config.aws` block: chunks in the test bucket through `s3`, the index in
/// DynamoDB through `dynamodb` (both `host:port`), in Loki's URL forms.
pub fn aws_storage_block(servers: &TestServers, s3: &str, dynamodb: &str) -> String {
    format!(
        "storage_config:
  aws:
    s3: s3://{key}:{secret}@{s3}/{bucket}
    dynamodb:
      dynamodb_url: dynamodb://{dkey}:{dsecret}@{dynamodb}
",
        key = servers.s3_key,
        secret = servers.s3_secret,
        bucket = servers.s3_bucket,
        dkey = servers.dynamodb_key,
        dsecret = servers.dynamodb_secret,
    )
}

/// The sum of the samples of metric `name` (every label set) on `url`'s `/metrics`.
pub fn metric_sum(url: &str, name: &str) -> f64 {
    get(&format!("{url}/metrics"), &[], &[])
        .body
        .lines()
        .filter(|l| {
            l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0 // an empty sum is -0.0
}

/// Waits until the process's table-manager finished a pass (its success timestamp is set).
pub fn wait_tables_synced(url: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if metric_sum(url, "loki_table_manager_sync_success_timestamp_seconds") > 0.0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the table-manager did not finish a pass within {timeout:?}");
}

/// Live-tail WebSocket helpers (`/loki/api/v1/tail`), shared by the tail, Grafana and logcli
/// tests.
pub mod ws {
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use serde_json::Value;
    use tungstenite::client::ClientRequestBuilder;
    use tungstenite::stream::MaybeTlsStream;
    use tungstenite::{Message, WebSocket};

    /// An open tail.
    pub type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

    /// Percent-encodes a query-string value.
    pub fn enc(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    /// Why a tail did not open.
    #[derive(Debug, PartialEq, Eq)]
    pub enum OpenError {
        /// The server answered the upgrade with this HTTP status.
        Refused(u16),
        /// The connection failed.
        Failed(String),
    }

    /// Opens `ws://<http_url host><path>?<params>` with `headers`; reads time out after 200 ms
    /// so that callers can poll.
    pub fn open(
        http_url: &str,
        path: &str,
        params: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Result<Ws, OpenError> {
        let qs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
        let url = format!("{}{path}?{}", http_url.replacen("http://", "ws://", 1), qs.join("&"));
        let uri = url.parse().map_err(|e| OpenError::Failed(format!("bad tail URL {url}: {e}")))?;
        let mut req = ClientRequestBuilder::new(uri);
        for (k, v) in headers {
            req = req.with_header(*k, *v);
        }
        match tungstenite::connect(req) {
            Ok((mut ws, _)) => {
                if let MaybeTlsStream::Plain(s) = ws.get_mut() {
                    s.set_read_timeout(Some(Duration::from_millis(200)))
                        .map_err(|e| OpenError::Failed(e.to_string()))?;
                }
                Ok(ws)
            }
            Err(tungstenite::Error::Http(resp)) => Err(OpenError::Refused(resp.status().as_u16())),
            Err(e) => Err(OpenError::Failed(e.to_string())),
        }
    }

    /// What [`read`] saw.
    #[derive(Debug, Default)]
    pub struct Read {
        /// Text frames, parsed.
        pub frames: Vec<Value>,
        /// Ping frames.
        pub pings: usize,
        /// The close frame's code and reason, when the server closed the tail.
        pub closed: Option<(u16, String)>,
    }

    /// Reads frames until `deadline`, until `done(frames)`, or until the tail closes.
    pub fn read(
        ws: &mut Ws,
        deadline: Instant,
        mut done: impl FnMut(&[Value]) -> bool,
    ) -> Result<Read, String> {
        let mut r = Read::default();
        while Instant::now() < deadline && !done(&r.frames) {
            match ws.read() {
                Ok(Message::Text(t)) => r.frames.push(
                    serde_json::from_str(t.as_str())
                        .map_err(|e| format!("frame is not JSON ({e}): {t}"))?,
                ),
                Ok(Message::Ping(_)) => r.pings += 1,
                Ok(Message::Close(c)) => {
                    r.closed = Some(
                        c.map(|c| (c.code.into(), c.reason.to_string()))
                            .unwrap_or((1005, String::new())),
                    );
                    break;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    r.closed.get_or_insert((1006, String::new()));
                    break;
                }
                Err(e) => return Err(format!("tail read failed: {e}")),
            }
        }
        Ok(r)
    }
}

/// `ns` as JavaScript's `Date.prototype.toISOString()` writes it (ms precision, `Z`).
pub fn iso_ms(ns: i64) -> String {
    let ms = ns.div_euclid(1_000_000);
    let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Sends `raw` as is on a new connection (a recorded request, byte for byte) and returns
/// (status, response head, body); a `HEAD` request's answer has no body.
pub fn send_raw(port: u16, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect to skald");
    conn.set_read_timeout(Some(Duration::from_secs(30))).expect("set a read timeout");
    conn.write_all(raw).expect("send the request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = conn.read(&mut chunk).expect("read the response");
        assert!(n > 0, "connection closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("a status line");
    let is_head = raw.starts_with(b"HEAD ");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let want = if is_head { 0 } else { len };
    while buf.len() < head_end + want {
        let n = conn.read(&mut chunk).expect("read the response");
        assert!(n > 0, "connection closed inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    (status, head, buf[head_end..head_end + want].to_vec())
}
