//! One block's raw (uncompressed) layout: the head buffers that build it and the columnar
//! [`DecodedBlock`] that reading it produces.

use std::ops::Range;

use skald_model::{Entry, Label};

use crate::error::{Error, Result};
use crate::varint::{put_uvarint, unzigzag, uvarint_len, zigzag, Reader};

/// How many of the latest distinct metadata sets a decoding entry is compared with.
const RECENT_SETS: usize = 8;

/// Smallest raw size of one entry: a one-byte timestamp varint, line length and metadata count.
pub(crate) const MIN_ENTRY_RAW_LEN: usize = 3;

/// The open block of a builder: four column buffers, concatenated when the block is cut.
#[derive(Debug, Default, Clone)]
pub(crate) struct HeadBlock {
    timestamps: Vec<u8>,
    line_lens: Vec<u8>,
    lines: Vec<u8>,
    metadata: Vec<u8>,
    pub(crate) entries: u32,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    /// Column lengths (plus an eighth) of the last block cut: what the next block reserves
    /// when its first entry arrives.
    last_block_lens: [usize; 4],
}

impl HeadBlock {
    /// Raw size of the block built so far.
    pub(crate) fn raw_len(&self) -> usize {
        self.timestamps.len() + self.line_lens.len() + self.lines.len() + self.metadata.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Raw bytes `entry` would add to this block (an upper bound for the timestamp varint).
    #[inline]
    pub(crate) fn entry_raw_len(line: &[u8], structured_metadata: &[Label]) -> usize {
        10 + uvarint_len(line.len() as u64)
            + line.len()
            + Self::metadata_raw_len(structured_metadata)
    }

    /// Raw bytes of one entry's structured metadata in the metadata column.
    #[inline]
    fn metadata_raw_len(structured_metadata: &[Label]) -> usize {
        let mut n = uvarint_len(structured_metadata.len() as u64);
        for l in structured_metadata {
            n += uvarint_len(l.name.len() as u64) + l.name.len();
            n += uvarint_len(l.value.len() as u64) + l.value.len();
        }
        n
    }

    /// Appends one entry; the caller guarantees `entry.ts >= self.max_ts` when not empty.
    pub(crate) fn push(&mut self, ts: i64, line: &[u8], structured_metadata: &[Label]) {
        if self.entries == 0 {
            // the columns were released at the last cut: make room for a block like that
            // one at once rather than growing (and copying) their way up to it
            let [t, n, l, m] = self.last_block_lens;
            self.timestamps.reserve(t);
            self.line_lens.reserve(n);
            self.lines.reserve(l);
            self.metadata.reserve(m);
            put_uvarint(&mut self.timestamps, zigzag(ts));
            self.min_ts = ts;
        } else {
            // Sorted input: the delta is non-negative and fits in u64 even across the i64 range.
            put_uvarint(&mut self.timestamps, ts.wrapping_sub(self.max_ts) as u64);
        }
        self.max_ts = ts;
        put_uvarint(&mut self.line_lens, line.len() as u64);
        self.lines.extend_from_slice(line);
        put_uvarint(&mut self.metadata, structured_metadata.len() as u64);
        for l in structured_metadata {
            put_uvarint(&mut self.metadata, l.name.len() as u64);
            self.metadata.extend_from_slice(l.name.as_bytes());
            put_uvarint(&mut self.metadata, l.value.len() as u64);
            self.metadata.extend_from_slice(l.value.as_bytes());
        }
        self.entries += 1;
    }

    /// The last `len` bytes of the line column: the last line pushed, when `len` is its length.
    pub(crate) fn last_line(&self, len: usize) -> &[u8] {
        &self.lines[self.lines.len().saturating_sub(len)..]
    }

    /// Writes the columns into `raw` (cleared first) in the raw block layout, and resets the
    /// head, releasing its buffers: a builder between blocks holds no raw data (the ingester
    /// fills a block and cuts it at once, and kept a block-sized idle buffer per stream).
    /// Returns the columns' lengths (timestamps, line lengths, lines, metadata), in `raw`'s
    /// order.
    pub(crate) fn take_raw_into(&mut self, raw: &mut Vec<u8>) -> [usize; 4] {
        raw.clear();
        raw.reserve(self.raw_len());
        let lens = [&self.timestamps, &self.line_lens, &self.lines, &self.metadata].map(Vec::len);
        // a little more than this block's lengths: blocks of a stream are much alike
        self.last_block_lens = [&self.timestamps, &self.line_lens, &self.lines, &self.metadata]
            .map(|c| c.len() + c.len() / 8);
        for column in
            [&mut self.timestamps, &mut self.line_lens, &mut self.lines, &mut self.metadata]
        {
            raw.extend_from_slice(&std::mem::take(column));
        }
        self.entries = 0;
        lens
    }
}

/// A decompressed block in columnar form.
///
/// The distinct `(name, value)` pairs of a metadata column as the head writes it (the
/// builder's own bytes: a pair that does not read as UTF-8 is left out, which cannot happen).
pub(crate) fn metadata_pairs(column: &[u8]) -> std::collections::HashSet<(&str, &str)> {
    let mut out = std::collections::HashSet::new();
    let mut r = Reader::new(column);
    fn text<'a>(r: &mut Reader<'a>) -> Option<&'a str> {
        let len = usize::try_from(r.uvarint("metadata").ok()?).ok()?;
        std::str::from_utf8(r.bytes(len, "metadata").ok()?).ok()
    }
    // an entry whose metadata bytes are the previous entry's adds nothing (runs of one set,
    // such as `detected_level`, are the common case): only a new span is read into the set
    let mut previous: &[u8] = &[];
    while r.remaining() > 0 {
        let at = column.len() - r.remaining();
        let Ok(pairs) = r.uvarint("metadata") else { break };
        let body = column.len() - r.remaining();
        for _ in 0..pairs.saturating_mul(2) {
            let Some(len) = r.uvarint("metadata").ok().and_then(|l| usize::try_from(l).ok()) else {
                return out;
            };
            if r.bytes(len, "metadata").is_err() {
                return out;
            }
        }
        let end = column.len() - r.remaining();
        let span = &column[at..end];
        if span == previous {
            continue;
        }
        previous = span;
        let mut pr = Reader::new(&column[body..end]);
        for _ in 0..pairs {
            if let (Some(name), Some(value)) = (text(&mut pr), text(&mut pr)) {
                out.insert((name, value));
            }
        }
    }
    out
}

