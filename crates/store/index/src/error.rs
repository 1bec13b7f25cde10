//! The crate's error type.

/// Why an index operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object store failed, or the tenant id is invalid.
    #[error("index storage error")]
    Store(#[from] skald_chunk_store::Error),
    /// Bytes are not a well-formed segment.
    #[error("corrupt index segment: {reason}")]
    Corrupt {
        /// What is wrong.
        reason: String,
    },
    /// A stored segment could not be decoded.
    #[error("corrupt index segment `{path}`: {reason}")]
    CorruptSegment {
        /// The segment's object path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The segment names a format version this build cannot read.
    #[error("unsupported index segment version {version}")]
    UnsupportedVersion {
        /// Version byte found.
        version: u8,
    },
    /// A chunk reference cannot be indexed.
    #[error("invalid chunk ref {from}..{through} of series `{labels}`: {reason}")]
    InvalidChunkRef {
        /// The series.
        labels: String,
        /// Chunk start.
        from: i64,
        /// Chunk end.
        through: i64,
        /// What is wrong.
        reason: &'static str,
    },
    /// Segment compression failed.
    #[error("segment compression failed")]
    Compress(#[source] std::io::Error),
    /// The index backend (DynamoDB) failed, after retries where they apply.
    #[error("index backend {op} failed: {message}")]
    Backend {
        /// The operation (`BatchWriteItem`, `Query`).
        op: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A background task died.
    #[error("index task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl Error {
    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Error::Corrupt { reason: reason.into() }
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
