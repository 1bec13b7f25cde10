//! The chunks an ingester holds in memory, described as the index describes stored chunks:
//! what `index/stats` and `index/volume` need from ingesters
//! ([`IngesterService::chunk_stats`](crate::ingester::IngesterService::chunk_stats)).
//!
//! Ingesters answer with chunks rather than totals so that the querier can count a chunk once
//! however many replicas hold it (and once when it is in the index too, while it is being
//! flushed), and can pro-rate and round it exactly as it does a stored chunk.

use std::collections::BTreeMap;

use skald_model::{Label, Labels};

use crate::skald_ingester_v1 as pb;

/// One chunk held in memory: closed and waiting for flush, or still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeldChunk {
    /// First entry's timestamp, ns.
    pub from: i64,
    /// Last entry's timestamp, ns (inclusive).
    pub through: i64,
    /// Number of entries.
    pub entries: u32,
    /// Size as Loki counts it (line bytes, 8 per structured-metadata pair, each distinct
    /// structured-metadata name and value once): the index's `stats_bytes` once flushed.
    pub bytes: u64,
    /// CRC32C of the encoded chunk once it is closed (its identity in the store); 0 while open.
    pub checksum: u32,
}

/// The held chunks of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamChunks {
    /// The stream's labels.
    pub labels: Labels,
    /// Its chunks, in any order.
    pub chunks: Vec<HeldChunk>,
}

/// Merges the answers of several ingesters: replicas cut the same chunks from the same
/// entries, so identical chunks of a stream are one. Streams come out sorted by labels,
/// chunks sorted and distinct.
pub fn merge_stream_chunks(answers: impl IntoIterator<Item = StreamChunks>) -> Vec<StreamChunks> {
    let mut merged: BTreeMap<Labels, Vec<HeldChunk>> = BTreeMap::new();
    for s in answers {
        merged.entry(s.labels).or_default().extend(s.chunks);
    }
    merged
        .into_iter()
        .map(|(labels, mut chunks)| {
            chunks.sort_unstable();
            chunks.dedup();
            StreamChunks { labels, chunks }
        })
        .collect()
}

pub(crate) fn response_to_pb(streams: Vec<StreamChunks>) -> pb::ChunkStatsResponse {
    pb::ChunkStatsResponse {
        streams: streams
            .into_iter()
            .map(|s| pb::StreamChunks {
                labels: s
                    .labels
                    .iter()
                    .map(|l| pb::Label { name: l.name.clone(), value: l.value.clone() })
                    .collect(),
                chunks: s
                    .chunks
                    .iter()
                    .map(|c| pb::HeldChunk {
                        from: c.from,
                        through: c.through,
                        entries: c.entries,
                        bytes: c.bytes,
                        checksum: c.checksum,
                    })
                    .collect(),
            })
            .collect(),
    }
}

pub(crate) fn response_from_pb(resp: pb::ChunkStatsResponse) -> Vec<StreamChunks> {
    resp.streams
        .into_iter()
        .map(|s| StreamChunks {
            labels: Labels::from_vec(
                s.labels.into_iter().map(|l| Label::new(l.name, l.value)).collect(),
            ),
            chunks: s
                .chunks
                .into_iter()
                .map(|c| HeldChunk {
                    from: c.from,
                    through: c.through,
                    entries: c.entries,
                    bytes: c.bytes,
                    checksum: c.checksum,
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn chunk(from: i64, checksum: u32) -> HeldChunk {
        HeldChunk { from, through: from + 10, entries: 3, bytes: 300, checksum }
    }

    #[test]
    fn replicas_count_once() {
        let a = Labels::parse(r#"{job="a"}"#).unwrap();
        let b = Labels::parse(r#"{job="b"}"#).unwrap();
        let merged = merge_stream_chunks(vec![
            StreamChunks { labels: b.clone(), chunks: vec![chunk(5, 0)] },
            StreamChunks { labels: a.clone(), chunks: vec![chunk(1, 7), chunk(20, 0)] },
            StreamChunks { labels: a.clone(), chunks: vec![chunk(20, 0), chunk(1, 7)] },
            // a replica that missed an entry holds a different open chunk: both are kept
            StreamChunks {
                labels: a.clone(),
                chunks: vec![HeldChunk { entries: 2, ..chunk(20, 0) }],
            },
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].labels, a);
        assert_eq!(merged[0].chunks.len(), 3);
        assert_eq!(merged[1].chunks, vec![chunk(5, 0)]);
    }

    #[test]
    fn wire_round_trip() {
        let s = vec![StreamChunks {
            labels: Labels::parse(r#"{job="a", env="x"}"#).unwrap(),
            chunks: vec![chunk(-4, 9), chunk(1_700_000_000_000_000_000, 0)],
        }];
        assert_eq!(response_from_pb(response_to_pb(s.clone())), s);
    }
}
