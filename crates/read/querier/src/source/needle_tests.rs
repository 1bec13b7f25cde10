//! Needle searches over chunks with n-gram filters answer exactly as over the same entries in
//! chunks without (format version 2), and skip most blocks.
#![allow(clippy::unwrap_used)]

use skald_logql::engine::{evaluate, Limits as EngineLimits, QueryParams};
use skald_model::{Direction, Entry, Label, Labels};

use super::tests::{store_source, write_chunk_tabled, Rng, SEC};
use super::StoreSource;

const NEEDLE: &str = "needle-7f3a9c";
const TRACE: &str = "trace-abc123def";

/// Four streams of three chunks of about 20 blocks of 16 KiB each; the needle is in 10
/// lines of two blocks, the trace id on 3 entries of another, in chunks of `version` (with
/// `tables`, their filters in filter tables too).
fn store(version: u8, tables: bool) -> StoreSource {
    let s = store_source();
    let mut rng = Rng(0x5eed);
    for app in ["a", "b", "c", "d"] {
        let labels = Labels::from_vec(vec![Label::new("app", app)]);
        for c in 0..3i64 {
            let entries: Vec<Entry> = (0..4_000i64)
                .map(|i| {
                    let ts = 1_000 * SEC + (c * 4_000 + i) * SEC / 10;
                    let n = rng.next();
                    let mut line = format!(
                        "level=info user=u{} msg=\"request done\" path=/api/v1/items/{} id={:x}",
                        n % 1000,
                        (n >> 10) % 500,
                        n >> 20
                    );
                    let special = app == "b" && c == 1;
                    if special && (i == 100 || (2_000..2_009).contains(&i)) {
                        line.push_str(&format!(" err={NEEDLE}"));
                    }
                    let structured_metadata = if special && (3_000..3_003).contains(&i) {
                        vec![Label::new("trace_id", TRACE)]
                    } else {
                        vec![Label::new("detected_level", "info")]
                    };
                    Entry { ts, line: line.into(), structured_metadata }
                })
                .collect();
            write_chunk_tabled(&s, &labels, &entries, 16 * 1024, version, tables);
        }
    }
    s
}

/// A backward log query of 1000 lines over the stores' whole range.
const LOG_QUERY: QueryParams = QueryParams {
    start: 900 * SEC,
    end: 3_000 * SEC,
    step_ns: 0,
    interval_ns: 0,
    limit: 1000,
    direction: Direction::Backward,
    instant: false,
    categorize_labels: false,
};

#[test]
fn needle_queries_answer_as_without_filters_and_skip_most_blocks() {
    let (with, without) = (store(skald_chunk::FORMAT_VERSION, false), store(2, false));
    let tabled = store(skald_chunk::FORMAT_VERSION, true);
    let queries = [
        format!(r#"{{app=~".+"}} |= "{NEEDLE}""#),
        format!(r#"{{app=~".+"}} |= "nothing-zz9q" or "{NEEDLE}""#),
        r#"{app=~".+"} |~ "(?i)NEEDLE-7F3A9C""#.to_string(),
        format!(r#"{{app=~".+"}} | trace_id="{TRACE}""#),
        r#"{app=~".+"} |= "absent-qq77xx""#.to_string(),
        format!(r#"{{app=~".+"}} |= "{NEEDLE}" | logfmt | err!="""#),
        format!(r#"sum(count_over_time({{app=~".+"}} |= "{NEEDLE}" [1h]))"#),
        format!(r#"count_over_time({{app=~".+"}} | trace_id="{TRACE}" [10m])"#),
    ];
    let limits = EngineLimits::default();
    for q in &queries {
        let expr = skald_logql::syntax::parse_expr(q).unwrap();
        let metric = matches!(expr, skald_logql::syntax::ast::Expr::Sample(_));
        for (limit, direction, step) in [
            (1000, Direction::Backward, 0),
            (3, Direction::Forward, 0),
            (100, Direction::Backward, 60),
        ] {
            let params = QueryParams {
                start: 900 * SEC,
                end: 3_000 * SEC,
                step_ns: if metric { 60 * SEC } else { step * SEC },
                interval_ns: 0,
                limit,
                direction,
                instant: false,
                categorize_labels: false,
            };
            let got = evaluate(&expr, &params, &limits, &with).unwrap();
            let want = evaluate(&expr, &params, &limits, &without).unwrap();
            assert_eq!(got.result, want.result, "{q} {params:?}");
            let from_tables = evaluate(&expr, &params, &limits, &tabled).unwrap();
            assert_eq!(from_tables.result, want.result, "{q} {params:?}");
        }
    }
    let found = evaluate(
        &skald_logql::syntax::parse_expr(&queries[0]).unwrap(),
        &LOG_QUERY,
        &limits,
        &with,
    )
    .unwrap();
    assert!(format!("{:?}", found.result).matches(NEEDLE).count() >= 10);
    // most blocks were skipped undecompressed: the filterless store decompressed them all
    let (a, b) = (with.stats.snapshot(), without.stats.snapshot());
    let skipped = with.stats.skipped_blocks();
    assert!(skipped > 0 && without.stats.skipped_blocks() == 0);
    assert!(
        a.decompressed_bytes * 10 < b.decompressed_bytes,
        "{} of {} bytes decompressed, {skipped} blocks skipped",
        a.decompressed_bytes,
        b.decompressed_bytes
    );
    assert!(a.compressed_bytes * 4 < b.compressed_bytes, "{a:?} {b:?}");
}

/// With the filter tables, a needle search fetches only the chunks whose filter may match:
/// here the needle's one chunk of twelve, and none for an absent needle.
#[test]
fn filter_tables_drop_chunks_before_any_fetch() {
    let (limits, params) = (EngineLimits::default(), LOG_QUERY);
    for (q, fetched, lines) in [
        (format!(r#"{{app=~".+"}} |= "{NEEDLE}""#), 1, 10),
        (r#"{app=~".+"} |= "absent-qq77xx""#.to_string(), 0, 0),
        // one stream, labelled with the trace id its 3 entries carry
        (format!(r#"{{app=~".+"}} | trace_id="{TRACE}""#), 1, 1),
    ] {
        let (tabled, plain) = (store(skald_chunk::FORMAT_VERSION, true), store(2, false));
        let expr = skald_logql::syntax::parse_expr(&q).unwrap();
        let got = evaluate(&expr, &params, &limits, &tabled).unwrap();
        let want = evaluate(&expr, &params, &limits, &plain).unwrap();
        assert_eq!(got.result, want.result, "{q}");
        let marker = if q.contains(TRACE) { TRACE } else { NEEDLE };
        assert_eq!(format!("{:?}", got.result).matches(marker).count(), lines, "{q}");
        let s = tabled.stats.snapshot();
        assert_eq!(s.chunk_refs, 12, "{q}");
        assert_eq!(s.chunks_downloaded, fetched, "{q}: {s:?}");
        assert_eq!(tabled.stats.filtered_chunks(), 12 - fetched, "{q}");
    }
}
