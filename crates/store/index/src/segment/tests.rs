use proptest::prelude::*;
use skald_model::{LabelMatcher, Labels, MatchType};

use super::*;

fn chunk(fp: u64, from: i64, through: i64) -> ChunkRef {
    ChunkRef {
        fingerprint: fp,
        from,
        through,
        checksum: from as u32,
        entries: 10,
        uncompressed_bytes: 1000,
        compressed_bytes: 100,
        stats_bytes: 900,
    }
}

fn labels(s: &str) -> Labels {
    Labels::parse(s).unwrap()
}

fn m(name: &str, op: MatchType, value: &str) -> LabelMatcher {
    LabelMatcher::new(name, op, value).unwrap()
}

fn sample() -> Segment {
    let mut b = SegmentBuilder::new();
    b.add(labels(r#"{app="api", env="prod"}"#), chunk(1, 10, 20));
    b.add(labels(r#"{app="api", env="prod"}"#), chunk(1, 0, 5));
    b.add(labels(r#"{app="api", env="prod"}"#), chunk(1, 10, 20));
    b.add(labels(r#"{app="web", env="dev"}"#), chunk(2, 30, 40));
    b.add(labels(r#"{app="db"}"#), chunk(3, -5, 1));
    b.build()
}

#[test]
fn build_sorts_and_dedups() {
    let s = sample();
    assert_eq!(s.series().len(), 3);
    assert_eq!(s.series()[0].labels, labels(r#"{app="api", env="prod"}"#));
    assert_eq!(s.series()[0].chunks, vec![chunk(1, 0, 5), chunk(1, 10, 20)]);
    assert_eq!((s.from(), s.through()), (-5, 40));
    assert_eq!(s.label_names().collect::<Vec<_>>(), vec!["app", "env"]);
    assert_eq!(s.label_values("app").collect::<Vec<_>>(), vec!["api", "db", "web"]);
    assert_eq!(s.label_values("nope").count(), 0);
}

#[test]
fn encode_decode_roundtrip() {
    let s = sample();
    for compress in [false, true] {
        let bytes = s.encode(compress).unwrap();
        let d = Segment::decode(&bytes).unwrap();
        assert_eq!(d.series, s.series);
        assert_eq!(d.postings, s.postings);
        assert_eq!((d.from, d.through), (s.from, s.through));
    }
    let empty = SegmentBuilder::new().build();
    let d = Segment::decode(&empty.encode(true).unwrap()).unwrap();
    assert!(d.series().is_empty() && !d.overlaps(i64::MIN, i64::MAX));
}

#[test]
fn select_semantics() {
    let s = sample();
    let ids = |ms: &[LabelMatcher]| s.select(ms).iter().collect::<Vec<u32>>();
    // ids: 0 = api/prod, 1 = db, 2 = web/dev
    assert_eq!(ids(&[]), vec![0, 1, 2]);
    assert_eq!(ids(&[m("app", MatchType::Equal, "api")]), vec![0]);
    assert_eq!(ids(&[m("app", MatchType::NotEqual, "api")]), vec![1, 2]);
    assert_eq!(ids(&[m("env", MatchType::Equal, "")]), vec![1]);
    assert_eq!(ids(&[m("env", MatchType::NotEqual, "")]), vec![0, 2]);
    assert_eq!(ids(&[m("env", MatchType::Regex, "prod|")]), vec![0, 1]);
    assert_eq!(ids(&[m("env", MatchType::Regex, "pr.*")]), vec![0]);
    assert_eq!(ids(&[m("env", MatchType::Regex, ".*")]), vec![0, 1, 2]);
    assert_eq!(ids(&[m("env", MatchType::Regex, ".+")]), vec![0, 2]);
    assert_eq!(ids(&[m("env", MatchType::NotRegex, "d.*")]), vec![0, 1]);
    assert_eq!(ids(&[m("env", MatchType::NotRegex, "")]), vec![0, 2]);
    assert_eq!(
        ids(&[m("app", MatchType::Regex, "api|web"), m("env", MatchType::NotEqual, "dev")]),
        vec![0]
    );
    assert_eq!(ids(&[m("missing", MatchType::Equal, "x")]), Vec::<u32>::new());
    assert_eq!(ids(&[m("missing", MatchType::NotEqual, "x")]), vec![0, 1, 2]);
}

#[test]
fn literal_alternatives_detection() {
    assert_eq!(literal_alternatives("a|b-c|"), Some(vec!["a", "b-c", ""]));
    assert_eq!(literal_alternatives("foo"), Some(vec!["foo"]));
    assert_eq!(literal_alternatives(""), Some(vec![""]));
    assert_eq!(literal_alternatives("a.b"), None);
    assert_eq!(literal_alternatives("(?i)a"), None);
    assert_eq!(literal_alternatives("a\\|b"), None);
}

#[test]
fn corruption_is_detected() {
    let bytes = sample().encode(false).unwrap();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x41;
        assert!(Segment::decode(&bad).is_err(), "flip at {i}");
        assert!(Segment::decode(&bytes[..i]).is_err(), "truncated at {i}");
    }
    let mut v = bytes.clone();
    v[4] = 3;
    let n = v.len();
    let crc = crc32c::crc32c(&v[..n - 4]);
    v[n - 4..].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(Segment::decode(&v), Err(Error::UnsupportedVersion { version: 3 })));
}

#[test]
fn version_1_segments_are_still_read() {
    let s = sample();
    for compress in [false, true] {
        let old = s.encode_version(compress, 1).unwrap();
        assert_eq!(old[4], 1);
        let back = Segment::decode(&old).unwrap();
        assert_eq!(back.series().len(), s.series().len());
        for (a, b) in back.series().iter().zip(s.series()) {
            assert_eq!(a.labels, b.labels);
            for (ca, cb) in a.chunks.iter().zip(&b.chunks) {
                // version 1 has no stats size: the raw size stands in for it
                assert_eq!(ca.stats_bytes, cb.uncompressed_bytes);
                assert_eq!(ChunkRef { stats_bytes: cb.stats_bytes, ..*ca }, *cb);
            }
        }
        let new = Segment::decode(&s.encode(compress).unwrap()).unwrap();
        assert_eq!(new.series()[0].chunks[0].stats_bytes, 900);
    }
}

/// Re-checksums `body` tampered after the header so the structural checks get exercised.
fn with_valid_crc(mut raw: Vec<u8>) -> Vec<u8> {
    let n = raw.len();
    let crc = crc32c::crc32c(&raw[..n - 4]);
    raw[n - 4..].copy_from_slice(&crc.to_le_bytes());
    raw
}

proptest! {
    #[test]
    fn select_agrees_with_brute_force(
        series in prop::collection::vec(
            prop::collection::btree_map("[abc]", "[xyz]{0,2}", 0..4), 1..30),
        matchers in prop::collection::vec(
            ("[abcd]", 0..4u8, prop::sample::select(vec!["", "x", "y", "xy", "x|", "x.*", ".*", ".+", "z|zz"])), 0..4),
    ) {
        let mut b = SegmentBuilder::new();
        for (i, pairs) in series.iter().enumerate() {
            b.add(Labels::from_pairs(pairs.clone()), chunk(i as u64, i as i64, i as i64));
        }
        let seg = Segment::decode(&b.encode(true).unwrap()).unwrap();
        let ops = [MatchType::Equal, MatchType::NotEqual, MatchType::Regex, MatchType::NotRegex];
        let ms: Vec<LabelMatcher> = matchers
            .iter()
            .map(|(n, op, v)| {
                let op = ops[*op as usize];
                // `x|` is only meaningful as a regex; keep equality values plain.
                let v = if matches!(op, MatchType::Equal | MatchType::NotEqual) { v.replace(['|', '.', '*', '+'], "") } else { v.to_string() };
                m(n, op, &v)
            })
            .collect();
        let got: Vec<u32> = seg.select(&ms).iter().collect();
        let want: Vec<u32> = seg
            .series()
            .iter()
            .enumerate()
            .filter(|(_, s)| LabelMatcher::all_match(&ms, &s.labels))
            .map(|(i, _)| i as u32)
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256), fix_crc in any::<bool>()) {
        let mut v = data;
        if v.len() >= SEGMENT_HEADER_LEN + 4 {
            v[..4].copy_from_slice(&SEGMENT_MAGIC);
            v[4] = SEGMENT_VERSION;
            v[5] &= FLAG_ZSTD;
            v[6] = 0;
            v[7] = 0;
            let body = (v.len() - SEGMENT_HEADER_LEN - 4) as u32;
            v[12..16].copy_from_slice(&body.to_le_bytes());
            if v[5] == 0 {
                v[8..12].copy_from_slice(&body.to_le_bytes());
            }
            if fix_crc {
                v = with_valid_crc(v);
            }
        }
        let _ = Segment::decode(&v);
    }
}
