//! [`CompactorConfig`]: Loki's `compactor` block.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use skald_common::units;

/// Loki's `compactor` block, with Loki's keys and defaults (Loki 3.x `-help`). Skald acts on
/// `compaction_interval`, `retention_enabled`, `retention_delete_delay` and
/// `retention_delete_worker_count`; `working_directory` is accepted and unused (the compactor
/// keeps its state in the object store), and the delete-request keys are read by the delete
/// API.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CompactorConfig {
    /// Where Loki downloads index files; unused by Skald.
    pub working_directory: String,
    /// How often a compaction (and retention) pass runs.
    #[serde(with = "units::duration")]
    pub compaction_interval: Duration,
    /// Whether passes delete data past `limits_config` retention.
    pub retention_enabled: bool,
    /// How long after their index entries are removed chunk objects are deleted, so that
    /// queries already planned can still read them.
    #[serde(with = "units::duration")]
    pub retention_delete_delay: Duration,
    /// Chunk objects deleted concurrently.
    pub retention_delete_worker_count: usize,
    /// Where delete requests are kept (the delete API's).
    pub delete_request_store: String,
    /// How long a delete request may be cancelled (the delete API's).
    #[serde(with = "units::duration")]
    pub delete_request_cancel_period: Duration,
    /// Largest interval of one delete request with line filters (the delete API's).
    #[serde(with = "units::duration")]
    pub delete_max_interval: Duration,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        CompactorConfig {
            working_directory: "/var/loki/compactor".into(),
            compaction_interval: Duration::from_secs(600),
            retention_enabled: false,
            retention_delete_delay: Duration::from_secs(2 * 3600),
            retention_delete_worker_count: 150,
            delete_request_store: String::new(),
            delete_request_cancel_period: Duration::from_secs(24 * 3600),
            delete_max_interval: Duration::from_secs(24 * 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_lokis_and_every_key_is_read() {
        let c: CompactorConfig = serde_yaml::from_str("{}").unwrap();
        assert_eq!(c, CompactorConfig::default());
        assert_eq!(c.compaction_interval, Duration::from_secs(600));
        let c: CompactorConfig = serde_yaml::from_str(
            "working_directory: /tmp/c\ncompaction_interval: 1s\nretention_enabled: true\n\
             retention_delete_delay: 0s\nretention_delete_worker_count: 3\n\
             delete_request_store: filesystem\ndelete_request_cancel_period: 1h\n\
             delete_max_interval: 2h\n",
        )
        .unwrap();
        assert!(c.retention_enabled);
        assert_eq!(c.retention_delete_delay, Duration::ZERO);
        assert_eq!(c.delete_max_interval, Duration::from_secs(7200));
        assert!(serde_yaml::from_str::<CompactorConfig>("nope: 1").is_err());
    }
}
