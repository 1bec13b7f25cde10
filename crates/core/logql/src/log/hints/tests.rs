//! Loki's parser hints, line by line: what each parser extracts and whether a later parser's
//! error reaches the sample, for queries with and without hints.
#![allow(clippy::unwrap_used)]

use skald_model::Labels;

use crate::engine::pushed_extractor;
use crate::log::SampleExtractor;
use crate::syntax::ast::{Expr, Grouping, SampleExpr, VectorOp};

/// The extractor the engine (and an ingester) builds for `q`: a range aggregation with its
/// own grouping, or inside the `sum` that pushes its grouping down.
fn extractor(q: &str) -> SampleExtractor {
    let Expr::Sample(e) = crate::syntax::parse_expr(q).unwrap() else { panic!("{q}") };
    match &e {
        SampleExpr::VectorAggregation { op: VectorOp::Sum, expr, grouping, .. } => {
            let by_nothing = Grouping { without: false, labels: vec![] };
            let g = grouping.clone().unwrap_or(by_nothing);
            pushed_extractor(expr, Some(&g)).unwrap().unwrap().0
        }
        _ => pushed_extractor(&e, None).unwrap().unwrap().0,
    }
}

/// The sample of `line` in stream `{app="x", pod="p1"}`: `(value, series labels)`, or `None`
/// when the line gives none.
fn sample(q: &str, line: &str) -> Option<(f64, String)> {
    let stream = Labels::parse(r#"{app="x", pod="p1"}"#).unwrap();
    extractor(q)
        .for_stream(&stream)
        .process(0, line.as_bytes(), &[])
        .map(|(v, l)| (v, l.to_string()))
}

const D02543: &str =
    r#"sum by (level) (sum_over_time({app="x"} | logfmt | unpack | unwrap bytes(size) [1m]))"#;

#[test]
fn a_later_parser_is_skipped_once_the_grouping_and_unwrap_labels_were_extracted() {
    // `logfmt` found `level` and `size`: `unpack` never sees the line (not JSON)
    assert_eq!(
        sample(D02543, "level=info size=2KB msg=hello"),
        Some((2000.0, r#"{app="x", level="info", pod="p1"}"#.to_string()))
    );
    // `logfmt` extracted only what the query needs, and stopped there
    assert_eq!(
        sample(D02543, "size=1B level=warn user=bob size=9B"),
        Some((1.0, r#"{app="x", level="warn", pod="p1"}"#.to_string()))
    );
    // `level` missing: `unpack` runs and fails on the line
    let (_, labels) = sample(D02543, "size=2KB msg=hello").unwrap();
    assert!(labels.contains(r#"__error__="JSONParserErr""#), "{labels}");
    let q = r#"sum by (level) (count_over_time({app="x"} | logfmt | unpack [1m]))"#;
    let (_, labels) = sample(q, "msg=hello").unwrap();
    assert!(labels.contains(r#"__error__="JSONParserErr""#), "{labels}");
    assert_eq!(
        sample(q, "level=debug msg=hello").unwrap().1,
        r#"{app="x", level="debug", pod="p1"}"#
    );
}

#[test]
fn hints_do_not_apply_without_a_grouping_by_names() {
    let line = "level=info size=2KB";
    for q in [
        // a label filter after the later parser on a label only it would extract
        r#"sum by (level) (sum_over_time({app="x"} | logfmt | unpack | container!="c" | unwrap bytes(size) [1m]))"#,
        // `without`: every label but the named ones is kept
        r#"sum without (pod) (sum_over_time({app="x"} | logfmt | unpack | unwrap bytes(size) [1m]))"#,
        // no grouping: every label is kept
        r#"sum_over_time({app="x"} | logfmt | unpack | unwrap bytes(size) [1m])"#,
        // a grouping a `max` does not push down
        r#"max_over_time({app="x"} | logfmt | unpack | unwrap bytes(size) [1m])"#,
    ] {
        let (v, labels) = sample(q, line).unwrap();
        assert_eq!(v, 2000.0, "{q}");
        assert!(labels.contains(r#"__error__="JSONParserErr""#), "{q}: {labels}");
    }
    // without hints every pair is extracted
    let q = r#"sum_over_time({app="x"} | logfmt | unwrap bytes(size) [1m])"#;
    assert_eq!(
        sample(q, "level=info size=2KB user=bob").unwrap().1,
        r#"{app="x", level="info", pod="p1", user="bob"}"#
    );
}

#[test]
fn the_labels_stages_read_are_needed_too() {
    // a label filter's, a template's and a rename's labels
    let q = r#"sum by (level) (count_over_time({app="x"} | logfmt | unpack | user="bob" | line_format "{{.msg}}" | label_format who=host [1m]))"#;
    let labels = sample(q, "level=info user=bob msg=hi host=h1 extra=1").unwrap().1;
    assert!(!labels.contains("__error__") && !labels.contains("extra"), "{labels}");
    assert!(labels.contains(r#"who="h1""#), "{labels}");
    // one of them missing: `unpack` runs
    assert!(sample(q, "level=info user=bob msg=hi").unwrap().1.contains("JSONParserErr"));
    // grouped by nothing, but a filter names a label: that label is the hint
    let q = r#"sum(count_over_time({app="x"} | logfmt | unpack | level="info" [1m]))"#;
    assert_eq!(sample(q, "level=info a=1").unwrap().1, r#"{app="x", level="info", pod="p1"}"#);
    assert!(sample(q, "a=1").is_none());
    // `__error__` is never extracted: every parser runs
    let q = r#"sum by (level) (count_over_time({app="x"} | logfmt | unpack | __error__="" [1m]))"#;
    assert!(sample(q, "level=info").is_none());
}

#[test]
fn json_and_strict_logfmt_stop_reading_once_all_is_extracted() {
    let q = r#"sum by (level) (count_over_time({app="x"} | json [1m]))"#;
    assert_eq!(
        sample(q, r#"{"level":"info","user":{"name":"bob"},"bad"#).unwrap().1,
        r#"{app="x", level="info", pod="p1"}"#
    );
    let (_, labels) = sample(q, r#"{"user":"bob","bad"#).unwrap();
    assert!(labels.contains("JSONParserErr"), "{labels}");
    // nested objects are entered only on the way to a needed name
    let q = r#"sum by (user_name) (count_over_time({app="x"} | json [1m]))"#;
    assert_eq!(
        sample(q, r#"{"level":"info","user":{"id":1,"name":"bob"},"x":{"y":"z"}}"#).unwrap().1,
        r#"{app="x", pod="p1", user_name="bob"}"#
    );
    let q = r#"sum by (level) (count_over_time({app="x"} | logfmt --strict [1m]))"#;
    assert_eq!(sample(q, "level=info a=1=2").unwrap().1, r#"{app="x", level="info", pod="p1"}"#);
    assert!(sample(q, "a=1=2 level=info").unwrap().1.contains("LogfmtParserErr"));
    // without hints the rest is read
    let q = r#"count_over_time({app="x"} | logfmt --strict [1m])"#;
    assert!(sample(q, "level=info a=1=2").unwrap().1.contains("LogfmtParserErr"));
}

#[test]
fn a_name_with_the_duplicate_suffix_also_stands_for_the_name() {
    // `pod` is a stream label: the line's `pod` is `pod_extracted`
    let q = r#"sum by (pod_extracted) (count_over_time({app="x"} | logfmt [1m]))"#;
    assert_eq!(
        sample(q, "pod=p2 level=info").unwrap().1,
        r#"{app="x", pod="p1", pod_extracted="p2"}"#
    );
    // `level` is not: the line's `level` is extracted under its own name
    let q = r#"sum by (level_extracted) (count_over_time({app="x"} | logfmt [1m]))"#;
    assert_eq!(sample(q, "pod=p2 level=info").unwrap().1, r#"{app="x", level="info", pod="p1"}"#);
}

#[test]
fn pushed_expressions_with_their_grouping_give_the_same_hints() {
    use crate::engine::pushed_sample_expr;
    for q in [
        D02543,
        r#"sum without (pod) (rate({app="x"} | json [1m]))"#,
        r#"sum(count_over_time({app="x"} | json | a="b" [1m]))"#,
        r#"avg_over_time({app="x"} | logfmt | unwrap size [1m]) by (level)"#,
        r#"count_over_time({app="x"} | json [1m])"#,
    ] {
        let Expr::Sample(e) = crate::syntax::parse_expr(q).unwrap() else { panic!() };
        let (op, range, grouping) = match &e {
            SampleExpr::VectorAggregation { expr, grouping, .. } => match &**expr {
                SampleExpr::RangeAggregation { op, range, .. } => (
                    *op,
                    range,
                    Some(grouping.clone().unwrap_or(crate::syntax::ast::Grouping {
                        without: false,
                        labels: vec![],
                    })),
                ),
                _ => panic!(),
            },
            SampleExpr::RangeAggregation { op, range, grouping, .. } => {
                (*op, range, grouping.clone())
            }
            _ => panic!(),
        };
        let pushed = pushed_sample_expr(op, range, None, grouping.as_ref()).to_string();
        let Expr::Sample(back) = crate::syntax::parse_expr(&pushed).unwrap() else { panic!() };
        let direct = SampleExtractor::with_grouping(range, op, grouping.as_ref()).unwrap();
        assert_eq!(
            pushed_extractor(&back, grouping.as_ref()).unwrap().unwrap().0.hints,
            direct.hints,
            "{q}: {pushed}"
        );
        assert_eq!(extractor(q).hints, direct.hints, "{q}");
    }
}
