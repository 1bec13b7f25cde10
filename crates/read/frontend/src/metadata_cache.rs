//! The caches of index stats, volume, labels, label values and series answers (Loki's
//! `cache_index_stats_results`, `cache_volume_results`, `cache_label_results`,
//! `cache_series_results`): whole 200 answers, keyed by tenant + path + every parameter
//! (sorted) + `Accept` + encoding flags. An answer is stored and served only when the
//! request's `end` is older than `now - max_stats_cache_freshness` (index stats, volume) or
//! `now - max_metadata_cache_freshness` (labels, series), Loki's limits; `Cache-Control:
//! no-cache` neither reads nor writes (as Loki). Anything else passes through untouched.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use skald_cache::Cache;

use crate::results_cache::{duration_ns, now_ns, CacheLimits, ResultsCacheSettings, TenantLimits};
use crate::transport::{FrontendError, HttpRequest, HttpResponse, RoundTrip};

/// The kinds of metadata answers cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKind {
    /// `/loki/api/v1/index/stats`.
    IndexStats,
    /// `/loki/api/v1/index/volume`, `/loki/api/v1/index/volume_range`.
    Volume,
    /// `/loki/api/v1/labels`, `/loki/api/v1/label/{name}/values` (and the legacy paths).
    Labels,
    /// `/loki/api/v1/series` (and the legacy path).
    Series,
}

impl MetadataKind {
    /// The kind of request `path` is, if any.
    pub fn of_path(path: &str) -> Option<MetadataKind> {
        let rest =
            path.strip_prefix("/loki/api/v1/").or_else(|| path.strip_prefix("/api/prom/"))?;
        match rest {
            "index/stats" => Some(MetadataKind::IndexStats),
            "index/volume" | "index/volume_range" => Some(MetadataKind::Volume),
            "labels" | "label" => Some(MetadataKind::Labels),
            "series" => Some(MetadataKind::Series),
            _ => {
                let name = rest.strip_prefix("label/")?.strip_suffix("/values")?;
                (!name.is_empty() && !name.contains('/')).then_some(MetadataKind::Labels)
            }
        }
    }

    fn tag(self) -> &'static str {
        match self {
            MetadataKind::IndexStats => "stats",
            MetadataKind::Volume => "volume",
            MetadataKind::Labels => "labels",
            MetadataKind::Series => "series",
        }
    }

    fn freshness_ns(self, l: &CacheLimits) -> i64 {
        duration_ns(match self {
            MetadataKind::IndexStats | MetadataKind::Volume => l.max_stats_cache_freshness,
            MetadataKind::Labels | MetadataKind::Series => l.max_metadata_cache_freshness,
        })
    }
}

/// The cache of each kind (`None`: not cached).
#[derive(Clone, Default)]
pub struct MetadataCaches {
    /// Index stats.
    pub index_stats: Option<Arc<dyn Cache>>,
    /// Volume.
    pub volume: Option<Arc<dyn Cache>>,
    /// Labels and label values.
    pub labels: Option<Arc<dyn Cache>>,
    /// Series.
    pub series: Option<Arc<dyn Cache>>,
}

impl MetadataCaches {
    /// The caches `settings` turn on (`cache_*_results`), as Loki builds them: a kind's own
    /// `*_results_cache.cache` when it configures a backend, else the results cache's
    /// (`shared`, when the lead built one, is used as it is; the kinds' keys never meet),
    /// else an embedded cache.
    pub fn from_settings(
        settings: &ResultsCacheSettings,
        shared: Option<Arc<dyn Cache>>,
    ) -> MetadataCaches {
        // `name`: Loki's prefix of the kind's block, the cache's `name` in its metrics
        let build = |on: bool, own: &skald_cache::CacheConfig, name: &str| {
            if !on {
                return None;
            }
            if own.is_configured() {
                return skald_cache::build(own, name);
            }
            if let Some(c) = &shared {
                return Some(c.clone());
            }
            let mut c = settings.results_cache.cache.clone();
            if !c.is_configured() {
                c.embedded_cache.enabled = true;
            }
            skald_cache::build(&c, "frontend.")
        };
        MetadataCaches {
            index_stats: build(
                settings.cache_index_stats_results,
                &settings.index_stats_results_cache.cache,
                "frontend.index-stats-results-cache.",
            ),
            volume: build(
                settings.cache_volume_results,
                &settings.volume_results_cache.cache,
                "frontend.volume-results-cache.",
            ),
            labels: build(
                settings.cache_label_results,
                &settings.label_results_cache.cache,
                "frontend.label-results-cache.",
            ),
            series: build(
                settings.cache_series_results,
                &settings.series_results_cache.cache,
                "frontend.series-results-cache.",
            ),
        }
    }

    fn get(&self, kind: MetadataKind) -> Option<&Arc<dyn Cache>> {
        match kind {
            MetadataKind::IndexStats => self.index_stats.as_ref(),
            MetadataKind::Volume => self.volume.as_ref(),
            MetadataKind::Labels => self.labels.as_ref(),
            MetadataKind::Series => self.series.as_ref(),
        }
    }
}

