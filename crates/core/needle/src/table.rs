//! Filter tables: many chunks' filters in one object, by chunk (`FILTER.md`, "Filter tables").
//! `skald-index` keeps one per tenant, day and flush beside the index; this module owns the
//! byte format only.

use crate::NgramFilter;

/// The first four bytes of a filter table.
pub const TABLE_MAGIC: [u8; 4] = *b"SKFT";
/// The table format version written.
pub const TABLE_VERSION: u8 = 1;
/// Header: magic, version, flags, two reserved bytes, `u32` entry count.
const HEADER_LEN: usize = 12;
/// Per entry before the filter: fingerprint, from, through, checksum, filter length.
const ENTRY_HEAD_LEN: usize = 8 + 8 + 8 + 4 + 4;

/// What identifies a stored chunk: its stream's fingerprint, its first and last timestamps
/// and its checksum (`skald_index::ChunkRef`'s identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId {
    /// The stream's fingerprint.
    pub fingerprint: u64,
    /// The first entry's timestamp, ns.
    pub from: i64,
    /// The last entry's timestamp, ns.
    pub through: i64,
    /// The chunk's CRC32C.
    pub checksum: u32,
}

/// Why bytes are not a filter table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// A table of another version.
    #[error("unsupported filter table version {0}")]
    UnsupportedVersion(u8),
    /// Anything else: what is wrong.
    #[error("corrupt filter table: {0}")]
    Corrupt(&'static str),
    /// An entry's filter is not one.
    #[error("corrupt filter table: {0}")]
    Filter(#[from] crate::FormatError),
}

/// Chunks' filters by [`ChunkId`], sorted, each chunk once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterTable {
    entries: Vec<(ChunkId, NgramFilter)>,
}

impl FilterTable {
    /// The table of `chunks` (the first filter of a chunk named twice wins).
    pub fn new(chunks: impl IntoIterator<Item = (ChunkId, NgramFilter)>) -> FilterTable {
        let mut entries: Vec<(ChunkId, NgramFilter)> = chunks.into_iter().collect();
        entries.sort_by_key(|(id, _)| *id);
        entries.dedup_by_key(|(id, _)| *id);
        FilterTable { entries }
    }

    /// Chunks in the table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the table holds no chunk.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The filter of chunk `id`, when the table has it.
    pub fn get(&self, id: &ChunkId) -> Option<&NgramFilter> {
        let i = self.entries.binary_search_by_key(id, |(k, _)| *k).ok()?;
        self.entries.get(i).map(|(_, f)| f)
    }

    /// The entries, sorted by chunk.
    pub fn entries(&self) -> &[(ChunkId, NgramFilter)] {
        &self.entries
    }

    /// Approximate bytes held in memory.
    pub fn approx_size(&self) -> usize {
        self.entries.iter().map(|(_, f)| f.bitset_bytes() + 64).sum::<usize>() + 64
    }

