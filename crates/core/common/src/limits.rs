//! Per-tenant limits: the `limits_config` section of a Loki config, with Loki's key names and
//! defaults (grafana/loki `pkg/validation/limits.go`).
//!
//! Unknown keys are an error that names the key, like Loki's strict YAML parsing. Only the
//! limits Skald enforces (or reports in `/config`) are modelled (with `otlp_config`); bloom,
//! ruler and policy settings are not.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units;

/// Bytes in one "MB" of `ingestion_rate_mb` (Loki uses 2^20).
pub const BYTES_IN_MB: f64 = 1_048_576.0;

/// Loki's default `max_querier_bytes_read` (150GB).
pub const DEFAULT_MAX_QUERIER_BYTES_READ: u64 = 150 << 30;

/// Skald's default `max_query_memory` (1GB): above what an answer within the other default
/// limits can take (a 100MB response, 500 series of 11,000 points), with room for the
/// intermediate state of heavy legitimate queries (`count_over_time` over ~60 million lines
/// holds one 16-byte point per line); with `querier.max_concurrent` (4) queries at once, 4GB
/// of query memory at most. A fixed amount, not a share of the machine's memory, so that
/// whether a query answers does not depend on the host it runs on.
pub const DEFAULT_MAX_QUERY_MEMORY: u64 = 1 << 30;

/// How the per-tenant ingestion rate is shared between distributors.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum IngestionRateStrategy {
    /// Every distributor enforces the full limit on its own.
    Local,
    /// The limit is divided by the number of healthy distributors (Loki's default).
    #[default]
    Global,
}

/// Why a `limits_config` is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitsError {
    /// A rate or burst is negative or not a number.
    #[error("`{field}` must be a non-negative number, got {value}")]
    NegativeRate {
        /// Key name.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// A `retention_stream` period is under 24h (Loki's text).
    #[error("retention period must be >= 24h was {0}")]
    StreamRetentionTooShort(String),
    /// `otlp_config` has a bad rule.
    #[error(transparent)]
    Otlp(#[from] crate::otlp::OtlpConfigError),
}

/// One `retention_stream` rule of `limits_config`: Loki's keys.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StreamRetention {
    /// How long the matching streams are kept.
    #[serde(with = "units::duration")]
    pub period: Duration,
    /// Among several matching rules, the highest priority wins.
    #[serde(default)]
    pub priority: i64,
    /// A stream selector (`{app="nginx"}`), parsed by whoever applies the rule.
    pub selector: String,
}

