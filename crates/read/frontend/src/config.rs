//! The `frontend` and `frontend_worker` blocks, with Loki's key names and defaults (as
//! `loki -print-config-stderr` prints them, Loki main-65e30f8, plus the keys older Loki
//! releases documented). Every key is accepted; the ones Skald acts on say so.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use skald_common::units::duration as go_duration;

use crate::queue::{RequestQueue, DEFAULT_MAX_OUTSTANDING_PER_TENANT};

/// Why a `frontend` or `frontend_worker` block cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key names a feature Skald does not have.
    #[error("`{key}` is not supported by Skald: {why}")]
    Unsupported {
        /// The key, with its block.
        key: &'static str,
        /// What to do instead.
        why: &'static str,
    },
}

/// The `frontend` block (Loki's `frontend`). Skald acts on `max_outstanding_per_tenant`
/// and refuses `scheduler_address`; the other keys are accepted for Loki configs and have no
/// effect (queriers find the frontend through their own `frontend_worker.frontend_address`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrontendConfig {
    /// Log queries slower than this (0 = off). Accepted, no effect yet.
    #[serde(with = "go_duration")]
    pub log_queries_longer_than: Duration,
    /// Request headers to log with slow queries. Accepted, no effect.
    pub log_query_request_headers: String,
    /// Max body size for the downstream Prometheus. Accepted, no effect.
    pub max_body_size: u64,
    /// Log per-query statistics. Accepted, no effect.
    pub query_stats_enabled: bool,
    /// Queued requests per tenant (waiting for a querier); past it a request fails at once
    /// with 429 `too many outstanding requests`.
    pub max_outstanding_per_tenant: usize,
    /// Shuffle-sharding grace for crashed queriers. Accepted, no effect (no shuffle sharding).
    #[serde(with = "go_duration")]
    pub querier_forget_delay: Duration,
    /// The query-scheduler to enqueue into. Skald has no query-scheduler: must stay empty.
    pub scheduler_address: String,
    /// How often the scheduler's DNS name is resolved. Accepted, no effect.
    #[serde(with = "go_duration")]
    pub scheduler_dns_lookup_period: Duration,
    /// Workers per scheduler connection. Accepted, no effect.
    pub scheduler_worker_concurrency: usize,
    /// The gRPC client to the query-scheduler. Accepted, no effect.
    pub grpc_client_config: GrpcClientConfig,
    /// How long the frontend waits for in-flight requests on shutdown. Accepted, no effect
    /// (`server.graceful_shutdown_timeout` applies).
    #[serde(with = "go_duration")]
    pub graceful_shutdown_timeout: Duration,
    /// Network interfaces the frontend's address is read from. Accepted, no effect.
    pub instance_interface_names: Vec<String>,
    /// Use IPv6 addresses of those interfaces. Accepted, no effect.
    pub instance_enable_ipv6: bool,
    /// The address the frontend advertises to queriers (Loki's `-frontend.instance-addr`;
    /// `instance_addr` is accepted too).
    #[serde(alias = "instance_addr")]
    pub address: String,
    /// The port the frontend advertises (Loki's `-frontend.instance-port`; `instance_port`
    /// is accepted too; 0 = the gRPC listen port).
    #[serde(alias = "instance_port")]
    pub port: u16,
    /// Encoding between the frontend and queriers (`protobuf` or `json`). Accepted, no
    /// effect.
    pub encoding: String,
    /// Compress HTTP responses. Accepted, no effect.
    pub compress_responses: bool,
    /// Send every request to this URL instead of queueing (Loki's downstream mode).
    /// Accepted, no effect.
    pub downstream_url: String,
    /// Where a query-frontend that runs apart passes live tails (`/loki/api/v1/tail`): a
    /// querier's HTTP address (`http://host:port`). Empty: the frontend has no tail (in
    /// `all`, the process's own querier serves it).
    pub tail_proxy_url: String,
    /// TLS for the tail proxy. Accepted, no effect.
    pub tail_tls_config: TlsConfig,
    /// Parquet answers. Accepted, no effect.
    pub support_parquet_encoding: bool,
}

