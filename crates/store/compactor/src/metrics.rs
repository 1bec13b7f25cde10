//! Compactor metrics, with Loki's names where its dashboards read them.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Metrics of one compactor.
#[derive(Clone, Debug)]
pub struct CompactorMetrics {
    /// `loki_compactor_running`: 1 while this process holds the lease and works.
    pub running: IntGauge,
    /// `loki_compactor_last_successful_run_timestamp_seconds`: end of the last clean pass.
    pub last_successful_run: Gauge,
    /// `loki_compactor_apply_retention_last_successful_run_timestamp_seconds`: end of the
    /// last clean pass that applied retention.
    pub retention_last_successful_run: Gauge,
    /// `loki_boltdb_shipper_compact_tables_operation_total{status="success"|"failure"}`:
    /// passes.
    pub compact_operations: IntCounterVec,
    /// `loki_boltdb_shipper_retention_marker_count_total`: chunks marked for deletion.
    pub marked_chunks: IntCounter,
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
        let m = CompactorMetrics {
            running: IntGauge::with_opts(Opts::new(
                "loki_compactor_running",
                "Value will be 1 if compactor is currently running on this instance",
            ))?,
            last_successful_run: Gauge::with_opts(Opts::new(
                "loki_compactor_last_successful_run_timestamp_seconds",
                "Unix timestamp of the last successful compaction run",
            ))?,
            retention_last_successful_run: Gauge::with_opts(Opts::new(
                "loki_compactor_apply_retention_last_successful_run_timestamp_seconds",
                "Unix timestamp of the last successful retention run",
            ))?,
            compact_operations: IntCounterVec::new(
                Opts::new(
                    "loki_boltdb_shipper_compact_tables_operation_total",
                    "Total number of tables compaction done by status",
                ),
                &["status"],
            )?,
            marked_chunks: IntCounter::with_opts(Opts::new(
                "loki_boltdb_shipper_retention_marker_count_total",
                "Total count of markers created",
            ))?,
            deleted_chunks: IntCounter::with_opts(Opts::new(
                "skald_compactor_deleted_chunks_total",
                "Chunk objects deleted by retention and chunk compaction.",
            ))?,
            deleted_bytes: IntCounter::with_opts(Opts::new(
                "skald_compactor_deleted_bytes_total",
                "Bytes of the chunk objects deleted by retention and chunk compaction.",
            ))?,
            replaced_objects: IntCounter::with_opts(Opts::new(
                "skald_compactor_replaced_objects_total",
                "Index segments and filter tables replaced by merged ones.",
            ))?,
            packs_written: IntCounter::with_opts(Opts::new(
                "skald_compactor_packs_written_total",
                "Packs of chunks written by chunk compaction (new and rewritten).",
            ))?,
            orphans_deleted: IntCounter::with_opts(Opts::new(
                "skald_compactor_orphans_deleted_total",
                "Objects no index ref named (a crash's leftovers) deleted by the orphan scan.",
            ))?,
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
        registry.register(Box::new(m.last_successful_run.clone()))?;
        registry.register(Box::new(m.retention_last_successful_run.clone()))?;
        registry.register(Box::new(m.compact_operations.clone()))?;
        registry.register(Box::new(m.marked_chunks.clone()))?;
        registry.register(Box::new(m.deleted_chunks.clone()))?;
        registry.register(Box::new(m.deleted_bytes.clone()))?;
        registry.register(Box::new(m.replaced_objects.clone()))?;
        Ok(m)
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
