//! The querier's data source for the LogQL engine: chunks found through the index, merged with
//! the recent data ingesters still hold, deduplicated, in timestamp order per stream.

mod counts;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use skald_chunk::{BlockReader, Chunk};
use skald_index::ChunkRef;
use skald_logql::engine::{
    BucketedSamples, EngineError, PushedSamples, SampleBatch, SelectLimit, Source, WindowGrid,
};
use skald_logql::log::LiteralScan;
use skald_logql::syntax::ast::LogSelectorExpr;
use skald_logql::syntax::ast::{LogRangeExpr, RangeOp, SampleExpr};
use skald_model::{Entry, EntryBatch, Labels, StreamBatch};
use skald_proto::ingester::IngesterQuery;

use crate::Querier;

/// Reads one tenant's data for one query. Runs on a blocking thread; async storage calls are
/// driven through the runtime handle.
pub struct StoreSource {
    pub(crate) querier: Arc<Querier>,
    pub(crate) tenant: String,
    pub(crate) handle: tokio::runtime::Handle,
    /// Set when the client disconnected or the query timed out: stop reading.
    pub(crate) cancel: Arc<AtomicBool>,
    /// Chunk refs this query took from the index so far (`max_chunks_per_query`).
    pub(crate) chunks_seen: AtomicUsize,
}

/// Loki's error text for a query whose client went away (status 499).
pub(crate) const CANCELED_MSG: &str = "context canceled";

struct PendingStream {
    chunks: Vec<ChunkRef>,
    recent: Vec<Entry>,
}

fn source_err(msg: impl Into<String>) -> EngineError {
    EngineError::Source(msg.into())
}

fn check_cancel(cancel: &AtomicBool) -> Result<(), EngineError> {
    if cancel.load(Ordering::Relaxed) {
        return Err(EngineError::Canceled(CANCELED_MSG.to_string()));
    }
    Ok(())
}

/// How often a wait on storage or an ingester looks at the cancel flag.
const CANCEL_POLL: std::time::Duration = std::time::Duration::from_millis(20);

impl StoreSource {
    /// Drives `fut` to completion on the runtime, unless the query is canceled first: then
    /// `fut` is dropped (an in-process ingester's query stops with it, a gRPC one is reset)
    /// and the query fails with the cancel error.
    fn wait<F: std::future::Future>(&self, fut: F) -> Result<F::Output, EngineError> {
        let cancel = self.cancel.clone();
        self.handle.block_on(async move {
            let canceled = async {
                while !cancel.load(Ordering::Relaxed) {
                    tokio::time::sleep(CANCEL_POLL).await;
                }
            };
            tokio::select! {
                out = fut => Ok(out),
                () = canceled => Err(EngineError::Canceled(CANCELED_MSG.to_string())),
            }
        })
    }

    /// True when the range reaches into what ingesters may still hold.
    fn asks_ingesters(&self, end: i64) -> bool {
        let within = self.querier.config.query_ingesters_within_ns();
        self.querier.ingester.is_some() && (within == 0 || end > crate::params::now_ns() - within)
    }

    /// Loki's querier checks per selector: `max_streams_matchers_per_query` (400), and
    /// `max_query_lookback`, which moves `start` up to `now - lookback` (`None`: nothing of
    /// `[start, end)` is recent enough, the answer is empty as in Loki's frontend).
    fn limit_range(
        &self,
        selector: &LogSelectorExpr,
        start: i64,
        end: i64,
    ) -> Result<Option<(i64, i64)>, EngineError> {
        let Some((start, end)) = self.querier.lookback_range(start, end) else {
            return Ok(None);
        };
        let max = self.querier.limits.max_streams_matchers_per_query;
        let count = selector.matchers.len();
        if count > max {
            return Err(EngineError::Limit(format!(
                "max streams matchers per query exceeded, matchers-count > limit ({count} > {max})"
            )));
        }
        Ok(Some((start, end)))
    }

    /// Loki's `max_chunks_per_query`: the chunk refs one query takes from the index.
    fn count_chunks(&self, n: usize) -> Result<(), EngineError> {
        let max = self.querier.limits.max_chunks_per_query;
        let total = self.chunks_seen.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        if max > 0 && total > max {
            return Err(EngineError::Limit(format!(
                "the query hit the max number of chunks limit (limit: {max} chunks)"
            )));
        }
        Ok(())
    }

