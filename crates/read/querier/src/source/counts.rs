//! Metric queries from chunk statistics: `count_over_time`, `bytes_over_time`, `rate` and
//! `bytes_rate` over a selector without pipeline stages need only how many entries, and how
//! many line bytes, each window holds. Version 2 chunks record both per block and per second
//! (`skald_chunk::Chunk::block_stats`); when every window edge falls on a bucket edge, a block
//! is answered from its buckets instead of being decompressed. A chunk is fetched as its
//! header and its end (block index and statistics, [`Need::Index`]); the payloads of the
//! blocks that must be decoded are fetched afterwards, for all of a stream's chunks at once.
//!
//! Every entry counts once, exactly as on the decoding path, which keeps one entry per
//! `(ts, line)` of a stream (`EntryBatch::sort_dedup`) and skips what the ingesters counted:
//! - chunks with the same key (replicas that cut the same entries) are read once;
//! - where chunks of one stream overlap in time (replicas that cut differently, re-flushes,
//!   out-of-order cuts), the blocks of each that reach into another's time range are decoded
//!   and deduplicated together, as before (only there can two chunks share an entry); their
//!   other blocks are counted;
//! - a block holding a timestamp the ingesters counted is decoded, so the engine can skip the
//!   entries counted there by their hashes;
//! - the chunk format writes no statistics for a chunk that may hold duplicate entries, nor
//!   for a block with too many distinct structured-metadata sets (buckets are kept per set,
//!   since a series is the stream labels plus the entry's metadata).

use skald_chunk::{BlockReader, Chunk, DEFAULT_STATS_BUCKET_NS};
use skald_index::ChunkRef;
use skald_logql::engine::{
    BucketBatch, BucketCount, BucketedSamples, EngineError, StreamPart, WindowGrid,
};
use skald_logql::syntax::ast::{LogRangeExpr, RangeOp};
use skald_model::{EntryBatch, Labels};

use crate::store_stats::StoreStats;

use super::decode::{decode_block, select_block, BlockScan};
use super::fetch::{fetch_blocks, Need};
use super::{check_cancel, prefetch, source_err, StoreSource};

