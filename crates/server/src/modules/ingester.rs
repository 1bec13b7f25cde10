//! The ingester module, and its life in the gossiped ring: JOINING while the WAL replays,
//! ACTIVE (with heartbeats) once it serves, LEAVING before its final flush.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use skald_ingester::Ingester;
use skald_ring::membership::Membership;
use skald_ring::{now_ms, InstanceDesc, InstanceState};

use super::Modules;

/// Builds the ingester, joins the ring as JOINING (with `memberlist`), replays the WAL and
/// starts the flush loop. Nothing listens yet: the process is ready only after the replay.
pub async fn init_ingester(m: &mut Modules) -> anyhow::Result<()> {
    let (cs, is) = m.stores("ingester")?;
    let config = &m.config;
    let ing =
        Ingester::new(config.ingester.clone(), config.limits_config.clone(), cs, is, &m.registry);
    if let Some(mcfg) = &m.memberlist {
        // Join as JOINING: distributors send no writes until the WAL is replayed.
        let host =
            config.common.instance_addr.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| {
                match config.server.grpc_listen_address.as_str() {
                    "" | "0.0.0.0" => "127.0.0.1".to_string(),
                    other => other.to_string(),
                }
            });
        let entry = InstanceDesc {
            id: mcfg.node_name.clone(),
            addr: format!("{host}:{}", config.server.grpc_listen_port),
            state: InstanceState::Joining,
            tokens: lifecycler_tokens(&config.ingester.lifecycler, &mcfg.node_name)?,
            heartbeat_ms: now_ms(),
        };
        let membership =
            Membership::join(mcfg.clone(), Some(&entry)).await.map_err(anyhow::Error::msg)?;
        tracing::info!(id = %entry.id, addr = %entry.addr, "joined the ring (JOINING)");
        m.membership = Some(Arc::new(membership));
        m.ring_entry = Some(entry);
    }
    // Replay before anything listens: the process is ready only after this.
    ing.open_wal(&config.wal_dir()).await.map_err(anyhow::Error::msg)?;
    m.ingester_task = Some(tokio::spawn(ing.clone().run(m.shutdown.clone())));
    m.ingester = Some(ing);
    Ok(())
}

/// The WAL is replayed and gRPC listens: the ring entry turns ACTIVE (writes come) and
/// heartbeats until shutdown.
pub async fn activate_in_ring(m: &mut Modules) -> anyhow::Result<()> {
    let (Some(membership), Some(entry)) = (&m.membership, m.ring_entry.as_mut()) else {
        return Ok(());
    };
    entry.state = InstanceState::Active;
    entry.heartbeat_ms = now_ms();
    membership.publish(entry).await.map_err(anyhow::Error::msg)?;
    tracing::info!("ring entry set to ACTIVE");
    let (membership, mut entry, mut rx) = (membership.clone(), entry.clone(), m.shutdown.clone());
    let period = m.config.ingester.lifecycler.heartbeat_period.max(Duration::from_millis(100));
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
                changed = rx.changed() => {
                    if changed.is_err() || *rx.borrow() {
                        break;
                    }
                }
            }
        }
    });
    Ok(())
}

/// Announces LEAVING, before the ingester flushes or checkpoints.
pub async fn leave_ring(m: &Modules) {
    if let (Some(membership), Some(mut entry)) = (&m.membership, m.ring_entry.clone()) {
        entry.state = InstanceState::Leaving;
        entry.heartbeat_ms = now_ms();
        let _ = membership.publish(&entry).await;
        tracing::info!("ring entry set to LEAVING");
    }
}

/// Lets the LEAVING entry reach the other members before this one goes silent: they forget
/// an instance that left cleanly, and keep (as unhealthy) one that just vanished.
pub async fn linger_in_ring(m: &Modules) {
    if let (Some(_), Some(mcfg), true) = (&m.membership, &m.memberlist, m.ring_entry.is_some()) {
        let linger =
            (mcfg.gossip_interval * 5).clamp(Duration::from_millis(300), Duration::from_secs(3));
        tokio::time::sleep(linger).await;
    }
}

/// The ingester's ring tokens: from `tokens_file_path` when it holds them, otherwise derived
/// from the instance id (so they are the same after a restart), and saved there when set.
fn lifecycler_tokens(l: &skald_ingester::LifecyclerConfig, id: &str) -> anyhow::Result<Vec<u32>> {
    if !l.tokens_file_path.is_empty() {
        if let Ok(text) = std::fs::read_to_string(&l.tokens_file_path) {
            if let Ok(tokens) = serde_json::from_str::<Vec<u32>>(&text) {
                if !tokens.is_empty() {
                    return Ok(tokens);
                }
            }
        }
    }
    let tokens = skald_ring::tokens_for(id, l.num_tokens.max(1), &[]);
    if !l.tokens_file_path.is_empty() {
        std::fs::write(&l.tokens_file_path, serde_json::to_string(&tokens)?)
            .with_context(|| format!("cannot write {}", l.tokens_file_path))?;
    }
    Ok(tokens)
}
