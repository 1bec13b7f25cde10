//! What travels between the frontend and the queriers: an HTTP request as the querier's own
//! router would receive it, and its response (Loki's `httpgrpc` idea, written anew), and the
//! two seams the frontend is built on: [`RoundTrip`] (send a request to some querier and wait
//! for its answer) and [`Handler`] (what a querier worker runs a request with).

use bytes::Bytes;
use futures::future::BoxFuture;

/// A request for a querier: the method, the path with its query string
/// (`/loki/api/v1/query_range?query=...`), the headers (`X-Scope-OrgID` among them) and the
/// body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The path and query string.
    pub uri: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body (a form body for `POST`).
    pub body: Bytes,
}

impl HttpRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// A querier's answer to an [`HttpRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpResponse {
    /// The HTTP status code.
    pub status: u16,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Why the frontend could not get a querier's answer (a querier's own errors are answers: an
/// [`HttpResponse`] with their status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontendError {
    /// The tenant's queue is full (`frontend.max_outstanding_per_tenant`): Loki's 429.
    #[error("too many outstanding requests")]
    TooManyOutstanding,
    /// The request was canceled (its client went away): Loki's 499.
    #[error("context canceled")]
    Canceled,
    /// No querier could take it (shutting down, or a worker's connection broke while it ran).
    #[error("{0}")]
    Unavailable(String),
}

impl FrontendError {
    /// The HTTP status the frontend answers with.
    pub fn status_code(&self) -> u16 {
        match self {
            FrontendError::TooManyOutstanding => 429,
            FrontendError::Canceled => 499,
            FrontendError::Unavailable(_) => 503,
        }
    }
}

/// Sends a request to some querier and waits for its answer. `tenant` is the request's
/// tenant (`X-Scope-OrgID`, already validated), which the queue is fair across. Dropping the
/// returned future cancels the request wherever it is: still queued, it is never sent; running
/// on a querier, the querier stops it.
pub trait RoundTrip: Send + Sync + 'static {
    /// Runs `req` on a querier.
    fn round_trip(
        &self,
        tenant: &str,
        req: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, FrontendError>>;
}

/// What a querier worker runs a request with: the querier's HTTP router (with the server's
/// tenant layer). Dropping the returned future cancels the query.
pub trait Handler: Send + Sync + 'static {
    /// Answers `req`.
    fn handle(&self, req: HttpRequest) -> BoxFuture<'static, HttpResponse>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_whatever_their_case() {
        let req = HttpRequest {
            headers: vec![("x-scope-orgid".into(), "a".into())],
            ..HttpRequest::default()
        };
        assert_eq!(req.header("X-Scope-OrgID"), Some("a"));
        assert_eq!(req.header("Accept"), None);
        assert_eq!(FrontendError::TooManyOutstanding.status_code(), 429);
        assert_eq!(FrontendError::TooManyOutstanding.to_string(), "too many outstanding requests");
    }
}
