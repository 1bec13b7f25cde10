//! Query evaluation: turns a parsed LogQL [`ast::Expr`] plus query parameters into Loki's
//! result shapes (streams, vector, matrix, scalar).
//!
//! The engine does no I/O. It reads log streams through the [`Source`] trait, consumes them as
//! they arrive, and keeps only what the query needs: the best `limit` entries for log queries,
//! and `(timestamp, value)` samples per output series for metric queries.
//!
//! Semantics follow Loki:
//! - metric steps run from `start` to `end` inclusive every `step`; each range window is
//!   `(t - range - offset, t - offset]` (left-open, right-closed);
//! - matrix series are sorted by labels, log streams by their printed label set;
//! - samples that carry `__error__` make the query fail with Loki's "pipeline error" text unless
//!   the query groups by `__error__`.

#[cfg(test)]
mod bucket_tests;
mod hints;
mod leaves;
mod logs;
mod memory;
#[cfg(test)]
mod memory_tests;
mod metric;
mod ops;
#[cfg(test)]
mod order_tests;
mod pushdown;
mod range_fns;
#[cfg(test)]
pub(crate) mod tests;

use crate::syntax::ast;
use skald_model::{Direction, Labels, Line, Sample, StreamBatch};

pub use hints::{pushed_extractor, pushed_sample_expr};
pub use leaves::{evaluate_leaves, range_aggregations, Leaves};
pub use logs::check_entries_limit;
pub use memory::{memory_limit_error, QueryMemory};
pub use pushdown::push_down;

pub(crate) use metric::{series_limit_error, sort_matrix};

/// Loki's text for a log query sent as an instant query.
pub const INSTANT_LOG_QUERY_MSG: &str =
    "log queries are not supported as an instant query type, please change your query to a range query type";

/// What the engine will keep of a log query's entries: the `limit` entries nearest one edge
/// (`end` when `backward`, else `start`) among those `selector`'s pipeline accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectLimit {
    /// Entries kept.
    pub limit: usize,
    /// Nearest `end` (true) or nearest `start` (false).
    pub backward: bool,
}

/// Where the engine gets data. Implemented by the querier over chunks + ingesters.
pub trait Source: Send + Sync {
    /// Streams whose labels match `selector.matchers`, with their entries in [start, end)
    /// sorted ascending by ts. Batches of the same stream come consecutively, in time order
    /// (one stream may arrive as several batches); streams in any order.
    ///
    /// The engine runs `selector`'s pipeline over what it gets, so a source may already drop
    /// (push down) entries that the pipeline rejects. With `limit` it may also drop accepted
    /// entries lying strictly farther from the edge than the `limit`-th nearest accepted one
    /// (ties must be kept). Nothing else may be dropped.
    #[allow(clippy::type_complexity)]
    fn select(
        &self,
        selector: &ast::LogSelectorExpr,
        start: i64,
        end: i64,
        limit: Option<SelectLimit>,
    ) -> Result<Box<dyn Iterator<Item = Result<StreamBatch, EngineError>> + Send + '_>, EngineError>;

    /// For sources whose data holders extract samples themselves (ingesters, so that samples
    /// travel rather than lines): the samples `op(range)` makes of what they hold, by output
    /// series, plus the entries of `(from, to)` they do not hold, for the engine to extract.
    /// An entry of the rest that a holder already counted (flushed while the query ran) is
    /// skipped by its `(ts, entry_hash)`. `None` (the default): the engine extracts everything
    /// from [`select`](Self::select). `grouping` is the one the engine evaluates `op(range)`
    /// with: the holders' parsers follow the parser hints it gives
    /// ([`SampleExtractor::with_grouping`](crate::log::SampleExtractor::with_grouping)), as
    /// the engine's own do.
    fn select_samples(
        &self,
        _range: &ast::LogRangeExpr,
        _op: ast::RangeOp,
        _param: Option<f64>,
        _grouping: Option<&ast::Grouping>,
        _from: i64,
        _to: i64,
    ) -> Result<Option<PushedSamples<'_>>, EngineError> {
        Ok(None)
    }

    /// For `count_over_time`, `bytes_over_time`, `rate` and `bytes_rate` (`op`) over a
    /// selector without pipeline stages and without `unwrap` (the engine asks only then):
    /// what [`select_samples`](Self::select_samples) returns, except that the rest may also
    /// come as [`BucketBatch`]es, entry counts and line bytes per time bucket, which a source
    /// reads from statistics instead of decoding entries.
    ///
    /// A bucket `(end - width, end]` may only be returned when `grid.aligned_to(width)` (so
    /// it lies wholly inside or outside every window) and it lies inside `(from, to)`. Every
    /// entry of `(from, to)` is counted exactly once across `series`, the buckets and the
    /// entries of the rest: an entry in a bucket is never one of `counted`, and never also
    /// returned as an entry. `None` (the default): the engine asks
    /// [`select_samples`](Self::select_samples), then [`select`](Self::select).
    fn select_bucket_counts(
        &self,
        _range: &ast::LogRangeExpr,
        _op: ast::RangeOp,
        _from: i64,
        _to: i64,
        _grid: &WindowGrid,
    ) -> Result<Option<BucketedSamples<'_>>, EngineError> {
        Ok(None)
    }

    /// `Err` once the query should stop (its client went away, or its time is up). The engine
    /// asks every few entries, steps and series, so a canceled query stops within
    /// milliseconds whatever stage it is in. The default never stops.
    fn check_canceled(&self) -> Result<(), EngineError> {
        Ok(())
    }
}

