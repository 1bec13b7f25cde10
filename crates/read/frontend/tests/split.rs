//! The frontend's query path against the real querier: a [`RoundTrip`] that runs each request
//! on the querier's own router (in process, over an in-memory store), and every answer of a
//! split query compared byte for byte with the querier's answer to the whole query (`stats`
//! aside), over metric and log queries, several split intervals, limits, directions and
//! unaligned steps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use futures::future::BoxFuture;
use skald_chunk::ChunkBuilder;
use skald_chunk_store::{ChunkStore, ObjectChunkStore};
use skald_common::limits::Limits;
use skald_common::tenant::TenantId;
use skald_frontend::{
    FrontendError, HttpRequest, HttpResponse, QueryFrontend, QueryFrontendConfig, RoundTrip,
};
use skald_index::{ChunkRef, IndexStore, MemIndexStore};
use skald_model::{Entry, Label, Labels};
use skald_querier::{Querier, QuerierConfig};
use tower::ServiceExt;

const SECOND: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
/// 2026-11-01T00:00:00Z, where the data set starts (six hours of it).
const T0: i64 = 1_793_491_200 * SECOND;
const TENANT: &str = "fake";

/// Runs each request on the querier's router, counting the requests and the part requests.
struct QuerierRoundTrip {
    router: Router,
    requests: AtomicUsize,
    parts: AtomicUsize,
    shards: AtomicUsize,
}

impl RoundTrip for QuerierRoundTrip {
    fn round_trip(
        &self,
        tenant: &str,
        req: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, FrontendError>> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if req.uri.contains("skald_part_start=") {
            self.parts.fetch_add(1, Ordering::SeqCst);
        }
        if req.uri.contains("skald_shard=") {
            self.shards.fetch_add(1, Ordering::SeqCst);
        }
        let router = self.router.clone();
        let tenant = tenant.to_string();
        Box::pin(async move {
            let mut b = Request::builder().method(req.method.as_str()).uri(req.uri.as_str());
            for (n, v) in &req.headers {
                b = b.header(n.as_str(), v.as_str());
            }
            let r = b.extension(TenantId(tenant)).body(Body::from(req.body)).unwrap();
            let resp = router.oneshot(r).await.unwrap();
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap().to_string()))
                .collect();
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
            Ok(HttpResponse { status, headers, body })
        })
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_vec(pairs.iter().map(|(k, v)| Label::new(*k, *v)).collect())
}

async fn write_chunk(
    chunks: &ObjectChunkStore,
    index: &MemIndexStore,
    labels: &Labels,
    entries: &[(i64, String)],
) {
    let mut builder = ChunkBuilder::new(256 * 1024);
    for (ts, line) in entries {
        builder
            .append(&Entry { ts: *ts, line: line.clone().into(), structured_metadata: vec![] })
            .unwrap();
    }
    let encoded = builder.finish().unwrap();
    let stats_bytes = entries.iter().map(|(_, l)| l.len() as u64).sum();
    let chunk_ref = ChunkRef::of_encoded(skald_model::fingerprint(labels), &encoded, stats_bytes);
    chunks.put(&chunk_ref.key(TENANT), encoded.bytes.into()).await.unwrap();
    index.write_chunks(TENANT, vec![(labels.clone(), chunk_ref)]).await.unwrap();
}

