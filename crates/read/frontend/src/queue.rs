//! The frontend's request queue: one FIFO per tenant, tenants served round robin, each bounded
//! by `frontend.max_outstanding_per_tenant` (past it a request fails at once with Loki's 429).
//! Requesters enqueue through [`RoundTrip`]; workers (in-process or at the end of a gRPC
//! stream) take the next request with [`RequestQueue::next`] and answer through its
//! [`Responder`], which also tells them when the requester went away. A request that
//! arrives while workers wait goes to the one that has waited longest, handed over directly
//! (no race between woken workers), so that workers take requests in the order they asked.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::transport::{FrontendError, HttpRequest, HttpResponse, RoundTrip};

/// Loki's default `frontend.max_outstanding_per_tenant`.
pub const DEFAULT_MAX_OUTSTANDING_PER_TENANT: usize = 2048;

type Reply = Result<HttpResponse, FrontendError>;

/// Per-tenant FIFOs served round robin. Cheap to clone (all clones are one queue).
#[derive(Clone)]
pub struct RequestQueue {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    max_per_tenant: usize,
}

#[derive(Default)]
struct State {
    /// The queued requests of each tenant with any.
    queues: HashMap<Arc<str>, VecDeque<Queued>>,
    /// The tenants with queued requests, in the order they are served next.
    order: VecDeque<Arc<str>>,
    /// Workers waiting for a request, longest first (only while nothing is queued).
    waiters: VecDeque<oneshot::Sender<Work>>,
    next_id: u64,
    closed: bool,
}

struct Queued {
    id: u64,
    request: HttpRequest,
    reply: oneshot::Sender<Reply>,
}

/// A request taken from the queue by a worker: run it, then answer through `responder`.
pub struct Work {
    /// The request's tenant.
    pub tenant: String,
    /// The request, as the querier's router receives it.
    pub request: HttpRequest,
    /// Where the answer goes; it also tells when the requester went away.
    pub responder: Responder,
}

/// Delivers the answer of one taken request. Dropped without answering (a worker whose
/// connection broke), the requester gets [`FrontendError::Unavailable`].
pub struct Responder {
    id: u64,
    reply: oneshot::Sender<Reply>,
}

impl Responder {
    /// The queue's id of the request (unique within the process), which the gRPC protocol
    /// names it by.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Delivers the answer (ignored when the requester went away meanwhile).
    pub fn respond(self, reply: Result<HttpResponse, FrontendError>) {
        let _ = self.reply.send(reply);
    }

    /// Resolves when the requester went away (its future was dropped): stop running the
    /// request. Cancel-safe.
    pub async fn canceled(&mut self) {
        self.reply.closed().await
    }

    /// Whether the requester went away.
    pub fn is_canceled(&self) -> bool {
        self.reply.is_closed()
    }
}

