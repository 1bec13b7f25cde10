//! Where and how to reach DynamoDB ([`DynamoClientConfig`]), the settings of one index period
//! ([`DynamoIndexConfig`]) and the counters of DynamoDB use ([`DynamoMetrics`]).

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use skald_chunk_store::redact_url;

use crate::store::NANOS_PER_DAY;

/// Where and how to reach DynamoDB. `{:?}` masks the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct DynamoClientConfig {
    /// Region (`us-east-1`); for endpoints of emulated services any name works.
    pub region: String,
    /// Endpoint URL (`http://127.0.0.1:8000`); `None` = AWS's endpoint for the region.
    pub endpoint: Option<String>,
    /// Static credentials (access key id, secret); `None` = `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` from the environment, else a web
    /// identity (see [`DynamoClientConfig::connect`]).
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for DynamoClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoClientConfig")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.credentials.as_ref().map(|(k, _)| k))
            .finish_non_exhaustive()
    }
}

/// Why Loki's `dynamodb_url`, or the credentials it leaves to the environment, cannot be used.
/// No message holds the URL's password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DynamoConfigError {
    /// The URL is not a `dynamodb://` URL.
    #[error("dynamodb_url `{url}` must start with dynamodb://")]
    NotDynamoUrl {
        /// The URL, its password masked.
        url: String,
    },
    /// The URL names neither a region nor a host.
    #[error("dynamodb_url `{url}` names no region or host")]
    NoHost {
        /// The URL, its password masked.
        url: String,
    },
    /// The URL's key or secret is not UTF-8 once unescaped.
    #[error("dynamodb_url credentials: {0}")]
    Credentials(std::str::Utf8Error),
    /// Neither the URL, nor `AWS_ACCESS_KEY_ID`, nor a web identity gives credentials.
    #[error(
        "no DynamoDB credentials: put them in dynamodb_url, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (IRSA)"
    )]
    NoCredentials,
    /// `AWS_ACCESS_KEY_ID` is set but `AWS_SECRET_ACCESS_KEY` is not.
    #[error("AWS_SECRET_ACCESS_KEY is not set")]
    NoSecret,
}

