//! `loki_build_info` and the standard `process_*` metrics of Prometheus's clients (CPU seconds,
//! resident and virtual memory, open and maximum file descriptors, threads, start time), read
//! from `/proc/self` on Linux at every scrape. (The `prometheus` crate's own process collector
//! counts CPU in whole seconds; this one keeps the fraction, as the Go client does.)

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, IntGaugeVec, Opts, Registry};

/// The labels of `loki_build_info`, as Prometheus's version collector names them: `version`,
/// `revision`, `branch` (from `SKALD_GIT_REVISION` / `SKALD_GIT_BRANCH` at build time, else
/// `unknown`), `goversion` (`rust`: Skald is not a Go program), `goos`, `goarch` (Go's names
/// for the target), `tags`.
pub fn build_labels() -> [(&'static str, &'static str); 7] {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    [
        ("version", env!("CARGO_PKG_VERSION")),
        ("revision", option_env!("SKALD_GIT_REVISION").unwrap_or("unknown")),
        ("branch", option_env!("SKALD_GIT_BRANCH").unwrap_or("unknown")),
        ("goversion", "rust"),
        ("goos", std::env::consts::OS),
        ("goarch", arch),
        ("tags", "unknown"),
    ]
}

/// Registers `loki_build_info` (always 1) and, on Linux, the process collector into
/// `registry`. A failed registration is logged: the process serves without those metrics.
pub fn register(registry: &Registry) {
    let labels = build_labels();
    let names: Vec<&str> = labels.iter().map(|(k, _)| *k).collect();
    let values: Vec<&str> = labels.iter().map(|(_, v)| *v).collect();
    let opts = Opts::new(
        "loki_build_info",
        "A metric with a constant '1' value labeled by version, revision, branch, goversion from which loki was built, and the goos and goarch for the build.",
    );
    match IntGaugeVec::new(opts, &names) {
        Ok(info) => {
            info.with_label_values(&values).set(1);
            if let Err(error) = registry.register(Box::new(info)) {
                tracing::warn!(%error, "loki_build_info not registered");
            }
        }
        Err(error) => tracing::warn!(%error, "loki_build_info not created"),
    }
    #[cfg(target_os = "linux")]
    if let Err(error) = registry.register(Box::new(ProcessCollector::new())) {
        tracing::warn!(%error, "process metrics not registered");
    }
}

/// What `/proc/self/stat` says, with `/proc/stat`'s boot time: CPU seconds, threads, start time
/// (Unix seconds), virtual and resident bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    cpu_seconds: f64,
    threads: f64,
    start_time: f64,
    virtual_bytes: f64,
    resident_bytes: f64,
}

/// Parses `/proc/self/stat` (`proc(5)`): the fields after the command name's closing `)`,
/// with `ticks` clock ticks a second, `page` bytes a page and the boot time `btime`.
fn parse_stat(stat: &str, ticks: f64, page: f64, btime: f64) -> Option<Stat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (`state`): field n is f[n - 3]
    let num = |n: usize| f.get(n - 3)?.parse::<f64>().ok();
    Some(Stat {
        cpu_seconds: (num(14)? + num(15)?) / ticks,
        threads: num(20)?,
        start_time: btime + num(22)? / ticks,
        virtual_bytes: num(23)?,
        resident_bytes: num(24)? * page,
    })
}

