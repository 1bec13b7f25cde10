//! One closed set of error codes shared by every service, mapped to HTTP and gRPC status codes
//! in one place.

/// What went wrong, coarsely, as every service reports it across a wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is invalid (HTTP 400).
    BadRequest,
    /// The tenant is not authenticated (HTTP 401).
    Unauthorized,
    /// The thing asked for does not exist (HTTP 404).
    NotFound,
    /// The request body is too large (HTTP 413).
    PayloadTooLarge,
    /// A rate limit was hit (HTTP 429).
    TooManyRequests,
    /// The client went away (HTTP 499).
    Cancelled,
    /// The service cannot take requests now (HTTP 503).
    Unavailable,
    /// The deadline passed (HTTP 504).
    Timeout,
    /// A bug or an unexpected failure (HTTP 500).
    Internal,
}

impl ErrorCode {
    /// The HTTP status code Loki answers with for this kind of error.
    pub fn http_status_code(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::NotFound => 404,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Cancelled => 499,
            ErrorCode::Unavailable => 503,
            ErrorCode::Timeout => 504,
            ErrorCode::Internal => 500,
        }
    }

    /// The gRPC status code for this kind of error.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::BadRequest => tonic::Code::InvalidArgument,
            ErrorCode::Unauthorized => tonic::Code::Unauthenticated,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::PayloadTooLarge => tonic::Code::OutOfRange,
            ErrorCode::TooManyRequests => tonic::Code::ResourceExhausted,
            ErrorCode::Cancelled => tonic::Code::Cancelled,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::Timeout => tonic::Code::DeadlineExceeded,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }

    /// The error code for a gRPC status code.
    pub fn from_grpc_code(code: tonic::Code) -> Self {
        match code {
            tonic::Code::InvalidArgument => ErrorCode::BadRequest,
            tonic::Code::Unauthenticated => ErrorCode::Unauthorized,
            tonic::Code::NotFound => ErrorCode::NotFound,
            tonic::Code::OutOfRange => ErrorCode::PayloadTooLarge,
            tonic::Code::ResourceExhausted => ErrorCode::TooManyRequests,
            tonic::Code::Cancelled => ErrorCode::Cancelled,
            tonic::Code::Unavailable => ErrorCode::Unavailable,
            tonic::Code::DeadlineExceeded => ErrorCode::Timeout,
            _ => ErrorCode::Internal,
        }
    }
}

/// An error that crossed (or may cross) a service boundary: a code and a user-facing message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    /// Coarse kind.
    pub code: ErrorCode,
    /// Message shown to the client.
    pub message: String,
}

impl ServiceError {
    /// Builds an error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError { code, message: message.into() }
    }

    /// Shorthand for an internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> Self {
        tonic::Status::new(e.code.grpc_code(), e.message)
    }
}

impl From<tonic::Status> for ServiceError {
    fn from(s: tonic::Status) -> Self {
        ServiceError::new(ErrorCode::from_grpc_code(s.code()), s.message().to_string())
    }
}
