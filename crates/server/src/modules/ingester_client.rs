//! The ingester-client module: how the distributor and the querier reach the ingesters.

use std::sync::Arc;

use anyhow::Context;
use skald_proto::ingester::{GrpcIngesterClient, IngesterClient};
use skald_proto::ServiceError;
use skald_ring::membership::Membership;
use skald_ring::replicated::{GossipIngesters, ReplicatedIngesters};

use super::Modules;

/// In-process when the ingester runs here; otherwise over gRPC to the ingesters the gossiped
/// ring names (`memberlist`) or to the configured `ingester_client.addresses`.
pub async fn init_ingester_client(m: &mut Modules) -> anyhow::Result<()> {
    let client = match &m.ingester {
        Some(ing) => Arc::new(ing.clone()) as IngesterClient,
        None if m.config.ingester_client.addresses.is_empty() && m.memberlist.is_some() => {
            gossip_client(m).await?
        }
        None => static_client(m)?,
    };
    m.ingester_client = Some(client);
    Ok(())
}

/// Joins the gossip (without a ring entry) and sends to the ingesters it announces.
async fn gossip_client(m: &mut Modules) -> anyhow::Result<IngesterClient> {
    let config = &m.config;
    let mcfg = m.memberlist.clone().context("memberlist")?;
    let membership = Arc::new(Membership::join(mcfg, None).await.map_err(anyhow::Error::msg)?);
    m.membership = Some(membership.clone());
    let metrics = m.ingester_client_metrics.clone();
    let connect = Box::new(move |addr: &str| -> Result<IngesterClient, ServiceError> {
        let url = format!("http://{addr}");
        Ok(metrics.wrap(addr, Arc::new(GrpcIngesterClient::connect_lazy(&url)?) as IngesterClient))
    });
    let timeout = config.ingester.lifecycler.ring.heartbeat_timeout.as_millis() as i64;
    tracing::info!(
        replication_factor = config.common.replication_factor,
        "ingester ring from gossip"
    );
    Ok(Arc::new(GossipIngesters::new(
        membership,
        connect,
        config.common.replication_factor,
        timeout,
    )) as IngesterClient)
}

/// One ingester, or a replicated ring over the configured addresses.
fn static_client(m: &Modules) -> anyhow::Result<IngesterClient> {
    let addrs = &m.config.ingester_client.addresses;
    if addrs.is_empty() {
        anyhow::bail!(
            "ingester_client.addresses (or memberlist.join_members) must name the ingesters when they run in other processes"
        );
    }
    let mut members = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let url = if addr.starts_with("http") { addr.clone() } else { format!("http://{addr}") };
        let client = Arc::new(GrpcIngesterClient::connect_lazy(&url)?) as IngesterClient;
        let client = m.ingester_client_metrics.wrap(addr, client);
        members.push((addr.clone(), client));
    }
    if let [(_, only)] = members.as_slice() {
        return Ok(only.clone());
    }
    let rf = m.config.common.replication_factor;
    tracing::info!(ingesters = members.len(), replication_factor = rf, "static ingester ring");
    Ok(Arc::new(ReplicatedIngesters::new(members, rf)) as IngesterClient)
}
