//! The read path over what the ingester holds: the streams a query matches are snapshotted
//! under the tenant lock, then read block by block outside it, with the query's `|=`
//! literals, pipeline and limit pushed down (and, for metric queries, its sample extractor).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use skald_logql::engine::SelectLimit;
use skald_logql::log::{Pipeline, SampleExtractor};
use skald_logql::syntax::ast::Stage;
use skald_model::{LabelMatcher, Labels, Stream};
use skald_proto::ingester::{
    sample_hash, IngesterQuery, PushedSample, SampleGrouping, SeriesSamples,
};

use crate::error::{IngesterError, Result};
use crate::stream::StreamSnapshot;
use crate::Ingester;

impl Ingester {
    /// What a query reads of the streams matching `query` (of its shard, when it has one):
    /// taken under the tenant lock, which is released before anything is decoded or filtered.
    fn snapshots(&self, tenant: &str, query: &IngesterQuery) -> Result<Vec<StreamSnapshot>> {
        let t = match self.inner.tenants.lock().get(tenant) {
            Some(t) => t.clone(),
            None => return Ok(Vec::new()),
        };
        let guard = t.lock();
        let mut out = Vec::new();
        for st in guard.streams.values() {
            // sharding by stream: only the streams of the query's shard
            let in_shard = skald_model::in_shard(query.shard, st.fp);
            if in_shard && LabelMatcher::all_match(&query.matchers, &st.labels) {
                out.extend(st.snapshot(query.start, query.end)?);
            }
        }
        Ok(out)
    }

    /// The entries of `query` (its streams, range, `|=` literals, pipeline and limit), read
    /// block by block: only entries the pipeline accepts are copied, and with a limit those
    /// strictly farther from the edge than the `limit`-th nearest are pruned as the scan goes,
    /// so the answer, not the data held, sizes the memory used. Stops with a 499 error once
    /// `stop` is set (the query's caller went away).
    pub(crate) fn query_sync(
        &self,
        tenant: &str,
        query: &IngesterQuery,
        stop: &AtomicBool,
    ) -> Result<Vec<Stream>> {
        let (pipeline, stages) = compile_pipeline_stages(&query.pipeline)?;
        let scan = Scan::new(&stages, query);
        let limit = (query.limit > 0)
            .then_some(SelectLimit { limit: query.limit as usize, backward: query.backward });
        let mut prune = limit.map(Pruner::new);
        let mut out: Vec<Stream> = Vec::new();
        let mut total = 0usize;
        let mut check = StopCheck::new(stop);
        for snap in self.snapshots(tenant, query)? {
            let mut sp = pipeline.as_ref().map(|p| p.for_stream(&snap.labels));
            out.push(Stream { labels: snap.labels.clone(), entries: Vec::new() });
            scan.candidates(&snap, &mut check, |e| {
                if let Some(sp) = sp.as_mut() {
                    if sp.process_ref(e.ts, e.line, e.structured_metadata).is_none() {
                        return Ok(());
                    }
                }
                if let Some(p) = &prune {
                    if p.rejects(e.ts) {
                        return Ok(());
                    }
                }
                if let Some(s) = out.last_mut() {
                    s.entries.push(e.to_entry());
                }
                total += 1;
                if let Some(p) = prune.as_mut() {
                    if total >= p.next_at {
                        total = p.prune(&mut out);
                    }
                }
                Ok(())
            })?;
            if out.last().is_some_and(|s| s.entries.is_empty()) {
                out.pop();
            }
        }
        for s in &mut out {
            s.entries.sort_by_key(|e| e.ts);
        }
        if let Some(p) = prune.as_mut() {
            p.prune(&mut out);
            out.retain(|s| !s.entries.is_empty());
        }
        Ok(out)
    }

    /// The samples `query.sample_expr` makes of the matching entries, by output series,
    /// extracted block by block (no entry is copied).
    pub(crate) fn query_samples_sync(
        &self,
        tenant: &str,
        query: &IngesterQuery,
        stop: &AtomicBool,
    ) -> Result<Vec<SeriesSamples>> {
        let (extractor, stages) =
            compile_extractor(&query.sample_expr, query.sample_grouping.as_ref())?;
        let scan = Scan::new(&stages, query);
        let mut by_series: HashMap<Labels, Vec<PushedSample>> = HashMap::new();
        let mut check = StopCheck::new(stop);
        for snap in self.snapshots(tenant, query)? {
            let fp = snap.labels.hash();
            let mut sx = extractor.for_stream(&snap.labels);
            scan.candidates(&snap, &mut check, |e| {
                if let Some((value, labels)) = sx.process(e.ts, e.line, e.structured_metadata) {
                    by_series.entry(labels).or_default().push(PushedSample {
                        ts: e.ts,
                        value,
                        hash: sample_hash(fp, e.line),
                    });
                }
                Ok(())
            })?;
        }
        Ok(by_series
            .into_iter()
            .map(|(labels, samples)| SeriesSamples { labels, samples })
            .collect())
    }
}

