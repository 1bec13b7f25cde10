//! The object store's request counter: `skald_object_store_requests_total{operation}`, one
//! count per request sent to the backend (each retry too), by operation: `get`, `get_range`
//! (a ranged read; on S3 one per range, on the local filesystem one per call, whatever its
//! ranges), `head`, `put`, `put_multipart`, `delete`, `list`. Cached reads send nothing and
//! count nothing. Process-wide: every [`crate::ObjectChunkStore`] of the process adds to it.
//! Also `skald_object_store_puts_skipped_total`: chunk uploads `put_if_absent` skipped because
//! another replica had written the object.

use std::sync::LazyLock;

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

static REQUESTS: LazyLock<Option<IntCounterVec>> = LazyLock::new(|| {
    let opts = Opts::new(
        "skald_object_store_requests_total",
        "Requests sent to the object store (chunks, index segments, filter tables), by operation.",
    );
    IntCounterVec::new(opts, &["operation"]).ok()
});

static SKIPPED_PUTS: LazyLock<Option<IntCounter>> = LazyLock::new(|| {
    IntCounter::new(
        "skald_object_store_puts_skipped_total",
        "Chunk uploads skipped because the object was already there (another replica wrote it).",
    )
    .ok()
});

/// Counts one upload skipped by `put_if_absent`.
pub(crate) fn count_skipped_put() {
    if let Some(c) = SKIPPED_PUTS.as_ref() {
        c.inc();
    }
}

/// Counts one request of `op`.
pub(crate) fn count_request(op: &'static str) {
    if let Some(c) = REQUESTS.as_ref() {
        c.with_label_values(&[op]).inc();
    }
}

/// The requests of `op` sent so far by this process.
pub fn requests(op: &str) -> u64 {
    REQUESTS.as_ref().map_or(0, |c| c.with_label_values(&[op]).get())
}

/// Registers the counter in `registry` (once per registry).
pub fn register(registry: &Registry) -> prometheus::Result<()> {
    if let Some(c) = REQUESTS.as_ref() {
        registry.register(Box::new(c.clone()))?;
    }
    if let Some(c) = SKIPPED_PUTS.as_ref() {
        registry.register(Box::new(c.clone()))?;
    }
    Ok(())
}
