//! Compactor metrics, with Loki's names, types and labels where its dashboards (`Loki /
//! Retention`) and alerts read them (Loki's `pkg/compactor/metrics.go` and
//! `pkg/compactor/retention/metrics.go`), and Skald's own counters. `docs/metrics.md` lists
//! them with what Skald counts.

use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry,
};

/// Metrics of one compactor.
#[derive(Clone, Debug)]
pub struct CompactorMetrics {
    /// `loki_boltdb_shipper_compactor_running` (Loki's, read by its `LokiCompactorHasNotRun`
    /// style alerts) and `loki_compactor_running`: 1 while this process holds the lease.
    pub running: IntGauge,
    running_loki: IntGauge,
    /// `loki_compactor_last_successful_run_timestamp_seconds`: end of the last clean pass.
    pub last_successful_run: Gauge,
    /// `loki_boltdb_shipper_compact_tables_operation_last_successful_run_timestamp_seconds`:
    /// the same, under the name the Retention dashboard reads.
    pub compact_last_success: Gauge,
    /// `loki_boltdb_shipper_compact_tables_operation_duration_seconds`: the last pass's
    /// duration.
    pub compact_duration: Gauge,
    /// `loki_compactor_apply_retention_last_successful_run_timestamp_seconds`: end of the
    /// last clean pass that applied retention.
    pub retention_last_successful_run: Gauge,
    /// `loki_compactor_apply_retention_operation_total{status}`: passes that applied
    /// retention.
    pub retention_operations: IntCounterVec,
    /// `loki_compactor_apply_retention_operation_duration_seconds`: the last such pass's
    /// duration.
    pub retention_duration: Gauge,
    /// `loki_boltdb_shipper_compact_tables_operation_total{status="success"|"failure"}`:
    /// passes.
    pub compact_operations: IntCounterVec,
    /// `loki_compactor_locked_table_successive_compaction_skips{table_name}`: Skald never
    /// skips a table (deletes and compaction run one after the other in a pass), so 0 for
    /// every day table the last pass compacted.
    pub locked_table_skips: GaugeVec,
    /// `loki_boltdb_shipper_retention_marker_count_total{table}`: chunks marked for
    /// deletion, under the day table of their last entry.
    pub marked_chunks: IntCounterVec,
    /// `loki_boltdb_shipper_retention_marker_table_processed_total{table,user_id,action}`:
    /// day tables retention looked at per tenant, `modified` (entries removed), `deleted`
    /// (none left) or `none`.
    pub tables_processed: IntCounterVec,
    /// `loki_boltdb_shipper_retention_marker_table_processed_duration_seconds{table,status}`:
    /// time to mark one day table of one tenant.
    pub table_duration: HistogramVec,
    /// `loki_boltdb_shipper_retention_sweeper_chunk_deleted_duration_seconds{status}`: each
    /// chunk object deletion of the sweeper.
    pub sweeper_delete_duration: HistogramVec,
    /// `loki_boltdb_shipper_retention_sweeper_marker_files_current`: markers past
    /// `retention_delete_delay` not yet swept.
    pub sweeper_markers_current: IntGauge,
    /// `loki_boltdb_shipper_retention_sweeper_marker_file_processing_current_time`: creation
    /// time (Unix s) of the marker being swept; 0 between sweeps.
    pub sweeper_marker_time: Gauge,
    /// `loki_boltdb_shipper_retention_sweeper_marker_files_deleted_total`: markers swept.
    pub sweeper_markers_deleted: IntCounter,
    /// `skald_compactor_deleted_chunks_total`: chunk objects deleted by retention.
    pub deleted_chunks: IntCounter,
    /// `skald_compactor_deleted_bytes_total`: their sizes (as indexed).
    pub deleted_bytes: IntCounter,
    /// `skald_compactor_replaced_objects_total`: index segments and filter tables replaced by
    /// merged ones.
    pub replaced_objects: IntCounter,
    /// `skald_compactor_merged_chunks_total{side="in"|"out"}`: chunks chunk compaction
    /// replaced, and the chunks it wrote in their place.
    pub merged_chunks: IntCounterVec,
    /// `skald_compactor_merged_bytes_total{side="in"|"out"}`: their object bytes.
    pub merged_bytes: IntCounterVec,
    /// `skald_compactor_packs_written_total`: packs written (new and rewritten).
    pub packs_written: IntCounter,
    /// `skald_compactor_orphans_deleted_total`: objects no index ref named, deleted.
    pub orphans_deleted: IntCounter,
}

