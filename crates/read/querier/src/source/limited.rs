//! Log queries with a limit read only what they need: a stream's chunks and blocks are read
//! nearest the query's edge first (newest first for `backward`, oldest first for `forward`),
//! and reading stops as soon as `limit` entries the pipeline accepts are certain to lie
//! strictly nearer the edge than anything still unread. A block or chunk that cannot hold such
//! an entry is never decoded. The first chunk group of each stream is fetched ahead (see
//! [`super::prefetch`]); after it, each fetch takes twice as many chunks as the one before
//! (at most [`MAX_FETCH_AHEAD`]), so a read that needs many chunks pays few round trips and
//! fetches at most about twice what it needs.
//!
//! The limit counts across the query's streams too: once the streams read so far hold `limit`
//! accepted entries, a later stream's chunks and blocks strictly farther than the `limit`-th
//! of them are not read (unless stages can give two streams the same labels).
//!
//! What comes out is exactly what reading everything would give ([`StoreSource::load_stream`])
//! minus the entries strictly farther from the edge than the `limit`-th nearest accepted one,
//! which [`Source::select`](skald_logql::engine::Source::select) allows a source to drop (the
//! engine would never return them). The parts are merged in the same order as a full read, so
//! entries with equal timestamps keep their relative order.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use skald_chunk::{BlockMeta, BlockReader, Chunk};
use skald_index::ChunkRef;
use skald_logql::engine::{EngineError, SelectLimit};
use skald_logql::log::{Pipeline, StreamPipeline};
use skald_logql::syntax::ast::Stage;
use skald_model::{EntryBatch, Labels};

use super::decode::{decode_block, select_block, BlockScan};
use super::fetch::Need;
use super::prefetch::{Fetched, Slot};
use super::{check_cancel, source_err, PendingStream, StoreSource};

/// How the source tells which entries count toward the limit: only entries the engine's
/// pipeline accepts may count, each distinct `(ts, line)` once.
enum Counting {
    /// No stages: every entry counts.
    All,
    /// Line filters only: an entry counts when it passes them; one that does not is dropped
    /// at once (acceptance depends on the line alone, so every copy of it agrees).
    Filters(Pipeline),
    /// Parsers, label filters and label changes that keep the line: an entry counts when
    /// every copy of it seen (copies may differ in structured metadata) passes the pipeline;
    /// nothing is dropped before the end.
    Pipeline(Pipeline),
}

/// A limited read of a log query's streams.
pub(super) struct Limited {
    counting: Counting,
    limit: usize,
    backward: bool,
    /// Chunks fetched so far (for tests and statistics).
    pub(super) chunks_fetched: AtomicUsize,
    /// Blocks decoded so far.
    pub(super) blocks_decoded: AtomicUsize,
    /// The nearness keys of the `limit` nearest accepted entries of the streams read so far
    /// (a max-heap: the farthest on top), when the limit may count across streams: then a
    /// stream's entries strictly farther than the top are useless too. `None` when stages
    /// may give two streams the same labels (`drop`, `keep`, `label_format`): their equal
    /// entries could then be merged into one result entry.
    global: Option<Mutex<BinaryHeap<i64>>>,
}

/// Marks a chunk (not yet fetched) among the units to read.
const WHOLE_CHUNK: usize = usize::MAX;

/// Most chunks one stream's limited read fetches at once.
const MAX_FETCH_AHEAD: usize = 32;

