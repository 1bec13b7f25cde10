//! Sharding by stream: evaluating a metric query over disjoint sets of streams (shards) and
//! recombining exactly the answer of the whole.
//!
//! The engine evaluates a metric query from its range aggregations, each with the grouping it
//! is evaluated with ([`range_aggregations`]: the query's own, or the one a `sum` pushes down
//! into it). A sharded query sends each of them, as a *leg* (the range aggregation itself, or
//! its integer form for a rate), to every shard; combines the shards' matrices of each leg
//! into the range aggregation's matrix over all the streams ([`ShardPlan::combine`]); and
//! evaluates the query over those ([`ShardPlan::evaluate`], the engine's
//! [`evaluate_leaves`]). Every operation above the range aggregations (`sum`, `avg`, `count`,
//! `topk`, `quantile`, `sort`, binary operations, `label_replace`, ...) then sees exactly the
//! vectors the whole evaluation sees, in the same order, so the answer is the whole's bit for
//! bit whenever the combined matrices are. A series can get samples from streams in different
//! shards (a grouping, a pipeline that changes labels), so the partial values of one series
//! at one step are combined, never concatenated, except where noted. The rule for a range
//! aggregation, and why each case is exact:
//!
//! - **Counts and bytes** (`count_over_time`, `bytes_over_time`, any grouping): every value
//!   is an integer (a count of entries, a sum of line lengths) and the partials add. Integers
//!   below 2^53 add exactly in f64 in any order.
//! - **Rates** (`rate`, `bytes_rate` without `unwrap`, any grouping): the engine computes a
//!   rate as the integer total of the series (or group) divided once by the range in seconds
//!   (`total / (range_ns as f64 / 1e9)`). The leg is the same range aggregation with
//!   `count_over_time` (`bytes_over_time`) in its place; the shards' totals are added, then
//!   divided by the same `range_ns as f64 / 1e9`: the same float operation on the same
//!   operands.
//! - **Maxima and minima** (`max_over_time`, `min_over_time`, any grouping, any `unwrap`):
//!   the engine folds with `if v > m || m.is_nan() { v }`, whose result is the largest
//!   non-NaN value (NaN when all are NaN) whatever the order, so the maximum of the shards'
//!   maxima is the whole's. The one order-dependent case is a tie between `0.0` and `-0.0`
//!   (the first one wins): when the combined value of a step is a zero and two or more
//!   shards gave a value for it, [`ShardPlan::combine`] says it cannot tell ([`Undecided`])
//!   and the caller evaluates that part unsharded.
//! - **Any other range aggregation over one stream's entries** (`sum_over_time`,
//!   `avg_over_time`, `quantile_over_time`, `first_over_time`, `last_over_time`,
//!   `stddev_over_time`, `stdvar_over_time`, `rate_counter`, `rate` with `unwrap`), without a
//!   grouping and with a pipeline that keeps the stream labels on every series (no `keep`,
//!   no `drop` of anything but `__error__` and `__error_details__`, no `label_format`, no
//!   `unpack`): each of its series is made of one stream's entries, so the shard holding the
//!   stream computes the series whole, and the shards' series are put together
//!   ([`Combine::Concat`]). Only where the shards' series are no more than the answer's or
//!   the streams' (the query is this range aggregation alone, or its pipeline has no parser):
//!   under an aggregation, a parser's labels could make a series of every line, all sent
//!   to the frontend where one querier would have aggregated them. Should a series still come from streams of two shards (an
//!   `unwrap` of a stream label removes that label from the series), it is in both shards'
//!   answers and [`ShardPlan::combine`] says [`Undecided`]. A series in one shard's answer
//!   only got no sample from another shard's streams at any step of the part (it would have
//!   a value there), so its values are the whole's.
//!
//! Not shardable: `absent_over_time` (its answer is about all the streams), a leg not
//! covered above (a grouped `sum_over_time`, say), log queries, literals
//! and `vector()` alone. A query with one range aggregation that is not shardable runs
//! unsharded: [`shard_plan`] returns `None`.
//!
//! The series of a combined matrix are those with at least one sample in some shard, each
//! with the steps some shard has: exactly the range aggregation's (a step has a value iff
//! some stream of the series has samples in its window, iff some shard has). Order, the
//! series limit and splitting by time are [`merge_matrix`](super::merge_matrix)'s and
//! [`check_series_limit`](super::check_series_limit)'s, applied to the evaluated parts.

