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
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.chunks_flushed.clone()),
            Box::new(m.flush_failures.clone()),
            Box::new(m.memory_streams.clone()),
            Box::new(m.memory_chunks.clone()),
            Box::new(m.entries.clone()),
            Box::new(m.stored_bytes.clone()),
        ];
        for c in collectors {
            if let Err(error) = registry.register(c) {
                tracing::warn!(%error, "ingester metric not registered");
            }
        }
        m
    }
}