    /// Streams and their chunks from the index.
    fn index_plan(
        &self,
        selector: &LogSelectorExpr,
        start: i64,
        end: i64,
    ) -> Result<BTreeMap<Labels, PendingStream>, EngineError> {
        let series = self
            .wait(self.querier.index.series(
                &self.tenant,
                &selector.matchers,
                start,
                end.saturating_sub(1),
            ))?
            .map_err(|e| source_err(format!("index lookup failed: {e}")))?;
        self.count_chunks(series.iter().map(|s| s.chunks.len()).sum())?;
        let mut streams: BTreeMap<Labels, PendingStream> = BTreeMap::new();
        for s in series {
            streams
                .entry(s.labels)
                .or_insert_with(|| PendingStream { chunks: Vec::new(), recent: Vec::new() })
                .chunks
                .extend(s.chunks);
        }
        Ok(streams)
    }

    /// The ingester request for `selector` over `[start, end)`.
    fn ingester_query(&self, selector: &LogSelectorExpr, start: i64, end: i64) -> IngesterQuery {
        IngesterQuery {
            matchers: selector.matchers.clone(),
            start,
            end,
            line_contains: skald_logql::log::required_literals(&selector.stages),
            ..Default::default()
        }
    }

    /// The ingesters are asked first and the index second: a chunk flushed in between is then
    /// found twice (and deduplicated), never missed.
    fn plan(
        &self,
        selector: &LogSelectorExpr,
        start: i64,
        end: i64,
        limit: Option<SelectLimit>,
    ) -> Result<BTreeMap<Labels, PendingStream>, EngineError> {
        let mut recent = Vec::new();
        if let (true, Some(ingester)) = (self.asks_ingesters(end), &self.querier.ingester) {
            let query = IngesterQuery {
                // the whole pipeline and the limit: ingesters send only usable lines
                pipeline: if selector.stages.is_empty() {
                    String::new()
                } else {
                    selector.to_string()
                },
                limit: limit.map_or(0, |l| l.limit.min(u32::MAX as usize) as u32),
                backward: limit.is_some_and(|l| l.backward),
                ..self.ingester_query(selector, start, end)
            };
            recent = self
                .wait(ingester.query(&self.tenant, query))?
                .map_err(|e| source_err(format!("ingester query failed: {e}")))?;
        }
        let mut streams = self.index_plan(selector, start, end)?;
        for s in recent {
            streams
                .entry(s.labels)
                .or_insert_with(|| PendingStream { chunks: Vec::new(), recent: Vec::new() })
                .recent = s.entries;
        }
        Ok(streams)
    }
}

impl Source for StoreSource {
    fn check_canceled(&self) -> Result<(), EngineError> {
        check_cancel(&self.cancel)
    }

    fn select(
        &self,
        selector: &LogSelectorExpr,
        start: i64,
        end: i64,
        limit: Option<SelectLimit>,
    ) -> Result<Box<dyn Iterator<Item = Result<StreamBatch, EngineError>> + Send + '_>, EngineError>
    {
        let Some((start, end)) = self.limit_range(selector, start, end)? else {
            return Ok(Box::new(std::iter::empty()));
        };
        let plan = self.plan(selector, start, end, limit)?;
        let literals = skald_logql::log::required_literals(&selector.stages);
        let iter = plan.into_iter().map(move |(labels, pending)| {
            check_cancel(&self.cancel)?;
            let entries = self.load_stream(pending, start, end, &literals)?;
            Ok(StreamBatch { labels, entries })
        });
        Ok(Box::new(iter.filter(|r| !matches!(r, Ok(s) if s.entries.is_empty()))))
    }

    /// When the range reaches into the ingesters: they extract the samples of what they hold
    /// (only samples travel); the chunks found in the index go to the engine as entries, and
    /// an entry found in both (flushed while the query ran) counts once, by its
    /// [`skald_proto::ingester::sample_hash`]. The ingesters are asked first, so such an entry is never missed.
    fn select_samples(
        &self,
        range: &LogRangeExpr,
        op: RangeOp,
        param: Option<f64>,
        from: i64,
        to: i64,
    ) -> Result<Option<PushedSamples<'_>>, EngineError> {
        let selector = &range.selector;
        // `from` is exclusive here, `start` of `limit_range` inclusive
        let Some((start, to)) = self.limit_range(selector, from.saturating_add(1), to)? else {
            return Ok(None);
        };
        let from = start.saturating_sub(1);
        let Some((series, counted)) = self.ingester_samples(range, op, param, from, to)? else {
            return Ok(None);
        };
        let plan = self.index_plan(selector, from.saturating_add(1), to)?;
        let literals = skald_logql::log::required_literals(&selector.stages);
        let (start, end) = (from.saturating_add(1), to);
        let rest = plan.into_iter().map(move |(labels, pending)| {
            check_cancel(&self.cancel)?;
            let entries = self.load_stream(pending, start, end, &literals)?;
            Ok(StreamBatch { labels, entries })
        });
        Ok(Some(PushedSamples {
            series,
            counted,
            rest: Box::new(rest.filter(|r| !matches!(r, Ok(s) if s.entries.is_empty()))),
        }))
    }

    /// Answers `count_over_time`, `bytes_over_time`, `rate` and `bytes_rate` over a bare
    /// selector from chunk statistics where it can (module `counts`).
    fn select_bucket_counts(
        &self,
        range: &LogRangeExpr,
        op: RangeOp,
        from: i64,
        to: i64,
        grid: &WindowGrid,
    ) -> Result<Option<BucketedSamples<'_>>, EngineError> {
        self.bucket_counts(range, op, from, to, grid)
    }
}

