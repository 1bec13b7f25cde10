//! Distributor metrics, with Loki's names and label sets so existing dashboards work.

use prometheus::{IntCounterVec, Opts, Registry};

/// Value of the `format` label for pushes through the Loki push API.
pub(crate) const FORMAT_LOKI: &str = "loki";

/// Counters registered into an injected registry.
#[derive(Debug, Clone)]
pub struct DistributorMetrics {
    /// `loki_distributor_bytes_received_total{tenant,retention_hours,is_internal_stream,policy,format}`:
    /// uncompressed line plus structured-metadata bytes received.
    pub bytes_received: IntCounterVec,
    /// `loki_distributor_structured_metadata_bytes_received_total{...same labels}`.
    pub structured_metadata_bytes_received: IntCounterVec,
    /// `loki_distributor_lines_received_total{tenant,is_internal_stream,policy,format}`.
    pub lines_received: IntCounterVec,
    /// `loki_discarded_samples_total{reason,tenant,retention_hours,policy,format}`.
    pub discarded_samples: IntCounterVec,
    /// `loki_discarded_bytes_total{reason,tenant,retention_hours,policy,format}`.
    pub discarded_bytes: IntCounterVec,
    /// `loki_mutated_samples_total{reason,tenant}`: lines truncated.
    pub mutated_samples: IntCounterVec,
    /// `loki_mutated_bytes_total{reason,tenant}`: bytes removed by truncation.
    pub mutated_bytes: IntCounterVec,
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help).namespace("loki"), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

impl DistributorMetrics {
    /// Creates the counters and registers them into `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let received = ["tenant", "retention_hours", "is_internal_stream", "policy", "format"];
        let discarded = ["reason", "tenant", "retention_hours", "policy", "format"];
        Ok(DistributorMetrics {
            bytes_received: counter(
                registry,
                "distributor_bytes_received_total",
                "The total number of uncompressed bytes received per tenant. Includes structured metadata bytes.",
                &received,
            )?,
            structured_metadata_bytes_received: counter(
                registry,
                "distributor_structured_metadata_bytes_received_total",
                "The total number of uncompressed bytes received per tenant for entries' structured metadata",
                &received,
            )?,
            lines_received: counter(
                registry,
                "distributor_lines_received_total",
                "The total number of lines received per tenant",
                &["tenant", "is_internal_stream", "policy", "format"],
            )?,
            discarded_samples: counter(
                registry,
                "discarded_samples_total",
                "The total number of samples that were discarded.",
                &discarded,
            )?,
            discarded_bytes: counter(
                registry,
                "discarded_bytes_total",
                "The total number of bytes that were discarded.",
                &discarded,
            )?,
            mutated_samples: counter(
                registry,
                "mutated_samples_total",
                "The total number of samples that have been mutated.",
                &["reason", "tenant"],
            )?,
            mutated_bytes: counter(
                registry,
                "mutated_bytes_total",
                "The total number of bytes that have been mutated.",
                &["reason", "tenant"],
            )?,
        })
    }

    pub(crate) fn discard(&self, reason: &str, tenant: &str, samples: u64, bytes: u64) {
        let l = [reason, tenant, "", "", FORMAT_LOKI];
        self.discarded_samples.with_label_values(&l).inc_by(samples);
        self.discarded_bytes.with_label_values(&l).inc_by(bytes);
    }
}
