//! One stream's in-memory state: a raw head block, the open chunk's sealed (compressed)
//! blocks, and closed chunks waiting for flush.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use skald_chunk::{BlockReader, Chunk, ChunkBuilder};
use skald_index::ChunkRef;
use skald_model::{Entry, EntryBatch, EntryRef, Labels};
use skald_proto::chunk_stats::HeldChunk;

use crate::chunk_stats::{entry_stats_bytes, sync_cut_due, utilization, StatsSize};
use crate::error::{IngesterError, Result};
use crate::IngesterConfig;

/// Why an entry was not appended.
#[derive(Debug)]
pub enum AppendError {
    /// Same timestamp and line as an entry already held: dropped silently, as Loki does.
    Duplicate,
    /// Older than the out-of-order window allows.
    TooFarBehind { ts: i64, oldest: i64 },
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::Duplicate => f.write_str("duplicate entry"),
            AppendError::TooFarBehind { ts, oldest } => write!(
                f,
                "entry with timestamp {} ignored, reason: 'entry too far behind, entry timestamp is: {}, oldest acceptable timestamp is: {}'",
                skald_gocompat::time::rfc3339_nano(*ts),
                skald_gocompat::time::rfc3339_nano(*ts),
                skald_gocompat::time::rfc3339_nano(*oldest)
            ),
        }
    }
}

/// How far back in data time from its newest entry a sealed head keeps its entries
/// uncompressed ([`StreamState::append`]). Entries of one stream pushed by concurrent clients
/// arrive out of order by up to the time span of one push body (or a few, with more clients);
/// an entry older than what is already compressed closes the open chunk, leaving chunks that
/// overlap in time, so a head keeps this much of its newest data for such stragglers to join
/// in order. 30 s covers two clients that each push bodies spanning ~12 s of data per stream
/// (the shared benchmark's shape, whose chunks overlapped by up to ~5 s) with margin; for
/// slower streams (the usual case) it holds few entries, and the bytes it holds are capped at
/// half a block (see [`StreamState::seal_head`]).
const SEAL_SLACK_NANOS: i64 = 30_000_000_000;

/// [`entry_stats_bytes`] of an entry held in a batch.
fn ref_stats_bytes(e: EntryRef<'_>) -> u64 {
    e.line.len() as u64 + 8 * e.structured_metadata.len() as u64
}

fn builder_overlaps(b: &ChunkBuilder, start: i64, end: i64) -> bool {
    match (b.min_ts(), b.max_ts()) {
        (Some(min), Some(max)) => min < end && max >= start,
        _ => false,
    }
}

/// A chunk that is complete and waits for (or is in) flush.
pub struct ClosedChunk {
    /// Encoded bytes.
    pub bytes: Bytes,
    /// Its index reference.
    pub chunk_ref: ChunkRef,
    /// Why it was closed, as Loki's `loki_ingester_chunks_flushed_total` `reason` label says
    /// it: `full`, `idle`, `max_age`, `forced`, `synced`, or Skald's `out_of_order` (an entry
    /// older than the compressed part of the open chunk).
    pub reason: &'static str,
}

impl ClosedChunk {
    /// The whole chunk's n-gram filter, read from its end (`None` for a chunk without one).
    pub fn filter(&self) -> Option<skald_chunk::NgramFilter> {
        skald_chunk::Chunk::from_bytes(self.bytes.clone()).ok()?.chunk_filter()
    }
}

/// A stream's entries not yet compressed. They are stored column-wise (one text buffer, the
/// metadata sets interned), so an append copies the entry and frees its allocations at once
/// instead of holding thousands of small allocations until the block is sealed (freeing them
/// then was a tenth of the ingest CPU). `order` lists the entries sorted by timestamp, entries
/// with the same timestamp in arrival order (as Loki's head block keeps them, so that `limit`
/// picks the same lines); as entries mostly arrive in order it is mostly the identity.
#[derive(Debug, Default)]
struct Head {
    entries: EntryBatch,
    order: Vec<u32>,
}

impl Head {
    fn len(&self) -> usize {
        self.order.len()
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The `k`-th entry in (ts, arrival) order.
    fn sorted(&self, k: usize) -> EntryRef<'_> {
        self.entries.get(self.order[k] as usize)
    }

