//! Ingester metrics, registered into an injected registry, with Loki's names.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::stream::ClosedChunk;

/// Counters and gauges of one ingester.
#[derive(Clone)]
pub struct IngesterMetrics {
    /// `loki_ingester_chunks_flushed_total{reason}`
    pub chunks_flushed: IntCounterVec,
    /// `loki_ingester_chunks_flush_failures_total`
    pub flush_failures: IntCounter,
    /// `loki_ingester_memory_streams{tenant}`
    pub memory_streams: IntGaugeVec,
    /// `loki_ingester_memory_chunks`
    pub memory_chunks: IntGauge,
    /// `loki_ingester_streams_created_total{tenant}`
    pub streams_created: IntCounterVec,
    /// `loki_ingester_chunks_created_total`
    pub chunks_created: IntCounter,
    /// `loki_ingester_flush_queue_length`: closed chunks waiting for their upload.
    pub flush_queue_length: IntGauge,
    /// `loki_ingester_entries_total` by outcome
    pub entries: IntCounterVec,
    /// `loki_ingester_chunk_stored_bytes_total{tenant}`
    pub stored_bytes: IntCounterVec,
    /// `loki_ingester_chunks_stored_total{tenant}`
    pub chunks_stored: IntCounterVec,
    /// The flushed chunks' histograms (Loki's names and buckets).
    pub chunk: ChunkHistograms,
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

fn counter_vec(name: &str, help: &str, label: &str) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), &[label]).expect("constant metric name is valid")
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("constant metric name and buckets are valid")
}

/// `start, start*factor, ...` (`count` buckets), as Prometheus's `ExponentialBuckets`.
fn exponential(start: f64, factor: f64, count: i32) -> Vec<f64> {
    (0..count).map(|i| start * factor.powi(i)).collect()
}

/// `start, start+width, ...` (`count` buckets), as Prometheus's `LinearBuckets`.
fn linear(start: f64, width: f64, count: u32) -> Vec<f64> {
    (0..count).map(|i| start + width * f64::from(i)).collect()
}

/// What Loki's ingester observes of every chunk it flushes (the Chunks dashboard).
#[derive(Clone)]
pub struct ChunkHistograms {
    /// `loki_ingester_chunk_utilization`: fill against `chunk_target_size`.
    pub utilization: Histogram,
    /// `loki_ingester_chunk_entries`
    pub entries: Histogram,
    /// `loki_ingester_chunk_size_bytes`: compressed size.
    pub size_bytes: Histogram,
    /// `loki_ingester_chunk_compression_ratio`: uncompressed over compressed size.
    pub compression_ratio: Histogram,
    /// `loki_ingester_chunk_age_seconds`: flush time minus the first entry's timestamp.
    pub age_seconds: Histogram,
    /// `loki_ingester_chunk_bounds_hours`: last minus first entry's timestamp.
    pub bounds_hours: Histogram,
}

impl ChunkHistograms {
    fn new() -> Self {
        ChunkHistograms {
            utilization: histogram(
                "loki_ingester_chunk_utilization",
                "Distribution of stored chunk utilization (when stored).",
                linear(0.0, 0.2, 6),
            ),
            entries: histogram(
                "loki_ingester_chunk_entries",
                "Distribution of stored lines per chunk (when stored).",
                exponential(200.0, 2.0, 9),
            ),
            size_bytes: histogram(
                "loki_ingester_chunk_size_bytes",
                "Distribution of stored chunk sizes (when stored).",
                exponential(20000.0, 2.0, 10),
            ),
            compression_ratio: histogram(
                "loki_ingester_chunk_compression_ratio",
                "Compression ratio of chunks (when stored).",
                linear(0.75, 2.0, 10),
            ),
            age_seconds: histogram(
                "loki_ingester_chunk_age_seconds",
                "Distribution of chunk ages (when stored).",
                vec![
                    60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 36000.0, 43200.0, 57600.0,
                ],
            ),
            bounds_hours: histogram(
                "loki_ingester_chunk_bounds_hours",
                "Distribution of chunk end-start durations.",
                linear(1.0, 1.0, 8),
            ),
        }
    }

