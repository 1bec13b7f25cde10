//! The HTTP and gRPC listeners, hardened against slow and idle clients and against running
//! out of file descriptors (Loki's `server.http_server_*_timeout` and gRPC keys).
//!
//! HTTP connections are served by hyper directly, each through [`TimedIo`], which closes:
//! - an idle keep-alive connection after `http_server_idle_timeout` without a request;
//! - a connection whose request headers are not complete `http_server_read_header_timeout`
//!   (else `http_server_read_timeout`) after their first byte (slowloris);
//! - a connection whose response write stays blocked `http_server_write_timeout`.
//!
//! A request body must arrive within `http_server_read_timeout` of the request's first byte
//! ([`DeadlineBody`]); a slower one fails the request. Upgraded connections (the live tail's
//! WebSocket) are exempt: they have their own pings.
//!
//! When `accept` fails for lack of descriptors (`EMFILE`/`ENFILE`), the loop warns (at most
//! once every 10 s), asks connections idle for at least [`SHED_IDLE_AFTER`] to close, and
//! retries shortly, instead of spinning or stopping; the same for gRPC's accept loop. A
//! watcher logs the descriptor limit at start and warns when open descriptors pass 90% of it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Sleep;

/// Under descriptor pressure, connections without a request for this long are closed.
pub const SHED_IDLE_AFTER: Duration = Duration::from_millis(250);

/// Durations at least this long count as "never" (Loki writes its infinity as
/// `2562047h47m16.854775807s`).
pub const FOREVER: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How long the accept loops wait after running out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// The HTTP server's timeouts (0 disables one).
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    /// Whole request (headers and body), from its first byte.
    pub read: Duration,
    /// Request headers, from their first byte.
    pub read_header: Duration,
    /// A blocked response write.
    pub write: Duration,
    /// Waiting for the next request on a kept-alive connection.
    pub idle: Duration,
}

impl HttpTimeouts {
    /// From the `server` block, with Go's fallbacks (header → read, idle → read).
    pub fn from_config(s: &crate::config::ServerConfig) -> Self {
        let off_if_forever = |d: Duration| if d >= FOREVER { Duration::ZERO } else { d };
        let read = off_if_forever(s.http_server_read_timeout);
        let or_read = |d: Duration| if d.is_zero() { read } else { off_if_forever(d) };
        HttpTimeouts {
            read,
            read_header: or_read(s.http_server_read_header_timeout),
            write: off_if_forever(s.http_server_write_timeout),
            idle: or_read(s.http_server_idle_timeout),
        }
    }
}

fn now_ms(origin: Instant) -> u64 {
    origin.elapsed().as_millis() as u64
}

const NONE: u64 = u64::MAX;

/// What one connection is doing, shared by its IO, its service and its task.
struct ConnState {
    origin: Instant,
    /// Requests handed to the router and not answered yet.
    in_flight: AtomicUsize,
    /// When the first byte of the request being read arrived (ms since `origin`), or NONE.
    request_start: AtomicU64,
    /// Last successful read or write (ms since `origin`).
    last_activity: AtomicU64,
    /// Upgraded (WebSocket): no timeouts.
    upgraded: AtomicBool,
    /// The task whose read waits without a deadline while a request is handled.
    reader: parking_lot::Mutex<Option<std::task::Waker>>,
}

impl ConnState {
    fn new() -> Self {
        ConnState {
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            request_start: AtomicU64::new(NONE),
            last_activity: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
            reader: parking_lot::Mutex::new(None),
        }
    }

    fn touch(&self) {
        self.last_activity.store(now_ms(self.origin), Ordering::Relaxed);
    }

    fn instant(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms)
    }

    /// No request in flight or being read, and no traffic for `d`.
    fn idle_for(&self, d: Duration) -> bool {
        !self.upgraded.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.request_start.load(Ordering::Relaxed) == NONE
            && now_ms(self.origin).saturating_sub(self.last_activity.load(Ordering::Relaxed))
                >= d.as_millis() as u64
    }
}

