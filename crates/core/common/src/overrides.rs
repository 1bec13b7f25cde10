//! Per-tenant overrides of `limits_config`: Loki's runtime configuration file (the
//! `runtime_config` block's `file`), whose `overrides:` map gives a tenant its own limits.
//!
//! As in Loki, an override entry is a whole `limits_config` block whose unset keys take the
//! values of the config's `limits_config` (the defaults): [`parse_runtime_config`] lays each
//! tenant's keys over the defaults and parses the result as a [`Limits`], so every key is
//! parsed and checked as it is in `limits_config` (an unknown key is an error naming it).
//!
//! [`Overrides`] is the view every service holds: cheap to clone, and swapped whole by the
//! server's reload loop ([`Overrides::replace`]) when the file changes, so that a reader sees
//! either the old or the new limits of a tenant, never a mix.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};

use crate::limits::Limits;

/// A tenant's limits as a function of its id: what a module built apart from the services
/// (the compactor) takes; [`Overrides::as_fn`] makes one.
pub type TenantLimitsFn = Arc<dyn Fn(&str) -> Arc<Limits> + Send + Sync>;

/// The limits of every tenant: the defaults (`limits_config`) and the tenants the runtime
/// configuration overrides. Clones share the same state.
#[derive(Clone)]
pub struct Overrides {
    inner: Arc<Inner>,
}

struct Inner {
    defaults: Arc<Limits>,
    tenants: RwLock<Arc<HashMap<String, Arc<Limits>>>>,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenants = self.inner.tenants.read();
        f.debug_struct("Overrides").field("tenants", &tenants.len()).finish_non_exhaustive()
    }
}

impl Default for Overrides {
    fn default() -> Self {
        Overrides::new(Limits::default())
    }
}

impl From<Limits> for Overrides {
    fn from(defaults: Limits) -> Self {
        Overrides::new(defaults)
    }
}

impl Overrides {
    /// Every tenant gets `defaults` until [`Overrides::replace`] overrides some.
    pub fn new(defaults: Limits) -> Self {
        Overrides {
            inner: Arc::new(Inner {
                defaults: Arc::new(defaults),
                tenants: RwLock::new(Arc::new(HashMap::new())),
            }),
        }
    }

    /// `tenant`'s limits: its override when the runtime configuration has one, else the
    /// defaults. For a multi-tenant query's id (`a|b`), the limits of the first tenant with
    /// the query limits of all combined as Loki's query path combines them: the smallest
    /// non-zero value of each size, count, length and timeout limit, the longest cache
    /// freshness, the `shard_aggregations` every tenant has, and `volume_enabled` only when
    /// every tenant has it.
    pub fn tenant(&self, tenant: &str) -> Arc<Limits> {
        if tenant.contains('|') {
            return Arc::new(self.combined(tenant));
        }
        self.single(tenant)
    }

    fn single(&self, tenant: &str) -> Arc<Limits> {
        match self.inner.tenants.read().get(tenant) {
            Some(l) => l.clone(),
            None => self.inner.defaults.clone(),
        }
    }

    fn combined(&self, ids: &str) -> Limits {
        let all: Vec<Arc<Limits>> = ids.split('|').map(|t| self.single(t)).collect();
        let mut out = (*all[0]).clone();
        for l in &all[1..] {
            macro_rules! smallest {
                ($($f:ident),*) => {$(
                    out.$f = smallest_positive(out.$f, l.$f);
                )*};
            }
            smallest!(
                max_entries_limit_per_query,
                max_query_series,
                max_chunks_per_query,
                max_streams_matchers_per_query,
                max_query_parallelism,
                tsdb_max_query_parallelism,
                volume_max_series,
                max_concurrent_tail_requests,
                max_query_memory,
                max_query_bytes_read,
                max_querier_bytes_read,
                tsdb_max_bytes_per_shard,
                max_query_length,
                max_query_range,
                max_query_lookback,
                split_queries_by_interval,
                query_timeout
            );
            out.max_cache_freshness_per_query =
                out.max_cache_freshness_per_query.max(l.max_cache_freshness_per_query);
            out.max_metadata_cache_freshness =
                out.max_metadata_cache_freshness.max(l.max_metadata_cache_freshness);
            out.max_stats_cache_freshness =
                out.max_stats_cache_freshness.max(l.max_stats_cache_freshness);
            out.shard_aggregations.retain(|a| l.shard_aggregations.contains(a));
            out.volume_enabled &= l.volume_enabled;
        }
        out
    }

