//! The root configuration: Loki's top-level keys, one block per service crate.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use skald_common::limits::Limits;
use skald_distributor::DistributorConfig;
use skald_ingester::IngesterConfig;
use skald_querier::QuerierConfig;

/// A config file that does not load or is refused by [`Config::validate`]. `Display` is what
/// the startup check prints after `error: ` (or `error: invalid config: ` for a refusal).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The YAML does not parse or does not fit [`Config`] (names an unknown key).
    #[error("invalid config: {0}")]
    Yaml(serde_yaml::Error),
    /// A block Skald fills in (`ingester`, `ingester.lifecycler`, `...ring`, `common`) is
    /// not a mapping.
    #[error("invalid config: `{0}` must be a mapping")]
    NotMapping(String),
    /// A ring kvstore other than memberlist or inmemory.
    #[error(
        "{at}.kvstore.store `{store}` is not supported: Skald's ring runs on memberlist (gossip) or inmemory"
    )]
    KvStore {
        /// The ring's path, `common.ring` or `ingester.lifecycler.ring`.
        at: &'static str,
        /// The store named.
        store: String,
    },
    /// The `ingester` block.
    #[error("{0}")]
    Ingester(skald_ingester::IngesterError),
    /// The `limits_config` block.
    #[error("limits_config: {0}")]
    Limits(skald_common::limits::LimitsError),
    /// The `distributor` block.
    #[error("{0}")]
    Distributor(skald_distributor::ConfigError),
    /// The `pattern_ingester` block.
    #[error("{0}")]
    PatternIngester(skald_querier::PatternConfigError),
    /// The `frontend` or `frontend_worker` block.
    #[error("{0}")]
    Frontend(skald_frontend::config::ConfigError),
    /// `server.http_listen_port: 0` without an address.
    #[error("server.http_listen_address must be set")]
    NoHttpListenAddress,
    /// A DynamoDB index store without `dynamodb_url`.
    #[error(
        "schema_config.configs[{index}].store `{store}` keeps the index in DynamoDB: set storage_config.aws.dynamodb.dynamodb_url"
    )]
    NoDynamoUrl {
        /// The period's position.
        index: usize,
        /// `aws` or `aws-dynamo`.
        store: String,
    },
    /// A DynamoDB period whose `index.period` is not whole days.
    #[error("schema_config.configs[{0}].index.period must be a multiple of 24h")]
    DynamoPeriod(usize),
    /// An index store Skald does not have.
    #[error(
        "schema_config.configs[{index}].store `{store}` is not supported (supported: tsdb, boltdb-shipper (both use Skald's object-store index), aws, aws-dynamo (DynamoDB tables))"
    )]
    UnsupportedStore {
        /// The period's position.
        index: usize,
        /// The store named.
        store: String,
    },
    /// An S3 object store without `storage_config.aws`.
    #[error("schema_config.configs[{index}].object_store `{store}` needs storage_config.aws")]
    NoAwsStorage {
        /// The period's position.
        index: usize,
        /// `s3` or `aws`.
        store: String,
    },
    /// An object store Skald does not have.
    #[error(
        "schema_config.configs[{index}].object_store `{store}` is not supported (supported: filesystem, s3, aws)"
    )]
    UnsupportedObjectStore {
        /// The period's position.
        index: usize,
        /// The store named.
        store: String,
    },
    /// A period's `from` or `index.period` that does not parse (the outermost message of
    /// [`crate::storage::period_from_secs`] / [`crate::storage::index_period`]).
    #[error("{0}")]
    Period(String),
    /// Periods not in increasing `from` order.
    #[error("schema_config.configs[{0}].from must be after the previous period's")]
    PeriodOrder(usize),
    /// `memberlist.bind_port` that is not a port number.
    #[error("memberlist.bind_port must be a port number")]
    BindPort,
    /// `memberlist.bind_addr` and `bind_port` do not make a socket address.
    #[error("memberlist.bind_addr/bind_port: {0}")]
    BindAddr(std::net::AddrParseError),
    /// `memberlist.advertise_addr` and `bind_port` do not make a socket address.
    #[error("memberlist.advertise_addr: {0}")]
    AdvertiseAddr(std::net::AddrParseError),
    /// `memberlist.gossip_interval` is not a duration.
    #[error("{0}")]
    GossipInterval(skald_common::units::UnitError),
}

