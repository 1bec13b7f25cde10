//! Loki's query-size limits, `max_query_bytes_read` and `max_querier_bytes_read`: before a
//! query runs, the bytes it would read are estimated from index statistics (the `index/stats`
//! figures of each stream selector over the range it reads, from the store's index only: Loki
//! was seen to let a query over the limit run while its data was still only in the ingesters,
//! and the estimate then costs one index lookup, no ingester call) and a query over a limit
//! is refused with 400 and Loki's text (grafana/loki `pkg/querier/queryrange/limits.go`, read for
//! behaviour; the texts were recorded from Loki 3.x `main-65e30f8`).
//!
//! - `max_query_bytes_read` applies to the whole query, as Loki's frontend applies it before
//!   splitting: to metric queries and to log queries with a pipeline (a bare selector such as
//!   `{job="x"}` is a "limited" query that Loki lets through).
//! - `max_querier_bytes_read` applies in Loki to each sub-query a querier runs after the
//!   frontend split the range at multiples of `split_queries_by_interval` (and sharded it).
//!   Skald has no frontend: it takes the largest of those splits' estimates (the whole range
//!   when splitting is off), and answers with Loki's text for a sharded query, or for an
//!   un-shardable one (a top-level `quantile_over_time`, `first_over_time`, `last_over_time`,
//!   `stddev_over_time`, `stdvar_over_time`, `absent_over_time` or `rate_counter`, as Loki
//!   answered). Every log query counts here, a bare selector too.

use skald_logql::syntax::ast::{Expr, LogSelectorExpr, RangeOp, SampleExpr};

use crate::error::QuerierError;
use crate::multitenant;
use crate::volume::{for_interval, index_stats, StreamStats};
use crate::Querier;

const MS: i64 = 1_000_000;

/// One stream selector of a query and how far back of each evaluation time it reads.
struct ReadSpan<'a> {
    selector: &'a LogSelectorExpr,
    range_ns: i64,
    offset_ns: i64,
}

/// Every stream selector of `expr`, with its range and offset (0 for a log query).
fn read_spans(expr: &Expr) -> Vec<ReadSpan<'_>> {
    fn walk<'a>(e: &'a SampleExpr, out: &mut Vec<ReadSpan<'a>>) {
        match e {
            SampleExpr::RangeAggregation { range, .. } => out.push(ReadSpan {
                selector: &range.selector,
                range_ns: range.range_ns,
                offset_ns: range.offset_ns,
            }),
            SampleExpr::VectorAggregation { expr, .. }
            | SampleExpr::LabelReplace { expr, .. }
            | SampleExpr::Paren(expr) => walk(expr, out),
            SampleExpr::Binary { lhs, rhs, .. } => {
                walk(lhs, out);
                walk(rhs, out);
            }
            SampleExpr::Literal(_) | SampleExpr::Vector(_) => {}
        }
    }
    let mut out = Vec::new();
    match expr {
        Expr::Log(sel) => out.push(ReadSpan { selector: sel, range_ns: 0, offset_ns: 0 }),
        Expr::Sample(e) => walk(e, &mut out),
    }
    out
}

/// Whether Loki's frontend could not shard the query: its top is a range aggregation Loki
/// runs in one piece.
fn unshardable(expr: &Expr) -> bool {
    let Expr::Sample(top) = expr else { return false };
    let mut e: &SampleExpr = top;
    while let SampleExpr::Paren(inner) = e {
        e = inner;
    }
    matches!(
        e,
        SampleExpr::RangeAggregation {
            op: RangeOp::QuantileOverTime
                | RangeOp::FirstOverTime
                | RangeOp::LastOverTime
                | RangeOp::StddevOverTime
                | RangeOp::StdvarOverTime
                | RangeOp::AbsentOverTime
                | RangeOp::RateCounter,
            ..
        }
    )
}

/// A bare stream selector: a log query Loki's frontend does not size (`{job="x"}`).
fn limited_log_query(expr: &Expr) -> bool {
    matches!(expr, Expr::Log(sel) if sel.stages.is_empty())
}

/// Loki's text for a query over `max_query_bytes_read`.
fn query_too_large(bytes: u64, limit: u64) -> QuerierError {
    QuerierError::BadRequest(format!(
        "the query would read too many bytes (query: {}, limit: {}); consider adding more specific stream selectors or reduce the time range of the query",
        ibytes(bytes),
        ibytes(limit)
    ))
}

/// Loki's text for a query one of whose sub-queries is over `max_querier_bytes_read`.
fn querier_too_large(bytes: u64, limit: u64, unshardable: bool) -> QuerierError {
    let what =
        if unshardable { "un-shardable query too large" } else { "shard query is too large" };
    QuerierError::BadRequest(format!(
        "{what} to execute on a single querier: (query: {}, limit: {}); consider adding more specific stream selectors or reduce the time range of the query",
        ibytes(bytes),
        ibytes(limit)
    ))
}

fn ibytes(v: u64) -> String {
    skald_gocompat::humanize::ibytes(v)
}

/// Bytes `streams` hold in `[from_ns, through_ns]`, pro-rated as `index/stats` counts them.
fn bytes_in(streams: &[StreamStats], from_ns: i64, through_ns: i64) -> u64 {
    let from_ms = from_ns.div_euclid(MS);
    let through_ms = through_ns.div_euclid(MS) + i64::from(through_ns.rem_euclid(MS) != 0);
    index_stats(streams, &[(from_ms, through_ms)]).bytes
}

