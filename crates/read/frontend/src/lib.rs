//! The query-frontend: Loki's HTTP query API in front of the queriers. It splits long
//! queries by time, merges the answers of the splits exactly, queues every request per tenant
//! (served round robin, bounded, with Loki's 429 when full), and lets queriers pull the work
//! from it: in-process workers in the single binary, gRPC workers on queriers that run apart
//! (`frontend_worker.frontend_address`).
//!
//! Boundary: knows queriers only as HTTP handlers behind [`RoundTrip`] (the queue and its
//! workers) and speaks Loki's API through `skald-loghttp`; it never reads storage.

pub mod frontend;
pub mod query_range;
pub mod transport;

pub use frontend::{router, QueryFrontend, QueryFrontendConfig};
pub use transport::{FrontendError, Handler, HttpRequest, HttpResponse, RoundTrip};