/// The whole YAML file. An unknown key is an error that names it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Which services to run (`all`, `distributor`, `ingester`, `querier`, `query-frontend`,
    /// `table-manager`); the `-target` flag overrides it.
    pub target: Option<String>,
    /// When true, every request needs `X-Scope-OrgID`; when false the tenant is `fake`.
    pub auth_enabled: bool,
    /// Listeners.
    pub server: ServerConfig,
    /// Settings shared by several services.
    pub common: CommonConfig,
    /// Push path.
    pub distributor: DistributorConfig,
    /// Ingester.
    pub ingester: IngesterConfig,
    /// Query path.
    pub querier: QuerierConfig,
    /// Where chunks and index segments live.
    pub storage_config: StorageConfig,
    /// Schema periods.
    pub schema_config: SchemaConfig,
    /// Per-tenant limits.
    pub limits_config: Limits,
    /// Where a distributor or querier finds ingesters when they run as separate processes.
    pub ingester_client: IngesterClientConfig,
    /// The DynamoDB index tables' life cycle (`-target=table-manager`, and in `all`).
    pub table_manager: skald_table_manager::TableManagerConfig,
    /// Pattern detection for `/loki/api/v1/patterns` (done by the querier in Skald).
    pub pattern_ingester: skald_querier::PatternIngesterConfig,
    /// The query-frontend's results caches (Loki's `query_range` block).
    pub query_range: skald_frontend::results_cache::ResultsCacheSettings,
    /// The query-frontend's queue (Loki's `frontend` block).
    pub frontend: skald_frontend::FrontendConfig,
    /// How a querier pulls work from a query-frontend (Loki's `frontend_worker` block).
    pub frontend_worker: skald_frontend::WorkerConfig,
    /// Loki blocks Skald accepts but does not act on yet (so Loki configs load); each is
    /// logged as ignored at start.
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analytics: Option<serde_yaml::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_scheduler: Option<serde_yaml::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ruler: Option<serde_yaml::Value>,
    /// Loki's `compactor` block: retention and index compaction (`-target=compactor`).
    pub compactor: skald_compactor::CompactorConfig,
    /// Loki's `memberlist` block: gossip membership for the ring, read by
    /// [`Config::memberlist`]. Unlike its neighbours it is acted on; it sits among them only to
    /// keep `/config`'s key order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memberlist: Option<serde_yaml::Value>,
    /// Per-tenant overrides of `limits_config`, read from a file while running (Loki's
    /// `runtime_config` block).
    pub runtime_config: crate::runtime_config::RuntimeConfigConfig,
    /// Loki's `tracing` block: request spans exported over OTLP when an endpoint is set.
    pub tracing: crate::tracing_otlp::TracingConfig,
}

