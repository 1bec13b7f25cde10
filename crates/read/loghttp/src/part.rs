//! The answer of one part (one time split) of a query, as a querier sends it to the
//! query-frontend: [`QueryOutput`] and [`StoreFigures`] to and from
//! `skald.querier.v1.QueryPart` (`proto/skald/querier/v1/query_part.proto`). The round trip is
//! exact: every sample value of a matrix keeps its bits (NaN payloads and negative zero
//! included), every label set and entry its order. A vector's or scalar's negative zero
//! comes back as zero (proto3 does not send a single field at its default), which Loki's
//! JSON writes the same (`0`); the frontend splits range queries only.

use prost::Message;
use skald_logql::engine::{
    QueryOutput, QueryResult, ResultEntry, ResultStream, Series, Stats, VectorSample,
};
use skald_model::{Label, Labels, Sample};
use skald_proto::skald_querier_v1 as pb;

use crate::StoreFigures;

/// The content type of an encoded [`pb::QueryPart`], and the `Accept` value a frontend asks
/// for it with.
pub const PART_CONTENT_TYPE: &str = "application/vnd.skald.query-part.v1+protobuf";
/// The header naming the whole query a part belongs to (unique per frontend process): the
/// parts of one query that run on one querier share one `max_query_memory` budget.
pub const QUERY_ID_HEADER: &str = "X-Skald-Query-Id";
/// The request parameter holding the part's first time (integer ns).
pub const PART_START_PARAM: &str = "skald_part_start";
/// The request parameter holding the part's last time (integer ns).
pub const PART_END_PARAM: &str = "skald_part_end";
/// The parameter of a part request that asks for one shard of the streams (`I_of_N`,
/// [`skald_model::Shard`]): the querier then reads only the streams of shard `I` of `N`.
pub const SHARD_PARAM: &str = "skald_shard";
/// The parameter of an `index/stats` request that sizes the shards of a needle search: the
/// whole log selector, line filters included. The querier then leaves out the chunks whose
/// filter in the filter tables rejects its needles, so the bytes are what the search will
/// read. Without it the answer is Loki's.
pub const NEEDLE_SELECTOR_PARAM: &str = "skald_needle_selector";

/// Why bytes are not a valid query part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartError {
    /// Not a `QueryPart` message.
    #[error("invalid query part: {0}")]
    Decode(String),
    /// A `QueryPart` without a result.
    #[error("invalid query part: no result")]
    NoResult,
    /// A series whose timestamps and values differ in number.
    #[error("invalid query part: a series has {ts} timestamps and {values} values")]
    Lengths {
        /// Timestamps.
        ts: usize,
        /// Values.
        values: usize,
    },
}

fn labels_pb(labels: &Labels) -> Vec<pb::Label> {
    labels.iter().map(|l| pb::Label { name: l.name.clone(), value: l.value.clone() }).collect()
}

fn labels_of(labels: Vec<pb::Label>) -> Labels {
    Labels::from_vec(labels.into_iter().map(|l| Label::new(l.name, l.value)).collect())
}

/// The message of a part's output and store figures.
pub fn to_part(out: &QueryOutput, store: &StoreFigures) -> pb::QueryPart {
    let result = match &out.result {
        QueryResult::Streams(streams) => pb::query_part::Result::Streams(pb::Streams {
            streams: streams
                .iter()
                .map(|s| pb::Stream {
                    labels: labels_pb(&s.labels),
                    entries: s
                        .entries
                        .iter()
                        .map(|e| pb::Entry {
                            ts: e.ts,
                            line: e.line.to_vec(),
                            structured_metadata: labels_pb(&e.structured_metadata),
                            parsed: labels_pb(&e.parsed),
                        })
                        .collect(),
                })
                .collect(),
        }),
        QueryResult::Matrix(series) => pb::query_part::Result::Matrix(pb::Matrix {
            series: series
                .iter()
                .map(|s| pb::Series {
                    labels: labels_pb(&s.labels),
                    ts: s.samples.iter().map(|p| p.ts).collect(),
                    values: s.samples.iter().map(|p| p.value).collect(),
                })
                .collect(),
        }),
        QueryResult::Vector(samples) => pb::query_part::Result::Vector(pb::Vector {
            samples: samples
                .iter()
                .map(|s| pb::VectorSample {
                    labels: labels_pb(&s.labels),
                    ts: s.ts,
                    value: s.value,
                })
                .collect(),
        }),
        QueryResult::Scalar { ts, value } => {
            pb::query_part::Result::Scalar(pb::Scalar { ts: *ts, value: *value })
        }
    };
    let s = &out.stats;
    pb::QueryPart {
        result: Some(result),
        stats: Some(pb::EngineStats {
            total_lines_processed: s.total_lines_processed,
            total_bytes_processed: s.total_bytes_processed,
            total_entries_returned: s.total_entries_returned,
            total_post_filter_lines: s.total_post_filter_lines,
            total_structured_metadata_bytes_processed: s.total_structured_metadata_bytes_processed,
        }),
        store: Some(pb::StoreFigures {
            chunk_refs: store.chunk_refs,
            chunks_downloaded: store.chunks_downloaded,
            compressed_bytes: store.compressed_bytes,
            decompressed_bytes: store.decompressed_bytes,
            decompressed_lines: store.decompressed_lines,
            ingester_requests: store.ingester_requests,
            ingester_streams: store.ingester_streams,
            ingester_lines: store.ingester_lines,
            ingester_bytes: store.ingester_bytes,
        }),
    }
}

