//! The reconcile loop: list the tables, create missing ones, fix throughput, delete expired
//! ones.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use prometheus::Registry;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::client::{TableClient, TableStatus};
use crate::config::{validate, PeriodicTableConfig, TableManagerConfig};
use crate::error::{Error, Operation, Result, TableFailure};
use crate::metrics::{TableManagerMetrics, SYNC_OPERATION};
use crate::tables::{
    expected_tables, is_expired, retention_cutoff, unix_secs, TableDesc, Throughput,
};

/// Metric namespace used by [`TableManager::new`], so that Loki dashboards work.
pub const DEFAULT_METRICS_NAMESPACE: &str = "loki";

/// First retry delay after a failed pass; it doubles on each further failure, up to
/// `poll_interval`.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// What one reconcile pass did. Names are sorted within each list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// How many tables should exist.
    pub expected: usize,
    /// Tables created.
    pub created: Vec<String>,
    /// Tables whose billing mode or capacity was changed.
    pub updated: Vec<String>,
    /// Tables deleted for retention.
    pub deleted: Vec<String>,
    /// Managed tables past retention that were kept because `retention_deletes_enabled` is
    /// false.
    pub past_retention: Vec<String>,
}

impl SyncReport {
    /// Returns true when the pass changed nothing.
    pub fn is_noop(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty() && self.deleted.is_empty()
    }
}

/// Keeps the periodic index tables of the DynamoDB schema periods in the state
/// [`expected_tables`] describes.
pub struct TableManager {
    config: TableManagerConfig,
    periods: Vec<PeriodicTableConfig>,
    client: Arc<dyn TableClient>,
    metrics: TableManagerMetrics,
    clock: Clock,
}

impl std::fmt::Debug for TableManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableManager")
            .field("config", &self.config)
            .field("periods", &self.periods)
            .finish_non_exhaustive()
    }
}

impl TableManager {
    /// Validates the configuration (see [`validate`]) and registers the metrics into
    /// `registry` under the `loki` namespace.
    ///
    /// `periods` are the `schema_config` periods whose index is stored in DynamoDB, sorted by
    /// `from_secs`.
    pub fn new(
        config: TableManagerConfig,
        periods: Vec<PeriodicTableConfig>,
        client: Arc<dyn TableClient>,
        registry: &Registry,
    ) -> Result<Self> {
        validate(&config, &periods)?;
        let metrics = TableManagerMetrics::new(registry, DEFAULT_METRICS_NAMESPACE)?;
        Self::with_metrics(config, periods, client, metrics)
    }

    /// Like [`new`](Self::new), with metrics the caller registered (e.g. under another
    /// namespace).
    pub fn with_metrics(
        config: TableManagerConfig,
        periods: Vec<PeriodicTableConfig>,
        client: Arc<dyn TableClient>,
        metrics: TableManagerMetrics,
    ) -> Result<Self> {
        validate(&config, &periods)?;
        if config.index_tables_provisioning.autoscaling_enabled() {
            warn!(
                "table_manager.index_tables_provisioning enables autoscaling, which Skald does \
                 not support: the autoscaling settings are ignored"
            );
        }
        if config.retention_deletes_enabled && config.retention_period.is_zero() {
            warn!("table_manager.retention_deletes_enabled is set but retention_period is 0s: no table will be deleted");
        }
        Ok(Self { config, periods, client, metrics, clock: Arc::new(SystemTime::now) })
    }

    /// Replaces the clock [`run`](Self::run) reads (the system clock by default).
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Returns the metrics.
    pub fn metrics(&self) -> &TableManagerMetrics {
        &self.metrics
    }

    /// Returns the tables that should exist at `now` (see [`expected_tables`]).
    pub fn expected_tables(&self, now: SystemTime) -> Vec<TableDesc> {
        expected_tables(now, &self.periods, &self.config)
    }

