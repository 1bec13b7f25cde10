//! [`TimedIndexStore`]: an [`IndexStore`] that times the requests of the one it wraps in Loki's
//! `loki_index_request_duration_seconds{operation,status_code}` and counts the index entries
//! of every chunk written in `loki_chunk_store_index_entries_per_chunk`.
//!
//! Operations carry the names Loki's index client gives the same requests: `index_chunk`
//! (recording flushed chunks, [`IndexStore::write_chunks`]), `chunk_refs` (the series and
//! chunk refs a selector matches, [`IndexStore::series`]: Skald's querier reads the index
//! through it for queries and for the series and label APIs alike), `label_names` and
//! `label_values` (the index's own label reads, which Skald's querier does not call today).
//! `status_code` is dskit's: `200`, `500`
//! for an error, `cancel` when the caller stopped waiting. The compactor's and the delete
//! API's requests (`replace_chunks`, `delete_chunks`, `days`, `compact_day`) are passed
//! through untimed: Loki has no such index operations.
//!
//! The metrics are process-wide: register them once with [`register`].

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use async_trait::async_trait;
use prometheus::{Histogram, HistogramOpts, HistogramVec, Registry};
use skald_model::{LabelMatcher, Labels};

use crate::store::{days_spanned, IndexStore, SeriesChunks};
use crate::{ChunkRef, Result};

/// Loki's buckets for `loki_index_request_duration_seconds`: 12 from 5 ms to 100 s, each
/// the previous times the same factor (Prometheus's `ExponentialBucketsRange`).
pub fn index_buckets() -> Vec<f64> {
    let (min, max, n) = (0.005f64, 100.0f64, 12);
    let factor = (max / min).powf(1.0 / f64::from(n - 1));
    (0..n).map(|i| min * factor.powi(i)).collect()
}

/// Loki's buckets for `loki_chunk_store_index_entries_per_chunk`: 1, 2, 4, 8, 16.
pub const ENTRIES_BUCKETS: [f64; 5] = [1.0, 2.0, 4.0, 8.0, 16.0];

static DURATION: LazyLock<Option<HistogramVec>> = LazyLock::new(|| {
    let opts = HistogramOpts::new(
        "loki_index_request_duration_seconds",
        "Time (in seconds) spent in serving index query requests",
    )
    .buckets(index_buckets());
    HistogramVec::new(opts, &["operation", "status_code"]).ok()
});

static ENTRIES: LazyLock<Option<Histogram>> = LazyLock::new(|| {
    let opts = HistogramOpts::new(
        "loki_chunk_store_index_entries_per_chunk",
        "Number of entries written to storage per chunk.",
    )
    .buckets(ENTRIES_BUCKETS.to_vec());
    Histogram::with_opts(opts).ok()
});

/// Registers the index's metrics in `registry` (once per registry).
pub fn register(registry: &Registry) -> prometheus::Result<()> {
    if let Some(h) = DURATION.as_ref() {
        registry.register(Box::new(h.clone()))?;
    }
    if let Some(h) = ENTRIES.as_ref() {
        registry.register(Box::new(h.clone()))?;
    }
    Ok(())
}

/// The index requests of `operation` timed so far with `status_code`.
pub fn index_requests(operation: &str, status_code: &str) -> u64 {
    DURATION
        .as_ref()
        .map_or(0, |h| h.with_label_values(&[operation, status_code]).get_sample_count())
}

/// The chunks observed so far in `loki_chunk_store_index_entries_per_chunk`, and their
/// entries.
pub fn entries_per_chunk() -> (u64, f64) {
    ENTRIES.as_ref().map_or((0, 0.0), |h| (h.get_sample_count(), h.get_sample_sum()))
}

/// One request being timed: observed by [`Timer::done`], or as `cancel` when dropped first.
struct Timer {
    operation: &'static str,
    start: Instant,
    done: bool,
}

impl Timer {
    fn done(mut self, status: &str) {
        self.done = true;
        observe(self.operation, status, self.start);
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if !self.done {
            observe(self.operation, "cancel", self.start);
        }
    }
}

fn observe(operation: &str, status: &str, start: Instant) {
    if let Some(h) = DURATION.as_ref() {
        h.with_label_values(&[operation, status]).observe(start.elapsed().as_secs_f64());
    }
}

async fn timed<T>(operation: &'static str, request: impl Future<Output = Result<T>>) -> Result<T> {
    let timer = Timer { operation, start: Instant::now(), done: false };
    let result = request.await;
    timer.done(if result.is_ok() { "200" } else { "500" });
    result
}

/// The index entries one chunk is recorded with: one per index day it spans (its entry in
/// that day's segment in object storage; in DynamoDB its chunk row in that day's table, the
/// series row written the first time a series is seen that day not counted).
pub fn index_entries(chunk: &ChunkRef) -> usize {
    days_spanned(chunk.from, chunk.through).count()
}

/// Times the requests of the index it wraps (see the module's doc).
pub struct TimedIndexStore {
    inner: Arc<dyn IndexStore>,
}

impl TimedIndexStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn IndexStore>) -> Self {
        TimedIndexStore { inner }
    }
}

#[async_trait]
impl IndexStore for TimedIndexStore {
    async fn write_chunks(&self, tenant: &str, refs: Vec<(Labels, ChunkRef)>) -> Result<()> {
        let entries: Vec<usize> = refs.iter().map(|(_, c)| index_entries(c)).collect();
        timed("index_chunk", self.inner.write_chunks(tenant, refs)).await?;
        if let Some(h) = ENTRIES.as_ref() {
            for n in entries {
                h.observe(n as f64);
            }
        }
        Ok(())
    }

    async fn series(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        from: i64,
        through: i64,
    ) -> Result<Vec<SeriesChunks>> {
        timed("chunk_refs", self.inner.series(tenant, matchers, from, through)).await
    }

    async fn replace_chunks(
        &self,
        tenant: &str,
        old: Vec<(Labels, ChunkRef)>,
        new: Vec<(Labels, ChunkRef)>,
    ) -> Result<()> {
        self.inner.replace_chunks(tenant, old, new).await
    }

    async fn label_names(
        &self,
        tenant: &str,
        from: i64,
        through: i64,
        matchers: &[LabelMatcher],
    ) -> Result<Vec<String>> {
        timed("label_names", self.inner.label_names(tenant, from, through, matchers)).await
    }

    async fn label_values(
        &self,
        tenant: &str,
        name: &str,
        from: i64,
        through: i64,
        matchers: &[LabelMatcher],
    ) -> Result<Vec<String>> {
        timed("label_values", self.inner.label_values(tenant, name, from, through, matchers)).await
    }

    async fn days(&self, tenant: &str) -> Result<Vec<i64>> {
        self.inner.days(tenant).await
    }

    async fn delete_chunks(&self, tenant: &str, refs: Vec<(Labels, ChunkRef)>) -> Result<()> {
        self.inner.delete_chunks(tenant, refs).await
    }

    async fn compact_day(&self, tenant: &str, day: i64) -> Result<usize> {
        self.inner.compact_day(tenant, day).await
    }
}

#[cfg(test)]
mod tests;
