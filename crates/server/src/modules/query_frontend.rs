//! The query-frontend module: the request queue, the results caches in front of it and the
//! query path that splits queries over it; and the workers that feed it to queriers (in the
//! single binary, in-process workers over this process's querier; in a querier that runs
//! apart, gRPC workers that pull from `frontend_worker.frontend_address`).

use std::sync::Arc;

use skald_frontend::metadata_cache::{MetadataCache, MetadataCaches};
use skald_frontend::results_cache::{self, ResultsCache};
use skald_frontend::{QueryFrontend, QueryFrontendConfig, RequestQueue, RoundTrip, RouterHandler};

use super::Modules;

/// Builds the queue, the caches and the query path.
pub fn init_query_frontend(m: &mut Modules) -> anyhow::Result<()> {
    let config = &m.config;
    let queue = config.frontend.queue();
    let overrides = m.runtime.overrides.clone();
    let tenant_limits = results_cache::tenant_limits(overrides.clone());
    let settings = &config.query_range;
    let shared = settings.build_results_cache();
    // split parts → results cache → metadata caches → queue
    let mut next: Arc<dyn RoundTrip> = Arc::new(queue.clone());
    let caches = MetadataCaches::from_settings(settings, shared.clone());
    next = Arc::new(MetadataCache::new(next, caches, tenant_limits.clone()));
    if let Some(cache) = shared {
        next = Arc::new(ResultsCache::with_tenant_limits(next, cache, tenant_limits));
    }
    let fe_config = QueryFrontendConfig {
        max_response_size: config.querier.skald_max_query_response_size,
        parallelise_shardable_queries: settings.parallelise_shardable_queries,
    };
    m.frontend = Some(Arc::new(QueryFrontend::new(next, overrides, fe_config)));
    m.frontend_queue = Some(queue);
    Ok(())
}

/// Starts the workers that run queued requests on a querier: in-process ones when this
/// process runs both the frontend and a querier, gRPC ones when it runs a querier configured
/// with `frontend_worker.frontend_address`.
pub fn start_workers(m: &mut Modules) -> anyhow::Result<()> {
    let Some(querier) = m.querier.clone() else { return Ok(()) };
    let router = crate::http::worker_router(&m.config, querier);
    let handler = Arc::new(RouterHandler::new(router));
    let streams = m.config.querier.max_concurrent.max(1);
    if let Some(queue) = m.frontend_queue.clone() {
        let tasks =
            skald_frontend::spawn_local_workers(queue, streams, handler, m.shutdown.clone());
        m.worker_tasks.extend(tasks);
    } else if !m.config.frontend_worker.frontend_address.is_empty() {
        let tasks = skald_frontend::spawn_grpc_workers(
            &m.config.frontend_worker,
            streams,
            handler,
            m.shutdown.clone(),
        )
        .map_err(|e| anyhow::anyhow!("frontend_worker: {e}"))?;
        tracing::info!(
            frontend = %m.config.frontend_worker.frontend_address,
            "pulling queries from the query-frontend"
        );
        m.worker_tasks.extend(tasks);
    }
    Ok(())
}

/// Ends the queue at shutdown: waiting workers return and queued requests fail, so that the
/// gRPC workers' streams end and the gRPC server can stop.
pub fn close_queue(queue: &Option<RequestQueue>) {
    if let Some(q) = queue {
        q.close();
    }
}