/// The metadata caches, a [`RoundTrip`] in front of another (see the module doc).
#[derive(Clone)]
pub struct MetadataCache {
    inner: Arc<Inner>,
}

struct Inner {
    next: Arc<dyn RoundTrip>,
    caches: MetadataCaches,
    limits: TenantLimits,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl MetadataCache {
    /// The caches in front of `next`, with limits looked up per tenant (see
    /// [`crate::results_cache::same_limits`] for one `Limits` for all).
    pub fn new(next: Arc<dyn RoundTrip>, caches: MetadataCaches, limits: TenantLimits) -> Self {
        MetadataCache {
            inner: Arc::new(Inner {
                next,
                caches,
                limits,
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            }),
        }
    }

    /// Answers served from a cache, and answers looked up and not found.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.inner.hits.load(Ordering::Relaxed), self.inner.misses.load(Ordering::Relaxed))
    }
}

/// The cache key of a metadata request, and its `end` (ns; now when absent).
fn key_of(tenant: &str, kind: MetadataKind, req: &HttpRequest) -> Option<(String, i64)> {
    let (path, query) = req.uri.split_once('?').unwrap_or((&req.uri, ""));
    let mut params = skald_loghttp::params::Params::default();
    params.extend_from_urlencoded(query.as_bytes());
    if req.method.eq_ignore_ascii_case("POST") {
        params.extend_from_urlencoded(&req.body);
    }
    let end = skald_loghttp::params::parse_timestamp(params.get("end"), now_ns()).ok()?;
    // Every value of every parameter, by name (the order of names does not change the
    // answer; the order of one name's values is kept).
    let mut names: Vec<String> = params.to_map().into_keys().collect();
    names.sort();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for n in names {
        for v in params.get_all(&n) {
            pairs.push((n.clone(), v.to_string()));
        }
    }
    let mut key = format!("skald-md-v1:{}", kind.tag());
    let accept = req.header("Accept").unwrap_or("");
    let flags = req.header("X-Loki-Response-Encoding-Flags").unwrap_or("");
    for f in [tenant, path, accept, flags] {
        key.push_str(&format!(":{}:{f}", f.len()));
    }
    for (k, v) in pairs {
        key.push_str(&format!(":{}:{k}:{}:{v}", k.len(), v.len()));
    }
    Some((key, end))
}

fn encode(resp: &HttpResponse) -> Bytes {
    let ct = resp.header("Content-Type").unwrap_or("");
    let mut b = BytesMut::with_capacity(2 + ct.len() + resp.body.len());
    b.put_u16(u16::try_from(ct.len()).unwrap_or(0));
    b.put_slice(&ct.as_bytes()[..usize::from(u16::try_from(ct.len()).unwrap_or(0))]);
    b.put_slice(&resp.body);
    b.freeze()
}

fn decode(mut b: Bytes) -> Option<HttpResponse> {
    if b.remaining() < 2 {
        return None;
    }
    let n = usize::from(b.get_u16());
    if b.remaining() < n {
        return None;
    }
    let ct = String::from_utf8(b.split_to(n).to_vec()).ok()?;
    let headers = if ct.is_empty() { vec![] } else { vec![("Content-Type".to_string(), ct)] };
    Some(HttpResponse { status: 200, headers, body: b })
}

impl Inner {
    async fn serve(&self, tenant: String, req: HttpRequest) -> Result<HttpResponse, FrontendError> {
        let path = req.uri.split_once('?').map_or(req.uri.as_str(), |(p, _)| p);
        let kind = MetadataKind::of_path(path);
        let cache = kind.and_then(|k| self.caches.get(k)).cloned();
        let no_cache =
            req.header("Cache-Control").is_some_and(|v| v.trim().eq_ignore_ascii_case("no-cache"));
        let (Some(kind), Some(cache), false) = (kind, cache, no_cache) else {
            return self.next.round_trip(&tenant, req).await;
        };
        let limits = (self.limits)(&tenant);
        let fresh_from = now_ns().saturating_sub(kind.freshness_ns(&limits));
        let Some((key, _)) = key_of(&tenant, kind, &req).filter(|(_, end)| *end <= fresh_from)
        else {
            return self.next.round_trip(&tenant, req).await;
        };
        let keys = [key.clone()];
        if let Some(resp) = cache.fetch(&keys).await.remove(&key).and_then(decode) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(resp);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let resp = self.next.round_trip(&tenant, req).await?;
        if resp.status == 200
            && !resp.header("Cache-Control").is_some_and(|c| c.contains("no-store"))
        {
            cache.store(vec![(key, encode(&resp))]).await;
        }
        Ok(resp)
    }
}

impl RoundTrip for MetadataCache {
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
mod tests {
    use std::sync::atomic::AtomicUsize;

    use skald_common::limits::Limits;

    use super::*;
    use crate::results_cache::same_limits;

    #[derive(Default)]
    struct Fake {
        calls: AtomicUsize,
        status: AtomicU64,
    }