    fn first(&self) -> Option<EntryRef<'_>> {
        (!self.is_empty()).then(|| self.sorted(0))
    }

    fn last(&self) -> Option<EntryRef<'_>> {
        self.len().checked_sub(1).map(|k| self.sorted(k))
    }

    /// Inserts a copy of `e` after every held entry with its timestamp or an older one. False,
    /// and nothing inserted, when an entry with the same timestamp and line is already held.
    fn insert(&mut self, e: &Entry) -> bool {
        let n = self.len();
        let ts = self.entries.timestamps();
        // Entries mostly arrive in order: check the newest first.
        let pos = match self.order.last() {
            None => 0,
            Some(&h) if ts[h as usize] < e.ts => n,
            Some(_) => self.order.partition_point(|&i| ts[i as usize] <= e.ts),
        };
        // the entries with the same timestamp sit just before `pos` (usually there are none)
        let mut j = pos;
        while j > 0 && ts[self.order[j - 1] as usize] == e.ts {
            j -= 1;
            if self.entries.get(self.order[j] as usize).line == e.line.as_bytes() {
                return false;
            }
        }
        let index = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        self.entries.push(e.ts, &e.line, &e.structured_metadata);
        self.order.insert(pos, index);
        true
    }

    /// The entries in (ts, arrival) order.
    fn iter(&self) -> impl Iterator<Item = EntryRef<'_>> + '_ {
        (0..self.len()).map(|k| self.sorted(k))
    }

    /// Empties the head, keeping its buffers for the next block.
    fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    /// Drops the first `k` entries in (ts, arrival) order, keeping the rest in that order.
    fn drop_first(&mut self, k: usize) {
        if k == 0 {
            return;
        }
        if k >= self.len() {
            self.clear();
            return;
        }
        // In place, keeping the buffers (copying the kept entries into a fresh head on every
        // seal, whose buffers then regrew, showed in ingest profiles): the kept entries stay
        // in arrival order, `order` is renumbered. `new_index` of a kept entry is first 0, then its rank
        // among the kept; `u32::MAX` for a dropped one.
        let mut new_index = vec![u32::MAX; self.entries.len()];
        for &i in &self.order[k..] {
            new_index[i as usize] = 0;
        }
        for (rank, slot) in new_index.iter_mut().filter(|slot| **slot == 0).enumerate() {
            *slot = u32::try_from(rank).unwrap_or(u32::MAX);
        }
        self.entries.retain_indices(|i| new_index[i] != u32::MAX);
        self.order.drain(..k);
        for i in &mut self.order {
            *i = new_index[*i as usize];
        }
    }
}

/// A stream's data as one query reads it ([`StreamState::snapshot`]), outside the tenant
/// lock: entries are decoded one block at a time and handed out borrowed, so a query
/// materialises only what it keeps.
pub struct StreamSnapshot {
    pub labels: Labels,
    chunks: Vec<Bytes>,
    head: EntryBatch,
}

impl StreamSnapshot {
    /// Calls `f` with every entry in `[start, end)`: each chunk's in time order, the head's
    /// last (chunks may overlap in time), except the entries of the chunks and blocks whose
    /// n-gram filter `may` rejects (never decompressed). Stops at `f`'s first error.
    pub fn for_each(
        &self,
        start: i64,
        end: i64,
        may: impl Fn(&skald_chunk::NgramFilter) -> bool,
        mut f: impl FnMut(EntryRef<'_>) -> Result<()>,
    ) -> Result<()> {
        let corrupt = |cause| IngesterError::CorruptChunk { cause };
        let mut reader = BlockReader::new();
        for bytes in &self.chunks {
            let chunk = Chunk::from_bytes(bytes.clone()).map_err(corrupt)?;
            if chunk.chunk_filter().is_some_and(|cf| !may(&cf)) {
                continue;
            }
            let blocks: Vec<usize> = chunk
                .blocks_overlapping(start, end)
                .filter(|&i| chunk.block_filter(i).is_none_or(|bf| may(&bf)))
                .collect();
            for i in blocks {
                let raw = reader.raw_block(&chunk, i).map_err(corrupt)?;
                let block = chunk.decode_raw_block(i, raw).map_err(corrupt)?;
                for k in 0..block.len() {
                    let ts = block.ts(k);
                    if ts >= start && ts < end {
                        f(EntryRef {
                            ts,
                            line: block.line(k),
                            structured_metadata: block.structured_metadata_slice(k),
                            metadata_id: 0,
                        })?;
                    }
                }
            }
        }
        for e in self.head.iter() {
            f(e)?;
        }
        Ok(())
    }
}

pub struct StreamState {
    pub labels: Labels,
    pub(crate) fp: u64,
    /// Entries not yet compressed.
    head: Head,
    /// The open chunk's compressed blocks (entries older than `head`).
    builder: Option<ChunkBuilder>,
    builder_max_ts: i64,
    opened_at: Option<Instant>,
    last_append: Instant,
    /// Highest timestamp ever accepted (drives the out-of-order window).
    max_ts: i64,
    closed: Vec<Arc<ClosedChunk>>,
    /// Loki's fingerprint of the labels: offsets this stream's synchronised cuts.
    sync_offset: u64,
    /// Size of the open chunk (head included) as Loki counts it.
    open_size: StatsSize,
    /// The head's share of it, without the structured-metadata strings.
    head_stats_bytes: u64,
    /// Chunks opened since the ingester last took this count (`loki_ingester_chunks_created_total`).
    pub(crate) chunks_opened: u64,
}

impl StreamState {
    pub fn new(labels: Labels, _config: &IngesterConfig) -> Self {
        let fp = skald_model::fingerprint(&labels);
        let sync_offset = labels.prometheus_hash();
        StreamState {
            labels,
            fp,
            head: Head::default(),
            builder: None,
            builder_max_ts: i64::MIN,
            opened_at: None,
            last_append: Instant::now(),
            max_ts: i64::MIN,
            closed: Vec::new(),
            sync_offset,
            open_size: StatsSize::default(),
            head_stats_bytes: 0,
            chunks_opened: 0,
        }
    }

