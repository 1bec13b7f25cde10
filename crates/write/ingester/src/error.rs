//! The crate's error type, mapped to the wire's [`ErrorCode`] in one place
//! (`impl From<IngesterError> for ServiceError`).
//!
//! `Display` is the whole message a client, `/ready` or the log gets, cause included, as the
//! `String` errors it replaces worded it. The cause is kept typed in a field, but is not also
//! a `source`: `{:#}` would print its text twice.

use std::path::PathBuf;

use skald_common::tenant::TenantError;
use skald_proto::{ErrorCode, ServiceError};

/// What an ingester operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum IngesterError {
    /// A configuration value is out of range (checked before start).
    #[error("ingester.{key} must be {requirement}")]
    InvalidConfig {
        /// The key below `ingester.` (`chunk_block_size`, `wal.fsync_interval`).
        key: &'static str,
        /// What it must be (`at least 1024`, `positive`).
        requirement: &'static str,
    },
    /// The tenant id cannot be stored (400).
    #[error(transparent)]
    InvalidTenant(#[from] TenantError),
    /// Some streams or entries of a push were refused; the others were taken. The message has
    /// one line per reason (see `push_errors`).
    #[error("{message}")]
    PushRefused {
        /// Whether the tenant's stream limit refused a stream (429; otherwise 400).
        stream_limit: bool,
        /// The grouped, size-bounded message.
        message: String,
    },
    /// The push's WAL record could not be written, so the push is refused (503).
    #[error("failed to write to the WAL: {cause}")]
    WalWrite {
        /// The write's error (a full disk).
        cause: std::io::Error,
    },
    /// The WAL directory could not be read at start.
    #[error("cannot replay the WAL in {}: {cause}", dir.display())]
    WalReplay {
        /// The WAL directory.
        dir: PathBuf,
        /// The read error.
        cause: std::io::Error,
    },
    /// The WAL's first segment after replay could not be created.
    #[error("cannot open the WAL in {}: {cause}", dir.display())]
    WalOpen {
        /// The WAL directory.
        dir: PathBuf,
        /// The open error.
        cause: std::io::Error,
    },
    /// [`crate::Ingester::open_wal`] was called twice.
    #[error("the WAL was already opened")]
    WalAlreadyOpen,
    /// A checkpoint could not move the WAL to a new segment.
    #[error("cannot start a WAL segment: {cause}")]
    WalRotate {
        /// The file error.
        cause: std::io::Error,
    },
    /// A checkpoint could not be written.
    #[error("cannot write WAL checkpoint {seq}: {cause}")]
    Checkpoint {
        /// The last segment the checkpoint replaces.
        seq: u64,
        /// The write error.
        cause: std::io::Error,
    },
    /// A WAL record's payload does not decode (the replay stops reading its file there).
    #[error("undecodable record: {reason}")]
    BadWalRecord {
        /// What is wrong.
        reason: String,
    },
    /// A chunk upload failed (503).
    #[error("failed to upload chunk: {cause}")]
    ChunkUpload {
        /// The chunk store's error.
        cause: skald_chunk_store::Error,
    },
    /// An index write failed (503).
    #[error("failed to write index: {cause}")]
    IndexWrite {
        /// The index's error.
        cause: skald_index::Error,
    },
    /// A chunk held in memory does not decode (a bug; 500).
    #[error("corrupt in-memory chunk: {cause}")]
    CorruptChunk {
        /// The decoder's error.
        cause: skald_chunk::Error,
    },
    /// The open chunk could not be encoded for a read (a bug; 500).
    #[error("failed to encode chunk: {cause}")]
    EncodeChunk {
        /// The encoder's error.
        cause: skald_chunk::Error,
    },
    /// A pushed-down pipeline does not compile (400).
    #[error("pipeline `{text}`: {reason}")]
    InvalidPipeline {
        /// The LogQL text.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A pushed-down sample expression does not compile (400).
    #[error("sample expression `{text}`: {reason}")]
    InvalidSampleExpr {
        /// The LogQL text.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The query's caller went away (499).
    #[error("context canceled")]
    Cancelled,
    /// A blocking task died (500).
    #[error("{task} task failed: {cause}")]
    Task {
        /// Which task (`WAL replay`, `checkpoint`, `ingester push`, `ingester query`, ...).
        task: &'static str,
        /// Why.
        cause: tokio::task::JoinError,
    },
}

impl IngesterError {
    /// The wire's kind of this error (its HTTP and gRPC status).
    pub fn code(&self) -> ErrorCode {
        match self {
            IngesterError::InvalidTenant(_)
            | IngesterError::InvalidPipeline { .. }
            | IngesterError::InvalidSampleExpr { .. }
            | IngesterError::PushRefused { stream_limit: false, .. } => ErrorCode::BadRequest,
            IngesterError::PushRefused { stream_limit: true, .. } => ErrorCode::TooManyRequests,
            IngesterError::Cancelled => ErrorCode::Cancelled,
            IngesterError::WalWrite { .. }
            | IngesterError::ChunkUpload { .. }
            | IngesterError::IndexWrite { .. } => ErrorCode::Unavailable,
            IngesterError::InvalidConfig { .. }
            | IngesterError::WalReplay { .. }
            | IngesterError::WalOpen { .. }
            | IngesterError::WalAlreadyOpen
            | IngesterError::WalRotate { .. }
            | IngesterError::Checkpoint { .. }
            | IngesterError::BadWalRecord { .. }
            | IngesterError::CorruptChunk { .. }
            | IngesterError::EncodeChunk { .. }
            | IngesterError::Task { .. } => ErrorCode::Internal,
        }
    }

    pub(crate) fn bad_record(reason: impl Into<String>) -> Self {
        IngesterError::BadWalRecord { reason: reason.into() }
    }
}

impl From<IngesterError> for ServiceError {
    fn from(e: IngesterError) -> Self {
        ServiceError::new(e.code(), e.to_string())
    }
}

/// Result type of this crate.
pub type Result<T, E = IngesterError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_status_with_its_message() {
        let cases = [
            (IngesterError::InvalidTenant(TenantError::Unsafe), 400),
            (IngesterError::PushRefused { stream_limit: true, message: "m".into() }, 429),
            (IngesterError::PushRefused { stream_limit: false, message: "m".into() }, 400),
            (IngesterError::WalWrite { cause: std::io::Error::other("disk full") }, 503),
            (IngesterError::Cancelled, 499),
            (IngesterError::bad_record("truncated"), 500),
        ];
        for (e, status) in cases {
            let text = e.to_string();
            let wire = ServiceError::from(e);
            assert_eq!(wire.code.http_status_code(), status, "{text}");
            assert_eq!(wire.message, text);
        }
        let e = IngesterError::WalWrite { cause: std::io::Error::other("disk full") };
        assert_eq!(e.to_string(), "failed to write to the WAL: disk full");
        let e =
            IngesterError::InvalidConfig { key: "chunk_block_size", requirement: "at least 1024" };
        assert_eq!(e.to_string(), "ingester.chunk_block_size must be at least 1024");
    }
}
