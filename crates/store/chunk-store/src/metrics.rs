//! The object store's request counter: `skald_object_store_requests_total{operation}`, one
//! count per request sent to the backend (each retry too), by operation: `get`, `get_range`
//! (a ranged read; on S3 one per range, on the local filesystem one per call, whatever its
//! ranges), `put`, `put_multipart`, `delete`, `list`. Cached reads send nothing and count
//! nothing. Process-wide: every [`crate::ObjectChunkStore`] of the process adds to it.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, Opts, Registry};

static REQUESTS: LazyLock<Option<IntCounterVec>> = LazyLock::new(|| {
    let opts = Opts::new(
        "skald_object_store_requests_total",
        "Requests sent to the object store (chunks, index segments, filter tables), by operation.",
    );
    IntCounterVec::new(opts, &["operation"]).ok()
});

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
    match REQUESTS.as_ref() {
        Some(c) => registry.register(Box::new(c.clone())),
        None => Ok(()),
    }
}