impl StoreSource {
    /// [`skald_logql::engine::Source::select_bucket_counts`]: the ingesters' samples as
    /// [`Source::select_samples`](skald_logql::engine::Source::select_samples) gets them, then
    /// per stream the buckets of the flushed chunks that have usable statistics, and the
    /// entries of the rest. `None` when the windows do not fall on the one-second edges of
    /// the statistics this build writes, or when `max_query_lookback` moves the start.
    pub(super) fn bucket_counts(
        &self,
        range: &LogRangeExpr,
        op: RangeOp,
        from: i64,
        to: i64,
        grid: &WindowGrid,
    ) -> Result<Option<BucketedSamples<'_>>, EngineError> {
        if !grid.aligned_to(DEFAULT_STATS_BUCKET_NS) {
            return Ok(None);
        }
        let selector = &range.selector;
        // `from` is exclusive here, `start` of `limit_range` inclusive
        let Some((start, to)) = self.limit_range(selector, from.saturating_add(1), to)? else {
            return Ok(None);
        };
        if start.saturating_sub(1) != from {
            // the lookback cut the range inside a bucket
            return Ok(None);
        }
        let (series, counted) =
            self.ingester_samples(range, op, None, None, from, to)?.unwrap_or_default();
        let mut counted_ts: Vec<i64> = counted.iter().map(|c| c.0).collect();
        counted_ts.sort_unstable();
        counted_ts.dedup();
        let plan: Vec<(Labels, Vec<ChunkRef>)> = self
            .index_plan(selector, start, to)?
            .into_iter()
            .map(|(labels, pending)| {
                // identical keys are identical bytes (replicas that cut the same entries):
                // read once
                let mut chunks = pending.chunks;
                chunks.sort_by_key(|c| (c.from, c.through, c.checksum, c.fingerprint));
                chunks.dedup_by_key(|c| (c.from, c.through, c.checksum, c.fingerprint));
                (labels, chunks)
            })
            .collect();
        // every chunk's block index and statistics are fetched (the payloads of the blocks
        // that must be decoded come later), across streams at once
        let slices: Vec<&[ChunkRef]> = plan.iter().map(|(_, c)| c.as_slice()).collect();
        let wanted: Vec<(usize, usize)> = slices
            .iter()
            .enumerate()
            .flat_map(|(s, c)| (0..c.len()).map(move |j| (s, j)))
            .collect();
        let window = self.prefetch_window();
        let mut prefetch =
            prefetch::Prefetch::start(self, &slices, wanted, (Need::Index, None), None, window);
        drop(slices);
        let grid = *grid;
        let rest = plan.into_iter().enumerate().flat_map(move |(i, (labels, chunks))| {
            let mut slots = prefetch.take_stream(i);
            let parts = check_cancel(&self.cancel).and_then(|()| {
                let all: Vec<usize> = (0..chunks.len()).collect();
                let fetched = self.take_chunks(&chunks, &mut slots, &all, Need::Index, None)?;
                drop(slots);
                self.count_stream(labels, &chunks, fetched, start, to, &grid, &counted_ts)
            });
            match parts {
                Ok(parts) => parts.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            }
        });
        Ok(Some(BucketedSamples { series, counted, rest: Box::new(rest) }))
    }

    /// The buckets and the remaining entries in `[start, end)` of one stream's chunks (sorted
    /// by `from`, one per key), `fetched` in the same order (their block index and
    /// statistics: the payloads of the blocks to decode are fetched here).
    #[allow(clippy::too_many_arguments)]
    fn count_stream(
        &self,
        labels: Labels,
        chunks: &[ChunkRef],
        fetched: Vec<prefetch::Fetched>,
        start: i64,
        end: i64,
        grid: &WindowGrid,
        counted_ts: &[i64],
    ) -> Result<Vec<StreamPart>, EngineError> {
        let foreign: Vec<Vec<(i64, i64)>> =
            (0..chunks.len()).map(|i| foreign_ranges(chunks, i)).collect();
        let mut counts = BucketBatch { labels, metadata_sets: Vec::new(), buckets: Vec::new() };
        let mut work: Vec<(usize, Decode)> = Vec::new();
        for (j, (fetched, foreign)) in fetched.into_iter().zip(&foreign).enumerate() {
            // a fetch without a decoder hands out chunks only
            let prefetch::Fetched::Chunk(chunk) = fetched else {
                return Err(source_err("a count got a decoded chunk"));
            };
            let blocks = match chunk.stats_bucket_ns().filter(|&w| grid.aligned_to(w)) {
                Some(width) => {
                    // every edge is a multiple of `edge_unit`, and so is `width`
                    let unit = grid.edge_unit().max(width);
                    let decode_at = DecodeAt { counted_ts, foreign };
                    count_blocks(&chunk, start, end, &decode_at, unit, &mut counts)
                }
                None => chunk.blocks_overlapping(start, end).collect(),
            };
            if !blocks.is_empty() {
                work.push((j, Decode { chunk, blocks }));
            }
        }
        // the payloads of the blocks to decode, for all the stream's chunks at once
        let unfetched = |d: &Decode| d.blocks.iter().any(|&i| !d.chunk.has_payload(i));
        if work.iter().any(|(_, d)| unfetched(d)) {
            let (store, stats) = (&*self.querier.chunks, &*self.stats);
            let fetches = work.iter_mut().filter(|(_, d)| unfetched(d)).map(|(j, d)| {
                let key = chunks[*j].key(&self.tenant);
                async move { fetch_blocks(store, &key, &mut d.chunk, &d.blocks, stats).await }
            });
            self.wait(futures::future::try_join_all(fetches))??;
        }
        let work: Vec<Decode> = work.into_iter().map(|(_, d)| d).collect();
        let mut parts = Vec::new();
        let labels = counts.labels.clone();
        if !counts.buckets.is_empty() {
            parts.push(StreamPart::Buckets(counts));
        }
        let mut entries = self.decode_all(work, start, end)?;
        if !entries.is_empty() {
            entries.sort_dedup();
            parts.push(StreamPart::Entries(skald_model::StreamBatch { labels, entries }));
        }
        Ok(parts)
    }

    /// Decodes the entries in `[start, end)` of every piece of `work`, on scoped threads
    /// when there are several.
    fn decode_all(
        &self,
        work: Vec<Decode>,
        start: i64,
        end: i64,
    ) -> Result<EntryBatch, EngineError> {
        let scan = BlockScan::everything();
        let run = |group: &[Decode]| -> Result<Vec<EntryBatch>, EngineError> {
            let mut reader = BlockReader::new();
            group
                .iter()
                .map(|piece| {
                    check_cancel(&self.cancel)?;
                    piece.decode(start, end, &scan, &mut reader, &self.stats)
                })
                .collect()
        };
        let parts: Vec<EntryBatch> = if work.len() > 1 {
            let workers =
                std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(work.len());
            let per = work.len().div_ceil(workers);
            let results: Vec<Result<Vec<EntryBatch>, EngineError>> = std::thread::scope(|scope| {
                let handles: Vec<_> =
                    work.chunks(per).map(|group| scope.spawn(move || run(group))).collect();
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
            run(&work)?
        };
        Ok(EntryBatch::concat(parts))
    }
}

/// What still has to be decoded: some blocks of a chunk (without usable statistics, holding
/// what the ingesters counted, or reaching into another chunk of the stream), their payloads
/// fetched.
struct Decode {
    chunk: Chunk,
    /// Ascending.
    blocks: Vec<usize>,
}

impl Decode {
    fn decode(
        &self,
        start: i64,
        end: i64,
        scan: &BlockScan,
        reader: &mut BlockReader,
        stats: &StoreStats,
    ) -> Result<EntryBatch, EngineError> {
        let mut out = EntryBatch::new();
        for &i in &self.blocks {
            if let Some(block) = decode_block(&self.chunk, i, scan, reader, stats)? {
                select_block(&block, start, end, scan, &mut out);
            }
        }
        Ok(out)
    }
}

/// The time ranges `[from, through]` of the stream's other chunks that overlap chunk `i`'s:
/// an entry of chunk `i` can be another chunk's too only at a timestamp inside one of them.
fn foreign_ranges(chunks: &[ChunkRef], i: usize) -> Vec<(i64, i64)> {
    let me = &chunks[i];
    chunks
        .iter()
        .enumerate()
        .filter(|&(j, c)| j != i && c.from <= me.through && c.through >= me.from)
        .map(|(_, c)| (c.from, c.through))
        .collect()
}

/// Where a block must be decoded rather than counted: it holds a timestamp the ingesters
/// counted (the engine recognises such entries by hash), or it reaches into another chunk's
/// time range (the two may share entries, which the decoding path keeps once).
struct DecodeAt<'a> {
    counted_ts: &'a [i64],
    foreign: &'a [(i64, i64)],
}

