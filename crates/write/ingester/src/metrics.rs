//! Ingester metrics, registered into an injected registry, with Loki's names.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Counters and gauges of one ingester.
#[derive(Clone)]
pub struct IngesterMetrics {
    /// `loki_ingester_chunks_flushed_total`
    pub chunks_flushed: IntCounter,
    /// `loki_ingester_chunk_flush_failures_total`
    pub flush_failures: IntCounter,
    /// `loki_ingester_memory_streams`
    pub memory_streams: IntGauge,
    /// `loki_ingester_memory_chunks`
    pub memory_chunks: IntGauge,
    /// `loki_ingester_entries_total` by outcome
    pub entries: IntCounterVec,
    /// `loki_ingester_chunk_stored_bytes_total`
    pub stored_bytes: IntCounter,
    /// `loki_ingester_wal_records_logged_total`
    pub wal_records: IntCounter,
    /// `loki_ingester_wal_logged_bytes_total`
    pub wal_bytes: IntCounter,
    /// `loki_ingester_wal_corruptions_total`: damaged records met during replay.
    pub wal_corruptions: IntCounter,
    /// `skald_ingester_wal_write_failures_total`: pushes refused because the WAL write failed.
    pub wal_failures: IntCounter,
    /// `skald_ingester_wal_skipped_records_total`: records of an invalid tenant id skipped
    /// during replay.
    pub wal_skipped_records: IntCounter,
    /// `loki_ingester_wal_recovered_entries_total`: entries replayed at start.
    pub wal_recovered_entries: IntCounter,
    /// `loki_ingester_checkpoint_creations_total`
    pub checkpoints: IntCounter,
    /// `loki_ingester_checkpoint_creations_failed_total`
    pub checkpoint_failures: IntCounter,
    /// `loki_ingester_checkpoint_logged_bytes_total`
    pub checkpoint_bytes: IntCounter,
    /// `skald_ingester_flush_backoff_seconds`: wait before the next flush attempt after
    /// storage failures (0 while flushes work).
    pub flush_backoff_seconds: prometheus::Gauge,
    /// `loki_ingester_tailers`: live-tail subscribers.
    pub tailers: IntGauge,
    /// `skald_ingester_tail_dropped_entries_total`: entries a slow tail subscriber missed.
    pub tail_dropped_entries: IntCounter,
}

// Names and help texts are constants, so construction cannot fail (invariant: valid names).
fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("constant metric name is valid")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("constant metric name is valid")
}

impl IngesterMetrics {
    /// Creates the metrics and registers them into `registry` (a duplicate registration is
    /// logged and the metric still counts, just unexported).
    pub fn new(registry: &Registry) -> Self {
        let m = IngesterMetrics {
            chunks_flushed: counter("loki_ingester_chunks_flushed_total", "Total flushed chunks."),
            flush_failures: counter(
                "loki_ingester_chunk_flush_failures_total",
                "Total failed chunk flushes (retried).",
            ),
            memory_streams: gauge("loki_ingester_memory_streams", "Streams held in memory."),
            memory_chunks: gauge(
                "loki_ingester_memory_chunks",
                "Chunks (open and waiting for flush) held in memory.",
            ),
            entries: IntCounterVec::new(
                Opts::new("loki_ingester_entries_total", "Entries received, by outcome."),
                &["outcome"],
            )
            .expect("constant metric name is valid"),
            stored_bytes: counter(
                "loki_ingester_chunk_stored_bytes_total",
                "Compressed chunk bytes written to storage.",
            ),
            wal_records: counter(
                "loki_ingester_wal_records_logged_total",
                "Records written to the WAL.",
            ),
            wal_bytes: counter("loki_ingester_wal_logged_bytes_total", "Bytes written to the WAL."),
            wal_corruptions: counter(
                "loki_ingester_wal_corruptions_total",
                "Damaged WAL records met during replay (each ends its file).",
            ),
            wal_failures: counter(
                "skald_ingester_wal_write_failures_total",
                "Pushes refused because their WAL write failed.",
            ),
            wal_skipped_records: counter(
                "skald_ingester_wal_skipped_records_total",
                "WAL records of an invalid tenant id skipped during replay.",
            ),
            wal_recovered_entries: counter(
                "loki_ingester_wal_recovered_entries_total",
                "Entries replayed from the WAL at start.",
            ),
            checkpoints: counter(
                "loki_ingester_checkpoint_creations_total",
                "WAL checkpoints written.",
            ),
            checkpoint_failures: counter(
                "loki_ingester_checkpoint_creations_failed_total",
                "WAL checkpoints that failed.",
            ),
            checkpoint_bytes: counter(
                "loki_ingester_checkpoint_logged_bytes_total",
                "Bytes written to WAL checkpoints.",
            ),
            flush_backoff_seconds: prometheus::Gauge::new(
                "skald_ingester_flush_backoff_seconds",
                "Seconds the ingester waits before retrying a failed flush (0 while flushes work).",
            )
            .expect("constant metric name is valid"),
            tailers: gauge("loki_ingester_tailers", "Live-tail subscribers."),
            tail_dropped_entries: counter(
                "skald_ingester_tail_dropped_entries_total",
                "Entries dropped for live-tail subscribers that could not keep up.",
            ),
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.chunks_flushed.clone()),
            Box::new(m.flush_backoff_seconds.clone()),
            Box::new(m.flush_failures.clone()),
            Box::new(m.memory_streams.clone()),
            Box::new(m.memory_chunks.clone()),
            Box::new(m.entries.clone()),
            Box::new(m.stored_bytes.clone()),
            Box::new(m.wal_records.clone()),
            Box::new(m.wal_bytes.clone()),
            Box::new(m.wal_corruptions.clone()),
            Box::new(m.wal_failures.clone()),
            Box::new(m.wal_skipped_records.clone()),
            Box::new(m.wal_recovered_entries.clone()),
            Box::new(m.checkpoints.clone()),
            Box::new(m.checkpoint_failures.clone()),
            Box::new(m.checkpoint_bytes.clone()),
            Box::new(m.tailers.clone()),
            Box::new(m.tail_dropped_entries.clone()),
        ];
        for c in collectors {
            if let Err(error) = registry.register(c) {
                tracing::warn!(%error, "ingester metric not registered");
            }
        }
        m
    }
}
