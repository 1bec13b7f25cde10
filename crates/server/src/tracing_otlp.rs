//! Request spans exported over OTLP/HTTP (protobuf), as Loki exports its traces when an
//! OpenTelemetry endpoint is configured.
//!
//! The `tracing` block keeps Loki's keys (`enabled`, default true as in Loki, and
//! `profiling_enabled`, accepted) and adds `otlp_endpoint`. Nothing is exported unless an
//! endpoint is known: `tracing.otlp_endpoint` (spans go to `<endpoint>/v1/traces`), else the
//! standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is), else `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (plus `/v1/traces`). So by default no span leaves the process.
//!
//! Every HTTP request becomes one SERVER span (`crate::request_log` opens and ends it), named
//! `<method> <route>`, with the OpenTelemetry HTTP attributes (`http.request.method`,
//! `http.route`, `url.path`, `http.response.status_code`) and `org_id`, the tenant. An incoming
//! W3C `traceparent` header makes the span a child in the caller's trace; a parent that says
//! "not sampled" is respected (no span). Spans are sent in batches: every
//! `OTEL_BSP_SCHEDULE_DELAY` milliseconds (5000) or once `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512)
//! wait; at most `OTEL_BSP_MAX_QUEUE_SIZE` (2048) wait, beyond which new spans are dropped
//! and counted. `OTEL_EXPORTER_OTLP_HEADERS` / `OTEL_EXPORTER_OTLP_TRACES_HEADERS`
//! (`key=value,...`) are added to each export, `OTEL_SERVICE_NAME` names the service
//! (default `skald-<target>`). The process sends what is left at shutdown.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::HeaderMap;
use prost::Message;
use serde::{Deserialize, Serialize};
use skald_proto::otlp::common::{any_value, AnyValue, InstrumentationScope, KeyValue};
use skald_proto::otlp::resource::Resource;
use skald_proto::otlp::trace::{span, status, ResourceSpans, ScopeSpans, Span, Status};
use skald_proto::otlp::trace_collector::ExportTraceServiceRequest;
use tokio::sync::{mpsc, oneshot};

