//! The Elasticsearch bulk API, with the handshake calls Elasticsearch clients make before their
//! first bulk request.
//!
//! - `POST|PUT /_bulk`, `POST|PUT /{index}/_bulk` (tenant routes): Elasticsearch's bulk
//!   response; whole-request failures as Elasticsearch error bodies.
//! - Handshake (no tenant needed): `GET|HEAD /` (cluster info and version), `GET /_license`,
//!   `GET /_xpack`, `GET /_cluster/health`.
//! - Objects (tenant routes): `GET|HEAD|PUT|POST|DELETE` of `_index_template`, `_template`,
//!   `_component_template`, `_ilm/policy`, `_ingest/pipeline` and `_data_stream` objects, kept
//!   per tenant in the object store ([`crate::elastic::objects`]), capped in size and number, so
//!   that a client that checks for its template after putting it finds it, also after a restart.
//!   Nothing in them changes how logs are stored.
//!
//! Every Elasticsearch-compatible answer carries `X-Elastic-Product: Elasticsearch`, which the
//! official clients (elasticsearch-py, -js, -ruby 8+) require.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{json, Value};
use skald_common::tenant::TenantId;

use super::header_str;
use crate::elastic::{self, objects::EsObjects};
use crate::Distributor;

const ELASTIC_PRODUCT: &str = "X-Elastic-Product";

fn es_json(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(ELASTIC_PRODUCT, HeaderValue::from_static("Elasticsearch"));
    r
}

fn es_error(status: StatusCode, kind: &str, reason: &str) -> Response {
    es_json(status, &elastic::error_response(status.as_u16(), kind, reason))
}

/// The body of a `HEAD` answer is dropped by the HTTP layer; the status and headers stay.
fn es_answer(method: &Method, status: StatusCode, body: &Value) -> Response {
    if method == Method::HEAD {
        let mut r = status.into_response();
        r.headers_mut().insert(ELASTIC_PRODUCT, HeaderValue::from_static("Elasticsearch"));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return r;
    }
    es_json(status, body)
}

async fn bulk_at(
    distributor: Arc<Distributor>,
    tenant: TenantId,
    index: Option<String>,
    params: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ce = header_str(&headers, header::CONTENT_ENCODING);
    match distributor.push_elastic(&tenant.0, index.as_deref(), body, ce).await {
        Ok(outcome) => {
            if outcome.errors() {
                tracing::debug!(tenant = %tenant.0, failed = outcome.failed(), "bulk items failed");
            }
            es_json(StatusCode::OK, &outcome.to_json(params.get("filter_path").map(String::as_str)))
        }
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            es_error(status, elastic::error_type(&e), &e.to_string())
        }
    }
}

async fn bulk(
    Extension(distributor): Extension<Arc<Distributor>>,
    Extension(tenant): Extension<TenantId>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    bulk_at(distributor, tenant, None, params, headers, body).await
}

async fn bulk_index(
    Extension(distributor): Extension<Arc<Distributor>>,
    Extension(tenant): Extension<TenantId>,
    Path(index): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    bulk_at(distributor, tenant, Some(index), params, headers, body).await
}

/// Where index templates, ILM policies, pipelines and data streams are kept.
#[derive(Clone)]
struct Objects(Option<Arc<EsObjects>>);

async fn root(method: Method, Extension(d): Extension<Arc<Distributor>>) -> Response {
    es_answer(&method, StatusCode::OK, &elastic::root_info(&d.config().elasticsearch))
}

async fn license(method: Method) -> Response {
    es_answer(&method, StatusCode::OK, &elastic::license())
}

async fn xpack(method: Method, Extension(d): Extension<Arc<Distributor>>) -> Response {
    es_answer(&method, StatusCode::OK, &elastic::xpack(&d.config().elasticsearch))
}

async fn cluster_health(method: Method, Extension(d): Extension<Arc<Distributor>>) -> Response {
    let body = json!({
        "cluster_name": d.config().elasticsearch.cluster_name,
        "status": "green",
        "timed_out": false,
        "number_of_nodes": 1,
        "number_of_data_nodes": 1,
        "active_primary_shards": 0,
        "active_shards": 0,
        "relocating_shards": 0,
        "initializing_shards": 0,
        "unassigned_shards": 0,
        "active_shards_percent_as_number": 100.0,
    });
    es_answer(&method, StatusCode::OK, &body)
}

/// The JSON key a GET answer lists objects of `kind` under, as Elasticsearch does.
fn list_shape(kind: &str, name: &str, v: &Value) -> Value {
    match kind {
        "_index_template" => json!({"index_templates": [{"name": name, "index_template": v}]}),
        "_component_template" => {
            json!({"component_templates": [{"name": name, "component_template": v}]})
        }
        "_data_stream" => json!({"data_streams": [{
            "name": name, "timestamp_field": {"name": "@timestamp"}, "indices": [],
            "generation": 1, "status": "GREEN", "template": name,
        }]}),
        "_ilm/policy" => {
            json!({ name: {"version": 1, "policy": v.get("policy").cloned().unwrap_or(json!({}))} })
        }
        _ => json!({ name: v }),
    }
}

