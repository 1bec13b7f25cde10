//! The results cache (Loki's `query_range.cache_results` with `results_cache.cache`): the
//! answers of the time splits of metric range queries, kept as extents so that a dashboard
//! refreshing "last 24 hours" recomputes only its newest split.
//!
//! [`ResultsCache`] is a [`RoundTrip`] in front of another. It acts only on part requests
//! (`/loki/api/v1/query_range` with `skald_part_start` / `skald_part_end` and the part
//! `Accept` type, which the splitting sends) whose answer is a matrix; everything else passes
//! through untouched. A part `[PS, PE]` is looked up under tenant + query + step + interval +
//! encoding flags + split interval + `floor(PS / split interval)`; an extent `[es, ee]` of
//! that key with `es <= PS`, `PE <= ee` on the same step grid answers it, sliced to the
//! samples in `[PS, PE]` (stats and store figures zeroed: nothing was read). Otherwise the
//! part is forwarded and a 200 matrix answer is stored as a new extent. Never cached: parts
//! ending within `max_cache_freshness_per_query` of now, requests with `Cache-Control:
//! no-cache` (neither read nor written, as Loki), and every request of a tenant with
//! `max_query_bytes_read` set (the querier checks it on every part; a hit would skip it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use skald_cache::{Cache, CacheConfig};
use skald_common::limits::Limits;
use skald_proto::prost::Message;
use skald_proto::skald_querier_v1::{query_part, EngineStats, Matrix, QueryPart, StoreFigures};

use crate::transport::{FrontendError, HttpRequest, HttpResponse, RoundTrip};

/// The content type of a part answer (and the `Accept` of a part request).
pub const PART_CONTENT_TYPE: &str = "application/vnd.skald.query-part.v1+protobuf";

/// Most extents kept under one key (the newest win).
pub const MAX_EXTENTS: usize = 8;

/// The path of range queries.
const QUERY_RANGE_PATH: &str = "/loki/api/v1/query_range";

/// Loki's `query_range` block: the results caches' keys (the others are accepted). The cache blocks of the other kinds fall back to `results_cache`
/// when they configure nothing, as in Loki.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResultsCacheSettings {
    /// Cache metric range query results. Loki's default false.
    pub cache_results: bool,
    /// The results cache. With no backend configured, the embedded cache is used (as Loki).
    pub results_cache: ResultsCacheConfig,
    /// Cache index stats results. Loki's default true.
    pub cache_index_stats_results: bool,
    #[allow(missing_docs)]
    pub index_stats_results_cache: ResultsCacheConfig,
    /// Cache volume results. Loki's default true.
    pub cache_volume_results: bool,
    #[allow(missing_docs)]
    pub volume_results_cache: ResultsCacheConfig,
    /// Cache instant metric results. Loki's default false (not acted on by Skald).
    pub cache_instant_metric_results: bool,
    #[allow(missing_docs)]
    pub instant_metric_results_cache: ResultsCacheConfig,
    /// Loki's default false; accepted, no effect.
    pub instant_metric_query_split_align: bool,
    /// Cache series results. Loki's default true.
    pub cache_series_results: bool,
    #[allow(missing_docs)]
    pub series_results_cache: ResultsCacheConfig,
    /// Cache label results. Loki's default true.
    pub cache_label_results: bool,
    #[allow(missing_docs)]
    pub label_results_cache: ResultsCacheConfig,
    /// Loki's other `query_range` keys, accepted so that Loki configs load; Skald's splits
    /// always fall on the step grid, and a failed split fails the query (no retries).
    pub align_queries_with_step: bool,
    #[allow(missing_docs)]
    pub max_retries: u32,
    /// Whether shardable metric queries are sharded by stream (the query-frontend's
    /// `QueryFrontendConfig::parallelise_shardable_queries`; default true).
    pub parallelise_shardable_queries: bool,
    #[allow(missing_docs)]
    pub shard_aggregations: Vec<String>,
}

