//! Engine tests of entry order and identity in log queries: entries of one stream with one
//! timestamp come in arrival order (reversed backward), and entries the pipeline makes equal
//! (same labels, timestamp and line) are one, as in Loki's answers; and the order of matrix
//! series, which follows how Loki's frontend splits a range query.
#![allow(clippy::unwrap_used)]

use super::tests::{log_params, streams, MemSource, SEC, T0};
use super::*;
use skald_model::{Entry, Label, Stream};

/// One stream whose entries share timestamps, in the order they arrived.
fn same_ts_source() -> MemSource {
    let labels = Labels::from_vec(vec![Label::new("job", "dup")]);
    let lines = [(1, "b"), (1, "a"), (1, "c"), (2, "z"), (2, "y")];
    let entries = lines
        .iter()
        .map(|&(t, l)| Entry { ts: T0 + t * SEC, line: l.into(), structured_metadata: vec![] })
        .collect();
    MemSource { streams: vec![Stream { labels, entries }] }
}

fn lines_of(q: &str, limit: u32, direction: Direction, src: &MemSource) -> Vec<String> {
    let e = crate::syntax::parse_expr(q).unwrap();
    let out = evaluate(&e, &log_params(limit, direction), &Limits::default(), src).unwrap();
    streams(out.result).into_iter().flat_map(|s| s.entries).map(|e| e.line.to_string()).collect()
}

#[test]
fn entries_with_one_timestamp_come_in_arrival_order_reversed_backward() {
    let src = same_ts_source();
    let q = r#"{job="dup"}"#;
    assert_eq!(lines_of(q, 100, Direction::Forward, &src), ["b", "a", "c", "z", "y"]);
    assert_eq!(lines_of(q, 100, Direction::Backward, &src), ["y", "z", "c", "a", "b"]);
    // the limit cuts in that order: the first arrivals forward, the last ones backward
    assert_eq!(lines_of(q, 2, Direction::Forward, &src), ["b", "a"]);
    assert_eq!(lines_of(q, 4, Direction::Backward, &src), ["y", "z", "c", "a"]);
}

#[test]
fn entries_a_line_format_makes_equal_are_merged_before_the_limit() {
    let src = same_ts_source();
    // every line becomes "x": one entry per timestamp is left, as Loki's result iterator merges
    let q = r#"{job="dup"} | line_format "x""#;
    assert_eq!(lines_of(q, 100, Direction::Forward, &src), ["x", "x"]);
    assert_eq!(lines_of(q, 2, Direction::Backward, &src), ["x", "x"]);
    let e = crate::syntax::parse_expr(q).unwrap();
    let out = evaluate(&e, &log_params(100, Direction::Backward), &Limits::default(), &src);
    let ts: Vec<i64> =
        streams(out.unwrap().result).into_iter().flat_map(|s| s.entries).map(|e| e.ts).collect();
    assert_eq!(ts, [T0 + 2 * SEC, T0 + SEC]);
}

#[test]
fn entries_sharing_metadata_sets_answer_as_entries_building_their_own_labels() {
    // alternating structured-metadata sets, one colliding with a stream label
    let labels = Labels::from_vec(vec![Label::new("job", "m"), Label::new("host", "a")]);
    let sets = [
        vec![Label::new("level", "info")],
        vec![Label::new("level", "error")],
        vec![],
        vec![Label::new("host", "b"), Label::new("level", "info")],
    ];
    let entries = (0..40)
        .map(|i| Entry {
            ts: T0 + (i / 3) * SEC,
            line: format!("line {} {}", i % 7, if i % 2 == 0 { "x" } else { "y" }).into(),
            structured_metadata: sets[(i % 4) as usize].clone(),
        })
        .collect();
    let src = MemSource { streams: vec![Stream { labels, entries }] };
    let answer = |q: &str, categorize: bool, limit: u32, direction: Direction| {
        let e = crate::syntax::parse_expr(q).unwrap();
        let p = QueryParams { categorize_labels: categorize, ..log_params(limit, direction) };
        streams(evaluate(&e, &p, &Limits::default(), &src).unwrap().result)
    };
    for categorize in [false, true] {
        for (limit, direction) in [(100, Direction::Backward), (7, Direction::Forward)] {
            // only line filters: entries share their labels; a label filter that keeps every
            // entry makes each build its own
            let shared = answer(r#"{job="m"} |= "line""#, categorize, limit, direction);
            let own = answer(r#"{job="m"} |= "line" | job="m""#, categorize, limit, direction);
            assert!(!shared.is_empty());
            assert_eq!(shared, own, "categorize {categorize}, limit {limit}");
        }
    }
}

#[test]
fn matrix_order_follows_loki_frontend_splits() {
    let s = |a: &str| Series {
        labels: skald_model::Labels::from_pairs(
            [("a", "1")].into_iter().chain((!a.is_empty()).then_some(("b", a))),
        ),
        samples: Vec::new(),
    };
    let order = |start: i64, end: i64, step: i64| {
        let mut v = vec![s("2"), s("")];
        sort_matrix(&mut v, start, end, step, 0);
        v[0].labels.to_string()
    };
    let h = 60 * 60 * SEC;
    // one split: label order, the shorter label set first
    assert_eq!(order(T0, T0 + h, 60 * SEC), r#"{a="1"}"#);
    // two splits: printed order, `{a="1", b="2"}` first
    assert_eq!(order(T0, T0 + 2 * h, 60 * SEC), r#"{a="1", b="2"}"#);
    // a step longer than the hour: one split per step; 45m..75m at 4939s is one evaluation
    let t = 1_794_098_760 * SEC;
    assert_eq!(order(t, t + 30 * 60 * SEC, 4939 * SEC), r#"{a="1"}"#);
    assert_eq!(order(t, t + 3 * h, 4939 * SEC), r#"{a="1", b="2"}"#);
    // no step given (0): counted by hours
    assert_eq!(order(T0 + 45 * 60 * SEC, T0 + 75 * 60 * SEC, 0), r#"{a="1", b="2"}"#);
}

#[test]
fn matrix_order_counts_splits_of_the_widened_interval() {
    let s = |a: &str| Series {
        labels: skald_model::Labels::from_pairs(
            [("a", "1")].into_iter().chain((!a.is_empty()).then_some(("b", a))),
        ),
        samples: Vec::new(),
    };
    let h = 60 * 60 * SEC;
    let order = |start: i64, end: i64, max_range: i64| {
        let mut v = vec![s("2"), s("")];
        sort_matrix(&mut v, start, end, 60 * SEC, max_range);
        v[0].labels.to_string()
    };
    // 00:21 to 01:31: two hour splits, but one split of `[3h]` (Loki widens the interval)
    let (start, end) = (T0 + 21 * 60 * SEC, T0 + 91 * 60 * SEC);
    assert_eq!(order(start, end, 0), r#"{a="1", b="2"}"#);
    assert_eq!(order(start, end, 3 * h), r#"{a="1"}"#);
    assert_eq!(order(start, end, h), r#"{a="1", b="2"}"#);
}