impl CompactorMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = |n: &str, h: &str| Gauge::with_opts(Opts::new(n, h));
        let counter = |n: &str, h: &str| IntCounter::with_opts(Opts::new(n, h));
        let m = CompactorMetrics {
            running: IntGauge::with_opts(Opts::new(
                "loki_compactor_running",
                "Value will be 1 if compactor is currently running on this instance",
            ))?,
            running_loki: IntGauge::with_opts(Opts::new(
                "loki_boltdb_shipper_compactor_running",
                "Value will be 1 if compactor is currently running on this instance",
            ))?,
            last_successful_run: gauge(
                "loki_compactor_last_successful_run_timestamp_seconds",
                "Unix timestamp of the last successful compaction run",
            )?,
            compact_last_success: gauge(
                "loki_boltdb_shipper_compact_tables_operation_last_successful_run_timestamp_seconds",
                "Unix timestamp of the last successful compaction run",
            )?,
            compact_duration: gauge(
                "loki_boltdb_shipper_compact_tables_operation_duration_seconds",
                "Time (in seconds) spent in compacting all the tables",
            )?,
            retention_last_successful_run: gauge(
                "loki_compactor_apply_retention_last_successful_run_timestamp_seconds",
                "Unix timestamp of the last successful retention run",
            )?,
            retention_operations: IntCounterVec::new(
                Opts::new(
                    "loki_compactor_apply_retention_operation_total",
                    "Total number of attempts done to apply retention with status",
                ),
                &["status"],
            )?,
            retention_duration: gauge(
                "loki_compactor_apply_retention_operation_duration_seconds",
                "Time (in seconds) spent in applying retention",
            )?,
            compact_operations: IntCounterVec::new(
                Opts::new(
                    "loki_boltdb_shipper_compact_tables_operation_total",
                    "Total number of tables compaction done by status",
                ),
                &["status"],
            )?,
            locked_table_skips: GaugeVec::new(
                Opts::new(
                    "loki_compactor_locked_table_successive_compaction_skips",
                    "Number of times uncompacted tables were consecutively skipped due to them being locked by retention",
                ),
                &["table_name"],
            )?,
            marked_chunks: IntCounterVec::new(
                Opts::new(
                    "loki_boltdb_shipper_retention_marker_count_total",
                    "Total count of markers created per table.",
                ),
                &["table"],
            )?,
            tables_processed: IntCounterVec::new(
                Opts::new(
                    "loki_boltdb_shipper_retention_marker_table_processed_total",
                    "Total amount of table processed for each user per action. Empty string for user_id is for common index",
                ),
                &["table", "user_id", "action"],
            )?,
            table_duration: HistogramVec::new(
                HistogramOpts::new(
                    "loki_boltdb_shipper_retention_marker_table_processed_duration_seconds",
                    "Time (in seconds) spent in marking table for chunks to delete",
                )
                .buckets(vec![1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 90.0, 360.0, 600.0, 1800.0]),
                &["table", "status"],
            )?,
            sweeper_delete_duration: HistogramVec::new(
                HistogramOpts::new(
                    "loki_boltdb_shipper_retention_sweeper_chunk_deleted_duration_seconds",
                    "Time (in seconds) spent in deleting chunk",
                )
                .buckets(prometheus::exponential_buckets(0.1, 2.0, 8)?),
                &["status"],
            )?,
            sweeper_markers_current: IntGauge::with_opts(Opts::new(
                "loki_boltdb_shipper_retention_sweeper_marker_files_current",
                "The current total of marker files valid for deletion.",
            ))?,
            sweeper_marker_time: gauge(
                "loki_boltdb_shipper_retention_sweeper_marker_file_processing_current_time",
                "The current time of creation of the marker file being processed.",
            )?,
            sweeper_markers_deleted: counter(
                "loki_boltdb_shipper_retention_sweeper_marker_files_deleted_total",
                "The total of marker files deleted after being fully processed.",
            )?,
            deleted_chunks: counter(
                "skald_compactor_deleted_chunks_total",
                "Chunk objects deleted by retention and chunk compaction.",
            )?,
            deleted_bytes: counter(
                "skald_compactor_deleted_bytes_total",
                "Bytes of the chunk objects deleted by retention and chunk compaction.",
            )?,
            replaced_objects: counter(
                "skald_compactor_replaced_objects_total",
                "Index segments and filter tables replaced by merged ones.",
            )?,
            packs_written: counter(
                "skald_compactor_packs_written_total",
                "Packs of chunks written by chunk compaction (new and rewritten).",
            )?,
            orphans_deleted: counter(
                "skald_compactor_orphans_deleted_total",
                "Objects no index ref named (a crash's leftovers) deleted by the orphan scan.",
            )?,
            merged_chunks: IntCounterVec::new(
                Opts::new(
                    "skald_compactor_merged_chunks_total",
                    "Small chunks merged (side=in) and the chunks written in their place (side=out).",
                ),
                &["side"],
            )?,
            merged_bytes: IntCounterVec::new(
                Opts::new(
                    "skald_compactor_merged_bytes_total",
                    "Object bytes of the chunks merged (side=in) and written (side=out).",
                ),
                &["side"],
            )?,
        };
        registry.register(Box::new(m.packs_written.clone()))?;
        registry.register(Box::new(m.orphans_deleted.clone()))?;
        registry.register(Box::new(m.merged_chunks.clone()))?;
        registry.register(Box::new(m.merged_bytes.clone()))?;
        registry.register(Box::new(m.running.clone()))?;
        registry.register(Box::new(m.running_loki.clone()))?;
        registry.register(Box::new(m.last_successful_run.clone()))?;
        registry.register(Box::new(m.compact_last_success.clone()))?;
        registry.register(Box::new(m.compact_duration.clone()))?;
        registry.register(Box::new(m.retention_last_successful_run.clone()))?;
        registry.register(Box::new(m.retention_operations.clone()))?;
        registry.register(Box::new(m.retention_duration.clone()))?;
        registry.register(Box::new(m.compact_operations.clone()))?;
        registry.register(Box::new(m.locked_table_skips.clone()))?;
        registry.register(Box::new(m.marked_chunks.clone()))?;
        registry.register(Box::new(m.tables_processed.clone()))?;
        registry.register(Box::new(m.table_duration.clone()))?;
        registry.register(Box::new(m.sweeper_delete_duration.clone()))?;
        registry.register(Box::new(m.sweeper_markers_current.clone()))?;
        registry.register(Box::new(m.sweeper_marker_time.clone()))?;
        registry.register(Box::new(m.sweeper_markers_deleted.clone()))?;
        registry.register(Box::new(m.deleted_chunks.clone()))?;
        registry.register(Box::new(m.deleted_bytes.clone()))?;
        registry.register(Box::new(m.replaced_objects.clone()))?;
        Ok(m)
    }

    /// Whether this process holds the lease and works (both of Loki's names).
    pub fn set_running(&self, on: bool) {
        self.running.set(i64::from(on));
        self.running_loki.set(i64::from(on));
    }

    /// Counts what packing and the orphan scan did.
    pub(crate) fn record_pack(&self, r: &crate::PackReport) {
        self.packs_written.inc_by(r.packs_written as u64);
        self.orphans_deleted.inc_by(r.orphans_deleted as u64);
    }

    /// Counts what chunk compaction did.
    pub(crate) fn record_merge(&self, r: &crate::MergeReport) {
        self.merged_chunks.with_label_values(&["in"]).inc_by(r.chunks_in as u64);
        self.merged_chunks.with_label_values(&["out"]).inc_by(r.chunks_out as u64);
        self.merged_bytes.with_label_values(&["in"]).inc_by(r.bytes_in);
        self.merged_bytes.with_label_values(&["out"]).inc_by(r.bytes_out);
    }
}

/// Loki's name of the index table of `day` (days since the epoch), as its labels show it.
pub fn table_name(day: i64) -> String {
    format!("index_{day}")
}
