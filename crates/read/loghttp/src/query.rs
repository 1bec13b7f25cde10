//! The preparation of a range query (`/loki/api/v1/query_range`) before it runs, shared by
//! the querier (which evaluates it) and the query-frontend (which splits it): the parameters
//! as Loki reads them, then the checks and adjustments Loki's frontend makes, in Loki's order
//! and with its texts ([`RangeQuery::prepare`]). Pure: the current time is a parameter.
//!
//! The query-frontend sends each part of a split query to a querier with the whole, prepared
//! range and the part's own ([`RangeQuery::prepare_part`]); preparing a prepared range again
//! changes nothing (with the same `now`; a log range emptied by `max_query_lookback` stays
//! empty, one nanosecond later). Between the frontend's `now` and the querier's, the
//! lookback edge may move by the time the request took to arrive.

use skald_common::limits::Limits;
use skald_gocompat::strconv;
use skald_logql::engine::QueryParams;
use skald_logql::syntax::ast::{Expr, RangeOp, SampleExpr, VectorOp};
use skald_logql::syntax::{self, goutil};
use skald_model::{Direction, Shard};

use crate::params::{self, Params};
use crate::part::{PART_END_PARAM, PART_START_PARAM, SHARD_PARAM};
use crate::ParamError;

/// The default range of a query without `start` (`since`'s default): one hour.
pub const HOUR_NS: i64 = 3_600_000_000_000;

/// A range query ready to run: the parsed query, and the range it is evaluated over.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeQuery {
    /// The parsed query.
    pub expr: Expr,
    /// The first time: after `max_query_lookback`, and for a metric query aligned down to
    /// the step when splitting is on.
    pub start: i64,
    /// The last time: a metric query's last step (aligned up to the step when splitting is
    /// on), a log query's exclusive end ([`params::log_query_end`]).
    pub end: i64,
    /// The step (ns).
    pub step_ns: i64,
    /// `interval` (ns, 0 = none).
    pub interval_ns: i64,
    /// `limit`.
    pub limit: u32,
    /// `direction`.
    pub direction: Direction,
}

/// One part of a split query, as a querier receives it: the whole query, prepared, and the
/// part's own range (`skald_part_start`, `skald_part_end`).
#[derive(Debug, Clone, PartialEq)]
pub struct PartQuery {
    /// The whole query, its checks passed.
    pub whole: RangeQuery,
    /// The part's first time (ns).
    pub start: i64,
    /// The part's last time (ns): inclusive for a metric query, exclusive for a log query.
    pub end: i64,
    /// The shard of the streams the part reads (`skald_shard=I_of_N`); `None`: every stream.
    pub shard: Option<Shard>,
}

impl RangeQuery {
    /// Reads and checks a range query as the querier does, in Loki's order: the range, then
    /// `limit`, `direction`, `step`, `interval`, the query, a log query's limit against
    /// `max_entries_limit_per_query`, `max_query_lookback` (a range older than it shrinks to
    /// its end), `max_query_length`, a metric query's step in whole milliseconds (as Loki's
    /// frontend carries it) and its step alignment.
    pub fn prepare(p: &Params, limits: &Limits, now: i64) -> Result<RangeQuery, ParamError> {
        Self::prepare_with(p, limits, now, |p, start, end| {
            Ok((params::parse_step(p, start, end)?, params::parse_interval(p)?))
        })
    }

    /// A part request of the query-frontend: [`prepare`](Self::prepare) with `step` and
    /// `interval` in integer nanoseconds (as [`part_params`] writes them), and the part's
    /// range. `None` when the request is not a part request (no `skald_part_start`).
    pub fn prepare_part(
        p: &Params,
        limits: &Limits,
        now: i64,
    ) -> Option<Result<PartQuery, ParamError>> {
        p.get(PART_START_PARAM)?;
        Some(Self::prepare_part_inner(p, limits, now))
    }