    fn has_open(&self) -> bool {
        self.builder.is_some() || !self.head.is_empty()
    }

    /// How full the open chunk is, as Loki measures it for synchronised cuts.
    fn open_utilization(&self, config: &IngesterConfig) -> f64 {
        let cut = self.builder.as_ref().map_or(0, ChunkBuilder::cut_compressed_bytes);
        utilization(cut, self.head_stats_bytes, &self.open_size, config)
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.builder.is_none() && self.closed.is_empty()
    }

    pub fn chunk_count(&self) -> usize {
        self.closed.len() + usize::from(self.builder.is_some() || !self.head.is_empty())
    }

    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        let open = self.head.entries.timestamps().iter().any(|&ts| ts >= start && ts < end)
            || self.builder.as_ref().is_some_and(|b| builder_overlaps(b, start, end));
        open || self.closed.iter().any(|c| c.chunk_ref.from < end && c.chunk_ref.through >= start)
    }

    /// Appends an entry received at `now`.
    pub fn append(
        &mut self,
        e: Entry,
        now: Instant,
        config: &IngesterConfig,
    ) -> Result<(), AppendError> {
        let window = (config.max_chunk_age.as_nanos() / 2) as i64;
        if self.max_ts != i64::MIN {
            let oldest = self.max_ts.saturating_sub(window);
            if e.ts < oldest {
                return Err(AppendError::TooFarBehind { ts: e.ts, oldest });
            }
        }
        // Loki's synchronised cut: the entry crosses the stream's sync boundary.
        let newest = (self.max_ts != i64::MIN).then_some(self.max_ts);
        if self.has_open()
            && sync_cut_due(e.ts, newest, self.sync_offset, config, || {
                self.open_utilization(config)
            })
        {
            self.close_open_chunk(config, "synced");
        }
        // An entry older than what is already compressed cannot join the open chunk in
        // order: close the open chunk and start a new one (chunks may overlap in time).
        if self.builder.is_some() && e.ts < self.builder_max_ts {
            self.close_open_chunk(config, "out_of_order");
        }
        if !self.head.insert(&e) {
            return Err(AppendError::Duplicate);
        }
        self.head_stats_bytes += entry_stats_bytes(&e);
        self.open_size.add(&e);
        self.max_ts = self.max_ts.max(e.ts);
        self.last_append = now;
        if self.opened_at.is_none() {
            self.opened_at = Some(self.last_append);
            self.chunks_opened += 1;
        }
        // The head becomes a block when it reaches `chunk_block_size` as Loki measures it
        // (lines and structured-metadata references), so blocks, and the fill that decides
        // synchronised cuts, follow Loki's. Its newest entries stay in the head (see
        // `seal_head`) so that entries arriving slightly out of order still join this chunk.
        if self.head_stats_bytes >= config.chunk_block_size as u64 {
            self.seal_head(config, true);
            let full = self
                .builder
                .as_ref()
                .is_some_and(|b| b.compressed_estimate() >= config.chunk_target_size);
            if full {
                self.close_open_chunk(config, "full");
            }
        }
        Ok(())
    }