/// A TCP stream with the read, header, idle and write deadlines of its connection.
struct TimedIo {
    inner: TcpStream,
    state: Arc<ConnState>,
    timeouts: HttpTimeouts,
    read_sleep: Option<Pin<Box<Sleep>>>,
    write_sleep: Option<Pin<Box<Sleep>>>,
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

/// Polls a sleep armed for `deadline` (re-armed when the deadline moved).
fn poll_deadline(
    slot: &mut Option<Pin<Box<Sleep>>>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> bool {
    let deadline = tokio::time::Instant::from_std(deadline);
    match slot {
        Some(s) if s.deadline() == deadline => {}
        Some(s) => s.as_mut().reset(deadline),
        None => *slot = Some(Box::pin(tokio::time::sleep_until(deadline))),
    }
    slot.as_mut().is_some_and(|s| s.as_mut().poll(cx).is_ready())
}

impl TimedIo {
    /// The deadline of a pending read: the headers' while a request is being read before
    /// the router has it, the idle one between requests; none while a request is handled
    /// (its body has [`DeadlineBody`]).
    fn read_deadline(&self) -> Option<(Instant, &'static str)> {
        let s = &self.state;
        if s.upgraded.load(Ordering::Relaxed) || s.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        match s.request_start.load(Ordering::Relaxed) {
            NONE if !self.timeouts.idle.is_zero() => Some((
                s.instant(s.last_activity.load(Ordering::Relaxed)) + self.timeouts.idle,
                "idle connection",
            )),
            NONE => None,
            start if !self.timeouts.read_header.is_zero() => {
                Some((s.instant(start) + self.timeouts.read_header, "reading the request headers"))
            }
            _ => None,
        }
    }
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.read_sleep = None;
                if buf.filled().len() > before {
                    let s = &this.state;
                    s.touch();
                    if s.in_flight.load(Ordering::Relaxed) == 0 {
                        let now = now_ms(s.origin);
                        let _ = s.request_start.compare_exchange(
                            NONE,
                            now,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.read_deadline() {
                Some((deadline, what)) => {
                    if poll_deadline(&mut this.read_sleep, deadline, cx) {
                        return Poll::Ready(Err(timed_out(what)));
                    }
                    Poll::Pending
                }
                None => {
                    this.read_sleep = None;
                    // hyper may not read again once the response is out: wake it then, so
                    // that the idle deadline starts
                    *this.state.reader.lock() = Some(cx.waker().clone());
                    Poll::Pending
                }
            },
            other => other,
        }
    }
}

impl TimedIo {
    /// `wrote`: whether bytes went out (a flush is not traffic: hyper flushes on every
    /// wake-up, and that must not keep an idle connection alive).
    fn on_write<T>(
        &mut self,
        r: Poll<io::Result<T>>,
        wrote: impl Fn(&T) -> bool,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(v) => {
                self.write_sleep = None;
                if v.as_ref().is_ok_and(&wrote) {
                    self.state.touch();
                }
                Poll::Ready(v)
            }
            Poll::Pending => {
                if self.timeouts.write.is_zero() || self.state.upgraded.load(Ordering::Relaxed) {
                    return Poll::Pending;
                }
                // the deadline runs from the first blocked attempt
                let deadline = match &self.write_sleep {
                    Some(s) => s.deadline().into_std(),
                    None => Instant::now() + self.timeouts.write,
                };
                if poll_deadline(&mut self.write_sleep, deadline, cx) {
                    return Poll::Ready(Err(timed_out("writing the response")));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.on_write(r, |n| *n > 0, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.on_write(r, |n| *n > 0, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.on_write(r, |_| false, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A request body that must be complete by a deadline (`http_server_read_timeout` after
/// the request's first byte).
struct DeadlineBody {
    inner: Incoming,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => Poll::Ready(r.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                if let Some(s) = this.sleep.as_mut() {
                    if s.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Some(
                            Err(timed_out("reading the request body").into()),
                        ));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request in flight until hyper is done with it.
struct GuardedBody {
    inner: axum::body::Body,
    _guard: InFlight,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Counts a request as in flight until its response is written.
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let s = &self.0;
        s.request_start.store(NONE, Ordering::Relaxed);
        s.in_flight.fetch_sub(1, Ordering::Relaxed);
        s.touch();
        if let Some(w) = s.reader.lock().take() {
            w.wake();
        }
    }
}

/// Logs at most once per `every` (for hot-path warnings).
struct RateLimited {
    last: parking_lot::Mutex<Option<Instant>>,
    every: Duration,
}

impl RateLimited {
    const fn new(every: Duration) -> Self {
        RateLimited { last: parking_lot::const_mutex(None), every }
    }

    fn ready(&self) -> bool {
        let mut last = self.last.lock();
        if last.is_some_and(|t| t.elapsed() < self.every) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

static EMFILE_WARNING: RateLimited = RateLimited::new(Duration::from_secs(10));

/// True for accept errors that mean "out of descriptors or memory": wait, then retry.
fn is_resource_exhausted(e: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM on Linux
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Handles an accept error: warns (rate-limited) and backs off. Returns whether descriptors
/// ran out (then idle connections should be shed).
async fn accept_error(e: &io::Error, listener: &'static str) -> bool {
    if is_resource_exhausted(e) {
        if EMFILE_WARNING.ready() {
            let limit = fd_limit();
            tracing::warn!(
                listener,
                error = %e,
                open_fds = ?open_fds(),
                fd_limit = ?limit,
                "cannot accept connections: out of file descriptors; closing idle connections and retrying"
            );
        }
        tokio::time::sleep(ACCEPT_BACKOFF).await;
        true
    } else {
        // a connection reset before it was accepted, and the like
        tracing::debug!(listener, error = %e, "accept failed");
        false
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open requests finish.
pub async fn serve_http(
    listener: TcpListener,
    app: Router,
    timeouts: HttpTimeouts,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // bumped when descriptors run out: idle connections close
    let (shed_tx, shed_rx) = watch::channel(0u64);
    // every connection task holds a sender: `recv` returns None once all are gone
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                if accept_error(&e, "http").await {
                    shed_tx.send_modify(|n| *n += 1);
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            timeouts,
            stop: stop_rx.clone(),
            shed: shed_rx.clone(),
            _alive: alive_tx.clone(),
        };
        tokio::spawn(conn.run(stream));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
    Ok(())
}

struct Connection {
    app: Router,
    timeouts: HttpTimeouts,
    stop: watch::Receiver<bool>,
    shed: watch::Receiver<u64>,
    _alive: mpsc::Sender<()>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        let state = Arc::new(ConnState::new());
        let io = TimedIo {
            inner: stream,
            state: state.clone(),
            timeouts: self.timeouts,
            read_sleep: None,
            write_sleep: None,
        };
        let (app, svc_state, read_timeout) = (self.app.clone(), state.clone(), self.timeouts.read);
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let (app, state) = (app.clone(), svc_state.clone());
            state.in_flight.fetch_add(1, Ordering::Relaxed);
            let guard = InFlight(state.clone());
            let started = match state.request_start.load(Ordering::Relaxed) {
                NONE => Instant::now(),
                ms => state.instant(ms),
            };
            let sleep = (!read_timeout.is_zero()).then(|| {
                Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
                    started + read_timeout,
                )))
            });
            let req = req.map(|inner| axum::body::Body::new(DeadlineBody { inner, sleep }));
            async move {
                let resp = tower_oneshot(app, req).await;
                if resp.status() == hyper::StatusCode::SWITCHING_PROTOCOLS {
                    state.upgraded.store(true, Ordering::Relaxed);
                }
                // in flight until the response body is written: a body that streams slowly
                // is not an idle connection
                let resp =
                    resp.map(|inner| axum::body::Body::new(GuardedBody { inner, _guard: guard }));
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        // the headers' deadline is TimedIo's (hyper's own would also cut idle connections)
        builder.timer(TokioTimer::new()).header_read_timeout(None).keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
        tokio::pin!(conn);
        let mut stopping = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(error) = r {
                        tracing::debug!(%error, "http connection closed");
                    }
                    return;
                }
                _ = self.stop.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                changed = self.shed.changed(), if !stopping => {
                    if changed.is_err() {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    } else if state.idle_for(SHED_IDLE_AFTER) {
                        // out of descriptors: an idle connection gives its own back
                        return;
                    }
                }
            }
        }
    }
}

/// Runs one request through the router (always ready, never failing).
async fn tower_oneshot(
    mut app: Router,
    req: hyper::Request<axum::body::Body>,
) -> axum::response::Response {
    use tower_service::Service;
    if let Err(e) = std::future::poll_fn(|cx| {
        <Router as Service<hyper::Request<axum::body::Body>>>::poll_ready(&mut app, cx)
    })
    .await
    {
        match e {}
    }
    match app.call(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    }
}

/// gRPC's incoming connections: accept errors for lack of descriptors are logged
/// (rate-limited) and retried after a pause instead of ending the server.
pub fn grpc_incoming(
    listener: TcpListener,
) -> impl futures::Stream<Item = io::Result<TcpStream>> + Send + 'static {
    futures::stream::unfold(listener, |listener| async move {
        loop {
            match listener.accept().await {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    return Some((Ok(s), listener));
                }
                Err(e) => {
                    accept_error(&e, "grpc").await;
                }
            }
        }
    })
}

/// The soft limit on open descriptors (`RLIMIT_NOFILE`), from `/proc/self/limits`.
pub fn fd_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

/// Descriptors open now, from `/proc/self/fd`.
pub fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

static FD_WARNING: RateLimited = RateLimited::new(Duration::from_secs(60));

/// Logs the descriptor limit, then checks every few seconds and warns (at most once a
/// minute) when open descriptors pass 90% of it. Does nothing where `/proc` is missing.
pub fn watch_fds(mut stop: watch::Receiver<bool>) {
    let Some(limit) = fd_limit() else { return };
    tracing::info!(fd_limit = limit, open_fds = ?open_fds(), "file descriptor limit (RLIMIT_NOFILE)");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Some(open) = open_fds() {
                if open.saturating_mul(10) >= limit.saturating_mul(9) && FD_WARNING.ready() {
                    tracing::warn!(
                        open_fds = open,
                        fd_limit = limit,
                        "open file descriptors are above 90% of the limit; raise `ulimit -n` or shorten server.http_server_idle_timeout"
                    );
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_fall_back_like_go() {
        let mut s = crate::config::ServerConfig::default();
        let t = HttpTimeouts::from_config(&s);
        assert_eq!((t.read.as_secs(), t.read_header.as_secs()), (30, 30));
        assert_eq!((t.write.as_secs(), t.idle.as_secs()), (30, 120));
        s.http_server_idle_timeout = Duration::ZERO;
        s.http_server_read_header_timeout = Duration::from_secs(5);
        let t = HttpTimeouts::from_config(&s);
        assert_eq!((t.read_header.as_secs(), t.idle.as_secs()), (5, 30));
    }

    #[test]
    fn idle_state() {
        let s = ConnState::new();
        assert!(s.idle_for(Duration::ZERO));
        s.in_flight.fetch_add(1, Ordering::Relaxed);
        assert!(!s.idle_for(Duration::ZERO));
        s.in_flight.fetch_sub(1, Ordering::Relaxed);
        s.request_start.store(0, Ordering::Relaxed);
        assert!(!s.idle_for(Duration::ZERO), "a request being read is not idle");
    }

    async fn pair(timeouts: HttpTimeouts) -> (TimedIo, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        let io = TimedIo {
            inner: server,
            state: Arc::new(ConnState::new()),
            timeouts,
            read_sleep: None,
            write_sleep: None,
        };
        (io, client)
    }

    const SHORT: HttpTimeouts = HttpTimeouts {
        read: Duration::from_millis(300),
        read_header: Duration::from_millis(300),
        write: Duration::from_millis(300),
        idle: Duration::from_millis(300),
    };

    #[tokio::test]
    async fn a_blocked_write_times_out() {
        use tokio::io::AsyncWriteExt;
        let (mut io, _client) = pair(SHORT).await;
        // the client never reads: the socket buffers fill, then the write blocks
        let chunk = vec![0u8; 1 << 20];
        let err = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Err(e) = io.write_all(&chunk).await {
                    return e;
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn idle_and_partial_headers_time_out_but_a_request_in_flight_does_not() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = [0u8; 64];
        // idle
        let (mut io, _client) = pair(SHORT).await;
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // headers that never end
        let (mut io, mut client) = pair(SHORT).await;
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert!(io.read(&mut buf).await.unwrap() > 0);
        let err = io.read(&mut buf).await.unwrap_err();
        assert!(err.to_string().contains("headers"), "{err}");
        // while a request is handled, reads wait without a deadline
        let (mut io, _client) = pair(SHORT).await;
        io.state.in_flight.fetch_add(1, Ordering::Relaxed);
        let r = tokio::time::timeout(Duration::from_secs(1), io.read(&mut buf)).await;
        assert!(r.is_err(), "the read ended: {r:?}");
    }

    #[test]
    fn proc_limits_are_read() {
        if std::path::Path::new("/proc/self/limits").try_exists().unwrap_or(false) {
            assert!(fd_limit().unwrap_or(0) > 0);
            assert!(open_fds().unwrap_or(0) > 0);
        }
    }
}
