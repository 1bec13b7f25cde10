//! The module graph: which services a `-target` runs and in which order they start, as Loki's
//! `pkg/loki/modules.go` dependency map does (written anew here).

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
        }
    }
}

fn deps(m: Module) -> &'static [Module] {
    match m {
        Module::Server => &[],
        Module::Store => &[],
        Module::Ingester => &[Module::Server, Module::Store],
        Module::IngesterClient => &[],
        Module::Distributor => &[Module::Server, Module::IngesterClient],
        Module::Querier => &[Module::Server, Module::Store, Module::IngesterClient],
        Module::TableManager => &[Module::Server],
    }
}

/// The modules a target needs, dependencies first.
pub fn resolve(target: &str) -> Result<Vec<Module>, String> {
    let roots: &[Module] = match target {
        "all" | "" => {
            &[Module::TableManager, Module::Ingester, Module::Distributor, Module::Querier]
        }
        "table-manager" => &[Module::TableManager],
        "ingester" => &[Module::Ingester],
        "distributor" => &[Module::Distributor],
        "querier" => &[Module::Querier],
        other => {
            return Err(format!(
                "unrecognised target `{other}` (known: all, distributor, ingester, querier, table-manager)"
            ))
        }
    };
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
        visit(*r, &mut out);
    }
    Ok(out)
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
        assert!(resolve("nope").unwrap_err().contains("nope"));
        assert_eq!(resolve("table-manager").unwrap(), vec![Module::Server, Module::TableManager]);
        assert!(pos(Module::TableManager) < pos(Module::Ingester));
    }
}