    /// Runs one reconcile pass as of `now`.
    ///
    /// Lists the tables, then deletes managed tables past retention (only with
    /// `retention_deletes_enabled`), creates the missing expected tables, and updates the
    /// billing mode/capacity of expected tables that are `ACTIVE` and differ (unless
    /// `throughput_updates_disabled`). A table is only ever deleted if its name is
    /// `<managed prefix><number>` and its whole time range is older than
    /// `now - retention_period`; any other table is never touched.
    ///
    /// One failing table does not stop the pass: the others are still handled and the
    /// failures are returned together as [`Error::Reconcile`]. A failing `ListTables` aborts
    /// the pass.
    pub async fn reconcile(&self, now: SystemTime) -> Result<SyncReport> {
        let started = Instant::now();
        let result = self.sync(now).await;
        let status = if result.is_ok() { "success" } else { "error" };
        self.metrics
            .sync_duration
            .with_label_values(&[SYNC_OPERATION, status])
            .observe(started.elapsed().as_secs_f64());
        if result.is_ok() {
            self.metrics.last_successful_sync.set(unix_secs(now) as f64);
        }
        result
    }

    async fn sync(&self, now: SystemTime) -> Result<SyncReport> {
        let expected = self.expected_tables(now);
        let mut existing = self.client.list_tables().await?;
        existing.sort_unstable();
        let existing_set: HashSet<&str> = existing.iter().map(String::as_str).collect();
        let expected_set: HashSet<&str> = expected.iter().map(|t| t.name.as_str()).collect();
        debug!(expected = expected.len(), existing = existing.len(), "syncing tables");

        let mut report = SyncReport { expected: expected.len(), ..Default::default() };
        let mut failures = Vec::new();

        // Retention: managed, numbered, not expected, and wholly older than the cutoff.
        let mut to_delete = Vec::new();
        if let Some(cutoff) = retention_cutoff(unix_secs(now), &self.config) {
            for name in &existing {
                if expected_set.contains(name.as_str()) || !is_expired(name, &self.periods, cutoff)
                {
                    continue;
                }
                if self.config.retention_deletes_enabled {
                    to_delete.push(name.clone());
                } else {
                    info!(table = %name, "table has exceeded the retention period; retention_deletes_enabled is false, keeping it");
                    report.past_retention.push(name.clone());
                }
            }
        }
        let mut delete_failures = 0;
        for name in to_delete {
            info!(table = %name, "deleting table past the retention period");
            match self.client.delete_table(&name).await {
                Ok(()) => {
                    self.metrics.tables_deleted.inc();
                    for op in ["read", "write"] {
                        // Absent labels are fine: the table may never have been described.
                        let _ = self.metrics.table_capacity.remove_label_values(&[op, &name]);
                    }
                    report.deleted.push(name);
                }
                Err(error) => {
                    warn!(table = %name, %error, "failed to delete table");
                    delete_failures += 1;
                    failures.push(TableFailure {
                        table: name,
                        operation: Operation::Delete,
                        error,
                    });
                }
            }
        }

        let mut create_failures = 0;
        for desc in expected.iter().filter(|t| !existing_set.contains(t.name.as_str())) {
            info!(table = %desc.name, throughput = %desc.throughput, "creating table");
            match self.client.create_table(desc).await {
                Ok(()) => {
                    self.metrics.tables_created.inc();
                    report.created.push(desc.name.clone());
                }
                Err(error) => {
                    warn!(table = %desc.name, %error, "failed to create table");
                    create_failures += 1;
                    failures.push(TableFailure {
                        table: desc.name.clone(),
                        operation: Operation::Create,
                        error,
                    });
                }
            }
        }

        let mut update_failures = 0;
        for desc in expected.iter().filter(|t| existing_set.contains(t.name.as_str())) {
            match self.check_throughput(desc).await {
                Ok(true) => report.updated.push(desc.name.clone()),
                Ok(false) => {}
                Err((operation, error)) => {
                    warn!(table = %desc.name, %operation, %error, "failed to check or update table throughput");
                    update_failures += 1;
                    failures.push(TableFailure { table: desc.name.clone(), operation, error });
                }
            }
        }

        self.metrics.delete_failures.set(delete_failures);
        self.metrics.create_failures.set(create_failures);
        self.metrics.update_failures.set(update_failures);
        self.metrics.expected_tables.set(i64::try_from(expected.len()).unwrap_or(i64::MAX));
        report.created.sort_unstable();
        report.updated.sort_unstable();
        report.deleted.sort_unstable();
        report.past_retention.sort_unstable();
        if failures.is_empty() {
            if !report.is_noop() {
                info!(
                    created = report.created.len(),
                    updated = report.updated.len(),
                    deleted = report.deleted.len(),
                    "tables reconciled"
                );
            }
            Ok(report)
        } else {
            Err(Error::Reconcile { report: Box::new(report), failures })
        }
    }

