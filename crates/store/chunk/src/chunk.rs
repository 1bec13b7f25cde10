//! [`Chunk`]: a parsed, validated view of a chunk's bytes.

use bytes::Bytes;
use skald_model::Entry;

use crate::block::{DecodedBlock, MIN_ENTRY_RAW_LEN};
use crate::error::{Error, Result};
use crate::format::{
    BlockMeta, Codec, BLOCK_META_LEN, FOOTER_LEN, FORMAT_VERSION, FORMAT_VERSION_V1,
    FORMAT_VERSION_V2, HEADER_LEN, MAGIC, MAX_BLOCK_RAW_LEN,
};
use crate::stats::{decode_block_stats, BlockStats};
use crate::varint::Reader;
use skald_needle::NgramFilter;

/// A chunk whose header, footer and block index have been validated.
///
/// Parsing checks the structure eagerly (magic, version, codec, trailer CRC, that blocks tile
/// the data region and are time-ordered); each block's CRC is checked when it is decoded, or
/// all at once by [`Chunk::verify`]. Cloning is cheap: the bytes are shared.
///
/// A chunk may hold only part of its bytes ([`Chunk::from_tail`]): its header and its tail
/// (trailer and footer), which give the block index and the statistics, and the payloads of
/// the blocks a reader asked for ([`Chunk::add_bytes`]). Decoding a block whose payload is
/// not there is an [`Error::NotFetched`].
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The chunk's bytes held, as `(offset, bytes)` pieces sorted by offset, not overlapping:
    /// one piece at 0 for a whole chunk.
    pieces: Vec<(u64, Bytes)>,
    /// The chunk's length in bytes.
    len: u64,
    /// Where everything else lies in it.
    layout: Layout,
}

/// What parsing the header and the tail gives: the chunk's version, codec and blocks, and
/// where their statistics and filters lie.
#[derive(Debug, Clone)]
struct Layout {
    version: u8,
    codec: Codec,
    blocks: Vec<BlockMeta>,
    /// Width of the statistics buckets in ns; 0 when the chunk has none.
    stats_bucket_ns: i64,
    /// Where each block's statistics record lies in the chunk (empty: none). Empty for
    /// version 1.
    stats: Vec<std::ops::Range<u64>>,
    /// Where each block's n-gram filter lies in the chunk (empty: none; empty before
    /// version 3).
    filters: Vec<std::ops::Range<u64>>,
    /// Where the chunk's n-gram filter lies (empty: none).
    chunk_filter: std::ops::Range<u64>,
}

/// Where the trailer of a chunk of `len` bytes lies, from its footer (the chunk's last
/// [`FOOTER_LEN`] bytes): `trailer_offset..len - FOOTER_LEN`. A reader that fetches a chunk in
/// parts reads at least this much of its end (and its header) to parse it with
/// [`Chunk::from_tail`].
pub fn trailer_range(footer: &[u8], len: u64) -> Result<std::ops::Range<u64>> {
    if footer.len() != FOOTER_LEN || len < (HEADER_LEN + FOOTER_LEN) as u64 {
        return Err(Error::corrupt("shorter than header and footer"));
    }
    let mut r = Reader::new(footer);
    let trailer_offset = r.u64_le("footer")?;
    let trailer_len = u64::from(r.u32_le("footer")?);
    if r.bytes(4, "footer")? != MAGIC {
        return Err(Error::corrupt("bad footer magic"));
    }
    let footer_start = len - FOOTER_LEN as u64;
    if trailer_offset < HEADER_LEN as u64
        || trailer_offset.checked_add(trailer_len) != Some(footer_start)
    {
        return Err(Error::corrupt("trailer position is out of bounds"));
    }
    Ok(trailer_offset..footer_start)
}