#[allow(clippy::too_many_arguments)]
async fn object(
    method: Method,
    Extension(objects): Extension<Objects>,
    Extension(distributor): Extension<Arc<Distributor>>,
    Extension(tenant): Extension<TenantId>,
    headers: HeaderMap,
    kind: &'static str,
    name: String,
    body: axum::body::Body,
) -> Response {
    let Some(objects) = objects.0 else {
        return es_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "status_exception",
            "this process keeps no Elasticsearch objects (no object store)",
        );
    };
    let missing = || {
        let reason = format!("{kind} [{name}] missing");
        es_answer(
            &method,
            StatusCode::NOT_FOUND,
            &elastic::error_response(404, "resource_not_found_exception", &reason),
        )
    };
    let failed = |e: elastic::objects::ObjectError| {
        let (status, kind) = e.status();
        if status >= 500 {
            tracing::warn!(error = %e, tenant = %tenant.0, "Elasticsearch object request failed");
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        es_answer(&method, status, &elastic::error_response(status.as_u16(), kind, &e.to_string()))
    };
    match method {
        Method::PUT | Method::POST => {
            // read no more than a template may hold (the route's limit is the push's)
            let max = distributor.config().elasticsearch.max_template_bytes;
            let limit =
                if max == 0 { usize::MAX } else { usize::try_from(max).unwrap_or(usize::MAX) };
            let body = match axum::body::to_bytes(body, limit).await {
                Ok(b) => b,
                Err(_) => {
                    return es_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "content_too_long_exception",
                        &format!(
                            "the {kind} body is over distributor.elasticsearch.max_template_bytes ({max} bytes)"
                        ),
                    )
                }
            };
            let ce = header_str(&headers, header::CONTENT_ENCODING);
            let body = match distributor.decompress_elastic_body(&body, ce) {
                Ok(b) => b,
                Err(e) => {
                    let status =
                        StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::BAD_REQUEST);
                    return es_error(status, elastic::error_type(&e), &e.to_string());
                }
            };
            let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(e) => {
                        return es_error(
                            StatusCode::BAD_REQUEST,
                            "x_content_parse_exception",
                            &format!("failed to parse the {kind} body: {e}"),
                        )
                    }
                }
            };
            match objects.put(&tenant.0, kind, &name, &v).await {
                Ok(()) => es_json(StatusCode::OK, &json!({"acknowledged": true})),
                Err(e) => failed(e),
            }
        }
        Method::DELETE => match objects.delete(&tenant.0, kind, &name).await {
            Ok(true) => es_json(StatusCode::OK, &json!({"acknowledged": true})),
            Ok(false) => missing(),
            Err(e) => failed(e),
        },
        _ => match objects.get(&tenant.0, kind, &name).await {
            Ok(Some(v)) => es_answer(&method, StatusCode::OK, &list_shape(kind, &name, &v)),
            Ok(None) => missing(),
            Err(e) => failed(e),
        },
    }
}

macro_rules! object_route {
    ($kind:literal) => {
        |method: Method,
         objects: Extension<Objects>,
         distributor: Extension<Arc<Distributor>>,
         tenant: Extension<TenantId>,
         Path(name): Path<String>,
         headers: HeaderMap,
         body: axum::body::Body| async move {
            object(method, objects, distributor, tenant, headers, $kind, name, body).await
        }
    };
}

fn any<H, T>(h: H) -> axum::routing::MethodRouter
where
    H: axum::handler::Handler<T, ()> + Clone,
    T: 'static,
{
    get(h.clone()).put(h.clone()).post(h.clone()).delete(h)
}

/// Routes that need a tenant (behind the tenant layer): the bulk API and the objects (kept in
/// `objects`; without it, the object routes answer 503). Empty when `elasticsearch.enabled`
/// is false.
pub(super) fn tenant_routes(distributor: &Distributor, objects: Option<Arc<EsObjects>>) -> Router {
    let mut r = Router::new();
    if distributor.config().elasticsearch.enabled {
        r = r
            .route("/_bulk", post(bulk).put(bulk))
            .route("/{index}/_bulk", post(bulk_index).put(bulk_index))
            .route("/_index_template/{name}", any(object_route!("_index_template")))
            .route("/_template/{name}", any(object_route!("_template")))
            .route("/_component_template/{name}", any(object_route!("_component_template")))
            .route("/_ilm/policy/{name}", any(object_route!("_ilm/policy")))
            .route("/_ingest/pipeline/{name}", any(object_route!("_ingest/pipeline")))
            .route("/_data_stream/{name}", any(object_route!("_data_stream")))
            .layer(Extension(Objects(objects)));
    }
    r
}

/// The handshake routes (no tenant needed). Empty when `elasticsearch.enabled` is false.
pub(super) fn public_routes(distributor: Arc<Distributor>) -> Router {
    if !distributor.config().elasticsearch.enabled {
        return Router::new();
    }
    Router::new()
        .route("/", get(root))
        .route("/_license", get(license))
        .route("/_xpack", get(xpack))
        .route("/_cluster/health", get(cluster_health))
        .layer(Extension(distributor))
}
