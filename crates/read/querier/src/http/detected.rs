//! The Logs Drilldown discovery endpoints: `/loki/api/v1/detected_labels`,
//! `/detected_fields`, `/detected_field/<name>/values` and `/drilldown-limits` (the logic is in
//! `crate::detected` and `crate::drilldown`; `/patterns` is in `patterns.rs`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use skald_common::tenant::TenantId;

use super::reply::{reply, LokiRequest};
use crate::Querier;

pub(super) async fn detected_labels(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.detected_labels(&r.tenant, &r.params).await)
}

pub(super) async fn detected_fields(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.detected_fields(&r.tenant, &r.params).await)
}

pub(super) async fn detected_field_values(
    State(q): State<Arc<Querier>>,
    Path(name): Path<String>,
    r: LokiRequest,
) -> Response {
    reply(q.detected_field_values(&r.tenant, &name, &r.params).await)
}

/// Loki answers with Go's `json.Encoder` (a trailing newline) and `application/json`.
pub(super) async fn drilldown_limits(
    State(q): State<Arc<Querier>>,
    Extension(tenant): Extension<TenantId>,
) -> Response {
    let mut body = q.drilldown_limits(&tenant.0).to_string();
    body.push('\n');
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
