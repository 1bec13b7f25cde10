//! HTTP wiring: tenant resolution, the operational endpoints, and the distributor's and the
//! querier's routers, all on one listener.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use skald_common::tenant;
use skald_common::tenant::TenantId;
use skald_distributor::Distributor;
use skald_proto::ingester::IngesterClient;

/// What the HTTP layer needs.
#[derive(Clone)]
pub struct HttpState {
    /// Whether `X-Scope-OrgID` is required.
    pub auth_enabled: bool,
    /// Metrics registry served at `/metrics`.
    pub registry: prometheus::Registry,
    /// Ingester to flush on `/flush`, when this process runs one.
    pub ingester: Option<IngesterClient>,
    /// The same ingester, for `/ready` and the ingester's own routes
    /// (`skald_ingester::http::admin_routes`).
    pub local_ingester: Option<skald_ingester::Ingester>,
    /// Notified to stop the process as SIGTERM would (`/ingester/shutdown?terminate=true`,
    /// answered by the ingester's routes).
    pub terminate: Arc<tokio::sync::Notify>,
    /// The ingester ring this process uses (for `/ring`), when it has ingesters.
    pub ring: Option<skald_ring::Ring>,
    /// Gossip membership, when configured: `/ring` shows the gossiped ring instead.
    pub membership: Option<Arc<skald_ring::membership::Membership>>,
    /// The effective configuration (`/config`).
    pub config: Arc<crate::config::Config>,
    /// The services this process runs (`/services`).
    pub services: Arc<Vec<String>>,
    /// Where the Elasticsearch templates, policies and pipelines of tenants are kept.
    pub es_objects: Option<Arc<skald_distributor::elastic::objects::EsObjects>>,
    /// The tenants' limits and overrides (`/runtime_config`).
    pub runtime: Arc<crate::runtime_config::RuntimeState>,
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut r = (status, body.into()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// Resolves the tenant from `X-Scope-OrgID` (or `fake` without auth), validates it, and puts
/// a [`TenantId`] into the request extensions.
async fn tenant_layer(
    State((auth_enabled, multi_tenant)): State<(bool, bool)>,
    mut req: Request,
    next: Next,
) -> Response {
    let header = req
        .headers()
        .get("X-Scope-OrgID")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let id = match (auth_enabled, header) {
        (false, _) => "fake".to_string(),
        (true, None) => return text(StatusCode::UNAUTHORIZED, tenant::NO_ORG_ID_MSG),
        (true, Some(h)) => h,
    };
    // A malformed id is a 400, as Loki answers it ("tenant ID 'a b' contains unsupported
    // character ' '"); only a missing one is a 401.
    let ids = match tenant::parse_tenant_ids(&id) {
        Ok(ids) => ids,
        Err(tenant::TenantError::NoOrgId) => {
            return text(StatusCode::UNAUTHORIZED, tenant::NO_ORG_ID_MSG)
        }
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    // Several tenants (`a|b`): only on the routes that allow them (queries, when
    // `querier.multi_tenant_queries_enabled`), as in Loki.
    if ids.len() != 1 && !multi_tenant {
        return text(
            StatusCode::BAD_REQUEST,
            "multiple org IDs present: this endpoint acts for a single tenant (cross-tenant queries need querier.multi_tenant_queries_enabled)",
        );
    }
    req.extensions_mut().insert(TenantId(ids.join("|")));
    next.run(req).await
}

/// 200 `ready` once serving. An ingester riding out a storage outage stays ready (it keeps
/// taking writes into memory and the WAL) and says so on a second line.
async fn ready(State(state): State<HttpState>) -> Response {
    match state.local_ingester.as_ref().and_then(|i| i.flush_health()) {
        Some(detail) => text(StatusCode::OK, format!("ready\nstorage: {detail}\n")),
        None => text(StatusCode::OK, "ready"),
    }
}

async fn metrics(State(state): State<HttpState>) -> Response {
    use prometheus::Encoder;
    let encoder = prometheus::TextEncoder::new();
    let mut buf = Vec::new();
    if let Err(e) = encoder.encode(&state.registry.gather(), &mut buf) {
        return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    let mut r = (StatusCode::OK, buf).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

async fn buildinfo() -> Response {
    let body = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": option_env!("SKALD_GIT_REVISION").unwrap_or("unknown"),
        "branch": option_env!("SKALD_GIT_BRANCH").unwrap_or("unknown"),
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    });
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn flush(State(state): State<HttpState>) -> Response {
    match &state.ingester {
        None => text(StatusCode::NOT_FOUND, "no ingester runs in this process"),
        Some(ing) => match ing.flush_all().await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => text(
                StatusCode::from_u16(e.code.http_status_code())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                e.message,
            ),
        },
    }
}

/// `/ring` (and `/distributor/ring`): the ingester ring, as HTML or, with
/// `Accept: application/json`, as JSON in Loki's shape (`shards`, `now`).
async fn ring_page(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let gossiped = match &state.membership {
        Some(m) => Some(m.ring_desc().await.ring()),
        None => None,
    };
    let Some(ring) = gossiped.as_ref().or(state.ring.as_ref()) else {
        return text(StatusCode::NOT_FOUND, "this process has no ingester ring");
    };
    let ownership = ring.ownership();
    let now = skald_ring::now_ms();
    let shards: Vec<serde_json::Value> = ring
        .instances()
        .iter()
        .zip(&ownership)
        .map(|(d, own)| {
            serde_json::json!({
                "id": d.id,
                "state": d.state,
                "address": d.addr,
                "timestamp": skald_gocompat::time::rfc3339_millis(d.heartbeat_ms),
                "registered_timestamp": skald_gocompat::time::rfc3339_millis(d.heartbeat_ms),
                "zone": "",
                "tokens": d.tokens,
                "ownership": own * 100.0,
            })
        })
        .collect();
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        let body = serde_json::json!({ "shards": shards, "now": skald_gocompat::time::rfc3339_millis(now) });
        let mut r = (StatusCode::OK, body.to_string()).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return r;
    }
    let mut rows = String::new();
    for (d, own) in ring.instances().iter().zip(&ownership) {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td></tr>\n",
            html_escape(&d.id),
            d.state,
            html_escape(&d.addr),
            skald_gocompat::time::rfc3339_millis(d.heartbeat_ms),
            d.tokens.len(),
            own * 100.0
        ));
    }
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Ingester ring</title></head><body>\n<h1>Ingester ring</h1>\n<p>Current time: {}</p>\n<table border=\"1\">\n<thead><tr><th>Instance ID</th><th>State</th><th>Address</th><th>Last heartbeat</th><th>Tokens</th><th>Ownership</th></tr></thead>\n<tbody>\n{rows}</tbody></table>\n</body></html>\n",
        skald_gocompat::time::rfc3339_millis(now)
    );
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

