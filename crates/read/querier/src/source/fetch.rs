//! Fetching a chunk, or only the parts of it a query needs.
//!
//! A chunk's trailer (block index and per-block statistics) sits at its end, and its blocks
//! are time-ordered byte ranges ([`skald_chunk::Chunk::from_tail`]). A query that needs only
//! some blocks of a chunk (one that only partly overlaps its time range, as a split query's
//! parts do at every split edge) or only its statistics reads its header and its tail first,
//! then only the payloads it needs: the bytes read, and the buffers filled, are those of the
//! blocks decoded. A chunk that lies within the range, or a small one, is fetched whole in one
//! request, as before.

use std::ops::Range;

use bytes::Bytes;
use skald_chunk::{trailer_range, Chunk, FOOTER_LEN, HEADER_LEN};
use skald_chunk_store::{ChunkKey, ChunkStore};
use skald_index::ChunkRef;
use skald_logql::engine::EngineError;

use super::needle::NeedleQuery;
use super::source_err;
use crate::store_stats::StoreStats;

/// What of a chunk a read needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// All of it (a limited read takes whole chunks).
    Whole,
    /// The blocks that overlap `[start, end)`.
    Range(i64, i64),
    /// The block index and the statistics only: the payloads of the blocks that must be
    /// decoded are fetched afterwards ([`fetch_blocks`]).
    Index,
}

/// Chunks smaller than this are fetched whole, in one request. Unit tests read every chunk
/// in parts, and their tails short, so that the comparisons of the source's reads with naive
/// ones (`source/tests.rs`, `counts.rs`) go through every path here.
/// (Smaller than a header and a footer is no chunk: read it whole, to be refused.)
const SMALL_CHUNK: u64 = if cfg!(test) { (HEADER_LEN + FOOTER_LEN) as u64 } else { 64 << 10 };

/// The end of a chunk read on the first request: a 16th of it (statistics add 1.5 to 5 % to
/// a chunk), at least this much; a longer trailer costs one more request.
const MIN_TAIL: u64 = if cfg!(test) { 64 } else { 16 << 10 };

/// Payloads this close to each other in a chunk are fetched in one range.
const GAP: u64 = 32 << 10;

/// A chunk's time range is covered by the query's range this much (in quarters) or more: it
/// is fetched whole, in one request, rather than its trailer first.
const WHOLE_QUARTERS: i128 = 3;

/// Fetches what `need` asks of chunk `chunk` (at `key`), parsed. The bytes read are added to
/// `stats`. When the index's size of the chunk is unknown or wrong, or the chunk's end does
/// not parse, the chunk is fetched whole (and then refused as before when it is corrupt).
///
/// With `needles`, a [`Need::Range`] reads the chunk's end first even when it lies within
/// the range, and fetches only the blocks whose n-gram filters may hold them (none when the
/// chunk's filter rejects them): a needle search fetches little of the chunks it cannot match.
pub(super) async fn fetch(
    store: &dyn ChunkStore,
    key: &ChunkKey,
    chunk: &ChunkRef,
    need: Need,
    needles: Option<&NeedleQuery>,
    stats: &StoreStats,
) -> Result<Chunk, EngineError> {
    let searching = needles.is_some() && matches!(need, Need::Range(..));
    if !fetch_whole(chunk, need) || (searching && chunk.compressed_bytes >= SMALL_CHUNK) {
        match fetch_parts(store, key, chunk.compressed_bytes, need, needles, stats).await {
            Ok(c) => return Ok(c),
            // a missing chunk is missing whole too
            Err(Parts::Store(e)) if e.is_not_found() => {
                return Err(source_err(format!("failed to fetch chunk: {e}")))
            }
            Err(_) => {}
        }
    }
    let bytes =
        store.get(key).await.map_err(|e| source_err(format!("failed to fetch chunk: {e}")))?;
    stats.add_fetched_bytes(bytes.len() as u64);
    Chunk::from_bytes(bytes).map_err(|e| source_err(format!("corrupt chunk: {e}")))
}

