//! Loki's `runtime_config` block: the per-tenant overrides file, loaded at start (a file that
//! does not load stops the start, as in Loki), then read again every `period` while the
//! process runs. A file that no longer loads is logged (`failed to load config`, Loki's
//! message, every period while it stays bad) and the last good overrides stay in force;
//! `loki_runtime_config_last_reload_successful` says which. `/runtime_config` shows the
//! overrides in force.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_yaml::Value;
use skald_common::limits::Limits;
use skald_common::overrides::{
    diff_from_defaults, load_runtime_config, runtime_config_files, Overrides,
};
use skald_common::units;
use tokio::sync::watch;

use crate::http::HttpState;

/// The `runtime_config` block (Loki's keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfigConfig {
    /// How often the files are read again.
    #[serde(with = "units::duration")]
    pub period: Duration,
    /// The runtime configuration file, or several separated by commas (merged in order, a
    /// later file's keys winning). Empty: no overrides.
    pub file: String,
    /// Loki's timeout for a file given as an http(s) URL; accepted so that Loki configs load.
    /// Skald reads local files only.
    #[serde(with = "units::duration")]
    pub http_client_timeout: Duration,
}

impl Default for RuntimeConfigConfig {
    fn default() -> Self {
        RuntimeConfigConfig {
            period: Duration::from_secs(10),
            file: String::new(),
            http_client_timeout: Duration::from_secs(30),
        }
    }
}

impl RuntimeConfigConfig {
    /// The files to read.
    pub fn files(&self) -> Vec<PathBuf> {
        runtime_config_files(&self.file)
    }
}

/// The overrides in force and whether a runtime configuration file is configured (for
/// `/runtime_config`).
#[derive(Clone)]
pub struct RuntimeState {
    /// Every tenant's limits.
    pub overrides: Overrides,
    /// Whether `runtime_config.file` names a file.
    pub configured: bool,
}

/// Loads the runtime configuration (an error when it does not load) and starts the reload
/// task, which ends on `shutdown`. Without a file every tenant has `limits`.
pub fn start(
    config: &RuntimeConfigConfig,
    limits: &Limits,
    registry: &prometheus::Registry,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<RuntimeState> {
    let overrides = Overrides::new(limits.clone());
    let files = config.files();
    if files.is_empty() {
        return Ok(RuntimeState { overrides, configured: false });
    }
    let opts = prometheus::Opts::new(
        "loki_runtime_config_last_reload_successful",
        "Whether the last runtime-config reload attempt was successful.",
    )
    .const_label("config", "loki");
    let gauge = prometheus::IntGauge::with_opts(opts)?;
    registry.register(Box::new(gauge.clone()))?;
    let hash_opts = prometheus::Opts::new(
        "loki_runtime_config_hash",
        "Hash of the currently active runtime configuration, merged from all configured files.",
    )
    .const_label("config", "loki");
    let hash = prometheus::IntGaugeVec::new(hash_opts, &["sha256"])?;
    registry.register(Box::new(hash.clone()))?;
    let loaded = load_runtime_config(&files, limits)
        .map_err(|e| anyhow::anyhow!("failed to load runtime config: {e}"))?;
    tracing::info!(tenants = loaded.len(), "runtime config loaded");
    overrides.replace(loaded);
    gauge.set(1);
    set_hash(&hash, &files);
    let period = if config.period.is_zero() { Duration::from_secs(10) } else { config.period };
    let gauges = Gauges { last_reload: gauge, hash };
    tokio::spawn(reload_loop(files, period, overrides.clone(), gauges, shutdown));
    Ok(RuntimeState { overrides, configured: true })
}

/// The SHA-256 (hex) of the runtime configuration in force: of the file's bytes when there is
/// one file (what `sha256sum` prints); with several, of each file's name and digest in order
/// (dskit's combined hash). Loki hashes its own re-serialisation of the merged YAML, which
/// no other program reproduces byte for byte; what the value is for is the same: equal on
/// every process that loaded the same files, different once they differ. `None` when a file
/// cannot be read.
pub fn config_hash(files: &[PathBuf]) -> Option<String> {
    use sha2::{Digest, Sha256};
    let digests: Vec<(String, [u8; 32])> = files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).ok()?;
            Some((f.display().to_string(), Sha256::digest(&bytes).into()))
        })
        .collect::<Option<_>>()?;
    let out: [u8; 32] = match digests.as_slice() {
        [(_, one)] => *one,
        several => {
            let mut h = Sha256::new();
            for (name, digest) in several {
                h.update((name.len() as u64).to_be_bytes());
                h.update(name.as_bytes());
                h.update(digest);
            }
            h.finalize().into()
        }
    };
    Some(out.iter().map(|b| format!("{b:02x}")).collect())
}

/// `loki_runtime_config_hash{sha256="<hash>"} 1`, the only series (dskit resets the vector).
fn set_hash(gauge: &prometheus::IntGaugeVec, files: &[PathBuf]) {
    if let Some(h) = config_hash(files) {
        if gauge.get_metric_with_label_values(&[&h]).map(|g| g.get()).unwrap_or(0) != 1 {
            gauge.reset();
            gauge.with_label_values(&[&h]).set(1);
        }
    }
}

/// The runtime configuration's gauges.
struct Gauges {
    /// `loki_runtime_config_last_reload_successful`.
    last_reload: prometheus::IntGauge,
    /// `loki_runtime_config_hash{sha256}`.
    hash: prometheus::IntGaugeVec,
}

