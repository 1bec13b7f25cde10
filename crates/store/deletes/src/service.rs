//! [`DeleteService`]: Loki's delete API and deletion pass over one [`DeleteStore`], shared by
//! the processes that serve it. The compactor serves the API and runs the passes, as in Loki;
//! a querier reads the same requests to hide their lines (and serves the API too, so that a
//! `-target=querier` keeps answering it). The HTTP edge is the querier crate's
//! `http::delete_routes`, mounted by whichever module owns the service.

use std::sync::Arc;

use skald_common::overrides::TenantLimitsFn;

use crate::filter::TenantDeletes;
use crate::metrics::DeleteMetrics;
use crate::params::{parse_new_request, DeletionMode, DELETION_NOT_AVAILABLE};
use crate::rewrite::{process_pending, ProcessReport, RewriteStores};
use crate::store::{CancelError, DeleteStore, DEFAULT_CACHE_TTL};
use crate::DeleteConfig;

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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The parameters of `POST /loki/api/v1/delete`, as the client gave them.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewDelete<'a> {
    /// `query`: the stream selector and line filters.
    pub query: Option<&'a str>,
    /// `start`.
    pub start: Option<&'a str>,
    /// `end`.
    pub end: Option<&'a str>,
    /// `max_interval`.
    pub max_interval: Option<&'a str>,
}

/// The delete API's state: the request store, the settings, the stores a pass rewrites, and
/// the tenants' limits (`deletion_mode`).
pub struct DeleteService {
    store: DeleteStore,
    config: DeleteConfig,
    rewrite: RewriteStores,
    limits: TenantLimitsFn,
    /// Per tenant, as of its last pass: pending requests and when the oldest fell due (ms).
    pending: parking_lot::Mutex<std::collections::HashMap<String, (usize, i64)>>,
}

impl std::fmt::Debug for DeleteService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeleteService").field("config", &self.config).finish_non_exhaustive()
    }
}

impl DeleteService {
    /// Keeps requests in `rewrite.chunks`' bucket, counting into `metrics` (registered by the
    /// caller); a tenant's `deletion_mode` comes from `limits`.
    pub fn new(
        config: DeleteConfig,
        rewrite: RewriteStores,
        limits: TenantLimitsFn,
        metrics: DeleteMetrics,
    ) -> Self {
        let store =
            DeleteStore::new(rewrite.chunks.clone(), DEFAULT_CACHE_TTL).with_metrics(metrics);
        DeleteService { store, config, rewrite, limits, pending: Default::default() }
    }

    /// The request store.
    pub fn store(&self) -> &DeleteStore {
        &self.store
    }

    /// The tenant's `deletion_mode` (an unknown value is a 400, as Loki answers it).
    fn mode(&self, tenant: &str) -> Result<DeletionMode, DeleteApiError> {
        DeletionMode::parse(&(self.limits)(tenant).deletion_mode)
            .map_err(|e| DeleteApiError::BadRequest(e.to_string()))
    }

    /// The tenant's mode when it may use the API.
    fn enabled_mode(&self, tenant: &str) -> Result<DeletionMode, DeleteApiError> {
        let mode = self.mode(tenant)?;
        if mode.enabled() {
            Ok(mode)
        } else {
            Err(DeleteApiError::Disabled)
        }
    }

    /// `POST /loki/api/v1/delete`: creates a request; returns its id.
    pub async fn create(&self, tenant: &str, p: NewDelete<'_>) -> Result<String, DeleteApiError> {
        self.enabled_mode(tenant)?;
        let now = now_ms();
        let max_ns = self.config.delete_max_interval.as_nanos().min(i64::MAX as u128) as i64;
        let req = parse_new_request(p.query, p.start, p.end, p.max_interval, now, max_ns)
            .map_err(|e| DeleteApiError::BadRequest(e.0))?;
        let group =
            self.store.add(tenant, &req.query, &req.windows, now).await.map_err(internal)?;
        tracing::info!(tenant, request_id = %group.request_id, query = %req.query, parts = req.windows.len(), "delete request added");
        Ok(group.request_id)
    }

    /// `GET /loki/api/v1/delete`: the tenant's requests as Loki's JSON.
    pub async fn list(&self, tenant: &str) -> Result<String, DeleteApiError> {
        self.enabled_mode(tenant)?;
        let list = self.store.list(tenant).await.map_err(internal)?;
        Ok(crate::request::list_json(&list))
    }

    /// `DELETE /loki/api/v1/delete?request_id=&force=`: cancels request `id`.
    pub async fn cancel(&self, tenant: &str, id: &str, force: bool) -> Result<(), DeleteApiError> {
        self.enabled_mode(tenant)?;
        let period =
            self.config.delete_request_cancel_period.as_millis().min(i64::MAX as u128) as i64;
        self.store.cancel(tenant, id, force, now_ms(), period).await.map_err(|e| match e {
            CancelError::NotFound => DeleteApiError::NotFound(e.to_string()),
            CancelError::InProcess | CancelError::Partial => {
                DeleteApiError::BadRequest(e.to_string())
            }
            CancelError::Store(e) => internal(e),
        })
    }

    /// One deletion pass for `tenant` now (what the compactor does each pass): parts past
    /// their cancel period are applied to the stored chunks.
    pub async fn process(&self, tenant: &str) -> Result<ProcessReport, DeleteApiError> {
        let mode = self.enabled_mode(tenant)?;
        let period =
            self.config.delete_request_cancel_period.as_millis().min(i64::MAX as u128) as i64;
        let now = now_ms();
        self.count_pending(tenant, now, period).await;
        process_pending(&self.store, &self.rewrite, tenant, mode, now, period)
            .await
            .map_err(internal)
    }

    /// The tenant's requests that hide lines from its queries, when there are any.
    pub async fn hidden_lines(
        &self,
        tenant: &str,
    ) -> Result<Option<Arc<TenantDeletes>>, DeleteApiError> {
        if !self.mode(tenant).is_ok_and(DeletionMode::enabled) {
            return Ok(None);
        }
        let hidden = self.store.hiding(tenant).await.map_err(internal)?;
        Ok((!hidden.is_empty()).then_some(hidden))
    }

    /// Reads `tenant`'s requests at the start of its pass and updates Loki's pending gauges
    /// (over every tenant, each as of its last pass): the requests past their cancel period
    /// with parts not applied yet, and how long the oldest has been past it.
    async fn count_pending(&self, tenant: &str, now: i64, period_ms: i64) {
        let m = self.store.metrics();
        let groups = match self.store.read_groups(tenant).await {
            Ok(g) => {
                m.load_pending.with_label_values(&["success"]).inc();
                g
            }
            Err(_) => {
                m.load_pending.with_label_values(&["fail"]).inc();
                return;
            }
        };
        let due: Vec<i64> = groups
            .iter()
            .filter(|g| g.parts.iter().any(|p| p.status == crate::Status::Received))
            .map(|g| g.created_at_ms.saturating_add(period_ms))
            .filter(|due| *due <= now)
            .collect();
        let mut pending = self.pending.lock();
        if due.is_empty() {
            pending.remove(tenant);
        } else {
            pending
                .insert(tenant.to_string(), (due.len(), due.iter().copied().min().unwrap_or(now)));
        }
        m.pending.set(pending.values().map(|(n, _)| *n as i64).sum());
        let oldest = pending.values().map(|(_, due)| *due).min();
        m.oldest_pending_age.set(oldest.map_or(0.0, |o| (now - o).max(0) as f64 / 1e3));
    }
}
