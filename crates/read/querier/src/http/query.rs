//! `/loki/api/v1/query_range`, `/loki/api/v1/query`, `/loki/api/v1/format_query` and the
//! legacy `/api/prom/query`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::json;
use skald_logql::syntax;

use super::reply::{
    categorize, collect_params, error_response, json_response, reply, reply_body, LokiRequest,
    JSON_LOWER,
};
use crate::error::QuerierError;
use crate::Querier;

/// `/api/prom/query`: Loki's deprecated log query, answered in the legacy shape
/// (`{"streams": [{"labels": "{..}", "entries": [{"ts", "line"}]}]}`). `regexp` adds a
/// `|~` filter.
pub(super) async fn legacy_query(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.legacy_query(&r.tenant, &r.params).await)
}

pub(super) async fn query_range(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply_body(q.query_range(&r.tenant, &r.params, categorize(&r.headers)).await)
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
    let p = collect_params(&method, &headers, raw, &body);
    // Loki formats what its parser accepts, without building the pipeline.
    match syntax::parse_expr_unchecked(p.get("query").unwrap_or("")) {
        Ok(expr) => {
            json_response(&json!({"status": "success", "data": expr.to_string()}), JSON_LOWER)
        }
        Err(e) => error_response(&QuerierError::BadRequest(e.to_string())),
    }
}
