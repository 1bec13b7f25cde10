//! Skald's table manager: keeps the DynamoDB-compatible *periodic index tables* in step with
//! the clock, as Loki's (removed) table-manager did.
//!
//! Each `schema_config` period whose index lives in DynamoDB is a [`PeriodicTableConfig`];
//! its tables are named `<prefix><n>` with `n = unix seconds / period seconds`.
//! [`expected_tables`] computes, as a pure function of the time, which tables should exist
//! and with which [`Throughput`]; [`TableManager::reconcile`] makes a [`TableClient`] match
//! it (create ahead by `creation_grace_period`, switch active/inactive throughput, delete
//! tables past `retention_period` when `retention_deletes_enabled`), and
//! [`TableManager::run`] does so every `poll_interval`.
//!
//! [`DynamoTableClient`] talks to DynamoDB (or DynamoDB Local) through `aws-sdk-dynamodb`;
//! [`MemTableClient`] is an in-memory fake for tests. Every table is created with the key
//! schema the index store defines (`skald_index::dynamo::key_schema`): `h` (S) HASH, `r` (B)
//! RANGE.
#![warn(missing_docs)]

mod client;
mod config;
mod dynamo;
mod error;
mod manager;
mod mem;
mod metrics;
mod tables;
#[cfg(test)]
mod test_util;

pub use client::{TableClient, TableState, TableStatus, HASH_KEY, RANGE_KEY};
pub use config::{
    validate, AutoScalingConfig, ConfigError, PeriodicTableConfig, ProvisionConfig,
    TableManagerConfig,
};
pub use dynamo::DynamoTableClient;
pub use error::{Error, Operation, Result, TableFailure};
pub use manager::{SyncReport, TableManager, DEFAULT_METRICS_NAMESPACE, INITIAL_BACKOFF};
pub use mem::MemTableClient;
pub use metrics::TableManagerMetrics;
pub use tables::{expected_tables, TableDesc, Throughput, MAX_CHUNK_AGE};
