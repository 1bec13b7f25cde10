//! The querier module: the query path over the store and, when there is one, the ingesters.

use std::sync::Arc;

use anyhow::Context;
use skald_querier::Querier;

use super::Modules;

/// Builds the querier over the stores and the ingester client.
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
    // As in Loki, the delete API exists only with `compactor.retention_enabled: true`
    // (without it Loki answers 404 on /loki/api/v1/delete).
    if let Some(deletes) = delete_config(&config.compactor) {
        let metrics = skald_deletes::DeleteMetrics::new();
        metrics.register(&m.registry).context("cannot register the deletion metrics")?;
        querier = querier.with_deletes(deletes, metrics);
    }
    m.querier = Some(Arc::new(querier));
    Ok(())
}

/// The delete API's keys of Loki's `compactor` block (`delete_request_cancel_period`,
/// `delete_max_interval`), or `None` without `retention_enabled: true` (`delete_request_store`
/// is accepted: requests live in the chunks' bucket).
fn delete_config(
    compactor: &skald_compactor::CompactorConfig,
) -> Option<skald_deletes::DeleteConfig> {
    compactor.retention_enabled.then_some(skald_deletes::DeleteConfig {
        delete_request_cancel_period: compactor.delete_request_cancel_period,
        delete_max_interval: compactor.delete_max_interval,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reads_the_delete_keys_of_the_compactor_block() {
        let on = skald_compactor::CompactorConfig {
            retention_enabled: true,
            delete_request_cancel_period: Duration::from_secs(10),
            delete_max_interval: Duration::from_secs(3600),
            ..Default::default()
        };
        let c = delete_config(&on).unwrap();
        assert_eq!(c.delete_request_cancel_period, Duration::from_secs(10));
        assert_eq!(c.delete_max_interval, Duration::from_secs(3600));
        // no delete API without retention, as in Loki
        assert_eq!(delete_config(&skald_compactor::CompactorConfig::default()), None);
    }
}
