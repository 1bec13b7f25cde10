//! [`TableClient`] over the AWS SDK's DynamoDB client (AWS DynamoDB, DynamoDB Local, or any
//! DynamoDB-compatible server).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{BillingMode, ProvisionedThroughput};
use skald_index::dynamo::{self as schema, classify, error_text, FailureKind};
use tracing::debug;

use crate::client::{TableClient, TableState, TableStatus};
use crate::error::{Error, Operation, Result};
use crate::tables::{TableDesc, Throughput};

/// Manages tables through an already configured `aws_sdk_dynamodb::Client`.
///
/// Tables are created with `skald-index`'s schema (attribute definitions `h` (S) and `r` (B),
/// key schema `h` HASH, `r` RANGE: `skald_index::dynamo::{attribute_definitions, key_schema}`);
/// billing `PAY_PER_REQUEST` for [`Throughput::OnDemand`], otherwise
/// `PROVISIONED` with the given capacity. No tags are set (DynamoDB Local does not support
/// tagging).
#[derive(Debug, Clone)]
pub struct DynamoTableClient {
    client: aws_sdk_dynamodb::Client,
    list_page_size: Option<i32>,
}

impl DynamoTableClient {
    /// Wraps a client; building it (region, endpoint, credentials) is the caller's job.
    pub fn new(client: aws_sdk_dynamodb::Client) -> Self {
        Self { client, list_page_size: None }
    }

    /// Asks `ListTables` for at most `size` names per page (the server's default, 100, when
    /// unset). Only useful to exercise pagination in tests.
    pub fn with_list_page_size(mut self, size: i32) -> Self {
        self.list_page_size = Some(size);
        self
    }
}

/// A failed table operation; the message is the SDK's, with its error chain
/// (`skald_index::dynamo::error_text`, as the index store reports its failures).
fn client_error(operation: Operation, table: &str, err: impl std::error::Error) -> Error {
    Error::Client { operation, table: table.to_string(), message: error_text(&err) }
}

fn provisioned(
    operation: Operation,
    table: &str,
    read: i64,
    write: i64,
) -> Result<ProvisionedThroughput> {
    ProvisionedThroughput::builder()
        .read_capacity_units(read)
        .write_capacity_units(write)
        .build()
        .map_err(|e| client_error(operation, table, e))
}

#[async_trait]
impl TableClient for DynamoTableClient {
    async fn list_tables(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let page = self
                .client
                .list_tables()
                .set_exclusive_start_table_name(start.take())
                .set_limit(self.list_page_size)
                .send()
                .await
                .map_err(|e| client_error(Operation::List, "", e))?;
            names.extend(page.table_names().iter().cloned());
            match page.last_evaluated_table_name() {
                Some(last) if !last.is_empty() => start = Some(last.to_string()),
                _ => break,
            }
        }
        Ok(names)
    }

    async fn describe_table(&self, name: &str) -> Result<TableState> {
        let out = match self.client.describe_table().table_name(name).send().await {
            Ok(out) => out,
            Err(e) => {
                let failure = classify(&e);
                if failure.kind == FailureKind::MissingTable {
                    return Err(Error::TableNotFound { table: name.to_string() });
                }
                return Err(Error::Client {
                    operation: Operation::Describe,
                    table: name.to_string(),
                    message: failure.message,
                });
            }
        };
        let Some(table) = out.table() else {
            return Err(Error::Client {
                operation: Operation::Describe,
                table: name.to_string(),
                message: "response has no table description".to_string(),
            });
        };
        let on_demand = table
            .billing_mode_summary()
            .and_then(|s| s.billing_mode())
            .is_some_and(|m| *m == BillingMode::PayPerRequest);
        let throughput = if on_demand {
            Throughput::OnDemand
        } else {
            let p = table.provisioned_throughput();
            Throughput::Provisioned {
                read: p.and_then(|p| p.read_capacity_units()).unwrap_or(0),
                write: p.and_then(|p| p.write_capacity_units()).unwrap_or(0),
            }
        };
        use aws_sdk_dynamodb::types::TableStatus as S;
        let status = match table.table_status() {
            Some(S::Active) => TableStatus::Active,
            Some(S::Creating) => TableStatus::Creating,
            Some(S::Updating) => TableStatus::Updating,
            Some(S::Deleting) => TableStatus::Deleting,
            Some(other) => TableStatus::Other(other.as_str().to_string()),
            None => TableStatus::Other("unknown".to_string()),
        };
        Ok(TableState { name: name.to_string(), throughput, status })
    }

    async fn create_table(&self, desc: &TableDesc) -> Result<()> {
        let name = desc.name.as_str();
        let op = Operation::Create;
        let mut request = self
            .client
            .create_table()
            .table_name(name)
            .set_attribute_definitions(Some(
                schema::attribute_definitions().map_err(|e| client_error(op, name, e))?,
            ))
            .set_key_schema(Some(schema::key_schema().map_err(|e| client_error(op, name, e))?));
        request = match desc.throughput {
            Throughput::OnDemand => request.billing_mode(BillingMode::PayPerRequest),
            Throughput::Provisioned { read, write } => request
                .billing_mode(BillingMode::Provisioned)
                .provisioned_throughput(provisioned(op, name, read, write)?),
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) => match classify(&e) {
                f if f.kind == FailureKind::TableInUse => {
                    debug!(table = name, "table already exists");
                    Ok(())
                }
                f => Err(Error::Client {
                    operation: op,
                    table: name.to_string(),
                    message: f.message,
                }),
            },
        }
    }

    async fn update_table(&self, current: &TableState, expected: &TableDesc) -> Result<()> {
        let name = current.name.as_str();
        let op = Operation::Update;
        let request = self.client.update_table().table_name(name);
        let request = match (current.throughput, expected.throughput) {
            (_, Throughput::OnDemand) => request.billing_mode(BillingMode::PayPerRequest),
            (Throughput::OnDemand, Throughput::Provisioned { read, write }) => request
                .billing_mode(BillingMode::Provisioned)
                .provisioned_throughput(provisioned(op, name, read, write)?),
            (Throughput::Provisioned { .. }, Throughput::Provisioned { read, write }) => {
                request.provisioned_throughput(provisioned(op, name, read, write)?)
            }
        };
        request.send().await.map_err(|e| client_error(op, name, e))?;
        Ok(())
    }

    async fn delete_table(&self, name: &str) -> Result<()> {
        match self.client.delete_table().table_name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) => match classify(&e) {
                f if f.kind == FailureKind::MissingTable => Ok(()),
                f => Err(Error::Client {
                    operation: Operation::Delete,
                    table: name.to_string(),
                    message: f.message,
                }),
            },
        }
    }
}
