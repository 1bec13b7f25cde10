//! [`DeleteStore`]: delete requests as small JSON objects in the object store, one per
//! request at `<tenant>/deletes/<request_id>.json`.
//!
//! Writers: any querier creates a request (a new object under a fresh id) or cancels one
//! (deletes its object, or rewrites it with its processed parts only); the compactor alone
//! rewrites one to mark parts processed, re-reading it first so that a request cancelled
//! meanwhile is not brought back. No object is ever written by two kinds of writer at once
//! except for that window (a cancel racing the compactor's status write), which the cancel
//! period makes moot: the compactor only takes parts whose cancel period has passed, and
//! those can no longer be cancelled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use skald_chunk_store::ChunkStore;

use crate::error::{Error, Result};
use crate::filter::TenantDeletes;
use crate::metrics::DeleteMetrics;
use crate::request::{DeleteRequest, Part, RequestGroup, Status};

/// How long a querier keeps a tenant's requests before reading them again (a request made
/// through this process is seen at once: it clears the cache).
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);

/// Why a cancellation was refused, with Loki's texts (recorded from Loki 3.x).
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// No such request (404).
    #[error("could not find delete request with given id")]
    NotFound,
    /// Every part is processed, or past its cancel period (400).
    #[error("deletion of request which is in process or already processed is not allowed")]
    InProcess,
    /// Some parts are processed and `force` was not given (400).
    #[error("Unable to cancel partially completed delete request. To force, use the ?force query parameter")]
    Partial,
    /// The store failed (500).
    #[error(transparent)]
    Store(#[from] Error),
}

/// A tenant's value and when it was read.
type Cached<T> = (Instant, Arc<T>);

/// The delete requests of all tenants, in a [`ChunkStore`]'s generic objects.
pub struct DeleteStore {
    store: Arc<dyn ChunkStore>,
    metrics: DeleteMetrics,
    ttl: Duration,
    next: AtomicU64,
    groups: Mutex<HashMap<String, Cached<Vec<RequestGroup>>>>,
    hiding: Mutex<HashMap<String, Cached<TenantDeletes>>>,
}

impl std::fmt::Debug for DeleteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeleteStore").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

/// Object path of request `id` of `tenant`.
pub fn request_path(tenant: &str, id: &str) -> String {
    format!("{tenant}/deletes/{id}.json")
}

impl DeleteStore {
    /// Keeps requests in `store`; queriers re-read a tenant's at most every `ttl`.
    pub fn new(store: Arc<dyn ChunkStore>, ttl: Duration) -> Self {
        DeleteStore {
            store,
            metrics: DeleteMetrics::new(),
            ttl,
            next: AtomicU64::new(0),
            groups: Mutex::new(HashMap::new()),
            hiding: Mutex::new(HashMap::new()),
        }
    }

