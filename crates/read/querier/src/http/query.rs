//! `/loki/api/v1/query_range`, `/loki/api/v1/query`, `/loki/api/v1/format_query` and the
//! legacy `/api/prom/query`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use skald_loghttp::part;

use super::reply::{categorize, collect_params, error_response, reply, reply_body, LokiRequest};
use crate::Querier;

/// `/api/prom/query`: Loki's deprecated log query, answered in the legacy shape
/// (`{"streams": [{"labels": "{..}", "entries": [{"ts", "line"}]}]}`). `regexp` adds a
/// `|~` filter.
pub(super) async fn legacy_query(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.legacy_query(&r.tenant, &r.params).await)
}

/// `/loki/api/v1/query_range`; a part request of the query-frontend (`skald_part_start`,
/// `skald_part_end` and `Accept: application/vnd.skald.query-part.v1+protobuf`) is answered
/// with the encoded part.
pub(super) async fn query_range(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    let categorize = categorize(&r.headers);
    let wants_part = r
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim() == part::PART_CONTENT_TYPE));
    if wants_part {
        let query_id = r.headers.get(part::QUERY_ID_HEADER).and_then(|v| v.to_str().ok());
        if let Some(answer) = q.query_range_part(&r.tenant, &r.params, categorize, query_id).await {
            return match answer {
                Ok(body) => {
                    let mut resp = (StatusCode::OK, body).into_response();
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(part::PART_CONTENT_TYPE),
                    );
                    resp
                }
                Err(e) => error_response(&e),
            };
        }
    }
    reply_body(q.query_range(&r.tenant, &r.params, categorize).await)
}

pub(super) async fn query_instant(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply_body(q.query_instant(&r.tenant, &r.params, categorize(&r.headers)).await)
}

pub(super) async fn format_query(
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    skald_loghttp::reply::format_query(&collect_params(&method, &headers, raw, &body))
}
