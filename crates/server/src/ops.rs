//! Operations endpoints Loki serves on every target: `/config` (`?mode=diff|defaults`),
//! `/services`, `/log_level`, `/memberlist`, and the start-up dumps of the config
//! (`-print-config-stderr`, `-log-config-reverse-order`).
//!
//! - `/config` writes the effective configuration as YAML (`text/plain; charset=utf-8`, as
//!   Loki does so that browsers show it); `mode=defaults` writes the defaults, `mode=diff`
//!   (Loki's name; `diffs` is kept) only the keys whose values differ from the defaults.
//!   Secrets show as `********` and URL passwords as `xxxxx`, as in Loki (`crate::secret`).
//! - `/services` lists the services this process runs and their state, one `name => State`
//!   line each.
//! - `/log_level`: `GET` says the current level; `POST`/`PUT` with `log_level=<level>` (query
//!   string or form body) changes it at run time. Levels: `debug`, `info`, `warn`, `error`
//!   (and `trace`). Answers are JSON, as Loki's (see [`log_level`]).
//! - `/memberlist`: the gossip members (`memberlist` block), as an HTML page or, with
//!   `Accept: application/json`, JSON (`crate::ops_memberlist`).

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_yaml::{Mapping, Value};
use tracing_subscriber::EnvFilter;

use crate::http::HttpState;
use crate::logging::LevelHandle;

/// The log filter's reload handle and the level it was last set to.
static LOG_LEVEL: OnceLock<(LevelHandle, Mutex<String>)> = OnceLock::new();

/// Registers the process's log filter so that `/log_level` can change it.
pub fn set_log_handle(handle: LevelHandle, level: &str) {
    let _ = LOG_LEVEL.set((handle, Mutex::new(level.to_string())));
}

fn yaml_response(v: &impl serde::Serialize) -> Response {
    match serde_yaml::to_string(v) {
        Ok(text) => {
            let mut r = (StatusCode::OK, text).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn query_param(query: &Option<String>, name: &str) -> Option<String> {
    let q = query.as_deref()?;
    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The config as `/config` shows it: typed secrets serialize masked; the raw blocks
/// (`ruler`, ...) are masked here.
fn redacted(config: &crate::config::Config) -> Value {
    let mut v = serde_yaml::to_value(config).unwrap_or(Value::Null);
    crate::secret::redact_value(&mut v);
    v
}

/// `-print-config-stderr`: the effective config as YAML under Loki's header lines
/// (`---`, `# ... Config`, the version).
pub fn print_config(config: &crate::config::Config) -> String {
    let yaml = serde_yaml::to_string(&redacted(config)).unwrap_or_default();
    format!("---\n# Skald Config\n# {}\n{yaml}\n\n", version_info())
}

/// `(version=..., branch=..., revision=...)`, as Loki's `version.Info()` says it.
pub fn version_info() -> String {
    format!(
        "(version={}, branch={}, revision={})",
        env!("CARGO_PKG_VERSION"),
        option_env!("SKALD_GIT_BRANCH").unwrap_or("unknown"),
        option_env!("SKALD_GIT_REVISION").unwrap_or("unknown")
    )
}

/// `-log-config-reverse-order`: one info line per line of the YAML config, last first, so
/// that a log view showing the newest line on top reads it top to bottom (as Loki does).
pub fn log_config_reverse_order(config: &crate::config::Config) {
    let yaml = serde_yaml::to_string(&redacted(config)).unwrap_or_default();
    for line in yaml.split('\n').rev() {
        tracing::info!("type" = "config", "{line}");
    }
}

/// `/config`.
pub async fn config(State(state): State<HttpState>, RawQuery(query): RawQuery) -> Response {
    let actual = redacted(&state.config);
    let mut defaults =
        serde_yaml::to_value(crate::config::Config::default()).unwrap_or(Value::Null);
    crate::secret::redact_value(&mut defaults);
    match query_param(&query, "mode").as_deref() {
        Some("defaults") => yaml_response(&defaults),
        Some("diff" | "diffs") => {
            yaml_response(&diff(&defaults, &actual).unwrap_or(Value::Mapping(Mapping::new())))
        }
        Some("") | None => yaml_response(&actual),
        Some(other) => {
            (StatusCode::BAD_REQUEST, format!("unknown mode `{other}`: want `diff` or `defaults`"))
                .into_response()
        }
    }
}

/// What `actual` sets differently from `defaults`: mappings recursively, anything else whole.
/// `None` when they are equal.
fn diff(defaults: &Value, actual: &Value) -> Option<Value> {
    match (defaults, actual) {
        (Value::Mapping(d), Value::Mapping(a)) => {
            let mut out = Mapping::new();
            for (k, av) in a {
                let changed = match d.get(k) {
                    Some(dv) => diff(dv, av),
                    None => Some(av.clone()),
                };
                if let Some(v) = changed {
                    out.insert(k.clone(), v);
                }
            }
            (!out.is_empty()).then_some(Value::Mapping(out))
        }
        (d, a) if d == a => None,
        (_, a) => Some(a.clone()),
    }
}

/// `/services`.
pub async fn services(State(state): State<HttpState>) -> Response {
    let mut text = String::new();
    for name in state.services.iter() {
        text.push_str(&format!("{name} => Running\n"));
    }
    let mut r = (StatusCode::OK, text).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn json(status: StatusCode, v: serde_json::Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    r
}

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

fn failed(status: StatusCode, message: String) -> Response {
    json(status, serde_json::json!({"status": "failed", "message": message}))
}

/// `/log_level`, with Loki's answers: GET `{"message": "Current log level is info"}`; a change
/// `{"status": "success", "message": "Log level set to debug"}`; a level it does not know a
/// 400 `{"status": "failed", "message": "unrecognized log level \"loud\""}`.
pub async fn log_level(method: Method, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let Some((handle, current)) = LOG_LEVEL.get() else {
        return failed(
            StatusCode::SERVICE_UNAVAILABLE,
            "the log level cannot be changed in this process".into(),
        );
    };
    if method == Method::GET {
        let level = current.lock().clone();
        return json(
            StatusCode::OK,
            serde_json::json!({"message": format!("Current log level is {level}")}),
        );
    }
    let from_body = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "log_level")
        .map(|(_, v)| v.into_owned());
    let given = query_param(&query, "log_level").or(from_body).unwrap_or_default();
    let level = given.trim().to_ascii_lowercase();
    if !LEVELS.contains(&level.as_str()) {
        return failed(StatusCode::BAD_REQUEST, format!("unrecognized log level {given:?}"));
    }
    if let Err(e) = handle.reload(EnvFilter::new(&level)) {
        return failed(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    *current.lock() = level.clone();
    tracing::warn!(level, "log level changed through /log_level");
    json(
        StatusCode::OK,
        serde_json::json!({"status": "success", "message": format!("Log level set to {level}")}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_keep_only_changed_keys() {
        let d: Value =
            serde_yaml::from_str("a: 1\nb:\n  c: 2\n  d: 3\ne: [1]\n").unwrap_or(Value::Null);
        let a: Value =
            serde_yaml::from_str("a: 1\nb:\n  c: 2\n  d: 4\ne: [1, 2]\n").unwrap_or(Value::Null);
        let want: Value = serde_yaml::from_str("b:\n  d: 4\ne: [1, 2]\n").unwrap_or(Value::Null);
        assert_eq!(diff(&d, &a), Some(want));
        assert_eq!(diff(&d, &d), None);
    }
}
