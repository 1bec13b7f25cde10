//! The ingester module, and its life in the gossiped ring (a `skald_ring` [`Lifecycler`]):
//! JOINING while the WAL replays, ACTIVE (with heartbeats) once it serves, LEAVING before its
//! final flush.

use skald_ingester::Ingester;
use skald_ring::lifecycler::{load_tokens, Lifecycler};

use super::Modules;

/// Builds the ingester, joins the ring as JOINING (with `memberlist`), replays the WAL and
/// starts the flush loop. Nothing listens yet: the process is ready only after the replay.
pub async fn init_ingester(m: &mut Modules) -> anyhow::Result<()> {
    let (cs, is) = m.stores("ingester")?;
    let config = &m.config;
    // the ingester knows the replication factor (`common.replication_factor` when its own
    // ring does not set one): with replicas, a chunk another one uploaded is not uploaded again
    let mut ingester_config = config.ingester.clone();
    ingester_config
        .lifecycler
        .ring
        .replication_factor
        .get_or_insert(config.common.replication_factor);
    let ing = Ingester::new(ingester_config, m.runtime.overrides.clone(), cs, is, &m.registry);
    if let Some(mcfg) = &m.memberlist {
        // Join as JOINING: distributors send no writes until the WAL is replayed.
        let host =
            config.common.instance_addr.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| {
                match config.server.grpc_listen_address.as_str() {
                    "" | "0.0.0.0" => "127.0.0.1".to_string(),
                    other => other.to_string(),
                }
            });
        let l = &config.ingester.lifecycler;
        let tokens = load_tokens(&l.tokens_file_path, &mcfg.node_name, l.num_tokens)?;
        let addr = format!("{host}:{}", config.server.grpc_listen_port);
        let lifecycler =
            Lifecycler::join(mcfg.clone(), addr, tokens).await.map_err(anyhow::Error::msg)?;
        m.membership = Some(lifecycler.membership().clone());
        m.lifecycler = Some(lifecycler);
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
    let Some(lifecycler) = m.lifecycler.as_mut() else { return Ok(()) };
    let period = m.config.ingester.lifecycler.heartbeat_period;
    lifecycler.activate(period, m.shutdown.clone()).await.map_err(anyhow::Error::msg)
}

/// Announces LEAVING, before the ingester flushes or checkpoints.
pub async fn leave_ring(m: &Modules) {
    if let Some(lifecycler) = &m.lifecycler {
        lifecycler.leave().await;
    }
}

/// Lets the LEAVING entry reach the other members before this one goes silent.
pub async fn linger_in_ring(m: &Modules) {
    if let Some(lifecycler) = &m.lifecycler {
        lifecycler.linger().await;
    }
}
