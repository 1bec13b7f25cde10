//! Engine tests over an in-memory source. Expected values marked "reference" are copied from
//! Loki's answers in shared/reference/loki/*.json; the data below rebuilds the relevant part of
//! that dataset (loghub streams: line i at T0 + system*1ms + i*500ms, host node-(i%2)).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::syntax::ast::*;
use skald_model::{Entry, EntryBatch, Label, LabelMatcher, MatchType, Stream};

pub(super) const T0: i64 = 1_793_491_200_000_000_000;
pub(super) const SEC: i64 = 1_000_000_000;
pub(super) const MIN: i64 = 60 * SEC;

pub(crate) struct MemSource {
    pub(crate) streams: Vec<Stream>,
}

impl Source for MemSource {
    fn select(
        &self,
        selector: &LogSelectorExpr,
        start: i64,
        end: i64,
        limit: Option<SelectLimit>,
    ) -> Result<Box<dyn Iterator<Item = Result<StreamBatch, EngineError>> + Send + '_>, EngineError>
    {
        // Every engine test also exercises push-down: the source drops what it may.
        let matchers = &selector.matchers;
        let pipeline = crate::log::Pipeline::new(&selector.stages)
            .map_err(|e| EngineError::Pipeline(e.to_string()))?;
        let selected: Vec<Stream> = self
            .streams
            .iter()
            .filter(|s| LabelMatcher::all_match(matchers, &s.labels))
            .map(|s| Stream {
                labels: s.labels.clone(),
                entries: s
                    .entries
                    .iter()
                    .filter(|e| e.ts >= start && e.ts < end)
                    .cloned()
                    .collect(),
            })
            .collect();
        let selected = push_down(&pipeline, selected, limit);
        Ok(Box::new(selected.into_iter().flat_map(move |s| {
            let entries = s.entries;
            // Split every stream into two batches to exercise batch handling.
            let mid = entries.len() / 2;
            let (a, b) = entries.split_at(mid);
            [a.to_vec(), b.to_vec()]
                .into_iter()
                .filter(|v| !v.is_empty())
                .map(|v| {
                    Ok(StreamBatch {
                        labels: s.labels.clone(),
                        entries: EntryBatch::from(v.as_slice()),
                    })
                })
                .collect::<Vec<_>>()
        })))
    }

    /// Every engine test of a range aggregation also exercises samples pushed down by the
    /// source: it extracts the samples of every other stream as an ingester would, and hands
    /// every stream to the engine as well, so those entries must be recognised as counted.
    /// The expression travels as text, as to an ingester (its grouping with it).
    fn select_samples(
        &self,
        range: &LogRangeExpr,
        op: RangeOp,
        param: Option<f64>,
        grouping: Option<&crate::syntax::ast::Grouping>,
        from: i64,
        to: i64,
    ) -> Result<Option<PushedSamples<'_>>, EngineError> {
        let extractor = super::hints::extractor_via_text(op, range, param, grouping)
            .map_err(|e| EngineError::Pipeline(e.to_string()))?;
        let mut by_series: std::collections::BTreeMap<Labels, Vec<(i64, f64)>> = Default::default();
        let mut counted = std::collections::HashSet::new();
        let matching: Vec<&Stream> = self
            .streams
            .iter()
            .filter(|s| LabelMatcher::all_match(&range.selector.matchers, &s.labels))
            .collect();
        for s in matching.iter().step_by(2) {
            let mut sx = extractor.for_stream(&s.labels);
            for e in s.entries.iter().filter(|e| e.ts > from && e.ts < to) {
                counted.insert((e.ts, skald_model::entry_hash(s.labels.hash(), &e.line)));
                if let Some((v, labels)) = sx.process(e.ts, &e.line, &e.structured_metadata) {
                    by_series.entry(labels).or_default().push((e.ts, v));
                }
            }
        }
        let series =
            by_series.into_iter().map(|(labels, points)| SampleBatch { labels, points }).collect();
        let rest = self.select(&range.selector, from, to, None)?;
        Ok(Some(PushedSamples { series, counted, rest }))
    }
}

/// A loghub-like system: 2000 lines over two host streams.
fn loghub(job: &str, system_index: i64) -> Vec<Stream> {
    let mut hosts: Vec<Stream> = (0..2)
        .map(|h| Stream {
            labels: Labels::from_pairs([
                ("job", job.to_string()),
                ("env", "test".to_string()),
                ("source", "loghub".to_string()),
                ("host", format!("node-{h}")),
            ]),
            entries: Vec::new(),
        })
        .collect();
    for i in 0..2000i64 {
        let sm =
            if i % 50 == 49 { vec![Label::new("trace_id", format!("t{i}"))] } else { Vec::new() };
        hosts[(i % 2) as usize].entries.push(Entry {
            ts: T0 + system_index * 1_000_000 + i * 500_000_000,
            line: format!("{job} line {i} n={}", i % 7).into(),
            structured_metadata: sm,
        });
    }
    hosts
}

