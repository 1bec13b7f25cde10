//! The querier's HTTP edge: Loki's query API as axum routes, a thin layer over the domain
//! modules (`query`, `labels`, `volume`, `detected`, `patterns`, `drilldown`, `tail`), which
//! take parameters and return results without knowing about HTTP.
//!
//! One file per group of routes; `reply` holds what they share (reading a request, writing
//! Loki's JSON and plain-text errors).

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::Querier;

mod deletes;
mod detected;
mod labels;
mod patterns;
mod query;
mod reply;
mod stats;
mod tail;

pub use reply::error_response;

/// The router for every query endpoint. Expects a [`TenantId`] extension on each request
/// (the server's tenant layer puts it there).
///
/// [`TenantId`]: skald_common::tenant::TenantId
pub fn router(querier: Arc<Querier>) -> Router {
    query_routes(querier.clone()).merge(tail_routes(querier))
}

/// Every route of [`router`] but the live tail: what a query-frontend sends to a querier.
pub fn query_routes(querier: Arc<Querier>) -> Router {
    Router::new()
        // queries
        .route("/loki/api/v1/query_range", get(query::query_range).post(query::query_range))
        .route("/loki/api/v1/query", get(query::query_instant).post(query::query_instant))
        .route("/loki/api/v1/format_query", get(query::format_query).post(query::format_query))
        .route("/api/prom/query", get(query::legacy_query))
        // labels and series
        .route("/loki/api/v1/labels", get(labels::labels).post(labels::labels))
        .route("/loki/api/v1/label", get(labels::labels).post(labels::labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(labels::label_values).post(labels::label_values),
        )
        .route("/loki/api/v1/series", get(labels::series).post(labels::series))
        .route("/api/prom/label", get(labels::labels))
        .route("/api/prom/label/{name}/values", get(labels::label_values))
        .route("/api/prom/series", get(labels::series).post(labels::series))
        // index stats and volume
        .route("/loki/api/v1/index/stats", get(stats::index_stats).post(stats::index_stats))
        .route("/loki/api/v1/index/volume", get(stats::volume).post(stats::volume))
        .route(
            "/loki/api/v1/index/volume_range",
            get(stats::volume_range).post(stats::volume_range),
        )
        // Logs Drilldown discovery
        .route(
            "/loki/api/v1/detected_labels",
            get(detected::detected_labels).post(detected::detected_labels),
        )
        .route(
            "/loki/api/v1/detected_fields",
            get(detected::detected_fields).post(detected::detected_fields),
        )
        .route(
            "/loki/api/v1/detected_field/{name}/values",
            get(detected::detected_field_values).post(detected::detected_field_values),
        )
        .route("/loki/api/v1/patterns", get(patterns::patterns).post(patterns::patterns))
        .route("/loki/api/v1/drilldown-limits", get(detected::drilldown_limits))
        .with_state(querier)
}

/// Loki's delete API (`/loki/api/v1/delete`) and Skald's `POST /compactor/process_deletes`,
/// which act for one tenant, over `service` (the compactor's, or the querier's when no
/// compactor runs in the process). A tenant whose `deletion_mode` is `disabled` gets Loki's 403.
pub fn delete_routes(service: Arc<skald_deletes::DeleteService>) -> Router {
    Router::new()
        .route(
            "/loki/api/v1/delete",
            post(deletes::create).put(deletes::create).get(deletes::list).delete(deletes::cancel),
        )
        .route("/compactor/process_deletes", post(deletes::process))
        .with_state(service)
}

/// The live tail's routes (WebSocket), which go to a querier directly, never through a
/// query-frontend.
pub fn tail_routes(querier: Arc<Querier>) -> Router {
    Router::new()
        .route("/loki/api/v1/tail", get(tail::tail_v1))
        .route("/api/prom/tail", get(tail::tail_legacy))
        .with_state(querier)
}
