//! The in-process cache: least recently used entries go first when the total size
//! (`max_size_mb`, keys and values counted) or the entry count (`max_size_items`) would be
//! passed; entries expire `ttl` after they were stored.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::{Cache, EmbeddedCacheConfig};

/// Fixed per-entry cost counted on top of key and value (the maps' bookkeeping).
const ENTRY_OVERHEAD: usize = 64;

/// An in-process LRU cache bounded by bytes and, when set, entries; see the module doc.
pub struct EmbeddedCache {
    max_bytes: usize,
    max_items: usize,
    ttl: Duration,
    inner: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    entries: HashMap<String, Entry>,
    /// Use tick -> key, oldest first.
    order: BTreeMap<u64, String>,
    tick: u64,
    bytes: usize,
}

struct Entry {
    value: Bytes,
    expires: Instant,
    tick: u64,
}

fn cost(key: &str, value: &Bytes) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

impl Lru {
    fn remove(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.order.remove(&e.tick);
            self.bytes -= cost(key, &e.value);
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((_, key)) = self.order.pop_first() {
            if let Some(e) = self.entries.remove(&key) {
                self.bytes -= cost(&key, &e.value);
            }
        }
    }
}

impl EmbeddedCache {
    /// A cache with `config`'s bounds and ttl (`enabled` is not looked at).
    pub fn new(config: &EmbeddedCacheConfig) -> Self {
        EmbeddedCache {
            max_bytes: usize::try_from(config.max_size_mb.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            max_items: config.max_size_items,
            ttl: config.ttl,
            inner: Mutex::new(Lru::default()),
        }
    }

    /// Entries held (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, key: &str, now: Instant) -> Option<Bytes> {
        let mut lru = self.inner.lock();
        let lru = &mut *lru;
        let expired = match lru.entries.get(key) {
            None => return None,
            Some(e) => e.expires <= now,
        };
        if expired {
            lru.remove(key);
            return None;
        }
        lru.tick += 1;
        let tick = lru.tick;
        let e = lru.entries.get_mut(key)?;
        lru.order.remove(&e.tick);
        e.tick = tick;
        lru.order.insert(tick, key.to_string());
        Some(e.value.clone())
    }

    fn put(&self, key: String, value: Bytes, now: Instant) {
        let c = cost(&key, &value);
        let mut lru = self.inner.lock();
        lru.remove(&key);
        if c > self.max_bytes {
            return;
        }
        while lru.bytes + c > self.max_bytes
            || (self.max_items > 0 && lru.entries.len() >= self.max_items)
        {
            if lru.entries.is_empty() {
                break;
            }
            lru.evict_oldest();
        }
        lru.tick += 1;
        let tick = lru.tick;
        lru.order.insert(tick, key.clone());
        lru.bytes += c;
        lru.entries.insert(key, Entry { value, expires: now + self.ttl, tick });
    }
}

impl Cache for EmbeddedCache {
    fn fetch<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, HashMap<String, Bytes>> {
        let now = Instant::now();
        let found = keys.iter().filter_map(|k| Some((k.clone(), self.get(k, now)?))).collect();
        Box::pin(async move { found })
    }

    fn store(&self, items: Vec<(String, Bytes)>) -> BoxFuture<'_, ()> {
        let now = Instant::now();
        for (k, v) in items {
            self.put(k, v, now);
        }
        Box::pin(async {})
    }

    fn name(&self) -> &str {
        "embedded"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max_size_mb: u64, max_size_items: usize) -> EmbeddedCache {
        EmbeddedCache::new(&EmbeddedCacheConfig {
            enabled: true,
            max_size_mb,
            max_size_items,
            ttl: Duration::from_secs(60),
        })
    }

    fn val(n: usize) -> Bytes {
        Bytes::from(vec![7u8; n])
    }

    async fn has(c: &EmbeddedCache, k: &str) -> bool {
        c.fetch(&[k.to_string()]).await.contains_key(k)
    }

    #[tokio::test]
    async fn evicts_by_bytes_oldest_first() {
        let c = cache(1, 0);
        // Three entries of ~400 KiB: the third pushes the first out (1 MiB total).
        for k in ["a", "b", "c"] {
            c.store(vec![(k.into(), val(400 << 10))]).await;
        }
        assert!(!has(&c, "a").await);
        assert!(has(&c, "b").await && has(&c, "c").await);
        // Bigger than the whole cache: not stored, nothing evicted.
        c.store(vec![("huge".into(), val(2 << 20))]).await;
        assert!(!has(&c, "huge").await);
        assert_eq!(c.len(), 2);
    }

    #[tokio::test]
    async fn evicts_by_items_least_recently_used() {
        let c = cache(100, 2);
        c.store(vec![("a".into(), val(1)), ("b".into(), val(1))]).await;
        // Reading `a` makes `b` the least recently used.
        assert!(has(&c, "a").await);
        c.store(vec![("c".into(), val(1))]).await;
        assert!(has(&c, "a").await);
        assert!(!has(&c, "b").await);
        assert!(has(&c, "c").await);
        assert_eq!(c.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_the_ttl() {
        let c = cache(100, 0);
        c.store(vec![("a".into(), val(1))]).await;
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(has(&c, "a").await);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!has(&c, "a").await);
        assert!(c.is_empty(), "an expired entry is dropped when met");
    }

    #[tokio::test]
    async fn overwriting_replaces_the_value_and_its_size() {
        let c = cache(1, 0);
        c.store(vec![("a".into(), val(900 << 10))]).await;
        c.store(vec![("a".into(), val(10))]).await;
        assert_eq!(c.fetch(&["a".into()]).await["a"].len(), 10);
        // The old size was given back: another large entry fits beside it.
        c.store(vec![("b".into(), val(900 << 10))]).await;
        assert!(has(&c, "a").await && has(&c, "b").await);
    }
}
