//! The compactor module: retention and index compaction over the store.

use std::sync::Arc;

use super::Modules;

/// Starts the compactor's loop: each tenant's retention from its limits (`limits_config` and
/// the runtime overrides); with `retention_enabled`, the compactor owns the delete API (served
/// over HTTP by this process, as Loki's compactor serves it) and each tenant's pass starts
/// with the deletion pass of its delete requests. Queriers of other processes read the same
/// requests from the store to hide their lines.
pub fn init_compactor(m: &mut Modules) -> anyhow::Result<()> {
    let (chunk_store, index_store) = m.stores("compactor")?;
    let limits: skald_compactor::TenantLimits = m.runtime.overrides.as_fn();
    let compactor = skald_compactor::Compactor::new(
        m.config.compactor.clone(),
        chunk_store,
        index_store,
        limits,
        &m.registry,
    )
    .map_err(|e| anyhow::anyhow!("compactor: {e}"))?;
    // one compactor per index: with DynamoDB tables, per table prefix (deployments sharing a
    // bucket keep their index in tables of their own prefix)
    let dynamo_prefix = m
        .config
        .schema_config
        .configs
        .iter()
        .rev()
        .find(|p| crate::storage::is_dynamo_store(&p.store))
        .map(crate::storage::index_prefix);
    let compactor =
        compactor.with_lease_path(skald_compactor::lease::lease_path(dynamo_prefix.as_deref()));
    if let Some(d) = super::deletes::delete_service(m, "compactor")? {
        let hook: skald_compactor::TenantHook = Arc::new(move |tenant: String| {
            let d = d.clone();
            Box::pin(async move {
                // the pass logs its counts and failures itself; a failure is retried next pass
                let _ = d.process(&tenant).await;
            })
        });
        return start(m, compactor.with_tenant_hook(hook));
    }
    start(m, compactor)
}

fn start(m: &mut Modules, compactor: skald_compactor::Compactor) -> anyhow::Result<()> {
    tracing::info!(
        interval = ?m.config.compactor.compaction_interval,
        retention_enabled = m.config.compactor.retention_enabled,
        "compactor started"
    );
    m.compactor_task = Some(tokio::spawn(compactor.run(m.shutdown.clone())));
    Ok(())
}
