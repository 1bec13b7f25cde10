//! Storage wiring: Loki's `storage_config.aws` block (S3 chunks, DynamoDB index), the
//! `schema_config` periods, and the stores and table-manager periods built from them.
//!
//! Only the serde blocks and the choice of stores per period live here: reading Loki's S3 keys
//! and opening the bucket is `skald-chunk-store`'s (`S3Config::from_loki`,
//! `ObjectChunkStore::s3`), reading `dynamodb_url` and building the DynamoDB client is
//! `skald-index`'s (`DynamoClientConfig::from_url`, `connect`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use skald_chunk_store::{
    ChunkStore, LokiS3Settings, ObjectChunkStore, ObjectChunkStoreConfig, S3Config,
};
use skald_index::{
    DynamoClientConfig, DynamoIndexConfig, DynamoIndexStore, DynamoMetrics, IndexStore,
    ObjectIndexStore, ObjectIndexStoreConfig, PeriodIndexStore,
};

use crate::config::{Config, PeriodConfig};
use crate::secret::{redact_url, scrub, Secret, SecretUrl};

/// `storage_config.aws`, with Loki's keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsStorageConfig {
    /// `s3://region/bucket`, `s3://key:secret@region/bucket` or
    /// `s3://key:secret@host:port/bucket` (a host with a dot or a port is an endpoint reached
    /// over HTTP); key and secret URL-escaped.
    pub s3: SecretUrl,
    /// Bucket name (instead of the URL's); one bucket.
    pub bucketnames: String,
    /// Endpoint (`host:port` or a URL); `https` unless `insecure` or the URL says `http`.
    pub endpoint: String,
    /// Region.
    pub region: String,
    /// Access key id (else the URL's, else `AWS_ACCESS_KEY_ID`).
    pub access_key_id: String,
    /// Secret access key (shown as `********`).
    pub secret_access_key: Secret,
    /// Session token (shown as `********`).
    pub session_token: Secret,
    /// Plain HTTP to `endpoint`.
    pub insecure: bool,
    /// Path-style requests (`endpoint/bucket/key`).
    pub s3forcepathstyle: bool,
    /// DynamoDB settings.
    pub dynamodb: Option<DynamoDbConfig>,
    /// Accepted and ignored (Loki's HTTP tuning, encryption, storage class, signature, backoff).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_config: Option<serde_yaml::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse: Option<serde_yaml::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse_encryption: Option<serde_yaml::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<serde_yaml::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_version: Option<serde_yaml::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_config: Option<serde_yaml::Value>,
}

/// `storage_config.aws.dynamodb`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DynamoDbConfig {
    /// `dynamodb://region` or `dynamodb://key:secret@host:port` (shown with the secret as
    /// `xxxxx`).
    pub dynamodb_url: SecretUrl,
    /// Accepted and ignored (Loki's rate limits, autoscaling metrics, chunk fetch tuning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_limit: Option<serde_yaml::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttle_limit: Option<serde_yaml::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<serde_yaml::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_gang_size: Option<serde_yaml::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_get_max_parallelism: Option<serde_yaml::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_config: Option<serde_yaml::Value>,
}

impl AwsStorageConfig {
    /// The S3 keys of this block, for `skald-chunk-store` to read.
    pub fn s3_settings(&self) -> LokiS3Settings {
        LokiS3Settings {
            s3: self.s3.expose().to_string(),
            bucketnames: self.bucketnames.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.expose().to_string(),
            session_token: self.session_token.expose().to_string(),
            insecure: self.insecure,
            s3forcepathstyle: self.s3forcepathstyle,
        }
    }

    /// The bucket and how to reach it, from the URL and the explicit keys (which win).
    pub fn s3_config(&self) -> anyhow::Result<S3Config> {
        Ok(S3Config::from_loki(&self.s3_settings())?)
    }
}