/// All line bytes sit back to back in one buffer ([`DecodedBlock::lines_bytes`]), so a line
/// filter can search the whole block with one `memmem` pass and then map each match offset to
/// its entry with [`DecodedBlock::entry_index_at_offset`]. Lines are guaranteed valid UTF-8 and
/// every line boundary is a character boundary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecodedBlock {
    timestamps: Vec<i64>,
    line_ends: Vec<u32>,
    lines: Vec<u8>,
    /// The metadata set of each entry (an index into `sets`).
    set_of: Vec<u32>,
    /// The distinct metadata sets of the block.
    sets: Vec<Vec<Label>>,
}

impl DecodedBlock {
    /// Decodes a raw block of `entries` entries whose first and last timestamps must be
    /// `min_ts` and `max_ts`.
    pub(crate) fn decode(raw: &[u8], entries: u32, min_ts: i64, max_ts: i64) -> Result<Self> {
        let n = entries as usize;
        if n == 0 || n.saturating_mul(MIN_ENTRY_RAW_LEN) > raw.len() {
            return Err(Error::corrupt("block entry count does not fit its raw length"));
        }
        let mut r = Reader::new(raw);

        let mut timestamps = Vec::with_capacity(n);
        let mut ts = unzigzag(r.uvarint("timestamps")?);
        timestamps.push(ts);
        for _ in 1..n {
            let delta = r.uvarint("timestamps")?;
            ts = i64::try_from(i128::from(ts) + i128::from(delta))
                .map_err(|_| Error::corrupt("timestamp overflow"))?;
            timestamps.push(ts);
        }
        if timestamps.first() != Some(&min_ts) || timestamps.last() != Some(&max_ts) {
            return Err(Error::corrupt("block timestamps disagree with the block index"));
        }

        let mut line_ends = Vec::with_capacity(n);
        let mut end: usize = 0;
        for _ in 0..n {
            let len = r.uvarint("line lengths")?;
            end = usize::try_from(len)
                .ok()
                .and_then(|len| end.checked_add(len))
                .filter(|&e| e <= raw.len())
                .ok_or_else(|| Error::corrupt("line lengths exceed the block"))?;
            line_ends.push(end as u32);
        }
        let line_bytes = r.bytes(end, "lines")?;
        // lines are bytes, kept as pushed: they need not be UTF-8
        let lines = line_bytes.to_vec();

        // Entries of a block mostly share a few metadata sets (e.g. `detected_level`): each
        // distinct encoding is decoded once and the entries point at it, so decoding
        // allocates per set, not per entry.
        let mut set_of = Vec::with_capacity(n);
        let mut sets: Vec<Vec<Label>> = Vec::new();
        let mut spans: Vec<&[u8]> = Vec::new();
        for _ in 0..n {
            let at = raw.len() - r.remaining();
            let pairs = r.uvarint("metadata")?;
            // Every pair takes at least two bytes, so this bound also caps the allocation.
            if pairs > (r.remaining() / 2) as u64 {
                return Err(Error::corrupt("metadata pair count exceeds the block"));
            }
            for _ in 0..pairs {
                for what in ["metadata name", "metadata value"] {
                    let len = r.uvarint(what)?;
                    let len = usize::try_from(len)
                        .map_err(|_| Error::corrupt(format!("{what} too long")))?;
                    r.bytes(len, what)?;
                }
            }
            let span = &raw[at..raw.len() - r.remaining()];
            // the previous entry's set first (runs of one set are the common case), then the
            // few latest sets: a block of all-distinct sets (a trace id per entry) stays linear
            let found = match set_of.last() {
                Some(&k) if spans.get(k as usize) == Some(&span) => Some(k),
                _ => {
                    let from = spans.len().saturating_sub(RECENT_SETS);
                    spans[from..].iter().position(|s| *s == span).map(|k| (from + k) as u32)
                }
            };
            let k = match found {
                Some(k) => k,
                None => {
                    let mut sr = Reader::new(span);
                    sr.uvarint("metadata")?;
                    let mut set = Vec::with_capacity(pairs as usize);
                    for _ in 0..pairs {
                        let name = read_string(&mut sr, "metadata name")?;
                        let value = read_string(&mut sr, "metadata value")?;
                        set.push(Label { name, value });
                    }
                    sets.push(set);
                    spans.push(span);
                    (sets.len() - 1) as u32
                }
            };
            set_of.push(k);
        }
        if r.remaining() != 0 {
            return Err(Error::corrupt("trailing bytes after the block's metadata"));
        }
        Ok(DecodedBlock { timestamps, line_ends, lines, set_of, sets })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// True when the block holds no entries (never the case for a decoded block).
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Timestamps (ns), ascending.
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }

