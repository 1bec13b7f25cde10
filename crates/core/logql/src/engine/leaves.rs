//! Evaluating a metric query from answers to its range aggregations computed elsewhere (on
//! the shards of a sharded query: [`ShardPlan`](crate::plan::ShardPlan)).
//!
//! [`range_aggregations`] names the range aggregations the engine evaluates a query from, as
//! it evaluates them: with the grouping a `sum` pushes down into one, and the totals an `avg`
//! of rates is computed from. [`evaluate_leaves`] evaluates the query with each of them
//! answered by a [`Leaves`]. Above the range aggregations the engine does what it does over
//! its own: it gets the same vectors, in the same (label) order, so its answer is bit for bit
//! the whole evaluation's whenever the leaves' matrices are the range aggregations' own.

use std::cell::RefCell;
use std::sync::Arc;

use skald_model::Direction;

use super::memory::{labels_bytes, push_point, QueryMemory, VEC_BYTES};
use super::metric::{self, out_ts, Point, Vector};
use super::{EngineError, Limits, QueryParams, QueryResult, Series, Source, Stats};
use crate::syntax::ast::{LogSelectorExpr, SampleExpr};

/// Answers to the range aggregations of a query ([`evaluate_leaves`]).
pub trait Leaves {
    /// The matrix of `leaf` (a [`SampleExpr::RangeAggregation`] with the grouping it is
    /// evaluated with) over the query's steps: its series, each with a sample at every step
    /// (at the step's millisecond, as answers carry it) where the range aggregation has a
    /// value, series in any order.
    fn leaf(&self, leaf: &SampleExpr) -> Result<&[Series], EngineError>;
}

/// The range aggregations the engine evaluates `expr` from, each once, in the order it asks
/// for them; `None` when `expr` fails whatever its data (a bad parameter, say).
pub fn range_aggregations(expr: &SampleExpr) -> Option<Vec<SampleExpr>> {
    struct Recorder(RefCell<Vec<SampleExpr>>);
    impl Leaves for Recorder {
        fn leaf(&self, leaf: &SampleExpr) -> Result<&[Series], EngineError> {
            let mut seen = self.0.borrow_mut();
            if !seen.contains(leaf) {
                seen.push(leaf.clone());
            }
            Ok(&[])
        }
    }
    let recorder = Recorder(RefCell::new(Vec::new()));
    let params = QueryParams::instant(0, 0, Direction::Backward, false);
    let limits = Limits { max_query_series: usize::MAX, ..Limits::default() };
    let mut stats = Stats::default();
    let mem = QueryMemory::new(0);
    metric::evaluate_metric(expr, &params, &limits, &NoData, Some(&recorder), &mut stats, &mem)
        .ok()?;
    Some(recorder.0.into_inner())
}

/// Evaluates the metric query `expr` over `params` with its range aggregations answered by
/// `leaves` (see the module), within `limits` and `mem`.
pub fn evaluate_leaves(
    expr: &SampleExpr,
    params: &QueryParams,
    limits: &Limits,
    leaves: &dyn Leaves,
    mem: &QueryMemory,
) -> Result<QueryResult, EngineError> {
    let mut stats = Stats::default();
    metric::evaluate_metric(expr, params, limits, &NoData, Some(leaves), &mut stats, mem)
}

/// A source with no data (the leaves have it).
struct NoData;

impl Source for NoData {
    fn select(
        &self,
        _selector: &LogSelectorExpr,
        _start: i64,
        _end: i64,
        _limit: Option<super::SelectLimit>,
    ) -> Result<
        Box<dyn Iterator<Item = Result<skald_model::StreamBatch, EngineError>> + Send + '_>,
        EngineError,
    > {
        Ok(Box::new(std::iter::empty()))
    }
}

/// A leaf's matrix as the vectors of `steps` a range aggregation gives (series in label
/// order), and the bytes they hold, charged to `mem`.
pub(super) fn steps_of(
    matrix: &[Series],
    steps: &[i64],
    mem: &QueryMemory,
) -> Result<(Vec<Vector>, u64), EngineError> {
    let mut matrix: Vec<&Series> = matrix.iter().collect();
    matrix.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut held = steps.len() as u64 * VEC_BYTES;
    mem.charge(held)?;
    let mut out: Vec<Vector> = vec![Vec::new(); steps.len()];
    for s in matrix {
        let labels = Arc::new(s.labels.clone());
        let bytes = labels_bytes(&labels) + 16;
        mem.charge(bytes)?;
        held += bytes;
        let mut k = 0;
        for p in &s.samples {
            while k < steps.len() && out_ts(steps[k]) < p.ts {
                k += 1;
            }
            if k == steps.len() || out_ts(steps[k]) != p.ts {
                return Err(EngineError::Execution(format!(
                    "a range aggregation's answer has a sample at {}, which is no step of the query",
                    p.ts
                )));
            }
            held += push_point(mem, &mut out[k], Point { labels: labels.clone(), value: p.value })?;
            k += 1;
        }
    }
    Ok((out, held))
}
