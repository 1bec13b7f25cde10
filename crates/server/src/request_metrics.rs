//! `loki_request_duration_seconds` and `loki_inflight_requests`, the metrics Loki's Writes,
//! Reads and Operational dashboards are built on, with Loki's label values:
//!
//! - HTTP: `method` is the request's method, `route` the matched route's template made a
//!   label value as Loki's server does it (every run of characters other than letters and
//!   digits becomes `_`, trimmed, lowercased: `/loki/api/v1/label/{name}/values` is
//!   `loki_api_v1_label_name_values`; no match is `other`), `status_code` the response's
//!   status, `ws` whether it was a WebSocket upgrade. A request is observed when its response
//!   body has been sent whole (or dropped: the client went away), as Loki's server observes
//!   it once the handler, which writes the body, returns; a WebSocket upgrade (the live tail)
//!   is observed when the upgrade is answered.
//! - gRPC: `method` is `gRPC`, `route` the method's path under Loki's name for it (Skald's
//!   ingester's `Push` is Loki's `/logproto.Pusher/Push`, see [`grpc_route`]), `status_code`
//!   `success`, `cancel` or `error`, `ws` `false`. A streaming call is observed when its
//!   response stream ends.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{self, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, IntGaugeVec, Opts, Registry};

/// The request histogram and the in-flight gauge, shared by the HTTP and gRPC servers.
#[derive(Clone)]
pub struct RequestMetrics {
    duration: HistogramVec,
    inflight: IntGaugeVec,
}

/// Loki's buckets for `loki_request_duration_seconds` (dskit's `instrument.DefBuckets`).
const BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0];

impl RequestMetrics {
    /// Creates the metrics and registers them into `registry` (a duplicate registration is
    /// logged; the metrics still count, unexported).
    pub fn new(registry: &Registry) -> Self {
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "loki_request_duration_seconds",
                "Time (in seconds) spent serving HTTP requests.",
            )
            .buckets(BUCKETS.to_vec()),
            &["method", "route", "status_code", "ws"],
        )
        .expect("constant metric name and labels are valid");
        let inflight = IntGaugeVec::new(
            Opts::new("loki_inflight_requests", "Current number of inflight requests."),
            &["method", "route"],
        )
        .expect("constant metric name and labels are valid");
        for c in [
            Box::new(duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(inflight.clone()),
        ] {
            if let Err(error) = registry.register(c) {
                tracing::warn!(%error, "request metric not registered");
            }
        }
        RequestMetrics { duration, inflight }
    }

    fn start(&self, method: &str, route: &str) -> InFlight {
        let gauge = self.inflight.with_label_values(&[method, route]);
        gauge.inc();
        InFlight { gauge, start: Instant::now() }
    }

    fn observe(&self, method: &str, route: &str, status: &str, ws: bool, took: Duration) {
        let ws = if ws { "true" } else { "false" };
        self.duration.with_label_values(&[method, route, status, ws]).observe(took.as_secs_f64());
    }
}

