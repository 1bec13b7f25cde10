//! What `index/stats` and `index/volume` need from an ingester: the size of a chunk as Loki
//! counts it, Loki's synchronised chunk cuts (which decide where chunks, and so the index's
//! numbers, begin and end), and the chunks held in memory described as the index will
//! describe them once they are flushed.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use skald_model::{Entry, LabelMatcher};
use skald_proto::chunk_stats::StreamChunks;
use skald_proto::ingester::IngesterQuery;

use crate::{Ingester, IngesterConfig};

/// Loki's `blocksPerChunk`: with `chunk_target_size: 0` a chunk's fill is measured against
/// this many blocks.
const BLOCKS_PER_CHUNK: f64 = 10.0;

/// Bytes an entry adds to a chunk's size as Loki counts it, not counting the distinct
/// structured-metadata strings: its line, and 8 bytes (two 4-byte symbol references) per
/// structured-metadata pair.
pub(crate) fn entry_stats_bytes(e: &Entry) -> u64 {
    e.line.len() as u64 + 8 * e.structured_metadata.len() as u64
}

/// The size of a chunk being built, as Loki's chunk reports it (its uncompressed size):
/// [`entry_stats_bytes`] of every entry, plus each distinct structured-metadata name and value
/// once (Loki keeps them in one symbol table per chunk).
#[derive(Debug, Default, Clone)]
pub(crate) struct StatsSize {
    entry_bytes: u64,
    /// Hashes of the distinct structured-metadata strings seen (names and values share one
    /// table, as in Loki). Hashes rather than the strings keep unique values such as trace
    /// ids from being held twice.
    symbols: HashSet<u64, BuildHasherDefault<SymbolHasher>>,
    symbol_bytes: u64,
}

/// The symbols are already xxh3 hashes: the set uses them as they are.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SymbolHasher(u64);

impl Hasher for SymbolHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // only `write_u64` is used by `HashSet<u64>`; fold anything else in
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl StatsSize {
    /// Counts one entry.
    pub(crate) fn add(&mut self, e: &Entry) {
        self.entry_bytes += entry_stats_bytes(e);
        for l in &e.structured_metadata {
            for s in [&l.name, &l.value] {
                if self.symbols.insert(xxhash_rust::xxh3::xxh3_64(s.as_bytes())) {
                    self.symbol_bytes += s.len() as u64;
                }
            }
        }
    }

    /// The chunk's size so far.
    pub(crate) fn total(&self) -> u64 {
        self.entry_bytes + self.symbol_bytes
    }

    /// Size of the distinct structured-metadata strings alone.
    pub(crate) fn symbol_bytes(&self) -> u64 {
        self.symbol_bytes
    }
}

/// Loki's synchronised cut (`sync_period`, `sync_min_utilization`): an entry at `ts` that is
/// not older than the stream's newest entry `newest` and crosses a multiple of the sync period
/// (shifted by the stream's Loki fingerprint `offset`, so that streams do not all cut at
/// once) closes the open chunk, provided the chunk is fuller than `sync_min_utilization`
/// (`utilization` is only computed then). Every ingester cuts a stream at the same points,
/// and at the points Loki cuts it.
pub(crate) fn sync_cut_due(
    ts: i64,
    newest: Option<i64>,
    offset: u64,
    config: &IngesterConfig,
    utilization: impl FnOnce() -> f64,
) -> bool {
    let period = config.sync_period.as_nanos().min(u128::from(u64::MAX)) as u64;
    let Some(newest) = newest else { return false };
    if period == 0 || ts < newest {
        return false;
    }
    // Go's uint64 arithmetic: the timestamps as unsigned, the sum wrapping.
    let phase = |t: i64| (t as u64).wrapping_add(offset) % period;
    if phase(ts) >= phase(newest) {
        return false;
    }
    config.sync_min_utilization <= 0.0 || utilization() > config.sync_min_utilization
}