    impl RoundTrip for Fake {
        fn round_trip(
            &self,
            tenant: &str,
            req: HttpRequest,
        ) -> BoxFuture<'static, Result<HttpResponse, FrontendError>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let status = match self.status.load(Ordering::SeqCst) {
                0 => 200,
                s => s as u16,
            };
            let body = Bytes::from(format!("{tenant} {} #{n}", req.uri));
            let headers = vec![("Content-Type".to_string(), "application/json".to_string())];
            Box::pin(async move { Ok(HttpResponse { status, headers, body }) })
        }
    }

    fn setup() -> (Arc<Fake>, MetadataCache) {
        let fake = Arc::new(Fake::default());
        let settings = ResultsCacheSettings::default();
        let caches = MetadataCaches::from_settings(&settings, None);
        (fake.clone(), MetadataCache::new(fake, caches, same_limits(&Limits::default())))
    }

    fn get(uri: &str, headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            uri: uri.into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: Bytes::new(),
        }
    }

    fn calls(f: &Fake) -> usize {
        f.calls.load(Ordering::SeqCst)
    }

    const OLD: &str = "start=1600000000&end=1600003600";

    #[tokio::test]
    async fn old_answers_are_cached_per_tenant_and_parameters() {
        let (f, mc) = setup();
        for path in [
            "/loki/api/v1/labels",
            "/loki/api/v1/label/job/values",
            "/loki/api/v1/series",
            "/loki/api/v1/index/stats",
            "/loki/api/v1/index/volume",
        ] {
            let uri = format!("{path}?query=%7Bjob%3D%22x%22%7D&{OLD}");
            let first = mc.round_trip("a", get(&uri, &[])).await.expect("answer");
            let before = calls(&f);
            let second = mc.round_trip("a", get(&uri, &[])).await.expect("answer");
            assert_eq!(calls(&f), before, "{path}: a hit");
            assert_eq!(first, second);
            // Parameters in another order: the same request.
            let swapped = format!("{path}?{OLD}&query=%7Bjob%3D%22x%22%7D");
            mc.round_trip("a", get(&swapped, &[])).await.expect("answer");
            assert_eq!(calls(&f), before);
            // Another tenant, another parameter: misses.
            let other = mc.round_trip("b", get(&uri, &[])).await.expect("answer");
            assert_ne!(other.body, first.body);
            mc.round_trip("a", get(&format!("{uri}&limit=5"), &[])).await.expect("answer");
            assert_eq!(calls(&f), before + 2);
        }
        assert_eq!(mc.hits_and_misses().0, 10);
    }

    #[tokio::test]
    async fn recent_no_cache_errors_and_other_paths_pass_through() {
        let (f, mc) = setup();
        let twice = |uri: String, headers: Vec<(&'static str, &'static str)>| {
            let mc = mc.clone();
            async move {
                for _ in 0..2 {
                    mc.round_trip("a", get(&uri, &headers)).await.expect("answer");
                }
            }
        };
        // No end (now), an end within a day (labels) or 10 minutes (stats).
        twice("/loki/api/v1/labels".into(), vec![]).await;
        let recent = (now_ns() - 3_600_000_000_000).to_string();
        twice(format!("/loki/api/v1/labels?end={recent}"), vec![]).await;
        twice(
            format!(
                "/loki/api/v1/index/stats?query=%7Ba%3D%22b%22%7D&end={}",
                now_ns() - 60_000_000_000
            ),
            vec![],
        )
        .await;
        twice(format!("/loki/api/v1/labels?{OLD}"), vec![("Cache-Control", "no-cache")]).await;
        twice(format!("/loki/api/v1/query_range?{OLD}"), vec![]).await;
        assert_eq!(calls(&f), 10);
        // Stats older than 10 minutes are.
        twice(format!("/loki/api/v1/index/stats?query=%7Ba%3D%22b%22%7D&end={recent}"), vec![])
            .await;
        assert_eq!(calls(&f), 11);
        f.status.store(500, Ordering::SeqCst);
        twice(format!("/loki/api/v1/series?match%5B%5D=%7Ba%3D%22b%22%7D&{OLD}"), vec![]).await;
        assert_eq!(calls(&f), 13, "errors are not cached");
    }

    #[test]
    fn kinds_of_paths() {
        assert_eq!(
            MetadataKind::of_path("/loki/api/v1/label/x/values"),
            Some(MetadataKind::Labels)
        );
        assert_eq!(MetadataKind::of_path("/api/prom/label"), Some(MetadataKind::Labels));
        assert_eq!(
            MetadataKind::of_path("/loki/api/v1/index/volume_range"),
            Some(MetadataKind::Volume)
        );
        assert_eq!(MetadataKind::of_path("/loki/api/v1/label//values"), None);
        assert_eq!(MetadataKind::of_path("/loki/api/v1/query"), None);
        let off = ResultsCacheSettings { cache_label_results: false, ..Default::default() };
        let c = MetadataCaches::from_settings(&off, None);
        assert!(c.labels.is_none() && c.series.is_some());
    }
}
