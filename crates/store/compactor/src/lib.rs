//! The compactor: retention that deletes, and the compaction of the index.
//!
//! One process at a time ([`lease`]) runs a pass every `compaction_interval`
//! ([`Compactor::run`]). A pass, per tenant: with `retention_enabled`, finds the chunks past
//! their stream's retention ([`Retention`]), writes a marker naming their objects, removes
//! their index entries and filter-table entries; then merges each day's index segments and
//! filter tables into one. Last, it deletes the chunk objects of markers older than
//! `retention_delete_delay`. The README tells the order of writes and deletes and what a crash
//! at each point leaves.
#![warn(missing_docs)]

mod compactor;
mod config;
pub mod lease;
mod merge;
mod metrics;
mod pack;
mod retention;

pub use compactor::{
    now_ns, Compactor, CompactorError, PassReport, TenantHook, TenantLimits, MARKERS_PREFIX,
};
pub use config::CompactorConfig;
pub use merge::{MergeReport, MergeSettings};
pub use metrics::CompactorMetrics;
pub use pack::{PackReport, PackSettings};
pub use retention::{Retention, RetentionError};

#[cfg(test)]
mod merge_tests;
#[cfg(test)]
mod pack_tests;
#[cfg(test)]
mod tests;