impl Default for FrontendConfig {
    fn default() -> Self {
        FrontendConfig {
            log_queries_longer_than: Duration::ZERO,
            log_query_request_headers: String::new(),
            max_body_size: 10 << 20,
            query_stats_enabled: false,
            max_outstanding_per_tenant: DEFAULT_MAX_OUTSTANDING_PER_TENANT,
            querier_forget_delay: Duration::ZERO,
            scheduler_address: String::new(),
            scheduler_dns_lookup_period: Duration::from_secs(10),
            scheduler_worker_concurrency: 5,
            grpc_client_config: GrpcClientConfig::default(),
            graceful_shutdown_timeout: Duration::from_secs(300),
            instance_interface_names: Vec::new(),
            instance_enable_ipv6: false,
            address: String::new(),
            port: 0,
            encoding: "protobuf".into(),
            compress_responses: true,
            downstream_url: String::new(),
            tail_proxy_url: String::new(),
            tail_tls_config: TlsConfig::default(),
            support_parquet_encoding: false,
        }
    }
}

impl FrontendConfig {
    /// The frontend's request queue, bounded by `max_outstanding_per_tenant`.
    pub fn queue(&self) -> RequestQueue {
        RequestQueue::new(self.max_outstanding_per_tenant)
    }

    /// Refuses a query-scheduler.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.scheduler_address.is_empty() {
            return Err(ConfigError::Unsupported {
                key: "frontend.scheduler_address",
                why: "there is no query-scheduler; queriers connect to the frontend \
                      (frontend_worker.frontend_address)",
            });
        }
        Ok(())
    }
}

/// The `frontend_worker` block (Loki's): how a querier that runs apart pulls work from the
/// frontend. Skald acts on `frontend_address`, `parallelism`, `match_max_concurrent`, `id`
/// and the message sizes, connect timeout, keepalive and backoff of the gRPC client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// The frontend's gRPC address (`host:port`). Empty: no gRPC workers (the single binary
    /// runs in-process ones).
    pub frontend_address: String,
    /// The query-scheduler's address. Skald has no query-scheduler: must stay empty.
    pub scheduler_address: String,
    /// How often the frontend's DNS name is looked up again. Accepted; the gRPC channel
    /// resolves the name when it (re)connects.
    #[serde(with = "go_duration")]
    pub dns_lookup_duration: Duration,
    /// Streams to the frontend when `match_max_concurrent` is false.
    pub parallelism: usize,
    /// Open `querier.max_concurrent` streams (one request each at a time) instead of
    /// `parallelism`.
    pub match_max_concurrent: bool,
    /// The worker's name in the frontend's logs (default: the host name).
    pub id: String,
    /// The gRPC client to the frontend.
    pub query_frontend_grpc_client: Option<GrpcClientConfig>,
    /// The older name of `query_frontend_grpc_client`, used when that one is absent.
    pub grpc_client_config: Option<GrpcClientConfig>,
    /// The gRPC client to the query-scheduler. Accepted, no effect.
    pub query_scheduler_grpc_client: GrpcClientConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            frontend_address: String::new(),
            scheduler_address: String::new(),
            dns_lookup_duration: Duration::from_secs(3),
            parallelism: 10,
            match_max_concurrent: true,
            id: String::new(),
            query_frontend_grpc_client: None,
            grpc_client_config: None,
            query_scheduler_grpc_client: GrpcClientConfig::default(),
        }
    }
}