impl DecodeAt<'_> {
    fn must_decode(&self, min_ts: i64, max_ts: i64) -> bool {
        let first_counted = self.counted_ts.partition_point(|&t| t < min_ts);
        self.counted_ts.get(first_counted).is_some_and(|&t| t <= max_ts)
            || self.foreign.iter().any(|&(from, through)| min_ts <= through && max_ts >= from)
    }
}

/// Adds the buckets of `chunk`'s blocks in `[start, end)` that can be counted to `out` (its
/// metadata sets shared by all the stream's blocks), summed into buckets of width `unit` (a
/// multiple of the chunk's width that every window edge is a multiple of, so the engine sums
/// fewer of them), and returns the blocks that must be decoded instead: those without
/// statistics, and those holding a timestamp the ingesters counted (the engine recognises
/// such entries by hash).
fn count_blocks(
    chunk: &Chunk,
    start: i64,
    end: i64,
    decode_at: &DecodeAt<'_>,
    unit: i64,
    out: &mut BucketBatch,
) -> Vec<usize> {
    let mut decode = Vec::new();
    for (i, meta) in chunk.blocks().iter().enumerate() {
        if meta.max_ts < start || meta.min_ts >= end {
            continue;
        }
        let holds_counted = decode_at.must_decode(meta.min_ts, meta.max_ts);
        // a record that fails its checks is decoded instead: the block itself is checked then
        match chunk.block_stats(i) {
            Ok(Some(stats)) if !holds_counted => {
                let sets: Vec<u32> = stats
                    .metadata_sets
                    .into_iter()
                    .map(|set| match out.metadata_sets.iter().position(|s| *s == set) {
                        Some(k) => k as u32,
                        None => {
                            out.metadata_sets.push(set);
                            (out.metadata_sets.len() - 1) as u32
                        }
                    })
                    .collect();
                // windows are aligned to the buckets, so `start - 1` and `end - 1` are bucket
                // edges: a bucket is wholly inside the range or wholly outside; and so is it
                // of the coarser bucket that ends at the next multiple of `unit`
                let mut coarse: Vec<BucketCount> = Vec::new();
                for b in stats.buckets.iter().filter(|b| b.end >= start && b.end < end) {
                    let Some(cend) = round_up(b.end, unit) else {
                        coarse.clear();
                        decode.push(i);
                        break;
                    };
                    if coarse.first().is_some_and(|c| c.end != cend) {
                        out.buckets.append(&mut coarse);
                    }
                    // the chunk checked that the set exists
                    let set = sets.get(b.set as usize).copied().unwrap_or(u32::MAX);
                    match coarse.iter_mut().find(|c| c.set == set) {
                        Some(c) => {
                            c.entries += u64::from(b.entries);
                            c.line_bytes += b.line_bytes;
                        }
                        None => coarse.push(BucketCount {
                            end: cend,
                            set,
                            entries: u64::from(b.entries),
                            line_bytes: b.line_bytes,
                        }),
                    }
                }
                out.buckets.append(&mut coarse);
            }
            _ => decode.push(i),
        }
    }
    decode
}