/// Reads the files every `period` and swaps the overrides in when they load and changed.
async fn reload_loop(
    files: Vec<PathBuf>,
    period: Duration,
    overrides: Overrides,
    gauges: Gauges,
    mut shutdown: watch::Receiver<bool>,
) {
    let gauge = &gauges.last_reload;
    let defaults = overrides.defaults();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        let (paths, defaults) = (files.clone(), defaults.clone());
        let loaded =
            tokio::task::spawn_blocking(move || load_runtime_config(&paths, &defaults)).await;
        match loaded {
            Ok(Ok(new)) => {
                gauge.set(1);
                set_hash(&gauges.hash, &files);
                let current = overrides.tenants();
                let same = current.len() == new.len()
                    && new.iter().all(|(t, l)| current.get(t).is_some_and(|c| **c == *l));
                if !same {
                    tracing::info!(tenants = new.len(), "runtime config reloaded");
                    overrides.replace(new);
                }
            }
            Ok(Err(err)) => {
                gauge.set(0);
                tracing::warn!(err = %err, "failed to load config");
            }
            Err(err) => {
                gauge.set(0);
                tracing::warn!(err = %err, "failed to load config");
            }
        }
    }
}

/// `GET /runtime_config`: the overrides in force as YAML, `overrides:` with each overridden
/// tenant's whole limits; `?mode=diff`, only the keys that differ from `limits_config`.
/// Without a runtime configuration file, Loki 2.x's text `runtime config file doesn't exist`.
pub async fn handler(State(state): State<HttpState>, RawQuery(query): RawQuery) -> Response {
    let runtime = &state.runtime;
    if !runtime.configured {
        return text(StatusCode::OK, "runtime config file doesn't exist".to_string());
    }
    let diff = query
        .as_deref()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "mode" && v == "diff"))
        .unwrap_or(false);
    let defaults = runtime.overrides.defaults();
    let tenants = runtime.overrides.tenants();
    let mut overrides: BTreeMap<&str, Value> = BTreeMap::new();
    for (tenant, limits) in tenants.iter() {
        let v = if diff {
            let d = diff_from_defaults(limits, &defaults);
            if d.is_empty() {
                continue;
            }
            Value::Mapping(d)
        } else {
            serde_yaml::to_value(&**limits).unwrap_or(Value::Null)
        };
        overrides.insert(tenant, v);
    }
    #[derive(Serialize)]
    struct Out<'a> {
        overrides: BTreeMap<&'a str, Value>,
    }
    match serde_yaml::to_string(&Out { overrides }) {
        Ok(body) => text(StatusCode::OK, body),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /config/tenant/v1/limits` (Loki 3's per-tenant view): the request tenant's published
/// limits (Loki's default allow-list, as `/loki/api/v1/drilldown-limits` has them) as YAML.
pub async fn tenant_limits(
    State(state): State<HttpState>,
    axum::Extension(tenant): axum::Extension<skald_common::tenant::TenantId>,
) -> Response {
    let limits = skald_querier::published_limits(&state.runtime.overrides.tenant(&tenant.0));
    match serde_yaml::to_string(&limits) {
        Ok(body) => text(StatusCode::OK, body),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn text(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_takes_loki_keys_and_defaults() {
        let c: RuntimeConfigConfig =
            serde_yaml::from_str("file: /etc/a.yaml,/etc/b.yaml\nperiod: 2s\n").unwrap();
        assert_eq!(c.period, Duration::from_secs(2));
        assert_eq!(c.files(), vec![PathBuf::from("/etc/a.yaml"), PathBuf::from("/etc/b.yaml")]);
        let d = RuntimeConfigConfig::default();
        assert_eq!(d.period, Duration::from_secs(10));
        assert!(d.files().is_empty());
        assert!(serde_yaml::from_str::<RuntimeConfigConfig>("files: x\n").is_err());
        // Loki's /config order and defaults
        assert_eq!(
            serde_yaml::to_string(&d).unwrap(),
            "period: 10s\nfile: ''\nhttp_client_timeout: 30s\n"
        );
    }

    #[tokio::test]
    async fn a_bad_file_keeps_the_last_good_overrides() {
        let dir = std::env::temp_dir().join(format!("skald-runtime-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("runtime.yaml");
        std::fs::write(&file, "overrides:\n  small:\n    max_line_size: 100\n").unwrap();
        let config = RuntimeConfigConfig {
            period: Duration::from_millis(50),
            file: file.display().to_string(),
            ..RuntimeConfigConfig::default()
        };
        let registry = prometheus::Registry::new();
        let (tx, rx) = watch::channel(false);
        let state = start(&config, &Limits::default(), &registry, rx).unwrap();
        assert_eq!(state.overrides.tenant("small").max_line_size, 100);
        let gauge = || {
            let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).unwrap();
            text.lines()
                .find(|l| l.starts_with("loki_runtime_config_last_reload_successful{"))
                .map(|l| l.ends_with(" 1"))
        };
        assert_eq!(gauge(), Some(true));
        std::fs::write(&file, "overrides:\n  small:\n    max_line_sise: 5\n").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(state.overrides.tenant("small").max_line_size, 100);
        assert_eq!(gauge(), Some(false));
        std::fs::write(&file, "overrides:\n  small:\n    max_line_size: 5\n").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(state.overrides.tenant("small").max_line_size, 5);
        assert_eq!(gauge(), Some(true));
        let _ = tx.send(true);
        // a missing file stops the start
        let missing = RuntimeConfigConfig {
            file: dir.join("missing.yaml").display().to_string(),
            ..RuntimeConfigConfig::default()
        };
        let (_tx, rx) = watch::channel(false);
        let err = start(&missing, &Limits::default(), &prometheus::Registry::new(), rx)
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("failed to load runtime config: read \""), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
