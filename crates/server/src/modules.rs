//! The module graph: which services a `-target` runs and in which order they start, as Loki's
//! `pkg/loki/modules.go` dependency map does (written anew here), and the driver that starts
//! them: each module has one file under `modules/` with an `init_*` that builds it into the
//! shared [`Modules`]. Adding a target is adding a [`Module`], its dependencies, and its file.

mod compactor;
mod deletes;
mod distributor;
pub mod ingester;
mod ingester_client;
mod querier;
pub mod query_frontend;
pub mod server;
mod store;
mod table_manager;

use std::sync::Arc;

use skald_chunk_store::ChunkStore;
use skald_distributor::Distributor;
use skald_index::IndexStore;
use skald_ingester::Ingester;
use skald_proto::ingester::IngesterClient;
use skald_querier::Querier;
use skald_ring::lifecycler::Lifecycler;
use skald_ring::membership::{Membership, MembershipConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use skald_distributor::elastic::objects::EsObjects;

/// A startable unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Module {
    /// HTTP and gRPC listeners, metrics registry.
    Server,
    /// Chunk store and index store.
    Store,
    /// The ingester service (and its gRPC endpoint).
    Ingester,
    /// A client to ingesters: in-process when the ingester runs here, gRPC otherwise.
    IngesterClient,
    /// The push path.
    Distributor,
    /// The query path.
    Querier,
    /// Creates, updates and deletes the DynamoDB index tables.
    TableManager,
    /// Splits, queues and caches queries in front of the queriers.
    QueryFrontend,
    /// Retention and index compaction (one process at a time works).
    Compactor,
}

impl Module {
    /// The name `/services` shows.
    pub fn service_name(self) -> &'static str {
        match self {
            Module::Server => "server",
            Module::Store => "store",
            Module::Ingester => "ingester",
            Module::IngesterClient => "ingester-querier",
            Module::Distributor => "distributor",
            Module::Querier => "querier",
            Module::TableManager => "table-manager",
            Module::QueryFrontend => "query-frontend",
            Module::Compactor => "compactor",
        }
    }
}

/// What the started modules share: each `init_*` reads the modules it depends on from here
/// and puts its own in. A module the target does not run stays `None`.
pub struct Modules {
    /// The root configuration.
    pub config: Config,
    /// The `-target` this process runs.
    pub target: String,
    /// The modules of the target, dependencies first: the start order, and `/services`.
    pub order: Vec<Module>,
    /// The metrics registry `/metrics` serves.
    pub registry: prometheus::Registry,
    /// `loki_request_duration_seconds` and `loki_inflight_requests`, for both listeners.
    pub request_metrics: crate::request_metrics::RequestMetrics,
    /// `loki_ingester_client_request_duration_seconds`, around every remote ingester client.
    pub ingester_client_metrics: crate::ingester_client_metrics::IngesterClientMetrics,
    /// Turns `true` when the process stops: background tasks end on it.
    pub shutdown: watch::Receiver<bool>,
    /// The `memberlist` block, when gossip is configured (set by the server module).
    pub memberlist: Option<MembershipConfig>,
    /// Gossip membership: the ingester's lifecycler's or a ring client's.
    pub membership: Option<Arc<Membership>>,
    /// This process's ingester's entry in the gossiped ring.
    pub lifecycler: Option<Lifecycler>,
    /// Chunk store (the store module).
    pub chunk_store: Option<Arc<dyn ChunkStore>>,
    /// Index store (the store module).
    pub index_store: Option<Arc<dyn IndexStore>>,
    /// The ingester, when this process runs one.
    pub ingester: Option<Ingester>,
    /// The ingester's flush loop; it ends (after the final flush) on shutdown.
    pub ingester_task: Option<JoinHandle<()>>,
    /// The ingester's gRPC server; it ends on shutdown.
    pub grpc_task: Option<JoinHandle<()>>,
    /// How the distributor and querier reach ingesters.
    pub ingester_client: Option<IngesterClient>,
    /// The push path.
    pub distributor: Option<Arc<Distributor>>,
    /// Where the Elasticsearch templates, policies and pipelines of tenants are kept.
    pub es_objects: Option<Arc<EsObjects>>,
    /// The query path.
    pub querier: Option<Arc<Querier>>,
    /// The query-frontend's query path (splitting, caches), over its queue.
    pub frontend: Option<Arc<skald_frontend::QueryFrontend>>,
    /// The query-frontend's request queue, which workers pull from.
    pub frontend_queue: Option<skald_frontend::RequestQueue>,
    /// The workers running queued requests on this process's querier; they end on shutdown.
    pub worker_tasks: Vec<JoinHandle<()>>,
    /// Every tenant's limits: `limits_config` and the runtime configuration's overrides
    /// (loaded, and reloaded while running, by the server module).
    pub runtime: Arc<crate::runtime_config::RuntimeState>,
    /// The compactor's loop; it ends on shutdown, giving its lease up.
    pub compactor_task: Option<JoinHandle<()>>,
    /// The delete API and deletion pass (with `compactor.retention_enabled`), built by the
    /// first of the querier and the compactor that needs it; served over HTTP.
    pub deletes: Option<Arc<skald_deletes::DeleteService>>,
}

