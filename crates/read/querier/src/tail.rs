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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use skald_logql::engine::{
    self, EngineError, QueryParams, QueryResult, ResultStream, SelectLimit, Source,
};
use skald_logql::syntax::ast::{Expr, LogSelectorExpr};
use skald_model::{Direction, Entry, LabelMatcher, Labels, Stream, StreamBatch};
use skald_proto::ingester::{DroppedEntry, IngesterQuery, TailBatch, TailStream};

use crate::error::QuerierError;
use crate::http::{categorize, error_response, LokiRequest};
use crate::params::{self, Params};
use crate::{marshal, Querier};

/// Largest `delay_for` Loki accepts, in seconds.
const MAX_DELAY_FOR: i64 = 5;
/// How often held entries are sent.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// How often a ping frame is sent (Loki's querier pings every second).
const PING_EVERY: Duration = Duration::from_secs(1);
/// How long a sent entry is remembered to drop later copies of it.
const REMEMBER_SENT: Duration = Duration::from_secs(120);
/// Default look-back of `start`.
const HOUR_NS: i64 = 3_600_000_000_000;
/// Bytes of frames waiting for the WebSocket before further frames are dropped (a frame is
/// always queued when nothing waits).
const WS_BUFFER_BYTES: usize = 8 << 20;
/// Frames waiting for the WebSocket, at most.
const WS_BUFFER_FRAMES: usize = 64;
/// Bytes of live entries held for `delay_for` before further ones are dropped.
const HELD_BYTES: usize = 8 << 20;
/// Dropped entries remembered to report to the client (as the ingester's list, bounded).
const MAX_DROPPED_REPORTED: usize = 1000;
/// How long the last frames (and the close frame) may take to leave once the tail ends.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn router(querier: Arc<Querier>) -> Router {
    Router::new()
        .route("/loki/api/v1/tail", get(tail_v1))
        .route("/api/prom/tail", get(tail_legacy))
        .with_state(querier)
}

type Upgrade = Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>;

async fn tail_v1(State(q): State<Arc<Querier>>, ws: Upgrade, r: LokiRequest) -> Response {
    open(q, r, ws, false).await
}

async fn tail_legacy(State(q): State<Arc<Querier>>, ws: Upgrade, r: LokiRequest) -> Response {
    open(q, r, ws, true).await
}

/// A parsed tail request.
struct TailRequest {
    selector: LogSelectorExpr,
    limit: u32,
    start: i64,
    delay: Duration,
    categorize: bool,
    legacy: bool,
}

