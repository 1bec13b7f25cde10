//! The distributor's HTTP edge without a socket: its routers driven with `oneshot`, as the
//! server mounts them (the tenant put in the request extensions, as the server's tenant layer
//! does), over a mock ingester and an in-memory object store.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::Response;
use axum::{Extension, Router};
use prost::Message;
use serde_json::{json, Value};
use skald_chunk_store::{ChunkStore, ObjectChunkStore};
use skald_common::limits::Limits;
use skald_common::tenant::TenantId;
use skald_distributor::elastic::objects::EsObjects;
use skald_distributor::{http, Distributor, DistributorConfig};
use skald_proto::logproto::{EntryAdapter, PushRequest, StreamAdapter};
use skald_proto::otlp::collector::ExportLogsServiceRequest;
use skald_proto::otlp::common::{any_value, AnyValue, KeyValue};
use skald_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use skald_proto::otlp::resource::Resource;
use tower::ServiceExt;

mod support;
use support::MockIngester;

struct Edge {
    router: Router,
    ing: Arc<MockIngester>,
}

/// The distributor's routers as the server mounts them, for tenant `t1`.
fn edge(config: DistributorConfig) -> Edge {
    let ing = Arc::new(MockIngester::default());
    let registry = prometheus::Registry::new();
    let d = Arc::new(Distributor::new(config, Limits::default(), ing.clone(), &registry).unwrap());
    let store: Arc<dyn ChunkStore> = Arc::new(ObjectChunkStore::in_memory());
    let objects = Arc::new(EsObjects::new(store, 10));
    let router = http::tenant_routes(d.clone(), Some(objects))
        .layer(Extension(TenantId("t1".to_string())))
        .merge(http::public_routes(d));
    Edge { router, ing }
}

fn config() -> DistributorConfig {
    let mut c = DistributorConfig::default();
    c.elasticsearch.enabled = true;
    c
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    headers: &[(header::HeaderName, &str)],
    body: impl Into<Body>,
) -> Response {
    let mut req = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    router.clone().oneshot(req.body(body.into()).unwrap()).await.unwrap()
}

/// The status, the `Content-Type` and the body.
async fn parts(r: Response) -> (StatusCode, String, String) {
    let status = r.status();
    let ct = r
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
    (status, ct, String::from_utf8_lossy(&body).into_owned())
}

fn push_json(line: &str) -> String {
    json!({"streams": [{"stream": {"app": "web"}, "values": [[now_ns().to_string(), line]]}]})
        .to_string()
}

fn lines(ing: &MockIngester) -> Vec<String> {
    ing.streams().iter().flat_map(|s| s.entries.iter().map(|e| e.line.to_string())).collect()
}

