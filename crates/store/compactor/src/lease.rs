//! [`Lease`]: one compactor at a time, by an object in the object store.
//!
//! The lease is the object [`LEASE_PATH`] holding `<owner id> <expiry, unix ms>`. A compactor
//! takes it when it is absent, expired or already its own: it writes its id and expiry, waits
//! a settle time, and reads it back; only if its own id is there does it work. It renews the
//! lease before each pass. What this guarantees: the object store has no compare-and-swap here,
//! so two compactors starting within one settle time of each other both write, and the last
//! write wins: both read back the same winner unless a write takes longer than the settle time
//! to become visible. A compactor that stops renewing (crashed, or a pass longer than the
//! lease's time to live) loses the lease when it expires. Passes are idempotent and every
//! rewrite writes before it deletes, so two compactors overlapping by accident waste work but
//! lose no data.

use std::sync::Arc;
use std::time::Duration;

use skald_chunk_store::ChunkStore;

/// Where the lease is kept (for an index of segments in the bucket; see [`lease_path`]).
pub const LEASE_PATH: &str = "compactor/lease";

/// Where the lease of the compactor of an index is kept: [`LEASE_PATH`], or, for DynamoDB
/// tables of prefix `p` (deployments that share a bucket keep their index in tables of their
/// own prefix), `compactor/lease-<p>`.
pub fn lease_path(table_prefix: Option<&str>) -> String {
    match table_prefix.filter(|p| !p.is_empty()) {
        Some(p) => format!(
            "{LEASE_PATH}-{}",
            p.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-', "_")
        ),
        None => LEASE_PATH.to_string(),
    }
}

/// The lease of one compactor process.
pub struct Lease {
    store: Arc<dyn ChunkStore>,
    path: String,
    owner: String,
    ttl: Duration,
    settle: Duration,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("owner", &self.owner).field("ttl", &self.ttl).finish()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `(owner, expiry ms)` of a lease object.
fn parse(bytes: &[u8]) -> Option<(String, i64)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (owner, expiry) = text.trim().rsplit_once(' ')?;
    Some((owner.to_string(), expiry.parse().ok()?))
}

impl Lease {
    /// The lease of `owner` (unique per process), held for `ttl` after each renewal, read back
    /// `settle` after it is written.
    pub fn new(store: Arc<dyn ChunkStore>, owner: String, ttl: Duration, settle: Duration) -> Self {
        Lease { store, path: LEASE_PATH.to_string(), owner, ttl, settle }
    }

    /// The same lease kept at `path` ([`lease_path`]).
    pub fn at(mut self, path: String) -> Self {
        self.path = path;
        self
    }

    /// This process's id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The current holder when it is another process and its lease has not expired.
    async fn other_holder(&self) -> Result<Option<String>, skald_chunk_store::Error> {
        match self.store.get_object(&self.path).await {
            Ok(bytes) => Ok(parse(&bytes)
                .filter(|(owner, expiry)| owner != &self.owner && *expiry > now_ms())
                .map(|(owner, _)| owner)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Takes or renews the lease. `Ok(None)`: this process holds it; `Ok(Some(owner))`:
    /// another one does.
    pub async fn acquire(&self) -> Result<Option<String>, skald_chunk_store::Error> {
        if let Some(other) = self.other_holder().await? {
            return Ok(Some(other));
        }
        let expiry = now_ms() + self.ttl.as_millis() as i64;
        let body = format!("{} {expiry}\n", self.owner);
        self.store.put_object(&self.path, bytes::Bytes::from(body)).await?;
        tokio::time::sleep(self.settle).await;
        match self.store.get_object(&self.path).await {
            Ok(bytes) => match parse(&bytes) {
                Some((owner, _)) if owner == self.owner => Ok(None),
                Some((owner, _)) => Ok(Some(owner)),
                None => Ok(Some("(unreadable lease)".into())),
            },
            Err(e) if e.is_not_found() => Ok(Some("(lease removed)".into())),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up (on shutdown), when this process holds it.
    pub async fn release(&self) {
        if let Ok(bytes) = self.store.get_object(&self.path).await {
            if parse(&bytes).is_some_and(|(owner, _)| owner == self.owner) {
                let _ = self.store.delete_object(&self.path).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_chunk_store::ObjectChunkStore;

    #[tokio::test]
    async fn one_holder_at_a_time_until_it_expires_or_is_released() {
        let store: Arc<dyn ChunkStore> = Arc::new(ObjectChunkStore::in_memory());
        let ms = Duration::from_millis;
        let a = Lease::new(store.clone(), "a".into(), ms(300), ms(1));
        let b = Lease::new(store.clone(), "b".into(), ms(300), ms(1));
        assert_eq!(a.acquire().await.unwrap(), None);
        assert_eq!(b.acquire().await.unwrap(), Some("a".into()));
        assert_eq!(a.acquire().await.unwrap(), None, "renewed");
        tokio::time::sleep(ms(350)).await;
        assert_eq!(b.acquire().await.unwrap(), None, "a's lease expired");
        assert_eq!(a.acquire().await.unwrap(), Some("b".into()));
        b.release().await;
        assert_eq!(a.acquire().await.unwrap(), None);
        assert_eq!(parse(b"x y 12"), Some(("x y".into(), 12)));
        assert_eq!(parse(b"garbage"), None);
    }
}