    /// The `limits_config` block: the limits of every tenant without an override.
    pub fn defaults(&self) -> Arc<Limits> {
        self.inner.defaults.clone()
    }

    /// The overridden tenants and their whole limits (defaults included).
    pub fn tenants(&self) -> Arc<HashMap<String, Arc<Limits>>> {
        self.inner.tenants.read().clone()
    }

    /// Replaces every override at once (a reload of the runtime configuration).
    pub fn replace(&self, overrides: HashMap<String, Limits>) {
        let map = overrides.into_iter().map(|(t, l)| (t, Arc::new(l))).collect();
        *self.inner.tenants.write() = Arc::new(map);
    }

    /// [`Overrides::tenant`] as a shareable function, following later reloads.
    pub fn as_fn(&self) -> TenantLimitsFn {
        let me = self.clone();
        Arc::new(move |tenant: &str| me.tenant(tenant))
    }
}

/// The smaller of two limits where 0 means "no limit".
fn smallest_positive<T: PartialOrd + Default + Copy>(a: T, b: T) -> T {
    let zero = T::default();
    if a == zero || (b != zero && b < a) {
        b
    } else {
        a
    }
}

/// Why a runtime configuration was not loaded. `Display` is what the reload warning and the
/// startup error print (Loki's wording where it has one).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeConfigError {
    /// A file could not be read.
    #[error("read \"{path}\": {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not YAML.
    #[error("unmarshal \"{path}\": {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_yaml::Error,
    },
    /// The merged document has an unknown top-level key or a bad `overrides` shape.
    #[error("load file: {0}")]
    Shape(serde_yaml::Error),
    /// A tenant's block has an unknown key or a bad value.
    #[error("invalid override for tenant {tenant}: {reason}")]
    Tenant {
        /// The tenant.
        tenant: String,
        /// What is wrong, naming the key.
        reason: String,
    },
}

/// The runtime configuration file's top level (Loki's keys). `configs` (per-tenant runtime
/// settings such as request logging) and `multi_kv_config` are accepted and not used.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RuntimeFile {
    overrides: Option<HashMap<String, Option<Value>>>,
    #[allow(dead_code)]
    configs: Option<Value>,
    #[allow(dead_code)]
    multi_kv_config: Option<Value>,
}

/// Parses one runtime configuration document: each tenant's limits, its keys laid over
/// `defaults`. An empty document overrides nothing; a tenant with an empty (null) block gets
/// the defaults, as in Loki.
pub fn parse_runtime_config(
    text: &str,
    defaults: &Limits,
) -> Result<HashMap<String, Limits>, RuntimeConfigError> {
    let doc: Value = serde_yaml::from_str(text)
        .map_err(|source| RuntimeConfigError::Yaml { path: PathBuf::from("<inline>"), source })?;
    parse_document(doc, defaults)
}

/// Reads and merges the runtime configuration `files` in order (a later file's keys win,
/// mappings are merged key by key), then parses the result as [`parse_runtime_config`] does.
pub fn load_runtime_config(
    files: &[PathBuf],
    defaults: &Limits,
) -> Result<HashMap<String, Limits>, RuntimeConfigError> {
    let mut merged = Value::Null;
    for path in files {
        let text = std::fs::read_to_string(path)
            .map_err(|source| RuntimeConfigError::Read { path: path.clone(), source })?;
        let doc: Value = serde_yaml::from_str(&text)
            .map_err(|source| RuntimeConfigError::Yaml { path: path.clone(), source })?;
        merge(&mut merged, doc);
    }
    parse_document(merged, defaults)
}

/// The files of a `runtime_config.file` value: comma-separated paths, as Loki accepts.
pub fn runtime_config_files(file: &str) -> Vec<PathBuf> {
    file.split(',').map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from).collect()
}

