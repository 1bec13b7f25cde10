//! Operations on instant vectors: vector aggregations, binary operations, `label_replace`.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use regex::Regex;
use skald_model::Labels;

use super::memory::{labels_bytes, QueryMemory, SERIES_OVERHEAD};
use super::metric::{group_labels, unparen, Point, Value, Vector};
use super::EngineError;
use crate::syntax::ast::{
    BinOp, GroupSide, Grouping, LabelFormatOp, RangeOp, SampleExpr, Stage, VectorMatching, VectorOp,
};

/// Running state of one aggregation group.
struct Group {
    labels: Arc<Labels>,
    value: f64,
    mean: f64,
    count: usize,
    members: Vec<Point>,
}

/// Orders by value with NaN always last; `desc` flips the order of numbers only.
fn by_value(a: f64, b: f64, desc: bool) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ if desc => b.total_cmp(&a),
        _ => a.total_cmp(&b),
    }
}

/// How `avg` adds up a group, as Loki computes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum AvgArithmetic {
    /// Loki's engine: a running mean, `mean += (v - mean) / n`, in the vector's order (no
    /// special case for infinities: `avg(+Inf, 1)` is NaN, as in Loki).
    RunningMean,
    /// Loki's query frontend rewrites `avg(x)` into `sum(x) / count(x)` whenever `x` is
    /// shardable (see [`loki_shardable`]), so the answer is the sum divided by the count:
    /// for integer values (counts, bytes) exactly the correctly rounded mean. With
    /// `per_second`, the values are totals over a range of that many seconds (see
    /// [`totals_for_avg`]): the sum is divided by it before the count, as Loki divides.
    SumOverCount {
        /// The range in seconds the summed totals are divided by.
        per_second: Option<f64>,
    },
}

impl AvgArithmetic {
    /// The arithmetic Loki uses for `avg` over `inner`: Loki's `VectorAggregationExpr.Shardable`
    /// for `avg` asks that `inner` be shardable and not reduce labels.
    pub(super) fn for_inner(inner: &SampleExpr) -> Self {
        if loki_shardable(inner) && !reduces_labels(inner) {
            AvgArithmetic::SumOverCount { per_second: None }
        } else {
            AvgArithmetic::RunningMean
        }
    }
}

/// For `avg(rate(...))` and `avg(bytes_rate(...))` (no grouping inside) that Loki shards:
/// Loki's frontend splits a rate into its total over the range divided by the range
/// (`count_over_time`, `sum_over_time` when unwrapped, `bytes_over_time`), and the sum of
/// totals is divided once. Returns the total's expression and the range in seconds.
pub(super) fn totals_for_avg(inner: &SampleExpr) -> Option<(SampleExpr, f64)> {
    let SampleExpr::RangeAggregation { op, range, param, grouping: None } = unparen(inner) else {
        return None;
    };
    let total = match op {
        RangeOp::Rate if range.unwrap.is_some() => RangeOp::SumOverTime,
        RangeOp::Rate => RangeOp::CountOverTime,
        RangeOp::BytesRate => RangeOp::BytesOverTime,
        _ => return None,
    };
    let e = SampleExpr::RangeAggregation {
        op: total,
        range: range.clone(),
        param: *param,
        grouping: None,
    };
    Some((e, range.range_ns as f64 / 1e9))
}

