//! An in-memory [`TableClient`] for tests, with failure injection and a call log.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::client::{TableClient, TableState, TableStatus};
use crate::error::{Error, Operation, Result};
use crate::tables::{TableDesc, Throughput};

#[derive(Debug, Default)]
struct Inner {
    tables: BTreeMap<String, TableState>,
    /// Operations that fail: `(operation, Some(table))` fails for that table only,
    /// `(operation, None)` for every table.
    failing: HashSet<(Operation, Option<String>)>,
    calls: Vec<(Operation, String)>,
}

/// In-memory tables. Created tables are immediately `Active`; [`set_status`] can simulate
/// other states.
///
/// [`set_status`]: MemTableClient::set_status
#[derive(Debug, Default)]
pub struct MemTableClient {
    inner: Mutex<Inner>,
}

impl MemTableClient {
    /// Returns an empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread cannot leave the map half-updated: every update is a
        // single insert or remove.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds (or replaces) a table directly, without going through `create_table`.
    pub fn insert(&self, name: &str, throughput: Throughput) {
        let state = TableState { name: name.to_string(), throughput, status: TableStatus::Active };
        self.lock().tables.insert(name.to_string(), state);
    }

    /// Sets a table's status (e.g. `Updating`, to check that updates are skipped).
    pub fn set_status(&self, name: &str, status: TableStatus) {
        if let Some(t) = self.lock().tables.get_mut(name) {
            t.status = status;
        }
    }

    /// Returns all tables, sorted by name.
    pub fn tables(&self) -> Vec<TableState> {
        self.lock().tables.values().cloned().collect()
    }

    /// Returns all table names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.lock().tables.keys().cloned().collect()
    }

    /// Returns one table's throughput, if it exists.
    pub fn throughput(&self, name: &str) -> Option<Throughput> {
        self.lock().tables.get(name).map(|t| t.throughput)
    }

    /// Makes `operation` fail, for `table` only or (with `None`) for every table, until
    /// [`heal`](Self::heal) is called.
    pub fn fail(&self, operation: Operation, table: Option<&str>) {
        self.lock().failing.insert((operation, table.map(str::to_string)));
    }

    /// Removes every injected failure.
    pub fn heal(&self) {
        self.lock().failing.clear();
    }

    /// Returns the mutating calls made so far (`Create`, `Update`, `Delete`), in order.
    pub fn mutations(&self) -> Vec<(Operation, String)> {
        self.lock()
            .calls
            .iter()
            .filter(|(op, _)| {
                matches!(op, Operation::Create | Operation::Update | Operation::Delete)
            })
            .cloned()
            .collect()
    }

    /// Returns how many times `operation` was called.
    pub fn call_count(&self, operation: Operation) -> usize {
        self.lock().calls.iter().filter(|(op, _)| *op == operation).count()
    }

    /// Records the call and returns the injected failure, if any.
    fn enter(&self, operation: Operation, table: &str) -> Result<MutexGuard<'_, Inner>> {
        let mut inner = self.lock();
        inner.calls.push((operation, table.to_string()));
        let fails = inner.failing.contains(&(operation, None))
            || inner.failing.contains(&(operation, Some(table.to_string())));
        if fails {
            return Err(Error::Client {
                operation,
                table: table.to_string(),
                message: "injected failure".to_string(),
            });
        }
        Ok(inner)
    }
}

#[async_trait]
impl TableClient for MemTableClient {
    async fn list_tables(&self) -> Result<Vec<String>> {
        let inner = self.enter(Operation::List, "")?;
        Ok(inner.tables.keys().cloned().collect())
    }

    async fn describe_table(&self, name: &str) -> Result<TableState> {
        let inner = self.enter(Operation::Describe, name)?;
        inner.tables.get(name).cloned().ok_or_else(|| Error::TableNotFound { table: name.into() })
    }

    async fn create_table(&self, desc: &TableDesc) -> Result<()> {
        let mut inner = self.enter(Operation::Create, &desc.name)?;
        inner.tables.entry(desc.name.clone()).or_insert_with(|| TableState {
            name: desc.name.clone(),
            throughput: desc.throughput,
            status: TableStatus::Active,
        });
        Ok(())
    }

    async fn update_table(&self, current: &TableState, expected: &TableDesc) -> Result<()> {
        let mut inner = self.enter(Operation::Update, &current.name)?;
        let table = inner
            .tables
            .get_mut(&current.name)
            .ok_or_else(|| Error::TableNotFound { table: current.name.clone() })?;
        table.throughput = expected.throughput;
        Ok(())
    }

    async fn delete_table(&self, name: &str) -> Result<()> {
        let mut inner = self.enter(Operation::Delete, name)?;
        inner.tables.remove(name);
        Ok(())
    }
}
