//! The server module: what the whole process shares, and the HTTP and gRPC listeners. The
//! listeners open only once every other module is built (the ingester's WAL replayed), so a
//! process that listens is ready.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use skald_proto::ingester::{IngesterClient, IngesterGrpcServer};
use skald_ring::now_ms;
use skald_ring::replicated::static_ring;

use super::Modules;
use crate::http::{self, HttpState};

/// Warns about the config blocks this version accepts but does not use, and reads the
/// `memberlist` block the ring users share.
pub fn init_server(m: &mut Modules) -> anyhow::Result<()> {
    for block in m.config.ignored_blocks() {
        tracing::warn!(
            block,
            "config block accepted for Loki compatibility but not used by this Skald version"
        );
    }
    m.memberlist = m.config.memberlist().map_err(anyhow::Error::msg)?;
    let (c, limits) = (&m.config.runtime_config, &m.config.limits_config);
    m.runtime = Arc::new(crate::runtime_config::start(c, limits, &m.registry, m.shutdown.clone())?);
    Ok(())
}

/// Serves the ingester and the query-frontend's queue over gRPC, when this process runs
/// either, until shutdown.
pub async fn start_grpc(m: &mut Modules) -> anyhow::Result<()> {
    if m.ingester.is_none() && m.frontend_queue.is_none() {
        return Ok(());
    }
    let config = &m.config;
    let addr: SocketAddr =
        format!("{}:{}", config.server.grpc_listen_address, config.server.grpc_listen_port)
            .parse()
            .context("invalid gRPC listen address")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (gRPC)"))?;
    tracing::info!(addr = %listener.local_addr()?, "gRPC listening");
    let ingester = m
        .ingester
        .as_ref()
        .map(|ing| IngesterGrpcServer::into_service(Arc::new(ing.clone()) as IngesterClient));
    let frontend = m.frontend_queue.clone().map(skald_frontend::grpc::service);
    let mut rx = m.shutdown.clone();
    let incoming = crate::listen::grpc_incoming(listener);
    let layer = crate::request_metrics::GrpcLayer(m.request_metrics.clone());
    let mut server = grpc_server(&config.server).layer(layer);
    m.grpc_task = Some(tokio::spawn(async move {
        let res = server
            .add_optional_service(ingester)
            .add_optional_service(frontend)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = rx.wait_for(|v| *v).await;
            })
            .await;
        if let Err(error) = res {
            tracing::error!(%error, "gRPC server failed");
        }
    }));
    Ok(())
}

/// The gRPC server with the `server` block's keepalive, connection-age and stream limits
/// (Loki's keys; `grpc_server_max_connection_idle` and the client ping policy are not
/// enforceable with tonic, see `config.rs`).
fn grpc_server(s: &crate::config::ServerConfig) -> tonic::transport::Server {
    // 0 means off, and so does Loki's "infinity" (2562047h47m16.854775807s)
    let nonzero =
        |d: std::time::Duration| (!d.is_zero() && d < crate::listen::FOREVER).then_some(d);
    let mut b = tonic::transport::Server::builder()
        .http2_keepalive_interval(nonzero(s.grpc_server_keepalive_time))
        .http2_keepalive_timeout(nonzero(s.grpc_server_keepalive_timeout))
        .max_concurrent_streams(
            (s.grpc_server_max_concurrent_streams > 0)
                .then_some(s.grpc_server_max_concurrent_streams),
        );
    if let Some(age) = nonzero(s.grpc_server_max_connection_age) {
        b = b.max_connection_age(age);
        if let Some(grace) = nonzero(s.grpc_server_max_connection_age_grace) {
            b = b.max_connection_age_grace(grace);
        }
    }
    b
}

/// Mounts the routers of the built modules on one HTTP listener and serves it until SIGTERM,
/// ctrl-c or `/ingester/shutdown?terminate=true`; in-flight requests then get
/// `server.graceful_shutdown_timeout` to finish.
pub async fn serve_http(m: &Modules) -> anyhow::Result<()> {
    let config = &m.config;
    let terminate = Arc::new(tokio::sync::Notify::new());
    let state = HttpState {
        auth_enabled: config.auth_enabled,
        registry: m.registry.clone(),
        ingester: m.ingester.clone().map(|i| Arc::new(i) as IngesterClient),
        local_ingester: m.ingester.clone(),
        terminate: terminate.clone(),
        ring: ring_view(m),
        membership: m.membership.clone(),
        config: Arc::new(config.clone()),
        services: Arc::new(m.order.iter().map(|m| m.service_name().to_string()).collect()),
        es_objects: m.es_objects.clone(),
        runtime: m.runtime.clone(),
    };
    let body_limit = usize::try_from(config.distributor.max_recv_msg_size)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let app = http::router(
        state,
        m.distributor.clone(),
        m.querier.clone(),
        m.frontend.clone(),
        m.deletes.clone(),
    )
    .layer(axum::middleware::from_fn_with_state(
        crate::request_log::RequestLog::from_config(config),
        crate::request_log::observe,
    ))
    .layer(axum::middleware::from_fn_with_state(
        m.request_metrics.clone(),
        crate::request_metrics::http,
    ))
    .layer(axum::extract::DefaultBodyLimit::max(body_limit));
    let addr: SocketAddr =
        format!("{}:{}", config.server.http_listen_address, config.server.http_listen_port)
            .parse()
            .context("invalid HTTP listen address")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (HTTP)"))?;
    let target = m.target.as_str();
    tracing::info!(addr = %listener.local_addr()?, target, "HTTP listening; Skald is ready");
    crate::listen::watch_fds(m.shutdown.clone());
    let timeouts = crate::listen::HttpTimeouts::from_config(&config.server);
    // In-flight requests get `server.graceful_shutdown_timeout` to finish after the signal;
    // then the server stops waiting for them (dropped with the runtime, their queries stop).
    let grace = config.server.graceful_shutdown_timeout;
    let draining = Arc::new(tokio::sync::Notify::new());
    let drain_started = draining.clone();
    let (closing_querier, closing_ingester) = (m.querier.clone(), m.ingester.clone());
    let serve = crate::listen::serve_http(listener, app, timeouts, async move {
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = terminate.notified() => tracing::info!("stopping: requested over HTTP"),
        }
        drain_started.notify_one();
        // open live tails would hold the servers up: end them first
        if let Some(q) = &closing_querier {
            q.close_tails();
        }
        if let Some(i) = &closing_ingester {
            i.close_tails();
        }
    });
    tokio::select! {
        res = serve => res.context("HTTP server failed")?,
        () = async {
            draining.notified().await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(
            ?grace,
            "requests still in flight after server.graceful_shutdown_timeout: not waiting for them"
        ),
    }
    Ok(())
}

/// What `/ring` shows without gossip: this process's own ingester, or the configured ones.
fn ring_view(m: &Modules) -> Option<skald_ring::Ring> {
    let config = &m.config;
    if m.ingester.is_some() {
        let own =
            format!("{}:{}", config.server.grpc_listen_address, config.server.grpc_listen_port);
        Some(static_ring(&[own], now_ms()))
    } else if !config.ingester_client.addresses.is_empty() {
        Some(static_ring(&config.ingester_client.addresses, now_ms()))
    } else {
        None
    }
}

/// Resolves once SIGTERM or ctrl-c arrives.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
