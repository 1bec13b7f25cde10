//! The querier's side of the gRPC queue protocol: workers that connect to the frontend
//! (`frontend_worker.frontend_address`), run the requests it sends with the querier's
//! [`Handler`] and send the answers back. A `Cancel` drops the handler's future (which stops
//! the query). A frontend that is down or restarts is reached again with backoff
//! (`backoff_config`: from `min_period`, doubling up to `max_period`).

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use skald_proto::prost;
use skald_proto::skald_frontend_v1 as pb;
use skald_proto::tonic::transport::{Channel, Endpoint};
use skald_proto::tonic::Streaming;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::config::{GrpcClientConfig, WorkerConfig};
use crate::grpc::{from_pb_request, to_pb_response};
use crate::local::handle;
use crate::transport::{Handler, HttpResponse};

/// Why the gRPC workers cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// `frontend_worker.frontend_address` is not a usable `host:port`.
    #[error("invalid frontend_worker.frontend_address `{address}`: {reason}")]
    InvalidAddress {
        /// The address as configured.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Connects the querier's workers to the frontend at `config.frontend_address`:
/// `querier_max_concurrent` streams when `match_max_concurrent` (Loki's default), else
/// `parallelism`, each running one request at a time with `handler`. They reconnect with
/// backoff whenever the frontend is unreachable or its stream ends, and stop when
/// `shutdown` turns `true` or its sender is dropped (a request running then is finished
/// and answered first).
pub fn spawn_grpc_workers(
    config: &WorkerConfig,
    querier_max_concurrent: usize,
    handler: Arc<dyn Handler>,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, WorkerError> {
    let client = config.frontend_client();
    let channel = channel(&config.frontend_address, &client)?;
    let worker_id = if config.id.is_empty() { default_worker_id() } else { config.id.clone() };
    let shared = Arc::new(Shared {
        channel,
        worker_id,
        client,
        address: config.frontend_address.clone(),
        handler,
    });
    Ok((0..config.streams(querier_max_concurrent))
        .map(|_| tokio::spawn(worker_loop(shared.clone(), shutdown.clone())))
        .collect())
}

/// The host's name (as Loki's default worker id), else `querier`.
fn default_worker_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "querier".to_string())
}

/// One lazily connected channel (one HTTP/2 connection) for all streams; it reconnects by
/// itself, resolving the frontend's name again.
fn channel(address: &str, client: &GrpcClientConfig) -> Result<Channel, WorkerError> {
    let invalid = |reason: String| WorkerError::InvalidAddress { address: address.into(), reason };
    if address.is_empty() {
        return Err(invalid("empty".into()));
    }
    // gRPC-Go's `dns:///host:port` target names the same host:port
    let host_port = address.strip_prefix("dns:///").unwrap_or(address);
    let uri = if host_port.contains("://") {
        host_port.to_string()
    } else {
        format!("http://{host_port}")
    };
    let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
    let mut endpoint = Endpoint::from_shared(uri)
        .map_err(|e| invalid(e.to_string()))?
        .tcp_nodelay(true)
        .initial_stream_window_size(window(client.initial_stream_window_size.0))
        .initial_connection_window_size(window(client.initial_connection_window_size.0));
    if let Some(timeout) = nonzero(client.connect_timeout) {
        endpoint = endpoint.connect_timeout(timeout);
    }
    // pings keep a worker's idle stream alive through proxies and find a dead frontend
    if let Some(interval) = nonzero(client.keepalive_time) {
        endpoint = endpoint
            .http2_keep_alive_interval(interval)
            .keep_alive_timeout(client.keepalive_timeout)
            .keep_alive_while_idle(true);
    }
    Ok(endpoint.connect_lazy())
}

fn window(bytes: u64) -> Option<u32> {
    // below HTTP/2's default the window would only slow answers down
    u32::try_from(bytes).ok().filter(|&b| b > 65_535)
}

struct Shared {
    channel: Channel,
    worker_id: String,
    client: GrpcClientConfig,
    address: String,
    handler: Arc<dyn Handler>,
}

/// How a stream ended.
enum Ended {
    /// The process is stopping.
    Shutdown,
    /// The frontend went away, or never answered: connect again after a pause.
    Broken(String),
}

async fn worker_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let backoff = &shared.client.backoff_config;
    let min = backoff.min_period.max(Duration::from_millis(1));
    let max = backoff.max_period.max(min);
    let mut delay = min;
    // one warning per outage; the attempts in between are debug
    let mut outage_logged = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let mut opened = false;
        let ended = run_stream(&shared, &mut shutdown, &mut opened).await;
        if opened {
            delay = min;
            outage_logged = false;
        }
        match ended {
            Ended::Shutdown => return,
            Ended::Broken(error) if !outage_logged => {
                outage_logged = true;
                tracing::warn!(address = %shared.address, %error, "cannot reach the query-frontend; retrying");
            }
            Ended::Broken(error) => {
                tracing::debug!(address = %shared.address, %error, ?delay, "cannot reach the query-frontend; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            changed = shutdown.changed() => if changed.is_err() { return },
        }
        delay = (delay * 2).min(max);
    }
}

