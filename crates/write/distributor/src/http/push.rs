//! Loki's push: `POST /loki/api/v1/push` and its legacy alias `POST /api/prom/push`. 204 on
//! success; otherwise [`crate::PushError::status_code`] with the error's text as a
//! `text/plain` body, as Loki answers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use skald_common::tenant::TenantId;

use super::{header_str, text};
use crate::Distributor;

pub(super) async fn push(
    Extension(distributor): Extension<Arc<Distributor>>,
    Extension(tenant): Extension<TenantId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = header_str(&headers, header::CONTENT_TYPE);
    let ce = header_str(&headers, header::CONTENT_ENCODING);
    match distributor.push(&tenant.0, body, ct, ce).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            text(status, e.to_string())
        }
    }
}
