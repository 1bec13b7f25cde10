//! Split edges pinned by hand, and the proof that splitting changes nothing:
//! `evaluate(q) == merge(evaluate(q over each split))` over random data and random
//! (start, end, step, interval) combinations.
#![allow(clippy::unwrap_used)]

use skald_model::{Direction, Entry, Label, Labels, Stream};

use super::*;
use crate::engine::tests::{range_params as params, MemSource};
use crate::engine::{evaluate, Limits, QueryParams, QueryResult};
use crate::syntax::parse_expr;

const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
/// An hour-aligned base time (2026-10-30T00:00:00Z).
const T0: i64 = 1_793_491_200 * SEC;

// ---- split edges, computed by hand ----

#[test]
fn a_range_inside_one_interval_is_one_split() {
    assert_eq!(split_range(T0, T0 + 30 * MIN, MIN, HOUR, 0), vec![(T0, T0 + 30 * MIN)]);
    // ending on the boundary: the last step is the first of the next interval, but a split
    // that would hold only the last step is folded into the one before (Loki's rule)
    assert_eq!(split_range(T0, T0 + HOUR, MIN, HOUR, 0), vec![(T0, T0 + HOUR)]);
    assert_eq!(split_range(T0, T0, MIN, HOUR, 0), vec![(T0, T0)]);
    // splitting off
    assert_eq!(split_range(T0, T0 + 5 * HOUR, MIN, 0, 0), vec![(T0, T0 + 5 * HOUR)]);
}

#[test]
fn splits_end_on_the_last_step_before_each_boundary() {
    // 00:00..02:30 every minute, 1h: [00:00, 00:59], [01:00, 01:59], [02:00, 02:30]
    assert_eq!(
        split_range(T0, T0 + 150 * MIN, MIN, HOUR, 0),
        vec![
            (T0, T0 + 59 * MIN),
            (T0 + HOUR, T0 + HOUR + 59 * MIN),
            (T0 + 2 * HOUR, T0 + 150 * MIN)
        ]
    );
    // 00:00..02:00: the last split would be 02:00 alone, so the second runs to 02:00
    assert_eq!(
        split_range(T0, T0 + 2 * HOUR, MIN, HOUR, 0),
        vec![(T0, T0 + 59 * MIN), (T0 + HOUR, T0 + 2 * HOUR)]
    );
}

#[test]
fn a_step_that_does_not_divide_the_interval_keeps_the_grid_of_start() {
    // step 7m from 00:10: steps 00:10, 00:17, ..., 00:52, 00:59 | 01:06 ...
    let splits = split_range(T0 + 10 * MIN, T0 + 10 * MIN + 21 * 7 * MIN, 7 * MIN, HOUR, 0);
    assert_eq!(
        splits,
        vec![
            (T0 + 10 * MIN, T0 + 59 * MIN),
            (T0 + 66 * MIN, T0 + 115 * MIN),
            (T0 + 122 * MIN, T0 + 157 * MIN)
        ]
    );
    // unaligned (sub-second) start: the grid stays the start's
    let s = T0 + 123_456;
    assert_eq!(
        split_range(s, s + 90 * MIN, 30 * MIN, HOUR, 0),
        vec![(s, s + 30 * MIN), (s + 60 * MIN, s + 90 * MIN)]
    );
}

#[test]
fn a_large_range_widens_the_interval_and_a_large_step_splits_per_step() {
    // [2h] over 1h splits: the interval becomes 2h
    assert_eq!(
        split_range(T0, T0 + 3 * HOUR, MIN, HOUR, 2 * HOUR),
        vec![(T0, T0 + 119 * MIN), (T0 + 2 * HOUR, T0 + 3 * HOUR)]
    );
    // step 1h >= 1h: one split per step, the first holding two (Loki: [0,1h] [1h,2h] [2h,3h])
    assert_eq!(
        split_range(T0, T0 + 3 * HOUR, HOUR, HOUR, 0),
        vec![(T0, T0 + HOUR), (T0 + 2 * HOUR, T0 + 2 * HOUR), (T0 + 3 * HOUR, T0 + 3 * HOUR)]
    );
    assert_eq!(split_range(T0, T0 + HOUR, HOUR, HOUR, 0), vec![(T0, T0 + HOUR)]);
    // step 30m < widened interval 2h: split normally
    assert_eq!(
        split_range(T0, T0 + 3 * HOUR, 30 * MIN, HOUR, 2 * HOUR),
        vec![(T0, T0 + 90 * MIN), (T0 + 2 * HOUR, T0 + 3 * HOUR)]
    );
}

