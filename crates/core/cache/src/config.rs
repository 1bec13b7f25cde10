//! Loki's `cache_config` block, with Loki's key names and defaults. Every key Loki documents
//! is accepted; the ones Skald acts on are said so on each field.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use skald_common::units;

/// Loki's `cache_config`: where one kind of cached data lives (the results cache's
/// `query_range.results_cache.cache`, ...). With neither `embedded_cache.enabled` nor a
/// memcached address nothing is cached (see [`CacheConfig::is_configured`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// The default validity of entries; used as memcached's expiration when
    /// `memcached.expiration` is 0 (as Loki does). Default 1h.
    #[serde(with = "units::duration")]
    pub default_validity: Duration,
    /// Loki's asynchronous write-back; accepted, no effect (Skald stores in the background
    /// of the request that fetched, without a separate queue).
    pub background: BackgroundConfig,
    /// memcached's per-request settings.
    pub memcached: MemcachedConfig,
    /// Where memcached is and how to talk to it.
    pub memcached_client: MemcachedClientConfig,
    /// Loki's Redis backend; accepted, not supported (a configured endpoint is logged as
    /// ignored by [`crate::build`]).
    pub redis: RedisConfig,
    /// The in-process cache.
    pub embedded_cache: EmbeddedCacheConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            default_validity: Duration::from_secs(3600),
            background: BackgroundConfig::default(),
            memcached: MemcachedConfig::default(),
            memcached_client: MemcachedClientConfig::default(),
            redis: RedisConfig::default(),
            embedded_cache: EmbeddedCacheConfig::default(),
        }
    }
}

impl CacheConfig {
    /// Whether a backend is set up (Loki's `IsCacheConfigured`): the embedded cache is
    /// enabled, or memcached has an address or a host, or Redis an endpoint.
    pub fn is_configured(&self) -> bool {
        self.embedded_cache.enabled
            || self.memcached_client.is_configured()
            || !self.redis.endpoint.trim().is_empty()
    }
}

/// Loki's `background` block (write-back queue); accepted, no effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackgroundConfig {
    /// Loki's default 1.
    pub writeback_goroutines: usize,
    /// Loki's default 500000.
    pub writeback_buffer: usize,
    /// Loki's default 500MB.
    #[serde(with = "units::bytesize")]
    pub writeback_size_limit: u64,
}

impl Default for BackgroundConfig {
    fn default() -> Self {
        BackgroundConfig {
            writeback_goroutines: 1,
            writeback_buffer: 500_000,
            writeback_size_limit: 500 << 20,
        }
    }
}

/// Loki's `memcached` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemcachedConfig {
    /// How long keys stay in memcached; 0 takes `default_validity`. Default 0s.
    #[serde(with = "units::duration")]
    pub expiration: Duration,
    /// Keys per `get` command. Default 4.
    pub batch_size: usize,
    /// Most `get` commands in flight at once for one fetch. Default 5.
    pub parallelism: usize,
}

impl Default for MemcachedConfig {
    fn default() -> Self {
        MemcachedConfig { expiration: Duration::ZERO, batch_size: 4, parallelism: 5 }
    }
}

