//! Index segments: the immutable per-(tenant, day) files ingesters write when they flush.
//!
//! A segment holds a symbol table, the series (label sets as symbol references, with their
//! chunk refs) and postings (`name -> series`, `name=value -> series`, as roaring bitmaps).
//! The byte layout is documented in the crate's README.

use std::collections::{BTreeMap, BTreeSet};

use roaring::RoaringBitmap;
use skald_model::{Label, LabelMatcher, Labels, MatchType};

use crate::chunk_ref::{sort_dedup, ChunkRef};
use crate::error::{Error, Result};
use crate::varint::{put_uvarint, put_zvarint, Reader};

/// First four bytes of every segment.
pub const SEGMENT_MAGIC: [u8; 4] = *b"SKIX";
/// The segment format version this build writes. It also reads version 1, whose chunk refs
/// lack `stats_bytes` (read as their `uncompressed_bytes`).
pub const SEGMENT_VERSION: u8 = 2;
/// The first segment format version, still readable.
const SEGMENT_VERSION_1: u8 = 1;
/// Header size: magic, version, flags, reserved (2), raw length (u32), body length (u32).
pub const SEGMENT_HEADER_LEN: usize = 16;
/// Largest decoded segment body a reader accepts (1 GiB).
pub const MAX_SEGMENT_RAW_LEN: usize = 1 << 30;
const FLAG_ZSTD: u8 = 1;
/// Smallest encoding of one chunk ref: fingerprint, checksum and six one-byte varints (five
/// in version 1).
const MIN_CHUNK_REF_LEN: usize = 18;

/// One series of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSeries {
    /// The stream's labels.
    pub labels: Labels,
    /// Its chunks, sorted by time, without duplicates.
    pub chunks: Vec<ChunkRef>,
}

/// Postings of one label name.
#[derive(Debug, Clone, PartialEq, Default)]
struct NamePostings {
    /// Series that have the label.
    all: RoaringBitmap,
    /// Series per value.
    values: BTreeMap<String, RoaringBitmap>,
}

/// Collects series and chunk refs, then builds a [`Segment`].
#[derive(Debug, Default, Clone)]
pub struct SegmentBuilder {
    series: BTreeMap<Labels, Vec<ChunkRef>>,
}

impl SegmentBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        SegmentBuilder::default()
    }

    /// Records `chunk` under the series `labels`.
    pub fn add(&mut self, labels: Labels, chunk: ChunkRef) {
        self.series.entry(labels).or_default().push(chunk);
    }

    /// Number of distinct series added.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Builds the segment: series sorted by labels (their ids are their positions), chunks
    /// sorted and deduplicated, postings computed.
    pub fn build(self) -> Segment {
        let mut series = Vec::with_capacity(self.series.len());
        let mut postings: BTreeMap<String, NamePostings> = BTreeMap::new();
        let mut from = i64::MAX;
        let mut through = i64::MIN;
        for (id, (labels, mut chunks)) in self.series.into_iter().enumerate() {
            sort_dedup(&mut chunks);
            for c in &chunks {
                from = from.min(c.from);
                through = through.max(c.through);
            }
            for l in labels.iter() {
                let p = postings.entry(l.name.clone()).or_default();
                p.all.insert(id as u32);
                p.values.entry(l.value.clone()).or_default().insert(id as u32);
            }
            series.push(SegmentSeries { labels, chunks });
        }
        if series.is_empty() {
            (from, through) = (0, 0);
        }
        Segment { from, through, series, postings, raw_len: 0 }
    }

    /// Builds and encodes the segment.
    pub fn encode(self, compress: bool) -> Result<Vec<u8>> {
        self.build().encode(compress)
    }
}

/// A decoded, immutable index segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    from: i64,
    through: i64,
    series: Vec<SegmentSeries>,
    postings: BTreeMap<String, NamePostings>,
    raw_len: usize,
}

impl Segment {
    /// Earliest chunk start in the segment (0 when empty).
    pub fn from(&self) -> i64 {
        self.from
    }

    /// Latest chunk end in the segment (0 when empty).
    pub fn through(&self) -> i64 {
        self.through
    }

    /// All series; a series id is its position.
    pub fn series(&self) -> &[SegmentSeries] {
        &self.series
    }

    /// Label names present in the segment, sorted.
    pub fn label_names(&self) -> impl Iterator<Item = &str> {
        self.postings.keys().map(String::as_str)
    }