fn parse_header(header: &[u8]) -> Result<(u8, Codec)> {
    if header.len() < HEADER_LEN {
        return Err(Error::corrupt("shorter than header and footer"));
    }
    if header[0..4] != MAGIC {
        return Err(Error::corrupt("bad header magic"));
    }
    let version = header[4];
    if ![FORMAT_VERSION, FORMAT_VERSION_V2, FORMAT_VERSION_V1].contains(&version) {
        return Err(Error::UnsupportedVersion { version });
    }
    let codec = Codec::from_byte(header[5])?;
    if header[6] != 0 || header[7] != 0 {
        return Err(Error::corrupt("reserved header bytes are not zero"));
    }
    Ok((version, codec))
}

/// Parses the block index and the statistics' places from `header` (at least the chunk's
/// first 8 bytes) and `tail`, the chunk's bytes from `tail_offset` to its end.
fn parse(header: &[u8], tail: &[u8], tail_offset: u64) -> Result<Layout> {
    let len = tail_offset
        .checked_add(tail.len() as u64)
        .ok_or_else(|| Error::corrupt("chunk length out of range"))?;
    if len < (HEADER_LEN + FOOTER_LEN) as u64 || tail.len() < FOOTER_LEN {
        return Err(Error::corrupt("shorter than header and footer"));
    }
    let (version, codec) = parse_header(header)?;
    let v1 = version == FORMAT_VERSION_V1;
    let footer_start_in_tail = tail.len() - FOOTER_LEN;
    let trailer = trailer_range(&tail[footer_start_in_tail..], len)?;
    let trailer_offset = trailer.start;
    let trailer_len = usize::try_from(trailer.end - trailer.start)
        .map_err(|_| Error::corrupt("trailer position is out of bounds"))?;
    if trailer_offset < tail_offset {
        return Err(Error::corrupt("the trailer starts before the bytes read"));
    }
    // within `tail`
    let trailer_start = (trailer_offset - tail_offset) as usize;
    if v1 && (trailer_len < 8 || !(trailer_len - 8).is_multiple_of(BLOCK_META_LEN)) {
        return Err(Error::corrupt("trailer length is not a whole number of blocks"));
    }
    // version 2: count, metas, bucket width, at least one byte of statistics per block, CRC
    if !v1 && trailer_len < 4 + BLOCK_META_LEN + 8 + 1 + 4 {
        return Err(Error::corrupt("trailer is too short"));
    }
    let trailer = &tail[trailer_start..footer_start_in_tail];
    let (body, crc) = trailer.split_at(trailer_len - 4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != stored {
        return Err(Error::corrupt("trailer checksum mismatch"));
    }

    let mut r = Reader::new(body);
    let count = r.u32_le("trailer")? as usize;
    let fits = if v1 {
        count == (trailer_len - 8) / BLOCK_META_LEN
    } else {
        count.checked_mul(BLOCK_META_LEN + 1).is_some_and(|n| n + 16 <= trailer_len)
    };
    if count == 0 || !fits {
        return Err(Error::corrupt("block count disagrees with the trailer length"));
    }
    let mut blocks = Vec::with_capacity(count);
    let mut expected_offset = HEADER_LEN as u64;
    for i in 0..count {
        let b = BlockMeta::read(&mut r)?;
        let raw_len = b.raw_len as usize;
        let problem = if b.offset != expected_offset {
            Some("blocks do not tile the data region")
        } else if b.entries == 0 || b.min_ts > b.max_ts {
            Some("empty block or inverted time range")
        } else if raw_len > MAX_BLOCK_RAW_LEN {
            Some("block raw length exceeds the maximum")
        } else if (b.entries as usize).saturating_mul(MIN_ENTRY_RAW_LEN) > raw_len {
            Some("block entry count does not fit its raw length")
        } else if codec == Codec::None && b.compressed_len != b.raw_len {
            Some("uncompressed block length mismatch")
        } else if i > 0 && b.min_ts < blocks.last().map_or(i64::MIN, |p: &BlockMeta| p.max_ts) {
            Some("blocks are not in time order")
        } else {
            None
        };
        if let Some(reason) = problem {
            return Err(Error::corrupt(format!("block {i}: {reason}")));
        }
        expected_offset += u64::from(b.compressed_len);
        blocks.push(b);
    }
    if expected_offset != trailer_offset {
        return Err(Error::corrupt("blocks do not end where the trailer starts"));
    }
    if blocks.iter().map(|b| u64::from(b.entries)).sum::<u64>() > u64::from(u32::MAX) {
        return Err(Error::corrupt("too many entries"));
    }
    let (mut stats_bucket_ns, mut stats) = (0, Vec::new());
    if !v1 {
        stats_bucket_ns = i64::try_from(r.u64_le("trailer")?)
            .map_err(|_| Error::corrupt("statistics bucket width out of range"))?;
        stats.reserve(count);
        for i in 0..count {
            let len = r.uvarint("statistics")?;
            if len > 0 && stats_bucket_ns == 0 {
                return Err(Error::corrupt(format!("block {i}: statistics without a width")));
            }
            let start = trailer_offset + (body.len() - r.remaining()) as u64;
            r.bytes(
                usize::try_from(len).map_err(|_| Error::corrupt("statistics record too long"))?,
                "statistics",
            )?;
            stats.push(start..start + len);
        }
    }
    let (mut filters, mut chunk_filter) = (Vec::new(), 0..0);
    if version >= 3 {
        filters.reserve(count);
        // the blocks' records, then the chunk's
        for _ in 0..=count {
            let len = r.uvarint("filters")?;
            let start = trailer_offset + (body.len() - r.remaining()) as u64;
            r.bytes(
                usize::try_from(len).map_err(|_| Error::corrupt("filter record too long"))?,
                "filters",
            )?;
            filters.push(start..start + len);
        }
        chunk_filter = filters.pop().unwrap_or(0..0);
    }
    if r.remaining() != 0 {
        return Err(Error::corrupt("trailing bytes in the trailer"));
    }
    Ok(Layout { version, codec, blocks, stats_bucket_ns, stats, filters, chunk_filter })
}

impl Chunk {
    /// Parses a chunk, copying `data`.
    pub fn parse(data: &[u8]) -> Result<Chunk> {
        Chunk::from_bytes(Bytes::copy_from_slice(data))
    }

    /// Parses a chunk without copying.
    pub fn from_bytes(data: Bytes) -> Result<Chunk> {
        let p = parse(&data, &data, 0)?;
        Ok(Chunk::from_parsed(p, data.len() as u64, vec![(0, data)]))
    }

    /// Parses a chunk from its `header` (its first [`HEADER_LEN`] bytes, or more) and `tail`,
    /// its bytes from `tail_offset` to its end, which must hold the trailer and the footer
    /// (see [`trailer_range`]). The chunk holds no block payload but those inside `header` or
    /// `tail`; add the others with [`Chunk::add_bytes`]. Everything [`Chunk::from_bytes`]
    /// checks before decoding a block is checked here.
    pub fn from_tail(header: Bytes, tail: Bytes, tail_offset: u64) -> Result<Chunk> {
        let p = parse(&header, &tail, tail_offset)?;
        let len = tail_offset + tail.len() as u64;
        let mut chunk = Chunk::from_parsed(p, len, vec![(tail_offset, tail)]);
        chunk.add_bytes(0, header)?;
        Ok(chunk)
    }

    fn from_parsed(p: Layout, len: u64, pieces: Vec<(u64, Bytes)>) -> Chunk {
        Chunk { pieces, len, layout: p }
    }

    /// Adds `bytes`, the chunk's bytes from `offset` (payloads of blocks fetched after
    /// [`Chunk::from_tail`]). Bytes already held are kept; the new piece must lie inside the
    /// chunk. A payload is checked against its block's CRC when it is decoded.
    pub fn add_bytes(&mut self, offset: u64, bytes: Bytes) -> Result<()> {
        let end = offset
            .checked_add(bytes.len() as u64)
            .filter(|&e| e <= self.len)
            .ok_or_else(|| Error::corrupt("bytes out of bounds"))?;
        if bytes.is_empty() || self.slice(offset..end).is_some() {
            return Ok(());
        }
        let at = self.pieces.partition_point(|(o, _)| *o < offset);
        self.pieces.insert(at, (offset, bytes));
        Ok(())
    }

    /// The bytes `range` of the chunk, when one piece held holds them all.
    fn slice(&self, range: std::ops::Range<u64>) -> Option<&[u8]> {
        // the pieces starting at or before `range.start`, nearest first (pieces may overlap:
        // a range fetched later can cover one held before)
        let before = self.pieces.partition_point(|(o, _)| *o <= range.start);
        self.pieces[..before].iter().rev().find_map(|(offset, bytes)| {
            let start = usize::try_from(range.start - offset).ok()?;
            let end = usize::try_from(range.end.checked_sub(*offset)?).ok()?;
            bytes.get(start..end)
        })
    }

    /// True when the payload of block `index` is held (always, for a whole chunk).
    pub fn has_payload(&self, index: usize) -> bool {
        self.layout
            .blocks
            .get(index)
            .is_some_and(|b| self.slice(b.offset..b.offset + u64::from(b.compressed_len)).is_some())
    }

    /// The byte ranges to fetch for the payloads of `blocks` (indices, ascending) not held
    /// yet: adjacent payloads, and those separated by at most `gap` bytes, in one range.
    pub fn missing_ranges(
        &self,
        blocks: impl IntoIterator<Item = usize>,
        gap: u64,
    ) -> Vec<std::ops::Range<u64>> {
        let mut out: Vec<std::ops::Range<u64>> = Vec::new();
        for i in blocks {
            let Some(b) = self.layout.blocks.get(i) else { continue };
            if self.has_payload(i) {
                continue;
            }
            let r = b.offset..b.offset + u64::from(b.compressed_len);
            match out.last_mut() {
                Some(last) if r.start >= last.end && r.start - last.end <= gap => last.end = r.end,
                _ => out.push(r),
            }
        }
        out
    }

    /// The chunk's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never true: a chunk holds at least a header and a footer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes held: of the whole chunk (one piece), or only some of them.
    pub fn held_bytes(&self) -> u64 {
        self.pieces.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// The format version named in the header (1, 2 or 3).
    pub fn version(&self) -> u8 {
        self.layout.version
    }

    /// Width in ns of the buckets of the per-block statistics, when the chunk has any
    /// (version 2, written without possible duplicate entries).
    pub fn stats_bucket_ns(&self) -> Option<i64> {
        (self.layout.stats_bucket_ns > 0).then_some(self.layout.stats_bucket_ns)
    }

    /// The statistics of block `index`: its entry count and line bytes per bucket of
    /// [`Chunk::stats_bucket_ns`] and structured-metadata set, ascending, only non-empty
    /// buckets. `Ok(None)` when the block has none (a version 1 chunk, a block with too many
    /// distinct metadata sets, a chunk that may hold duplicate entries): it must be decoded.
    /// The record is checked against the block index (counts add up to the block's entries,
    /// the first and last buckets hold its first and last timestamps); every entry of the
    /// block, and only those, is counted once.
    pub fn block_stats(&self, index: usize) -> Result<Option<BlockStats>> {
        let meta = self
            .layout
            .blocks
            .get(index)
            .ok_or(Error::BlockOutOfRange { index, blocks: self.layout.blocks.len() })?;
        let Some(range) = self.layout.stats.get(index).filter(|r| !r.is_empty()) else {
            return Ok(None);
        };
        let rec =
            self.slice(range.clone()).ok_or_else(|| Error::corrupt("statistics out of bounds"))?;
        decode_block_stats(rec, self.layout.stats_bucket_ns, meta, index)
    }

    /// The n-gram filter of block `index`'s lines and structured metadata (version 3): when
    /// it says a literal cannot be there, no line of the block contains it. `None` when there
    /// is none (an older chunk, an index out of range) or it is of a filter version this build
    /// does not read (the trailer's CRC was checked): then any block may match.
    pub fn block_filter(&self, index: usize) -> Option<NgramFilter> {
        self.filter_at(self.layout.filters.get(index)?.clone())
    }

    /// The n-gram filter of the whole chunk (version 3): the union of its blocks', checked
    /// before any block's. `None` as for [`Chunk::block_filter`].
    pub fn chunk_filter(&self) -> Option<NgramFilter> {
        self.filter_at(self.layout.chunk_filter.clone())
    }

    /// True when the chunk has filters ([`Chunk::block_filter`]).
    pub fn has_filters(&self) -> bool {
        !self.layout.chunk_filter.is_empty()
    }

    fn filter_at(&self, range: std::ops::Range<u64>) -> Option<NgramFilter> {
        if range.is_empty() {
            return None;
        }
        NgramFilter::from_bytes(self.slice(range)?).ok()
    }

    /// The chunk's bytes, when it holds them all (`None` for a chunk read in parts).
    pub fn bytes(&self) -> Option<&Bytes> {
        match self.pieces.as_slice() {
            [(0, data)] if data.len() as u64 == self.len => Some(data),
            _ => None,
        }
    }

    /// The codec named in the header.
    pub fn codec(&self) -> Codec {
        self.layout.codec
    }

    /// The block index, in time order.
    pub fn blocks(&self) -> &[BlockMeta] {
        &self.layout.blocks
    }

    /// Timestamp of the first entry, ns.
    pub fn from(&self) -> i64 {
        self.layout.blocks.first().map_or(0, |b| b.min_ts)
    }

    /// Timestamp of the last entry, ns (inclusive).
    pub fn through(&self) -> i64 {
        self.layout.blocks.last().map_or(0, |b| b.max_ts)
    }

    /// Number of entries.
    pub fn entries(&self) -> u32 {
        // Bounded by the check in `from_bytes`.
        self.layout.blocks.iter().map(|b| b.entries).fold(0u32, u32::saturating_add)
    }

    /// Sum of the blocks' raw lengths.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.layout.blocks.iter().map(|b| u64::from(b.raw_len)).sum()
    }

    /// CRC32C of the whole chunk (the checksum in its object-store key); `None` for a chunk
    /// read in parts.
    pub fn checksum(&self) -> Option<u32> {
        self.bytes().map(|data| crc32c::crc32c(data))
    }

    /// Indices of the blocks that may hold entries in the half-open range `[start, end)`.
    pub fn blocks_overlapping(&self, start: i64, end: i64) -> impl Iterator<Item = usize> + '_ {
        self.layout
            .blocks
            .iter()
            .enumerate()
            .filter(move |(_, b)| b.overlaps(start, end))
            .map(|(i, _)| i)
    }

    /// Checks every block's CRC32C without decompressing.
    pub fn verify(&self) -> Result<()> {
        for i in 0..self.layout.blocks.len() {
            self.payload(i)?;
        }
        Ok(())
    }

    fn payload(&self, index: usize) -> Result<&[u8]> {
        let b = self
            .layout
            .blocks
            .get(index)
            .ok_or(Error::BlockOutOfRange { index, blocks: self.layout.blocks.len() })?;
        // Offsets were validated against the data region when parsing; a missing payload
        // was not fetched.
        let payload = self
            .slice(b.offset..b.offset + u64::from(b.compressed_len))
            .ok_or(Error::NotFetched { index })?;
        let computed = crc32c::crc32c(payload);
        if computed != b.crc32c {
            return Err(Error::BlockChecksum { index, stored: b.crc32c, computed });
        }
        Ok(payload)
    }

    /// Verifies, decompresses (never beyond the block's recorded raw length) and decodes
    /// block `index`.
    pub fn decode_block(&self, index: usize) -> Result<DecodedBlock> {
        let mut reader = BlockReader::new();
        let raw = reader.raw_block(self, index)?;
        self.decode_raw_block(index, raw)
    }

    /// Decodes block `index` from its raw bytes, as returned by [`BlockReader::raw_block`].
    pub fn decode_raw_block(&self, index: usize, raw: &[u8]) -> Result<DecodedBlock> {
        let b = self
            .layout
            .blocks
            .get(index)
            .ok_or(Error::BlockOutOfRange { index, blocks: self.layout.blocks.len() })?;
        if raw.len() != b.raw_len as usize {
            return Err(Error::corrupt(format!("block {index}: raw length mismatch")));
        }
        DecodedBlock::decode(raw, b.entries, b.min_ts, b.max_ts)
    }

    /// Iterates over the entries with `start <= ts < end`, decoding only the blocks that
    /// overlap the range. Stops after the first error.
    pub fn iter_entries(&self, start: i64, end: i64) -> ChunkEntries<'_> {
        ChunkEntries {
            chunk: self,
            start,
            end,
            next_block: 0,
            current: None,
            pos: 0,
            failed: false,
        }
    }
}

