//! Split edges, as Loki's query-frontend cuts queries (`split_queries_by_interval`), with
//! every time in nanoseconds since the epoch.

use skald_model::Direction;

use crate::syntax::ast::{Expr, SampleExpr};

/// The splits of a metric range query evaluated at `start, start + step, ... <= end`, as
/// `(start, end)` pairs with both ends inclusive, oldest first. Every evaluation time of the
/// query is an evaluation time of exactly one split, and each split's steps are the query's
/// (they stay on the grid of `start`).
///
/// Loki's rule (`metricQuerySplitter` in `pkg/querier/queryrange/splitters.go`), which the
/// caller prepares by aligning `start` down and `end` up to a multiple of `step` from the
/// epoch:
/// - the interval widens to `max_range` (the largest `[range]` of the query, [`max_range`])
///   when that is larger;
/// - with `step >= interval` the query is split per step: Loki cuts `[t0, t1], [t1, t2],
///   ...` (pieces that share their edges; its merge drops the duplicate sample), here
///   `(t0, t1), (t2, t2), (t3, t3), ...`: as many splits, each holding the steps Loki's piece
///   adds, so that no step is evaluated twice (two steps or fewer: the query whole);
/// - otherwise a split starting at `s` ends on the last step before the next multiple of the
///   interval after `s`, and the next split starts one step later; a split whose end is the
///   query's last step or the one before it runs to `end`;
/// - `interval <= 0` (splitting off), `step <= 0`, `end <= start` or a range inside one interval give the
///   query whole: `[(start, end)]`.
pub fn split_range(
    start: i64,
    end: i64,
    step: i64,
    interval: i64,
    max_range: i64,
) -> Vec<(i64, i64)> {
    if interval <= 0 || end <= start || step <= 0 {
        return vec![(start, end)];
    }
    let interval = interval.max(max_range);
    if step >= interval {
        // Loki's pieces [t0, t1], [t1, t2], ... as disjoint splits: (t0, t1), (t2, t2), ...
        // (as many as Loki's, each holding the steps Loki's piece adds).
        let mut out = Vec::new();
        let first_end = start.saturating_add(step);
        if first_end >= end {
            return vec![(start, end)];
        }
        out.push((start, first_end));
        let mut t = first_end;
        while let Some(n) = t.checked_add(step).filter(|&n| n <= end) {
            out.push((n, n));
            t = n;
        }
        return out;
    }
    let mut out = Vec::new();
    let mut s = start;
    while s < end {
        let boundary = last_step_before_boundary(s, step, interval);
        let next = boundary.saturating_add(step);
        let e = if next >= end { end } else { boundary };
        out.push((s, e));
        if e == end {
            break;
        }
        s = next;
    }
    out
}

/// The last time `t + k * step` (k >= 0) strictly before the first multiple of `interval`
/// after `t`; `t` itself when the next step already reaches it. Needs `0 < step < interval`.
fn last_step_before_boundary(t: i64, step: i64, interval: i64) -> i64 {
    let next = t.div_euclid(interval).saturating_add(1).saturating_mul(interval);
    let target = next - (next - t) % step;
    if target == next {
        target - step
    } else {
        target
    }
}

/// The splits of a log query over `[start, end)`, each `[start, end)` too: cut at the
/// multiples of `interval` from the epoch, the first split keeping `start` and the last
/// `end`. Oldest first for `Forward`, newest first for `Backward` (the order Loki consumes
/// them in, stopping once `limit` entries arrived). Loki's `util.ForInterval` with an
/// exclusive end. `interval <= 0` or `end <= start` give the query whole.
pub fn split_log_range(
    start: i64,
    end: i64,
    interval: i64,
    direction: Direction,
) -> Vec<(i64, i64)> {
    if interval <= 0 || end <= start {
        return vec![(start, end)];
    }
    let mut out = Vec::new();
    let mut s = start - start.rem_euclid(interval);
    while s < end {
        let e = s.saturating_add(interval).min(end);
        out.push((s.max(start), e));
        if e == end {
            break;
        }
        s = e;
    }
    if direction == Direction::Backward {
        out.reverse();
    }
    out
}

/// The largest `[range]` (ns) of any range aggregation in `expr`; 0 for a log query or an
/// expression without one. The offset does not count (as in Loki's
/// `maxRangeVectorAndOffsetDuration`, whose range alone widens the split interval).
pub fn max_range(expr: &Expr) -> i64 {
    match expr {
        Expr::Log(_) => 0,
        Expr::Sample(e) => max_range_sample(e),
    }
}

/// [`max_range`] of a metric expression.
pub fn max_range_of(e: &SampleExpr) -> i64 {
    max_range_sample(e)
}

fn max_range_sample(e: &SampleExpr) -> i64 {
    match e {
        SampleExpr::RangeAggregation { range, .. } => range.range_ns,
        SampleExpr::VectorAggregation { expr, .. }
        | SampleExpr::LabelReplace { expr, .. }
        | SampleExpr::Paren(expr) => max_range_sample(expr),
        SampleExpr::Binary { lhs, rhs, .. } => max_range_sample(lhs).max(max_range_sample(rhs)),
        SampleExpr::Literal(_) | SampleExpr::Vector(_) => 0,
    }
}
