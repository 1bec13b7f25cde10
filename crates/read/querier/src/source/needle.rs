//! The n-gram filters of a query: what every line its stored-line filters accept contains
//! ([`skald_logql::log::needles`]), checked against the filters that chunks of format version
//! 3 carry for each block and for the whole chunk ([`skald_chunk::Chunk::block_filter`]). A
//! block whose filter rejects them holds no line the pipeline keeps: it is neither fetched
//! (in a ranged read) nor decompressed. Filters have no false negatives, so answers do not
//! change; a chunk without filters (older versions) is read as before.

use std::collections::HashSet;

use skald_chunk::{Chunk, NgramFilter};
use skald_logql::syntax::ast::Stage;
use skald_model::Labels;

/// A query's needles, in the form the filters take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NeedleQuery {
    /// A conjunction of disjunctions of literals (bytes; the filters fold ASCII case).
    clauses: Vec<Vec<Vec<u8>>>,
    /// Structured-metadata pairs every kept entry carries.
    metadata: Vec<(String, String)>,
}

impl NeedleQuery {
    /// The needles of `stages`, or `None` when they require nothing. A label-filter equality
    /// is kept only when no stream of the query has a stream label of that name (then the
    /// entry must carry the pair as structured metadata, which the filters hold).
    pub(super) fn new<'a>(
        stages: &[Stage],
        streams: impl IntoIterator<Item = &'a Labels>,
    ) -> Option<NeedleQuery> {
        let needles = skald_logql::log::needles(stages);
        if needles.is_empty() {
            return None;
        }
        let clauses: Vec<Vec<Vec<u8>>> =
            needles.clauses.into_iter().map(|c| c.into_iter().map(|l| l.bytes).collect()).collect();
        let mut metadata = needles.metadata;
        if !metadata.is_empty() {
            let names: HashSet<&str> =
                streams.into_iter().flat_map(|l| l.iter().map(|l| l.name.as_str())).collect();
            metadata.retain(|(name, _)| !names.contains(name.as_str()));
        }
        (!clauses.is_empty() || !metadata.is_empty()).then_some(NeedleQuery { clauses, metadata })
    }

    /// The line literals of `stages` alone (no structured-metadata equality, which a stream
    /// label could satisfy), or `None` when they require nothing: what the index statistics
    /// of a needle search count by (`skald_needle_selector`).
    pub(crate) fn lines_only(stages: &[Stage]) -> Option<NeedleQuery> {
        let clauses: Vec<Vec<Vec<u8>>> = skald_logql::log::needles(stages)
            .clauses
            .into_iter()
            .map(|c| c.into_iter().map(|l| l.bytes).collect())
            .collect();
        (!clauses.is_empty()).then_some(NeedleQuery { clauses, metadata: Vec::new() })
    }

    /// False when no text added to `filter` can satisfy the needles.
    pub(crate) fn may_match(&self, filter: &NgramFilter) -> bool {
        filter.may_match(self.clauses.iter().map(|c| c.iter().map(Vec::as_slice)))
            && self.metadata.iter().all(|(n, v)| filter.may_have_label(n, v))
    }

    /// False when block `index` of `chunk` holds no entry the needles allow (its filter says
    /// so); true without a filter.
    pub(super) fn block_may_match(&self, chunk: &Chunk, index: usize) -> bool {
        chunk.block_filter(index).is_none_or(|f| self.may_match(&f))
    }

    /// False when no block of `chunk` holds an entry the needles allow (the chunk's filter
    /// says so); true without a filter.
    pub(super) fn chunk_may_match(&self, chunk: &Chunk) -> bool {
        chunk.chunk_filter().is_none_or(|f| self.may_match(&f))
    }
}

