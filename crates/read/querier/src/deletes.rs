//! Log deletion on the querier: Loki's delete API over `skald_deletes::DeleteStore` (the
//! HTTP edge is `http/deletes.rs`), and the tenant's requests that the source hides lines
//! with (`source/mod.rs`).

use std::sync::Arc;

use skald_deletes::params::{parse_new_request, DELETION_NOT_AVAILABLE};
use skald_deletes::{
    process_pending, CancelError, DeleteConfig, DeleteMetrics, DeleteStore, DeletionMode,
    ProcessReport, RewriteStores, TenantDeletes,
};
use skald_loghttp::params::Params;

use crate::Querier;

/// Why a delete API call failed; each maps to Loki's status and plain-text body.
#[derive(Debug, thiserror::Error)]
pub enum DeleteApiError {
    /// `deletion_mode: disabled` (403).
    #[error("{DELETION_NOT_AVAILABLE}")]
    Disabled,
    /// A refused parameter (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such request (404).
    #[error("{0}")]
    NotFound(String),
    /// Storage failed (500).
    #[error("{0}")]
    Internal(String),
}

impl DeleteApiError {
    /// The HTTP status Loki answers with.
    pub fn status(&self) -> u16 {
        match self {
            DeleteApiError::Disabled => 403,
            DeleteApiError::BadRequest(_) => 400,
            DeleteApiError::NotFound(_) => 404,
            DeleteApiError::Internal(_) => 500,
        }
    }
}

fn internal(e: impl std::fmt::Display) -> DeleteApiError {
    DeleteApiError::Internal(e.to_string())
}

/// The delete API's state on a querier.
pub(crate) struct Deletes {
    pub(crate) store: DeleteStore,
    pub(crate) config: DeleteConfig,
    pub(crate) rewrite: RewriteStores,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Querier {
    /// Serves the delete API and hides deleted lines (`compactor` block settings), counting
    /// into `metrics` (registered by the caller).
    pub fn with_deletes(mut self, config: DeleteConfig, metrics: DeleteMetrics) -> Self {
        let filters = Arc::new(skald_index::FilterIndex::new(self.chunks.clone(), 1 << 20));
        let rewrite =
            RewriteStores { chunks: self.chunks.clone(), index: self.index.clone(), filters };
        let store = DeleteStore::new(self.chunks.clone(), skald_deletes::store::DEFAULT_CACHE_TTL)
            .with_metrics(metrics);
        self.deletes = Some(Arc::new(Deletes { store, config, rewrite }));
        self
    }

    /// Whether the delete API is served ([`Querier::with_deletes`] was called).
    pub fn serves_deletes(&self) -> bool {
        self.deletes.is_some()
    }

    /// The tenant's `deletion_mode` (its override, else `limits_config`'s; an unknown value is
    /// a 400, as Loki answers it).
    fn deletion_mode(&self, tenant: &str) -> Result<DeletionMode, DeleteApiError> {
        DeletionMode::parse(&self.limits(tenant).deletion_mode)
            .map_err(|e| DeleteApiError::BadRequest(e.to_string()))
    }

    /// The delete state when the tenant may use the API.
    fn deletes_for(&self, tenant: &str) -> Result<(&Deletes, DeletionMode), DeleteApiError> {
        let mode = self.deletion_mode(tenant)?;
        match &self.deletes {
            Some(d) if mode.enabled() => Ok((d, mode)),
            _ => Err(DeleteApiError::Disabled),
        }
    }

    /// `POST /loki/api/v1/delete`: creates a request; returns its id.
    pub async fn create_delete(
        &self,
        tenant: &str,
        params: &Params,
    ) -> Result<String, DeleteApiError> {
        let (d, _) = self.deletes_for(tenant)?;
        let now = now_ms();
        let max_ns = d.config.delete_max_interval.as_nanos().min(i64::MAX as u128) as i64;
        let req = parse_new_request(
            params.get("query"),
            params.get("start"),
            params.get("end"),
            params.get("max_interval"),
            now,
            max_ns,
        )
        .map_err(|e| DeleteApiError::BadRequest(e.0))?;
        let group = d.store.add(tenant, &req.query, &req.windows, now).await.map_err(internal)?;
        tracing::info!(tenant, request_id = %group.request_id, query = %req.query, parts = req.windows.len(), "delete request added");
        Ok(group.request_id)
    }

    /// `GET /loki/api/v1/delete`: the tenant's requests as Loki's JSON.
    pub async fn list_deletes(&self, tenant: &str) -> Result<String, DeleteApiError> {
        let (d, _) = self.deletes_for(tenant)?;
        let list = d.store.list(tenant).await.map_err(internal)?;
        Ok(skald_deletes::request::list_json(&list))
    }

    /// `DELETE /loki/api/v1/delete?request_id=&force=`: cancels a request.
    pub async fn cancel_delete(&self, tenant: &str, params: &Params) -> Result<(), DeleteApiError> {
        let (d, _) = self.deletes_for(tenant)?;
        let id = params.get("request_id").unwrap_or("");
        let force = params.get("force") == Some("true");
        let period = d.config.delete_request_cancel_period.as_millis().min(i64::MAX as u128) as i64;
        d.store.cancel(tenant, id, force, now_ms(), period).await.map_err(|e| match e {
            CancelError::NotFound => DeleteApiError::NotFound(e.to_string()),
            CancelError::InProcess | CancelError::Partial => {
                DeleteApiError::BadRequest(e.to_string())
            }
            CancelError::Store(e) => internal(e),
        })
    }

    /// One deletion pass for `tenant` now (what the compactor does each interval): parts
    /// past their cancel period are applied to the stored chunks.
    pub async fn process_deletes(&self, tenant: &str) -> Result<ProcessReport, DeleteApiError> {
        let (d, mode) = self.deletes_for(tenant)?;
        let period = d.config.delete_request_cancel_period.as_millis().min(i64::MAX as u128) as i64;
        process_pending(&d.store, &d.rewrite, tenant, mode, now_ms(), period)
            .await
            .map_err(internal)
    }

    /// The tenant's requests that hide lines from its queries, when there are any.
    pub(crate) async fn hidden_lines(
        &self,
        tenant: &str,
    ) -> Result<Option<Arc<TenantDeletes>>, DeleteApiError> {
        let Some(d) = &self.deletes else { return Ok(None) };
        if !self.deletion_mode(tenant).is_ok_and(DeletionMode::enabled) {
            return Ok(None);
        }
        let hidden = d.store.hiding(tenant).await.map_err(internal)?;
        Ok((!hidden.is_empty()).then_some(hidden))
    }
}