use std::collections::{BTreeMap, HashMap};

use skald_model::{Labels, Sample};

use crate::engine::{
    evaluate_leaves, range_aggregations, EngineError, Leaves, Limits, QueryMemory, QueryParams,
    QueryResult, Series,
};
use crate::syntax::ast::{
    Expr, LogRangeExpr, LogSelectorExpr, NamedMatcher, ParserStage, RangeOp, SampleExpr, Stage,
    VectorOp,
};

/// How the shards' matrices of one leg combine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Combine {
    /// Integer partials that add (counts, bytes).
    Add,
    /// Integer partials that add, the total then divided by this range in seconds (a rate).
    AddThenDivide(f64),
    /// Partials combined by their maximum (`max_over_time`).
    Max,
    /// Partials combined by their minimum (`min_over_time`).
    Min,
    /// Whole series, each from one shard: put together (a series in two shards' answers is
    /// [`Undecided`]).
    Concat,
}

/// One range aggregation of a sharded query, as the shards evaluate it.
#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    /// The range aggregation the query is evaluated from (with its effective grouping).
    pub leaf: SampleExpr,
    /// What each shard evaluates over its own streams.
    pub query: Expr,
    /// How the shards' matrices combine into the leaf's.
    pub combine: Combine,
}

/// How a shardable query runs sharded: its legs, and the query evaluated over them.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardPlan {
    /// The whole query.
    pub expr: SampleExpr,
    /// Its range aggregations, in the order the engine asks for them.
    pub legs: Vec<Leg>,
}

/// The combination of the shards' answers was not decidable from them (a `0.0` / `-0.0`
/// tie of a maximum or minimum, a series in two shards' answers of a concatenated leg):
/// evaluate the part unsharded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecided;

/// How `expr` runs sharded, or `None` when it is not shardable (see the module).
pub fn shard_plan(expr: &Expr) -> Option<ShardPlan> {
    let Expr::Sample(e) = expr else { return None };
    let leaves = range_aggregations(e)?;
    if leaves.is_empty() {
        return None;
    }
    // the query is one range aggregation: its series are the answer's
    let alone = matches!(unparen(e), SampleExpr::RangeAggregation { .. });
    let legs = leaves.into_iter().map(|l| leg(l, alone)).collect::<Option<Vec<_>>>()?;
    Some(ShardPlan { expr: e.clone(), legs })
}

/// How one range aggregation (with its effective grouping) runs on the shards.
fn leg(leaf: SampleExpr, alone: bool) -> Option<Leg> {
    let SampleExpr::RangeAggregation { op, range, param, grouping } = &leaf else {
        return None;
    };
    let counted = range.unwrap.is_none();
    let (leg_op, combine) = match op {
        RangeOp::CountOverTime | RangeOp::BytesOverTime if counted => (*op, Combine::Add),
        RangeOp::Rate if counted => (RangeOp::CountOverTime, per_second(range)),
        RangeOp::BytesRate if counted => (RangeOp::BytesOverTime, per_second(range)),
        RangeOp::MaxOverTime => (*op, Combine::Max),
        RangeOp::MinOverTime => (*op, Combine::Min),
        RangeOp::AbsentOverTime => return None,
        _ if grouping.is_none()
            && keeps_stream_labels(&range.selector)
            && (alone || !has_parser(&range.selector)) =>
        {
            (*op, Combine::Concat)
        }
        _ => return None,
    };
    let bare = SampleExpr::RangeAggregation {
        op: leg_op,
        range: range.clone(),
        param: *param,
        grouping: None,
    };
    let query = match grouping {
        None => bare,
        // with the grouping of a `sum` pushed down into a count or a rate (which cannot be
        // written with one): the same `sum` over it, which the engine evaluates as the grouped
        // range aggregation, then "adds" one value per group (the value itself)
        Some(g) if matches!(combine, Combine::Add | Combine::AddThenDivide(_)) => {
            SampleExpr::VectorAggregation {
                op: VectorOp::Sum,
                expr: Box::new(bare),
                param: None,
                grouping: Some(g.clone()),
            }
        }
        Some(g) => SampleExpr::RangeAggregation {
            op: leg_op,
            range: range.clone(),
            param: *param,
            grouping: Some(g.clone()),
        },
    };
    Some(Leg { leaf, query: Expr::Sample(query), combine })
}