impl Modules {
    /// The empty context for `target`, and the sender that stops its background tasks.
    pub fn new(config: Config, target: &str) -> anyhow::Result<(Self, watch::Sender<bool>)> {
        let order = resolve(target).map_err(anyhow::Error::msg)?;
        let (shutdown_tx, shutdown) = watch::channel(false);
        let runtime = Arc::new(crate::runtime_config::RuntimeState {
            overrides: skald_common::overrides::Overrides::new(config.limits_config.clone()),
            configured: false,
        });
        let registry = prometheus::Registry::new();
        crate::process_metrics::register(&registry);
        if let Err(error) = skald_cache::metrics::register(&registry) {
            tracing::warn!(%error, "memcached client metric not registered");
        }
        let request_metrics = crate::request_metrics::RequestMetrics::new(&registry);
        let ingester_client_metrics =
            crate::ingester_client_metrics::IngesterClientMetrics::new(&registry);
        let modules = Modules {
            config,
            target: target.to_string(),
            order,
            registry,
            request_metrics,
            ingester_client_metrics,
            shutdown,
            memberlist: None,
            membership: None,
            lifecycler: None,
            chunk_store: None,
            index_store: None,
            ingester: None,
            ingester_task: None,
            grpc_task: None,
            ingester_client: None,
            distributor: None,
            es_objects: None,
            querier: None,
            frontend: None,
            frontend_queue: None,
            worker_tasks: Vec::new(),
            runtime,
            compactor_task: None,
            deletes: None,
        };
        Ok((modules, shutdown_tx))
    }

    /// Builds every module of the target, in the graph's order.
    pub async fn init_all(&mut self) -> anyhow::Result<()> {
        for module in self.order.clone() {
            self.init(module).await?;
        }
        Ok(())
    }

    /// Builds `module`; the modules it depends on are already built.
    async fn init(&mut self, module: Module) -> anyhow::Result<()> {
        match module {
            Module::Server => server::init_server(self),
            Module::Store => store::init_store(self),
            Module::Ingester => ingester::init_ingester(self).await,
            Module::IngesterClient => ingester_client::init_ingester_client(self).await,
            Module::Distributor => distributor::init_distributor(self),
            Module::Querier => querier::init_querier(self),
            Module::TableManager => table_manager::init_table_manager(self),
            Module::QueryFrontend => query_frontend::init_query_frontend(self),
            Module::Compactor => compactor::init_compactor(self),
        }
    }

    /// The chunk and index stores, for a module that needs them.
    fn stores(&self, who: &str) -> anyhow::Result<(Arc<dyn ChunkStore>, Arc<dyn IndexStore>)> {
        match (&self.chunk_store, &self.index_store) {
            (Some(cs), Some(is)) => Ok((cs.clone(), is.clone())),
            _ => anyhow::bail!("the {who} needs the store module"),
        }
    }
}

fn deps(m: Module) -> &'static [Module] {
    match m {
        Module::Server => &[],
        // the store registers its metrics in the server's registry
        Module::Store => &[Module::Server],
        Module::Ingester => &[Module::Server, Module::Store],
        Module::IngesterClient => &[],
        Module::Distributor => &[Module::Server, Module::IngesterClient],
        Module::Querier => &[Module::Server, Module::Store, Module::IngesterClient],
        Module::TableManager => &[Module::Server],
        Module::QueryFrontend => &[Module::Server],
        Module::Compactor => &[Module::Server, Module::Store],
    }
}

/// A target that names no module; `Display` is what startup prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unrecognised target `{0}` (known: all, compactor, distributor, ingester, querier, query-frontend, table-manager)"
)]
pub struct UnknownTarget(pub String);

/// The modules a target needs, dependencies first.
pub fn resolve(target: &str) -> Result<Vec<Module>, UnknownTarget> {
    // as in Loki, several targets may be given, comma-separated (`-target=ingester,querier`)
    let mut roots: Vec<Module> = Vec::new();
    for t in target.split(',').map(str::trim) {
        roots.extend_from_slice(roots_of(t).ok_or_else(|| UnknownTarget(t.to_string()))?);
    }
    let mut out: Vec<Module> = Vec::new();
    fn visit(m: Module, out: &mut Vec<Module>) {
        if out.contains(&m) {
            return;
        }
        for d in deps(m) {
            visit(*d, out);
        }
        out.push(m);
    }
    for r in roots {
        visit(r, &mut out);
    }
    Ok(out)
}

