//! Querier errors, each with the HTTP status Loki answers with.

/// What a query request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum QuerierError {
    /// Invalid request (400); the message is shown verbatim.
    #[error("{0}")]
    BadRequest(String),
    /// Deadline passed (504).
    #[error("request timed out, decrease the duration of the request or add more label matchers (prefer exact match over regex match) to reduce the amount of data processed")]
    Timeout,
    /// Storage or ingester trouble (5xx).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (500).
    #[error("{0}")]
    Internal(String),
    /// An error with an explicit status code.
    #[error("{message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Message.
        message: String,
    },
}

impl QuerierError {
    /// HTTP status code.
    pub fn status_code(&self) -> u16 {
        match self {
            QuerierError::BadRequest(_) => 400,
            QuerierError::Timeout => 504,
            QuerierError::Unavailable(_) => 503,
            QuerierError::Internal(_) => 500,
            QuerierError::Status { status, .. } => *status,
        }
    }
}

impl From<skald_proto::ServiceError> for QuerierError {
    fn from(e: skald_proto::ServiceError) -> Self {
        QuerierError::Status { status: e.code.http_status_code(), message: e.message }
    }
}
