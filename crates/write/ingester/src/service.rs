//! The ingester service: [`Ingester`], its shared state, and its `IngesterService`
//! implementation, where the crate's errors become the wire's `ServiceError`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use futures::StreamExt;
use parking_lot::Mutex;
use skald_chunk_store::ChunkStore;
use skald_common::overrides::Overrides;
use skald_common::tenant;
use skald_index::IndexStore;
use skald_model::{LabelMatcher, Labels, Stream};
use skald_proto::ingester::{IngesterQuery, IngesterService, SeriesSamples, TailStream};
use skald_proto::ServiceError;
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::error::IngesterError;
use crate::flush::FlushTrouble;
use crate::instance::TenantStreams;
use crate::query::compile_pipeline;
use crate::wal::Wal;
use crate::{tail, IngesterConfig, IngesterMetrics};

pub(crate) struct Inner {
    pub(crate) config: IngesterConfig,
    /// The tenants' limits (`limits_config` and the runtime configuration's overrides).
    pub(crate) overrides: Overrides,
    pub(crate) chunks: Arc<dyn ChunkStore>,
    pub(crate) index: Arc<dyn IndexStore>,
    /// The chunks' filter tables, written beside the index at each flush.
    pub(crate) filters: skald_index::FilterIndex,
    pub(crate) tenants: Mutex<HashMap<String, Arc<Mutex<TenantStreams>>>>,
    pub(crate) metrics: IngesterMetrics,
    /// Serialises flushes so that a chunk is never uploaded twice at once.
    pub(crate) flush_lock: tokio::sync::Mutex<()>,
    /// The write-ahead log, once [`Ingester::open_wal`] replayed it.
    pub(crate) wal: OnceLock<Wal>,
    /// Serialises checkpoints.
    pub(crate) checkpoint_lock: tokio::sync::Mutex<()>,
    /// Whether the shutdown flushes to storage (`wal.flush_on_shutdown`, changed by
    /// `/ingester/prepare_shutdown` and `/ingester/shutdown`).
    pub(crate) flush_on_shutdown: std::sync::atomic::AtomicBool,
    /// The storage outage the periodic flush is in, if any.
    pub(crate) flush_trouble: Mutex<Option<FlushTrouble>>,
    /// Live-tail subscribers.
    pub(crate) tailers: tail::Tailers,
}

/// The ingester service. Cheap to clone.
#[derive(Clone)]
pub struct Ingester {
    pub(crate) inner: Arc<Inner>,
}