impl Querier {
    fn parse_tail(
        &self,
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
        self.check_limit(limit)?;
        let start = params::parse_timestamp(p.get("start"), params::now_ns() - HOUR_NS)?;
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
    fn take_tail_slot(self: &Arc<Self>, tenant: &str) -> Result<TailSlot, QuerierError> {
        let max = self.limits.max_concurrent_tail_requests;
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
}

/// A tenant's tail slot, given back on drop.
struct TailSlot {
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

/// Checks the request, subscribes to the ingesters, then upgrades: every error that can be
/// known before the upgrade is a plain HTTP error.
async fn open(q: Arc<Querier>, r: LokiRequest, ws: Upgrade, legacy: bool) -> Response {
    let tenant = r.tenant;
    if tenant.contains('|') {
        return error_response(&QuerierError::BadRequest(
            "tail is not supported for multiple tenants".into(),
        ));
    }
    let req = match q.parse_tail(&r.params, categorize(&r.headers), legacy) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let slot = match q.take_tail_slot(&tenant) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let Some(ingester) = q.ingester.clone() else {
        return error_response(&QuerierError::Unavailable(
            "this querier has no ingesters to tail".into(),
        ));
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
    // subscribed before the history is read: nothing pushed in between is missed
    let live = match ingester.tail(&tenant, sub).await {
        Ok(s) => s,
        Err(e) => {
            return error_response(&QuerierError::Status {
                status: e.code.http_status_code(),
                message: e.message,
            })
        }
    };
    ws.on_upgrade(move |socket| async move {
        let _slot = slot;
        Session::new(q, tenant, req).run(socket, live).await;
    })
}

/// Remembers recently sent entries to drop their later copies.
#[derive(Default)]
struct Sent {
    keys: HashSet<u64>,
    order: VecDeque<(Instant, u64)>,
}

impl Sent {
    /// True the first time an entry is offered.
    fn first(&mut self, labels: &Labels, ts: i64, line: &str) -> bool {
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

struct Session {
    querier: Arc<Querier>,
    tenant: String,
    req: TailRequest,
    sent: Sent,
    /// Live batches not sent yet, with the time they arrived.
    held: Vec<(Instant, Stream)>,
    /// The bytes of `held` (as [`stream_bytes`] counts them).
    held_bytes: usize,
    dropped: Vec<DroppedEntry>,
}

/// The memory a live stream holds, roughly.
fn stream_bytes(s: &Stream) -> usize {
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

/// The sending half of the WebSocket: frames go through a bounded queue to a task that writes
/// them, so that a client that does not read cannot stall the tail nor grow its memory.
struct Out {
    tx: tokio::sync::mpsc::Sender<(Message, usize)>,
    /// Bytes queued and not written yet.
    queued: Arc<AtomicUsize>,
}

/// What became of a frame offered to [`Out`].
#[derive(Debug, PartialEq, Eq)]
enum Offer {
    Queued,
    /// The queue is full: the frame was dropped.
    Full,
    /// The writer stopped (the client went away).
    Closed,
}

impl Out {
    fn start(sink: SplitSink<WebSocket, Message>) -> (Out, tokio::task::JoinHandle<()>) {
        let (tx, rx) = tokio::sync::mpsc::channel(WS_BUFFER_FRAMES);
        let queued = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(write_frames(sink, rx, queued.clone()));
        (Out { tx, queued }, task)
    }

    /// Queues a frame unless [`WS_BUFFER_BYTES`] are already waiting.
    fn offer(&self, msg: Message, bytes: usize) -> Offer {
        let before = self.queued.fetch_add(bytes, Ordering::Relaxed);
        if before > 0 && before + bytes > WS_BUFFER_BYTES {
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
            return Offer::Full;
        }
        match self.tx.try_send((msg, bytes)) {
            Ok(()) => Offer::Queued,
            Err(e) => {
                self.queued.fetch_sub(bytes, Ordering::Relaxed);
                match e {
                    tokio::sync::mpsc::error::TrySendError::Full(_) => Offer::Full,
                    tokio::sync::mpsc::error::TrySendError::Closed(_) => Offer::Closed,
                }
            }
        }
    }
}

/// Writes queued frames until the queue closes or the client goes away, then closes the
/// socket (which also sends the reply to a client's close frame).
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: tokio::sync::mpsc::Receiver<(Message, usize)>,
    queued: Arc<AtomicUsize>,
) {
    while let Some((msg, bytes)) = rx.recv().await {
        let closing = matches!(msg, Message::Close(_));
        let sent = sink.send(msg).await;
        queued.fetch_sub(bytes, Ordering::Relaxed);
        if sent.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

enum End {
    /// The client went away.
    Client,
    /// Close with this code and reason.
    Close(u16, String),
}

impl Session {
    fn new(querier: Arc<Querier>, tenant: String, req: TailRequest) -> Self {
        Session {
            querier,
            tenant,
            req,
            sent: Sent::default(),
            held: Vec::new(),
            held_bytes: 0,
            dropped: Vec::new(),
        }
    }

    async fn run(mut self, socket: WebSocket, live: TailStream) {
        let (sink, mut incoming) = socket.split();
        let (out, mut writer) = Out::start(sink);
        if let End::Close(code, reason) = self.serve(&mut incoming, &out, live).await {
            let frame = CloseFrame { code, reason: reason.into() };
            // (a close frame is tiny: it is queued even past the byte budget)
            let _ = out.tx.try_send((Message::Close(Some(frame)), 0));
        }
        drop(out);
        // what is queued may take a moment to leave; a client that does not read gets no more
        if tokio::time::timeout(CLOSE_TIMEOUT, &mut writer).await.is_err() {
            writer.abort();
        }
    }

    /// Remembers dropped entries to report (at most [`MAX_DROPPED_REPORTED`]).
    fn note_dropped(&mut self, entries: impl IntoIterator<Item = DroppedEntry>) {
        for d in entries {
            if self.dropped.len() >= MAX_DROPPED_REPORTED {
                break;
            }
            self.dropped.push(d);
        }
    }

    /// Holds live streams for `delay_for`, dropping what does not fit in [`HELD_BYTES`].
    fn hold(&mut self, streams: Vec<Stream>) {
        let now = Instant::now();
        for s in streams {
            let n = stream_bytes(&s);
            if !self.held.is_empty() && self.held_bytes + n > HELD_BYTES {
                let labels = s.labels.clone();
                self.note_dropped(
                    s.entries.iter().map(|e| DroppedEntry { labels: labels.clone(), ts: e.ts }),
                );
                continue;
            }
            self.held_bytes += n;
            self.held.push((now, s));
        }
    }

    async fn serve(
        &mut self,
        socket: &mut SplitStream<WebSocket>,
        out: &Out,
        mut live: TailStream,
    ) -> End {
        let deadline = tokio::time::Instant::now() + self.querier.config.tail_max_duration;
        // the history: the last `limit` entries since `start`, oldest first
        let history = QueryParams {
            start: self.req.start,
            end: params::now_ns(),
            step_ns: 0,
            interval_ns: 0,
            limit: self.req.limit,
            direction: Direction::Backward,
            instant: false,
            categorize_labels: self.req.categorize,
        };
        let expr = Expr::Log(self.req.selector.clone());
        match self.querier.evaluate(&self.tenant, expr, history).await {
            Ok(found) => {
                if let QueryResult::Streams(mut streams) = found.result {
                    for s in &mut streams {
                        s.entries.reverse();
                    }
                    streams.sort_by_key(|s| s.entries.first().map(|e| e.ts));
                    if let Err(end) = self.send(out, streams) {
                        return end;
                    }
                }
            }
            Err(e) => return End::Close(1011, e.to_string()),
        }
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        let mut ping = tokio::time::interval(PING_EVERY);
        let mut closing = self.querier.closing.subscribe();
        if *closing.borrow() {
            return End::Close(1001, "the server is shutting down".into());
        }
        loop {
            tokio::select! {
                _ = closing.changed() => {
                    return End::Close(1001, "the server is shutting down".into());
                }
                msg = socket.next() => match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return End::Client,
                    Some(Ok(_)) => {}
                },
                batch = live.next() => match batch {
                    Some(Ok(TailBatch { streams, dropped })) => {
                        self.note_dropped(dropped);
                        self.hold(streams);
                    }
                    Some(Err(e)) => return End::Close(1011, format!("tail failed: {}", e.message)),
                    None => return End::Close(1011, "the ingesters ended the tail".into()),
                },
                _ = flush.tick() => {
                    if let Err(end) = self.flush_due(out) {
                        return end;
                    }
                }
                _ = ping.tick() => {
                    // a ping that does not fit is skipped: the queue shows the client is slow
                    if out.offer(Message::Ping(Vec::new().into()), 0) == Offer::Closed {
                        return End::Client;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return End::Close(1000, "reached tail max duration limit".into());
                }
            }
        }
    }

    /// Sends the held entries that waited `delay_for`, through the pipeline.
    fn flush_due(&mut self, out: &Out) -> Result<(), End> {
        if self.held.is_empty() && self.dropped.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let delay = self.req.delay;
        let (due, keep): (Vec<_>, Vec<_>) =
            self.held.drain(..).partition(|(at, _)| now.duration_since(*at) >= delay);
        self.held = keep;
        self.held_bytes = self.held.iter().map(|(_, s)| stream_bytes(s)).sum();
        let streams: Vec<Stream> = due.into_iter().map(|(_, s)| s).collect();
        let result = run_pipeline(&self.req, streams).map_err(|e| End::Close(1011, e))?;
        self.send(out, result)
    }

    /// Queues one frame with what was not sent before, plus the dropped entries. When the
    /// client is too far behind, the frame's entries are dropped and reported later instead.
    fn send(&mut self, out: &Out, streams: Vec<ResultStream>) -> Result<(), End> {
        let mut fresh: Vec<ResultStream> = Vec::with_capacity(streams.len());
        for mut s in streams {
            s.entries.retain(|e| self.sent.first(&s.labels, e.ts, &e.line));
            if !s.entries.is_empty() {
                fresh.push(s);
            }
        }
        let dropped = std::mem::take(&mut self.dropped);
        if fresh.is_empty() && dropped.is_empty() {
            return Ok(());
        }
        let frame = if self.req.legacy {
            let mut v = json!({"streams": marshal::legacy_streams_json(&fresh)});
            if !dropped.is_empty() {
                v["dropped_entries"] = dropped
                    .iter()
                    .map(|d| json!({"Timestamp": marshal::rfc3339_nano(d.ts), "Labels": d.labels.to_string()}))
                    .collect::<Vec<Value>>()
                    .into();
            }
            v
        } else {
            let mut v = json!({"streams": marshal::streams_json(&fresh, self.req.categorize)});
            if !dropped.is_empty() {
                v["dropped_entries"] = dropped
                    .iter()
                    .map(|d| json!({"timestamp": d.ts.to_string(), "labels": marshal::labels_json(&d.labels)}))
                    .collect::<Vec<Value>>()
                    .into();
            }
            v
        };
        let text = serde_json::to_string(&frame).unwrap_or_default();
        let bytes = text.len();
        match out.offer(Message::Text(text.into()), bytes) {
            Offer::Queued => Ok(()),
            Offer::Closed => Err(End::Client),
            Offer::Full => {
                self.dropped = dropped;
                for s in &fresh {
                    let labels = &s.labels;
                    self.note_dropped(
                        s.entries.iter().map(|e| DroppedEntry { labels: labels.clone(), ts: e.ts }),
                    );
                }
                Ok(())
            }
        }
    }
}

/// Runs the tail's query over live entries: the same pipeline, labels and shapes as a query.
fn run_pipeline(req: &TailRequest, streams: Vec<Stream>) -> Result<Vec<ResultStream>, String> {
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
    };
    let out = engine::evaluate(&Expr::Log(req.selector.clone()), &qp, &limits, &source)
        .map_err(|e| e.to_string())?;
    match out.result {
        QueryResult::Streams(s) => Ok(s),
        _ => Err("tail produced a non-log result".into()),
    }
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
                .map(|(ts, l)| Entry { ts: *ts, line: l.to_string(), structured_metadata: vec![] })
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
            out[0].entries.iter().map(|e| (e.ts, e.line.as_str())).collect();
        assert_eq!(lines, vec![(1, "one"), (2, "two"), (3, "three")]);
        assert_eq!(out[0].labels.to_string(), r#"{job="a", x="1"}"#);
    }

    #[test]
    fn copies_are_sent_once() {
        let mut sent = Sent::default();
        let l = Labels::from_vec(vec![Label::new("job", "a")]);
        assert!(sent.first(&l, 1, "x"));
        assert!(!sent.first(&l, 1, "x"));
        assert!(sent.first(&l, 2, "x"));
        assert!(sent.first(&l, 1, "y"));
    }
}
