//! The distributor's HTTP edge: thin handlers over [`Distributor`], mounted by the server.
//!
//! - [`tenant_routes`]: Loki's push (`push.rs`), OTLP/HTTP logs (`otlp.rs`) and, when
//!   `distributor.elasticsearch.enabled`, the Elasticsearch bulk API and objects
//!   (`elastic.rs`). Each request must carry a [`TenantId`] extension: the server's tenant
//!   layer resolves `X-Scope-OrgID` and puts it there (a push acts for exactly one tenant).
//! - [`public_routes`]: the Elasticsearch handshake (`GET /`, `/_license`, `/_xpack`,
//!   `/_cluster/health`), which clients call without a tenant.
//!
//! The body limit (`DefaultBodyLimit`) is the server's, set on the whole listener.
//!
//! [`TenantId`]: skald_common::tenant::TenantId

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};

use crate::elastic::objects::EsObjects;
use crate::Distributor;

mod elastic;
mod otlp;
mod push;

/// A `text/plain; charset=utf-8` answer.
fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut r = (status, body.into()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// A header's value, when it is there and visible ASCII.
fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The routes that act for a tenant (mount them behind the tenant layer): the push, OTLP and
/// the Elasticsearch bulk API and objects (kept in `objects`; without it, the object routes
/// answer 503).
pub fn tenant_routes(distributor: Arc<Distributor>, objects: Option<Arc<EsObjects>>) -> Router {
    Router::new()
        .route("/loki/api/v1/push", post(push::push))
        .route("/api/prom/push", post(push::push))
        .route("/otlp/v1/logs", post(otlp::otlp_logs))
        .merge(elastic::tenant_routes(&distributor, objects))
        .layer(Extension(distributor))
}

/// The routes that need no tenant: the Elasticsearch handshake. Empty when
/// `distributor.elasticsearch.enabled` is false.
pub fn public_routes(distributor: Arc<Distributor>) -> Router {
    elastic::public_routes(distributor)
}
