//! Decoding a fetched chunk: the blocks that overlap the query's range, with the literal
//! prefilter that skips blocks (and lines) that cannot match.

use skald_chunk::{BlockReader, Chunk, DecodedBlock};
use skald_logql::engine::EngineError;
use skald_logql::log::LiteralScan;
use skald_model::EntryBatch;

use super::source_err;
use crate::store_stats::StoreStats;

/// Decodes the entries of one chunk in `[start, end)` that contain every literal, from the
/// blocks that overlap the range only (a chunk read in parts holds those). A block whose raw
/// bytes lack the first literal is skipped before it is decoded: its line region is a
/// contiguous part of those bytes, so no line in it can match.
pub(super) fn decode_chunk(
    chunk: &Chunk,
    start: i64,
    end: i64,
    scan: &LiteralScan,
    reader: &mut BlockReader,
    stats: &StoreStats,
) -> Result<EntryBatch, EngineError> {
    let mut out = EntryBatch::new();
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

/// Decompresses and decodes block `i` of `chunk`, unless its raw bytes lack the first
/// literal (`None`: no line in it can match). The decompression is counted in `stats`.
pub(super) fn decode_block(
    chunk: &Chunk,
    i: usize,
    scan: &LiteralScan,
    reader: &mut BlockReader,
    stats: &StoreStats,
) -> Result<Option<DecodedBlock>, EngineError> {
    let corrupt = |e| source_err(format!("corrupt chunk block: {e}"));
    let raw = reader.raw_block(chunk, i).map_err(corrupt)?;
    if let Some(meta) = chunk.blocks().get(i) {
        stats.add_decompressed(u64::from(meta.raw_len), u64::from(meta.entries));
    }
    if !scan.may_match(raw) {
        return Ok(None);
    }
    chunk.decode_raw_block(i, raw).map(Some).map_err(corrupt)
}

/// Appends the block's entries in `[start, end)` that contain every literal.
pub(super) fn select_block(
    block: &DecodedBlock,
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