    /// Values of label `name` present in the segment, sorted.
    pub fn label_values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.postings.get(name).into_iter().flat_map(|p| p.values.keys().map(String::as_str))
    }

    /// Rough in-memory size, used to weigh the segment in caches.
    pub fn approx_size(&self) -> usize {
        self.raw_len.max(64) * 2
    }

    /// Returns true when some chunk may overlap the closed interval `[from, through]`.
    pub fn overlaps(&self, from: i64, through: i64) -> bool {
        !self.series.is_empty() && self.from <= through && self.through >= from
    }

    /// Returns true when every chunk of the segment lies inside `[from, through]`.
    pub(crate) fn within(&self, from: i64, through: i64) -> bool {
        self.from >= from && self.through <= through
    }

    fn all(&self) -> RoaringBitmap {
        let mut all = RoaringBitmap::new();
        all.insert_range(0..self.series.len() as u32);
        all
    }

    fn absent(&self, name: &str) -> RoaringBitmap {
        let mut all = self.all();
        if let Some(p) = self.postings.get(name) {
            all -= &p.all;
        }
        all
    }

    /// Series whose value of `m.name` satisfies the *positive* form of `m` (`=` for `=`/`!=`,
    /// `=~` for `=~`/`!~`), where a missing label counts as the empty value.
    fn positive_set(&self, m: &LabelMatcher) -> RoaringBitmap {
        let postings = self.postings.get(&m.name);
        let literals = match m.op {
            MatchType::Equal | MatchType::NotEqual => Some(vec![m.value.as_str()]),
            MatchType::Regex | MatchType::NotRegex => literal_alternatives(&m.value),
        };
        let mut set = RoaringBitmap::new();
        let empty_matches = match literals {
            Some(values) => {
                for v in &values {
                    if let Some(b) = postings.and_then(|p| p.values.get(*v)) {
                        set |= b;
                    }
                }
                values.contains(&"")
            }
            None => {
                // The positive regex holds exactly where `m` (=~) holds, or where `m` (!~) fails.
                let want = m.op == MatchType::Regex;
                for (v, b) in postings.iter().flat_map(|p| p.values.iter()) {
                    if m.matches(v) == want {
                        set |= b;
                    }
                }
                m.matches("") == want
            }
        };
        if empty_matches {
            set |= self.absent(&m.name);
        }
        set
    }

    /// Ids of the series that satisfy every matcher. An empty list selects every series.
    /// A matcher that accepts the empty string also accepts series lacking its label.
    pub fn select(&self, matchers: &[LabelMatcher]) -> RoaringBitmap {
        let positive =
            matchers.iter().filter(|m| matches!(m.op, MatchType::Equal | MatchType::Regex));
        let negative =
            matchers.iter().filter(|m| matches!(m.op, MatchType::NotEqual | MatchType::NotRegex));
        let mut result: Option<RoaringBitmap> = None;
        for m in positive {
            let set = self.positive_set(m);
            result = Some(match result {
                Some(r) => r & set,
                None => set,
            });
            if result.as_ref().is_some_and(RoaringBitmap::is_empty) {
                return RoaringBitmap::new();
            }
        }
        let mut result = result.unwrap_or_else(|| self.all());
        for m in negative {
            if result.is_empty() {
                break;
            }
            result -= self.positive_set(m);
        }
        result
    }

    /// Encodes the segment, zstd-compressing the body when `compress` is set.
    pub fn encode(&self, compress: bool) -> Result<Vec<u8>> {
        self.encode_version(compress, SEGMENT_VERSION)
    }

    /// Encodes in format `version` ([`SEGMENT_VERSION`], or 1 for tests of old segments).
    pub(crate) fn encode_version(&self, compress: bool, version: u8) -> Result<Vec<u8>> {
        let mut symbols: BTreeSet<&str> = BTreeSet::new();
        for s in &self.series {
            for l in s.labels.iter() {
                symbols.insert(&l.name);
                symbols.insert(&l.value);
            }
        }
        let index: BTreeMap<&str, u64> =
            symbols.iter().enumerate().map(|(i, s)| (*s, i as u64)).collect();
        let sym = |s: &str| index.get(s).copied().unwrap_or(0);

        let mut body = Vec::new();
        put_zvarint(&mut body, self.from);
        put_zvarint(&mut body, self.through);
        put_uvarint(&mut body, symbols.len() as u64);
        for s in &symbols {
            put_uvarint(&mut body, s.len() as u64);
            body.extend_from_slice(s.as_bytes());
        }
        put_uvarint(&mut body, self.series.len() as u64);
        for s in &self.series {
            put_uvarint(&mut body, s.labels.len() as u64);
            for l in s.labels.iter() {
                put_uvarint(&mut body, sym(&l.name));
                put_uvarint(&mut body, sym(&l.value));
            }
            put_uvarint(&mut body, s.chunks.len() as u64);
            for c in &s.chunks {
                body.extend_from_slice(&c.fingerprint.to_le_bytes());
                put_zvarint(&mut body, c.from);
                put_zvarint(&mut body, c.through);
                body.extend_from_slice(&c.checksum.to_le_bytes());
                put_uvarint(&mut body, u64::from(c.entries));
                put_uvarint(&mut body, c.uncompressed_bytes);
                put_uvarint(&mut body, c.compressed_bytes);
                if version != SEGMENT_VERSION_1 {
                    put_uvarint(&mut body, c.stats_bytes);
                }
            }
        }
        put_uvarint(&mut body, self.postings.len() as u64);
        let mut bitmap = Vec::new();
        let mut put_bitmap = |body: &mut Vec<u8>, b: &RoaringBitmap| {
            bitmap.clear();
            // Writing into a Vec cannot fail.
            let _ = b.serialize_into(&mut bitmap);
            put_uvarint(body, bitmap.len() as u64);
            body.extend_from_slice(&bitmap);
        };
        for (name, p) in &self.postings {
            put_uvarint(&mut body, sym(name));
            put_bitmap(&mut body, &p.all);
            put_uvarint(&mut body, p.values.len() as u64);
            for (value, b) in &p.values {
                put_uvarint(&mut body, sym(value));
                put_bitmap(&mut body, b);
            }
        }
        if body.len() > MAX_SEGMENT_RAW_LEN {
            return Err(Error::corrupt("segment exceeds the maximum size"));
        }

        let raw_len = body.len();
        let (flags, body) = if compress {
            (FLAG_ZSTD, zstd::bulk::compress(&body, 3).map_err(Error::Compress)?)
        } else {
            (0, body)
        };
        let mut out = Vec::with_capacity(SEGMENT_HEADER_LEN + body.len() + 4);
        out.extend_from_slice(&SEGMENT_MAGIC);
        out.push(version);
        out.push(flags);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(raw_len as u32).to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Decodes and validates a segment. Never panics; decompression is capped at the recorded
    /// raw length (at most [`MAX_SEGMENT_RAW_LEN`]), which is only trusted after the CRC
    /// matched.
    pub fn decode(data: &[u8]) -> Result<Segment> {
        if data.len() < SEGMENT_HEADER_LEN + 4 {
            return Err(Error::corrupt("shorter than header and checksum"));
        }
        let (covered, crc) = data.split_at(data.len() - 4);
        if crc32c::crc32c(covered) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(Error::corrupt("checksum mismatch"));
        }
        let mut r = Reader::new(covered);
        if r.bytes(4)? != SEGMENT_MAGIC {
            return Err(Error::corrupt("bad magic"));
        }
        let header = r.bytes(4)?;
        let version = header[0];
        if version != SEGMENT_VERSION && version != SEGMENT_VERSION_1 {
            return Err(Error::UnsupportedVersion { version });
        }
        let flags = header[1];
        if flags & !FLAG_ZSTD != 0 || header[2] != 0 || header[3] != 0 {
            return Err(Error::corrupt("unknown flags"));
        }
        let raw_len = r.u32_le()? as usize;
        let body_len = r.u32_le()? as usize;
        if body_len != r.remaining() {
            return Err(Error::corrupt("body length mismatch"));
        }
        if raw_len > MAX_SEGMENT_RAW_LEN {
            return Err(Error::corrupt("raw length exceeds the maximum"));
        }
        let body = r.bytes(body_len)?;
        let decompressed;
        let raw: &[u8] = if flags & FLAG_ZSTD != 0 {
            let mut out = Vec::with_capacity(raw_len);
            zstd::bulk::Decompressor::new()
                .and_then(|mut d| d.decompress_to_buffer(body, &mut out))
                .map_err(|e| Error::corrupt(format!("decompression failed: {e}")))?;
            decompressed = out;
            &decompressed
        } else {
            body
        };
        if raw.len() != raw_len {
            return Err(Error::corrupt("raw length mismatch"));
        }
        decode_body(raw, version)
    }
}

