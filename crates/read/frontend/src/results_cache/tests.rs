use std::sync::atomic::AtomicUsize;

use skald_cache::{EmbeddedCache, EmbeddedCacheConfig};
use skald_proto::skald_querier_v1::{Label, Series, Vector};

use super::*;

const STEP: i64 = 60_000_000_000;
const HOUR: i64 = 3_600_000_000_000;
/// 2020-09-13T12:26:40Z: far older than any freshness window.
const T0: i64 = 1_600_000_000_000_000_000 / HOUR * HOUR;

/// A querier that answers any part with a matrix computed from the timestamps alone,
/// and counts its calls.
#[derive(Default)]
struct FakeQuerier {
    calls: AtomicUsize,
    status: AtomicU64,
}

fn label(v: &str) -> Vec<Label> {
    vec![Label { name: "job".into(), value: v.into() }]
}

/// What the querier answers for `[start, end]` (stats and store figures not zero).
fn expected(start: i64, end: i64) -> QueryPart {
    let mut a = Series { labels: label("a"), ..Default::default() };
    let mut b = Series { labels: label("b"), ..Default::default() };
    let mut ts = start;
    while ts <= end {
        a.ts.push(ts);
        a.values.push((ts / STEP % 1000) as f64 * 0.5);
        // `b` has a sample every fifth step only (so some slices drop it).
        if (ts / STEP) % 5 == 0 {
            b.ts.push(ts);
            b.values.push(1.0);
        }
        ts += STEP;
    }
    let series = [a, b].into_iter().filter(|s| !s.ts.is_empty()).collect();
    QueryPart {
        result: Some(query_part::Result::Matrix(Matrix { series })),
        stats: Some(EngineStats { total_lines_processed: 7, ..Default::default() }),
        store: Some(StoreFigures { chunks_downloaded: 3, ..Default::default() }),
    }
}

impl RoundTrip for FakeQuerier {
    fn round_trip(
        &self,
        _tenant: &str,
        req: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, FrontendError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let status = self.status.load(Ordering::SeqCst);
        let (_, q) = req.uri.split_once('?').unwrap_or(("", ""));
        let params: Vec<(String, String)> =
            url::form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        let get = |n: &str| {
            params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap_or_default()
        };
        let resp = if status != 0 && status != 200 {
            HttpResponse {
                status: status as u16,
                headers: vec![],
                body: Bytes::from_static(b"boom"),
            }
        } else {
            let start: i64 = get("skald_part_start").parse().unwrap_or(0);
            let end: i64 = get("skald_part_end").parse().unwrap_or(0);
            let mut p = expected(start, end);
            if get("query").starts_with("vector") {
                p.result = Some(query_part::Result::Vector(Vector::default()));
            }
            part_response(Bytes::from(p.encode_to_vec()))
        };
        Box::pin(async move { Ok(resp) })
    }
}

fn req(start: i64, end: i64, extra: &[(&str, &str)]) -> HttpRequest {
    req_q("sum(rate({job=~\".+\"}[1m]))", start, end, extra)
}

fn req_q(query: &str, start: i64, end: i64, extra: &[(&str, &str)]) -> HttpRequest {
    let qs: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("query", query)
        .append_pair("start", &(start - 7 * HOUR).to_string())
        .append_pair("end", &(end + 3).to_string())
        .append_pair("step", &STEP.to_string())
        .append_pair("skald_part_start", &start.to_string())
        .append_pair("skald_part_end", &end.to_string())
        .finish();
    let mut headers = vec![("Accept".to_string(), PART_CONTENT_TYPE.to_string())];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    HttpRequest {
        method: "GET".into(),
        uri: format!("{QUERY_RANGE_PATH}?{qs}"),
        headers,
        body: Bytes::new(),
    }
}

fn embedded() -> Arc<dyn Cache> {
    Arc::new(EmbeddedCache::new(&EmbeddedCacheConfig { enabled: true, ..Default::default() }))
}

