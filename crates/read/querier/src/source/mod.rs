//! The querier's data source for the LogQL engine: chunks found through the index, merged with
//! the recent data ingesters still hold, deduplicated, in timestamp order per stream.

mod counts;
mod decode;
mod fetch;
mod limited;
pub(crate) mod needle;
#[cfg(test)]
mod needle_tests;
mod prefetch;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use skald_chunk::BlockReader;
use skald_deletes::TenantDeletes;
use skald_index::ChunkRef;
use skald_logql::engine::{
    BucketedSamples, EngineError, PushedSamples, SampleBatch, SelectLimit, Source, WindowGrid,
};
use skald_logql::log::LiteralScan;
use skald_logql::syntax::ast::LogSelectorExpr;
use skald_logql::syntax::ast::{Grouping, LogRangeExpr, RangeOp};
use skald_model::{Entry, EntryBatch, Labels, StreamBatch};
use skald_proto::ingester::IngesterQuery;

use crate::store_stats::StoreStats;
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
    /// What the query read, for its answer's `stats`.
    pub(crate) stats: Arc<StoreStats>,
    /// How far ahead of the engine its chunks are fetched (bytes): [`prefetch_window`], or
    /// less for a part of a split query whose parts share one budget.
    pub(crate) window: usize,
    /// Sharding by stream (a part request's `skald_shard`): only the streams of this shard
    /// are read, from the index and from the ingesters (`None`: every stream).
    pub(crate) shard: Option<skald_model::Shard>,
}

/// Loki's error text for a query whose client went away (status 499).
pub(crate) use skald_loghttp::error::CANCELED_MSG;

