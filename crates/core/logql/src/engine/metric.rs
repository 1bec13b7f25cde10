//! Metric queries: range aggregations over log samples, evaluated at every step, and the
//! tree of vector operations above them.

use std::collections::HashMap;
use std::sync::Arc;

use skald_model::{LabelMatcher, Labels, MatchType, Sample};

use super::memory::{
    batch_bytes, extend_points, labels_bytes, push_point, QueryMemory, POINT_BYTES,
    SERIES_OVERHEAD, VEC_BYTES,
};
use super::ops;
use super::range_fns::{bucketed_value, range_value};

use super::{
    account, CancelCheck, EngineError, Leaves, Limits, QueryParams, QueryResult, Series, Source,
    Stats, StreamPart, VectorSample, WindowGrid,
};
use crate::log::SampleExtractor;
use crate::syntax::ast::{self, Grouping, LabelFilterExpr, RangeOp, SampleExpr, Stage, VectorOp};

/// The label carrying pipeline errors.
pub(super) const ERROR_LABEL: &str = "__error__";

/// Upper bound on evaluation steps, to keep a bad step from exhausting memory.
const MAX_STEPS: usize = 1_000_000;

/// One element of an instant vector during evaluation.
#[derive(Debug, Clone)]
pub(super) struct Point {
    /// Series labels (shared between steps).
    pub labels: Arc<Labels>,
    /// Value.
    pub value: f64,
}

/// An instant vector.
pub(super) type Vector = Vec<Point>;

/// What a sub-expression evaluates to.
pub(super) enum Value {
    /// A number literal (or a tree of them, folded).
    Scalar(f64),
    /// One vector per evaluation step.
    Steps(Vec<Vector>),
}

/// Evaluation timestamps (ns): `start, start+step, ... <= end`; just `start` when instant.
fn step_times(params: &QueryParams) -> Result<Vec<i64>, EngineError> {
    if params.instant || params.end <= params.start {
        return Ok(vec![params.start]);
    }
    let step = params.step_ns.max(1);
    let count = ((params.end - params.start) / step) as u128 + 1;
    if count > MAX_STEPS as u128 {
        return Err(EngineError::BadQuery(format!(
            "query would evaluate {count} steps; increase the step (at most {MAX_STEPS} are allowed)"
        )));
    }
    Ok((0..count as i64).map(|k| params.start + k * step).collect())
}

/// Timestamps as Loki reports them: truncated to milliseconds.
pub(super) fn out_ts(t: i64) -> i64 {
    t - t.rem_euclid(1_000_000)
}

/// Evaluates a metric query; its range aggregations from `leaves` when given (each leaf's
/// matrix computed elsewhere), else from `source`.
pub(super) fn evaluate_metric(
    expr: &SampleExpr,
    params: &QueryParams,
    limits: &Limits,
    source: &dyn Source,
    leaves: Option<&dyn Leaves>,
    stats: &mut Stats,
    mem: &QueryMemory,
) -> Result<QueryResult, EngineError> {
    let steps = step_times(params)?;
    mem.charge(steps.len() as u64 * 8)?;
    let mut ev = Evaluator { source, leaves, stats, steps: &steps, mem };
    let (value, held) = ev.eval(expr, None)?;
    let result = match value {
        Value::Scalar(v) => {
            if params.instant {
                Ok(QueryResult::Scalar { ts: params.start, value: v })
            } else {
                let samples = steps.iter().map(|&t| Sample { ts: out_ts(t), value: v }).collect();
                Ok(QueryResult::Matrix(vec![Series { labels: Labels::default(), samples }]))
            }
        }
        Value::Steps(vectors) => {
            if params.instant {
                let vec = vectors.into_iter().next().unwrap_or_default();
                if vec.len() > limits.max_query_series {
                    return Err(series_limit_error(limits.max_query_series));
                }
                let ts = out_ts(params.start);
                let mut out: Vec<VectorSample> = Vec::with_capacity(vec.len());
                for p in vec {
                    mem.charge(labels_bytes(&p.labels) + POINT_BYTES + 8)?;
                    out.push(VectorSample { labels: (*p.labels).clone(), ts, value: p.value });
                }
                if !has_sort(expr) {
                    out.sort_by(|a, b| a.labels.cmp(&b.labels));
                }
                mem.release(held);
                return Ok(QueryResult::Vector(out));
            }
            let mut index: HashMap<Arc<Labels>, usize> = HashMap::new();
            let mut series: Vec<Series> = Vec::new();
            let mut check = CancelCheck::new(source);
            for (k, vec) in vectors.into_iter().enumerate() {
                check.tick()?;
                if k == 0 && vec.len() > limits.max_query_series {
                    return Err(series_limit_error(limits.max_query_series));
                }
                let ts = out_ts(steps[k]);
                for p in vec {
                    let i = match index.get(&p.labels) {
                        Some(&i) => i,
                        None => {
                            mem.charge(labels_bytes(&p.labels) + SERIES_OVERHEAD)?;
                            index.insert(p.labels.clone(), series.len());
                            series
                                .push(Series { labels: (*p.labels).clone(), samples: Vec::new() });
                            if series.len() > limits.max_query_series {
                                return Err(series_limit_error(limits.max_query_series));
                            }
                            series.len() - 1
                        }
                    };
                    push_point(mem, &mut series[i].samples, Sample { ts, value: p.value })?;
                }
            }
            sort_matrix(
                &mut series,
                params.start,
                params.end,
                params.step_ns,
                crate::plan::max_range_of(expr),
            );
            Ok(QueryResult::Matrix(series))
        }
    };
    mem.release(held);
    result
}