    fn prepare_part_inner(p: &Params, limits: &Limits, now: i64) -> Result<PartQuery, ParamError> {
        let ns = |name: &str| -> Result<i64, ParamError> {
            let v = p.get(name).unwrap_or("");
            strconv::parse_int(v).map_err(|e| ParamError(format!("invalid {name}: {e}")))
        };
        let (part_start, part_end) = (ns(PART_START_PARAM)?, ns(PART_END_PARAM)?);
        let shard = match p.get(SHARD_PARAM).filter(|s| !s.is_empty()) {
            Some(s) => Some(Shard::parse(s).map_err(|e| ParamError(e.to_string()))?),
            None => None,
        };
        let whole = Self::prepare_with(p, limits, now, |p, start, end| {
            let step = match p.get("step").filter(|s| !s.is_empty()) {
                Some(_) => ns("step")?,
                None => params::default_step_ns(start, end),
            };
            let interval = match p.get("interval").filter(|s| !s.is_empty()) {
                Some(_) => ns("interval")?,
                None => 0,
            };
            params::check_step(step, start, end)?;
            if interval < 0 {
                return Err(ParamError("interval must be >= 0".into()));
            }
            Ok((step, interval))
        })?;
        Ok(PartQuery { whole, start: part_start, end: part_end, shard })
    }

    fn prepare_with(
        p: &Params,
        limits: &Limits,
        now: i64,
        step_interval: impl FnOnce(&Params, i64, i64) -> Result<(i64, i64), ParamError>,
    ) -> Result<RangeQuery, ParamError> {
        let (start, end) = params::parse_range_at(p, HOUR_NS, now)?;
        if end < start {
            return Err(ParamError(
                "end timestamp must not be before or equal to start time".into(),
            ));
        }
        let limit = params::parse_limit(p.get("limit"))?;
        let direction = params::parse_direction(p.get("direction"))?;
        let (step_ns, interval_ns) = step_interval(p, start, end)?;
        let expr = parse_query(p)?;
        let log = matches!(expr, Expr::Log(_));
        let end = if log {
            check_limit(limits, limit)?;
            params::log_query_end(start, end)
        } else {
            end
        };
        // older than `max_query_lookback`: the steps start later; when nothing is recent
        // enough the range shrinks to its end, where the store reads nothing (an empty
        // answer, before `max_query_length` is checked, as in Loki's frontend)
        let start = lookback_range(limits, start, end, now).map_or(end, |(s, _)| s);
        check_query_length(limits, start, end)?;
        // Loki's frontend carries a metric query's step in whole milliseconds
        // (`LokiRequest.Step`): `step=67.6` (67.599999999 s as a Go duration) runs as 67.599 s
        let step_ns =
            if log || step_ns < 1_000_000 { step_ns } else { step_ns / 1_000_000 * 1_000_000 };
        // a metric query's steps on multiples of the step when it may be split
        let (start, end) = if log || limits.split_queries_by_interval.is_zero() {
            (start, end)
        } else {
            align_to_step(start, end, step_ns)
        };
        Ok(RangeQuery { expr, start, end, step_ns, interval_ns, limit, direction })
    }

    /// Whether this is a log query (streams), not a metric one.
    pub fn is_log(&self) -> bool {
        matches!(self.expr, Expr::Log(_))
    }

    /// The engine's parameters for the part `(start, end)` of this query, as a querier
    /// evaluates it: a log query over the part clipped to the whole range; a metric query
    /// from the first step of the whole query's grid at or after the part's start to the
    /// part's end (at most the whole's). `None` when nothing of the whole lies in the part.
    pub fn part_query_params(
        &self,
        (start, end): (i64, i64),
        categorize: bool,
    ) -> Option<QueryParams> {
        let (start, end) = if self.is_log() {
            (start.max(self.start), end.min(self.end))
        } else {
            let step = self.step_ns.max(1);
            let k = start.saturating_sub(self.start).max(0).saturating_add(step - 1) / step;
            (self.start.saturating_add(k.saturating_mul(step)), end.min(self.end))
        };
        (start <= end).then_some(QueryParams {
            start,
            end,
            step_ns: self.step_ns,
            interval_ns: self.interval_ns,
            limit: self.limit,
            direction: self.direction,
            instant: false,
            categorize_labels: categorize,
        })
    }
}

