//! [`CompactorConfig`]: Loki's `compactor` block.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use skald_common::units;

/// Loki's `compactor` block, with Loki's keys and defaults (Loki 3.x `-help`). Skald acts on
/// `compaction_interval`, `retention_enabled`, `retention_delete_delay` and
/// `retention_delete_worker_count`; `working_directory` is accepted and unused (the compactor
/// keeps its state in the object store), and the delete-request keys are read by the delete
/// API. The `chunk_compaction_*` keys are Skald's own (chunk compaction, which Loki lacks).
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
    /// Skald: whether passes merge each stream's small chunks into full ones.
    pub chunk_compaction_enabled: bool,
    /// Skald: the compressed size merged chunks are cut at; smaller chunks are merged.
    #[serde(with = "units::bytesize")]
    pub chunk_compaction_target_size: u64,
    /// Skald: the raw size of a merged chunk's blocks (larger blocks compress better).
    #[serde(with = "units::bytesize")]
    pub chunk_compaction_block_size: u64,
    /// Skald: the zstd level of merged chunks (1 to 19; merging is off the ingest path).
    pub chunk_compaction_zstd_level: i32,
    /// Skald: chunks whose last entry is younger than this are not merged yet.
    #[serde(with = "units::duration")]
    pub chunk_compaction_min_age: Duration,
    /// Skald: the largest pack of chunks (of many streams of a tenant-day, in one object);
    /// 0: no packs, and no orphan scan.
    #[serde(with = "units::bytesize")]
    pub chunk_compaction_pack_size: u64,
    /// Skald: objects no index ref names (a crash's leftovers) are deleted once this old.
    /// Longer than any upload-to-index-write of an ingester's flush, and at least
    /// `retention_delete_delay` is advised.
    #[serde(with = "units::duration")]
    pub chunk_compaction_orphan_grace: Duration,
}

impl CompactorConfig {
    /// The chunk compaction settings, `None` when it is off.
    pub fn merge_settings(&self) -> Option<crate::MergeSettings> {
        self.chunk_compaction_enabled.then(|| crate::MergeSettings {
            target_size: self.chunk_compaction_target_size.max(1),
            block_size: usize::try_from(self.chunk_compaction_block_size)
                .unwrap_or(usize::MAX)
                .clamp(1024, skald_chunk::MAX_BLOCK_RAW_LEN),
            zstd_level: self.chunk_compaction_zstd_level.clamp(1, 19),
            min_age: self.chunk_compaction_min_age,
            max_group_raw_bytes: 256 * 1024 * 1024,
        })
    }

    /// The packing settings, `None` when chunk compaction or packing is off.
    pub fn pack_settings(&self) -> Option<crate::PackSettings> {
        (self.chunk_compaction_enabled && self.chunk_compaction_pack_size > 0).then_some(
            crate::PackSettings {
                pack_size: self.chunk_compaction_pack_size,
                min_age: self.chunk_compaction_min_age,
                orphan_grace: self.chunk_compaction_orphan_grace,
            },
        )
    }
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
            chunk_compaction_enabled: false,
            chunk_compaction_target_size: 1_572_864,
            chunk_compaction_block_size: 1024 * 1024,
            chunk_compaction_zstd_level: 19,
            chunk_compaction_min_age: Duration::from_secs(3600),
            chunk_compaction_pack_size: 64 * 1024 * 1024,
            chunk_compaction_orphan_grace: Duration::from_secs(3 * 3600),
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
             delete_max_interval: 2h\nchunk_compaction_enabled: true\n\
             chunk_compaction_target_size: 4MB\nchunk_compaction_block_size: 512KB\n\
             chunk_compaction_zstd_level: 30\nchunk_compaction_min_age: 0s\n\
             chunk_compaction_pack_size: 8MB\nchunk_compaction_orphan_grace: 5m\n",
        )
        .unwrap();
        assert!(c.retention_enabled);
        assert_eq!(c.retention_delete_delay, Duration::ZERO);
        assert_eq!(c.delete_max_interval, Duration::from_secs(7200));
        let m = c.merge_settings().unwrap();
        assert_eq!((m.target_size, m.block_size, m.zstd_level), (4 << 20, 512 << 10, 19));
        assert_eq!(m.min_age, Duration::ZERO);
        assert_eq!(CompactorConfig::default().merge_settings(), None);
        let p = c.pack_settings().unwrap();
        assert_eq!((p.pack_size, p.orphan_grace), (8 << 20, Duration::from_secs(300)));
        let no_packs = CompactorConfig { chunk_compaction_pack_size: 0, ..c };
        assert_eq!(no_packs.pack_settings(), None);
        assert!(serde_yaml::from_str::<CompactorConfig>("nope: 1").is_err());
    }
}
