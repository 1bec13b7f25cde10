//! The query-frontend: Loki's HTTP query API in front of the queriers. It splits long
//! queries by time, merges the answers of the splits exactly, queues every request per tenant
//! (served round robin, bounded, with Loki's 429 when full), and lets queriers pull the work
//! from it: in-process workers in the single binary, gRPC workers on queriers that run apart
//! (`frontend_worker.frontend_address`).
//!
//! Boundary: knows queriers only as HTTP handlers behind [`RoundTrip`] (the queue and its
//! workers) and speaks Loki's API through `skald-loghttp`; it never reads storage.

pub mod config;
pub mod frontend;
pub mod grpc;
pub mod local;
pub mod metadata_cache;
pub mod query_instant;
pub mod query_range;
pub mod queue;
pub mod results_cache;
pub mod router;
pub mod tail_proxy;
pub mod transport;
pub mod worker;

pub use config::{FrontendConfig, WorkerConfig};
pub use frontend::{router, QueryFrontend, QueryFrontendConfig};
pub use local::spawn_local_workers;
pub use queue::{RequestQueue, Responder, Work};
pub use router::RouterHandler;
pub use transport::{FrontendError, Handler, HttpRequest, HttpResponse, RoundTrip};
pub use worker::spawn_grpc_workers;