impl WorkerConfig {
    /// Refuses a query-scheduler and TLS.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.scheduler_address.is_empty() {
            return Err(ConfigError::Unsupported {
                key: "frontend_worker.scheduler_address",
                why: "there is no query-scheduler; set frontend_worker.frontend_address",
            });
        }
        if self.frontend_client().tls_enabled {
            return Err(ConfigError::Unsupported {
                key: "frontend_worker.query_frontend_grpc_client.tls_enabled",
                why: "the connection to the frontend is plain gRPC",
            });
        }
        Ok(())
    }

    /// The gRPC client settings in effect: `query_frontend_grpc_client`, else the older
    /// `grpc_client_config`, else Loki's defaults.
    pub fn frontend_client(&self) -> GrpcClientConfig {
        self.query_frontend_grpc_client
            .clone()
            .or_else(|| self.grpc_client_config.clone())
            .unwrap_or_default()
    }

    /// How many streams a querier with `querier_max_concurrent` opens to the frontend.
    pub fn streams(&self, querier_max_concurrent: usize) -> usize {
        let n = if self.match_max_concurrent { querier_max_concurrent } else { self.parallelism };
        n.max(1)
    }
}

/// Loki's `grpc_client` block (dskit's `grpcclient.Config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcClientConfig {
    /// Largest message received (the frontend's requests).
    pub max_recv_msg_size: u64,
    /// Largest message sent (a querier's answer; a larger answer becomes a 413).
    pub max_send_msg_size: u64,
    /// `gzip`, `snappy`, ... Accepted, no effect.
    pub grpc_compression: String,
    /// Accepted, no effect.
    pub rate_limit: f64,
    /// Accepted, no effect.
    pub rate_limit_burst: u64,
    /// Accepted, no effect.
    pub backoff_on_ratelimits: bool,
    /// The delays between attempts to reach the frontend.
    pub backoff_config: BackoffConfig,
    /// HTTP/2 stream window.
    pub initial_stream_window_size: Base2Bytes,
    /// HTTP/2 connection window.
    pub initial_connection_window_size: Base2Bytes,
    /// TLS. Not supported (validation refuses it where it matters).
    pub tls_enabled: bool,
    /// Accepted, no effect.
    pub tls_cert_path: String,
    /// Accepted, no effect.
    pub tls_key_path: String,
    /// Accepted, no effect.
    pub tls_ca_path: String,
    /// Accepted, no effect.
    pub tls_server_name: String,
    /// Accepted, no effect.
    pub tls_insecure_skip_verify: bool,
    /// Accepted, no effect.
    pub tls_cipher_suites: String,
    /// Accepted, no effect.
    pub tls_min_version: String,
    /// How long one connection attempt may take.
    #[serde(with = "go_duration")]
    pub connect_timeout: Duration,
    /// Accepted; `backoff_config` paces the attempts.
    #[serde(with = "go_duration")]
    pub connect_backoff_base_delay: Duration,
    /// Accepted; `backoff_config` paces the attempts.
    #[serde(with = "go_duration")]
    pub connect_backoff_max_delay: Duration,
    /// HTTP/2 ping interval on the connection.
    #[serde(with = "go_duration")]
    pub keepalive_time: Duration,
    /// How long a ping may stay unanswered before the connection is dropped.
    #[serde(with = "go_duration")]
    pub keepalive_timeout: Duration,
    /// Accepted, no effect.
    pub cluster_validation: ClusterValidation,
}

impl Default for GrpcClientConfig {
    fn default() -> Self {
        GrpcClientConfig {
            max_recv_msg_size: 100 << 20,
            max_send_msg_size: 100 << 20,
            grpc_compression: String::new(),
            rate_limit: 0.0,
            rate_limit_burst: 0,
            backoff_on_ratelimits: false,
            backoff_config: BackoffConfig::default(),
            initial_stream_window_size: Base2Bytes(65535),
            initial_connection_window_size: Base2Bytes(65535),
            tls_enabled: false,
            tls_cert_path: String::new(),
            tls_key_path: String::new(),
            tls_ca_path: String::new(),
            tls_server_name: String::new(),
            tls_insecure_skip_verify: false,
            tls_cipher_suites: String::new(),
            tls_min_version: String::new(),
            connect_timeout: Duration::from_secs(5),
            connect_backoff_base_delay: Duration::from_secs(1),
            connect_backoff_max_delay: Duration::from_secs(5),
            keepalive_time: Duration::from_secs(20),
            keepalive_timeout: Duration::from_secs(10),
            cluster_validation: ClusterValidation::default(),
        }
    }
}

