//! One log line per failed HTTP request, and the request's span (`crate::tracing_otlp`).
//!
//! As Loki's HTTP middleware does, a request logs `<method> <uri> (<status>) <duration>`
//! with `orgID` (the tenant, when the request names one) and `traceID` (when its span is
//! exported) before `msg`, as Loki writes them. Loki says every request at `debug`, where the
//! default level hides even its failures; Skald says a 5xx at `warn` and a 4xx at `info`, so
//! that every failure shows once, and a success at `debug`, or at `info` with
//! `server.log_request_at_info_level_enabled`. After `msg` come `route` (the matched route),
//! `status` and `duration` (to the response's headers, Go's form), for queries on them.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// What the middleware needs from the config.
#[derive(Debug, Clone, Copy)]
pub struct RequestLog {
    /// Whether `X-Scope-OrgID` names the tenant (otherwise it is `fake`).
    pub auth_enabled: bool,
    /// `server.log_request_at_info_level_enabled`.
    pub successes_at_info: bool,
}

impl RequestLog {
    /// From the config.
    pub fn from_config(config: &crate::config::Config) -> RequestLog {
        RequestLog {
            auth_enabled: config.auth_enabled,
            successes_at_info: config.server.log_request_at_info_level_enabled,
        }
    }
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn observe(State(cfg): State<RequestLog>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let uri = req.uri().path_and_query().map_or_else(|| "/".to_string(), |p| p.to_string());
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |m| m.as_str().to_string());
    let org_id = if cfg.auth_enabled {
        req.headers()
            .get("X-Scope-OrgID")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    } else {
        "fake".to_string()
    };
    let span = crate::tracing_otlp::begin(req.headers());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let duration = skald_gocompat::duration::duration_string(
        i64::try_from(start.elapsed().as_nanos()).unwrap_or(i64::MAX),
    );
    let trace_id = span.as_ref().map(|s| s.trace_id_hex()).unwrap_or_default();
    let msg = format!("{method} {uri} ({status}) {duration}");
    // Loki's keys: `orgID` and `traceID` only when there is one
    macro_rules! line {
        ($level:ident) => {
            match (org_id.is_empty(), trace_id.is_empty()) {
                (true, true) => tracing::$level!(route, status, duration, "{msg}"),
                (false, true) => {
                    tracing::$level!(orgID = org_id.as_str(), route, status, duration, "{msg}")
                }
                (true, false) => {
                    tracing::$level!(traceID = trace_id.as_str(), route, status, duration, "{msg}")
                }
                (false, false) => tracing::$level!(
                    orgID = org_id.as_str(),
                    traceID = trace_id.as_str(),
                    route,
                    status,
                    duration,
                    "{msg}"
                ),
            }
        };
    }
    if status >= 500 {
        line!(warn);
    } else if status >= 400 || cfg.successes_at_info {
        line!(info);
    } else {
        line!(debug);
    }
    if let Some(s) = span {
        let f = crate::tracing_otlp::Finished {
            method: &method,
            route: &route,
            path: &path,
            status,
            org_id: &org_id,
        };
        crate::tracing_otlp::end(s, &f);
    }
    resp
}