/// Verifies and decompresses blocks into one reused buffer with one reused zstd context.
///
/// A scan keeps one reader per thread: it saves an allocation and a decompression context per
/// block, and lets a line filter search a block's raw bytes (whose line region is contiguous)
/// before paying for [`Chunk::decode_raw_block`].
#[derive(Default)]
pub struct BlockReader {
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for BlockReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockReader").field("buf_capacity", &self.buf.capacity()).finish()
    }
}

impl BlockReader {
    /// A reader with no buffer yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies block `index` of `chunk` and returns its raw (uncompressed) bytes, never
    /// decompressing beyond the block's recorded raw length.
    pub fn raw_block<'a>(&'a mut self, chunk: &'a Chunk, index: usize) -> Result<&'a [u8]> {
        let payload = chunk.payload(index)?;
        let raw_len = chunk.layout.blocks[index].raw_len as usize;
        let raw: &[u8] = match chunk.layout.codec {
            Codec::None => payload,
            Codec::Zstd => {
                let zstd = match &mut self.zstd {
                    Some(z) => z,
                    None => self.zstd.insert(
                        zstd::bulk::Decompressor::new()
                            .map_err(|source| Error::Decompress { index, source })?,
                    ),
                };
                self.buf.clear();
                self.buf.reserve(raw_len);
                // `decompress_to_buffer` writes into spare capacity only: a frame larger than
                // the buffer is an error, not a reallocation.
                zstd.decompress_to_buffer(payload, &mut self.buf)
                    .map_err(|source| Error::Decompress { index, source })?;
                &self.buf
            }
        };
        if raw.len() != raw_len {
            return Err(Error::corrupt(format!("block {index}: raw length mismatch")));
        }
        Ok(raw)
    }
}