/// dskit's `backoff.Config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackoffConfig {
    /// The first delay.
    #[serde(with = "go_duration")]
    pub min_period: Duration,
    /// The longest delay (each failure doubles the delay up to it).
    #[serde(with = "go_duration")]
    pub max_period: Duration,
    /// Accepted; a worker retries for as long as it runs.
    pub max_retries: u32,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            min_period: Duration::from_millis(100),
            max_period: Duration::from_secs(10),
            max_retries: 10,
        }
    }
}

/// dskit's client TLS keys. Accepted, no effect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Accepted, no effect.
    pub tls_cert_path: String,
    /// Accepted, no effect.
    pub tls_key_path: String,
    /// Accepted, no effect.
    pub tls_ca_path: String,
    /// Accepted, no effect.
    pub tls_server_name: String,
    /// Accepted, no effect.
    pub tls_insecure_skip_verify: bool,
    /// Accepted, no effect.
    pub tls_cipher_suites: String,
    /// Accepted, no effect.
    pub tls_min_version: String,
}

/// dskit's `cluster_validation` block. Accepted, no effect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterValidation {
    /// Accepted, no effect.
    pub label: String,
}

/// A byte count written as an integer or as Go's `units.Base2Bytes` (`64KiB`, `1MB` = 1 MiB,
/// `63KiB1023B`), as Loki's gRPC window sizes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Base2Bytes(pub u64);

impl Base2Bytes {
    /// Parses `units.Base2Bytes` text: one or more `<integer><unit>` terms, units `B`, `KiB`
    /// / `KB` / `K`, `MiB`, `GiB`, `TiB`, `PiB`, `EiB` (all binary), or a bare integer.
    pub fn parse(s: &str) -> Option<Base2Bytes> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u64>() {
            return Some(Base2Bytes(n));
        }
        let mut rest = s;
        let mut total: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            if digits == 0 {
                return None;
            }
            let n: u64 = rest[..digits].parse().ok()?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let shift = match &rest[..unit_len] {
                "B" => 0,
                "K" | "KB" | "KiB" => 10,
                "M" | "MB" | "MiB" => 20,
                "G" | "GB" | "GiB" => 30,
                "T" | "TB" | "TiB" => 40,
                "P" | "PB" | "PiB" => 50,
                "E" | "EB" | "EiB" => 60,
                _ => return None,
            };
            rest = &rest[unit_len..];
            total = total.checked_add(n.checked_mul(1u64.checked_shl(shift)?)?)?;
        }
        Some(Base2Bytes(total))
    }
}

