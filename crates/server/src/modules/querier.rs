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
    if let Some(deletes) = delete_config(config.compactor.as_ref())? {
        let metrics = skald_deletes::DeleteMetrics::new();
        metrics.register(&m.registry).context("cannot register the deletion metrics")?;
        querier = querier.with_deletes(deletes, metrics);
    }
    m.querier = Some(Arc::new(querier));
    Ok(())
}

/// The delete API's keys of Loki's `compactor` block (`delete_request_cancel_period`,
/// `delete_max_interval`), or `None` without `retention_enabled: true`; the rest of the block
/// is not read here (`delete_request_store` is accepted: requests live in the chunks' bucket).
fn delete_config(
    compactor: Option<&serde_yaml::Value>,
) -> anyhow::Result<Option<skald_deletes::DeleteConfig>> {
    let mut out = skald_deletes::DeleteConfig::default();
    let Some(block) = compactor else { return Ok(None) };
    match block.get("retention_enabled") {
        Some(serde_yaml::Value::Bool(true)) => {}
        Some(serde_yaml::Value::String(s)) if s == "true" => {}
        _ => return Ok(None),
    }
    let duration = |key: &str| -> anyhow::Result<Option<std::time::Duration>> {
        match block.get(key) {
            None | Some(serde_yaml::Value::Null) => Ok(None),
            Some(serde_yaml::Value::String(s)) => skald_common::units::parse_duration(s)
                .map(Some)
                .with_context(|| format!("compactor.{key}: invalid duration {s:?}")),
            Some(other) => anyhow::bail!("compactor.{key}: expected a duration, got {other:?}"),
        }
    };
    if let Some(d) = duration("delete_request_cancel_period")? {
        out.delete_request_cancel_period = d;
    }
    if let Some(d) = duration("delete_max_interval")? {
        out.delete_max_interval = d;
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_delete_keys_of_the_compactor_block() {
        let block: serde_yaml::Value = serde_yaml::from_str(
            "retention_enabled: true\ndelete_request_cancel_period: 10s\ndelete_max_interval: 1h\n",
        )
        .unwrap();
        let c = delete_config(Some(&block)).unwrap().unwrap();
        assert_eq!(c.delete_request_cancel_period, std::time::Duration::from_secs(10));
        assert_eq!(c.delete_max_interval, std::time::Duration::from_secs(3600));
        let defaults: serde_yaml::Value = serde_yaml::from_str("retention_enabled: true").unwrap();
        assert_eq!(
            delete_config(Some(&defaults)).unwrap(),
            Some(skald_deletes::DeleteConfig::default())
        );
        // no delete API without retention, as in Loki
        assert_eq!(delete_config(None).unwrap(), None);
        let off: serde_yaml::Value = serde_yaml::from_str("working_directory: /x").unwrap();
        assert_eq!(delete_config(Some(&off)).unwrap(), None);
        let bad: serde_yaml::Value =
            serde_yaml::from_str("retention_enabled: true\ndelete_max_interval: soon").unwrap();
        assert!(delete_config(Some(&bad)).is_err());
    }
}
