//! `POST /otlp/v1/logs` (tenant routes): 200 with an empty `ExportLogsServiceResponse` in the
//! request's encoding; errors as a `google.rpc.Status` in that encoding, with Loki's statuses
//! (400, 413, 429; 500 answered as 503).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use skald_common::tenant::TenantId;

use super::header_str;
use crate::{otlp, Distributor};

pub(super) async fn otlp_logs(
    Extension(distributor): Extension<Arc<Distributor>>,
    Extension(tenant): Extension<TenantId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = header_str(&headers, header::CONTENT_TYPE);
    let ce = header_str(&headers, header::CONTENT_ENCODING);
    let format = otlp::OtlpFormat::from_content_type(ct);
    let (status, body) = match distributor.push_otlp(&tenant.0, body, ct, ce).await {
        Ok(_) => (StatusCode::OK, otlp::success_body(format)),
        Err(e) => {
            let status = otlp::error_status(&e);
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                otlp::error_body(format, status, &e.to_string()),
            )
        }
    };
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    r
}
