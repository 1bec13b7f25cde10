use proptest::prelude::*;
use skald_model::{Entry, Label};

use crate::*;

fn entry(ts: i64, line: &str) -> Entry {
    Entry { ts, line: line.into(), structured_metadata: vec![] }
}

fn build(entries: &[Entry], block_size: usize, codec: Codec) -> EncodedChunk {
    let mut b = ChunkBuilder::new(block_size).with_codec(codec);
    for e in entries {
        b.append(e).unwrap();
    }
    b.finish().unwrap()
}

fn decode_all(bytes: &[u8]) -> Vec<Entry> {
    let c = Chunk::parse(bytes).unwrap();
    let mut out = Vec::new();
    for i in 0..c.blocks().len() {
        out.extend(c.decode_block(i).unwrap().entries());
    }
    out
}

fn sample(n: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| Entry {
            ts: 1_700_000_000_000_000_000 + i as i64 * 1_000_000,
            line: format!(
                "level=info msg=\"request {i}\" path=/api/v1/thing/{} status=200",
                i % 97
            )
            .into(),
            structured_metadata: if i % 3 == 0 {
                vec![Label::new("trace_id", format!("{i:x}"))]
            } else {
                vec![]
            },
        })
        .collect()
}

#[test]
fn roundtrip_many_blocks() {
    let entries = sample(20_000);
    let enc = build(&entries, 16 * 1024, Codec::Zstd);
    let c = Chunk::parse(&enc.bytes).unwrap();
    assert!(c.blocks().len() > 10, "{}", c.blocks().len());
    assert_eq!(c.entries(), 20_000);
    assert_eq!(enc.entries, 20_000);
    assert_eq!(c.from(), entries[0].ts);
    assert_eq!(c.through(), entries[19_999].ts);
    assert_eq!((enc.from, enc.through), (c.from(), c.through()));
    assert_eq!(enc.checksum, crc32c::crc32c(&enc.bytes));
    assert_eq!(c.checksum(), Some(enc.checksum));
    assert_eq!(c.uncompressed_bytes(), enc.uncompressed_bytes);
    assert!(enc.bytes.len() * 4 < enc.uncompressed_bytes as usize, "compresses well");
    c.verify().unwrap();
    assert_eq!(decode_all(&enc.bytes), entries);
}

#[test]
fn builder_accounting() {
    let entries = sample(5_000);
    let mut b = ChunkBuilder::new(8 * 1024);
    assert!(b.is_empty());
    assert_eq!(b.min_ts(), None);
    for e in &entries {
        b.append(e).unwrap();
    }
    assert_eq!(b.entries(), 5_000);
    assert_eq!(b.min_ts(), Some(entries[0].ts));
    assert_eq!(b.max_ts(), Some(entries[4_999].ts));
    let estimate = b.compressed_estimate();
    let raw = b.uncompressed_bytes();
    let cut = b.cut_compressed_bytes();
    assert!(cut > 0 && (cut as usize) < estimate, "cut blocks {cut}, estimate {estimate}");
    let enc = b.finish().unwrap();
    assert_eq!(raw, enc.uncompressed_bytes);
    let actual = enc.bytes.len();
    assert!(estimate.abs_diff(actual) * 5 < actual, "estimate {estimate} actual {actual}");
}

/// A snapshot, with or without an open block, encodes what a finish would, and the builder
/// keeps appending after it.
#[test]
fn snapshot_matches_finish_and_keeps_the_builder() {
    let entries = sample(3000);
    let mut b = ChunkBuilder::new(4096);
    for (i, e) in entries.iter().enumerate() {
        b.append(e).unwrap();
        if i % 700 == 0 {
            let snap = b.snapshot().unwrap();
            assert_eq!(snap, b.clone().finish().unwrap());
            assert_eq!(decode_all(&snap.bytes), entries[..=i].to_vec());
        }
    }
    b.cut_block().unwrap();
    let snap = b.snapshot().unwrap();
    let done = b.finish().unwrap();
    assert_eq!(snap, done);
    assert_eq!(done, build(&entries, 4096, Codec::Zstd));
    assert_eq!(decode_all(&done.bytes), entries);
}