#[tokio::test]
async fn push_takes_json_gzip_and_snappy_protobuf() {
    let e = edge(config());
    let json_ct = [(header::CONTENT_TYPE, "application/json")];
    let r = call(&e.router, Method::POST, "/loki/api/v1/push", &json_ct, push_json("one")).await;
    assert_eq!(parts(r).await, (StatusCode::NO_CONTENT, String::new(), String::new()));
    let gz = [(header::CONTENT_TYPE, "application/json"), (header::CONTENT_ENCODING, "gzip")];
    let body = gzip(push_json("two").as_bytes());
    let r = call(&e.router, Method::POST, "/loki/api/v1/push", &gz, body).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let req = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{app="web"}"#.to_string(),
            entries: vec![EntryAdapter {
                timestamp: Some(prost_types::Timestamp {
                    seconds: now_ns() / 1_000_000_000,
                    nanos: 0,
                }),
                line: "three".into(),
                structured_metadata: vec![],
                parsed: vec![],
            }],
            hash: 0,
        }],
        format: String::new(),
    };
    let body = snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap();
    let proto = [(header::CONTENT_TYPE, "application/x-protobuf")];
    // the legacy route is the same handler
    let r = call(&e.router, Method::POST, "/api/prom/push", &proto, body).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(lines(&e.ing), ["one", "two", "three"]);
    let tenants: Vec<String> = e.ing.pushed.lock().unwrap().iter().map(|p| p.0.clone()).collect();
    assert_eq!(tenants, ["t1"; 3]);
    // a push is a POST
    let r = call(&e.router, Method::GET, "/loki/api/v1/push", &[], Body::empty()).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn push_errors_are_loki_texts() {
    let e = edge(DistributorConfig { max_recv_msg_size: 100, ..config() });
    let json_ct = [(header::CONTENT_TYPE, "application/json")];
    let text = "text/plain; charset=utf-8".to_string();
    let r = call(&e.router, Method::POST, "/loki/api/v1/push", &json_ct, "").await;
    assert_eq!(parts(r).await, (StatusCode::BAD_REQUEST, text.clone(), "EOF".to_string()));
    let r = call(&e.router, Method::POST, "/loki/api/v1/push", &[], push_json("x")).await;
    assert_eq!(
        parts(r).await,
        (StatusCode::BAD_REQUEST, text.clone(), "mime: no media type".to_string())
    );
    let br = [(header::CONTENT_TYPE, "application/json"), (header::CONTENT_ENCODING, "br")];
    let r = call(&e.router, Method::POST, "/loki/api/v1/push", &br, push_json("x")).await;
    assert_eq!(
        parts(r).await,
        (
            StatusCode::BAD_REQUEST,
            text.clone(),
            "Content-Encoding \"br\" not supported".to_string()
        )
    );
    let r = call(&e.router, Method::POST, "/loki/api/v1/push", &json_ct, vec![b' '; 101]).await;
    assert_eq!(
        parts(r).await,
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            text.clone(),
            "request body too large: message size too large than max (101 vs 100)".to_string()
        )
    );
    let r = call(&e.router, Method::POST, "/loki/api/v1/push", &json_ct, r#"{"streams":[]}"#).await;
    assert_eq!(
        parts(r).await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            text,
            "error at least one valid stream is required for ingestion".to_string()
        )
    );
    assert!(e.ing.streams().is_empty());
}

fn otlp_request(line: &str) -> ExportLogsServiceRequest {
    let s = |v: &str| Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) });
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: s("checkout"),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: now_ns() as u64,
                    body: s(line),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test]
