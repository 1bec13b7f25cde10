//! Push errors. `Display` is exactly the response body Loki writes; `status_code` its status.

use skald_proto::ServiceError;

/// Why a push was (wholly or partly) rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The body, decompressed body or a label string is over its cap (413).
    #[error("request body too large: {0}")]
    BodyTooLarge(String),
    /// The body could not be decoded, or a label string could not be parsed (400). Nothing
    /// was stored.
    #[error("{0}")]
    BadRequest(String),
    /// The request has no streams at all (422).
    #[error("error at least one valid stream is required for ingestion")]
    NoStreams,
    /// Some streams or entries were invalid (400). The valid ones **were** stored. The text
    /// groups identical messages as Loki does (`N errors like: ...`).
    #[error("{0}")]
    Validation(String),
    /// The tenant's ingestion rate limit was hit (429). Nothing was stored.
    #[error("{0}")]
    RateLimited(String),
    /// A stream's rate limit was hit (429). Entries within the limit were stored.
    #[error("{0}")]
    StreamRateLimited(String),
    /// The ingester failed; its code decides the status.
    #[error("{0}")]
    Ingester(ServiceError),
}

impl PushError {
    /// The HTTP status Loki answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            PushError::BodyTooLarge(_) => 413,
            PushError::BadRequest(_) | PushError::Validation(_) => 400,
            PushError::NoStreams => 422,
            PushError::RateLimited(_) | PushError::StreamRateLimited(_) => 429,
            PushError::Ingester(e) => e.code.http_status_code(),
        }
    }

    /// True when some entries of the request were stored despite the error.
    pub fn is_partial(&self) -> bool {
        matches!(self, PushError::Validation(_) | PushError::StreamRateLimited(_))
    }
}
