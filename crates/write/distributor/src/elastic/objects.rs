//! The Elasticsearch objects clients put before shipping (index and component templates, ILM
//! policies, ingest pipelines, data streams), per tenant, in the object store the tenant's
//! chunks and index live in: `<tenant>/es-templates/<kind>/<name>.json`. They survive a
//! restart and are shared by every process on the same bucket. Nothing is kept in memory
//! but a lock per tenant that is writing; each object is at most
//! `distributor.elasticsearch.max_template_bytes` and a tenant keeps at most
//! `distributor.elasticsearch.max_templates_per_tenant` of them.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use skald_chunk_store::{ChunkStore, Error as StoreError};

/// The folder under a tenant's prefix.
const DIR: &str = "es-templates";

/// Why an object operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The name cannot be stored.
    #[error("invalid name [{0}]: use 1 to 255 characters of [A-Za-z0-9._+-], not . or ..")]
    InvalidName(String),
    /// The tenant keeps as many objects as allowed.
    #[error("the tenant already keeps {max} Elasticsearch templates, policies, pipelines and data streams (distributor.elasticsearch.max_templates_per_tenant); delete one before putting another")]
    TooMany {
        /// The limit.
        max: usize,
    },
    /// The object store failed.
    #[error("storing Elasticsearch objects failed: {0}")]
    Store(#[from] StoreError),
}

impl ObjectError {
    /// The HTTP status and Elasticsearch error type.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            ObjectError::InvalidName(_) | ObjectError::TooMany { .. } => {
                (400, "illegal_argument_exception")
            }
            ObjectError::Store(StoreError::InvalidTenant { .. }) => {
                (400, "illegal_argument_exception")
            }
            ObjectError::Store(_) => (500, "status_exception"),
        }
    }
}

/// The folder of a kind (`_ilm/policy` → `ilm_policy`).
fn kind_dir(kind: &str) -> String {
    kind.trim_start_matches('_').replace('/', "_")
}

fn valid_name(name: &str) -> bool {
    let ok = |c: u8| c.is_ascii_alphanumeric() || b"._+-".contains(&c);
    !name.is_empty() && name.len() <= 255 && name != "." && name != ".." && name.bytes().all(ok)
}

/// A tenant's Elasticsearch objects in the object store.
pub struct EsObjects {
    store: Arc<dyn ChunkStore>,
    max_count: usize,
    /// Puts and deletes of one tenant run one at a time, so that the count holds.
    locks: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl EsObjects {
    /// Objects in `store`; `max_count` per tenant (0: no limit).
    pub fn new(store: Arc<dyn ChunkStore>, max_count: usize) -> Self {
        EsObjects { store, max_count, locks: parking_lot::Mutex::new(HashMap::new()) }
    }

    fn path(tenant: &str, kind: &str, name: &str) -> Result<String, ObjectError> {
        skald_chunk_store::validate_tenant(tenant)?;
        if !valid_name(name) {
            return Err(ObjectError::InvalidName(name.to_string()));
        }
        Ok(format!("{tenant}/{DIR}/{}/{name}.json", kind_dir(kind)))
    }

    fn lock(&self, tenant: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock();
        // forget the locks nobody holds (their tenants are not writing)
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(tenant.to_string()).or_default().clone()
    }

    /// Stores `value` as `kind` `name` of `tenant`, replacing the one there.
    pub async fn put(
        &self,
        tenant: &str,
        kind: &str,
        name: &str,
        value: &Value,
    ) -> Result<(), ObjectError> {
        let path = Self::path(tenant, kind, name)?;
        let lock = self.lock(tenant);
        let _guard = lock.lock().await;
        if self.max_count > 0 {
            let existing = self.store.list_prefix(&format!("{tenant}/{DIR}")).await?;
            if existing.len() >= self.max_count && !existing.contains(&path) {
                return Err(ObjectError::TooMany { max: self.max_count });
            }
        }
        self.store.put_object(&path, Bytes::from(value.to_string())).await?;
        Ok(())
    }

    /// The object, or `None`.
    pub async fn get(
        &self,
        tenant: &str,
        kind: &str,
        name: &str,
    ) -> Result<Option<Value>, ObjectError> {
        let path = Self::path(tenant, kind, name)?;
        match self.store.get_object(&path).await {
            // (an object that does not parse was not written by Skald: as if missing)
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the object; `false` when there was none.
    pub async fn delete(&self, tenant: &str, kind: &str, name: &str) -> Result<bool, ObjectError> {
        let path = Self::path(tenant, kind, name)?;
        let lock = self.lock(tenant);
        let _guard = lock.lock().await;
        match self.store.get_object(&path).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        self.store.delete_object(&path).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;
    use skald_chunk_store::ObjectChunkStore;

    #[tokio::test]
    async fn objects_are_per_tenant_capped_and_in_the_store() {
        let store: Arc<dyn ChunkStore> = Arc::new(ObjectChunkStore::in_memory());
        let objects = EsObjects::new(store.clone(), 2);
        let t = json!({"index_patterns": ["filebeat-*"]});
        objects.put("a", "_index_template", "filebeat-8.19.0", &t).await.unwrap();
        objects.put("a", "_ilm/policy", "filebeat", &json!({"policy": {}})).await.unwrap();
        assert_eq!(
            store.list_prefix("a/es-templates").await.unwrap(),
            vec![
                "a/es-templates/ilm_policy/filebeat.json".to_string(),
                "a/es-templates/index_template/filebeat-8.19.0.json".to_string(),
            ]
        );
        // tenant b sees nothing of a's
        assert_eq!(objects.get("b", "_index_template", "filebeat-8.19.0").await.unwrap(), None);
        assert_eq!(objects.get("a", "_index_template", "filebeat-8.19.0").await.unwrap(), Some(t));
        // the cap counts every kind; replacing one is not a new one
        let err = objects.put("a", "_template", "x", &json!({})).await.unwrap_err();
        assert!(matches!(err, ObjectError::TooMany { max: 2 }), "{err}");
        assert_eq!(err.status().0, 400);
        objects.put("a", "_ilm/policy", "filebeat", &json!({"policy": {"v": 2}})).await.unwrap();
        objects.put("b", "_template", "x", &json!({})).await.unwrap();
        assert!(objects.delete("a", "_ilm/policy", "filebeat").await.unwrap());
        assert!(!objects.delete("a", "_ilm/policy", "filebeat").await.unwrap());
        objects.put("a", "_template", "x", &json!({})).await.unwrap();
        // names and tenants that cannot be paths
        for bad in ["", ".", "..", "a/b", "a b", &"n".repeat(256)] {
            let err = objects.put("a", "_template", bad, &json!({})).await.unwrap_err();
            assert!(matches!(err, ObjectError::InvalidName(_)), "{bad:?}: {err}");
        }
        assert_eq!(objects.get("a/b", "_template", "x").await.unwrap_err().status().0, 400);
        // a new EsObjects over the same store (a restart) finds them
        let again = EsObjects::new(store, 2);
        assert_eq!(again.get("a", "_template", "x").await.unwrap(), Some(json!({})));
    }
}
