//! Token buckets with the semantics of Go's `golang.org/x/time/rate` `AllowN`, which Loki's
//! ingestion and per-stream limiters use: a bucket starts full, refills at `rate` tokens per
//! second up to `burst`, and a request for more than `burst` tokens never succeeds.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// One token bucket.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(burst: f64, now: Instant) -> Self {
        TokenBucket { tokens: burst, last: now }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
    }

    /// Takes `n` tokens if they are all available now.
    fn allow_n(&mut self, now: Instant, n: f64, rate: f64, burst: f64) -> bool {
        if rate.is_infinite() {
            return true;
        }
        self.refill(now, rate, burst);
        if n > burst || n > self.tokens {
            return false;
        }
        self.tokens -= n;
        true
    }
}

/// A set of buckets keyed by `K`, all with the same rate and burst. Buckets that have refilled
/// completely are dropped now and then so the map does not grow without bound.
#[derive(Debug)]
pub(crate) struct Limiters<K> {
    inner: Mutex<Inner<K>>,
}

#[derive(Debug)]
struct Inner<K> {
    buckets: HashMap<K, TokenBucket>,
    last_sweep: Instant,
}

const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl<K: Hash + Eq + Clone> Limiters<K> {
    pub(crate) fn new() -> Self {
        Limiters {
            inner: Mutex::new(Inner { buckets: HashMap::new(), last_sweep: Instant::now() }),
        }
    }

    /// `AllowN` on the bucket for `key`. A `rate` of 0 with a `burst` of 0 rejects everything
    /// non-empty, as in Go; callers treat "no limit" by not calling this.
    pub(crate) fn allow_n(&self, key: &K, now: Instant, n: f64, rate: f64, burst: f64) -> bool {
        self.allow_each(key, now, rate, burst, std::iter::once(n), |_| {}) == 1
    }

    /// `AllowN` on the bucket for `key` for each of `sizes` in turn, as that many calls of
    /// [`Limiters::allow_n`] at `now` would, under one lock and one lookup; `refused` gets
    /// the index of each size refused. Returns how many were allowed.
    pub(crate) fn allow_each(
        &self,
        key: &K,
        now: Instant,
        rate: f64,
        burst: f64,
        sizes: impl IntoIterator<Item = f64>,
        mut refused: impl FnMut(usize),
    ) -> usize {
        let mut inner = self.inner.lock();
        if now.saturating_duration_since(inner.last_sweep) >= SWEEP_EVERY {
            inner.last_sweep = now;
            inner.buckets.retain(|_, b| {
                let mut b2 = b.clone();
                b2.refill(now, rate, burst);
                b2.tokens < burst
            });
        }
        if !inner.buckets.contains_key(key) {
            inner.buckets.insert(key.clone(), TokenBucket::new(burst, now));
        }
        let Some(bucket) = inner.buckets.get_mut(key) else { return 0 };
        let mut allowed = 0;
        for (i, n) in sizes.into_iter().enumerate() {
            if bucket.allow_n(now, n, rate, burst) {
                allowed += 1;
            } else {
                refused(i);
            }
        }
        allowed
    }

    /// Number of tracked buckets (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_n_like_x_time_rate() {
        let l: Limiters<&str> = Limiters::new();
        let t0 = Instant::now();
        assert!(l.allow_n(&"a", t0, 60.0, 10.0, 100.0));
        assert!(l.allow_n(&"a", t0, 40.0, 10.0, 100.0));
        assert!(!l.allow_n(&"a", t0, 1.0, 10.0, 100.0));
        // 1s later: 10 tokens
        assert!(l.allow_n(&"a", t0 + Duration::from_secs(1), 10.0, 10.0, 100.0));
        // more than the burst never passes
        assert!(!l.allow_n(&"b", t0, 101.0, 10.0, 100.0));
        assert!(l.allow_n(&"b", t0, 100.0, 10.0, 100.0));
        // buckets that refilled are swept
        assert!(l.allow_n(&"c", t0 + Duration::from_secs(3600), 1.0, 10.0, 100.0));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn allow_each_is_allow_n_in_turn() {
        let (one, each): (Limiters<&str>, Limiters<&str>) = (Limiters::new(), Limiters::new());
        let t0 = Instant::now();
        let sizes = [30.0, 50.0, 40.0, 20.0, 101.0, 0.0, 5.0];
        let want: Vec<bool> =
            sizes.iter().map(|&n| one.allow_n(&"s", t0, n, 10.0, 100.0)).collect();
        assert_eq!(want, [true, true, false, true, false, true, false]);
        let mut refused = Vec::new();
        let allowed = each.allow_each(&"s", t0, 10.0, 100.0, sizes, |i| refused.push(i));
        assert_eq!((allowed, refused), (4, vec![2, 4, 6]));
        // the buckets are left alike
        let later = t0 + Duration::from_millis(2500);
        assert_eq!(
            one.allow_n(&"s", later, 25.0, 10.0, 100.0),
            each.allow_n(&"s", later, 25.0, 10.0, 100.0)
        );
        assert!(!one.allow_n(&"s", later, 1.0, 10.0, 100.0));
    }
}
