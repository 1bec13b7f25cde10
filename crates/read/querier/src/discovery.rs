//! The Logs Drilldown discovery endpoints: `/loki/api/v1/detected_labels`,
//! `/detected_fields`, `/detected_field/<name>/values`, `/patterns` and `/drilldown-limits`.
//! The logic lives in `detected.rs`, `patterns.rs` (with `drain.rs`) and `drilldown.rs`.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use skald_logql::engine::EngineError;

use crate::error::QuerierError;
use crate::http::{collect_params, reply, TenantId};
use crate::source::StoreSource;
use crate::Querier;

/// The router of the discovery endpoints. Expects a [`TenantId`] extension on each request.
pub fn router(querier: Arc<Querier>) -> Router {
    Router::new()
        .route("/loki/api/v1/detected_labels", get(detected_labels).post(detected_labels))
        .route("/loki/api/v1/detected_fields", get(detected_fields).post(detected_fields))
        .route(
            "/loki/api/v1/detected_field/{name}/values",
            get(detected_field_values).post(detected_field_values),
        )
        .route("/loki/api/v1/patterns", get(patterns).post(patterns))
        .route("/loki/api/v1/drilldown-limits", get(drilldown_limits))
        .with_state(querier)
}

async fn detected_labels(
    State(q): State<Arc<Querier>>,
    Extension(tenant): Extension<TenantId>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let p = collect_params(&method, &headers, raw, &body);
    reply(q.detected_labels(&tenant.0, &p).await)
}

async fn detected_fields(
    State(q): State<Arc<Querier>>,
    Extension(tenant): Extension<TenantId>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let p = collect_params(&method, &headers, raw, &body);
    reply(q.detected_fields(&tenant.0, &p).await)
}

async fn detected_field_values(
    State(q): State<Arc<Querier>>,
    Extension(tenant): Extension<TenantId>,
    Path(name): Path<String>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let p = collect_params(&method, &headers, raw, &body);
    reply(q.detected_field_values(&tenant.0, &name, &p).await)
}

async fn patterns(
    State(q): State<Arc<Querier>>,
    Extension(tenant): Extension<TenantId>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let p = collect_params(&method, &headers, raw, &body);
    reply(q.patterns(&tenant.0, &p).await)
}

/// Loki answers with Go's `json.Encoder` (a trailing newline) and `application/json`.
async fn drilldown_limits(
    State(q): State<Arc<Querier>>,
    Extension(_tenant): Extension<TenantId>,
) -> Response {
    let mut body = q.drilldown_limits().to_string();
    body.push('\n');
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Sets the flag when dropped (the request went away or timed out), so that the source stops
/// reading.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Querier {
    /// Runs `f` on a blocking thread with a [`StoreSource`] for `tenant` (index, chunks and
    /// ingesters), within the querier's concurrency limit and the query timeout; the source
    /// stops reading when the request goes away or the time is up.
    pub(crate) async fn on_store_source<T: Send + 'static>(
        self: &Arc<Self>,
        tenant: &str,
        f: impl FnOnce(&StoreSource) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, QuerierError> {
        let _permit = self
            .concurrency
            .acquire()
            .await
            .map_err(|_| QuerierError::Unavailable("querier is shutting down".into()))?;
        let cancel = Arc::new(AtomicBool::new(false));
        let _guard = CancelOnDrop(cancel.clone());
        let source = StoreSource {
            querier: self.clone(),
            tenant: tenant.to_string(),
            handle: tokio::runtime::Handle::current(),
            cancel,
        };
        let task = tokio::task::spawn_blocking(move || f(&source));
        let timeout = self.limits.query_timeout;
        let timeout = if timeout.is_zero() { Duration::from_secs(60) } else { timeout };
        match tokio::time::timeout(timeout, task).await {
            Err(_) => Err(QuerierError::Timeout),
            Ok(Err(e)) => Err(QuerierError::Internal(format!("query task failed: {e}"))),
            Ok(Ok(Err(e))) => {
                Err(QuerierError::Status { status: e.status_code(), message: e.to_string() })
            }
            Ok(Ok(Ok(v))) => Ok(v),
        }
    }
}
