//! The n-gram filters of format version 3.

use skald_model::{Entry, Label};

use crate::*;

/// 20 blocks of 32 KiB of ordinary lines; `needle` in one line of block 12 or so only, and a
/// trace id in the structured metadata of that line only.
fn needle_chunk(version: u8) -> (EncodedChunk, Vec<Entry>) {
    let mut b = ChunkBuilder::new(32 * 1024).with_format_version(version);
    let mut entries = Vec::new();
    for i in 0..10_000i64 {
        let line = if i == 6_000 {
            "level=error msg=\"payment failed\" id=needle-7f3a9c".to_string()
        } else {
            format!("level=info msg=\"request {i}\" path=/api/v1/thing/{} status=200", i % 97)
        };
        let structured_metadata = if i == 6_000 {
            vec![Label::new("trace_id", "abcdef0123456789")]
        } else {
            vec![Label::new("detected_level", "info")]
        };
        let e = Entry { ts: 1_000 + i * 1_000_000, line: line.into(), structured_metadata };
        b.append(&e).unwrap();
        entries.push(e);
    }
    (b.finish().unwrap(), entries)
}

fn block_of(c: &Chunk, ts: i64) -> usize {
    c.blocks().iter().position(|m| m.min_ts <= ts && ts <= m.max_ts).unwrap()
}

#[test]
fn blocks_and_the_chunk_carry_filters() {
    let (enc, entries) = needle_chunk(FORMAT_VERSION);
    assert_eq!(enc.bytes[4], 3);
    let c = Chunk::parse(&enc.bytes).unwrap();
    assert!(c.has_filters());
    let n = c.blocks().len();
    assert!(n > 15, "{n}");
    let hit = block_of(&c, entries[6_000].ts);
    let chunk = c.chunk_filter().unwrap();
    assert!(chunk.may_contain(b"needle-7f3a9c"));
    assert!(chunk.may_contain(b"NEEDLE-7F3A9C"), "case-folded");
    assert!(!chunk.may_contain(b"needle-0000zz"));
    assert!(chunk.may_have_label("trace_id", "abcdef0123456789"));
    assert!(!chunk.may_have_label("trace_id", "9999999999999999"));
    let mut rejecting = 0;
    for i in 0..n {
        let f = c.block_filter(i).unwrap();
        // no false negatives: every line's substrings and every metadata pair pass
        for e in
            entries.iter().filter(|e| c.blocks()[i].min_ts <= e.ts && e.ts <= c.blocks()[i].max_ts)
        {
            assert!(f.may_contain(e.line.as_bytes()));
            assert!(f.may_contain(&e.line.as_bytes()[5..]));
            for l in &e.structured_metadata {
                assert!(f.may_have_label(&l.name, &l.value));
            }
        }
        if i == hit {
            assert!(f.may_contain(b"needle-7f3a9c"));
            assert!(f.may_have_label("trace_id", "abcdef0123456789"));
        } else if !f.may_contain(b"needle-7f3a9c")
            && !f.may_have_label("trace_id", "abcdef0123456789")
        {
            rejecting += 1;
        }
    }
    assert!(rejecting + 2 >= n, "{rejecting} of {n} blocks reject the needle");
    assert!(c.block_filter(n).is_none());
}

#[test]
fn a_tail_holds_the_filters() {
    let (enc, _) = needle_chunk(FORMAT_VERSION);
    let whole = Chunk::parse(&enc.bytes).unwrap();
    let len = enc.bytes.len() as u64;
    let trailer = trailer_range(&enc.bytes[enc.bytes.len() - FOOTER_LEN..], len).unwrap();
    let header = bytes::Bytes::copy_from_slice(&enc.bytes[..HEADER_LEN]);
    let tail = bytes::Bytes::copy_from_slice(&enc.bytes[trailer.start as usize..]);
    let part = Chunk::from_tail(header, tail, trailer.start).unwrap();
    assert_eq!(part.chunk_filter(), whole.chunk_filter());
    for i in 0..whole.blocks().len() {
        assert_eq!(part.block_filter(i), whole.block_filter(i));
        assert!(!part.has_payload(i));
    }
}