/// `t` rounded up to a multiple of `unit` (> 0), `None` past the i64 range.
fn round_up(t: i64, unit: i64) -> Option<i64> {
    // i64 arithmetic: this runs per bucket, and 128-bit division showed in profiles
    match t.rem_euclid(unit) {
        0 => Some(t),
        rem => t.checked_add(unit - rem),
    }
}

#[cfg(test)]
mod tests {
    //! The statistics path against the decoding path, over random data and queries.
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::Arc;

    use skald_chunk::ChunkBuilder;
    use skald_chunk_store::{ChunkStore, ObjectChunkStore};
    use skald_common::limits::Limits;
    use skald_index::{IndexStore, MemIndexStore};
    use skald_logql::engine::{
        evaluate, Limits as EngineLimits, PushedSamples, QueryOutput, QueryParams, QueryResult,
        SelectLimit, Source,
    };
    use skald_logql::syntax::ast::{Expr, Grouping, LogSelectorExpr};
    use skald_model::{Direction, Entry, Label, StreamBatch};

    use super::*;
    use crate::{Querier, QuerierConfig};

    const SEC: i64 = 1_000_000_000;
    /// Far in the past, so that no ingester would be asked.
    const BASE: i64 = 1_600_000_000 * SEC;

    use crate::source::tests::Rng;

