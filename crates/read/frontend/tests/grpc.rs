//! The frontend's queue over real gRPC sockets: a tonic server with the `Frontend` service on
//! 127.0.0.1 and pools of querier workers connected to it with `spawn_grpc_workers`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use skald_frontend::config::BackoffConfig;
use skald_frontend::config::GrpcClientConfig;
use skald_frontend::{
    grpc, spawn_grpc_workers, FrontendError, Handler, HttpRequest, HttpResponse, RequestQueue,
    RoundTrip, WorkerConfig,
};
use skald_proto::tonic::transport::Server;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

/// A querier's handler: sleeps `?sleep_ms=N`, answers with the uri and names its pool in
/// `X-Pool`; `/tenant` answers with the request's `X-Scope-OrgID`; `/hang` never answers and records when its future is dropped.
struct TestHandler {
    pool: &'static str,
    started: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

impl TestHandler {
    fn new(pool: &'static str) -> Self {
        TestHandler {
            pool,
            started: Arc::new(AtomicBool::new(false)),
            dropped: Arc::new(AtomicBool::new(false)),
        }
    }
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Handler for TestHandler {
    fn handle(&self, req: HttpRequest) -> BoxFuture<'static, HttpResponse> {
        let (pool, started, dropped) = (self.pool, self.started.clone(), self.dropped.clone());
        async move {
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
            let sleep_ms = req
                .uri
                .split_once("sleep_ms=")
                .and_then(|(_, ms)| ms.parse::<u64>().ok())
                .unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
            HttpResponse {
                status: 200,
                headers: vec![("X-Pool".into(), pool.into())],
                body: req.uri.into(),
            }
        }
        .boxed()
    }
}

/// A frontend gRPC server on `listener`; send on the returned sender to stop it.
fn serve(queue: RequestQueue, listener: TcpListener) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        Server::builder()
            .add_service(grpc::service(queue))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await
            .expect("the frontend serves");
    });
    (stop, server)
}

async fn frontend(queue: RequestQueue) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, server) = serve(queue, listener);
    (addr, stop, server)
}

fn worker_config(addr: SocketAddr) -> WorkerConfig {
    WorkerConfig {
        frontend_address: addr.to_string(),
        query_frontend_grpc_client: Some(GrpcClientConfig {
            backoff_config: BackoffConfig {
                min_period: Duration::from_millis(20),
                max_period: Duration::from_millis(200),
                max_retries: 10,
            },
            ..GrpcClientConfig::default()
        }),
        ..WorkerConfig::default()
    }
}

struct Pool {
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn start(addr: SocketAddr, streams: usize, handler: Arc<dyn Handler>) -> Pool {
        let (stop, shutdown) = watch::channel(false);
        let workers =
            spawn_grpc_workers(&worker_config(addr), streams, handler, shutdown).expect("spawned");
        Pool { stop, workers }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for w in self.workers {
            tokio::time::timeout(Duration::from_secs(2), w)
                .await
                .expect("the worker stops")
                .expect("the worker ran");
        }
    }
}

fn get(uri: &str) -> HttpRequest {
    HttpRequest { method: "GET".into(), uri: uri.into(), ..HttpRequest::default() }
}

async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f).await.expect("in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_spread_over_both_worker_pools() {
    let queue = RequestQueue::new(2048);
    let (addr, _stop, _server) = frontend(queue.clone()).await;
    let p1 = Pool::start(addr, 2, Arc::new(TestHandler::new("p1")));
    let p2 = Pool::start(addr, 2, Arc::new(TestHandler::new("p2")));
    let answers = within(
        5,
        futures::future::join_all(
            (0..24).map(|i| queue.round_trip("a", get(&format!("/q/{i}?sleep_ms=20")))),
        ),
    )
    .await;
    let mut pools = std::collections::BTreeMap::new();
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.expect("answered");
        assert_eq!(answer.body, format!("/q/{i}?sleep_ms=20"));
        *pools.entry(answer.header("x-pool").expect("pool").to_string()).or_insert(0) += 1;
    }
    assert_eq!(pools.len(), 2, "both pools ran requests: {pools:?}");
    // the tenant travels with the request
    let answer = within(5, queue.round_trip("t9", get("/tenant"))).await.expect("answered");
    assert_eq!(answer.body, "t9");
    p1.stop().await;
    p2.stop().await;
}

