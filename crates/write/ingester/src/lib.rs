//! The ingester: holds recent entries per tenant and stream, cuts them into compressed chunks,
//! and flushes chunks to the chunk store and their references to the index.
//!
//! It talks to storage only through `skald_chunk_store::ChunkStore` and
//! `skald_index::IndexStore`, and is reached by distributors and queriers only through
//! `skald_proto::ingester::IngesterService`.

mod chunk_stats;
mod config;
mod metrics;
mod push_errors;
mod stream;
mod tail;
pub mod wal;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use parking_lot::Mutex;
use skald_chunk_store::ChunkStore;
use skald_common::limits::Limits;
use skald_common::tenant;
use skald_index::{ChunkRef, IndexStore};
use skald_logql::engine::SelectLimit;
use skald_logql::log::{Pipeline, SampleExtractor};
use skald_model::{fingerprint, LabelMatcher, Labels, Stream};
use skald_proto::ingester::{
    sample_hash, IngesterQuery, IngesterService, PushedSample, SeriesSamples, TailStream,
};
use skald_proto::{ErrorCode, ServiceError};
use tokio::sync::watch;

pub use config::{IngesterConfig, LifecyclerConfig, LifecyclerRing};
pub use metrics::IngesterMetrics;
use stream::{AppendError, ClosedChunk, StreamSnapshot, StreamState};
use wal::{wal_size, RecordBuilder, Wal};
pub use wal::{FsyncPolicy, ReplayStats, WalConfig};

/// One tenant's streams.
#[derive(Default)]
struct TenantStreams {
    streams: HashMap<u64, StreamState>,
    /// WAL records whose write failed (a full disk): their entries are in memory, but their
    /// push was refused. They are written, in order, before any later push of the tenant is
    /// acknowledged, so that a retry of the refused push, whose entries memory now holds and
    /// the retry's own record therefore leaves out as duplicates, is never acknowledged before
    /// they are logged.
    unlogged: Vec<Vec<u8>>,
    /// Flushes of this tenant failing in a row (its index writes): when the next may run.
    /// Another tenant's failures never delay this tenant's flushes.
    flush_backoff: Option<Backoff>,
    /// The same for single streams whose chunk uploads fail; other streams go on.
    stream_backoff: HashMap<u64, Backoff>,
}

/// Failures in a row of one tenant's or one stream's flush, and when to try again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    failures: u32,
    next_attempt: Instant,
}

impl Backoff {
    /// The backoff after one more failure: the check period doubled per failure, at most 16
    /// periods or 5 minutes.
    pub(crate) fn after_failure(previous: Option<Backoff>, period: Duration, now: Instant) -> Self {
        let failures = previous.map_or(0, |b| b.failures) + 1;
        let wait = period.saturating_mul(1 << (failures - 1).min(4)).min(Duration::from_secs(300));
        Backoff { failures, next_attempt: now + wait }
    }

    /// Whether a flush may be tried at `now`.
    pub(crate) fn due(backoff: Option<Backoff>, now: Instant) -> bool {
        backoff.is_none_or(|b| now >= b.next_attempt)
    }
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
    /// The write-ahead log, once [`Ingester::open_wal`] replayed it.
    wal: OnceLock<Wal>,
    /// Serialises checkpoints.
    checkpoint_lock: tokio::sync::Mutex<()>,
    /// Whether the shutdown flushes to storage (`wal.flush_on_shutdown`, changed by
    /// `/ingester/prepare_shutdown` and `/ingester/shutdown`).
    flush_on_shutdown: std::sync::atomic::AtomicBool,
    /// The storage outage the periodic flush is in, if any.
    flush_trouble: Mutex<Option<FlushTrouble>>,
    /// Live-tail subscribers.
    tailers: tail::Tailers,
}

/// Flushes failing in a row: what the periodic flush backs off on and `/ready` reports.
#[derive(Debug, Clone)]
struct FlushTrouble {
    since: Instant,
    failures: u32,
    last_error: String,
    next_attempt: Instant,
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
                flush_on_shutdown: std::sync::atomic::AtomicBool::new(
                    config.wal.flush_on_shutdown || !config.wal.enabled,
                ),
                flush_trouble: Mutex::new(None),
                tailers: tail::Tailers::default(),
                config,
                limits,
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