    /// Describes an existing expected table and updates its throughput if needed. Returns
    /// whether it was updated.
    async fn check_throughput(&self, desc: &TableDesc) -> Result<bool, (Operation, Error)> {
        let current = match self.client.describe_table(&desc.name).await {
            Ok(state) => state,
            Err(Error::TableNotFound { .. }) => {
                // Deleted between the listing and now: the next pass creates it again.
                debug!(table = %desc.name, "table vanished before describe");
                return Ok(false);
            }
            Err(error) => return Err((Operation::Describe, error)),
        };
        let (read, write) = match current.throughput {
            Throughput::OnDemand => (0, 0),
            Throughput::Provisioned { read, write } => (read, write),
        };
        self.metrics.table_capacity.with_label_values(&["read", &desc.name]).set(read as f64);
        self.metrics.table_capacity.with_label_values(&["write", &desc.name]).set(write as f64);

        if self.config.throughput_updates_disabled || current.throughput == desc.throughput {
            return Ok(false);
        }
        if current.status != TableStatus::Active {
            info!(table = %desc.name, status = ?current.status, "skipping throughput update: table is not ACTIVE yet");
            return Ok(false);
        }
        info!(
            table = %desc.name,
            from = %current.throughput,
            to = %desc.throughput,
            "updating table throughput"
        );
        self.client.update_table(&current, desc).await.map_err(|e| (Operation::Update, e))?;
        self.metrics.tables_updated.inc();
        Ok(true)
    }

    /// Reconciles every `poll_interval` until `shutdown` becomes true (or its sender is
    /// dropped). The first pass runs immediately.
    ///
    /// A failed pass is logged and retried after [`INITIAL_BACKOFF`], doubling on each
    /// further failure up to `poll_interval`; the loop never exits on an error. A pass in
    /// flight when shutdown is signalled is abandoned (every table operation is idempotent).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let poll = self.config.poll_interval;
        let initial_backoff = INITIAL_BACKOFF.min(poll);
        let mut backoff = initial_backoff;
        info!(poll_interval = ?poll, periods = self.periods.len(), "table manager started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = (self.clock)();
            let outcome = tokio::select! {
                result = self.reconcile(now) => result,
                () = shutdown_signalled(&mut shutdown) => break,
            };
            let delay = match outcome {
                Ok(report) => {
                    backoff = initial_backoff;
                    debug!(expected = report.expected, "table sync done");
                    poll
                }
                Err(error) => {
                    error!(%error, retry_in = ?backoff, "error syncing tables");
                    let delay = backoff;
                    backoff = backoff.saturating_mul(2).min(poll);
                    delay
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown_signalled(&mut shutdown) => break,
            }
        }
        info!("table manager stopped");
    }
}

/// Resolves once the shutdown flag is true or the sender is gone.
async fn shutdown_signalled(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped: nobody can signal any more, so stop.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests;