/// How many entries (or steps) the engine handles between two
/// [`Source::check_canceled`] calls: an atomic load every few microseconds of work.
const CANCEL_EVERY: u32 = 32;

/// Asks a source every [`CANCEL_EVERY`] calls whether the query should stop.
pub(crate) struct CancelCheck<'a> {
    source: &'a dyn Source,
    n: u32,
}

impl<'a> CancelCheck<'a> {
    pub(crate) fn new(source: &'a dyn Source) -> Self {
        CancelCheck { source, n: 0 }
    }

    /// Counts one unit of work; every [`CANCEL_EVERY`] units, asks the source.
    pub(crate) fn tick(&mut self) -> Result<(), EngineError> {
        self.n += 1;
        if self.n >= CANCEL_EVERY {
            self.n = 0;
            self.source.check_canceled()
        } else {
            Ok(())
        }
    }
}

/// The error of a query whose result outgrows `limit` bytes
/// ([`Limits::max_result_bytes`]; the querier's `skald_max_query_response_size`).
pub fn result_too_large(limit: usize) -> EngineError {
    EngineError::Limit(format!(
        "the query result is larger than the response size limit ({limit} bytes, querier.skald_max_query_response_size); narrow the query (a smaller limit, a shorter time range, shorter lines from line_format) or raise the limit"
    ))
}

/// Samples of one output series of a range aggregation, extracted by a data holder.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleBatch {
    /// The series labels (after the pipeline; before any grouping).
    pub labels: Labels,
    /// `(timestamp ns, value)` pairs, in any order.
    pub points: Vec<(i64, f64)>,
}

/// What [`Source::select_samples`] returns.
pub struct PushedSamples<'a> {
    /// Samples extracted where the data is, by output series.
    pub series: Vec<SampleBatch>,
    /// `(ts, skald_model::entry_hash(stream fingerprint, line))` of every entry counted in
    /// `series`.
    pub counted: std::collections::HashSet<(i64, u64)>,
    /// The other entries (as [`Source::select`] gives them), for the engine to extract.
    #[allow(clippy::type_complexity)]
    pub rest: Box<dyn Iterator<Item = Result<StreamBatch, EngineError>> + Send + 'a>,
}

/// The windows of a range aggregation: `(end - range, end]` for every
/// `end = first_end + k * step`, `k < count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowGrid {
    /// End of the first window, ns (the first step minus the offset).
    pub first_end: i64,
    /// Distance between window ends, ns (meaningless when `count` is 1).
    pub step: i64,
    /// Number of windows.
    pub count: usize,
    /// Length of each window, ns.
    pub range: i64,
}

impl WindowGrid {
    /// True when every window edge is a multiple of `width` ns (`width` > 0): a time bucket
    /// `(e - width, e]` whose end `e` is a multiple of `width` then lies wholly inside or wholly
    /// outside each window.
    pub fn aligned_to(&self, width: i64) -> bool {
        width > 0
            && self.first_end.rem_euclid(width) == 0
            && self.range.rem_euclid(width) == 0
            && (self.count <= 1 || self.step.rem_euclid(width) == 0)
    }

    /// The largest width every window edge is a multiple of (0 when all edges are 0): counts
    /// by buckets of any width dividing it can be summed into buckets of this width first.
    pub fn edge_unit(&self) -> i64 {
        fn gcd(mut a: u64, mut b: u64) -> u64 {
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a
        }
        let step = if self.count <= 1 { 0 } else { self.step.unsigned_abs() };
        let g = gcd(gcd(self.first_end.unsigned_abs(), self.range.unsigned_abs()), step);
        i64::try_from(g).unwrap_or(0)
    }
}