fn parse_document(
    doc: Value,
    defaults: &Limits,
) -> Result<HashMap<String, Limits>, RuntimeConfigError> {
    let file: RuntimeFile = match doc {
        Value::Null => RuntimeFile::default(),
        doc => serde_yaml::from_value(doc).map_err(RuntimeConfigError::Shape)?,
    };
    let base = serde_yaml::to_value(defaults).map_err(|e| RuntimeConfigError::Tenant {
        tenant: String::new(),
        reason: format!("the defaults do not serialize: {e}"),
    })?;
    let mut out = HashMap::new();
    for (tenant, block) in file.overrides.unwrap_or_default() {
        let limits = match block {
            None | Some(Value::Null) => defaults.clone(),
            Some(block @ Value::Mapping(_)) => {
                let mut merged = base.clone();
                merge(&mut merged, block);
                let limits: Limits = serde_yaml::from_value(merged).map_err(|e| {
                    RuntimeConfigError::Tenant { tenant: tenant.clone(), reason: e.to_string() }
                })?;
                limits.validate().map_err(|e| RuntimeConfigError::Tenant {
                    tenant: tenant.clone(),
                    reason: e.to_string(),
                })?;
                limits
            }
            Some(_) => {
                return Err(RuntimeConfigError::Tenant {
                    tenant,
                    reason: "the override must be a mapping of limits_config keys".to_string(),
                })
            }
        };
        out.insert(tenant, limits);
    }
    Ok(out)
}

/// Lays `over` onto `base`: mappings merge key by key (recursively), anything else replaces.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, over) => *slot = over,
    }
}

/// The keys of `limits` whose values differ from `defaults` (nested mappings compared key by
/// key, lists whole), in alphabetical order, as Loki's `/runtime_config?mode=diff` shows
/// them.
pub fn diff_from_defaults(limits: &Limits, defaults: &Limits) -> Mapping {
    let (Ok(Value::Mapping(actual)), Ok(Value::Mapping(base))) =
        (serde_yaml::to_value(limits), serde_yaml::to_value(defaults))
    else {
        return Mapping::new();
    };
    diff(&base, actual)
}

