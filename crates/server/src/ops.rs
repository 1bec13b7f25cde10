//! Operations endpoints Loki serves on every target: `/config` (`?mode=diffs|defaults`),
//! `/services`, `/log_level` and `/loki/api/v1/status/buildinfo`'s neighbours.
//!
//! - `/config` writes the effective configuration as YAML (`text/plain; charset=utf-8`, as
//!   Loki does so that browsers show it); `mode=defaults` writes the defaults, `mode=diffs`
//!   only the keys whose values differ from the defaults.
//!   Secrets show as `********` and URL passwords as `xxxxx`, as in Loki (`crate::secret`).
//! - `/services` lists the services this process runs and their state, one `name => State`
//!   line each.
//! - `/log_level`: `GET` says the current level; `POST`/`PUT` with `log_level=<level>` (query
//!   string or form body) changes it at run time. Levels: `debug`, `info`, `warn`, `error`
//!   (and `trace`). Answers are JSON `{"status": .., "message": ..}`.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_yaml::{Mapping, Value};
use tracing_subscriber::reload;
use tracing_subscriber::EnvFilter;

use crate::http::HttpState;

type LevelHandle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

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

/// `/config`.
pub async fn config(State(state): State<HttpState>, RawQuery(query): RawQuery) -> Response {
    // typed secrets serialize masked; the raw blocks (`ruler`, ...) are masked here
    let mut actual = serde_yaml::to_value(&*state.config).unwrap_or(Value::Null);
    crate::secret::redact_value(&mut actual);
    let mut defaults =
        serde_yaml::to_value(crate::config::Config::default()).unwrap_or(Value::Null);
    crate::secret::redact_value(&mut defaults);
    match query_param(&query, "mode").as_deref() {
        Some("defaults") => yaml_response(&defaults),
        Some("diffs") => {
            yaml_response(&diff(&defaults, &actual).unwrap_or(Value::Mapping(Mapping::new())))
        }
        Some("") | None => yaml_response(&actual),
        Some(other) => {
            (StatusCode::BAD_REQUEST, format!("unknown mode `{other}`: want `diffs` or `defaults`"))
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
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

/// `/log_level`.
pub async fn log_level(method: Method, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let Some((handle, current)) = LOG_LEVEL.get() else {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "error", "message": "the log level cannot be changed in this process"}),
        );
    };
    if method == Method::GET {
        let level = current.lock().clone();
        return json(
            StatusCode::OK,
            serde_json::json!({"status": "success", "message": format!("Current log level is {level}")}),
        );
    }
    let from_body = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "log_level")
        .map(|(_, v)| v.into_owned());
    let Some(level) = query_param(&query, "log_level").or(from_body) else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"status": "error", "message": "missing log_level parameter"}),
        );
    };
    let level = level.trim().to_ascii_lowercase();
    if !LEVELS.contains(&level.as_str()) {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"status": "error", "message": format!("invalid log level `{level}`: want one of {}", LEVELS.join(", "))}),
        );
    }
    if let Err(e) = handle.reload(EnvFilter::new(&level)) {
        return json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"status": "error", "message": e.to_string()}),
        );
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