/// A part's output and store figures from its message.
pub fn from_part(part: pb::QueryPart) -> Result<(QueryOutput, StoreFigures), PartError> {
    let result = match part.result.ok_or(PartError::NoResult)? {
        pb::query_part::Result::Streams(s) => QueryResult::Streams(
            s.streams
                .into_iter()
                .map(|s| ResultStream {
                    labels: labels_of(s.labels),
                    entries: s
                        .entries
                        .into_iter()
                        .map(|e| ResultEntry {
                            ts: e.ts,
                            line: e.line.into(),
                            structured_metadata: labels_of(e.structured_metadata),
                            parsed: labels_of(e.parsed),
                        })
                        .collect(),
                })
                .collect(),
        ),
        pb::query_part::Result::Matrix(m) => {
            let mut series = Vec::with_capacity(m.series.len());
            for s in m.series {
                if s.ts.len() != s.values.len() {
                    return Err(PartError::Lengths { ts: s.ts.len(), values: s.values.len() });
                }
                let samples =
                    s.ts.into_iter()
                        .zip(s.values)
                        .map(|(ts, value)| Sample { ts, value })
                        .collect();
                series.push(Series { labels: labels_of(s.labels), samples });
            }
            QueryResult::Matrix(series)
        }
        pb::query_part::Result::Vector(v) => QueryResult::Vector(
            v.samples
                .into_iter()
                .map(|s| VectorSample { labels: labels_of(s.labels), ts: s.ts, value: s.value })
                .collect(),
        ),
        pb::query_part::Result::Scalar(s) => QueryResult::Scalar { ts: s.ts, value: s.value },
    };
    let s = part.stats.unwrap_or_default();
    let stats = Stats {
        total_lines_processed: s.total_lines_processed,
        total_bytes_processed: s.total_bytes_processed,
        total_entries_returned: s.total_entries_returned,
        total_post_filter_lines: s.total_post_filter_lines,
        total_structured_metadata_bytes_processed: s.total_structured_metadata_bytes_processed,
    };
    let f = part.store.unwrap_or_default();
    let store = StoreFigures {
        chunk_refs: f.chunk_refs,
        chunks_downloaded: f.chunks_downloaded,
        compressed_bytes: f.compressed_bytes,
        decompressed_bytes: f.decompressed_bytes,
        decompressed_lines: f.decompressed_lines,
        ingester_requests: f.ingester_requests,
        ingester_streams: f.ingester_streams,
        ingester_lines: f.ingester_lines,
        ingester_bytes: f.ingester_bytes,
    };
    Ok((QueryOutput { result, stats }, store))
}

/// The encoded message of a part's output and store figures (the body a querier answers
/// with, under [`PART_CONTENT_TYPE`]).
pub fn encode_part(out: &QueryOutput, store: &StoreFigures) -> Vec<u8> {
    to_part(out, store).encode_to_vec()
}

