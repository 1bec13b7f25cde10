//! Query planning for the query-frontend: how a query is cut into time splits, and how the
//! answers of the splits are put back together into the answer of the whole query.
//!
//! Pure functions, no I/O. The frontend evaluates each split (with
//! [`engine::evaluate`](crate::engine::evaluate) on a querier) and merges the parts here; the
//! tests prove `evaluate(q) == merge(evaluate(split) for each split)`.
//!
//! - [`split_range`]: the splits of a metric range query (Loki's `split_queries_by_interval`).
//! - [`split_log_range`]: the splits of a log query.
//! - [`max_range`]: the largest `[range]` of an expression, which widens the split interval.
//! - [`merge_matrix`] and [`merge_streams`]: the merged answer, in the engine's own order;
//!   [`check_series_limit`]: the series limit over the merged matrix; [`merge_errors`]: the
//!   error of the whole query from the errors of its splits.
//! - [`shard_plan`] and [`ShardPlan::combine`]: sharding by stream, for the queries whose
//!   shards recombine exactly (the rule is in the `shard` module's documentation).

#[cfg(test)]
mod golden_tests;
mod merge;
mod shard;
#[cfg(test)]
mod shard_tests;
mod split;
#[cfg(test)]
mod tests;

pub use merge::{check_series_limit, merge_errors, merge_matrix, merge_streams};
pub use shard::{shard_plan, Combine, ShardPlan, Undecided};
pub use split::{max_range, max_range_of, split_log_range, split_range};