/// The part-request parameters of `part` of `q` (the query text `query`): the whole,
/// prepared range and the step and interval in integer nanoseconds, then the part's range, as
/// the query-frontend sends them (`query`, `start`, `end`, `step`, `interval`, `limit`,
/// `direction`, `skald_part_start`, `skald_part_end`), URL-encoded.
pub fn part_params(query: &str, q: &RangeQuery, part: (i64, i64)) -> String {
    let direction = match q.direction {
        Direction::Forward => "forward",
        Direction::Backward => "backward",
    };
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    out.append_pair("query", query)
        .append_pair("start", &time_param(q.start))
        .append_pair("end", &time_param(q.end))
        .append_pair("step", &q.step_ns.to_string())
        .append_pair("interval", &q.interval_ns.to_string())
        .append_pair("limit", &q.limit.to_string())
        .append_pair("direction", direction)
        .append_pair(PART_START_PARAM, &part.0.to_string())
        .append_pair(PART_END_PARAM, &part.1.to_string());
    out.finish()
}

/// [`part_params`] of one shard of the streams (`skald_shard=I_of_N`).
pub fn shard_part_params(query: &str, q: &RangeQuery, part: (i64, i64), shard: Shard) -> String {
    let mut out = part_params(query, q, part);
    out.push('&');
    out.push_str(SHARD_PARAM);
    out.push('=');
    out.push_str(&shard.to_string());
    out
}

/// A time as `start` and `end` read it back exactly: integer nanoseconds, or RFC 3339 for the
/// few that integer nanoseconds would be read as seconds (10 characters or fewer).
pub fn time_param(ns: i64) -> String {
    let s = ns.to_string();
    if s.len() > 10 {
        s
    } else {
        skald_gocompat::time::rfc3339_nano(ns)
    }
}

/// The shards Loki reports per time split of `expr` (`stats.summary.shards` is this times
/// the splits that ran, or this alone for a query that ran whole), as its frontend's shard
/// mapper counts them over small data (one shard per leg): a log query is one leg; a metric
/// query one per range aggregation Loki shards (`avg_over_time`, and `avg` over shardable
/// legs, two: a sum and a count), none for those it runs in one piece (`quantile_over_time`,
/// `first_over_time`, `last_over_time`, `stddev_over_time`, `stdvar_over_time`,
/// `absent_over_time`, `rate_counter`, and `avg_over_time` with filters after its unwrap),
/// nothing for literals and `vector()`. Counted from the answers of Loki 3.x (main @ 65e30f8)
/// recorded in tests/data/reference.
pub fn shards_per_split(expr: &Expr) -> u64 {
    fn legs(e: &SampleExpr) -> u64 {
        match e {
            SampleExpr::RangeAggregation { op, range, .. } => match op {
                RangeOp::QuantileOverTime
                | RangeOp::FirstOverTime
                | RangeOp::LastOverTime
                | RangeOp::StddevOverTime
                | RangeOp::StdvarOverTime
                | RangeOp::AbsentOverTime
                | RangeOp::RateCounter => 0,
                RangeOp::AvgOverTime => {
                    let filtered =
                        range.unwrap.as_ref().is_some_and(|u| !u.post_filters.is_empty());
                    if filtered {
                        0
                    } else {
                        2
                    }
                }
                _ => 1,
            },
            SampleExpr::VectorAggregation { op: VectorOp::Avg, expr, .. } => 2 * legs(expr),
            SampleExpr::VectorAggregation { expr, .. }
            | SampleExpr::LabelReplace { expr, .. }
            | SampleExpr::Paren(expr) => legs(expr),
            SampleExpr::Binary { lhs, rhs, .. } => legs(lhs) + legs(rhs),
            SampleExpr::Literal(_) | SampleExpr::Vector(_) => 0,
        }
    }
    match expr {
        Expr::Log(_) => 1,
        Expr::Sample(e) => legs(e),
    }
}