/// The cases of Loki's `Test_splitMetricQuery` (pkg/querier/queryrange/split_by_interval_test.go,
/// read for behaviour), on requests already aligned to the step from the epoch.
#[test]
fn metric_splits_match_lokis_own_cases() {
    let h = HOUR;
    // 17s steps, 3h: [2h-9s, 3h-5s] [3h+12s, 6h-10s] [6h+7s, 9h+2s]
    assert_eq!(
        split_range(2 * h - 9 * SEC, 9 * h + 2 * SEC, 17 * SEC, 3 * h, MIN),
        vec![
            (2 * h - 9 * SEC, 3 * h - 5 * SEC),
            (3 * h + 12 * SEC, 6 * h - 10 * SEC),
            (6 * h + 7 * SEC, 9 * h + 2 * SEC)
        ]
    );
    // 15s steps, 24h, from 3h to 3d: [3h, 1d-15s] [1d, 2d-15s] [2d, 3d]
    let d = 24 * h;
    assert_eq!(
        split_range(3 * h, 3 * d, 15 * SEC, d, MIN),
        vec![(3 * h, d - 15 * SEC), (d, 2 * d - 15 * SEC), (2 * d, 3 * d)]
    );
    // 0..1h inside 3h and 0..3h with 3h: unsplit
    assert_eq!(split_range(0, h, 15 * SEC, 3 * h, MIN), vec![(0, h)]);
    assert_eq!(split_range(0, 3 * h, 15 * SEC, 3 * h, MIN), vec![(0, 3 * h)]);
    // rate(..[6h]) with 1h: the interval widens to 6h: [2h, 6h-15s] [6h, 9h]
    assert_eq!(
        split_range(2 * h, 9 * h, 15 * SEC, h, 6 * h),
        vec![(2 * h, 6 * h - 15 * SEC), (6 * h, 9 * h)]
    );
    // rate(..[7d]) with 15m: one split
    assert_eq!(split_range(2 * h, 9 * h, 15 * SEC, 15 * MIN, 7 * d), vec![(2 * h, 9 * h)]);
    // 6h steps over 15m, 0..30h: Loki's five pieces [0,6h] .. [24h,30h]
    assert_eq!(
        split_range(0, 30 * h, 6 * h, 15 * MIN, MIN),
        vec![(0, 6 * h), (12 * h, 12 * h), (18 * h, 18 * h), (24 * h, 24 * h), (30 * h, 30 * h)]
    );
    // 6h steps, 0..6h: Loki's one piece [0, 6h]
    assert_eq!(split_range(0, 6 * h, 6 * h, 15 * MIN, MIN), vec![(0, 6 * h)]);
}

#[test]
fn log_splits_cut_at_interval_multiples() {
    let s = T0 + 10 * MIN + 5;
    let e = T0 + 2 * HOUR + 3;
    let fwd = vec![(s, T0 + HOUR), (T0 + HOUR, T0 + 2 * HOUR), (T0 + 2 * HOUR, e)];
    assert_eq!(split_log_range(s, e, HOUR, Direction::Forward), fwd);
    let mut bwd = fwd.clone();
    bwd.reverse();
    assert_eq!(split_log_range(s, e, HOUR, Direction::Backward), bwd);
    // ending on a boundary: no empty split
    assert_eq!(
        split_log_range(T0, T0 + 2 * HOUR, HOUR, Direction::Forward),
        vec![(T0, T0 + HOUR), (T0 + HOUR, T0 + 2 * HOUR)]
    );
    assert_eq!(split_log_range(s, s + MIN, HOUR, Direction::Forward), vec![(s, s + MIN)]);
    assert_eq!(split_log_range(s, e, 0, Direction::Forward), vec![(s, e)]);
}

