//! `loki_memcache_request_duration_seconds{method,status_code,name}`, as Loki's memcached
//! client records it (its buckets, 16 µs × 4ⁿ then 150 ms … 1 s): one observation per exchange
//! with a memcached server, `method` `Memcache.GetMulti` (a `get` of a batch of keys) or
//! `Memcache.Put` (a batch of `set`s), `status_code` `200`, or `500` when the exchange failed
//! (refused, timed out, a bad reply: the cache then misses or skips), `name` the cache's (Loki's
//! prefix of its configuration block: `frontend.` for the results cache,
//! `frontend.label-results-cache.`, ...). Process-wide: register it once with [`register`].

use std::sync::LazyLock;
use std::time::Instant;

use prometheus::{HistogramOpts, HistogramVec, Registry};

/// Loki's buckets: 16 µs, 64 µs, 256 µs, 1.024 ms, 4.096 ms, 16.384 ms, 65.536 ms, 150 ms,
/// 250 ms, 500 ms, 1 s.
pub fn buckets() -> Vec<f64> {
    let mut b: Vec<f64> = (0..7).map(|i| 0.000_016 * 4f64.powi(i)).collect();
    b.extend([0.15, 0.25, 0.5, 1.0]);
    b
}

static DURATION: LazyLock<Option<HistogramVec>> = LazyLock::new(|| {
    let opts = HistogramOpts::new(
        "loki_memcache_request_duration_seconds",
        "Total time spent in seconds doing memcache requests.",
    )
    .buckets(buckets());
    HistogramVec::new(opts, &["method", "status_code", "name"]).ok()
});

/// Registers the histogram in `registry` (once per registry).
pub fn register(registry: &Registry) -> prometheus::Result<()> {
    match DURATION.as_ref() {
        Some(h) => registry.register(Box::new(h.clone())),
        None => Ok(()),
    }
}

/// The exchanges observed so far with these labels.
pub fn requests(method: &str, status_code: &str, name: &str) -> u64 {
    DURATION
        .as_ref()
        .map_or(0, |h| h.with_label_values(&[method, status_code, name]).get_sample_count())
}

pub(crate) fn observe(method: &str, ok: bool, name: &str, start: Instant) {
    if let Some(h) = DURATION.as_ref() {
        let status = if ok { "200" } else { "500" };
        h.with_label_values(&[method, status, name]).observe(start.elapsed().as_secs_f64());
    }
}