impl RequestQueue {
    /// An empty queue holding at most `max_outstanding_per_tenant` queued (not yet taken)
    /// requests per tenant.
    pub fn new(max_outstanding_per_tenant: usize) -> Self {
        RequestQueue {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                max_per_tenant: max_outstanding_per_tenant,
            }),
        }
    }

    /// Queues `request` for `tenant`; the receiver gets its answer.
    fn enqueue(
        &self,
        tenant: &str,
        request: HttpRequest,
    ) -> Result<(u64, oneshot::Receiver<Reply>), FrontendError> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut state = self.inner.state.lock();
            if state.closed {
                return Err(shutting_down());
            }
            let id = state.next_id;
            state.next_id += 1;
            let queued = Queued { id, request, reply: tx };
            let full = match state.queues.get(tenant) {
                Some(q) => q.len() >= self.inner.max_per_tenant,
                None => self.inner.max_per_tenant == 0,
            };
            if full {
                return Err(FrontendError::TooManyOutstanding);
            }
            state.dispatch(Arc::from(tenant), queued, false);
            id
        };
        Ok((id, rx))
    }

    /// Removes request `id` of `tenant` if it is still queued.
    fn remove(&self, tenant: &str, id: u64) {
        let mut state = self.inner.state.lock();
        let Some(q) = state.queues.get_mut(tenant) else { return };
        q.retain(|queued| queued.id != id);
        if q.is_empty() {
            state.queues.remove(tenant);
            state.order.retain(|t| &**t != tenant);
        }
    }

    /// Takes the next request, round robin across tenants (FIFO within one). Waits while the
    /// queue is empty; `None` once the queue is closed. Cancel-safe: dropping the future takes
    /// nothing.
    pub async fn next(&self) -> Option<Work> {
        let rx = {
            let mut state = self.inner.state.lock();
            if state.closed {
                return None;
            }
            if let Some(work) = state.pop() {
                return Some(work);
            }
            let (tx, rx) = oneshot::channel();
            state.waiters.push_back(tx);
            rx
        };
        Waiting { inner: self.inner.clone(), rx: Some(rx) }.recv().await
    }

    /// Stops the queue (on shutdown): waiting workers get `None`, queued requests fail with
    /// [`FrontendError::Unavailable`] and new ones are refused the same way. Requests already
    /// taken still get their answers.
    pub fn close(&self) {
        let queues = {
            let mut state = self.inner.state.lock();
            state.closed = true;
            state.order.clear();
            // waiting workers get `None`
            state.waiters.clear();
            std::mem::take(&mut state.queues)
        };
        for queued in queues.into_values().flatten() {
            let _ = queued.reply.send(Err(shutting_down()));
        }
    }

    /// The number of requests of `tenant` waiting for a worker (Loki's
    /// `cortex_query_frontend_queue_length{user}`).
    pub fn queue_length(&self, tenant: &str) -> usize {
        self.inner.state.lock().queues.get(tenant).map_or(0, VecDeque::len)
    }

    /// The queue length of every tenant with queued requests.
    pub fn queue_lengths(&self) -> Vec<(String, usize)> {
        let state = self.inner.state.lock();
        state.queues.iter().map(|(t, q)| (t.to_string(), q.len())).collect()
    }
}

impl State {
    /// Hands `queued` to the longest-waiting worker, or queues it (at the front of its
    /// tenant's queue when `front`: a request a worker gave back).
    fn dispatch(&mut self, tenant: Arc<str>, queued: Queued, front: bool) {
        let mut work = Work {
            tenant: tenant.to_string(),
            request: queued.request,
            responder: Responder { id: queued.id, reply: queued.reply },
        };
        while let Some(waiter) = self.waiters.pop_front() {
            match waiter.send(work) {
                Ok(()) => return,
                // that worker stopped waiting
                Err(back) => work = back,
            }
        }
        let Work { request, responder: Responder { id, reply }, .. } = work;
        let queued = Queued { id, request, reply };
        match self.queues.get_mut(&tenant) {
            Some(q) if front => q.push_front(queued),
            Some(q) => q.push_back(queued),
            None => {
                self.queues.insert(tenant.clone(), VecDeque::from([queued]));
                // A tenant with nothing queued until now is served next, ahead of the busy
                // ones (as fair queueing starts a newly active flow at the current virtual
                // time): a light tenant waits for one running request, not for one of every
                // busy tenant. It then takes its turn like the others.
                self.order.push_front(tenant);
            }
        }
    }

    fn pop(&mut self) -> Option<Work> {
        while let Some(tenant) = self.order.pop_front() {
            let Some(q) = self.queues.get_mut(&tenant) else { continue };
            let mut taken = None;
            while let Some(queued) = q.pop_front() {
                // a requester that went away without its guard running yet
                if !queued.reply.is_closed() {
                    taken = Some(queued);
                    break;
                }
            }
            if q.is_empty() {
                self.queues.remove(&tenant);
            } else {
                self.order.push_back(tenant.clone());
            }
            if let Some(Queued { id, request, reply }) = taken {
                return Some(Work {
                    tenant: tenant.to_string(),
                    request,
                    responder: Responder { id, reply },
                });
            }
        }
        None
    }
}

/// A worker waiting for a request. Dropped while waiting (the worker gave up), a request
/// already handed to it goes back to the front of its tenant's queue (or to the next waiting
/// worker): nothing handed over is lost.
struct Waiting {
    inner: Arc<Inner>,
    rx: Option<oneshot::Receiver<Work>>,
}