/// Escapes text for an HTML page.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The querier's query routes behind the tenant layer, as the query-frontend's workers run
/// them (every route a client has but the live tail).
pub fn worker_router(
    config: &crate::config::Config,
    querier: Arc<skald_querier::Querier>,
) -> Router {
    let layer = middleware::from_fn_with_state(
        (config.auth_enabled, config.querier.multi_tenant_queries_enabled),
        tenant_layer,
    );
    skald_querier::http::query_routes(querier).layer(layer)
}

/// Builds the whole router. With a query-frontend, the query routes are the frontend's
/// (which queues them for the queriers) and only the live tail goes to this process's
/// querier directly.
pub fn router(
    state: HttpState,
    distributor: Option<Arc<Distributor>>,
    querier: Option<Arc<skald_querier::Querier>>,
    frontend: Option<Arc<skald_frontend::QueryFrontend>>,
    deletes: Option<Arc<skald_deletes::DeleteService>>,
) -> Router {
    let tenant = |multi_tenant: bool| {
        middleware::from_fn_with_state((state.auth_enabled, multi_tenant), tenant_layer)
    };
    let mut tenant_routes: Router = Router::new();
    let mut es_handshake: Router = Router::new();
    if let Some(d) = distributor {
        es_handshake = skald_distributor::http::public_routes(d.clone());
        // a push always acts for one tenant
        tenant_routes = tenant_routes.merge(
            skald_distributor::http::tenant_routes(d, state.es_objects.clone())
                .layer(tenant(false)),
        );
    }
    // queries may read several tenants when enabled (the tail refuses them itself)
    let multi = state.config.querier.multi_tenant_queries_enabled;
    match (frontend, querier) {
        (Some(fe), q) => {
            tenant_routes = tenant_routes.merge(skald_frontend::router(fe).layer(tenant(multi)));
            if let Some(q) = q {
                tenant_routes =
                    tenant_routes.merge(skald_querier::http::tail_routes(q).layer(tenant(multi)));
            } else if let Some(proxy) =
                skald_frontend::tail_proxy::TailProxy::new(&state.config.frontend.tail_proxy_url)
            {
                tenant_routes = tenant_routes
                    .merge(skald_frontend::tail_proxy::routes(proxy).layer(tenant(multi)));
            }
        }
        (None, Some(q)) => {
            tenant_routes =
                tenant_routes.merge(skald_querier::http::router(q).layer(tenant(multi)));
        }
        (None, None) => {}
    }
    // Loki 3's per-tenant view of the limits, on every target
    tenant_routes = tenant_routes.merge(
        Router::new()
            .route("/config/tenant/v1/limits", get(crate::runtime_config::tenant_limits))
            .with_state(state.clone())
            .layer(tenant(false)),
    );
    // the delete API (with `compactor.retention_enabled`, on the compactor and the querier)
    // acts for one tenant
    if let Some(d) = deletes {
        tenant_routes =
            tenant_routes.merge(skald_querier::http::delete_routes(d).layer(tenant(false)));
    }
    let ops = Router::new()
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
        .route("/flush", post(flush).get(flush))
        .route("/ring", get(ring_page))
        .route("/config", get(crate::ops::config))
        .route("/runtime_config", get(crate::runtime_config::handler))
        .route("/services", get(crate::ops::services))
        .route(
            "/log_level",
            get(crate::ops::log_level).post(crate::ops::log_level).put(crate::ops::log_level),
        )
        .route("/distributor/ring", get(ring_page))
        .route("/memberlist", get(crate::ops_memberlist::page))
        .with_state(state.clone());
    let ingester = skald_ingester::http::admin_routes(state.local_ingester, state.terminate);
    tenant_routes.merge(ops).merge(ingester).merge(es_handshake)
}
