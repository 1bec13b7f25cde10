//! Per-block statistics (format version 2): how many entries, and how many line bytes, fall
//! into each fixed time bucket, per distinct structured-metadata set. A metric query whose
//! windows start and end on bucket edges (`count_over_time`, `bytes_over_time`, `rate`,
//! `bytes_rate` over a bare selector) can be answered from them without decompressing the
//! block. See `FORMAT.md`.

use skald_model::Label;

use crate::error::{Error, Result};
use crate::varint::{put_uvarint, unzigzag, zigzag, Reader};

/// Width of the statistics buckets this build writes: one second, so that every whole-second
/// step and range (what Grafana and Loki's clients send) falls on bucket edges.
pub const DEFAULT_STATS_BUCKET_NS: i64 = 1_000_000_000;

/// Most distinct structured-metadata sets one block's statistics record; a block with more
/// (say, a trace id per line) gets no statistics.
pub const MAX_STATS_METADATA_SETS: usize = 16;

/// Most bytes (names and values) those sets may take together.
pub const MAX_STATS_METADATA_BYTES: usize = 1024;

/// The entries of one block that fall into one time bucket `(end - width, end]` and carry
/// one structured-metadata set.
///
/// Buckets are closed on the right, as LogQL range windows are, so a window `(s, e]` whose
/// edges are multiples of the width is exactly a run of whole buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bucket {
    /// The bucket's inclusive end, ns: a multiple of the bucket width.
    pub end: i64,
    /// Index into [`BlockStats::metadata_sets`]: the structured metadata of these entries.
    pub set: u32,
    /// Entries with `end - width < ts <= end` and that metadata (at least one).
    pub entries: u32,
    /// Sum of those entries' line lengths in bytes (structured metadata not included).
    pub line_bytes: u64,
}

/// The statistics of one block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockStats {
    /// The distinct structured-metadata sets of the block's entries, each as the entries
    /// carry it (pairs in their order); an entry without metadata has the empty set.
    pub metadata_sets: Vec<Vec<Label>>,
    /// Buckets ascending by `(end, set)`; only non-empty ones.
    pub buckets: Vec<Bucket>,
}

/// Index of the bucket holding `ts`: bucket `b` covers `(b * width, (b + 1) * width]`.
pub(crate) fn bucket_index(ts: i64, width: i64) -> i64 {
    match ts.checked_sub(1) {
        Some(t) => t.div_euclid(width),
        // i128 only at i64::MIN, where `ts - 1` overflows; the quotient always fits an i64
        None => (i128::from(ts) - 1).div_euclid(i128::from(width)) as i64,
    }
}

/// The inclusive end of bucket `index`, `None` past the i64 range.
fn bucket_end(index: i64, width: i64) -> Option<i64> {
    i64::try_from((i128::from(index) + 1) * i128::from(width)).ok()
}

/// Statistics of the open block, kept while entries are appended.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatsHead {
    sets: Vec<Vec<Label>>,
    set_bytes: usize,
    /// Finished rows: (bucket index, set, entries, line bytes), ascending by (index, set).
    rows: Vec<(i64, u32, u32, u64)>,
    /// The bucket being filled, and its (set, entries, line bytes) so far.
    current: Option<i64>,
    /// The inclusive end of bucket `current` (`i64::MAX` past the range): a later timestamp
    /// up to it falls in the same bucket, without a division.
    current_end: i64,
    current_rows: Vec<(u32, u32, u64)>,
    /// False once the block has too many metadata sets to keep statistics.
    usable: bool,
    /// Index into `sets` of each metadata id of the batch being appended
    /// ([`crate::ChunkBuilder::append_batch`]), `u32::MAX` when not yet looked up.
    set_of_id: Vec<u32>,
}

impl StatsHead {
    pub(crate) fn new() -> Self {
        StatsHead { usable: true, ..StatsHead::default() }
    }

    /// Forgets the metadata ids of [`StatsHead::push`]: they name another batch's sets now.
    pub(crate) fn forget_ids(&mut self) {
        self.set_of_id.clear();
    }

    /// Counts one entry (timestamps arrive in ascending order). `id`, when given, stands for
    /// `metadata`: equal ids come with equal metadata until [`StatsHead::forget_ids`].
    pub(crate) fn push(
        &mut self,
        ts: i64,
        line_len: usize,
        metadata: &[Label],
        id: Option<u32>,
        width: i64,
    ) {
        if !self.usable {
            return;
        }
        let known = id.and_then(|id| self.set_of_id.get(id as usize)).filter(|&&s| s != u32::MAX);
        let set = match known {
            Some(&set) => set,
            None => match self.find_set(metadata) {
                Some(set) => {
                    if let Some(id) = id {
                        let id = id as usize;
                        if self.set_of_id.len() <= id {
                            self.set_of_id.resize(id + 1, u32::MAX);
                        }
                        self.set_of_id[id] = set;
                    }
                    set
                }
                None => return,
            },
        };
        // timestamps ascend: one at most `current_end` is in the current bucket
        if self.current.is_none() || ts > self.current_end {
            let index = bucket_index(ts, width);
            self.close_bucket();
            self.current = Some(index);
            self.current_end = bucket_end(index, width).unwrap_or(i64::MAX);
        }
        match self.current_rows.iter_mut().find(|r| r.0 == set) {
            Some(r) => {
                r.1 += 1;
                r.2 += line_len as u64;
            }
            None => self.current_rows.push((set, 1, line_len as u64)),
        }
    }