    /// Exclusive end offset of each line within [`DecodedBlock::lines_bytes`].
    pub fn line_ends(&self) -> &[u32] {
        &self.line_ends
    }

    /// Every line's bytes, concatenated without separators.
    pub fn lines_bytes(&self) -> &[u8] {
        &self.lines
    }

    /// Timestamp of entry `i`.
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn ts(&self, i: usize) -> i64 {
        self.timestamps[i]
    }

    /// Byte range of line `i` within [`DecodedBlock::lines_bytes`].
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn line_range(&self, i: usize) -> Range<usize> {
        let start = if i == 0 { 0 } else { self.line_ends[i - 1] as usize };
        start..self.line_ends[i] as usize
    }

    /// Line of entry `i`.
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn line(&self, i: usize) -> &[u8] {
        self.lines.get(self.line_range(i)).unwrap_or_default()
    }

    /// Structured metadata of entry `i`, borrowed.
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn structured_metadata_slice(&self, i: usize) -> &[Label] {
        self.sets.get(self.set_of[i] as usize).map_or(&[], Vec::as_slice)
    }

    /// Structured metadata of entry `i`, owned.
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn structured_metadata(&self, i: usize) -> Vec<Label> {
        self.structured_metadata_slice(i).to_vec()
    }

    /// Entry `i` as an owned [`Entry`].
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn entry(&self, i: usize) -> Entry {
        Entry {
            ts: self.ts(i),
            line: self.line(i).into(),
            structured_metadata: self.structured_metadata(i),
        }
    }

