//! What Loki leaves out of a range aggregation's pipeline because the query cannot see it,
//! so that its errors never reach the query either:
//!
//! - a `line_format` no later parser or line filter reads, when the aggregation does not
//!   measure the line (all but `bytes_over_time` and `bytes_rate`): the sample does not
//!   depend on the line, so Loki's query optimizer drops the stage;
//! - the parsers (`json`, `logfmt`, `pattern`, `unpack`, with or without extractions), when
//!   the query needs no label at all: `absent_over_time`, or a grouping `by ()` (its own or
//!   the one a `sum` pushes down), and no stage, `unwrap` or post-`unwrap` filter names a
//!   label. Loki's parsers then return the line untouched (its "parser hints").
//!
//! So `absent_over_time({app="x"} | json [5m])` over lines that are not JSON answers, and
//! `count_over_time({app="x"} | line_format "{{ .size | bytes }}" [5m])` counts, in both.
//!
//! What a parser leaves out line by line (the parser hints with the labels a grouping by
//! names needs) is the sample extractor's: `log/hints.rs`, given the effective grouping
//! ([`SampleExtractor::with_grouping`]). An ingester gets that grouping beside the expression
//! it is sent ([`pushed_sample_expr`], [`pushed_extractor`]).

use std::borrow::Cow;

use crate::log::template::Template;
use crate::log::{Pipeline, PipelineError, SampleExtractor};
use crate::syntax::ast::{
    Grouping, LabelFormatOp, LogRangeExpr, ParserStage, RangeOp, SampleExpr, Stage,
};

/// The range expression Loki evaluates for `op(range)` with the effective grouping `grouping`
/// (see the module); borrowed when nothing is left out. A parser left out is still compiled,
/// as Loki builds it: an invalid one (a bad pattern, a bad JSON path) is still an error.
pub(crate) fn effective_range<'r>(
    op: RangeOp,
    range: &'r LogRangeExpr,
    grouping: Option<&Grouping>,
) -> Result<Cow<'r, LogRangeExpr>, PipelineError> {
    let stages = &range.selector.stages;
    let mut keep: Vec<bool> = vec![true; stages.len()];
    if !matches!(op, RangeOp::BytesOverTime | RangeOp::BytesRate) {
        for (i, s) in stages.iter().enumerate() {
            if matches!(s, Stage::LineFormat(_)) && !stages[i..].iter().any(reads_line) {
                keep[i] = false;
            }
        }
    }
    let no_labels = op == RangeOp::AbsentOverTime
        || grouping.is_some_and(|g| !g.without && g.labels.is_empty());
    if no_labels && range.unwrap.is_none() && !names_a_label(stages, &keep) {
        let mut parsers = Vec::new();
        for (i, s) in stages.iter().enumerate() {
            if matches!(s, Stage::Parser(p) if !matches!(p, ParserStage::Regexp(_))) {
                keep[i] = false;
                parsers.push(s.clone());
            }
        }
        Pipeline::new(&parsers)?;
    }
    if keep.iter().all(|k| *k) {
        return Ok(Cow::Borrowed(range));
    }
    let mut out = range.clone();
    out.selector.stages =
        stages.iter().zip(&keep).filter(|(_, k)| **k).map(|(s, _)| s.clone()).collect();
    Ok(Cow::Owned(out))
}

/// What a querier sends a holder of recent lines for `op(range)` evaluated with `grouping`:
/// the range aggregation as it was always sent (LogQL text: its own grouping kept where LogQL
/// has one for it; a range aggregation that a `sum` pushes down takes none), and the grouping
/// itself, which travels in fields of its own (`QueryRequest.grouping_*`) so that an ingester
/// of an older version, which ignores them, still answers: it runs every parser then.
pub fn pushed_sample_expr(
    op: RangeOp,
    range: &LogRangeExpr,
    param: Option<f64>,
    grouping: Option<&Grouping>,
) -> SampleExpr {
    let pushable = matches!(
        op,
        RangeOp::BytesOverTime
            | RangeOp::BytesRate
            | RangeOp::SumOverTime
            | RangeOp::Rate
            | RangeOp::CountOverTime
    );
    SampleExpr::RangeAggregation {
        op,
        range: Box::new(range.clone()),
        param,
        grouping: if pushable { None } else { grouping.cloned() },
    }
}