    /// The index of `metadata` in `sets`, added when new; `None` (and the statistics unusable)
    /// when there is no room for it.
    fn find_set(&mut self, metadata: &[Label]) -> Option<u32> {
        match self.sets.iter().position(|s| s.as_slice() == metadata) {
            Some(i) => Some(i as u32),
            None => {
                self.set_bytes +=
                    metadata.iter().map(|l| l.name.len() + l.value.len()).sum::<usize>();
                if self.sets.len() == MAX_STATS_METADATA_SETS
                    || self.set_bytes > MAX_STATS_METADATA_BYTES
                {
                    self.usable = false;
                    return None;
                }
                self.sets.push(metadata.to_vec());
                Some((self.sets.len() - 1) as u32)
            }
        }
    }

    /// The distinct metadata sets of the entries pushed since the last
    /// [`StatsHead::take_record`] (the open block's), while the statistics keep them all;
    /// `None` once the block has had too many.
    pub(crate) fn metadata_sets(&self) -> Option<&[Vec<Label>]> {
        self.usable.then_some(self.sets.as_slice())
    }

    fn close_bucket(&mut self) {
        if let Some(index) = self.current.take() {
            self.current_rows.sort_unstable_by_key(|r| r.0);
            self.rows.extend(self.current_rows.drain(..).map(|(s, n, b)| (index, s, n, b)));
        }
    }

    /// The block's statistics record, uncompressed (`None` when the block has none), and
    /// resets for the next block.
    pub(crate) fn take_record(&mut self) -> Option<Vec<u8>> {
        self.close_bucket();
        let mut out = None;
        if self.usable && !self.rows.is_empty() {
            let mut rec = Vec::with_capacity(self.rows.len() * 5 + 8);
            put_uvarint(&mut rec, self.sets.len() as u64);
            for set in &self.sets {
                put_uvarint(&mut rec, set.len() as u64);
                for l in set {
                    put_uvarint(&mut rec, l.name.len() as u64);
                    rec.extend_from_slice(l.name.as_bytes());
                    put_uvarint(&mut rec, l.value.len() as u64);
                    rec.extend_from_slice(l.value.as_bytes());
                }
            }
            put_uvarint(&mut rec, self.rows.len() as u64);
            let mut prev = 0i64;
            for (i, &(index, set, entries, bytes)) in self.rows.iter().enumerate() {
                if i == 0 {
                    put_uvarint(&mut rec, zigzag(index));
                } else {
                    // ascending: the gap is not negative and fits in u64
                    put_uvarint(&mut rec, index.wrapping_sub(prev) as u64);
                }
                prev = index;
                put_uvarint(&mut rec, u64::from(set));
                put_uvarint(&mut rec, u64::from(entries));
                put_uvarint(&mut rec, bytes);
            }
            out = Some(rec);
        }
        self.sets.clear();
        self.set_of_id.clear();
        self.set_bytes = 0;
        self.rows.clear();
        self.usable = true;
        out
    }
}

fn read_string(r: &mut Reader<'_>, what: &str) -> Result<String> {
    let len = usize::try_from(r.uvarint(what)?)
        .map_err(|_| Error::corrupt(format!("{what} too long")))?;
    let bytes = r.bytes(len, what)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::corrupt(format!("{what} is not utf-8")))
}

/// Record encodings (the first byte of a stored record).
pub(crate) const RECORD_RAW: u8 = 0;
pub(crate) const RECORD_ZSTD: u8 = 1;

/// Largest uncompressed record a reader accepts for a block of `entries` entries: 40 bytes a
/// row (four varints) and 64 KiB for the metadata sets, far above what writers produce.
fn max_record_len(entries: u32) -> usize {
    64 * 1024 + 40 * entries as usize
}

/// Appends a stored record for `rec` (its encoding byte, then the record, or its length and
/// `packed`, a zstd frame of it, when that is given and smaller) to `out`, after its length.
pub(crate) fn put_record(out: &mut Vec<u8>, rec: &[u8], packed: Option<&[u8]>) {
    let raw_len = rec.len() as u64;
    match packed.filter(|p| p.len() + crate::varint::uvarint_len(raw_len) < rec.len()) {
        Some(p) => {
            put_uvarint(out, (1 + crate::varint::uvarint_len(raw_len) + p.len()) as u64);
            out.push(RECORD_ZSTD);
            put_uvarint(out, raw_len);
            out.extend_from_slice(p);
        }
        None => {
            put_uvarint(out, 1 + raw_len);
            out.push(RECORD_RAW);
            out.extend_from_slice(rec);
        }
    }
}