    /// Counts into `metrics` (register them in the process's registry).
    pub fn with_metrics(mut self, metrics: DeleteMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The counters this store (and the passes run over it) count into.
    pub fn metrics(&self) -> &DeleteMetrics {
        &self.metrics
    }

    /// Forgets what is cached of `tenant`.
    pub fn invalidate(&self, tenant: &str) {
        self.groups.lock().remove(tenant);
        self.hiding.lock().remove(tenant);
    }

    /// Every request of `tenant`, read from the store (not cached), in creation order.
    pub async fn read_groups(&self, tenant: &str) -> Result<Vec<RequestGroup>> {
        skald_chunk_store::validate_tenant(tenant)?;
        let paths = self.store.list_prefix(&format!("{tenant}/deletes")).await?;
        let mut out = Vec::with_capacity(paths.len());
        for path in paths.into_iter().filter(|p| p.ends_with(".json")) {
            if let Some(g) = self.read_group_path(&path).await? {
                out.push(g);
            }
        }
        out.sort_by(|a, b| (a.created_at_ms, &a.request_id).cmp(&(b.created_at_ms, &b.request_id)));
        Ok(out)
    }

    async fn read_group_path(&self, path: &str) -> Result<Option<RequestGroup>> {
        let bytes = match self.store.get_object(path).await {
            Ok(b) => b,
            // cancelled between the listing and the read
            Err(skald_chunk_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt { path: path.to_string(), reason: e.to_string() })
    }

    /// Request `id` of `tenant`, when it exists.
    pub async fn read_group(&self, tenant: &str, id: &str) -> Result<Option<RequestGroup>> {
        skald_chunk_store::validate_tenant(tenant)?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        self.read_group_path(&request_path(tenant, id)).await
    }

    /// Writes `group` (creating or replacing its object).
    pub async fn write_group(&self, tenant: &str, group: &RequestGroup) -> Result<()> {
        skald_chunk_store::validate_tenant(tenant)?;
        let body = serde_json::to_vec(group).map_err(|e| Error::Corrupt {
            path: request_path(tenant, &group.request_id),
            reason: e.to_string(),
        })?;
        self.store.put_object(&request_path(tenant, &group.request_id), Bytes::from(body)).await?;
        self.invalidate(tenant);
        Ok(())
    }

    /// Every request of `tenant`, cached for the store's ttl.
    pub async fn groups(&self, tenant: &str) -> Result<Arc<Vec<RequestGroup>>> {
        if let Some((at, g)) = self.groups.lock().get(tenant) {
            if at.elapsed() < self.ttl {
                return Ok(g.clone());
            }
        }
        self.metrics.lookups.inc();
        let g = match self.read_groups(tenant).await {
            Ok(g) => Arc::new(g),
            Err(e) => {
                self.metrics.lookups_failed.inc();
                return Err(e);
            }
        };
        self.groups.lock().insert(tenant.to_string(), (Instant::now(), g.clone()));
        Ok(g)
    }

    /// The compiled requests that hide lines from `tenant`'s queries: every part of every
    /// request not cancelled (a processed part still hides what ingesters flushed after it
    /// ran), cached for the store's ttl.
    pub async fn hiding(&self, tenant: &str) -> Result<Arc<TenantDeletes>> {
        if let Some((at, d)) = self.hiding.lock().get(tenant) {
            if at.elapsed() < self.ttl {
                return Ok(d.clone());
            }
        }
        let groups = self.groups(tenant).await?;
        let compiled = Arc::new(TenantDeletes::compile(&groups, |_, _| true));
        self.hiding.lock().insert(tenant.to_string(), (Instant::now(), compiled.clone()));
        Ok(compiled)
    }

    /// Creates a request of `tenant` with one part per window (all `received`); returns it.
    pub async fn add(
        &self,
        tenant: &str,
        query: &str,
        windows: &[(i64, i64)],
        now_ms: i64,
    ) -> Result<RequestGroup> {
        skald_chunk_store::validate_tenant(tenant)?;
        let parts = windows
            .iter()
            .map(|&(start_ms, end_ms)| Part {
                start_ms,
                end_ms,
                status: Status::Received,
                processed_at_ms: None,
            })
            .collect();
        let mut group = RequestGroup {
            request_id: String::new(),
            query: query.to_string(),
            created_at_ms: now_ms,
            parts,
        };
        // eight hex digits as Loki's ids; drawn again in the unlikely case of a clash
        for _ in 0..8 {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let seed = format!("{tenant}\n{query}\n{nanos}\n{n}\n{}", std::process::id());
            let id = format!("{:08x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes()) as u32);
            if self.read_group(tenant, &id).await?.is_none() {
                group.request_id = id;
                break;
            }
        }
        self.write_group(tenant, &group).await?;
        self.metrics.received.with_label_values(&[tenant]).inc();
        Ok(group)
    }

    /// The requests of `tenant` as `GET /loki/api/v1/delete` lists them (creation order).
    pub async fn list(&self, tenant: &str) -> Result<Vec<DeleteRequest>> {
        Ok(self.read_groups(tenant).await?.iter().map(RequestGroup::listed).collect())
    }

    /// Cancels request `id` of `tenant` as Loki does: the parts not yet processed and still
    /// inside their cancel period (`created_at + cancel_period_ms > now_ms`) are removed;
    /// when some parts are already processed (or past the period) `force` is needed, and a
    /// request without any part left to cancel is refused.
    pub async fn cancel(
        &self,
        tenant: &str,
        id: &str,
        force: bool,
        now_ms: i64,
        cancel_period_ms: i64,
    ) -> Result<(), CancelError> {
        let Some(mut group) = self.read_group(tenant, id).await? else {
            return Err(CancelError::NotFound);
        };
        let open = group.created_at_ms.saturating_add(cancel_period_ms) > now_ms;
        let cancellable = |p: &Part| p.status == Status::Received && open;
        let n = group.parts.iter().filter(|p| cancellable(p)).count();
        if n == 0 {
            return Err(CancelError::InProcess);
        }
        if n != group.parts.len() && !force {
            return Err(CancelError::Partial);
        }
        if n == group.parts.len() {
            self.store.delete_object(&request_path(tenant, id)).await.map_err(Error::from)?;
            self.invalidate(tenant);
        } else {
            group.parts.retain(|p| !cancellable(p));
            self.write_group(tenant, &group).await?;
        }
        tracing::info!(tenant, request_id = id, parts = n, "delete request cancelled");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_chunk_store::ObjectChunkStore;

    fn store() -> DeleteStore {
        DeleteStore::new(Arc::new(ObjectChunkStore::in_memory()), Duration::from_secs(60))
    }

    #[tokio::test]
    async fn add_list_cancel() {
        let s = store();
        let a = s.add("t", r#"{a="b"}"#, &[(1000, 2000)], 5000).await.unwrap();
        let b = s.add("t", r#"{a="c"} |= "x""#, &[(0, 10), (10, 20)], 6000).await.unwrap();
        assert_eq!(a.request_id.len(), 8);
        assert_ne!(a.request_id, b.request_id);
        let listed = s.list("t").await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].request_id, a.request_id);
        assert_eq!((listed[1].start_time_ms, listed[1].end_time_ms), (0, 20));
        assert!(s.list("u").await.unwrap().is_empty());
        assert_eq!(s.hiding("t").await.unwrap().len(), 3);

        // cancel within the period removes the object
        s.cancel("t", &a.request_id, false, 5001, 1000).await.unwrap();
        assert_eq!(s.list("t").await.unwrap().len(), 1);
        assert_eq!(s.hiding("t").await.unwrap().len(), 2);
        assert!(matches!(
            s.cancel("t", &a.request_id, false, 5001, 1000).await,
            Err(CancelError::NotFound)
        ));
        // past the period: in process
        assert!(matches!(
            s.cancel("t", &b.request_id, false, 7000, 1000).await,
            Err(CancelError::InProcess)
        ));
        // partly processed: needs force, which keeps the processed part
        let mut g = s.read_group("t", &b.request_id).await.unwrap().unwrap();
        g.parts[0].status = Status::Processed;
        s.write_group("t", &g).await.unwrap();
        assert!(matches!(
            s.cancel("t", &b.request_id, false, 6001, 1000).await,
            Err(CancelError::Partial)
        ));
        s.cancel("t", &b.request_id, true, 6001, 1000).await.unwrap();
        let left = s.read_group("t", &b.request_id).await.unwrap().unwrap();
        assert_eq!(left.parts.len(), 1);
        assert_eq!(left.listed().status, "processed");
        assert!(matches!(s.cancel("t", "", false, 0, 0).await, Err(CancelError::NotFound)));
        assert!(matches!(s.cancel("t", "../x", false, 0, 0).await, Err(CancelError::NotFound)));
    }
}