    /// Index of the entry whose line contains byte `offset` of [`DecodedBlock::lines_bytes`].
    /// Empty lines contain no offset and are never returned. Returns `self.len()` when
    /// `offset` is past the last line.
    pub fn entry_index_at_offset(&self, offset: usize) -> usize {
        self.line_ends.partition_point(|&end| (end as usize) <= offset)
    }

    /// Index of the first entry with `ts >= t` (`self.len()` when none).
    pub fn first_index_at_or_after(&self, t: i64) -> usize {
        self.timestamps.partition_point(|&ts| ts < t)
    }

    /// Iterates over all entries as owned values.
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        (0..self.len()).map(|i| self.entry(i))
    }
}

fn read_string(r: &mut Reader<'_>, what: &str) -> Result<String> {
    let len = r.uvarint(what)?;
    let len = usize::try_from(len).map_err(|_| Error::corrupt(format!("{what} too long")))?;
    let bytes = r.bytes(len, what)?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::corrupt(format!("{what} is not valid utf-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ts: i64, line: &str) -> Entry {
        Entry { ts, line: line.into(), structured_metadata: vec![] }
    }

    fn build(entries: &[Entry]) -> DecodedBlock {
        let mut h = HeadBlock::default();
        for x in entries {
            h.push(x.ts, &x.line, &x.structured_metadata);
        }
        let (n, min, max) = (h.entries, h.min_ts, h.max_ts);
        let mut raw = b"stale".to_vec();
        h.take_raw_into(&mut raw);
        DecodedBlock::decode(&raw, n, min, max).unwrap()
    }

    #[test]
    fn offsets_map_to_entries_skipping_empty_lines() {
        let b = build(&[e(1, "abc"), e(2, ""), e(3, "de"), e(3, "f")]);
        assert_eq!(b.lines_bytes(), b"abcdef");
        assert_eq!(b.line_ends(), &[3, 3, 5, 6]);
        assert_eq!(b.entry_index_at_offset(0), 0);
        assert_eq!(b.entry_index_at_offset(2), 0);
        assert_eq!(b.entry_index_at_offset(3), 2);
        assert_eq!(b.entry_index_at_offset(5), 3);
        assert_eq!(b.entry_index_at_offset(6), 4);
        assert_eq!(b.line(1), b"");
        assert_eq!(b.line(2), b"de");
        assert_eq!(b.first_index_at_or_after(3), 2);
    }

    #[test]
    fn lines_need_not_be_utf8() {
        // Two lines of lengths 1 and 1 over the bytes c3 a9 (one "\u{e9}" split in two):
        // lines are bytes, kept as pushed (Loki keeps a Go string's bytes)
        let raw = [0x02, 0x00, 0x01, 0x01, 0xc3, 0xa9, 0x00, 0x00];
        let b = DecodedBlock::decode(&raw, 2, 1, 1).unwrap();
        assert_eq!((b.line(0), b.line(1)), (&[0xc3][..], &[0xa9][..]));
    }
}