/// The estimated memory of one step's vector as an operation left it: its points, and the
/// label sets no other vector shares (those it shares are already counted where they were
/// made).
fn vector_bytes(v: &Vector) -> u64 {
    VEC_BYTES
        + v.iter()
            .map(|p| {
                let own = if Arc::strong_count(&p.labels) == 1 {
                    labels_bytes(&p.labels) + 16
                } else {
                    0
                };
                POINT_BYTES + own
            })
            .sum::<u64>()
}

/// [`vector_bytes`] of every step of a value.
fn value_bytes(v: &Value) -> u64 {
    match v {
        Value::Scalar(_) => 0,
        Value::Steps(steps) => steps.iter().map(vector_bytes).sum(),
    }
}

/// Loki's message when a query returns too many series.
pub(crate) fn series_limit_error(max: usize) -> EngineError {
    EngineError::Limit(format!(
        "maximum number of series ({max}) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reducing the time range, or aggregating results with functions like sum(), count() or topk()"
    ))
}

/// Loki's "pipeline error" for a series that carries `__error__`.
fn pipeline_error(labels: &Labels) -> EngineError {
    let kind = labels.get(ERROR_LABEL).unwrap_or("");
    EngineError::Pipeline(format!(
        "pipeline error: '{kind}' for series: '{labels}'.\n\
         Use a label filter to intentionally skip this error. (e.g | __error__!=\"{kind}\").\n\
         To skip all potential errors you can match empty errors.(e.g __error__=\"\")\n\
         The label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )\n"
    ))
}

/// Loki's query frontend splits a range query at multiples of `split_queries_by_interval`
/// (1h by default). When the range spans more than one split, the frontend merges the parts
/// and orders series by their printed label set (so `{__error__="x"}` comes before `{}`, since
/// '_' < '}', and `{a="1", b="2"}` before `{a="1"}`); a single split keeps the engine's order,
/// by label names and values (`{a="1"}` first). Both orders are visible in Loki's answers.
/// With the step known (`step_ns > 0`), the splits are counted as Loki's frontend cuts them:
/// `start` and `end` moved to multiples of the step, then cut at the last evaluation before
/// each hour (or at every step when the step is an hour or longer). As in Loki's frontend,
/// the split interval widens to the query's largest `[range]` (`max_range_ns`, see
/// [`crate::plan::max_range`]) when that is longer than the hour.
pub(crate) fn sort_matrix(
    series: &mut [Series],
    start: i64,
    end: i64,
    step_ns: i64,
    max_range_ns: i64,
) {
    if splits_more_than_one(start, end, step_ns, max_range_ns) {
        series.sort_by_cached_key(|s| s.labels.to_string());
    } else {
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
    }
}

