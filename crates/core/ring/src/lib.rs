//! The hash ring that places streams on ingesters, with Loki's (Cortex's) rules: every
//! instance owns tokens on a 32-bit ring, a key belongs to the first `replication_factor`
//! distinct instances clockwise from its token, and a write succeeds when a quorum
//! (`replication_factor / 2 + 1`) of them acknowledged it.
//!
//! This crate is the pure part: the ring's description (instances, states, tokens,
//! heartbeats), replica selection, quorum arithmetic, token generation and the stream key.
//! How the description is shared between processes (gossip) lives elsewhere.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod lifecycler;
pub mod membership;
pub mod replicated;
pub mod tail;

/// An instance's lifecycle state, as in Loki's lifecycler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceState {
    /// Registered, no tokens yet.
    Pending,
    /// Taking its tokens; receives no writes yet.
    Joining,
    /// Serving reads and writes.
    Active,
    /// Shutting down: no new writes, still readable until it has flushed.
    Leaving,
}

/// One instance as the ring sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceDesc {
    /// Unique id (Loki's `instance_id`, default the hostname).
    pub id: String,
    /// gRPC address, `host:port`.
    pub addr: String,
    /// Lifecycle state.
    pub state: InstanceState,
    /// Owned tokens, sorted.
    pub tokens: Vec<u32>,
    /// Last heartbeat, milliseconds since the Unix epoch.
    pub heartbeat_ms: i64,
}

/// What a replica set is for: writes need ACTIVE instances, reads also accept LEAVING ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A push.
    Write,
    /// A query.
    Read,
}

impl InstanceDesc {
    /// True when the heartbeat is recent enough and the state allows `op`.
    pub fn is_healthy(&self, op: Operation, now_ms: i64, heartbeat_timeout_ms: i64) -> bool {
        let fresh = heartbeat_timeout_ms <= 0 || now_ms - self.heartbeat_ms <= heartbeat_timeout_ms;
        let state_ok = match op {
            Operation::Write => self.state == InstanceState::Active,
            Operation::Read => {
                matches!(self.state, InstanceState::Active | InstanceState::Leaving)
            }
        };
        fresh && state_ok
    }
}

/// Why no replica set could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The ring has no tokens.
    #[error("empty ring")]
    Empty,
    /// Fewer healthy instances than a quorum.
    #[error("too many unhealthy instances in the ring: {healthy} healthy of {needed} needed")]
    TooManyUnhealthy {
        /// Healthy instances found among the replicas.
        healthy: usize,
        /// The quorum.
        needed: usize,
    },
}

/// The instances a key goes to, and how many of them may fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationSet {
    /// Healthy replicas, in ring order.
    pub instances: Vec<InstanceDesc>,
    /// Failures tolerated among `instances` while still reaching the quorum.
    pub max_errors: usize,
}

impl ReplicationSet {
    /// Acknowledgements needed.
    pub fn quorum(&self) -> usize {
        self.instances.len() - self.max_errors
    }
}

/// A ring built from a description at one moment.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    instances: Vec<InstanceDesc>,
    /// (token, index into `instances`), sorted by token.
    tokens: Vec<(u32, usize)>,
}

/// The quorum for a replication factor.
pub fn quorum(replication_factor: usize) -> usize {
    replication_factor / 2 + 1
}

impl Ring {
    /// Builds the ring from instances (any order).
    pub fn new(instances: impl IntoIterator<Item = InstanceDesc>) -> Ring {
        let mut instances: Vec<InstanceDesc> = instances.into_iter().collect();
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        let mut tokens: Vec<(u32, usize)> = instances
            .iter()
            .enumerate()
            .flat_map(|(i, d)| d.tokens.iter().map(move |&t| (t, i)))
            .collect();
        tokens.sort_unstable();
        Ring { instances, tokens }
    }

    /// The instances, by id.
    pub fn instances(&self) -> &[InstanceDesc] {
        &self.instances
    }

