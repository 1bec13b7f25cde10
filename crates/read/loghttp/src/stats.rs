//! The store figures of a query's `stats` object.

/// What one query read from storage and from the ingesters, as the `stats` object of its
/// answer reports it (`querier.store`, `ingester`): the querier's snapshot of its counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoreFigures {
    /// Chunk refs the index gave (`totalChunksRef`).
    pub chunk_refs: u64,
    /// Chunks fetched from the object store, whole or in part (`totalChunksDownloaded`).
    pub chunks_downloaded: u64,
    /// The bytes read from the object store (`compressedBytes`): a chunk read in parts
    /// counts the parts.
    pub compressed_bytes: u64,
    /// The raw size of the blocks decompressed (`decompressedBytes`); a block counted from
    /// its statistics is not.
    pub decompressed_bytes: u64,
    /// The entries of the blocks decompressed (`decompressedLines`).
    pub decompressed_lines: u64,
    /// Requests to the ingesters (`totalReached`, `totalBatches`).
    pub ingester_requests: u64,
    /// Streams (or series) the ingesters answered with (`totalChunksMatched`).
    pub ingester_streams: u64,
    /// Entries (or samples) the ingesters sent (`totalLinesSent`, `headChunkLines`).
    pub ingester_lines: u64,
    /// Bytes of the lines the ingesters sent (`headChunkBytes`).
    pub ingester_bytes: u64,
}

impl StoreFigures {
    /// Adds `other`'s figures (the parts of one query, as one).
    pub fn add(&mut self, other: &StoreFigures) {
        self.chunk_refs += other.chunk_refs;
        self.chunks_downloaded += other.chunks_downloaded;
        self.compressed_bytes += other.compressed_bytes;
        self.decompressed_bytes += other.decompressed_bytes;
        self.decompressed_lines += other.decompressed_lines;
        self.ingester_requests += other.ingester_requests;
        self.ingester_streams += other.ingester_streams;
        self.ingester_lines += other.ingester_lines;
        self.ingester_bytes += other.ingester_bytes;
    }
}