/// Decodes and checks one block's stored statistics record against the block's index
/// entry: the counts must add up to its entry count, the first and last buckets must hold its
/// first and last timestamps, and the line bytes cannot exceed its raw length. `None` when a
/// bucket end lies outside the i64 range (no usable statistics).
pub(crate) fn decode_block_stats(
    stored: &[u8],
    width: i64,
    meta: &crate::format::BlockMeta,
    index: usize,
) -> Result<Option<BlockStats>> {
    let bad = |reason: &str| Error::corrupt(format!("block {index} statistics: {reason}"));
    let (&encoding, body) = stored.split_first().ok_or_else(|| bad("empty record"))?;
    let unpacked;
    let rec = match encoding {
        RECORD_RAW => body,
        RECORD_ZSTD => {
            let mut r = Reader::new(body);
            let raw_len = usize::try_from(r.uvarint("block statistics")?)
                .ok()
                .filter(|&n| n <= max_record_len(meta.entries))
                .ok_or_else(|| bad("record too long"))?;
            let frame = &body[body.len() - r.remaining()..];
            unpacked = crate::chunk::decompress_capped(frame, raw_len)
                .map_err(|_| bad("record does not decompress"))?;
            if unpacked.len() != raw_len {
                return Err(bad("record length mismatch"));
            }
            unpacked.as_slice()
        }
        _ => return Err(bad("unknown record encoding")),
    };
    let mut r = Reader::new(rec);
    let sets = r.uvarint("block statistics")?;
    if sets == 0 || sets > MAX_STATS_METADATA_SETS as u64 {
        return Err(bad("bad number of metadata sets"));
    }
    let mut metadata_sets = Vec::with_capacity(sets as usize);
    for _ in 0..sets {
        let pairs = r.uvarint("block statistics")?;
        // every pair takes at least two bytes
        if pairs > (r.remaining() / 2) as u64 {
            return Err(bad("metadata pair count exceeds the record"));
        }
        let mut set = Vec::with_capacity(pairs as usize);
        for _ in 0..pairs {
            let name = read_string(&mut r, "statistics metadata name")?;
            let value = read_string(&mut r, "statistics metadata value")?;
            set.push(Label { name, value });
        }
        metadata_sets.push(set);
    }
    let count = r.uvarint("block statistics")?;
    // every row takes at least four bytes and holds at least one entry
    if count == 0 || count > u64::from(meta.entries) || count > (r.remaining() / 4) as u64 {
        return Err(bad("bucket count does not fit"));
    }
    let mut buckets = Vec::with_capacity(count as usize);
    let (mut bucket, mut prev_set) = (0i64, 0u32);
    let (mut entries, mut bytes) = (0u64, 0u64);
    let mut in_range = true;
    for i in 0..count {
        let v = r.uvarint("block statistics")?;
        let set = r.uvarint("block statistics")?;
        let n = r.uvarint("block statistics")?;
        let b = r.uvarint("block statistics")?;
        let set = u32::try_from(set)
            .ok()
            .filter(|&s| (s as usize) < metadata_sets.len())
            .ok_or_else(|| bad("unknown metadata set"))?;
        bucket = if i == 0 {
            unzigzag(v)
        } else {
            let ascending = v > 0 || set > prev_set;
            i64::try_from(i128::from(bucket) + i128::from(v))
                .ok()
                .filter(|_| ascending)
                .ok_or_else(|| bad("buckets are not ascending"))?
        };
        prev_set = set;
        let n = u32::try_from(n).ok().filter(|&n| n > 0).ok_or_else(|| bad("bad entry count"))?;
        entries += u64::from(n);
        bytes = bytes.checked_add(b).ok_or_else(|| bad("line bytes overflow"))?;
        if i == 0 && bucket != bucket_index(meta.min_ts, width) {
            return Err(bad("first bucket does not hold the first entry"));
        }
        match bucket_end(bucket, width) {
            Some(end) => buckets.push(Bucket { end, set, entries: n, line_bytes: b }),
            None => in_range = false,
        }
    }
    if bucket != bucket_index(meta.max_ts, width) {
        return Err(bad("last bucket does not hold the last entry"));
    }
    if entries != u64::from(meta.entries) {
        return Err(bad("counts disagree with the block's entry count"));
    }
    if bytes > u64::from(meta.raw_len) {
        return Err(bad("line bytes exceed the block"));
    }
    if r.remaining() != 0 {
        return Err(bad("trailing bytes"));
    }
    Ok(in_range.then_some(BlockStats { metadata_sets, buckets }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_closed_on_the_right() {
        let s = 1_000_000_000;
        assert_eq!(bucket_index(1, s), 0);
        assert_eq!(bucket_index(s, s), 0);
        assert_eq!(bucket_index(s + 1, s), 1);
        assert_eq!(bucket_index(0, s), -1);
        assert_eq!(bucket_index(-s, s), -2);
        assert_eq!(bucket_index(i64::MIN, s), i64::MIN.div_euclid(s));
        assert_eq!(bucket_end(bucket_index(i64::MAX, s), s), None);
        assert_eq!(bucket_end(bucket_index(1, s), s), Some(s));
    }
}