/// The stores: four streams over six hours, one chunk per stream and hour, entries at
/// irregular times (some on whole minutes, so on split edges), logfmt lines.
async fn stores() -> (Arc<ObjectChunkStore>, Arc<MemIndexStore>) {
    let chunks = Arc::new(ObjectChunkStore::in_memory());
    let index = Arc::new(MemIndexStore::new());
    let streams = [
        labels(&[("app", "a"), ("host", "h1")]),
        labels(&[("app", "a"), ("host", "h2")]),
        labels(&[("app", "b"), ("host", "h1")]),
        labels(&[("app", "c"), ("host", "h3")]),
    ];
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (si, stream) in streams.iter().enumerate() {
        let mut ts = T0 + si as i64 * 7 * SECOND;
        for hour in 0..6 {
            let mut entries = Vec::new();
            while ts < T0 + (hour + 1) * HOUR {
                let n = next();
                let level = ["info", "warn", "error"][(n % 3) as usize];
                let line =
                    format!("level={level} n={} msg=\"req {}\" dur={}ms", n % 10, n % 97, n % 500);
                entries.push((ts, line));
                // whole minutes now and then, else an odd gap
                ts = if n % 7 == 0 {
                    ts - ts.rem_euclid(MINUTE) + MINUTE
                } else {
                    ts + (n % 50 + 5) as i64 * SECOND + (n % 1000) as i64 * 1_000_000
                };
            }
            write_chunk(&chunks, &index, stream, &entries).await;
        }
    }
    (chunks, index)
}

fn querier_router(
    chunks: &Arc<ObjectChunkStore>,
    index: &Arc<MemIndexStore>,
    limits: &Limits,
) -> Router {
    let q =
        Querier::new(QuerierConfig::default(), limits.clone(), chunks.clone(), index.clone(), None);
    skald_querier::http::router(Arc::new(q))
}

fn get(params: &[(&str, String)]) -> HttpRequest {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    HttpRequest {
        method: "GET".into(),
        uri: format!("/loki/api/v1/query_range?{}", q.finish()),
        headers: vec![("X-Scope-OrgID".into(), TENANT.into())],
        body: Default::default(),
    }
}

/// The body without its `stats` object (the last member of `data`).
fn without_stats(body: &[u8]) -> String {
    let s = String::from_utf8(body.to_vec()).unwrap();
    match s.rfind(",\"stats\":") {
        Some(i) if s.ends_with("},\"status\":\"success\"}") => s[..i].to_string(),
        _ => s,
    }
}

fn stats_of(body: &[u8]) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["data"]["stats"]["summary"].clone()
}

struct Setup {
    querier: Arc<QuerierRoundTrip>,
    frontend: QueryFrontend,
}

fn setup(chunks: &Arc<ObjectChunkStore>, index: &Arc<MemIndexStore>, limits: Limits) -> Setup {
    let querier = Arc::new(QuerierRoundTrip {
        router: querier_router(chunks, index, &limits),
        requests: AtomicUsize::new(0),
        parts: AtomicUsize::new(0),
        shards: AtomicUsize::new(0),
    });
    let frontend = QueryFrontend::new(querier.clone(), limits, QueryFrontendConfig::default());
    Setup { querier, frontend }
}

/// The whole query on the querier, and through the frontend; returns whether it was split.
async fn compare(s: &Setup, req: HttpRequest) -> bool {
    compare_status(s, req).await.0
}

/// [`compare`], and the status of the answer.
async fn compare_status(s: &Setup, req: HttpRequest) -> (bool, u16) {
    let whole = s.querier.round_trip(TENANT, req.clone()).await.unwrap();
    let parts_before = s.querier.parts.load(Ordering::SeqCst);
    let shards_before = s.querier.shards.load(Ordering::SeqCst);
    let split = s.frontend.query_range(TENANT, req.clone()).await;
    let ran = s.querier.parts.load(Ordering::SeqCst) - parts_before;
    let sharded = s.querier.shards.load(Ordering::SeqCst) > shards_before;
    assert_eq!(split.status, whole.status, "{}\n{}", req.uri, String::from_utf8_lossy(&split.body));
    assert_eq!(split.header("Content-Type"), whole.header("Content-Type"), "{}", req.uri);
    assert_eq!(without_stats(&split.body), without_stats(&whole.body), "{}", req.uri);
    if split.status == 200 && ran > 0 {
        // the splits whose answers were used: a log query may drop some that started
        let splits = stats_of(&split.body)["splits"].as_u64().unwrap();
        // (a query sharded inside one split reports no splits, as one run whole)
        assert!((splits >= 1 || sharded) && splits <= ran as u64, "{splits} of {ran}: {}", req.uri);
    }
    if ran > 0 && split.status == 200 {
        NON_EMPTY_SPLIT.fetch_add(
            usize::from(without_stats(&split.body).contains("\"values\":[[")),
            Ordering::SeqCst,
        );
    }
    (ran > 0, split.status)
}

