//! Distributor configuration (`distributor:` section), with Loki's key names.

use serde::{Deserialize, Serialize};
use skald_common::units;

use crate::error::ConfigError;

/// Settings of the push path.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DistributorConfig {
    /// Largest accepted push body as received (compressed), in bytes. Loki's default: 100MB.
    #[serde(with = "units::bytesize")]
    pub max_recv_msg_size: u64,
    /// Largest accepted push body after gzip/deflate/snappy decompression, in bytes.
    /// Skald defaults to 100MB; Loki defaults to 5000MB (50× `max_recv_msg_size`).
    #[serde(with = "units::bytesize")]
    pub max_decompressed_size: u64,
    /// Most rejected entries listed in a per-stream rate-limit error (Loki's ingester
    /// `max_returned_stream_errors`).
    pub max_returned_stream_errors: usize,
    /// OTLP settings of the distributor (`otlp_config`, Loki's key names).
    pub otlp_config: DistributorOtlpConfig,
    /// Skald's Elasticsearch bulk ingest (`/_bulk`); not a Loki setting.
    pub elasticsearch: crate::elastic::ElasticConfig,
}

impl DistributorConfig {
    /// Checks the values serde cannot check.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (tenant, c) in &self.otlp_config.tenant_overrides {
            c.validate()
                .map_err(|message| ConfigError::OtlpOverride { tenant: tenant.clone(), message })?;
        }
        self.elasticsearch.validate().map_err(ConfigError::Elastic)
    }
}

/// Loki's resource attributes that become index labels by default (`docs/sources/shared/otel.md`).
pub const DEFAULT_OTLP_INDEX_LABEL_ATTRIBUTES: &[&str] = &[
    "cloud.availability_zone",
    "cloud.region",
    "container.name",
    "deployment.environment.name",
    "k8s.cluster.name",
    "k8s.container.name",
    "k8s.cronjob.name",
    "k8s.daemonset.name",
    "k8s.deployment.name",
    "k8s.job.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.replicaset.name",
    "k8s.statefulset.name",
    "service.instance.id",
    "service.name",
    "service.namespace",
];

/// `distributor.otlp_config`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DistributorOtlpConfig {
    /// Resource attributes stored as index labels unless a tenant's
    /// `limits_config.otlp_config.resource_attributes.ignore_defaults` is set.
    pub default_resource_attributes_as_index_labels: Vec<String>,
    /// Skald's per-tenant overrides of `limits_config.otlp_config` (tenant id → the same
    /// block), standing in for Loki's runtime-config `overrides`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tenant_overrides: std::collections::BTreeMap<String, skald_common::otlp::OtlpConfig>,
}

impl Default for DistributorOtlpConfig {
    fn default() -> Self {
        DistributorOtlpConfig {
            default_resource_attributes_as_index_labels: DEFAULT_OTLP_INDEX_LABEL_ATTRIBUTES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            tenant_overrides: Default::default(),
        }
    }
}

impl Default for DistributorConfig {
    fn default() -> Self {
        DistributorConfig {
            max_recv_msg_size: 100 << 20,
            max_decompressed_size: 100 << 20,
            max_returned_stream_errors: 10,
            otlp_config: DistributorOtlpConfig::default(),
            elasticsearch: crate::elastic::ElasticConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loki_keys() {
        let c: DistributorConfig = serde_json::from_str(
            r#"{"max_recv_msg_size": 104857600, "max_decompressed_size": "1GB"}"#,
        )
        .unwrap();
        assert_eq!(c.max_recv_msg_size, 100 << 20);
        assert_eq!(c.max_decompressed_size, 1 << 30);
        assert!(serde_json::from_str::<DistributorConfig>(r#"{"nope": 1}"#).is_err());
    }
}
