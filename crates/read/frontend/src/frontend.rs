//! The query-frontend's HTTP edge: [`QueryFrontend`] (what sends requests on to the queriers,
//! the tenants' limits, its config) and its [`router`], which serves every route of the
//! querier's router but the live tail. Each request goes to a querier as it came
//! ([`HttpRequest`] through the [`RoundTrip`]) and the querier's answer comes back as it is
//! (status, headers, body); `query_range` is split ([`crate::query_range`]) and `format_query`
//! is answered here (it needs no querier).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use skald_common::limits::Limits;
use skald_common::overrides::Overrides;
use skald_common::tenant::TenantId;
use skald_loghttp::params::Params;

use crate::{HttpRequest, HttpResponse, RoundTrip};

/// The query path's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryFrontendConfig {
    /// The cap on the size of a split query's merged answer, as the querier's
    /// `querier.skald_max_query_response_size` caps a whole one (0 = no cap): the server
    /// passes the querier's value, so that a split query fails exactly when the whole would.
    pub max_response_size: u64,
    /// Loki's `query_range.parallelise_shardable_queries` (default true): whether shardable
    /// metric queries are divided into shards by stream (see `crate::query_range`); false
    /// never shards.
    pub parallelise_shardable_queries: bool,
}

impl Default for QueryFrontendConfig {
    fn default() -> Self {
        // the querier's default (`skald_querier::DEFAULT_MAX_QUERY_RESPONSE_SIZE`)
        QueryFrontendConfig { max_response_size: 100 << 20, parallelise_shardable_queries: true }
    }
}

impl QueryFrontendConfig {
    /// `max_response_size` in bytes (0 = no cap).
    pub fn max_response_bytes(&self) -> usize {
        usize::try_from(self.max_response_size).unwrap_or(usize::MAX)
    }
}

/// The query-frontend's query path: sends requests to the queriers through `next` (the
/// queue, possibly behind the results cache), splitting range queries within the tenants'
/// `limits`.
pub struct QueryFrontend {
    next: Arc<dyn RoundTrip>,
    overrides: Overrides,
    config: QueryFrontendConfig,
}

impl QueryFrontend {
    /// A frontend sending requests through `next`, with the tenants' limits the queriers use
    /// (`split_queries_by_interval`, `max_query_parallelism` and the query checks; a plain
    /// [`Limits`] applies to every tenant).
    pub fn new(
        next: Arc<dyn RoundTrip>,
        overrides: impl Into<Overrides>,
        config: QueryFrontendConfig,
    ) -> Self {
        QueryFrontend { next, overrides: overrides.into(), config }
    }

    /// `tenant`'s limits (for `a|b`, the query limits of all combined).
    pub(crate) fn limits(&self, tenant: &str) -> Arc<Limits> {
        self.overrides.tenant(tenant)
    }

    pub(crate) fn config(&self) -> &QueryFrontendConfig {
        &self.config
    }

    pub(crate) fn next(&self) -> Arc<dyn RoundTrip> {
        self.next.clone()
    }

    /// Sends `req` to a querier as it is and returns its answer; the frontend's own failure
    /// (a full queue, a canceled request, no querier) as a plain-text error with its status.
    pub async fn forward(&self, tenant: &str, req: HttpRequest) -> HttpResponse {
        match self.next.round_trip(tenant, req).await {
            Ok(resp) => resp,
            Err(e) => text_response(e.status_code(), &e.to_string()),
        }
    }
}

/// A plain-text error as Loki's `WriteError` writes it.
pub(crate) fn text_response(status: u16, message: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: Bytes::copy_from_slice(message.as_bytes()),
    }
}

/// The parameters of a request as the querier reads them (query string, then the form body
/// of a `POST`).
pub(crate) fn request_params(req: &HttpRequest) -> Params {
    let query = req.uri.split_once('?').map(|(_, q)| q);
    let post = req.method.eq_ignore_ascii_case("POST");
    skald_loghttp::reply::params_of(post, req.header("Content-Type"), query, &req.body)
}

/// The router of every query route of the querier but the live tail. Expects a
/// [`TenantId`] extension on each request (the server's tenant layer puts it there).
pub fn router(fe: Arc<QueryFrontend>) -> Router {
    let fwd = || get(forward).post(forward);
    Router::new()
        .route("/loki/api/v1/query_range", get(query_range).post(query_range))
        .route("/loki/api/v1/query", get(query_instant).post(query_instant))
        .route("/loki/api/v1/format_query", get(format_query).post(format_query))
        .route("/api/prom/query", get(forward))
        .route("/loki/api/v1/labels", fwd())
        .route("/loki/api/v1/label", fwd())
        .route("/loki/api/v1/label/{name}/values", fwd())
        .route("/loki/api/v1/series", fwd())
        .route("/api/prom/label", get(forward))
        .route("/api/prom/label/{name}/values", get(forward))
        .route("/api/prom/series", fwd())
        .route("/loki/api/v1/index/stats", fwd())
        .route("/loki/api/v1/index/volume", fwd())
        .route("/loki/api/v1/index/volume_range", fwd())
        .route("/loki/api/v1/detected_labels", fwd())
        .route("/loki/api/v1/detected_fields", fwd())
        .route("/loki/api/v1/detected_field/{name}/values", fwd())
        .route("/loki/api/v1/patterns", fwd())
        .route("/loki/api/v1/drilldown-limits", get(forward))
        .with_state(fe)
}

/// A request as it goes to a querier, and its tenant.
struct Forwarded {
    tenant: String,
    req: HttpRequest,
}

impl<S: Send + Sync> FromRequest<S> for Forwarded {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let Some(tenant) = req.extensions().get::<TenantId>().map(|t| t.0.clone()) else {
            return Err(skald_loghttp::reply::error_response(500, "no tenant on the request"));
        };
        let method = req.method().as_str().to_string();
        let uri = req.uri().path_and_query().map_or("/", |pq| pq.as_str()).to_string();
        let mut headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter(|(n, _)| n.as_str() != "x-scope-orgid")
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        // the tenant as the tenant layer resolved it
        headers.push(("X-Scope-OrgID".into(), tenant.clone()));
        let body = Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        Ok(Forwarded { tenant, req: HttpRequest { method, uri, headers, body } })
    }
}

/// An answer from a querier as the frontend's response.
fn into_response(resp: HttpResponse) -> Response {
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = (status, resp.body).into_response();
    let headers = out.headers_mut();
    headers.clear();
    for (n, v) in resp.headers {
        let hop = ["content-length", "transfer-encoding", "connection"];
        if hop.iter().any(|h| n.eq_ignore_ascii_case(h)) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(n), HeaderValue::try_from(v)) {
            headers.append(n, v);
        }
    }
    out
}

async fn forward(State(fe): State<Arc<QueryFrontend>>, f: Forwarded) -> Response {
    into_response(fe.forward(&f.tenant, f.req).await)
}

async fn query_range(State(fe): State<Arc<QueryFrontend>>, f: Forwarded) -> Response {
    into_response(fe.query_range(&f.tenant, f.req).await)
}

async fn query_instant(State(fe): State<Arc<QueryFrontend>>, f: Forwarded) -> Response {
    into_response(fe.query_instant(&f.tenant, f.req).await)
}

/// `format_query` needs no querier (nor a tenant): answered here, as the querier does.
async fn format_query(
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let p = skald_loghttp::reply::collect_params(&method, &headers, raw, &body);
    skald_loghttp::reply::format_query(&p)
}