/// Loki's `memcached_client` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemcachedClientConfig {
    /// A memcached host name (with `service`, Loki looks up DNS SRV records
    /// `_service._tcp.host`; Skald connects to `host` itself, on port 11211 unless `host`
    /// names one). Used when `addresses` is empty.
    pub host: String,
    /// Loki's SRV service name (default `memcached`); accepted, see `host`.
    pub service: String,
    /// Comma-separated `host:port` list (Loki's DNS service-discovery forms `dns+host:port`
    /// are accepted; `dnssrv+` / `dnssrvnoa+` entries are connected to as plain hosts).
    pub addresses: String,
    /// Longest wait for one memcached operation (connect included); past it the operation
    /// counts as a miss. Default 100ms.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// Idle connections kept per server. Default 16.
    pub max_idle_conns: usize,
    /// Bigger items are not stored; 0 = no limit. Default 0.
    #[serde(with = "units::bytesize")]
    pub max_item_size: u64,
    /// Loki's DNS polling period; accepted, no effect (Skald resolves at each connect).
    #[serde(with = "units::duration")]
    pub update_interval: Duration,
    /// Loki's choice of server selection; accepted: Skald always uses a stable (jump
    /// consistent) hash.
    pub consistent_hash: bool,
    /// Accepted, no effect (Skald's timeout bounds each try instead).
    pub circuit_breaker_consecutive_failures: u32,
    /// Accepted, no effect.
    #[serde(with = "units::duration")]
    pub circuit_breaker_timeout: Duration,
    /// Accepted, no effect.
    #[serde(with = "units::duration")]
    pub circuit_breaker_interval: Duration,
    /// TLS to memcached: not supported; `true` is refused by [`crate::build`].
    pub tls_enabled: bool,
    /// Loki's `tls_config` keys; accepted, not used.
    pub tls_cert_path: String,
    #[allow(missing_docs)]
    pub tls_key_path: String,
    #[allow(missing_docs)]
    pub tls_ca_path: String,
    #[allow(missing_docs)]
    pub tls_server_name: String,
    #[allow(missing_docs)]
    pub tls_insecure_skip_verify: bool,
    #[allow(missing_docs)]
    pub tls_cipher_suites: String,
    #[allow(missing_docs)]
    pub tls_min_version: String,
}

impl Default for MemcachedClientConfig {
    fn default() -> Self {
        MemcachedClientConfig {
            host: String::new(),
            service: "memcached".to_string(),
            addresses: String::new(),
            timeout: Duration::from_millis(100),
            max_idle_conns: 16,
            max_item_size: 0,
            update_interval: Duration::from_secs(60),
            consistent_hash: true,
            circuit_breaker_consecutive_failures: 10,
            circuit_breaker_timeout: Duration::from_secs(10),
            circuit_breaker_interval: Duration::from_secs(10),
            tls_enabled: false,
            tls_cert_path: String::new(),
            tls_key_path: String::new(),
            tls_ca_path: String::new(),
            tls_server_name: String::new(),
            tls_insecure_skip_verify: false,
            tls_cipher_suites: String::new(),
            tls_min_version: String::new(),
        }
    }
}

impl MemcachedClientConfig {
    /// Whether an address or a host is given.
    pub fn is_configured(&self) -> bool {
        !self.addresses.trim().is_empty() || !self.host.trim().is_empty()
    }

    /// The servers to use, as `host:port`, in configuration order: `addresses` when set,
    /// else `host` (port 11211 unless given).
    pub fn servers(&self) -> Vec<String> {
        let list: Vec<String> = self
            .addresses
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| {
                let a = a
                    .strip_prefix("dnssrvnoa+")
                    .or_else(|| a.strip_prefix("dnssrv+"))
                    .or_else(|| a.strip_prefix("dns+"))
                    .unwrap_or(a);
                with_default_port(a)
            })
            .collect();
        if !list.is_empty() {
            return list;
        }
        let host = self.host.trim();
        if host.is_empty() {
            Vec::new()
        } else {
            vec![with_default_port(host)]
        }
    }
}

fn with_default_port(a: &str) -> String {
    // `host:port`, `[v6]:port` keep theirs; a bare host or a bare IPv6 address gets 11211.
    let has_port = match a.rfind(':') {
        Some(i) => a.starts_with('[') && a[..i].ends_with(']') || !a[..i].contains(':'),
        None => false,
    };
    if has_port {
        a.to_string()
    } else if a.contains(':') && !a.starts_with('[') {
        format!("[{a}]:11211")
    } else {
        format!("{a}:11211")
    }
}