/// Parses `query`, with the parser's text as a 400.
pub fn parse_query(p: &Params) -> Result<Expr, ParamError> {
    syntax::parse_expr(p.get("query").unwrap_or("")).map_err(|e| ParamError(e.to_string()))
}

/// `max_entries_limit_per_query` (0 disables it) against a log query's `limit`.
pub fn check_limit(limits: &Limits, limit: u32) -> Result<(), ParamError> {
    let max = limits.max_entries_limit_per_query;
    if max > 0 && limit as u64 > max as u64 {
        return Err(ParamError(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {max})"
        )));
    }
    Ok(())
}

/// Loki's `max_query_lookback` (0 disables it): a range that ends before
/// `now - max_query_lookback` gives an empty answer (`None`); one that starts before it
/// starts there instead. In whole milliseconds, as Loki's frontend decides it.
pub fn lookback_range(limits: &Limits, start: i64, end: i64, now: i64) -> Option<(i64, i64)> {
    let lookback = limits.max_query_lookback;
    if lookback.is_zero() {
        return Some((start, end));
    }
    let lookback_ms = lookback.as_millis().min(i64::MAX as u128) as i64;
    let min_start_ms = (now / 1_000_000).saturating_sub(lookback_ms);
    if end.div_euclid(1_000_000) < min_start_ms {
        return None;
    }
    Some((start.max(min_start_ms.saturating_mul(1_000_000)), end))
}

/// Loki's `max_query_length` check (query frontend): the range, in whole milliseconds as
/// the frontend sees it, must not exceed the limit (0 disables it).
pub fn check_query_length(limits: &Limits, start: i64, end: i64) -> Result<(), ParamError> {
    let max = limits.max_query_length;
    if max.is_zero() {
        return Ok(());
    }
    let max_ns = max.as_nanos().min(i64::MAX as u128) as i64;
    let len_ns =
        (end.div_euclid(1_000_000) - start.div_euclid(1_000_000)).saturating_mul(1_000_000);
    if len_ns > max_ns {
        return Err(ParamError(format!(
            "the query time range exceeds the limit (query length: {}, limit: {})",
            goutil::go_duration_string(len_ns),
            goutil::prom_duration_string(max_ns)
        )));
    }
    Ok(())
}