impl Default for ResultsCacheSettings {
    fn default() -> Self {
        ResultsCacheSettings {
            cache_results: false,
            results_cache: ResultsCacheConfig::default(),
            cache_index_stats_results: true,
            index_stats_results_cache: ResultsCacheConfig::default(),
            cache_volume_results: true,
            volume_results_cache: ResultsCacheConfig::default(),
            cache_instant_metric_results: false,
            instant_metric_results_cache: ResultsCacheConfig::default(),
            instant_metric_query_split_align: false,
            cache_series_results: true,
            series_results_cache: ResultsCacheConfig::default(),
            cache_label_results: true,
            label_results_cache: ResultsCacheConfig::default(),
            align_queries_with_step: false,
            max_retries: 5,
            parallelise_shardable_queries: true,
            shard_aggregations: Vec::new(),
        }
    }
}

impl ResultsCacheSettings {
    /// The cache of the metric results cache: `None` unless `cache_results`; the configured
    /// backends, or the embedded cache when none is configured (Loki enables it then).
    pub fn build_results_cache(&self) -> Option<Arc<dyn Cache>> {
        if !self.cache_results {
            return None;
        }
        let mut c = self.results_cache.cache.clone();
        if !c.is_configured() {
            c.embedded_cache.enabled = true;
        }
        skald_cache::build(&c, "frontend.")
    }
}

/// Loki's `results_cache` block (and the blocks of the other kinds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResultsCacheConfig {
    /// Where the results live.
    pub cache: CacheConfig,
    /// `snappy` or "" (Loki's default ""); accepted, Skald does not compress.
    pub compression: String,
}

/// What the results cache needs of a tenant's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// `split_queries_by_interval` (part of the key).
    pub split_interval: Duration,
    /// `max_cache_freshness_per_query`.
    pub max_cache_freshness: Duration,
    /// Whether the cache is bypassed for the tenant (`max_query_bytes_read` set).
    pub bypass: bool,
    /// `max_metadata_cache_freshness` (labels, label values, series).
    pub max_metadata_cache_freshness: Duration,
    /// `max_stats_cache_freshness` (index stats, volume).
    pub max_stats_cache_freshness: Duration,
}

impl From<&Limits> for CacheLimits {
    fn from(l: &Limits) -> Self {
        CacheLimits {
            split_interval: l.split_queries_by_interval,
            max_cache_freshness: l.max_cache_freshness_per_query,
            // `max_querier_bytes_read` is not a reason: Loki checks it after its results
            // cache, on the misses only (and its 150GB default would turn caching off).
            bypass: l.max_query_bytes_read != 0,
            max_metadata_cache_freshness: l.max_metadata_cache_freshness,
            max_stats_cache_freshness: l.max_stats_cache_freshness,
        }
    }
}

/// A tenant's [`CacheLimits`].
pub type TenantLimits = Arc<dyn Fn(&str) -> CacheLimits + Send + Sync>;

/// `limits` for every tenant.
pub fn same_limits(limits: &Limits) -> TenantLimits {
    let l = CacheLimits::from(limits);
    Arc::new(move |_: &str| l)
}

/// Each tenant's cache limits from its limits (overrides included, following reloads).
pub fn tenant_limits(overrides: skald_common::overrides::Overrides) -> TenantLimits {
    Arc::new(move |tenant: &str| CacheLimits::from(&*overrides.tenant(tenant)))
}

/// The metric results cache, a [`RoundTrip`] in front of `inner` (see the module doc).
#[derive(Clone)]
pub struct ResultsCache {
    inner: Arc<Inner>,
}

struct Inner {
    next: Arc<dyn RoundTrip>,
    cache: Arc<dyn Cache>,
    limits: TenantLimits,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ResultsCache {
    /// The cache in front of `next`, with the same `limits` for every tenant (the server
    /// has no per-tenant overrides yet).
    pub fn new(next: Arc<dyn RoundTrip>, cache: Arc<dyn Cache>, limits: &Limits) -> Self {
        Self::with_tenant_limits(next, cache, same_limits(limits))
    }

    /// The cache in front of `next`, with limits looked up per tenant.
    pub fn with_tenant_limits(
        next: Arc<dyn RoundTrip>,
        cache: Arc<dyn Cache>,
        limits: TenantLimits,
    ) -> Self {
        ResultsCache {
            inner: Arc::new(Inner {
                next,
                cache,
                limits,
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            }),
        }
    }

    /// Parts answered from the cache, and parts looked up and not found (or not usable).
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.inner.hits.load(Ordering::Relaxed), self.inner.misses.load(Ordering::Relaxed))
    }
}

