//! The Logs Drilldown discovery endpoints: `/loki/api/v1/detected_labels`,
//! `/detected_fields`, `/detected_field/<name>/values`, `/patterns` and `/drilldown-limits`.
//! The logic lives in `detected.rs`, `patterns.rs` (with `drain.rs`) and `drilldown.rs`.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use std::sync::Arc;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use skald_logql::engine::{EngineError, Source};

use crate::error::QuerierError;
use crate::http::{reply, CancelOnDrop, LokiRequest, TenantId};
use crate::multitenant::{self, MultiTenantSource};
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

async fn detected_labels(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.detected_labels(&r.tenant, &r.params).await)
}

async fn detected_fields(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.detected_fields(&r.tenant, &r.params).await)
}

async fn detected_field_values(
    State(q): State<Arc<Querier>>,
    Path(name): Path<String>,
    r: LokiRequest,
) -> Response {
    reply(q.detected_field_values(&r.tenant, &name, &r.params).await)
}

async fn patterns(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.patterns(&r.tenant, &r.params).await)
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

impl Querier {
    /// Runs `f` on a blocking thread with the query source of `tenant` (index, chunks and
    /// ingesters; one source per tenant, read as one, for `a|b`) and its cancel flag, within
    /// the querier's concurrency limit and the query timeout; the source stops reading when the
    /// request goes away or the time is up.
    pub(crate) async fn on_source<T: Send + 'static>(
        self: &Arc<Self>,
        tenant: &str,
        f: impl FnOnce(&dyn Source, &AtomicBool) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, QuerierError> {
        let _permit = self
            .concurrency
            .acquire()
            .await
            .map_err(|_| QuerierError::Unavailable("querier is shutting down".into()))?;
        let mut guard = CancelOnDrop { flag: Arc::new(AtomicBool::new(false)), finished: false };
        let store = |t: &str| StoreSource {
            querier: self.clone(),
            tenant: t.to_string(),
            handle: tokio::runtime::Handle::current(),
            cancel: guard.flag.clone(),
            chunks_seen: Default::default(),
        };
        let ids = multitenant::tenants(tenant);
        let source: Box<dyn Source> = if ids.len() > 1 {
            Box::new(MultiTenantSource { sources: ids.iter().map(|t| store(t)).collect() })
        } else {
            Box::new(store(tenant))
        };
        let cancel = guard.flag.clone();
        let task = tokio::task::spawn_blocking(move || f(source.as_ref(), &cancel));
        let timeout = self.limits.query_timeout;
        let timeout = if timeout.is_zero() { Duration::from_secs(60) } else { timeout };
        let result = tokio::time::timeout(timeout, task).await;
        guard.finished = true;
        match result {
            Err(_) => Err(QuerierError::Timeout),
            Ok(Err(e)) => Err(QuerierError::Internal(format!("query task failed: {e}"))),
            Ok(Ok(Err(e))) => {
                Err(QuerierError::Status { status: e.status_code(), message: e.to_string() })
            }
            Ok(Ok(Ok(v))) => Ok(v),
        }
    }
}
