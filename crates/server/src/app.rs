//! Starts the modules a target needs and runs them until SIGTERM / ctrl-c. The modules and
//! their order come from the graph in `modules.rs`; each module's wiring is its file under
//! `modules/`.

use tokio::sync::watch;

use crate::config::Config;
use crate::modules::{ingester, query_frontend, server, Modules};

/// Runs `target` with `config` until a shutdown signal, then stops cleanly (flushing the
/// ingester's chunks).
pub async fn run(config: Config, target: &str) -> anyhow::Result<()> {
    let (mut modules, shutdown_tx) = Modules::new(config, target)?;
    modules.init_all().await?;
    server::start_grpc(&mut modules).await?;
    query_frontend::start_workers(&mut modules)?;
    ingester::activate_in_ring(&mut modules).await?;
    server::serve_http(&modules).await?;
    shutdown(modules, shutdown_tx).await;
    Ok(())
}

/// Stops accepting, then lets the ingester flush everything before exit. An ingester in the
/// ring announces that it is leaving before it flushes or checkpoints, and lingers after.
async fn shutdown(mut modules: Modules, shutdown_tx: watch::Sender<bool>) {
    ingester::leave_ring(&modules).await;
    query_frontend::close_queue(&modules.frontend_queue);
    let _ = shutdown_tx.send(true);
    // the HTTP server has drained: what a worker still runs has no one waiting for it
    for t in modules.worker_tasks.drain(..) {
        t.abort();
    }
    if let Some(t) = modules.grpc_task.take() {
        let _ = t.await;
    }
    // a pass under way is not waited for long: its work is redone by the next one
    if let Some(t) = modules.compactor_task.take() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), t).await;
    }
    if let Some(t) = modules.ingester_task.take() {
        let _ = t.await;
    }
    ingester::linger_in_ring(&modules).await;
    tracing::info!("Skald stopped");
}
