//! The live tail's WebSocket: `/loki/api/v1/tail` and the legacy `/api/prom/tail`. What a
//! tail is (parameters, slots, the ingester subscription, the history, the pipeline over live
//! entries, dropping copies) is in `crate::tail`; this file runs the session: held entries,
//! frames through a bounded queue to the socket, pings, the close.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use skald_loghttp::marshal;
use skald_logql::engine::ResultStream;
use skald_model::{Labels, Stream};
use skald_proto::ingester::{DroppedEntry, TailBatch, TailStream};

use super::reply::{categorize, error_response, LokiRequest};
use crate::error::QuerierError;
use crate::tail::{
    run_pipeline, sends_stream_labels_only, stream_bytes, under_stream_labels, Sent, TailRequest,
};
use crate::Querier;

/// How often held entries are sent.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// How often a ping frame is sent (Loki's querier pings every second).
const PING_EVERY: Duration = Duration::from_secs(1);
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

type Upgrade = Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>;

pub(super) async fn tail_v1(
    State(q): State<Arc<Querier>>,
    ws: Upgrade,
    r: LokiRequest,
) -> Response {
    open(q, r, ws, false).await
}

pub(super) async fn tail_legacy(
    State(q): State<Arc<Querier>>,
    ws: Upgrade,
    r: LokiRequest,
) -> Response {
    open(q, r, ws, true).await
}

/// A request that is not a WebSocket handshake, answered as Loki's WebSocket library
/// answers it: the status text as the body, and the version it speaks.
fn not_a_websocket(status: axum::http::StatusCode) -> Response {
    let text = format!("{}\n", status.canonical_reason().unwrap_or("Bad Request"));
    let mut resp = (status, text).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert("sec-websocket-version", axum::http::HeaderValue::from_static("13"));
    resp
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
    let req = match q.parse_tail(&tenant, &r.params, categorize(&r.headers), legacy) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return not_a_websocket(rejection.into_response().status()),
    };
    let slot = match q.take_tail_slot(&tenant) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    // subscribed before the history is read: nothing pushed in between is missed
    let live = match q.subscribe_tail(&tenant, &req).await {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    ws.on_upgrade(move |socket| async move {
        let _slot = slot;
        Session::new(q, tenant, req).run(socket, live).await;
    })
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
        match self.querier.tail_history(&self.tenant, &self.req).await {
            Ok(streams) => {
                if let Err(end) = self.send(out, streams, None) {
                    return end;
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
        let pushed: Option<Vec<_>> = sends_stream_labels_only(&self.req)
            .then(|| streams.iter().map(|s| s.labels.clone()).collect());
        let result =
            run_pipeline(&self.req, streams).map_err(|e| End::Close(1011, e.to_string()))?;
        self.send(out, result, pushed.as_deref())
    }

    /// Queues one frame with what was not sent before, plus the dropped entries. When the
    /// client is too far behind, the frame's entries are dropped and reported later instead.
    /// With `pushed` (live entries of a plain selector), what is new goes out under the
    /// labels of the streams it was pushed in; copies are recognised by the query's labels
    /// all the same, as the history's are.
    fn send(
        &mut self,
        out: &Out,
        streams: Vec<ResultStream>,
        pushed: Option<&[Labels]>,
    ) -> Result<(), End> {
        let mut fresh: Vec<ResultStream> = Vec::with_capacity(streams.len());
        for mut s in streams {
            s.entries.retain(|e| self.sent.first(&s.labels, e.ts, &e.line));
            if !s.entries.is_empty() {
                fresh.push(s);
            }
        }
        if let Some(pushed) = pushed {
            fresh = under_stream_labels(fresh, pushed);
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
