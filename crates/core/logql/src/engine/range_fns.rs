//! The value of a range aggregation over one window: from its samples, or (for counts and
//! bytes) from the entry and byte totals of chunk statistics.

use super::EngineError;
use crate::syntax::ast::{self, RangeOp};
/// The value of `count_over_time`, `bytes_over_time`, `rate` or `bytes_rate` (without
/// unwrap) over a window holding the samples `w` plus `entries` entries of `bytes` line bytes
/// counted by bucket. The same as [`range_value`] over all those entries' samples: counts and
/// byte sums are integers, exact in f64 below 2^53 whatever the order of addition.
pub(super) fn bucketed_value(
    op: RangeOp,
    w: &[(i64, f64)],
    entries: u64,
    bytes: u64,
    range: &ast::LogRangeExpr,
) -> Result<f64, EngineError> {
    let secs = range.range_ns as f64 / 1e9;
    let count = (w.len() as u64 + entries) as f64;
    let sum = || w.iter().map(|p| p.1).sum::<f64>() + bytes as f64;
    Ok(match op {
        RangeOp::CountOverTime => count,
        RangeOp::Rate => count / secs,
        RangeOp::BytesOverTime => sum(),
        RangeOp::BytesRate => sum() / secs,
        _ => {
            return Err(EngineError::Execution(format!(
                "{op:?} cannot be computed from entry counts"
            )))
        }
    })
}

/// The value of a range function over the samples of one window (non-empty, ascending).
pub(super) fn range_value(
    op: RangeOp,
    w: &[(i64, f64)],
    range: &ast::LogRangeExpr,
    param: Option<f64>,
    window_end: i64,
) -> Result<f64, EngineError> {
    let secs = range.range_ns as f64 / 1e9;
    let sum = || w.iter().map(|p| p.1).sum::<f64>();
    Ok(match op {
        RangeOp::CountOverTime => w.len() as f64,
        RangeOp::Rate => {
            if range.unwrap.is_some() {
                sum() / secs
            } else {
                w.len() as f64 / secs
            }
        }
        RangeOp::RateCounter => extrapolated_rate(w, range.range_ns, window_end),
        RangeOp::BytesOverTime | RangeOp::SumOverTime => sum(),
        RangeOp::BytesRate => sum() / secs,
        RangeOp::AvgOverTime => {
            let mut mean = 0.0f64;
            let mut count = 0.0f64;
            for &(_, v) in w {
                count += 1.0;
                if mean.is_infinite() {
                    if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                        continue;
                    }
                    if v.is_finite() {
                        continue;
                    }
                }
                mean += v / count - mean / count;
            }
            mean
        }
        RangeOp::MinOverTime => {
            w.iter().fold(w[0].1, |m, &(_, v)| if v < m || m.is_nan() { v } else { m })
        }
        RangeOp::MaxOverTime => {
            w.iter().fold(w[0].1, |m, &(_, v)| if v > m || m.is_nan() { v } else { m })
        }
        RangeOp::StdvarOverTime => welford(w),
        RangeOp::StddevOverTime => welford(w).sqrt(),
        RangeOp::QuantileOverTime => {
            let q = param.ok_or_else(|| {
                EngineError::BadQuery("quantile_over_time needs a quantile parameter".to_string())
            })?;
            let mut values: Vec<f64> = w.iter().map(|p| p.1).collect();
            quantile(q, &mut values)
        }
        RangeOp::FirstOverTime => w[0].1,
        RangeOp::LastOverTime => w[w.len() - 1].1,
        RangeOp::AbsentOverTime => 1.0,
    })
}

/// Population variance with Welford's algorithm.
fn welford(w: &[(i64, f64)]) -> f64 {
    let (mut aux, mut count, mut mean) = (0.0f64, 0.0f64, 0.0f64);
    for &(_, v) in w {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        aux += delta * (v - mean);
    }
    aux / count
}

/// Prometheus' quantile: linear interpolation between the closest ranks.
pub(super) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts first, as in Loki.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Counter-aware, extrapolated per-second rate over the window `(end - range, end]`, as
/// Prometheus computes `rate()`.
fn extrapolated_rate(w: &[(i64, f64)], range_ns: i64, range_end: i64) -> f64 {
    if w.len() < 2 {
        return 0.0;
    }
    let range_start = range_end - range_ns;
    let (first_t, first_v) = w[0];
    let (last_t, last_v) = w[w.len() - 1];
    let mut result = last_v - first_v;
    let mut prev = 0.0f64;
    for &(_, v) in w {
        if v < prev {
            result += prev;
        }
        prev = v;
    }
    let mut to_start = (first_t - range_start) as f64 / 1e9;
    let mut to_end = (range_end - last_t) as f64 / 1e9;
    let sampled = (last_t - first_t) as f64 / 1e9;
    let avg_gap = sampled / (w.len() - 1) as f64;
    let threshold = avg_gap * 1.1;
    if to_start >= threshold {
        to_start = avg_gap / 2.0;
    }
    let to_zero =
        if result > 0.0 && first_v >= 0.0 { sampled * (first_v / result) } else { to_start };
    if to_zero < to_start {
        to_start = to_zero;
    }
    if to_end >= threshold {
        to_end = avg_gap / 2.0;
    }
    let extrapolated = sampled + to_start + to_end;
    result * (extrapolated / sampled) / (range_ns as f64 / 1e9)
}
