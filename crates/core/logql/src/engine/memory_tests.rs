//! Engine tests of the query memory accountant: queries that would hold more than
//! `max_query_memory` fail with its message, and what a query drops is given back.
#![allow(clippy::unwrap_used)]

use super::tests::{range_params, source, CancelingSource, SEC, T0};
use super::*;
use skald_model::Entry;

/// A source of one stream of `lines` distinct lines, one per millisecond, as one batch.
fn distinct_lines(lines: usize) -> CancelingSource {
    let mut s = CancelingSource::new(0, usize::MAX);
    s.stream.entries = (0..lines)
        .map(|i| Entry {
            ts: T0 + i as i64 * 1_000_000,
            line: format!("line {i:08} {}", "y".repeat(40)).into(),
            structured_metadata: vec![],
        })
        .collect();
    s
}

fn memory_error(res: Result<QueryOutput, EngineError>) -> String {
    match res {
        Err(e @ EngineError::Limit(_)) => {
            assert_eq!(e.status_code(), 400);
            e.to_string()
        }
        other => panic!("not a limit error: {:?}", other.map(|o| o.stats)),
    }
}

#[test]
fn a_query_that_would_hold_more_than_max_query_memory_fails() {
    // 20k series: ~5 MB of labels, index and points; a 1 MiB cap stops it
    let source = distinct_lines(20_000);
    let limits =
        Limits { max_query_memory: 1 << 20, max_query_series: 1_000_000, ..Limits::default() };
    let p = range_params(T0 + 60 * SEC, T0 + 60 * SEC, 60 * SEC);
    for q in [
        r#"sum by (l) (count_over_time({job="wide"} | label_format l="{{__line__}}" [1h]))"#,
        r#"topk(1, count_over_time({job="wide"} | label_format l="{{__line__}}" [1h]))"#,
        r#"count_over_time({job="wide"} | label_format l="{{__line__}}" [1h])"#,
    ] {
        let expr = crate::syntax::parse_expr(q).unwrap();
        let msg = memory_error(evaluate(&expr, &p, &limits, &source));
        assert!(
            msg.starts_with(
                "the query needs more than 1.0 MiB of memory (limits_config.max_query_memory)"
            ),
            "{q}: {msg}"
        );
        // without the cap it answers (the accountant only counts)
        let open = Limits { max_query_memory: 0, ..limits.clone() };
        assert!(evaluate(&expr, &p, &open, &source).is_ok(), "{q}");
    }
}

#[test]
fn quantile_over_many_points_and_interval_log_queries_are_counted() {
    let source = distinct_lines(50_000);
    let limits = Limits { max_query_memory: 512 << 10, ..Limits::default() };
    // 50k points of one series (800 KB) over the cap
    let q = r#"quantile_over_time(0.5, {job="wide"} | regexp `line (?P<n>\d+)` | unwrap n [1h])"#;
    let expr = crate::syntax::parse_expr(q).unwrap();
    let p = range_params(T0 + 60 * SEC, T0 + 60 * SEC, 60 * SEC);
    memory_error(evaluate(&expr, &p, &limits, &source));
    // a log query with an interval keeps every candidate
    let expr = crate::syntax::parse_expr(r#"{job="wide"}"#).unwrap();
    let p = QueryParams { limit: 10, interval_ns: 1, ..range_params(T0, T0 + 3600 * SEC, 0) };
    memory_error(evaluate(&expr, &p, &limits, &source));
    // with a plain limit only the best 10 are kept: the batch (~3.5 MB) is the most it holds
    let big = Limits { max_query_memory: 8 << 20, ..limits };
    let p = QueryParams { interval_ns: 0, ..p };
    let mem = QueryMemory::new(big.max_query_memory);
    let out = evaluate_in(&expr, &p, &big, &source, &mem).unwrap();
    assert_eq!(out.stats.total_entries_returned, 10);
    assert!(mem.peak() < 4 << 20, "{}", mem.peak());
    // the batch is given back; what remains counted are the 10 entries of the answer, each
    // with its line and labels as the allocator lays them out (about 460 bytes)
    assert!(mem.used() < 8192, "{}", mem.used());
}

#[test]
fn metric_queries_give_back_what_they_held() {
    let source = source();
    let mem = QueryMemory::new(0);
    let p = range_params(T0, T0 + 3600 * SEC, 60 * SEC);
    let q = r#"sum by (job) (count_over_time({source="loghub"}[5m])) / 2 + topk(1, rate({source="loghub"} | logfmt [1m]))"#;
    let expr = crate::syntax::parse_expr(q).unwrap();
    let out = evaluate_in(&expr, &p, &Limits::default(), &source, &mem).unwrap();
    assert!(matches!(out.result, QueryResult::Matrix(_)));
    assert!(mem.peak() > 0);
    // the answer's matrix is the caller's now; what remains counted is its size at most
    let QueryResult::Matrix(m) = out.result else { unreachable!() };
    let samples: usize = m.iter().map(|s| s.samples.len()).sum();
    assert!(mem.used() <= 4096 + samples as u64 * 64, "{} for {samples}", mem.used());
}
