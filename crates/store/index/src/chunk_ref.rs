//! [`ChunkRef`]: what the index records about one stored chunk.

use skald_chunk_store::ChunkKey;

/// A stored chunk as the index knows it: enough to build its [`ChunkKey`] and to plan a query
/// (time bounds, sizes) without fetching it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkRef {
    /// Stream fingerprint.
    pub fingerprint: u64,
    /// First entry's timestamp, ns.
    pub from: i64,
    /// Last entry's timestamp, ns (inclusive).
    pub through: i64,
    /// CRC32C of the chunk's bytes.
    pub checksum: u32,
    /// Number of entries.
    pub entries: u32,
    /// Raw (decompressed) size of the chunk's blocks.
    pub uncompressed_bytes: u64,
    /// Size of the chunk object.
    pub compressed_bytes: u64,
    /// The chunk's size as Loki's index records it, which `index/stats` and `index/volume`
    /// report: the bytes of its lines, 8 per structured-metadata pair, and each distinct
    /// structured-metadata name and value once ([`stats_kib`](Self::stats_kib) rounds it).
    pub stats_bytes: u64,
}

impl ChunkRef {
    /// The chunk's key in the chunk store.
    pub fn key(&self, tenant: &str) -> ChunkKey {
        ChunkKey::new(tenant, self.fingerprint, self.from, self.through, self.checksum)
    }

    /// The ref of `encoded`, a chunk of the stream `fingerprint` whose size as Loki's index
    /// counts it is `stats_bytes`.
    pub fn of_encoded(
        fingerprint: u64,
        encoded: &skald_chunk::EncodedChunk,
        stats_bytes: u64,
    ) -> ChunkRef {
        ChunkRef {
            fingerprint,
            from: encoded.from,
            through: encoded.through,
            checksum: encoded.checksum,
            entries: encoded.entries,
            uncompressed_bytes: encoded.uncompressed_bytes,
            compressed_bytes: encoded.bytes.len() as u64,
            stats_bytes,
        }
    }

    /// Returns true when the chunk overlaps the closed interval `[from, through]`.
    pub fn overlaps(&self, from: i64, through: i64) -> bool {
        self.from <= through && self.through >= from
    }

    /// [`stats_bytes`](Self::stats_bytes) in whole KiB, rounded to the nearest (halves up),
    /// the unit Loki's index keeps chunk sizes in.
    pub fn stats_kib(&self) -> u64 {
        stats_kib(self.stats_bytes)
    }

    /// Identity used to deduplicate references to the same object.
    pub(crate) fn identity(&self) -> (i64, i64, u64, u32) {
        (self.from, self.through, self.fingerprint, self.checksum)
    }
}

/// A byte count in whole KiB, rounded to the nearest (halves up).
pub fn stats_kib(bytes: u64) -> u64 {
    bytes.saturating_add(512) >> 10
}

/// Sorts chunk refs by time and drops duplicates (same fingerprint, bounds and checksum).
pub(crate) fn sort_dedup(chunks: &mut Vec<ChunkRef>) {
    chunks.sort_by_key(|c| {
        (c.identity(), c.entries, c.uncompressed_bytes, c.compressed_bytes, c.stats_bytes)
    });
    chunks.dedup_by_key(|c| c.identity());
}

#[cfg(test)]
mod tests {
    #[test]
    fn kib_rounds_to_nearest() {
        assert_eq!(super::stats_kib(0), 0);
        assert_eq!(super::stats_kib(511), 0);
        assert_eq!(super::stats_kib(512), 1);
        assert_eq!(super::stats_kib(1535), 1);
        assert_eq!(super::stats_kib(1536), 2);
        // web's single-chunk size in the reference data: 709.64 KiB
        assert_eq!(super::stats_kib(726_673), 710);
    }
}
