//! The crate's error type.

use std::fmt;

use crate::config::ConfigError;
use crate::manager::SyncReport;

/// A table operation, as named in errors, logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `ListTables`.
    List,
    /// `DescribeTable`.
    Describe,
    /// `CreateTable`.
    Create,
    /// `UpdateTable`.
    Update,
    /// `DeleteTable`.
    Delete,
}

impl Operation {
    /// Returns the DynamoDB operation name (`"CreateTable"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::List => "ListTables",
            Operation::Describe => "DescribeTable",
            Operation::Create => "CreateTable",
            Operation::Update => "UpdateTable",
            Operation::Delete => "DeleteTable",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a table-manager operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The metrics could not be registered.
    #[error("cannot register table-manager metrics")]
    Metrics(#[from] prometheus::Error),
    /// The table backend refused or failed an operation.
    #[error("{operation}{} failed: {message}", for_table(.table))]
    Client {
        /// The operation.
        operation: Operation,
        /// The table (empty for `ListTables`).
        table: String,
        /// The backend's explanation, with its error chain.
        message: String,
    },
    /// The table does not exist.
    #[error("table `{table}` does not exist")]
    TableNotFound {
        /// The table.
        table: String,
    },
    /// Some table operations of a reconciliation failed; the others were applied.
    #[error("table reconciliation incomplete: {}", summarize(.failures))]
    Reconcile {
        /// What was applied despite the failures.
        report: Box<SyncReport>,
        /// Every failed operation.
        failures: Vec<TableFailure>,
    },
}

/// One failed table operation of a reconciliation.
#[derive(Debug)]
pub struct TableFailure {
    /// The table.
    pub table: String,
    /// What was attempted.
    pub operation: Operation,
    /// Why it failed.
    pub error: Error,
}

fn for_table(table: &str) -> String {
    if table.is_empty() {
        String::new()
    } else {
        format!(" of `{table}`")
    }
}

fn summarize(failures: &[TableFailure]) -> String {
    match failures.first() {
        None => "no failures".to_string(),
        Some(first) => format!("{} operation(s) failed, first: {}", failures.len(), first.error),
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