/// The `tracing` block.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// Export request spans when an OTLP endpoint is configured (Loki's key and default).
    pub enabled: bool,
    /// Loki's key for profiling labels in spans; accepted, no effect.
    pub profiling_enabled: bool,
    /// OTLP/HTTP base URL (`http://collector:4318`): spans go to `<it>/v1/traces`. Empty: the
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` variables.
    pub otlp_endpoint: String,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig { enabled: true, profiling_enabled: false, otlp_endpoint: String::new() }
    }
}

/// Where spans go, from the config and then the standard variables; `None`: nowhere.
fn traces_url(cfg: &TracingConfig, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if !cfg.enabled {
        return None;
    }
    let base = |e: &str| format!("{}/v1/traces", e.trim_end_matches('/'));
    let set = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    if !cfg.otlp_endpoint.trim().is_empty() {
        return Some(base(cfg.otlp_endpoint.trim()));
    }
    set(env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        .or_else(|| set(env("OTEL_EXPORTER_OTLP_ENDPOINT")).map(|e| base(e.trim())))
}

/// `key=value,key2=value2`, the OTLP headers variables' form (values percent-decoded).
fn parse_headers(v: &str) -> Vec<(String, String)> {
    v.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = url::form_urlencoded::parse(format!("v={}", v.trim()).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            (k.trim().to_string(), v)
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

enum Msg {
    Span(Box<Span>),
    Flush(oneshot::Sender<()>),
}

struct Exporter {
    tx: mpsc::Sender<Msg>,
    dropped: AtomicU64,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// Starts the exporter on `runtime` when an endpoint is configured (see the module docs).
pub fn start(cfg: &TracingConfig, target: &str, runtime: &tokio::runtime::Handle) {
    let env = |k: &str| std::env::var(k).ok();
    let Some(url) = traces_url(cfg, &env) else {
        return;
    };
    let mut headers = Vec::new();
    for var in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"] {
        headers.extend(std::env::var(var).map(|v| parse_headers(&v)).unwrap_or_default());
    }
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("skald-{target}"));
    let queue = usize::try_from(env_number("OTEL_BSP_MAX_QUEUE_SIZE", 2048)).unwrap_or(2048);
    let batch = usize::try_from(env_number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)).unwrap_or(512);
    let delay = Duration::from_millis(env_number("OTEL_BSP_SCHEDULE_DELAY", 5000));
    let timeout = Duration::from_millis(env_number("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000));
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "tracing: cannot build the OTLP client; spans are not exported");
            return;
        }
    };
    let (tx, rx) = mpsc::channel(queue.max(1));
    if EXPORTER.set(Exporter { tx, dropped: AtomicU64::new(0) }).is_err() {
        return;
    }
    tracing::info!(endpoint = %url, service = %service, "tracing: exporting request spans over OTLP/HTTP");
    let sender = Sender { client, url, headers, resource: resource(&service) };
    runtime.spawn(run(rx, sender, batch.max(1), delay));
}

/// Sends what waits and returns once it is sent (or after 5 seconds).
pub async fn shutdown() {
    let Some(e) = EXPORTER.get() else {
        return;
    };
    let (done, wait) = oneshot::channel();
    if e.tx.send(Msg::Flush(done)).await.is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
    }
}

struct Sender {
    client: reqwest::Client,
    url: String,
    headers: Vec<(String, String)>,
    resource: Resource,
}

impl Sender {
    async fn send(&self, spans: Vec<Span>) {
        let n = spans.len();
        let body = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "skald".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let mut req =
            self.client.post(&self.url).header("Content-Type", "application/x-protobuf").body(body);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::warn!(url = %self.url, status = r.status().as_u16(), spans = n, "tracing: the OTLP receiver refused spans")
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, spans = n, "tracing: cannot export spans")
            }
        }
    }
}

async fn run(mut rx: mpsc::Receiver<Msg>, sender: Sender, batch: usize, delay: Duration) {
    let mut spans = Vec::new();
    let mut deadline = tokio::time::Instant::now() + delay;
    loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            () = tokio::time::sleep_until(deadline) => {
                deadline = tokio::time::Instant::now() + delay;
                if !spans.is_empty() {
                    sender.send(std::mem::take(&mut spans)).await;
                }
                report_dropped();
                continue;
            }
        };
        match msg {
            Some(Msg::Span(s)) => {
                spans.push(*s);
                if spans.len() >= batch {
                    sender.send(std::mem::take(&mut spans)).await;
                }
            }
            Some(Msg::Flush(done)) => {
                if !spans.is_empty() {
                    sender.send(std::mem::take(&mut spans)).await;
                }
                let _ = done.send(());
            }
            None => return,
        }
    }
}

fn report_dropped() {
    if let Some(e) = EXPORTER.get() {
        let n = e.dropped.swap(0, Ordering::Relaxed);
        if n > 0 {
            tracing::warn!(spans = n, "tracing: the export queue was full; spans were dropped");
        }
    }
}

fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![
            kv_str("service.name", service),
            kv_str("service.version", env!("CARGO_PKG_VERSION")),
        ],
        ..Default::default()
    }
}

fn kv_str(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) }),
        ..Default::default()
    }
}

fn kv_int(key: &str, v: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(v)) }),
        ..Default::default()
    }
}

/// A request's span while it runs.
#[derive(Debug, Clone)]
pub struct RequestSpan {
    /// The trace (the caller's, or a new one).
    pub trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    trace_state: String,
    start_ns: u64,
}

impl RequestSpan {
    /// The trace id in hex, as logs show it.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A W3C `traceparent` (`00-<trace id>-<parent id>-<flags>`): the ids and whether sampled.
/// `None` when it does not parse or has an all-zero id (the header is then ignored).
fn parse_traceparent(v: &str) -> Option<([u8; 16], [u8; 8], bool)> {
    let mut parts = v.trim().split('-');
    let version = parts.next()?;
    let (trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?);
    // version 00 has exactly four parts; a later version may add more
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let trace: [u8; 16] = unhex(trace)?;
    let parent: [u8; 8] = unhex(parent)?;
    let flags: [u8; 1] = unhex(flags)?;
    if trace == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some((trace, parent, flags[0] & 1 == 1))
}

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        // std's RandomState keys come from the OS's random source
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u64(now_ns());
        let v = h.finish();
        if v != 0 {
            return v;
        }
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Opens a request's span: `None` when spans are not exported or the caller's trace is not
/// sampled.
pub fn begin(headers: &HeaderMap) -> Option<RequestSpan> {
    EXPORTER.get()?;
    let parent =
        headers.get("traceparent").and_then(|v| v.to_str().ok()).and_then(parse_traceparent);
    let (trace_id, parent) = match parent {
        Some((_, _, false)) => return None,
        Some((trace, parent, true)) => (trace, Some(parent)),
        None => {
            let mut t = [0u8; 16];
            t[..8].copy_from_slice(&random_u64().to_be_bytes());
            t[8..].copy_from_slice(&random_u64().to_be_bytes());
            (t, None)
        }
    };
    let trace_state = match parent {
        Some(_) => {
            headers.get("tracestate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
        }
        None => String::new(),
    };
    Some(RequestSpan {
        trace_id,
        span_id: random_u64().to_be_bytes(),
        parent,
        trace_state,
        start_ns: now_ns(),
    })
}

/// What a finished request says about itself.
pub struct Finished<'a> {
    /// `GET`, ...
    pub method: &'a str,
    /// The matched route (`/loki/api/v1/query_range`), or `other`.
    pub route: &'a str,
    /// The request's path.
    pub path: &'a str,
    /// The response status.
    pub status: u16,
    /// The tenant (`X-Scope-OrgID`), empty when none.
    pub org_id: &'a str,
}

/// Ends a request's span and queues it for export (dropped, and counted, when the queue is
/// full).
pub fn end(s: RequestSpan, f: &Finished<'_>) {
    let Some(e) = EXPORTER.get() else {
        return;
    };
    let mut attributes = vec![
        kv_str("http.request.method", f.method),
        kv_str("http.route", f.route),
        kv_str("url.path", f.path),
        kv_int("http.response.status_code", i64::from(f.status)),
    ];
    if !f.org_id.is_empty() {
        attributes.push(kv_str("org_id", f.org_id));
    }
    // server spans: only a 5xx is the server's error (OpenTelemetry's HTTP conventions)
    let status = (f.status >= 500).then(|| Status {
        code: status::StatusCode::Error as i32,
        message: format!("HTTP {}", f.status),
    });
    // sampled, and whether the parent came from another process
    let flags = 0x1 | 0x100 | if s.parent.is_some() { 0x200 } else { 0 };
    let span = Span {
        trace_id: s.trace_id.to_vec(),
        span_id: s.span_id.to_vec(),
        trace_state: s.trace_state,
        parent_span_id: s.parent.map(|p| p.to_vec()).unwrap_or_default(),
        flags,
        name: format!("{} {}", f.method, f.route),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: s.start_ns,
        end_time_unix_nano: now_ns().max(s.start_ns),
        attributes,
        status,
        ..Default::default()
    };
    if e.tx.try_send(Msg::Span(Box::new(span))).is_err() {
        e.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn traceparent_parses_as_w3c_says() {
        let (t, p, sampled) =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(hex(&t), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&p), "00f067aa0ba902b7");
        assert!(sampled);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!parse_traceparent(unsampled).unwrap().2);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        // a later version may carry more
        assert!(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
            .is_some());
    }

    #[test]
    fn the_endpoint_comes_from_the_config_then_the_standard_variables() {
        let cfg = TracingConfig::default();
        let none = |_: &str| None;
        assert_eq!(traces_url(&cfg, &none), None);
        let generic =
            |k: &str| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://c:4318/".into());
        assert_eq!(traces_url(&cfg, &generic).as_deref(), Some("http://c:4318/v1/traces"));
        let both = |k: &str| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://c:4318".to_string()),
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" => Some("http://t:4318/custom".to_string()),
            _ => None,
        };
        assert_eq!(traces_url(&cfg, &both).as_deref(), Some("http://t:4318/custom"));
        let mut own = cfg.clone();
        own.otlp_endpoint = "http://mine:4318".into();
        assert_eq!(traces_url(&own, &both).as_deref(), Some("http://mine:4318/v1/traces"));
        own.enabled = false;
        assert_eq!(traces_url(&own, &both), None);
    }

    #[test]
    fn headers_variables_parse() {
        assert_eq!(
            parse_headers("Authorization=Basic%20abc, x-tenant = t1,bad"),
            vec![
                ("Authorization".to_string(), "Basic abc".to_string()),
                ("x-tenant".to_string(), "t1".to_string())
            ]
        );
    }
}