impl Waiting {
    /// The request handed over; `None` once the queue is closed.
    async fn recv(mut self) -> Option<Work> {
        let rx = self.rx.as_mut()?;
        let work = rx.await.ok();
        self.rx = None;
        work
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        rx.close();
        let Ok(work) = rx.try_recv() else { return };
        let mut state = self.inner.state.lock();
        if state.closed {
            drop(state);
            work.responder.respond(Err(shutting_down()));
            return;
        }
        let Work { tenant, request, responder: Responder { id, reply } } = work;
        state.dispatch(Arc::from(tenant.as_str()), Queued { id, request, reply }, true);
    }
}

fn shutting_down() -> FrontendError {
    FrontendError::Unavailable("the query-frontend is shutting down".into())
}

/// Removes a still-queued request when its requester's future is dropped.
struct Dequeue {
    queue: RequestQueue,
    tenant: String,
    id: u64,
}

impl Drop for Dequeue {
    fn drop(&mut self) {
        self.queue.remove(&self.tenant, self.id);
    }
}

impl RoundTrip for RequestQueue {
    fn round_trip(
        &self,
        tenant: &str,
        req: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, FrontendError>> {
        // queued now, in call order; the future only waits
        let (id, rx) = match self.enqueue(tenant, req) {
            Ok(queued) => queued,
            Err(e) => return futures::future::ready(Err(e)).boxed(),
        };
        let guard = Dequeue { queue: self.clone(), tenant: tenant.to_string(), id };
        async move {
            let _guard = guard;
            rx.await.unwrap_or_else(|_| {
                Err(FrontendError::Unavailable(
                    "the querier worker running the request went away".into(),
                ))
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn req(uri: &str) -> HttpRequest {
        HttpRequest { method: "GET".into(), uri: uri.into(), ..HttpRequest::default() }
    }

    async fn next(queue: &RequestQueue) -> Work {
        tokio::time::timeout(Duration::from_secs(1), queue.next())
            .await
            .expect("a request is queued")
            .expect("the queue is open")
    }

    #[tokio::test]
    async fn tenants_are_served_round_robin() {
        let queue = RequestQueue::new(1000);
        let mut waiters = Vec::new();
        for i in 0..200 {
            waiters.push(queue.round_trip("a", req(&format!("/a/{i}"))));
        }
        waiters.push(queue.round_trip("b", req("/b")));
        assert_eq!(queue.queue_length("a"), 200);
        assert_eq!(queue.queue_length("b"), 1);
        // tenant B, newly active, comes before A's 200
        let first = next(&queue).await;
        assert_eq!((first.tenant.as_str(), first.request.uri.as_str()), ("b", "/b"));
        let second = next(&queue).await;
        assert_eq!((second.tenant.as_str(), second.request.uri.as_str()), ("a", "/a/0"));
        // B again while A is busy: B is next, then A, then B and A in turn
        waiters.push(queue.round_trip("b", req("/b2")));
        waiters.push(queue.round_trip("b", req("/b3")));
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(next(&queue).await.request.uri);
        }
        assert_eq!(got, ["/b2", "/a/1", "/b3", "/a/2"]);
        assert_eq!(queue.queue_lengths(), vec![("a".to_string(), 197)]);
    }

    #[tokio::test]
    async fn a_full_tenant_queue_answers_429_at_once_and_others_still_queue() {
        let queue = RequestQueue::new(2);
        let _a1 = queue.round_trip("a", req("/1"));
        let _a2 = queue.round_trip("a", req("/2"));
        let err = queue.round_trip("a", req("/3")).await.expect_err("the queue is full");
        assert_eq!(err, FrontendError::TooManyOutstanding);
        // Recorded from Loki 3.x (main-65e30f8, `-target=query-frontend` with
        // `frontend.max_outstanding_per_tenant: 1`, a querier attached through
        // `frontend_worker.frontend_address`, concurrent query_range requests): 429,
        // `Content-Type: text/plain; charset=utf-8`, `X-Content-Type-Options: nosniff`, and the
        // body `too many outstanding requests` (29 bytes, no newline).
        assert_eq!(err.status_code(), 429);
        assert_eq!(err.to_string(), "too many outstanding requests");
        let _b = queue.round_trip("b", req("/b"));
        assert_eq!(queue.queue_length("b"), 1);
        // a taken request frees its place
        let _work = next(&queue).await;
        let _a3 = queue.round_trip("a", req("/3"));
        assert_eq!(queue.queue_length("a"), 2);
    }

    #[tokio::test]
    async fn waiting_workers_take_requests_in_the_order_they_asked() {
        let queue = RequestQueue::new(10);
        let mut first = Box::pin(queue.next());
        let mut second = Box::pin(queue.next());
        // both wait, the first one first
        assert!(futures::poll!(first.as_mut()).is_pending());
        assert!(futures::poll!(second.as_mut()).is_pending());
        let _a = queue.round_trip("a", req("/1"));
        let _b = queue.round_trip("b", req("/2"));
        assert_eq!(second.await.expect("taken").request.uri, "/2");
        assert_eq!(first.await.expect("taken").request.uri, "/1");
    }

    #[tokio::test]
    async fn a_worker_that_stops_waiting_after_the_hand_over_gives_the_request_back() {
        let queue = RequestQueue::new(10);
        let mut waiting = Box::pin(queue.next());
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        let answer = queue.round_trip("a", req("/handed"));
        // handed over to the waiting worker, which goes away before it looks
        drop(waiting);
        assert_eq!(queue.queue_length("a"), 1);
        let work = next(&queue).await;
        assert_eq!(work.request.uri, "/handed");
        work.responder.respond(Ok(HttpResponse { status: 200, ..HttpResponse::default() }));
        assert_eq!(answer.await.expect("answered").status, 200);
    }

    #[tokio::test]
    async fn a_dropped_waiter_is_never_delivered() {
        let queue = RequestQueue::new(10);
        let gone = queue.round_trip("a", req("/gone"));
        let kept = queue.round_trip("a", req("/kept"));
        drop(gone);
        assert_eq!(queue.queue_length("a"), 1);
        let work = next(&queue).await;
        assert_eq!(work.request.uri, "/kept");
        work.responder.respond(Ok(HttpResponse { status: 200, ..HttpResponse::default() }));
        assert_eq!(kept.await.expect("answered").status, 200);
        // nothing else is left
        assert!(tokio::time::timeout(Duration::from_millis(50), queue.next()).await.is_err());
    }

    #[tokio::test]
    async fn dropping_the_requester_of_a_running_request_reaches_the_worker() {
        let queue = RequestQueue::new(10);
        let waiter = queue.round_trip("a", req("/slow"));
        let mut work = next(&queue).await;
        assert!(!work.responder.is_canceled());
        drop(waiter);
        tokio::time::timeout(Duration::from_secs(1), work.responder.canceled())
            .await
            .expect("the worker hears of the cancel");
    }

    #[tokio::test]
    async fn a_worker_that_drops_its_request_fails_it_with_503() {
        let queue = RequestQueue::new(10);
        let waiter = queue.round_trip("a", req("/x"));
        drop(next(&queue).await);
        let err = waiter.await.expect_err("no answer");
        assert_eq!(err.status_code(), 503);
    }

    #[tokio::test]
    async fn close_wakes_waiting_workers_and_fails_queued_requests() {
        let queue = RequestQueue::new(10);
        let worker = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next().await.is_none() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        queue.close();
        assert!(worker.await.expect("worker ran"), "a waiting worker gets None");
        let queue = RequestQueue::new(10);
        let queued = queue.round_trip("a", req("/x"));
        queue.close();
        assert!(matches!(queued.await, Err(FrontendError::Unavailable(_))));
        assert!(matches!(
            queue.round_trip("a", req("/y")).await,
            Err(FrontendError::Unavailable(_))
        ));
        assert!(queue.next().await.is_none());
    }

    #[tokio::test]
    async fn waiting_workers_each_get_one_request() {
        let queue = RequestQueue::new(10);
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    let work = queue.next().await.expect("open");
                    let uri = work.request.uri.clone();
                    work.responder.respond(Ok(HttpResponse {
                        status: 200,
                        body: uri.into(),
                        ..HttpResponse::default()
                    }));
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let answers = futures::future::join_all(
            (0..3).map(|i| queue.round_trip(&format!("t{i}"), req(&format!("/{i}")))),
        )
        .await;
        for (i, answer) in answers.into_iter().enumerate() {
            assert_eq!(answer.expect("answered").body, format!("/{i}"));
        }
        for w in workers {
            w.await.expect("worker ran");
        }
    }
}
