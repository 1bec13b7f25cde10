//! Live tail: `/loki/api/v1/tail` and the legacy `/api/prom/tail`, over a WebSocket.
//!
//! A tail subscribes to every ingester first (`IngesterService::tail`; in a cluster the ring
//! layer fans out and keeps the subscriptions up), then sends the last `limit` entries since
//! `start` (oldest first), then the entries pushed from then on. Ingesters send raw entries
//! that the pipeline's filters accept; the querier runs the whole pipeline, as for a query, so
//! lines and labels come out exactly as `query_range` writes them. The same entry can arrive
//! several times (replicas; the history and the live feed overlap): only its first copy is
//! sent.
//!
//! Entries are held `delay_for` seconds (0–5) before they are sent, sorted by time, so that
//! slow writers can catch up; frames go out every [`FLUSH_EVERY`]. A ping frame is sent every
//! [`PING_EVERY`]. The tail ends when the client closes it, after `querier.tail_max_duration`,
//! or when the ingesters go away.
//!
//! A client that reads slowly, or never, does not make the querier buffer without bound: frames
//! wait for the WebSocket in a queue of at most [`WS_BUFFER_BYTES`] (plus one frame), entries
//! wait for `delay_for` in at most [`HELD_BYTES`], and what does not fit is dropped and reported
//! in the next frame's `dropped_entries`, as Loki's querier does. The ingesters bound what they
//! hold per tail the same way.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skald_loghttp::params::{self, Params};
use skald_logql::engine::{
    self, EngineError, QueryParams, QueryResult, ResultEntry, ResultStream, SelectLimit, Source,
};
use skald_logql::syntax::ast::{Expr, LogSelectorExpr};
use skald_model::{Direction, Entry, LabelMatcher, Labels, Stream, StreamBatch};
use skald_proto::ingester::{IngesterQuery, TailStream};

use crate::error::QuerierError;
use crate::Querier;

/// Largest `delay_for` Loki accepts, in seconds.
const MAX_DELAY_FOR: i64 = 5;
/// How long a sent entry is remembered to drop later copies of it.
const REMEMBER_SENT: Duration = Duration::from_secs(120);
/// Default look-back of `start`.
const HOUR_NS: i64 = 3_600_000_000_000;

/// A parsed tail request.
pub(crate) struct TailRequest {
    pub(crate) selector: LogSelectorExpr,
    pub(crate) limit: u32,
    pub(crate) start: i64,
    pub(crate) delay: Duration,
    pub(crate) categorize: bool,
    pub(crate) legacy: bool,
}

impl Querier {
    /// Reads and checks a tail request's parameters.
    pub(crate) fn parse_tail(
        &self,
        tenant: &str,
        p: &Params,
        categorize: bool,
        legacy: bool,
    ) -> Result<TailRequest, QuerierError> {
        let expr = self.parse_query(p)?;
        let Expr::Log(mut selector) = expr else {
            return Err(QuerierError::BadRequest(
                "tail requires a log query: a stream selector with an optional pipeline".into(),
            ));
        };
        if let Some(re) = p.get("regexp").filter(|r| !r.is_empty()) {
            // the legacy endpoint's extra line filter
            let text = format!("{selector} |~ {}", skald_logql::syntax::goutil::go_quote(re));
            match skald_logql::syntax::parse_expr(&text) {
                Ok(Expr::Log(s)) => selector = s,
                Ok(_) => return Err(QuerierError::BadRequest("invalid regexp".into())),
                Err(e) => return Err(QuerierError::BadRequest(e.to_string())),
            }
        }
        let limit = params::parse_limit(p.get("limit"))?;
        self.check_limit(tenant, limit)?;
        // Loki reads `since`, `end` and `start` as for a range query, and uses the start
        let (start, _) = params::parse_range(p, HOUR_NS)?;
        let delay = match p.get("delay_for").filter(|s| !s.is_empty()) {
            None => 0,
            Some(s) => s.trim().parse::<i64>().map_err(|_| {
                QuerierError::BadRequest(format!("invalid delay_for `{s}`: want whole seconds"))
            })?,
        };
        if delay > MAX_DELAY_FOR {
            return Err(QuerierError::BadRequest(format!(
                "delay_for can't be greater than {MAX_DELAY_FOR}"
            )));
        }
        if delay < 0 {
            return Err(QuerierError::BadRequest("delay_for must not be negative".into()));
        }
        Ok(TailRequest {
            selector,
            limit,
            start,
            delay: Duration::from_secs(delay as u64),
            categorize,
            legacy,
        })
    }

