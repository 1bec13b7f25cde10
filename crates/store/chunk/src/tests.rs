use proptest::prelude::*;
use skald_model::{Entry, Label};

use crate::*;

fn entry(ts: i64, line: &str) -> Entry {
    Entry { ts, line: line.to_string(), structured_metadata: vec![] }
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
            ),
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
    assert_eq!(c.checksum(), enc.checksum);
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

fn arb_entries() -> impl Strategy<Value = Vec<Entry>> {
    let label = ("[a-z_]{0,8}", ".{0,12}").prop_map(|(n, v)| Label::new(n, v));
    let e = (0i64..1_000_000, ".{0,64}", prop::collection::vec(label, 0..4));
    (any::<i64>(), prop::collection::vec(e, 1..200)).prop_map(|(base, raw)| {
        let mut ts = base.clamp(i64::MIN / 2, i64::MAX / 2);
        raw.into_iter()
            .map(|(delta, line, structured_metadata)| {
                ts += delta;
                Entry { ts, line, structured_metadata }
            })
            .collect()
    })
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
    fn extreme_timestamps_roundtrip(a in any::<i64>(), b in any::<i64>()) {
        let (lo, hi) = (a.min(b), a.max(b));
        let entries = vec![entry(lo, "a"), entry(hi, "b")];
        prop_assert_eq!(decode_all(&build(&entries, 1 << 20, Codec::Zstd).bytes), entries);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(c) = Chunk::parse(&data) {
            for i in 0..c.blocks().len() {
                let _ = c.decode_block(i);
            }
        }
    }
}