/// Whether `chunk` is better fetched whole for `need`: the whole is needed, or most of it, or
/// it is small (or of unknown size).
fn fetch_whole(chunk: &ChunkRef, need: Need) -> bool {
    if chunk.compressed_bytes < SMALL_CHUNK {
        return true;
    }
    match need {
        Need::Whole => true,
        Need::Index => false,
        Need::Range(start, end) => {
            // the chunk's entries lie in `[from, through]`
            let span = i128::from(chunk.through) - i128::from(chunk.from) + 1;
            let inside = i128::from(chunk.through.min(end.saturating_sub(1)))
                - i128::from(chunk.from.max(start))
                + 1;
            inside * 4 >= span * WHOLE_QUARTERS
        }
    }
}

/// Why a read in parts failed.
enum Parts {
    /// The store said so.
    Store(skald_chunk_store::Error),
    /// The bytes read do not parse as the end of a chunk of the index's size.
    Format,
}

/// Header and tail, then the payloads of the blocks overlapping a [`Need::Range`].
async fn fetch_parts(
    store: &dyn ChunkStore,
    key: &ChunkKey,
    len: u64,
    need: Need,
    needles: Option<&NeedleQuery>,
    stats: &StoreStats,
) -> Result<Chunk, Parts> {
    let tail_len = (len / 16).max(MIN_TAIL).min(len - HEADER_LEN as u64);
    let mut tail_offset = len - tail_len;
    let mut got = get_ranges(store, key, &[0..HEADER_LEN as u64, tail_offset..len], stats).await?;
    let (Some(mut tail), Some(header)) = (got.pop(), got.pop()) else {
        return Err(Parts::Format);
    };
    let footer = tail.get(tail.len().saturating_sub(FOOTER_LEN)..).ok_or(Parts::Format)?;
    let trailer = trailer_range(footer, len).map_err(|_| Parts::Format)?;
    if trailer.start < tail_offset {
        // a trailer longer than guessed: read the rest of it
        let rest = trailer.start..tail_offset;
        let mut more = get_ranges(store, key, std::slice::from_ref(&rest), stats).await?;
        let head = more.pop().ok_or(Parts::Format)?;
        let mut joined = Vec::with_capacity(head.len() + tail.len());
        joined.extend_from_slice(&head);
        joined.extend_from_slice(&tail);
        (tail, tail_offset) = (Bytes::from(joined), trailer.start);
    }
    let mut chunk = Chunk::from_tail(header, tail, tail_offset).map_err(|_| Parts::Format)?;
    if let Need::Range(start, end) = need {
        let blocks: Vec<usize> = match needles {
            Some(n) if !n.chunk_may_match(&chunk) => Vec::new(),
            _ => chunk
                .blocks_overlapping(start, end)
                .filter(|&i| needles.is_none_or(|n| n.block_may_match(&chunk, i)))
                .collect(),
        };
        add_blocks(store, key, &mut chunk, &blocks, stats).await?;
    }
    Ok(chunk)
}

async fn get_ranges(
    store: &dyn ChunkStore,
    key: &ChunkKey,
    ranges: &[Range<u64>],
    stats: &StoreStats,
) -> Result<Vec<Bytes>, Parts> {
    let got = store.get_ranges(key, ranges).await.map_err(Parts::Store)?;
    stats.add_fetched_bytes(got.iter().map(|b| b.len() as u64).sum());
    Ok(got)
}

/// Adds the payloads of `blocks` (ascending) that `chunk` lacks, fetched from the store.
async fn add_blocks(
    store: &dyn ChunkStore,
    key: &ChunkKey,
    chunk: &mut Chunk,
    blocks: &[usize],
    stats: &StoreStats,
) -> Result<(), Parts> {
    let ranges = chunk.missing_ranges(blocks.iter().copied(), GAP);
    if ranges.is_empty() {
        return Ok(());
    }
    let got = get_ranges(store, key, &ranges, stats).await?;
    for (r, bytes) in ranges.iter().zip(got) {
        chunk.add_bytes(r.start, bytes).map_err(|_| Parts::Format)?;
    }
    Ok(())
}

/// Adds to `chunk` (at `key`) the payloads of `blocks` (ascending) it lacks: the blocks a
/// read of its [`Need::Index`] found it must decode.
pub(super) async fn fetch_blocks(
    store: &dyn ChunkStore,
    key: &ChunkKey,
    chunk: &mut Chunk,
    blocks: &[usize],
    stats: &StoreStats,
) -> Result<(), EngineError> {
    add_blocks(store, key, chunk, blocks, stats).await.map_err(|e| match e {
        Parts::Store(e) => source_err(format!("failed to fetch chunk: {e}")),
        Parts::Format => source_err("corrupt chunk: block out of bounds"),
    })
}

