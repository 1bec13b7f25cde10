//! In-process workers (the single binary): tasks that take requests from the
//! [`RequestQueue`] and run them with the querier's [`Handler`], without gRPC.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::queue::{RequestQueue, Work};
use crate::transport::Handler;

/// Starts `n` workers on `queue`. Each takes one request at a time, runs it with `handler`
/// and answers; when the requester goes away first, the handler's future is dropped (which
/// stops the query). The workers end when `shutdown` turns `true` or its sender is dropped (after answering the request
/// they run) or the queue is closed.
pub fn spawn_local_workers(
    queue: RequestQueue,
    n: usize,
    handler: Arc<dyn Handler>,
    shutdown: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    (0..n)
        .map(|_| tokio::spawn(local_worker(queue.clone(), handler.clone(), shutdown.clone())))
        .collect()
}

async fn local_worker(
    queue: RequestQueue,
    handler: Arc<dyn Handler>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let work = tokio::select! {
            work = queue.next() => work,
            // a dropped sender stops the workers too
            changed = shutdown.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return,
            },
        };
        let Some(work) = work else { return };
        run(work, handler.as_ref()).await;
    }
}

/// Runs one taken request and answers it, unless its requester goes away first.
pub(crate) async fn run(work: Work, handler: &dyn Handler) {
    let Work { request, mut responder, .. } = work;
    let answer = handler.handle(request);
    tokio::select! {
        response = answer => responder.respond(Ok(response)),
        // dropping `answer` here cancels the query
        _ = responder.canceled() => {}
    }
}