/// Opens one stream and serves it until it ends; `opened` tells whether the frontend
/// answered.
async fn run_stream(
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
    opened: &mut bool,
) -> Ended {
    let max_send = usize::try_from(shared.client.max_send_msg_size).unwrap_or(usize::MAX);
    let max_recv = usize::try_from(shared.client.max_recv_msg_size).unwrap_or(usize::MAX);
    let mut client = pb::frontend_client::FrontendClient::new(shared.channel.clone())
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let (tx, rx) = mpsc::channel::<pb::WorkerMessage>(2);
    let hello = pb::WorkerMessage {
        msg: Some(pb::worker_message::Msg::Hello(pb::Hello {
            worker_id: shared.worker_id.clone(),
        })),
    };
    if tx.send(hello).await.is_err() {
        return Ended::Broken("outbound stream closed".into());
    }
    let answered = tokio::select! {
        answered = client.process(ReceiverStream::new(rx)) => answered,
        changed = shutdown.changed() => {
            let _ = changed;
            return Ended::Shutdown;
        }
    };
    let mut inbound = match answered {
        Ok(response) => response.into_inner(),
        Err(status) => return Ended::Broken(status.message().to_string()),
    };
    *opened = true;
    loop {
        let message = tokio::select! {
            message = inbound.message() => message,
            changed = shutdown.changed() => {
                let _ = changed;
                return close(tx, inbound).await;
            }
        };
        let request = match message {
            Ok(Some(pb::FrontendMessage { msg: Some(pb::frontend_message::Msg::Request(r)) })) => r,
            // a `Cancel` of a request already answered
            Ok(Some(_)) => continue,
            Ok(None) => return Ended::Broken("the frontend ended the stream".into()),
            Err(status) => return Ended::Broken(status.message().to_string()),
        };
        let id = request.id;
        let answer = match run_request(shared, request, &mut inbound).await {
            Running::Answered(response) => response,
            Running::Canceled => continue,
            Running::Broken(error) => return Ended::Broken(error),
        };
        let mut answer = to_pb_response(id, answer);
        if answer.encoded_len() > max_send {
            answer = to_pb_response(id, too_large(answer.encoded_len(), max_send));
        }
        let message = pb::WorkerMessage { msg: Some(pb::worker_message::Msg::Response(answer)) };
        if tx.send(message).await.is_err() {
            return Ended::Broken("outbound stream closed".into());
        }
        if *shutdown.borrow() {
            return close(tx, inbound).await;
        }
    }
}

/// Ends the stream on shutdown: the frontend then ends its side, so that the last answer
/// sent is delivered before the connection goes (dropping the stream at once could reset it
/// with the answer still unsent).
async fn close(
    tx: mpsc::Sender<pb::WorkerMessage>,
    mut inbound: Streaming<pb::FrontendMessage>,
) -> Ended {
    drop(tx);
    let drained = async { while let Ok(Some(_)) = inbound.message().await {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
    Ended::Shutdown
}

enum Running {
    Answered(HttpResponse),
    Canceled,
    Broken(String),
}

/// Runs one request until it is answered, canceled, or the stream breaks (which drops it).
async fn run_request(
    shared: &Shared,
    request: pb::HttpRequest,
    inbound: &mut Streaming<pb::FrontendMessage>,
) -> Running {
    let (id, tenant) = (request.id, request.tenant.clone());
    let answer = handle(shared.handler.as_ref(), &tenant, from_pb_request(request));
    tokio::pin!(answer);
    loop {
        tokio::select! {
            response = &mut answer => return Running::Answered(response),
            message = inbound.message() => match message {
                // dropping `answer` on return cancels the query
                Ok(Some(pb::FrontendMessage { msg: Some(pb::frontend_message::Msg::Cancel(c)) }))
                    if c.id == id => return Running::Canceled,
                Ok(Some(_)) => {}
                Ok(None) => return Running::Broken("the frontend ended the stream".into()),
                Err(status) => return Running::Broken(status.message().to_string()),
            },
        }
    }
}

/// The answer in place of one too large to send (as Loki's querier does it: 413).
fn too_large(size: usize, max: usize) -> HttpResponse {
    HttpResponse {
        status: 413,
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: format!("response larger than the max ({size} vs {max})").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frontend_addresses() {
        let client = GrpcClientConfig::default();
        assert!(channel("query-frontend:9095", &client).is_ok());
        assert!(channel("dns:///query-frontend:9095", &client).is_ok());
        assert!(channel("http://127.0.0.1:9095", &client).is_ok());
        assert!(channel("", &client).is_err());
        assert!(channel("a b:9095", &client).is_err());
    }
}