#[cfg(test)]
mod tests {
    //! Ranged fetches against a store that records what it was asked.
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use async_trait::async_trait;
    use parking_lot::Mutex;
    use skald_chunk::ChunkBuilder;
    use skald_chunk_store::ObjectChunkStore;
    use skald_model::Entry;

    use super::*;

    /// A chunk store that records every byte range read (`None`: a whole chunk).
    #[derive(Default)]
    struct Counting {
        inner: Option<Arc<ObjectChunkStore>>,
        reads: Mutex<Vec<Option<Range<u64>>>>,
    }

    impl Counting {
        fn new() -> Self {
            Counting { inner: Some(Arc::new(ObjectChunkStore::in_memory())), ..Default::default() }
        }
        fn store(&self) -> &ObjectChunkStore {
            self.inner.as_deref().unwrap()
        }
        fn read_bytes(&self, whole: u64) -> u64 {
            self.reads.lock().iter().map(|r| r.as_ref().map_or(whole, |r| r.end - r.start)).sum()
        }
    }

    #[async_trait]
    impl ChunkStore for Counting {
        async fn put(&self, key: &ChunkKey, bytes: Bytes) -> skald_chunk_store::Result<()> {
            self.store().put(key, bytes).await
        }
        async fn get(&self, key: &ChunkKey) -> skald_chunk_store::Result<Bytes> {
            self.reads.lock().push(None);
            self.store().get(key).await
        }
        async fn get_ranges(
            &self,
            key: &ChunkKey,
            ranges: &[Range<u64>],
        ) -> skald_chunk_store::Result<Vec<Bytes>> {
            self.reads.lock().extend(ranges.iter().cloned().map(Some));
            self.store().get_ranges(key, ranges).await
        }
        async fn delete(&self, key: &ChunkKey) -> skald_chunk_store::Result<()> {
            self.store().delete(key).await
        }
        async fn put_object(&self, path: &str, bytes: Bytes) -> skald_chunk_store::Result<()> {
            self.store().put_object(path, bytes).await
        }
        async fn get_object(&self, path: &str) -> skald_chunk_store::Result<Bytes> {
            self.store().get_object(path).await
        }
        async fn delete_object(&self, path: &str) -> skald_chunk_store::Result<()> {
            self.store().delete_object(path).await
        }
        async fn list_prefix(&self, prefix: &str) -> skald_chunk_store::Result<Vec<String>> {
            self.store().list_prefix(prefix).await
        }
    }

    const SEC: i64 = 1_000_000_000;

    /// A chunk of 40 blocks over 4000 s, its ref and key.
    fn chunk_of(store: &Counting, rt: &tokio::runtime::Runtime) -> (ChunkRef, ChunkKey, Bytes) {
        let mut b = ChunkBuilder::new(16 * 1024);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..40_000i64 {
            // lines that do not compress to nothing
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let line = format!("line {i} value={state:x} {}", state.rotate_left(7));
            b.append(&Entry { ts: i * SEC / 10, line: line.into(), structured_metadata: vec![] })
                .unwrap();
        }
        let enc = b.finish().unwrap();
        let r = super::super::tests::chunk_ref_of(7, &enc);
        let key = r.key("t");
        let bytes = Bytes::from(enc.bytes);
        rt.block_on(store.put(&key, bytes.clone())).unwrap();
        (r, key, bytes)
    }

    fn entries(c: &Chunk, start: i64, end: i64) -> Vec<Entry> {
        c.iter_entries(start, end).map(Result::unwrap).collect()
    }

