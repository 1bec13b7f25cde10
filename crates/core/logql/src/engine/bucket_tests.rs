//! Engine tests of metric queries answered from bucket counts (chunk statistics): the same
//! answers as from the entries.
#![allow(clippy::unwrap_used)]

use super::tests::*;
use super::*;
use crate::syntax::ast::*;
use skald_model::{EntryBatch, LabelMatcher};

/// A source that answers from bucket counts what it may: entries without structured
/// metadata go to the engine as one-second buckets when the windows align, the rest as
/// entries. Its answers must equal [`MemSource`]'s.
struct BucketSource {
    inner: MemSource,
    asked: std::sync::atomic::AtomicUsize,
}

impl Source for BucketSource {
    fn select(
        &self,
        selector: &LogSelectorExpr,
        start: i64,
        end: i64,
        limit: Option<SelectLimit>,
    ) -> Result<Box<dyn Iterator<Item = Result<StreamBatch, EngineError>> + Send + '_>, EngineError>
    {
        self.inner.select(selector, start, end, limit)
    }

    fn select_bucket_counts(
        &self,
        range: &LogRangeExpr,
        _op: RangeOp,
        from: i64,
        to: i64,
        grid: &WindowGrid,
    ) -> Result<Option<BucketedSamples<'_>>, EngineError> {
        assert!(range.selector.stages.is_empty() && range.unwrap.is_none());
        if !grid.aligned_to(SEC) {
            return Ok(None);
        }
        self.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut parts = Vec::new();
        for s in &self.inner.streams {
            if !LabelMatcher::all_match(&range.selector.matchers, &s.labels) {
                continue;
            }
            // entries without metadata, and with the first metadata set seen, as buckets
            let mut counts: std::collections::BTreeMap<(i64, u32), BucketCount> =
                Default::default();
            let mut metadata_sets = vec![Vec::new()];
            let mut rest = Vec::new();
            for e in s.entries.iter().filter(|e| e.ts > from && e.ts < to) {
                if metadata_sets.len() == 1 && !e.structured_metadata.is_empty() {
                    metadata_sets.push(e.structured_metadata.clone());
                }
                match metadata_sets.iter().position(|m| *m == e.structured_metadata) {
                    Some(set) => {
                        let set = set as u32;
                        let end = (e.ts - 1).div_euclid(SEC) * SEC + SEC;
                        let c = counts.entry((end, set)).or_insert(BucketCount {
                            end,
                            set,
                            entries: 0,
                            line_bytes: 0,
                        });
                        c.entries += 1;
                        c.line_bytes += e.line.len() as u64;
                    }
                    None => rest.push(e.clone()),
                }
            }
            let labels = s.labels.clone();
            parts.push(Ok(StreamPart::Buckets(BucketBatch {
                labels: labels.clone(),
                metadata_sets,
                buckets: counts.into_values().rev().collect(),
            })));
            parts.push(Ok(StreamPart::Entries(StreamBatch {
                labels,
                entries: EntryBatch::from(rest.as_slice()),
            })));
        }
        Ok(Some(BucketedSamples {
            series: Vec::new(),
            counted: Default::default(),
            rest: Box::new(parts.into_iter()),
        }))
    }
}

#[test]
fn bucket_counts_answer_as_entries_do() {
    let bucketed = BucketSource { inner: source(), asked: Default::default() };
    let all = sel(vec![eq("env", "test")], vec![]);
    let mut with_offset = range(all.clone(), 30 * SEC);
    with_offset.offset_ns = 7 * SEC;
    let cases = [
        (
            vagg(VectorOp::Sum, by(&["job"]), ra(RangeOp::CountOverTime, range(all.clone(), MIN))),
            true,
        ),
        (ra(RangeOp::BytesOverTime, range(all.clone(), 10 * SEC)), true),
        (ra(RangeOp::Rate, with_offset.clone()), true),
        (vagg(VectorOp::Sum, None, ra(RangeOp::BytesRate, with_offset)), true),
        // a window edge inside a second: not from buckets
        (ra(RangeOp::CountOverTime, range(all.clone(), 1500 * 1_000_000)), false),
        // a pipeline stage: not from buckets
        (
            ra(
                RangeOp::CountOverTime,
                range(sel(vec![eq("env", "test")], vec![Stage::Decolorize]), MIN),
            ),
            false,
        ),
    ];
    for (params, aligned) in [
        (range_params(T0, T0 + 1200 * SEC, 60 * SEC), true),
        (range_params(T0 + 3 * SEC, T0 + 1000 * SEC, 17 * SEC), true),
        (range_params(T0 + 1, T0 + 1000 * SEC, 17 * SEC), false),
        (instant_params(T0 + 600 * SEC), true),
    ] {
        for (expr, from_buckets) in &cases {
            let before = bucketed.asked.load(std::sync::atomic::Ordering::Relaxed);
            let e = Expr::Sample(expr.clone());
            let want = evaluate(&e, &params, &Limits::default(), &bucketed.inner).unwrap();
            let got = evaluate(&e, &params, &Limits::default(), &bucketed).unwrap();
            assert_eq!(got.result, want.result, "{expr:?} {params:?}");
            let asked = bucketed.asked.load(std::sync::atomic::Ordering::Relaxed) > before;
            assert_eq!(asked, *from_buckets && aligned, "{expr:?} {params:?}");
        }
    }
}

#[test]
fn window_grid_alignment() {
    let g = WindowGrid { first_end: 120 * SEC, step: 15 * SEC, count: 10, range: MIN };
    assert!(g.aligned_to(SEC) && g.aligned_to(5 * SEC) && !g.aligned_to(10 * SEC));
    assert!(!g.aligned_to(0));
    let one = WindowGrid { step: 7, count: 1, ..g };
    assert!(one.aligned_to(SEC));
    assert!(!WindowGrid { first_end: -SEC - 1, ..g }.aligned_to(SEC));
    assert!(WindowGrid { first_end: -SEC, ..g }.aligned_to(SEC));
    assert_eq!(g.edge_unit(), 15 * SEC);
    assert_eq!(one.edge_unit(), 60 * SEC);
    assert_eq!(WindowGrid { first_end: -SEC - 1, ..g }.edge_unit(), 1);
    assert_eq!(WindowGrid { first_end: 0, step: 0, count: 1, range: 0 }.edge_unit(), 0);
}