impl Serialize for Base2Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Base2Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Base2Bytes(n)),
            Raw::Text(s) => Base2Bytes::parse(&s)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid byte size {s:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_lokis() {
        let f: FrontendConfig = serde_yaml::from_str("{}").expect("parses");
        assert_eq!(f.max_outstanding_per_tenant, 2048);
        assert!(f.compress_responses);
        assert_eq!(f.validate(), Ok(()));
        let w: WorkerConfig = serde_yaml::from_str("{}").expect("parses");
        assert_eq!((w.parallelism, w.match_max_concurrent), (10, true));
        assert_eq!(w.dns_lookup_duration, Duration::from_secs(3));
        assert_eq!(w.frontend_client(), GrpcClientConfig::default());
        assert_eq!(w.streams(4), 4);
        assert_eq!(WorkerConfig { match_max_concurrent: false, ..w }.streams(4), 10);
    }

    #[test]
    fn lokis_printed_config_parses() {
        // the blocks as `loki -print-config-stderr` prints them (Loki main-65e30f8), trimmed
        let yaml = r#"
frontend:
    log_queries_longer_than: 0s
    log_query_request_headers: ""
    max_body_size: 10485760
    query_stats_enabled: false
    max_outstanding_per_tenant: 1
    querier_forget_delay: 0s
    scheduler_address: ""
    scheduler_dns_lookup_period: 10s
    scheduler_worker_concurrency: 5
    grpc_client_config:
        max_recv_msg_size: 104857600
        max_send_msg_size: 104857600
        grpc_compression: ""
        rate_limit: 0
        rate_limit_burst: 0
        backoff_on_ratelimits: false
        backoff_config:
            min_period: 100ms
            max_period: 10s
            max_retries: 10
        initial_stream_window_size: 63KiB1023B
        initial_connection_window_size: 63KiB1023B
        tls_enabled: false
        connect_timeout: 5s
        connect_backoff_base_delay: 1s
        connect_backoff_max_delay: 5s
        keepalive_time: 20s
        keepalive_timeout: 10s
        cluster_validation:
            label: ""
    graceful_shutdown_timeout: 5m0s
    instance_interface_names:
        - eth0
        - lo
    instance_enable_ipv6: false
    address: 127.0.0.1
    port: 0
    encoding: protobuf
    compress_responses: true
    downstream_url: ""
    tail_proxy_url: ""
    tail_tls_config:
        tls_cert_path: ""
        tls_insecure_skip_verify: false
    support_parquet_encoding: false
frontend_worker:
    frontend_address: "query-frontend:9095"
    scheduler_address: ""
    dns_lookup_duration: 3s
    id: ""
    parallelism: 6
    match_max_concurrent: false
    query_frontend_grpc_client:
        max_send_msg_size: 33554432
        initial_stream_window_size: 64KiB
    grpc_client_config:
        max_send_msg_size: 1
    query_scheduler_grpc_client:
        max_recv_msg_size: 104857600
"#;
        #[derive(Deserialize)]
        struct Root {
            frontend: FrontendConfig,
            frontend_worker: WorkerConfig,
        }
        let root: Root = serde_yaml::from_str(yaml).expect("parses");
        assert_eq!(root.frontend.max_outstanding_per_tenant, 1);
        assert_eq!(root.frontend.address, "127.0.0.1");
        assert_eq!(root.frontend.grpc_client_config.initial_stream_window_size, Base2Bytes(65535));
        let w = root.frontend_worker;
        assert_eq!(w.frontend_address, "query-frontend:9095");
        assert_eq!(w.streams(4), 6);
        let client = w.frontend_client();
        assert_eq!(client.max_send_msg_size, 32 << 20);
        assert_eq!(client.initial_stream_window_size, Base2Bytes(65536));
        assert_eq!(w.validate(), Ok(()));
    }

    #[test]
    fn older_key_names_and_unsupported_features() {
        let f: FrontendConfig =
            serde_yaml::from_str("instance_addr: 10.0.0.1\ninstance_port: 9095\n").expect("parses");
        assert_eq!((f.address.as_str(), f.port), ("10.0.0.1", 9095));
        let w: WorkerConfig =
            serde_yaml::from_str("grpc_client_config: {max_send_msg_size: 7}").expect("parses");
        assert_eq!(w.frontend_client().max_send_msg_size, 7);
        let w: WorkerConfig = serde_yaml::from_str("scheduler_address: s:9095").expect("parses");
        assert!(w.validate().is_err());
        let f: FrontendConfig = serde_yaml::from_str("scheduler_address: s:9095").expect("parses");
        assert!(f.validate().is_err());
        assert!(serde_yaml::from_str::<WorkerConfig>("paralelism: 3").is_err());
    }

    #[test]
    fn base2_bytes() {
        assert_eq!(Base2Bytes::parse("63KiB1023B"), Some(Base2Bytes(65535)));
        assert_eq!(Base2Bytes::parse("1MB"), Some(Base2Bytes(1 << 20)));
        assert_eq!(Base2Bytes::parse("4194304"), Some(Base2Bytes(4 << 20)));
        assert_eq!(Base2Bytes::parse("1.5MiB"), None);
        assert_eq!(Base2Bytes::parse("KiB"), None);
    }
}
