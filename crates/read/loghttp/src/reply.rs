//! What every route of Loki's query API shares, whatever service serves it: reading a
//! request ([`LokiRequest`]: tenant, parameters, headers), and writing Loki's answers (JSON
//! with Loki's content types, plain-text errors with their status).

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use skald_common::tenant::TenantId;

use crate::params::Params;

/// The content type of Loki's JSON answers.
pub const JSON_UPPER: &str = "application/json; charset=UTF-8";
/// The content type of `format_query`'s answer.
pub const JSON_LOWER: &str = "application/json; charset=utf-8";

/// Writes a plain-text error the way Loki's `WriteError` does: `status` (500 when it is not
/// a valid status code) and `message` as the body.
pub fn error_response(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, message.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// A 200 with `v` as JSON, under `content_type`.
pub fn json_response(v: &Value, content_type: &'static str) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A 200 with a JSON body written already (a query answer, marshalled on the query's
/// blocking thread), under [`JSON_UPPER`].
pub fn json_body_response(body: Vec<u8>) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UPPER));
    resp
}

/// Collects query-string and form-body parameters.
pub fn collect_params(
    method: &Method,
    headers: &HeaderMap,
    query: Option<String>,
    body: &Bytes,
) -> Params {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    params_of(method == Method::POST, content_type, query.as_deref(), body)
}

/// [`collect_params`] from the parts of a request: the query string, then the body of a
/// `POST` (`post`) that is a form or not empty.
pub fn params_of(
    post: bool,
    content_type: Option<&str>,
    query: Option<&str>,
    body: &[u8],
) -> Params {
    let mut p = Params::default();
    if let Some(q) = query {
        p.extend_from_urlencoded(q.as_bytes());
    }
    let is_form = content_type.is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if post && (is_form || !body.is_empty()) {
        p.extend_from_urlencoded(body);
    }
    p
}

/// What a query endpoint reads from a request: the tenant (put there by the server's tenant
/// layer), the parameters (query string, plus the form body of a POST) and the headers.
pub struct LokiRequest {
    /// The tenant, from the request's [`TenantId`] extension.
    pub tenant: String,
    /// Query-string and form-body parameters.
    pub params: Params,
    /// The request's headers.
    pub headers: HeaderMap,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for LokiRequest {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let Some(tenant) = req.extensions().get::<TenantId>().map(|t| t.0.clone()) else {
            return Err(error_response(500, "no tenant on the request"));
        };
        let method = req.method().clone();
        let headers = req.headers().clone();
        let query = req.uri().query().map(str::to_string);
        let body = Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        let params = collect_params(&method, &headers, query, &body);
        Ok(LokiRequest { tenant, params, headers })
    }
}

/// Whether the request asks for `categorize-labels` (`X-Loki-Response-Encoding-Flags`).
pub fn categorize(headers: &HeaderMap) -> bool {
    categorize_flags(
        headers.get_all("X-Loki-Response-Encoding-Flags").iter().filter_map(|v| v.to_str().ok()),
    )
}

/// [`categorize`] from the values of the `X-Loki-Response-Encoding-Flags` headers.
pub fn categorize_flags<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    values.into_iter().flat_map(|v| v.split(',')).any(|f| f.trim() == "categorize-labels")
}

/// `/loki/api/v1/format_query`: the query formatted as Loki prints what its parser accepts
/// (without building the pipeline), or the parser's error as a 400. Needs no querier: the
/// querier and the query-frontend both answer it here.
pub fn format_query(p: &Params) -> Response {
    match skald_logql::syntax::parse_expr_unchecked(p.get("query").unwrap_or("")) {
        Ok(expr) => json_response(
            &serde_json::json!({"status": "success", "data": expr.to_string()}),
            JSON_LOWER,
        ),
        Err(e) => error_response(400, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        h
    }

    #[test]
    fn params_come_from_the_query_string_then_a_post_body() {
        let body = Bytes::from_static(b"query=%7Ba%3D%22b%22%7D&limit=5");
        let q = Some("limit=7&step=60".to_string());
        let p = collect_params(&Method::POST, &form_headers(), q.clone(), &body);
        assert_eq!(p.get("query"), Some(r#"{a="b"}"#));
        assert_eq!(p.get_all("limit"), vec!["7", "5"]);
        assert_eq!(p.get("step"), Some("60"));
        // a GET's body is not read
        let p = collect_params(&Method::GET, &form_headers(), q, &body);
        assert_eq!(p.get("query"), None);
    }

    #[test]
    fn categorize_labels_is_one_of_the_flags() {
        let mut h = HeaderMap::new();
        assert!(!categorize(&h));
        h.insert(
            "X-Loki-Response-Encoding-Flags",
            HeaderValue::from_static("other, categorize-labels"),
        );
        assert!(categorize(&h));
    }

    #[test]
    fn errors_are_plain_text_with_their_status() {
        let r = error_response(429, "too many outstanding requests");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(error_response(1000, "x").status(), StatusCode::INTERNAL_SERVER_ERROR);
        let r = json_body_response(b"{}".to_vec());
        assert_eq!(
            r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some(JSON_UPPER)
        );
    }
}