fn setup_with(cache: Arc<dyn Cache>, limits: Limits) -> (Arc<FakeQuerier>, ResultsCache) {
    let q = Arc::new(FakeQuerier::default());
    let rc = ResultsCache::new(q.clone(), cache, &limits);
    (q, rc)
}

fn setup() -> (Arc<FakeQuerier>, ResultsCache) {
    setup_with(embedded(), Limits::default())
}

fn calls(q: &FakeQuerier) -> usize {
    q.calls.load(Ordering::SeqCst)
}

fn zeroed(mut p: QueryPart) -> QueryPart {
    p.stats = Some(EngineStats::default());
    p.store = Some(StoreFigures::default());
    p
}

fn decode(r: &HttpResponse) -> QueryPart {
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some(PART_CONTENT_TYPE));
    QueryPart::decode(r.body.as_ref()).expect("a QueryPart")
}

#[tokio::test]
async fn a_repeated_part_is_a_hit() {
    let (q, rc) = setup();
    let (s, e) = (T0, T0 + HOUR - STEP);
    let first = rc.round_trip("a", req(s, e, &[])).await.expect("answer");
    assert_eq!(decode(&first), expected(s, e));
    let second = rc.round_trip("a", req(s, e, &[])).await.expect("answer");
    assert_eq!(calls(&q), 1, "the second came from the cache");
    assert_eq!(decode(&second), zeroed(expected(s, e)));
    assert_eq!(rc.hits_and_misses(), (1, 1));
    // The whole query's start and end are not part of the key (a dashboard refresh).
    let mut moved = req(s, e, &[]);
    moved.uri = moved.uri.replace("&end=", "&end=1");
    rc.round_trip("a", moved).await.expect("answer");
    assert_eq!(calls(&q), 1);
}

#[tokio::test]
async fn a_narrower_part_on_the_grid_is_served_sliced() {
    let (q, rc) = setup();
    rc.round_trip("a", req(T0, T0 + HOUR - STEP, &[])).await.expect("answer");
    for (s, e) in [(T0 + 2 * STEP, T0 + 30 * STEP), (T0 + STEP, T0 + 4 * STEP), (T0, T0)] {
        let got = rc.round_trip("a", req(s, e, &[])).await.expect("answer");
        assert_eq!(decode(&got), zeroed(expected(s, e)), "[{s}, {e}]");
    }
    assert_eq!(calls(&q), 1);
    // Off the grid, or past the extent: asked again.
    rc.round_trip("a", req(T0 + STEP / 2, T0 + 10 * STEP, &[])).await.expect("answer");
    rc.round_trip("a", req(T0 + STEP, T0 + HOUR, &[])).await.expect("answer");
    assert_eq!(calls(&q), 3);
    // The wider answer replaced the extent it covers; both ranges are served.
    rc.round_trip("a", req(T0 + 5 * STEP, T0 + HOUR, &[])).await.expect("answer");
    assert_eq!(calls(&q), 3);
}

#[tokio::test]
async fn another_tenant_never_gets_the_answer() {
    let (q, rc) = setup();
    rc.round_trip("a", req(T0, T0 + HOUR - STEP, &[])).await.expect("answer");
    rc.round_trip("b", req(T0, T0 + HOUR - STEP, &[])).await.expect("answer");
    assert_eq!(calls(&q), 2);
    // Nor another query, or other encoding flags.
    rc.round_trip("a", req_q("count_over_time({a=\"b\"}[1m])", T0, T0 + HOUR - STEP, &[]))
        .await
        .expect("answer");
    rc.round_trip(
        "a",
        req(T0, T0 + HOUR - STEP, &[("X-Loki-Response-Encoding-Flags", "categorize-labels")]),
    )
    .await
    .expect("answer");
    assert_eq!(calls(&q), 4);
}