impl Config {
    /// Names of accepted-but-ignored Loki blocks present in this config.
    pub fn ignored_blocks(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let blocks: [(&'static str, bool); 3] = [
            ("analytics", self.analytics.is_some()),
            ("query_scheduler", self.query_scheduler.is_some()),
            ("ruler", self.ruler.is_some()),
        ];
        for (name, present) in blocks {
            if present {
                v.push(name);
            }
        }
        v
    }

    /// The directory under which chunks and index segments are kept on the filesystem.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.storage_config.filesystem.directory {
            return PathBuf::from(d);
        }
        if let Some(d) = self
            .storage_config
            .object_store
            .as_ref()
            .and_then(|o| o.filesystem.as_ref())
            .and_then(|f| f.dir.clone())
        {
            return PathBuf::from(d);
        }
        if let Some(d) = self
            .common
            .storage
            .as_ref()
            .and_then(|s| s.filesystem.as_ref())
            .and_then(|f| f.chunks_directory.clone())
        {
            return PathBuf::from(d);
        }
        PathBuf::from(&self.common.path_prefix).join("chunks")
    }

    /// Gossip settings from Loki's `memberlist` block (`node_name`, `bind_addr`, `bind_port`,
    /// `advertise_addr`, `join_members`, `cluster_label`, `gossip_interval`; other keys are
    /// ignored). `None` when the block is absent or names no members and no port.
    pub fn memberlist(
        &self,
    ) -> Result<Option<skald_ring::membership::MembershipConfig>, ConfigError> {
        use serde_yaml::Value;
        let Some(Value::Mapping(m)) = &self.memberlist else { return Ok(None) };
        let get = |k: &str| m.get(Value::String(k.to_string()));
        let strings = |k: &str| -> Vec<String> {
            match get(k) {
                Some(Value::Sequence(v)) => {
                    v.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()
                }
                Some(Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            }
        };
        let join_members = strings("join_members");
        let port = match get("bind_port") {
            Some(v) => {
                Some(v.as_u64().and_then(|p| u16::try_from(p).ok()).ok_or(ConfigError::BindPort)?)
            }
            None => None,
        };
        if join_members.is_empty() && port.is_none() {
            return Ok(None);
        }
        let bind_ip = strings("bind_addr").into_iter().next().unwrap_or_else(|| "0.0.0.0".into());
        let advertise =
            get("advertise_addr").and_then(Value::as_str).map(str::to_string).unwrap_or_else(
                || if bind_ip == "0.0.0.0" { "127.0.0.1".into() } else { bind_ip.clone() },
            );
        let port = port.unwrap_or(7946);
        let bind: std::net::SocketAddr =
            format!("{bind_ip}:{port}").parse().map_err(ConfigError::BindAddr)?;
        let advertise: std::net::SocketAddr =
            format!("{advertise}:{port}").parse().map_err(ConfigError::AdvertiseAddr)?;
        let node_name = get("node_name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .filter(|s| !s.is_empty())
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("skald-{port}"));
        let gossip_interval = match get("gossip_interval").and_then(Value::as_str) {
            Some(s) => {
                skald_common::units::parse_duration(s).map_err(ConfigError::GossipInterval)?
            }
            None => std::time::Duration::from_millis(200),
        };
        Ok(Some(skald_ring::membership::MembershipConfig {
            node_name,
            bind,
            advertise,
            join_members,
            cluster_label: get("cluster_label").and_then(Value::as_str).unwrap_or("").to_string(),
            gossip_interval,
            dead_after: (gossip_interval * 10).max(std::time::Duration::from_secs(2)),
        }))
    }

    /// The ingester's WAL directory: `ingester.wal.dir`, or `<common.path_prefix>/wal`.
    pub fn wal_dir(&self) -> PathBuf {
        if self.ingester.wal.dir.is_empty() {
            PathBuf::from(&self.common.path_prefix).join("wal")
        } else {
            PathBuf::from(&self.ingester.wal.dir)
        }
    }

    /// Checks every block before start.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.ingester.validate().map_err(ConfigError::Ingester)?;
        self.limits_config.validate().map_err(ConfigError::Limits)?;
        self.distributor.validate().map_err(ConfigError::Distributor)?;
        self.pattern_ingester.validate().map_err(ConfigError::PatternIngester)?;
        self.frontend.validate().map_err(ConfigError::Frontend)?;
        self.frontend_worker.validate().map_err(ConfigError::Frontend)?;
        if self.server.http_listen_port == 0 && self.server.http_listen_address.is_empty() {
            return Err(ConfigError::NoHttpListenAddress);
        }
        let mut last_from = i64::MIN;
        for (i, p) in self.schema_config.configs.iter().enumerate() {
            match p.store.as_str() {
                "tsdb" | "boltdb-shipper" | "skald" | "" => {}
                "aws" | "aws-dynamo" => {
                    let url = self
                        .storage_config
                        .aws
                        .as_ref()
                        .and_then(|a| a.dynamodb.as_ref())
                        .map(|d| d.dynamodb_url.expose())
                        .unwrap_or("");
                    if url.is_empty() {
                        return Err(ConfigError::NoDynamoUrl { index: i, store: p.store.clone() });
                    }
                    let period = crate::storage::index_period(p)
                        .map_err(|e| ConfigError::Period(e.to_string()))?;
                    if period.is_zero() || period.as_secs() % 86_400 != 0 {
                        return Err(ConfigError::DynamoPeriod(i));
                    }
                }
                other => {
                    return Err(ConfigError::UnsupportedStore {
                        index: i,
                        store: other.to_string(),
                    })
                }
            }
            match p.object_store.as_str() {
                "filesystem" | "" => {}
                "s3" | "aws" => {
                    if self.storage_config.aws.is_none() {
                        return Err(ConfigError::NoAwsStorage {
                            index: i,
                            store: p.object_store.clone(),
                        });
                    }
                }
                other => {
                    return Err(ConfigError::UnsupportedObjectStore {
                        index: i,
                        store: other.to_string(),
                    })
                }
            }
            let from = crate::storage::period_from_secs(p)
                .map_err(|e| ConfigError::Period(e.to_string()))?;
            if from <= last_from {
                return Err(ConfigError::PeriodOrder(i));
            }
            last_from = from;
        }
        Ok(())
    }
}