impl DynamoClientConfig {
    /// Parses Loki's `dynamodb_url`: `dynamodb://region`, or
    /// `dynamodb://key:secret@host:port` (a host with a dot or a port is an endpoint, reached
    /// over plain HTTP, as Loki did; the region is then `AWS_REGION` or `dummy`). Key and
    /// secret are URL-escaped.
    pub fn from_url(url: &str) -> std::result::Result<Self, DynamoConfigError> {
        let shown = || redact_url(url).into_owned();
        let rest = url
            .strip_prefix("dynamodb://")
            .ok_or_else(|| DynamoConfigError::NotDynamoUrl { url: shown() })?;
        let (userinfo, hostpath) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let host = hostpath.split('/').next().unwrap_or_default();
        if host.is_empty() {
            return Err(DynamoConfigError::NoHost { url: shown() });
        }
        let credentials = match userinfo {
            Some(u) => {
                let (k, s) = u.split_once(':').unwrap_or((u, ""));
                let unescape = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .map(|c| c.into_owned())
                        .map_err(DynamoConfigError::Credentials)
                };
                Some((unescape(k)?, unescape(s)?))
            }
            None => None,
        };
        if host.contains('.') || host.contains(':') {
            let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "dummy".to_string());
            Ok(DynamoClientConfig { region, endpoint: Some(format!("http://{host}")), credentials })
        } else {
            Ok(DynamoClientConfig { region: host.to_string(), endpoint: None, credentials })
        }
    }

    /// Builds a client. Retries are left to the callers, which count them.
    ///
    /// Credentials, in the order of the AWS SDKs' default chain: the URL's key and secret;
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`; a web identity
    /// (`AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`, EKS's IRSA) exchanged with STS for
    /// temporary credentials, fetched on first use and again 2.5 to 5 minutes (the SDK's jitter)
    /// before they expire
    /// ([`super::web_identity`]).
    pub fn connect(&self) -> std::result::Result<Client, DynamoConfigError> {
        use aws_sdk_dynamodb::config::{
            BehaviorVersion, Credentials, IdentityCache, Region, SharedCredentialsProvider,
        };
        let credentials = match &self.credentials {
            Some((k, s)) => {
                SharedCredentialsProvider::new(Credentials::new(k, s, None, None, "skald-config"))
            }
            None => match std::env::var("AWS_ACCESS_KEY_ID") {
                Ok(k) => {
                    let s = std::env::var("AWS_SECRET_ACCESS_KEY")
                        .map_err(|_| DynamoConfigError::NoSecret)?;
                    let token = std::env::var("AWS_SESSION_TOKEN").ok();
                    SharedCredentialsProvider::new(Credentials::new(k, s, token, None, "env"))
                }
                Err(_) => {
                    let identity = super::web_identity::WebIdentity::from_env(&self.region)
                        .ok_or(DynamoConfigError::NoCredentials)?;
                    SharedCredentialsProvider::new(super::web_identity::WebIdentityProvider::new(
                        identity,
                    ))
                }
            },
        };
        let http = match &self.endpoint {
            Some(e) if e.starts_with("http://") => {
                aws_smithy_http_client::Builder::new().build_http()
            }
            _ => aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        };
        let mut b = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(credentials)
            .identity_cache(IdentityCache::lazy().buffer_time(Duration::from_secs(300)).build())
            .http_client(http)
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            );
        if let Some(e) = &self.endpoint {
            b = b.endpoint_url(e);
        }
        Ok(Client::from_conf(b.build()))
    }
}

/// Settings of one DynamoDB index period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoIndexConfig {
    /// Table name prefix (`index.prefix`, e.g. `loki_`).
    pub prefix: String,
    /// Table period in seconds (`index.period`; 168h for Loki's `aws` store). A multiple of 24h.
    pub period_secs: i64,
    /// Retries of a throttled or failed request before giving up.
    pub max_retries: u32,
    /// First backoff; doubled per retry up to `max_backoff`.
    pub min_backoff: Duration,
    /// Largest backoff.
    pub max_backoff: Duration,
    /// Series rows remembered as written, per process (bounds the write-dedup set).
    pub written_series_cache: usize,
}

impl Default for DynamoIndexConfig {
    fn default() -> Self {
        DynamoIndexConfig {
            prefix: "loki_".to_string(),
            period_secs: 7 * 86_400,
            max_retries: 5,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            written_series_cache: 1 << 20,
        }
    }
}

impl DynamoIndexConfig {
    /// The table holding index day `day`.
    pub fn table_for_day(&self, day: i64) -> String {
        let secs = day.saturating_mul(NANOS_PER_DAY / 1_000_000_000);
        super::table_name(&self.prefix, secs.div_euclid(self.period_secs.max(86_400)))
    }
}

/// Counters of DynamoDB use, registered by the caller.
#[derive(Debug, Clone)]
pub struct DynamoMetrics {
    /// Requests retried after throttling, by operation.
    pub throttled: prometheus::IntCounterVec,
    /// Failed requests (after the last retry or not retryable), by operation.
    pub failures: prometheus::IntCounterVec,
    /// Items written.
    pub items_written: prometheus::IntCounter,
    /// Capacity units DynamoDB reports as consumed, by operation.
    pub consumed_capacity: prometheus::CounterVec,
}

impl DynamoMetrics {
    /// Creates the counters (not registered).
    pub fn new() -> Self {
        // Names and help texts are constants, so construction cannot fail.
        let opts = |n: &str, h: &str| prometheus::Opts::new(n, h);
        DynamoMetrics {
            throttled: prometheus::IntCounterVec::new(
                opts("loki_dynamo_throttled_total", "DynamoDB requests throttled and retried."),
                &["operation"],
            )
            .expect("constant metric name is valid"),
            failures: prometheus::IntCounterVec::new(
                opts("loki_dynamo_failures_total", "DynamoDB requests that failed."),
                &["operation"],
            )
            .expect("constant metric name is valid"),
            items_written: prometheus::IntCounter::with_opts(opts(
                "skald_dynamo_items_written_total",
                "Index items written to DynamoDB.",
            ))
            .expect("constant metric name is valid"),
            consumed_capacity: prometheus::CounterVec::new(
                opts(
                    "loki_dynamo_consumed_capacity_total",
                    "Capacity units DynamoDB reported as consumed.",
                ),
                &["operation"],
            )
            .expect("constant metric name is valid"),
        }
    }

    /// Registers every counter into `registry`.
    pub fn register(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.throttled.clone()))?;
        registry.register(Box::new(self.failures.clone()))?;
        registry.register(Box::new(self.items_written.clone()))?;
        registry.register(Box::new(self.consumed_capacity.clone()))?;
        Ok(())
    }
}

impl Default for DynamoMetrics {
    fn default() -> Self {
        DynamoMetrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = DynamoClientConfig::from_url("dynamodb://ap-northeast-1").unwrap();
        assert_eq!(c.region, "ap-northeast-1");
        assert_eq!(c.endpoint, None);
        assert_eq!(c.credentials, None);
        let c = DynamoClientConfig::from_url("dynamodb://k%2Fey:se%40cret@127.0.0.1:8000").unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(c.credentials, Some(("k/ey".to_string(), "se@cret".to_string())));
        assert!(DynamoClientConfig::from_url("http://x").is_err());
        assert!(DynamoClientConfig::from_url("dynamodb://").is_err());
        // the secret shows neither in errors nor in `{:?}`
        let err = DynamoClientConfig::from_url("http://k:Sup3rS3cret@h:1").unwrap_err().to_string();
        assert_eq!(err, "dynamodb_url `http://k:xxxxx@h:1` must start with dynamodb://");
        let err =
            DynamoClientConfig::from_url("dynamodb://k:Sup3rS3cret@").unwrap_err().to_string();
        assert_eq!(err, "dynamodb_url `dynamodb://k:xxxxx@` names no region or host");
        let c = DynamoClientConfig::from_url("dynamodb://k:Sup3rS3cret@127.0.0.1:8000").unwrap();
        assert!(!format!("{c:?}").contains("Sup3rS3cret"));
    }

    #[test]
    fn tables_follow_periods() {
        let c = DynamoIndexConfig {
            prefix: "loki_".into(),
            period_secs: 7 * 86_400,
            ..Default::default()
        };
        // 2020-05-15 is day 18397; weekly tables are numbered from the epoch
        assert_eq!(c.table_for_day(18_397), format!("loki_{}", 18_397 / 7));
        assert_eq!(c.table_for_day(6), "loki_0");
        assert_eq!(c.table_for_day(7), "loki_1");
    }
}
