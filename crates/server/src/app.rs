//! Starts the modules a target needs and runs them until SIGTERM / ctrl-c.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use skald_chunk_store::ChunkStore;
use skald_distributor::Distributor;
use skald_index::IndexStore;
use skald_ingester::Ingester;
use skald_proto::ingester::{GrpcIngesterClient, IngesterClient, IngesterGrpcServer};
use skald_proto::ServiceError;
use skald_querier::Querier;
use skald_ring::membership::Membership;
use skald_ring::replicated::{static_ring, GossipIngesters, ReplicatedIngesters};
use skald_ring::{now_ms, InstanceDesc, InstanceState};
use tokio::sync::watch;

use crate::config::Config;
use crate::http::{self, HttpState};
use crate::modules::{self, Module};

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

/// Runs `target` with `config` until a shutdown signal, then stops cleanly (flushing the
/// ingester's chunks).
pub async fn run(config: Config, target: &str) -> anyhow::Result<()> {
    let mods = modules::resolve(target).map_err(anyhow::Error::msg)?;
    for block in config.ignored_blocks() {
        tracing::warn!(
            block,
            "config block accepted for Loki compatibility but not used by this Skald version"
        );
    }
    let registry = prometheus::Registry::new();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let memberlist = config.memberlist().map_err(anyhow::Error::msg)?;
    // Gossip membership, when `memberlist` is configured; an ingester's ring entry with it.
    let mut membership: Option<Arc<Membership>> = None;
    let mut ring_entry: Option<InstanceDesc> = None;

    let mut chunk_store: Option<Arc<dyn ChunkStore>> = None;
    let mut index_store: Option<Arc<dyn IndexStore>> = None;
    if mods.contains(&Module::Store) {
        let (cs, is) = crate::storage::build_stores(&config, &registry)?;
        chunk_store = Some(cs);
        index_store = Some(is);
    }

    // The table-manager: keeps the DynamoDB index tables of the schema periods.
    if mods.contains(&Module::TableManager) {
        let periods = crate::storage::table_periods(&config)?;
        if periods.is_empty() {
            if target == "table-manager" {
                anyhow::bail!("-target=table-manager needs a schema_config period with `store: aws` (an index in DynamoDB tables)");
            }
        } else {
            let client = crate::storage::dynamo_client(&config)?;
            let tm = skald_table_manager::TableManager::new(
                config.table_manager.clone(),
                periods,
                Arc::new(skald_table_manager::DynamoTableClient::new(client)),
                &registry,
            )
            .map_err(|e| anyhow::anyhow!("table_manager: {e}"))?;
            tracing::info!("table-manager started");
            tokio::spawn(tm.run(shutdown_rx.clone()));
        }
    }

    let mut ingester: Option<Ingester> = None;
    let mut ingester_task = None;
    if mods.contains(&Module::Ingester) {
        let (Some(cs), Some(is)) = (chunk_store.clone(), index_store.clone()) else {
            anyhow::bail!("the ingester needs the store module");
        };
        let ing =
            Ingester::new(config.ingester.clone(), config.limits_config.clone(), cs, is, &registry);
        if let Some(mcfg) = &memberlist {
            // Join as JOINING: distributors send no writes until the WAL is replayed.
            let host =
                config.common.instance_addr.clone().filter(|h| !h.is_empty()).unwrap_or_else(
                    || match config.server.grpc_listen_address.as_str() {
                        "" | "0.0.0.0" => "127.0.0.1".to_string(),
                        other => other.to_string(),
                    },
                );
            let entry = InstanceDesc {
                id: mcfg.node_name.clone(),
                addr: format!("{host}:{}", config.server.grpc_listen_port),
                state: InstanceState::Joining,
                tokens: lifecycler_tokens(&config.ingester.lifecycler, &mcfg.node_name)?,
                heartbeat_ms: now_ms(),
            };
            let m =
                Membership::join(mcfg.clone(), Some(&entry)).await.map_err(anyhow::Error::msg)?;
            tracing::info!(id = %entry.id, addr = %entry.addr, "joined the ring (JOINING)");
            membership = Some(Arc::new(m));
            ring_entry = Some(entry);
        }
        // Replay before anything listens: the process is ready only after this.
        let wal_dir = config.wal_dir();
        ing.open_wal(&wal_dir).await.map_err(anyhow::Error::msg)?;
        ingester_task = Some(tokio::spawn(ing.clone().run(shutdown_rx.clone())));
        ingester = Some(ing);
    }

    // What `/ring` shows without gossip: this process's own ingester, or the configured ones.
    let ring_view = if ingester.is_some() {
        let own =
            format!("{}:{}", config.server.grpc_listen_address, config.server.grpc_listen_port);
        Some(static_ring(&[own], now_ms()))
    } else if !config.ingester_client.addresses.is_empty() {
        Some(static_ring(&config.ingester_client.addresses, now_ms()))
    } else {
        None
    };
    let ingester_client: Option<IngesterClient> = if mods.contains(&Module::IngesterClient) {
        match &ingester {
            Some(ing) => Some(Arc::new(ing.clone()) as IngesterClient),
            None if config.ingester_client.addresses.is_empty() && memberlist.is_some() => {
                let mcfg = memberlist.clone().context("memberlist")?;
                let m = Arc::new(Membership::join(mcfg, None).await.map_err(anyhow::Error::msg)?);
                membership = Some(m.clone());
                let connect = Box::new(|addr: &str| -> Result<IngesterClient, ServiceError> {
                    let url = format!("http://{addr}");
                    Ok(Arc::new(GrpcIngesterClient::connect_lazy(&url)?) as IngesterClient)
                });
                let timeout = config.ingester.lifecycler.ring.heartbeat_timeout.as_millis() as i64;
                tracing::info!(
                    replication_factor = config.common.replication_factor,
                    "ingester ring from gossip"
                );
                Some(Arc::new(GossipIngesters::new(
                    m,
                    connect,
                    config.common.replication_factor,
                    timeout,
                )) as IngesterClient)
            }
            None => {
                let addrs = &config.ingester_client.addresses;
                if addrs.is_empty() {
                    anyhow::bail!(
                        "ingester_client.addresses (or memberlist.join_members) must name the ingesters when they run in other processes"
                    );
                }
                let mut members = Vec::with_capacity(addrs.len());
                for addr in addrs {
                    let url = if addr.starts_with("http") {
                        addr.clone()
                    } else {
                        format!("http://{addr}")
                    };
                    let client =
                        Arc::new(GrpcIngesterClient::connect_lazy(&url)?) as IngesterClient;
                    members.push((addr.clone(), client));
                }
                if members.len() == 1 {
                    members.pop().map(|(_, c)| c)
                } else {
                    let rf = config.common.replication_factor;
                    tracing::info!(
                        ingesters = members.len(),
                        replication_factor = rf,
                        "static ingester ring"
                    );
                    Some(Arc::new(ReplicatedIngesters::new(members, rf)) as IngesterClient)
                }
            }
        }
    } else {
        None
    };

    let distributor = if mods.contains(&Module::Distributor) {
        let client = ingester_client.clone().context("the distributor needs an ingester client")?;
        Some(Arc::new(
            Distributor::new(
                config.distributor.clone(),
                config.limits_config.clone(),
                client,
                &registry,
            )
            .context("cannot register distributor metrics")?,
        ))
    } else {
        None
    };

    let querier = if mods.contains(&Module::Querier) {
        let (Some(cs), Some(is)) = (chunk_store.clone(), index_store.clone()) else {
            anyhow::bail!("the querier needs the store module");
        };
        Some(Arc::new(
            Querier::new(
                config.querier.clone(),
                config.limits_config.clone(),
                cs,
                is,
                ingester_client.clone(),
            )
            .with_pattern_ingester(config.pattern_ingester.clone()),
        ))
    } else {
        None
    };

    // gRPC: the ingester service, when this process runs one.
    let mut grpc_task = None;
    if let Some(ing) = &ingester {
        let addr: SocketAddr =
            format!("{}:{}", config.server.grpc_listen_address, config.server.grpc_listen_port)
                .parse()
                .context("invalid gRPC listen address")?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (gRPC)"))?;
        tracing::info!(addr = %listener.local_addr()?, "gRPC listening");
        let svc = IngesterGrpcServer::into_service(Arc::new(ing.clone()) as IngesterClient);
        let mut rx = shutdown_rx.clone();
        let incoming = crate::listen::grpc_incoming(listener);
        let mut server = grpc_server(&config.server);
        grpc_task = Some(tokio::spawn(async move {
            let res = server
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = rx.wait_for(|v| *v).await;
                })
                .await;
            if let Err(error) = res {
                tracing::error!(%error, "gRPC server failed");
            }
        }));
    }

    // The WAL is replayed and gRPC listens: take writes, and heartbeat the ring entry.
    if let (Some(m), Some(entry)) = (&membership, ring_entry.as_mut()) {
        entry.state = InstanceState::Active;
        entry.heartbeat_ms = now_ms();
        m.publish(entry).await.map_err(anyhow::Error::msg)?;
        tracing::info!("ring entry set to ACTIVE");
        let (m, mut entry, mut rx) = (m.clone(), entry.clone(), shutdown_rx.clone());
        let period =
            config.ingester.lifecycler.heartbeat_period.max(std::time::Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        entry.heartbeat_ms = now_ms();
                        if let Err(error) = m.publish(&entry).await {
                            tracing::warn!(%error, "ring heartbeat failed");
                        }
                    }
                    changed = rx.changed() => {
                        if changed.is_err() || *rx.borrow() {
                            break;
                        }
                    }
                }
            }
        });
    }

    // Elasticsearch templates live with the tenant's chunks (a distributor alone opens the
    // object store for them).
    let es = &config.distributor.elasticsearch;
    let es_objects = match (&distributor, chunk_store.clone()) {
        (Some(_), Some(cs)) if es.enabled => Some(cs),
        (Some(_), None) if es.enabled => Some(crate::storage::build_chunk_store(&config)?),
        _ => None,
    }
    .map(|cs| Arc::new(crate::es_objects::EsObjects::new(cs, es.max_templates_per_tenant)));
    let terminate = Arc::new(tokio::sync::Notify::new());
    let state = HttpState {
        auth_enabled: config.auth_enabled,
        registry: registry.clone(),
        ingester: ingester.clone().map(|i| Arc::new(i) as IngesterClient),
        local_ingester: ingester.clone(),
        terminate: terminate.clone(),
        ring: ring_view,
        membership: membership.clone(),
        config: Arc::new(config.clone()),
        services: Arc::new(mods.iter().map(|m| m.service_name().to_string()).collect()),
        es_objects,
    };
    let body_limit = usize::try_from(config.distributor.max_recv_msg_size)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let closing_querier = querier.clone();
    let closing_ingester = ingester.clone();
    let app = http::router(state, distributor, querier)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit));
    let addr: SocketAddr =
        format!("{}:{}", config.server.http_listen_address, config.server.http_listen_port)
            .parse()
            .context("invalid HTTP listen address")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (HTTP)"))?;
    tracing::info!(addr = %listener.local_addr()?, target, "HTTP listening; Skald is ready");
    crate::listen::watch_fds(shutdown_rx.clone());
    let timeouts = crate::listen::HttpTimeouts::from_config(&config.server);
    // In-flight requests get `server.graceful_shutdown_timeout` to finish after the signal;
    // then the server stops waiting for them (dropped with the runtime, their queries stop).
    let grace = config.server.graceful_shutdown_timeout;
    let draining = Arc::new(tokio::sync::Notify::new());
    let drain_started = draining.clone();
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

    // Stop accepting, then let the ingester flush everything before exit.
    // An ingester in the ring announces that it is leaving before it flushes or checkpoints.
    if let (Some(m), Some(mut entry)) = (&membership, ring_entry.clone()) {
        entry.state = InstanceState::Leaving;
        entry.heartbeat_ms = now_ms();
        let _ = m.publish(&entry).await;
        tracing::info!("ring entry set to LEAVING");
    }
    let _ = shutdown_tx.send(true);
    if let Some(t) = grpc_task {
        let _ = t.await;
    }
    if let Some(t) = ingester_task {
        let _ = t.await;
    }
    // Let the LEAVING entry reach the other members before this one goes silent: they forget
    // an instance that left cleanly, and keep (as unhealthy) one that just vanished.
    if let (Some(_), Some(mcfg), true) = (&membership, &memberlist, ring_entry.is_some()) {
        let linger = (mcfg.gossip_interval * 5)
            .clamp(std::time::Duration::from_millis(300), std::time::Duration::from_secs(3));
        tokio::time::sleep(linger).await;
    }
    tracing::info!("Skald stopped");
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

/// The ingester's ring tokens: from `tokens_file_path` when it holds them, otherwise derived
/// from the instance id (so they are the same after a restart), and saved there when set.
fn lifecycler_tokens(l: &skald_ingester::LifecyclerConfig, id: &str) -> anyhow::Result<Vec<u32>> {
    if !l.tokens_file_path.is_empty() {
        if let Ok(text) = std::fs::read_to_string(&l.tokens_file_path) {
            if let Ok(tokens) = serde_json::from_str::<Vec<u32>>(&text) {
                if !tokens.is_empty() {
                    return Ok(tokens);
                }
            }
        }
    }
    let tokens = skald_ring::tokens_for(id, l.num_tokens.max(1), &[]);
    if !l.tokens_file_path.is_empty() {
        std::fs::write(&l.tokens_file_path, serde_json::to_string(&tokens)?)
            .with_context(|| format!("cannot write {}", l.tokens_file_path))?;
    }
    Ok(tokens)
}
