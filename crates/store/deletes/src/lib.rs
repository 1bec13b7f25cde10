//! Log deletion (Loki's delete API): delete requests kept in object storage, the filter that
//! hides the lines they cover from queries at once, and the chunk rewrite that removes those
//! lines from storage once a request's cancellation window has passed.
//!
//! - [`params`]: the parameters of `POST /loki/api/v1/delete` with Loki's error texts.
//! - [`request`]: [`DeleteRequest`] (one part of a request group, as Loki splits by
//!   `max_interval`), its stored object and the JSON of `GET /loki/api/v1/delete`.
//! - [`store`]: [`DeleteStore`], one JSON object per request under
//!   `<tenant>/deletes/<request_id>.json`, with a short per-tenant cache for queriers.
//! - [`filter`]: [`TenantDeletes`], the compiled requests of a tenant, which say whether an
//!   entry of a stream is deleted.
//! - [`rewrite`]: [`process_pending`], the compactor's pass: chunks holding deleted lines are
//!   re-encoded without them, indexed, and the old objects deleted.
//! - [`service`]: [`DeleteService`], the delete API and the pass over one store, shared by
//!   the compactor (which serves the API and runs the passes) and queriers (which hide lines).
//! - [`DeleteMetrics`]: Loki's `loki_compactor_*` deletion counters.
#![warn(missing_docs)]

mod error;
pub mod filter;
mod metrics;
pub mod params;
pub mod request;
pub mod rewrite;
pub mod service;
pub mod store;

pub use error::{Error, Result};
pub use filter::{StreamDeletes, TenantDeletes};
pub use metrics::DeleteMetrics;
pub use params::{DeletionMode, ParamError};
pub use request::{DeleteRequest, RequestGroup, Status};
pub use rewrite::{process_pending, ProcessReport, RewriteStores};
pub use service::{DeleteApiError, DeleteService, NewDelete};
pub use store::{CancelError, DeleteStore};

/// The delete API's settings from Loki's `compactor` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteConfig {
    /// `delete_request_cancel_period`: how long a request may be cancelled, and how long
    /// before the compactor rewrites chunks for it (24h).
    pub delete_request_cancel_period: std::time::Duration,
    /// `delete_max_interval`: the longest part a request with line filters is split into,
    /// and the largest `max_interval` accepted (24h; 0 = no limit).
    pub delete_max_interval: std::time::Duration,
}

impl Default for DeleteConfig {
    fn default() -> Self {
        DeleteConfig {
            delete_request_cancel_period: std::time::Duration::from_secs(24 * 3600),
            delete_max_interval: std::time::Duration::from_secs(24 * 3600),
        }
    }
}