    /// The table's bytes (version 1).
    pub fn encode(&self) -> Vec<u8> {
        let body: usize =
            self.entries.iter().map(|(_, f)| ENTRY_HEAD_LEN + f.encoded_len()).sum::<usize>();
        let mut out = Vec::with_capacity(HEADER_LEN + body + 4);
        out.extend_from_slice(&TABLE_MAGIC);
        out.extend_from_slice(&[TABLE_VERSION, 0, 0, 0]);
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for (id, f) in &self.entries {
            out.extend_from_slice(&id.fingerprint.to_le_bytes());
            out.extend_from_slice(&id.from.to_le_bytes());
            out.extend_from_slice(&id.through.to_le_bytes());
            out.extend_from_slice(&id.checksum.to_le_bytes());
            out.extend_from_slice(&(f.encoded_len() as u32).to_le_bytes());
            f.write_to(&mut out);
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a table's bytes; refuses (never panics on) anything malformed.
    pub fn decode(bytes: &[u8]) -> Result<FilterTable, TableError> {
        use TableError::Corrupt;
        let (body, crc) = bytes.split_last_chunk::<4>().ok_or(Corrupt("too short"))?;
        if crc32c::crc32c(body) != u32::from_le_bytes(*crc) {
            return Err(Corrupt("checksum mismatch"));
        }
        let (head, mut rest) =
            body.split_first_chunk::<HEADER_LEN>().ok_or(Corrupt("too short"))?;
        if head[..4] != TABLE_MAGIC {
            return Err(Corrupt("bad magic"));
        }
        if head[4] != TABLE_VERSION {
            return Err(TableError::UnsupportedVersion(head[4]));
        }
        if head[5..8] != [0, 0, 0] {
            return Err(Corrupt("unknown flags"));
        }
        let count = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
        if count > rest.len() / ENTRY_HEAD_LEN {
            return Err(Corrupt("entry count exceeds the bytes"));
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let (e, tail) =
                rest.split_first_chunk::<ENTRY_HEAD_LEN>().ok_or(Corrupt("truncated entry"))?;
            let u64_at = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&e[i..i + 8]);
                u64::from_le_bytes(b)
            };
            let u32_at = |i: usize| u32::from_le_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
            let id = ChunkId {
                fingerprint: u64_at(0),
                from: u64_at(8) as i64,
                through: u64_at(16) as i64,
                checksum: u32_at(24),
            };
            let len = u32_at(28) as usize;
            if len > tail.len() {
                return Err(Corrupt("truncated filter"));
            }
            let (f, tail) = tail.split_at(len);
            entries.push((id, NgramFilter::from_bytes(f)?));
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(Corrupt("trailing bytes"));
        }
        if !entries.is_sorted_by(|a, b| a.0 < b.0) {
            return Err(Corrupt("entries out of order"));
        }
        Ok(FilterTable { entries })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn id(fingerprint: u64, from: i64, through: i64) -> ChunkId {
        ChunkId { fingerprint, from, through, checksum: fingerprint as u32 ^ 0xabcd }
    }

    fn filter_of(text: &str) -> NgramFilter {
        let mut f = NgramFilter::for_text_len(64 * 1024);
        f.add(text.as_bytes());
        f
    }

    #[test]
    fn a_table_round_trips_and_answers_by_chunk() {
        let (a, b) = (id(1, 10, 20), id(2, 10, 20));
        let t = FilterTable::new([(b, filter_of("user=bob")), (a, filter_of("needle-7f3a9c"))]);
        let back = FilterTable::decode(&t.encode()).unwrap();
        assert_eq!(back, t);
        assert!(back.get(&a).unwrap().may_contain(b"needle-7f3a9c"));
        assert!(!back.get(&a).unwrap().may_contain(b"user=bob"));
        assert!(back.get(&b).unwrap().may_contain(b"user=bob"));
        // same fingerprint and bounds, another checksum: another chunk
        assert!(back.get(&ChunkId { checksum: 9, ..a }).is_none());
        assert_eq!(back.len(), 2);
        assert_eq!(back.entries()[0].0, a);
    }

    #[test]
    fn malformed_tables_are_refused_not_panicked_on() {
        let bytes = FilterTable::new([(id(1, 10, 20), filter_of("abcdef"))]).encode();
        for cut in 0..bytes.len() {
            assert!(FilterTable::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[14] ^= 1;
        assert_eq!(FilterTable::decode(&flipped), Err(TableError::Corrupt("checksum mismatch")));
        // a valid checksum over a bad version, bad flags, a bad filter
        let resealed = |at: usize, v: u8| {
            let mut b = bytes[..bytes.len() - 4].to_vec();
            b[at] = v;
            let crc = crc32c::crc32c(&b);
            b.extend_from_slice(&crc.to_le_bytes());
            FilterTable::decode(&b)
        };
        assert_eq!(resealed(4, 2), Err(TableError::UnsupportedVersion(2)));
        assert_eq!(resealed(6, 1), Err(TableError::Corrupt("unknown flags")));
        assert!(matches!(resealed(12 + 32, b'X'), Err(TableError::Filter(_))));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = FilterTable::decode(&bytes);
        }

        /// A table keeps each filter's answers: every substring of its text may be present.
        #[test]
        fn a_table_keeps_every_substring(text in "[a-z0-9=-]{3,300}", at in 0usize..300, len in 3usize..20) {
            let c = id(5, 1, 2);
            let t = FilterTable::decode(&FilterTable::new([(c, filter_of(&text))]).encode()).unwrap();
            let start = at.min(text.len() - 3);
            let end = (start + len).min(text.len());
            prop_assert!(t.get(&c).unwrap().may_contain(&text.as_bytes()[start..end]));
        }
    }
}
