//! Getting chunks to storage: the periodic flush loop ([`Ingester::run`]), one flush round
//! (cut due chunks, upload them, write their index entries, drop them from memory), the
//! per-tenant and per-stream [`Backoff`] after failures, and the flush health `/ready` shows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use parking_lot::Mutex;
use skald_index::ChunkRef;
use skald_model::Labels;
use tokio::sync::watch;

use crate::chunk_stats::closed_utilization;
use crate::error::{IngesterError, Result};
use crate::instance::TenantStreams;
use crate::stream::ClosedChunk;
use crate::wal::FsyncPolicy;
use crate::Ingester;

/// Bytes of chunks closed in one cut after which the allocator gives freed memory back.
const TRIM_AFTER_CLOSED_BYTES: usize = 8 << 20;

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

/// Flushes failing in a row: what the periodic flush backs off on and `/ready` reports.
#[derive(Debug, Clone)]
pub(crate) struct FlushTrouble {
    since: Instant,
    failures: u32,
    last_error: String,
    next_attempt: Instant,
}

impl Ingester {
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
                    // an fsync waits for the disk: on the blocking pool
                    let this = self.clone();
                    let synced = tokio::task::spawn_blocking(move || {
                        this.inner.wal.get().map_or(Ok(()), |wal| wal.sync())
                    })
                    .await;
                    match synced {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => tracing::warn!(%error, "WAL sync failed"),
                        Err(error) => tracing::warn!(%error, "WAL sync task failed"),
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
    fn note_flush_result(&self, result: &Result<()>, period: Duration) {
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
                t.last_error = e.to_string();
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
    pub async fn flush(&self, force: bool) -> Result<()> {
        self.flush_round(force).await.0
    }

    /// Under the tenant's lock, closes the open chunks that are due (all when `force`) and
    /// returns the closed chunks to upload, leaving out (unless `force`) the tenant or the
    /// streams in backoff; true when something was left out so. Blocking: runs on the
    /// blocking pool.
    fn cut_due(
        &self,
        streams: &Mutex<TenantStreams>,
        now: Instant,
        force: bool,
    ) -> (Vec<(u64, Labels, Arc<ClosedChunk>)>, bool) {
        let mut pending: Vec<(u64, Labels, Arc<ClosedChunk>)> = Vec::new();
        let mut guard = streams.lock();
        if !force && !Backoff::due(guard.flush_backoff, now) {
            return (pending, true);
        }
        let mut backing_off = false;
        // Bytes of chunks closed since the allocator last gave memory back.
        let mut closed_since_trim = 0usize;
        let TenantStreams { streams: held, stream_backoff, .. } = &mut *guard;
        for (fp, st) in held.iter_mut() {
            let closed_before = st.closed_bytes();
            st.cut_if_due(now, &self.inner.config, force);
            // Closing a chunk copies its blocks into one buffer and frees them, in pieces
            // scattered over the heap that the next chunk's buffer cannot reuse: closing every
            // stream at once (a forced flush, a synchronised cut) would hold both copies of all
            // of them. Giving the freed pieces back every few MB bounds that to a few MB.
            closed_since_trim += st.closed_bytes().saturating_sub(closed_before);
            if closed_since_trim >= TRIM_AFTER_CLOSED_BYTES {
                skald_common::memory::give_back();
                closed_since_trim = 0;
            }
            if !force && !Backoff::due(stream_backoff.get(fp).copied(), now) {
                backing_off = true;
                continue;
            }
            for c in st.closed_chunks() {
                pending.push((*fp, st.labels.clone(), c));
            }
        }
        (pending, backing_off)
    }

    /// One flush: cuts chunks that are due (all open chunks when `force`) and uploads every
    /// closed chunk, skipping (unless `force`) the tenants and streams whose recent failures
    /// put them in backoff. A failure backs off only the tenant (an index write) or the stream
    /// (a chunk upload) it happened to. Returns the first error and whether anything was
    /// skipped for backoff.
    async fn flush_round(&self, force: bool) -> (Result<()>, bool) {
        let _guard = self.inner.flush_lock.lock().await;
        let now = Instant::now();
        let period = self.inner.config.flush_check_period;
        let tenants: Vec<(String, Arc<Mutex<TenantStreams>>)> =
            self.inner.tenants.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut first_error: Option<IngesterError> = None;
        let mut backing_off = false;
        let mut released = false;
        for (tenant, streams) in tenants {
            // Collect closed chunks (cutting due ones) under the lock; upload without it.
            // Cutting seals head blocks (zstd) and the lock may be held by a push: both on the
            // blocking pool, not on a runtime worker.
            let cut = {
                let (this, streams) = (self.clone(), streams.clone());
                tokio::task::spawn_blocking(move || this.cut_due(&streams, now, force)).await
            };
            let (pending, skipped) = match cut {
                Ok(cut) => cut,
                Err(cause) => {
                    first_error.get_or_insert(IngesterError::Task { task: "chunk cut", cause });
                    continue;
                }
            };
            backing_off |= skipped;
            if pending.is_empty() {
                continue;
            }
            let concurrency = self.inner.config.concurrent_flushes.max(1);
            let replicated = self.inner.config.lifecycler.ring.replication_factor.unwrap_or(1) > 1;
            let uploads = futures::stream::iter(pending.into_iter().map(|(fp, labels, chunk)| {
                let store = self.inner.chunks.clone();
                let tenant = tenant.clone();
                async move {
                    let key = chunk.chunk_ref.key(&tenant);
                    // with replicas, the first of them to flush a chunk uploads it
                    let res = if replicated {
                        store.put_if_absent(&key, chunk.bytes.clone()).await.map(|_| ())
                    } else {
                        store.put(&key, chunk.bytes.clone()).await
                    };
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
                        first_error.get_or_insert(IngesterError::ChunkUpload { cause: error });
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
            // The chunks' filters go beside the index before their entries do, so an indexed
            // chunk has its filter (a failure is an index write's: retried the same way).
            let filters: Vec<(ChunkRef, skald_chunk::NgramFilter)> =
                stored.iter().filter_map(|(_, _, c)| Some((c.chunk_ref, c.filter()?))).collect();
            let written = match self.inner.filters.write(&tenant, filters).await {
                Ok(()) => {
                    let refs: Vec<(Labels, ChunkRef)> =
                        stored.iter().map(|(_, l, c)| (l.clone(), c.chunk_ref)).collect();
                    self.inner.index.write_chunks(&tenant, refs).await
                }
                Err(error) => Err(error),
            };
            if let Err(error) = written {
                self.inner.metrics.flush_failures.inc();
                tracing::warn!(tenant = %tenant, %error, "failed to write index segment");
                let mut guard = streams.lock();
                guard.flush_backoff =
                    Some(Backoff::after_failure(guard.flush_backoff, period, now));
                first_error.get_or_insert(IngesterError::IndexWrite { cause: error });
                continue;
            }
            // Durable now: drop them from memory.
            let mut guard = streams.lock();
            guard.flush_backoff = None;
            let now_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            let m = &self.inner.metrics;
            for (fp, _, chunk) in &stored {
                m.chunks_flushed.with_label_values(&[chunk.reason]).inc();
                m.stored_bytes.with_label_values(&[&tenant]).inc_by(chunk.bytes.len() as u64);
                m.chunks_stored.with_label_values(&[&tenant]).inc();
                let fill = closed_utilization(&chunk.chunk_ref, &self.inner.config);
                m.chunk.observe(chunk, fill, now_ns);
                if let Some(st) = guard.streams.get_mut(fp) {
                    st.remove_flushed(chunk);
                }
            }
            // Forget streams that hold nothing any more.
            guard.streams.retain(|_, st| !st.is_empty());
            let TenantStreams { streams: held, stream_backoff, .. } = &mut *guard;
            stream_backoff.retain(|fp, _| held.contains_key(fp));
            released = true;
        }
        if released {
            // The flushed chunks, and the heads and builders of the streams cut for them, were
            // freed all over the allocator's heaps, which keep freed memory resident: without
            // this the process held its whole ingest peak after a flush (136 MB after 256 MB
            // of logbench, with nothing in memory). Once per flush round, a few milliseconds.
            skald_common::memory::give_back();
        }
        self.update_gauges();
        let result = match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        };
        (result, backing_off)
    }

    pub(crate) fn update_gauges(&self) {
        let tenants: Vec<(String, Arc<Mutex<TenantStreams>>)> =
            self.inner.tenants.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let (mut chunks, mut waiting) = (0i64, 0i64);
        let m = &self.inner.metrics;
        for (tenant, t) in tenants {
            let g = t.lock();
            m.memory_streams.with_label_values(&[&tenant]).set(g.streams.len() as i64);
            chunks += g.streams.values().map(|s| s.chunk_count() as i64).sum::<i64>();
            waiting += g.streams.values().map(|s| s.closed_count() as i64).sum::<i64>();
        }
        m.memory_chunks.set(chunks);
        m.flush_queue_length.set(waiting);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use async_trait::async_trait;
    use skald_chunk_store::{ChunkStore, ObjectChunkStore};
    use skald_common::limits::Limits;
    use skald_index::MemIndexStore;
    use skald_proto::ingester::IngesterService;

    use super::*;
    use crate::testing::streams;
    use crate::IngesterConfig;

    #[test]
    fn a_backoff_doubles_per_failure_up_to_16_periods_or_5_minutes() {
        let now = Instant::now();
        let waits = |period: Duration, n: usize| {
            let mut b: Option<Backoff> = None;
            (0..n)
                .map(|_| {
                    let next = Backoff::after_failure(b, period, now);
                    b = Some(next);
                    (next.failures, next.next_attempt - now)
                })
                .collect::<Vec<_>>()
        };
        let s = Duration::from_secs;
        assert_eq!(
            waits(s(1), 7),
            [(1, s(1)), (2, s(2)), (3, s(4)), (4, s(8)), (5, s(16)), (6, s(16)), (7, s(16))]
        );
        assert_eq!(
            waits(s(30), 6).into_iter().map(|w| w.1).collect::<Vec<_>>(),
            [s(30), s(60), s(120), s(240), s(300), s(300)]
        );
        // due again once the wait is over; never backing off without a failure
        let b = Backoff::after_failure(None, s(10), now);
        assert!(!Backoff::due(Some(b), now));
        assert!(!Backoff::due(Some(b), now + s(9)));
        assert!(Backoff::due(Some(b), now + s(10)));
        assert!(Backoff::due(None, now));
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

    /// A flush writes each chunk's filter into a filter table before its index entry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flush_writes_the_chunks_filters_beside_the_index() {
        let chunks: Arc<dyn ChunkStore> = Arc::new(ObjectChunkStore::in_memory());
        let index = Arc::new(MemIndexStore::new());
        let ing = Ingester::new(
            IngesterConfig::default(),
            Limits::default(),
            chunks.clone(),
            index.clone(),
            &prometheus::Registry::new(),
        );
        ing.push("t1", streams(0, 500)).await.unwrap();
        ing.flush(true).await.unwrap();
        let labels = Labels::parse(r#"{job="replay"}"#).unwrap();
        let series = skald_index::IndexStore::series(
            &*index,
            "t1",
            &[skald_model::LabelMatcher::new("job", skald_model::MatchType::Equal, "replay")
                .unwrap()],
            i64::MIN,
            i64::MAX,
        )
        .await
        .unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].labels, labels);
        let tables = skald_index::FilterIndex::new(chunks, 0);
        let filters = tables.filters("t1", 0, 10_000).await.unwrap();
        assert_eq!(filters.len(), series[0].chunks.len());
        for c in &series[0].chunks {
            let f = filters.get(c).unwrap();
            assert!(f.may_contain(b"line 499") && f.may_contain(b"LINE 2"));
            assert!(!f.may_contain(b"needle-7f3a9c"));
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
}
