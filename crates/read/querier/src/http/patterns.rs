//! `/loki/api/v1/patterns` (the mining is in `crate::patterns` and `crate::drain`).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::reply::{reply, LokiRequest};
use crate::Querier;

pub(super) async fn patterns(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.patterns(&r.tenant, &r.params).await)
}