/// How far ahead of the engine a query's chunks are fetched and decoded: at most
/// [`prefetch::WINDOW_BYTES`], and a quarter of `max_query_memory` when that is smaller. The
/// querier reserves it in the query's memory accountant before the engine runs, so the cap
/// bounds the window and what the engine holds together.
pub(crate) fn prefetch_window(max_query_memory: u64) -> usize {
    match usize::try_from(max_query_memory).unwrap_or(usize::MAX) {
        0 => prefetch::WINDOW_BYTES,
        cap => prefetch::WINDOW_BYTES.min(cap / 4),
    }
}

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

    fn prefetch_window(&self) -> usize {
        self.window
    }

    /// The tenant's delete requests whose windows overlap `[start, end)`, when any: their
    /// lines are dropped from what this source returns (`skald_deletes`).
    fn hidden(&self, start: i64, end: i64) -> Result<Option<Arc<TenantDeletes>>, EngineError> {
        let hidden = self
            .wait(self.querier.hidden_lines(&self.tenant))?
            .map_err(|e| source_err(format!("reading delete requests failed: {e}")))?;
        Ok(hidden.filter(|d| d.overlaps(start, end.saturating_sub(1))))
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
        let Some((start, end)) = self.querier.lookback_range(&self.tenant, start, end) else {
            return Ok(None);
        };
        let max = self.querier.limits(&self.tenant).max_streams_matchers_per_query;
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
        let max = self.querier.limits(&self.tenant).max_chunks_per_query;
        let total = self.chunks_seen.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        if max > 0 && total > max {
            return Err(EngineError::Limit(format!(
                "the query hit the max number of chunks limit (limit: {max} chunks)"
            )));
        }
        Ok(())
    }

    /// Streams and their chunks from the index (those of the query's shard).
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
        // counted before the shard is taken: a shard fails `max_chunks_per_query` exactly
        // when the whole query would
        self.count_chunks(series.iter().map(|s| s.chunks.len()).sum())?;
        let mut streams: BTreeMap<Labels, PendingStream> = BTreeMap::new();
        let shard = self.shard;
        let in_shard = |s: &skald_index::SeriesChunks| {
            skald_model::in_shard(shard, skald_model::fingerprint(&s.labels))
        };
        let mut refs = 0;
        for s in series.into_iter().filter(in_shard) {
            // the stats count the shard's own (the shards' add up to the whole's)
            refs += s.chunks.len();
            streams
                .entry(s.labels)
                .or_insert_with(|| PendingStream { chunks: Vec::new(), recent: Vec::new() })
                .chunks
                .extend(s.chunks);
        }
        self.stats.add_chunk_refs(refs);
        Ok(streams)
    }

    /// The ingester request for `selector` over `[start, end)`.
    fn ingester_query(&self, selector: &LogSelectorExpr, start: i64, end: i64) -> IngesterQuery {
        IngesterQuery {
            matchers: selector.matchers.clone(),
            start,
            end,
            line_contains: skald_logql::log::required_literals(&selector.stages),
            shard: self.shard,
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
        // for any range: data pushed with old timestamps may be held there whatever
        // `query_ingesters_within` says (see `QuerierConfig::query_ingesters_within`)
        if let Some(ingester) = &self.querier.ingester {
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
            self.stats.add_ingester_streams(&recent);
        }
        let mut streams = self.index_plan(selector, start, end)?;
        for s in recent {
            streams
                .entry(s.labels)
                .or_insert_with(|| PendingStream { chunks: Vec::new(), recent: Vec::new() })
                .recent = s.entries;
        }
        // streams a shorter `retention_stream` rule covers: their chunks wholly past it, and
        // their recent entries past it, are left out (the range's start already honours the
        // longest retention)
        if let Some(retention) = self.querier.retention(&self.tenant) {
            let now = skald_loghttp::params::now_ns();
            streams.retain(|labels, s| {
                let cutoff = retention.cutoff(labels, now);
                if cutoff > start {
                    s.chunks.retain(|c| c.through >= cutoff);
                    s.recent.retain(|e| e.ts >= cutoff);
                }
                !s.chunks.is_empty() || !s.recent.is_empty()
            });
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
        // Deleted lines must not count towards a limit: with deletes in range, every
        // stream is read whole (and the ingesters send every line the pipeline accepts).
        let hidden = self.hidden(start, end)?;
        // Streams a shorter `retention_stream` rule cuts inside the range: a chunk across
        // the cutoff is read, its expired lines dropped after. Read nearest `end`, a stream's
        // limited read still holds every kept line it must (they are its newest); nearest
        // `start` it would not, so it is read whole.
        let cut = self.cut_by_retention(start);
        let limit = limit.filter(|l| hidden.is_none() && (cut.is_none() || l.backward));
        let plan = self.plan(selector, start, end, limit)?;
        // With a limit, each stream is read nearest the edge first and only as far as needed.
        let limited = limit.and_then(|l| limited::Limited::new(&selector.stages, l));
        let iter = self.read_streams(plan, selector, (start, end), limited, self.prefetch_window());
        let iter: Box<dyn Iterator<Item = Result<StreamBatch, EngineError>> + Send + '_> =
            match hidden {
                Some(d) => Box::new(drop_deleted(iter, d)),
                None => Box::new(iter),
            };
        Ok(match cut {
            Some((retention, now)) => Box::new(drop_expired(iter, retention, now)),
            None => iter,
        })
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
        grouping: Option<&Grouping>,
        from: i64,
        to: i64,
    ) -> Result<Option<PushedSamples<'_>>, EngineError> {
        let selector = &range.selector;
        // `from` is exclusive here, `start` of `limit_range` inclusive
        let Some((start, to)) = self.limit_range(selector, from.saturating_add(1), to)? else {
            return Ok(None);
        };
        let from = start.saturating_sub(1);
        // deleted and expired lines are dropped from entries: the engine then reads them
        // through `select`
        if self.hidden(start, to)?.is_some() || self.cut_by_retention(start).is_some() {
            return Ok(None);
        }
        let Some((series, counted)) =
            self.ingester_samples(range, op, param, grouping, from, to)?
        else {
            return Ok(None);
        };
        let plan = self.index_plan(selector, from.saturating_add(1), to)?;
        let range = (from.saturating_add(1), to);
        let rest = self.read_streams(plan, selector, range, None, self.prefetch_window());
        Ok(Some(PushedSamples { series, counted, rest: Box::new(rest) }))
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
        // statistics count deleted lines, and the expired lines of a chunk across a stream
        // rule's cutoff, too: entries through `select` instead
        let start = from.saturating_add(1);
        if self.hidden(start, to)?.is_some() || self.cut_by_retention(start).is_some() {
            return Ok(None);
        }
        self.bucket_counts(range, op, from, to, grid)
    }
}

