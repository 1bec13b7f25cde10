#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use futures::StreamExt as _;
use tower::{Service, ServiceExt};

use super::*;

/// The histograms of `loki_request_duration_seconds` over the series matching `labels`.
fn histograms(registry: &Registry, labels: &[(&str, &str)]) -> Vec<prometheus::proto::Histogram> {
    let families = registry.gather();
    let Some(f) = families.iter().find(|f| f.name() == "loki_request_duration_seconds") else {
        return Vec::new();
    };
    f.get_metric()
        .iter()
        .filter(|m| {
            labels
                .iter()
                .all(|(k, v)| m.get_label().iter().any(|l| l.name() == *k && l.value() == *v))
        })
        .map(|m| m.get_histogram().clone())
        .collect()
}

/// `loki_request_duration_seconds_count` of one label set, from the registry's text.
fn count(registry: &Registry, labels: &[(&str, &str)]) -> u64 {
    histograms(registry, labels).iter().map(|h| h.get_sample_count()).sum()
}

fn inflight(registry: &Registry) -> i64 {
    let families = registry.gather();
    let Some(f) = families.iter().find(|f| f.name() == "loki_inflight_requests") else {
        return 0;
    };
    f.get_metric().iter().map(|m| m.get_gauge().get_value() as i64).sum()
}

#[test]
fn route_labels_are_lokis() {
    for (template, label) in [
        ("/loki/api/v1/push", "loki_api_v1_push"),
        ("/api/prom/push", "api_prom_push"),
        ("/otlp/v1/logs", "otlp_v1_logs"),
        ("/loki/api/v1/query_range", "loki_api_v1_query_range"),
        ("/loki/api/v1/label/{name}/values", "loki_api_v1_label_name_values"),
        ("/loki/api/v1/label/:name/values", "loki_api_v1_label_name_values"),
        ("/loki/api/v1/index/volume_range", "loki_api_v1_index_volume_range"),
        ("/api/prom/label/{name}/values", "api_prom_label_name_values"),
        ("/loki/api/v1/delete", "loki_api_v1_delete"),
        ("/Metrics/", "metrics"),
        ("/", "root"),
    ] {
        assert_eq!(route_label(template), label, "{template}");
    }
}

