//! [`Compactor`]: the passes, their order of writes and deletes, and the loop that runs them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use skald_chunk_store::{ChunkKey, ChunkStore};
use skald_common::limits::Limits;
use skald_index::{days_spanned, ChunkRef, FilterIndex, IndexStore, NANOS_PER_DAY};
use skald_model::Labels;
use skald_needle::ChunkId;
use tokio::sync::watch;

use crate::config::CompactorConfig;
use crate::lease::Lease;
use crate::metrics::CompactorMetrics;
use crate::retention::{Retention, RetentionError};

mod size;

/// The limits of a tenant (the per-tenant overrides, or the global `limits_config`).
pub type TenantLimits = Arc<dyn Fn(&str) -> Arc<Limits> + Send + Sync>;

/// Work done for each tenant at the start of its pass, under the compactor's lease (the
/// server's: the deletion pass of the delete API's requests, `skald_deletes::process_pending`).
pub type TenantHook = Arc<dyn Fn(String) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// Where deletion markers are kept: `compactor/markers/<tenant>/<created ms>-<id>.txt`.
pub const MARKERS_PREFIX: &str = "compactor/markers";

/// Why a compactor could not be built or a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum CompactorError {
    /// The index failed.
    #[error("index: {0}")]
    Index(#[from] skald_index::Error),
    /// The object store failed.
    #[error("object store: {0}")]
    Store(#[from] skald_chunk_store::Error),
    /// A tenant's retention rules are unusable.
    #[error(transparent)]
    Retention(#[from] RetentionError),
    /// The metrics could not be registered.
    #[error("compactor metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Chunks could not be merged (a chunk that does not decode, say).
    #[error("chunk compaction: {0}")]
    Merge(String),
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Tenants looked at.
    pub tenants: usize,
    /// Chunks whose index entries retention removed (and which were marked for deletion).
    pub chunks_marked: usize,
    /// Chunk objects deleted (markers past `retention_delete_delay`).
    pub chunks_deleted: usize,
    /// Their bytes, as the index recorded them.
    pub bytes_deleted: u64,
    /// Index segments and filter tables replaced by merged or rewritten ones.
    pub objects_replaced: usize,
    /// Tenants whose work failed (logged); the pass goes on with the others.
    pub failures: usize,
    /// What chunk compaction did.
    pub merged: crate::merge::MergeReport,
    /// What packing and the orphan scan did.
    pub packed: crate::pack::PackReport,
}

/// The compactor. One process at a time works (see [`crate::lease`]).
pub struct Compactor {
    config: CompactorConfig,
    store: Arc<dyn ChunkStore>,
    index: Arc<dyn IndexStore>,
    filters: FilterIndex,
    limits: TenantLimits,
    metrics: CompactorMetrics,
    lease: Lease,
    hook: Option<TenantHook>,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Now, in ns since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn chunk_id(c: &ChunkRef) -> ChunkId {
    ChunkId { fingerprint: c.fingerprint, from: c.from, through: c.through, checksum: c.checksum }
}

impl Compactor {
    /// A compactor over `store` and `index`, reading each tenant's retention from `limits`,
    /// with its metrics in `registry`.
    pub fn new(
        config: CompactorConfig,
        store: Arc<dyn ChunkStore>,
        index: Arc<dyn IndexStore>,
        limits: TenantLimits,
        registry: &prometheus::Registry,
    ) -> Result<Self, CompactorError> {
        let metrics = CompactorMetrics::new(registry)?;
        let owner = format!(
            "{}-{}-{:x}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "skald".into()),
            std::process::id(),
            now_ns()
        );
        let interval = config.compaction_interval;
        // a lease outlives a few missed renewals; it is read back a moment after it is written
        let ttl = interval.saturating_mul(3).max(Duration::from_secs(5));
        let settle = (interval / 4).clamp(Duration::from_millis(50), Duration::from_secs(2));
        let lease = Lease::new(store.clone(), owner, ttl, settle);
        let filters = FilterIndex::new(store.clone(), 0);
        Ok(Compactor { config, store, index, filters, limits, metrics, lease, hook: None })
    }

    /// Keeps the lease at `path` ([`crate::lease::lease_path`]) instead of the default.
    pub fn with_lease_path(mut self, path: String) -> Self {
        self.lease = self.lease.at(path);
        self
    }

    /// Runs `hook` for each tenant at the start of its pass (before retention and compaction).
    pub fn with_tenant_hook(mut self, hook: TenantHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Runs a pass every `compaction_interval` while this process holds the lease, until
    /// `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut ticker =
            tokio::time::interval(self.config.compaction_interval.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut waiting_for: Option<String> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            match self.lease.acquire().await {
                Ok(None) => {
                    if waiting_for.take().is_some() {
                        tracing::info!(owner = self.lease.owner(), "compactor lease taken over");
                    }
                    self.metrics.set_running(true);
                    // a shutdown stops the pass where it is (every step is idempotent and
                    // writes before it deletes) and gives the lease up at once
                    tokio::select! {
                        () = self.pass_and_record(now_ns()) => {}
                        _ = shutdown.changed() => break,
                    }
                }
                Ok(Some(other)) => {
                    self.metrics.set_running(false);
                    if waiting_for.as_deref() != Some(&other) {
                        tracing::info!(holder = %other, "another compactor holds the lease, waiting");
                        waiting_for = Some(other);
                    }
                }
                Err(error) => {
                    self.metrics.set_running(false);
                    tracing::warn!(%error, "cannot read or write the compactor lease");
                }
            }
        }
        self.metrics.set_running(false);
        self.lease.release().await;
    }

    async fn pass_and_record(&self, now: i64) {
        let started = std::time::Instant::now();
        let report = self.run_pass(now).await;
        let status = if report.failures == 0 { "success" } else { "failure" };
        let m = &self.metrics;
        m.compact_operations.with_label_values(&[status]).inc();
        let elapsed = started.elapsed().as_secs_f64();
        m.compact_duration.set(elapsed);
        // as in Loki, retention is applied by a whole pass with retention on
        if self.config.retention_enabled {
            m.retention_operations.with_label_values(&[status]).inc();
            m.retention_duration.set(elapsed);
        }
        if report.failures == 0 {
            let secs = now_ns() as f64 / 1e9;
            m.last_successful_run.set(secs);
            m.compact_last_success.set(secs);
            if self.config.retention_enabled {
                m.retention_last_successful_run.set(secs);
            }
        }
        tracing::debug!(?report, elapsed = ?started.elapsed(), "compaction pass done");
    }

    /// One pass at time `now` (ns): for each tenant, retention (when enabled), then the
    /// compaction of every day's segments and filter tables; then the chunk objects of the
    /// markers past `retention_delete_delay` are deleted.
    pub async fn run_pass(&self, now: i64) -> PassReport {
        let mut report = PassReport::default();
        // the day tables of this pass (set by the tenants' passes)
        self.metrics.locked_table_skips.reset();
        let tenants = match self.store.list_dirs("").await {
            Ok(t) => t,
            Err(error) => {
                tracing::warn!(%error, "compactor cannot list tenants");
                report.failures += 1;
                return report;
            }
        };
        for tenant in tenants {
            if skald_chunk_store::validate_tenant(&tenant).is_err() {
                continue;
            }
            report.tenants += 1;
            if let Err(error) = self.tenant_pass(&tenant, now, &mut report).await {
                tracing::warn!(tenant = %tenant, %error, "compaction of tenant failed");
                report.failures += 1;
            }
        }
        if let Err(error) = self.sweep_markers(now, &mut report).await {
            tracing::warn!(%error, "deleting marked chunks failed");
            report.failures += 1;
        }
        report
    }

    async fn tenant_pass(
        &self,
        tenant: &str,
        now: i64,
        report: &mut PassReport,
    ) -> Result<(), CompactorError> {
        if let Some(hook) = &self.hook {
            hook(tenant.to_string()).await;
        }
        let index_days = self.index.days(tenant).await?;
        let filter_days = self.filters.days(tenant).await?;
        if self.config.retention_enabled {
            let limits = (self.limits)(tenant);
            let retention = Retention::new(&limits)?;
            if !retention.keeps_everything() {
                self.apply_retention(tenant, &retention, &index_days, &filter_days, now, report)
                    .await?;
            }
            if limits.retention_max_bytes > 0 {
                self.apply_size_retention(tenant, limits.retention_max_bytes, now, report).await?;
            }
        }
        if let Some(settings) = self.config.merge_settings() {
            let stores = crate::merge::MergeStores {
                store: &self.store,
                index: &self.index,
                filters: &self.filters,
            };
            let r = crate::merge::merge_tenant(stores, tenant, &index_days, &settings, now).await?;
            self.metrics.record_merge(&r);
            report.merged.add(&r);
            if let Some(packing) = self.config.pack_settings() {
                let live = crate::merge::live_chunks(self.index.as_ref(), tenant).await?;
                let r = crate::pack::pack_tenant(&self.store, tenant, &live, &packing, now).await?;
                self.metrics.record_pack(&r);
                report.packed.add(&r);
            }
        }
        for day in &index_days {
            // Skald never skips a day for a lock: deletes ran first, in this same pass
            let table = crate::metrics::table_name(*day);
            self.metrics.locked_table_skips.with_label_values(&[&table]).set(0.0);
            let n = self.index.compact_day(tenant, *day).await?;
            report.objects_replaced += n;
            self.metrics.replaced_objects.inc_by(n as u64);
        }
        for day in &filter_days {
            let n = self.filters.rewrite_day(tenant, *day, &HashSet::new()).await?;
            report.objects_replaced += n;
            self.metrics.replaced_objects.inc_by(n as u64);
        }
        Ok(())
    }

    /// Removes the index entries of `tenant`'s chunks past retention, after writing a marker
    /// that names their objects (deleted by a later sweep).
    async fn apply_retention(
        &self,
        tenant: &str,
        retention: &Retention,
        index_days: &[i64],
        filter_days: &[i64],
        now: i64,
        report: &mut PassReport,
    ) -> Result<(), CompactorError> {
        let Some(shortest) = retention.shortest() else { return Ok(()) };
        // nothing newer than this expires
        let horizon = now.saturating_sub(i64::try_from(shortest.as_nanos()).unwrap_or(i64::MAX));
        // one day table at a time, as Loki marks table by table (a chunk spanning days is
        // found on its first; its entries in later days go with it)
        let mut replaced = 0;
        for &day in index_days.iter().filter(|d| d.saturating_mul(NANOS_PER_DAY) <= horizon) {
            let table = crate::metrics::table_name(day);
            let started = std::time::Instant::now();
            let marked = self.mark_day(tenant, retention, day, now, report).await;
            let status = if marked.is_ok() { "success" } else { "failure" };
            let secs = started.elapsed().as_secs_f64();
            self.metrics.table_duration.with_label_values(&[&table, status]).observe(secs);
            let (expired, total, n) = marked?;
            replaced += n;
            let action = match expired {
                0 => "none",
                e if e == total => "deleted",
                _ => "modified",
            };
            self.metrics.tables_processed.with_label_values(&[&table, tenant, action]).inc();
        }
        // whole days every stream has expired from: their filter tables go (entries of chunks
        // never indexed included)
        let earliest = retention.earliest_kept(now);
        for &day in filter_days {
            if (day + 1).saturating_mul(NANOS_PER_DAY) <= earliest {
                for p in self.store.list_prefix(&format!("{tenant}/filters/{day}")).await? {
                    self.store.delete_object(&p).await?;
                    replaced += 1;
                }
            }
        }
        report.objects_replaced += replaced;
        self.metrics.replaced_objects.inc_by(replaced as u64);
        Ok(())
    }

    /// Marks and removes the expired chunks of `tenant`'s index day `day`: returns how many
    /// expired, how many the day had, and the filter tables rewritten.
    async fn mark_day(
        &self,
        tenant: &str,
        retention: &Retention,
        day: i64,
        now: i64,
        report: &mut PassReport,
    ) -> Result<(usize, usize, usize), CompactorError> {
        let start = day.saturating_mul(NANOS_PER_DAY);
        let series = self.index.series(tenant, &[], start, start + NANOS_PER_DAY - 1).await?;
        let mut expired: HashMap<ChunkId, (Labels, ChunkRef)> = HashMap::new();
        let mut total = 0;
        for s in series {
            let cutoff = retention.cutoff(&s.labels, now);
            total += s.chunks.len();
            for c in s.chunks.into_iter().filter(|c| c.through < cutoff) {
                expired.entry(chunk_id(&c)).or_insert_with(|| (s.labels.clone(), c));
            }
        }
        let replaced = self.remove_chunks(tenant, &expired, now, report, "expired").await?;
        Ok((expired.len(), total, replaced))
    }

    /// Removes `chunks` of `tenant`: writes the marker naming their objects (deleted by a
    /// later sweep), then removes their index entries, then their filter-table entries.
    /// Returns the filter tables rewritten. `why` names the rule in the audit log.
    pub(crate) async fn remove_chunks(
        &self,
        tenant: &str,
        chunks: &HashMap<ChunkId, (Labels, ChunkRef)>,
        now: i64,
        report: &mut PassReport,
        why: &str,
    ) -> Result<usize, CompactorError> {
        if chunks.is_empty() {
            return Ok(0);
        }
        let refs: Vec<(Labels, ChunkRef)> = chunks.values().cloned().collect();
        let bytes: u64 = refs.iter().map(|(_, c)| c.compressed_bytes).sum();
        // 1. the marker: the objects to delete survive a crash from here on
        self.write_marker(tenant, &refs, now).await?;
        for (_, c) in &refs {
            let table = crate::metrics::table_name(c.through.div_euclid(NANOS_PER_DAY));
            self.metrics.marked_chunks.with_label_values(&[&table]).inc();
        }
        // 2. the index entries: queries stop finding the chunks
        let days: BTreeSet<i64> =
            refs.iter().flat_map(|(_, c)| days_spanned(c.from, c.through)).collect();
        self.index.delete_chunks(tenant, refs.clone()).await?;
        // 3. their filters
        let ids: HashSet<ChunkId> = chunks.keys().copied().collect();
        let mut replaced = 0;
        for day in &days {
            replaced += self.filters.rewrite_day(tenant, *day, &ids).await?;
        }
        report.chunks_marked += refs.len();
        tracing::info!(
            tenant,
            reason = why,
            chunks = refs.len(),
            bytes,
            days = days.len(),
            filter_tables_rewritten = replaced,
            delete_after = ?self.config.retention_delete_delay,
            "retention: removed the index entries of {why} chunks and marked them for deletion"
        );
        Ok(replaced)
    }

    async fn write_marker(
        &self,
        tenant: &str,
        refs: &[(Labels, ChunkRef)],
        now: i64,
    ) -> Result<(), CompactorError> {
        let mut body = String::new();
        for (_, c) in refs {
            body.push_str(&format!("{} {}\n", c.key(tenant).path(), c.compressed_bytes));
        }
        let id = xxhash_rust::xxh3::xxh3_64(body.as_bytes());
        let path = format!("{MARKERS_PREFIX}/{tenant}/{:020}-{id:016x}.txt", now / 1_000_000);
        self.store.put_object(&path, bytes::Bytes::from(body)).await?;
        Ok(())
    }

    /// Deletes the chunk objects of every marker at least `retention_delete_delay` old, then
    /// the marker. Deleting an object twice is harmless, so a sweep cut short is redone.
    async fn sweep_markers(&self, now: i64, report: &mut PassReport) -> Result<(), CompactorError> {
        let delay =
            i64::try_from(self.config.retention_delete_delay.as_nanos()).unwrap_or(i64::MAX);
        let workers = self.config.retention_delete_worker_count.max(1);
        let mut due: Vec<(String, i64)> = Vec::new();
        for marker in self.store.list_prefix(MARKERS_PREFIX).await? {
            let Some(created_ms) = marker
                .rsplit('/')
                .next()
                .and_then(|f| f.split('-').next())
                .and_then(|ms| ms.parse::<i64>().ok())
            else {
                tracing::warn!(path = %marker, "unreadable deletion marker left in place");
                continue;
            };
            if created_ms.saturating_mul(1_000_000).saturating_add(delay) <= now {
                due.push((marker, created_ms));
            }
        }
        let m = &self.metrics;
        m.sweeper_markers_current.set(due.len() as i64);
        let swept = self.sweep(due, workers, report).await;
        m.sweeper_marker_time.set(0.0);
        swept
    }

    /// Deletes the objects of the `due` markers, then each marker.
    async fn sweep(
        &self,
        due: Vec<(String, i64)>,
        workers: usize,
        report: &mut PassReport,
    ) -> Result<(), CompactorError> {
        let m = &self.metrics;
        for (marker, created_ms) in due {
            m.sweeper_marker_time.set(created_ms as f64 / 1e3);
            let body = self.store.get_object(&marker).await?;
            let text = String::from_utf8_lossy(&body);
            // chunk objects, and the objects of packs chunk compaction replaced
            let items: Vec<(Result<ChunkKey, String>, u64)> = text
                .lines()
                .filter_map(|l| {
                    let (path, bytes) = l.split_once(' ')?;
                    let target = match ChunkKey::parse(path) {
                        Ok(key) => Ok(key),
                        Err(_) => {
                            crate::pack::is_pack_object(path).then(|| path.to_string()).map(Err)?
                        }
                    };
                    Some((target, bytes.parse().ok()?))
                })
                .collect();
            let results: Vec<Result<u64, skald_chunk_store::Error>> =
                futures::stream::iter(items.clone())
                    .map(|(target, bytes)| {
                        let store = self.store.clone();
                        let histogram = m.sweeper_delete_duration.clone();
                        async move {
                            let started = std::time::Instant::now();
                            let r = match target {
                                Ok(key) => store.delete(&key).await,
                                Err(path) => store.delete_object(&path).await,
                            }
                            .map(|()| bytes);
                            let status = if r.is_ok() { "success" } else { "failure" };
                            histogram
                                .with_label_values(&[status])
                                .observe(started.elapsed().as_secs_f64());
                            r
                        }
                    })
                    .buffer_unordered(workers)
                    .collect()
                    .await;
            let mut bytes = 0;
            for r in results {
                bytes += r?;
            }
            self.store.delete_object(&marker).await?;
            m.sweeper_markers_deleted.inc();
            m.sweeper_markers_current.dec();
            let tenant = marker.split('/').nth(2).unwrap_or_default().to_string();
            self.metrics.deleted_chunks.inc_by(items.len() as u64);
            self.metrics.deleted_bytes.inc_by(bytes);
            report.chunks_deleted += items.len();
            report.bytes_deleted += bytes;
            tracing::info!(
                tenant = %tenant,
                chunks = items.len(),
                bytes,
                marker = %marker,
                "retention: deleted chunk objects"
            );
        }
        Ok(())
    }
}
