//! The table-manager module: keeps the DynamoDB index tables of the schema periods.

use std::sync::Arc;

use super::Modules;

/// Starts the table-manager when a schema period keeps its index in DynamoDB; without one,
/// `-target=table-manager` has nothing to do and fails, and `all` simply runs without it.
pub fn init_table_manager(m: &mut Modules) -> anyhow::Result<()> {
    let periods = crate::storage::table_periods(&m.config)?;
    if periods.is_empty() {
        if m.target == "table-manager" {
            anyhow::bail!("-target=table-manager needs a schema_config period with `store: aws` (an index in DynamoDB tables)");
        }
        return Ok(());
    }
    let client = crate::storage::dynamo_client_config(&m.config)?.connect()?;
    let tm = skald_table_manager::TableManager::new(
        m.config.table_manager.clone(),
        periods,
        Arc::new(skald_table_manager::DynamoTableClient::new(client)),
        &m.registry,
    )
    .map_err(|e| anyhow::anyhow!("table_manager: {e}"))?;
    tracing::info!("table-manager started");
    tokio::spawn(tm.run(m.shutdown.clone()));
    Ok(())
}
