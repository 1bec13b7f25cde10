//! The querier module: the query path over the store and, when there is one, the ingesters.

use std::sync::Arc;

use skald_querier::Querier;

use super::Modules;

/// Builds the querier over the stores and the ingester client; with
/// `compactor.retention_enabled` it hides the lines of the delete requests (which the
/// compactor applies; the querier reads them from the same store).
pub fn init_querier(m: &mut Modules) -> anyhow::Result<()> {
    let (cs, is) = m.stores("querier")?;
    let config = &m.config;
    let mut querier = Querier::new(
        config.querier.clone(),
        m.runtime.overrides.clone(),
        cs,
        is,
        m.ingester_client.clone(),
    )
    .with_pattern_ingester(config.pattern_ingester.clone());
    if let Some(deletes) = super::deletes::delete_service(m, "querier")? {
        querier = querier.with_deletes(deletes);
    }
    m.querier = Some(Arc::new(querier));
    Ok(())
}