/// Whether Loki's shard mapper can split `e` across shards (its `Shardable`): range
/// aggregations whose operator merges across streams, the vector aggregations `sum`, `avg`,
/// `count`, `max`, `min` over such, `+` and `*` of such and literals. Not `label_replace`,
/// `topk`, `sort`, other binary operators, or `quantile_over_time` and friends (sharded only
/// with Loki's approximate options, which are off by default).
pub(super) fn loki_shardable(e: &SampleExpr) -> bool {
    match e {
        SampleExpr::Paren(inner) => loki_shardable(inner),
        SampleExpr::Literal(_) => true,
        SampleExpr::Vector(_) | SampleExpr::LabelReplace { .. } => false,
        SampleExpr::RangeAggregation { op, .. } => matches!(
            op,
            RangeOp::CountOverTime
                | RangeOp::Rate
                | RangeOp::BytesOverTime
                | RangeOp::BytesRate
                | RangeOp::SumOverTime
                | RangeOp::MaxOverTime
                | RangeOp::MinOverTime
                | RangeOp::AvgOverTime
                | RangeOp::FirstOverTime
                | RangeOp::LastOverTime
        ),
        SampleExpr::VectorAggregation { op, expr, .. } => match op {
            VectorOp::Sum | VectorOp::Max | VectorOp::Min => loki_shardable(expr),
            VectorOp::Avg | VectorOp::Count => loki_shardable(expr) && !reduces_labels(expr),
            _ => false,
        },
        SampleExpr::Binary { op, lhs, rhs, .. } => {
            matches!(op, BinOp::Add | BinOp::Mul) && loki_shardable(lhs) && loki_shardable(rhs)
        }
    }
}

/// Loki's `ReducesLabels`: whether `e` anywhere groups by or without some labels, or keeps,
/// drops or renames labels (series from different shards could then merge).
pub(super) fn reduces_labels(e: &SampleExpr) -> bool {
    let grouping = |g: &Option<Grouping>| g.as_ref().is_some_and(|g| !g.labels.is_empty());
    match e {
        SampleExpr::Paren(inner) | SampleExpr::LabelReplace { expr: inner, .. } => {
            reduces_labels(inner)
        }
        SampleExpr::Literal(_) | SampleExpr::Vector(_) => false,
        SampleExpr::RangeAggregation { range, grouping: g, .. } => {
            grouping(g)
                || range.selector.stages.iter().any(|s| match s {
                    Stage::Keep(_) | Stage::Drop(_) => true,
                    Stage::LabelFormat(ops) => {
                        ops.iter().any(|op| matches!(op, LabelFormatOp::Rename { .. }))
                    }
                    _ => false,
                })
        }
        SampleExpr::VectorAggregation { expr, grouping: g, .. } => {
            grouping(g) || reduces_labels(expr)
        }
        SampleExpr::Binary { lhs, rhs, .. } => reduces_labels(lhs) || reduces_labels(rhs),
    }
}