/// The soft `Max open files` of `/proc/self/limits` (`None` when unlimited).
fn parse_max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// `btime` of `/proc/stat`: the boot time, Unix seconds.
fn parse_btime(stat: &str) -> Option<f64> {
    stat.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

/// The `process_*` collector.
struct ProcessCollector {
    cpu: Counter,
    open_fds: Gauge,
    max_fds: Gauge,
    virtual_bytes: Gauge,
    resident_bytes: Gauge,
    start_time: Gauge,
    threads: Gauge,
    descs: Vec<Desc>,
    ticks: f64,
    page: f64,
    btime: f64,
}

impl ProcessCollector {
    fn new() -> Self {
        let gauge =
            |name: &str, help: &str| Gauge::new(name, help).expect("constant metric name is valid");
        let cpu = Counter::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        )
        .expect("constant metric name is valid");
        let open_fds = gauge("process_open_fds", "Number of open file descriptors.");
        let max_fds = gauge("process_max_fds", "Maximum number of open file descriptors.");
        let virtual_bytes = gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.");
        let resident_bytes =
            gauge("process_resident_memory_bytes", "Resident memory size in bytes.");
        let start_time = gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        );
        let threads = gauge("process_threads", "Number of OS threads in the process.");
        let mut descs = Vec::new();
        for c in [
            &cpu as &dyn Collector,
            &open_fds,
            &max_fds,
            &virtual_bytes,
            &resident_bytes,
            &start_time,
            &threads,
        ] {
            descs.extend(c.desc().into_iter().cloned());
        }
        // SAFETY: sysconf only reads a configuration value.
        let (ticks, page) =
            unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        let btime = std::fs::read_to_string("/proc/stat").ok().as_deref().and_then(parse_btime);
        ProcessCollector {
            cpu,
            open_fds,
            max_fds,
            virtual_bytes,
            resident_bytes,
            start_time,
            threads,
            descs,
            ticks: if ticks > 0 { ticks as f64 } else { 100.0 },
            page: if page > 0 { page as f64 } else { 4096.0 },
            btime: btime.unwrap_or(0.0),
        }
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut out = Vec::new();
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        if let Some(s) =
            stat.as_deref().and_then(|s| parse_stat(s, self.ticks, self.page, self.btime))
        {
            // a counter only goes up: add what the kernel counted since the last scrape
            self.cpu.inc_by((s.cpu_seconds - self.cpu.get()).max(0.0));
            self.threads.set(s.threads);
            self.start_time.set(s.start_time);
            self.virtual_bytes.set(s.virtual_bytes);
            self.resident_bytes.set(s.resident_bytes);
            for c in [
                &self.cpu as &dyn Collector,
                &self.threads,
                &self.start_time,
                &self.virtual_bytes,
                &self.resident_bytes,
            ] {
                out.extend(c.collect());
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as f64);
            out.extend(self.open_fds.collect());
        }
        let limits = std::fs::read_to_string("/proc/self/limits").ok();
        if let Some(max) = limits.as_deref().and_then(parse_max_fds) {
            self.max_fds.set(max);
            out.extend(self.max_fds.collect());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn proc_files_are_read_as_procfs_documents_them() {
        // a command name with spaces and parentheses: fields count from the last `)`
        let stat = "4242 (sk (a) ld) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 7 0 12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_stat(stat, 100.0, 4096.0, 1_700_000_000.0).unwrap();
        assert_eq!(s.cpu_seconds, 4.0, "utime 250 + stime 150 ticks at 100 a second");
        assert_eq!(s.threads, 7.0);
        assert_eq!(s.start_time, 1_700_000_000.0 + 123.45);
        assert_eq!(s.virtual_bytes, 104_857_600.0);
        assert_eq!(s.resident_bytes, 2560.0 * 4096.0);
        assert_eq!(parse_stat("42 (x) S 1 2", 100.0, 4096.0, 0.0), None, "truncated");
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax cpu time              unlimited            unlimited            seconds\nMax open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024.0));
        assert_eq!(
            parse_btime("cpu  1 2 3\nbtime 1796450000\nprocesses 9\n"),
            Some(1_796_450_000.0)
        );
    }

    #[test]
    fn build_info_and_process_metrics_are_served() {
        let registry = Registry::new();
        register(&registry);
        let families = registry.gather();
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        assert!(names.contains(&"loki_build_info"), "{names:?}");
        let info = families.iter().find(|f| f.name() == "loki_build_info").unwrap();
        let m = &info.get_metric()[0];
        assert_eq!(m.get_gauge().get_value(), 1.0);
        let label =
            |n: &str| m.get_label().iter().find(|l| l.name() == n).unwrap().value().to_string();
        assert_eq!(label("version"), env!("CARGO_PKG_VERSION"));
        assert_eq!(label("goos"), std::env::consts::OS);
        #[cfg(target_os = "linux")]
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        #[cfg(target_os = "linux")]
        {
            // burn a little CPU: the counter keeps fractions of a second
            let t = std::time::Instant::now();
            let mut x = 0u64;
            while t.elapsed() < std::time::Duration::from_millis(30) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            let families = registry.gather();
            let one = |n: &str| {
                let m = &families.iter().find(|f| f.name() == n).unwrap().get_metric()[0];
                m.get_gauge().get_value() + m.get_counter().get_value()
            };
            assert!(one("process_resident_memory_bytes") > 1e6, "a test process holds 1 MB");
            assert!(one("process_virtual_memory_bytes") >= one("process_resident_memory_bytes"));
            let cpu = one("process_cpu_seconds_total");
            assert!(cpu > 0.0, "{cpu}");
            assert!(one("process_threads") >= 1.0);
            assert!(
                one("process_open_fds") >= 3.0 && one("process_max_fds") >= one("process_open_fds")
            );
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            let started = one("process_start_time_seconds");
            assert!(started <= now + 1.0 && now - started < 3600.0, "{started} vs {now}");
        }
    }
}
