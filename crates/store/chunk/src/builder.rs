//! [`ChunkBuilder`]: appends sorted entries, cuts compressed blocks, writes the trailer.

use skald_model::{Entry, EntryBatch, EntryRef, Label};
use skald_needle::ChunkFilterBuilder;

use crate::block::{metadata_pairs, HeadBlock};
use crate::error::{Error, Result};
use crate::format::{
    BlockMeta, Codec, DEFAULT_BLOCK_SIZE, DEFAULT_ZSTD_LEVEL, FORMAT_VERSION, FORMAT_VERSION_V1,
    FORMAT_VERSION_V2, HEADER_LEN, MAGIC, MAX_BLOCK_RAW_LEN,
};
use crate::stats::{put_record, StatsHead, DEFAULT_STATS_BUCKET_NS};
use crate::varint::put_uvarint;

/// The raw size of a chunk the filters are sized for, in blocks like its first: 16 blocks of
/// 256 KiB make a chunk filter of 16 KiB before folding (`skald_needle`'s FILTER.md).
pub(crate) const FILTER_CHUNK_BLOCKS: usize = 16;

/// Ratio assumed for the head block by [`ChunkBuilder::compressed_estimate`] before any block
/// has been cut (zstd level 1 on typical log lines does better than this).
const ASSUMED_RATIO: usize = 4;

/// A finished chunk, ready to be written to object storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedChunk {
    /// The chunk's bytes.
    pub bytes: Vec<u8>,
    /// Timestamp of the first entry, ns.
    pub from: i64,
    /// Timestamp of the last entry, ns (inclusive).
    pub through: i64,
    /// Number of entries.
    pub entries: u32,
    /// Sum of the blocks' raw (decompressed) lengths.
    pub uncompressed_bytes: u64,
    /// CRC32C of `bytes`; part of the chunk's object-store key.
    pub checksum: u32,
}

/// Builds one chunk from entries appended in timestamp order.
///
/// Entries must arrive sorted by timestamp, ascending; equal timestamps are kept in append
/// order. An older entry is refused with [`Error::OutOfOrder`]: the ingester orders its head
/// data before cutting a chunk. The output is a pure function of the entries, block size, codec
/// and level, so replicas that cut the same entries produce byte-identical chunks.
#[derive(Debug, Clone)]
pub struct ChunkBuilder {
    block_size: usize,
    codec: Codec,
    level: i32,
    head: HeadBlock,
    blocks: Vec<BlockMeta>,
    /// The chunk's header.
    header: [u8; HEADER_LEN],
    /// Each cut block's compressed bytes, in its own exact-size allocation. One growing
    /// buffer per open chunk doubled and copied its way up to a megabyte, and with a hundred
    /// streams doing that the freed smaller copies left the allocator holding about as much
    /// again as the chunks themselves; [`ChunkBuilder::finish`] joins the blocks once.
    block_data: Vec<Box<[u8]>>,
    /// Header plus the cut blocks' bytes: the offset of the next block.
    data_len: usize,
    entries: u32,
    cut_raw_bytes: u64,
    min_ts: Option<i64>,
    max_ts: i64,
    /// Format version written (2, or 1 for readers that predate statistics).
    version: u8,
    /// Width of the statistics buckets, ns.
    stats_bucket_ns: i64,
    /// Statistics of the open block.
    stats_head: StatsHead,
    /// The statistics records of the cut blocks, back to back (the trailer's stats section).
    stats: Vec<u8>,
    /// CRC32C of each line appended at timestamp `max_ts`, sorted: a second entry with the
    /// same timestamp and line is a duplicate that readers keep once, which statistics
    /// (counting both) would not. Computed lazily: while only one entry has that timestamp
    /// (the usual case) its CRC is not needed, and `pending_line` holds that line's length
    /// instead (it is the last line of the open block, or its CRC was taken at the cut).
    same_ts_lines: Vec<u32>,
    /// Length of the open block's last line when it is the only entry at `max_ts` so far and
    /// its CRC has not been computed.
    pending_line: Option<usize>,
    /// False once a possible duplicate was appended: the chunk is then written without
    /// statistics, and queries decode it.
    stats_usable: bool,
    /// The chunk's n-gram filter so far (version 3), made at the first cut and sized by that
    /// block's raw length (a block filter at 1/32 bit per byte of it, the chunk's for 16
    /// such blocks): a builder that never cut a block holds none (an ingester keeps many
    /// quiet streams open).
    filter: Option<ChunkFilterBuilder>,
    /// The cut blocks' filter records, back to back (the trailer's filter section).
    block_filters: Vec<u8>,
}