/// Unix seconds of a period's `from` (`YYYY-MM-DD`, UTC midnight).
pub fn period_from_secs(p: &PeriodConfig) -> anyhow::Result<i64> {
    let d = chrono::NaiveDate::parse_from_str(p.from.trim(), "%Y-%m-%d")
        .with_context(|| format!("schema_config period `from: {}` is not YYYY-MM-DD", p.from))?;
    Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or(0))
}

/// True for the index stores kept in DynamoDB tables.
pub fn is_dynamo_store(store: &str) -> bool {
    matches!(store, "aws" | "aws-dynamo")
}

/// The table period of a DynamoDB period (`index.period`, 168h by default as in Loki).
pub fn index_period(p: &PeriodConfig) -> anyhow::Result<Duration> {
    match p.index.as_ref().and_then(|i| i.period.as_deref()) {
        None | Some("") => Ok(Duration::from_secs(168 * 3600)),
        Some(s) => skald_common::units::parse_duration(s)
            .map_err(|e| anyhow::anyhow!("schema_config index.period `{s}`: {e}")),
    }
}

/// The table prefix of a period (`index.prefix`, `index_` when unset, as in Loki).
pub fn index_prefix(p: &PeriodConfig) -> String {
    p.index
        .as_ref()
        .map(|i| i.prefix.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "index_".to_string())
}

/// The `schema_config` periods whose index is in DynamoDB, for the table-manager.
pub fn table_periods(
    config: &Config,
) -> anyhow::Result<Vec<skald_table_manager::PeriodicTableConfig>> {
    let mut out = Vec::new();
    for p in &config.schema_config.configs {
        if is_dynamo_store(&p.store) {
            out.push(skald_table_manager::PeriodicTableConfig {
                from_secs: period_from_secs(p)?,
                prefix: index_prefix(p),
                period: index_period(p)?,
            });
        }
    }
    out.sort_by_key(|p| p.from_secs);
    Ok(out)
}

/// Where DynamoDB is, from `storage_config.aws.dynamodb.dynamodb_url`; `connect()` builds the
/// client.
pub fn dynamo_client_config(config: &Config) -> anyhow::Result<DynamoClientConfig> {
    let url = config
        .storage_config
        .aws
        .as_ref()
        .and_then(|a| a.dynamodb.as_ref())
        .filter(|d| !d.dynamodb_url.is_empty())
        .map(|d| d.dynamodb_url.expose())
        .context("a schema_config period stores its index in DynamoDB (store: aws) but storage_config.aws.dynamodb.dynamodb_url is not set")?;
    Ok(DynamoClientConfig::from_url(url)?)
}

/// The object store the config describes (chunks, index segments, Elasticsearch templates).
pub fn build_chunk_store(config: &Config) -> anyhow::Result<Arc<dyn ChunkStore>> {
    let periods = &config.schema_config.configs;
    let uses_s3 = periods.iter().any(|p| matches!(p.object_store.as_str(), "s3" | "aws"));
    let uses_fs = periods.iter().any(|p| matches!(p.object_store.as_str(), "filesystem" | ""));
    if uses_s3 && uses_fs {
        anyhow::bail!("schema_config periods on different object stores (s3 and filesystem) are not supported yet");
    }
    Ok(if uses_s3 {
        let aws = config.storage_config.aws.as_ref().context(
            "a schema_config period keeps chunks in s3 but storage_config.aws is not set",
        )?;
        let s3 = aws.s3_config()?;
        let endpoint = s3.endpoint.as_deref().map(redact_url);
        tracing::info!(bucket = %s3.bucket, endpoint = ?endpoint, region = %s3.region, "storing chunks in S3");
        let secrets = s3.secrets();
        // object_store's messages may quote the endpoint: no credential in them
        let store = ObjectChunkStore::s3(&s3, ObjectChunkStoreConfig::default()).map_err(|e| {
            anyhow::anyhow!("{}", scrub(&format!("{:#}", anyhow::Error::from(e)), &secrets))
        })?;
        Arc::new(store)
    } else {
        let dir = config.data_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
        tracing::info!(dir = %dir.display(), "storing chunks on the local filesystem");
        Arc::new(
            ObjectChunkStore::local(&dir, ObjectChunkStoreConfig::default())
                .with_context(|| format!("cannot open {}", dir.display()))?,
        )
    })
}

