//! The crate's error type.

/// Why a delete-request operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object store failed, or the tenant id is invalid.
    #[error("delete request storage error: {0}")]
    Store(#[from] skald_chunk_store::Error),
    /// The index failed.
    #[error("index error during deletion: {0}")]
    Index(#[from] skald_index::Error),
    /// A chunk could not be decoded or encoded.
    #[error("chunk error during deletion: {0}")]
    Chunk(#[from] skald_chunk::Error),
    /// A stored request object is not what this crate writes.
    #[error("corrupt delete request object `{path}`: {reason}")]
    Corrupt {
        /// The object's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A background task died.
    #[error("deletion task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
