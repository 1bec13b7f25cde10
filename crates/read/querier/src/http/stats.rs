//! `/loki/api/v1/index/stats`, `/loki/api/v1/index/volume` and
//! `/loki/api/v1/index/volume_range` (the counting is in `crate::volume`).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::reply::{reply, LokiRequest};
use crate::Querier;

pub(super) async fn index_stats(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.index_stats(&r.tenant, &r.params).await)
}

pub(super) async fn volume(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.volume(&r.tenant, &r.params, false).await)
}

pub(super) async fn volume_range(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.volume(&r.tenant, &r.params, true).await)
}
