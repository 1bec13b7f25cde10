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

impl From<skald_loghttp::ParamError> for QuerierError {
    fn from(e: skald_loghttp::ParamError) -> Self {
        QuerierError::BadRequest(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_error_is_a_bad_request_with_its_text() {
        let e = QuerierError::from(skald_loghttp::ParamError("interval must be >= 0".into()));
        assert!(matches!(&e, QuerierError::BadRequest(m) if m == "interval must be >= 0"));
        assert_eq!(e.status_code(), 400);
    }
}