#[test]
fn identical_input_gives_identical_bytes() {
    let entries = sample(3_000);
    assert_eq!(build(&entries, 4096, Codec::Zstd).bytes, build(&entries, 4096, Codec::Zstd).bytes);
}

#[test]
fn out_of_order_and_empty_are_refused() {
    let mut b = ChunkBuilder::default();
    b.append(&entry(10, "a")).unwrap();
    b.append(&entry(10, "b")).unwrap();
    assert!(matches!(b.append(&entry(9, "c")), Err(Error::OutOfOrder { ts: 9, last: 10 })));
    assert_eq!(b.entries(), 2);
    assert!(matches!(ChunkBuilder::default().finish(), Err(Error::Empty)));
}

#[test]
fn oversized_entry_is_refused() {
    let mut b = ChunkBuilder::default();
    let big = entry(1, &"x".repeat(MAX_BLOCK_RAW_LEN));
    assert!(matches!(b.append(&big), Err(Error::EntryTooLarge { .. })));
}

#[test]
fn iter_entries_is_half_open_and_skips_blocks() {
    let entries: Vec<Entry> = (0..1000).map(|i| entry(i * 10, &format!("line {i}"))).collect();
    let enc = build(&entries, 512, Codec::Zstd);
    let c = Chunk::parse(&enc.bytes).unwrap();
    let got: Vec<Entry> = c.iter_entries(2_000, 3_000).collect::<Result<_>>().unwrap();
    assert_eq!(got, entries[200..300].to_vec());
    assert_eq!(c.iter_entries(-100, 0).count(), 0);
    assert_eq!(c.iter_entries(10_000, 20_000).count(), 0);
    assert_eq!(c.iter_entries(i64::MIN, i64::MAX).count(), 1000);
    let overlapping: Vec<usize> = c.blocks_overlapping(2_000, 3_000).collect();
    assert!(!overlapping.is_empty() && overlapping.len() < c.blocks().len());
}

#[test]
fn memmem_style_search_maps_offsets() {
    let entries = vec![entry(1, "GET /a"), entry(2, "POST /b"), entry(3, ""), entry(4, "GET /c")];
    let enc = build(&entries, DEFAULT_BLOCK_SIZE, Codec::Zstd);
    let block = Chunk::parse(&enc.bytes).unwrap().decode_block(0).unwrap();
    let hay = block.lines_bytes();
    let hits: Vec<usize> = hay
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == b"GET")
        .map(|(off, _)| block.entry_index_at_offset(off))
        .collect();
    assert_eq!(hits, vec![0, 3]);
}

#[test]
fn corruption_is_detected_never_panics() {
    let enc = build(&sample(500), 2048, Codec::Zstd);
    let c = Chunk::parse(&enc.bytes).unwrap();
    let first = c.blocks()[0];

    // A flipped byte inside a block payload fails that block's CRC.
    let mut bad = enc.bytes.clone();
    bad[first.offset as usize + 3] ^= 0xff;
    let c = Chunk::parse(&bad).unwrap();
    assert!(matches!(c.decode_block(0), Err(Error::BlockChecksum { index: 0, .. })));
    assert!(c.verify().is_err());
    assert!(c.decode_block(1).is_ok());

    // Every single-byte flip and every truncation is either rejected or decodes cleanly.
    for i in 0..enc.bytes.len() {
        let mut bad = enc.bytes.clone();
        bad[i] = bad[i].wrapping_add(1);
        if let Ok(c) = Chunk::parse(&bad) {
            for b in 0..c.blocks().len() {
                let _ = c.decode_block(b);
                let _ = c.block_stats(b);
            }
        }
        let _ = Chunk::parse(&enc.bytes[..i]);
    }
    assert!(matches!(c.decode_block(999), Err(Error::BlockOutOfRange { .. })));
}