    /// Takes a tail slot of `tenant`, or says why not.
    pub(crate) fn take_tail_slot(self: &Arc<Self>, tenant: &str) -> Result<TailSlot, QuerierError> {
        let max = self.limits(tenant).max_concurrent_tail_requests;
        let mut tails = self.tails.lock();
        let n = tails.entry(tenant.to_string()).or_insert(0);
        if max > 0 && *n >= max {
            return Err(QuerierError::BadRequest(format!(
                "max concurrent tail requests limit exceeded, count > limit ({} > {max})",
                *n + 1
            )));
        }
        *n += 1;
        Ok(TailSlot { querier: self.clone(), tenant: tenant.to_string() })
    }

    /// Subscribes to the ingesters' live entries for `req` (before the history is read, so
    /// that nothing pushed in between is missed).
    pub(crate) async fn subscribe_tail(
        &self,
        tenant: &str,
        req: &TailRequest,
    ) -> Result<TailStream, QuerierError> {
        let Some(ingester) = self.ingester.clone() else {
            return Err(QuerierError::Unavailable("this querier has no ingesters to tail".into()));
        };
        let sub = IngesterQuery {
            matchers: req.selector.matchers.clone(),
            line_contains: skald_logql::log::required_literals(&req.selector.stages),
            pipeline: if req.selector.stages.is_empty() {
                String::new()
            } else {
                req.selector.to_string()
            },
            ..Default::default()
        };
        ingester.tail(tenant, sub).await.map_err(|e| QuerierError::Status {
            status: e.code.http_status_code(),
            message: e.message,
        })
    }

    /// The tail's history: the last `limit` entries since `start`, oldest first, streams in
    /// the order of their first entry.
    pub(crate) async fn tail_history(
        self: &Arc<Self>,
        tenant: &str,
        req: &TailRequest,
    ) -> Result<Vec<ResultStream>, QuerierError> {
        let history = QueryParams {
            start: req.start,
            end: params::now_ns(),
            step_ns: 0,
            interval_ns: 0,
            limit: req.limit,
            direction: Direction::Backward,
            instant: false,
            categorize_labels: req.categorize,
        };
        let expr = Expr::Log(req.selector.clone());
        let found = self.evaluate(tenant, expr, history).await?;
        let QueryResult::Streams(mut streams) = found.result else { return Ok(Vec::new()) };
        for s in &mut streams {
            s.entries.reverse();
        }
        streams.sort_by_key(|s| s.entries.first().map(|e| e.ts));
        Ok(streams)
    }
}

/// A tenant's tail slot, given back on drop.
pub(crate) struct TailSlot {
    querier: Arc<Querier>,
    tenant: String,
}

impl Drop for TailSlot {
    fn drop(&mut self) {
        let mut tails = self.querier.tails.lock();
        if let Some(n) = tails.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                tails.remove(&self.tenant);
            }
        }
    }
}

/// Remembers recently sent entries to drop their later copies.
#[derive(Default)]
pub(crate) struct Sent {
    keys: HashSet<u64>,
    order: VecDeque<(Instant, u64)>,
}

impl Sent {
    /// True the first time an entry is offered.
    pub(crate) fn first(&mut self, labels: &Labels, ts: i64, line: &[u8]) -> bool {
        let mut h = DefaultHasher::new();
        labels.hash().hash(&mut h);
        ts.hash(&mut h);
        line.hash(&mut h);
        let key = h.finish();
        let now = Instant::now();
        while let Some((at, k)) = self.order.front().copied() {
            if now.duration_since(at) < REMEMBER_SENT {
                break;
            }
            self.keys.remove(&k);
            self.order.pop_front();
        }
        if self.keys.insert(key) {
            self.order.push_back((now, key));
            true
        } else {
            false
        }
    }
}

