//! The crate's error type.

/// Why a chunk could not be built or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An entry was appended with a timestamp older than the previous entry's.
    #[error("entry at {ts} is older than the previous entry at {last}")]
    OutOfOrder {
        /// The rejected entry's timestamp.
        ts: i64,
        /// The timestamp of the last accepted entry.
        last: i64,
    },
    /// One entry alone is larger than a block may ever be.
    #[error("entry of {size} bytes exceeds the maximum block size ({max} bytes)")]
    EntryTooLarge {
        /// Encoded size of the entry.
        size: usize,
        /// [`crate::MAX_BLOCK_RAW_LEN`].
        max: usize,
    },
    /// The chunk would hold more than `u32::MAX` entries.
    #[error("chunk has too many entries")]
    TooManyEntries,
    /// `finish` was called on a builder that holds no entries.
    #[error("cannot finish an empty chunk")]
    Empty,
    /// The zstd compressor failed.
    #[error("zstd compression failed")]
    Compress(#[source] std::io::Error),
    /// A block could not be decompressed.
    #[error("block {index} could not be decompressed")]
    Decompress {
        /// Block index.
        index: usize,
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a well-formed chunk.
    #[error("corrupt chunk: {reason}")]
    Corrupt {
        /// What is wrong.
        reason: String,
    },
    /// A block's CRC32C does not match its bytes.
    #[error("block {index} checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BlockChecksum {
        /// Block index.
        index: usize,
        /// Checksum stored in the block index.
        stored: u32,
        /// Checksum of the bytes found.
        computed: u32,
    },
    /// The header names a format version this build cannot read.
    #[error("unsupported chunk format version {version}")]
    UnsupportedVersion {
        /// Version byte found.
        version: u8,
    },
    /// The header names an unknown codec.
    #[error("unsupported chunk codec {codec}")]
    UnsupportedCodec {
        /// Codec byte found.
        codec: u8,
    },
    /// A block of a chunk read in parts ([`crate::Chunk::from_tail`]) whose payload was not
    /// added.
    #[error("block {index} was not fetched")]
    NotFetched {
        /// Block index.
        index: usize,
    },
    /// `decode_block` was called with an index past the last block.
    #[error("block index {index} out of range ({blocks} blocks)")]
    BlockOutOfRange {
        /// Requested index.
        index: usize,
        /// Number of blocks in the chunk.
        blocks: usize,
    },
}

impl Error {
    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Error::Corrupt { reason: reason.into() }
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