    /// How many of the head's oldest entries (in order) a seal that keeps the recent ones
    /// compresses: those older than [`SEAL_SLACK_NANOS`] before the head's newest entry. When
    /// the entries it would keep make half a block or more (a fast stream), all of them: so a
    /// seal of a full head (one block) compresses at least half a block, and a head still
    /// holds at most about one block (it is sealed as soon as it reaches one).
    ///
    /// Returns that count and the [`ref_stats_bytes`] of the entries it leaves in the head.
    fn sealed_prefix(&self, config: &IngesterConfig) -> (usize, u64) {
        let head = &self.head;
        let n = head.len();
        let Some(&newest) = head.order.last() else { return (0, 0) };
        let ts = head.entries.timestamps();
        let cutoff = ts[newest as usize].saturating_sub(SEAL_SLACK_NANOS);
        let k = head.order.partition_point(|&i| ts[i as usize] < cutoff);
        // the kept entries' size, newest first, only as far as the answer needs
        let mut kept = 0u64;
        for j in (k..n).rev() {
            kept += ref_stats_bytes(head.sorted(j));
            if kept.saturating_mul(2) >= config.chunk_block_size as u64 {
                return (n, 0);
            }
        }
        (k, kept)
    }

    /// Compresses the head block into the open chunk: all of it, or with `keep_recent` only
    /// its entries older than the slack ([`Self::sealed_prefix`]), the rest staying in the
    /// head (and in its `head_stats_bytes`). Closing a chunk seals everything.
    fn seal_head(&mut self, config: &IngesterConfig, keep_recent: bool) {
        let (sealed, kept_bytes) =
            if keep_recent { self.sealed_prefix(config) } else { (self.head.len(), 0) };
        if sealed == 0 {
            return;
        }
        // The head decides where blocks end; the builder's own limit (on its encoding, which
        // also counts timestamps) is only a backstop.
        let builder = self
            .builder
            .get_or_insert_with(|| ChunkBuilder::new(config.chunk_block_size.saturating_mul(2)));
        let (head, labels) = (&self.head, &self.labels);
        let sealed_order = &head.order[..sealed];
        // The head is sorted and never older than the builder's newest entry, and the
        // distributor caps line sizes far below a block's limit, so this cannot fail on
        // valid input; log it if it ever does.
        builder.append_batch(&head.entries, sealed_order, |error| {
            tracing::error!(%error, labels = %labels, "entry could not be added to its chunk");
        });
        if let Err(error) = builder.cut_block() {
            tracing::error!(%error, labels = %self.labels, "failed to compress a block");
        }
        // sorted: the last sealed entry is the newest
        self.builder_max_ts = self.builder_max_ts.max(head.sorted(sealed - 1).ts);
        self.head.drop_first(sealed);
        self.head_stats_bytes = kept_bytes;
        debug_assert_eq!(self.head_stats_bytes, self.head.iter().map(ref_stats_bytes).sum::<u64>());
    }

    fn close_open_chunk(&mut self, config: &IngesterConfig, reason: &'static str) {
        self.seal_head(config, false);
        // A closed chunk releases the head's buffers: an idle stream keeps none.
        self.head = Head::default();
        let stats_bytes = std::mem::take(&mut self.open_size).total();
        let Some(builder) = self.builder.take() else { return };
        self.builder_max_ts = i64::MIN;
        self.opened_at = None;
        match builder.finish() {
            Ok(encoded) => {
                let chunk_ref = ChunkRef::of_encoded(self.fp, &encoded, stats_bytes);
                self.closed.push(Arc::new(ClosedChunk {
                    bytes: Bytes::from(encoded.bytes),
                    chunk_ref,
                    reason,
                }));
            }
            Err(error) => {
                // Encoding in memory cannot fail on valid entries; log loudly if it ever does.
                tracing::error!(%error, labels = %self.labels, "failed to encode chunk");
            }
        }
    }

    /// Closes the open chunk when it is idle, too old, or `force`.
    pub fn cut_if_due(&mut self, now: Instant, config: &IngesterConfig, force: bool) {
        let has_open = self.builder.is_some() || !self.head.is_empty();
        if !has_open {
            return;
        }
        let idle = now.duration_since(self.last_append) >= config.chunk_idle_period;
        let old = self.opened_at.is_some_and(|o| now.duration_since(o) >= config.max_chunk_age);
        let reason = if force {
            "forced"
        } else if idle {
            "idle"
        } else if old {
            "max_age"
        } else {
            return;
        };
        self.close_open_chunk(config, reason);
    }

