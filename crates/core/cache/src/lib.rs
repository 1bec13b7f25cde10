//! Caches for the query path: Loki's `cache_config` block ([`CacheConfig`]), the [`Cache`]
//! seam, an in-process LRU ([`EmbeddedCache`]), a memcached client ([`MemcachedCache`],
//! the text protocol over tokio, no client crate) and the two tiers together ([`Tiered`],
//! built by [`build`]).
//!
//! A cache never fails its caller: any backend error (connection refused, timeout, a bad
//! reply) is a miss on fetch and a skipped store, logged at `warn`.

mod config;
mod embedded;
mod memcached;
pub mod metrics;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

pub use config::{
    BackgroundConfig, CacheConfig, EmbeddedCacheConfig, MemcachedClientConfig, MemcachedConfig,
    RedisConfig,
};
pub use embedded::EmbeddedCache;
pub use memcached::MemcachedCache;

/// A key-value cache of byte strings. Keys may be long and hold any character (backends
/// that need short or plain keys hash them, see [`hash_key`]). Never errors: what cannot be
/// read is a miss, what cannot be written is skipped.
pub trait Cache: Send + Sync + 'static {
    /// The values found, by key (absent keys are misses).
    fn fetch<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, HashMap<String, Bytes>>;
    /// Stores the items (best effort).
    fn store(&self, items: Vec<(String, Bytes)>) -> BoxFuture<'_, ()>;
    /// A name for logs (`embedded`, `memcached`, `embedded+memcached`).
    fn name(&self) -> &str;
}

/// 64-bit FNV-1a of `data` (a tiny, stable hash: memcached keys, server choice).
pub fn fnv64a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A fixed-size key made of `[0-9a-f]` only (memcached's keys are at most 250 bytes without
/// spaces or control characters): the FNV-1a hashes of the key and of the key reversed, in
/// hex (32 characters). Backends that hash keys also keep the full key next to the value and
/// check it on fetch, so a collision is a miss, never another key's value.
pub fn hash_key(key: &str) -> String {
    let fwd = fnv64a(key.as_bytes());
    let mut rev = 0xcbf2_9ce4_8422_2325u64 ^ 0x5bd1_e995;
    for b in key.as_bytes().iter().rev() {
        rev ^= u64::from(*b);
        rev = rev.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{fwd:016x}{rev:016x}")
}

/// Two caches in order (Loki's behaviour when both `embedded_cache` and memcached are set):
/// fetch asks the first, then the second for what the first missed (and copies the second's
/// hits into the first); store writes both.
pub struct Tiered {
    first: Arc<dyn Cache>,
    second: Arc<dyn Cache>,
    name: String,
}

impl Tiered {
    /// `first` is asked first (the embedded cache), then `second` (memcached).
    pub fn new(first: Arc<dyn Cache>, second: Arc<dyn Cache>) -> Self {
        let name = format!("{}+{}", first.name(), second.name());
        Tiered { first, second, name }
    }
}

impl Cache for Tiered {
    fn fetch<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, HashMap<String, Bytes>> {
        Box::pin(async move {
            let mut found = self.first.fetch(keys).await;
            let missing: Vec<String> =
                keys.iter().filter(|k| !found.contains_key(*k)).cloned().collect();
            if missing.is_empty() {
                return found;
            }
            let more = self.second.fetch(&missing).await;
            if !more.is_empty() {
                let backfill = more.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                self.first.store(backfill).await;
            }
            found.extend(more);
            found
        })
    }

    fn store(&self, items: Vec<(String, Bytes)>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.first.store(items.clone()).await;
            self.second.store(items).await;
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// The cache `config` describes: the embedded cache, memcached, or both (embedded first);
/// `None` when neither is configured. A Redis endpoint or `tls_enabled` (not supported) is
/// logged at `warn` and ignored.
///
/// `name` is the cache's in `loki_memcache_request_duration_seconds` (Loki's prefix of its
/// configuration block, `frontend.` for the results cache).
pub fn build(config: &CacheConfig, name: &str) -> Option<Arc<dyn Cache>> {
    if !config.redis.endpoint.trim().is_empty() {
        tracing::warn!(endpoint = %config.redis.endpoint, "redis caches are not supported; the redis block is ignored");
    }
    let embedded: Option<Arc<dyn Cache>> = config
        .embedded_cache
        .enabled
        .then(|| Arc::new(EmbeddedCache::new(&config.embedded_cache)) as Arc<dyn Cache>);
    let memcached: Option<Arc<dyn Cache>> = if config.memcached_client.is_configured() {
        if config.memcached_client.tls_enabled {
            tracing::warn!("memcached_client.tls_enabled is not supported; connecting without TLS");
        }
        Some(Arc::new(MemcachedCache::new(config).named(name)))
    } else {
        None
    };
    match (embedded, memcached) {
        (Some(e), Some(m)) => Some(Arc::new(Tiered::new(e, m))),
        (Some(c), None) | (None, Some(c)) => Some(c),
        (None, None) => None,
    }
}

/// The test memcached `scripts/test-servers/start.sh` started (`SKALD_TEST_MEMCACHED`,
/// `host:port`). A missing variable fails the test with what to run, as the S3 tests do.
pub fn memcached_from_test_env() -> String {
    std::env::var("SKALD_TEST_MEMCACHED").unwrap_or_else(|_| {
        panic!("SKALD_TEST_MEMCACHED is not set: run scripts/test-servers/start.sh and source the env file it writes (the README's test command does both)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_keys_are_fixed_size_and_plain() {
        let k = hash_key("tenant a\n{job=\"x\"} \u{1F600}");
        assert_eq!(k.len(), 32);
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(hash_key("ab"), hash_key("ba"));
        assert_eq!(hash_key("x"), hash_key("x"));
        // FNV-1a's published test vector.
        assert_eq!(fnv64a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[tokio::test]
    async fn tiered_reads_the_first_then_the_second_and_backfills() {
        let cfg = EmbeddedCacheConfig { enabled: true, ..Default::default() };
        let first = Arc::new(EmbeddedCache::new(&cfg));
        let second = Arc::new(EmbeddedCache::new(&cfg));
        second.store(vec![("b".into(), Bytes::from_static(b"2"))]).await;
        let t = Tiered::new(first.clone(), second.clone());
        t.store(vec![("a".into(), Bytes::from_static(b"1"))]).await;
        let got = t.fetch(&["a".into(), "b".into(), "c".into()]).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got["b"], Bytes::from_static(b"2"));
        assert_eq!(first.fetch(&["b".into()]).await.len(), 1, "backfilled");
        assert_eq!(second.fetch(&["a".into()]).await.len(), 1, "stored in both");
    }

    #[test]
    fn build_follows_the_config() {
        assert!(build(&CacheConfig::default(), "t.").is_none());
        let mut c = CacheConfig::default();
        c.embedded_cache.enabled = true;
        assert_eq!(build(&c, "t.").map(|c| c.name().to_string()).as_deref(), Some("embedded"));
        c.memcached_client.addresses = "127.0.0.1:1".into();
        assert_eq!(
            build(&c, "t.").map(|c| c.name().to_string()).as_deref(),
            Some("embedded+memcached")
        );
    }
}