/// Two requests at once go to two idle queriers, not to two streams of the first one: one
/// idle stream per querier waits on the queue at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parts_of_a_query_go_to_idle_queriers_in_turn() {
    let queue = RequestQueue::new(2048);
    let (addr, _stop, _server) = frontend(queue.clone()).await;
    let start = |id: &str, pool: &'static str| {
        let (stop, shutdown) = watch::channel(false);
        // an empty id is the host name, the same for both: their connections tell them apart
        let config = WorkerConfig { id: id.into(), ..worker_config(addr) };
        let handler: Arc<dyn Handler> = Arc::new(TestHandler::new(pool));
        let workers = spawn_grpc_workers(&config, 4, handler, shutdown).expect("spawned");
        Pool { stop, workers }
    };
    let p1 = start("", "p1");
    let p2 = start("", "p2");
    // every stream connected and said who it is
    within(5, async { while queue.round_trip("a", get("/q/warm")).await.is_err() {} }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for round in 0..5 {
        let answers = within(
            5,
            futures::future::join_all(
                (0..2).map(|i| queue.round_trip("a", get(&format!("/q/{i}?sleep_ms=100")))),
            ),
        )
        .await;
        let pools: std::collections::BTreeSet<String> = answers
            .into_iter()
            .map(|a| a.expect("answered").header("x-pool").expect("pool").to_string())
            .collect();
        assert_eq!(pools.len(), 2, "round {round}: both went to {pools:?}");
    }
    p1.stop().await;
    p2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_flood_does_not_hold_up_another_and_loses_nothing() {
    // A's requests: 25 ms each, 200 at once, 150 may queue; B's: 100 ms
    let queue = RequestQueue::new(150);
    let (addr, _stop, _server) = frontend(queue.clone()).await;
    let p1 = Pool::start(addr, 2, Arc::new(TestHandler::new("p1")));
    let p2 = Pool::start(addr, 2, Arc::new(TestHandler::new("p2")));
    // warm up the connections, then B's idle latency
    within(5, queue.round_trip("b", get("/warm"))).await.expect("answered");
    let t = Instant::now();
    within(5, queue.round_trip("b", get("/b?sleep_ms=100"))).await.expect("answered");
    let idle = t.elapsed();

    let flood: Vec<_> =
        (0..200).map(|i| queue.round_trip("a", get(&format!("/a/{i}?sleep_ms=25")))).collect();
    let flood = tokio::spawn(futures::future::join_all(flood));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(queue.queue_length("a") > 50, "A's requests are still queued");
    let t = Instant::now();
    within(5, queue.round_trip("b", get("/b?sleep_ms=100"))).await.expect("answered");
    let loaded = t.elapsed();
    eprintln!("B: {idle:?} idle, {loaded:?} under the flood");
    assert!(loaded < idle * 2, "B waited {loaded:?} under A's flood, {idle:?} idle");

    let answers = within(10, flood).await.expect("flood ran");
    let (mut ok, mut refused) = (0, 0);
    for (i, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok(answer) => {
                assert_eq!(answer.body, format!("/a/{i}?sleep_ms=25"));
                ok += 1;
            }
            Err(FrontendError::TooManyOutstanding) => refused += 1,
            Err(other) => panic!("request {i} failed: {other}"),
        }
    }
    assert_eq!(ok + refused, 200);
    assert!(ok >= 150 && refused > 0, "{ok} answered, {refused} refused");
    p1.stop().await;
    p2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_that_goes_away_stops_the_querier_handler() {
    let queue = RequestQueue::new(2048);
    let (addr, _stop, _server) = frontend(queue.clone()).await;
    let handler = Arc::new(TestHandler::new("p1"));
    let (started, dropped) = (handler.started.clone(), handler.dropped.clone());
    let pool = Pool::start(addr, 1, handler);
    let requester = tokio::spawn(queue.round_trip("a", get("/hang")));
    within(5, async {
        while !started.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    requester.abort();
    let t = Instant::now();
    within(1, async {
        while !dropped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(t.elapsed() < Duration::from_secs(1));
    // the same worker takes the next request
    let answer = within(5, queue.round_trip("a", get("/next"))).await.expect("answered");
    assert_eq!(answer.body, "/next");
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_reconnect_after_the_frontend_restarts_on_the_same_port() {
    let queue = RequestQueue::new(2048);
    let (addr, stop, server) = frontend(queue.clone()).await;
    let pool = Pool::start(addr, 2, Arc::new(TestHandler::new("p1")));
    let answer = within(5, queue.round_trip("a", get("/before"))).await.expect("answered");
    assert_eq!(answer.body, "/before");

    // the frontend stops: its queue closes, its streams end, the server goes
    queue.close();
    let _ = stop.send(());
    within(5, server).await.expect("the server stopped");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let queue = RequestQueue::new(2048);
    let listener = TcpListener::bind(addr).await.expect("the port is free again");
    let (_stop, _server) = serve(queue.clone(), listener);
    let answer = within(5, queue.round_trip("a", get("/after"))).await.expect("answered");
    assert_eq!(answer.body, "/after");
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_breaks_mid_request_fails_it_with_503() {
    let queue = RequestQueue::new(2048);
    let (addr, _stop, _server) = frontend(queue.clone()).await;
    let handler = Arc::new(TestHandler::new("p1"));
    let started = handler.started.clone();
    let pool = Pool::start(addr, 1, handler);
    let requester = tokio::spawn(queue.round_trip("a", get("/hang")));
    within(5, async {
        while !started.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // the querier dies: its tasks go away with their connection
    for w in &pool.workers {
        w.abort();
    }
    let err = within(5, requester).await.expect("ran").expect_err("no answer");
    assert_eq!(err.status_code(), 503, "{err}");
}