/// A part request's fields that matter here.
struct Part {
    key: String,
    start: i64,
    end: i64,
    /// The step in ns when it is a plain integer (else only `start == es` matches).
    step: Option<i64>,
    /// Whether the query is a metric query (only their parts are matrices, which can be cut
    /// at the freshness edge and joined again).
    metric: bool,
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The part this request asks for, or `None` when it is not a cacheable part request.
fn part_of(tenant: &str, req: &HttpRequest, limits: &CacheLimits) -> Option<Part> {
    let (path, query) = req.uri.split_once('?').unwrap_or((&req.uri, ""));
    if path != QUERY_RANGE_PATH
        || !req.header("Accept").is_some_and(|a| a.contains(PART_CONTENT_TYPE))
    {
        return None;
    }
    let mut params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    if req.method.eq_ignore_ascii_case("POST") {
        params.extend(url::form_urlencoded::parse(&req.body).into_owned());
    }
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let start: i64 = get("skald_part_start")?.parse().ok()?;
    let end: i64 = get("skald_part_end")?.parse().ok()?;
    if end < start {
        return None;
    }
    let step_raw = get("step").unwrap_or("");
    let step = step_raw.parse::<i64>().ok().filter(|s| *s > 0);
    let split = duration_ns(limits.split_interval);
    let bucket = if split > 0 { start.div_euclid(split) } else { 0 };
    let flags = req.header("X-Loki-Response-Encoding-Flags").unwrap_or("");
    // Length-prefixed fields: no value can be mistaken for another's boundary.
    let mut key = String::from("skald-rc-v1");
    // a shard (`skald_shard`) is a different answer
    let shard = get(skald_loghttp::part::SHARD_PARAM).unwrap_or("");
    let interval = get("interval").unwrap_or("");
    for f in [tenant, get("query").unwrap_or(""), step_raw, interval, flags, shard] {
        key.push_str(&format!(":{}:{f}", f.len()));
    }
    key.push_str(&format!(":{split}:{bucket}"));
    let metric = matches!(
        skald_logql::syntax::parse_expr(get("query").unwrap_or("")),
        Ok(skald_logql::syntax::ast::Expr::Sample(_))
    );
    Some(Part { key, start, end, step, metric })
}

/// One cached answer: the part `[start, end]` and its `QueryPart` bytes.
#[derive(Debug, Clone, PartialEq)]
struct Extent {
    start: i64,
    end: i64,
    part: Bytes,
}

const EXTENTS_VERSION: u8 = 1;

fn encode_extents(extents: &[Extent]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(EXTENTS_VERSION);
    b.put_u32(u32::try_from(extents.len()).unwrap_or(u32::MAX));
    for e in extents {
        b.put_i64(e.start);
        b.put_i64(e.end);
        b.put_u32(u32::try_from(e.part.len()).unwrap_or(u32::MAX));
        b.put_slice(&e.part);
    }
    b.freeze()
}

/// The extents of a cached value; `None` for anything malformed (treated as a miss).
fn decode_extents(mut b: Bytes) -> Option<Vec<Extent>> {
    if b.remaining() < 5 || b.get_u8() != EXTENTS_VERSION {
        return None;
    }
    let n = b.get_u32() as usize;
    let mut out = Vec::with_capacity(n.min(MAX_EXTENTS * 2));
    for _ in 0..n {
        if b.remaining() < 20 {
            return None;
        }
        let (start, end, len) = (b.get_i64(), b.get_i64(), b.get_u32() as usize);
        if b.remaining() < len {
            return None;
        }
        out.push(Extent { start, end, part: b.split_to(len) });
    }
    (!b.has_remaining()).then_some(out)
}

/// The matrix of `part` sliced to `[start, end]`, stats and store figures zeroed.
fn slice(part: &[u8], start: i64, end: i64) -> Option<Bytes> {
    let mut p = QueryPart::decode(part).ok()?;
    let Some(query_part::Result::Matrix(m)) = p.result.take() else {
        return None;
    };
    let mut series = Vec::with_capacity(m.series.len());
    for mut s in m.series {
        if s.ts.len() != s.values.len() {
            return None;
        }
        let (ts, values): (Vec<i64>, Vec<f64>) =
            s.ts.iter()
                .zip(&s.values)
                .filter(|(t, _)| (start..=end).contains(*t))
                .map(|(t, v)| (*t, *v))
                .unzip();
        if !ts.is_empty() {
            s.ts = ts;
            s.values = values;
            series.push(s);
        }
    }
    p.result = Some(query_part::Result::Matrix(Matrix { series }));
    p.stats = p.stats.map(|_| EngineStats::default());
    p.store = p.store.map(|_| StoreFigures::default());
    Some(Bytes::from(p.encode_to_vec()))
}

fn covers(e: &Extent, part: &Part) -> bool {
    e.start <= part.start
        && part.end <= e.end
        && match part.step {
            Some(step) => (part.start - e.start) % step == 0,
            None => part.start == e.start,
        }
}

fn is_matrix(body: &[u8]) -> bool {
    matches!(
        QueryPart::decode(body),
        Ok(QueryPart { result: Some(query_part::Result::Matrix(_)), .. })
    )
}

/// `extents` with `new` added: those it covers go, the newest [`MAX_EXTENTS`] stay.
fn merge(mut extents: Vec<Extent>, new: Extent) -> Vec<Extent> {
    extents.retain(|e| !(new.start <= e.start && e.end <= new.end));
    extents.push(new);
    let drop = extents.len().saturating_sub(MAX_EXTENTS);
    extents.drain(..drop);
    extents
}

/// `req` asking for the part `[start, end]` instead.
fn with_part_range(req: &HttpRequest, start: i64, end: i64) -> HttpRequest {
    let (path, query) = req.uri.split_once('?').unwrap_or((&req.uri, ""));
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "skald_part_start" => out.append_pair(&k, &start.to_string()),
            "skald_part_end" => out.append_pair(&k, &end.to_string()),
            _ => out.append_pair(&k, &v),
        };
    }
    HttpRequest { uri: format!("{path}?{}", out.finish()), ..req.clone() }
}

