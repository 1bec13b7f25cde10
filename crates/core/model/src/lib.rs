//! Skald's shared vocabulary: label sets, matchers, log entries, streams, samples and
//! fingerprints. Every other crate speaks in these types.
#![warn(missing_docs)]

mod batch;
/// Label sets, label-name rules and Go-style quoting.
pub mod labels;
mod line;
mod matcher;
mod shard;

pub use batch::{EntryBatch, EntryRef, StreamBatch};
pub use labels::{Label, Labels, LabelsParseError};
pub use line::Line;
pub use matcher::{LabelMatcher, MatchType, MatcherError};
pub use shard::{in_shard, Shard, ShardParseError};

/// Nanoseconds since the Unix epoch.
pub type Timestamp = i64;

/// One log line with its timestamp and structured metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// Nanoseconds since the Unix epoch.
    pub ts: Timestamp,
    /// The log line, exactly as pushed (its bytes, which need not be UTF-8).
    pub line: Line,
    /// Per-entry key/value pairs that are not part of the stream's identity.
    pub structured_metadata: Vec<Label>,
}

/// A labelled sequence of entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stream {
    /// The stream's label set.
    pub labels: Labels,
    /// Entries, in the order they were produced.
    pub entries: Vec<Entry>,
}

/// One point of a time series.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    /// Nanoseconds since the Unix epoch.
    pub ts: Timestamp,
    /// The value.
    pub value: f64,
}

/// A half-open time interval `[start, end)` in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    /// Inclusive start.
    pub start: Timestamp,
    /// Exclusive end.
    pub end: Timestamp,
}

impl TimeRange {
    /// Returns true when `ts` lies in `[start, end)`.
    pub fn contains(&self, ts: Timestamp) -> bool {
        ts >= self.start && ts < self.end
    }

    /// Returns true when the closed interval `[from, through]` overlaps this range.
    pub fn overlaps(&self, from: Timestamp, through: Timestamp) -> bool {
        from < self.end && through >= self.start
    }
}

/// Direction in which log results are returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default).
    #[default]
    Backward,
}

/// Computes the stream fingerprint of `labels` for `tenant`: a stable 64-bit hash used for
/// chunk keys, ring placement and stream maps.
pub fn fingerprint(labels: &Labels) -> u64 {
    labels.hash()
}

/// Identity of an entry across copies (replicas, an ingester and a flushed chunk): xxh3 of its
/// stream's fingerprint and its line. With the timestamp it tells one entry from another.
pub fn entry_hash(stream_fingerprint: u64, line: &[u8]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&stream_fingerprint.to_le_bytes());
    h.update(line);
    h.digest()
}
