//! The frontend's side of the gRPC queue protocol (`proto/skald/frontend/v1/frontend.proto`):
//! a tonic `Frontend` service over the [`RequestQueue`]. Each querier worker's stream takes
//! one request at a time: the next request goes to the worker, then the stream waits for its
//! answer or for the requester to go away (it then sends `Cancel` and takes the next). A
//! stream that breaks while its request runs fails the request with 503 (it is not retried on
//! another worker: the querier may have run part of it).

use std::pin::Pin;

use futures::Stream;
use skald_proto::skald_frontend_v1 as pb;
use skald_proto::tonic::{self, Request, Response, Status, Streaming};
use tokio::sync::mpsc;
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
    FrontendServer::new(FrontendService { queue })
        .max_decoding_message_size(DEFAULT_MAX_MESSAGE_SIZE)
        .max_encoding_message_size(usize::MAX)
}

/// The `Frontend` service: hands queued requests to the workers that connect.
pub struct FrontendService {
    queue: RequestQueue,
}

impl FrontendService {
    /// The service over `queue` (see [`service`] for the server with its limits set).
    pub fn new(queue: RequestQueue) -> Self {
        FrontendService { queue }
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
        tokio::spawn(serve_worker(self.queue.clone(), inbound, tx, peer));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

type Outbound = mpsc::Sender<Result<pb::FrontendMessage, Status>>;

/// Feeds one worker's stream until the worker goes away or the queue closes.
async fn serve_worker(
    queue: RequestQueue,
    mut inbound: Streaming<pb::WorkerMessage>,
    tx: Outbound,
    peer: String,
) {
    let mut worker = String::new();
    loop {
        let work = tokio::select! {
            work = queue.next() => work,
            message = inbound.message() => match message {
                Ok(Some(pb::WorkerMessage { msg: Some(pb::worker_message::Msg::Hello(h)) })) => {
                    worker = h.worker_id;
                    continue;
                }
                // a late answer to a canceled request
                Ok(Some(_)) => continue,
                // the worker stopped (it ends its side first on shutdown) or broke
                Ok(None) | Err(_) => return,
            },
            // the worker hung up
            _ = tx.closed() => return,
        };
        let Some(work) = work else {
            tracing::debug!(%peer, %worker, "frontend queue closed: ending a worker's stream");
            return;
        };
        match run_on_worker(work, &mut inbound, &tx, &mut worker).await {
            Ok(()) => {}
            Err(error) => {
                tracing::warn!(%peer, %worker, %error, "querier worker stream broke");
                return;
            }
        }
    }
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