pub(super) fn source() -> MemSource {
    let mut streams = loghub("android", 0);
    streams.extend(loghub("apache", 1));
    MemSource { streams }
}

pub(super) fn eq(name: &str, value: &str) -> LabelMatcher {
    LabelMatcher::new(name, MatchType::Equal, value).unwrap()
}

pub(super) fn sel(matchers: Vec<LabelMatcher>, stages: Vec<Stage>) -> LogSelectorExpr {
    LogSelectorExpr { matchers, stages }
}

pub(super) fn range(selector: LogSelectorExpr, range_ns: i64) -> Box<LogRangeExpr> {
    Box::new(LogRangeExpr {
        selector,
        range_ns,
        range_literal: String::new(),
        unwrap: None,
        offset_ns: 0,
        offset_literal: None,
    })
}

pub(super) fn ra(op: RangeOp, r: Box<LogRangeExpr>) -> SampleExpr {
    SampleExpr::RangeAggregation { op, range: r, param: None, grouping: None }
}

pub(super) fn by(labels: &[&str]) -> Option<Grouping> {
    Some(Grouping { without: false, labels: labels.iter().map(|s| s.to_string()).collect() })
}

pub(super) fn vagg(op: VectorOp, grouping: Option<Grouping>, expr: SampleExpr) -> SampleExpr {
    SampleExpr::VectorAggregation { op, expr: Box::new(expr), param: None, grouping }
}

fn bin(op: BinOp, lhs: SampleExpr, rhs: SampleExpr) -> SampleExpr {
    SampleExpr::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
        return_bool: false,
        matching: VectorMatching::default(),
    }
}

pub(crate) fn range_params(start: i64, end: i64, step: i64) -> QueryParams {
    QueryParams {
        start,
        end,
        step_ns: step,
        interval_ns: 0,
        limit: 100,
        direction: Direction::Backward,
        instant: false,
        categorize_labels: false,
    }
}

pub(super) fn instant_params(t: i64) -> QueryParams {
    QueryParams { instant: true, ..range_params(t, t, 0) }
}

pub(super) fn log_params(limit: u32, direction: Direction) -> QueryParams {
    QueryParams { limit, direction, ..range_params(T0, T0 + 7200 * SEC, 0) }
}

fn run(expr: SampleExpr, p: &QueryParams) -> Result<QueryResult, EngineError> {
    evaluate(&Expr::Sample(expr), p, &Limits::default(), &source()).map(|o| o.result)
}

fn matrix(r: QueryResult) -> Vec<(String, Vec<(i64, f64)>)> {
    match r {
        QueryResult::Matrix(m) => m
            .into_iter()
            .map(|s| {
                (
                    s.labels.to_string(),
                    s.samples.iter().map(|p| ((p.ts - T0) / SEC, p.value)).collect(),
                )
            })
            .collect(),
        other => panic!("expected a matrix, got {other:?}"),
    }
}