/// Applies a vector aggregation to one step's vector. The groups' index is charged to `mem`
/// while it is built and released at the end (the caller charges the output).
pub(super) fn vector_aggregation(
    op: VectorOp,
    param: Option<f64>,
    grouping: &Grouping,
    v: Vector,
    avg: AvgArithmetic,
    mem: &QueryMemory,
) -> Result<Vector, EngineError> {
    let k = match op {
        VectorOp::Topk | VectorOp::Bottomk | VectorOp::ApproxTopk => {
            let k = param.ok_or_else(|| {
                EngineError::BadQuery(format!("{op:?} needs a parameter").to_lowercase())
            })?;
            if k < 1.0 {
                return Ok(Vec::new());
            }
            k as usize
        }
        _ => 0,
    };
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut held = 0u64;
    for p in v {
        let key = group_labels(&p.labels, grouping);
        let f = p.value;
        let Some(&i) = index.get(&key) else {
            let bytes = 2 * labels_bytes(&key) + SERIES_OVERHEAD;
            mem.charge(bytes)?;
            held += bytes;
            index.insert(key.clone(), groups.len());
            groups.push(Group {
                labels: Arc::new(key),
                value: f,
                mean: f,
                count: 1,
                members: vec![p],
            });
            continue;
        };
        let g = &mut groups[i];
        match op {
            VectorOp::Sum => g.value += f,
            VectorOp::Avg => {
                g.count += 1;
                match avg {
                    AvgArithmetic::RunningMean => g.mean += (f - g.mean) / g.count as f64,
                    AvgArithmetic::SumOverCount { .. } => g.value += f,
                }
            }
            VectorOp::Max => {
                if g.value < f || g.value.is_nan() {
                    g.value = f;
                }
            }
            VectorOp::Min => {
                if g.value > f || g.value.is_nan() {
                    g.value = f;
                }
            }
            VectorOp::Count => g.count += 1,
            VectorOp::Stddev | VectorOp::Stdvar => {
                if g.count == 1 {
                    g.value = 0.0;
                }
                g.count += 1;
                let delta = f - g.mean;
                g.mean += delta / g.count as f64;
                g.value += delta * (f - g.mean);
            }
            VectorOp::Topk
            | VectorOp::Bottomk
            | VectorOp::ApproxTopk
            | VectorOp::Sort
            | VectorOp::SortDesc => g.members.push(p),
        }
    }
    let mut out = Vec::new();
    for mut g in groups {
        let value = match op {
            VectorOp::Sum | VectorOp::Max | VectorOp::Min => g.value,
            VectorOp::Avg => match avg {
                AvgArithmetic::RunningMean => g.mean,
                AvgArithmetic::SumOverCount { per_second: None } => g.value / g.count as f64,
                AvgArithmetic::SumOverCount { per_second: Some(secs) } => {
                    g.value / secs / g.count as f64
                }
            },
            VectorOp::Count => g.count as f64,
            VectorOp::Stdvar | VectorOp::Stddev => {
                let var = if g.count == 1 { 0.0 } else { g.value / g.count as f64 };
                if op == VectorOp::Stddev {
                    var.sqrt()
                } else {
                    var
                }
            }
            VectorOp::Topk
            | VectorOp::Bottomk
            | VectorOp::ApproxTopk
            | VectorOp::Sort
            | VectorOp::SortDesc => {
                let desc = matches!(op, VectorOp::Topk | VectorOp::ApproxTopk | VectorOp::SortDesc);
                g.members.sort_by(|a, b| {
                    by_value(a.value, b.value, desc).then_with(|| a.labels.cmp(&b.labels))
                });
                if k > 0 {
                    g.members.truncate(k);
                }
                out.append(&mut g.members);
                continue;
            }
        };
        out.push(Point { labels: g.labels, value });
    }
    mem.release(held);
    Ok(out)
}

fn is_comparison(op: BinOp) -> bool {
    matches!(op, BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Ge | BinOp::Lt | BinOp::Le)
}

/// Loki's sample merge: the result of `left op right`, `None` when a filtering comparison is
/// false. For filtering comparisons the kept value is the vector side's (`right` when `swap`).
fn merge(
    op: BinOp,
    left: f64,
    right: f64,
    swap: bool,
    filter: bool,
) -> Result<Option<f64>, EngineError> {
    let cmp = |ok: bool| {
        if ok {
            Some(1.0)
        } else if filter {
            None
        } else {
            Some(0.0)
        }
    };
    let res = match op {
        BinOp::Add => Some(left + right),
        BinOp::Sub => Some(left - right),
        BinOp::Mul => Some(left * right),
        BinOp::Div => Some(if right == 0.0 { f64::NAN } else { left / right }),
        BinOp::Mod => Some(if right == 0.0 { f64::NAN } else { left % right }),
        BinOp::Pow => Some(left.powf(right)),
        BinOp::Eq => cmp(left == right),
        BinOp::Ne => cmp(left != right),
        BinOp::Gt => cmp(left > right),
        BinOp::Ge => cmp(left >= right),
        BinOp::Lt => cmp(left < right),
        BinOp::Le => cmp(left <= right),
        BinOp::And | BinOp::Or | BinOp::Unless => {
            return Err(EngineError::BadQuery(
                "set operations are only allowed between vectors".to_string(),
            ))
        }
    };
    if is_comparison(op) && filter && res.is_some() {
        return Ok(Some(if swap { right } else { left }));
    }
    Ok(res)
}