async fn otlp_takes_protobuf_and_json_and_answers_in_kind() {
    let e = edge(config());
    let proto = [(header::CONTENT_TYPE, "application/x-protobuf")];
    let body = otlp_request("from protobuf").encode_to_vec();
    let r = call(&e.router, Method::POST, "/otlp/v1/logs", &proto, body).await;
    assert_eq!(
        parts(r).await,
        (StatusCode::OK, "application/x-protobuf".to_string(), String::new())
    );
    let json_ct = [(header::CONTENT_TYPE, "application/json")];
    let body = json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeLogs": [{"logRecords": [{
            "timeUnixNano": now_ns().to_string(),
            "body": {"stringValue": "from json"},
        }]}],
    }]})
    .to_string();
    let r = call(&e.router, Method::POST, "/otlp/v1/logs", &json_ct, body).await;
    assert_eq!(parts(r).await, (StatusCode::OK, "application/json".to_string(), "{}".to_string()));
    assert_eq!(lines(&e.ing), ["from protobuf", "from json"]);
    let labels: Vec<String> = e.ing.streams().iter().map(|s| s.labels.to_string()).collect();
    assert_eq!(labels, [r#"{service_name="checkout"}"#; 2]);
    // a bad body is a google.rpc.Status in the request's encoding
    let r = call(&e.router, Method::POST, "/otlp/v1/logs", &json_ct, "{").await;
    let (status, ct, body) = parts(r).await;
    assert_eq!((status, ct.as_str()), (StatusCode::BAD_REQUEST, "application/json"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], 3, "{body}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[tokio::test]
async fn elasticsearch_handshake_and_bulk() {
    let e = edge(config());
    let r = call(&e.router, Method::GET, "/", &[], Body::empty()).await;
    assert_eq!(r.headers()["x-elastic-product"], "Elasticsearch");
    let (status, ct, body) = parts(r).await;
    assert_eq!((status, ct.as_str()), (StatusCode::OK, "application/json"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["version"]["number"], config().elasticsearch.version.as_str(), "{body}");
    // HEAD: the same status and headers, no body
    let r = call(&e.router, Method::HEAD, "/", &[], Body::empty()).await;
    assert_eq!(r.headers()["x-elastic-product"], "Elasticsearch");
    assert_eq!(parts(r).await, (StatusCode::OK, "application/json".to_string(), String::new()));
    for path in ["/_license", "/_xpack", "/_cluster/health"] {
        let r = call(&e.router, Method::GET, path, &[], Body::empty()).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }

    let ndjson = format!(
        "{{\"index\":{{}}}}\n{}\n{{\"delete\":{{\"_id\":\"1\"}}}}\n",
        json!({"@timestamp": now_ns() / 1_000_000, "message": "hello"})
    );
    let ct = [(header::CONTENT_TYPE, "application/x-ndjson")];
    let uri = "/logs-web/_bulk?filter_path=errors";
    let r = call(&e.router, Method::POST, uri, &ct, ndjson.clone()).await;
    assert_eq!(r.headers()["x-elastic-product"], "Elasticsearch");
    let (status, _, body) = parts(r).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"errors":true}"#));
    let streams = e.ing.streams();
    assert_eq!(streams.len(), 1);
    assert_eq!(
        streams[0].labels.to_string(),
        r#"{index="logs-web", service_name="unknown_service"}"#
    );
    // a body that is not gzip while it says it is: a whole-request Elasticsearch error
    let gz = [(header::CONTENT_TYPE, "application/x-ndjson"), (header::CONTENT_ENCODING, "gzip")];
    let r = call(&e.router, Method::PUT, "/_bulk", &gz, ndjson).await;
    let (status, _, body) = parts(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], 400, "{body}");
    assert!(v["error"]["type"].is_string(), "{body}");
}

#[tokio::test]
async fn elasticsearch_objects_put_then_get() {
    let e = edge(config());
    let template = json!({"index_patterns": ["filebeat-*"], "priority": 1});
    let path = "/_index_template/filebeat-8.19.0";
    let r = call(&e.router, Method::GET, path, &[], Body::empty()).await;
    let (status, _, body) = parts(r).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["reason"], "_index_template [filebeat-8.19.0] missing", "{body}");
    let r = call(&e.router, Method::PUT, path, &[], template.to_string()).await;
    assert_eq!(r.headers()["x-elastic-product"], "Elasticsearch");
    assert_eq!(parts(r).await.2, r#"{"acknowledged":true}"#);
    let r = call(&e.router, Method::GET, path, &[], Body::empty()).await;
    let (status, _, body) = parts(r).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"index_templates": [{"name": "filebeat-8.19.0", "index_template": template}]})
    );
    let r = call(&e.router, Method::HEAD, path, &[], Body::empty()).await;
    assert_eq!(parts(r).await, (StatusCode::OK, "application/json".to_string(), String::new()));
    let r = call(&e.router, Method::PUT, path, &[], "{not json").await;
    let (status, _, body) = parts(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("x_content_parse_exception"), "{body}");
    let r = call(&e.router, Method::DELETE, path, &[], Body::empty()).await;
    assert_eq!(parts(r).await.2, r#"{"acknowledged":true}"#);
    let r = call(&e.router, Method::GET, path, &[], Body::empty()).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn elasticsearch_routes_are_off_unless_enabled() {
    let mut c = config();
    c.elasticsearch.enabled = false;
    let e = edge(c);
    for (method, path) in [(Method::GET, "/"), (Method::POST, "/_bulk")] {
        let r = call(&e.router, method, path, &[], Body::empty()).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let json_ct = [(header::CONTENT_TYPE, "application/json")];
    let r = call(&e.router, Method::POST, "/loki/api/v1/push", &json_ct, push_json("x")).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}
