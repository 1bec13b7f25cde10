//! The workspace's layering, checked on the declared crate graph (`cargo metadata --no-deps`).
//!
//! Layers come from where a crate's manifest sits, never from its name: `crates/core/*`,
//! `crates/store/*`, `crates/write/*`, `crates/read/*`, `crates/server`, and `tests`/`benches`.
//! Arrows point down only: `core ← store ← write, read ← server`. A crate may use crates of its
//! own layer; write and read never use each other; tests and benches may use anything. Every kind
//! of dependency counts (normal, dev and build): a test-only arrow across layers is a coupling
//! too. A crate that the services of a layer share (`CORE_ONLY`: `skald-loghttp`) uses core
//! crates only, so that it never brings a store or a service along.
//!
//! The two storage SDKs stay with the crates that own storage: `aws-sdk-dynamodb` in
//! `skald-index` and `skald-table-manager`, `object_store` in `skald-chunk-store`
//! (`deny.toml`'s `wrappers` say the same for the whole dependency tree).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Arrows that break the layering today, each with the step that removes it. An entry that no
/// longer matches a dependency fails the test, so the list cannot outlive its reason.
const KNOWN_LAYER_VIOLATIONS: &[(&str, &str, &str)] = &[
    // (none: the ingester → logql edge went away when logql moved to crates/core/logql)
];

/// Which workspace crates may depend on each storage SDK.
const STORAGE_SDK_OWNERS: &[(&str, &[&str])] = &[
    ("aws-sdk-dynamodb", &["skald-index", "skald-table-manager"]),
    ("object_store", &["skald-chunk-store"]),
];

/// Storage-SDK uses outside their owners, each with the step that removes it (stale entries
/// fail the test too).
const KNOWN_STORAGE_SDK_USES: &[(&str, &str, &str)] = &[
    // (none: the server's DynamoDB client construction moved into skald-index)
];

/// Crates that the services of a layer share, which may use core crates only (no store crate,
/// no service): `skald-loghttp`, Loki's HTTP API shapes for every read service.
const CORE_ONLY: &[&str] = &["skald-loghttp"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    Core,
    Store,
    Write,
    Read,
    Server,
    /// `tests/` and `benches/`: may depend on anything.
    Harness,
}

impl Layer {
    /// The layer of a crate whose manifest is `rel` (relative to the workspace root).
    fn of(rel: &Path) -> Option<Layer> {
        let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
        match parts.as_slice() {
            ["crates", "core", _, "Cargo.toml"] => Some(Layer::Core),
            ["crates", "store", _, "Cargo.toml"] => Some(Layer::Store),
            ["crates", "write", _, "Cargo.toml"] => Some(Layer::Write),
            ["crates", "read", _, "Cargo.toml"] => Some(Layer::Read),
            ["crates", "server", "Cargo.toml"] => Some(Layer::Server),
            ["tests", "Cargo.toml"] | ["benches", "Cargo.toml"] => Some(Layer::Harness),
            _ => None,
        }
    }

    /// Whether a crate of layer `self` may depend on one of layer `to`.
    fn may_use(self, to: Layer) -> bool {
        use Layer::*;
        match self {
            Core => to == Core,
            Store => matches!(to, Core | Store),
            Write => matches!(to, Core | Store | Write),
            Read => matches!(to, Core | Store | Read),
            Server => matches!(to, Core | Store | Write | Read),
            Harness => true,
        }
    }
}

/// One workspace crate: its layer and the names of everything it depends on (any kind).
struct Crate {
    layer: Layer,
    deps: BTreeSet<String>,
}

/// The workspace's crates from `cargo metadata --format-version 1 --no-deps`.
fn workspace() -> BTreeMap<String, Crate> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let mut crates = BTreeMap::new();
    let mut unplaced = Vec::new();
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("package name").to_string();
        let manifest = Path::new(p["manifest_path"].as_str().expect("manifest_path"));
        let rel = manifest.strip_prefix(root).unwrap_or(manifest);
        let Some(layer) = Layer::of(rel) else {
            unplaced.push(format!("{name} ({})", rel.display()));
            continue;
        };
        let deps = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .map(|d| d["name"].as_str().expect("dependency name").to_string())
            .collect();
        crates.insert(name, Crate { layer, deps });
    }
    assert!(
        unplaced.is_empty(),
        "workspace crates outside crates/{{core,store,write,read}}/*, crates/server, tests, benches: {unplaced:?}"
    );
    crates
}

