//! The ingester contract: what distributors and queriers may ask of an ingester.

use std::sync::Arc;

use async_trait::async_trait;
use skald_model::{LabelMatcher, Labels, Stream};

use crate::{ErrorCode, ServiceError};

/// A request for recent data held by an ingester.
#[derive(Debug, Clone, Default)]
pub struct IngesterQuery {
    /// Stream matchers.
    pub matchers: Vec<LabelMatcher>,
    /// Inclusive start, ns.
    pub start: i64,
    /// Exclusive end, ns.
    pub end: i64,
    /// Literals every returned line must contain (the query's `|=` filters, pushed down so
    /// ingesters send only lines that can match). Empty: every line.
    pub line_contains: Vec<String>,
    /// The query's log selector with its pipeline as LogQL text: only lines it accepts are
    /// needed. Empty: every line.
    pub pipeline: String,
    /// When > 0, only the `limit` accepted lines nearest the edge (`end` when `backward`,
    /// else `start`) are needed, plus lines tied with the last of them.
    pub limit: u32,
    /// Which edge `limit` counts from.
    pub backward: bool,
    /// [`IngesterService::query_samples`] only: the range aggregation as LogQL text.
    pub sample_expr: String,
    /// [`IngesterService::query_samples`] only: the grouping its samples are evaluated with
    /// (its own, or the `sum`'s it is pushed down from), for the parser hints. `None`: no
    /// grouping, or an older querier (the range aggregation's own grouping then applies).
    pub sample_grouping: Option<SampleGrouping>,
    /// Sharding by stream: only the streams of this shard (`None`: every stream).
    pub shard: Option<skald_model::Shard>,
}

/// A grouping `by (labels)` or `without (labels)` ([`IngesterQuery::sample_grouping`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SampleGrouping {
    /// true for `without`.
    pub without: bool,
    /// The label names.
    pub labels: Vec<String>,
}

/// One sample pushed down from an ingester: its time, value, and the identity of the entry
/// it came from ([`sample_hash`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PushedSample {
    /// Timestamp, ns.
    pub ts: i64,
    /// Value.
    pub value: f64,
    /// [`sample_hash`] of the entry.
    pub hash: u64,
}

/// The samples of one output series of a range aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// The series labels (after the pipeline).
    pub labels: Labels,
    /// Samples, in any order.
    pub samples: Vec<PushedSample>,
}

/// Identity of an entry for sample deduplication ([`skald_model::entry_hash`]): two replicas,
/// or an ingester and a flushed chunk, give the same entry the same hash.
pub fn sample_hash(stream_fingerprint: u64, line: &[u8]) -> u64 {
    skald_model::entry_hash(stream_fingerprint, line)
}

/// Merges replica answers: samples of the same series with the same timestamp and hash are
/// one. Series come out sorted by labels, samples by (ts, hash).
pub fn merge_samples(answers: impl IntoIterator<Item = SeriesSamples>) -> Vec<SeriesSamples> {
    let mut merged: std::collections::BTreeMap<Labels, Vec<PushedSample>> = Default::default();
    for s in answers {
        merged.entry(s.labels).or_default().extend(s.samples);
    }
    merged
        .into_iter()
        .map(|(labels, mut samples)| {
            samples.sort_by(|a, b| a.ts.cmp(&b.ts).then(a.hash.cmp(&b.hash)));
            samples.dedup_by(|a, b| a.ts == b.ts && a.hash == b.hash);
            SeriesSamples { labels, samples }
        })
        .collect()
}

/// An entry a live tail missed because its reader could not keep up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedEntry {
    /// The stream's labels.
    pub labels: Labels,
    /// The entry's timestamp, ns.
    pub ts: i64,
}

/// One message of a live tail: entries pushed since the previous one, raw (the reader runs
/// the pipeline for output), and entries dropped since.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TailBatch {
    /// Entries, per stream, in push order.
    pub streams: Vec<Stream>,
    /// Entries this tail dropped because its reader was too slow.
    pub dropped: Vec<DroppedEntry>,
}

/// A live tail: ends when the ingester stops or fails; dropping it unsubscribes.
pub type TailStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<TailBatch, ServiceError>> + Send>>;