/// Evaluates `lhs op rhs`.
pub(super) fn binary(
    op: BinOp,
    lhs: Value,
    rhs: Value,
    return_bool: bool,
    matching: &VectorMatching,
) -> Result<Value, EngineError> {
    let filter = !return_bool;
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => {
            Ok(Value::Scalar(merge(op, l, r, false, false)?.unwrap_or(f64::NAN)))
        }
        (Value::Scalar(l), Value::Steps(rs)) => {
            let mut out = Vec::with_capacity(rs.len());
            for v in rs {
                let mut step = Vec::with_capacity(v.len());
                for p in v {
                    if let Some(value) = merge(op, l, p.value, true, filter)? {
                        step.push(Point { labels: p.labels, value });
                    }
                }
                out.push(step);
            }
            Ok(Value::Steps(out))
        }
        (Value::Steps(ls), Value::Scalar(r)) => {
            let mut out = Vec::with_capacity(ls.len());
            for v in ls {
                let mut step = Vec::with_capacity(v.len());
                for p in v {
                    if let Some(value) = merge(op, p.value, r, false, filter)? {
                        step.push(Point { labels: p.labels, value });
                    }
                }
                out.push(step);
            }
            Ok(Value::Steps(out))
        }
        (Value::Steps(ls), Value::Steps(rs)) => {
            let out = ls
                .into_iter()
                .zip(rs)
                .map(|(l, r)| vector_binary(op, l, r, return_bool, matching))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Steps(out))
        }
    }
}

