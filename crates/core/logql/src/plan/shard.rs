//! Sharding by stream: which metric queries can be evaluated over disjoint sets of streams
//! (shards) and recombined into exactly the answer of the whole, and how.
//!
//! A shard evaluates a *leg* (the query itself, or its integer form for a rate) over the
//! streams of one shard only; [`ShardPlan::combine`] puts the shards' matrices together. A
//! series can get samples from streams in different shards (a pipeline that changes labels,
//! a grouping), so the partial values of one series at one step are combined, never
//! concatenated. The rule, and why each case is exact (bit for bit):
//!
//! - **Counts and bytes** (`count_over_time`, `bytes_over_time`, with or without their own
//!   `by`/`without`, bare or under any nesting of `sum [by|without]`): every value is an
//!   integer (a count of entries, a sum of line lengths), and the partials add. Integers below
//!   2^53 add exactly in f64 in any order, so the sum of the shards' values is the whole's.
//! - **Rates** (`rate`, `bytes_rate` without `unwrap`, with or without their own grouping,
//!   bare or directly under one `sum [by|without]`): the engine computes a rate as the
//!   integer total of the series (or of the group, as it pushes the grouping of a `sum` down
//!   into the range aggregation) divided once by the range in seconds
//!   (`total / (range_ns as f64 / 1e9)`). The leg is the same query with `count_over_time`
//!   (`bytes_over_time`) in place of the rate; the shards' integer totals are added, then
//!   divided by the same `range_ns as f64 / 1e9`: the same float operation on the same
//!   operands. A `sum` over a rate that has its own grouping (the engine then adds rates,
//!   floats, in its order) is not shardable, nor is a sum over a sum of rates.
//! - **Maxima and minima** (`max_over_time`, bare or with its grouping, under any nesting of
//!   `max [by|without]`; the same with `min_over_time` and `min`): the engine folds with
//!   `if v > m || m.is_nan() { v }`, whose result is the largest non-NaN value (NaN when all
//!   are NaN) whatever the order, so the maximum of the shards' maxima is the whole's. The
//!   one order-dependent case is a tie between `0.0` and `-0.0` (the first one wins): when
//!   the combined value of a step is a zero and two or more shards gave a value for that
//!   step, [`ShardPlan::combine`] says it cannot tell ([`Undecided`]) and the caller
//!   evaluates that part unsharded. (When one shard alone gave a value for a step, it read
//!   every sample the whole reads for that step, in the same order.)
//!
//! Anything else (`avg`, `count`, `topk`, quantiles, `sum_over_time`, unwrapped rates, binary
//! operations, `label_replace`, `offset`, log queries) is not shardable: [`shard_plan`]
//! returns `None` and the query runs unsharded.
//!
//! The series of the combined matrix are those with at least one sample in some shard, each
//! with the steps some shard has: exactly the whole's (a step has a value in the whole iff
//! some series of the group has samples in its window, iff some shard has). Order, the
//! series limit and splitting by time are [`merge_matrix`](super::merge_matrix)'s and
//! [`check_series_limit`](super::check_series_limit)'s, applied to the combined parts.

use std::collections::{BTreeMap, HashMap};

use skald_model::{Labels, Sample};

use crate::engine::Series;
use crate::syntax::ast::{Expr, LogRangeExpr, LogSelectorExpr, RangeOp, SampleExpr, VectorOp};

/// How the shards' partial values of one series at one step are combined.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Combine {
    /// Integer partials that add (counts, bytes).
    Add,
    /// Integer partials that add, the total then divided by this range in seconds (a rate).
    AddThenDivide(f64),
    /// Partials combined by their maximum (`max_over_time`, `max`).
    Max,
    /// Partials combined by their minimum (`min_over_time`, `min`).
    Min,
}

/// How a shardable query runs sharded: the leg each shard evaluates, and how the shards'
/// answers combine into the whole's.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardPlan {
    /// What each shard evaluates (over its own streams).
    pub leg: Expr,
    /// How the shards' values combine.
    pub combine: Combine,
    /// The log selector the query reads (for the index statistics that size the shards).
    pub selector: LogSelectorExpr,
    /// The query's `[range]` (ns): the data a step reads starts this far before it.
    pub range_ns: i64,
}

/// The combination of the shards' answers was not decidable from them (a `0.0` / `-0.0`
/// tie of a maximum or minimum): evaluate the part unsharded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecided;

/// How `expr` runs sharded, or `None` when it is not in the shardable set (see the module).
pub fn shard_plan(expr: &Expr) -> Option<ShardPlan> {
    let Expr::Sample(e) = expr else { return None };
    let (leg, combine, range) = shard_sample(e)?;
    Some(ShardPlan {
        leg: Expr::Sample(leg),
        combine,
        selector: range.selector.clone(),
        range_ns: range.range_ns,
    })
}

