//! What every route shares: reading a request ([`LokiRequest`]: tenant, parameters,
//! headers), and writing Loki's answers (JSON with Loki's content types, plain-text errors with
//! the status of a [`QuerierError`]).

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use skald_common::tenant::TenantId;
use skald_loghttp::params::Params;

use crate::error::QuerierError;

pub(crate) const JSON_UPPER: &str = "application/json; charset=UTF-8";
pub(crate) const JSON_LOWER: &str = "application/json; charset=utf-8";

/// Writes a plain-text error the way Loki's `WriteError` does.
pub fn error_response(err: &QuerierError) -> Response {
    let status =
        StatusCode::from_u16(err.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, err.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

pub(crate) fn json_response(v: &Value, content_type: &'static str) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub(crate) fn reply(r: Result<Value, QuerierError>) -> Response {
    match r {
        Ok(v) => json_response(&v, JSON_UPPER),
        Err(e) => error_response(&e),
    }
}

/// A JSON body written already (a query answer, marshalled on the query's blocking thread).
pub(crate) fn reply_body(r: Result<Vec<u8>, QuerierError>) -> Response {
    match r {
        Ok(body) => {
            let mut resp = (StatusCode::OK, body).into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UPPER));
            resp
        }
        Err(e) => error_response(&e),
    }
}

/// Collects query-string and form-body parameters.
pub(crate) fn collect_params(
    method: &Method,
    headers: &HeaderMap,
    query: Option<String>,
    body: &Bytes,
) -> Params {
    let mut p = Params::default();
    if let Some(q) = query {
        p.extend_from_urlencoded(q.as_bytes());
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if *method == Method::POST && (is_form || !body.is_empty()) {
        p.extend_from_urlencoded(body);
    }
    p
}

/// What a query endpoint reads from a request: the tenant (put there by the server's tenant
/// layer), the parameters (query string, plus the form body of a POST) and the headers.
pub(crate) struct LokiRequest {
    pub(crate) tenant: String,
    pub(crate) params: Params,
    pub(crate) headers: HeaderMap,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for LokiRequest {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let Some(tenant) = req.extensions().get::<TenantId>().map(|t| t.0.clone()) else {
            return Err(error_response(&QuerierError::Internal("no tenant on the request".into())));
        };
        let method = req.method().clone();
        let headers = req.headers().clone();
        let query = req.uri().query().map(str::to_string);
        let body = Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        let params = collect_params(&method, &headers, query, &body);
        Ok(LokiRequest { tenant, params, headers })
    }
}

pub(crate) fn categorize(headers: &HeaderMap) -> bool {
    headers
        .get_all("X-Loki-Response-Encoding-Flags")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|f| f.trim() == "categorize-labels")
}