impl Default for ChunkBuilder {
    fn default() -> Self {
        ChunkBuilder::new(DEFAULT_BLOCK_SIZE)
    }
}

impl ChunkBuilder {
    /// Creates a zstd (level 1) builder that cuts a block once its raw size reaches
    /// `block_size` bytes. The size is clamped to `1..=MAX_BLOCK_RAW_LEN`.
    pub fn new(block_size: usize) -> Self {
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&MAGIC);
        header[4] = FORMAT_VERSION;
        header[5] = Codec::Zstd.to_byte();
        ChunkBuilder {
            block_size: block_size.clamp(1, MAX_BLOCK_RAW_LEN),
            codec: Codec::Zstd,
            level: DEFAULT_ZSTD_LEVEL,
            head: HeadBlock::default(),
            blocks: Vec::new(),
            header,
            block_data: Vec::new(),
            data_len: HEADER_LEN,
            entries: 0,
            cut_raw_bytes: 0,
            min_ts: None,
            max_ts: i64::MIN,
            version: FORMAT_VERSION,
            stats_bucket_ns: DEFAULT_STATS_BUCKET_NS,
            stats_head: StatsHead::new(),
            stats: Vec::new(),
            same_ts_lines: Vec::new(),
            pending_line: None,
            stats_usable: true,
            filter: None,
            block_filters: Vec::new(),
        }
    }

    /// Writes format version 1 (no statistics) or 2 (no filters), which older readers can
    /// read, e.g. while a cluster is upgraded. Any other value keeps the current version.
    /// Call before the first append; later calls are ignored.
    pub fn with_format_version(mut self, version: u8) -> Self {
        if self.entries == 0 {
            self.version = match version {
                FORMAT_VERSION_V1 | FORMAT_VERSION_V2 => version,
                _ => FORMAT_VERSION,
            };
            self.header[4] = self.version;
        }
        self
    }

    /// Sets the width of the statistics buckets in ns (default one second; values below
    /// 1 ns are raised to 1). Call before the first append; later calls are ignored.
    pub fn with_stats_bucket_ns(mut self, width: i64) -> Self {
        if self.entries == 0 {
            self.stats_bucket_ns = width.max(1);
        }
        self
    }

    /// Sets the codec. Call before the first append; later calls are ignored.
    pub fn with_codec(mut self, codec: Codec) -> Self {
        if self.entries == 0 {
            self.codec = codec;
            self.header[5] = codec.to_byte();
        }
        self
    }

    /// Sets the zstd level (clamped to `1..=19`; 1 to 3 are the fast levels meant for
    /// ingestion). Call before the first append.
    pub fn with_zstd_level(mut self, level: i32) -> Self {
        self.level = level.clamp(1, 19);
        self
    }

    /// Appends one entry, cutting a block when the open one reaches the block size.
    ///
    /// Fails without changing the builder when the entry is older than the previous one,
    /// when it alone exceeds [`MAX_BLOCK_RAW_LEN`], or when the chunk is full.
    pub fn append(&mut self, entry: &Entry) -> Result<()> {
        self.append_parts(entry.ts, &entry.line, &entry.structured_metadata)
    }

    /// [`ChunkBuilder::append`] for a borrowed entry, such as one of an
    /// [`skald_model::EntryBatch`].
    pub fn append_ref(&mut self, entry: EntryRef<'_>) -> Result<()> {
        self.append_parts(entry.ts, entry.line, entry.structured_metadata)
    }

    /// Appends the entries of `batch` at `indices`, in that order, as
    /// [`ChunkBuilder::append_ref`] would one by one; an entry that fails is passed to
    /// `on_error` and skipped. Faster than single appends: the statistics look each of the
    /// batch's metadata sets up once, by its [`EntryRef::metadata_id`], rather than comparing
    /// every entry's labels.
    pub fn append_batch(
        &mut self,
        batch: &EntryBatch,
        indices: &[u32],
        mut on_error: impl FnMut(Error),
    ) {
        // ids name sets of this batch only
        self.stats_head.forget_ids();
        for &i in indices {
            let e = batch.get(i as usize);
            let id = Some(e.metadata_id);
            if let Err(error) = self.append_inner(e.ts, e.line, e.structured_metadata, id) {
                on_error(error);
            }
        }
        self.stats_head.forget_ids();
    }

    fn append_parts(&mut self, ts: i64, line: &[u8], structured_metadata: &[Label]) -> Result<()> {
        self.append_inner(ts, line, structured_metadata, None)
    }

    /// Appends one entry; `metadata_id`, when given, is the id of `structured_metadata` in the
    /// batch the current [`ChunkBuilder::append_batch`] reads.
    fn append_inner(
        &mut self,
        ts: i64,
        line: &[u8],
        structured_metadata: &[Label],
        metadata_id: Option<u32>,
    ) -> Result<()> {
        if self.min_ts.is_some() && ts < self.max_ts {
            return Err(Error::OutOfOrder { ts, last: self.max_ts });
        }
        let size = HeadBlock::entry_raw_len(line, structured_metadata);
        if size > MAX_BLOCK_RAW_LEN {
            return Err(Error::EntryTooLarge { size, max: MAX_BLOCK_RAW_LEN });
        }
        if self.entries == u32::MAX {
            return Err(Error::TooManyEntries);
        }
        if !self.head.is_empty() && self.head.raw_len() + size > MAX_BLOCK_RAW_LEN {
            self.cut_block()?;
        }
        if self.version != FORMAT_VERSION_V1 {
            self.track_stats(ts, line, structured_metadata, metadata_id);
        }
        self.head.push(ts, line, structured_metadata);
        self.entries += 1;
        self.min_ts.get_or_insert(ts);
        self.max_ts = ts;
        if self.head.raw_len() >= self.block_size {
            self.cut_block()?;
        }
        Ok(())
    }

    /// Counts the entry into the open block's statistics and watches for duplicates.
    /// Called before the entry is pushed into the open block.
    fn track_stats(
        &mut self,
        ts: i64,
        line: &[u8],
        structured_metadata: &[Label],
        metadata_id: Option<u32>,
    ) {
        if self.min_ts.is_none() || ts != self.max_ts {
            // a new timestamp: its line's CRC is only needed if another entry joins it
            self.same_ts_lines.clear();
            self.pending_line = Some(line.len());
        } else if self.stats_usable {
            self.settle_pending_line();
            let crc = crc32c::crc32c(line);
            match self.same_ts_lines.binary_search(&crc) {
                // the same line at the same timestamp, or a CRC collision: either way the
                // statistics could count an entry readers keep once
                Ok(_) => self.stats_usable = false,
                Err(pos) => self.same_ts_lines.insert(pos, crc),
            }
        }
        self.stats_head.push(
            ts,
            line.len(),
            structured_metadata,
            metadata_id,
            self.stats_bucket_ns,
        );
    }

    /// Computes the CRC of the line `pending_line` stands for (the open block's last line)
    /// into `same_ts_lines`, which then holds that one CRC.
    fn settle_pending_line(&mut self) {
        if let Some(len) = self.pending_line.take() {
            self.same_ts_lines.clear();
            self.same_ts_lines.push(crc32c::crc32c(self.head.last_line(len)));
        }
    }

    /// Compresses the open block and appends it to the chunk. Does nothing when it is empty.
    pub fn cut_block(&mut self) -> Result<()> {
        if self.head.is_empty() {
            return Ok(());
        }
        // the pending line leaves the open block now
        self.settle_pending_line();
        let (entries, min_ts, max_ts) = (self.head.entries, self.head.min_ts, self.head.max_ts);
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let (raw, compressed) = &mut *scratch;
            let lens = self.head.take_raw_into(raw);
            if self.version >= 3 {
                let lines_at = lens[0] + lens[1];
                let lines = raw.get(lines_at..lines_at + lens[2]).unwrap_or_default();
                let metadata = raw.get(lines_at + lens[2]..).unwrap_or_default();
                // sized by the first block (an ingester cuts its blocks itself, well under
                // the builder's own limit, which is only its backstop)
                let target = raw.len().clamp(1, self.block_size);
                let filter = self.filter.get_or_insert_with(|| {
                    ChunkFilterBuilder::new(target, target * FILTER_CHUNK_BLOCKS)
                });
                // the statistics have the block's distinct metadata sets already (the
                // column is read only when they gave up: too many sets)
                let f = match self.stats_head.metadata_sets() {
                    Some(sets) => filter.add_block_with_labels(
                        lines,
                        sets.iter().flatten().map(|l| (l.name.as_str(), l.value.as_str())),
                    ),
                    None => filter.add_block_with_labels(lines, metadata_pairs(metadata)),
                };
                put_filter(&mut self.block_filters, &f);
            }
            let payload: &[u8] = match self.codec {
                Codec::Zstd => {
                    compress_into(raw, self.level, compressed).map_err(Error::Compress)?;
                    compressed
                }
                Codec::None => raw,
            };
            let meta = BlockMeta {
                min_ts,
                max_ts,
                entries,
                offset: self.data_len as u64,
                compressed_len: payload.len() as u32,
                raw_len: raw.len() as u32,
                crc32c: crc32c::crc32c(payload),
            };
            self.block_data.push(Box::from(payload));
            self.data_len += payload.len();
            self.blocks.push(meta);
            if self.version != FORMAT_VERSION_V1 {
                match self.stats_head.take_record() {
                    None => self.stats.push(0),
                    Some(rec) => {
                        // zstd at the blocks' level when that is smaller (rows repeat a lot)
                        let packed = self.codec == Codec::Zstd
                            && compress_into(&rec, self.level, compressed).is_ok();
                        put_record(&mut self.stats, &rec, packed.then_some(&compressed[..]));
                    }
                }
            }
            self.cut_raw_bytes += raw.len() as u64;
            // Keep the scratch for typical blocks only: one rare huge block should not pin
            // tens of MB per thread.
            if raw.capacity() > SCRATCH_KEEP {
                *raw = Vec::new();
            }
            if compressed.capacity() > SCRATCH_KEEP {
                *compressed = Vec::new();
            }
            Ok(())
        })
    }

    /// True while the builder holds no filter (no block cut yet, or an older version).
    #[cfg(test)]
    pub(crate) fn filter_is_none(&self) -> bool {
        self.filter.is_none()
    }

    /// Number of entries appended.
    pub fn entries(&self) -> u32 {
        self.entries
    }

    /// True when nothing has been appended.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Timestamp of the first entry, if any.
    pub fn min_ts(&self) -> Option<i64> {
        self.min_ts
    }

    /// Timestamp of the last entry, if any.
    pub fn max_ts(&self) -> Option<i64> {
        self.min_ts.map(|_| self.max_ts)
    }

    /// Raw (uncompressed) size of all blocks so far, the open one included. This is the
    /// number [`EncodedChunk::uncompressed_bytes`] will report.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.cut_raw_bytes + self.head.raw_len() as u64
    }

    /// Compressed size of the blocks cut so far (the open block not included).
    pub fn cut_compressed_bytes(&self) -> u64 {
        (self.data_len - HEADER_LEN) as u64
    }

    /// Number of blocks cut so far (the open block not included).
    pub fn blocks_cut(&self) -> usize {
        self.blocks.len()
    }

    /// Estimated size of the finished chunk: exact for cut blocks, the open block scaled by
    /// the ratio seen so far (or 4:1 before the first cut), plus the block index and footer.
    /// The statistics section is not included: it is small (a few bytes per second of data),
    /// and chunks are cut at the same sizes whatever the format version.
    pub fn compressed_estimate(&self) -> usize {
        let cut_compressed = self.data_len - HEADER_LEN;
        let head_raw = self.head.raw_len();
        let head = if self.cut_raw_bytes > 0 && cut_compressed > 0 {
            (head_raw as u128 * cut_compressed as u128 / u128::from(self.cut_raw_bytes)) as usize
        } else {
            head_raw / ASSUMED_RATIO
        };
        let trailer = 8 + (self.blocks.len() + 1) * crate::format::BLOCK_META_LEN;
        self.data_len + head + trailer + crate::format::FOOTER_LEN
    }

    /// Encodes what has been appended so far as a complete chunk, leaving the builder as it
    /// is (the open block is compressed into the copy only). Lets an ingester serve reads of
    /// a chunk it is still filling.
    pub fn snapshot(&self) -> Result<EncodedChunk> {
        if self.head.is_empty() {
            self.encode()
        } else {
            self.clone().finish()
        }
    }

    /// Cuts the open block and writes the trailer and footer.
    pub fn finish(mut self) -> Result<EncodedChunk> {
        self.cut_block()?;
        self.encode()
    }

    /// Joins the header, the cut blocks, the trailer and the footer (the open block must be
    /// empty) into one exact-size buffer.
    fn encode(&self) -> Result<EncodedChunk> {
        let Some(from) = self.min_ts else {
            return Err(Error::Empty);
        };
        let trailer_offset = self.data_len as u64;
        let chunk_filter = match (&self.filter, self.version >= 3) {
            (Some(f), true) => f.clone().finish_chunk().to_bytes(),
            _ => Vec::new(),
        };
        let mut trailer = Vec::with_capacity(
            8 + self.blocks.len() * crate::format::BLOCK_META_LEN
                + 8
                + self.stats.len()
                + self.block_filters.len()
                + 4
                + chunk_filter.len(),
        );
        trailer.extend_from_slice(&(self.blocks.len() as u32).to_le_bytes());
        for b in &self.blocks {
            b.write(&mut trailer);
        }
        if self.version != FORMAT_VERSION_V1 {
            if self.stats_usable {
                trailer.extend_from_slice(&(self.stats_bucket_ns as u64).to_le_bytes());
                trailer.extend_from_slice(&self.stats);
            } else {
                // width 0: no statistics; each block's record is empty
                trailer.extend_from_slice(&0u64.to_le_bytes());
                trailer.extend(std::iter::repeat_n(0u8, self.blocks.len()));
            }
        }
        if self.version >= 3 {
            trailer.extend_from_slice(&self.block_filters);
            put_uvarint(&mut trailer, chunk_filter.len() as u64);
            trailer.extend_from_slice(&chunk_filter);
        }
        let crc = crc32c::crc32c(&trailer);
        trailer.extend_from_slice(&crc.to_le_bytes());

        let mut bytes =
            Vec::with_capacity(self.data_len + trailer.len() + crate::format::FOOTER_LEN);
        bytes.extend_from_slice(&self.header);
        for block in &self.block_data {
            bytes.extend_from_slice(block);
        }
        bytes.extend_from_slice(&trailer);
        bytes.extend_from_slice(&trailer_offset.to_le_bytes());
        bytes.extend_from_slice(&(trailer.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&MAGIC);
        let checksum = crc32c::crc32c(&bytes);
        Ok(EncodedChunk {
            bytes,
            from,
            through: self.max_ts,
            entries: self.entries,
            uncompressed_bytes: self.cut_raw_bytes,
            checksum,
        })
    }
}