/// The memory a live stream holds, roughly.
pub(crate) fn stream_bytes(s: &Stream) -> usize {
    let labels: usize = s.labels.iter().map(|l| l.name.len() + l.value.len() + 16).sum();
    let entries: usize = s
        .entries
        .iter()
        .map(|e| {
            let sm: usize =
                e.structured_metadata.iter().map(|m| m.name.len() + m.value.len() + 16).sum();
            e.line.len() + sm + 48
        })
        .sum();
    labels + entries + 64
}

/// Runs the tail's query over live entries: the same pipeline, labels and shapes as a query.
pub(crate) fn run_pipeline(
    req: &TailRequest,
    streams: Vec<Stream>,
) -> Result<Vec<ResultStream>, QuerierError> {
    let total: usize = streams.iter().map(|s| s.entries.len()).sum();
    if total == 0 {
        return Ok(Vec::new());
    }
    let source = LiveSource::new(streams);
    let (start, end) = source.bounds();
    let qp = QueryParams {
        start,
        end: end.saturating_add(1),
        step_ns: 0,
        interval_ns: 0,
        limit: u32::try_from(total).unwrap_or(u32::MAX),
        direction: Direction::Forward,
        instant: false,
        categorize_labels: req.categorize,
    };
    let limits = engine::Limits {
        max_query_series: usize::MAX,
        max_entries_limit_per_query: u32::MAX,
        max_result_bytes: 0,
        // the live entries are in memory already, bounded by the tail's own buffers
        max_query_memory: 0,
    };
    let out = engine::evaluate(&Expr::Log(req.selector.clone()), &qp, &limits, &source)
        .map_err(|e| QuerierError::Internal(e.to_string()))?;
    match out.result {
        QueryResult::Streams(s) => Ok(s),
        _ => Err(QuerierError::Internal("tail produced a non-log result".into())),
    }
}

/// Whether live entries go out as Loki's ingester sends a plain selector's: as pushed, under
/// their stream's labels only. Loki skips its no-op pipeline, so structured metadata (and
/// `detected_level`, which is metadata) stay out of the labels; with `categorize-labels`
/// they still come with each entry. Any pipeline stage makes the metadata labels again.
pub(crate) fn sends_stream_labels_only(req: &TailRequest) -> bool {
    req.selector.stages.is_empty() && !req.categorize
}

/// Puts each result stream back under the labels of the stream it was pushed in (the
/// largest of `pushed` within its labels: a plain selector's result labels are the stream's
/// plus the entry's metadata), merging those that meet, entries by time.
pub(crate) fn under_stream_labels(
    streams: Vec<ResultStream>,
    pushed: &[Labels],
) -> Vec<ResultStream> {
    let mut by: BTreeMap<Labels, Vec<ResultEntry>> = BTreeMap::new();
    for s in streams {
        let within =
            |p: &&Labels| p.iter().all(|l| s.labels.get(&l.name) == Some(l.value.as_str()));
        let labels = pushed.iter().filter(within).max_by_key(|p| p.len()).cloned();
        by.entry(labels.unwrap_or(s.labels)).or_default().extend(s.entries);
    }
    by.into_iter()
        .map(|(labels, mut entries)| {
            entries.sort_by_key(|e| e.ts);
            ResultStream { labels, entries }
        })
        .collect()
}

/// Live entries as an engine source: streams merged by labels, entries sorted by time.
struct LiveSource {
    streams: Vec<Stream>,
}

impl LiveSource {
    fn new(streams: Vec<Stream>) -> Self {
        let mut by: BTreeMap<Labels, Vec<Entry>> = BTreeMap::new();
        for s in streams {
            by.entry(s.labels).or_default().extend(s.entries);
        }
        let streams = by
            .into_iter()
            .map(|(labels, mut entries)| {
                entries.sort_by_key(|e| e.ts);
                Stream { labels, entries }
            })
            .collect();
        LiveSource { streams }
    }

    fn bounds(&self) -> (i64, i64) {
        let ts = self.streams.iter().flat_map(|s| s.entries.iter().map(|e| e.ts));
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for t in ts {
            lo = lo.min(t);
            hi = hi.max(t);
        }
        (lo, hi)
    }
}

