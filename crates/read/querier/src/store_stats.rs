//! What one query read from storage and from the ingesters, for the `stats` object of its
//! answer (`querier.store`, `ingester`): plain counters the source adds to once per chunk
//! list, request, decoded block or ingester answer, never per line. They count what was
//! done: the bytes read from the store (a chunk read in parts counts the parts), and the
//! raw bytes and entries of the blocks decompressed (a block counted from its statistics,
//! or outside the query's range, is not).

use std::sync::atomic::{AtomicU64, Ordering};

use skald_loghttp::StoreFigures;
use skald_model::Stream;
use skald_proto::ingester::SeriesSamples;

/// A query's counters, shared by its sources (one per tenant).
#[derive(Debug, Default)]
pub(crate) struct StoreStats {
    chunk_refs: AtomicU64,
    chunks_downloaded: AtomicU64,
    compressed_bytes: AtomicU64,
    decompressed_bytes: AtomicU64,
    decompressed_lines: AtomicU64,
    ingester_requests: AtomicU64,
    ingester_streams: AtomicU64,
    ingester_lines: AtomicU64,
    ingester_bytes: AtomicU64,
    /// Blocks not decompressed because their n-gram filter (or their chunk's) rejected the
    /// query's needles. Not part of the answer's `stats` (Loki has no such figure).
    skipped_blocks: AtomicU64,
    /// Chunks dropped before any fetch because their filter in the filter tables rejected
    /// the query's needles. Not part of the answer's `stats` either.
    filtered_chunks: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl StoreStats {
    /// `n` chunk refs taken from the index.
    pub(crate) fn add_chunk_refs(&self, n: usize) {
        add(&self.chunk_refs, n as u64);
    }

    /// `n` chunks taken by the query (fetched, whole or in part).
    pub(crate) fn add_chunks(&self, n: usize) {
        add(&self.chunks_downloaded, n as u64);
    }

    /// `n` bytes read from the chunk store.
    pub(crate) fn add_fetched_bytes(&self, n: u64) {
        add(&self.compressed_bytes, n);
    }

    /// One block decompressed: its raw length and entries.
    pub(crate) fn add_decompressed(&self, raw_bytes: u64, entries: u64) {
        add(&self.decompressed_bytes, raw_bytes);
        add(&self.decompressed_lines, entries);
    }

    /// `n` blocks skipped undecompressed by their filters.
    pub(crate) fn add_skipped_blocks(&self, n: u64) {
        add(&self.skipped_blocks, n);
    }

    /// `n` chunks dropped unfetched by their filters in the filter tables.
    pub(crate) fn add_chunks_filtered(&self, n: u64) {
        add(&self.filtered_chunks, n);
    }

    /// The chunks dropped by the filter tables so far.
    #[cfg(test)]
    pub(crate) fn filtered_chunks(&self) -> u64 {
        self.filtered_chunks.load(Ordering::Relaxed)
    }

    /// The blocks skipped by their filters so far.
    #[cfg(test)]
    pub(crate) fn skipped_blocks(&self) -> u64 {
        self.skipped_blocks.load(Ordering::Relaxed)
    }

    /// One ingester answer of entries.
    pub(crate) fn add_ingester_streams(&self, streams: &[Stream]) {
        add(&self.ingester_requests, 1);
        add(&self.ingester_streams, streams.len() as u64);
        let entries = streams.iter().flat_map(|s| s.entries.iter());
        let (lines, bytes) =
            entries.fold((0u64, 0u64), |(n, b), e| (n + 1, b + e.line.len() as u64));
        add(&self.ingester_lines, lines);
        add(&self.ingester_bytes, bytes);
    }

    /// One ingester answer of samples (only samples travel: no line bytes).
    pub(crate) fn add_ingester_samples(&self, series: &[SeriesSamples]) {
        add(&self.ingester_requests, 1);
        add(&self.ingester_streams, series.len() as u64);
        add(&self.ingester_lines, series.iter().map(|s| s.samples.len() as u64).sum());
    }

    /// The figures so far (a snapshot, as the answer reports it).
    pub(crate) fn snapshot(&self) -> StoreFigures {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StoreFigures {
            chunk_refs: get(&self.chunk_refs),
            chunks_downloaded: get(&self.chunks_downloaded),
            compressed_bytes: get(&self.compressed_bytes),
            decompressed_bytes: get(&self.decompressed_bytes),
            decompressed_lines: get(&self.decompressed_lines),
            ingester_requests: get(&self.ingester_requests),
            ingester_streams: get(&self.ingester_streams),
            ingester_lines: get(&self.ingester_lines),
            ingester_bytes: get(&self.ingester_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_model::{Entry, Labels};

    #[test]
    fn counts_chunks_and_ingester_answers() {
        let s = StoreStats::default();
        s.add_chunk_refs(3);
        s.add_chunks(2);
        s.add_fetched_bytes(300);
        s.add_fetched_bytes(200);
        s.add_decompressed(1000, 10);
        s.add_decompressed(500, 5);
        let entry = |line: &str| Entry { ts: 1, line: line.into(), structured_metadata: vec![] };
        s.add_ingester_streams(&[Stream {
            labels: Labels::default(),
            entries: vec![entry("abc"), entry("de")],
        }]);
        assert_eq!(
            s.snapshot(),
            StoreFigures {
                chunk_refs: 3,
                chunks_downloaded: 2,
                compressed_bytes: 500,
                decompressed_bytes: 1500,
                decompressed_lines: 15,
                ingester_requests: 1,
                ingester_streams: 1,
                ingester_lines: 2,
                ingester_bytes: 5,
            }
        );
    }
}