fn is_part_answer(resp: &HttpResponse) -> bool {
    resp.status == 200
        && resp.header("Content-Type").is_some_and(|c| c.starts_with(PART_CONTENT_TYPE))
}

/// The matrix part of `[start, end]` from those of two consecutive ranges in it (`old`
/// before `fresh`): each series' samples joined in time order
/// ([`skald_logql::plan::merge_matrix`], as the splits of a query are), the stats and store
/// figures added.
fn join_parts(old: &[u8], fresh: &[u8], start: i64, end: i64, step: i64) -> Option<Bytes> {
    use skald_logql::engine::{QueryOutput, QueryResult};
    let (a, mut store) = skald_loghttp::part::decode_part(old).ok()?;
    let (b, fresh_store) = skald_loghttp::part::decode_part(fresh).ok()?;
    let (QueryResult::Matrix(m), QueryResult::Matrix(n)) = (a.result, b.result) else {
        return None;
    };
    let mut stats = a.stats;
    stats.add(&b.stats);
    store.add(&fresh_store);
    // a part's series order does not matter: the frontend orders the merged parts
    let result =
        QueryResult::Matrix(skald_logql::plan::merge_matrix(vec![m, n], start, end, step, 0));
    let out = QueryOutput { result, stats };
    Some(Bytes::from(skald_loghttp::part::encode_part(&out, &store)))
}

fn part_response(body: Bytes) -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![("Content-Type".to_string(), PART_CONTENT_TYPE.to_string())],
        body,
    }
}