fn splits_more_than_one(start: i64, end: i64, step: i64, max_range: i64) -> bool {
    let split_ns = 3_600_000_000_000i64.max(max_range);
    if step <= 0 {
        return end.saturating_sub(1).div_euclid(split_ns) > start.div_euclid(split_ns);
    }
    let start = start - start.rem_euclid(step);
    let end = match end.rem_euclid(step) {
        0 => end,
        m => end.saturating_add(step - m),
    };
    if step >= split_ns {
        return end - start > step;
    }
    // Loki's nextIntervalBoundary: the last evaluation before the next split
    let next_split = (start.div_euclid(split_ns) + 1) * split_ns;
    let mut first_end = next_split - (next_split - start) % step;
    if first_end == next_split {
        first_end -= step;
    }
    first_end.saturating_add(step) < end
}

/// True when a `sort`/`sort_desc` appears anywhere: instant results then keep their order.
fn has_sort(e: &SampleExpr) -> bool {
    match e {
        SampleExpr::VectorAggregation { op, expr, .. } => {
            matches!(op, VectorOp::Sort | VectorOp::SortDesc) || has_sort(expr)
        }
        SampleExpr::Binary { lhs, rhs, .. } => has_sort(lhs) || has_sort(rhs),
        SampleExpr::LabelReplace { expr, .. } | SampleExpr::Paren(expr) => has_sort(expr),
        SampleExpr::RangeAggregation { .. } | SampleExpr::Literal(_) | SampleExpr::Vector(_) => {
            false
        }
    }
}

/// Strips parentheses.
pub(super) fn unparen(mut e: &SampleExpr) -> &SampleExpr {
    while let SampleExpr::Paren(inner) = e {
        e = inner;
    }
    e
}

/// Keeps (`by`) or drops (`without`) the grouping labels.
pub(super) fn group_labels(labels: &Labels, g: &Grouping) -> Labels {
    if g.without {
        let mut out = labels.clone();
        for n in &g.labels {
            out.remove(n);
        }
        out.remove("__name__");
        out
    } else {
        Labels::from_vec(labels.iter().filter(|l| g.labels.contains(&l.name)).cloned().collect())
    }
}

fn filter_refs_error(f: &LabelFilterExpr) -> bool {
    match f {
        LabelFilterExpr::And(a, b) | LabelFilterExpr::Or(a, b) => {
            filter_refs_error(a) || filter_refs_error(b)
        }
        LabelFilterExpr::Paren(a) => filter_refs_error(a),
        LabelFilterExpr::String(m) => m.name == ERROR_LABEL,
        LabelFilterExpr::Number { name, .. }
        | LabelFilterExpr::Duration { name, .. }
        | LabelFilterExpr::Bytes { name, .. }
        | LabelFilterExpr::Ip { name, .. } => name == ERROR_LABEL,
    }
}

/// Whether samples with `__error__` are kept as data rather than failing the query: Loki does
/// this when the (pushed-down) grouping or a label filter names `__error__`.
fn preserves_errors(grouping: Option<&Grouping>, range: &ast::LogRangeExpr) -> bool {
    let refs_error = range
        .selector
        .stages
        .iter()
        .any(|s| matches!(s, Stage::LabelFilter(f) if filter_refs_error(f)))
        || range.unwrap.as_ref().is_some_and(|u| u.post_filters.iter().any(filter_refs_error));
    match grouping {
        None => false,
        Some(g) if g.without => false,
        Some(g) => refs_error || g.labels.iter().any(|n| n == ERROR_LABEL),
    }
}

/// Labels of the `absent_over_time` series: the selector's equality matchers, minus names
/// that also appear in other matchers.
fn absent_labels(matchers: &[LabelMatcher]) -> Labels {
    let mut out = Labels::default();
    let mut drop = Vec::new();
    for m in matchers {
        if m.name == "__name__" {
            continue;
        }
        if m.op == MatchType::Equal && out.get(&m.name).is_none() {
            out.set(&m.name, &m.value);
        } else {
            drop.push(m.name.as_str());
        }
    }
    for n in drop {
        out.remove(n);
    }
    out
}