/// One request in flight: leaves the gauge when dropped (also when the request is cancelled).
struct InFlight {
    gauge: prometheus::IntGauge,
    start: Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// A route template as Loki's server makes it a label value: runs of characters other than
/// ASCII letters and digits become `_`, leading and trailing `_` go, all lowercase; empty is
/// `root`.
pub fn route_label(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    for c in template.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_');
    if trimmed.is_empty() {
        "root".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Whether the request asks for a WebSocket upgrade (`Connection: upgrade`,
/// `Upgrade: websocket`), Loki's `ws="true"`.
pub fn is_websocket(headers: &HeaderMap) -> bool {
    let has = |name: http::header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(http::header::CONNECTION, "upgrade") && has(http::header::UPGRADE, "websocket")
}

/// The `method` label of an HTTP request: the standard methods as they are, anything else
/// `OTHER` (a client's invented methods must not grow the series).
fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::PATCH => "PATCH",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// The axum middleware: wrap the whole router with
/// `middleware::from_fn_with_state(metrics, request_metrics::http)`.
pub async fn http(State(m): State<RequestMetrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| route_label(p.as_str()));
    let method = method_label(req.method());
    let ws = is_websocket(req.headers());
    let flight = m.start(method, &route);
    let response = next.run(req).await;
    let status = response.status();
    if ws || status == http::StatusCode::SWITCHING_PROTOCOLS {
        // the tail's socket lives on after the upgrade: the request is its answer
        m.observe(method, &route, status.as_str(), ws, flight.start.elapsed());
        return response;
    }
    let pending =
        Pending { metrics: m, method, route, flight, status: None, http_status: Some(status) };
    response.map(|inner| axum::body::Body::new(ObservedBody { inner, pending: Some(pending) }))
}

/// Loki's name for the route of a Skald gRPC method (the dashboards select Loki's): the
/// ingester's methods are Loki's `logproto.Pusher`/`logproto.Querier` ones, the
/// query-frontend's worker stream is Loki's `frontend.Frontend/Process`; a method Loki has no
/// counterpart for keeps its own path.
pub fn grpc_route(path: &str) -> String {
    let loki = match path {
        "/skald.ingester.v1.Ingester/Push" => "/logproto.Pusher/Push",
        "/skald.ingester.v1.Ingester/Query" => "/logproto.Querier/Query",
        "/skald.ingester.v1.Ingester/QuerySamples" => "/logproto.Querier/QuerySample",
        "/skald.ingester.v1.Ingester/Series" => "/logproto.Querier/Series",
        "/skald.ingester.v1.Ingester/ChunkStats" => "/logproto.Querier/GetStats",
        "/skald.ingester.v1.Ingester/Tail" => "/logproto.Querier/Tail",
        "/skald.frontend.v1.Frontend/Process" => "/frontend.Frontend/Process",
        other if other.starts_with("/skald.") => other,
        // unknown services: one series for all of them
        _ => "other",
    };
    loki.to_string()
}

/// The `status_code` of a gRPC call from its `grpc-status` (absent is success): Loki's
/// `success`, `cancel` (CANCELLED, 1) or `error`.
fn grpc_status_label(status: Option<&http::HeaderValue>) -> &'static str {
    match status.and_then(|v| v.to_str().ok()).map(str::trim) {
        None | Some("0") => "success",
        Some("1") => "cancel",
        Some(_) => "error",
    }
}

/// The tower layer for the tonic server: `Server::builder().layer(GrpcLayer(metrics))`.
#[derive(Clone)]
pub struct GrpcLayer(pub RequestMetrics);

impl<S> tower::Layer<S> for GrpcLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner, metrics: self.0.clone() }
    }
}

/// [`GrpcLayer`]'s service.
#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: RequestMetrics,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ObservedBody<RB>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let route = grpc_route(req.uri().path());
        let metrics = self.metrics.clone();
        let flight = metrics.start("gRPC", &route);
        let call = self.inner.call(req);
        Box::pin(async move {
            let response = call.await?;
            // an error before the stream (trailers-only response) carries its status here
            let status = response.headers().get("grpc-status").map(|v| grpc_status_label(Some(v)));
            let pending =
                Pending { metrics, method: "gRPC", route, flight, status, http_status: None };
            Ok(response.map(|inner| ObservedBody { inner, pending: Some(pending) }))
        })
    }
}

/// What is observed when the response body ends.
struct Pending {
    metrics: RequestMetrics,
    method: &'static str,
    route: String,
    flight: InFlight,
    /// gRPC: set from the response headers or the trailers.
    status: Option<&'static str>,
    /// HTTP: the response's status, whatever becomes of its body.
    http_status: Option<http::StatusCode>,
}

impl Pending {
    fn finish(self, fallback: &'static str) {
        let took = self.flight.start.elapsed();
        let http_status = self.http_status;
        let status = match &http_status {
            Some(s) => s.as_str(),
            None => self.status.unwrap_or(fallback),
        };
        self.metrics.observe(self.method, &self.route, status, false, took);
    }
}

/// A response body that observes the request once it ends: at its end, on an error, or
/// when dropped early. A gRPC call's status is its `grpc-status` (dropped early: the client
/// went away, `cancel`); an HTTP request's is its response's status.
pub struct ObservedBody<B> {
    inner: B,
    pending: Option<Pending>,
}

impl<B> http_body::Body for ObservedBody<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(trailers), Some(p)) = (frame.trailers_ref(), this.pending.as_mut()) {
                    p.status = Some(grpc_status_label(trailers.get("grpc-status")));
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(p) = this.pending.take() {
                    p.finish("error");
                }
            }
            Poll::Ready(None) => {
                if let Some(p) = this.pending.take() {
                    p.finish("success");
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for ObservedBody<B> {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.finish("cancel");
        }
    }
}

#[cfg(test)]
mod tests;
