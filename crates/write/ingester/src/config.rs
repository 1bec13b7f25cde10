//! Ingester configuration, with Loki's `ingester` key names and defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{IngesterError, Result};
use crate::wal::WalConfig;

/// The `ingester` block.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngesterConfig {
    /// Uncompressed size of a block inside a chunk (Loki: 262144).
    pub chunk_block_size: usize,
    /// Compressed size at which a chunk is cut (Loki: 1572864).
    pub chunk_target_size: usize,
    /// Codec name. Skald always writes zstd blocks; Loki's names are accepted for compatibility.
    pub chunk_encoding: String,
    /// A chunk that received nothing for this long is flushed.
    #[serde(with = "skald_common::units::duration")]
    pub chunk_idle_period: Duration,
    /// How long flushed chunks stay in memory (they are served from storage afterwards).
    #[serde(with = "skald_common::units::duration")]
    pub chunk_retain_period: Duration,
    /// A chunk older than this (first to last entry, or since it was opened) is flushed.
    #[serde(with = "skald_common::units::duration")]
    pub max_chunk_age: Duration,
    /// Chunks are cut when an entry crosses a multiple of this period (offset per stream by
    /// its Loki fingerprint), so that chunks line up across ingesters and with Loki's
    /// (Loki: 1h; 0 turns it off).
    #[serde(with = "skald_common::units::duration")]
    pub sync_period: Duration,
    /// ... but only when the open chunk is fuller than this fraction of
    /// `chunk_target_size` (Loki: 0.1; 0 or less cuts whatever the fill).
    pub sync_min_utilization: f64,
    /// How often the flush loop looks for chunks to flush.
    #[serde(with = "skald_common::units::duration")]
    pub flush_check_period: Duration,
    /// Timeout of one flush operation.
    #[serde(with = "skald_common::units::duration")]
    pub flush_op_timeout: Duration,
    /// Chunks uploaded at once.
    pub concurrent_flushes: usize,
    /// The write-ahead log.
    pub wal: WalConfig,
    /// The ring lifecycler (Loki's `ingester.lifecycler`); used with gossip membership.
    pub lifecycler: LifecyclerConfig,
}

/// `ingester.lifecycler`: the keys Skald uses; Loki's other keys are accepted and ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LifecyclerConfig {
    /// Tokens this ingester owns on the ring (Loki: 128).
    pub num_tokens: usize,
    /// How often the ring entry is refreshed (Loki: 5s).
    #[serde(with = "skald_common::units::duration")]
    pub heartbeat_period: Duration,
    /// Where the tokens are kept across restarts (empty: not kept; they are derived from the
    /// instance id, so they come back the same anyway).
    pub tokens_file_path: String,
    /// `ring` settings.
    pub ring: LifecyclerRing,
}

/// `ingester.lifecycler.ring`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LifecyclerRing {
    /// An instance whose entry is older than this is unhealthy (Loki: 1m).
    #[serde(with = "skald_common::units::duration")]
    pub heartbeat_timeout: Duration,
    /// Copies of each stream; when set it is the replication factor (over
    /// `common.replication_factor`, which the server copies it into).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<usize>,
}

impl Default for LifecyclerRing {
    fn default() -> Self {
        LifecyclerRing { heartbeat_timeout: Duration::from_secs(60), replication_factor: None }
    }
}

impl Default for LifecyclerConfig {
    fn default() -> Self {
        LifecyclerConfig {
            num_tokens: 128,
            heartbeat_period: Duration::from_secs(5),
            tokens_file_path: String::new(),
            ring: LifecyclerRing::default(),
        }
    }
}

impl Default for IngesterConfig {
    fn default() -> Self {
        IngesterConfig {
            chunk_block_size: 262_144,
            chunk_target_size: 1_572_864,
            chunk_encoding: "zstd".to_string(),
            chunk_idle_period: Duration::from_secs(30 * 60),
            chunk_retain_period: Duration::ZERO,
            max_chunk_age: Duration::from_secs(2 * 3600),
            sync_period: Duration::from_secs(3600),
            sync_min_utilization: 0.1,
            flush_check_period: Duration::from_secs(30),
            flush_op_timeout: Duration::from_secs(600),
            concurrent_flushes: 32,
            wal: WalConfig::default(),
            lifecycler: LifecyclerConfig::default(),
        }
    }
}

impl IngesterConfig {
    /// Checks the values before start.
    pub fn validate(&self) -> Result<()> {
        let invalid = |key, requirement| Err(IngesterError::InvalidConfig { key, requirement });
        if self.chunk_block_size < 1024 {
            return invalid("chunk_block_size", "at least 1024");
        }
        if self.max_chunk_age.is_zero() {
            return invalid("max_chunk_age", "positive");
        }
        if !self.sync_min_utilization.is_finite() {
            return invalid("sync_min_utilization", "a number");
        }
        if self.flush_check_period.is_zero() {
            return invalid("flush_check_period", "positive");
        }
        if self.wal.enabled {
            if self.wal.checkpoint_duration.is_zero() {
                return invalid("wal.checkpoint_duration", "positive");
            }
            if self.wal.fsync_interval.is_zero() {
                return invalid("wal.fsync_interval", "positive");
            }
        }
        Ok(())
    }
}