impl Limited {
    /// `None` when the limit cannot shorten the read: no limit, or a pipeline that may rewrite
    /// lines (after `line_format` or `decolorize`, distinct entries can end up as one result
    /// entry, so counting source entries could stop too early), or one that does not build
    /// (the engine reports that).
    pub(super) fn new(stages: &[Stage], limit: SelectLimit) -> Option<Limited> {
        if limit.limit == 0 {
            return None;
        }
        let counting = if stages.is_empty() {
            Counting::All
        } else if stages.iter().any(|s| matches!(s, Stage::LineFormat(_) | Stage::Decolorize)) {
            return None;
        } else {
            let pipeline = Pipeline::new(stages).ok()?;
            if stages.iter().all(|s| matches!(s, Stage::LineFilter(_))) {
                Counting::Filters(pipeline)
            } else {
                Counting::Pipeline(pipeline)
            }
        };
        let global = !stages
            .iter()
            .any(|s| matches!(s, Stage::Drop(_) | Stage::Keep(_) | Stage::LabelFormat(_)));
        Some(Limited {
            global: global.then(|| Mutex::new(BinaryHeap::new())),
            counting,
            limit: limit.limit,
            backward: limit.backward,
            chunks_fetched: AtomicUsize::new(0),
            blocks_decoded: AtomicUsize::new(0),
        })
    }

    /// Orders timestamps by nearness to the edge: the nearest has the smallest key.
    fn key(&self, ts: i64) -> i64 {
        if self.backward {
            !ts
        } else {
            ts
        }
    }

    /// The key of the nearest timestamp in `[start, end)` that `[min, max]` can hold.
    fn bound_key(&self, min: i64, max: i64, start: i64, end: i64) -> i64 {
        if self.backward {
            self.key(max.min(end.saturating_sub(1)))
        } else {
            self.key(min.max(start))
        }
    }

    /// The stream's entries in `[start, end)` that contain the literals of `scan`, less those
    /// the limit makes useless.
    pub(super) fn load(
        &self,
        source: &StoreSource,
        labels: &Labels,
        pending: PendingStream,
        mut slots: Vec<Option<Slot>>,
        (start, end): (i64, i64),
        scan: &BlockScan,
    ) -> Result<EntryBatch, EngineError> {
        let mut sp = match &self.counting {
            Counting::All => None,
            Counting::Filters(p) | Counting::Pipeline(p) => Some(p.for_stream(labels)),
        };
        let mut nearest = Nearest::new(self.limit, self.global_bound());
        // (chunk, block) → entries; the ingesters' entries come after every chunk's
        let mut parts: Vec<((usize, usize), EntryBatch)> = Vec::new();
        let recent: EntryBatch = pending.recent.iter().collect();
        let recent = self.count(&mut sp, &mut nearest, recent);
        parts.push(((usize::MAX, 0), recent));

        let chunks = &pending.chunks;
        // Units to read, nearest first: (key of the nearest timestamp it can hold, chunk, block)
        let mut units: BinaryHeap<Reverse<(i64, usize, usize)>> = chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.from < end && c.through >= start)
            .map(|(i, c)| Reverse((self.bound_key(c.from, c.through, start, end), i, WHOLE_CHUNK)))
            .collect();
        // chunks in the order they would be read, for fetching ahead
        let mut order: Vec<(i64, usize)> = units.iter().map(|u| (u.0 .0, u.0 .1)).collect();
        order.sort_unstable();
        // chunks per fetch after the first group: doubles each time, so that a read that
        // needs many chunks pays few round trips and fetches at most twice what it needs
        let mut ahead = 1;
        let mut fetched: Vec<Option<Chunk>> = vec![None; chunks.len()];
        let mut reader = BlockReader::new();
        while let Some(&Reverse((key, ci, bi))) = units.peek() {
            if nearest.bound.is_some_and(|b| self.key(b) < key) {
                break; // `limit` accepted entries lie strictly nearer than anything unread
            }
            units.pop();
            check_cancel(&source.cancel)?;
            if bi == WHOLE_CHUNK {
                if fetched[ci].is_some() {
                    continue;
                }
                let mut group = group(chunks, ci, |j| fetched[j].is_none());
                let unfetched = order.iter().map(|o| o.1).filter(|&j| fetched[j].is_none());
                for j in unfetched {
                    if group.len() >= ahead {
                        break;
                    }
                    if !group.contains(&j) {
                        group.push(j);
                    }
                }
                ahead = (ahead * 2).min(MAX_FETCH_AHEAD);
                // with needles, only the blocks in range their filters may hold
                let needles = scan.needles.as_ref();
                let need = if needles.is_some() { Need::Range(start, end) } else { Need::Whole };
                let got = source.take_chunks(chunks, &mut slots, &group, need, needles)?;
                self.chunks_fetched.fetch_add(got.len(), Ordering::Relaxed);
                for (j, got) in group.into_iter().zip(got) {
                    let Fetched::Chunk(chunk) = got else {
                        return Err(source_err("a limited read got a decoded chunk"));
                    };
                    let in_range = chunk.blocks().iter().enumerate();
                    let in_range = in_range.filter(|(_, m)| m.max_ts >= start && m.min_ts < end);
                    if !scan.chunk_may_match(&chunk) {
                        source.stats.add_skipped_blocks(in_range.count() as u64);
                    } else {
                        for (b, meta) in in_range {
                            units.push(Reverse((self.block_key(meta, start, end), j, b)));
                        }
                    }
                    fetched[j] = Some(chunk);
                }
                continue;
            }
            let Some(chunk) = &fetched[ci] else { continue };
            let Some(block) = decode_block(chunk, bi, scan, &mut reader, &source.stats)? else {
                continue;
            };
            self.blocks_decoded.fetch_add(1, Ordering::Relaxed);
            let mut out = EntryBatch::new();
            select_block(&block, start, end, scan, &mut out);
            let out = self.count(&mut sp, &mut nearest, out);
            parts.push(((ci, bi), out));
        }