#[test]
fn older_versions_have_no_filters_and_the_same_blocks() {
    let (v3, entries) = needle_chunk(FORMAT_VERSION);
    let c3 = Chunk::parse(&v3.bytes).unwrap();
    for version in [FORMAT_VERSION_V1, FORMAT_VERSION_V2] {
        let (enc, _) = needle_chunk(version);
        assert_eq!(enc.bytes[4], version);
        let c = Chunk::parse(&enc.bytes).unwrap();
        assert!(!c.has_filters());
        assert!(c.chunk_filter().is_none() && c.block_filter(0).is_none());
        assert_eq!(c.blocks(), c3.blocks());
        let got: Vec<Entry> = c.iter_entries(i64::MIN, i64::MAX).map(Result::unwrap).collect();
        assert_eq!(got, entries);
        assert!(enc.bytes.len() < v3.bytes.len());
    }
    let got: Vec<Entry> = c3.iter_entries(i64::MIN, i64::MAX).map(Result::unwrap).collect();
    assert_eq!(got, entries);
}

#[test]
fn a_builder_that_cut_nothing_holds_no_filter_and_writes_one() {
    let mut b = ChunkBuilder::new(1 << 20);
    b.append(&Entry { ts: 1, line: "hello needle".into(), structured_metadata: vec![] }).unwrap();
    assert!(b.filter_is_none());
    let c = Chunk::parse(&b.finish().unwrap().bytes).unwrap();
    assert!(c.chunk_filter().unwrap().may_contain(b"needle"));
    assert!(!c.block_filter(0).unwrap().may_contain(b"haystack"));
}

/// The block and chunk filters are those of the blocks' lines and their entries' metadata
/// pairs, whether the block's metadata sets come from the statistics (a few sets) or from
/// its metadata column (more sets than the statistics keep).
#[test]
fn filters_are_the_lines_and_metadata_of_each_block() {
    let mut b = ChunkBuilder::new(16 * 1024);
    let mut entries = Vec::new();
    for i in 0..3_000i64 {
        // blocks 0-1 of three sets, then one set per entry (far more than the statistics keep)
        let structured_metadata = if i < 600 {
            vec![Label::new("detected_level", ["info", "warn", "error"][i as usize % 3])]
        } else {
            vec![Label::new("trace_id", format!("t-{i:05}")), Label::new("user", "u1")]
        };
        let line = format!("level=info msg=\"request {i}\" path=/api/v1/thing/{}", i % 97);
        let e = Entry { ts: 1_000 + i, line: line.into(), structured_metadata };
        b.append(&e).unwrap();
        entries.push(e);
    }
    let c = Chunk::parse(&b.finish().unwrap().bytes).unwrap();
    let first = c.blocks()[0].raw_len as usize;
    let mut want =
        skald_needle::ChunkFilterBuilder::new(first, first * crate::builder::FILTER_CHUNK_BLOCKS);
    let mut with_stats = 0;
    for (i, meta) in c.blocks().iter().enumerate() {
        let in_block: Vec<&Entry> =
            entries.iter().filter(|e| meta.min_ts <= e.ts && e.ts <= meta.max_ts).collect();
        let lines: Vec<u8> = in_block.iter().flat_map(|e| e.line.iter().copied()).collect();
        let pairs = in_block
            .iter()
            .flat_map(|e| &e.structured_metadata)
            .map(|l| (l.name.as_str(), l.value.as_str()));
        let f = want.add_block_with_labels(&lines, pairs);
        assert_eq!(c.block_filter(i).unwrap().to_bytes(), f.to_bytes(), "block {i}");
        with_stats += usize::from(c.block_stats(i).unwrap().is_some());
    }
    // both ways of reading a block's metadata sets were taken
    assert!(with_stats > 0 && with_stats < c.blocks().len(), "{with_stats}");
    assert_eq!(c.chunk_filter().unwrap().to_bytes(), want.finish_chunk().to_bytes());
}