/// Drops from each stream the entries past its retention (`Retention::cutoff` at `now`).
fn drop_expired<'a>(
    streams: impl Iterator<Item = Result<StreamBatch, EngineError>> + Send + 'a,
    retention: skald_compactor::Retention,
    now: i64,
) -> impl Iterator<Item = Result<StreamBatch, EngineError>> + Send + 'a {
    streams
        .map(move |r| {
            r.map(|mut batch| {
                let cutoff = retention.cutoff(&batch.labels, now);
                if batch.entries.iter().any(|e| e.ts < cutoff) {
                    let expired: Vec<bool> = batch.entries.iter().map(|e| e.ts < cutoff).collect();
                    batch.entries.retain_indices(|i| !expired[i]);
                }
                batch
            })
        })
        .filter(|r| !matches!(r, Ok(s) if s.entries.is_empty()))
}

/// Drops from each stream the entries a delete request covers.
fn drop_deleted<'a>(
    streams: impl Iterator<Item = Result<StreamBatch, EngineError>> + Send + 'a,
    deletes: Arc<TenantDeletes>,
) -> impl Iterator<Item = Result<StreamBatch, EngineError>> + Send + 'a {
    streams
        .map(move |r| {
            r.map(|mut batch| {
                if let Some(mut stream) = deletes.for_stream(&batch.labels) {
                    let deleted: Vec<bool> = batch
                        .entries
                        .iter()
                        .map(|e| stream.is_deleted(e.ts, e.line, e.structured_metadata))
                        .collect();
                    batch.entries.retain_indices(|i| !deleted[i]);
                }
                batch
            })
        })
        .filter(|r| !matches!(r, Ok(s) if s.entries.is_empty()))
}

impl StoreSource {
    /// The tenant's retention, and now, when some stream's cutoff falls after `start` (a
    /// `retention_stream` rule shorter than the range: the longest retention already moved
    /// `start` up).
    fn cut_by_retention(&self, start: i64) -> Option<(skald_compactor::Retention, i64)> {
        let retention = self.querier.retention(&self.tenant)?;
        let shortest = retention.shortest()?;
        let now = skald_loghttp::params::now_ns();
        let cut = now.saturating_sub(i64::try_from(shortest.as_nanos()).unwrap_or(i64::MAX));
        (cut > start).then_some((retention, now))
    }