    /// Observes a chunk stored at `now_ns` whose fill was `utilization`.
    pub(crate) fn observe(&self, chunk: &ClosedChunk, utilization: f64, now_ns: i64) {
        let r = &chunk.chunk_ref;
        self.utilization.observe(utilization);
        self.entries.observe(f64::from(r.entries));
        self.size_bytes.observe(r.compressed_bytes as f64);
        if r.compressed_bytes > 0 {
            self.compression_ratio.observe(r.uncompressed_bytes as f64 / r.compressed_bytes as f64);
        }
        self.age_seconds.observe(now_ns.saturating_sub(r.from).max(0) as f64 / 1e9);
        self.bounds_hours.observe(r.through.saturating_sub(r.from).max(0) as f64 / 3.6e12);
    }
}

impl IngesterMetrics {
    /// `loki_ingester_chunks_flushed_total` summed over its reasons.
    pub fn chunks_flushed_total(&self) -> u64 {
        use prometheus::core::Collector;
        let families = self.chunks_flushed.collect();
        let metrics = families.iter().flat_map(|f| f.get_metric());
        metrics.map(|m| m.get_counter().get_value() as u64).sum()
    }

    /// Creates the metrics and registers them into `registry` (a duplicate registration is
    /// logged and the metric still counts, just unexported).
    pub fn new(registry: &Registry) -> Self {
        let m = IngesterMetrics {
            chunks_flushed: counter_vec(
                "loki_ingester_chunks_flushed_total",
                "Total flushed chunks, by the reason the chunk was closed.",
                "reason",
            ),
            flush_failures: counter(
                "loki_ingester_chunks_flush_failures_total",
                "Total failed chunk flushes (retried).",
            ),
            memory_streams: IntGaugeVec::new(
                Opts::new("loki_ingester_memory_streams", "Streams held in memory, per tenant."),
                &["tenant"],
            )
            .expect("constant metric name is valid"),
            memory_chunks: gauge(
                "loki_ingester_memory_chunks",
                "Chunks (open and waiting for flush) held in memory.",
            ),
            streams_created: counter_vec(
                "loki_ingester_streams_created_total",
                "The total number of streams created per tenant.",
                "tenant",
            ),
            chunks_created: counter(
                "loki_ingester_chunks_created_total",
                "The total number of chunks created in the ingester.",
            ),
            flush_queue_length: gauge(
                "loki_ingester_flush_queue_length",
                "Closed chunks waiting to be uploaded.",
            ),
            chunks_stored: counter_vec(
                "loki_ingester_chunks_stored_total",
                "Total stored chunks per tenant.",
                "tenant",
            ),
            chunk: ChunkHistograms::new(),
            entries: IntCounterVec::new(
                Opts::new("loki_ingester_entries_total", "Entries received, by outcome."),
                &["outcome"],
            )
            .expect("constant metric name is valid"),
            stored_bytes: counter_vec(
                "loki_ingester_chunk_stored_bytes_total",
                "Compressed chunk bytes written to storage, per tenant.",
                "tenant",
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
            Box::new(m.streams_created.clone()),
            Box::new(m.chunks_created.clone()),
            Box::new(m.flush_queue_length.clone()),
            Box::new(m.chunks_stored.clone()),
            Box::new(m.chunk.utilization.clone()),
            Box::new(m.chunk.entries.clone()),
            Box::new(m.chunk.size_bytes.clone()),
            Box::new(m.chunk.compression_ratio.clone()),
            Box::new(m.chunk.age_seconds.clone()),
            Box::new(m.chunk.bounds_hours.clone()),
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

#[cfg(test)]
mod tests;
