//! No false negatives over random lines and substrings (also case-changed, folded and
//! unioned), the pinned hash and byte format, and `from_bytes` on random bytes.

use proptest::prelude::*;

use super::*;

fn filter(n: u8, log2: u8, lines: &[&[u8]]) -> NgramFilter {
    let mut f = NgramFilter::new(n, log2).unwrap();
    for l in lines {
        f.add(l);
    }
    f
}

#[test]
fn finds_what_was_added() {
    let f = filter(3, 12, &[b"level=info msg=\"needle-5kald-7f3a9c found\"", b"GET /api/v1"]);
    assert!(f.may_contain(b"needle-5kald-7f3a9c"));
    assert!(f.may_contain(b"NEEDLE-5KALD"));
    assert!(f.may_contain(b"get /API"));
    assert!(!f.may_contain(b"needle-0000-zzzz"));
    // shorter than n: cannot decide
    assert!(f.may_contain(b"zq"));
    assert!(f.may_contain(b""));
    // n-grams across two added texts are not there
    assert!(!f.may_contain(b"found\"GET"));
    let g = filter(4, 12, &[b"abcdef"]);
    assert!(g.may_contain(b"abcd") && g.may_contain(b"cdef") && g.may_contain(b"abc"));
    assert!(!g.may_contain(b"bcdx"));
}

#[test]
fn clauses() {
    let f = filter(3, 12, &[b"error: disk full on sda1"]);
    let c = |v: &[&'static [u8]]| v.to_vec();
    assert!(f.may_match(Vec::<Vec<&[u8]>>::new()));
    assert!(f.may_match([c(&[b"disk"]), c(&[b"nothing", b"full"])]));
    assert!(!f.may_match([c(&[b"disk"]), c(&[b"nothing", b"zzzz"])]));
    // an empty clause cannot be decided
    assert!(f.may_match([c(&[])]));
    let mut l = NgramFilter::new(3, 10).unwrap();
    l.add_label("trace_id", "abc123");
    assert!(l.may_have_label("trace_id", "abc123"));
    assert!(!l.may_have_label("trace_id", "abc124"));
}

#[test]
fn hash_and_bytes_are_pinned() {
    // a change here breaks every stored filter: bump the version instead (FILTER.md)
    assert_eq!(hash(u32::from_le_bytes(*b"abc\0")), 0x3f0d_de11);
    assert_eq!(hash(u32::from_le_bytes(*b"abcd")), 0x630d_de11);
    let f = filter(3, 6, &[b"ABCd"]);
    let idx = |g: &[u8; 4]| hash(u32::from_le_bytes(*g)) >> 26;
    let expect = (1u64 << idx(b"abc\0")) | (1u64 << idx(b"bcd\0"));
    let mut bytes = b"SKNG\x01\x03\x06\x00".to_vec();
    bytes.extend_from_slice(&expect.to_le_bytes());
    assert_eq!(f.to_bytes(), bytes);
    assert_eq!((idx(b"abc\0"), idx(b"bcd\0")), (15, 35));
    assert_eq!(NgramFilter::from_bytes(&bytes).unwrap(), f);
}

#[test]
fn fold_is_the_smaller_filter() {
    let lines: Vec<Vec<u8>> =
        (0..200).map(|i| format!("line {i} user=u{} x{}", i * 7, i % 13).into_bytes()).collect();
    let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    let big = filter(3, 14, &refs);
    for k in (MIN_LOG2_BITS..14).rev() {
        assert_eq!(big.folded_to(k).unwrap(), filter(3, k, &refs), "{k}");
    }
    assert!(big.fold().unwrap().fill() >= big.fill());
    assert!(filter(3, 6, &refs).fold().is_none());
    let small = big.clone().shrink(0.5, 8);
    assert!(small.fill() <= 0.5 && small.log2_bits() >= 8);
    assert!(small.log2_bits() < 14);
}

#[test]
fn union_of_sizes() {
    let a = filter(3, 12, &[b"alpha beta"]);
    let b = filter(3, 10, &[b"gamma delta"]);
    let u = a.union(&b).unwrap();
    assert_eq!(u.log2_bits(), 10);
    assert!(u.may_contain(b"alpha") && u.may_contain(b"delta"));
    assert_eq!(u, filter(3, 10, &[b"alpha beta", b"gamma delta"]));
    assert_eq!(a.union(&filter(4, 12, &[])).unwrap_err(), FilterError::MismatchedN(3, 4));
}

#[test]
fn bad_parameters_and_bytes() {
    assert_eq!(NgramFilter::new(5, 10).unwrap_err(), FilterError::UnsupportedN(5));
    assert_eq!(NgramFilter::new(3, 5).unwrap_err(), FilterError::UnsupportedSize(5));
    assert_eq!(NgramFilter::new(3, 31).unwrap_err(), FilterError::UnsupportedSize(31));
    let good = filter(3, 7, &[b"hello"]).to_bytes();
    assert_eq!(NgramFilter::from_bytes(&good[..5]), Err(FormatError::TooShort(5)));
    let with = |i: usize, v: u8| {
        let mut b = good.clone();
        b[i] = v;
        NgramFilter::from_bytes(&b).unwrap_err()
    };
    assert_eq!(with(0, b'X'), FormatError::BadMagic);
    assert_eq!(with(4, 2), FormatError::UnsupportedVersion(2));
    assert_eq!(with(5, 2), FormatError::UnsupportedN(2));
    assert_eq!(with(6, 40), FormatError::UnsupportedSize(40));
    assert_eq!(with(6, 8), FormatError::BadLength { expected: 32, actual: 16 });
    assert_eq!(with(7, 1), FormatError::UnknownFlags(1));
    assert_eq!(
        NgramFilter::from_bytes(&good[..good.len() - 1]),
        Err(FormatError::BadLength { expected: 16, actual: 15 })
    );
    assert_eq!(FormatError::BadMagic.to_string(), "not an n-gram filter (bad magic)");
    assert_eq!(log2_for(256 * 1024, DEFAULT_BITS_PER_BYTE), 13);
    assert_eq!(log2_for(0, DEFAULT_BITS_PER_BYTE), MIN_LOG2_BITS);
    assert_eq!(NgramFilter::for_text_len(4 << 20).log2_bits(), 17);
}

fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..60),
        "[a-zA-Z0-9 =_.:\\-\\[\\]@`{}]{0,60}".prop_map(String::into_bytes),
    ]
}

