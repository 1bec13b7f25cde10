//! The table-manager module: keeps the DynamoDB index tables of the schema periods.

use std::sync::Arc;

use super::Modules;

/// What `-target=table-manager` says when no schema period keeps its index in DynamoDB (the
/// embedded default keeps it on the filesystem).
pub const NOTHING_TO_MANAGE: &str = "-target=table-manager has nothing to manage: it creates, scales and deletes the DynamoDB tables of the index, and no schema_config period keeps its index in DynamoDB. Give it a config with a period `store: aws` and `storage_config.aws.dynamodb.dynamodb_url` (deploy/aws/skald-aws.yaml is one); with the index on the filesystem or in object storage, no table-manager is needed";

/// Starts the table-manager when a schema period keeps its index in DynamoDB; without one,
/// `-target=table-manager` has nothing to do and fails, and `all` simply runs without it.
pub fn init_table_manager(m: &mut Modules) -> anyhow::Result<()> {
    let periods = crate::storage::table_periods(&m.config)?;
    if periods.is_empty() {
        if m.target == "table-manager" {
            anyhow::bail!("{}", NOTHING_TO_MANAGE);
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