/// Whether every series `selector`'s pipeline makes carries its stream's labels (parsers add
/// labels, renaming those that clash; filters and `line_format` change none).
fn keeps_stream_labels(selector: &LogSelectorExpr) -> bool {
    let error_label = |m: &NamedMatcher| {
        let name = match m {
            NamedMatcher::Name(n) => n.as_str(),
            NamedMatcher::Matcher(m) => m.name.as_str(),
        };
        name == "__error__" || name == "__error_details__"
    };
    selector.stages.iter().all(|s| match s {
        Stage::LineFilter(_) | Stage::LabelFilter(_) | Stage::LineFormat(_) | Stage::Decolorize => {
            true
        }
        Stage::Parser(p) => !matches!(p, ParserStage::Unpack),
        Stage::Drop(ms) => ms.iter().all(error_label),
        Stage::LabelFormat(_) | Stage::Keep(_) => false,
    })
}

/// Whether `selector`'s pipeline parses lines into labels (its series may then be many more
/// than its streams).
fn has_parser(selector: &LogSelectorExpr) -> bool {
    selector.stages.iter().any(|s| matches!(s, Stage::Parser(_)))
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
    /// The selector whose index statistics size the shards (the first leg's).
    pub fn selector(&self) -> Option<&LogSelectorExpr> {
        self.legs.iter().find_map(|l| match &l.leaf {
            SampleExpr::RangeAggregation { range, .. } => Some(&range.selector),
            _ => None,
        })
    }

    /// The largest `[range]` and `offset` of the legs (ns): a step reads data from at most
    /// this far before it.
    pub fn range_ns(&self) -> i64 {
        self.legs
            .iter()
            .filter_map(|l| match &l.leaf {
                SampleExpr::RangeAggregation { range, .. } => {
                    Some(range.range_ns.saturating_add(range.offset_ns.max(0)))
                }
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// The matrix of leg `leg`'s range aggregation over one part (one time split) from the
    /// shards' answers to the leg over that part (a matrix each, in any order): each series'
    /// values at each step combined ([`Combine`]). The series come out in no particular
    /// order. [`Undecided`] when a maximum or minimum ties `0.0` with `-0.0` across shards, or
    /// a concatenated series is in two shards' answers.
    pub fn combine(&self, leg: usize, parts: Vec<Vec<Series>>) -> Result<Vec<Series>, Undecided> {
        let combine = self.legs.get(leg).map_or(Combine::Concat, |l| l.combine);
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut acc: Vec<(Labels, Steps)> = Vec::new();
        for part in parts {
            for s in part {
                let i = match index.get(&s.labels) {
                    Some(_) if combine == Combine::Concat => return Err(Undecided),
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
                            *v = match combine {
                                Combine::Add | Combine::AddThenDivide(_) => *v + p.value,
                                // the engine's folds: the largest (smallest) non-NaN value
                                Combine::Max if p.value > *v || v.is_nan() => p.value,
                                Combine::Min if p.value < *v || v.is_nan() => p.value,
                                Combine::Max | Combine::Min | Combine::Concat => *v,
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
                let value = match combine {
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

    /// The whole query's answer over one part (`params`: its steps) from each leg's combined
    /// matrix (`combined[i]` for leg `i`), evaluated within `limits` and `mem` as a querier
    /// evaluates the part.
    pub fn evaluate(
        &self,
        combined: Vec<Vec<Series>>,
        params: &QueryParams,
        limits: &Limits,
        mem: &QueryMemory,
    ) -> Result<QueryResult, EngineError> {
        struct Combined<'a>(Vec<(&'a SampleExpr, Vec<Series>)>);
        impl Leaves for Combined<'_> {
            fn leaf(&self, leaf: &SampleExpr) -> Result<&[Series], EngineError> {
                match self.0.iter().find(|(l, _)| *l == leaf) {
                    Some((_, m)) => Ok(m),
                    None => Err(EngineError::Execution(format!(
                        "the sharded query has no answer for {leaf}"
                    ))),
                }
            }
        }
        let leaves = Combined(self.legs.iter().map(|l| &l.leaf).zip(combined).collect());
        evaluate_leaves(&self.expr, params, limits, &leaves, mem)
    }
}
