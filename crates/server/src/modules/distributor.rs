//! The distributor module: the push path, and the object store of the Elasticsearch
//! templates it serves.

use std::sync::Arc;

use anyhow::Context;
use skald_distributor::Distributor;

use super::Modules;
use skald_distributor::elastic::objects::EsObjects;

/// Builds the distributor over the ingester client and, when the Elasticsearch API is on,
/// the store of the tenants' templates (kept with their chunks: a distributor alone opens
/// the object store for them).
pub fn init_distributor(m: &mut Modules) -> anyhow::Result<()> {
    let client = m.ingester_client.clone().context("the distributor needs an ingester client")?;
    let config = &m.config;
    let distributor = Distributor::new(
        config.distributor.clone(),
        m.runtime.overrides.clone(),
        client,
        &m.registry,
    )
    .context("cannot register distributor metrics")?;
    m.distributor = Some(Arc::new(distributor));
    let es = &config.distributor.elasticsearch;
    if es.enabled {
        let cs = match &m.chunk_store {
            Some(cs) => cs.clone(),
            None => crate::storage::build_chunk_store(config)?,
        };
        m.es_objects = Some(Arc::new(EsObjects::new(cs, es.max_templates_per_tenant)));
    }
    Ok(())
}