fn recase(s: &[u8], how: &[bool]) -> Vec<u8> {
    s.iter()
        .zip(how.iter().cycle())
        .map(|(b, up)| if *up { b.to_ascii_uppercase() } else { b.to_ascii_lowercase() })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_false_negatives(lines in proptest::collection::vec(line(), 1..20),
                          picks in proptest::collection::vec((0usize..20, 0usize..60, 3usize..20), 1..8),
                          how in proptest::collection::vec(any::<bool>(), 1..8),
                          n in 3u8..=4, log2 in 6u8..12, split in 0usize..20) {
        let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let f = filter(n, log2, &refs);
        // a chunk's filter: two blocks' filters of different sizes
        let (x, y) = refs.split_at(split.min(refs.len()));
        let u = filter(n, log2 + 1, x).union(&filter(n, log2, y)).unwrap();
        let back = NgramFilter::from_bytes(&f.to_bytes()).unwrap();
        prop_assert_eq!(&back, &f);
        let shrunk = f.clone().shrink(0.9, 6);
        let mut chunk = ChunkFilterBuilder::new(64, 1024);
        let blocks: Vec<NgramFilter> = refs.iter().map(|l| chunk.add_block(l)).collect();
        let chunk = chunk.finish_chunk();
        for (li, a, len) in picks {
            let l = &lines[li % lines.len()];
            if l.len() < 3 {
                continue;
            }
            let a = a % (l.len() - 2);
            let sub = &l[a..(a + len).min(l.len())];
            for filt in [&f, &u, &shrunk, &blocks[li % lines.len()], &chunk] {
                prop_assert!(filt.may_contain(sub), "{:?} in {:?}", sub, l);
                // the case-insensitive path: the literal in another case, and ASCII-lowercased
                prop_assert!(filt.may_contain(&recase(sub, &how)));
                prop_assert!(filt.may_contain(&sub.to_ascii_lowercase()));
                prop_assert!(filt.may_match([vec![b"zzzzzzzq".as_slice(), sub]]));
            }
        }
    }

    #[test]
    fn from_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                               header in any::<bool>(), log2 in 0u8..12, n in 0u8..6) {
        let mut b = bytes;
        if header {
            // a plausible header so that the checks past the magic run too
            let mut h = b"SKNG\x01".to_vec();
            h.extend_from_slice(&[n, log2, 0]);
            h.extend_from_slice(&b);
            b = h;
        }
        if let Ok(f) = NgramFilter::from_bytes(&b) {
            prop_assert_eq!(f.to_bytes(), b);
            let _ = f.may_contain(b"abcdef");
            let _ = f.fold();
        }
    }
}

#[test]
fn chunk_builder() {
    let mut b = ChunkFilterBuilder::new(256 * 1024, 4 << 20);
    let x = b.add_block_with_labels(b"GET /a 200\nGET /b 404\n", [("trace_id", "t-123")]);
    let y = b.add_block(b"POST /c 500\n");
    assert_eq!(b.chunk_len(), 34);
    let chunk = b.finish_chunk();
    // small blocks fold down to the minimum
    assert!(x.log2_bits() < 9, "{x:?}");
    assert!(x.may_contain(b"/b 404") && !x.may_contain(b"POST"));
    assert!(x.may_have_label("trace_id", "t-123") && !y.may_have_label("trace_id", "t-123"));
    assert!(chunk.may_contain(b"POST /c") && chunk.may_contain(b"get /a"));
    assert!(chunk.may_have_label("trace_id", "t-123"));
    assert!(!chunk.may_contain(b"needle-5kald-7f3a9c"));
    // the clauses of a query, as the querier passes them
    let clauses: Vec<Vec<Vec<u8>>> = vec![vec![b"PUT".to_vec(), b"POST".to_vec()]];
    assert!(chunk.may_match(clauses.iter().map(|c| c.iter().map(Vec::as_slice))));
    assert!(!x.may_match(clauses.iter().map(|c| c.iter().map(Vec::as_slice))));
}