/// How many entries, and how many line bytes, one stream has in one time bucket with one
/// structured-metadata set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketCount {
    /// The bucket's inclusive end, ns; the bucket is `(end - width, end]`.
    pub end: i64,
    /// Index into [`BucketBatch::metadata_sets`]: the entries' structured metadata.
    pub set: u32,
    /// Entries in the bucket.
    pub entries: u64,
    /// Sum of their line lengths in bytes.
    pub line_bytes: u64,
}

/// Entry counts of one stream by time bucket and structured metadata (from chunk
/// statistics), for a range aggregation over a selector without pipeline stages: an entry's
/// series is then its stream labels and its structured metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketBatch {
    /// The stream labels.
    pub labels: Labels,
    /// The structured-metadata sets the buckets refer to.
    pub metadata_sets: Vec<Vec<skald_model::Label>>,
    /// Buckets, in any order.
    pub buckets: Vec<BucketCount>,
}

/// One part of the rest of [`BucketedSamples`]: entries to extract samples from, or counts.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamPart {
    /// Entries, as [`Source::select`] gives them.
    Entries(StreamBatch),
    /// Counts by time bucket.
    Buckets(BucketBatch),
}

/// What [`Source::select_bucket_counts`] returns.
pub struct BucketedSamples<'a> {
    /// Samples extracted where the data is, by output series (as in [`PushedSamples`]).
    pub series: Vec<SampleBatch>,
    /// `(ts, entry hash)` of every entry counted in `series` (as in [`PushedSamples`]).
    pub counted: std::collections::HashSet<(i64, u64)>,
    /// The other entries, as entries or as bucket counts.
    #[allow(clippy::type_complexity)]
    pub rest: Box<dyn Iterator<Item = Result<StreamPart, EngineError>> + Send + 'a>,
}

/// Parameters of one query evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryParams {
    /// Start in ns since the epoch (inclusive).
    pub start: i64,
    /// End in ns since the epoch (exclusive for log queries, inclusive last step for metric
    /// queries).
    pub end: i64,
    /// Step between metric evaluation timestamps, in ns. Ignored for instant queries.
    pub step_ns: i64,
    /// Log queries only: return at most one entry per interval (0 = all entries).
    pub interval_ns: i64,
    /// Log queries only: maximum number of entries returned.
    pub limit: u32,
    /// Log queries only: direction of the results.
    pub direction: Direction,
    /// True for an instant query (`start == end`).
    pub instant: bool,
    /// Log queries only: key streams by stream labels and return structured metadata and
    /// parsed labels per entry (`X-Loki-Response-Encoding-Flags: categorize-labels`).
    pub categorize_labels: bool,
}

impl QueryParams {
    /// An instant query at `ts` (ns).
    pub fn instant(ts: i64, limit: u32, direction: Direction, categorize_labels: bool) -> Self {
        QueryParams {
            start: ts,
            end: ts,
            step_ns: 0,
            interval_ns: 0,
            limit,
            direction,
            instant: true,
            categorize_labels,
        }
    }
}

/// Per-tenant limits the engine enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of distinct series in a metric result.
    pub max_query_series: usize,
    /// Maximum `limit` of a log query.
    pub max_entries_limit_per_query: u32,
    /// Largest total size (line bytes plus returned label bytes) of the entries a log query
    /// keeps while it runs; past it the query fails with [`result_too_large`] (0: no cap).
    pub max_result_bytes: usize,
    /// Most bytes a query may hold while it is evaluated ([`QueryMemory`]); past it the query
    /// fails with [`memory_limit_error`] (0: no cap).
    pub max_query_memory: u64,
}

impl Default for Limits {
    /// Loki's defaults: 500 series, 5000 entries; no cap on the result size or memory.
    fn default() -> Self {
        Limits {
            max_query_series: 500,
            max_entries_limit_per_query: 5000,
            max_result_bytes: 0,
            max_query_memory: 0,
        }
    }
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    /// The data.
    pub result: QueryResult,
    /// Counters about the work done.
    pub stats: Stats,
}

/// Loki's four result types.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    /// Log streams (`resultType: streams`), in Loki's order.
    Streams(Vec<ResultStream>),
    /// An instant vector (`resultType: vector`).
    Vector(Vec<VectorSample>),
    /// A range matrix (`resultType: matrix`), series sorted by labels.
    Matrix(Vec<Series>),
    /// A scalar (`resultType: scalar`); `ts` in ns.
    Scalar {
        /// Timestamp in ns.
        ts: i64,
        /// Value.
        value: f64,
    },
}

/// One stream of a log query result.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultStream {
    /// The stream key: all labels, or only the stream labels with categorize-labels.
    pub labels: Labels,
    /// Entries in the query direction (newest first for backward).
    pub entries: Vec<ResultEntry>,
}

