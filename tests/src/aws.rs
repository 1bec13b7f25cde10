//! The real S3 and DynamoDB test servers (`scripts/test-servers/`) and the Loki AWS storage
//! configs that point at them.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::metric_sum;

/// The S3 and DynamoDB servers `scripts/test-servers/start.sh` started (its env file, which the
/// README's test command sources, names them).
#[derive(Debug, Clone)]
pub struct TestServers {
    /// `http://127.0.0.1:<port>` of SeaweedFS's S3 API.
    pub s3_endpoint: String,
    /// A bucket that exists.
    pub s3_bucket: String,
    /// S3 access key id.
    pub s3_key: String,
    /// S3 secret.
    pub s3_secret: String,
    /// `http://127.0.0.1:<port>` of DynamoDB Local.
    pub dynamodb_endpoint: String,
    /// DynamoDB access key id.
    pub dynamodb_key: String,
    /// DynamoDB secret.
    pub dynamodb_secret: String,
}

/// A test-server variable that is not set, with what to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingServerVar(pub &'static str);

impl std::fmt::Display for MissingServerVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is not set: run scripts/test-servers/start.sh and source the env file it writes",
            self.0
        )
    }
}

impl std::error::Error for MissingServerVar {}

/// Reads the servers' environment (the integration tests and `skald-bench --aws`).
pub fn test_servers_from_env() -> Result<TestServers, MissingServerVar> {
    let var = |k: &'static str| std::env::var(k).map_err(|_| MissingServerVar(k));
    Ok(TestServers {
        s3_endpoint: var("SKALD_TEST_S3_ENDPOINT")?,
        s3_bucket: var("SKALD_TEST_S3_BUCKET")?,
        s3_key: var("SKALD_TEST_S3_ACCESS_KEY")?,
        s3_secret: var("SKALD_TEST_S3_SECRET_KEY")?,
        dynamodb_endpoint: var("SKALD_TEST_DYNAMODB_ENDPOINT")?,
        dynamodb_key: var("SKALD_TEST_DYNAMODB_ACCESS_KEY")?,
        dynamodb_secret: var("SKALD_TEST_DYNAMODB_SECRET_KEY")?,
    })
}

/// Reads the servers' environment; a missing variable fails the test with what to run.
pub fn test_servers() -> TestServers {
    test_servers_from_env().unwrap_or_else(|e| panic!("{e} (the README's test command does both)"))
}

/// `host:port` of an `http://host:port` URL.
pub fn host_port(url: &str) -> String {
    url.trim_start_matches("http://").trim_end_matches('/').to_string()
}

/// A table prefix (and S3 key space) no other test run uses.
pub fn unique_prefix(tag: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("sk{tag}{}x{}_", std::process::id(), nanos % 1_000_000_000)
}

/// Loki's storage block as a Helm user has it (the example), with the endpoints
/// pointed at `s3` and `dynamodb` (`host:port`) and a table prefix of the test's own.
pub fn helm_aws_storage_yaml(
    servers: &TestServers,
    s3: &str,
    dynamodb: &str,
    prefix: &str,
) -> String {
    format!(
        "schema_config:
  configs:
  - from: 2020-05-15
    store: aws
    object_store: s3
    schema: v11
    index:
      prefix: {prefix}
{}table_manager:
  creation_grace_period: 3h
  retention_deletes_enabled: false
  retention_period: 0s
  chunk_tables_provisioning:
    enable_ondemand_throughput_mode: true
    enable_inactive_throughput_on_demand_mode: true
  index_tables_provisioning:
    enable_ondemand_throughput_mode: true
    enable_inactive_throughput_on_demand_mode: true
",
        aws_storage_block(servers, s3, dynamodb)
    )
}

/// The `storage_config.aws` block: chunks in the test bucket through `s3`, the index in
/// DynamoDB through `dynamodb` (both `host:port`), in Loki's URL forms.
pub fn aws_storage_block(servers: &TestServers, s3: &str, dynamodb: &str) -> String {
    format!(
        "storage_config:
  aws:
    s3: s3://{key}:{secret}@{s3}/{bucket}
    dynamodb:
      dynamodb_url: dynamodb://{dkey}:{dsecret}@{dynamodb}
",
        key = servers.s3_key,
        secret = servers.s3_secret,
        bucket = servers.s3_bucket,
        dkey = servers.dynamodb_key,
        dsecret = servers.dynamodb_secret,
    )
}

/// Waits until the process's table-manager finished a pass (its success timestamp is set).
pub fn wait_tables_synced(url: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if metric_sum(url, "loki_table_manager_sync_success_timestamp_seconds") > 0.0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the table-manager did not finish a pass within {timeout:?}");
}