/// The shortest retention Loki accepts for a `retention_stream` rule.
pub const MIN_STREAM_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// Per-tenant limits (`limits_config`). `Default` gives Loki's defaults.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    // ---- distributor ----
    /// Whether the ingestion rate is enforced per distributor or shared across them.
    pub ingestion_rate_strategy: IngestionRateStrategy,
    /// Per-tenant ingestion rate in MB/s (line bytes plus structured metadata bytes).
    pub ingestion_rate_mb: f64,
    /// Per-tenant burst in MB; also the largest push a tenant can send at once.
    pub ingestion_burst_size_mb: f64,
    /// Longest accepted label name, in bytes.
    pub max_label_name_length: usize,
    /// Longest accepted label value, in bytes.
    pub max_label_value_length: usize,
    /// Most label names per stream (`service_name` is not counted).
    pub max_label_names_per_series: usize,
    /// Whether entries older than `reject_old_samples_max_age` are rejected.
    pub reject_old_samples: bool,
    /// Oldest accepted entry age when `reject_old_samples` is on.
    #[serde(with = "units::duration")]
    pub reject_old_samples_max_age: Duration,
    /// How far in the future an entry may be.
    #[serde(with = "units::duration")]
    pub creation_grace_period: Duration,
    /// Longest accepted line, in bytes; 0 means no limit.
    #[serde(with = "units::bytesize")]
    pub max_line_size: u64,
    /// Truncate over-long lines instead of rejecting them.
    pub max_line_size_truncate: bool,
    /// Suffix appended to truncated lines.
    pub max_line_size_truncate_identifier: String,
    /// Add 1ns to an entry whose timestamp equals the previous entry's (different line).
    pub increment_duplicate_timestamp: bool,
    /// Labels, in priority order, whose value becomes `service_name` when a stream has none;
    /// `unknown_service` when none is present. An empty list disables the label.
    pub discover_service_name: Vec<String>,
    /// Add a `detected_level` structured-metadata field to every entry.
    pub discover_log_levels: bool,
    /// Label / metadata / JSON / logfmt field names that hold a log level.
    pub log_level_fields: Vec<String>,
    /// How deep to look for level fields in JSON lines (0 or less: unlimited).
    pub log_level_from_json_max_depth: i64,
    /// Whether structured metadata may be pushed.
    pub allow_structured_metadata: bool,
    /// Largest structured metadata per entry (names + values), in bytes; 0 means no limit.
    #[serde(with = "units::bytesize")]
    pub max_structured_metadata_size: u64,
    /// Most structured-metadata pairs per entry; 0 means no limit.
    pub max_structured_metadata_entries_count: usize,

    // ---- ingester ----
    /// Count only streams the ingester owns when applying stream limits.
    pub use_owned_stream_count: bool,
    /// Active streams per tenant per ingester; 0 disables.
    pub max_streams_per_user: usize,
    /// Active streams per tenant across the cluster; 0 disables. Enforced by ingesters.
    pub max_global_streams_per_user: usize,
    /// Byte rate per stream per second.
    #[serde(with = "units::bytesize")]
    pub per_stream_rate_limit: u64,
    /// Burst bytes per stream.
    #[serde(with = "units::bytesize")]
    pub per_stream_rate_limit_burst: u64,
    /// Accepted for compatibility with older Loki configs; writes are always unordered.
    pub unordered_writes: bool,

    // ---- querier / frontend ----
    /// Most chunk refs one query may take from the index (chunks still in ingesters are not
    /// counted); over it the query fails with 400 `the query hit the max number of chunks
    /// limit (limit: N chunks)`. 0 disables it.
    pub max_chunks_per_query: usize,
    /// Most series a metric query may return.
    pub max_query_series: usize,
    /// Skald's own: most memory one query may hold while it is evaluated (buffered entries
    /// and batches, series and their label sets, points, the vectors and matrix being built;
    /// estimated). Past it the query stops at once with 400 `the query needs more than N of
    /// memory (limits_config.max_query_memory); ...`. 0 disables it.
    #[serde(with = "units::bytesize")]
    pub max_query_memory: u64,
    /// How far back queries may look; 0 means no limit. As in Loki, an older start is moved
    /// up to `now - max_query_lookback`, and a range entirely older gives an empty answer.
    #[serde(with = "units::duration")]
    pub max_query_lookback: Duration,
    /// Longest query range; 0 means no limit.
    #[serde(with = "units::duration")]
    pub max_query_length: Duration,
    /// Longest `[range]` inside a query; 0 means no limit.
    #[serde(with = "units::duration")]
    pub max_query_range: Duration,
    /// Sub-queries scheduled in parallel per query.
    pub max_query_parallelism: usize,
    /// Sub-queries scheduled in parallel per query for TSDB schemas; the query-frontend
    /// divides a time split into at most this many shards by stream.
    pub tsdb_max_query_parallelism: usize,
    /// Loki's `tsdb_max_bytes_per_shard` (`-querier.tsdb-max-bytes-per-shard`, default
    /// 600MB): the target number of bytes one shard of a sharded query reads. The
    /// query-frontend gives a time split `ceil(bytes / tsdb_max_bytes_per_shard)` shards
    /// (the bytes from the index statistics of its selectors), at most
    /// `tsdb_max_query_parallelism`. A target, not a limit; 0 never shards.
    #[serde(with = "units::bytesize")]
    pub tsdb_max_bytes_per_shard: u64,
    /// Cardinality limit for index queries. Loki 3 (TSDB) no longer enforces it (only its
    /// removed chunk-index store did); accepted so Loki configs load, and, as there, it has
    /// no effect.
    pub cardinality_limit: usize,
    /// Most matchers in one stream selector of a query; over it the query fails with 400
    /// `max streams matchers per query exceeded, matchers-count > limit (N > M)`.
    pub max_streams_matchers_per_query: usize,
    /// Concurrent tail requests per tenant.
    pub max_concurrent_tail_requests: usize,
    /// Largest `limit` a log query may ask for.
    pub max_entries_limit_per_query: usize,
    /// Most recent allowed cacheable result (Loki's key and default, 10m): the
    /// query-frontend's results cache never stores a split that ends later than `now -
    /// max_cache_freshness_per_query`, as it may still change. 0 caches up to now.
    #[serde(with = "units::duration")]
    pub max_cache_freshness_per_query: Duration,
    /// Labels, label values and series answers whose `end` is later than `now -
    /// max_metadata_cache_freshness` are not cached by the query-frontend (Loki's key and
    /// default, 1d). 0 caches up to now.
    #[serde(with = "units::duration")]
    pub max_metadata_cache_freshness: Duration,
    /// Index stats and volume answers whose `end` is later than `now -
    /// max_stats_cache_freshness` are not cached by the query-frontend (Loki's key and
    /// default, 10m). 0 caches up to now.
    #[serde(with = "units::duration")]
    pub max_stats_cache_freshness: Duration,
    /// Timeout for one query against the backends.
    #[serde(with = "units::duration")]
    pub query_timeout: Duration,
    /// Queries are split into sub-queries of this length; 0 disables splitting.
    #[serde(with = "units::duration")]
    pub split_queries_by_interval: Duration,
    /// Most bytes a query may read, estimated from index statistics before it runs; over it
    /// the query fails with Loki's 400 `the query would read too many bytes (query: N,
    /// limit: M); ...`. Not applied to a bare stream selector (as in Loki). 0 disables it.
    #[serde(with = "units::bytesize")]
    pub max_query_bytes_read: u64,
    /// Aggregations the query frontend may shard (Loki's `shard_aggregations`); only
    /// `approx_topk` is recognised, and without it `approx_topk` queries are refused.
    pub shard_aggregations: Vec<String>,
    /// Most bytes one sub-query may read: the largest `split_queries_by_interval` piece of a
    /// query's range, estimated from index statistics; over it the query fails with Loki's
    /// 400 `shard query is too large to execute on a single querier: ...` (`un-shardable
    /// query too large ...` for the range functions Loki does not shard). 0 disables it.
    #[serde(with = "units::bytesize")]
    pub max_querier_bytes_read: u64,
    /// Whether `/index/volume` endpoints are served.
    pub volume_enabled: bool,
    /// Most series (or label names) one index request of a volume query may aggregate; over
    /// it the query fails as in Loki: 500 `rpc error: code = Unknown desc = the query hit the
    /// max number of series limit (limit: N series)`. 0 disables it.
    pub volume_max_series: usize,

    // ---- retention / compactor ----
    /// Retention period; 0 keeps data forever.
    #[serde(with = "units::duration")]
    pub retention_period: Duration,
    /// Per-stream retention rules: the matching rule with the highest priority sets a stream's
    /// retention (ties: the shorter period), else `retention_period` does. Each period must be
    /// at least 24h, as in Loki.
    pub retention_stream: Vec<StreamRetention>,
    /// Skald's own: most bytes of chunks a tenant keeps (the sum of the compressed sizes its
    /// index records). With `compactor.retention_enabled`, each pass deletes the tenant's
    /// oldest chunks (oldest end first, across streams) until it is back under; 0 disables it.
    #[serde(with = "units::bytesize")]
    pub retention_max_bytes: u64,
    /// `disabled`, `filter-only` or `filter-and-delete`.
    pub deletion_mode: String,

    // ---- OTLP ----
    /// How `/otlp/v1/logs` stores resource, scope and log attributes.
    pub otlp_config: crate::otlp::OtlpConfig,
}