/// Split answers that hold data, over every test.
static NON_EMPTY_SPLIT: AtomicUsize = AtomicUsize::new(0);

const METRIC_QUERIES: &[&str] = &[
    r#"count_over_time({app="a"}[5m])"#,
    r#"sum by (host) (rate({app=~".+"}[10m]))"#,
    r#"bytes_over_time({app="b"} |= "warn" [90s])"#,
    r#"max_over_time({app=~".+"} | logfmt | unwrap dur [3m]) by (app)"#,
    r#"avg_over_time({app="a"} | logfmt | unwrap n [4m]) by (host)"#,
    r#"quantile_over_time(0.5, {app=~".+"} | logfmt | unwrap dur [6m]) by (app)"#,
    r#"topk(2, sum by (host) (count_over_time({app=~".+"}[2m])))"#,
    r#"count_over_time({app="a"}[20m] offset 5m)"#,
    r#"sum(count_over_time({app="a"}[1m])) / sum(count_over_time({app=~".+"}[1m]))"#,
    r#"sum by (level) (count_over_time({app=~".+"} | logfmt [75m])) > 3"#,
    r#"absent_over_time({app="none"}[5m])"#,
    r#"sum by (app) (count_over_time({app=~".+"} | logfmt | level="error" [1m])) or vector(0)"#,
    "vector(1) * 2",
];

const LOG_QUERIES: &[&str] = &[
    r#"{app=~".+"}"#,
    r#"{app="a"} |= "warn""#,
    r#"{app=~".+"} | logfmt | n > 3"#,
    r#"{app=~"a|b"} | logfmt | line_format "{{.level}} {{.msg}}""#,
    r#"{app="c"} | logfmt | level="error" | drop dur"#,
    r#"{app="none"}"#,
];

