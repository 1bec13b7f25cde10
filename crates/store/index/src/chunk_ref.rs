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
}

impl ChunkRef {
    /// The chunk's key in the chunk store.
    pub fn key(&self, tenant: &str) -> ChunkKey {
        ChunkKey::new(tenant, self.fingerprint, self.from, self.through, self.checksum)
    }

    /// Returns true when the chunk overlaps the closed interval `[from, through]`.
    pub fn overlaps(&self, from: i64, through: i64) -> bool {
        self.from <= through && self.through >= from
    }

    /// Identity used to deduplicate references to the same object.
    pub(crate) fn identity(&self) -> (i64, i64, u64, u32) {
        (self.from, self.through, self.fingerprint, self.checksum)
    }
}

/// Sorts chunk refs by time and drops duplicates (same fingerprint, bounds and checksum).
pub(crate) fn sort_dedup(chunks: &mut Vec<ChunkRef>) {
    chunks.sort_by_key(|c| (c.identity(), c.entries, c.uncompressed_bytes, c.compressed_bytes));
    chunks.dedup_by_key(|c| c.identity());
}
