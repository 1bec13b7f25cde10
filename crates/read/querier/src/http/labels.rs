//! `/loki/api/v1/labels`, `/loki/api/v1/label/<name>/values`, `/loki/api/v1/series` and
//! their `/api/prom` aliases.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;

use super::reply::{reply, LokiRequest};
use crate::Querier;

pub(super) async fn labels(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.labels(&r.tenant, &r.params, None).await)
}

pub(super) async fn label_values(
    State(q): State<Arc<Querier>>,
    Path(name): Path<String>,
    r: LokiRequest,
) -> Response {
    reply(q.labels(&r.tenant, &r.params, Some(&name)).await)
}

pub(super) async fn series(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.series(&r.tenant, &r.params).await)
}