/// The matching signature of a series under `on(...)`/`ignoring(...)`.
fn signature(labels: &Labels, matching: &VectorMatching) -> Labels {
    match &matching.matching {
        None => labels.clone(),
        Some(g) if g.without => {
            let mut out = labels.clone();
            for n in &g.labels {
                out.remove(n);
            }
            out
        }
        Some(g) => Labels::from_vec(
            labels.iter().filter(|l| g.labels.contains(&l.name)).cloned().collect(),
        ),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Card {
    OneToOne,
    ManyToOne,
    OneToMany,
}

/// Labels of a binary operation's result, from the "many" side `lhs` and the "one" side `rhs`.
fn result_labels(lhs: &Labels, rhs: &Labels, matching: &VectorMatching, card: Card) -> Labels {
    let mut out = lhs.clone();
    if card == Card::OneToOne {
        match &matching.matching {
            Some(g) if !g.without => {
                out = Labels::from_vec(
                    lhs.iter().filter(|l| g.labels.contains(&l.name)).cloned().collect(),
                );
            }
            Some(g) => {
                for n in &g.labels {
                    out.remove(n);
                }
            }
            None => {}
        }
    }
    let include = match &matching.group {
        Some(GroupSide::Left(v)) | Some(GroupSide::Right(v)) => v.as_slice(),
        None => &[],
    };
    for n in include {
        match rhs.get(n) {
            Some(v) if !v.is_empty() => out.set(n, v),
            _ => {
                out.remove(n);
            }
        }
    }
    out
}

fn vector_binary(
    op: BinOp,
    lhs: Vector,
    rhs: Vector,
    return_bool: bool,
    matching: &VectorMatching,
) -> Result<Vector, EngineError> {
    match op {
        BinOp::And => {
            if lhs.is_empty() || rhs.is_empty() {
                return Ok(Vec::new());
            }
            let right: HashSet<Labels> =
                rhs.iter().map(|p| signature(&p.labels, matching)).collect();
            return Ok(lhs
                .into_iter()
                .filter(|p| right.contains(&signature(&p.labels, matching)))
                .collect());
        }
        BinOp::Or => {
            if lhs.is_empty() {
                return Ok(rhs);
            }
            if rhs.is_empty() {
                return Ok(lhs);
            }
            let left: HashSet<Labels> =
                lhs.iter().map(|p| signature(&p.labels, matching)).collect();
            let mut out = lhs;
            out.extend(rhs.into_iter().filter(|p| !left.contains(&signature(&p.labels, matching))));
            return Ok(out);
        }
        BinOp::Unless => {
            if lhs.is_empty() || rhs.is_empty() {
                return Ok(lhs);
            }
            let right: HashSet<Labels> =
                rhs.iter().map(|p| signature(&p.labels, matching)).collect();
            return Ok(lhs
                .into_iter()
                .filter(|p| !right.contains(&signature(&p.labels, matching)))
                .collect());
        }
        _ => {}
    }
    let card = match matching.group {
        Some(GroupSide::Left(_)) => Card::ManyToOne,
        Some(GroupSide::Right(_)) => Card::OneToMany,
        None => Card::OneToOne,
    };
    let (many, one) = if card == Card::OneToMany { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_by_sig: HashMap<Labels, Point> = HashMap::with_capacity(one.len());
    for p in one {
        let sig = signature(&p.labels, matching);
        if one_by_sig.contains_key(&sig) {
            let side = if card == Card::OneToMany { "left" } else { "right" };
            return Err(EngineError::Execution(format!(
                "found duplicate series on the {side} hand-side;many-to-many matching not allowed: matching labels must be unique on one side"
            )));
        }
        one_by_sig.insert(sig, p);
    }
    let mut matched: HashMap<Labels, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for p in many {
        let sig = signature(&p.labels, matching);
        let Some(o) = one_by_sig.get(&sig) else { continue };
        let labels = result_labels(&p.labels, &o.labels, matching, card);
        if card == Card::OneToOne {
            if matched.contains_key(&sig) {
                return Err(EngineError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .to_string(),
                ));
            }
            matched.insert(sig, HashSet::new());
        } else {
            let seen = matched.entry(sig).or_default();
            if !seen.insert(labels.clone()) {
                return Err(EngineError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .to_string(),
                ));
            }
        }
        let (l, r) = if card == Card::OneToMany { (o.value, p.value) } else { (p.value, o.value) };
        if let Some(value) = merge(op, l, r, false, !return_bool)? {
            out.push(Point { labels: Arc::new(labels), value });
        }
    }
    Ok(out)
}

/// Applies `label_replace` to every step.
pub(super) fn label_replace(
    vectors: Vec<Vector>,
    dst: &str,
    replacement: &str,
    src: &str,
    regex: &str,
) -> Result<Vec<Vector>, EngineError> {
    let re = Regex::new(&format!("^(?:{regex})$")).map_err(|e| {
        EngineError::BadQuery(format!("invalid regular expression in label_replace: {e}"))
    })?;
    let mut cache: HashMap<Arc<Labels>, Arc<Labels>> = HashMap::new();
    let mut out = Vec::with_capacity(vectors.len());
    for v in vectors {
        let mut step = Vec::with_capacity(v.len());
        for p in v {
            let labels = match cache.get(&p.labels) {
                Some(l) => l.clone(),
                None => {
                    let value = p.labels.get(src).unwrap_or("");
                    let new = match re.captures(value) {
                        None => p.labels.clone(),
                        Some(caps) => {
                            let mut res = String::new();
                            caps.expand(replacement, &mut res);
                            let mut l = (*p.labels).clone();
                            l.remove(dst);
                            if !res.is_empty() {
                                l.set(dst, &res);
                            }
                            Arc::new(l)
                        }
                    };
                    cache.insert(p.labels.clone(), new.clone());
                    new
                }
            };
            step.push(Point { labels, value: p.value });
        }
        out.push(step);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::{self, ast::Expr};

    fn avg(values: &[f64], arithmetic: AvgArithmetic) -> f64 {
        let v: Vector = values
            .iter()
            .enumerate()
            .map(|(i, &value)| Point {
                labels: Arc::new(Labels::from_pairs([("inst", format!("s{i:02}"))])),
                value,
            })
            .collect();
        let by_nothing = Grouping { without: false, labels: Vec::new() };
        let out = vector_aggregation(
            VectorOp::Avg,
            None,
            &by_nothing,
            v,
            arithmetic,
            &QueryMemory::new(0),
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        out[0].value
    }

    /// Counts whose running mean and sum/count differ in the last digit; the expected values
    /// were recorded from Loki 3.x (main-65e30f8): `avg(count_over_time(...))` (sharded:
    /// sum/count) and `avg(label_replace(count_over_time(...), ...))` (not sharded: a running
    /// mean over the series sorted by labels).
    const COUNTS: [f64; 12] = [21.0, 26.0, 4.0, 53.0, 7.0, 38.0, 10.0, 42.0, 5.0, 35.0, 24.0, 4.0];

    #[test]
    fn avg_follows_lokis_arithmetic() {
        let sum_over_count = AvgArithmetic::SumOverCount { per_second: None };
        assert_eq!(avg(&COUNTS, sum_over_count), 22.416666666666668);
        // `avg(rate(...[5m]))`: Loki sums the counts and divides by 300 s, then by 12;
        // recorded from Loki (the mean of the 12 rates, summed, is 0.07472222222222223)
        let per_5m = AvgArithmetic::SumOverCount { per_second: Some(300.0) };
        assert_eq!(avg(&COUNTS, per_5m), 0.07472222222222222);
        let rates: Vec<f64> = COUNTS.iter().map(|c| c / 300.0).collect();
        assert_eq!(avg(&rates, sum_over_count), 0.07472222222222223);
        assert_eq!(avg(&COUNTS, AvgArithmetic::RunningMean), 22.416666666666664);
        // Loki's running mean has no special case for infinities
        assert!(avg(&[f64::INFINITY, 1.0], AvgArithmetic::RunningMean).is_nan());
        assert_eq!(avg(&[f64::INFINITY, 1.0], sum_over_count), f64::INFINITY);
    }

    fn arithmetic(query: &str) -> AvgArithmetic {
        let Ok(Expr::Sample(SampleExpr::VectorAggregation { op: VectorOp::Avg, expr, .. })) =
            syntax::parse_expr(query)
        else {
            panic!("not an avg: {query}");
        };
        AvgArithmetic::for_inner(&expr)
    }

    #[test]
    fn avg_is_sum_over_count_where_loki_shards_it() {
        use AvgArithmetic::RunningMean;
        let sum_over_count = AvgArithmetic::SumOverCount { per_second: None };
        for (q, want) in [
            (r#"avg(count_over_time({job="a"}[5m]))"#, sum_over_count),
            (r#"avg by (grp) (rate({job="a"} | logfmt [5m]))"#, sum_over_count),
            (r#"avg(count_over_time({job="a"}[5m]) * 2)"#, sum_over_count),
            (r#"avg(max(bytes_over_time({job="a"}[5m])))"#, sum_over_count),
            (r#"avg(label_replace(rate({job="a"}[5m]), "x", "$1", "y", "(.*)"))"#, RunningMean),
            (r#"avg(sum by (inst) (count_over_time({job="a"}[5m])))"#, RunningMean),
            (r#"avg(count_over_time({job="a"} | drop inst [5m]))"#, RunningMean),
            (r#"avg(count_over_time({job="a"} | label_format x=inst [5m]))"#, RunningMean),
            (r#"avg(count_over_time({job="a"}[5m]) - 1)"#, RunningMean),
            (r#"avg(stddev_over_time({job="a"} | unwrap x [5m]))"#, RunningMean),
            (r#"avg(topk(2, count_over_time({job="a"}[5m])))"#, RunningMean),
        ] {
            assert_eq!(arithmetic(q), want, "{q}");
        }
        let total = |q: &str| {
            let Ok(Expr::Sample(SampleExpr::VectorAggregation { expr, .. })) =
                syntax::parse_expr(q)
            else {
                panic!("not an aggregation: {q}");
            };
            totals_for_avg(&expr).map(|(e, secs)| (e.to_string(), secs))
        };
        assert_eq!(
            total(r#"avg(rate({job="a"}[5m]))"#),
            Some((r#"count_over_time({job="a"}[5m])"#.to_string(), 300.0))
        );
        assert_eq!(
            total(r#"avg(bytes_rate({job="a"}[1m]))"#),
            Some((r#"bytes_over_time({job="a"}[1m])"#.to_string(), 60.0))
        );
        assert_eq!(
            total(r#"avg(rate({job="a"} | unwrap x [1m]))"#),
            Some((r#"sum_over_time({job="a"} | unwrap x[1m])"#.to_string(), 60.0))
        );
        assert_eq!(total(r#"avg(count_over_time({job="a"}[5m]))"#), None);
    }
}
