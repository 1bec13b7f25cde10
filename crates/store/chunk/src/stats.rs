//! Per-block statistics (format version 2): how many entries, and how many line bytes, fall
//! into each fixed time bucket. A metric query whose windows start and end on bucket edges
//! (`count_over_time`, `bytes_over_time`, `rate`, `bytes_rate` over a bare selector) can be
//! answered from them without decompressing the block. See `FORMAT.md`.

use crate::error::{Error, Result};
use crate::varint::{put_uvarint, unzigzag, zigzag, Reader};

/// Width of the statistics buckets this build writes: one second, so that every whole-second
/// step and range (what Grafana and Loki's clients send) falls on bucket edges.
pub const DEFAULT_STATS_BUCKET_NS: i64 = 1_000_000_000;

/// The entries of one block that fall into one time bucket `(end - width, end]`.
///
/// Buckets are closed on the right, as LogQL range windows are, so a window `(s, e]` whose
/// edges are multiples of the width is exactly a run of whole buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bucket {
    /// The bucket's inclusive end, ns: a multiple of the bucket width.
    pub end: i64,
    /// Entries with `end - width < ts <= end` (at least one).
    pub entries: u32,
    /// Sum of those entries' line lengths in bytes (structured metadata not included).
    pub line_bytes: u64,
}

/// Index of the bucket holding `ts`: bucket `b` covers `(b * width, (b + 1) * width]`.
pub(crate) fn bucket_index(ts: i64, width: i64) -> i64 {
    // i128: `ts - 1` must not overflow at i64::MIN; the quotient always fits an i64.
    (i128::from(ts) - 1).div_euclid(i128::from(width)) as i64
}

/// The inclusive end of bucket `index`, `None` past the i64 range.
fn bucket_end(index: i64, width: i64) -> Option<i64> {
    i64::try_from((i128::from(index) + 1) * i128::from(width)).ok()
}

/// Statistics of the open block, kept while entries are appended.
#[derive(Debug, Clone, Default)]
pub(crate) struct StatsHead {
    /// (bucket index, entries, line bytes), ascending by index.
    buckets: Vec<(i64, u32, u64)>,
    /// False once an entry with structured metadata joined the block: its series in a metric
    /// query then depend on the metadata, which buckets do not record.
    plain: bool,
}

impl StatsHead {
    pub(crate) fn new() -> Self {
        StatsHead { buckets: Vec::new(), plain: true }
    }

    /// Counts one entry (timestamps arrive in ascending order).
    pub(crate) fn push(&mut self, ts: i64, line_len: usize, has_metadata: bool, width: i64) {
        if has_metadata {
            self.plain = false;
        }
        if !self.plain {
            return;
        }
        let index = bucket_index(ts, width);
        match self.buckets.last_mut() {
            Some((last, entries, bytes)) if *last == index => {
                *entries += 1;
                *bytes += line_len as u64;
            }
            _ => self.buckets.push((index, 1, line_len as u64)),
        }
    }

    /// Appends the block's statistics record (`uvarint len`, then the encoded buckets; `len` 0
    /// when the block has none) to `out`, and resets for the next block.
    pub(crate) fn take_into(&mut self, out: &mut Vec<u8>) {
        if self.plain && !self.buckets.is_empty() {
            let mut rec = Vec::with_capacity(self.buckets.len() * 4 + 4);
            put_uvarint(&mut rec, self.buckets.len() as u64);
            let mut prev = 0i64;
            for (i, &(index, entries, bytes)) in self.buckets.iter().enumerate() {
                if i == 0 {
                    put_uvarint(&mut rec, zigzag(index));
                } else {
                    // ascending: the gap is positive and fits in u64
                    put_uvarint(&mut rec, index.wrapping_sub(prev) as u64);
                }
                prev = index;
                put_uvarint(&mut rec, u64::from(entries));
                put_uvarint(&mut rec, bytes);
            }
            put_uvarint(out, rec.len() as u64);
            out.extend_from_slice(&rec);
        } else {
            put_uvarint(out, 0);
        }
        self.buckets.clear();
        self.plain = true;
    }
}

/// Decodes and checks one block's statistics record against the block's index entry: the
/// counts must add up to its entry count, the first and last buckets must hold its first and
/// last timestamps, and the line bytes cannot exceed its raw length. `None` when a bucket end
/// lies outside the i64 range (no usable statistics).
pub(crate) fn decode_block_stats(
    rec: &[u8],
    width: i64,
    meta: &crate::format::BlockMeta,
    index: usize,
) -> Result<Option<Vec<Bucket>>> {
    let bad = |reason: &str| Error::corrupt(format!("block {index} statistics: {reason}"));
    let mut r = Reader::new(rec);
    let count = r.uvarint("block statistics")?;
    // every bucket takes at least three bytes and holds at least one entry
    if count == 0 || count > u64::from(meta.entries) || count > (r.remaining() / 3) as u64 {
        return Err(bad("bucket count does not fit"));
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut bucket = 0i64;
    let (mut entries, mut bytes) = (0u64, 0u64);
    let mut in_range = true;
    for i in 0..count {
        let v = r.uvarint("block statistics")?;
        bucket = if i == 0 {
            unzigzag(v)
        } else {
            i64::try_from(i128::from(bucket) + i128::from(v))
                .ok()
                .filter(|_| v > 0)
                .ok_or_else(|| bad("buckets are not ascending"))?
        };
        let n = r.uvarint("block statistics")?;
        let b = r.uvarint("block statistics")?;
        let n = u32::try_from(n).ok().filter(|&n| n > 0).ok_or_else(|| bad("bad entry count"))?;
        entries += u64::from(n);
        bytes = bytes.checked_add(b).ok_or_else(|| bad("line bytes overflow"))?;
        if i == 0 && bucket != bucket_index(meta.min_ts, width) {
            return Err(bad("first bucket does not hold the first entry"));
        }
        match bucket_end(bucket, width) {
            Some(end) => out.push(Bucket { end, entries: n, line_bytes: b }),
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
    Ok(in_range.then_some(out))
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