/// The sample extractor of a [`pushed_sample_expr`] whose parsers follow the parser hints of
/// `grouping` (the grouping sent beside it; `None` from an older querier: the range
/// aggregation's own, if any), with its operation and range; `None` when `expr` is not a
/// range aggregation.
pub fn pushed_extractor<'e>(
    expr: &'e SampleExpr,
    grouping: Option<&Grouping>,
) -> Option<Result<(SampleExtractor, RangeOp, &'e LogRangeExpr), PipelineError>> {
    let SampleExpr::RangeAggregation { op, range, grouping: own, .. } =
        super::metric::unparen(expr)
    else {
        return None;
    };
    let grouping = grouping.or(own.as_ref());
    Some(SampleExtractor::with_grouping(range, *op, grouping).map(|x| (x, *op, &**range)))
}

/// The extractor an ingester builds for `op(range)` evaluated with `grouping`: through the
/// text of [`pushed_sample_expr`] and [`pushed_extractor`].
#[cfg(test)]
pub(crate) fn extractor_via_text(
    op: RangeOp,
    range: &LogRangeExpr,
    param: Option<f64>,
    grouping: Option<&Grouping>,
) -> Result<SampleExtractor, PipelineError> {
    let text = pushed_sample_expr(op, range, param, grouping).to_string();
    let Ok(crate::syntax::ast::Expr::Sample(pushed)) = crate::syntax::parse_expr(&text) else {
        panic!("a pushed expression parses: {text}");
    };
    pushed_extractor(&pushed, grouping).expect("a pushed range aggregation").map(|(x, _, _)| x)
}

/// A stage that reads the line a `line_format` before it writes: a parser or a line filter.
fn reads_line(s: &Stage) -> bool {
    matches!(s, Stage::Parser(_) | Stage::LineFilter(_))
}

