//! Log deletion on the querier: the tenant's delete requests that the source hides lines with
//! (`source/mod.rs`), read from the [`DeleteService`] shared with the compactor (which serves
//! Loki's delete API and applies the requests; the HTTP edge is `http/deletes.rs`).

use std::sync::Arc;

pub use skald_deletes::DeleteApiError;
use skald_deletes::{DeleteService, TenantDeletes};

use crate::Querier;

impl Querier {
    /// Hides the lines of `service`'s requests from queries (and serves the delete API when
    /// the server mounts [`crate::http::delete_routes`] over it).
    pub fn with_deletes(mut self, service: Arc<DeleteService>) -> Self {
        self.deletes = Some(service);
        self
    }

    /// The delete requests this querier reads, when it hides lines.
    pub fn delete_service(&self) -> Option<&Arc<DeleteService>> {
        self.deletes.as_ref()
    }

    /// The tenant's requests that hide lines from its queries, when there are any.
    pub(crate) async fn hidden_lines(
        &self,
        tenant: &str,
    ) -> Result<Option<Arc<TenantDeletes>>, DeleteApiError> {
        match &self.deletes {
            Some(d) => d.hidden_lines(tenant).await,
            None => Ok(None),
        }
    }
}
