//! The ingester: holds recent entries per tenant and stream, cuts them into compressed chunks,
//! and flushes chunks to the chunk store and their references to the index.
//!
//! It talks to storage only through `skald_chunk_store::ChunkStore` and
//! `skald_index::IndexStore`, and is reached by distributors and queriers only through
//! `skald_proto::ingester::IngesterService`.

mod config;
mod metrics;
mod stream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use parking_lot::Mutex;
use skald_chunk_store::ChunkStore;
use skald_common::limits::Limits;
use skald_index::{ChunkRef, IndexStore};
use skald_model::{fingerprint, LabelMatcher, Labels, Stream};
use skald_proto::ingester::{IngesterQuery, IngesterService};
use skald_proto::{ErrorCode, ServiceError};
use tokio::sync::watch;

pub use config::IngesterConfig;
pub use metrics::IngesterMetrics;
use stream::{AppendError, ClosedChunk, StreamState};

/// One tenant's streams.
#[derive(Default)]
struct TenantStreams {
    streams: HashMap<u64, StreamState>,
}

struct Inner {
    config: IngesterConfig,
    limits: Limits,
    chunks: Arc<dyn ChunkStore>,
    index: Arc<dyn IndexStore>,
    tenants: Mutex<HashMap<String, Arc<Mutex<TenantStreams>>>>,
    metrics: IngesterMetrics,
    /// Serialises flushes so that a chunk is never uploaded twice at once.
    flush_lock: tokio::sync::Mutex<()>,
}

/// The ingester service. Cheap to clone.
#[derive(Clone)]
pub struct Ingester {
    inner: Arc<Inner>,
}