/// The modules one target names.
fn roots_of(target: &str) -> Option<&'static [Module]> {
    Some(match target {
        "all" | "" => &[
            Module::TableManager,
            Module::Ingester,
            Module::Distributor,
            Module::Querier,
            Module::QueryFrontend,
            Module::Compactor,
        ],
        "table-manager" => &[Module::TableManager],
        "compactor" => &[Module::Compactor],
        "ingester" => &[Module::Ingester],
        "distributor" => &[Module::Distributor],
        "querier" => &[Module::Querier],
        "query-frontend" => &[Module::QueryFrontend],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_orders_dependencies_first() {
        let all = resolve("all").unwrap();
        let pos = |m| all.iter().position(|x| *x == m).unwrap();
        assert!(pos(Module::Server) < pos(Module::Ingester));
        assert!(pos(Module::Store) < pos(Module::Ingester));
        assert!(pos(Module::IngesterClient) < pos(Module::Distributor));
        assert!(pos(Module::Store) < pos(Module::Querier));
        assert_eq!(
            resolve("distributor").unwrap(),
            vec![Module::Server, Module::IngesterClient, Module::Distributor]
        );
        assert!(!resolve("querier").unwrap().contains(&Module::Ingester));
        assert!(resolve("nope").unwrap_err().to_string().contains("nope"));
        // several targets, comma-separated: the union of their modules
        let rest = resolve("ingester,distributor,querier").unwrap();
        assert!(rest.contains(&Module::Ingester) && rest.contains(&Module::Querier));
        assert!(!rest.contains(&Module::Compactor));
        assert_eq!(rest.iter().filter(|m| **m == Module::Server).count(), 1);
        assert_eq!(resolve("querier,nope").unwrap_err(), UnknownTarget("nope".into()));
        assert_eq!(resolve("table-manager").unwrap(), vec![Module::Server, Module::TableManager]);
        assert!(pos(Module::TableManager) < pos(Module::Ingester));
    }

    /// Every target `-target` accepts: `-help` and [`UnknownTarget`] must list each.
    const TARGETS: [&str; 6] =
        ["all", "distributor", "ingester", "querier", "query-frontend", "table-manager"];

    #[test]
    fn help_and_errors_name_every_target() {
        let usage = crate::flags::USAGE.split_whitespace().collect::<Vec<_>>().join(" ");
        let unknown = UnknownTarget("x".into()).to_string();
        for t in TARGETS {
            assert!(resolve(t).is_ok(), "{t}");
            assert!(usage.contains(t), "-help does not name {t}");
            assert!(unknown.contains(t), "the unknown-target error does not name {t}");
        }
    }

    #[test]
    fn all_starts_every_module() {
        assert_eq!(
            resolve("all").unwrap(),
            vec![
                Module::Server,
                Module::TableManager,
                Module::Store,
                Module::Ingester,
                Module::IngesterClient,
                Module::Distributor,
                Module::Querier,
                Module::QueryFrontend,
                Module::Compactor,
            ]
        );
        assert_eq!(resolve("").unwrap(), resolve("all").unwrap());
    }

    #[test]
    fn distributor_starts_no_store_and_no_ingester() {
        assert_eq!(
            resolve("distributor").unwrap(),
            vec![Module::Server, Module::IngesterClient, Module::Distributor]
        );
    }

    #[test]
    fn ingester_starts_the_store_and_no_client() {
        assert_eq!(
            resolve("ingester").unwrap(),
            vec![Module::Server, Module::Store, Module::Ingester]
        );
    }

    #[test]
    fn querier_starts_the_store_and_a_client() {
        assert_eq!(
            resolve("querier").unwrap(),
            vec![Module::Server, Module::Store, Module::IngesterClient, Module::Querier]
        );
    }

    #[test]
    fn query_frontend_starts_no_store_and_no_querier() {
        assert_eq!(resolve("query-frontend").unwrap(), vec![Module::Server, Module::QueryFrontend]);
    }

    #[test]
    fn compactor_starts_the_store_only() {
        assert_eq!(
            resolve("compactor").unwrap(),
            vec![Module::Server, Module::Store, Module::Compactor]
        );
    }

    #[test]
    fn table_manager_starts_no_store() {
        assert_eq!(resolve("table-manager").unwrap(), vec![Module::Server, Module::TableManager]);
    }

    #[test]
    fn every_dependency_starts_before_its_module() {
        for target in [
            "all",
            "compactor",
            "distributor",
            "ingester",
            "querier",
            "query-frontend",
            "table-manager",
        ] {
            let order = resolve(target).unwrap();
            for (i, m) in order.iter().enumerate() {
                for d in deps(*m) {
                    let at = order.iter().position(|x| x == d);
                    assert!(at.is_some_and(|at| at < i), "{target}: {d:?} before {m:?}");
                }
            }
        }
    }
}