#[test]
fn count_over_time_sum_by_job_matches_reference() {
    let e = vagg(
        VectorOp::Sum,
        by(&["job"]),
        ra(RangeOp::CountOverTime, range(sel(vec![eq("env", "test")], vec![]), 5 * MIN)),
    );
    let m = matrix(run(e, &range_params(T0, T0 + 7200 * SEC, 300 * SEC)).unwrap());
    // reference: metric_count_over_time_sum_by_job
    assert_eq!(m[0].0, r#"{job="android"}"#);
    assert_eq!(m[0].1, vec![(0, 1.0), (300, 600.0), (600, 600.0), (900, 600.0), (1200, 199.0)]);
    assert_eq!(m[1].0, r#"{job="apache"}"#);
    assert_eq!(m[1].1, vec![(300, 600.0), (600, 600.0), (900, 600.0), (1200, 200.0)]);
}

#[test]
fn ignoring_group_left_matches_reference() {
    let inner = |g: &[&str]| {
        vagg(
            VectorOp::Sum,
            by(g),
            ra(RangeOp::CountOverTime, range(sel(vec![eq("source", "loghub")], vec![]), 10 * MIN)),
        )
    };
    let e = SampleExpr::Binary {
        op: BinOp::Div,
        lhs: Box::new(inner(&["job", "host"])),
        rhs: Box::new(inner(&["job"])),
        return_bool: false,
        matching: VectorMatching {
            matching: Some(Grouping { without: true, labels: vec!["host".into()] }),
            group: Some(GroupSide::Left(vec![])),
        },
    };
    let m = matrix(run(e, &range_params(T0, T0 + 1800 * SEC, 600 * SEC)).unwrap());
    // reference: metric_binop_ignoring_group_left
    assert_eq!(m[0].0, r#"{host="node-0", job="android"}"#);
    assert_eq!(m[0].1, vec![(0, 1.0), (600, 0.5), (1200, 0.49937421777221525)]);
    assert_eq!(m[1].0, r#"{host="node-0", job="apache"}"#);
    assert_eq!(m[1].1, vec![(600, 0.5), (1200, 0.5)]);
}

#[test]
fn on_matching_one_to_one_keeps_on_labels_and_bool_comparison() {
    let count = |g: &[&str]| {
        vagg(
            VectorOp::Sum,
            by(g),
            ra(RangeOp::CountOverTime, range(sel(vec![eq("source", "loghub")], vec![]), 10 * MIN)),
        )
    };
    let e = SampleExpr::Binary {
        op: BinOp::Gt,
        lhs: Box::new(count(&["job"])),
        rhs: Box::new(SampleExpr::Literal(500.0)),
        return_bool: true,
        matching: VectorMatching::default(),
    };
    let m = matrix(run(e, &range_params(T0, T0 + 1800 * SEC, 600 * SEC)).unwrap());
    // reference: metric_binop_bool
    assert_eq!(m[0].1, vec![(0, 0.0), (600, 1.0), (1200, 1.0)]);

    let filtered = bin(BinOp::Gt, count(&["job"]), SampleExpr::Literal(900.0));
    let m = matrix(run(filtered, &range_params(T0, T0 + 1800 * SEC, 600 * SEC)).unwrap());
    assert_eq!(m[0].1, vec![(600, 1200.0)], "comparison filters and keeps the vector value");

    let e = SampleExpr::Binary {
        op: BinOp::Div,
        lhs: Box::new(count(&["job", "host"])),
        rhs: Box::new(count(&["job", "host"])),
        return_bool: false,
        matching: VectorMatching {
            matching: Some(Grouping { without: false, labels: vec!["job".into(), "host".into()] }),
            group: None,
        },
    };
    let m = matrix(run(e, &range_params(T0, T0 + 600 * SEC, 600 * SEC)).unwrap());
    assert_eq!(m[0].0, r#"{host="node-0", job="android"}"#);

    // Many-to-one without group_left is an error.
    let e = SampleExpr::Binary {
        op: BinOp::Div,
        lhs: Box::new(count(&["job", "host"])),
        rhs: Box::new(count(&["job"])),
        return_bool: false,
        matching: VectorMatching {
            matching: Some(Grouping { without: false, labels: vec!["job".into()] }),
            group: None,
        },
    };
    let err = run(e, &range_params(T0, T0 + 600 * SEC, 600 * SEC)).unwrap_err();
    assert!(err.to_string().starts_with("multiple matches for labels"), "{err}");
}

#[test]
fn rate_and_offset_and_set_ops() {
    let r = ra(
        RangeOp::Rate,
        range(sel(vec![eq("job", "android"), eq("host", "node-0")], vec![]), MIN),
    );
    let m = matrix(run(r, &range_params(T0 + 60 * SEC, T0 + 120 * SEC, 60 * SEC)).unwrap());
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].1, vec![(60, 1.0), (120, 1.0)]);

    let mut rr = range(sel(vec![eq("job", "android")], vec![]), 10 * MIN);
    rr.offset_ns = 10 * MIN;
    let e = vagg(VectorOp::Sum, None, ra(RangeOp::CountOverTime, rr));
    let m = matrix(run(e, &range_params(T0, T0 + 1800 * SEC, 600 * SEC)).unwrap());
    // window for t=T0+10m is (T0-10m, T0]: the single line at T0.
    assert_eq!(m[0].1, vec![(600, 1.0), (1200, 1200.0), (1800, 799.0)]);

    // `or vector(0)` fills the gaps of a missing series (reference: metric_or_vector_zero).
    let missing = vagg(
        VectorOp::Sum,
        None,
        ra(RangeOp::CountOverTime, range(sel(vec![eq("job", "nope")], vec![]), 5 * MIN)),
    );
    let e = bin(BinOp::Or, missing, SampleExpr::Vector(0.0));
    let m = matrix(run(e, &range_params(T0, T0 + 7200 * SEC, 1800 * SEC)).unwrap());
    assert_eq!(
        m,
        vec![(
            "{}".to_string(),
            vec![(0, 0.0), (1800, 0.0), (3600, 0.0), (5400, 0.0), (7200, 0.0)]
        )]
    );

    // `and` / `unless`.
    let count = |job: &str| {
        vagg(
            VectorOp::Sum,
            by(&["job"]),
            ra(RangeOp::CountOverTime, range(sel(vec![eq("job", job)], vec![]), 10 * MIN)),
        )
    };
    let all = vagg(
        VectorOp::Sum,
        by(&["job"]),
        ra(RangeOp::CountOverTime, range(sel(vec![eq("env", "test")], vec![]), 10 * MIN)),
    );
    let e = bin(BinOp::Unless, all.clone(), count("android"));
    let m = matrix(run(e, &range_params(T0, T0 + 1200 * SEC, 600 * SEC)).unwrap());
    assert_eq!(m.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), vec![r#"{job="apache"}"#]);
    let e = bin(BinOp::And, all, count("android"));
    let m = matrix(run(e, &range_params(T0, T0 + 1200 * SEC, 600 * SEC)).unwrap());
    assert_eq!(m.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), vec![r#"{job="android"}"#]);
}

#[test]
fn absent_over_time_missing_and_partial() {
    let e = ra(RangeOp::AbsentOverTime, range(sel(vec![eq("job", "nosuchjob")], vec![]), 10 * MIN));
    let m = matrix(run(e, &range_params(T0, T0 + 7200 * SEC, 600 * SEC)).unwrap());
    // reference: metric_absent_over_time_missing (13 points of 1)
    assert_eq!(m[0].0, r#"{job="nosuchjob"}"#);
    assert_eq!(m[0].1.len(), 13);
    let re = LabelMatcher::new("host", MatchType::Regex, "node-.*").unwrap();
    let e =
        ra(RangeOp::AbsentOverTime, range(sel(vec![eq("job", "android"), re], vec![]), 5 * MIN));
    let m = matrix(run(e, &range_params(T0, T0 + 2400 * SEC, 300 * SEC)).unwrap());
    assert_eq!(m[0].0, r#"{job="android"}"#);
    assert_eq!(m[0].1.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1500, 1800, 2100, 2400]);
}

#[test]
fn instant_results() {
    // reference: instant_scalar_literal `1 + 2 * 3`
    let e = bin(
        BinOp::Add,
        SampleExpr::Literal(1.0),
        bin(BinOp::Mul, SampleExpr::Literal(2.0), SampleExpr::Literal(3.0)),
    );
    assert_eq!(
        run(e, &instant_params(T0 + 3600 * SEC)).unwrap(),
        QueryResult::Scalar { ts: T0 + 3600 * SEC, value: 7.0 }
    );
    // reference: instant_vector1_plus_vector1
    let e = bin(BinOp::Add, SampleExpr::Vector(1.0), SampleExpr::Vector(1.0));
    assert_eq!(
        run(e, &instant_params(T0 + 3600 * SEC)).unwrap(),
        QueryResult::Vector(vec![VectorSample {
            labels: Labels::default(),
            ts: T0 + 3600 * SEC,
            value: 2.0
        }])
    );
    // sort_desc keeps value order; plain results are sorted by labels.
    let bytes = vagg(
        VectorOp::Sum,
        by(&["host", "job"]),
        ra(RangeOp::CountOverTime, range(sel(vec![eq("env", "test")], vec![]), 30 * MIN)),
    );
    let labels = |r: QueryResult| match r {
        QueryResult::Vector(v) => {
            v.iter().map(|s| (s.labels.to_string(), s.value)).collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    let plain = labels(run(bytes.clone(), &instant_params(T0 + 600 * SEC + 1)).unwrap());
    assert_eq!(plain[0], (r#"{host="node-0", job="android"}"#.to_string(), 601.0));
    assert_eq!(plain[1], (r#"{host="node-0", job="apache"}"#.to_string(), 600.0));
    let sorted = labels(
        run(vagg(VectorOp::Sort, None, bytes.clone()), &instant_params(T0 + 600 * SEC + 1))
            .unwrap(),
    );
    assert_eq!(sorted.iter().map(|s| s.1).collect::<Vec<_>>(), vec![600.0, 600.0, 600.0, 601.0]);
    let top = SampleExpr::VectorAggregation {
        op: VectorOp::Topk,
        expr: Box::new(bytes),
        param: Some(1.0),
        grouping: None,
    };
    let top = labels(run(top, &instant_params(T0 + 600 * SEC + 1)).unwrap());
    assert_eq!(top, vec![(r#"{host="node-0", job="android"}"#.to_string(), 601.0)]);
}

#[test]
fn vector_aggregations() {
    let base = vagg(
        VectorOp::Sum,
        by(&["host", "job"]),
        ra(RangeOp::CountOverTime, range(sel(vec![eq("env", "test")], vec![]), 10 * MIN)),
    );
    let p = range_params(T0, T0 + 1200 * SEC, 600 * SEC);
    let val =
        |op: VectorOp, g: Option<Grouping>| matrix(run(vagg(op, g, base.clone()), &p).unwrap());
    // per step: t=0 {android/node-0: 1}; t=600 all four 600; t=1200 android 399/400, apache 400/400
    assert_eq!(val(VectorOp::Count, None)[0].1, vec![(0, 1.0), (600, 4.0), (1200, 4.0)]);
    assert_eq!(val(VectorOp::Max, None)[0].1, vec![(0, 1.0), (600, 600.0), (1200, 400.0)]);
    assert_eq!(val(VectorOp::Min, None)[0].1, vec![(0, 1.0), (600, 600.0), (1200, 399.0)]);
    assert_eq!(val(VectorOp::Avg, None)[0].1, vec![(0, 1.0), (600, 600.0), (1200, 399.75)]);
    let sd = val(VectorOp::Stdvar, None)[0].1.clone();
    assert_eq!(&sd[..2], &[(0, 0.0), (600, 0.0)]);
    assert!((sd[2].1 - 0.1875).abs() < 1e-12);
    let without = vagg(
        VectorOp::Sum,
        Some(Grouping { without: true, labels: vec!["host".into()] }),
        base.clone(),
    );
    let m = matrix(run(without, &p).unwrap());
    assert_eq!(m[0].0, r#"{job="android"}"#);
    assert_eq!(m[0].1, vec![(0, 1.0), (600, 1200.0), (1200, 799.0)]);
    // topk in a range query selects per step (ties broken by labels).
    let top = SampleExpr::VectorAggregation {
        op: VectorOp::Topk,
        expr: Box::new(base),
        param: Some(1.0),
        grouping: None,
    };
    let m = matrix(run(top, &p).unwrap());
    assert_eq!(
        m[0],
        (r#"{host="node-0", job="android"}"#.to_string(), vec![(0, 1.0), (600, 600.0)])
    );
    assert_eq!(m[1], (r#"{host="node-0", job="apache"}"#.to_string(), vec![(1200, 400.0)]));
}

#[test]
fn label_replace_and_series_limit() {
    let base = vagg(
        VectorOp::Sum,
        by(&["job"]),
        ra(RangeOp::CountOverTime, range(sel(vec![eq("env", "test")], vec![]), 10 * MIN)),
    );
    let e = SampleExpr::LabelReplace {
        expr: Box::new(base.clone()),
        dst: "system".into(),
        replacement: "sys-$1".into(),
        src: "job".into(),
        regex: "(a.*d)".into(),
    };
    let m = matrix(run(e, &range_params(T0, T0 + 600 * SEC, 600 * SEC)).unwrap());
    assert_eq!(m[0].0, r#"{job="android", system="sys-android"}"#);
    assert_eq!(m[1].0, r#"{job="apache"}"#);

    let limits = Limits { max_query_series: 1, ..Limits::default() };
    let err = evaluate(
        &Expr::Sample(base),
        &range_params(T0, T0 + 600 * SEC, 600 * SEC),
        &limits,
        &source(),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("maximum number of series (1) reached for a single query"));
    assert_eq!(err.status_code(), 400);
}

#[test]
fn unwrap_error_fails_unless_grouped_by_error() {
    let mut r = range(
        sel(
            vec![eq("job", "android")],
            vec![Stage::Parser(ParserStage::Logfmt {
                strict: false,
                keep_empty: false,
                extractions: vec![],
            })],
        ),
        10 * MIN,
    );
    // `line` is the value of the `android line 3 n=3` word `android`: never numeric.
    r.unwrap = Some(Unwrap {
        label: "job".into(),
        conversion: UnwrapConversion::None,
        post_filters: vec![],
    });
    let e = ra(RangeOp::SumOverTime, r.clone());
    let err = run(e, &range_params(T0, T0 + 600 * SEC, 600 * SEC)).unwrap_err();
    assert!(
        err.to_string().starts_with("pipeline error: 'SampleExtractionErr' for series: '{"),
        "{err}"
    );
    assert!(err.to_string().contains("(e.g | __error__!=\"SampleExtractionErr\")"));
    assert_eq!(err.status_code(), 400);

    let e = vagg(VectorOp::Sum, by(&["__error__"]), ra(RangeOp::SumOverTime, r));
    let m = matrix(run(e, &range_params(T0, T0 + 600 * SEC, 600 * SEC)).unwrap());
    assert_eq!(m[0].0, r#"{__error__="SampleExtractionErr"}"#);

    let mut ok = range(
        sel(
            vec![eq("job", "android")],
            vec![Stage::Parser(ParserStage::Logfmt {
                strict: false,
                keep_empty: false,
                extractions: vec![],
            })],
        ),
        10 * MIN,
    );
    ok.unwrap = Some(Unwrap {
        label: "n".into(),
        conversion: UnwrapConversion::None,
        post_filters: vec![],
    });
    let q = SampleExpr::RangeAggregation {
        op: RangeOp::QuantileOverTime,
        range: ok.clone(),
        param: Some(0.5),
        grouping: by(&["job"]),
    };
    let m = matrix(run(q, &range_params(T0 + 600 * SEC, T0 + 600 * SEC, 600 * SEC)).unwrap());
    assert_eq!(m, vec![(r#"{job="android"}"#.to_string(), vec![(600, 3.0)])]);
    let mx = SampleExpr::RangeAggregation {
        op: RangeOp::MaxOverTime,
        range: ok.clone(),
        param: None,
        grouping: by(&["host"]),
    };
    let m = matrix(run(mx, &range_params(T0 + 600 * SEC, T0 + 600 * SEC, 600 * SEC)).unwrap());
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].1, vec![(600, 6.0)]);
    let first = SampleExpr::RangeAggregation {
        op: RangeOp::FirstOverTime,
        range: ok.clone(),
        param: None,
        grouping: by(&["job"]),
    };
    let m = matrix(run(first, &range_params(T0 + 600 * SEC, T0 + 600 * SEC, 600 * SEC)).unwrap());
    // first line in (0, 600s] is line 1: n = 1
    assert_eq!(m[0].1, vec![(600, 1.0)]);
}

#[test]
fn range_function_math() {
    let w: Vec<(i64, f64)> = vec![(10 * SEC, 1.0), (20 * SEC, 2.0), (30 * SEC, 3.0)];
    let r = range(sel(vec![], vec![]), 30 * SEC);
    // window (5s, 35s]: increase 2 over 20s, extrapolated 5s on each side: 2*30/20 per 30s
    let got = metric_range_value(RangeOp::RateCounter, &w, &r, 35 * SEC);
    assert!((got - 0.1).abs() < 1e-12, "{got}");
    let reset: Vec<(i64, f64)> = vec![(10 * SEC, 5.0), (20 * SEC, 1.0), (30 * SEC, 3.0)];
    let got = metric_range_value(RangeOp::RateCounter, &reset, &r, 30 * SEC);
    // raw increase 3 - 5 + 5 (reset) = 3; to_start 0 -> threshold ... zero point at 10*5/3 s
    assert!(got > 0.0);
    let mut v = vec![4.0, 1.0, 3.0, 2.0];
    assert_eq!(range_fns::quantile(0.5, &mut v), 2.5);
    assert_eq!(range_fns::quantile(0.95, &mut v), 3.8499999999999996);
    assert!(range_fns::quantile(0.5, &mut []).is_nan());
}

fn metric_range_value(op: RangeOp, w: &[(i64, f64)], r: &LogRangeExpr, end: i64) -> f64 {
    range_fns::range_value(op, w, r, None, end).unwrap()
}

pub(super) fn streams(r: QueryResult) -> Vec<ResultStream> {
    match r {
        QueryResult::Streams(s) => s,
        other => panic!("expected streams, got {other:?}"),
    }
}

#[test]
fn log_query_backward_limit_and_order() {
    let e = Expr::Log(sel(vec![eq("job", "apache")], vec![]));
    let out =
        evaluate(&e, &log_params(100, Direction::Backward), &Limits::default(), &source()).unwrap();
    let s = streams(out.result);
    // reference: log_selector_backward_limit100 — the trace_id stream sorts before the plain
    // node-1 stream because `,` < `}` in the printed label set.
    let names: Vec<String> = s.iter().map(|s| s.labels.to_string()).collect();
    assert_eq!(
        names,
        vec![
            r#"{env="test", host="node-0", job="apache", source="loghub"}"#,
            r#"{env="test", host="node-1", job="apache", source="loghub", trace_id="t1949"}"#,
            r#"{env="test", host="node-1", job="apache", source="loghub", trace_id="t1999"}"#,
            r#"{env="test", host="node-1", job="apache", source="loghub"}"#,
        ]
    );
    assert_eq!(s.iter().map(|s| s.entries.len()).sum::<usize>(), 100);
    assert_eq!(s[0].entries[0].ts, 1_793_492_199_001_000_000);
    assert_eq!(s[0].entries.last().unwrap().ts, 1_793_492_150_001_000_000);
    assert!(s[0].entries.windows(2).all(|w| w[0].ts > w[1].ts), "newest first");
    assert_eq!(out.stats.total_entries_returned, 100);

    let p = QueryParams { categorize_labels: true, ..log_params(100, Direction::Backward) };
    let s = streams(evaluate(&e, &p, &Limits::default(), &source()).unwrap().result);
    assert_eq!(s.len(), 2);
    assert_eq!(s[1].entries.len(), 50);
    assert_eq!(s[1].entries[0].structured_metadata.get("trace_id"), Some("t1999"));
    assert!(s[1].entries[1].structured_metadata.is_empty());
}

#[test]
fn log_query_forward_filter_and_interval() {
    let f = Stage::LineFilter(LineFilter {
        op: LineFilterOp::Contains,
        value: LineFilterValue::Literal("n=3".into()),
        or: vec![],
    });
    let e = Expr::Log(sel(vec![eq("job", "android"), eq("host", "node-0")], vec![f]));
    let s = streams(
        evaluate(&e, &log_params(5, Direction::Forward), &Limits::default(), &source())
            .unwrap()
            .result,
    );
    let ts: Vec<i64> = s[0].entries.iter().map(|e| (e.ts - T0) / 1_000_000).collect();
    // even lines with i % 7 == 3: 10, 24, 38, 52, 66
    assert_eq!(ts, vec![5000, 12000, 19000, 26000, 33000]);

    let e = Expr::Log(sel(vec![eq("job", "android")], vec![]));
    let p = QueryParams { interval_ns: 60 * SEC, ..log_params(3, Direction::Forward) };
    let s = streams(evaluate(&e, &p, &Limits::default(), &source()).unwrap().result);
    let ts: Vec<i64> = s.iter().flat_map(|s| s.entries.iter().map(|e| (e.ts - T0) / SEC)).collect();
    assert_eq!(ts, vec![0, 60, 120]);
    let p = QueryParams { interval_ns: 60 * SEC, ..log_params(2, Direction::Backward) };
    let s = streams(evaluate(&e, &p, &Limits::default(), &source()).unwrap().result);
    let mut ts: Vec<i64> = s.iter().flat_map(|s| s.entries.iter().map(|e| e.ts - T0)).collect();
    ts.sort();
    assert_eq!(ts, vec![939_500_000_000, 999_500_000_000]);
}

#[test]
fn log_query_errors() {
    let e = Expr::Log(sel(vec![eq("job", "web")], vec![]));
    let p = QueryParams { limit: 6000, ..log_params(100, Direction::Backward) };
    let err = evaluate(&e, &p, &Limits::default(), &source()).unwrap_err();
    // reference: error_limit_over_max
    assert_eq!(
        err.to_string(),
        "max entries limit per query exceeded, limit > max_entries_limit_per_query (6000 > 5000)"
    );
    assert_eq!(err.status_code(), 400);
    let err = evaluate(&e, &instant_params(T0), &Limits::default(), &source()).unwrap_err();
    // reference: instant_log_query_rejected
    assert_eq!(
        err.to_string(),
        "log queries are not supported as an instant query type, please change your query to a range query type"
    );
    assert_eq!(err.status_code(), 400);
}

/// The per-metadata-run fast path (line filters only) gives the same series and values as the
/// general per-entry path (forced here by a `label_format` that leaves labels unchanged).
#[test]
fn metadata_run_fast_path_matches_general_path() {
    let q = |s: &str| match crate::syntax::parse_expr(s).unwrap() {
        Expr::Sample(e) => e,
        Expr::Log(_) => panic!("not a metric query"),
    };
    let p = range_params(T0, T0 + 1200 * SEC, 60 * SEC);
    for (fast, general) in [
        (
            r#"count_over_time({env="test"} |= "line" [1m])"#,
            r#"count_over_time({env="test"} |= "line" | label_format job="{{.job}}" [1m])"#,
        ),
        (
            r#"sum by (job, trace_id) (bytes_over_time({env="test"} != "n=3" [2m]))"#,
            r#"sum by (job, trace_id) (bytes_over_time({env="test"} != "n=3" | label_format job="{{.job}}" [2m]))"#,
        ),
    ] {
        let a = matrix(run(q(fast), &p).unwrap());
        let b = matrix(run(q(general), &p).unwrap());
        assert!(a.iter().any(|(l, _)| l.contains("trace_id")), "{a:?}");
        assert_eq!(a, b, "{fast}");
    }
}

/// One wide stream, as one batch, that a query cancels after its `cancel_after`-th check.
pub(super) struct CancelingSource {
    pub(super) stream: Stream,
    pub(super) checks: std::sync::atomic::AtomicUsize,
    cancel_after: usize,
}

impl CancelingSource {
    pub(super) fn new(lines: usize, cancel_after: usize) -> Self {
        let line = format!(r#"{{"level":"info","msg":"{}","n":1}}"#, "x".repeat(200));
        let entries = (0..lines).map(|i| Entry {
            ts: T0 + i as i64,
            line: line.clone().into(),
            structured_metadata: vec![],
        });
        CancelingSource {
            stream: Stream {
                labels: Labels::from_pairs([("job", "wide".to_string())]),
                entries: entries.collect(),
            },
            checks: std::sync::atomic::AtomicUsize::new(0),
            cancel_after,
        }
    }
}

impl Source for CancelingSource {
    fn select(
        &self,
        _selector: &LogSelectorExpr,
        _start: i64,
        _end: i64,
        _limit: Option<SelectLimit>,
    ) -> Result<Box<dyn Iterator<Item = Result<StreamBatch, EngineError>> + Send + '_>, EngineError>
    {
        let batch = StreamBatch {
            labels: self.stream.labels.clone(),
            entries: EntryBatch::from(self.stream.entries.as_slice()),
        };
        Ok(Box::new(std::iter::once(Ok(batch))))
    }

    fn check_canceled(&self) -> Result<(), EngineError> {
        let n = self.checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if n >= self.cancel_after {
            return Err(EngineError::Canceled("context canceled".into()));
        }
        Ok(())
    }
}

#[test]
fn a_canceled_query_stops_inside_its_pipeline_and_aggregation() {
    let queries = [
        r#"{job="wide"} | json | level="info""#,
        r#"sum by (level) (count_over_time({job="wide"} | json [1h]))"#,
        r#"count_over_time({job="wide"} | json [1h]) + count_over_time({job="wide"} | json [1h])"#,
    ];
    for q in queries {
        let expr = crate::syntax::parse_expr(q).unwrap();
        // one batch of 100k entries: without checks inside the loops the whole batch is read
        let source = CancelingSource::new(100_000, 3);
        let p = QueryParams { limit: 5000, ..range_params(T0, T0 + 3600 * SEC, 60 * SEC) };
        let res = evaluate(&expr, &p, &Limits::default(), &source);
        assert!(matches!(res, Err(EngineError::Canceled(_))), "{q}: {:?}", res.map(|o| o.stats));
        // it stopped at the first check that said so
        assert_eq!(source.checks.load(std::sync::atomic::Ordering::Relaxed), 3, "{q}");
    }
}

#[test]
fn a_log_query_keeping_more_than_max_result_bytes_fails_early() {
    let source = CancelingSource::new(200, usize::MAX);
    // ~1 MB per line: 200 MB kept without the cap
    let inflate = r#"{job="wide"} | line_format "{{ repeat 4000 __line__ }}""#;
    let expr = crate::syntax::parse_expr(inflate).unwrap();
    let p = QueryParams { limit: 200, ..range_params(T0, T0 + 3600 * SEC, 0) };
    let limits = Limits { max_result_bytes: 50 << 20, ..Limits::default() };
    let res = evaluate(&expr, &p, &limits, &source);
    let Err(EngineError::Limit(msg)) = res else { panic!("not a limit error") };
    assert!(msg.contains("skald_max_query_response_size"), "{msg}");
    // stopped as the cap was passed (~55 entries in): the source was asked about canceling
    // once or twice, not once per 32 of the 200 entries
    assert!(source.checks.load(std::sync::atomic::Ordering::Relaxed) <= 2);
    // the same query under the cap answers
    let small = QueryParams { limit: 10, ..p };
    assert!(evaluate(&expr, &small, &limits, &source).is_ok());
}