#[test]
fn header_errors() {
    let enc = build(&sample(10), 1024, Codec::Zstd);
    let mut v = enc.bytes.clone();
    v[4] = 9;
    assert!(matches!(Chunk::parse(&v), Err(Error::UnsupportedVersion { version: 9 })));
    let mut v = enc.bytes.clone();
    v[5] = 7;
    assert!(matches!(Chunk::parse(&v), Err(Error::UnsupportedCodec { codec: 7 })));
    assert!(Chunk::parse(b"").is_err());
}

#[test]
fn uncompressed_codec_roundtrips() {
    let entries = sample(300);
    let enc = build(&entries, 1024, Codec::None);
    let c = Chunk::parse(&enc.bytes).unwrap();
    assert_eq!(c.codec(), Codec::None);
    assert_eq!(decode_all(&enc.bytes), entries);
}

/// The statistics of `entries` (one block's, ascending) as they must be recorded.
fn expected_stats(entries: &[Entry], width: i64) -> BlockStats {
    let mut out = BlockStats::default();
    let mut rows: std::collections::BTreeMap<(i64, u32), (u32, u64)> = Default::default();
    for e in entries {
        let end = ((i128::from(e.ts) - 1).div_euclid(i128::from(width)) + 1) * i128::from(width);
        let end = i64::try_from(end).unwrap();
        let set = match out.metadata_sets.iter().position(|s| *s == e.structured_metadata) {
            Some(i) => i as u32,
            None => {
                out.metadata_sets.push(e.structured_metadata.clone());
                (out.metadata_sets.len() - 1) as u32
            }
        };
        let row = rows.entry((end, set)).or_default();
        row.0 += 1;
        row.1 += e.line.len() as u64;
    }
    out.buckets = rows
        .into_iter()
        .map(|((end, set), (entries, line_bytes))| Bucket { end, set, entries, line_bytes })
        .collect();
    out
}

/// Checks every block's statistics against its decoded entries; returns how many blocks
/// have statistics.
fn check_stats(bytes: &[u8]) -> usize {
    let c = Chunk::parse(bytes).unwrap();
    let mut with = 0;
    for i in 0..c.blocks().len() {
        let entries: Vec<Entry> = c.decode_block(i).unwrap().entries().collect();
        let sets: std::collections::HashSet<&[Label]> =
            entries.iter().map(|e| e.structured_metadata.as_slice()).collect();
        if let Some(stats) = c.block_stats(i).unwrap() {
            let width = c.stats_bucket_ns().unwrap();
            assert_eq!(stats, expected_stats(&entries, width), "block {i}");
            with += 1;
        } else if c.stats_bucket_ns().is_some() {
            // only too many distinct metadata sets leave a block without statistics
            let bytes: usize =
                sets.iter().flat_map(|s| s.iter()).map(|l| l.name.len() + l.value.len()).sum();
            assert!(sets.len() > MAX_STATS_METADATA_SETS || bytes > MAX_STATS_METADATA_BYTES);
        }
    }
    with
}