impl Inner {
    async fn serve(&self, tenant: String, req: HttpRequest) -> Result<HttpResponse, FrontendError> {
        let limits = (self.limits)(&tenant);
        let no_cache =
            req.header("Cache-Control").is_some_and(|v| v.trim().eq_ignore_ascii_case("no-cache"));
        let part = match part_of(&tenant, &req, &limits) {
            Some(p) if !no_cache && !limits.bypass => p,
            _ => return self.next.round_trip(&tenant, req).await,
        };
        let max_cache_time = now_ns().saturating_sub(duration_ns(limits.max_cache_freshness));
        if part.end > max_cache_time {
            return self.serve_fresh(tenant, req, part, max_cache_time).await;
        }
        self.serve_cached(tenant, req, part).await
    }

    /// A part that reaches into the freshness window: as Loki caches a split up to the
    /// window's edge, its steps up to the edge are served (and kept) as a part of their own,
    /// the later ones are asked for each time, and the two answers are joined.
    async fn serve_fresh(
        &self,
        tenant: String,
        req: HttpRequest,
        part: Part,
        max_cache_time: i64,
    ) -> Result<HttpResponse, FrontendError> {
        let Some(step) = part.step.filter(|_| part.metric && part.start <= max_cache_time) else {
            return self.next.round_trip(&tenant, req).await;
        };
        // the part's steps are `part.start + k * step`; the last one before the edge
        let edge = part.start + (max_cache_time - part.start) / step * step;
        let (part_start, end) = (part.start, part.end);
        let old_req = with_part_range(&req, part.start, edge);
        let old_part = Part { end: edge, ..part };
        if edge.saturating_add(step) > end {
            // no step after the edge: the part is all cacheable
            return self.serve_cached(tenant, old_req, old_part).await;
        }
        let fresh_req = with_part_range(&req, edge + step, end);
        let (old, fresh) = futures::join!(
            self.serve_cached(tenant.clone(), old_req, old_part),
            self.next.round_trip(&tenant, fresh_req)
        );
        let (old, fresh) = (old?, fresh?);
        if !is_part_answer(&old) {
            return Ok(old);
        }
        if !is_part_answer(&fresh) {
            return Ok(fresh);
        }
        match join_parts(&old.body, &fresh.body, part_start, end, step) {
            Some(body) => Ok(part_response(body)),
            None => Ok(HttpResponse {
                status: 500,
                headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
                body: Bytes::from_static(b"the results cache could not join a part's answers"),
            }),
        }
    }

    /// A part that may be answered from the cache, and is kept there when it is not.
    async fn serve_cached(
        &self,
        tenant: String,
        req: HttpRequest,
        part: Part,
    ) -> Result<HttpResponse, FrontendError> {
        let keys = [part.key.clone()];
        let extents = self
            .cache
            .fetch(&keys)
            .await
            .remove(&part.key)
            .and_then(decode_extents)
            .unwrap_or_default();
        if let Some(body) = extents
            .iter()
            .filter(|e| covers(e, &part))
            .find_map(|e| slice(&e.part, part.start, part.end))
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(part_response(body));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let resp = self.next.round_trip(&tenant, req).await?;
        let cacheable = resp.status == 200
            && resp.header("Content-Type").is_some_and(|c| c.starts_with(PART_CONTENT_TYPE))
            && !resp.header("Cache-Control").is_some_and(|c| c.contains("no-store"))
            && is_matrix(&resp.body);
        if cacheable {
            let new = Extent { start: part.start, end: part.end, part: resp.body.clone() };
            let value = encode_extents(&merge(extents, new));
            self.cache.store(vec![(part.key, value)]).await;
        }
        Ok(resp)
    }
}

impl RoundTrip for ResultsCache {
    fn round_trip(
        &self,
        tenant: &str,
        req: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, FrontendError>> {
        let inner = self.inner.clone();
        let tenant = tenant.to_string();
        Box::pin(async move { inner.serve(tenant, req).await })
    }
}

#[cfg(test)]
mod tests;