/// A range aggregation that reads its data as the engine shards it: no `offset`.
fn plain_range(range: &LogRangeExpr) -> bool {
    range.offset_ns == 0
}

fn shard_sample(e: &SampleExpr) -> Option<(SampleExpr, Combine, &LogRangeExpr)> {
    match e {
        SampleExpr::Paren(inner) => {
            let (leg, c, r) = shard_sample(inner)?;
            Some((SampleExpr::Paren(Box::new(leg)), c, r))
        }
        SampleExpr::RangeAggregation { op, range, param, grouping } => {
            if !plain_range(range) {
                return None;
            }
            let counted = range.unwrap.is_none();
            let (leg_op, combine) = match op {
                RangeOp::CountOverTime | RangeOp::BytesOverTime if counted => (*op, Combine::Add),
                RangeOp::Rate if counted => (RangeOp::CountOverTime, per_second(range)),
                RangeOp::BytesRate if counted => (RangeOp::BytesOverTime, per_second(range)),
                RangeOp::MaxOverTime => (*op, Combine::Max),
                RangeOp::MinOverTime => (*op, Combine::Min),
                _ => return None,
            };
            let leg = SampleExpr::RangeAggregation {
                op: leg_op,
                range: range.clone(),
                param: *param,
                grouping: grouping.clone(),
            };
            Some((leg, combine, range))
        }
        SampleExpr::VectorAggregation { op, expr: inner, param, grouping } => {
            let (leg, c, r) = shard_sample(inner)?;
            let ok = match (op, c) {
                (VectorOp::Sum, Combine::Add) => true,
                // the engine pushes the sum's grouping into the rate: one integer total per
                // group, divided once (only when the rate has no grouping of its own)
                (VectorOp::Sum, Combine::AddThenDivide(_)) => {
                    matches!(unparen(inner), SampleExpr::RangeAggregation { grouping: None, .. })
                }
                (VectorOp::Max, Combine::Max) | (VectorOp::Min, Combine::Min) => true,
                _ => false,
            };
            if !ok {
                return None;
            }
            let leg = SampleExpr::VectorAggregation {
                op: *op,
                expr: Box::new(leg),
                param: *param,
                grouping: grouping.clone(),
            };
            // a sum over a rate: the partials are per-group totals, still divided once
            Some((leg, c, r))
        }
        _ => None,
    }
}

fn unparen(mut e: &SampleExpr) -> &SampleExpr {
    while let SampleExpr::Paren(inner) = e {
        e = inner;
    }
    e
}

fn per_second(range: &LogRangeExpr) -> Combine {
    // the engine's `range.range_ns as f64 / 1e9` (engine::range_fns)
    Combine::AddThenDivide(range.range_ns as f64 / 1e9)
}

/// One series' combined values: step -> (value, how many shards gave one).
type Steps = BTreeMap<i64, (f64, u32)>;

impl ShardPlan {
    /// The answer of the whole query over one part (one time split) from the shards' answers
    /// to the leg over that part (a matrix each, in any order): each series' values at each
    /// step combined ([`Combine`]). The series come out in no particular order
    /// ([`merge_matrix`](super::merge_matrix) orders them as the engine does).
    /// [`Undecided`] when a maximum or minimum ties `0.0` with `-0.0` across shards.
    pub fn combine(&self, parts: Vec<Vec<Series>>) -> Result<Vec<Series>, Undecided> {
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut acc: Vec<(Labels, Steps)> = Vec::new();
        for part in parts {
            for s in part {
                let i = match index.get(&s.labels) {
                    Some(&i) => i,
                    None => {
                        index.insert(s.labels.clone(), acc.len());
                        acc.push((s.labels, BTreeMap::new()));
                        acc.len() - 1
                    }
                };
                let steps = &mut acc[i].1;
                for p in s.samples {
                    match steps.get_mut(&p.ts) {
                        None => {
                            steps.insert(p.ts, (p.value, 1));
                        }
                        Some((v, n)) => {
                            *n += 1;
                            *v = match self.combine {
                                Combine::Add | Combine::AddThenDivide(_) => *v + p.value,
                                // the engine's folds: the largest (smallest) non-NaN value
                                Combine::Max if p.value > *v || v.is_nan() => p.value,
                                Combine::Min if p.value < *v || v.is_nan() => p.value,
                                Combine::Max | Combine::Min => *v,
                            };
                        }
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(acc.len());
        for (labels, steps) in acc {
            let mut samples = Vec::with_capacity(steps.len());
            for (ts, (v, n)) in steps {
                let value = match self.combine {
                    Combine::AddThenDivide(secs) => v / secs,
                    Combine::Max | Combine::Min if v == 0.0 && n > 1 => return Err(Undecided),
                    _ => v,
                };
                samples.push(Sample { ts, value });
            }
            out.push(Series { labels, samples });
        }
        Ok(out)
    }
}