/// Samples collected for one output series of a range aggregation.
struct SeriesSamples {
    labels: Arc<Labels>,
    points: Vec<(i64, f64)>,
    sorted: bool,
    /// Counts from statistics: (bucket end, entries, line bytes), ascending once evaluated.
    buckets: Vec<(i64, u64, u64)>,
    /// Carries `__error__` that is not preserved: any value fails the query.
    failing: bool,
}

struct Evaluator<'a> {
    source: &'a dyn Source,
    leaves: Option<&'a dyn Leaves>,
    stats: &'a mut Stats,
    steps: &'a [i64],
    mem: &'a QueryMemory,
}

impl Evaluator<'_> {
    /// Evaluates `e`; also returns the bytes the value holds, charged to the query's memory
    /// (whoever consumes the value releases them).
    fn eval(
        &mut self,
        e: &SampleExpr,
        pushdown: Option<&Grouping>,
    ) -> Result<(Value, u64), EngineError> {
        self.source.check_canceled()?;
        match e {
            SampleExpr::Paren(inner) => self.eval(inner, pushdown),
            SampleExpr::Literal(v) => Ok((Value::Scalar(*v), 0)),
            SampleExpr::Vector(v) => {
                let bytes = self.steps.len() as u64 * (VEC_BYTES + POINT_BYTES + 16 + VEC_BYTES);
                self.mem.charge(bytes)?;
                let steps = self
                    .steps
                    .iter()
                    .map(|_| vec![Point { labels: Arc::new(Labels::default()), value: *v }])
                    .collect();
                Ok((Value::Steps(steps), bytes))
            }
            SampleExpr::RangeAggregation { op, range, param, grouping } => {
                let eff = grouping.as_ref().or(pushdown);
                let range = &*super::hints::effective_range(*op, range, eff)
                    .map_err(|e| EngineError::Pipeline(e.to_string()))?;
                let (steps, bytes) = match self.leaves {
                    Some(leaves) => {
                        let leaf = SampleExpr::RangeAggregation {
                            op: *op,
                            range: Box::new(range.clone()),
                            param: *param,
                            grouping: eff.cloned(),
                        };
                        super::leaves::steps_of(leaves.leaf(&leaf)?, self.steps, self.mem)?
                    }
                    None => self.range_aggregation(*op, range, *param, eff)?,
                };
                Ok((Value::Steps(steps), bytes))
            }
            SampleExpr::VectorAggregation { op, expr, param, grouping } => {
                let by_nothing = Grouping { without: false, labels: Vec::new() };
                let g = grouping.as_ref().unwrap_or(&by_nothing);
                let push = match unparen(expr) {
                    SampleExpr::RangeAggregation { op: rop, grouping: None, .. }
                        if *op == VectorOp::Sum
                            && matches!(
                                rop,
                                RangeOp::BytesOverTime
                                    | RangeOp::BytesRate
                                    | RangeOp::SumOverTime
                                    | RangeOp::Rate
                                    | RangeOp::CountOverTime
                            ) =>
                    {
                        Some(g)
                    }
                    _ => None,
                };
                let mut avg = ops::AvgArithmetic::for_inner(expr);
                let totals = match avg {
                    ops::AvgArithmetic::SumOverCount { .. } if *op == VectorOp::Avg => {
                        ops::totals_for_avg(expr)
                    }
                    _ => None,
                };
                let (inner, held) = match totals {
                    Some((totals, secs)) => {
                        avg = ops::AvgArithmetic::SumOverCount { per_second: Some(secs) };
                        self.eval(&totals, push)?
                    }
                    None => self.eval(expr, push)?,
                };
                let Value::Steps(vectors) = inner else {
                    return Err(EngineError::BadQuery(
                        "vector aggregations need a vector argument, not a scalar".to_string(),
                    ));
                };
                let mut check = CancelCheck::new(self.source);
                let mut bytes = 0;
                let mut out = Vec::with_capacity(vectors.len());
                for v in vectors {
                    check.tick()?;
                    let agg = ops::vector_aggregation(*op, *param, g, v, avg, self.mem)?;
                    let b = vector_bytes(&agg);
                    self.mem.charge(b)?;
                    bytes += b;
                    out.push(agg);
                }
                self.mem.release(held);
                Ok((Value::Steps(out), bytes))
            }
            SampleExpr::Binary { op, lhs, rhs, return_bool, matching } => {
                let (l, lb) = self.eval(lhs, None)?;
                let (r, rb) = self.eval(rhs, None)?;
                let out = ops::binary(*op, l, r, *return_bool, matching)?;
                let bytes = value_bytes(&out);
                self.mem.charge(bytes)?;
                self.mem.release(lb + rb);
                Ok((out, bytes))
            }
            SampleExpr::LabelReplace { expr, dst, replacement, src, regex } => {
                let (inner, held) = self.eval(expr, None)?;
                let Value::Steps(vectors) = inner else {
                    return Err(EngineError::BadQuery(
                        "label_replace needs a vector argument".to_string(),
                    ));
                };
                let out = Value::Steps(ops::label_replace(vectors, dst, replacement, src, regex)?);
                let bytes = value_bytes(&out);
                self.mem.charge(bytes)?;
                self.mem.release(held);
                Ok((out, bytes))
            }
        }
    }

    /// The windows of `op` over `range` when the source may answer them from entry counts:
    /// `count_over_time`, `bytes_over_time`, `rate` and `bytes_rate` over a selector without
    /// pipeline stages or unwrap, whose samples depend only on timestamps and line lengths.
    fn window_grid(&self, op: RangeOp, range: &ast::LogRangeExpr) -> Option<WindowGrid> {
        let countable = matches!(
            op,
            RangeOp::CountOverTime | RangeOp::BytesOverTime | RangeOp::Rate | RangeOp::BytesRate
        );
        if !countable || range.unwrap.is_some() || !range.selector.stages.is_empty() {
            return None;
        }
        let first = *self.steps.first()?;
        let step = match self.steps {
            [a, b, ..] => b - a,
            _ => 0,
        };
        Some(WindowGrid {
            first_end: first.saturating_sub(range.offset_ns),
            step,
            count: self.steps.len(),
            range: range.range_ns,
        })
    }

    fn range_aggregation(
        &mut self,
        op: RangeOp,
        range: &ast::LogRangeExpr,
        param: Option<f64>,
        grouping: Option<&Grouping>,
    ) -> Result<(Vec<Vector>, u64), EngineError> {
        let mem = self.mem;
        // what this function holds only while it runs (batches, points, the series index)
        // and what its answer keeps (the vectors and the series' label sets)
        let mut held_tmp = 0u64;
        let mut held_out = 0u64;
        let preserve = preserves_errors(grouping, range);
        let extractor = SampleExtractor::with_grouping(range, op, grouping)
            .map_err(|e| EngineError::Pipeline(e.to_string()))?;
        let first = self.steps.first().copied().unwrap_or(0);
        let last = self.steps.last().copied().unwrap_or(0);
        let from = first.saturating_sub(range.offset_ns).saturating_sub(range.range_ns);
        let to = last.saturating_sub(range.offset_ns).saturating_add(1);

        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut series: Vec<SeriesSamples> = Vec::new();
        let mut series_of = |labels: Labels,
                             held_tmp: &mut u64,
                             held_out: &mut u64|
         -> Result<usize, EngineError> {
            let failing = !preserve && labels.get(ERROR_LABEL).is_some();
            let key = match grouping {
                Some(g) if !failing => group_labels(&labels, g),
                _ => labels,
            };
            Ok(match index.get(&key) {
                Some(&i) => i,
                None => {
                    // the index's copy of the key and the series' own (an `Arc` the answer keeps)
                    let key_bytes = labels_bytes(&key);
                    mem.charge(key_bytes + SERIES_OVERHEAD)?;
                    *held_tmp += key_bytes + SERIES_OVERHEAD;
                    mem.charge(key_bytes + 16)?;
                    *held_out += key_bytes + 16;
                    index.insert(key.clone(), series.len());
                    series.push(SeriesSamples {
                        labels: Arc::new(key),
                        points: Vec::new(),
                        sorted: true,
                        buckets: Vec::new(),
                        failing,
                    });
                    series.len() - 1
                }
            })
        };
        // Without parsers or unwrap an entry's series only changes with its structured
        // metadata: resolve it once per run of equal metadata instead of once per entry.
        let fast = extractor.labels_depend_on_metadata_only();
        let mut points: Vec<Vec<(i64, f64)>> = Vec::new();
        let mut buckets: Vec<Vec<(i64, u64, u64)>> = Vec::new();
        let bucketed = match self.window_grid(op, range) {
            Some(grid) => self.source.select_bucket_counts(range, op, from, to, &grid)?,
            None => None,
        };
        let (pushed, counted, selected) = match bucketed {
            Some(b) => (b.series, b.counted, b.rest),
            None => {
                let (series, counted, rest) =
                    match self.source.select_samples(range, op, param, grouping, from, to)? {
                        Some(p) => (p.series, p.counted, p.rest),
                        None => (
                            Vec::new(),
                            std::collections::HashSet::new(),
                            self.source.select(&range.selector, from, to, None)?,
                        ),
                    };
                let rest: Box<dyn Iterator<Item = Result<StreamPart, EngineError>> + Send + '_> =
                    Box::new(rest.map(|r| r.map(StreamPart::Entries)));
                (series, counted, rest)
            }
        };
        for batch in pushed {
            let i = series_of(batch.labels, &mut held_tmp, &mut held_out)?;
            if points.len() <= i {
                points.resize_with(i + 1, Vec::new);
            }
            let kept = batch.points.into_iter().filter(|&(t, _)| t > from && t < to);
            let before = points[i].len();
            held_tmp += extend_points(mem, &mut points[i], kept)?;
            self.stats.total_post_filter_lines += (points[i].len() - before) as u64;
        }
        // Only an entry at a timestamp some pushed sample has can be one already counted.
        let counted_ts: std::collections::HashSet<i64> = counted.iter().map(|c| c.0).collect();
        let counted_bytes = (counted.len() as u64) * 32 + (counted_ts.len() as u64) * 16;
        mem.charge(counted_bytes)?;
        held_tmp += counted_bytes;
        let mut check = CancelCheck::new(self.source);
        for part in selected {
            let stream = match part? {
                StreamPart::Entries(stream) => stream,
                StreamPart::Buckets(b) => {
                    // the series of each metadata set (no stages run: stream labels and
                    // metadata), and the metadata bytes an entry with it accounts for
                    let mut sx = extractor.for_stream(&b.labels);
                    let mut set_series = Vec::with_capacity(b.metadata_sets.len());
                    for set in &b.metadata_sets {
                        let i = match sx.process(0, b"", set) {
                            Some((_, labels)) => {
                                Some(series_of(labels, &mut held_tmp, &mut held_out)?)
                            }
                            None => None,
                        };
                        let bytes: usize = set.iter().map(|l| l.name.len() + l.value.len()).sum();
                        set_series.push((i, bytes as u64));
                    }
                    for c in b.buckets {
                        check.tick()?;
                        if c.end <= from || c.end >= to || c.entries == 0 {
                            continue;
                        }
                        let Some(&(series, metadata_bytes)) = set_series.get(c.set as usize) else {
                            return Err(EngineError::Source(format!(
                                "bucket refers to metadata set {} of {}",
                                c.set,
                                set_series.len()
                            )));
                        };
                        self.stats.total_lines_processed += c.entries;
                        self.stats.total_bytes_processed += c.line_bytes;
                        self.stats.total_structured_metadata_bytes_processed +=
                            c.entries * metadata_bytes;
                        let Some(i) = series else { continue };
                        self.stats.total_post_filter_lines += c.entries;
                        if buckets.len() <= i {
                            buckets.resize_with(i + 1, Vec::new);
                        }
                        mem.charge(24)?;
                        held_tmp += 24;
                        buckets[i].push((c.end, c.entries, c.line_bytes));
                    }
                    continue;
                }
            };
            // the batch is held while its entries are processed
            let batch_held = batch_bytes(&stream);
            mem.charge(batch_held)?;
            let fp = if counted.is_empty() { 0 } else { stream.labels.hash() };
            let mut sx = extractor.for_stream(&stream.labels);
            // Series of each metadata set of this batch, once known (fast path only).
            let mut seen: Vec<Option<usize>> =
                if fast { vec![None; stream.entries.metadata_sets()] } else { Vec::new() };
            for e in stream.entries.iter() {
                check.tick()?;
                if e.ts <= from || e.ts >= to {
                    continue;
                }
                if counted_ts.contains(&e.ts)
                    && counted.contains(&(e.ts, skald_model::entry_hash(fp, e.line)))
                {
                    continue;
                }
                account(self.stats, &e);
                let cached = seen.get(e.metadata_id as usize).copied().flatten();
                let (value, i) = match cached {
                    Some(i) => match extractor.line_value(e.line) {
                        Some(v) => (v, i),
                        None => continue,
                    },
                    None => {
                        let Some((value, labels)) = sx.process(e.ts, e.line, e.structured_metadata)
                        else {
                            continue;
                        };
                        let i = series_of(labels, &mut held_tmp, &mut held_out)?;
                        if let Some(slot) = seen.get_mut(e.metadata_id as usize) {
                            *slot = Some(i);
                        }
                        (value, i)
                    }
                };
                self.stats.total_post_filter_lines += 1;
                if points.len() <= i {
                    points.resize_with(i + 1, Vec::new);
                }
                held_tmp += push_point(mem, &mut points[i], (e.ts, value))?;
            }
            mem.release(batch_held);
        }
        for (s, p) in series.iter_mut().zip(points) {
            s.sorted = p.windows(2).all(|w| w[0].0 <= w[1].0);
            s.points = p;
        }
        for (s, mut b) in series.iter_mut().zip(buckets) {
            b.sort_unstable_by_key(|c| c.0);
            s.buckets = b;
        }

        // Series in label order, whatever order the source produced them in (pushed-down
        // samples arrive per series, in no particular order): results and the series a
        // pipeline error names do not depend on it.
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let steps_bytes = self.steps.len() as u64 * VEC_BYTES;
        mem.charge(steps_bytes)?;
        held_out += steps_bytes;
        let mut out: Vec<Vector> = vec![Vec::new(); self.steps.len()];
        for s in &mut series {
            if !s.sorted {
                s.points.sort_by_key(|&(t, _)| t);
            }
            let (mut lo, mut hi) = (0usize, 0usize);
            // buckets in the window and their sums, moved along like `lo..hi`
            let (mut blo, mut bhi, mut entries, mut bytes) = (0usize, 0usize, 0u64, 0u64);
            for (k, &t) in self.steps.iter().enumerate() {
                check.tick()?;
                let end = t.saturating_sub(range.offset_ns);
                let start = end.saturating_sub(range.range_ns);
                while hi < s.points.len() && s.points[hi].0 <= end {
                    hi += 1;
                }
                while lo < hi && s.points[lo].0 <= start {
                    lo += 1;
                }
                while bhi < s.buckets.len() && s.buckets[bhi].0 <= end {
                    entries += s.buckets[bhi].1;
                    bytes += s.buckets[bhi].2;
                    bhi += 1;
                }
                while blo < bhi && s.buckets[blo].0 <= start {
                    entries -= s.buckets[blo].1;
                    bytes -= s.buckets[blo].2;
                    blo += 1;
                }
                if lo >= hi && entries == 0 {
                    continue;
                }
                if s.failing {
                    return Err(pipeline_error(&s.labels));
                }
                let window = &s.points[lo..hi];
                // quantile_over_time sorts a copy of the window
                let copy =
                    if op == RangeOp::QuantileOverTime { window.len() as u64 * 8 } else { 0 };
                mem.charge(copy)?;
                let value = if s.buckets.is_empty() {
                    range_value(op, window, range, param, end)?
                } else {
                    bucketed_value(op, window, entries, bytes, range)?
                };
                mem.release(copy);
                held_out +=
                    push_point(mem, &mut out[k], Point { labels: s.labels.clone(), value })?;
            }
        }

        if op == RangeOp::AbsentOverTime {
            let labels = Arc::new(absent_labels(&range.selector.matchers));
            for v in &mut out {
                if v.is_empty() {
                    v.push(Point { labels: labels.clone(), value: 1.0 });
                } else {
                    v.clear();
                }
            }
        }
        // the points and the index go away here; the answer keeps its vectors and labels
        drop(series);
        mem.release(held_tmp);
        Ok((out, held_out))
    }
}
