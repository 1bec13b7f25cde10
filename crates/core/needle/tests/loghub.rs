//! End to end on real logs: the queries' `skald_logql::log::needles` checked against the
//! filters of the loghub sample's blocks (tests/data/loghub, 10 systems, cut into 256 KiB
//! blocks of whole lines). Every block holding a line the query's pipeline accepts must say
//! "maybe" (no false negatives); a needle query must be decided by nearly every block.

use skald_logql::log::{needles, Needles, Pipeline};
use skald_logql::syntax::{ast::Expr, parse_expr};
use skald_model::Labels;
use skald_needle::{ChunkFilterBuilder, NgramFilter};

#[path = "support/loghub.rs"]
mod support;
use support::BLOCK;

fn blocks() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../tests/data/loghub");
    support::blocks(dir).into_iter().map(|(_, b)| b).collect()
}

fn may_match(f: &NgramFilter, n: &Needles) -> bool {
    f.may_match(n.clauses.iter().map(|c| c.iter().map(|l| l.bytes.as_slice())))
}

const QUERIES: &[&str] = &[
    r#"{a="b"} |= "Failed password""#,
    r#"{a="b"} |~ "(?i)exception""#,
    r#"{a="b"} |~ "blk_-?[0-9]+ terminating""#,
    r#"{a="b"} |> "<_> Invalid user <_> from <_>""#,
    r#"{a="b"} |= "FATAL" or "SEVERE" or "Unexpected""#,
    r#"{a="b"} |~ "(?i)(error|warn)ing" != "debug""#,
    r#"{a="b"} |~ "session opened for user (root|news)""#,
    r#"{a="b"} |= "needle-5kald-7f3a9c""#,
    r#"{a="b"} |~ "(?i)needle-5kald-[0-9a-f]+""#,
    r#"{a="b"} | logfmt |= "ERROR""#,
];

#[test]
fn no_block_with_a_matching_line_is_rejected() {
    let blocks = blocks();
    assert!(blocks.len() >= 10);
    let mut builder = ChunkFilterBuilder::new(BLOCK, 4 << 20);
    let filters: Vec<NgramFilter> = blocks.iter().map(|b| builder.add_block(b)).collect();
    let chunk = builder.finish_chunk();
    for q in QUERIES {
        let Ok(Expr::Log(sel)) = parse_expr(q) else { panic!("{q}") };
        let n = needles(&sel.stages);
        assert!(!n.clauses.is_empty(), "{q}");
        let pipeline = Pipeline::new(&sel.stages).expect("compiles");
        let mut sp = pipeline.for_stream(&Labels::default());
        let (mut holding, mut rejected) = (0, 0);
        for (b, f) in blocks.iter().zip(&filters) {
            let text = std::str::from_utf8(b).expect("utf-8");
            let matches =
                text.lines().filter(|l| sp.process(0, l.as_bytes(), &[]).is_some()).count();
            if matches > 0 {
                holding += 1;
                assert!(may_match(f, &n), "{q}: a block with {matches} matching lines rejected");
                assert!(may_match(&chunk, &n), "{q}: the chunk rejected");
            } else if !may_match(f, &n) {
                rejected += 1;
            }
        }
        if q.contains("needle") {
            assert_eq!(holding, 0);
            assert_eq!(rejected, blocks.len(), "{q}");
            assert!(!may_match(&chunk, &n), "{q}");
        }
        println!("{q}: {holding} blocks hold matches, {rejected} of the others rejected");
    }
}