/// Loki's default level field names (`validation.DefaultAllowedLevelFields`).
pub const DEFAULT_LOG_LEVEL_FIELDS: &[&str] = &[
    "level",
    "LEVEL",
    "Level",
    "log.level",
    "severity",
    "SEVERITY",
    "Severity",
    "SeverityText",
    "lvl",
    "LVL",
    "Lvl",
    "severity_text",
    "Severity_Text",
    "SEVERITY_TEXT",
];

/// Loki's default `discover_service_name` list, in priority order.
pub const DEFAULT_DISCOVER_SERVICE_NAME: &[&str] = &[
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

impl Default for Limits {
    fn default() -> Self {
        let mins = |m: u64| Duration::from_secs(m * 60);
        let hours = |h: u64| Duration::from_secs(h * 3600);
        Limits {
            ingestion_rate_strategy: IngestionRateStrategy::Global,
            ingestion_rate_mb: 4.0,
            ingestion_burst_size_mb: 6.0,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            max_label_names_per_series: 15,
            reject_old_samples: true,
            reject_old_samples_max_age: hours(7 * 24),
            creation_grace_period: mins(10),
            max_line_size: 256 * 1024,
            max_line_size_truncate: false,
            max_line_size_truncate_identifier: String::new(),
            increment_duplicate_timestamp: false,
            discover_service_name: DEFAULT_DISCOVER_SERVICE_NAME
                .iter()
                .map(|s| s.to_string())
                .collect(),
            discover_log_levels: true,
            log_level_fields: DEFAULT_LOG_LEVEL_FIELDS.iter().map(|s| s.to_string()).collect(),
            log_level_from_json_max_depth: 2,
            allow_structured_metadata: true,
            max_structured_metadata_size: 64 * 1024,
            max_structured_metadata_entries_count: 128,
            use_owned_stream_count: false,
            max_streams_per_user: 0,
            max_global_streams_per_user: 5000,
            per_stream_rate_limit: 3 << 20,
            per_stream_rate_limit_burst: 15 << 20,
            unordered_writes: true,
            max_chunks_per_query: 2_000_000,
            max_query_series: 500,
            max_query_memory: DEFAULT_MAX_QUERY_MEMORY,
            max_query_lookback: Duration::ZERO,
            max_query_length: hours(721),
            max_query_range: Duration::ZERO,
            max_query_parallelism: 32,
            tsdb_max_query_parallelism: 128,
            tsdb_max_bytes_per_shard: 600 << 20,
            cardinality_limit: 100_000,
            max_streams_matchers_per_query: 1000,
            max_concurrent_tail_requests: 10,
            max_entries_limit_per_query: 5000,
            max_cache_freshness_per_query: mins(10),
            max_metadata_cache_freshness: hours(24),
            max_stats_cache_freshness: mins(10),
            query_timeout: mins(1),
            split_queries_by_interval: hours(1),
            max_query_bytes_read: 0,
            shard_aggregations: Vec::new(),
            max_querier_bytes_read: DEFAULT_MAX_QUERIER_BYTES_READ,
            volume_enabled: true,
            volume_max_series: 1000,
            retention_period: Duration::ZERO,
            retention_stream: Vec::new(),
            retention_max_bytes: 0,
            deletion_mode: "filter-and-delete".to_string(),
            otlp_config: crate::otlp::OtlpConfig::default(),
        }
    }
}

impl Limits {
    /// The tenant's ingestion rate in bytes per second (`ingestion_rate_mb` × 2^20).
    pub fn ingestion_rate_bytes(&self) -> f64 {
        self.ingestion_rate_mb * BYTES_IN_MB
    }

    /// The tenant's ingestion burst in bytes (`ingestion_burst_size_mb` × 2^20).
    pub fn ingestion_burst_size_bytes(&self) -> f64 {
        self.ingestion_burst_size_mb * BYTES_IN_MB
    }

    /// Checks values serde cannot check on its own.
    pub fn validate(&self) -> Result<(), LimitsError> {
        for (field, value) in [
            ("ingestion_rate_mb", self.ingestion_rate_mb),
            ("ingestion_burst_size_mb", self.ingestion_burst_size_mb),
        ] {
            if value.is_nan() || value < 0.0 {
                return Err(LimitsError::NegativeRate { field, value });
            }
        }
        for rule in &self.retention_stream {
            if rule.period < MIN_STREAM_RETENTION {
                return Err(LimitsError::StreamRetentionTooShort(units::format_duration(
                    rule.period,
                )));
            }
        }
        self.otlp_config.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_retention_under_a_day_is_refused_as_loki_does() {
        let l: Limits = serde_yaml::from_str(
            "retention_stream:\n- selector: '{app=\"a\"}'\n  priority: 1\n  period: 1h\n",
        )
        .unwrap();
        // Loki 3.x: `invalid limits_config config: retention period must be >= 24h was 1h`
        assert_eq!(l.validate().unwrap_err().to_string(), "retention period must be >= 24h was 1h");
        let ok: Limits = serde_yaml::from_str(
            "retention_period: 1h\nretention_stream:\n- selector: '{a=\"b\"}'\n  period: 48h\n",
        )
        .unwrap();
        assert!(ok.validate().is_ok(), "a global period under 24h is accepted, as in Loki");
        assert_eq!(ok.retention_stream[0].priority, 0);
    }

    #[test]
    fn defaults_match_loki() {
        let l = Limits::default();
        assert_eq!(l.ingestion_rate_bytes(), 4.0 * 1048576.0);
        assert_eq!(l.ingestion_burst_size_bytes(), 6.0 * 1048576.0);
        assert_eq!(l.max_line_size, 262_144);
        assert_eq!(l.reject_old_samples_max_age, Duration::from_secs(604_800));
        assert_eq!(l.discover_service_name.last().map(String::as_str), Some("k8s_job_name"));
        assert_eq!(l.max_structured_metadata_size, 65536);
        assert_eq!(l.max_query_memory, 1 << 30);
        assert_eq!(l.max_cache_freshness_per_query, Duration::from_secs(600));
        assert_eq!(l.max_metadata_cache_freshness, Duration::from_secs(86_400));
        assert_eq!(l.max_stats_cache_freshness, Duration::from_secs(600));
        assert!(l.validate().is_ok());
        // an empty section gives the defaults
        let parsed: Limits = serde_yaml::from_str("{}").unwrap();
        assert_eq!(parsed, l);
    }

    #[test]
    fn parses_the_reference_config_section() {
        let yaml = "
reject_old_samples: false
ingestion_rate_mb: 64
ingestion_burst_size_mb: 128
per_stream_rate_limit: 64MB
per_stream_rate_limit_burst: 128MB
max_entries_limit_per_query: 5000
allow_structured_metadata: true
volume_enabled: true
max_line_size: 1572864
reject_old_samples_max_age: 168h
query_timeout: 5m
ingestion_rate_strategy: local
discover_service_name: []
";
        let l: Limits = serde_yaml::from_str(yaml).unwrap();
        assert!(!l.reject_old_samples);
        assert_eq!(l.ingestion_rate_mb, 64.0);
        assert_eq!(l.per_stream_rate_limit, 64 << 20);
        assert_eq!(l.max_line_size, 1_572_864);
        assert_eq!(l.query_timeout, Duration::from_secs(300));
        assert_eq!(l.ingestion_rate_strategy, IngestionRateStrategy::Local);
        assert!(l.discover_service_name.is_empty());
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = serde_yaml::from_str::<Limits>("max_line_sise: 1KB\n").unwrap_err().to_string();
        assert!(err.contains("max_line_sise"), "{err}");
    }

    #[test]
    fn serializes_loki_style() {
        let v = serde_json::to_value(Limits::default()).unwrap();
        assert_eq!(v["max_line_size"], "256KB");
        assert_eq!(v["max_query_memory"], "1GB");
        assert_eq!(v["max_query_length"], "30d1h");
        assert_eq!(v["reject_old_samples_max_age"], "1w");
        assert_eq!(v["ingestion_rate_strategy"], "global");
        let back: Limits = serde_json::from_value(v).unwrap();
        assert_eq!(back, Limits::default());
    }

    #[test]
    fn bytes_read_limits_take_loki_byte_sizes() {
        let l: Limits =
            serde_yaml::from_str("max_query_bytes_read: 10GB\nmax_querier_bytes_read: 1KB\n")
                .unwrap();
        assert!(l.validate().is_ok());
        assert_eq!((l.max_query_bytes_read, l.max_querier_bytes_read), (10 << 30, 1024));
        let d = Limits::default();
        assert_eq!((d.max_query_bytes_read, d.max_querier_bytes_read), (0, 150 << 30));
        assert_eq!(d.tsdb_max_bytes_per_shard, 600 << 20);
        let l: Limits = serde_yaml::from_str("tsdb_max_bytes_per_shard: 1KB\n").unwrap();
        assert_eq!(l.tsdb_max_bytes_per_shard, 1024);
    }

    #[test]
    fn max_query_memory_takes_loki_byte_sizes() {
        let l: Limits = serde_yaml::from_str("max_query_memory: 512MB\n").unwrap();
        assert_eq!(l.max_query_memory, 512 << 20);
        let l: Limits = serde_yaml::from_str("max_query_memory: 0\n").unwrap();
        assert_eq!(l.max_query_memory, 0);
        assert!(serde_yaml::from_str::<Limits>("max_query_memory: lots\n").is_err());
    }

    #[test]
    fn rejects_negative_rates() {
        let l = Limits { ingestion_rate_mb: -1.0, ..Limits::default() };
        assert_eq!(
            l.validate().unwrap_err().to_string(),
            "`ingestion_rate_mb` must be a non-negative number, got -1"
        );
    }
}