/// What an ingester serves. Implemented by `skald_ingester::Ingester` (in-process) and by
/// [`GrpcIngesterClient`](crate::ingester::GrpcIngesterClient) (remote).
#[async_trait]
pub trait IngesterService: Send + Sync + 'static {
    /// Appends validated streams for `tenant`. Returns only once the entries are accepted.
    async fn push(&self, tenant: &str, streams: Vec<Stream>) -> Result<(), ServiceError>;

    /// Returns the entries in memory (not yet flushed, or flushed but still held) for streams
    /// matching the query, each stream's entries sorted by timestamp ascending.
    async fn query(&self, tenant: &str, query: IngesterQuery) -> Result<Vec<Stream>, ServiceError>;

    /// The samples `query.sample_expr` (a range aggregation) extracts from the entries in
    /// memory in `[start, end)` of the streams matching `query.matchers`, grouped by output
    /// series: the pipeline runs where the data is, and only samples travel.
    async fn query_samples(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<SeriesSamples>, ServiceError>;

    /// Returns the label sets of in-memory streams matching `matchers` with data in the range.
    async fn series(&self, tenant: &str, query: IngesterQuery)
        -> Result<Vec<Labels>, ServiceError>;

    /// The chunks held in memory (closed and waiting for flush, or open) of streams matching
    /// `query.matchers` that overlap `[start, end)`, each described as the index will describe
    /// it (see [`crate::chunk_stats`]). The default refuses: only real ingesters (and the
    /// clients that reach them) hold chunks.
    async fn chunk_stats(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<crate::chunk_stats::StreamChunks>, ServiceError> {
        let _ = (tenant, query);
        Err(ServiceError::new(
            crate::ErrorCode::Unavailable,
            "this ingester service holds no chunks",
        ))
    }

    /// Flushes every in-memory chunk to storage.
    async fn flush_all(&self) -> Result<(), ServiceError>;

    /// Subscribes to the entries pushed from now on to streams matching `query.matchers` that
    /// `query.pipeline` accepts (`start`, `end`, `limit` are ignored). The subscription is in
    /// place when this returns. The default refuses: only real ingesters (and the clients
    /// that reach them) can tail.
    async fn tail(&self, tenant: &str, query: IngesterQuery) -> Result<TailStream, ServiceError> {
        let _ = (tenant, query);
        Err(ServiceError::new(ErrorCode::Unavailable, "this ingester service cannot tail"))
    }
}

/// A shared handle to an ingester, local or remote.
pub type IngesterClient = Arc<dyn IngesterService>;

mod convert {
    use skald_model::{Entry, Label, LabelMatcher, Labels, MatchType, Stream};

    use crate::skald_ingester_v1 as pb;
    use crate::{ErrorCode, ServiceError};

    pub fn labels_to_pb(labels: &Labels) -> Vec<pb::Label> {
        labels.iter().map(|l| pb::Label { name: l.name.clone(), value: l.value.clone() }).collect()
    }

    pub fn labels_from_pb(labels: Vec<pb::Label>) -> Labels {
        Labels::from_vec(labels.into_iter().map(|l| Label::new(l.name, l.value)).collect())
    }

    pub fn stream_to_pb(s: Stream) -> pb::Stream {
        pb::Stream {
            labels: labels_to_pb(&s.labels),
            entries: s
                .entries
                .into_iter()
                .map(|e| pb::Entry {
                    ts: e.ts,
                    line: e.line.into_bytes(),
                    structured_metadata: e
                        .structured_metadata
                        .into_iter()
                        .map(|l| pb::Label { name: l.name, value: l.value })
                        .collect(),
                })
                .collect(),
        }
    }

    pub fn stream_from_pb(s: pb::Stream) -> Stream {
        Stream {
            labels: labels_from_pb(s.labels),
            entries: s
                .entries
                .into_iter()
                .map(|e| Entry {
                    ts: e.ts,
                    line: e.line.into(),
                    structured_metadata: e
                        .structured_metadata
                        .into_iter()
                        .map(|l| Label::new(l.name, l.value))
                        .collect(),
                })
                .collect(),
        }
    }

    pub fn matcher_to_pb(m: &LabelMatcher) -> pb::Matcher {
        let t = match m.op {
            MatchType::Equal => pb::MatchType::Equal,
            MatchType::NotEqual => pb::MatchType::NotEqual,
            MatchType::Regex => pb::MatchType::Regex,
            MatchType::NotRegex => pb::MatchType::NotRegex,
        };
        pb::Matcher { name: m.name.clone(), r#type: t as i32, value: m.value.clone() }
    }

    pub fn matcher_from_pb(m: pb::Matcher) -> Result<LabelMatcher, ServiceError> {
        let op = match pb::MatchType::try_from(m.r#type) {
            Ok(pb::MatchType::Equal) => MatchType::Equal,
            Ok(pb::MatchType::NotEqual) => MatchType::NotEqual,
            Ok(pb::MatchType::Regex) => MatchType::Regex,
            Ok(pb::MatchType::NotRegex) => MatchType::NotRegex,
            Err(_) => {
                return Err(ServiceError::new(ErrorCode::BadRequest, "unknown matcher type"));
            }
        };
        LabelMatcher::new(m.name, op, m.value)
            .map_err(|e| ServiceError::new(ErrorCode::BadRequest, e.message))
    }
}

/// Largest gRPC message either side accepts (a push batch or a query batch).
pub const MAX_GRPC_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Entries per streamed query batch sent from an ingester to a querier.
const QUERY_BATCH_ENTRIES: usize = 8192;

/// An [`IngesterService`] reached over gRPC.
#[derive(Clone)]
pub struct GrpcIngesterClient {
    inner: crate::skald_ingester_v1::ingester_client::IngesterClient<tonic::transport::Channel>,
}

impl GrpcIngesterClient {
    /// Builds a client for `endpoint` (e.g. `http://127.0.0.1:9095`). The channel connects
    /// lazily, so an ingester that is not up yet only fails the calls made before it is.
    pub fn connect_lazy(endpoint: &str) -> Result<Self, ServiceError> {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| {
                ServiceError::internal(format!("invalid ingester address `{endpoint}`: {e}"))
            })?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect_lazy();
        let inner = crate::skald_ingester_v1::ingester_client::IngesterClient::new(channel)
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
        Ok(GrpcIngesterClient { inner })
    }
}

#[async_trait]
impl IngesterService for GrpcIngesterClient {
    async fn push(&self, tenant: &str, streams: Vec<Stream>) -> Result<(), ServiceError> {
        let req = crate::skald_ingester_v1::PushRequest {
            tenant: tenant.to_string(),
            streams: streams.into_iter().map(convert::stream_to_pb).collect(),
        };
        self.inner.clone().push(req).await?;
        Ok(())
    }

    async fn query(&self, tenant: &str, query: IngesterQuery) -> Result<Vec<Stream>, ServiceError> {
        let req = query_to_pb(tenant, query);
        let mut stream = self.inner.clone().query(req).await?.into_inner();
        let mut out: Vec<Stream> = Vec::new();
        while let Some(batch) = stream.message().await? {
            for s in batch.streams {
                let s = convert::stream_from_pb(s);
                // batches of one stream arrive consecutively; join them
                match out.last_mut() {
                    Some(last) if last.labels == s.labels => last.entries.extend(s.entries),
                    _ => out.push(s),
                }
            }
        }
        Ok(out)
    }

    async fn series(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<Labels>, ServiceError> {
        let req = query_to_pb(tenant, query);
        let resp = self.inner.clone().series(req).await?.into_inner();
        Ok(resp.series.into_iter().map(|s| convert::labels_from_pb(s.labels)).collect())
    }

    async fn chunk_stats(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<crate::chunk_stats::StreamChunks>, ServiceError> {
        let req = query_to_pb(tenant, query);
        let resp = self.inner.clone().chunk_stats(req).await?.into_inner();
        Ok(crate::chunk_stats::response_from_pb(resp))
    }

    async fn query_samples(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<SeriesSamples>, ServiceError> {
        let req = query_to_pb(tenant, query);
        let mut stream = self.inner.clone().query_samples(req).await?.into_inner();
        let mut out: Vec<SeriesSamples> = Vec::new();
        while let Some(batch) = stream.message().await? {
            for s in batch.series {
                let n = s.ts.len();
                if s.values.len() != n || s.hashes.len() != n {
                    return Err(ServiceError::internal("malformed sample batch from an ingester"));
                }
                let labels = convert::labels_from_pb(s.labels);
                let samples = (0..n)
                    .map(|i| PushedSample { ts: s.ts[i], value: s.values[i], hash: s.hashes[i] })
                    .collect::<Vec<_>>();
                // batches of one series arrive consecutively; join them
                match out.last_mut() {
                    Some(last) if last.labels == labels => last.samples.extend(samples),
                    _ => out.push(SeriesSamples { labels, samples }),
                }
            }
        }
        Ok(out)
    }

    async fn flush_all(&self) -> Result<(), ServiceError> {
        self.inner.clone().flush_all(crate::skald_ingester_v1::FlushRequest {}).await?;
        Ok(())
    }

    async fn tail(&self, tenant: &str, query: IngesterQuery) -> Result<TailStream, ServiceError> {
        use futures::StreamExt;
        let req = query_to_pb(tenant, query);
        let stream = self.inner.clone().tail(req).await?.into_inner();
        Ok(Box::pin(stream.map(|r| {
            match r {
                Ok(m) => Ok(TailBatch {
                    streams: m.streams.into_iter().map(convert::stream_from_pb).collect(),
                    dropped: m
                        .dropped
                        .into_iter()
                        .map(|d| DroppedEntry {
                            labels: convert::labels_from_pb(d.labels),
                            ts: d.ts,
                        })
                        .collect(),
                }),
                Err(status) => Err(ServiceError::from(status)),
            }
        })))
    }
}

/// Serves any [`IngesterService`] over gRPC.
pub struct IngesterGrpcServer {
    inner: IngesterClient,
}

impl IngesterGrpcServer {
    /// Wraps `inner` into a tonic service with Skald's message-size limits.
    pub fn into_service(
        inner: IngesterClient,
    ) -> crate::skald_ingester_v1::ingester_server::IngesterServer<IngesterGrpcServer> {
        crate::skald_ingester_v1::ingester_server::IngesterServer::new(IngesterGrpcServer { inner })
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES)
    }
}

fn query_to_pb(tenant: &str, query: IngesterQuery) -> crate::skald_ingester_v1::QueryRequest {
    crate::skald_ingester_v1::QueryRequest {
        tenant: tenant.to_string(),
        matchers: query.matchers.iter().map(convert::matcher_to_pb).collect(),
        start: query.start,
        end: query.end,
        line_contains: query.line_contains,
        pipeline: query.pipeline,
        limit: query.limit,
        backward: query.backward,
        sample_expr: query.sample_expr,
        shard_index: query.shard.map_or(0, |s| s.index),
        shard_count: query.shard.map_or(0, |s| s.count),
        has_grouping: query.sample_grouping.is_some(),
        grouping_without: query.sample_grouping.as_ref().is_some_and(|g| g.without),
        grouping_labels: query.sample_grouping.map(|g| g.labels).unwrap_or_default(),
    }
}

fn query_from_pb(
    req: crate::skald_ingester_v1::QueryRequest,
) -> Result<(String, IngesterQuery), ServiceError> {
    let matchers =
        req.matchers.into_iter().map(convert::matcher_from_pb).collect::<Result<Vec<_>, _>>()?;
    // a count of 0 (an older querier): every stream
    let shard = match req.shard_count {
        0 => None,
        n => Some(skald_model::Shard::new(req.shard_index, n).ok_or_else(|| {
            ServiceError::new(
                ErrorCode::BadRequest,
                format!("invalid shard {} of {n}", req.shard_index),
            )
        })?),
    };
    Ok((
        req.tenant,
        IngesterQuery {
            matchers,
            start: req.start,
            end: req.end,
            line_contains: req.line_contains,
            pipeline: req.pipeline,
            limit: req.limit,
            backward: req.backward,
            sample_expr: req.sample_expr,
            sample_grouping: req.has_grouping.then_some(SampleGrouping {
                without: req.grouping_without,
                labels: req.grouping_labels,
            }),
            shard,
        },
    ))
}

#[async_trait]
impl crate::skald_ingester_v1::ingester_server::Ingester for IngesterGrpcServer {
    async fn push(
        &self,
        request: tonic::Request<crate::skald_ingester_v1::PushRequest>,
    ) -> Result<tonic::Response<crate::skald_ingester_v1::PushResponse>, tonic::Status> {
        let req = request.into_inner();
        let streams = req.streams.into_iter().map(convert::stream_from_pb).collect();
        self.inner.push(&req.tenant, streams).await?;
        Ok(tonic::Response::new(crate::skald_ingester_v1::PushResponse {}))
    }

    type QueryStream = std::pin::Pin<
        Box<
            dyn futures::Stream<
                    Item = Result<crate::skald_ingester_v1::QueryResponse, tonic::Status>,
                > + Send
                + 'static,
        >,
    >;

    async fn query(
        &self,
        request: tonic::Request<crate::skald_ingester_v1::QueryRequest>,
    ) -> Result<tonic::Response<Self::QueryStream>, tonic::Status> {
        let (tenant, query) = query_from_pb(request.into_inner())?;
        let streams = self.inner.query(&tenant, query).await?;
        // Split into bounded batches so one huge stream never makes one huge message.
        let mut batches: Vec<Result<crate::skald_ingester_v1::QueryResponse, tonic::Status>> =
            Vec::new();
        for s in streams {
            let labels = s.labels;
            let mut entries = s.entries;
            while !entries.is_empty() {
                let rest = entries.split_off(entries.len().min(QUERY_BATCH_ENTRIES));
                let part = Stream { labels: labels.clone(), entries };
                batches.push(Ok(crate::skald_ingester_v1::QueryResponse {
                    streams: vec![convert::stream_to_pb(part)],
                }));
                entries = rest;
            }
        }
        Ok(tonic::Response::new(Box::pin(futures::stream::iter(batches))))
    }

    async fn series(
        &self,
        request: tonic::Request<crate::skald_ingester_v1::QueryRequest>,
    ) -> Result<tonic::Response<crate::skald_ingester_v1::SeriesResponse>, tonic::Status> {
        let (tenant, query) = query_from_pb(request.into_inner())?;
        let series = self.inner.series(&tenant, query).await?;
        Ok(tonic::Response::new(crate::skald_ingester_v1::SeriesResponse {
            series: series
                .iter()
                .map(|l| crate::skald_ingester_v1::LabelSet { labels: convert::labels_to_pb(l) })
                .collect(),
        }))
    }

    async fn chunk_stats(
        &self,
        request: tonic::Request<crate::skald_ingester_v1::QueryRequest>,
    ) -> Result<tonic::Response<crate::skald_ingester_v1::ChunkStatsResponse>, tonic::Status> {
        let (tenant, query) = query_from_pb(request.into_inner())?;
        let streams = self.inner.chunk_stats(&tenant, query).await?;
        Ok(tonic::Response::new(crate::chunk_stats::response_to_pb(streams)))
    }

    type QuerySamplesStream = std::pin::Pin<
        Box<
            dyn futures::Stream<
                    Item = Result<crate::skald_ingester_v1::SampleResponse, tonic::Status>,
                > + Send
                + 'static,
        >,
    >;

    async fn query_samples(
        &self,
        request: tonic::Request<crate::skald_ingester_v1::QueryRequest>,
    ) -> Result<tonic::Response<Self::QuerySamplesStream>, tonic::Status> {
        let (tenant, query) = query_from_pb(request.into_inner())?;
        let series = self.inner.query_samples(&tenant, query).await?;
        let mut batches: Vec<Result<crate::skald_ingester_v1::SampleResponse, tonic::Status>> =
            Vec::new();
        for s in series {
            let labels = convert::labels_to_pb(&s.labels);
            for part in s.samples.chunks(QUERY_BATCH_ENTRIES * 4) {
                batches.push(Ok(crate::skald_ingester_v1::SampleResponse {
                    series: vec![crate::skald_ingester_v1::SampleSeries {
                        labels: labels.clone(),
                        ts: part.iter().map(|p| p.ts).collect(),
                        values: part.iter().map(|p| p.value).collect(),
                        hashes: part.iter().map(|p| p.hash).collect(),
                    }],
                }));
            }
        }
        Ok(tonic::Response::new(Box::pin(futures::stream::iter(batches))))
    }

    type TailStream = std::pin::Pin<
        Box<
            dyn futures::Stream<
                    Item = Result<crate::skald_ingester_v1::TailResponse, tonic::Status>,
                > + Send
                + 'static,
        >,
    >;

    async fn tail(
        &self,
        request: tonic::Request<crate::skald_ingester_v1::QueryRequest>,
    ) -> Result<tonic::Response<Self::TailStream>, tonic::Status> {
        use futures::StreamExt;
        let (tenant, query) = query_from_pb(request.into_inner())?;
        let stream = self.inner.tail(&tenant, query).await?;
        Ok(tonic::Response::new(Box::pin(stream.map(|r| {
            match r {
                Ok(b) => Ok(crate::skald_ingester_v1::TailResponse {
                    streams: b.streams.into_iter().map(convert::stream_to_pb).collect(),
                    dropped: b
                        .dropped
                        .iter()
                        .map(|d| crate::skald_ingester_v1::DroppedEntry {
                            labels: convert::labels_to_pb(&d.labels),
                            ts: d.ts,
                        })
                        .collect(),
                }),
                Err(e) => Err(tonic::Status::from(e)),
            }
        }))))
    }

    async fn flush_all(
        &self,
        _request: tonic::Request<crate::skald_ingester_v1::FlushRequest>,
    ) -> Result<tonic::Response<crate::skald_ingester_v1::FlushResponse>, tonic::Status> {
        self.inner.flush_all().await?;
        Ok(tonic::Response::new(crate::skald_ingester_v1::FlushResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shard_travels_and_an_older_querier_reads_every_stream() {
        let shard = skald_model::Shard::new(3, 7);
        let q = IngesterQuery { start: 1, end: 2, shard, ..Default::default() };
        let pb = query_to_pb("t", q);
        assert_eq!((pb.shard_index, pb.shard_count), (3, 7));
        let back = query_from_pb(pb.clone()).map(|(_, q)| q.shard);
        assert_eq!(back.ok().flatten(), shard);
        // no shard fields: every stream
        let old = crate::skald_ingester_v1::QueryRequest { shard_index: 0, shard_count: 0, ..pb };
        assert_eq!(query_from_pb(old.clone()).map(|(_, q)| q.shard).ok(), Some(None));
        let bad = crate::skald_ingester_v1::QueryRequest { shard_index: 7, shard_count: 7, ..old };
        assert!(query_from_pb(bad).is_err());
    }

    #[test]
    fn the_sample_grouping_travels_and_an_older_querier_sends_none() {
        for g in [
            Some(SampleGrouping { without: false, labels: vec!["level".into()] }),
            Some(SampleGrouping { without: true, labels: vec!["pod".into(), "app".into()] }),
            Some(SampleGrouping::default()),
            None,
        ] {
            let q = IngesterQuery { sample_grouping: g.clone(), ..Default::default() };
            let back = query_from_pb(query_to_pb("t", q)).map(|(_, q)| q.sample_grouping);
            assert_eq!(back.ok(), Some(g));
        }
        // the fields an older querier does not set: no grouping (`by ()` is has_grouping)
        let old = crate::skald_ingester_v1::QueryRequest::default();
        assert_eq!(query_from_pb(old).map(|(_, q)| q.sample_grouping).ok(), Some(None));
    }

    /// A line that is not UTF-8 crosses the wire byte for byte; `line` was a `string` once,
    /// and a message of that time (UTF-8 lines) reads the same.
    #[test]
    fn a_line_travels_as_its_bytes() {
        use prost::Message;
        let stream = skald_model::Stream {
            labels: Labels::parse(r#"{a="b"}"#).unwrap_or_default(),
            entries: vec![skald_model::Entry {
                ts: 7,
                line: b"caf\xe9 \xe2\x82".to_vec().into(),
                structured_metadata: vec![],
            }],
        };
        let bytes = convert::stream_to_pb(stream.clone()).encode_to_vec();
        let back =
            crate::skald_ingester_v1::Stream::decode(bytes.as_slice()).map(convert::stream_from_pb);
        assert_eq!(back.ok(), Some(stream));
    }
}