fn diff(base: &Mapping, actual: Mapping) -> Mapping {
    let mut out = Mapping::new();
    for (k, v) in actual {
        match (base.get(&k), v) {
            (Some(Value::Mapping(b)), Value::Mapping(a)) => {
                let d = diff(b, a);
                if !d.is_empty() {
                    out.insert(k, Value::Mapping(d));
                }
            }
            (Some(b), v) if *b == v => {}
            (_, v) => {
                out.insert(k, v);
            }
        }
    }
    // keys in alphabetical order, as Loki's YAML of a map writes them
    let mut keys: Vec<(Value, Value)> = out.into_iter().collect();
    keys.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
    keys.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn defaults() -> Limits {
        Limits { max_entries_limit_per_query: 1000, ..Limits::default() }
    }

    #[test]
    fn an_override_takes_the_defaults_for_keys_it_does_not_set() {
        let yaml = "overrides:\n  small:\n    max_line_size: 100\n    query_timeout: 5s\n  big: {}\n  empty:\n";
        let o = parse_runtime_config(yaml, &defaults()).unwrap();
        let small = &o["small"];
        assert_eq!(small.max_line_size, 100);
        assert_eq!(small.query_timeout, Duration::from_secs(5));
        // from limits_config, not from Loki's built-in default
        assert_eq!(small.max_entries_limit_per_query, 1000);
        assert_eq!(o["big"], defaults());
        assert_eq!(o["empty"], defaults());
    }

    #[test]
    fn nested_blocks_merge_key_by_key() {
        let yaml = "overrides:\n  t:\n    otlp_config:\n      severity_text_as_label: true\n";
        let o = parse_runtime_config(yaml, &defaults()).unwrap();
        let want = Limits::default().otlp_config;
        assert!(o["t"].otlp_config.severity_text_as_label);
        assert_eq!(o["t"].otlp_config.resource_attributes, want.resource_attributes);
    }

    #[test]
    fn unknown_and_bad_keys_name_the_tenant_and_the_key() {
        let err = parse_runtime_config("overrides:\n  t:\n    max_line_sise: 1\n", &defaults())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid override for tenant t: "), "{err}");
        assert!(err.contains("max_line_sise"), "{err}");
        let err =
            parse_runtime_config("overrides:\n  t:\n    ingestion_rate_mb: -1\n", &defaults())
                .unwrap_err()
                .to_string();
        assert!(err.contains("ingestion_rate_mb"), "{err}");
        let err = parse_runtime_config("overridez: {}\n", &defaults()).unwrap_err().to_string();
        assert!(err.starts_with("load file: ") && err.contains("overridez"), "{err}");
        assert!(parse_runtime_config("overrides: [\n", &defaults()).is_err());
        assert!(parse_runtime_config("overrides:\n  t: 3\n", &defaults()).is_err());
    }

    #[test]
    fn loki_top_level_keys_and_empty_files_load() {
        let yaml =
            "overrides: {}\nconfigs:\n  t:\n    log_push_request: true\nmulti_kv_config: {}\n";
        assert!(parse_runtime_config(yaml, &defaults()).unwrap().is_empty());
        assert!(parse_runtime_config("", &defaults()).unwrap().is_empty());
        assert!(parse_runtime_config("overrides:\n", &defaults()).unwrap().is_empty());
    }

    #[test]
    fn files_merge_in_order() {
        let dir = std::env::temp_dir().join(format!("skald-overrides-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.yaml"), dir.join("b.yaml"));
        std::fs::write(&a, "overrides:\n  t:\n    max_line_size: 10\n    query_timeout: 7s\n")
            .unwrap();
        std::fs::write(&b, "overrides:\n  t:\n    max_line_size: 20\n  u: {}\n").unwrap();
        let files = runtime_config_files(&format!("{}, {}", a.display(), b.display()));
        assert_eq!(files, vec![a.clone(), b.clone()]);
        let o = load_runtime_config(&files, &defaults()).unwrap();
        assert_eq!(o["t"].max_line_size, 20);
        assert_eq!(o["t"].query_timeout, Duration::from_secs(7));
        assert!(o.contains_key("u"));
        let missing = dir.join("missing.yaml");
        let err = load_runtime_config(std::slice::from_ref(&missing), &defaults()).unwrap_err();
        assert!(err.to_string().starts_with("read \""), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn overrides_swap_whole_and_clones_follow() {
        let o = Overrides::new(defaults());
        let view = o.clone();
        let f = o.as_fn();
        assert_eq!(view.tenant("small").max_line_size, defaults().max_line_size);
        let parsed =
            parse_runtime_config("overrides:\n  small:\n    max_line_size: 5\n", &defaults())
                .unwrap();
        o.replace(parsed);
        assert_eq!(view.tenant("small").max_line_size, 5);
        assert_eq!(f("small").max_line_size, 5);
        assert_eq!(view.tenant("other").max_line_size, defaults().max_line_size);
        assert_eq!(*view.defaults(), defaults());
        assert_eq!(view.tenants().len(), 1);
        o.replace(HashMap::new());
        assert_eq!(f("small").max_line_size, defaults().max_line_size);
    }

    #[test]
    fn a_multi_tenant_id_takes_the_most_restrictive_query_limits() {
        let o = Overrides::new(defaults());
        let file = "overrides:\n  a:\n    max_entries_limit_per_query: 10\n    query_timeout: 5m\n    max_query_length: 0\n  b:\n    max_entries_limit_per_query: 0\n    max_line_size: 7\n    volume_enabled: false\n";
        o.replace(parse_runtime_config(file, &defaults()).unwrap());
        let ab = o.tenant("a|b");
        assert_eq!(ab.max_entries_limit_per_query, 10);
        assert_eq!(ab.query_timeout, defaults().query_timeout);
        assert_eq!(ab.max_query_length, defaults().max_query_length);
        assert!(!ab.volume_enabled);
        // not a query limit: the first tenant's
        assert_eq!(ab.max_line_size, defaults().max_line_size);
        assert_eq!(o.tenant("b|a").max_line_size, 7);
    }

    #[test]
    fn diff_shows_only_changed_keys() {
        let o = parse_runtime_config(
            "overrides:\n  t:\n    max_line_size: 100\n    max_entries_limit_per_query: 1000\n    otlp_config:\n      severity_text_as_label: true\n",
            &defaults(),
        )
        .unwrap();
        let d = diff_from_defaults(&o["t"], &defaults());
        let text = serde_yaml::to_string(&d).unwrap();
        assert_eq!(text, "max_line_size: 100B\notlp_config:\n  severity_text_as_label: true\n");
        assert!(diff_from_defaults(&defaults(), &defaults()).is_empty());
    }
}
