//! The ingester: holds recent entries per tenant and stream, cuts them into compressed chunks,
//! and flushes chunks to the chunk store and their references to the index.
//!
//! It talks to storage only through `skald_chunk_store::ChunkStore` and
//! `skald_index::IndexStore`, and is reached by distributors and queriers only through
//! `skald_proto::ingester::IngesterService`.
//!
//! Modules: [`Ingester`] and its `IngesterService` implementation (`service`), one tenant's
//! streams and the push path (`instance`), the flush loop and its backoff (`flush`), WAL
//! replay and checkpoints (`recovery`), the read path with its pushdown (`query`), and
//! [`IngesterError`] (`error`).

mod chunk_stats;
mod config;
mod error;
mod flush;
pub mod http;
mod instance;
mod metrics;
mod push_errors;
mod query;
mod recovery;
mod service;
mod stream;
mod tail;
#[cfg(test)]
mod testing;
pub mod wal;

pub use config::{IngesterConfig, LifecyclerConfig, LifecyclerRing};
pub use error::{IngesterError, Result};
pub use metrics::IngesterMetrics;
pub use service::Ingester;
pub use wal::{FsyncPolicy, ReplayStats, WalConfig};