    /// The decoding path: the same source without `select_bucket_counts`.
    struct Decoding<'a>(&'a StoreSource);

    impl Source for Decoding<'_> {
        fn select(
            &self,
            selector: &LogSelectorExpr,
            start: i64,
            end: i64,
            limit: Option<SelectLimit>,
        ) -> Result<
            Box<dyn Iterator<Item = Result<StreamBatch, EngineError>> + Send + '_>,
            EngineError,
        > {
            self.0.select(selector, start, end, limit)
        }

        fn select_samples(
            &self,
            range: &LogRangeExpr,
            op: RangeOp,
            param: Option<f64>,
            grouping: Option<&Grouping>,
            from: i64,
            to: i64,
        ) -> Result<Option<PushedSamples<'_>>, EngineError> {
            self.0.select_samples(range, op, param, grouping, from, to)
        }
    }

    /// The statistics path, counting the streams answered from buckets.
    struct Counting<'a>(&'a StoreSource, Arc<AtomicUsize>);

    impl Source for Counting<'_> {
        fn select(
            &self,
            selector: &LogSelectorExpr,
            start: i64,
            end: i64,
            limit: Option<SelectLimit>,
        ) -> Result<
            Box<dyn Iterator<Item = Result<StreamBatch, EngineError>> + Send + '_>,
            EngineError,
        > {
            self.0.select(selector, start, end, limit)
        }

        fn select_bucket_counts(
            &self,
            range: &LogRangeExpr,
            op: RangeOp,
            from: i64,
            to: i64,
            grid: &WindowGrid,
        ) -> Result<Option<BucketedSamples<'_>>, EngineError> {
            let Some(b) = self.0.select_bucket_counts(range, op, from, to, grid)? else {
                return Ok(None);
            };
            let n = self.1.clone();
            let rest = b.rest.inspect(move |p| {
                if matches!(p, Ok(StreamPart::Buckets(_))) {
                    n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
            Ok(Some(BucketedSamples { rest: Box::new(rest), ..b }))
        }
    }

    struct Fixture {
        runtime: tokio::runtime::Runtime,
        chunks: Arc<ObjectChunkStore>,
        index: Arc<MemIndexStore>,
    }

    impl Fixture {
        fn new() -> Self {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            Fixture {
                runtime,
                chunks: Arc::new(ObjectChunkStore::in_memory()),
                index: Arc::new(MemIndexStore::new()),
            }
        }

        /// Writes one chunk of `entries` (sorted) for `labels`.
        fn write(&self, labels: &Labels, entries: &[Entry], block_size: usize, version: u8) {
            let mut b = ChunkBuilder::new(block_size).with_format_version(version);
            for e in entries {
                b.append(e).unwrap();
            }
            let enc = b.finish().unwrap();
            self.put(labels, enc);
        }

        fn put(&self, labels: &Labels, enc: skald_chunk::EncodedChunk) {
            let chunk_ref =
                super::super::tests::chunk_ref_of(skald_model::fingerprint(labels), &enc);
            self.runtime.block_on(async {
                self.chunks.put(&chunk_ref.key("t"), enc.bytes.into()).await.unwrap();
                self.index.write_chunks("t", vec![(labels.clone(), chunk_ref)]).await.unwrap();
            });
        }

        fn source(&self) -> StoreSource {
            let querier = Querier::new(
                QuerierConfig::default(),
                Limits::default(),
                self.chunks.clone(),
                self.index.clone(),
                None,
            );
            StoreSource {
                querier: Arc::new(querier),
                tenant: "t".into(),
                handle: self.runtime.handle().clone(),
                cancel: Arc::new(AtomicBool::new(false)),
                chunks_seen: AtomicUsize::new(0),
                stats: Default::default(),
                window: super::super::prefetch_window(Limits::default().max_query_memory),
                shard: None,
            }
        }
    }

    fn run(source: &dyn Source, query: &str, params: &QueryParams) -> QueryOutput {
        let expr = skald_logql::syntax::parse_expr(query).unwrap();
        assert!(matches!(expr, Expr::Sample(_)));
        evaluate(&expr, params, &EngineLimits::default(), source).unwrap()
    }

    fn range_params(start: i64, end: i64, step: i64) -> QueryParams {
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

    fn labels(app: &str) -> Labels {
        Labels::from_vec(vec![Label::new("app", app), Label::new("env", "t")])
    }

    /// Random entries of one stream over ten minutes, sorted: timestamps on whole seconds,
    /// milliseconds or nanoseconds, lines from a small alphabet (equal entries happen),
    /// structured metadata of a few kinds.
    fn random_entries(rng: &mut Rng, n: usize) -> Vec<Entry> {
        let mut out: Vec<Entry> = (0..n)
            .map(|_| {
                let ts = BASE
                    + match rng.below(3) {
                        0 => rng.below(600) as i64 * SEC,
                        1 => rng.below(600_000) as i64 * 1_000_000,
                        _ => rng.below(600 * SEC as u64) as i64,
                    };
                let len = rng.below(6) as usize;
                let line: String = (0..len).map(|_| rng.pick(&['a', 'b', 'é'])).collect();
                // mostly a detected level, as Skald's distributor adds; now and then a
                // trace id of its own (too many of those leave a block without statistics)
                let level =
                    || Label::new("detected_level", ["info", "warn", "error"][ts as usize % 3]);
                let structured_metadata = match rng.below(20) {
                    0..=2 => vec![],
                    3..=15 => vec![level()],
                    16..=18 => vec![level(), Label::new("k", "v")],
                    _ => vec![Label::new("trace_id", format!("{}", rng.below(1 << 20)))],
                };
                Entry { ts, line: line.into(), structured_metadata }
            })
            .collect();
        out.sort_by_key(|e| e.ts);
        out
    }

    /// Writes a stream's entries as chunks the way a cluster may leave them: split at random
    /// points, some chunks written twice (replicas with the same key), some of version 1,
    /// some re-flushed over an overlapping range.
    fn write_stream(fx: &Fixture, rng: &mut Rng, labels: &Labels, entries: &[Entry]) {
        let mut cuts: Vec<usize> =
            (0..rng.below(4)).map(|_| rng.below(entries.len() as u64) as usize).collect();
        cuts.push(0);
        cuts.push(entries.len());
        cuts.sort_unstable();
        cuts.dedup();
        for w in cuts.windows(2) {
            let part = &entries[w[0]..w[1]];
            if part.is_empty() {
                continue;
            }
            let block_size = rng.pick(&[64, 256, 4096]);
            let version = if rng.below(5) == 0 { 1 } else { 2 };
            fx.write(labels, part, block_size, version);
            if rng.below(4) == 0 {
                fx.write(labels, part, block_size, version);
            }
            if rng.below(4) == 0 {
                // a re-flush of part of this chunk and a little more
                let lo = w[0] + rng.below(part.len() as u64) as usize;
                let hi = (w[1] + rng.below(5) as usize).min(entries.len());
                fx.write(labels, &entries[lo..hi], block_size, 2);
            }
        }
    }

    #[test]
    fn statistics_answer_as_decoding_does() {
        let mut rng = Rng(0x5eed_0015_c0de_0004);
        let ops = ["count_over_time", "bytes_over_time", "rate", "bytes_rate"];
        let ranges = ["1s", "5s", "30s", "1m", "2m", "10m"];
        let from_buckets = Arc::new(AtomicUsize::new(0));
        for case in 0..40 {
            let fx = Fixture::new();
            for app in ["a", "b", "c"].iter().take(1 + rng.below(3) as usize) {
                let n = 1 + rng.below(400) as usize;
                let entries = random_entries(&mut rng, n);
                write_stream(&fx, &mut rng, &labels(app), &entries);
            }
            let source = fx.source();
            for _ in 0..12 {
                let op = rng.pick(&ops);
                let range = rng.pick(&ranges);
                let offset = rng.pick(&["", "", " offset 3s", " offset 1m"]);
                let query = match rng.below(3) {
                    0 => format!(r#"{op}({{env="t"}}[{range}]{offset})"#),
                    1 => format!(r#"sum by (app) ({op}({{env="t"}}[{range}]{offset}))"#),
                    _ => format!(r#"sum({op}({{app="a"}}[{range}]{offset}))"#),
                };
                // whole seconds mostly; now and then an edge inside a second (decoded)
                let unit = if rng.below(6) == 0 { 1_000_000 } else { SEC };
                let start = BASE - 60 * SEC + rng.below(700) as i64 * unit;
                let step = rng.pick(&[1, 7, 15, 60, 600]) * SEC;
                let params = if rng.below(5) == 0 {
                    QueryParams { instant: true, ..range_params(start, start, 0) }
                } else {
                    let end = start + rng.below(800) as i64 * SEC;
                    range_params(start, end, step)
                };
                let want = run(&Decoding(&source), &query, &params);
                let got = run(&Counting(&source, from_buckets.clone()), &query, &params);
                assert_eq!(got.result, want.result, "case {case}: {query} {params:?}");
                assert_eq!(
                    got.stats.total_lines_processed, want.stats.total_lines_processed,
                    "case {case}: {query} {params:?}"
                );
            }
        }
        // not a vacuous comparison: most queries read some streams from buckets
        let n = from_buckets.load(std::sync::atomic::Ordering::Relaxed);
        assert!(n > 200, "{n} streams answered from buckets");
    }

    #[test]
    fn statistics_are_read_without_decompressing() {
        let fx = Fixture::new();
        let l = labels("a");
        let entries: Vec<Entry> = (0..2000)
            .map(|i| Entry {
                ts: BASE + i * SEC / 10,
                line: format!("line {i}").into(),
                structured_metadata: vec![],
            })
            .collect();
        let mut b = ChunkBuilder::new(1024);
        for e in &entries {
            b.append(e).unwrap();
        }
        let mut enc = b.finish().unwrap();
        // break every block's payload (its CRC no longer matches): decoding fails, the
        // statistics in the trailer stay readable
        let chunk = Chunk::parse(&enc.bytes).unwrap();
        assert!(chunk.blocks().len() > 10);
        for m in chunk.blocks() {
            enc.bytes[m.offset as usize] ^= 0xff;
        }
        fx.put(&l, enc);
        let source = fx.source();
        let params = range_params(BASE + 60 * SEC, BASE + 240 * SEC, 60 * SEC);
        let q = r#"sum by (app) (count_over_time({env="t"}[1m]))"#;
        let out = run(&source, q, &params);
        let QueryResult::Matrix(m) = out.result else { panic!("not a matrix") };
        let values: Vec<f64> = m[0].samples.iter().map(|s| s.value).collect();
        assert_eq!(values, vec![600.0, 600.0, 600.0, 199.0]);
        // an unaligned window must decode, and finds the broken blocks
        let expr = skald_logql::syntax::parse_expr(q).unwrap();
        let params = range_params(BASE + 60 * SEC + 1, BASE + 180 * SEC, 60 * SEC);
        let err = evaluate(&expr, &params, &EngineLimits::default(), &source).unwrap_err();
        assert!(err.to_string().contains("corrupt chunk"), "{err}");
    }

    #[test]
    fn round_up_to_a_unit() {
        assert_eq!(round_up(60 * SEC, 60 * SEC), Some(60 * SEC));
        assert_eq!(round_up(61 * SEC, 60 * SEC), Some(120 * SEC));
        assert_eq!(round_up(-59 * SEC, 60 * SEC), Some(0));
        assert_eq!(round_up(i64::MAX - 5, 1 << 40), None);
    }

    #[test]
    fn overlapping_chunks_are_found() {
        let c = |from, through| ChunkRef {
            fingerprint: 1,
            from,
            through,
            checksum: 0,
            entries: 1,
            uncompressed_bytes: 0,
            compressed_bytes: 0,
            stats_bytes: 0,
        };
        let chunks = [c(0, 10), c(11, 20), c(20, 30), c(31, 40), c(32, 33), c(50, 60)];
        let foreign: Vec<Vec<(i64, i64)>> = (0..6).map(|i| foreign_ranges(&chunks, i)).collect();
        assert_eq!(
            foreign,
            vec![vec![], vec![(20, 30)], vec![(11, 20)], vec![(32, 33)], vec![(31, 40)], vec![]]
        );
        let nested = [c(0, 100), c(10, 20), c(30, 40), c(101, 102)];
        assert_eq!(foreign_ranges(&nested, 0), vec![(10, 20), (30, 40)]);
        assert_eq!(foreign_ranges(&nested, 3), vec![]);
        // a block decodes where it reaches into another chunk's range or a counted timestamp
        let at = DecodeAt { counted_ts: &[55], foreign: &[(10, 20)] };
        assert!(at.must_decode(0, 10) && at.must_decode(15, 16) && at.must_decode(50, 60));
        assert!(!at.must_decode(0, 9) && !at.must_decode(21, 54));
    }
}
