//! `skald`: one binary that runs any of Skald's services (`-target=...`), all of them by
//! default, with Loki's configuration keys.

mod app;
mod config;
mod flags;
mod http;
mod ingester_client_metrics;
mod listen;
mod logging;
mod modules;
mod ops;
mod ops_memberlist;
mod process_metrics;
mod request_log;
mod request_metrics;
mod runtime_config;
mod secret;
mod storage;
mod tracing_otlp;

fn main() -> std::process::ExitCode {
    tune_malloc();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = match flags::parse(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", flags::USAGE);
            return std::process::ExitCode::from(2);
        }
    };
    if flags.help {
        print!("{}", flags::USAGE);
        return std::process::ExitCode::SUCCESS;
    }
    if flags.version {
        println!("skald, version {}", env!("CARGO_PKG_VERSION"));
        return std::process::ExitCode::SUCCESS;
    }
    let mut cfg = match load_config(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    if let Some(p) = flags.http_port {
        cfg.server.http_listen_port = p;
    }
    if let Some(p) = flags.grpc_port {
        cfg.server.grpc_listen_port = p;
    }
    if let Some(l) = &flags.log_level {
        cfg.server.log_level = l.clone();
    }
    if let Some(f) = &flags.log_format {
        cfg.server.log_format = f.clone();
    }
    let Some(format) = logging::LogFormat::parse(&cfg.server.log_format) else {
        eprintln!(
            "error: invalid log format `{}`: want logfmt or json (server.log_format, -log.format)",
            cfg.server.log_format
        );
        return std::process::ExitCode::from(1);
    };
    let level = cfg.server.log_level.clone();
    // the filter can be changed at run time (`/log_level`)
    ops::set_log_handle(logging::init(&level, format), &level);
    if let Err(e) = cfg.validate() {
        eprintln!("error: invalid config: {e}");
        return std::process::ExitCode::from(1);
    }
    if flags.print_config_stderr {
        eprint!("{}", ops::print_config(&cfg));
    }
    if flags.log_config_reverse_order {
        ops::log_config_reverse_order(&cfg);
    }
    let target =
        flags.target.clone().or_else(|| cfg.target.clone()).unwrap_or_else(|| "all".to_string());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    tracing_otlp::start(&cfg.tracing, &target, runtime.handle());
    let result = runtime.block_on(app::run(cfg, &target));
    runtime.block_on(tracing_otlp::shutdown());
    // A query still running past `server.graceful_shutdown_timeout` must not hold the exit
    // up: dropping the runtime drops its request, which cancels it; its blocking thread gets
    // a moment to notice, no more.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// Why the config file given by `-config.file` could not be loaded (printed after `error: `).
#[derive(Debug, thiserror::Error)]
enum LoadConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The path as given.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The file does not parse.
    #[error("{path}: {error}")]
    Parse {
        /// The path as given.
        path: String,
        /// Why (boxed: a config error is large).
        error: Box<config::ConfigError>,
    },
}

fn load_config(flags: &flags::Flags) -> Result<config::Config, LoadConfigError> {
    let Some(path) = &flags.config_file else {
        return Ok(config::Config::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|error| LoadConfigError::Read { path: path.clone(), error })?;
    let text = if flags.expand_env { config::expand_env(&text) } else { text };
    config::parse(&text)
        .map_err(|error| LoadConfigError::Parse { path: path.clone(), error: Box::new(error) })
}

/// The static musl build (the container image) allocates with jemalloc: with musl's own
/// malloc, ingest cost 2.3 times the CPU of the glibc build, with jemalloc 1.14 times
/// (`benches/RESULTS.md`, 2026-12-05, "the image's musl binary").
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Tunes glibc's malloc before any thread exists (runs first in `main`); a setting the
/// operator gave in glibc's environment variable is left as glibc read it.
///
/// - Arenas (`MALLOC_ARENA_MAX`): two per core. glibc gives threads that allocate at the same
///   time their own arena (up to eight per core) and keeps freed memory in each. The ingester's
///   push runs under `block_in_place`, so the runtime brings in extra threads while pushes
///   hold theirs; with the default, their arenas raised the RSS after a 1 GB ingest by about
///   40% at the same CPU cost (`benches/RESULTS.md`, 2026-12-04).
/// - The mmap threshold (`MALLOC_MMAP_THRESHOLD_`): fixed at 8 MiB. By default glibc raises
///   it each time a large mapped block is freed (up to 32 MiB), after which a query's
///   multi-megabyte buffers come from the arenas, and the arenas keep what the next
///   allocations pin down between them. A series of heavy queries then ratcheted the resident
///   memory up by 10 to 40 MB each (`tests/tests/bad_queries.rs`); with a fixed threshold,
///   what a query allocated in large blocks goes back to the system when it ends
///   (`benches/RESULTS.md`, 2026-12-05, "the mmap threshold").
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = i32::try_from(2 * cores).unwrap_or(i32::MAX);
        // SAFETY: `mallopt` only sets an allocator parameter; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: as above.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

/// Allocations of this size or more are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 8 << 20;

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}