        // A full read's order: chunks as listed, blocks in order, the ingesters' entries last.
        parts.sort_by_key(|p| p.0);
        let keep = |ts: i64| nearest.bound.is_none_or(|b| self.key(ts) <= self.key(b));
        let n = parts.iter().map(|p| p.1.len()).sum();
        let bytes = parts.iter().map(|p| p.1.line_bytes()).sum();
        let mut entries = EntryBatch::with_capacity(n, bytes);
        for (_, p) in &parts {
            for e in p.iter().filter(|e| keep(e.ts)) {
                entries.push_ref(e);
            }
        }
        entries.sort_dedup();
        self.add_global(&nearest);
        Ok(entries)
    }

    /// The timestamp of the `limit`-th nearest accepted entry of the streams read so far.
    fn global_bound(&self) -> Option<i64> {
        let heap = self.global.as_ref()?.lock().unwrap_or_else(|e| e.into_inner());
        let key = *heap.peek().filter(|_| heap.len() >= self.limit)?;
        Some(if self.backward { !key } else { key })
    }

    /// Adds a read stream's accepted entries (those nearer than its bound, every copy of
    /// which was read) to the global bound.
    fn add_global(&self, nearest: &Nearest) {
        let Some(global) = &self.global else { return };
        let mut heap = global.lock().unwrap_or_else(|e| e.into_inner());
        for (&(key, _), _) in nearest.seen.iter().filter(|(_, &accepted)| accepted) {
            if nearest.bound.is_some_and(|b| key > self.key(b)) {
                break;
            }
            if heap.len() < self.limit {
                heap.push(key);
            } else if heap.peek().is_some_and(|&top| key < top) {
                heap.pop();
                heap.push(key);
            } else {
                return;
            }
        }
    }

    /// The chunks a limited read of `chunks` fetches first: the one that can hold the entry
    /// nearest the edge, with those overlapping it.
    pub(super) fn first_group(&self, chunks: &[ChunkRef], start: i64, end: i64) -> Vec<usize> {
        let first = chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.from < end && c.through >= start)
            .min_by_key(|&(i, c)| (self.bound_key(c.from, c.through, start, end), i));
        match first {
            Some((ci, _)) => group(chunks, ci, |_| true),
            None => Vec::new(),
        }
    }

    fn block_key(&self, meta: &BlockMeta, start: i64, end: i64) -> i64 {
        self.bound_key(meta.min_ts, meta.max_ts, start, end)
    }

    /// Counts the accepted entries of `batch` and returns what is worth keeping of it.
    fn count(
        &self,
        sp: &mut Option<StreamPipeline<'_>>,
        nearest: &mut Nearest,
        batch: EntryBatch,
    ) -> EntryBatch {
        let out = match (&self.counting, sp) {
            (Counting::Pipeline(_), Some(sp)) => {
                for e in batch.iter() {
                    if !nearest.is_farther(self, e.ts) {
                        let accepted =
                            sp.process_ref(e.ts, e.line, e.structured_metadata).is_some();
                        nearest.add(self, e.ts, e.line, accepted);
                    }
                }
                batch
            }
            (counting, sp) => {
                // Every copy of an entry agrees here, so the bound only moves nearer: what
                // lies beyond it now, or fails the filters, is never needed.
                let mut kept = EntryBatch::with_capacity(batch.len(), batch.line_bytes());
                for e in batch.iter() {
                    if nearest.is_farther(self, e.ts) {
                        continue;
                    }
                    let accepted = match (counting, sp.as_mut()) {
                        (Counting::Filters(_), Some(sp)) => {
                            sp.process_ref(e.ts, e.line, e.structured_metadata).is_some()
                        }
                        _ => true,
                    };
                    if accepted {
                        nearest.add(self, e.ts, e.line, true);
                        kept.push_ref(e);
                    }
                }
                kept
            }
        };
        nearest.refresh(self);
        out
    }
}

