//! The process sandbox: free loopback ports, scratch directories, a running `skald` process
//! ([`Skald`]) and loopback clusters of them ([`Cluster`]: static or gossip ring).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        Self::start_with(dir, config_path, (http_port, grpc_port), &[], &[])
    }

    /// Starts `skald -config.file=<config_path> <args>` with `envs` added to its environment
    /// (`ports`, HTTP and gRPC, must match the file).
    pub fn start_with(
        dir: &Path,
        config_path: &Path,
        (http_port, grpc_port): (u16, u16),
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Skald {
        let log_path = dir.join(format!("skald-{http_port}.log"));
        let log = std::fs::File::create(&log_path).expect("create log file");
        let log2 = log.try_clone().expect("clone log handle");
        let child = Command::new(skald_bin())
            .arg(format!("-config.file={}", config_path.display()))
            .args(args)
            .envs(envs.iter().copied())
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

    /// The most resident memory the process has had (`VmHWM` of `/proc/<pid>/status`), in
    /// bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM in /proc/<pid>/status")
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
    let querier = start_member(dir, "querier", &querier_body(dir, "querier", extra, &client));
    Cluster { ingesters, distributor, querier }
}

/// The config of a cluster's querier named `name` (after `server`).
fn querier_body(dir: &Path, name: &str, extra: &str, client: &str) -> String {
    let shared = dir.join("shared-chunks");
    format!(
        "target: querier\ncommon:\n  path_prefix: {}\n  replication_factor: 3\nstorage_config:\n  filesystem:\n    directory: {}\n{extra}{client}",
        dir.join(name).join("data").display(),
        shared.display()
    )
}

/// A [`Cluster`] behind a query-frontend (`-target=query-frontend`): the cluster's querier
/// and a second one pull the frontend's work over gRPC (`frontend_worker.frontend_address`).
pub struct FrontendCluster {
    /// Ingesters, distributor and the first querier.
    pub cluster: Cluster,
    /// Where queries go.
    pub frontend: Skald,
    /// The second querier.
    pub querier2: Skald,
}

/// Starts one more querier of `cluster`, named `name`, pulling work from `frontend`.
pub fn start_frontend_querier(
    dir: &Path,
    name: &str,
    cluster: &Cluster,
    frontend: &Skald,
    extra: &str,
) -> Skald {
    let addrs: String =
        cluster.ingesters.iter().map(|s| format!("    - 127.0.0.1:{}\n", s.grpc_port)).collect();
    let client = format!("ingester_client:\n  addresses:\n{addrs}");
    let worker =
        format!("frontend_worker:\n  frontend_address: 127.0.0.1:{}\n", frontend.grpc_port);
    start_member(dir, name, &querier_body(dir, name, &format!("{extra}{worker}"), &client))
}

/// Starts a [`FrontendCluster`]; `extra` (as for [`start_cluster`]) goes to every process,
/// the frontend included.
pub fn start_frontend_cluster(dir: &Path, extra: &str) -> FrontendCluster {
    let frontend = start_member(dir, "frontend", &format!("target: query-frontend\n{extra}"));
    let worker =
        format!("frontend_worker:\n  frontend_address: 127.0.0.1:{}\n", frontend.grpc_port);
    let cluster = start_cluster(dir, &format!("{extra}{worker}"));
    let querier2 = start_frontend_querier(dir, "querier-2", &cluster, &frontend, extra);
    FrontendCluster { cluster, frontend, querier2 }
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

/// The paths, relative to `dir` and sorted, of every file below it.
pub fn relative_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
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

/// The CPU time (user + system) process `pid` used so far, in clock ticks (`/proc/<pid>/stat`).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // the fields after the command name, which is in parentheses
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0)
}
