//! [`DeleteMetrics`]: Loki's deletion metrics (names from its `pkg/compactor/deletion`),
//! created here and registered by the caller.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts};

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
    /// `loki_compactor_load_pending_requests_attempts_total{status="success"|"fail"}`: the
    /// compactor's reads of a tenant's requests at the start of its deletion pass.
    pub load_pending: IntCounterVec,
    /// `loki_compactor_pending_delete_requests_count`: requests past their cancel period
    /// with parts not yet applied (over all tenants, as of their last pass).
    pub pending: IntGauge,
    /// `loki_compactor_oldest_pending_delete_request_age_seconds`: how long the oldest of
    /// them has been past its cancel period.
    pub oldest_pending_age: Gauge,
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
            load_pending: vec(
                "loki_compactor_load_pending_requests_attempts_total",
                "Number of attempts that were made to load pending requests with status",
                "status",
            ),
            pending: IntGauge::with_opts(Opts::new(
                "loki_compactor_pending_delete_requests_count",
                "Count of delete requests which are over their cancellation period and have not finished processing yet",
            ))
            .expect("constant metric name is valid"),
            oldest_pending_age: Gauge::with_opts(Opts::new(
                "loki_compactor_oldest_pending_delete_request_age_seconds",
                "Age of oldest pending delete request in seconds since they are over their cancellation period",
            ))
            .expect("constant metric name is valid"),
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
        registry.register(Box::new(self.load_pending.clone()))?;
        registry.register(Box::new(self.pending.clone()))?;
        registry.register(Box::new(self.oldest_pending_age.clone()))?;
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
