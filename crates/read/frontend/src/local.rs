//! In-process workers (the single binary): tasks that take requests from the
//! [`RequestQueue`] and run them with the querier's [`Handler`], without gRPC.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::queue::{RequestQueue, Work};
use crate::transport::{Handler, HttpRequest, HttpResponse};

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
    let Work { tenant, request, mut responder } = work;
    let answer = handle(handler, &tenant, request);
    tokio::select! {
        response = answer => responder.respond(Ok(response)),
        // dropping `answer` here cancels the query
        _ = responder.canceled() => {}
    }
}

/// Runs `request` of `tenant` with `handler`: the request carries its tenant in
/// `X-Scope-OrgID` (added when missing), and a handler that panics answers 500 instead of
/// taking its worker down.
pub(crate) fn handle(
    handler: &dyn Handler,
    tenant: &str,
    mut request: HttpRequest,
) -> impl Future<Output = HttpResponse> + Send + 'static {
    if !tenant.is_empty() && request.header(ORG_ID).is_none() {
        request.headers.push((ORG_ID.to_string(), tenant.to_string()));
    }
    AssertUnwindSafe(handler.handle(request)).catch_unwind().map(|answer| {
        answer.unwrap_or_else(|_| {
            tracing::error!("a query handler panicked");
            HttpResponse {
                status: 500,
                headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
                body: "internal server error".into(),
            }
        })
    })
}

const ORG_ID: &str = "X-Scope-OrgID";

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use futures::future::BoxFuture;

    use super::*;
    use crate::transport::RoundTrip;

    /// Answers with the request's uri; `/hang` never answers and records when its future is
    /// dropped.
    struct Echo {
        started: Arc<AtomicBool>,
        dropped: Arc<AtomicBool>,
    }

    struct SetOnDrop(Arc<AtomicBool>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    impl Handler for Echo {
        fn handle(&self, req: HttpRequest) -> BoxFuture<'static, HttpResponse> {
            let (started, dropped) = (self.started.clone(), self.dropped.clone());
            async move {
                if req.uri == "/panic" {
                    panic!("a bug in a query");
                }
                if req.uri == "/tenant" {
                    let tenant = req.header("X-Scope-OrgID").unwrap_or_default().to_string();
                    return HttpResponse {
                        status: 200,
                        body: tenant.into(),
                        ..HttpResponse::default()
                    };
                }
                if req.uri == "/hang" {
                    let _guard = SetOnDrop(dropped);
                    started.store(true, Ordering::SeqCst);
                    futures::future::pending::<()>().await;
                }
                HttpResponse { status: 200, body: req.uri.into(), ..HttpResponse::default() }
            }
            .boxed()
        }
    }

    async fn wait_for(flag: &AtomicBool) -> bool {
        for _ in 0..100 {
            if flag.load(Ordering::SeqCst) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn local_workers_answer_and_drop_canceled_requests() {
        let queue = RequestQueue::new(100);
        let (started, dropped) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let handler = Arc::new(Echo { started: started.clone(), dropped: dropped.clone() });
        let (stop, shutdown) = watch::channel(false);
        let workers = spawn_local_workers(queue.clone(), 2, handler, shutdown);
        let req = |uri: &str| HttpRequest { uri: uri.into(), ..HttpRequest::default() };
        let answer = queue.round_trip("a", req("/x")).await.expect("answered");
        assert_eq!(answer.body, "/x");

        let hanging = tokio::spawn(queue.round_trip("a", req("/hang")));
        assert!(wait_for(&started).await, "the handler started");
        hanging.abort();
        assert!(wait_for(&dropped).await, "the handler's future was dropped");
        // the worker is free again
        assert_eq!(queue.round_trip("b", req("/y")).await.expect("answered").body, "/y");

        // the request carries its tenant; a panicking handler answers 500 and the worker lives
        assert_eq!(queue.round_trip("t1", req("/tenant")).await.expect("answered").body, "t1");
        for _ in 0..3 {
            assert_eq!(queue.round_trip("a", req("/panic")).await.expect("answered").status, 500);
        }
        assert_eq!(queue.round_trip("a", req("/z")).await.expect("answered").body, "/z");

        stop.send(true).expect("workers listen");
        for w in workers {
            tokio::time::timeout(Duration::from_secs(1), w).await.expect("stopped").expect("ran");
        }
    }
}