/// The `server` block.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// HTTP listen address.
    pub http_listen_address: String,
    /// HTTP listen port (0 = pick a free one and log it).
    pub http_listen_port: u16,
    /// gRPC listen address.
    pub grpc_listen_address: String,
    /// gRPC listen port.
    pub grpc_listen_port: u16,
    /// Log level: debug, info, warn, error.
    pub log_level: String,
    /// Log line format: `logfmt` (Loki's default) or `json` (`crate::logging`).
    pub log_format: String,
    /// Log every request at info level, not only the failed ones (Loki's key).
    pub log_request_at_info_level_enabled: bool,
    /// Largest gRPC message received. Accepted; Skald's ingester API always allows
    /// 256 MiB, since a query's answer travels in one message where Loki streams batches.
    pub grpc_server_max_recv_msg_size: usize,
    /// Largest gRPC message sent (accepted; see `grpc_server_max_recv_msg_size`).
    pub grpc_server_max_send_msg_size: usize,
    /// Longest time to read a whole request, headers and body (Loki's default 30s); a
    /// client that sends slower is disconnected. 0 disables it.
    #[serde(with = "skald_common::units::duration")]
    pub http_server_read_timeout: std::time::Duration,
    /// Longest time to read a request's headers; 0 (Loki's default) means
    /// `http_server_read_timeout`.
    #[serde(with = "skald_common::units::duration")]
    pub http_server_read_header_timeout: std::time::Duration,
    /// Longest time a response write may stay blocked on a client that does not read
    /// (Loki's default 30s); 0 disables it. Unlike Go's, it does not bound the time a
    /// handler computes: only a stalled write.
    #[serde(with = "skald_common::units::duration")]
    pub http_server_write_timeout: std::time::Duration,
    /// Longest time a keep-alive connection may wait for its next request (Loki's default
    /// 2m); 0 means `http_server_read_timeout`.
    #[serde(with = "skald_common::units::duration")]
    pub http_server_idle_timeout: std::time::Duration,
    /// gRPC: close a connection idle this long (0, Loki's default: never). Accepted, not
    /// enforced (tonic has no such setting).
    #[serde(with = "skald_common::units::duration")]
    pub grpc_server_max_connection_idle: std::time::Duration,
    /// gRPC: close a connection after this long (0, Loki's default: never), with a GOAWAY.
    #[serde(with = "skald_common::units::duration")]
    pub grpc_server_max_connection_age: std::time::Duration,
    /// gRPC: time given to in-flight calls after `grpc_server_max_connection_age`.
    #[serde(with = "skald_common::units::duration")]
    pub grpc_server_max_connection_age_grace: std::time::Duration,
    /// gRPC: HTTP/2 ping interval on idle connections (Loki's default 2h).
    #[serde(with = "skald_common::units::duration")]
    pub grpc_server_keepalive_time: std::time::Duration,
    /// gRPC: how long to wait for a ping's answer before closing (Loki's default 20s).
    #[serde(with = "skald_common::units::duration")]
    pub grpc_server_keepalive_timeout: std::time::Duration,
    /// gRPC: shortest interval between client pings (Loki's default 10s). Accepted, not
    /// enforced (hyper's HTTP/2 server has no ping policy).
    #[serde(with = "skald_common::units::duration")]
    pub grpc_server_min_time_between_pings: std::time::Duration,
    /// gRPC: whether clients may ping without active streams (Loki's default true).
    /// Accepted, not enforced (see `grpc_server_min_time_between_pings`).
    pub grpc_server_ping_without_stream_allowed: bool,
    /// gRPC: most concurrent streams per connection (Loki's default 100); 0: no limit.
    pub grpc_server_max_concurrent_streams: u32,
    /// Seconds to wait for in-flight requests at shutdown.
    #[serde(with = "skald_common::units::duration")]
    pub graceful_shutdown_timeout: std::time::Duration,
    /// Prefix for every HTTP route (Loki's `http_path_prefix`).
    pub http_path_prefix: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_listen_address: "127.0.0.1".to_string(),
            http_listen_port: 3100,
            grpc_listen_address: "127.0.0.1".to_string(),
            grpc_listen_port: 9095,
            log_level: "info".to_string(),
            log_format: "logfmt".to_string(),
            log_request_at_info_level_enabled: false,
            grpc_server_max_recv_msg_size: 4 * 1024 * 1024,
            grpc_server_max_send_msg_size: 4 * 1024 * 1024,
            http_server_read_timeout: std::time::Duration::from_secs(30),
            http_server_read_header_timeout: std::time::Duration::ZERO,
            http_server_write_timeout: std::time::Duration::from_secs(30),
            http_server_idle_timeout: std::time::Duration::from_secs(120),
            grpc_server_max_connection_idle: std::time::Duration::ZERO,
            grpc_server_max_connection_age: std::time::Duration::ZERO,
            grpc_server_max_connection_age_grace: std::time::Duration::ZERO,
            grpc_server_keepalive_time: std::time::Duration::from_secs(2 * 3600),
            grpc_server_keepalive_timeout: std::time::Duration::from_secs(20),
            grpc_server_min_time_between_pings: std::time::Duration::from_secs(10),
            grpc_server_ping_without_stream_allowed: true,
            grpc_server_max_concurrent_streams: 100,
            graceful_shutdown_timeout: std::time::Duration::from_secs(30),
            http_path_prefix: String::new(),
        }
    }
}

