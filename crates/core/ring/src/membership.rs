//! Gossip membership over UDP with the `chitchat` crate (as Quickwit uses it), configured like
//! Loki's `memberlist` block: a node name, a bind address and port, and `join_members` seeds.
//! Every member publishes its ring entry (an [`InstanceDesc`] as JSON under [`RING_KEY`]);
//! every member reads the ring from the members' entries.
//!
//! An instance stays in the ring a member sees until it leaves cleanly (its last entry says
//! LEAVING and it is gone from the live members), as in Loki: one that died keeps its place,
//! unhealthy once its heartbeat is older than the timeout, so it still counts towards the
//! replication factor and a write cannot reach a quorum with fewer live replicas than that.

use std::net::SocketAddr;
use std::time::Duration;

use chitchat::transport::UdpTransport;
use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};

use crate::{InstanceDesc, RingDesc};

/// The key under which an ingester publishes its ring entry.
pub const RING_KEY: &str = "ingester_ring";

/// Loki's `memberlist` settings that apply here.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// This member's name (Loki's `node_name`; default the hostname).
    pub node_name: String,
    /// Where to listen for gossip (`bind_addr:bind_port`).
    pub bind: SocketAddr,
    /// Where the others reach this member (`advertise_addr:bind_port`).
    pub advertise: SocketAddr,
    /// Seeds (`host:port`) to join through.
    pub join_members: Vec<String>,
    /// Cluster name: members of other clusters are ignored.
    pub cluster_label: String,
    /// How often to gossip.
    pub gossip_interval: Duration,
    /// How long a member may be silent before it is considered dead.
    pub dead_after: Duration,
}

/// Why gossip could not start, publish or stop.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The ring entry cannot be encoded.
    #[error("{0}")]
    Encode(#[from] serde_json::Error),
    /// The gossip socket cannot be opened.
    #[error("cannot start gossip on {bind}: {reason}")]
    Start {
        /// The address it should listen on.
        bind: std::net::SocketAddr,
        /// What chitchat said.
        reason: String,
    },
    /// Chitchat did not shut down cleanly.
    #[error("{0}")]
    Shutdown(String),
}

/// A gossip member as this one sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name (`memberlist.node_name`).
    pub name: String,
    /// Where it gossips.
    pub addr: SocketAddr,
    /// Its incarnation (the start time, in nanoseconds, of the process behind it).
    pub generation: u64,
    /// Whether the failure detector holds it alive.
    pub live: bool,
}

/// The gossiped ring as a key-value entry (see [`Membership::ring_store`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingStore {
    /// The ring.
    pub desc: RingDesc,
    /// Sum of the gossip versions of the members' ring entries.
    pub version: u64,
    /// The newest heartbeat in the ring, milliseconds since the Unix epoch.
    pub updated_ms: i64,
}

/// A running gossip member.
pub struct Membership {
    handle: ChitchatHandle,
    /// Every instance seen and not yet gone cleanly, by id, with its newest entry.
    known: parking_lot::Mutex<std::collections::BTreeMap<String, InstanceDesc>>,
}

