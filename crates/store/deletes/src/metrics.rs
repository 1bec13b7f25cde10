//! [`DeleteMetrics`]: Loki's deletion metrics (names from its `pkg/compactor/deletion`),
//! created here and registered by the caller.

use prometheus::{IntCounter, IntCounterVec, Opts};

/// Counters of the delete API, the query-time lookups and the deletion passes.
#[derive(Debug, Clone)]
pub struct DeleteMetrics {
    /// `loki_compactor_delete_requests_received_total{user}`: requests created.
    pub received: IntCounterVec,
    /// `loki_compactor_delete_requests_processed_total{user}`: request parts processed.
    pub processed: IntCounterVec,
    /// `loki_compactor_deleted_lines{user}`: lines removed from storage.
    pub deleted_lines: IntCounterVec,
    /// `loki_compactor_delete_requests_chunks_selected_total{user}`: chunks examined by
    /// passes.
    pub chunks_selected: IntCounterVec,
    /// `loki_compactor_delete_processing_fails_total{cause}`: passes that failed.
    pub failures: IntCounterVec,
    /// `loki_delete_request_lookups_total`: reads of a tenant's requests by queriers.
    pub lookups: IntCounter,
    /// `loki_delete_request_lookups_failed_total`: such reads that failed.
    pub lookups_failed: IntCounter,
}

impl DeleteMetrics {
    /// Creates the counters (not registered).
    pub fn new() -> Self {
        // Names and help texts are constants, so construction cannot fail.
        let vec = |n: &str, h: &str, l: &str| {
            IntCounterVec::new(Opts::new(n, h), &[l]).expect("constant metric name is valid")
        };
        let one = |n: &str, h: &str| {
            IntCounter::with_opts(Opts::new(n, h)).expect("constant metric name is valid")
        };
        DeleteMetrics {
            received: vec(
                "loki_compactor_delete_requests_received_total",
                "Number of delete requests received per user",
                "user",
            ),
            processed: vec(
                "loki_compactor_delete_requests_processed_total",
                "Number of delete requests processed per user",
                "user",
            ),
            deleted_lines: vec(
                "loki_compactor_deleted_lines",
                "Number of deleted lines per user",
                "user",
            ),
            chunks_selected: vec(
                "loki_compactor_delete_requests_chunks_selected_total",
                "Number of chunks selected while building delete plans per user",
                "user",
            ),
            failures: vec(
                "loki_compactor_delete_processing_fails_total",
                "Number of times the delete phase of compaction has failed",
                "cause",
            ),
            lookups: one(
                "loki_delete_request_lookups_total",
                "Number times the client has looked up delete requests",
            ),
            lookups_failed: one(
                "loki_delete_request_lookups_failed_total",
                "Number times the client has failed to look up delete requests",
            ),
        }
    }

    /// Registers every counter into `registry`.
    pub fn register(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.received.clone()))?;
        registry.register(Box::new(self.processed.clone()))?;
        registry.register(Box::new(self.deleted_lines.clone()))?;
        registry.register(Box::new(self.chunks_selected.clone()))?;
        registry.register(Box::new(self.failures.clone()))?;
        registry.register(Box::new(self.lookups.clone()))?;
        registry.register(Box::new(self.lookups_failed.clone()))?;
        Ok(())
    }
}

impl Default for DeleteMetrics {
    fn default() -> Self {
        DeleteMetrics::new()
    }
}