/// Appends one filter record: `uvarint len`, then the filter's bytes.
fn put_filter(out: &mut Vec<u8>, f: &skald_needle::NgramFilter) {
    put_uvarint(out, f.encoded_len() as u64);
    f.write_to(out);
}

thread_local! {
    /// One zstd compression context per thread and level, reused across blocks (creating a
    /// context per block showed up in ingest profiles). The output is the same as with a
    /// fresh context, so replicas still cut identical chunks.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

thread_local! {
    /// Per-thread buffers for cutting a block: its raw layout and its compressed form, reused
    /// so that a cut allocates nothing (two block-sized allocations per cut showed up in
    /// ingest profiles).
    static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Scratch buffers larger than this are dropped after use rather than kept.
const SCRATCH_KEEP: usize = 4 * 1024 * 1024;

/// Compresses `raw` into `out` (replacing its contents) with this thread's context.
fn compress_into(raw: &[u8], level: i32, out: &mut Vec<u8>) -> std::io::Result<()> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let reuse = matches!(&*slot, Some((l, _)) if *l == level);
        if !reuse {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        match slot.as_mut() {
            Some((_, c)) => c.compress_to_buffer(raw, out).map(drop),
            None => Err(std::io::Error::other("no zstd context")),
        }
    })
}

#[cfg(test)]
mod compress_tests {
    #[test]
    fn reused_context_gives_the_same_bytes() {
        let a: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let b: Vec<u8> = b"level=info msg=hello ".repeat(5000);
        let mut out = b"left over from an earlier block".to_vec();
        for data in [&a, &b, &a] {
            super::compress_into(data, 1, &mut out).unwrap();
            assert_eq!(out, zstd::bulk::compress(data, 1).unwrap());
        }
        super::compress_into(&b, 3, &mut out).unwrap();
        assert_eq!(out, zstd::bulk::compress(&b, 3).unwrap());
    }
}