#[tokio::test]
async fn parts_within_the_freshness_window_are_never_cached() {
    let (q, rc) = setup();
    let end = now_ns() / STEP * STEP - 5 * STEP; // 5 minutes ago; the window is 10m
                                                 // a part all within the window: asked for every time
    for _ in 0..2 {
        rc.round_trip("a", req(end - 2 * STEP, end, &[])).await.expect("answer");
    }
    assert_eq!(calls(&q), 2);
    assert_eq!(rc.hits_and_misses(), (0, 0));
    // A part that ended before the window is.
    let old = end - 30 * STEP;
    for _ in 0..2 {
        rc.round_trip("a", req(old - 30 * STEP, old, &[])).await.expect("answer");
    }
    assert_eq!(calls(&q), 3);
}

#[tokio::test]
async fn a_log_part_reaching_into_the_window_goes_whole() {
    let (q, rc) = setup();
    let end = now_ns() / STEP * STEP - 5 * STEP;
    let r =
        rc.round_trip("a", req_q(r#"{job="a"}"#, end - 40 * STEP, end, &[])).await.expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(calls(&q), 1);
}

#[tokio::test]
async fn a_part_reaching_into_the_window_is_cached_up_to_its_edge() {
    let (q, rc) = setup();
    let end = now_ns() / STEP * STEP - 5 * STEP; // 5 minutes ago; the window is 10m
    let start = end - 40 * STEP;
    let want = |r: &HttpResponse| {
        let mut got = decode(r);
        let mut all = expected(start, end);
        (got.stats, got.store, all.stats, all.store) = (None, None, None, None);
        assert_eq!(got, all);
    };
    // the steps up to the edge and those after it: two requests, the answers joined
    let first = rc.round_trip("a", req(start, end, &[])).await.expect("answer");
    want(&first);
    assert_eq!(calls(&q), 2);
    assert_eq!(decode(&first).stats.map(|s| s.total_lines_processed), Some(14));
    // again: the older steps from the cache, the fresh ones asked for
    let second = rc.round_trip("a", req(start, end, &[])).await.expect("answer");
    want(&second);
    assert_eq!(calls(&q), 3);
    assert_eq!(decode(&second).stats.map(|s| s.total_lines_processed), Some(7));
    assert_eq!(rc.hits_and_misses(), (1, 1));
}

#[tokio::test]
async fn no_cache_neither_reads_nor_writes() {
    let (q, rc) = setup();
    let nc = [("Cache-Control", "no-cache")];
    rc.round_trip("a", req(T0, T0 + 10 * STEP, &[])).await.expect("answer");
    rc.round_trip("a", req(T0, T0 + 10 * STEP, &nc)).await.expect("answer");
    assert_eq!(calls(&q), 2, "not read");
    rc.round_trip("a", req(T0 + HOUR, T0 + HOUR + 10 * STEP, &nc)).await.expect("answer");
    rc.round_trip("a", req(T0 + HOUR, T0 + HOUR + 10 * STEP, &[])).await.expect("answer");
    assert_eq!(calls(&q), 4, "not written");
}

#[tokio::test]
async fn errors_and_other_answers_are_not_cached() {
    let (q, rc) = setup();
    q.status.store(500, Ordering::SeqCst);
    for _ in 0..2 {
        let r = rc.round_trip("a", req(T0, T0 + 10 * STEP, &[])).await.expect("answer");
        assert_eq!((r.status, r.body.as_ref()), (500, &b"boom"[..]));
    }
    assert_eq!(calls(&q), 2);
    q.status.store(200, Ordering::SeqCst);
    for _ in 0..2 {
        rc.round_trip("a", req_q("vector(1)", T0, T0 + 10 * STEP, &[])).await.expect("answer");
    }
    assert_eq!(calls(&q), 4, "a vector answer is not cached");
    // Not a part request (no part Accept type): passed through untouched.
    let mut plain = req(T0, T0 + 10 * STEP, &[]);
    plain.headers.clear();
    for _ in 0..2 {
        rc.round_trip("a", plain.clone()).await.expect("answer");
    }
    assert_eq!(calls(&q), 6);
}

#[tokio::test]
async fn a_tenant_with_max_query_bytes_read_bypasses_the_cache() {
    let limits = Limits { max_query_bytes_read: 1 << 30, ..Limits::default() };
    let (q, rc) = setup_with(embedded(), limits);
    for _ in 0..2 {
        rc.round_trip("a", req(T0, T0 + 10 * STEP, &[])).await.expect("answer");
    }
    assert_eq!(calls(&q), 2);
}

#[tokio::test]
async fn split_buckets_are_keyed_apart() {
    // Two parts in different split intervals never share a key, even if one extent
    // could cover both.
    let (q, rc) = setup();
    rc.round_trip("a", req(T0, T0 + 2 * HOUR, &[])).await.expect("answer");
    rc.round_trip("a", req(T0 + HOUR, T0 + HOUR + STEP, &[])).await.expect("answer");
    assert_eq!(calls(&q), 2);
}

#[tokio::test]
async fn works_over_a_real_memcached() {
    let mut cfg = CacheConfig::default();
    cfg.memcached_client.addresses = skald_cache::memcached_from_test_env();
    cfg.memcached_client.timeout = Duration::from_millis(500);
    let cache = skald_cache::build(&cfg, "frontend.").expect("memcached configured");
    let (q, rc) = setup_with(cache.clone(), Limits::default());
    // A query of this run only, so earlier runs' entries do not answer.
    let query = format!("sum(count_over_time({{run=\"{}\"}}[1m]))", now_ns());
    let (s, e) = (T0, T0 + HOUR - STEP);
    rc.round_trip("a", req_q(&query, s, e, &[])).await.expect("answer");
    let got = rc.round_trip("a", req_q(&query, s + STEP, e, &[])).await.expect("answer");
    assert_eq!(calls(&q), 1);
    assert_eq!(decode(&got), zeroed(expected(s + STEP, e)));
    // A second frontend sharing the memcached sees it too; another tenant does not.
    let (q2, rc2) = setup_with(cache, Limits::default());
    rc2.round_trip("a", req_q(&query, s, e, &[])).await.expect("answer");
    rc2.round_trip("b", req_q(&query, s, e, &[])).await.expect("answer");
    assert_eq!(calls(&q2), 1);
}

#[test]
fn extents_round_trip_and_garbage_is_a_miss() {
    let ex = vec![
        Extent { start: 1, end: 2, part: Bytes::from_static(b"x") },
        Extent { start: -5, end: 9, part: Bytes::new() },
    ];
    assert_eq!(decode_extents(encode_extents(&ex)), Some(ex.clone()));
    let enc = encode_extents(&ex);
    assert_eq!(decode_extents(enc.slice(..enc.len() - 1)), None);
    assert_eq!(decode_extents(Bytes::from_static(b"\x09")), None);
    // Merging keeps the newest MAX_EXTENTS and drops what the new one covers.
    let mut all = Vec::new();
    for i in 0..20 {
        all = merge(all, Extent { start: i * 10, end: i * 10 + 5, part: Bytes::new() });
    }
    assert_eq!(all.len(), MAX_EXTENTS);
    assert_eq!(all[0].start, 120);
    let all = merge(all, Extent { start: 0, end: 1000, part: Bytes::new() });
    assert_eq!(all.len(), 1);
}

#[test]
fn loki_query_range_cache_keys_load() {
    let s: ResultsCacheSettings = serde_yaml::from_str(
            "cache_results: true\nresults_cache:\n  cache:\n    embedded_cache:\n      enabled: true\n      max_size_mb: 50\n  compression: snappy\ncache_label_results: false\n",
        )
        .expect("loads");
    assert!(s.cache_results && !s.cache_label_results && s.cache_series_results);
    assert_eq!(s.results_cache.cache.embedded_cache.max_size_mb, 50);
    assert_eq!(s.build_results_cache().map(|c| c.name().to_string()).as_deref(), Some("embedded"));
    // Nothing configured: the embedded cache (Loki's default); caching off: none.
    let on = ResultsCacheSettings { cache_results: true, ..Default::default() };
    assert_eq!(on.build_results_cache().map(|c| c.name().to_string()).as_deref(), Some("embedded"));
    assert!(ResultsCacheSettings::default().build_results_cache().is_none());
}