fn decode_body(raw: &[u8], version: u8) -> Result<Segment> {
    let mut r = Reader::new(raw);
    let from = r.zvarint()?;
    let through = r.zvarint()?;

    let nsyms = r.count(1)?;
    let mut symbols: Vec<String> = Vec::with_capacity(nsyms);
    for _ in 0..nsyms {
        let len = r.count(1)?;
        let s = std::str::from_utf8(r.bytes(len)?)
            .map_err(|_| Error::corrupt("symbol is not utf-8"))?;
        if symbols.last().is_some_and(|prev| prev.as_str() >= s) {
            return Err(Error::corrupt("symbols are not sorted and unique"));
        }
        symbols.push(s.to_owned());
    }
    let symbol = |r: &mut Reader<'_>| -> Result<&String> {
        let i = r.uvarint()?;
        usize::try_from(i)
            .ok()
            .and_then(|i| symbols.get(i))
            .ok_or_else(|| Error::corrupt("symbol reference out of range"))
    };

    let nseries = r.count(2)?;
    if nseries > u32::MAX as usize {
        return Err(Error::corrupt("too many series"));
    }
    let mut series = Vec::with_capacity(nseries);
    for _ in 0..nseries {
        let nlabels = r.count(2)?;
        let mut labels = Vec::with_capacity(nlabels);
        for _ in 0..nlabels {
            let name = symbol(&mut r)?;
            let value = symbol(&mut r)?;
            labels.push(Label::new(name.clone(), value.clone()));
        }
        if labels.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(Error::corrupt("series labels are not sorted and unique"));
        }
        let min_chunk_len =
            if version == SEGMENT_VERSION_1 { MIN_CHUNK_REF_LEN - 1 } else { MIN_CHUNK_REF_LEN };
        let nchunks = r.count(min_chunk_len)?;
        let mut chunks = Vec::with_capacity(nchunks);
        for _ in 0..nchunks {
            let fingerprint = r.u64_le()?;
            let from = r.zvarint()?;
            let through = r.zvarint()?;
            let checksum = r.u32_le()?;
            let entries =
                u32::try_from(r.uvarint()?).map_err(|_| Error::corrupt("entry count overflow"))?;
            let uncompressed_bytes = r.uvarint()?;
            let compressed_bytes = r.uvarint()?;
            let stats_bytes =
                if version == SEGMENT_VERSION_1 { uncompressed_bytes } else { r.uvarint()? };
            chunks.push(ChunkRef {
                fingerprint,
                from,
                through,
                checksum,
                entries,
                uncompressed_bytes,
                compressed_bytes,
                stats_bytes,
            });
        }
        series.push(SegmentSeries { labels: Labels::from_vec(labels), chunks });
    }

    let nnames = r.count(3)?;
    let mut postings = BTreeMap::new();
    for _ in 0..nnames {
        let name = symbol(&mut r)?.clone();
        let all = read_bitmap(&mut r, nseries)?;
        let nvalues = r.count(2)?;
        let mut values = BTreeMap::new();
        for _ in 0..nvalues {
            let value = symbol(&mut r)?.clone();
            values.insert(value, read_bitmap(&mut r, nseries)?);
        }
        postings.insert(name, NamePostings { all, values });
    }
    if r.remaining() != 0 {
        return Err(Error::corrupt("trailing bytes"));
    }
    Ok(Segment { from, through, series, postings, raw_len: raw.len() })
}

fn read_bitmap(r: &mut Reader<'_>, nseries: usize) -> Result<RoaringBitmap> {
    let len = r.count(1)?;
    let bytes = r.bytes(len)?;
    let b = RoaringBitmap::deserialize_from(bytes)
        .map_err(|_| Error::corrupt("bad postings bitmap"))?;
    if b.max().is_some_and(|m| m as usize >= nseries) {
        return Err(Error::corrupt("postings reference a missing series"));
    }
    Ok(b)
}

/// When `re` is a plain alternation of literals (`a|b|c`, possibly with empty branches), returns
/// the literals, so the matcher resolves by postings lookups instead of scanning every value.
pub(crate) fn literal_alternatives(re: &str) -> Option<Vec<&str>> {
    const META: &[char] = &['\\', '.', '+', '*', '?', '(', ')', '[', ']', '{', '}', '^', '$'];
    if re.contains(META) {
        return None;
    }
    Some(re.split('|').collect())
}

#[cfg(test)]
mod tests;