/// Chunk `ci` and the chunks overlapping it that `open` admits: their entries interleave,
/// so they are fetched together.
fn group(chunks: &[ChunkRef], ci: usize, open: impl Fn(usize) -> bool) -> Vec<usize> {
    let c = &chunks[ci];
    (0..chunks.len())
        .filter(|&j| j == ci || (open(j) && chunks[j].overlaps(c.from, c.through)))
        .collect()
}

/// The distinct entries seen nearest the edge, enough to know the `limit`-th nearest
/// accepted one. Undercounting is always safe (it only reads and keeps more), so distinct
/// lines that share a hash count once.
struct Nearest {
    limit: usize,
    /// The bound known before this stream was read (from the other streams).
    floor: Option<i64>,
    /// (nearness key, line hash) → whether every copy seen was accepted.
    seen: BTreeMap<(i64, u64), bool>,
    /// The timestamp of the `limit`-th nearest accepted entry, once there are that many, or
    /// the floor when it is nearer.
    bound: Option<i64>,
}

impl Nearest {
    fn new(limit: usize, floor: Option<i64>) -> Self {
        Nearest { limit, floor, seen: BTreeMap::new(), bound: floor }
    }

    /// True when `ts` lies strictly farther than the bound: such an entry cannot count.
    fn is_farther(&self, l: &Limited, ts: i64) -> bool {
        self.bound.is_some_and(|b| l.key(ts) > l.key(b))
    }

    fn add(&mut self, l: &Limited, ts: i64, line: &[u8], accepted: bool) {
        let hash = xxhash_rust::xxh3::xxh3_64(line);
        self.seen.entry((l.key(ts), hash)).and_modify(|a| *a &= accepted).or_insert(accepted);
    }

    /// Recomputes the bound and forgets what lies beyond it.
    fn refresh(&mut self, l: &Limited) {
        let mut accepted = 0usize;
        let mut bound = None;
        for (&(key, _), _) in self.seen.iter().filter(|(_, &a)| a) {
            accepted += 1;
            if accepted >= self.limit {
                bound = Some(key);
                break;
            }
        }
        let bound = match (bound, self.floor.map(|ts| l.key(ts))) {
            (Some(own), Some(floor)) => Some(own.min(floor)),
            (own, floor) => own.or(floor),
        };
        self.bound = bound.map(|key| if l.backward { !key } else { key });
        if let Some(next) = bound.and_then(|key| key.checked_add(1)) {
            self.seen.split_off(&(next, 0));
        }
    }
}