    #[test]
    fn a_partly_overlapping_chunk_is_read_in_parts() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let store = Counting::new();
        let (r, key, bytes) = chunk_of(&store, &rt);
        let len = bytes.len() as u64;
        assert!(len > 4 * SMALL_CHUNK, "{len}");
        let whole = Chunk::from_bytes(bytes.clone()).unwrap();
        assert!(whole.blocks().len() > 20);
        // the first tenth of the chunk's time range: header, tail, then the blocks of that
        // range in one request
        let (start, end) = (r.from - 5 * SEC, r.from + 400 * SEC);
        let stats = StoreStats::default();
        let got =
            rt.block_on(fetch(&store, &key, &r, Need::Range(start, end), None, &stats)).unwrap();
        assert_eq!(entries(&got, start, end), entries(&whole, start, end));
        let needed: Vec<usize> = whole.blocks_overlapping(start, end).collect();
        let m = whole.blocks();
        let last = m[*needed.last().unwrap()];
        let reads = store.reads.lock().clone();
        let trailer = trailer_range(&bytes[bytes.len() - FOOTER_LEN..], len).unwrap();
        assert_eq!(reads.len(), 3, "{reads:?}");
        assert_eq!(reads[0], Some(0..HEADER_LEN as u64));
        let tail = reads[1].clone().unwrap();
        assert!(tail.end == len && tail.start <= trailer.start, "{tail:?}");
        assert_eq!(
            reads[2],
            Some(m[needed[0]].offset..last.offset + u64::from(last.compressed_len))
        );
        // what was read, and only that, is counted
        let read = store.read_bytes(len);
        assert_eq!(stats.snapshot().compressed_bytes, read);
        assert!(read * 4 < len, "read {read} of {len}");
        // the other blocks were not read
        let outside = (0..m.len()).find(|i| !needed.contains(i)).unwrap();
        assert!(!got.has_payload(outside));
    }

    #[test]
    fn statistics_only_read_the_tail_and_blocks_later() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let store = Counting::new();
        let (r, key, bytes) = chunk_of(&store, &rt);
        let stats = StoreStats::default();
        let mut got = rt.block_on(fetch(&store, &key, &r, Need::Index, None, &stats)).unwrap();
        let whole = Chunk::from_bytes(bytes.clone()).unwrap();
        for i in 0..whole.blocks().len() {
            assert_eq!(got.block_stats(i).unwrap(), whole.block_stats(i).unwrap());
        }
        assert_eq!(store.reads.lock().len(), 2);
        // blocks 2 and 20, later: two ranges (more than GAP apart)
        let m = whole.blocks();
        assert!(m[20].offset - m[3].offset > GAP);
        rt.block_on(fetch_blocks(&store, &key, &mut got, &[2, 20], &stats)).unwrap();
        let reads = store.reads.lock().clone();
        let range = |i: usize| Some(m[i].offset..m[i].offset + u64::from(m[i].compressed_len));
        assert_eq!(reads[2..], [range(2), range(20)]);
        assert_eq!(got.decode_block(20).unwrap(), whole.decode_block(20).unwrap());
        assert!(matches!(got.decode_block(5), Err(skald_chunk::Error::NotFetched { index: 5 })));
        assert_eq!(stats.snapshot().compressed_bytes, store.read_bytes(bytes.len() as u64));
    }

    #[test]
    fn whole_small_unknown_or_misdescribed_chunks_are_read_whole() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let store = Counting::new();
        let (r, key, bytes) = chunk_of(&store, &rt);
        let whole = Chunk::from_bytes(bytes.clone()).unwrap();
        let stats = StoreStats::default();
        let run = |r: &ChunkRef, need| {
            store.reads.lock().clear();
            let c = rt.block_on(fetch(&store, &key, r, need, None, &stats)).unwrap();
            assert_eq!(entries(&c, r.from, r.through + 1).len(), whole.entries() as usize);
            store.reads.lock().clone()
        };
        // within the range, or most of it
        assert_eq!(run(&r, Need::Range(r.from, r.through + 1)), vec![None]);
        assert_eq!(run(&r, Need::Range(r.from + 100 * SEC, r.through + 1)), vec![None]);
        assert_eq!(run(&r, Need::Whole), vec![None]);
        // no size in the index, or a wrong one: read whole after all
        let unknown = ChunkRef { compressed_bytes: 0, ..r };
        assert_eq!(run(&unknown, Need::Index), vec![None]);
        let wrong = ChunkRef { compressed_bytes: r.compressed_bytes - 3, ..r };
        assert_eq!(run(&wrong, Need::Index).last(), Some(&None));
        let too_long = ChunkRef { compressed_bytes: r.compressed_bytes + 3, ..r };
        assert_eq!(run(&too_long, Need::Index).last(), Some(&None));
        // a missing chunk is an error
        let missing = ChunkRef { checksum: 1, ..r };
        let err =
            rt.block_on(fetch(&store, &missing.key("t"), &missing, Need::Index, None, &stats));
        assert!(err.unwrap_err().to_string().contains("failed to fetch chunk"));
    }

    /// A chunk of 64 KiB blocks of plain lines with `needle-7f3a9c` in a few lines of one
    /// block, its ref and key.
    fn needle_chunk_of(store: &Counting, rt: &tokio::runtime::Runtime) -> (ChunkRef, ChunkKey) {
        let mut b = ChunkBuilder::new(64 * 1024);
        for i in 0..40_000i64 {
            let mut line = format!("line {} level=info path=/a/{}", i % 1000, i % 50);
            if (30_000..30_005).contains(&i) {
                line.push_str(" err=needle-7f3a9c");
            }
            b.append(&Entry { ts: i * SEC / 10, line: line.into(), structured_metadata: vec![] })
                .unwrap();
        }
        let enc = b.finish().unwrap();
        let r = super::super::tests::chunk_ref_of(8, &enc);
        let key = r.key("t");
        rt.block_on(store.put(&key, Bytes::from(enc.bytes))).unwrap();
        (r, key)
    }

    fn needles(q: &str) -> NeedleQuery {
        let Ok(skald_logql::syntax::ast::Expr::Log(sel)) = skald_logql::syntax::parse_expr(q)
        else {
            panic!("{q}")
        };
        NeedleQuery::new(&sel.stages, &[]).unwrap()
    }

    #[test]
    fn a_needle_search_fetches_only_the_blocks_its_filters_may_hold() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let store = Counting::new();
        let (r, key) = needle_chunk_of(&store, &rt);
        let len = r.compressed_bytes;
        let whole = rt.block_on(store.get(&key)).unwrap();
        let whole = Chunk::from_bytes(whole).unwrap();
        assert!(whole.blocks().len() > 10);
        let range = Need::Range(r.from, r.through + 1);
        let stats = StoreStats::default();
        // within the range, yet read in parts: header, tail, then few blocks
        store.reads.lock().clear();
        let n = needles(r#"{a="b"} |= "needle-7f3a9c""#);
        let got = rt.block_on(fetch(&store, &key, &r, range, Some(&n), &stats)).unwrap();
        let reads = store.reads.lock().clone();
        assert!(reads.iter().all(Option::is_some), "{reads:?}");
        assert!(store.read_bytes(len) * 3 < len, "{} of {len}", store.read_bytes(len));
        let hit =
            whole.blocks().iter().position(|m| m.min_ts <= 3_000 * SEC && 3_000 * SEC <= m.max_ts);
        assert!(got.has_payload(hit.unwrap()));
        let held = (0..whole.blocks().len()).filter(|&i| got.has_payload(i)).count();
        assert!(held <= 2, "{held} blocks fetched");
        // decoding it skips the blocks not fetched and finds the lines
        let scan = super::super::decode::BlockScan {
            lines: skald_logql::log::LiteralScan::new(&["needle-7f3a9c".to_string()]),
            needles: Some(std::sync::Arc::new(n)),
        };
        let mut reader = skald_chunk::BlockReader::new();
        let dstats = StoreStats::default();
        let out = super::super::decode::decode_chunk(
            &got,
            r.from,
            r.through + 1,
            &scan,
            &mut reader,
            &dstats,
        )
        .unwrap();
        assert_eq!(out.len(), 5);
        assert!(dstats.skipped_blocks() as usize >= whole.blocks().len() - 2);
        // a needle no block holds: the chunk's filter says so, no block is fetched
        store.reads.lock().clear();
        let n = needles(r#"{a="b"} |= "absent-qq77xx""#);
        let got = rt.block_on(fetch(&store, &key, &r, range, Some(&n), &stats)).unwrap();
        // header and tail (and the rest of a trailer longer than the tests' short tail)
        assert!(store.reads.lock().len() <= 3);
        assert!((0..whole.blocks().len()).all(|i| !got.has_payload(i)));
        // without needles, the chunk is read whole as before
        store.reads.lock().clear();
        rt.block_on(fetch(&store, &key, &r, range, None, &stats)).unwrap();
        assert_eq!(store.reads.lock().clone(), vec![None]);
    }
}