/// A part's output and store figures from the body a querier answered with.
pub fn decode_part(body: &[u8]) -> Result<(QueryOutput, StoreFigures), PartError> {
    let part = pb::QueryPart::decode(body).map_err(|e| PartError::Decode(e.to_string()))?;
    from_part(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(s: &str) -> Labels {
        Labels::parse(s).unwrap_or_default()
    }

    fn figures() -> StoreFigures {
        StoreFigures {
            chunk_refs: 1,
            chunks_downloaded: 2,
            compressed_bytes: 3,
            decompressed_bytes: 4,
            decompressed_lines: 5,
            ingester_requests: 6,
            ingester_streams: 7,
            ingester_lines: 8,
            ingester_bytes: 9,
        }
    }

    fn stats() -> Stats {
        Stats {
            total_lines_processed: 11,
            total_bytes_processed: 12,
            total_entries_returned: 13,
            total_post_filter_lines: 14,
            total_structured_metadata_bytes_processed: 15,
        }
    }

    fn round_trip(out: &QueryOutput) -> (QueryOutput, StoreFigures) {
        decode_part(&encode_part(out, &figures())).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn streams_come_back_as_they_went() {
        let entry = |ts: i64, line: &str| ResultEntry {
            ts,
            line: line.into(),
            structured_metadata: labels(r#"{trace="t\"1", span="s"}"#),
            parsed: labels(r#"{level="info"}"#),
        };
        let out = QueryOutput {
            result: QueryResult::Streams(vec![
                ResultStream {
                    labels: labels(r#"{app="b", env="ü"}"#),
                    // backward order: kept as sent
                    entries: vec![entry(3, "c\n"), entry(-1, ""), entry(2, "b")],
                },
                ResultStream { labels: Labels::default(), entries: vec![] },
            ]),
            stats: stats(),
        };
        let (back, store) = round_trip(&out);
        assert_eq!(back, out);
        assert_eq!(store, figures());
    }

    #[test]
    fn sample_values_keep_their_bits() {
        let values = [
            0.1 + 0.2,
            -0.0,
            0.0,
            f64::NAN,
            f64::from_bits(0x7ff8_0000_dead_beef),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE / 3.0,
            f64::MAX,
        ];
        let samples: Vec<Sample> =
            values.iter().enumerate().map(|(i, &value)| Sample { ts: i as i64, value }).collect();
        let out = QueryOutput {
            result: QueryResult::Matrix(vec![
                Series { labels: labels(r#"{a="1"}"#), samples },
                Series { labels: labels(r#"{a="0"}"#), samples: vec![] },
            ]),
            stats: stats(),
        };
        let (back, _) = round_trip(&out);
        let (QueryResult::Matrix(a), QueryResult::Matrix(b)) = (&out.result, &back.result) else {
            panic!("not a matrix: {back:?}");
        };
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.labels, y.labels);
            let bits = |s: &Series| -> Vec<(i64, u64)> {
                s.samples.iter().map(|p| (p.ts, p.value.to_bits())).collect()
            };
            assert_eq!(bits(x), bits(y));
        }
        assert_eq!(back.stats, out.stats);
        for value in values {
            let out = QueryOutput {
                result: QueryResult::Vector(vec![VectorSample {
                    labels: labels(r#"{b="2"}"#),
                    ts: 5,
                    value,
                }]),
                stats: Stats::default(),
            };
            let QueryResult::Vector(v) = round_trip(&out).0.result else { panic!("not a vector") };
            // proto3 leaves a single field at its default out: -0 comes back as 0
            let same = |v: f64| if v == 0.0 { 0 } else { v.to_bits() };
            assert_eq!(same(v[0].value), same(value));
            let out = QueryOutput {
                result: QueryResult::Scalar { ts: -7, value },
                stats: Stats::default(),
            };
            let QueryResult::Scalar { ts, value: v } = round_trip(&out).0.result else {
                panic!("not a scalar")
            };
            assert_eq!((ts, same(v)), (-7, same(value)));
        }
    }

    #[test]
    fn broken_parts_are_refused() {
        assert!(matches!(decode_part(b"\xff\xff\xff"), Err(PartError::Decode(_))));
        assert_eq!(decode_part(b"").err(), Some(PartError::NoResult));
        let part = pb::QueryPart {
            result: Some(pb::query_part::Result::Matrix(pb::Matrix {
                series: vec![pb::Series { labels: vec![], ts: vec![1, 2], values: vec![1.0] }],
            })),
            ..pb::QueryPart::default()
        };
        assert_eq!(from_part(part).err(), Some(PartError::Lengths { ts: 2, values: 1 }));
    }
}