impl super::StoreSource {
    /// Drops the chunks whose filter in the filter tables ([`skald_index::FilterIndex`])
    /// rejects `needles`, before anything is fetched: such a chunk holds no line the pipeline
    /// keeps. A chunk without a table entry stays (its own filters are read with its end). The
    /// tables cannot be read: every chunk stays, with a warning (the answer is the same).
    pub(super) fn drop_rejected_chunks(
        &self,
        plan: &mut [(Labels, super::PendingStream)],
        needles: &NeedleQuery,
        (start, end): (i64, i64),
    ) {
        if plan.iter().all(|(_, p)| p.chunks.is_empty()) {
            return;
        }
        let through = end.saturating_sub(1);
        let lookup = self.querier.filters.filters(&self.tenant, start, through);
        let filters = match self.wait(lookup) {
            Ok(Ok(f)) => f,
            Ok(Err(error)) => {
                tracing::warn!(tenant = %self.tenant, %error, "cannot read filter tables");
                return;
            }
            // canceled: the engine sees it at its next check
            Err(_) => return,
        };
        if filters.is_empty() {
            return;
        }
        let mut dropped = 0u64;
        for (_, p) in plan.iter_mut() {
            p.chunks.retain(|c| {
                let keep = filters.get(c).is_none_or(|f| needles.may_match(f));
                dropped += u64::from(!keep);
                keep
            });
        }
        self.stats.add_chunks_filtered(dropped);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use skald_chunk::ChunkBuilder;
    use skald_logql::syntax::ast::Expr;
    use skald_model::{Entry, Label};

    use super::*;

    fn query(q: &str, streams: &[Labels]) -> Option<NeedleQuery> {
        let Expr::Log(sel) = skald_logql::syntax::parse_expr(q).unwrap() else { panic!("{q}") };
        NeedleQuery::new(&sel.stages, streams)
    }

    #[test]
    fn needles_of_a_query() {
        let none: &[Labels] = &[];
        assert_eq!(query(r#"{a="b"}"#, none), None);
        assert_eq!(query(r#"{a="b"} != "x""#, none), None);
        let q = query(r#"{a="b"} |= "Foo" or "bar""#, none).unwrap();
        assert_eq!(q.clauses, vec![vec![b"Foo".to_vec(), b"bar".to_vec()]]);
        let q = query(r#"{a="b"} | trace_id="t1""#, none).unwrap();
        assert_eq!(q.metadata, vec![("trace_id".to_string(), "t1".to_string())]);
        // a stream label of that name: the pair may be the stream's, not the entries'
        let streams = [Labels::from_pairs([("trace_id", "t1")])];
        assert_eq!(query(r#"{a="b"} | trace_id="t1""#, &streams), None);
    }

    #[test]
    fn blocks_and_chunks_are_judged_by_their_filters() {
        let mut b = ChunkBuilder::new(64 * 1024);
        for i in 0..10_000i64 {
            let line = if i == 9_000 {
                "user=bob msg=needle-7f3a9c".to_string()
            } else {
                format!("user=alice msg=request {i} path=/a/{}", i % 31)
            };
            let md = if i == 9_000 { vec![Label::new("trace_id", "t-77777")] } else { vec![] };
            b.append(&Entry { ts: i, line: line.into(), structured_metadata: md }).unwrap();
        }
        let c = Chunk::parse(&b.finish().unwrap().bytes).unwrap();
        let n = c.blocks().len();
        let hit = c.blocks().iter().position(|m| m.min_ts <= 9_000 && 9_000 <= m.max_ts).unwrap();
        let none: &[Labels] = &[];
        for q in [
            r#"{a="b"} |= "needle-7f3a9c""#,
            r#"{a="b"} |= "nothing-here" or "needle-7f3a9c""#,
            r#"{a="b"} |~ "(?i)NEEDLE-7F3A9C""#,
            r#"{a="b"} | trace_id="t-77777""#,
        ] {
            let q = query(q, none).unwrap();
            assert!(q.chunk_may_match(&c));
            let passing: Vec<usize> = (0..n).filter(|&i| q.block_may_match(&c, i)).collect();
            assert!(passing.contains(&hit), "{q:?}");
            assert!(passing.len() <= 2, "{q:?}: {passing:?} of {n}");
        }
        let absent = query(r#"{a="b"} |= "needle-0000zz""#, none).unwrap();
        assert!(!absent.chunk_may_match(&c));
        // an older chunk: every block may match
        let mut b = ChunkBuilder::new(64 * 1024).with_format_version(2);
        b.append(&Entry { ts: 1, line: "x".into(), structured_metadata: vec![] }).unwrap();
        let old = Chunk::parse(&b.finish().unwrap().bytes).unwrap();
        assert!(absent.chunk_may_match(&old) && absent.block_may_match(&old, 0));
    }
}