#[test]
fn blocks_carry_bucket_statistics() {
    let s = 1_000_000_000i64;
    let entries: Vec<Entry> =
        (0..3000).map(|i| entry(5 * s + i * (s / 7), &format!("line {i}"))).collect();
    let enc = build(&entries, 2048, Codec::Zstd);
    let c = Chunk::parse(&enc.bytes).unwrap();
    assert_eq!(c.version(), FORMAT_VERSION);
    assert_eq!(c.stats_bucket_ns(), Some(DEFAULT_STATS_BUCKET_NS));
    // the records are compressed: far less than the raw four to five bytes a row
    let v1 = {
        let mut b = ChunkBuilder::new(2048).with_format_version(FORMAT_VERSION_V1);
        entries.iter().for_each(|e| b.append(e).unwrap());
        b.finish().unwrap().bytes.len()
    };
    let rows: usize =
        (0..c.blocks().len()).map(|i| c.block_stats(i).unwrap().unwrap().buckets.len()).sum();
    assert!(enc.bytes.len() - v1 < rows * 3, "{} bytes for {rows} rows", enc.bytes.len() - v1);
    assert!(c.blocks().len() > 5);
    assert_eq!(check_stats(&enc.bytes), c.blocks().len());
    // an entry exactly on a second belongs to the bucket ending there
    let first = c.block_stats(0).unwrap().unwrap();
    assert_eq!(first.metadata_sets, vec![Vec::<Label>::new()]);
    assert_eq!(first.buckets[0], Bucket { end: 5 * s, set: 0, entries: 1, line_bytes: 6 });
    let total: u64 = (0..c.blocks().len())
        .flat_map(|i| c.block_stats(i).unwrap().unwrap().buckets)
        .map(|b| u64::from(b.entries))
        .sum();
    assert_eq!(total, 3000);
    // a coarser width is kept in the chunk
    let mut b = ChunkBuilder::new(2048).with_stats_bucket_ns(10 * s);
    for e in &entries {
        b.append(e).unwrap();
    }
    let enc = b.finish().unwrap();
    assert_eq!(Chunk::parse(&enc.bytes).unwrap().stats_bucket_ns(), Some(10 * s));
    check_stats(&enc.bytes);
}

#[test]
fn statistics_are_kept_per_structured_metadata_set() {
    let level = |v: &str| vec![Label::new("detected_level", v)];
    let mut entries: Vec<Entry> = (0..400)
        .map(|i| Entry {
            ts: i * 100_000_000,
            line: "plain line".into(),
            structured_metadata: if i % 3 == 0 { level("info") } else { level("error") },
        })
        .collect();
    entries[7].structured_metadata.clear();
    // a trace id per line in one stretch: too many sets for those blocks
    for (i, e) in entries.iter_mut().enumerate().skip(250).take(40) {
        e.structured_metadata = vec![Label::new("trace_id", format!("t{i}"))];
    }
    let enc = build(&entries, 1024, Codec::Zstd);
    let c = Chunk::parse(&enc.bytes).unwrap();
    let first = c.block_stats(0).unwrap().unwrap();
    assert_eq!(first.metadata_sets, vec![level("info"), level("error"), vec![]]);
    assert_eq!(first.buckets[0], Bucket { end: 0, set: 0, entries: 1, line_bytes: 10 });
    assert_eq!(first.buckets[1], Bucket { end: 1_000_000_000, set: 0, entries: 3, line_bytes: 30 });
    assert_eq!(first.buckets[2], Bucket { end: 1_000_000_000, set: 1, entries: 6, line_bytes: 60 });
    assert_eq!(first.buckets[3], Bucket { end: 1_000_000_000, set: 2, entries: 1, line_bytes: 10 });
    let without: Vec<usize> =
        (0..c.blocks().len()).filter(|&i| c.block_stats(i).unwrap().is_none()).collect();
    assert!(!without.is_empty() && without.len() < 3, "{without:?}");
    check_stats(&enc.bytes);
}

#[test]
fn possible_duplicates_drop_the_chunks_statistics() {
    // the same line twice at one timestamp, in two blocks: readers keep it once
    let entries = vec![entry(1, "a"), entry(2, "b"), entry(2, "c"), entry(2, "b"), entry(3, "d")];
    let enc = build(&entries, 1, Codec::Zstd);
    let c = Chunk::parse(&enc.bytes).unwrap();
    assert_eq!(c.blocks().len(), 5);
    assert_eq!(c.stats_bucket_ns(), None);
    assert!((0..5).all(|i| c.block_stats(i).unwrap().is_none()));
    assert_eq!(decode_all(&enc.bytes), entries);
    // different lines at one timestamp are fine
    let enc = build(&[entry(2, "b"), entry(2, "c"), entry(3, "b")], 1, Codec::Zstd);
    assert_eq!(check_stats(&enc.bytes), 3);
}