#[test]
fn websocket_upgrades_are_recognised() {
    let mut h = HeaderMap::new();
    assert!(!is_websocket(&h));
    h.insert(http::header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
    assert!(!is_websocket(&h), "an upgrade to nothing is not a WebSocket");
    h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    assert!(is_websocket(&h));
    h.insert(http::header::UPGRADE, HeaderValue::from_static("h2c"));
    assert!(!is_websocket(&h));
}

fn app(metrics: RequestMetrics) -> Router {
    Router::new()
        .route("/loki/api/v1/push", post(|| async { StatusCode::NO_CONTENT }))
        .route("/loki/api/v1/label/{name}/values", get(|| async { "[]" }))
        .route("/loki/api/v1/query", get(|| async { (StatusCode::BAD_REQUEST, "parse error") }))
        .route("/loki/api/v1/tail", get(|| async { StatusCode::SWITCHING_PROTOCOLS }))
        .layer(axum::middleware::from_fn_with_state(metrics, super::http))
}

async fn send(app: &Router, method: &str, uri: &str, ws: bool) -> StatusCode {
    let mut req = http::Request::builder().method(method).uri(uri);
    if ws {
        req = req.header("Connection", "Upgrade").header("Upgrade", "websocket");
    }
    app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap().status()
}

#[tokio::test]
async fn http_requests_are_counted_by_method_route_status_and_ws() {
    let registry = Registry::new();
    let app = app(RequestMetrics::new(&registry));
    for _ in 0..3 {
        assert_eq!(send(&app, "POST", "/loki/api/v1/push", false).await, StatusCode::NO_CONTENT);
    }
    send(&app, "GET", "/loki/api/v1/label/job/values", false).await;
    send(&app, "GET", "/loki/api/v1/label/app/values", false).await;
    send(&app, "GET", "/loki/api/v1/query?query=%7B", false).await;
    send(&app, "GET", "/loki/api/v1/tail", true).await;
    send(&app, "GET", "/no/such/route/12345", false).await;
    send(&app, "BREW", "/loki/api/v1/push", false).await;

    let push = [("method", "POST"), ("route", "loki_api_v1_push"), ("status_code", "204")];
    assert_eq!(count(&registry, &[push[0], push[1], push[2], ("ws", "false")]), 3);
    // one series per route template, whatever the path parameter
    let values = [("route", "loki_api_v1_label_name_values"), ("status_code", "200")];
    assert_eq!(count(&registry, &values), 2);
    assert_eq!(count(&registry, &[("route", "loki_api_v1_query"), ("status_code", "400")]), 1);
    let tail = [("route", "loki_api_v1_tail"), ("status_code", "101"), ("ws", "true")];
    assert_eq!(count(&registry, &tail), 1);
    // an unmatched path is `other` (a 404), never its own series
    assert_eq!(count(&registry, &[("route", "other"), ("status_code", "404")]), 1);
    assert_eq!(count(&registry, &[("method", "OTHER")]), 1, "invented methods are one series");
    assert_eq!(count(&registry, &[]), 9);
    assert_eq!(inflight(&registry), 0, "every request left the in-flight gauge");
    // Loki's buckets, 5 ms to 100 s
    let families = registry.gather();
    let f = families.iter().find(|f| f.name() == "loki_request_duration_seconds").unwrap();
    let buckets = f.get_metric()[0].get_histogram().get_bucket();
    let bounds: Vec<f64> = buckets.iter().map(|b| b.upper_bound()).collect();
    assert_eq!(bounds, BUCKETS);
    assert_eq!((bounds[0], bounds[13]), (0.005, 100.0));
}

#[test]
fn grpc_routes_are_lokis() {
    for (path, route) in [
        ("/skald.ingester.v1.Ingester/Push", "/logproto.Pusher/Push"),
        ("/skald.ingester.v1.Ingester/Query", "/logproto.Querier/Query"),
        ("/skald.ingester.v1.Ingester/QuerySamples", "/logproto.Querier/QuerySample"),
        ("/skald.ingester.v1.Ingester/Series", "/logproto.Querier/Series"),
        ("/skald.ingester.v1.Ingester/ChunkStats", "/logproto.Querier/GetStats"),
        ("/skald.ingester.v1.Ingester/Tail", "/logproto.Querier/Tail"),
        ("/skald.ingester.v1.Ingester/FlushAll", "/skald.ingester.v1.Ingester/FlushAll"),
        ("/skald.frontend.v1.Frontend/Process", "/frontend.Frontend/Process"),
        ("/grpc.health.v1.Health/Check", "other"),
    ] {
        assert_eq!(grpc_route(path), route, "{path}");
    }
}

/// A response body of given frames.
struct Frames(VecDeque<http_body::Frame<Bytes>>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

fn trailers(status: &'static str) -> http_body::Frame<Bytes> {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from_static(status));
    http_body::Frame::trailers(t)
}

/// Drains a body as a server would.
async fn drain(mut body: ObservedBody<Frames>) {
    use http_body::Body as _;
    use std::future::poll_fn;
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        frame.unwrap();
    }
}

#[tokio::test]
async fn grpc_calls_are_observed_when_their_stream_ends() {
    let registry = Registry::new();
    let metrics = RequestMetrics::new(&registry);
    // the inner service answers by the request's path: a stream that ends with OK trailers,
    // one that ends with an error status, a trailers-only error, and a stream cut short
    let inner = tower::service_fn(|req: http::Request<()>| async move {
        let data = http_body::Frame::data(Bytes::from_static(b"x"));
        let mut headers_status = None;
        let frames = match req.uri().path() {
            "/skald.ingester.v1.Ingester/Push" => vec![data, trailers("0")],
            "/skald.ingester.v1.Ingester/Query" => vec![data, data_frame(), trailers("13")],
            "/skald.ingester.v1.Ingester/Series" => {
                headers_status = Some("3");
                vec![]
            }
            _ => vec![data, data_frame()],
        };
        let mut r = http::Response::new(Frames(frames.into()));
        if let Some(s) = headers_status {
            r.headers_mut().insert("grpc-status", HeaderValue::from_static(s));
        }
        Ok::<_, std::convert::Infallible>(r)
    });
    let mut svc = tower::Layer::layer(&GrpcLayer(metrics), inner);
    let call = |path: &str| http::Request::builder().uri(path).body(()).unwrap();

    let ok = svc.ready().await.unwrap().call(call("/skald.ingester.v1.Ingester/Push")).await;
    let body = ok.unwrap().into_body();
    assert_eq!(inflight(&registry), 1, "in flight until its stream ends");
    assert_eq!(count(&registry, &[]), 0);
    drain(body).await;
    assert_eq!(inflight(&registry), 0);
    let push = [("method", "gRPC"), ("route", "/logproto.Pusher/Push"), ("status_code", "success")];
    assert_eq!(count(&registry, &[push[0], push[1], push[2], ("ws", "false")]), 1);

    let failed = svc.ready().await.unwrap().call(call("/skald.ingester.v1.Ingester/Query")).await;
    drain(failed.unwrap().into_body()).await;
    let query = [("route", "/logproto.Querier/Query"), ("status_code", "error")];
    assert_eq!(count(&registry, &query), 1);

    let refused = svc.ready().await.unwrap().call(call("/skald.ingester.v1.Ingester/Series")).await;
    drain(refused.unwrap().into_body()).await;
    let series = [("route", "/logproto.Querier/Series"), ("status_code", "error")];
    assert_eq!(count(&registry, &series), 1);

    // the client hangs up: the body is dropped before its end
    let cut = svc.ready().await.unwrap().call(call("/skald.ingester.v1.Ingester/Tail")).await;
    drop(cut.unwrap());
    let tail = [("route", "/logproto.Querier/Tail"), ("status_code", "cancel")];
    assert_eq!(count(&registry, &tail), 1);
    assert_eq!(inflight(&registry), 0);
}

fn data_frame() -> http_body::Frame<Bytes> {
    http_body::Frame::data(Bytes::from_static(b"y"))
}

/// The sum of `loki_request_duration_seconds` over the series matching `labels`.
fn seconds(registry: &Registry, labels: &[(&str, &str)]) -> f64 {
    histograms(registry, labels).iter().map(|h| h.get_sample_sum()).sum()
}

#[tokio::test]
async fn http_requests_are_observed_once_their_body_is_sent() {
    let registry = Registry::new();
    // a handler whose body takes 300 ms to produce after its head is answered
    let slow = || async {
        let chunks = futures::stream::iter([Ok::<_, std::convert::Infallible>(
            Bytes::from_static(b"first "),
        )])
        .chain(futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(Bytes::from_static(b"last"))
        }));
        Body::from_stream(chunks)
    };
    let app = Router::new()
        .route("/loki/api/v1/query_range", get(slow))
        .layer(axum::middleware::from_fn_with_state(RequestMetrics::new(&registry), super::http));
    let req = || http::Request::builder().uri("/loki/api/v1/query_range").body(Body::empty());
    let route = [("route", "loki_api_v1_query_range"), ("status_code", "200")];

    let response = app.clone().oneshot(req().unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(count(&registry, &route), 0, "not observed while its body is being sent");
    assert_eq!(inflight(&registry), 1);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    assert_eq!(&body[..], b"first last");
    assert_eq!(count(&registry, &route), 1);
    assert_eq!(inflight(&registry), 0);
    assert!(seconds(&registry, &route) >= 0.3, "the time includes the body's");

    // a client that goes away before the body's end: observed then, with the status sent
    let response = app.clone().oneshot(req().unwrap()).await.unwrap();
    drop(response);
    assert_eq!(count(&registry, &route), 2);
    assert_eq!(inflight(&registry), 0);
}