/// The `common` block.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommonConfig {
    /// Everything on local disk lives under this directory.
    pub path_prefix: String,
    /// Address other services reach this instance at.
    pub instance_addr: Option<String>,
    /// Copies of each stream (1 in the single binary).
    pub replication_factor: usize,
    /// Ring settings (the single binary ignores them).
    pub ring: Option<serde_yaml::Value>,
    /// Shared storage settings.
    pub storage: Option<CommonStorage>,
    /// Compactor address (ignored).
    pub compactor_address: Option<String>,
}

impl Default for CommonConfig {
    fn default() -> Self {
        CommonConfig {
            path_prefix: "./skald-data".to_string(),
            instance_addr: None,
            replication_factor: 1,
            ring: None,
            storage: None,
            compactor_address: None,
        }
    }
}

/// `common.storage`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommonStorage {
    /// Local filesystem storage.
    pub filesystem: Option<CommonFilesystem>,
}

/// `common.storage.filesystem`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommonFilesystem {
    /// Chunk directory.
    pub chunks_directory: Option<String>,
    /// Rules directory (ignored until the ruler exists).
    pub rules_directory: Option<String>,
}

/// The `storage_config` block.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `storage_config.filesystem`.
    pub filesystem: FilesystemConfig,
    /// `storage_config.object_store` (Loki's Thanos-based client block).
    pub object_store: Option<ObjectStoreConfig>,
    /// TSDB shipper settings: accepted; Skald's object-store index needs none of them.
    pub tsdb_shipper: Option<serde_yaml::Value>,
    /// BoltDB shipper settings: accepted and ignored likewise.
    pub boltdb_shipper: Option<serde_yaml::Value>,
    /// S3 chunks and the DynamoDB index.
    pub aws: Option<crate::storage::AwsStorageConfig>,
}

/// `storage_config.filesystem`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesystemConfig {
    /// Directory for chunks and index segments.
    pub directory: Option<String>,
}

/// `storage_config.object_store`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectStoreConfig {
    /// `filesystem: {dir}`.
    pub filesystem: Option<ObjectStoreFilesystem>,
}

/// `storage_config.object_store.filesystem`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectStoreFilesystem {
    /// Directory.
    pub dir: Option<String>,
}

/// The `schema_config` block.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchemaConfig {
    /// Periods, oldest first.
    pub configs: Vec<PeriodConfig>,
}

/// One schema period.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeriodConfig {
    /// First day (YYYY-MM-DD).
    pub from: String,
    /// Index store kind.
    pub store: String,
    /// Object store kind.
    pub object_store: String,
    /// Schema version (v11, v12, v13).
    pub schema: String,
    /// Index table settings.
    pub index: Option<PeriodIndex>,
    /// Chunk table settings (v11 and older).
    pub chunks: Option<PeriodIndex>,
    /// Row shards (v10+).
    pub row_shards: Option<u32>,
}

