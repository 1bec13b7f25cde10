//! The querier: Loki's query HTTP API over chunks in the object store and recent data in
//! ingesters. It runs LogQL through `skald-logql` and writes Loki's JSON.
//!
//! [`http`] is its HTTP edge (axum routes, Loki's replies and errors); the other modules are
//! the domain it calls (the query runner, labels, index stats and volume, detected fields,
//! patterns, Drilldown limits, the live tail), which know nothing of HTTP.
//!
//! Boundary: reaches ingesters only through `skald_proto::ingester::IngesterClient`, storage
//! only through `skald_chunk_store::ChunkStore` and `skald_index::IndexStore`.

mod budgets;
mod bytes_read;
pub mod deletes;
pub mod detected;
mod drain;
mod drilldown;
pub mod error;
pub mod http;
mod labels;
pub mod multitenant;
pub mod patterns;
mod query;
mod source;
mod store_stats;
mod tail;
pub mod volume;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use skald_chunk_store::ChunkStore;
use skald_common::limits::Limits;
use skald_common::overrides::Overrides;
use skald_index::IndexStore;
use skald_proto::ingester::IngesterClient;

pub use drilldown::published_limits;
pub use error::QuerierError;
pub use patterns::{PatternConfigError, PatternIngesterConfig};

/// The `querier` block, with Loki's key names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuerierConfig {
    /// Loki asks ingesters only for data newer than this, so data pushed with old timestamps
    /// (backfill) stays invisible until it is flushed. Skald accepts the key and asks the
    /// ingesters for any range: one that holds nothing in it answers at once (it skips every
    /// stream without data in the range), and one that does is always heard.
    #[serde(with = "skald_common::units::duration")]
    pub query_ingesters_within: Duration,
    /// Queries evaluated at once.
    pub max_concurrent: usize,
    /// Whether `X-Scope-OrgID: a|b` queries several tenants at once (Loki's key).
    pub multi_tenant_queries_enabled: bool,
    /// How long a live tail (`/loki/api/v1/tail`) may stay open.
    #[serde(with = "skald_common::units::duration")]
    pub tail_max_duration: Duration,
    /// Skald's cap on the size of one query's answer (Loki has none of its own; its
    /// `server.grpc_server_max_send_msg_size` plays the part between querier and frontend).
    /// The lines a log query keeps, and the JSON written for any query, may not exceed it:
    /// past it the query stops and fails with a 400 naming this key (0 = no cap).
    #[serde(with = "skald_common::units::bytesize")]
    pub skald_max_query_response_size: u64,
}

/// The decoded filter tables a querier keeps (they never change): about 64 MiB, the tables of
/// some 30 GB of raw logs at the default sizes.
const FILTER_TABLE_CACHE_BYTES: usize = 64 << 20;

/// Default of [`QuerierConfig::skald_max_query_response_size`]: 100 MiB.
pub const DEFAULT_MAX_QUERY_RESPONSE_SIZE: u64 = 100 << 20;

impl Default for QuerierConfig {
    fn default() -> Self {
        QuerierConfig {
            query_ingesters_within: Duration::from_secs(3 * 3600),
            max_concurrent: 4,
            multi_tenant_queries_enabled: false,
            tail_max_duration: Duration::from_secs(3600),
            skald_max_query_response_size: DEFAULT_MAX_QUERY_RESPONSE_SIZE,
        }
    }
}

impl QuerierConfig {
    /// `skald_max_query_response_size` in bytes (0 = no cap).
    pub fn max_response_bytes(&self) -> usize {
        usize::try_from(self.skald_max_query_response_size).unwrap_or(usize::MAX)
    }
}

/// Answers queries for every tenant.
pub struct Querier {
    pub(crate) config: QuerierConfig,
    /// The tenants' limits (`limits_config` and the runtime configuration's overrides).
    pub(crate) overrides: Overrides,
    pub(crate) chunks: Arc<dyn ChunkStore>,
    pub(crate) index: Arc<dyn IndexStore>,
    /// The chunks' filter tables, read by needle searches before any chunk is fetched.
    pub(crate) filters: skald_index::FilterIndex,
    pub(crate) ingester: Option<IngesterClient>,
    pub(crate) concurrency: tokio::sync::Semaphore,
    /// Open live tails per tenant.
    pub(crate) tails: parking_lot::Mutex<std::collections::HashMap<String, usize>>,
    /// Set at shutdown: open tails close ("going away").
    pub(crate) closing: tokio::sync::watch::Sender<bool>,
    /// Pattern detection (`/loki/api/v1/patterns`), Loki's `pattern_ingester` block.
    pub(crate) pattern_ingester: PatternIngesterConfig,
    /// The memory budgets the parts of split queries share.
    pub(crate) budgets: budgets::Budgets,
    /// The delete API and the requests that hide lines (`None`: not served).
    pub(crate) deletes: Option<Arc<skald_deletes::DeleteService>>,
}

impl Querier {
    /// `tenant`'s limits (for `a|b`, the query limits of all combined, see
    /// [`Overrides::tenant`]).
    pub(crate) fn limits(&self, tenant: &str) -> Arc<Limits> {
        self.overrides.tenant(tenant)
    }

    /// The tenants' limits.
    pub fn overrides(&self) -> &Overrides {
        &self.overrides
    }
}

impl Querier {
    /// Builds a querier. `ingester` is `None` for a querier that reads storage only.
    pub fn new(
        config: QuerierConfig,
        overrides: impl Into<Overrides>,
        chunks: Arc<dyn ChunkStore>,
        index: Arc<dyn IndexStore>,
        ingester: Option<IngesterClient>,
    ) -> Self {
        let permits = config.max_concurrent.max(1);
        Querier {
            config,
            overrides: overrides.into(),
            filters: skald_index::FilterIndex::new(chunks.clone(), FILTER_TABLE_CACHE_BYTES),
            chunks,
            index,
            ingester,
            concurrency: tokio::sync::Semaphore::new(permits),
            tails: parking_lot::Mutex::new(std::collections::HashMap::new()),
            closing: tokio::sync::watch::channel(false).0,
            pattern_ingester: PatternIngesterConfig::default(),
            budgets: budgets::Budgets::default(),
            deletes: None,
        }
    }

    /// Closes every open live tail (at shutdown: an open WebSocket would hold the HTTP
    /// server's graceful shutdown up).
    pub fn close_tails(&self) {
        self.closing.send_replace(true);
    }

    /// Sets the `pattern_ingester` block (pattern detection for `/loki/api/v1/patterns`).
    pub fn with_pattern_ingester(mut self, config: PatternIngesterConfig) -> Self {
        self.pattern_ingester = config;
        self
    }
}