/// Whether a kept stage names a label (a label filter, a template field, a renamed label).
/// A template that does not parse counts as naming one: the stage stays, and so its error.
fn names_a_label(stages: &[Stage], keep: &[bool]) -> bool {
    let template_names =
        |src: &str| Template::parse(src).map_or(true, |t| !t.field_names().is_empty());
    stages.iter().zip(keep).filter(|(_, k)| **k).any(|(s, _)| match s {
        Stage::LabelFilter(_) => true,
        Stage::LineFormat(t) => template_names(t),
        Stage::LabelFormat(ops) => ops.iter().any(|o| match o {
            LabelFormatOp::Rename { .. } => true,
            LabelFormatOp::Template { template, .. } => template_names(template),
        }),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::ast::{Expr, SampleExpr};

    fn range_of(q: &str) -> (RangeOp, LogRangeExpr, Option<Grouping>) {
        fn find(
            e: &SampleExpr,
            outer: Option<&Grouping>,
        ) -> (RangeOp, LogRangeExpr, Option<Grouping>) {
            match e {
                SampleExpr::RangeAggregation { op, range, grouping, .. } => {
                    (*op, (**range).clone(), grouping.clone().or_else(|| outer.cloned()))
                }
                SampleExpr::VectorAggregation { expr, grouping, .. } => {
                    let g = grouping.clone().unwrap_or(Grouping { without: false, labels: vec![] });
                    find(expr, Some(&g))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        match crate::syntax::parse_expr(q).expect("parses") {
            Expr::Sample(e) => find(&e, None),
            other => panic!("not a metric query: {other:?}"),
        }
    }

    fn effective(q: &str) -> String {
        let (op, range, g) = range_of(q);
        let r = effective_range(op, &range, g.as_ref()).expect("valid");
        let e = SampleExpr::RangeAggregation {
            op,
            range: Box::new(r.into_owned()),
            param: None,
            grouping: None,
        };
        e.to_string().replace("[1m]", " [1m]").replace("  [", " [")
    }

    #[test]
    fn line_format_nothing_reads_is_left_out_unless_bytes_are_measured() {
        assert_eq!(
            effective(
                r#"count_over_time({a="b"} | json | line_format "{{ .size | bytes }}" [1m])"#
            ),
            r#"count_over_time({a="b"} | json [1m])"#
        );
        assert_eq!(
            effective(r#"count_over_time({a="b"} | line_format "{{ .x }}" |= "y" [1m])"#),
            r#"count_over_time({a="b"} | line_format "{{ .x }}" |= "y" [1m])"#
        );
        assert_eq!(
            effective(r#"bytes_over_time({a="b"} | line_format "{{ .x }}" [1m])"#),
            r#"bytes_over_time({a="b"} | line_format "{{ .x }}" [1m])"#
        );
    }

    /// `sum by (level) (sum_over_time(... | logfmt | unpack | unwrap bytes(size)))` over lines
    /// `logfmt` finds both in (differential d02543): answered by Loki, as `unpack` never runs;
    /// with a grouping that keeps every other label it runs and fails. Two streams: the
    /// engine's extraction and an ingester's (the expression as text) both follow the hints.
    #[test]
    fn a_grouping_by_names_answers_where_a_later_parser_would_fail() {
        use crate::engine::tests::{range_params, MemSource};
        use crate::engine::{evaluate, Limits, QueryResult};
        let t0 = 1_800_000_000_000_000_000i64;
        let stream = |pod: &str| skald_model::Stream {
            labels: skald_model::Labels::parse(&format!(r#"{{app="x", pod="{pod}"}}"#)).unwrap(),
            entries: (0..4)
                .map(|i| skald_model::Entry {
                    ts: t0 + i * 1_000_000_000,
                    line: format!("level=info size={}B user=u{i}", i + 1).into(),
                    structured_metadata: vec![],
                })
                .collect(),
        };
        let source = MemSource { streams: vec![stream("a"), stream("b")] };
        let params = range_params(t0 + 10_000_000_000, t0 + 10_000_000_000, 1_000_000_000);
        let run = |q: &str| {
            evaluate(&crate::syntax::parse_expr(q).unwrap(), &params, &Limits::default(), &source)
                .map(|o| o.result)
        };
        let q = r#"sum by (level) (sum_over_time({app="x"} | logfmt | unpack | unwrap bytes(size) [1m]))"#;
        let QueryResult::Matrix(m) = run(q).unwrap() else { panic!("a matrix") };
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].labels.to_string(), r#"{level="info"}"#);
        assert_eq!(m[0].samples[0].value, 20.0);
        for q in [
            r#"sum without (pod) (sum_over_time({app="x"} | logfmt | unpack | unwrap bytes(size) [1m]))"#,
            r#"sum by (level) (sum_over_time({app="x"} | logfmt | unpack | container!="c" | unwrap bytes(size) [1m]))"#,
            r#"sum_over_time({app="x"} | logfmt | unpack | unwrap bytes(size) [1m])"#,
        ] {
            let err = run(q).unwrap_err().to_string();
            assert!(err.starts_with("pipeline error: 'JSONParserErr'"), "{q}: {err}");
        }
    }

    #[test]
    fn parsers_are_left_out_when_no_label_is_needed() {
        assert_eq!(
            effective(r#"absent_over_time({a="b"} | json [1m])"#),
            r#"absent_over_time({a="b"} [1m])"#
        );
        assert_eq!(
            effective(r#"sum(count_over_time({a="b"} | logfmt | unpack [1m]))"#),
            r#"count_over_time({a="b"} [1m])"#
        );
        // a grouping, a label filter, an unwrap or a regexp parser keeps them
        for q in [
            r#"sum by (x) (count_over_time({a="b"} | json [1m]))"#,
            r#"count_over_time({a="b"} | json [1m])"#,
            r#"absent_over_time({a="b"} | json | x="1" [1m])"#,
            r#"sum(sum_over_time({a="b"} | json | unwrap x [1m]))"#,
            r#"absent_over_time({a="b"} | json | line_format "{{ .x }}" |= "1" [1m])"#,
        ] {
            assert!(effective(q).contains("| json"), "{q}: {}", effective(q));
        }
        assert!(
            effective(r#"absent_over_time({a="b"} | regexp "(?P<x>.)" [1m])"#).contains("regexp")
        );
    }
}