    /// The chunks held (closed ones waiting for flush, and the open one) that overlap the
    /// closed interval `[start, end]`, as the index will describe them.
    pub fn held_chunks(&self, start: i64, end: i64) -> Vec<HeldChunk> {
        let mut out: Vec<HeldChunk> = self
            .closed
            .iter()
            .map(|c| &c.chunk_ref)
            .filter(|c| c.from <= end && c.through >= start)
            .map(|c| HeldChunk {
                from: c.from,
                through: c.through,
                entries: c.entries,
                bytes: c.stats_bytes,
                checksum: c.checksum,
            })
            .collect();
        let builder = self.builder.as_ref();
        let from = builder
            .and_then(ChunkBuilder::min_ts)
            .into_iter()
            .chain(self.head.first().map(|e| e.ts))
            .min();
        let through = builder
            .and_then(ChunkBuilder::max_ts)
            .into_iter()
            .chain(self.head.last().map(|e| e.ts))
            .max();
        if let (Some(from), Some(through)) = (from, through) {
            if from <= end && through >= start {
                let entries = builder.map_or(0, ChunkBuilder::entries) as usize + self.head.len();
                out.push(HeldChunk {
                    from,
                    through,
                    entries: u32::try_from(entries).unwrap_or(u32::MAX),
                    bytes: self.open_size.total(),
                    checksum: 0,
                });
            }
        }
        out
    }

    pub fn closed_chunks(&self) -> Vec<Arc<ClosedChunk>> {
        self.closed.clone()
    }

    /// Closed chunks not yet flushed.
    pub fn closed_count(&self) -> usize {
        self.closed.len()
    }

    /// Bytes of the closed chunks not yet flushed.
    pub fn closed_bytes(&self) -> usize {
        self.closed.iter().map(|c| c.bytes.len()).sum()
    }

    pub fn remove_flushed(&mut self, chunk: &Arc<ClosedChunk>) {
        self.closed.retain(|c| !Arc::ptr_eq(c, chunk));
    }

    /// What a query reads of this stream in `[start, end)`, cheap to take under the tenant
    /// lock: the overlapping closed chunks (shared, not copied), the open chunk's compressed
    /// blocks, and a copy of the head's entries in range (at most about one block). `None` when
    /// nothing overlaps.
    pub fn snapshot(&self, start: i64, end: i64) -> Result<Option<StreamSnapshot>> {
        let mut chunks: Vec<Bytes> = self
            .closed
            .iter()
            .filter(|c| c.chunk_ref.from < end && c.chunk_ref.through >= start)
            .map(|c| c.bytes.clone())
            .collect();
        if let Some(b) = &self.builder {
            if builder_overlaps(b, start, end) {
                let encoded = b.snapshot().map_err(|cause| IngesterError::EncodeChunk { cause })?;
                chunks.push(Bytes::from(encoded.bytes));
            }
        }
        let mut head = EntryBatch::new();
        for e in self.head.iter().filter(|e| e.ts >= start && e.ts < end) {
            head.push_ref(e);
        }
        if chunks.is_empty() && head.is_empty() {
            return Ok(None);
        }
        Ok(Some(StreamSnapshot { labels: self.labels.clone(), chunks, head }))
    }

    /// Every held entry in `[start, end)`, sorted by timestamp.
    pub fn entries_in_range(&self, start: i64, end: i64) -> Result<Vec<Entry>> {
        let mut out: Vec<Entry> = Vec::new();
        let corrupt = |cause| IngesterError::CorruptChunk { cause };
        let mut decode = |bytes: &[u8]| -> Result<()> {
            let chunk = Chunk::parse(bytes).map_err(corrupt)?;
            for e in chunk.iter_entries(start, end) {
                out.push(e.map_err(corrupt)?);
            }
            Ok(())
        };
        for c in &self.closed {
            if c.chunk_ref.from < end && c.chunk_ref.through >= start {
                decode(&c.bytes)?;
            }
        }
        if let Some(b) = &self.builder {
            if builder_overlaps(b, start, end) {
                let encoded = b.snapshot().map_err(|cause| IngesterError::EncodeChunk { cause })?;
                decode(&encoded.bytes)?;
            }
        }
        out.extend(self.head.iter().filter(|e| e.ts >= start && e.ts < end).map(|e| e.to_entry()));
        out.sort_by_key(|e| e.ts);
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
