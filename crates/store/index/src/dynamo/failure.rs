//! How a failed DynamoDB call is read: its kind, for retry decisions, and its message with the
//! SDK's error chain. The index store and `skald-table-manager` both read failures here.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// What went wrong in a DynamoDB call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// Throttled (`ProvisionedThroughputExceededException`, `ThrottlingException`,
    /// `RequestLimitExceeded`): retry after a backoff.
    Throttled,
    /// A server or transport failure (`InternalServerError`, `ServiceUnavailable`, timeouts,
    /// dispatch and response errors): retry after a backoff.
    Transient,
    /// The table does not exist (`ResourceNotFoundException`).
    MissingTable,
    /// The table is being created, updated or deleted, or exists already
    /// (`ResourceInUseException`).
    TableInUse,
    /// Anything else: retrying does not help.
    Fatal,
}

/// A failed DynamoDB call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub kind: FailureKind,
    /// The SDK's message, with its error chain.
    pub message: String,
}

impl Failure {
    /// True for the kinds worth retrying ([`FailureKind::Throttled`], [`FailureKind::Transient`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, FailureKind::Throttled | FailureKind::Transient)
    }
}

/// Reads a failed DynamoDB call.
pub fn classify<E, R>(e: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let kind = match e {
        SdkError::ServiceError(s) => match s.err().code() {
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded",
            ) => FailureKind::Throttled,
            Some("ResourceNotFoundException") => FailureKind::MissingTable,
            Some("ResourceInUseException") => FailureKind::TableInUse,
            Some("InternalServerError" | "ServiceUnavailable") => FailureKind::Transient,
            _ => FailureKind::Fatal,
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            FailureKind::Transient
        }
        _ => FailureKind::Fatal,
    };
    Failure { kind, message: error_text(e) }
}

/// The message of an SDK error (a failed call, or a request that could not be built), with its
/// error chain.
pub fn error_text(e: &(impl std::error::Error + ?Sized)) -> String {
    DisplayErrorContext(e).to_string()
}