#[test]
fn crate_dependencies_point_down_only() {
    let crates = workspace();
    assert!(crates.len() >= 10, "only {} workspace crates found", crates.len());
    let mut bad = Vec::new();
    let mut used = BTreeSet::new();
    for (name, c) in &crates {
        for dep in &c.deps {
            let Some(to) = crates.get(dep) else { continue }; // not a workspace crate
            if c.layer.may_use(to.layer) {
                continue;
            }
            match KNOWN_LAYER_VIOLATIONS.iter().find(|(f, t, _)| f == name && t == dep) {
                Some(known) => {
                    used.insert(*known);
                }
                None => bad.push(format!("{name} ({:?}) -> {dep} ({:?})", c.layer, to.layer)),
            }
        }
    }
    assert!(
        bad.is_empty(),
        "dependencies that point up or sideways (layers: core <- store <- write, read <- server; \
         write and read never use each other):\n  {}",
        bad.join("\n  ")
    );
    let stale: Vec<_> = KNOWN_LAYER_VIOLATIONS.iter().filter(|k| !used.contains(*k)).collect();
    assert!(
        stale.is_empty(),
        "KNOWN_LAYER_VIOLATIONS entries that no longer break the layering (remove them): {stale:?}"
    );
}

#[test]
fn shared_api_crates_use_core_crates_only() {
    let crates = workspace();
    let mut bad = Vec::new();
    for name in CORE_ONLY {
        let Some(c) = crates.get(*name) else {
            bad.push(format!("{name} is not a workspace crate"));
            continue;
        };
        for dep in &c.deps {
            if let Some(to) = crates.get(dep).filter(|to| to.layer != Layer::Core) {
                bad.push(format!("{name} -> {dep} ({:?})", to.layer));
            }
        }
    }
    assert!(bad.is_empty(), "crates that may use core crates only:\n  {}", bad.join("\n  "));
}

#[test]
fn storage_sdks_stay_with_the_crates_that_own_storage() {
    let crates = workspace();
    let mut bad = Vec::new();
    let mut used = BTreeSet::new();
    for (sdk, owners) in STORAGE_SDK_OWNERS {
        for (name, c) in &crates {
            if !c.deps.contains(*sdk) || owners.contains(&name.as_str()) {
                continue;
            }
            match KNOWN_STORAGE_SDK_USES.iter().find(|(f, s, _)| f == name && s == sdk) {
                Some(known) => {
                    used.insert(*known);
                }
                None => bad.push(format!("{name} depends on {sdk} (owned by {owners:?})")),
            }
        }
    }
    assert!(bad.is_empty(), "storage SDKs outside their owners:\n  {}", bad.join("\n  "));
    let stale: Vec<_> = KNOWN_STORAGE_SDK_USES.iter().filter(|k| !used.contains(*k)).collect();
    assert!(
        stale.is_empty(),
        "KNOWN_STORAGE_SDK_USES entries that no longer apply (remove them): {stale:?}"
    );
}

#[test]
fn layers_come_from_folders() {
    let l = |p: &str| Layer::of(Path::new(p));
    assert_eq!(l("crates/read/logql/Cargo.toml"), Some(Layer::Read));
    assert_eq!(l("crates/core/logql/Cargo.toml"), Some(Layer::Core));
    assert_eq!(l("crates/server/Cargo.toml"), Some(Layer::Server));
    assert_eq!(l("benches/Cargo.toml"), Some(Layer::Harness));
    assert_eq!(l("crates/read/logql/fuzz/Cargo.toml"), None);
    assert!(Layer::Write.may_use(Layer::Core) && Layer::Write.may_use(Layer::Store));
    assert!(!Layer::Write.may_use(Layer::Read) && !Layer::Read.may_use(Layer::Write));
    assert!(!Layer::Core.may_use(Layer::Store) && !Layer::Store.may_use(Layer::Write));
    assert!(!Layer::Server.may_use(Layer::Harness));
}

/// The production part of a source file: its lines before the first `#[cfg(test)]` at the
/// start of a line (a file's unit tests sit at its end, STYLE.md).
fn production_lines(text: &str) -> usize {
    text.lines().take_while(|l| !l.starts_with("#[cfg(test)]")).count()
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Issue 14's rule: no source file (`src/` of every crate, the test harness and the benches)
/// holds more than 800 lines of production code, so that a file is read in one sitting.
/// Integration-test files (a crate's `tests/`, `tests/tests/`) are all test code and are not
/// counted.
#[test]
fn no_source_file_has_more_than_800_production_lines() {
    const MAX: usize = 800;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let mut files = Vec::new();
    for dir in ["crates", "tests/src", "benches/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    // a crate's own `tests/` (integration tests) and `benches/` folders are not production
    files.retain(|f| {
        let rel = f.strip_prefix(root).unwrap_or(f);
        rel.components().any(|c| c.as_os_str() == "src")
            && !rel.components().any(|c| c.as_os_str() == "tests" && !rel.starts_with("tests/src"))
    });
    assert!(files.len() > 100, "found only {} source files", files.len());
    let mut big: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            let n = production_lines(&text);
            (n > MAX).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    big.sort();
    assert!(big.is_empty(), "files over {MAX} production lines: {big:#?}");
    assert_eq!(production_lines("a\nb\n#[cfg(test)]\nmod tests {}\n"), 2);
}