impl Source for LiveSource {
    fn select(
        &self,
        selector: &LogSelectorExpr,
        start: i64,
        end: i64,
        _limit: Option<SelectLimit>,
    ) -> Result<Box<dyn Iterator<Item = Result<StreamBatch, EngineError>> + Send + '_>, EngineError>
    {
        let matchers = selector.matchers.clone();
        Ok(Box::new(
            self.streams.iter().filter(move |s| LabelMatcher::all_match(&matchers, &s.labels)).map(
                move |s| {
                    let entries: Vec<Entry> =
                        s.entries.iter().filter(|e| e.ts >= start && e.ts < end).cloned().collect();
                    Ok(StreamBatch::from(&Stream { labels: s.labels.clone(), entries }))
                },
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use skald_model::Label;

    fn req(query: &str, categorize: bool) -> TailRequest {
        let Expr::Log(selector) = skald_logql::syntax::parse_expr(query).unwrap() else {
            panic!("not a log query")
        };
        TailRequest {
            selector,
            limit: 100,
            start: 0,
            delay: Duration::ZERO,
            categorize,
            legacy: false,
        }
    }

    fn stream(labels: &[(&str, &str)], entries: &[(i64, &str)]) -> Stream {
        Stream {
            labels: Labels::from_vec(labels.iter().map(|(k, v)| Label::new(*k, *v)).collect()),
            entries: entries
                .iter()
                .map(|(ts, l)| Entry { ts: *ts, line: l.into(), structured_metadata: vec![] })
                .collect(),
        }
    }

    #[test]
    fn live_entries_go_through_the_whole_pipeline_in_time_order() {
        let r = req(r#"{job="a"} |= "x" | logfmt | line_format "{{.msg}}" | drop msg"#, false);
        let out = run_pipeline(
            &r,
            vec![
                stream(&[("job", "a")], &[(3, "msg=three x=1"), (1, "msg=one x=1")]),
                stream(&[("job", "a")], &[(2, "msg=two x=1"), (4, "msg=no")]),
                stream(&[("job", "b")], &[(5, "msg=other x=1")]),
            ],
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        let lines: Vec<(i64, &str)> =
            out[0].entries.iter().map(|e| (e.ts, e.line.as_str().unwrap())).collect();
        assert_eq!(lines, vec![(1, "one"), (2, "two"), (3, "three")]);
        assert_eq!(out[0].labels.to_string(), r#"{job="a", x="1"}"#);
    }

    #[test]
    fn a_plain_selector_sends_stream_labels_only() {
        assert!(sends_stream_labels_only(&req(r#"{job="a"}"#, false)));
        assert!(!sends_stream_labels_only(&req(r#"{job="a"}"#, true)));
        assert!(!sends_stream_labels_only(&req(r#"{job="a"} |= "x""#, false)));
        let mut a = stream(&[("job", "a")], &[(3, "three"), (1, "one")]);
        a.entries[0].structured_metadata = vec![Label::new("trace_id", "t3")];
        a.entries[1].structured_metadata = vec![Label::new("trace_id", "t1")];
        let b = stream(&[("job", "a"), ("pod", "p")], &[(2, "two")]);
        let pushed = vec![a.labels.clone(), b.labels.clone()];
        let r = req(r#"{job="a"}"#, false);
        let out = run_pipeline(&r, vec![a, b]).unwrap();
        // the pipeline's labels hold the metadata (what the history shows, and what copies
        // are recognised by) ...
        assert_eq!(out.len(), 3, "{out:?}");
        // ... the frame does not
        let out = under_stream_labels(out, &pushed);
        let got: Vec<(String, Vec<i64>)> = out
            .iter()
            .map(|s| (s.labels.to_string(), s.entries.iter().map(|e| e.ts).collect()))
            .collect();
        assert_eq!(
            got,
            vec![
                (r#"{job="a"}"#.to_string(), vec![1, 3]),
                (r#"{job="a", pod="p"}"#.to_string(), vec![2]),
            ]
        );
    }

    #[test]
    fn copies_are_sent_once() {
        let mut sent = Sent::default();
        let l = Labels::from_vec(vec![Label::new("job", "a")]);
        assert!(sent.first(&l, 1, b"x"));
        assert!(!sent.first(&l, 1, b"x"));
        assert!(sent.first(&l, 2, b"x"));
        assert!(sent.first(&l, 1, b"y"));
    }
}