/// How full a chunk is, as Loki measures it when deciding a synchronised cut: compressed size
/// of its cut blocks plus the raw size of the rest (`head_bytes`, and the structured-metadata
/// strings) against `chunk_target_size`, or, without a target, its whole size against ten
/// blocks.
pub(crate) fn utilization(
    cut_compressed: u64,
    head_bytes: u64,
    size: &StatsSize,
    config: &IngesterConfig,
) -> f64 {
    if config.chunk_target_size > 0 {
        (cut_compressed + head_bytes + size.symbol_bytes()) as f64 / config.chunk_target_size as f64
    } else {
        size.total() as f64 / (BLOCKS_PER_CHUNK * config.chunk_block_size.max(1) as f64)
    }
}

/// How full a closed chunk is, as Loki's `loki_ingester_chunk_utilization` measures it when
/// the chunk is stored: its compressed size against `chunk_target_size`, or, without a
/// target, its size against ten blocks.
pub(crate) fn closed_utilization(chunk: &skald_index::ChunkRef, config: &IngesterConfig) -> f64 {
    if config.chunk_target_size > 0 {
        chunk.compressed_bytes as f64 / config.chunk_target_size as f64
    } else {
        chunk.stats_bytes as f64 / (BLOCKS_PER_CHUNK * config.chunk_block_size.max(1) as f64)
    }
}