impl StoreSource {
    /// The samples `op(range)` makes of what the ingesters hold in `(from, to)`, by series,
    /// and `(ts, hash)` of every entry they counted; `None` when the range is too old for the
    /// ingesters to be asked.
    #[allow(clippy::type_complexity)]
    fn ingester_samples(
        &self,
        range: &LogRangeExpr,
        op: RangeOp,
        param: Option<f64>,
        from: i64,
        to: i64,
    ) -> Result<Option<(Vec<SampleBatch>, HashSet<(i64, u64)>)>, EngineError> {
        let selector = &range.selector;
        let (true, Some(ingester)) = (self.asks_ingesters(to), &self.querier.ingester) else {
            return Ok(None);
        };
        let expr = SampleExpr::RangeAggregation {
            op,
            range: Box::new(range.clone()),
            param,
            grouping: None,
        };
        let query = IngesterQuery {
            sample_expr: expr.to_string(),
            ..self.ingester_query(selector, from.saturating_add(1), to)
        };
        let recent = self
            .wait(ingester.query_samples(&self.tenant, query))?
            .map_err(|e| source_err(format!("ingester query failed: {e}")))?;
        let mut counted = HashSet::new();
        let series = recent
            .into_iter()
            .map(|s| {
                counted.extend(s.samples.iter().map(|p| (p.ts, p.hash)));
                SampleBatch {
                    labels: s.labels,
                    points: s.samples.iter().map(|p| (p.ts, p.value)).collect(),
                }
            })
            .collect();
        Ok(Some((series, counted)))
    }

    fn load_stream(
        &self,
        pending: PendingStream,
        start: i64,
        end: i64,
        literals: &[String],
    ) -> Result<EntryBatch, EngineError> {
        let q = &self.querier;
        let tenant = self.tenant.clone();
        let store = q.chunks.clone();
        let keys: Vec<_> = pending.chunks.iter().map(|c| c.key(&tenant)).collect();
        let fetched: Vec<bytes::Bytes> = self
            .wait(async move {
                use futures::StreamExt;
                let results = futures::stream::iter(keys.into_iter().map(|k| {
                    let store = store.clone();
                    async move { store.get(&k).await }
                }))
                .buffered(16)
                .collect::<Vec<_>>()
                .await;
                results.into_iter().collect::<Result<Vec<_>, _>>()
            })?
            .map_err(|e| source_err(format!("failed to fetch chunk: {e}")))?;

        let scan = LiteralScan::new(literals);
        let decode_group = |group: &[bytes::Bytes]| -> Result<Vec<EntryBatch>, EngineError> {
            let mut reader = BlockReader::new();
            group
                .iter()
                .map(|bytes| {
                    check_cancel(&self.cancel)?;
                    decode_chunk(bytes, start, end, &scan, &mut reader)
                })
                .collect()
        };
        let mut parts: Vec<EntryBatch> = if fetched.len() > 1 {
            // decode chunks in parallel on scoped threads
            let workers = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .min(fetched.len());
            let chunks_per = fetched.len().div_ceil(workers);
            let results: Vec<Result<Vec<EntryBatch>, EngineError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = fetched
                    .chunks(chunks_per)
                    .map(|group| scope.spawn(move || decode_group(group)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(source_err("chunk decoder panicked"))))
                    .collect()
            });
            let mut parts = Vec::new();
            for r in results {
                parts.extend(r?);
            }
            parts
        } else {
            decode_group(&fetched)?
        };
        // The ingesters already kept only lines the pipeline accepts (the engine reruns it).
        parts.push(pending.recent.iter().collect());
        parts.retain(|p| !p.is_empty());
        let mut entries = match parts.len() {
            0 => EntryBatch::new(),
            1 => parts.pop().unwrap_or_default(),
            _ => {
                let n = parts.iter().map(EntryBatch::len).sum();
                let bytes = parts.iter().map(EntryBatch::line_bytes).sum();
                let mut all = EntryBatch::with_capacity(n, bytes);
                for p in &parts {
                    all.extend_from(p);
                }
                all
            }
        };
        // In (timestamp, line) order; the same entry can be in a flushed chunk and still in
        // an ingester (or in two replicas): keep one.
        entries.sort_dedup();
        Ok(entries)
    }
}