impl Ingester {
    /// Builds an ingester over the given stores and the tenants' limits (a plain
    /// [`skald_common::limits::Limits`] applies to every tenant).
    pub fn new(
        config: IngesterConfig,
        overrides: impl Into<Overrides>,
        chunks: Arc<dyn ChunkStore>,
        index: Arc<dyn IndexStore>,
        registry: &prometheus::Registry,
    ) -> Self {
        Ingester {
            inner: Arc::new(Inner {
                flush_on_shutdown: std::sync::atomic::AtomicBool::new(
                    config.wal.flush_on_shutdown || !config.wal.enabled,
                ),
                flush_trouble: Mutex::new(None),
                tailers: tail::Tailers::default(),
                config,
                overrides: overrides.into(),
                filters: skald_index::FilterIndex::new(chunks.clone(), 0),
                chunks,
                index,
                tenants: Mutex::new(HashMap::new()),
                metrics: IngesterMetrics::new(registry),
                flush_lock: tokio::sync::Mutex::new(()),
                wal: OnceLock::new(),
                checkpoint_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Ends every live tail (at shutdown, so that no open stream holds the server up).
    pub fn close_tails(&self) {
        self.inner.tailers.close_all();
        self.inner.metrics.tailers.set(0);
    }

    /// Whether the shutdown will flush everything to storage (otherwise it writes a WAL
    /// checkpoint).
    pub fn flush_on_shutdown(&self) -> bool {
        self.inner.flush_on_shutdown.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets whether the shutdown flushes to storage (Loki's `/ingester/prepare_shutdown`).
    pub fn set_flush_on_shutdown(&self, on: bool) {
        self.inner.flush_on_shutdown.store(on, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Sets a query's stop flag when the query's future is dropped (its caller went away, or
/// timed out), so that its blocking scan stops too.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[async_trait]
impl IngesterService for Ingester {
    async fn push(&self, tenant: &str, streams: Vec<Stream>) -> Result<(), ServiceError> {
        // The HTTP edge validated it already; a gRPC caller may not have.
        tenant::validate_stored_tenant_id(tenant).map_err(IngesterError::from)?;
        // Appending seals full head blocks (zstd), and the WAL write (with `fsync: always`,
        // its fsync) waits for the disk; a push may also wait for its tenant's lock. None of
        // that may hold an async runtime worker. On the multi-thread runtime (the server's)
        // `block_in_place` runs the push on this thread after handing the worker's duty (its
        // queued tasks, the drivers) to another thread, so the push's entries, decoded here,
        // are appended and freed by the thread that allocated them; handing them to a
        // blocking-pool thread (`spawn_blocking`) measured more ingest CPU per GB
        // (benches/RESULTS.md, 2026-12-04). On a one-thread runtime, where `block_in_place`
        // is not available, it goes to the blocking pool. Either way the push runs whole, so
        // its WAL record is still written under the tenant's lock (see `push_sync`).
        if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
            return Ok(tokio::task::block_in_place(|| self.push_sync(tenant, streams, true))?);
        }
        let this = self.clone();
        let tenant = tenant.to_string();
        let res = tokio::task::spawn_blocking(move || this.push_sync(&tenant, streams, true))
            .await
            .map_err(|cause| IngesterError::Task { task: "ingester push", cause })?;
        Ok(res?)
    }

    async fn query(&self, tenant: &str, query: IngesterQuery) -> Result<Vec<Stream>, ServiceError> {
        let this = self.clone();
        let tenant = tenant.to_string();
        let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
        let flag = stop.0.clone();
        // decoding in-memory chunks is CPU work: keep it off the async runtime
        let res = tokio::task::spawn_blocking(move || this.query_sync(&tenant, &query, &flag))
            .await
            .map_err(|cause| IngesterError::Task { task: "ingester query", cause })?;
        drop(stop);
        Ok(res?)
    }

    async fn query_samples(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<SeriesSamples>, ServiceError> {
        let this = self.clone();
        let tenant = tenant.to_string();
        let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
        let flag = stop.0.clone();
        let res =
            tokio::task::spawn_blocking(move || this.query_samples_sync(&tenant, &query, &flag))
                .await
                .map_err(|cause| IngesterError::Task { task: "ingester sample query", cause })?;
        drop(stop);
        Ok(res?)
    }

    async fn series(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<Labels>, ServiceError> {
        let t = match self.inner.tenants.lock().get(tenant) {
            Some(t) => t.clone(),
            None => return Ok(Vec::new()),
        };
        // the tenant's lock may be held by a push sealing a block: wait for it off the runtime
        let series = tokio::task::spawn_blocking(move || {
            let guard = t.lock();
            guard
                .streams
                .values()
                .filter(|st| LabelMatcher::all_match(&query.matchers, &st.labels))
                .filter(|st| st.overlaps(query.start, query.end))
                .map(|st| st.labels.clone())
                .collect()
        })
        .await
        .map_err(|cause| IngesterError::Task { task: "ingester series", cause })?;
        Ok(series)
    }

    async fn chunk_stats(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<skald_proto::chunk_stats::StreamChunks>, ServiceError> {
        let this = self.clone();
        let tenant = tenant.to_string();
        let stats = tokio::task::spawn_blocking(move || this.chunk_stats_sync(&tenant, &query))
            .await
            .map_err(|cause| IngesterError::Task { task: "ingester chunk stats", cause })?;
        Ok(stats)
    }

    async fn flush_all(&self) -> Result<(), ServiceError> {
        Ok(self.flush(true).await?)
    }

    async fn tail(&self, tenant: &str, query: IngesterQuery) -> Result<TailStream, ServiceError> {
        let pipeline = compile_pipeline(&query.pipeline)?;
        let (tailer, rx) = tail::Tailer::new(query.matchers, pipeline);
        self.inner.tailers.add(tenant, tailer);
        self.inner.metrics.tailers.set(self.inner.tailers.count() as i64);
        Ok(Box::pin(rx.map(Ok)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use skald_proto::ErrorCode;

    use super::*;
    use crate::testing::{ingester, streams};
    use crate::IngesterConfig;

    #[tokio::test]
    async fn a_push_for_an_invalid_tenant_is_refused() {
        let ing = ingester(IngesterConfig::default());
        for tenant in ["", "a/b", ".."] {
            let err = ing.push(tenant, streams(0, 1)).await.unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest, "{tenant}: {err:?}");
        }
        assert!(ing.inner.tenants.lock().is_empty());
    }
}