impl Ingester {
    /// [`IngesterService::chunk_stats`](skald_proto::ingester::IngesterService::chunk_stats):
    /// the held chunks of matching streams that overlap `[start, end)`.
    pub(crate) fn chunk_stats_sync(
        &self,
        tenant: &str,
        query: &IngesterQuery,
    ) -> Vec<StreamChunks> {
        let Some(t) = self.inner.tenants.lock().get(tenant).cloned() else {
            return Vec::new();
        };
        let guard = t.lock();
        let mut out: Vec<StreamChunks> = guard
            .streams
            .values()
            .filter(|st| LabelMatcher::all_match(&query.matchers, &st.labels))
            .filter_map(|st| {
                let chunks = st.held_chunks(query.start, query.end);
                (!chunks.is_empty()).then(|| StreamChunks { labels: st.labels.clone(), chunks })
            })
            .collect();
        drop(guard);
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use skald_model::Label;

    use super::*;

    fn entry(line: &str, meta: &[(&str, &str)]) -> Entry {
        Entry {
            ts: 0,
            line: line.into(),
            structured_metadata: meta.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
        }
    }

    #[test]
    fn size_counts_lines_pairs_and_distinct_strings_once() {
        let mut s = StatsSize::default();
        s.add(&entry("hello", &[]));
        assert_eq!(s.total(), 5);
        s.add(&entry("abc", &[("detected_level", "info")]));
        // 3 + 8, plus "detected_level" (14) and "info" (4)
        assert_eq!(s.total(), 5 + 11 + 18);
        s.add(&entry("abc", &[("detected_level", "info"), ("trace_id", "info")]));
        // 3 + 16, plus only "trace_id" (8): "info" is already in the table
        assert_eq!(s.total(), 5 + 11 + 18 + 19 + 8);
        assert_eq!(s.symbol_bytes(), 26);
    }

    fn config(period_secs: u64, min_util: f64) -> IngesterConfig {
        IngesterConfig {
            sync_period: Duration::from_secs(period_secs),
            sync_min_utilization: min_util,
            ..IngesterConfig::default()
        }
    }

    #[test]
    fn sync_cuts_when_crossing_a_shifted_period_boundary() {
        let s = 1_000_000_000i64;
        let c = config(3600, 0.1);
        let full = || 0.5;
        // no boundary between 10s and 20s past the hour
        assert!(!sync_cut_due(3600 * s + 20 * s, Some(3600 * s + 10 * s), 0, &c, full));
        // the hour boundary lies between 3599s and 3601s
        assert!(sync_cut_due(3601 * s, Some(3599 * s), 0, &c, full));
        // shifted by 100s, the boundary is at 3500s
        assert!(!sync_cut_due(3601 * s, Some(3599 * s), 100 * s as u64, &c, full));
        assert!(sync_cut_due(3501 * s, Some(3499 * s), 100 * s as u64, &c, full));
        // not for the first entry, nor an entry older than the newest
        assert!(!sync_cut_due(3601 * s, None, 0, &c, full));
        assert!(!sync_cut_due(3599 * s, Some(3601 * s), 0, &c, full));
        // only a chunk fuller than sync_min_utilization is cut
        assert!(!sync_cut_due(3601 * s, Some(3599 * s), 0, &c, || 0.1));
        assert!(sync_cut_due(3601 * s, Some(3599 * s), 0, &config(3600, 0.0), || 0.0));
        // turned off
        assert!(!sync_cut_due(3601 * s, Some(3599 * s), 0, &config(0, 0.1), full));
    }

    #[test]
    fn streams_cut_at_their_sync_points_when_full_enough() {
        use crate::stream::StreamState;
        use skald_model::Labels;

        const S: i64 = 1_000_000_000;
        let labels = Labels::parse(r#"{job="web", env="test"}"#).unwrap();
        let period = 3600 * S;
        // the stream's first sync point after the epoch
        let point = period - (labels.prometheus_hash() % period as u64) as i64;
        let base = 500 * period + point;
        let line = "x".repeat(100);
        let feed = |config: &IngesterConfig| {
            let mut st = StreamState::new(labels.clone(), config);
            for i in (1..=100).rev() {
                let e = Entry {
                    ts: base - i * S,
                    line: line.clone().into(),
                    structured_metadata: vec![Label::new("detected_level", "info")],
                };
                st.append(e, std::time::Instant::now(), config).unwrap();
            }
            let e = Entry { ts: base + S, line: line.clone().into(), structured_metadata: vec![] };
            st.append(e, std::time::Instant::now(), config).unwrap();
            let mut held = st.held_chunks(i64::MIN, i64::MAX);
            held.sort();
            held
        };

        // 100 × (100 + 8) + "detected_level" + "info": far above 10% of 20 kB
        let full = IngesterConfig { chunk_target_size: 20_000, ..config(3600, 0.1) };
        let held = feed(&full);
        assert_eq!(held.len(), 2, "{held:?}");
        assert_eq!((held[0].from, held[0].through), (base - 100 * S, base - S));
        assert_eq!((held[0].entries, held[0].bytes), (100, 100 * 108 + 18));
        assert_ne!(held[0].checksum, 0, "closed");
        assert_eq!((held[1].from, held[1].through, held[1].entries), (base + S, base + S, 1));
        assert_eq!((held[1].bytes, held[1].checksum), (100, 0));

        // the same data is under 10% of 1.5 MB: one chunk
        let held = feed(&config(3600, 0.1));
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!((held[0].entries, held[0].bytes), (101, 100 * 108 + 18 + 100));
        // and with sync cuts off
        assert_eq!(feed(&IngesterConfig { chunk_target_size: 20_000, ..config(0, 0.1) }).len(), 1);
    }

    #[test]
    fn utilization_is_against_the_target_size() {
        let mut size = StatsSize::default();
        size.add(&entry("x", &[("k", "v")]));
        let c = IngesterConfig { chunk_target_size: 1000, ..IngesterConfig::default() };
        // 100 compressed + 50 raw head + 2 symbol bytes
        assert!((utilization(100, 50, &size, &c) - 0.152).abs() < 1e-9);
        let c = IngesterConfig {
            chunk_target_size: 0,
            chunk_block_size: 100,
            ..IngesterConfig::default()
        };
        // whole size (1 + 8 + 2) against 10 blocks of 100
        assert!((utilization(100, 50, &size, &c) - 0.011).abs() < 1e-9);
    }
}