/// `index:` / `chunks:` of a period.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeriodIndex {
    /// Table prefix.
    pub prefix: String,
    /// Table period.
    pub period: Option<String>,
    /// Extra tags (ignored).
    pub tags: Option<serde_yaml::Value>,
}

/// `ingester_client`: static addresses of ingesters for split deployments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngesterClientConfig {
    /// gRPC addresses (`host:port`) of ingesters; used by `-target=distributor` and
    /// `-target=querier`.
    pub addresses: Vec<String>,
}

/// Replaces `${VAR}` and `${VAR:-default}` with environment values (Loki's
/// `-config.expand-env`).
pub fn expand_env(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                let inner = &after[..j];
                let (name, default) = match inner.find(":-") {
                    Some(k) => (&inner[..k], Some(&inner[k + 2..])),
                    None => (inner, None),
                };
                let val = std::env::var(name).ok().filter(|v| !v.is_empty());
                out.push_str(&val.unwrap_or_else(|| default.unwrap_or("").to_string()));
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses YAML text into a config.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Config::default());
    }
    let mut value: serde_yaml::Value = serde_yaml::from_str(text).map_err(ConfigError::Yaml)?;
    apply_common_ring(&mut value)?;
    serde_yaml::from_value::<Config>(value).map_err(ConfigError::Yaml)
}

/// Loki's `common.ring` is the default of every ring: its keys fill the ingester's
/// `lifecycler` where that does not set them itself, and `lifecycler.ring.replication_factor`
/// (Loki's own place for it) wins over `common.replication_factor`. The key-value store must be
/// `memberlist` (gossip) or `inmemory` (one process); Consul and etcd are refused by name.
fn apply_common_ring(root: &mut serde_yaml::Value) -> Result<(), ConfigError> {
    use serde_yaml::{Mapping, Value};
    fn key(k: &str) -> Value {
        Value::String(k.to_string())
    }
    fn child<'a>(m: &'a mut Mapping, k: &str) -> Result<&'a mut Mapping, ConfigError> {
        let v = m.entry(key(k)).or_insert_with(|| Value::Mapping(Mapping::new()));
        if v.is_null() {
            *v = Value::Mapping(Mapping::new());
        }
        v.as_mapping_mut().ok_or_else(|| ConfigError::NotMapping(k.to_string()))
    }
    fn check_store(ring: Option<&Value>, at: &'static str) -> Result<(), ConfigError> {
        let store = ring
            .and_then(|r| r.get("kvstore"))
            .and_then(|k| k.get("store"))
            .and_then(Value::as_str);
        match store {
            None | Some("memberlist") | Some("inmemory") => Ok(()),
            Some(other) => Err(ConfigError::KvStore { at, store: other.to_string() }),
        }
    }
    let Some(root) = root.as_mapping_mut() else { return Ok(()) };
    let common_ring = root.get(key("common")).and_then(|c| c.get("ring")).cloned();
    check_store(common_ring.as_ref(), "common.ring")?;
    let has_ingester = root.contains_key(key("ingester"));
    if common_ring.is_none() && !has_ingester {
        return Ok(());
    }
    let ingester = child(root, "ingester")?;
    let lifecycler = child(ingester, "lifecycler")?;
    check_store(lifecycler.get(key("ring")), "ingester.lifecycler.ring")?;
    let ring_rf = lifecycler.get(key("ring")).and_then(|r| r.get("replication_factor")).cloned();
    if let Some(Value::Mapping(common)) = &common_ring {
        for name in ["heartbeat_period", "tokens_file_path"] {
            if let Some(v) = common.get(key(name)) {
                lifecycler.entry(key(name)).or_insert_with(|| v.clone());
            }
        }
        if let Some(v) = common.get(key("heartbeat_timeout")) {
            child(lifecycler, "ring")?.entry(key("heartbeat_timeout")).or_insert_with(|| v.clone());
        }
    }
    if let Some(rf) = ring_rf {
        child(root, "common")?.insert(key("replication_factor"), rf);
    }
    Ok(())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod yaml_corners;