/// Decodes the entries of one chunk in `[start, end)` that contain every literal. A block
/// whose raw bytes lack the first literal is skipped before it is decoded: its line region is
/// a contiguous part of those bytes, so no line in it can match.
fn decode_chunk(
    bytes: &bytes::Bytes,
    start: i64,
    end: i64,
    scan: &LiteralScan,
    reader: &mut BlockReader,
) -> Result<EntryBatch, EngineError> {
    let chunk =
        Chunk::from_bytes(bytes.clone()).map_err(|e| source_err(format!("corrupt chunk: {e}")))?;
    let mut out = EntryBatch::new();
    for (i, meta) in chunk.blocks().iter().enumerate() {
        if meta.max_ts < start || meta.min_ts >= end {
            continue;
        }
        let raw = reader
            .raw_block(&chunk, i)
            .map_err(|e| source_err(format!("corrupt chunk block: {e}")))?;
        if !scan.may_match(raw) {
            continue;
        }
        let block = chunk
            .decode_raw_block(i, raw)
            .map_err(|e| source_err(format!("corrupt chunk block: {e}")))?;
        select_block(&block, start, end, scan, &mut out);
    }
    Ok(out)
}

/// Appends the block's entries in `[start, end)` that contain every literal.
fn select_block(
    block: &skald_chunk::DecodedBlock,
    start: i64,
    end: i64,
    scan: &LiteralScan,
    out: &mut EntryBatch,
) {
    scan.for_each_match(block.lines_bytes(), block.line_ends(), |i| {
        let ts = block.ts(i);
        if ts >= start && ts < end {
            out.push(ts, block.line(i), block.structured_metadata_slice(i));
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use skald_chunk_store::ObjectChunkStore;
    use skald_common::limits::Limits;
    use skald_index::{ObjectIndexStore, ObjectIndexStoreConfig};
    use skald_logql::syntax::ast::Expr;

    use super::*;
    use crate::QuerierConfig;

    fn source(limits: Limits) -> StoreSource {
        let chunks = Arc::new(ObjectChunkStore::in_memory());
        let index =
            Arc::new(ObjectIndexStore::new(chunks.clone(), ObjectIndexStoreConfig::default()));
        let querier = Querier::new(QuerierConfig::default(), limits, chunks, index, None);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        StoreSource {
            querier: Arc::new(querier),
            tenant: "t".into(),
            handle: runtime.handle().clone(),
            cancel: Arc::new(AtomicBool::new(false)),
            chunks_seen: AtomicUsize::new(0),
        }
    }

    fn selector(q: &str) -> LogSelectorExpr {
        match skald_logql::syntax::parse_expr(q).unwrap() {
            Expr::Log(s) => s,
            other => panic!("not a log selector: {other:?}"),
        }
    }

    #[test]
    fn matchers_per_selector_are_limited() {
        let s = source(Limits { max_streams_matchers_per_query: 2, ..Limits::default() });
        let now = crate::params::now_ns();
        let err = s.limit_range(&selector(r#"{a="1", b="2", c!="3"}"#), 0, now).unwrap_err();
        assert_eq!(err.status_code(), 400);
        assert_eq!(
            err.to_string(),
            "max streams matchers per query exceeded, matchers-count > limit (3 > 2)"
        );
        assert_eq!(s.limit_range(&selector(r#"{a="1", b="2"}"#), 0, now).unwrap(), Some((0, now)));
    }

    #[test]
    fn lookback_moves_the_start_up_and_empties_older_ranges() {
        let hour = 3_600_000_000_000i64;
        let s = source(Limits {
            max_query_lookback: Duration::from_secs(3600),
            max_streams_matchers_per_query: 1,
            ..Limits::default()
        });
        let now = crate::params::now_ns();
        let (start, end) =
            s.limit_range(&selector(r#"{a="1"}"#), now - 3 * hour, now).unwrap().unwrap();
        assert_eq!(end, now);
        assert!(start >= now - hour - 1_000_000_000 && start <= now - hour + 1_000_000_000);
        // entirely older: nothing to read, before the matchers are counted (Loki's frontend)
        let old = s.limit_range(&selector(r#"{a="1", b="2"}"#), now - 3 * hour, now - 2 * hour);
        assert_eq!(old.unwrap(), None);
    }

    #[test]
    fn chunk_refs_are_counted_per_query() {
        let s = source(Limits { max_chunks_per_query: 3, ..Limits::default() });
        s.count_chunks(2).unwrap();
        s.count_chunks(1).unwrap();
        let err = s.count_chunks(1).unwrap_err();
        assert_eq!(err.status_code(), 400);
        assert_eq!(
            err.to_string(),
            "the query hit the max number of chunks limit (limit: 3 chunks)"
        );
        let off = source(Limits { max_chunks_per_query: 0, ..Limits::default() });
        off.count_chunks(usize::MAX / 2).unwrap();
    }
}