/// Keeps a limited query's kept entries near `limit` while it scans: entries strictly
/// farther from the edge than the `limit`-th nearest one kept so far can never be in the
/// answer (more entries only move that bound nearer), so they are dropped, and later ones
/// beyond the bound are not copied at all. Ties at the bound are kept (the engine breaks them).
struct Pruner {
    limit: SelectLimit,
    bound: Option<i64>,
    /// Kept-entry count at which to prune again.
    next_at: usize,
}

impl Pruner {
    fn new(limit: SelectLimit) -> Self {
        Pruner { limit, bound: None, next_at: Self::slack(limit.limit) }
    }

    fn slack(limit: usize) -> usize {
        limit.saturating_mul(2).max(limit.saturating_add(4096))
    }

    /// True when an entry at `ts` is strictly farther than the bound.
    fn rejects(&self, ts: i64) -> bool {
        match self.bound {
            None => false,
            Some(b) if self.limit.backward => ts < b,
            Some(b) => ts > b,
        }
    }

    /// Drops the entries strictly farther than the `limit`-th nearest; returns how many
    /// are left.
    fn prune(&mut self, streams: &mut [Stream]) -> usize {
        let SelectLimit { limit, backward } = self.limit;
        let mut ts: Vec<i64> =
            streams.iter().flat_map(|s| s.entries.iter().map(|e| e.ts)).collect();
        if ts.len() > limit {
            let bound = if limit == 0 {
                if backward {
                    i64::MAX
                } else {
                    i64::MIN
                }
            } else if backward {
                let k = ts.len() - limit;
                *ts.select_nth_unstable(k).1
            } else {
                *ts.select_nth_unstable(limit - 1).1
            };
            self.bound = Some(bound);
            for s in streams.iter_mut() {
                s.entries.retain(|e| !self.rejects(e.ts));
                if limit == 0 {
                    s.entries.clear();
                }
            }
        }
        let left: usize = streams.iter().map(|s| s.entries.len()).sum();
        self.next_at = left.saturating_add(Self::slack(limit));
        left
    }
}

/// Looks at a query's stop flag every few entries.
struct StopCheck<'a> {
    stop: &'a AtomicBool,
    n: u32,
}

impl<'a> StopCheck<'a> {
    fn new(stop: &'a AtomicBool) -> Self {
        StopCheck { stop, n: 0 }
    }

    fn tick(&mut self) -> Result<()> {
        self.n += 1;
        if self.n >= 64 {
            self.n = 0;
            if self.stop.load(Ordering::Relaxed) {
                return Err(IngesterError::Cancelled);
            }
        }
        Ok(())
    }
}

/// What a query reads of a stream snapshot: the chunks and blocks whose n-gram filter may hold
/// what every kept line contains (the pushed-down pipeline's needles and the `|=` literals;
/// structured-metadata equalities are left out, as a stream label of that name could satisfy
/// them), and of their entries those holding the `|=` literals.
struct Scan<'q> {
    query: &'q IngesterQuery,
    clauses: Vec<Vec<Vec<u8>>>,
    finders: Vec<memchr::memmem::Finder<'q>>,
}