    /// The samples `op(range)` makes of what the ingesters hold in `(from, to)`, by series,
    /// and `(ts, hash)` of every entry they counted; `None` without ingesters. The grouping
    /// travels beside the expression, for the ingesters' parser hints.
    #[allow(clippy::type_complexity)]
    fn ingester_samples(
        &self,
        range: &LogRangeExpr,
        op: RangeOp,
        param: Option<f64>,
        grouping: Option<&Grouping>,
        from: i64,
        to: i64,
    ) -> Result<Option<(Vec<SampleBatch>, HashSet<(i64, u64)>)>, EngineError> {
        let selector = &range.selector;
        let Some(ingester) = &self.querier.ingester else {
            return Ok(None);
        };
        let expr = skald_logql::engine::pushed_sample_expr(op, range, param, grouping);
        let query = IngesterQuery {
            sample_expr: expr.to_string(),
            sample_grouping: grouping.map(|g| skald_proto::ingester::SampleGrouping {
                without: g.without,
                labels: g.labels.clone(),
            }),
            ..self.ingester_query(selector, from.saturating_add(1), to)
        };
        let recent = self
            .wait(ingester.query_samples(&self.tenant, query))?
            .map_err(|e| source_err(format!("ingester query failed: {e}")))?;
        self.stats.add_ingester_samples(&recent);
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

    /// The planned streams in order, their chunks fetched (and, for a full read, decoded)
    /// ahead of the engine across streams (see [`prefetch`]).
    fn read_streams(
        &self,
        plan: BTreeMap<Labels, PendingStream>,
        selector: &LogSelectorExpr,
        (start, end): (i64, i64),
        limited: Option<limited::Limited>,
        window: usize,
    ) -> impl Iterator<Item = Result<StreamBatch, EngineError>> + Send + '_ {
        let mut plan: Vec<(Labels, PendingStream)> = plan.into_iter().collect();
        let needles = needle::NeedleQuery::new(&selector.stages, plan.iter().map(|(l, _)| l));
        if let Some(n) = &needles {
            self.drop_rejected_chunks(&mut plan, n, (start, end));
        }
        let scan = Arc::new(decode::BlockScan {
            lines: LiteralScan::for_stages(&selector.stages),
            needles: needles.map(Arc::new),
        });
        let chunks: Vec<&[ChunkRef]> = plan.iter().map(|(_, p)| p.chunks.as_slice()).collect();
        // a full read takes every chunk; a limited one surely its first group of each stream
        let wanted: Vec<(usize, usize)> = chunks
            .iter()
            .enumerate()
            .flat_map(|(s, c)| {
                let which = match &limited {
                    Some(l) => l.first_group(c, start, end),
                    None => (0..c.len()).collect(),
                };
                which.into_iter().map(move |j| (s, j))
            })
            .collect();
        let decode = limited.is_none().then(|| prefetch::Decode {
            start,
            end,
            scan: scan.clone(),
            cancel: self.cancel.clone(),
            stats: self.stats.clone(),
        });
        // a limited read takes whole chunks and picks their blocks itself, unless the chunks'
        // filters can say which blocks to fetch
        let need = if limited.is_some() && scan.needles.is_none() {
            fetch::Need::Whole
        } else {
            fetch::Need::Range(start, end)
        };
        let needles = (need, scan.needles.clone());
        let mut prefetch =
            prefetch::Prefetch::start(self, &chunks, wanted, needles, decode, window);
        drop(chunks);
        let iter = plan.into_iter().enumerate().map(move |(i, (labels, pending))| {
            check_cancel(&self.cancel)?;
            let slots = prefetch.take_stream(i);
            let entries = match &limited {
                Some(limited) => {
                    limited.load(self, &labels, pending, slots, (start, end), &scan)?
                }
                None => self.load_stream(pending, slots, start, end, &scan)?,
            };
            Ok(StreamBatch { labels, entries })
        });
        iter.filter(|r| !matches!(r, Ok(s) if s.entries.is_empty()))
    }

    /// Every entry of a stream in `[start, end)` that contains the literals: all its chunks,
    /// merged with the ingesters' entries.
    fn load_stream(
        &self,
        pending: PendingStream,
        mut slots: Vec<Option<prefetch::Slot>>,
        start: i64,
        end: i64,
        scan: &decode::BlockScan,
    ) -> Result<EntryBatch, EngineError> {
        let all: Vec<usize> = (0..pending.chunks.len()).collect();
        let need = fetch::Need::Range(start, end);
        let needles = scan.needles.as_ref();
        let fetched = self.take_chunks(&pending.chunks, &mut slots, &all, need, needles)?;
        drop(slots);
        let mut reader = BlockReader::new();
        let mut parts = Vec::with_capacity(fetched.len() + 1);
        for f in fetched {
            parts.push(match f {
                prefetch::Fetched::Decoded(entries) => entries,
                prefetch::Fetched::Chunk(chunk) => {
                    check_cancel(&self.cancel)?;
                    decode::decode_chunk(&chunk, start, end, scan, &mut reader, &self.stats)?
                }
            });
        }
        // The ingesters already kept only lines the pipeline accepts (the engine reruns it).
        parts.push(pending.recent.iter().collect());
        let mut entries = EntryBatch::concat(parts);
        // In (timestamp, line) order; the same entry can be in a flushed chunk and still in
        // an ingester (or in two replicas): keep one.
        entries.sort_dedup();
        Ok(entries)
    }
}