/// Loki's `redis` block; accepted so Loki configs load, not supported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Default "".
    pub endpoint: String,
    /// Default "".
    pub master_name: String,
    /// Default 500ms.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// Default 0s.
    #[serde(with = "units::duration")]
    pub expiration: Duration,
    /// Default 0.
    pub db: u32,
    /// Default 0.
    pub pool_size: u32,
    /// Default "".
    pub username: String,
    /// Default "".
    pub password: String,
    /// Default false.
    pub tls_enabled: bool,
    /// Default false.
    pub tls_insecure_skip_verify: bool,
    /// Default 0s.
    #[serde(with = "units::duration")]
    pub idle_timeout: Duration,
    /// Default 0s.
    #[serde(with = "units::duration")]
    pub max_connection_age: Duration,
    /// Default false.
    pub route_randomly: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            endpoint: String::new(),
            master_name: String::new(),
            timeout: Duration::from_millis(500),
            expiration: Duration::ZERO,
            db: 0,
            pool_size: 0,
            username: String::new(),
            password: String::new(),
            tls_enabled: false,
            tls_insecure_skip_verify: false,
            idle_timeout: Duration::ZERO,
            max_connection_age: Duration::ZERO,
            route_randomly: false,
        }
    }
}

/// Loki's `embedded_cache` block: an in-process LRU cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedCacheConfig {
    /// Whether it is used. Default false (the results caches turn it on when nothing else
    /// is configured, as Loki does).
    pub enabled: bool,
    /// Most memory the entries take, in MB (keys and values counted). Default 100.
    pub max_size_mb: u64,
    /// Most entries; 0 = no limit. Default 0.
    pub max_size_items: usize,
    /// How long an entry lives. Default 1h.
    #[serde(with = "units::duration")]
    pub ttl: Duration,
}

impl Default for EmbeddedCacheConfig {
    fn default() -> Self {
        EmbeddedCacheConfig {
            enabled: false,
            max_size_mb: 100,
            max_size_items: 0,
            ttl: Duration::from_secs(3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loki_keys_load_with_loki_defaults() {
        let c: CacheConfig = serde_yaml::from_str(
            "embedded_cache:\n  enabled: true\n  max_size_mb: 10\nmemcached:\n  expiration: 5m\nmemcached_client:\n  addresses: 'dns+a:1, b:2,c'\n  timeout: 1s\n  max_item_size: 5MB\n  tls_enabled: false\n  tls_cert_path: /x\nredis:\n  endpoint: ''\nbackground:\n  writeback_goroutines: 4\n",
        )
        .expect("loads");
        assert!(c.embedded_cache.enabled);
        assert_eq!(c.embedded_cache.max_size_mb, 10);
        assert_eq!(c.embedded_cache.ttl, Duration::from_secs(3600));
        assert_eq!(c.memcached.expiration, Duration::from_secs(300));
        assert_eq!(c.memcached.batch_size, 4);
        assert_eq!(c.memcached_client.servers(), vec!["a:1", "b:2", "c:11211"]);
        assert_eq!(c.memcached_client.timeout, Duration::from_secs(1));
        assert_eq!(c.memcached_client.max_item_size, 5 << 20);
        assert_eq!(c.memcached_client.max_idle_conns, 16);
        assert_eq!(c.default_validity, Duration::from_secs(3600));
        assert!(c.is_configured());
        assert!(!CacheConfig::default().is_configured());
        assert!(serde_yaml::from_str::<CacheConfig>("nope: 1").is_err());
    }

    #[test]
    fn host_is_the_alternative_to_addresses() {
        let c = MemcachedClientConfig { host: "mc.svc".into(), ..Default::default() };
        assert_eq!(c.servers(), vec!["mc.svc:11211"]);
        let c = MemcachedClientConfig { host: "mc:1234".into(), ..Default::default() };
        assert_eq!(c.servers(), vec!["mc:1234"]);
        assert_eq!(with_default_port("::1"), "[::1]:11211");
        assert_eq!(with_default_port("[::1]:5"), "[::1]:5");
    }
}
