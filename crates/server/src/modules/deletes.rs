//! The delete API's service (`skald_deletes::DeleteService`), shared by the querier (which
//! hides the requests' lines) and the compactor (which serves the API, as Loki's does, and
//! applies the requests each pass). Built once per process, by whichever needs it first.

use std::sync::Arc;

use anyhow::Context;
use skald_deletes::{DeleteService, RewriteStores};

use super::Modules;

/// The process's delete service, built on first use; `None` without
/// `compactor.retention_enabled: true` (as in Loki, no delete API then).
pub fn delete_service(m: &mut Modules, who: &str) -> anyhow::Result<Option<Arc<DeleteService>>> {
    if let Some(d) = &m.deletes {
        return Ok(Some(d.clone()));
    }
    let Some(config) = delete_config(&m.config.compactor) else { return Ok(None) };
    let (chunks, index) = m.stores(who)?;
    let metrics = skald_deletes::DeleteMetrics::new();
    metrics.register(&m.registry).context("cannot register the deletion metrics")?;
    let filters = Arc::new(skald_index::FilterIndex::new(chunks.clone(), 1 << 20));
    let rewrite = RewriteStores { chunks, index, filters };
    let service =
        Arc::new(DeleteService::new(config, rewrite, m.runtime.overrides.as_fn(), metrics));
    m.deletes = Some(service.clone());
    Ok(Some(service))
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