    /// The replicas of `key` for `op`: walking clockwise from `key`, the first
    /// `replication_factor` distinct instances; an unhealthy one (stale heartbeat, or a state
    /// that does not allow `op`) is skipped and the walk goes one instance further, as Loki
    /// extends the set. Fails when fewer than a quorum of healthy instances are found.
    pub fn get(
        &self,
        key: u32,
        replication_factor: usize,
        op: Operation,
        now_ms: i64,
        heartbeat_timeout_ms: i64,
    ) -> Result<ReplicationSet, RingError> {
        if self.tokens.is_empty() {
            return Err(RingError::Empty);
        }
        let rf = replication_factor.max(1).min(self.instances.len());
        let needed = quorum(rf);
        let start = self.tokens.partition_point(|&(t, _)| t < key);
        let mut seen: Vec<usize> = Vec::with_capacity(rf + 2);
        let mut healthy: Vec<InstanceDesc> = Vec::with_capacity(rf);
        let mut wanted = rf;
        for k in 0..self.tokens.len() {
            if seen.len() >= wanted {
                break;
            }
            let (_, i) = self.tokens[(start + k) % self.tokens.len()];
            if seen.contains(&i) {
                continue;
            }
            seen.push(i);
            let d = &self.instances[i];
            if d.is_healthy(op, now_ms, heartbeat_timeout_ms) {
                healthy.push(d.clone());
            } else if op == Operation::Write && d.state != InstanceState::Active {
                // JOINING / LEAVING / PENDING instances do not count: extend the set.
                wanted += 1;
            }
        }
        if healthy.len() < needed {
            return Err(RingError::TooManyUnhealthy { healthy: healthy.len(), needed });
        }
        healthy.truncate(rf);
        let max_errors = healthy.len() - needed;
        Ok(ReplicationSet { instances: healthy, max_errors })
    }

    /// Each instance's share of the token space (the ranges that end at its tokens), in
    /// `instances()` order; the shares sum to 1 when the ring has tokens.
    pub fn ownership(&self) -> Vec<f64> {
        let mut owned = vec![0u64; self.instances.len()];
        for (k, &(t, i)) in self.tokens.iter().enumerate() {
            let prev =
                if k == 0 { self.tokens[self.tokens.len() - 1].0 } else { self.tokens[k - 1].0 };
            let span =
                if self.tokens.len() == 1 { 1u64 << 32 } else { u64::from(t.wrapping_sub(prev)) };
            owned[i] += span;
        }
        owned.into_iter().map(|o| o as f64 / (1u64 << 32) as f64).collect()
    }

    /// Every instance healthy for `op` (queries fan out to all of them).
    pub fn healthy(
        &self,
        op: Operation,
        now_ms: i64,
        heartbeat_timeout_ms: i64,
    ) -> Vec<&InstanceDesc> {
        self.instances.iter().filter(|d| d.is_healthy(op, now_ms, heartbeat_timeout_ms)).collect()
    }
}

/// Milliseconds since the Unix epoch (heartbeats and health are judged in these).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// FNV-1a, 32 bits.
fn fnv1a32(mut h: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The ring key of a stream: FNV-1a over the tenant and the stream's label string, so that a
/// stream always lands on the same ingesters.
pub fn stream_key(tenant: &str, labels: &str) -> u32 {
    let h = fnv1a32(0x811c_9dc5, tenant.as_bytes());
    fnv1a32(h, labels.as_bytes())
}

/// `n` new tokens that no other instance owns, from a deterministic generator seeded with
/// `seed` (callers mix in the instance id and the time).
pub fn generate_tokens(n: usize, taken: &[u32], seed: u64) -> Vec<u32> {
    let mut state = seed;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u32
    };
    let mut used: std::collections::BTreeSet<u32> = taken.iter().copied().collect();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let t = next();
        if used.insert(t) {
            out.push(t);
        }
    }
    out.sort_unstable();
    out
}

/// The tokens of instance `id`: `n` tokens from a generator seeded with FNV-1a (64 bits) of
/// the id, skipping `taken`. The same id gets the same tokens in every process and after a
/// restart.
pub fn tokens_for(id: &str, n: usize, taken: &[u32]) -> Vec<u32> {
    let seed = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    generate_tokens(n, taken, seed)
}

/// The ring's shared description: instances by id (what gossip carries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingDesc {
    /// Instances by id.
    pub instances: BTreeMap<String, InstanceDesc>,
}