impl Ingester {
    /// Builds an ingester over the given stores.
    pub fn new(
        config: IngesterConfig,
        limits: Limits,
        chunks: Arc<dyn ChunkStore>,
        index: Arc<dyn IndexStore>,
        registry: &prometheus::Registry,
    ) -> Self {
        Ingester {
            inner: Arc::new(Inner {
                config,
                limits,
                chunks,
                index,
                tenants: Mutex::new(HashMap::new()),
                metrics: IngesterMetrics::new(registry),
                flush_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn tenant(&self, tenant: &str) -> Arc<Mutex<TenantStreams>> {
        let mut tenants = self.inner.tenants.lock();
        tenants.entry(tenant.to_string()).or_default().clone()
    }

    /// Runs the periodic flush loop until `shutdown` turns true, then flushes everything.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let period = self.inner.config.flush_check_period;
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(error) = self.flush(false).await {
                        tracing::warn!(%error, "periodic flush failed; will retry");
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        tracing::info!("ingester shutting down: flushing all chunks");
        let mut backoff = Duration::from_millis(200);
        for _ in 0..8 {
            match self.flush(true).await {
                Ok(()) => {
                    tracing::info!("ingester flushed all chunks");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "final flush failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::error!("ingester could not flush all chunks before exit");
    }

    /// Cuts chunks that are due (all open chunks when `force`) and uploads every closed chunk.
    pub async fn flush(&self, force: bool) -> Result<(), ServiceError> {
        let _guard = self.inner.flush_lock.lock().await;
        let now = Instant::now();
        let tenants: Vec<(String, Arc<Mutex<TenantStreams>>)> =
            self.inner.tenants.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut first_error: Option<ServiceError> = None;
        for (tenant, streams) in tenants {
            // Collect closed chunks (cutting due ones) under the lock; upload without it.
            let mut pending: Vec<(u64, Labels, Arc<ClosedChunk>)> = Vec::new();
            {
                let mut guard = streams.lock();
                for (fp, st) in guard.streams.iter_mut() {
                    st.cut_if_due(now, &self.inner.config, force);
                    for c in st.closed_chunks() {
                        pending.push((*fp, st.labels.clone(), c));
                    }
                }
            }
            if pending.is_empty() {
                continue;
            }
            let concurrency = self.inner.config.concurrent_flushes.max(1);
            let uploads = futures::stream::iter(pending.into_iter().map(|(fp, labels, chunk)| {
                let store = self.inner.chunks.clone();
                let tenant = tenant.clone();
                async move {
                    let key = chunk.chunk_ref.key(&tenant);
                    let res = store.put(&key, chunk.bytes.clone()).await;
                    (fp, labels, chunk, res)
                }
            }))
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
            let mut stored: Vec<(u64, Labels, Arc<ClosedChunk>)> = Vec::new();
            for (fp, labels, chunk, res) in uploads {
                match res {
                    Ok(()) => stored.push((fp, labels, chunk)),
                    Err(error) => {
                        self.inner.metrics.flush_failures.inc();
                        tracing::warn!(tenant = %tenant, %error, "failed to upload chunk");
                        first_error.get_or_insert(ServiceError::new(
                            ErrorCode::Unavailable,
                            format!("failed to upload chunk: {error}"),
                        ));
                    }
                }
            }
            if stored.is_empty() {
                continue;
            }
            let refs: Vec<(Labels, ChunkRef)> =
                stored.iter().map(|(_, l, c)| (l.clone(), c.chunk_ref)).collect();
            if let Err(error) = self.inner.index.write_chunks(&tenant, refs).await {
                self.inner.metrics.flush_failures.inc();
                tracing::warn!(tenant = %tenant, %error, "failed to write index segment");
                first_error.get_or_insert(ServiceError::new(
                    ErrorCode::Unavailable,
                    format!("failed to write index: {error}"),
                ));
                continue;
            }
            // Durable now: drop them from memory.
            let mut guard = streams.lock();
            for (fp, _, chunk) in &stored {
                self.inner.metrics.chunks_flushed.inc();
                self.inner.metrics.stored_bytes.inc_by(chunk.bytes.len() as u64);
                if let Some(st) = guard.streams.get_mut(fp) {
                    st.remove_flushed(chunk);
                }
            }
            // Forget streams that hold nothing any more.
            guard.streams.retain(|_, st| !st.is_empty());
        }
        self.update_gauges();
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn update_gauges(&self) {
        let tenants: Vec<Arc<Mutex<TenantStreams>>> =
            self.inner.tenants.lock().values().cloned().collect();
        let (mut streams, mut chunks) = (0i64, 0i64);
        for t in tenants {
            let g = t.lock();
            streams += g.streams.len() as i64;
            chunks += g.streams.values().map(|s| s.chunk_count() as i64).sum::<i64>();
        }
        self.inner.metrics.memory_streams.set(streams);
        self.inner.metrics.memory_chunks.set(chunks);
    }

    fn push_sync(&self, tenant: &str, streams: Vec<Stream>) -> Result<(), ServiceError> {
        let t = self.tenant(tenant);
        let mut guard = t.lock();
        let max_streams = self.inner.limits.max_global_streams_per_user;
        let mut errors: Vec<String> = Vec::new();
        let (mut accepted, mut rejected) = (0u64, 0u64);
        for s in streams {
            let fp = fingerprint(&s.labels);
            if !guard.streams.contains_key(&fp) {
                if max_streams > 0 && guard.streams.len() >= max_streams {
                    rejected += s.entries.len() as u64;
                    errors.push(format!(
                        "Maximum active stream limit exceeded when trying to create stream {}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: '{}'",
                        s.labels, tenant
                    ));
                    continue;
                }
                guard.streams.insert(fp, StreamState::new(s.labels.clone(), &self.inner.config));
            }
            let Some(st) = guard.streams.get_mut(&fp) else { continue };
            let total = s.entries.len();
            let mut too_far: Vec<AppendError> = Vec::new();
            for e in s.entries {
                match st.append(e, &self.inner.config) {
                    Ok(()) => accepted += 1,
                    Err(AppendError::Duplicate) => accepted += 1,
                    Err(err) => {
                        rejected += 1;
                        too_far.push(err);
                    }
                }
            }
            if let Some(first) = too_far.first() {
                errors.push(format!(
                    "{first} for stream: {},\nuser '{tenant}', total ignored: {} out of {total}",
                    s.labels,
                    too_far.len()
                ));
            }
        }
        self.inner.metrics.entries.with_label_values(&["accepted"]).inc_by(accepted);
        self.inner.metrics.entries.with_label_values(&["rejected"]).inc_by(rejected);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::new(ErrorCode::BadRequest, errors.join("\n")))
        }
    }

    fn query_sync(&self, tenant: &str, query: &IngesterQuery) -> Result<Vec<Stream>, ServiceError> {
        let t = match self.inner.tenants.lock().get(tenant) {
            Some(t) => t.clone(),
            None => return Ok(Vec::new()),
        };
        let guard = t.lock();
        let mut out = Vec::new();
        for st in guard.streams.values() {
            if !LabelMatcher::all_match(&query.matchers, &st.labels) {
                continue;
            }
            let entries = st.entries_in_range(query.start, query.end)?;
            if !entries.is_empty() {
                out.push(Stream { labels: st.labels.clone(), entries });
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl IngesterService for Ingester {
    async fn push(&self, tenant: &str, streams: Vec<Stream>) -> Result<(), ServiceError> {
        self.push_sync(tenant, streams)
    }

    async fn query(&self, tenant: &str, query: IngesterQuery) -> Result<Vec<Stream>, ServiceError> {
        let this = self.clone();
        let tenant = tenant.to_string();
        // decoding in-memory chunks is CPU work: keep it off the async runtime
        tokio::task::spawn_blocking(move || this.query_sync(&tenant, &query))
            .await
            .map_err(|e| ServiceError::internal(format!("ingester query task failed: {e}")))?
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
        let guard = t.lock();
        Ok(guard
            .streams
            .values()
            .filter(|st| LabelMatcher::all_match(&query.matchers, &st.labels))
            .filter(|st| st.overlaps(query.start, query.end))
            .map(|st| st.labels.clone())
            .collect())
    }

    async fn flush_all(&self) -> Result<(), ServiceError> {
        self.flush(true).await
    }
}
