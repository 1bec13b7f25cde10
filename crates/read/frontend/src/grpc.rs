//! The frontend's side of the gRPC queue protocol (`proto/skald/frontend/v1/frontend.proto`):
//! a tonic `Frontend` service over the [`RequestQueue`]. Each querier worker's stream takes
//! one request at a time: the next request goes to the worker, then the stream waits for its
//! answer or for the requester to go away (it then sends `Cancel` and takes the next). A
//! stream that breaks while its request runs fails the request with 503 (it is not retried on
//! another worker: the querier may have run part of it).
//!
//! Of the idle streams of one querier (one `worker_id`, its `Hello`, over one connection: two
//! queriers on one host share their default id, the host name), one at a time waits on the
//! queue: the others wait behind it, and join the queue's waiters only once it took a
//! request. The queue wakes waiters in the order they came, so the parts of a query go to
//! idle queriers in turn rather than all to the first querier's streams.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use skald_proto::skald_frontend_v1 as pb;
use skald_proto::tonic::{self, Request, Response, Status, Streaming};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;

use crate::queue::{RequestQueue, Work};
use crate::transport::{FrontendError, HttpRequest, HttpResponse};

pub use pb::frontend_server::FrontendServer;

/// The largest message the service accepts by default: a querier's answer (its default
/// `querier.skald_max_query_response_size` is 100 MiB) with room for its headers.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 128 << 20;

/// The gRPC `Frontend` service over `queue`, ready to add to a tonic server
/// (`Server::builder().add_service(skald_frontend::grpc::service(queue))`). It accepts
/// answers up to [`DEFAULT_MAX_MESSAGE_SIZE`]; chain `.max_decoding_message_size(n)` to
/// change that.
pub fn service(queue: RequestQueue) -> FrontendServer<FrontendService> {
    FrontendServer::new(FrontendService::new(queue))
        .max_decoding_message_size(DEFAULT_MAX_MESSAGE_SIZE)
        .max_encoding_message_size(usize::MAX)
}

/// The `Frontend` service: hands queued requests to the workers that connect.
pub struct FrontendService {
    queue: RequestQueue,
    turns: Turns,
}

/// Per querier (`worker_id@peer`), the turn of its idle streams to wait on the queue (see the
/// module): one permit each.
#[derive(Clone, Default)]
struct Turns(Arc<parking_lot::Mutex<HashMap<String, Arc<Semaphore>>>>);

impl Turns {
    /// The turn of `querier`'s streams.
    fn of(&self, querier: &str) -> Arc<Semaphore> {
        let mut turns = self.0.lock();
        turns.entry(querier.to_string()).or_insert_with(|| Arc::new(Semaphore::new(1))).clone()
    }

    /// Forgets `querier`'s turn once no stream of it holds it.
    fn leave(&self, querier: &str, turn: Option<Arc<Semaphore>>) {
        drop(turn);
        let mut turns = self.0.lock();
        if turns.get(querier).is_some_and(|t| Arc::strong_count(t) == 1) {
            turns.remove(querier);
        }
    }
}

impl FrontendService {
    /// The service over `queue` (see [`service`] for the server with its limits set).
    pub fn new(queue: RequestQueue) -> Self {
        FrontendService { queue, turns: Turns::default() }
    }
}

type FrontendStream = Pin<Box<dyn Stream<Item = Result<pb::FrontendMessage, Status>> + Send>>;

#[tonic::async_trait]
impl pb::frontend_server::Frontend for FrontendService {
    type ProcessStream = FrontendStream;