thread_local! {
    /// One zstd decompression context per thread for [`decompress_capped`]: creating one per
    /// frame (a few hundred bytes of statistics per block) took most of a statistics query.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses one zstd frame into at most `cap` bytes: the output buffer is allocated once
/// with capacity `cap` and a frame that would grow past it is an error.
pub fn decompress_capped(payload: &[u8], cap: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(cap);
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let d = match &mut *slot {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        d.decompress_to_buffer(payload, &mut out)
    })?;
    Ok(out)
}

/// Iterator returned by [`Chunk::iter_entries`].
#[derive(Debug)]
pub struct ChunkEntries<'a> {
    chunk: &'a Chunk,
    start: i64,
    end: i64,
    next_block: usize,
    current: Option<DecodedBlock>,
    pos: usize,
    failed: bool,
}

impl Iterator for ChunkEntries<'_> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            if let Some(block) = &self.current {
                if self.pos < block.len() && block.ts(self.pos) < self.end {
                    let e = block.entry(self.pos);
                    self.pos += 1;
                    return Some(Ok(e));
                }
                self.current = None;
            }
            let blocks = self.chunk.blocks();
            while self.next_block < blocks.len()
                && !blocks[self.next_block].overlaps(self.start, self.end)
            {
                if blocks[self.next_block].min_ts >= self.end {
                    self.next_block = blocks.len();
                    break;
                }
                self.next_block += 1;
            }
            if self.next_block >= blocks.len() {
                return None;
            }
            match self.chunk.decode_block(self.next_block) {
                Ok(block) => {
                    self.pos = block.first_index_at_or_after(self.start);
                    self.current = Some(block);
                    self.next_block += 1;
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