impl RingDesc {
    /// The ring at this moment.
    pub fn ring(&self) -> Ring {
        Ring::new(self.instances.values().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: &str, state: InstanceState, tokens: &[u32], hb: i64) -> InstanceDesc {
        InstanceDesc {
            id: id.into(),
            addr: format!("{id}:9095"),
            state,
            tokens: tokens.to_vec(),
            heartbeat_ms: hb,
        }
    }

    fn ids(set: &ReplicationSet) -> Vec<&str> {
        set.instances.iter().map(|d| d.id.as_str()).collect()
    }

    const NOW: i64 = 1_000_000;
    const TIMEOUT: i64 = 60_000;

    fn three() -> Ring {
        Ring::new([
            inst("a", InstanceState::Active, &[100, 400], NOW),
            inst("b", InstanceState::Active, &[200, 500], NOW),
            inst("c", InstanceState::Active, &[300, 600], NOW),
        ])
    }

    #[test]
    fn replicas_walk_clockwise_and_wrap() {
        let r = three();
        let s = r.get(150, 2, Operation::Write, NOW, TIMEOUT).unwrap();
        assert_eq!(ids(&s), vec!["b", "c"]);
        assert_eq!((s.quorum(), s.max_errors), (2, 0));
        let s = r.get(650, 3, Operation::Write, NOW, TIMEOUT).unwrap();
        assert_eq!(ids(&s), vec!["a", "b", "c"]);
        assert_eq!((s.quorum(), s.max_errors), (2, 1));
        // a key equal to a token belongs to that token's owner
        assert_eq!(ids(&r.get(300, 1, Operation::Write, NOW, TIMEOUT).unwrap()), vec!["c"]);
    }

    #[test]
    fn unhealthy_instances_are_skipped_until_the_quorum_fails() {
        let r = Ring::new([
            inst("a", InstanceState::Active, &[100], NOW),
            inst("b", InstanceState::Active, &[200], NOW - 2 * TIMEOUT), // stale
            inst("c", InstanceState::Active, &[300], NOW),
        ]);
        let s = r.get(150, 3, Operation::Write, NOW, TIMEOUT).unwrap();
        assert_eq!(ids(&s), vec!["c", "a"]);
        assert_eq!(s.max_errors, 0);
        let r = Ring::new([
            inst("a", InstanceState::Active, &[100], NOW),
            inst("b", InstanceState::Active, &[200], NOW - 2 * TIMEOUT),
            inst("c", InstanceState::Active, &[300], NOW - 2 * TIMEOUT),
        ]);
        assert_eq!(
            r.get(150, 3, Operation::Write, NOW, TIMEOUT),
            Err(RingError::TooManyUnhealthy { healthy: 1, needed: 2 })
        );
    }

    #[test]
    fn leaving_instances_take_reads_but_not_writes() {
        let r = Ring::new([
            inst("a", InstanceState::Active, &[100], NOW),
            inst("b", InstanceState::Leaving, &[200], NOW),
            inst("c", InstanceState::Active, &[300], NOW),
            inst("d", InstanceState::Active, &[400], NOW),
        ]);
        // the write set is extended past the LEAVING instance
        let s = r.get(150, 2, Operation::Write, NOW, TIMEOUT).unwrap();
        assert_eq!(ids(&s), vec!["c", "d"]);
        let s = r.get(150, 2, Operation::Read, NOW, TIMEOUT).unwrap();
        assert_eq!(ids(&s), vec!["b", "c"]);
        assert_eq!(r.healthy(Operation::Write, NOW, TIMEOUT).len(), 3);
    }

    #[test]
    fn ownership_sums_to_one() {
        let r = three();
        let o = r.ownership();
        assert!((o.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{o:?}");
        // a owns (600, 100] wrapping and (300, 400]
        let a = (u64::from(100u32.wrapping_sub(600)) + 100) as f64 / (1u64 << 32) as f64;
        assert!((o[0] - a).abs() < 1e-9);
        let one = Ring::new([inst("x", InstanceState::Active, &[5], NOW)]);
        assert_eq!(one.ownership(), vec![1.0]);
    }

    #[test]
    fn tokens_are_unique_and_keys_stable() {
        let a = generate_tokens(128, &[], 1);
        let b = generate_tokens(128, &a, 2);
        assert_eq!(a.len(), 128);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(b.iter().all(|t| !a.contains(t)));
        assert_eq!(generate_tokens(8, &[], 7), generate_tokens(8, &[], 7));
        assert_eq!(stream_key("t", r#"{a="b"}"#), stream_key("t", r#"{a="b"}"#));
        assert_ne!(stream_key("t", r#"{a="b"}"#), stream_key("u", r#"{a="b"}"#));
        // FNV-1a reference value for "a"
        assert_eq!(fnv1a32(0x811c_9dc5, b"a"), 0xe40c_292c);
    }

    #[test]
    fn keys_spread_over_instances() {
        let instances: Vec<InstanceDesc> = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, id)| {
                inst(id, InstanceState::Active, &generate_tokens(128, &[], i as u64 + 1), NOW)
            })
            .collect();
        let r = Ring::new(instances);
        let mut owned = BTreeMap::new();
        for s in 0..3000 {
            let key = stream_key("tenant", &format!("{{stream=\"{s}\"}}"));
            let set = r.get(key, 1, Operation::Write, NOW, TIMEOUT).unwrap();
            *owned.entry(set.instances[0].id.clone()).or_insert(0) += 1;
        }
        for (id, n) in &owned {
            assert!((700..1300).contains(n), "{id} owns {n} of 3000");
        }
    }
}
