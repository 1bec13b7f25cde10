//! The table backend seen by the manager: list, describe, create, update, delete.

use async_trait::async_trait;

use crate::error::Result;
use crate::tables::{TableDesc, Throughput};

/// Key schema every table created through a [`TableClient`] must have: `h` (string) is the
/// hash key and `r` (binary) the range key. `skald-index` owns it (its `dynamo::schema`).
pub use skald_index::dynamo::{HASH_KEY, RANGE_KEY};

/// Lifecycle state of a table, as DynamoDB reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableStatus {
    /// Ready; only tables in this state get throughput updates.
    Active,
    /// Being created.
    Creating,
    /// Being updated (e.g. a capacity change in progress).
    Updating,
    /// Being deleted.
    Deleting,
    /// Any other state (archiving, inaccessible encryption key, ...), as reported.
    Other(String),
}

/// What [`TableClient::describe_table`] reports about an existing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableState {
    /// Table name.
    pub name: String,
    /// Current billing mode and capacity.
    pub throughput: Throughput,
    /// Lifecycle state.
    pub status: TableStatus,
}

/// A DynamoDB-like table backend.
///
/// Implementations: [`DynamoTableClient`](crate::DynamoTableClient) (AWS SDK) and
/// [`MemTableClient`](crate::MemTableClient) (in-memory, for tests).
#[async_trait]
pub trait TableClient: Send + Sync {
    /// Returns the names of all tables, following pagination to the end.
    async fn list_tables(&self) -> Result<Vec<String>>;

    /// Returns a table's billing mode, capacity and status;
    /// [`Error::TableNotFound`](crate::Error::TableNotFound) if it does not exist.
    async fn describe_table(&self, name: &str) -> Result<TableState>;

    /// Creates a table with the `h`/`r` key schema and the given throughput. A table that
    /// already exists (e.g. created concurrently) is not an error.
    async fn create_table(&self, desc: &TableDesc) -> Result<()>;

    /// Changes a table's billing mode and/or capacity from `current` to `expected`.
    async fn update_table(&self, current: &TableState, expected: &TableDesc) -> Result<()>;

    /// Deletes a table. A table that no longer exists is not an error.
    async fn delete_table(&self, name: &str) -> Result<()>;
}