#[test]
fn max_range_walks_the_whole_expression() {
    let q = parse_expr(
        r#"sum(rate({a="b"}[5m])) / on() label_replace(max_over_time({a="b"} | unwrap x [2h] offset 3h), "x", "", "", "")"#,
    )
    .unwrap();
    assert_eq!(max_range(&q), 2 * HOUR);
    assert_eq!(max_range(&parse_expr(r#"{a="b"}"#).unwrap()), 0);
    assert_eq!(max_range(&parse_expr("vector(1) + 2").unwrap()), 0);
}

// ---- random data ----

/// splitmix64: a small seeded generator, so every run sees the same data (the shard tests
/// use it too).
pub(super) struct Rng(pub(super) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(super) fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// Random streams over `[T0, T0 + 3h)`: many timestamps on whole minutes (so on split edges),
/// equal timestamps across streams and within a stream, logfmt lines.
fn random_source(rng: &mut Rng) -> MemSource {
    let mut streams = Vec::new();
    for app in ["a", "b"] {
        // {host="h1"} and {host="h1", zone="z"}: the engine ranks ties by labels, and it
        // orders streams by printed labels, and the two orders differ for these
        for host in 0..4 {
            let mut labels = vec![("app", app.to_string()), ("host", format!("h{}", host % 3))];
            if host >= 2 {
                labels.push(("zone", "z".to_string()));
            }
            let mut entries = Vec::new();
            let n = 150 + rng.below(150);
            for i in 0..n {
                let ts = match rng.below(4) {
                    0 => T0 + rng.below(180) as i64 * MIN,
                    1 => T0 + rng.below(36) as i64 * 5 * MIN,
                    _ => T0 + rng.below(3 * HOUR as u64) as i64,
                };
                let sm = if rng.below(10) == 0 {
                    vec![Label::new("trace", format!("t{}", rng.below(3)))]
                } else {
                    Vec::new()
                };
                entries.push(Entry {
                    ts,
                    line: format!(
                        "level={} n={} i={i}",
                        rng.pick(&["info", "warn", "x"]),
                        rng.below(10)
                    )
                    .into(),
                    structured_metadata: sm,
                });
                // a second line at the same time, now and then
                if rng.below(8) == 0 {
                    entries.push(Entry {
                        ts,
                        line: format!("level=info n={} dup={i}", rng.below(10)).into(),
                        structured_metadata: Vec::new(),
                    });
                }
            }
            entries.sort_by_key(|e| e.ts);
            streams.push(Stream { labels: Labels::from_pairs(labels), entries });
        }
    }
    MemSource { streams }
}

fn limits() -> Limits {
    Limits { max_query_series: 100_000, ..Limits::default() }
}

/// Loki's alignment of a range query to its step: start down, end up, from the epoch.
fn align(start: i64, end: i64, step: i64) -> (i64, i64) {
    let s = start - start.rem_euclid(step);
    let r = end.rem_euclid(step);
    (s, if r == 0 { end } else { end + step - r })
}

const METRIC_QUERIES: &[&str] = &[
    r#"count_over_time({app="a"}[5m])"#,
    r#"sum by (host) (rate({app=~".+"}[10m]))"#,
    r#"bytes_over_time({app="b"} |= "warn" [90s])"#,
    r#"max_over_time({app=~".+"} | logfmt | unwrap n [3m]) by (app)"#,
    r#"sum_over_time({app=~".+"} | logfmt | unwrap n [7m])"#,
    r#"avg_over_time({app="a"} | logfmt | unwrap n [4m]) by (host)"#,
    r#"quantile_over_time(0.5, {app=~".+"} | logfmt | unwrap n [6m]) by (app)"#,
    r#"topk(2, sum by (host) (count_over_time({app=~".+"}[2m])))"#,
    r#"count_over_time({app="a"}[20m] offset 5m)"#,
    r#"sum(count_over_time({app="a"}[1m])) / sum(count_over_time({app=~".+"}[1m]))"#,
    r#"sum by (level) (count_over_time({app=~".+"} | logfmt [75m])) > 3"#,
    r#"first_over_time({app="b"} | logfmt | unwrap n [2m]) + last_over_time({app="b"} | logfmt | unwrap n [2m])"#,
    r#"count_over_time({app=~".+"}[150m])"#,
    r#"absent_over_time({app="none"}[5m])"#,
    "vector(1) * 2",
];

fn matrix(r: QueryResult) -> Vec<crate::engine::Series> {
    match r {
        QueryResult::Matrix(m) => m,
        other => panic!("not a matrix: {other:?}"),
    }
}

#[test]
fn a_split_metric_query_equals_the_whole_query() {
    let mut rng = Rng(0x5eed_0001);
    let src = random_source(&mut rng);
    let steps =
        [SEC * 10, 15 * SEC, 37 * SEC, MIN, 7 * MIN, 30 * MIN, HOUR, 2 * HOUR, 1_234_567_891];
    let intervals = [5 * MIN, 13 * MIN, 30 * MIN, HOUR, 2 * HOUR];
    let mut split_runs = 0;
    let mut non_empty = 0;
    for q in METRIC_QUERIES {
        let expr = parse_expr(q).unwrap();
        let range = max_range(&expr);
        for _ in 0..12 {
            let step = rng.pick(&steps);
            let interval = rng.pick(&intervals);
            let start = T0 - 20 * MIN + rng.below(3 * HOUR as u64) as i64;
            let end = start + rng.below(4 * HOUR as u64) as i64;
            // most requests aligned as the querier does; some not
            let (start, end) =
                if rng.below(4) == 0 { (start, end) } else { align(start, end, step) };
            let whole =
                matrix(evaluate(&expr, &params(start, end, step), &limits(), &src).unwrap().result);
            let splits = split_range(start, end, step, interval, range);
            check_splits_cover(start, end, step, &splits);
            split_runs += usize::from(splits.len() > 1);
            non_empty +=
                usize::from(splits.len() > 1 && whole.iter().any(|s| !s.samples.is_empty()));
            let parts = splits
                .iter()
                .map(|&(s, e)| {
                    matrix(evaluate(&expr, &params(s, e, step), &limits(), &src).unwrap().result)
                })
                .collect();
            let merged = merge_matrix(parts, start, end, step, max_range(&expr));
            assert_eq!(
                merged, whole,
                "{q} start={start} end={end} step={step} interval={interval} splits={splits:?}"
            );
        }
    }
    assert!(split_runs > METRIC_QUERIES.len() * 4, "too few queries were split: {split_runs}");
    assert!(non_empty > METRIC_QUERIES.len() * 3, "too few split queries had data: {non_empty}");
}

#[test]
fn the_series_limit_fails_a_split_query_exactly_when_it_fails_the_whole() {
    let mut rng = Rng(0x5eed_0003);
    let src = random_source(&mut rng);
    let (mut failed, mut passed) = (0, 0);
    for q in METRIC_QUERIES {
        let expr = parse_expr(q).unwrap();
        for _ in 0..6 {
            let max_query_series = rng.below(9) as usize;
            let limits = Limits { max_query_series, ..Limits::default() };
            let step = rng.pick(&[MIN, 7 * MIN, HOUR]);
            let start = T0 + rng.below(3 * HOUR as u64) as i64;
            let (start, end) = align(start, start + rng.below(3 * HOUR as u64) as i64, step);
            let whole = evaluate(&expr, &params(start, end, step), &limits, &src)
                .map(|o| matrix(o.result))
                .map_err(|e| e.to_string());
            let split = split_range(start, end, step, 20 * MIN, max_range(&expr))
                .iter()
                .map(|&(s, e)| {
                    evaluate(&expr, &params(s, e, step), &limits, &src).map(|o| matrix(o.result))
                })
                .collect::<Result<Vec<_>, _>>()
                .and_then(|parts| {
                    let merged = merge_matrix(parts, start, end, step, max_range(&expr));
                    check_series_limit(&merged, max_query_series).map(|()| merged)
                })
                .map_err(|e| e.to_string());
            assert_eq!(
                split, whole,
                "{q} start={start} end={end} step={step} max={max_query_series}"
            );
            if whole.is_err() {
                failed += 1;
            } else {
                passed += 1;
            }
        }
    }
    assert!(failed > 10 && passed > 10, "failed {failed}, passed {passed}");
}

/// Every step of `start..=end` is in exactly one split, and the splits keep the step grid.
fn check_splits_cover(start: i64, end: i64, step: i64, splits: &[(i64, i64)]) {
    let mut expect = start;
    for &(s, e) in splits {
        assert_eq!(s, expect, "{splits:?}");
        assert!(e >= s && (e - s) % step == 0 || e == end, "{splits:?}");
        expect = s + ((e - s) / step + 1) * step;
    }
    assert!(expect > end, "{splits:?}");
}

const LOG_QUERIES: &[&str] = &[
    r#"{app=~".+"}"#,
    r#"{app="a"} |= "warn""#,
    r#"{app=~".+"} | logfmt | n > 3"#,
    r#"{app=~".+"} | line_format "{{.host}}""#,
    r#"{app="b"} | logfmt | drop i, dup"#,
];

fn streams(r: QueryResult) -> Vec<crate::engine::ResultStream> {
    match r {
        QueryResult::Streams(s) => s,
        other => panic!("not streams: {other:?}"),
    }
}

#[test]
fn a_split_log_query_equals_the_whole_query() {
    let mut rng = Rng(0x5eed_0002);
    let src = random_source(&mut rng);
    let intervals = [MIN, 5 * MIN, 13 * MIN, 30 * MIN, HOUR];
    let limits_ = [1u32, 2, 7, 50, 300, 5000];
    // runs where the limit cut the merged answer, and where it kept everything
    let (mut cut, mut all) = (0, 0);
    // runs where the two answers kept other entries of the farthest timestamp
    let mut ties = 0;
    for q in LOG_QUERIES {
        let expr = parse_expr(q).unwrap();
        for _ in 0..40 {
            let interval = rng.pick(&intervals);
            let limit = rng.pick(&limits_);
            let direction =
                if rng.below(2) == 0 { Direction::Forward } else { Direction::Backward };
            // start and end often on whole minutes, so on split edges
            let mut start = T0 - 10 * MIN + rng.below(3 * HOUR as u64) as i64;
            let mut end = start + rng.below(3 * HOUR as u64) as i64;
            if rng.below(2) == 0 {
                start -= start.rem_euclid(MIN);
                end -= end.rem_euclid(MIN);
            }
            let p = QueryParams {
                limit,
                direction,
                categorize_labels: rng.below(3) == 0,
                ..params(start, end, 0)
            };
            let whole = streams(evaluate(&expr, &p, &Limits::default(), &src).unwrap().result);
            let splits = split_log_range(start, end, interval, direction);
            let parts = splits
                .iter()
                .map(|&(s, e)| {
                    let sp = QueryParams { start: s, end: e, ..p.clone() };
                    streams(evaluate(&expr, &sp, &Limits::default(), &src).unwrap().result)
                })
                .collect();
            let parts: Vec<_> = parts;
            let total: usize = parts.iter().flatten().map(|s| s.entries.len()).sum();
            if splits.len() > 1 && total > limit as usize {
                cut += 1;
            } else if splits.len() > 1 && total > 0 {
                all += 1;
            }
            let merged = merge_streams(parts, limit as usize, direction);
            if merged != whole {
                // The engine orders entries of one timestamp by the stream they were stored
                // in (Loki's querier), the merge by result stream (it no longer knows the
                // stored one): under a cut, only which entries of the farthest timestamp are
                // kept may differ.
                let flat = |r: &[crate::engine::ResultStream]| -> Vec<(i64, String, String)> {
                    let mut v: Vec<_> = r
                        .iter()
                        .flat_map(|s| {
                            s.entries
                                .iter()
                                .map(|e| (e.ts, s.labels.to_string(), e.line.to_string()))
                        })
                        .collect();
                    v.sort();
                    v
                };
                let (m, w) = (flat(&merged), flat(&whole));
                let far = if direction == Direction::Forward {
                    w.iter().map(|e| e.0).max()
                } else {
                    w.iter().map(|e| e.0).min()
                };
                let before = |v: &[(i64, String, String)]| -> Vec<(i64, String, String)> {
                    v.iter().filter(|e| Some(e.0) != far).cloned().collect()
                };
                assert!(
                    total > limit as usize && m.len() == w.len() && before(&m) == before(&w),
                    "{q} start={start} end={end} interval={interval} limit={limit} {direction:?}"
                );
                ties += 1;
            }
        }
    }
    assert!(cut > 40 && all > 20, "too few interesting runs: cut {cut}, all {all}");
    assert!(ties * 10 < cut, "the farthest timestamp's entries differ too often: {ties} of {cut}");
}

#[test]
fn entries_on_a_split_edge_belong_to_the_later_split_only() {
    // Two streams with entries exactly on the 01:00 edge, plus one on each side.
    let stream = |host: &str| Stream {
        labels: Labels::from_pairs([("app", "a".to_string()), ("host", host.to_string())]),
        entries: [HOUR - 1, HOUR, HOUR, HOUR + 1]
            .iter()
            .enumerate()
            .map(|(i, &d)| Entry {
                ts: T0 + d,
                line: format!("{host} {i}").into(),
                structured_metadata: Vec::new(),
            })
            .collect(),
    };
    let src = MemSource { streams: vec![stream("h1"), stream("h0")] };
    let expr = parse_expr(r#"{app="a"}"#).unwrap();
    for direction in [Direction::Forward, Direction::Backward] {
        let splits = split_log_range(T0, T0 + 2 * HOUR, HOUR, direction);
        for limit in 1..=8u32 {
            let p = QueryParams { limit, direction, ..params(T0, T0 + 2 * HOUR, 0) };
            let whole = streams(evaluate(&expr, &p, &Limits::default(), &src).unwrap().result);
            let parts: Vec<_> = splits
                .iter()
                .map(|&(s, e)| {
                    let sp = QueryParams { start: s, end: e, ..p.clone() };
                    streams(evaluate(&expr, &sp, &Limits::default(), &src).unwrap().result)
                })
                .collect();
            // the edge entries are in the split starting at 01:00, never in the one before
            let before = if direction == Direction::Forward { &parts[0] } else { &parts[1] };
            assert!(before.iter().all(|s| s.entries.iter().all(|e| e.ts < T0 + HOUR)));
            assert_eq!(
                merge_streams(parts, limit as usize, direction),
                whole,
                "{direction:?} {limit}"
            );
        }
    }
}

#[test]
fn merged_errors_name_the_smallest_failing_series() {
    let src = MemSource {
        streams: ["b", "a", "c"]
            .iter()
            .map(|app| Stream {
                labels: Labels::from_pairs([("app", app.to_string())]),
                entries: vec![Entry {
                    ts: T0 + if *app == "b" { 10 * MIN } else { 70 * MIN },
                    line: "n=x".into(),
                    structured_metadata: Vec::new(),
                }],
            })
            .collect(),
    };
    let expr = parse_expr(r#"sum_over_time({app=~".+"} | logfmt | unwrap n [1m])"#).unwrap();
    let run = |s, e| evaluate(&expr, &params(s, e, MIN), &limits(), &src).map(|o| o.result);
    let whole = run(T0, T0 + 2 * HOUR).unwrap_err().to_string();
    assert!(whole.contains(r#"app="a""#), "{whole}");
    // the first split names app="b", the second app="a", which the whole query names
    let errors: Vec<_> = split_range(T0, T0 + 2 * HOUR, MIN, HOUR, MIN)
        .into_iter()
        .filter_map(|(s, e)| run(s, e).err())
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(errors[0].to_string().contains(r#"app="b""#));
    assert_eq!(merge_errors(errors).unwrap().to_string(), whole);
    // other errors: the first
    let errors = vec![
        crate::engine::EngineError::Execution("x".into()),
        crate::engine::EngineError::Execution("y".into()),
    ];
    assert_eq!(merge_errors(errors).unwrap().to_string(), "x");
    assert!(merge_errors(Vec::new()).is_none());
}
