//! Table-manager metrics, registered into an injected registry, with Loki's names where
//! Loki had one.

use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntGauge, Opts, Registry,
};

/// Value of the `operation` label of the sync histogram (Loki's).
pub(crate) const SYNC_OPERATION: &str = "TableManager.SyncTables";

/// Metrics of one table manager. See the crate README for the list.
#[derive(Clone, Debug)]
pub struct TableManagerMetrics {
    /// `<ns>_table_manager_sync_duration_seconds{operation, status_code}`: reconcile passes;
    /// `status_code` is `success` or `error`.
    pub sync_duration: HistogramVec,
    /// `<ns>_table_manager_sync_success_timestamp_seconds`: end of the last clean pass.
    pub last_successful_sync: Gauge,
    /// `<ns>_table_capacity_units{op="read"|"write", table}`: provisioned capacity seen at the
    /// last describe (0 for on-demand tables).
    pub table_capacity: GaugeVec,
    /// `<ns>_table_manager_create_failures`: failed creations in the last pass.
    pub create_failures: IntGauge,
    /// `<ns>_table_manager_update_failures`: failed describes/updates in the last pass.
    pub update_failures: IntGauge,
    /// `<ns>_table_manager_delete_failures`: failed deletions in the last pass.
    pub delete_failures: IntGauge,
    /// `<ns>_table_manager_expected_tables`: tables that should exist after the last pass.
    pub expected_tables: IntGauge,
    /// `<ns>_table_manager_tables_created_total`
    pub tables_created: IntCounter,
    /// `<ns>_table_manager_tables_updated_total`: throughput or billing-mode changes.
    pub tables_updated: IntCounter,
    /// `<ns>_table_manager_tables_deleted_total`: retention deletions.
    pub tables_deleted: IntCounter,
}

impl TableManagerMetrics {
    /// Creates the metrics with names prefixed by `namespace` (Loki's is `loki`) and
    /// registers them into `registry`.
    pub fn new(registry: &Registry, namespace: &str) -> Result<Self, prometheus::Error> {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace(namespace);
        let m = Self {
            sync_duration: HistogramVec::new(
                HistogramOpts::from(opts(
                    "table_manager_sync_duration_seconds",
                    "Time spent syncing tables.",
                )),
                &["operation", "status_code"],
            )?,
            last_successful_sync: Gauge::with_opts(opts(
                "table_manager_sync_success_timestamp_seconds",
                "Timestamp of the last successful table manager sync.",
            ))?,
            table_capacity: GaugeVec::new(
                opts("table_capacity_units", "Per-table capacity, measured in DynamoDB capacity units."),
                &["op", "table"],
            )?,
            create_failures: IntGauge::with_opts(opts(
                "table_manager_create_failures",
                "Number of table creation failures during the last table-manager reconciliation.",
            ))?,
            update_failures: IntGauge::with_opts(opts(
                "table_manager_update_failures",
                "Number of table describe/update failures during the last table-manager reconciliation.",
            ))?,
            delete_failures: IntGauge::with_opts(opts(
                "table_manager_delete_failures",
                "Number of table deletion failures during the last table-manager reconciliation.",
            ))?,
            expected_tables: IntGauge::with_opts(opts(
                "table_manager_expected_tables",
                "Number of tables expected to exist after the last table-manager reconciliation.",
            ))?,
            tables_created: IntCounter::with_opts(opts(
                "table_manager_tables_created_total",
                "Total tables created by the table manager.",
            ))?,
            tables_updated: IntCounter::with_opts(opts(
                "table_manager_tables_updated_total",
                "Total table throughput or billing-mode updates made by the table manager.",
            ))?,
            tables_deleted: IntCounter::with_opts(opts(
                "table_manager_tables_deleted_total",
                "Total tables deleted by the table manager for retention.",
            ))?,
        };
        registry.register(Box::new(m.sync_duration.clone()))?;
        registry.register(Box::new(m.last_successful_sync.clone()))?;
        registry.register(Box::new(m.table_capacity.clone()))?;
        registry.register(Box::new(m.create_failures.clone()))?;
        registry.register(Box::new(m.update_failures.clone()))?;
        registry.register(Box::new(m.delete_failures.clone()))?;
        registry.register(Box::new(m.expected_tables.clone()))?;
        registry.register(Box::new(m.tables_created.clone()))?;
        registry.register(Box::new(m.tables_updated.clone()))?;
        registry.register(Box::new(m.tables_deleted.clone()))?;
        Ok(m)
    }
}