/// One entry of a log query result.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultEntry {
    /// Timestamp in ns.
    pub ts: i64,
    /// The (possibly reformatted) line's bytes, not necessarily UTF-8.
    pub line: Line,
    /// Structured metadata; empty unless categorize-labels is on.
    pub structured_metadata: Labels,
    /// Labels extracted by parsers; empty unless categorize-labels is on.
    pub parsed: Labels,
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSample {
    /// Series labels.
    pub labels: Labels,
    /// Timestamp in ns.
    pub ts: i64,
    /// Value.
    pub value: f64,
}

/// One series of a matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Series labels.
    pub labels: Labels,
    /// Samples, ascending by timestamp (ns).
    pub samples: Vec<Sample>,
}

/// Counters about the work a query did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Entries read from the source.
    pub total_lines_processed: u64,
    /// Line bytes read from the source.
    pub total_bytes_processed: u64,
    /// Entries returned (log queries).
    pub total_entries_returned: u64,
    /// Entries that passed the pipeline.
    pub total_post_filter_lines: u64,
    /// Structured metadata bytes (names + values) read from the source.
    pub total_structured_metadata_bytes_processed: u64,
}

impl Stats {
    /// Adds `other`'s counters (the parts of one query, as one).
    pub fn add(&mut self, other: &Stats) {
        self.total_lines_processed += other.total_lines_processed;
        self.total_bytes_processed += other.total_bytes_processed;
        self.total_entries_returned += other.total_entries_returned;
        self.total_post_filter_lines += other.total_post_filter_lines;
        self.total_structured_metadata_bytes_processed +=
            other.total_structured_metadata_bytes_processed;
    }
}

/// Why a query could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A limit was exceeded; the message is Loki's.
    #[error("{0}")]
    Limit(String),
    /// The pipeline could not be built, or samples carried `__error__`.
    #[error("{0}")]
    Pipeline(String),
    /// The query shape is not supported (e.g. an instant log query).
    #[error("{0}")]
    Unsupported(String),
    /// The query is invalid in a way the parser did not catch (e.g. a bad regex).
    #[error("{0}")]
    BadQuery(String),
    /// Evaluation failed (e.g. many-to-many matching in a binary operation).
    #[error("{0}")]
    Execution(String),
    /// The source failed.
    #[error("{0}")]
    Source(String),
    /// The query ran out of time.
    #[error("{0}")]
    Timeout(String),
    /// The client went away and the query was stopped (Loki's 499).
    #[error("{0}")]
    Canceled(String),
}

impl EngineError {
    /// The HTTP status Loki answers with for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            EngineError::Limit(_)
            | EngineError::Pipeline(_)
            | EngineError::Unsupported(_)
            | EngineError::BadQuery(_) => 400,
            EngineError::Execution(_) | EngineError::Source(_) => 500,
            EngineError::Timeout(_) => 504,
            EngineError::Canceled(_) => 499,
        }
    }
}

/// Evaluates `expr` over the data `source` provides, within `limits.max_query_memory`.
pub fn evaluate(
    expr: &ast::Expr,
    params: &QueryParams,
    limits: &Limits,
    source: &dyn Source,
) -> Result<QueryOutput, EngineError> {
    evaluate_in(expr, params, limits, source, &QueryMemory::new(limits.max_query_memory))
}

/// [`evaluate`], charging what the query holds to `mem` (whose cap applies instead of
/// `limits.max_query_memory`), so that the caller can share the accountant with its source
/// or read the peak afterwards.
pub fn evaluate_in(
    expr: &ast::Expr,
    params: &QueryParams,
    limits: &Limits,
    source: &dyn Source,
    mem: &QueryMemory,
) -> Result<QueryOutput, EngineError> {
    let mut stats = Stats::default();
    let result = match expr {
        ast::Expr::Log(sel) => {
            if params.instant {
                return Err(EngineError::Unsupported(INSTANT_LOG_QUERY_MSG.to_string()));
            }
            check_entries_limit(params.limit, limits)?;
            logs::evaluate_logs(sel, params, limits, source, &mut stats, mem)?
        }
        ast::Expr::Sample(e) => {
            metric::evaluate_metric(e, params, limits, source, None, &mut stats, mem)?
        }
    };
    Ok(QueryOutput { result, stats })
}

/// Adds the cost of one source entry to `stats`.
fn account(stats: &mut Stats, entry: &skald_model::EntryRef<'_>) {
    stats.total_lines_processed += 1;
    stats.total_bytes_processed += entry.line.len() as u64;
    stats.total_structured_metadata_bytes_processed += entry
        .structured_metadata
        .iter()
        .map(|l| (l.name.len() + l.value.len()) as u64)
        .sum::<u64>();
}