/// The chunk store and the index the config describes.
pub fn build_stores(
    config: &Config,
    registry: &prometheus::Registry,
) -> anyhow::Result<(Arc<dyn ChunkStore>, Arc<dyn IndexStore>)> {
    let periods = &config.schema_config.configs;
    let chunks = build_chunk_store(config)?;
    skald_chunk_store::metrics::register(registry)
        .context("cannot register the object store's metrics")?;
    skald_index::timed::register(registry).context("cannot register the index's metrics")?;
    let timed = |index: Arc<dyn IndexStore>| -> Arc<dyn IndexStore> {
        Arc::new(skald_index::TimedIndexStore::new(index))
    };
    let object_index: Arc<dyn IndexStore> =
        Arc::new(ObjectIndexStore::new(chunks.clone(), ObjectIndexStoreConfig::default()));
    if !periods.iter().any(|p| is_dynamo_store(&p.store)) {
        return Ok((chunks, timed(object_index)));
    }
    let client = dynamo_client_config(config)?.connect()?;
    let metrics = DynamoMetrics::new();
    metrics.register(registry).context("cannot register DynamoDB metrics")?;
    let mut by_period: Vec<(i64, Arc<dyn IndexStore>)> = Vec::new();
    for p in periods {
        let start = period_from_secs(p)?.saturating_mul(1_000_000_000);
        let store: Arc<dyn IndexStore> = if is_dynamo_store(&p.store) {
            let period = index_period(p)?;
            tracing::info!(from = %p.from, prefix = %index_prefix(p), period = ?period, "index in DynamoDB tables");
            Arc::new(DynamoIndexStore::new(
                client.clone(),
                DynamoIndexConfig {
                    prefix: index_prefix(p),
                    period_secs: period.as_secs() as i64,
                    ..Default::default()
                },
                metrics.clone(),
            ))
        } else {
            object_index.clone()
        };
        by_period.push((start, store));
    }
    Ok((chunks, timed(Arc::new(PeriodIndexStore::new(by_period)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(yaml: &str) -> AwsStorageConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn loki_s3_urls() {
        let c = aws("s3: s3://ap-northeast-1/logs").s3_config().unwrap();
        assert_eq!(
            (c.region.as_str(), c.bucket.as_str(), c.endpoint.clone()),
            ("ap-northeast-1", "logs", None)
        );
        let c = aws("s3: s3://AK%2B:S%40K@127.0.0.1:8333/logs").s3_config().unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert!(c.force_path_style);
        let cred = c.credentials.unwrap();
        assert_eq!((cred.access_key_id.as_str(), cred.secret_access_key.as_str()), ("AK+", "S@K"));
        let c = aws("bucketnames: b\nendpoint: minio:9000\ninsecure: true\nregion: eu-west-1\naccess_key_id: a\nsecret_access_key: s\ns3forcepathstyle: true")
            .s3_config()
            .unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://minio:9000"));
        assert_eq!((c.region.as_str(), c.bucket.as_str()), ("eu-west-1", "b"));
        assert!(c.force_path_style);
        let c = aws("bucketnames: b\nendpoint: s3.example.com").s3_config().unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("https://s3.example.com"));
        assert!(aws("s3: http://x/b").s3_config().is_err());
        assert!(aws("region: x").s3_config().unwrap_err().to_string().contains("no bucket"));
        assert!(aws("bucketnames: a,b").s3_config().unwrap_err().to_string().contains("several"));
    }
}