fn limits(split: Duration) -> Limits {
    Limits {
        split_queries_by_interval: split,
        max_query_parallelism: 3,
        max_query_series: 100_000,
        ..Limits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_metric_queries_answer_as_the_whole() {
    let (chunks, index) = stores().await;
    let steps = ["60", "37", "45.5", "300", "3600", "2m", "1.234567891", "7200"];
    let mut split_runs = 0;
    let mut runs = 0;
    for (i, split) in [15u64, 60, 120].into_iter().enumerate() {
        let s = setup(&chunks, &index, limits(Duration::from_secs(split * 60)));
        for (j, q) in METRIC_QUERIES.iter().enumerate() {
            for k in 0..3 {
                let n = (i * 31 + j * 7 + k * 13) as i64;
                let step = steps[(i + j + k) % steps.len()];
                let start = T0 - 10 * MINUTE + (n * 523 % 180) * MINUTE + n * 1_234_567;
                let end = start + (n * 97 % 300) * MINUTE + 17 * SECOND;
                let req = get(&[
                    ("query", q.to_string()),
                    ("start", start.to_string()),
                    ("end", end.to_string()),
                    ("step", step.to_string()),
                ]);
                runs += 1;
                split_runs += usize::from(compare(&s, req).await);
            }
        }
    }
    assert!(split_runs * 2 > runs, "too few split runs: {split_runs} of {runs}");
    let with_data = NON_EMPTY_SPLIT.load(Ordering::SeqCst);
    assert!(with_data * 3 > split_runs * 2, "too few split answers with data: {with_data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_log_queries_answer_as_the_whole() {
    let (chunks, index) = stores().await;
    let mut split_runs = 0;
    let mut runs = 0;
    for (i, split) in [10u64, 60, 90].into_iter().enumerate() {
        let s = setup(&chunks, &index, limits(Duration::from_secs(split * 60)));
        for (j, q) in LOG_QUERIES.iter().enumerate() {
            for k in 0..6 {
                let n = (i * 31 + j * 7 + k * 13) as i64;
                let limit = [1, 7, 100, 1000, 5000][(i + j + k) % 5];
                let direction = ["forward", "backward"][k % 2];
                let mut start = T0 - 10 * MINUTE + (n * 523 % 200) * MINUTE + n * 1_234_567;
                let mut end = start + (n * 97 % 300) * MINUTE + 17 * SECOND;
                if k % 3 == 0 {
                    start -= start.rem_euclid(MINUTE);
                    end -= end.rem_euclid(MINUTE);
                }
                let mut p = vec![
                    ("query", q.to_string()),
                    ("start", start.to_string()),
                    ("end", end.to_string()),
                    ("limit", limit.to_string()),
                    ("direction", direction.to_string()),
                ];
                if k == 5 {
                    // thinned: runs whole
                    p.push(("interval", "30s".into()));
                }
                let mut req = get(&p);
                if k == 4 {
                    req.headers.push((
                        "X-Loki-Response-Encoding-Flags".into(),
                        "categorize-labels".into(),
                    ));
                }
                runs += 1;
                let was_split = compare(&s, req).await;
                assert!(!(was_split && k == 5), "a query with interval was split");
                split_runs += usize::from(was_split);
            }
        }
    }
    assert!(split_runs * 2 > runs, "too few split runs: {split_runs} of {runs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_unsplit_queries_answer_as_the_querier() {
    let (chunks, index) = stores().await;
    let mut l = limits(Duration::from_secs(3600));
    l.max_query_series = 2;
    l.max_entries_limit_per_query = 500;
    let s = setup(&chunks, &index, l);
    let range = |q: &str, extra: &[(&'static str, &str)]| {
        let mut p = vec![
            ("query", q.to_string()),
            ("start", T0.to_string()),
            ("end", (T0 + 5 * HOUR).to_string()),
        ];
        p.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        get(&p)
    };
    // the series limit over the merged matrix (each split holds fewer series than the whole)
    let q = r#"count_over_time({app=~"a|b"}[1m])"#;
    assert_eq!(compare_status(&s, range(q, &[("step", "60")])).await, (true, 400));
    // a pipeline error in the splits
    let q = r#"sum by (host) (sum_over_time({app="a"} | regexp "(?P<x>req)" | unwrap x [1m]))"#;
    assert_eq!(compare_status(&s, range(q, &[])).await, (true, 400));
    // refused by the checks: forwarded whole, the querier answers
    for (q, extra) in [
        (r#"{app="a"}"#, [("limit", "501")]),
        (r#"{app="a"}"#, [("step", "0")]),
        ("{", [("limit", "5")]),
        (r#"{app="a"}"#, [("direction", "sideways")]),
    ] {
        assert_eq!(compare_status(&s, range(q, &extra)).await, (false, 400), "{q} {extra:?}");
    }
    // within one split
    let short = get(&[
        ("query", r#"count_over_time({app="a"}[1m])"#.into()),
        ("start", (T0 + 10 * MINUTE).to_string()),
        ("end", (T0 + 20 * MINUTE).to_string()),
    ]);
    assert!(!compare(&s, short).await);
    // splitting off
    let off = setup(&chunks, &index, limits(Duration::ZERO));
    assert!(!compare(&off, range(r#"count_over_time({app="a"}[1m])"#, &[("step", "60")])).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_query_with_a_small_limit_stops_early() {
    let (chunks, index) = stores().await;
    let mut l = limits(Duration::from_secs(600));
    // many splits may run at once, yet the first runs alone: it holds the limit
    l.max_query_parallelism = 16;
    let s = setup(&chunks, &index, l);
    for direction in ["forward", "backward"] {
        let before = s.querier.parts.load(Ordering::SeqCst);
        let req = get(&[
            ("query", r#"{app=~".+"}"#.into()),
            ("start", T0.to_string()),
            ("end", (T0 + 5 * HOUR).to_string()),
            ("limit", "5".into()),
            ("direction", direction.into()),
        ]);
        assert!(compare(&s, req).await);
        // 30 splits of ten minutes; five entries are in the first
        let ran = s.querier.parts.load(Ordering::SeqCst) - before;
        assert_eq!(ran, 1, "{direction}");
        // a limit no split fills: the splits in flight double (1, 2, 4, ...), all answer
        let before = s.querier.parts.load(Ordering::SeqCst);
        let req = get(&[
            ("query", r#"{app=~".+"} |= "9""#.into()),
            ("start", T0.to_string()),
            ("end", (T0 + 5 * HOUR).to_string()),
            ("limit", "4000".into()),
            ("direction", direction.into()),
        ]);
        assert!(compare(&s, req).await);
        let ran = s.querier.parts.load(Ordering::SeqCst) - before;
        assert!(ran > 1, "{direction}: {ran}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_forwards_other_routes_and_formats_locally() {
    let (chunks, index) = stores().await;
    let s = setup(&chunks, &index, limits(Duration::from_secs(3600)));
    let fe = Arc::new(s.frontend);
    let router = skald_frontend::router(fe);
    let send = |uri: &str| {
        let r = Request::builder()
            .uri(uri)
            .header("X-Scope-OrgID", TENANT)
            .extension(TenantId(TENANT.into()))
            .body(Body::empty())
            .unwrap();
        let router = router.clone();
        async move {
            let resp = router.oneshot(r).await.unwrap();
            let status = resp.status().as_u16();
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let before = s.querier.requests.load(Ordering::SeqCst);
    let (status, body) = send(&format!("/loki/api/v1/labels?start={T0}&end={}", T0 + HOUR)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"app\""), "{body}");
    assert_eq!(s.querier.requests.load(Ordering::SeqCst), before + 1);
    let (status, body) =
        send("/loki/api/v1/format_query?query=%7Bapp%3D%22a%22%7D%7C%3D%22x%22").await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"data":"{app=\"a\"} |= \"x\"","status":"success"}"#)
    );
    assert_eq!(s.querier.requests.load(Ordering::SeqCst), before + 1, "format_query went out");
    let (status, body) = send(&format!(
        "/loki/api/v1/query_range?query=count_over_time(%7Bapp%3D%22a%22%7D%5B1m%5D)&start={T0}&end={}&step=60",
        T0 + 3 * HOUR
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    // three splits of an hour, one shard each
    assert_eq!(v["data"]["stats"]["summary"]["splits"], 3);
    assert_eq!(v["data"]["stats"]["summary"]["shards"], 3);
    let (status, _) = send("/loki/api/v1/tail?query=%7Bapp%3D%22a%22%7D").await;
    assert_eq!(status, 404, "the live tail is not the frontend's");
}

/// Many streams (3 apps x 3 hosts x 4 pods) over three hours, one chunk per stream and hour,
/// logfmt lines: enough for queries to get 2 to 16 shards with a tiny
/// `tsdb_max_bytes_per_shard`, and series whose streams lie in different shards once a
/// pipeline drops or rewrites labels.
async fn many_streams() -> (Arc<ObjectChunkStore>, Arc<MemIndexStore>) {
    let chunks = Arc::new(ObjectChunkStore::in_memory());
    let index = Arc::new(MemIndexStore::new());
    let mut seed: u64 = 0x5ead;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut si = 0;
    for app in ["a", "b", "c"] {
        for host in ["h1", "h2", "h3"] {
            for pod in 0..4 {
                let pod = format!("p{pod}");
                let stream = labels(&[("app", app), ("host", host), ("pod", &pod)]);
                si += 1;
                let mut ts = T0 + si * 3 * SECOND;
                for hour in 0..3 {
                    let mut entries = Vec::new();
                    while ts < T0 + (hour + 1) * HOUR {
                        let n = next();
                        let level = ["info", "warn", "error"][(n % 3) as usize];
                        let dur = match n % 11 {
                            0 => "0".to_string(),
                            1 => "-0".to_string(),
                            _ => format!("{}", n % 500),
                        };
                        let line = format!("level={level} n={} dur={dur}", n % 10);
                        entries.push((ts, line));
                        ts = if n % 7 == 0 {
                            ts - ts.rem_euclid(MINUTE) + MINUTE
                        } else {
                            ts + (n % 90 + 5) as i64 * SECOND + (n % 1000) as i64 * 1_000_000
                        };
                    }
                    write_chunk(&chunks, &index, &stream, &entries).await;
                }
            }
        }
    }
    (chunks, index)
}

const SHARDED_QUERIES: &[&str] = &[
    r#"count_over_time({app=~".+"}[5m])"#,
    r#"sum by (level) (count_over_time({app=~".+"} | logfmt [10m]))"#,
    r#"sum without (pod) (bytes_over_time({app=~"a|b"}[7m]))"#,
    r#"count_over_time({app="a"} | logfmt | drop pod, n, dur [3m])"#,
    r#"rate({app=~".+"} | logfmt | label_format pod="{{.level}}" | drop n, dur [5m])"#,
    r#"sum by (host) (rate({app=~".+"}[10m]))"#,
    r#"sum(bytes_rate({app=~".+"} |= "warn" [4m]))"#,
    r#"max_over_time({app=~".+"} | logfmt | unwrap dur [5m]) by (app)"#,
    r#"max by (host) (max_over_time({app=~".+"} | logfmt | drop n | unwrap dur [6m]))"#,
    r#"min_over_time({app="b"} | logfmt | drop pod, n, level | unwrap dur [3m])"#,
    // evaluated by the frontend over the legs' combined matrices
    r#"topk(2, sum by (host) (count_over_time({app=~".+"}[2m])))"#,
    r#"sum(rate({app=~".+"}[1m])) / sum(count_over_time({app=~".+"}[1m]))"#,
    r#"avg by (app) (count_over_time({app=~".+"}[3m]))"#,
    r#"quantile_over_time(0.9, {app=~".+"} | logfmt | unwrap dur [5m])"#,
    r#"sum by (app) (bytes_over_time({app=~".+"} |= "warn" [4m] offset 2m))"#,
    // not shardable: run unsharded
    r#"sum by (app) (avg_over_time({app=~".+"} | logfmt | unwrap n [4m] offset 2m))"#,
    r#"avg_over_time({app="a"} | logfmt | unwrap n [4m]) by (host)"#,
    r#"sum(sum_over_time({app=~".+"} | logfmt | unwrap dur [2m]))"#,
    r#"absent_over_time({app="nope"}[5m])"#,
];
/// How many of [`SHARDED_QUERIES`] (the first ones) are shardable.
const SHARDABLE: usize = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_metric_queries_answer_as_the_whole() {
    let (chunks, index) = many_streams().await;
    let steps = ["60", "37", "300", "1.234567891", "900"];
    let (mut sharded_runs, mut most) = (0, 0);
    for (i, split) in [0u64, 60, 45].into_iter().enumerate() {
        for (b, bytes) in [6u64 << 10, 20 << 10, 64 << 10].into_iter().enumerate() {
            let limits = Limits {
                tsdb_max_bytes_per_shard: bytes,
                tsdb_max_query_parallelism: 16,
                ..limits(Duration::from_secs(split * 60))
            };
            let s = setup(&chunks, &index, limits);
            for (j, q) in SHARDED_QUERIES.iter().enumerate() {
                let n = (i * 31 + b * 5 + j * 7) as i64;
                let step = steps[(i + b + j) % steps.len()];
                let start = T0 - 10 * MINUTE + (n * 523 % 120) * MINUTE + n * 1_234_567;
                let end = start + (n * 97 % 150) * MINUTE + 17 * SECOND;
                let req = get(&[
                    ("query", q.to_string()),
                    ("start", start.to_string()),
                    ("end", end.to_string()),
                    ("step", step.to_string()),
                ]);
                let before = s.querier.shards.load(Ordering::SeqCst);
                compare(&s, req.clone()).await;
                let legs = s.querier.shards.load(Ordering::SeqCst) - before;
                let shardable = j < SHARDABLE;
                assert!(shardable || legs == 0, "{q} was sharded");
                if legs > 0 {
                    sharded_runs += 1;
                    most = most.max(legs);
                    let answer = s.frontend.query_range(TENANT, req).await;
                    let stats = stats_of(&answer.body);
                    assert!(stats["shards"].as_u64().unwrap() >= 2, "{q}: {stats}");
                }
            }
        }
    }
    assert!(sharded_runs > 40, "too few sharded runs: {sharded_runs}");
    assert!(most >= 16, "at most {most} shard legs");
}

/// Instant queries are sharded as the splits of range queries are, and answer as the whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_instant_queries_answer_as_the_whole() {
    let (chunks, index) = many_streams().await;
    let (mut sharded_runs, mut compared, mut with_data) = (0, 0, 0);
    for bytes in [6u64 << 10, 20 << 10] {
        let limits = Limits {
            tsdb_max_bytes_per_shard: bytes,
            tsdb_max_query_parallelism: 16,
            ..limits(Duration::from_secs(3600))
        };
        let s = setup(&chunks, &index, limits);
        for (j, q) in SHARDED_QUERIES.iter().enumerate() {
            // ranges long enough to read many streams' data
            let q = q.replace("[5m]", "[90m]").replace("[10m]", "[2h]").replace("[4m]", "[70m]");
            for (k, at) in
                [T0 + 30 * MINUTE, T0 + 97 * MINUTE + 123_456_789, T0 + 4 * HOUR].iter().enumerate()
            {
                let mut req = get(&[("query", q.clone()), ("time", at.to_string())]);
                req.uri = req.uri.replace("/query_range?", "/query?");
                let whole = s.querier.round_trip(TENANT, req.clone()).await.unwrap();
                let before = s.querier.shards.load(Ordering::SeqCst);
                let answer = s.frontend.query_instant(TENANT, req.clone()).await;
                let legs = s.querier.shards.load(Ordering::SeqCst) - before;
                assert_eq!(
                    answer.status,
                    whole.status,
                    "{q} at {k}: {}",
                    String::from_utf8_lossy(&answer.body)
                );
                assert_eq!(answer.header("Content-Type"), whole.header("Content-Type"), "{q}");
                assert_eq!(without_stats(&answer.body), without_stats(&whole.body), "{q} at {k}");
                compared += 1;
                with_data += usize::from(without_stats(&whole.body).contains("\"value\":["));
                assert!(j < SHARDABLE || legs == 0, "{q} was sharded");
                if legs > 0 {
                    sharded_runs += 1;
                    assert!(stats_of(&answer.body)["shards"].as_u64().unwrap() >= 2, "{q}");
                }
            }
        }
    }
    assert!(compared >= 2 * 3 * SHARDED_QUERIES.len(), "{compared}");
    assert!(with_data * 2 > compared, "{with_data} of {compared} with data");
    assert!(sharded_runs > 20, "too few sharded runs: {sharded_runs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallelise_shardable_queries_off_never_shards() {
    let (chunks, index) = many_streams().await;
    let limits = Limits {
        tsdb_max_bytes_per_shard: 1 << 10,
        tsdb_max_query_parallelism: 16,
        ..limits(Duration::from_secs(3600))
    };
    let querier = Arc::new(QuerierRoundTrip {
        router: querier_router(&chunks, &index, &limits),
        requests: AtomicUsize::new(0),
        parts: AtomicUsize::new(0),
        shards: AtomicUsize::new(0),
    });
    let config = QueryFrontendConfig { parallelise_shardable_queries: false, ..Default::default() };
    let s =
        Setup { querier: querier.clone(), frontend: QueryFrontend::new(querier, limits, config) };
    let req = get(&[
        ("query", r#"sum by (host) (rate({app=~".+"}[10m]))"#.into()),
        ("start", T0.to_string()),
        ("end", (T0 + 2 * HOUR).to_string()),
    ]);
    assert!(compare(&s, req).await);
    assert_eq!(s.querier.shards.load(Ordering::SeqCst), 0);
}
