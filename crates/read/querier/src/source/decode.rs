//! Decoding a fetched chunk: the blocks that overlap the query's range, with the n-gram
//! filters and the literal prefilter that skip blocks (and lines) that cannot match.

use std::sync::Arc;

use skald_chunk::{BlockReader, Chunk, DecodedBlock};
use skald_logql::engine::EngineError;
use skald_logql::log::LiteralScan;
use skald_model::EntryBatch;

use super::needle::NeedleQuery;
use super::source_err;
use crate::store_stats::StoreStats;

/// What a read looks for in the stored lines: the literals every kept line contains (searched
/// in the raw blocks) and the needles the chunks' n-gram filters are asked about.
#[derive(Clone)]
pub(super) struct BlockScan {
    /// Searched in each decompressed block.
    pub(super) lines: LiteralScan,
    /// Checked against the chunk's and each block's filter first (`None`: nothing to ask).
    pub(super) needles: Option<Arc<NeedleQuery>>,
}

impl BlockScan {
    /// A scan that keeps every line.
    pub(super) fn everything() -> BlockScan {
        BlockScan { lines: LiteralScan::new::<String>(&[]), needles: None }
    }

    /// False when the chunk's filter says no block of it can hold a kept line.
    pub(super) fn chunk_may_match(&self, chunk: &Chunk) -> bool {
        self.needles.as_ref().is_none_or(|n| n.chunk_may_match(chunk))
    }

    /// False when block `i`'s filter says it holds no kept line.
    pub(super) fn block_may_match(&self, chunk: &Chunk, i: usize) -> bool {
        self.needles.as_ref().is_none_or(|n| n.block_may_match(chunk, i))
    }
}

/// Decodes the entries of one chunk in `[start, end)` that contain every literal, from the
/// blocks that overlap the range only (a chunk read in parts holds those). Nothing is
/// decompressed when the chunk's filter rejects the needles; a block whose filter does is
/// skipped, and so is one whose raw bytes lack the first literal: its line region is a
/// contiguous part of those bytes, so no line in it can match.
pub(super) fn decode_chunk(
    chunk: &Chunk,
    start: i64,
    end: i64,
    scan: &BlockScan,
    reader: &mut BlockReader,
    stats: &StoreStats,
) -> Result<EntryBatch, EngineError> {
    let mut out = EntryBatch::new();
    if !scan.chunk_may_match(chunk) {
        let skipped = chunk.blocks().iter().filter(|m| m.max_ts >= start && m.min_ts < end);
        stats.add_skipped_blocks(skipped.count() as u64);
        return Ok(out);
    }
    for (i, meta) in chunk.blocks().iter().enumerate() {
        if meta.max_ts < start || meta.min_ts >= end {
            continue;
        }
        if let Some(block) = decode_block(chunk, i, scan, reader, stats)? {
            select_block(&block, start, end, scan, &mut out);
        }
    }
    Ok(out)
}

/// Decompresses and decodes block `i` of `chunk`, unless its filter rejects the needles or
/// its raw bytes lack the first literal (`None`: no line in it can match). The decompression
/// is counted in `stats`, a block skipped undecompressed as skipped.
pub(super) fn decode_block(
    chunk: &Chunk,
    i: usize,
    scan: &BlockScan,
    reader: &mut BlockReader,
    stats: &StoreStats,
) -> Result<Option<DecodedBlock>, EngineError> {
    let corrupt = |e| source_err(format!("corrupt chunk block: {e}"));
    if !scan.block_may_match(chunk, i) {
        stats.add_skipped_blocks(1);
        return Ok(None);
    }
    let raw = reader.raw_block(chunk, i).map_err(corrupt)?;
    if let Some(meta) = chunk.blocks().get(i) {
        stats.add_decompressed(u64::from(meta.raw_len), u64::from(meta.entries));
    }
    if !scan.lines.may_match(raw) {
        return Ok(None);
    }
    chunk.decode_raw_block(i, raw).map(Some).map_err(corrupt)
}

/// Appends the block's entries in `[start, end)` that contain every literal.
pub(super) fn select_block(
    block: &DecodedBlock,
    start: i64,
    end: i64,
    scan: &BlockScan,
    out: &mut EntryBatch,
) {
    scan.lines.for_each_match(block.lines_bytes(), block.line_ends(), |i| {
        let ts = block.ts(i);
        if ts >= start && ts < end {
            out.push(ts, block.line(i), block.structured_metadata_slice(i));
        }
    });
}
