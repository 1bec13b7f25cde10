//! An ingester's life in the gossiped ring, as Loki's lifecycler: it joins as JOINING (no
//! writes come while its WAL replays), turns ACTIVE and heartbeats once it serves, announces
//! LEAVING before its final flush, and lingers so the others see it leave cleanly. Its tokens
//! come back the same after a restart: kept in a tokens file, or derived from its id.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::membership::{Membership, MembershipConfig, MembershipError};
use crate::{now_ms, tokens_for, InstanceDesc, InstanceState};

/// Why the tokens could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The tokens file cannot be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The tokens file.
        path: String,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The tokens cannot be encoded.
    #[error("{0}")]
    Encode(serde_json::Error),
}

/// The ring tokens of instance `id`: from `tokens_file_path` when it holds them, otherwise
/// derived from the id (so they are the same after a restart), and saved there when set.
pub fn load_tokens(
    tokens_file_path: &str,
    id: &str,
    num_tokens: usize,
) -> Result<Vec<u32>, TokensError> {
    if !tokens_file_path.is_empty() {
        if let Ok(text) = std::fs::read_to_string(tokens_file_path) {
            if let Ok(tokens) = serde_json::from_str::<Vec<u32>>(&text) {
                if !tokens.is_empty() {
                    return Ok(tokens);
                }
            }
        }
    }
    let tokens = tokens_for(id, num_tokens.max(1), &[]);
    if !tokens_file_path.is_empty() {
        let text = serde_json::to_string(&tokens).map_err(TokensError::Encode)?;
        std::fs::write(tokens_file_path, text)
            .map_err(|error| TokensError::Write { path: tokens_file_path.to_string(), error })?;
    }
    Ok(tokens)
}

/// This instance's entry in the gossiped ring, and the membership that carries it.
pub struct Lifecycler {
    membership: Arc<Membership>,
    entry: InstanceDesc,
    linger: Duration,
}

impl Lifecycler {
    /// Joins the gossip as `config.node_name`, reachable at `addr`, owning `tokens`, in state
    /// JOINING.
    pub async fn join(
        config: MembershipConfig,
        addr: String,
        tokens: Vec<u32>,
    ) -> Result<Lifecycler, MembershipError> {
        let entry = InstanceDesc {
            id: config.node_name.clone(),
            addr,
            state: InstanceState::Joining,
            tokens,
            heartbeat_ms: now_ms(),
        };
        let linger =
            (config.gossip_interval * 5).clamp(Duration::from_millis(300), Duration::from_secs(3));
        let membership = Membership::join(config, Some(&entry)).await?;
        tracing::info!(id = %entry.id, addr = %entry.addr, "joined the ring (JOINING)");
        Ok(Lifecycler { membership: Arc::new(membership), entry, linger })
    }

    /// The gossip membership (it also shows the whole ring).
    pub fn membership(&self) -> &Arc<Membership> {
        &self.membership
    }

    /// This instance's entry as last published.
    pub fn entry(&self) -> &InstanceDesc {
        &self.entry
    }

    /// Turns the entry ACTIVE (writes come) and heartbeats it every `heartbeat_period` (at
    /// least 100 ms) until `shutdown` turns `true` or its sender goes.
    pub async fn activate(
        &mut self,
        heartbeat_period: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), MembershipError> {
        self.entry.state = InstanceState::Active;
        self.entry.heartbeat_ms = now_ms();
        self.membership.publish(&self.entry).await?;
        tracing::info!("ring entry set to ACTIVE");
        let (membership, mut entry) = (self.membership.clone(), self.entry.clone());
        let period = heartbeat_period.max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        entry.heartbeat_ms = now_ms();
                        if let Err(error) = membership.publish(&entry).await {
                            tracing::warn!(%error, "ring heartbeat failed");
                        }
                    }
                    changed = shutdown.changed() => {
                        if changed.is_err() || *shutdown.borrow() {
                            break;
                        }
                    }
                }
            }
        });
        Ok(())
    }

    /// Announces LEAVING: before the ingester flushes or checkpoints.
    pub async fn leave(&self) {
        let mut entry = self.entry.clone();
        entry.state = InstanceState::Leaving;
        entry.heartbeat_ms = now_ms();
        let _ = self.membership.publish(&entry).await;
        tracing::info!("ring entry set to LEAVING");
    }

    /// Lets the LEAVING entry reach the other members before this one goes silent (five
    /// gossip intervals, 300 ms to 3 s): they forget an instance that left cleanly, and keep
    /// (as unhealthy) one that just vanished.
    pub async fn linger(&self) {
        tokio::time::sleep(self.linger).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("skald-ring-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("tokens")
    }

    #[test]
    fn tokens_are_derived_from_the_id_and_kept_in_the_file() {
        let path = temp_file("tokens");
        let p = path.to_str().unwrap();
        let derived = load_tokens("", "ingester-1", 4).unwrap();
        assert_eq!(derived.len(), 4);
        assert_eq!(derived, load_tokens("", "ingester-1", 4).unwrap());
        // saved when a file is set, and read back from it (even under another id)
        assert_eq!(load_tokens(p, "ingester-1", 4).unwrap(), derived);
        let saved: Vec<u32> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(saved, derived);
        assert_eq!(load_tokens(p, "other", 4).unwrap(), derived);
        // at least one token
        assert_eq!(load_tokens("", "x", 0).unwrap().len(), 1);
    }

    #[test]
    fn an_unwritable_tokens_file_names_the_path() {
        let path = temp_file("unwritable").join("missing-dir").join("tokens");
        let err = load_tokens(path.to_str().unwrap(), "i", 2).unwrap_err();
        assert!(err.to_string().starts_with(&format!("cannot write {}: ", path.display())));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_entry_goes_joining_active_leaving() {
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = MembershipConfig {
            node_name: "ingester-0".to_string(),
            bind: ([127, 0, 0, 1], port).into(),
            advertise: ([127, 0, 0, 1], port).into(),
            join_members: vec![],
            cluster_label: "skald-test".to_string(),
            gossip_interval: Duration::from_millis(100),
            dead_after: Duration::from_secs(2),
        };
        let mut l = Lifecycler::join(config, "127.0.0.1:9095".into(), vec![1, 2]).await.unwrap();
        let state = |l: &Lifecycler| {
            let m = l.membership().clone();
            async move { m.ring_desc().await.instances["ingester-0"].state }
        };
        assert_eq!(state(&l).await, InstanceState::Joining);
        let (tx, rx) = watch::channel(false);
        l.activate(Duration::from_secs(5), rx).await.unwrap();
        assert_eq!(state(&l).await, InstanceState::Active);
        assert_eq!(l.entry().state, InstanceState::Active);
        l.leave().await;
        assert_eq!(state(&l).await, InstanceState::Leaving);
        let _ = tx.send(true);
        assert_eq!(l.linger, Duration::from_millis(500));
    }
}