    fn tenant(&self, tenant: &str) -> Arc<Mutex<TenantStreams>> {
        let mut tenants = self.inner.tenants.lock();
        tenants.entry(tenant.to_string()).or_default().clone()
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

    /// Replays the write-ahead log in `dir` into memory, then starts logging pushes to it.
    /// Call once, before the ingester serves (it is ready only afterwards). With
    /// `ingester.wal.enabled: false` it does nothing.
    pub async fn open_wal(&self, dir: &Path) -> Result<ReplayStats, String> {
        let config = self.inner.config.wal.clone();
        if !config.enabled {
            return Ok(ReplayStats::default());
        }
        let started = Instant::now();
        let this = self.clone();
        let path = dir.to_path_buf();
        let ceiling = config.replay_memory_ceiling;
        let handle = tokio::runtime::Handle::current();
        let skipped = Arc::new(Mutex::new((0u64, 0u64))); // (records, entries)
        let skipped_in_replay = skipped.clone();
        let stats = tokio::task::spawn_blocking(move || {
            let mut held = 0u64;
            wal::replay(&path, |tenant, streams| {
                // A record of a tenant id no push may use today (an empty one, written by an
                // older version) is skipped and counted: it can never be flushed, and it must
                // not hold the rest of the log back.
                if let Err(error) = tenant::validate_stored_tenant_id(&tenant) {
                    let entries: usize = streams.iter().map(|s| s.entries.len()).sum();
                    let mut skipped = skipped_in_replay.lock();
                    if skipped.0 == 0 {
                        tracing::warn!(%error, tenant, "WAL record of an invalid tenant id skipped");
                    }
                    skipped.0 += 1;
                    skipped.1 += entries as u64;
                    return;
                }
                held += streams
                    .iter()
                    .flat_map(|s| s.entries.iter())
                    .map(|e| e.line.len() as u64 + 32)
                    .sum::<u64>();
                // Entries outside the out-of-order window, or over a stream limit, were
                // refused when first pushed too: nothing to report again.
                let _ = this.push_sync(&tenant, streams, false);
                if ceiling > 0 && held >= ceiling {
                    tracing::info!(held, "WAL replay reached replay_memory_ceiling; flushing");
                    if let Err(error) = handle.block_on(this.flush(true)) {
                        tracing::warn!(%error, "flush during WAL replay failed; continuing");
                    }
                    held = 0;
                }
            })
        })
        .await
        .map_err(|e| format!("WAL replay task failed: {e}"))?
        .map_err(|e| format!("cannot replay the WAL in {}: {e}", dir.display()))?;
        let mut stats = stats;
        let (skipped_records, skipped_entries) = *skipped.lock();
        stats.skipped_records = skipped_records;
        stats.records -= skipped_records.min(stats.records);
        stats.entries -= skipped_entries.min(stats.entries);
        self.inner.metrics.wal_corruptions.inc_by(stats.corruptions);
        self.inner.metrics.wal_recovered_entries.inc_by(stats.entries);
        self.inner.metrics.wal_skipped_records.inc_by(stats.skipped_records);
        let wal = Wal::open(dir, config, stats.next_segment)
            .map_err(|e| format!("cannot open the WAL in {}: {e}", dir.display()))?;
        if self.inner.wal.set(wal).is_err() {
            return Err("the WAL was already opened".to_string());
        }
        self.update_gauges();
        tracing::info!(
            dir = %dir.display(),
            records = stats.records,
            entries = stats.entries,
            corruptions = stats.corruptions,
            skipped_records = stats.skipped_records,
            segments = stats.segments,
            checkpoint = ?stats.checkpoint,
            elapsed = ?started.elapsed(),
            "WAL replayed"
        );
        if stats.records > 0 {
            // Fold what was replayed into a checkpoint, so old segments go away now.
            if let Err(error) = self.checkpoint().await {
                tracing::warn!(%error, "checkpoint after WAL replay failed");
            }
        }
        Ok(stats)
    }

    /// Writes a WAL checkpoint of everything held in memory and deletes the segments it
    /// replaces. Does nothing without a WAL.
    pub async fn checkpoint(&self) -> Result<(), String> {
        if self.inner.wal.get().is_none() {
            return Ok(());
        }
        let _guard = self.inner.checkpoint_lock.lock().await;
        let this = self.clone();
        let started = Instant::now();
        let res = tokio::task::spawn_blocking(move || this.checkpoint_sync())
            .await
            .map_err(|e| format!("checkpoint task failed: {e}"))
            .and_then(|r| r);
        match &res {
            Ok(bytes) => {
                self.inner.metrics.checkpoints.inc();
                self.inner.metrics.checkpoint_bytes.inc_by(*bytes);
                tracing::debug!(bytes, elapsed = ?started.elapsed(), "WAL checkpoint written");
            }
            Err(_) => self.inner.metrics.checkpoint_failures.inc(),
        }
        res.map(|_| ())
    }

    fn checkpoint_sync(&self) -> Result<u64, String> {
        let Some(wal) = self.inner.wal.get() else { return Ok(0) };
        // Every record in the segments up to `seq` was applied to memory before it was
        // written, so the snapshot taken after this rotation holds all their unflushed data.
        let seq = wal.rotate().map_err(|e| format!("cannot start a WAL segment: {e}"))?;
        let tenants: Vec<(String, Arc<Mutex<TenantStreams>>)> =
            self.inner.tenants.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        wal.checkpoint(seq, |out| {
            for (tenant, streams) in &tenants {
                let fps: Vec<u64> = streams.lock().streams.keys().copied().collect();
                for fp in fps {
                    let (labels, entries) = {
                        let guard = streams.lock();
                        let Some(st) = guard.streams.get(&fp) else { continue };
                        let entries = st
                            .entries_in_range(i64::MIN, i64::MAX)
                            .map_err(|e| std::io::Error::other(e.to_string()))?;
                        (st.labels.clone(), entries)
                    };
                    let mut rec = RecordBuilder::new(tenant);
                    rec.begin_stream(&labels);
                    for e in &entries {
                        rec.entry(e);
                        if rec.len() >= 4 << 20 {
                            let full = std::mem::replace(&mut rec, RecordBuilder::new(tenant));
                            if let Some(r) = full.finish() {
                                out(&r)?;
                            }
                            rec.begin_stream(&labels);
                        }
                    }
                    if let Some(r) = rec.finish() {
                        out(&r)?;
                    }
                }
            }
            Ok(())
        })
        .map_err(|e| format!("cannot write WAL checkpoint {seq}: {e}"))
    }

    /// Runs the periodic flush loop (and, with a WAL, the checkpoint and sync ticks) until
    /// `shutdown` turns true. Then it flushes everything, or, with a WAL and
    /// `flush_on_shutdown: false`, writes a checkpoint that the next start replays.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let period = self.inner.config.flush_check_period;
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let wal_config = self.inner.config.wal.clone();
        let mut checkpoint_tick = tokio::time::interval_at(
            tokio::time::Instant::now() + wal_config.checkpoint_duration,
            wal_config.checkpoint_duration,
        );
        checkpoint_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sync_tick = tokio::time::interval(wal_config.fsync_interval);
        sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let syncing = wal_config.fsync == FsyncPolicy::Interval;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    // Tenants and streams whose flushes failed recently back off on their own
                    // (see `flush_round`); the others flush on every tick.
                    let (result, backing_off) = self.flush_round(false).await;
                    if result.is_err() || !backing_off {
                        self.note_flush_result(&result, period);
                    }
                    if let Err(error) = result {
                        tracing::warn!(%error, "periodic flush failed; will retry with backoff");
                    }
                }
                _ = checkpoint_tick.tick() => {
                    if let Err(error) = self.checkpoint().await {
                        tracing::warn!(%error, "WAL checkpoint failed; will retry");
                    }
                }
                _ = sync_tick.tick(), if syncing => {
                    if let Some(wal) = self.inner.wal.get() {
                        if let Err(error) = wal.sync() {
                            tracing::warn!(%error, "WAL sync failed");
                        }
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        if self.inner.wal.get().is_some() && !self.flush_on_shutdown() {
            tracing::info!(
                "ingester shutting down: writing a WAL checkpoint (flush_on_shutdown is off)"
            );
            match self.checkpoint().await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, "shutdown checkpoint failed; flushing instead")
                }
            }
        }
        tracing::info!("ingester shutting down: flushing all chunks");
        let mut backoff = Duration::from_millis(200);
        for _ in 0..8 {
            match self.flush(true).await {
                Ok(()) => {
                    tracing::info!("ingester flushed all chunks");
                    // Nothing is held any more: an empty checkpoint retires every segment.
                    if let Err(error) = self.checkpoint().await {
                        tracing::warn!(%error, "WAL checkpoint after the final flush failed");
                    }
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

    /// Records a periodic flush's outcome for `/ready` and the backoff gauge (failures in a
    /// row: the check period, doubled per failure, at most 16 periods or 5 minutes). The
    /// backoff itself is kept per tenant and per stream (`flush_round`).
    fn note_flush_result(&self, result: &Result<(), ServiceError>, period: Duration) {
        let mut trouble = self.inner.flush_trouble.lock();
        match result {
            Ok(()) => {
                if let Some(t) = trouble.take() {
                    tracing::info!(
                        failures = t.failures,
                        outage_secs = t.since.elapsed().as_secs(),
                        "flushing works again"
                    );
                }
                self.inner.metrics.flush_backoff_seconds.set(0.0);
            }
            Err(e) => {
                let now = Instant::now();
                let t = trouble.get_or_insert(FlushTrouble {
                    since: now,
                    failures: 0,
                    last_error: String::new(),
                    next_attempt: now,
                });
                t.failures += 1;
                t.last_error = e.message.clone();
                let backoff = period
                    .saturating_mul(1 << (t.failures - 1).min(4))
                    .min(Duration::from_secs(300));
                t.next_attempt = now + backoff;
                self.inner.metrics.flush_backoff_seconds.set(backoff.as_secs_f64());
            }
        }
    }

    /// `None` while flushes work; otherwise what `/ready` shows about the storage outage the
    /// ingester is riding out (its data stays in memory and in the WAL meanwhile).
    pub fn flush_health(&self) -> Option<String> {
        let t = self.inner.flush_trouble.lock().clone()?;
        let held: i64 = self.inner.metrics.memory_chunks.get();
        Some(format!(
            "flushes failing for {}s ({} attempts, {} chunks held in memory and the WAL): {}",
            t.since.elapsed().as_secs(),
            t.failures,
            held,
            t.last_error
        ))
    }

    /// Cuts chunks that are due (all open chunks when `force`) and uploads every closed chunk,
    /// whatever backoff earlier failures set.
    pub async fn flush(&self, force: bool) -> Result<(), ServiceError> {
        self.flush_round(force).await.0
    }

    /// One flush: cuts chunks that are due (all open chunks when `force`) and uploads every
    /// closed chunk, skipping (unless `force`) the tenants and streams whose recent failures
    /// put them in backoff. A failure backs off only the tenant (an index write) or the stream
    /// (a chunk upload) it happened to. Returns the first error and whether anything was
    /// skipped for backoff.
    async fn flush_round(&self, force: bool) -> (Result<(), ServiceError>, bool) {
        let _guard = self.inner.flush_lock.lock().await;
        let now = Instant::now();
        let period = self.inner.config.flush_check_period;
        let tenants: Vec<(String, Arc<Mutex<TenantStreams>>)> =
            self.inner.tenants.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut first_error: Option<ServiceError> = None;
        let mut backing_off = false;
        for (tenant, streams) in tenants {
            // Collect closed chunks (cutting due ones) under the lock; upload without it.
            let mut pending: Vec<(u64, Labels, Arc<ClosedChunk>)> = Vec::new();
            {
                let mut guard = streams.lock();
                if !force && !Backoff::due(guard.flush_backoff, now) {
                    backing_off = true;
                    continue;
                }
                let TenantStreams { streams: held, stream_backoff, .. } = &mut *guard;
                for (fp, st) in held.iter_mut() {
                    st.cut_if_due(now, &self.inner.config, force);
                    if !force && !Backoff::due(stream_backoff.get(fp).copied(), now) {
                        backing_off = true;
                        continue;
                    }
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
            let mut failed: Vec<u64> = Vec::new();
            for (fp, labels, chunk, res) in uploads {
                match res {
                    Ok(()) => stored.push((fp, labels, chunk)),
                    Err(error) => {
                        self.inner.metrics.flush_failures.inc();
                        tracing::warn!(tenant = %tenant, %error, "failed to upload chunk");
                        failed.push(fp);
                        first_error.get_or_insert(ServiceError::new(
                            ErrorCode::Unavailable,
                            format!("failed to upload chunk: {error}"),
                        ));
                    }
                }
            }
            {
                let mut guard = streams.lock();
                for fp in &failed {
                    let previous = guard.stream_backoff.get(fp).copied();
                    guard.stream_backoff.insert(*fp, Backoff::after_failure(previous, period, now));
                }
                for (fp, _, _) in &stored {
                    if !failed.contains(fp) {
                        guard.stream_backoff.remove(fp);
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
                let mut guard = streams.lock();
                guard.flush_backoff =
                    Some(Backoff::after_failure(guard.flush_backoff, period, now));
                first_error.get_or_insert(ServiceError::new(
                    ErrorCode::Unavailable,
                    format!("failed to write index: {error}"),
                ));
                continue;
            }
            // Durable now: drop them from memory.
            let mut guard = streams.lock();
            guard.flush_backoff = None;
            for (fp, _, chunk) in &stored {
                self.inner.metrics.chunks_flushed.inc();
                self.inner.metrics.stored_bytes.inc_by(chunk.bytes.len() as u64);
                if let Some(st) = guard.streams.get_mut(fp) {
                    st.remove_flushed(chunk);
                }
            }
            // Forget streams that hold nothing any more.
            guard.streams.retain(|_, st| !st.is_empty());
            let TenantStreams { streams: held, stream_backoff, .. } = &mut *guard;
            stream_backoff.retain(|fp, _| held.contains_key(fp));
        }
        self.update_gauges();
        let result = match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        };
        (result, backing_off)
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

    /// Applies a push to memory and, when `log` and a WAL is open, writes the accepted
    /// entries to the WAL before returning: a push is acknowledged only once it is logged.
    fn push_sync(&self, tenant: &str, streams: Vec<Stream>, log: bool) -> Result<(), ServiceError> {
        let wal = if log { self.inner.wal.get() } else { None };
        // (sized for the whole push up front: growing a megabyte record copies it again)
        let mut record = wal.map(|_| RecordBuilder::with_capacity(tenant, wal_size(&streams)));
        let now = Instant::now();
        let t = self.tenant(tenant);
        let mut guard = t.lock();
        let max_streams = self.inner.limits.max_global_streams_per_user;
        let mut errors = push_errors::PushErrors::default();
        let (mut accepted, mut rejected) = (0u64, 0u64);
        // live tails get what this push added, once it is acknowledged
        let tailers = if log { self.inner.tailers.of(tenant) } else { Vec::new() };
        let mut tailed: Vec<Stream> = Vec::new();
        for s in streams {
            let fp = fingerprint(&s.labels);
            if !guard.streams.contains_key(&fp) {
                if max_streams > 0 && guard.streams.len() >= max_streams {
                    rejected += s.entries.len() as u64;
                    errors.add(push_errors::Reason::StreamLimit, || format!(
                        "maximum active stream limit exceeded when trying to create stream {}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: '{}'",
                        s.labels, tenant
                    ));
                    continue;
                }
                guard.streams.insert(fp, StreamState::new(s.labels.clone(), &self.inner.config));
            }
            let Some(st) = guard.streams.get_mut(&fp) else { continue };
            if let Some(r) = record.as_mut() {
                r.begin_stream(&s.labels);
            }
            let total = s.entries.len();
            let mut too_far: Vec<AppendError> = Vec::new();
            let mut tail_copy = (!tailers.is_empty()
                && tail::Tailers::any_wants(&tailers, &s.labels))
            .then(|| Stream { labels: s.labels.clone(), entries: Vec::new() });
            for e in s.entries {
                let mark = record.as_mut().map(|r| r.entry(&e));
                let copy = tail_copy.as_ref().map(|_| e.clone());
                let res = st.append(e, now, &self.inner.config);
                if let (Ok(()), Some(t), Some(copy)) = (&res, tail_copy.as_mut(), copy) {
                    t.entries.push(copy);
                }
                if let (Some(r), Some(mark)) = (record.as_mut(), mark) {
                    if res.is_err() {
                        r.rollback(mark);
                    }
                }
                match res {
                    Ok(()) => accepted += 1,
                    Err(AppendError::Duplicate) => accepted += 1,
                    Err(err) => {
                        rejected += 1;
                        too_far.push(err);
                    }
                }
            }
            if let Some(t) = tail_copy {
                tailed.push(t);
            }
            if let Some(first) = too_far.first() {
                errors.add(push_errors::Reason::TooFarBehind, || {
                    format!(
                    "{first} for stream: {},\nuser '{tenant}', total ignored: {} out of {total}",
                    s.labels,
                    too_far.len()
                )
                });
            }
        }
        // Logged before the tenant's lock is released: a later push whose entries this one
        // added (a retry) finds them as duplicates and leaves them out of its own record, so
        // it must not be acknowledged before this record (or, if it failed, the record kept
        // in `unlogged`) is in the WAL.
        if let Some(wal) = wal {
            let bytes = record.and_then(RecordBuilder::finish);
            if let Err(error) = self.log_locked(wal, &mut guard, bytes) {
                self.inner.metrics.wal_failures.inc();
                tracing::error!(%error, tenant, "WAL write failed; push refused");
                return Err(ServiceError::new(
                    ErrorCode::Unavailable,
                    format!("failed to write to the WAL: {error}"),
                ));
            }
        }
        drop(guard);
        self.inner.metrics.entries.with_label_values(&["accepted"]).inc_by(accepted);
        self.inner.metrics.entries.with_label_values(&["rejected"]).inc_by(rejected);
        if !tailed.is_empty() {
            let dropped = self.inner.tailers.dispatch(tenant, &tailers, &tailed);
            self.inner.metrics.tail_dropped_entries.inc_by(dropped as u64);
            self.inner.metrics.tailers.set(self.inner.tailers.count() as i64);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::new(errors.code(), errors.message()))
        }
    }

    /// Writes the tenant's records that failed before (`unlogged`, in order), then `record`.
    /// A record that cannot be written joins `unlogged`, and the push fails: its entries stay
    /// in memory, and the next push of the tenant writes the record before it is acknowledged.
    fn log_locked(
        &self,
        wal: &Wal,
        streams: &mut TenantStreams,
        record: Option<Vec<u8>>,
    ) -> std::io::Result<()> {
        let mut result = Ok(());
        let pending = std::mem::take(&mut streams.unlogged);
        for bytes in pending.into_iter().chain(record) {
            if result.is_ok() {
                match wal.append(&bytes) {
                    Ok(()) => {
                        self.inner.metrics.wal_records.inc();
                        self.inner.metrics.wal_bytes.inc_by(bytes.len() as u64);
                        continue;
                    }
                    Err(e) => result = Err(e),
                }
            }
            streams.unlogged.push(bytes);
        }
        result
    }

    /// What a query reads of the streams matching `query`: taken under the tenant lock,
    /// which is released before anything is decoded or filtered.
    fn snapshots(
        &self,
        tenant: &str,
        query: &IngesterQuery,
    ) -> Result<Vec<StreamSnapshot>, ServiceError> {
        let t = match self.inner.tenants.lock().get(tenant) {
            Some(t) => t.clone(),
            None => return Ok(Vec::new()),
        };
        let guard = t.lock();
        let mut out = Vec::new();
        for st in guard.streams.values() {
            if LabelMatcher::all_match(&query.matchers, &st.labels) {
                out.extend(st.snapshot(query.start, query.end)?);
            }
        }
        Ok(out)
    }

    /// The entries of `query` (its streams, range, `|=` literals, pipeline and limit), read
    /// block by block: only entries the pipeline accepts are copied, and with a limit those
    /// strictly farther from the edge than the `limit`-th nearest are pruned as the scan goes,
    /// so the answer, not the data held, sizes the memory used. Stops with a 499 error once
    /// `stop` is set (the query's caller went away).
    fn query_sync(
        &self,
        tenant: &str,
        query: &IngesterQuery,
        stop: &AtomicBool,
    ) -> Result<Vec<Stream>, ServiceError> {
        let pipeline = compile_pipeline(&query.pipeline)?;
        let finders = line_finders(query);
        let limit = (query.limit > 0)
            .then_some(SelectLimit { limit: query.limit as usize, backward: query.backward });
        let mut prune = limit.map(Pruner::new);
        let mut out: Vec<Stream> = Vec::new();
        let mut total = 0usize;
        let mut check = StopCheck::new(stop);
        for snap in self.snapshots(tenant, query)? {
            let mut sp = pipeline.as_ref().map(|p| p.for_stream(&snap.labels));
            out.push(Stream { labels: snap.labels.clone(), entries: Vec::new() });
            snap.for_each(query.start, query.end, |e| {
                check.tick()?;
                if !finders.iter().all(|f| f.find(e.line.as_bytes()).is_some()) {
                    return Ok(());
                }
                if let Some(sp) = sp.as_mut() {
                    if sp.process_ref(e.ts, e.line, e.structured_metadata).is_none() {
                        return Ok(());
                    }
                }
                if let Some(p) = &prune {
                    if p.rejects(e.ts) {
                        return Ok(());
                    }
                }
                if let Some(s) = out.last_mut() {
                    s.entries.push(e.to_entry());
                }
                total += 1;
                if let Some(p) = prune.as_mut() {
                    if total >= p.next_at {
                        total = p.prune(&mut out);
                    }
                }
                Ok(())
            })?;
            if out.last().is_some_and(|s| s.entries.is_empty()) {
                out.pop();
            }
        }
        for s in &mut out {
            s.entries.sort_by_key(|e| e.ts);
        }
        if let Some(p) = prune.as_mut() {
            p.prune(&mut out);
            out.retain(|s| !s.entries.is_empty());
        }
        Ok(out)
    }

    /// The samples `query.sample_expr` makes of the matching entries, by output series,
    /// extracted block by block (no entry is copied).
    fn query_samples_sync(
        &self,
        tenant: &str,
        query: &IngesterQuery,
        stop: &AtomicBool,
    ) -> Result<Vec<SeriesSamples>, ServiceError> {
        let extractor = compile_extractor(&query.sample_expr)?;
        let finders = line_finders(query);
        let mut by_series: HashMap<Labels, Vec<PushedSample>> = HashMap::new();
        let mut check = StopCheck::new(stop);
        for snap in self.snapshots(tenant, query)? {
            let fp = snap.labels.hash();
            let mut sx = extractor.for_stream(&snap.labels);
            snap.for_each(query.start, query.end, |e| {
                check.tick()?;
                if !finders.iter().all(|f| f.find(e.line.as_bytes()).is_some()) {
                    return Ok(());
                }
                if let Some((value, labels)) = sx.process(e.ts, e.line, e.structured_metadata) {
                    by_series.entry(labels).or_default().push(PushedSample {
                        ts: e.ts,
                        value,
                        hash: sample_hash(fp, e.line),
                    });
                }
                Ok(())
            })?;
        }
        Ok(by_series
            .into_iter()
            .map(|(labels, samples)| SeriesSamples { labels, samples })
            .collect())
    }
}

/// The query's `|=` literals, pushed down: only lines holding all of them can match.
fn line_finders(query: &IngesterQuery) -> Vec<memchr::memmem::Finder<'_>> {
    query.line_contains.iter().map(|l| memchr::memmem::Finder::new(l.as_bytes())).collect()
}

/// Keeps a limited query's kept entries near `limit` while it scans: entries strictly
/// farther from the edge than the `limit`-th nearest one kept so far can never be in the
/// answer (more entries only move that bound nearer), so they are dropped, and later ones
/// beyond the bound are not copied at all. Ties at the bound are kept (the engine breaks them).
struct Pruner {
    limit: SelectLimit,
    bound: Option<i64>,
    /// Kept-entry count at which to prune again.
    next_at: usize,
}

impl Pruner {
    fn new(limit: SelectLimit) -> Self {
        Pruner { limit, bound: None, next_at: Self::slack(limit.limit) }
    }

    fn slack(limit: usize) -> usize {
        limit.saturating_mul(2).max(limit.saturating_add(4096))
    }

    /// True when an entry at `ts` is strictly farther than the bound.
    fn rejects(&self, ts: i64) -> bool {
        match self.bound {
            None => false,
            Some(b) if self.limit.backward => ts < b,
            Some(b) => ts > b,
        }
    }

    /// Drops the entries strictly farther than the `limit`-th nearest; returns how many
    /// are left.
    fn prune(&mut self, streams: &mut [Stream]) -> usize {
        let SelectLimit { limit, backward } = self.limit;
        let mut ts: Vec<i64> =
            streams.iter().flat_map(|s| s.entries.iter().map(|e| e.ts)).collect();
        if ts.len() > limit {
            let bound = if limit == 0 {
                if backward {
                    i64::MAX
                } else {
                    i64::MIN
                }
            } else if backward {
                let k = ts.len() - limit;
                *ts.select_nth_unstable(k).1
            } else {
                *ts.select_nth_unstable(limit - 1).1
            };
            self.bound = Some(bound);
            for s in streams.iter_mut() {
                s.entries.retain(|e| !self.rejects(e.ts));
                if limit == 0 {
                    s.entries.clear();
                }
            }
        }
        let left: usize = streams.iter().map(|s| s.entries.len()).sum();
        self.next_at = left.saturating_add(Self::slack(limit));
        left
    }
}

/// Looks at a query's stop flag every few entries.
struct StopCheck<'a> {
    stop: &'a AtomicBool,
    n: u32,
}

impl<'a> StopCheck<'a> {
    fn new(stop: &'a AtomicBool) -> Self {
        StopCheck { stop, n: 0 }
    }

    fn tick(&mut self) -> Result<(), ServiceError> {
        self.n += 1;
        if self.n >= 64 {
            self.n = 0;
            if self.stop.load(Ordering::Relaxed) {
                return Err(ServiceError::new(ErrorCode::Cancelled, "context canceled"));
            }
        }
        Ok(())
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

/// Compiles a pushed-down range aggregation (LogQL text) into its sample extractor.
fn compile_extractor(text: &str) -> Result<SampleExtractor, ServiceError> {
    use skald_logql::syntax::ast::{Expr, SampleExpr};
    let bad = |e: String| {
        ServiceError::new(ErrorCode::BadRequest, format!("sample expression `{text}`: {e}"))
    };
    match skald_logql::syntax::parse_expr(text).map_err(|e| bad(e.to_string()))? {
        Expr::Sample(SampleExpr::RangeAggregation { op, range, .. }) => {
            SampleExtractor::new(&range, op).map_err(|e| bad(e.to_string()))
        }
        _ => Err(bad("not a range aggregation".to_string())),
    }
}

/// Compiles a pushed-down pipeline (a log selector as LogQL text). Empty text: none.
fn compile_pipeline(text: &str) -> Result<Option<Pipeline>, ServiceError> {
    if text.is_empty() {
        return Ok(None);
    }
    let bad =
        |e: String| ServiceError::new(ErrorCode::BadRequest, format!("pipeline `{text}`: {e}"));
    let stages = match skald_logql::syntax::parse_expr(text).map_err(|e| bad(e.to_string()))? {
        skald_logql::syntax::ast::Expr::Log(sel) => sel.stages,
        _ => return Err(bad("not a log selector".to_string())),
    };
    Pipeline::new(&stages).map(Some).map_err(|e| bad(e.to_string()))
}

#[async_trait]
impl IngesterService for Ingester {
    async fn push(&self, tenant: &str, streams: Vec<Stream>) -> Result<(), ServiceError> {
        // The HTTP edge validated it already; a gRPC caller may not have.
        tenant::validate_stored_tenant_id(tenant)
            .map_err(|e| ServiceError::new(ErrorCode::BadRequest, e.to_string()))?;
        self.push_sync(tenant, streams, true)
    }

    async fn query(&self, tenant: &str, query: IngesterQuery) -> Result<Vec<Stream>, ServiceError> {
        let this = self.clone();
        let tenant = tenant.to_string();
        let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
        let flag = stop.0.clone();
        // decoding in-memory chunks is CPU work: keep it off the async runtime
        let res = tokio::task::spawn_blocking(move || this.query_sync(&tenant, &query, &flag))
            .await
            .map_err(|e| ServiceError::internal(format!("ingester query task failed: {e}")))?;
        drop(stop);
        res
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
                .map_err(|e| {
                    ServiceError::internal(format!("ingester sample query task failed: {e}"))
                })?;
        drop(stop);
        res
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

    async fn chunk_stats(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<skald_proto::chunk_stats::StreamChunks>, ServiceError> {
        Ok(self.chunk_stats_sync(tenant, &query))
    }

    async fn flush_all(&self) -> Result<(), ServiceError> {
        self.flush(true).await
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

    use super::*;
    use skald_chunk_store::ObjectChunkStore;
    use skald_index::MemIndexStore;
    use skald_model::{Entry, MatchType};

    fn ingester(config: IngesterConfig) -> Ingester {
        Ingester::new(
            config,
            Limits::default(),
            Arc::new(ObjectChunkStore::in_memory()),
            Arc::new(MemIndexStore::new()),
            &prometheus::Registry::new(),
        )
    }

    fn streams(from: i64, n: i64) -> Vec<Stream> {
        vec![Stream {
            labels: Labels::parse(r#"{job="replay"}"#).unwrap(),
            entries: (from..from + n)
                .map(|i| Entry {
                    ts: 1_000 + i,
                    line: format!("line {i}"),
                    structured_metadata: vec![],
                })
                .collect(),
        }]
    }

    async fn held(ing: &Ingester) -> usize {
        let q = IngesterQuery {
            matchers: vec![LabelMatcher::new("job", MatchType::Equal, "replay").unwrap()],
            start: i64::MIN,
            end: i64::MAX,
            ..Default::default()
        };
        ing.query("t", q).await.unwrap().iter().map(|s| s.entries.len()).sum()
    }

    fn temp_wal(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("skald-ingester-wal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retry_after_a_failed_wal_write_is_logged_before_it_is_acknowledged() {
        let dir = temp_wal("full");
        let ing = ingester(IngesterConfig::default());
        ing.open_wal(&dir).await.unwrap();
        ing.push("t", streams(0, 100)).await.unwrap();
        // the disk is full for two writes: the push and its first retry are refused
        let wal = ing.inner.wal.get().unwrap();
        wal.fail_appends.store(2, std::sync::atomic::Ordering::Relaxed);
        let err = ing.push("t", streams(100, 200)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
        assert!(ing.push("t", streams(100, 200)).await.is_err());
        // the retry that succeeds finds every entry in memory already (duplicates): it is
        // acknowledged only once the refused pushes' records are written
        ing.push("t", streams(100, 200)).await.unwrap();
        drop(ing); // SIGKILL: no flush, no checkpoint

        let again = ingester(IngesterConfig::default());
        let stats = again.open_wal(&dir).await.unwrap();
        assert_eq!(held(&again).await, 300, "{stats:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wal_records_of_an_invalid_tenant_are_skipped_at_replay() {
        let dir = temp_wal("bad-tenant");
        let next = wal::replay(&dir, |_, _| {}).unwrap().next_segment;
        let log = Wal::open(&dir, WalConfig::default(), next).unwrap();
        for tenant in ["", "t", "a/b"] {
            let mut rec = RecordBuilder::new(tenant);
            let s = &streams(0, 10)[0];
            rec.begin_stream(&s.labels);
            for e in &s.entries {
                rec.entry(e);
            }
            log.append(&rec.finish().unwrap()).unwrap();
        }
        drop(log);
        let ing = ingester(IngesterConfig::default());
        let stats = ing.open_wal(&dir).await.unwrap();
        assert_eq!((stats.skipped_records, stats.records, stats.entries), (2, 1, 10), "{stats:?}");
        assert_eq!(held(&ing).await, 10);
        assert_eq!(ing.inner.metrics.wal_skipped_records.get(), 2);
        // and nothing of them is flushed or kept
        ing.flush(true).await.unwrap();
        assert!(ing.inner.tenants.lock().keys().all(|t| t == "t"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_push_for_an_invalid_tenant_is_refused() {
        let ing = ingester(IngesterConfig::default());
        for tenant in ["", "a/b", ".."] {
            let err = ing.push(tenant, streams(0, 1)).await.unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest, "{tenant}: {err:?}");
        }
        assert!(ing.inner.tenants.lock().is_empty());
    }

    /// A chunk store whose puts fail for one tenant.
    struct FailingFor {
        tenant: &'static str,
        inner: ObjectChunkStore,
    }

    #[async_trait]
    impl ChunkStore for FailingFor {
        async fn put(
            &self,
            key: &skald_chunk_store::ChunkKey,
            bytes: bytes::Bytes,
        ) -> skald_chunk_store::Result<()> {
            if key.tenant == self.tenant {
                return Err(skald_chunk_store::Error::InvalidTenant {
                    tenant: key.tenant.clone(),
                    reason: "refused by the test",
                });
            }
            self.inner.put(key, bytes).await
        }
        async fn get(
            &self,
            key: &skald_chunk_store::ChunkKey,
        ) -> skald_chunk_store::Result<bytes::Bytes> {
            self.inner.get(key).await
        }
        async fn delete(&self, key: &skald_chunk_store::ChunkKey) -> skald_chunk_store::Result<()> {
            self.inner.delete(key).await
        }
        async fn put_object(
            &self,
            path: &str,
            bytes: bytes::Bytes,
        ) -> skald_chunk_store::Result<()> {
            self.inner.put_object(path, bytes).await
        }
        async fn get_object(&self, path: &str) -> skald_chunk_store::Result<bytes::Bytes> {
            self.inner.get_object(path).await
        }
        async fn delete_object(&self, path: &str) -> skald_chunk_store::Result<()> {
            self.inner.delete_object(path).await
        }
        async fn list_prefix(&self, prefix: &str) -> skald_chunk_store::Result<Vec<String>> {
            self.inner.list_prefix(prefix).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_tenants_failing_flushes_never_delay_anothers() {
        let config = IngesterConfig {
            flush_check_period: Duration::from_millis(100),
            chunk_idle_period: Duration::from_millis(10),
            ..IngesterConfig::default()
        };
        let chunks = Arc::new(FailingFor { tenant: "bad", inner: ObjectChunkStore::in_memory() });
        let ing = Ingester::new(
            config,
            Limits::default(),
            chunks,
            Arc::new(MemIndexStore::new()),
            &prometheus::Registry::new(),
        );
        let (tx, rx) = watch::channel(false);
        let run = tokio::spawn(ing.clone().run(rx));
        ing.push("bad", streams(0, 10)).await.unwrap();
        // the bad tenant fails its flushes in a row, into a backoff of 16 check periods (1.6 s;
        // with one backoff for all, the next flush of anyone would be about 1.2 s away)
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        assert!(ing.inner.metrics.flush_failures.get() >= 4);
        assert!(ing.flush_health().is_some());
        // a good tenant's idle stream is flushed at the next check all the same
        ing.push("good", streams(0, 10)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let held_by =
            |t: &str| ing.inner.tenants.lock().get(t).map_or(0, |s| s.lock().streams.len());
        assert_eq!(held_by("good"), 0, "the good tenant's chunk is flushed");
        assert_eq!(held_by("bad"), 1, "the bad tenant's chunk is held");
        tx.send(true).unwrap();
        run.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crashed_ingester_replays_its_wal() {
        let dir = std::env::temp_dir().join(format!("skald-ingester-wal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ing = ingester(IngesterConfig::default());
        ing.open_wal(&dir).await.unwrap();
        ing.push("t", streams(0, 500)).await.unwrap();
        ing.checkpoint().await.unwrap();
        ing.push("t", streams(500, 500)).await.unwrap();
        // entries too far behind are refused and never logged
        let old = vec![Stream {
            labels: Labels::parse(r#"{job="replay"}"#).unwrap(),
            entries: vec![Entry { ts: -1 << 50, line: "old".into(), structured_metadata: vec![] }],
        }];
        assert!(ing.push("t", old).await.is_err());
        drop(ing); // a crash: no flush, no shutdown checkpoint

        let again = ingester(IngesterConfig::default());
        let stats = again.open_wal(&dir).await.unwrap();
        assert_eq!(stats.entries, 1000, "{stats:?}");
        assert!(stats.checkpoint.is_some());
        assert_eq!(held(&again).await, 1000);
        let q = IngesterQuery {
            matchers: vec![LabelMatcher::new("job", MatchType::Equal, "replay").unwrap()],
            start: i64::MIN,
            end: i64::MAX,
            line_contains: vec!["line 99".to_string()],
            ..Default::default()
        };
        let lines = |q| async {
            let got: Vec<String> = again
                .query("t", q)
                .await
                .unwrap()
                .into_iter()
                .flat_map(|s| s.entries.into_iter().map(|e| e.line))
                .collect();
            got
        };
        let got = lines(q).await;
        assert_eq!(got.len(), 11, "{got:?}"); // line 99, line 990..999
                                              // the whole pipeline and the limit are pushed down too
        let q = IngesterQuery {
            matchers: vec![LabelMatcher::new("job", MatchType::Equal, "replay").unwrap()],
            start: i64::MIN,
            end: i64::MAX,
            pipeline: r#"{job="replay"} |~ "line 9[0-9]+$" != "line 95""#.to_string(),
            limit: 3,
            backward: true,
            ..Default::default()
        };
        assert_eq!(lines(q).await, vec!["line 997", "line 998", "line 999"]);
        // metric queries get samples, not lines: one per matching entry, each with its hash
        let q = IngesterQuery {
            matchers: vec![LabelMatcher::new("job", MatchType::Equal, "replay").unwrap()],
            start: i64::MIN,
            end: i64::MAX,
            sample_expr: r#"bytes_over_time({job="replay"} |= "line 99" [1h])"#.to_string(),
            ..Default::default()
        };
        let series = again.query_samples("t", q).await.unwrap();
        assert_eq!(series.len(), 1);
        let samples = &series[0].samples;
        assert_eq!(samples.len(), 11);
        assert!(samples.iter().all(|p| p.value == 7.0 || p.value == 8.0), "{samples:?}");
        let hashes: std::collections::HashSet<u64> = samples.iter().map(|p| p.hash).collect();
        assert_eq!(hashes.len(), 11);
        // a pipeline that does not parse is refused
        let q = IngesterQuery { pipeline: "{job=".to_string(), ..Default::default() };
        assert!(again.query("t", q).await.is_err());

        // with a tiny replay ceiling the replay flushes to storage as it goes
        drop(again);
        let mut config = IngesterConfig::default();
        config.wal.replay_memory_ceiling = 1;
        let small = ingester(config);
        small.open_wal(&dir).await.unwrap();
        assert!(small.inner.metrics.chunks_flushed.get() > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What `query_sync` answered before it read block by block: every entry in range
    /// copied, then the literals, the pipeline and the limit applied.
    fn reference_query(ing: &Ingester, q: &IngesterQuery) -> Vec<(String, i64, String)> {
        let t = ing.inner.tenants.lock().get("t").cloned().unwrap();
        let guard = t.lock();
        let mut out = Vec::new();
        for st in guard.streams.values() {
            if !LabelMatcher::all_match(&q.matchers, &st.labels) {
                continue;
            }
            let mut entries = st.entries_in_range(q.start, q.end).unwrap();
            entries.retain(|e| q.line_contains.iter().all(|l| e.line.contains(l.as_str())));
            out.push(Stream { labels: st.labels.clone(), entries });
        }
        drop(guard);
        let pipeline =
            compile_pipeline(&q.pipeline).unwrap().unwrap_or_else(|| Pipeline::new(&[]).unwrap());
        let limit =
            (q.limit > 0).then_some(SelectLimit { limit: q.limit as usize, backward: q.backward });
        flat(skald_logql::engine::push_down(&pipeline, out, limit))
    }

    fn flat(streams: Vec<Stream>) -> Vec<(String, i64, String)> {
        let mut v: Vec<_> = streams
            .into_iter()
            .flat_map(|s| {
                let l = s.labels.to_string();
                s.entries.into_iter().map(move |e| (l.clone(), e.ts, e.line))
            })
            .collect();
        v.sort();
        v
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn block_by_block_queries_answer_what_copying_everything_did() {
        // small blocks and chunks: entries lie in closed chunks, the open chunk and the head
        let config = IngesterConfig {
            chunk_block_size: 4096,
            chunk_target_size: 32 * 1024,
            ..IngesterConfig::default()
        };
        let ing = ingester(config);
        for app in ["a", "b", "c"] {
            let entries = (0..6000i64)
                .map(|i| Entry {
                    // a few timestamps repeat across streams: ties at the limit's bound
                    ts: 1_000_000 + i * 10 + (app == "b") as i64 * 5,
                    line: format!(
                        "level={} app={app} n={i}",
                        ["info", "warn", "error"][i as usize % 3]
                    ),
                    structured_metadata: vec![],
                })
                .collect();
            let labels = Labels::parse(&format!(r#"{{app="{app}"}}"#)).unwrap();
            ing.push("t", vec![Stream { labels, entries }]).await.unwrap();
        }
        let all = vec![LabelMatcher::new("app", MatchType::Regex, ".+").unwrap()];
        let cases: [(&str, Vec<String>, u32, bool); 7] = [
            ("", vec![], 0, false),
            ("", vec![], 100, true),
            ("", vec![], 100, false),
            (r#"{app=~".+"} |= "error""#, vec!["error".into()], 0, false),
            (r#"{app=~".+"} | logfmt | n > 5000"#, vec![], 7, false),
            (r#"{app=~".+"} | logfmt | n < 5000"#, vec![], 5000, true),
            (r#"{app=~".+"} |= "warn""#, vec!["warn".into()], 1, true),
        ];
        let never = AtomicBool::new(false);
        for (pipeline, line_contains, limit, backward) in cases {
            let q = IngesterQuery {
                matchers: all.clone(),
                start: 1_010_000,
                end: 1_060_000,
                line_contains,
                pipeline: pipeline.to_string(),
                limit,
                backward,
                ..Default::default()
            };
            let got = flat(ing.query_sync("t", &q, &never).unwrap());
            assert!(!got.is_empty(), "{pipeline} {limit}");
            assert_eq!(got, reference_query(&ing, &q), "{pipeline} limit {limit} {backward}");
        }
    }

    #[test]
    fn a_pruner_keeps_the_limit_nearest_and_their_ties() {
        let entries = |ts: &[i64]| Stream {
            labels: Labels::default(),
            entries: ts
                .iter()
                .map(|&ts| Entry { ts, line: String::new(), structured_metadata: vec![] })
                .collect(),
        };
        let mut streams = vec![entries(&[1, 5, 9, 3]), entries(&[5, 7])];
        let mut p = Pruner::new(SelectLimit { limit: 3, backward: true });
        assert_eq!(p.prune(&mut streams), 4); // 9, 7 and both 5s
        assert!(p.rejects(4) && !p.rejects(5) && !p.rejects(100));
        let mut streams = vec![entries(&[1, 5, 9, 3]), entries(&[5, 7])];
        let mut p = Pruner::new(SelectLimit { limit: 2, backward: false });
        assert_eq!(p.prune(&mut streams), 2); // 1 and 3
        assert!(p.rejects(4) && !p.rejects(3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_query_stops() {
        let ing = ingester(IngesterConfig::default());
        ing.push("t", streams(0, 1000)).await.unwrap();
        let q = IngesterQuery {
            matchers: vec![LabelMatcher::new("job", MatchType::Equal, "replay").unwrap()],
            start: i64::MIN,
            end: i64::MAX,
            sample_expr: r#"count_over_time({job="replay"}[1h])"#.into(),
            ..Default::default()
        };
        let stop = AtomicBool::new(true);
        let err = ing.query_sync("t", &q, &stop).err().unwrap();
        assert_eq!(err.code, ErrorCode::Cancelled);
        let err = ing.query_samples_sync("t", &q, &stop).err().unwrap();
        assert_eq!(err.code, ErrorCode::Cancelled);
        let never = AtomicBool::new(false);
        assert_eq!(ing.query_samples_sync("t", &q, &never).unwrap().len(), 1);
    }
}
