//! The object store's metrics, process-wide (every [`crate::ObjectChunkStore`] of the process
//! adds to them):
//!
//! - `skald_object_store_requests_total{operation}`: one count per request sent to the backend
//!   (each retry too), by operation: `get`, `get_range` (a ranged read; on S3 one per range, on
//!   the local filesystem one per call, whatever its ranges), `head`, `put`, `put_multipart`,
//!   `delete`, `list`. Cached reads send nothing and count nothing.
//! - `loki_s3_request_duration_seconds{operation,status_code}` (S3 backend only): the time of
//!   each of those requests, under Loki's S3 client's operation names ([`s3_operation`]) and
//!   buckets; `status_code` is `200`, or for a failure `404` (no such object), `412` (a
//!   create-only upload met an existing object), `cancel` (the caller gave up) or `500`.
//! - `loki_chunk_store_deduped_chunks_total` and `loki_chunk_store_deduped_bytes_total` (Loki's
//!   names), and `skald_object_store_puts_skipped_total` (the same count under the name Skald
//!   used first): chunk uploads `put_if_absent` skipped because another replica had written
//!   the object, and their bytes.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

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

static DEDUPED_CHUNKS: LazyLock<Option<IntCounter>> = LazyLock::new(|| {
    IntCounter::new(
        "loki_chunk_store_deduped_chunks_total",
        "Count of chunks which were not stored because they have already been stored by another replica.",
    )
    .ok()
});

static DEDUPED_BYTES: LazyLock<Option<IntCounter>> = LazyLock::new(|| {
    IntCounter::new(
        "loki_chunk_store_deduped_bytes_total",
        "Count of bytes from chunks which were not stored because they have already been stored by another replica.",
    )
    .ok()
});

/// Loki's buckets for `loki_s3_request_duration_seconds`.
pub const S3_BUCKETS: [f64; 7] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0];

static S3_DURATION: LazyLock<Option<HistogramVec>> = LazyLock::new(|| {
    let opts =
        HistogramOpts::new("loki_s3_request_duration_seconds", "Time spent doing S3 requests.")
            .buckets(S3_BUCKETS.to_vec());
    HistogramVec::new(opts, &["operation", "status_code"]).ok()
});

/// Loki's S3 client's name for one of Skald's object-store operations: reads (whole or a
/// range) are `S3.GetObject`, uploads (single or multipart: the whole upload is timed as one)
/// `S3.PutObject`, the existence check before a chunk upload `S3.ObjectExists`, deletions
/// `S3.DeleteObject` and listings `S3.List`.
pub fn s3_operation(op: &str) -> &'static str {
    match op {
        "get" | "get_range" => "S3.GetObject",
        "put" | "put_multipart" => "S3.PutObject",
        "head" => "S3.ObjectExists",
        "delete" => "S3.DeleteObject",
        "list" => "S3.List",
        _ => "S3.Other",
    }
}

/// The `status_code` of an S3 request's outcome.
pub(crate) fn s3_status<T>(result: &object_store::Result<T>) -> &'static str {
    match result {
        Ok(_) => "200",
        Err(object_store::Error::NotFound { .. }) => "404",
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => "412",
        Err(_) => "500",
    }
}

/// One S3 request being timed: observed by [`S3Timer::done`], or as `cancel` when dropped
/// first (the caller stopped waiting).
pub(crate) struct S3Timer {
    operation: &'static str,
    start: Instant,
    done: bool,
}

impl S3Timer {
    pub(crate) fn start(op: &str) -> Self {
        S3Timer { operation: s3_operation(op), start: Instant::now(), done: false }
    }

    pub(crate) fn done(mut self, status: &str) {
        self.done = true;
        observe_s3(self.operation, status, self.start);
    }
}

impl Drop for S3Timer {
    fn drop(&mut self) {
        if !self.done {
            observe_s3(self.operation, "cancel", self.start);
        }
    }
}

fn observe_s3(operation: &str, status: &str, start: Instant) {
    if let Some(h) = S3_DURATION.as_ref() {
        h.with_label_values(&[operation, status]).observe(start.elapsed().as_secs_f64());
    }
}

/// Counts one upload of `bytes` skipped by `put_if_absent`.
pub(crate) fn count_skipped_put(bytes: usize) {
    for c in [SKIPPED_PUTS.as_ref(), DEDUPED_CHUNKS.as_ref()].into_iter().flatten() {
        c.inc();
    }
    if let Some(c) = DEDUPED_BYTES.as_ref() {
        c.inc_by(bytes as u64);
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

/// The S3 requests timed so far under Loki's `operation` with `status_code`.
pub fn s3_requests(operation: &str, status_code: &str) -> u64 {
    S3_DURATION
        .as_ref()
        .map_or(0, |h| h.with_label_values(&[operation, status_code]).get_sample_count())
}

/// The chunk uploads skipped so far (`loki_chunk_store_deduped_chunks_total`).
pub fn deduped_chunks() -> u64 {
    DEDUPED_CHUNKS.as_ref().map_or(0, IntCounter::get)
}

/// Registers the metrics in `registry` (once per registry).
pub fn register(registry: &Registry) -> prometheus::Result<()> {
    if let Some(c) = REQUESTS.as_ref() {
        registry.register(Box::new(c.clone()))?;
    }
    for c in [SKIPPED_PUTS.as_ref(), DEDUPED_CHUNKS.as_ref(), DEDUPED_BYTES.as_ref()]
        .into_iter()
        .flatten()
    {
        registry.register(Box::new(c.clone()))?;
    }
    if let Some(h) = S3_DURATION.as_ref() {
        registry.register(Box::new(h.clone()))?;
    }
    Ok(())
}