    async fn process(
        &self,
        request: Request<Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let peer = request.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let inbound = request.into_inner();
        // one request in flight per stream, and at most its `Cancel` behind it
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(serve_worker(self.queue.clone(), self.turns.clone(), inbound, tx, peer));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

type Outbound = mpsc::Sender<Result<pb::FrontendMessage, Status>>;

/// Feeds one worker's stream until the worker goes away or the queue closes.
async fn serve_worker(
    queue: RequestQueue,
    turns: Turns,
    mut inbound: Streaming<pb::WorkerMessage>,
    tx: Outbound,
    peer: String,
) {
    let mut worker = String::new();
    let mut turn: Option<Arc<Semaphore>> = None;
    loop {
        if turn.is_none() && !worker.is_empty() {
            turn = Some(turns.of(&format!("{worker}@{peer}")));
        }
        let next = async {
            // this querier's turn to wait, held until a request is taken
            let _turn = match &turn {
                Some(t) => t.acquire().await.ok(),
                None => None,
            };
            queue.next().await
        };
        let work = tokio::select! {
            work = next => work,
            message = inbound.message() => match message {
                Ok(Some(pb::WorkerMessage { msg: Some(pb::worker_message::Msg::Hello(h)) })) => {
                    worker = h.worker_id;
                    continue;
                }
                // a late answer to a canceled request
                Ok(Some(_)) => continue,
                // the worker stopped (it ends its side first on shutdown) or broke
                Ok(None) | Err(_) => break,
            },
            // the worker hung up
            _ = tx.closed() => break,
        };
        let Some(work) = work else {
            tracing::debug!(%peer, %worker, "frontend queue closed: ending a worker's stream");
            break;
        };
        if let Err(error) = run_on_worker(work, &mut inbound, &tx, &mut worker).await {
            tracing::warn!(%peer, %worker, %error, "querier worker stream broke");
            break;
        }
    }
    turns.leave(&format!("{worker}@{peer}"), turn);
}

/// Sends one request to the worker and delivers its answer. `Err` when the stream broke (the
/// request then failed with 503).
async fn run_on_worker(
    work: Work,
    inbound: &mut Streaming<pb::WorkerMessage>,
    tx: &Outbound,
    worker: &mut String,
) -> Result<(), String> {
    let Work { tenant, request, mut responder } = work;
    let id = responder.id();
    if responder.is_canceled() {
        return Ok(());
    }
    let message = pb::FrontendMessage {
        msg: Some(pb::frontend_message::Msg::Request(to_pb_request(id, &tenant, request))),
    };
    if tx.send(Ok(message)).await.is_err() {
        responder.respond(Err(worker_gone()));
        return Err("the worker hung up".into());
    }
    loop {
        tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(pb::WorkerMessage { msg: Some(pb::worker_message::Msg::Response(r)) })) => {
                    // an answer that crossed an earlier `Cancel` names another id
                    if r.id == id {
                        responder.respond(Ok(from_pb_response(r)));
                        return Ok(());
                    }
                }
                Ok(Some(pb::WorkerMessage { msg: Some(pb::worker_message::Msg::Hello(h)) })) => {
                    *worker = h.worker_id;
                }
                Ok(Some(pb::WorkerMessage { msg: None })) => {}
                Ok(None) => {
                    responder.respond(Err(worker_gone()));
                    return Err("the worker ended its stream".into());
                }
                Err(status) => {
                    responder.respond(Err(worker_gone()));
                    return Err(status.message().to_string());
                }
            },
            _ = responder.canceled() => {
                let cancel = pb::FrontendMessage {
                    msg: Some(pb::frontend_message::Msg::Cancel(pb::Cancel { id })),
                };
                return match tx.send(Ok(cancel)).await {
                    Ok(()) => Ok(()),
                    Err(_) => Err("the worker hung up".into()),
                };
            }
        }
    }
}

fn worker_gone() -> FrontendError {
    FrontendError::Unavailable("the querier running the request disconnected".into())
}

pub(crate) fn to_pb_headers(headers: Vec<(String, String)>) -> Vec<pb::Header> {
    headers.into_iter().map(|(name, value)| pb::Header { name, value }).collect()
}

pub(crate) fn from_pb_headers(headers: Vec<pb::Header>) -> Vec<(String, String)> {
    headers.into_iter().map(|h| (h.name, h.value)).collect()
}

pub(crate) fn to_pb_request(id: u64, tenant: &str, r: HttpRequest) -> pb::HttpRequest {
    pb::HttpRequest {
        id,
        tenant: tenant.to_string(),
        method: r.method,
        uri: r.uri,
        headers: to_pb_headers(r.headers),
        body: r.body,
    }
}

pub(crate) fn from_pb_request(r: pb::HttpRequest) -> HttpRequest {
    HttpRequest { method: r.method, uri: r.uri, headers: from_pb_headers(r.headers), body: r.body }
}

pub(crate) fn to_pb_response(id: u64, r: HttpResponse) -> pb::HttpResponse {
    pb::HttpResponse {
        id,
        status: u32::from(r.status),
        headers: to_pb_headers(r.headers),
        body: r.body,
    }
}

pub(crate) fn from_pb_response(r: pb::HttpResponse) -> HttpResponse {
    HttpResponse {
        // a status that is no HTTP status is the querier's fault
        status: u16::try_from(r.status).unwrap_or(500),
        headers: from_pb_headers(r.headers),
        body: r.body,
    }
}