impl Querier {
    /// Refuses a query whose estimated read passes `max_query_bytes_read` or, in its largest
    /// split, `max_querier_bytes_read` (0 disables either). `start..=end` is the range the
    /// query is evaluated over (`start == end` for an instant query).
    pub(crate) async fn check_bytes_read(
        &self,
        tenant: &str,
        expr: &Expr,
        start: i64,
        end: i64,
    ) -> Result<(), QuerierError> {
        let query_limit =
            if limited_log_query(expr) { 0 } else { self.limits(tenant).max_query_bytes_read };
        let querier_limit = self.limits(tenant).max_querier_bytes_read;
        if query_limit == 0 && querier_limit == 0 {
            return Ok(());
        }
        let spans = read_spans(expr);
        if spans.is_empty() {
            return Ok(());
        }
        // the streams each selector reads, over the whole range it reads
        let mut streams: Vec<(&ReadSpan<'_>, Vec<StreamStats>)> = Vec::with_capacity(spans.len());
        for span in &spans {
            let from = start.saturating_sub(span.range_ns).saturating_sub(span.offset_ns);
            let through = end.saturating_sub(span.offset_ns);
            let mut all = Vec::new();
            for t in multitenant::tenants(tenant) {
                all.extend(
                    self.chunk_stats_from(
                        t,
                        &span.selector.matchers,
                        from.div_euclid(MS),
                        through.div_euclid(MS) + 1,
                        false,
                        None,
                    )
                    .await
                    .map_err(store_failure)?,
                );
            }
            streams.push((span, all));
        }
        let read = |from: i64, through: i64| -> u64 {
            streams
                .iter()
                .map(|(span, s)| {
                    let f = from.saturating_sub(span.range_ns).saturating_sub(span.offset_ns);
                    bytes_in(s, f, through.saturating_sub(span.offset_ns))
                })
                .sum()
        };
        if query_limit > 0 {
            let bytes = read(start, end);
            if bytes > query_limit {
                return Err(query_too_large(bytes, query_limit));
            }
        }
        if querier_limit > 0 {
            let split =
                self.limits(tenant).split_queries_by_interval.as_nanos().min(i64::MAX as u128);
            let pieces = if start == end {
                vec![(start, end)]
            } else {
                for_interval(split as i64, start, end, true)
            };
            let largest = pieces.into_iter().map(|(f, t)| read(f, t)).max().unwrap_or(0);
            if largest > querier_limit {
                return Err(querier_too_large(largest, querier_limit, unshardable(expr)));
            }
        }
        Ok(())
    }
}

/// A store failure while estimating answers as the query itself would fail on it: a 500, as
/// Loki's querier answers (the index/stats endpoints answer such failures with a 503).
fn store_failure(e: QuerierError) -> QuerierError {
    match e {
        QuerierError::Unavailable(message) => QuerierError::Internal(message),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_logql::syntax::parse_expr;

    #[test]
    fn selectors_carry_their_range_and_offset() {
        let e = parse_expr(
            r#"sum(count_over_time({a="1"}[5m])) / on() count_over_time({b="2"} |= "x" [1h] offset 10m)"#,
        )
        .unwrap();
        let spans: Vec<(String, i64, i64)> = read_spans(&e)
            .iter()
            .map(|s| {
                (
                    s.selector.matchers[0].name.clone(),
                    s.range_ns / 60_000_000_000,
                    s.offset_ns / 60_000_000_000,
                )
            })
            .collect();
        assert_eq!(spans, [("a".to_string(), 5, 0), ("b".to_string(), 60, 10)]);
        assert!(read_spans(&parse_expr("vector(1)").unwrap()).is_empty());
        assert_eq!(read_spans(&parse_expr(r#"{a="1"} | json"#).unwrap()).len(), 1);
    }

    #[test]
    fn loki_shards_all_but_a_few_top_level_range_functions() {
        let u = r#"{a="1"} | regexp `(?P<n>\d+)` | unwrap n [1h]"#;
        for q in [
            format!("quantile_over_time(0.5, {u})"),
            format!("(first_over_time({u}))"),
            format!("rate_counter({u})"),
            r#"absent_over_time({a="1"}[5m])"#.to_string(),
        ] {
            assert!(unshardable(&parse_expr(&q).unwrap()), "{q}");
        }
        for q in [
            format!("sum(quantile_over_time(0.5, {u}))"),
            format!("quantile_over_time(0.5, {u}) + quantile_over_time(0.5, {u})"),
            format!("max_over_time({u})"),
            r#"{a="1"}"#.to_string(),
            r#"topk(2, count_over_time({a="1"}[5m]))"#.to_string(),
        ] {
            assert!(!unshardable(&parse_expr(&q).unwrap()), "{q}");
        }
        assert!(limited_log_query(&parse_expr(r#"{a="1"}"#).unwrap()));
        assert!(!limited_log_query(&parse_expr(r#"{a="1"} |= "x""#).unwrap()));
    }

    #[test]
    fn messages_are_lokis() {
        // recorded from Loki 3.x (main-65e30f8) with a 1KB limit over 17,408 and 34,816 bytes
        assert_eq!(
            query_too_large(17_408, 1024).to_string(),
            "the query would read too many bytes (query: 17 KiB, limit: 1.0 KiB); consider adding more specific stream selectors or reduce the time range of the query"
        );
        assert_eq!(
            querier_too_large(34_816, 1024, false).to_string(),
            "shard query is too large to execute on a single querier: (query: 34 KiB, limit: 1.0 KiB); consider adding more specific stream selectors or reduce the time range of the query"
        );
        assert_eq!(
            querier_too_large(34_816, 1024, true).to_string(),
            "un-shardable query too large to execute on a single querier: (query: 34 KiB, limit: 1.0 KiB); consider adding more specific stream selectors or reduce the time range of the query"
        );
        assert_eq!(query_too_large(1, 1).status_code(), 400);
    }
}