/// Loki's step alignment of a split metric query (`splitMetricByTime`): the step in whole
/// milliseconds, `start` rounded down and `end` up to a multiple of it (Go's truncating
/// remainder, kept for times before the epoch). A step under a millisecond leaves the range as
/// it is. The querier and the frontend apply it when `split_queries_by_interval` is set, so
/// the steps fall on those multiples (both ends included) whatever `start` the client sent.
pub fn align_to_step(start: i64, end: i64, step_ns: i64) -> (i64, i64) {
    let step = step_ns / 1_000_000 * 1_000_000;
    if step <= 0 {
        return (start, end);
    }
    let start = start - start % step;
    let end = match end % step {
        0 => end,
        rem => end.saturating_add(step - rem),
    };
    (start, end)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn steps_fall_on_multiples_of_the_step_from_the_epoch() {
        // start down, end up (Loki evaluated 1793491200..=1793494260 for these)
        assert_eq!(
            align_to_step(1793491217 * S, 1793494243 * S, 60 * S),
            (1793491200 * S, 1793494260 * S)
        );
        // a step longer than the range
        assert_eq!(
            align_to_step(1793491323 * S, 1793494200 * S, 3600 * S),
            (1793491200 * S, 1793494800 * S)
        );
        // a fractional step: 1793491245 is 39,417,390 steps of 45.5 s
        assert_eq!(
            align_to_step(1793491207 * S + S / 2, 1793492403 * S, 45_500_000_000),
            (1793491199 * S + S / 2, 1793492428 * S)
        );
        // already aligned: unchanged
        assert_eq!(
            align_to_step(1793491200 * S, 1793494800 * S, 60 * S),
            (1793491200 * S, 1793494800 * S)
        );
        // the step counts in whole milliseconds, as Loki's frontend carries it
        assert_eq!(align_to_step(1_500_000, 2_500_000, 1_000_500), (1_000_000, 3_000_000));
        assert_eq!(align_to_step(1_500, 2_500, 999_999), (1_500, 2_500));
    }

    fn params(s: &str) -> Params {
        let mut p = Params::default();
        p.extend_from_urlencoded(s.as_bytes());
        p
    }

    fn limits() -> Limits {
        Limits {
            max_query_lookback: Duration::from_secs(6 * 3600),
            max_query_length: Duration::from_secs(4 * 3600),
            ..Limits::default()
        }
    }

    const NOW: i64 = 1793500000 * S + 123_456_789;

    /// A part request carries the prepared range and reads back to the same query.
    /// Loki's frontend carries the step in whole milliseconds: `step=67.6` parses to the Go
    /// duration 67.599999999 s and runs as 67.599 s (the differential corpus' `d02439`).
    #[test]
    fn a_metric_querys_step_is_whole_milliseconds() {
        let step = |q: &str| RangeQuery::prepare(&params(q), &limits(), NOW).map(|r| r.step_ns);
        let metric = "query=rate({a=\"b\"}[1m])&start=1793491217&end=1793494243";
        assert_eq!(step(&format!("{metric}&step=67.6")), Ok(67_599_000_000));
        assert_eq!(step(&format!("{metric}&step=1.234567891")), Ok(1_234_000_000));
        assert_eq!(step(&format!("{metric}&step=60")), Ok(60 * S));
        // under a millisecond, and log queries, keep theirs
        let short = "query=rate({a=\"b\"}[1m])&start=1793491217&end=1793491217.001&step=0.0005";
        assert_eq!(step(short), Ok(500_000));
        let log = "query={a=\"b\"}&start=1793491217&end=1793494243&step=67.6";
        assert_eq!(step(log), Ok(67_599_999_999));
    }

    #[test]
    fn a_prepared_query_prepares_to_itself() {
        let queries = [
            "query=sum(rate({a=\"b\"}[5m]))&start=1793491217.5&end=1793494243&step=45.5",
            "query=count_over_time({a=\"b\"}[1m])&start=1793481217&end=1793494243",
            "query=count_over_time({a=\"b\"}[1m])&start=1793491217.0005&end=1793491227&step=0.001",
            "query=count_over_time({a=\"b\"}[1m])&start=1793491217&end=1793494243&step=1.234567891",
            "query={a=\"b\"}&start=1793491217&end=1793491217&limit=7&direction=forward",
            "query={a=\"b\"}&start=1793481217&end=1793494243&interval=2s",
            // older than the lookback: shrinks to its end
            "query={a=\"b\"}&start=1793401217&end=1793401218",
            "query=rate({a=\"b\"}[1m])&start=1793401217&end=1793401218",
        ];
        for limits in [limits(), Limits::default()] {
            for q in queries {
                let prepared = RangeQuery::prepare(&params(q), &limits, NOW)
                    .unwrap_or_else(|e| panic!("{q}: {e}"));
                let text = params(q).get("query").unwrap_or("").to_string();
                let part = (prepared.start, prepared.end);
                let again = params(&part_params(&text, &prepared, part));
                let Some(Ok(back)) = RangeQuery::prepare_part(&again, &limits, NOW) else {
                    panic!("{q}: not a part");
                };
                if prepared.is_log() && prepared.start == prepared.end {
                    // an empty log range (older than the lookback) stays empty, one
                    // nanosecond later (`log_query_end`)
                    assert_eq!(back.whole.start, back.whole.end, "{q}");
                    continue;
                }
                assert_eq!(back.whole, prepared, "{q}");
                assert_eq!((back.start, back.end), part);
            }
        }
        assert!(RangeQuery::prepare_part(&params("query={a=\"b\"}"), &limits(), NOW).is_none());
        // a shard reads back; a bad one is a 400
        let q = params("query=rate({a=\"b\"}[1m])&start=1793491217&end=1793494243");
        let prepared = RangeQuery::prepare(&q, &limits(), NOW).unwrap_or_else(|e| panic!("{e}"));
        let shard = Shard { index: 2, count: 5 };
        let text = r#"rate({a="b"}[1m])"#;
        let p = params(&shard_part_params(text, &prepared, (prepared.start, prepared.end), shard));
        let back = RangeQuery::prepare_part(&p, &limits(), NOW).and_then(Result::ok);
        assert_eq!(back.and_then(|b| b.shard), Some(shard));
        let bad = format!("{}&skald_shard=5_of_5", part_params(text, &prepared, (0, 1)));
        assert!(matches!(RangeQuery::prepare_part(&params(&bad), &limits(), NOW), Some(Err(_))));
    }

    #[test]
    fn shards_are_counted_as_loki_counts_them() {
        // (query, Loki's shards for an unsplit query), from tests/data/reference/loki*
        let cases = [
            (r#"{job="a"} |= "x""#, 1),
            (r#"sum by (job) (count_over_time({env="test"}[10m])) > bool 500"#, 1),
            (r#"topk(3, sum by (job) (bytes_over_time({env="test"}[10m])))"#, 1),
            (r#"sum(rate({job="web"}[5m])) * 60 + 2 ^ 2"#, 1),
            (r#"avg without (host) (count_over_time({job="a"}[5m]))"#, 2),
            (r#"avg_over_time({job="web"} | json | __error__="" | unwrap l [10m]) by (m)"#, 2),
            (
                r#"avg_over_time({job="w"} | logfmt | unwrap duration(t) | __error__="" [10m]) by (l)"#,
                0,
            ),
            (
                r#"count(sum by (j) (count_over_time({e="t"}[10m]))) + max(sum by (j) (count_over_time({e="t"}[10m]))) - min(sum by (j) (count_over_time({e="t"}[10m])))"#,
                3,
            ),
            (
                r#"stddev by (env) (sum by (env, job) (count_over_time({env="test"}[10m]))) or stdvar by (source) (sum by (source, job) (count_over_time({source="loghub"}[10m])))"#,
                2,
            ),
            (r#"quantile_over_time(0.5, {job="web"} | json | unwrap l [1h]) by (method)"#, 0),
            (r#"first_over_time({job="worker"} | logfmt | unwrap attempt [10m]) by (queue)"#, 0),
            (r#"absent_over_time({job="nosuchjob"}[10m])"#, 0),
            (
                r#"label_replace(sum by (job) (count_over_time({s="l"}[10m])), "a", "b", "job", "(h.*)")"#,
                1,
            ),
            ("vector(1)+vector(1)", 0),
            ("1 + 2 * 3", 0),
        ];
        for (q, n) in cases {
            let expr = syntax::parse_expr(q).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(shards_per_split(&expr), n, "{q}");
        }
    }

    #[test]
    fn errors_come_in_lokis_order() {
        let err = |q: &str| RangeQuery::prepare(&params(q), &limits(), NOW).err().map(|e| e.0);
        assert_eq!(
            err("query={&start=2&end=1&limit=x").as_deref(),
            Some("end timestamp must not be before or equal to start time")
        );
        assert_eq!(
            err("query={&limit=0&step=-1").as_deref(),
            Some("limit must be a positive value")
        );
        assert!(err("query={&step=-1").is_some_and(|e| e.starts_with("zero or negative")));
        assert!(err("query={&interval=-1").is_some_and(|e| e == "interval must be >= 0"));
        assert!(err("query={").is_some_and(|e| e.starts_with("parse error")));
        let limited = Limits { max_entries_limit_per_query: 10, ..limits() };
        assert_eq!(
            RangeQuery::prepare(&params("query={a=\"b\"}&limit=11"), &limited, NOW)
                .err()
                .map(|e| e.0),
            Some(
                "max entries limit per query exceeded, limit > max_entries_limit_per_query (11 > 10)"
                    .into()
            )
        );
        assert_eq!(
            err("query={a=\"b\"}&start=1793480000&end=1793498000").as_deref(),
            Some("the query time range exceeds the limit (query length: 5h0m0s, limit: 4h)")
        );
    }
}