fn generation() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Membership {
    /// Starts gossiping; `entry` is this member's ring entry, if it is an ingester.
    pub async fn join(
        config: MembershipConfig,
        entry: Option<&InstanceDesc>,
    ) -> Result<Membership, MembershipError> {
        let failure_detector_config = FailureDetectorConfig {
            initial_interval: config.gossip_interval,
            max_interval: config.dead_after,
            dead_node_grace_period: config.dead_after * 10,
            ..FailureDetectorConfig::default()
        };
        let chitchat_config = ChitchatConfig {
            chitchat_id: ChitchatId::new(config.node_name.clone(), generation(), config.advertise),
            cluster_id: config.cluster_label.clone(),
            gossip_interval: config.gossip_interval,
            listen_addr: config.bind,
            seed_nodes: config.join_members.clone(),
            failure_detector_config,
            marked_for_deletion_grace_period: config.dead_after * 10,
            catchup_callback: None,
            extra_liveness_predicate: None,
        };
        let mut initial = Vec::new();
        if let Some(e) = entry {
            let json = serde_json::to_string(e)?;
            initial.push((RING_KEY.to_string(), json));
        }
        let handle = spawn_chitchat(chitchat_config, initial, &UdpTransport)
            .await
            .map_err(|e| MembershipError::Start { bind: config.bind, reason: e.to_string() })?;
        Ok(Membership { handle, known: parking_lot::Mutex::new(Default::default()) })
    }

    /// Publishes (or replaces) this member's ring entry: state changes and heartbeats.
    pub async fn publish(&self, entry: &InstanceDesc) -> Result<(), MembershipError> {
        let json = serde_json::to_string(entry)?;
        self.handle.with_chitchat(|c| c.self_node_state().set(RING_KEY, &json)).await;
        Ok(())
    }

    /// The names of the live members, this one included.
    pub async fn live_members(&self) -> Vec<String> {
        self.handle
            .with_chitchat(|c| c.live_nodes().map(|id| id.node_id.clone()).collect::<Vec<_>>())
            .await
    }

    /// Every member this one knows of, live or dead, sorted by name (`/memberlist`).
    pub async fn members(&self) -> Vec<Member> {
        let mut out = self
            .handle
            .with_chitchat(|c| {
                let member = |id: &ChitchatId, live: bool| Member {
                    name: id.node_id.clone(),
                    addr: id.gossip_advertise_addr,
                    generation: id.generation_id,
                    live,
                };
                let mut v: Vec<Member> = c.live_nodes().map(|id| member(id, true)).collect();
                v.extend(c.dead_nodes().map(|id| member(id, false)));
                v
            })
            .await;
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.generation.cmp(&b.generation)));
        out
    }

    /// The ring: the newest entry of every instance seen (live or dead members), minus those
    /// that left cleanly. Entries that do not parse are skipped.
    pub async fn ring_desc(&self) -> RingDesc {
        let (live, dead) = self
            .handle
            .with_chitchat(|c| {
                let entry = |id: &ChitchatId| {
                    c.node_state(id)
                        .and_then(|s| s.get(RING_KEY))
                        .and_then(|v| serde_json::from_str::<InstanceDesc>(v).ok())
                };
                let live: Vec<InstanceDesc> = c.live_nodes().filter_map(entry).collect();
                let dead: Vec<InstanceDesc> = c.dead_nodes().filter_map(entry).collect();
                (live, dead)
            })
            .await;
        let mut known = self.known.lock();
        for e in dead.into_iter().chain(live.iter().cloned()) {
            match known.get(&e.id) {
                Some(k) if k.heartbeat_ms > e.heartbeat_ms => {}
                _ => {
                    known.insert(e.id.clone(), e);
                }
            }
        }
        let live_ids: std::collections::HashSet<&str> =
            live.iter().map(|e| e.id.as_str()).collect();
        known.retain(|id, e| {
            live_ids.contains(id.as_str()) || e.state != crate::InstanceState::Leaving
        });
        RingDesc { instances: known.clone() }
    }

    /// The gossiped ring as one key-value entry (`/memberlist`'s KV store): the ring, the sum
    /// of the gossip versions of every member's ring entry (it grows with each update this
    /// member receives or makes), and the newest heartbeat in it. `None` when no member
    /// publishes a ring entry (a cluster without ingesters).
    pub async fn ring_store(&self) -> Option<RingStore> {
        let version = self
            .handle
            .with_chitchat(|c| {
                let ids: Vec<ChitchatId> = c.live_nodes().chain(c.dead_nodes()).cloned().collect();
                ids.iter()
                    .filter_map(|id| c.node_state(id).and_then(|s| s.get_versioned(RING_KEY)))
                    .map(|v| v.version)
                    .sum::<u64>()
            })
            .await;
        let desc = self.ring_desc().await;
        if desc.instances.is_empty() && version == 0 {
            return None;
        }
        let updated_ms = desc.instances.values().map(|e| e.heartbeat_ms).max().unwrap_or(0);
        Some(RingStore { desc, version, updated_ms })
    }

    /// Stops gossiping.
    pub async fn leave(self) -> Result<(), MembershipError> {
        self.handle.shutdown().await.map_err(|e| MembershipError::Shutdown(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::InstanceState;

    fn free_udp_port() -> u16 {
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    fn entry(id: &str, state: InstanceState) -> InstanceDesc {
        InstanceDesc {
            id: id.to_string(),
            addr: format!("{id}:9095"),
            state,
            tokens: crate::generate_tokens(4, &[], id.len() as u64),
            heartbeat_ms: 1,
        }
    }

    async fn wait_for<F, Fut>(what: &str, mut cond: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < deadline {
            if cond().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_discover_each_other_and_see_state_changes_and_departures() {
        let ports: Vec<u16> = (0..3).map(|_| free_udp_port()).collect();
        let seed = format!("127.0.0.1:{}", ports[0]);
        let mut members = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let config = MembershipConfig {
                node_name: format!("ingester-{i}"),
                bind: ([127, 0, 0, 1], *port).into(),
                advertise: ([127, 0, 0, 1], *port).into(),
                join_members: if i == 0 { vec![] } else { vec![seed.clone()] },
                cluster_label: "skald-test".to_string(),
                gossip_interval: Duration::from_millis(100),
                dead_after: Duration::from_secs(2),
            };
            let e = entry(&format!("ingester-{i}"), InstanceState::Joining);
            members.push(Membership::join(config, Some(&e)).await.unwrap());
        }
        // everyone sees the three entries
        for m in &members {
            wait_for("3 ring entries", || async { m.ring_desc().await.instances.len() == 3 }).await;
        }
        // a state change travels
        members[1].publish(&entry("ingester-1", InstanceState::Active)).await.unwrap();
        wait_for("ACTIVE seen by member 2", || async {
            members[2].ring_desc().await.instances["ingester-1"].state == InstanceState::Active
        })
        .await;
        // a member that dies (no LEAVING) keeps its place in the others' ring
        let dead = members.pop().unwrap();
        dead.leave().await.unwrap();
        wait_for("member 2 dead", || async { members[0].live_members().await.len() == 2 }).await;
        let ring = members[0].ring_desc().await;
        assert!(ring.instances.contains_key("ingester-2"), "{ring:?}");
        // `/memberlist` lists the dead member too, sorted by name, with its address
        let listed: Vec<(String, u16, bool)> = members[0]
            .members()
            .await
            .into_iter()
            .map(|m| (m.name, m.addr.port(), m.live))
            .collect();
        let want: Vec<(String, u16, bool)> =
            (0..3).map(|i| (format!("ingester-{i}"), ports[i], i != 2)).collect();
        assert_eq!(listed, want);
        // one that announces LEAVING and then goes drops out of it
        members[1].publish(&entry("ingester-1", InstanceState::Leaving)).await.unwrap();
        wait_for("LEAVING seen by member 0", || async {
            members[0].ring_desc().await.instances["ingester-1"].state == InstanceState::Leaving
        })
        .await;
        let leaving = members.pop().unwrap();
        leaving.leave().await.unwrap();
        wait_for("member 1 gone", || async {
            !members[0].ring_desc().await.instances.contains_key("ingester-1")
        })
        .await;
        assert!(members[0].ring_desc().await.instances.contains_key("ingester-2"));
    }
}