impl<'q> Scan<'q> {
    fn new(stages: &[Stage], query: &'q IngesterQuery) -> Scan<'q> {
        let needles = skald_logql::log::needles(stages);
        let mut clauses: Vec<Vec<Vec<u8>>> =
            needles.clauses.into_iter().map(|c| c.into_iter().map(|l| l.bytes).collect()).collect();
        clauses.extend(query.line_contains.iter().map(|l| vec![l.as_bytes().to_vec()]));
        let finders =
            query.line_contains.iter().map(|l| memchr::memmem::Finder::new(l.as_bytes())).collect();
        Scan { query, clauses, finders }
    }

    fn may(&self, filter: &skald_chunk::NgramFilter) -> bool {
        self.clauses.is_empty()
            || filter.may_match(self.clauses.iter().map(|c| c.iter().map(Vec::as_slice)))
    }

    /// Calls `f` with each entry of `snap` in the query's range that the filters and the `|=`
    /// literals leave, checking `check` for a stop.
    fn candidates(
        &self,
        snap: &StreamSnapshot,
        check: &mut StopCheck<'_>,
        mut f: impl FnMut(skald_model::EntryRef<'_>) -> Result<()>,
    ) -> Result<()> {
        snap.for_each(
            self.query.start,
            self.query.end,
            |b| self.may(b),
            |e| {
                check.tick()?;
                if !self.finders.iter().all(|x| x.find(e.line).is_some()) {
                    return Ok(());
                }
                f(e)
            },
        )
    }
}

/// Compiles a pushed-down range aggregation (LogQL text) into its sample extractor, its
/// parsers following the parser hints of `grouping` (the one the querier evaluates it with:
/// the samples keep their series' labels, the querier groups them); also returns its
/// pipeline's stages.
fn compile_extractor(
    text: &str,
    grouping: Option<&SampleGrouping>,
) -> Result<(SampleExtractor, Vec<Stage>)> {
    use skald_logql::syntax::ast::{Expr, Grouping};
    let bad = |reason: String| IngesterError::InvalidSampleExpr { text: text.to_string(), reason };
    let Expr::Sample(expr) =
        skald_logql::syntax::parse_expr(text).map_err(|e| bad(e.to_string()))?
    else {
        return Err(bad("not a range aggregation".to_string()));
    };
    let grouping = grouping.map(|g| Grouping { without: g.without, labels: g.labels.clone() });
    match skald_logql::engine::pushed_extractor(&expr, grouping.as_ref()) {
        Some(Ok((extractor, _, range))) => Ok((extractor, range.selector.stages.clone())),
        Some(Err(e)) => Err(bad(e.to_string())),
        None => Err(bad("not a range aggregation".to_string())),
    }
}

/// Compiles a pushed-down pipeline (a log selector as LogQL text). Empty text: none.
pub(crate) fn compile_pipeline(text: &str) -> Result<Option<Pipeline>> {
    Ok(compile_pipeline_stages(text)?.0)
}

/// [`compile_pipeline`], and the pipeline's stages.
fn compile_pipeline_stages(text: &str) -> Result<(Option<Pipeline>, Vec<Stage>)> {
    if text.is_empty() {
        return Ok((None, Vec::new()));
    }
    let bad = |reason: String| IngesterError::InvalidPipeline { text: text.to_string(), reason };
    let stages = match skald_logql::syntax::parse_expr(text).map_err(|e| bad(e.to_string()))? {
        skald_logql::syntax::ast::Expr::Log(sel) => sel.stages,
        _ => return Err(bad("not a log selector".to_string())),
    };
    let pipeline = Pipeline::new(&stages).map_err(|e| bad(e.to_string()))?;
    Ok((Some(pipeline), stages))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use skald_model::{Entry, MatchType};
    use skald_proto::ingester::IngesterService;
    use skald_proto::ErrorCode;

    use super::*;
    use crate::testing::{ingester, streams};
    use crate::IngesterConfig;

    /// copied, then the literals, the pipeline and the limit applied.
    fn reference_query(ing: &Ingester, q: &IngesterQuery) -> Vec<(String, i64, String)> {
        let t = ing.inner.tenants.lock().get("t").cloned().unwrap();
        let guard = t.lock();
        let mut out = Vec::new();
        for st in guard.streams.values() {
            if !LabelMatcher::all_match(&q.matchers, &st.labels) {
                continue;
            }
            let mut entries = st.entries_in_range(q.start, q.end).unwrap();
            entries.retain(|e| {
                q.line_contains.iter().all(|l| e.line.to_str_lossy().contains(l.as_str()))
            });
            out.push(Stream { labels: st.labels.clone(), entries });
        }
        drop(guard);
        let pipeline =
            compile_pipeline(&q.pipeline).unwrap().unwrap_or_else(|| Pipeline::new(&[]).unwrap());
        let limit =
            (q.limit > 0).then_some(SelectLimit { limit: q.limit as usize, backward: q.backward });
        flat(skald_logql::engine::push_down(&pipeline, out, limit))
    }

    fn flat(streams: Vec<Stream>) -> Vec<(String, i64, String)> {
        let mut v: Vec<_> = streams
            .into_iter()
            .flat_map(|s| {
                let l = s.labels.to_string();
                s.entries.into_iter().map(move |e| (l.clone(), e.ts, e.line.to_string()))
            })
            .collect();
        v.sort();
        v
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn block_by_block_queries_answer_what_copying_everything_did() {
        // small blocks and chunks: entries lie in closed chunks, the open chunk and the head
        let config = IngesterConfig {
            chunk_block_size: 4096,
            chunk_target_size: 32 * 1024,
            ..IngesterConfig::default()
        };
        let ing = ingester(config);
        for app in ["a", "b", "c"] {
            let entries = (0..6000i64)
                .map(|i| Entry {
                    // a few timestamps repeat across streams: ties at the limit's bound
                    ts: 1_000_000 + i * 10 + (app == "b") as i64 * 5,
                    line: format!(
                        "level={} app={app} n={i}",
                        ["info", "warn", "error"][i as usize % 3]
                    )
                    .into(),
                    structured_metadata: vec![],
                })
                .collect();
            let labels = Labels::parse(&format!(r#"{{app="{app}"}}"#)).unwrap();
            ing.push("t", vec![Stream { labels, entries }]).await.unwrap();
        }
        let all = vec![LabelMatcher::new("app", MatchType::Regex, ".+").unwrap()];
        // the last two are needle searches: blocks whose n-gram filter rejects them are skipped
        let cases: [(&str, Vec<String>, u32, bool); 9] = [
            ("", vec![], 0, false),
            ("", vec![], 100, true),
            ("", vec![], 100, false),
            (r#"{app=~".+"} |= "error""#, vec!["error".into()], 0, false),
            (r#"{app=~".+"} | logfmt | n > 5000"#, vec![], 7, false),
            (r#"{app=~".+"} | logfmt | n < 5000"#, vec![], 5000, true),
            (r#"{app=~".+"} |= "warn""#, vec!["warn".into()], 1, true),
            (r#"{app=~".+"} |~ "(?i)N=12""#, vec![], 0, false),
            (r#"{app=~".+"} |= "n=4321" or "n=1717""#, vec![], 0, true),
        ];
        let never = AtomicBool::new(false);
        for (pipeline, line_contains, limit, backward) in cases {
            let q = IngesterQuery {
                matchers: all.clone(),
                start: 1_010_000,
                end: 1_060_000,
                line_contains,
                pipeline: pipeline.to_string(),
                limit,
                backward,
                ..Default::default()
            };
            let got = flat(ing.query_sync("t", &q, &never).unwrap());
            assert!(!got.is_empty(), "{pipeline} {limit}");
            assert_eq!(got, reference_query(&ing, &q), "{pipeline} limit {limit} {backward}");
        }
    }

    /// A query's `|=` literals, its pipeline and its limit are all applied at the ingester:
    /// only the `limit` entries nearest the edge that pass every filter come back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn line_filters_the_pipeline_and_the_limit_are_pushed_down() {
        let ing = ingester(IngesterConfig::default());
        ing.push("t", streams(0, 100)).await.unwrap();
        let lines = |backward: bool, limit: u32| {
            let q = IngesterQuery {
                matchers: vec![LabelMatcher::new("job", MatchType::Equal, "replay").unwrap()],
                start: i64::MIN,
                end: i64::MAX,
                line_contains: vec!["line 1".to_string()],
                pipeline: r#"{job="replay"} |= "line 1" != "line 10" |~ "[0-9]$""#.to_string(),
                limit,
                backward,
                ..Default::default()
            };
            let got: Vec<String> = flat(ing.query_sync("t", &q, &AtomicBool::new(false)).unwrap())
                .into_iter()
                .map(|(_, _, line)| line)
                .collect();
            got
        };
        // "line 1" and "line 11".."line 19" pass; "line 10" does not
        assert_eq!(lines(false, 3), ["line 1", "line 11", "line 12"]);
        assert_eq!(lines(true, 2), ["line 18", "line 19"]);
        assert_eq!(lines(false, 0).len(), 10);
        // a literal alone filters too (the querier sends it with the pipeline it came from)
        let q = IngesterQuery {
            matchers: vec![LabelMatcher::new("job", MatchType::Equal, "replay").unwrap()],
            start: i64::MIN,
            end: i64::MAX,
            line_contains: vec!["line 9".to_string()],
            ..Default::default()
        };
        assert_eq!(flat(ing.query_sync("t", &q, &AtomicBool::new(false)).unwrap()).len(), 11);
        // a pipeline that is not a log selector is a 400
        let q = IngesterQuery { pipeline: "sum(rate({job=\"replay\"}[1m]))".into(), ..q };
        let err = ing.query_sync("t", &q, &AtomicBool::new(false)).unwrap_err();
        assert!(matches!(err, IngesterError::InvalidPipeline { .. }), "{err:?}");
        assert_eq!(err.code(), ErrorCode::BadRequest);
    }

    #[test]
    fn a_pruner_keeps_the_limit_nearest_and_their_ties() {
        let entries = |ts: &[i64]| Stream {
            labels: Labels::default(),
            entries: ts
                .iter()
                .map(|&ts| Entry { ts, line: String::new().into(), structured_metadata: vec![] })
                .collect(),
        };
        let mut streams = vec![entries(&[1, 5, 9, 3]), entries(&[5, 7])];
        let mut p = Pruner::new(SelectLimit { limit: 3, backward: true });
        assert_eq!(p.prune(&mut streams), 4); // 9, 7 and both 5s
        assert!(p.rejects(4) && !p.rejects(5) && !p.rejects(100));
        let mut streams = vec![entries(&[1, 5, 9, 3]), entries(&[5, 7])];
        let mut p = Pruner::new(SelectLimit { limit: 2, backward: false });
        assert_eq!(p.prune(&mut streams), 2); // 1 and 3
        assert!(p.rejects(4) && !p.rejects(3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_query_stops() {
        let ing = ingester(IngesterConfig::default());
        ing.push("t", streams(0, 1000)).await.unwrap();
        let q = IngesterQuery {
            matchers: vec![LabelMatcher::new("job", MatchType::Equal, "replay").unwrap()],
            start: i64::MIN,
            end: i64::MAX,
            sample_expr: r#"count_over_time({job="replay"}[1h])"#.into(),
            ..Default::default()
        };
        let stop = AtomicBool::new(true);
        let err = ing.query_sync("t", &q, &stop).err().unwrap();
        assert_eq!(err.code(), ErrorCode::Cancelled);
        let err = ing.query_samples_sync("t", &q, &stop).err().unwrap();
        assert_eq!(err.code(), ErrorCode::Cancelled);
        let never = AtomicBool::new(false);
        assert_eq!(ing.query_samples_sync("t", &q, &never).unwrap().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_shards_of_a_query_partition_its_streams() {
        let ing = ingester(IngesterConfig::default());
        let pushed: Vec<Stream> = (0..40)
            .map(|i| Stream {
                labels: Labels::parse(&format!(r#"{{job="replay", pod="p{i}"}}"#)).unwrap(),
                entries: vec![Entry {
                    ts: 1_000 + i,
                    line: format!("line {i}").into(),
                    structured_metadata: vec![],
                }],
            })
            .collect();
        ing.push("t", pushed).await.unwrap();
        let q = IngesterQuery {
            matchers: vec![LabelMatcher::new("job", MatchType::Equal, "replay").unwrap()],
            start: i64::MIN,
            end: i64::MAX,
            ..Default::default()
        };
        let never = AtomicBool::new(false);
        let whole = flat(ing.query_sync("t", &q, &never).unwrap());
        assert_eq!(whole.len(), 40);
        let sq = IngesterQuery {
            sample_expr: r#"count_over_time({job="replay"}[1h])"#.into(),
            ..q.clone()
        };
        for n in 1..=8u32 {
            let mut union = Vec::new();
            let mut samples = 0;
            for i in 0..n {
                let shard = skald_model::Shard::new(i, n);
                let part = ing.query_sync("t", &IngesterQuery { shard, ..q.clone() }, &never);
                let part = part.unwrap();
                for s in &part {
                    assert!(shard.unwrap().contains(skald_model::fingerprint(&s.labels)));
                }
                union.extend(flat(part));
                let sq = IngesterQuery { shard, ..sq.clone() };
                samples += ing.query_samples_sync("t", &sq, &never).unwrap().len();
            }
            union.sort();
            // every stream in exactly one shard
            assert_eq!(union, whole, "{n} shards");
            assert_eq!(samples, 40, "{n} shards");
        }
    }
}
