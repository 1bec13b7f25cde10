//! The compactor module: retention and index compaction over the store.

use std::sync::Arc;

use super::Modules;

/// Starts the compactor's loop. Until per-tenant overrides exist, every tenant's retention is
/// the global `limits_config`.
pub fn init_compactor(m: &mut Modules) -> anyhow::Result<()> {
    let (chunk_store, index_store) = m.stores("compactor")?;
    let global = Arc::new(m.config.limits_config.clone());
    let limits: skald_compactor::TenantLimits = Arc::new(move |_tenant: &str| global.clone());
    let compactor = skald_compactor::Compactor::new(
        m.config.compactor.clone(),
        chunk_store,
        index_store,
        limits,
        &m.registry,
    )
    .map_err(|e| anyhow::anyhow!("compactor: {e}"))?;
    tracing::info!(
        interval = ?m.config.compactor.compaction_interval,
        retention_enabled = m.config.compactor.retention_enabled,
        "compactor started"
    );
    m.compactor_task = Some(tokio::spawn(compactor.run(m.shutdown.clone())));
    Ok(())
}
