//! The error of a request parameter Loki refuses, and Loki's text for a canceled query.

/// Loki's error text for a query whose client went away (status 499): Go's
/// `context.Canceled`.
pub const CANCELED_MSG: &str = "context canceled";

/// A request parameter Loki refuses: always a 400, and the message (Loki's text, naming the
/// parameter where Loki does) is shown verbatim. A service converts it into its own error
/// enum (the querier's `QuerierError::BadRequest`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

impl ParamError {
    /// The HTTP status Loki answers with: 400.
    pub fn status_code(&self) -> u16 {
        400
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_its_text_with_a_400() {
        let e = ParamError("limit must be a positive value".into());
        assert_eq!(e.to_string(), "limit must be a positive value");
        assert_eq!(e.status_code(), 400);
    }
}
