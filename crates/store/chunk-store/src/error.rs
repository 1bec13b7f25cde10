//! The crate's error type.

/// Why a chunk-store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No object exists at `path`.
    #[error("object `{path}` not found")]
    NotFound {
        /// The object's path.
        path: String,
    },
    /// A path is not a chunk key.
    #[error("invalid chunk key `{key}`: {reason}")]
    InvalidKey {
        /// The offending path.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A tenant id cannot be used in object paths.
    #[error("invalid tenant id `{tenant}`: {reason}")]
    InvalidTenant {
        /// The offending tenant id.
        tenant: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A generic object path is malformed (empty segment, `.` or `..`, leading `/`).
    #[error("invalid object path `{path}`")]
    InvalidPath {
        /// The offending path.
        path: String,
    },
    /// A range asked of an object reaches past its end (or is inverted).
    #[error("a range asked of `{path}` is outside the object")]
    RangeOutOfBounds {
        /// The object's path.
        path: String,
    },
    /// The backend failed (after retries, for transient errors).
    #[error("object store `{op}` of `{path}` failed")]
    Backend {
        /// Operation: `put`, `get`, `delete` or `list`.
        op: &'static str,
        /// The object path or listing prefix.
        path: String,
        /// The backend's error.
        #[source]
        source: object_store::Error,
    },
}

impl Error {
    /// Returns true for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