#[test]
fn version_1_is_still_written_and_read() {
    let entries = sample(2_000);
    let mut b = ChunkBuilder::new(4096).with_format_version(FORMAT_VERSION_V1);
    for e in &entries {
        b.append(e).unwrap();
    }
    let enc = b.finish().unwrap();
    assert_eq!(enc.bytes[4], 1);
    let c = Chunk::parse(&enc.bytes).unwrap();
    assert_eq!(c.version(), FORMAT_VERSION_V1);
    assert_eq!(c.stats_bucket_ns(), None);
    assert!((0..c.blocks().len()).all(|i| c.block_stats(i).unwrap().is_none()));
    assert_eq!(decode_all(&enc.bytes), entries);
    // the same blocks as version 2 writes: only the header byte and the trailer differ
    let v2 = build(&entries, 4096, Codec::Zstd);
    let c2 = Chunk::parse(&v2.bytes).unwrap();
    assert_eq!(c.blocks(), c2.blocks());
    assert!(v2.bytes.len() > enc.bytes.len());
}

#[test]
fn corrupt_statistics_are_rejected() {
    let entries: Vec<Entry> = (0..50).map(|i| entry(i * 100_000_000, "x")).collect();
    let enc = build(&entries, DEFAULT_BLOCK_SIZE, Codec::None);
    let c = Chunk::parse(&enc.bytes).unwrap();
    assert_eq!(check_stats(&enc.bytes), 1);
    // rewrite the (only) statistics record: count one entry too many, then fix the CRC
    let trailer_len = u32::from_le_bytes(enc.bytes[enc.bytes.len() - 8..][..4].try_into().unwrap());
    let trailer_start = enc.bytes.len() - FOOTER_LEN - trailer_len as usize;
    let rec_start = trailer_start + 4 + BLOCK_META_LEN + 8 + 1;
    let mut bad = enc.bytes.clone();
    // record (raw with codec none): encoding, 1 set, 0 pairs, row count, first index, set,
    // entries, bytes, ...: bump the first bucket's entries
    assert_eq!(bad[rec_start], 0);
    let first_entries = rec_start + 6;
    assert_eq!(bad[first_entries], c.block_stats(0).unwrap().unwrap().buckets[0].entries as u8);
    bad[first_entries] += 1;
    let crc_at = enc.bytes.len() - FOOTER_LEN - 4;
    let crc = crc32c::crc32c(&bad[trailer_start..crc_at]);
    bad[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    let c = Chunk::parse(&bad).unwrap();
    assert!(matches!(c.block_stats(0), Err(Error::Corrupt { .. })));
    assert!(c.decode_block(0).is_ok());
}

fn arb_entries() -> impl Strategy<Value = Vec<Entry>> {
    let label = ("[a-z_]{0,8}", ".{0,12}").prop_map(|(n, v)| Label::new(n, v));
    let e = (0i64..1_000_000, ".{0,64}", prop::collection::vec(label, 0..4));
    (any::<i64>(), prop::collection::vec(e, 1..200)).prop_map(|(base, raw)| {
        let mut ts = base.clamp(i64::MIN / 2, i64::MAX / 2);
        raw.into_iter()
            .map(|(delta, line, structured_metadata)| {
                ts += delta;
                Entry { ts, line: line.into(), structured_metadata }
            })
            .collect()
    })
}

/// Entries from `(delta, line, metadata kind)` triples, from `base` on: many equal
/// timestamps, mostly a few metadata sets, and now and then a stretch of distinct ones.
fn stats_entries(raw: Vec<(i64, String, u8)>, base: i64) -> Vec<Entry> {
    let mut ts = base;
    let mut entries = Vec::new();
    for (delta, line, meta) in raw {
        ts += if delta % 3 == 0 { 0 } else { delta / 1000 };
        let structured_metadata = match meta {
            0..=9 => vec![],
            10..=29 => vec![Label::new("level", if meta % 2 == 0 { "info" } else { "warn" })],
            30..=38 => vec![Label::new("k", "v"), Label::new("level", "info")],
            _ => vec![Label::new("id", format!("{delta}"))],
        };
        entries.push(Entry { ts, line: line.into(), structured_metadata });
    }
    entries
}

proptest! {
    #[test]
    fn encode_decode_is_identity(entries in arb_entries(), block_size in 1usize..4096, raw in any::<bool>()) {
        let codec = if raw { Codec::None } else { Codec::Zstd };
        let enc = build(&entries, block_size, codec);
        prop_assert_eq!(decode_all(&enc.bytes), entries.clone());
        let c = Chunk::parse(&enc.bytes).unwrap();
        let all: Vec<Entry> = c.iter_entries(i64::MIN, i64::MAX).collect::<Result<_>>().unwrap();
        prop_assert_eq!(all, entries);
    }

    #[test]
    fn statistics_match_the_entries(
        raw in prop::collection::vec((0i64..3_000_000_000, "[ab]{0,3}", 0u8..40), 1..300),
        base in -5_000_000_000i64..5_000_000_000,
        block_size in 1usize..2048,
        width in prop::sample::select(vec![1i64, 7, 1_000_000, 1_000_000_000]),
    ) {
        let entries = stats_entries(raw, base);
        let mut b = ChunkBuilder::new(block_size).with_stats_bucket_ns(width);
        for e in &entries {
            b.append(e).unwrap();
        }
        let enc = b.finish().unwrap();
        check_stats(&enc.bytes);
        let c = Chunk::parse(&enc.bytes).unwrap();
        let mut keys: Vec<(i64, &str)> = entries.iter().map(|e| (e.ts, e.line.as_str().unwrap())).collect();
        keys.sort_unstable();
        let dups = keys.windows(2).any(|w| w[0] == w[1]);
        if dups {
            prop_assert_eq!(c.stats_bucket_ns(), None);
        } else {
            prop_assert_eq!(c.stats_bucket_ns(), Some(width));
        }
    }

    /// Appending from batches (metadata sets looked up by id, line CRCs taken only for
    /// entries that share a timestamp) writes the same bytes as appending entry by entry.
    #[test]
    fn batch_appends_write_the_same_chunk(
        raw in prop::collection::vec((0i64..3_000_000_000, "[ab]{0,3}", 0u8..40), 1..300),
        split in 0usize..300,
        block_size in 1usize..2048,
        width in prop::sample::select(vec![1i64, 7, 1_000_000, 1_000_000_000]),
    ) {
        let entries = stats_entries(raw, 1_000_000_000);
        let mut one = ChunkBuilder::new(block_size).with_stats_bucket_ns(width);
        for e in &entries {
            one.append(e).unwrap();
        }
        let want = one.finish().unwrap();
        // two batches, whose metadata ids differ, read back to front by their indices
        let split = split.min(entries.len());
        let mut b = ChunkBuilder::new(block_size).with_stats_bucket_ns(width);
        for part in [&entries[..split], &entries[split..]] {
            let batch: skald_model::EntryBatch = part.iter().rev().collect();
            let indices: Vec<u32> = (0..part.len() as u32).rev().collect();
            let mid = indices.len() / 2;
            b.append_batch(&batch, &indices[..mid], |e| panic!("{e}"));
            if mid > 0 {
                let snap = b.snapshot().unwrap();
                prop_assert_eq!(snap.entries as usize, b.entries() as usize);
            }
            b.append_batch(&batch, &indices[mid..], |e| panic!("{e}"));
        }
        prop_assert_eq!(b.finish().unwrap(), want);
    }

    #[test]
    fn extreme_timestamps_roundtrip(a in any::<i64>(), b in any::<i64>()) {
        let (lo, hi) = (a.min(b), a.max(b));
        let entries = vec![entry(lo, "a"), entry(hi, "b")];
        let enc = build(&entries, 1 << 20, Codec::Zstd);
        prop_assert_eq!(decode_all(&enc.bytes), entries);
        // statistics of the extreme buckets are checked, or absent past the i64 range
        let _ = Chunk::parse(&enc.bytes).unwrap().block_stats(0).unwrap();
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(c) = Chunk::parse(&data) {
            for i in 0..c.blocks().len() {
                let _ = c.decode_block(i);
                let _ = c.block_stats(i);
            }
        }
    }
}

/// A chunk read as its header and tail, with the payloads of some blocks added: the block
/// index and the statistics are those of the whole chunk, and the entries of a time range
/// read from the blocks overlapping it are exactly the whole chunk's.
fn read_in_parts(bytes: &[u8], tail_len: usize) -> Chunk {
    let data = bytes::Bytes::copy_from_slice(bytes);
    let len = data.len() as u64;
    let tail_offset = data.len() - tail_len;
    let trailer = trailer_range(&data[data.len() - FOOTER_LEN..], len).unwrap();
    assert!(trailer.start >= tail_offset as u64, "the tail must hold the trailer");
    Chunk::from_tail(data.slice(..HEADER_LEN), data.slice(tail_offset..), tail_offset as u64)
        .unwrap()
}

#[test]
fn a_chunk_read_in_parts_answers_as_the_whole() {
    for version in [FORMAT_VERSION, FORMAT_VERSION_V1] {
        for codec in [Codec::Zstd, Codec::None] {
            let entries = sample(5_000);
            let mut b = ChunkBuilder::new(8 * 1024).with_codec(codec).with_format_version(version);
            for e in &entries {
                b.append(e).unwrap();
            }
            let enc = b.finish().unwrap();
            let whole = Chunk::parse(&enc.bytes).unwrap();
            let n = whole.blocks().len();
            assert!(n > 8, "{n}");
            let trailer =
                trailer_range(&enc.bytes[enc.bytes.len() - FOOTER_LEN..], whole.len()).unwrap();
            let tail_len = (whole.len() - trailer.start) as usize;
            let mut part = read_in_parts(&enc.bytes, tail_len);
            assert_eq!(part.blocks(), whole.blocks());
            assert_eq!(part.stats_bucket_ns(), whole.stats_bucket_ns());
            assert_eq!((part.bytes(), part.checksum()), (None, None));
            assert_eq!(part.held_bytes(), (HEADER_LEN + tail_len) as u64);
            for i in 0..n {
                assert_eq!(part.block_stats(i).unwrap(), whole.block_stats(i).unwrap());
                assert!(!part.has_payload(i));
                assert!(
                    matches!(part.decode_block(i), Err(Error::NotFetched { index }) if index == i)
                );
            }
            // a time range inside blocks 3..=5: fetch those payloads only, in one range
            let (from, to) = (whole.blocks()[3].max_ts, whole.blocks()[5].min_ts + 1);
            let needed: Vec<usize> = whole.blocks_overlapping(from, to).collect();
            assert_eq!(needed, vec![3, 4, 5]);
            let ranges = part.missing_ranges(needed.iter().copied(), 0);
            let m = whole.blocks();
            assert_eq!(ranges, vec![m[3].offset..m[5].offset + u64::from(m[5].compressed_len)]);
            for r in ranges {
                let piece = &enc.bytes[r.start as usize..r.end as usize];
                part.add_bytes(r.start, bytes::Bytes::copy_from_slice(piece)).unwrap();
            }
            assert!(part.missing_ranges(needed.iter().copied(), 0).is_empty());
            let got: Vec<Entry> = part.iter_entries(from, to).map(Result::unwrap).collect();
            let want: Vec<Entry> = whole.iter_entries(from, to).map(Result::unwrap).collect();
            let exact: Vec<Entry> =
                entries.iter().filter(|e| e.ts >= from && e.ts < to).cloned().collect();
            assert_eq!(got, want);
            assert_eq!(got, exact);
            // blocks outside stay unfetched; a wider range finds them missing
            assert!(part.has_payload(4) && !part.has_payload(2) && !part.has_payload(6));
            let err = part.iter_entries(whole.from(), whole.through() + 1).find_map(Result::err);
            assert!(matches!(err, Some(Error::NotFetched { index: 0 })), "{err:?}");
            // gaps up to `gap` bytes are fetched in the same range
            let gap = u64::from(m[1].compressed_len);
            assert_eq!(
                part.missing_ranges([0, 2], gap),
                vec![m[0].offset..m[2].offset + u64::from(m[2].compressed_len)]
            );
            assert_eq!(part.missing_ranges([0, 2], gap - 1).len(), 2);
            // a payload that does not match its CRC is found when decoded
            let mut bad = read_in_parts(&enc.bytes, tail_len);
            let mut payload =
                enc.bytes[m[7].offset as usize..][..m[7].compressed_len as usize].to_vec();
            payload[0] ^= 0xff;
            bad.add_bytes(m[7].offset, payload.into()).unwrap();
            assert!(matches!(bad.decode_block(7), Err(Error::BlockChecksum { index: 7, .. })));
            assert!(bad.add_bytes(whole.len() - 1, vec![0, 0].into()).is_err());
        }
    }
}

#[test]
fn a_tail_is_checked_as_the_whole_chunk_is() {
    let enc = build(&sample(2_000), 8 * 1024, Codec::Zstd);
    let data = bytes::Bytes::from(enc.bytes.clone());
    let len = data.len() as u64;
    let trailer = trailer_range(&data[data.len() - FOOTER_LEN..], len).unwrap();
    let t = trailer.start as usize;
    // a tail that misses the trailer's start, a broken trailer, a wrong header
    assert!(Chunk::from_tail(data.slice(..8), data.slice(t + 1..), t as u64 + 1).is_err());
    let mut broken = data[t..].to_vec();
    broken[5] ^= 1;
    let err = Chunk::from_tail(data.slice(..8), broken.into(), t as u64).unwrap_err();
    assert!(err.to_string().contains("trailer checksum"), "{err}");
    let mut header = data[..8].to_vec();
    header[4] = 9;
    let err = Chunk::from_tail(header.into(), data.slice(t..), t as u64).unwrap_err();
    assert!(matches!(err, Error::UnsupportedVersion { version: 9 }));
    // a wrong length (the index's size of another chunk, say) puts the footer elsewhere
    assert!(trailer_range(&data[data.len() - FOOTER_LEN..], len + 1).is_err());
    assert!(trailer_range(&data[data.len() - FOOTER_LEN - 1..len as usize - 1], len).is_err());
    // a tail that starts earlier holds some payloads too
    let last = *Chunk::parse(&data).unwrap().blocks().last().unwrap();
    let c =
        Chunk::from_tail(data.slice(..8), data.slice(last.offset as usize..), last.offset).unwrap();
    let n = c.blocks().len();
    assert!(c.has_payload(n - 1) && !c.has_payload(n - 2));
    assert_eq!(
        c.decode_block(n - 1).unwrap(),
        Chunk::parse(&data).unwrap().decode_block(n - 1).unwrap()
    );
}

#[test]
fn overlapping_pieces_are_all_looked_at() {
    let enc = build(&sample(5_000), 8 * 1024, Codec::Zstd);
    let data = bytes::Bytes::from(enc.bytes.clone());
    let whole = Chunk::from_bytes(data.clone()).unwrap();
    let m = whole.blocks().to_vec();
    let t = trailer_range(&data[data.len() - FOOTER_LEN..], whole.len()).unwrap().start as usize;
    let mut c = Chunk::from_tail(data.slice(..HEADER_LEN), data.slice(t..), t as u64).unwrap();
    let span = |a: usize, b: usize| {
        m[a].offset as usize..(m[b].offset + u64::from(m[b].compressed_len)) as usize
    };
    // blocks 3..=5, then 2..=6 over them: block 6 lies in the later, wider piece only
    c.add_bytes(m[3].offset, data.slice(span(3, 5))).unwrap();
    c.add_bytes(m[2].offset, data.slice(span(2, 6))).unwrap();
    assert_eq!(c.missing_ranges([2, 3, 4, 5, 6], 0), vec![]);
    for i in 2..=6 {
        assert_eq!(c.decode_block(i).unwrap(), whole.decode_block(i).unwrap(), "block {i}");
    }
    assert!(!c.has_payload(1) && !c.has_payload(7));
}
