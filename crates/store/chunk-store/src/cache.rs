//! [`ByteLru`]: a thread-safe least-recently-used cache bounded by the total weight (bytes)
//! of its values. Used for chunk bytes here and for decoded index segments in `skald-index`.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Counters of a [`ByteLru`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Lookups that found a value.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Values currently held.
    pub entries: usize,
    /// Total weight currently held.
    pub bytes: usize,
}

#[derive(Debug)]
struct Inner<K, V> {
    map: HashMap<K, (V, usize, u64)>,
    order: BTreeMap<u64, K>,
    tick: u64,
    bytes: usize,
}

/// An LRU cache whose capacity is a total weight. A value heavier than the whole capacity is
/// never stored. A capacity of zero disables the cache.
#[derive(Debug)]
pub struct ByteLru<K, V> {
    capacity: usize,
    inner: Mutex<Inner<K, V>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<K: Hash + Eq + Clone, V: Clone> ByteLru<K, V> {
    /// Creates a cache holding at most `capacity_bytes` of total weight.
    pub fn new(capacity_bytes: usize) -> Self {
        ByteLru {
            capacity: capacity_bytes,
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: BTreeMap::new(),
                tick: 0,
                bytes: 0,
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The configured capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Returns a clone of the value for `key`, marking it most recently used.
    pub fn get(&self, key: &K) -> Option<V> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        inner.tick += 1;
        let tick = inner.tick;
        let found = match inner.map.get_mut(key) {
            Some((value, _, used)) => {
                inner.order.remove(used);
                *used = tick;
                inner.order.insert(tick, key.clone());
                Some(value.clone())
            }
            None => None,
        };
        drop(guard);
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Inserts or replaces `key` with a value of `weight`, evicting the least recently used
    /// values until the total fits.
    pub fn insert(&self, key: K, value: V, weight: usize) {
        if self.capacity == 0 || weight > self.capacity {
            self.remove(&key);
            return;
        }
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((_, old_weight, old_tick)) = inner.map.remove(&key) {
            inner.order.remove(&old_tick);
            inner.bytes -= old_weight;
        }
        while inner.bytes + weight > self.capacity {
            let Some((_, victim)) = inner.order.pop_first() else { break };
            if let Some((_, w, _)) = inner.map.remove(&victim) {
                inner.bytes -= w;
            }
        }
        inner.bytes += weight;
        inner.order.insert(tick, key.clone());
        inner.map.insert(key, (value, weight, tick));
    }

    /// Removes `key`.
    pub fn remove(&self, key: &K) {
        let mut inner = self.inner.lock();
        if let Some((_, w, t)) = inner.map.remove(key) {
            inner.order.remove(&t);
            inner.bytes -= w;
        }
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        let inner = self.inner.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: inner.map.len(),
            bytes: inner.bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_by_weight() {
        let c = ByteLru::new(10);
        c.insert("a", 1, 4);
        c.insert("b", 2, 4);
        assert_eq!(c.get(&"a"), Some(1)); // a is now newer than b
        c.insert("c", 3, 4); // evicts b
        assert_eq!(c.get(&"b"), None);
        assert_eq!(c.get(&"a"), Some(1));
        assert_eq!(c.get(&"c"), Some(3));
        assert_eq!(c.stats().bytes, 8);
        c.insert("huge", 9, 11);
        assert_eq!(c.get(&"huge"), None);
        c.insert("a", 5, 2);
        assert_eq!(c.stats(), CacheStats { hits: 3, misses: 2, entries: 2, bytes: 6 });
        c.remove(&"a");
        assert_eq!(c.stats().entries, 1);
    }

    #[test]
    fn zero_capacity_disables() {
        let c = ByteLru::new(0);
        c.insert(1, 1, 1);
        assert_eq!(c.get(&1), None);
    }
}
