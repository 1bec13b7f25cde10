//! [`DynamoIndexStore`]: the label index in DynamoDB-compatible periodic tables.
//!
//! One table per index period, named `<prefix><unix seconds of the period start / period
//! seconds>` (Loki's naming), created ahead of time by `skald-table-manager`. Every table has a
//! string hash key `h` and a binary range key `r`; rows keep their payload in the binary
//! attribute `v`. Inside a table, rows are bucketed by index day (as in every Skald index):
//!
//! | row     | `h`                    | `r` (binary)                                         | `v` |
//! |---------|------------------------|------------------------------------------------------|-----|
//! | series  | `<tenant>:d<day>:s`    | fingerprint (8, big endian)                          | labels |
//! | chunk   | `<tenant>:d<day>:c`    | fingerprint (8) · from (8) · through (8) · checksum (4) | entries, sizes |
//!
//! Timestamps in range keys are big endian with the sign bit flipped, so byte order is time
//! order. Label names, label values and matcher resolution are one `Query` on the day's series
//! hash key; series → chunks is one `Query` on the day's chunk hash key (bounded to one
//! fingerprint with `BETWEEN` when few series match). A chunk costs one chunk row per day it
//! spans, plus one series row the first time this process writes that series in that day
//! (remembered in a bounded set), so at most 2 items per chunk. The full design is in
//! `DYNAMODB.md`.
//!
//! Writes go through `BatchWriteItem` in groups of 25 with `UnprocessedItems` resent; throttling
//! (`ProvisionedThroughputExceededException`, `ThrottlingException`, `RequestLimitExceeded`) and
//! transport failures are retried with exponential backoff and counted. Every query follows
//! `LastEvaluatedKey` to the end.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, ReturnConsumedCapacity, WriteRequest};
use aws_sdk_dynamodb::Client;
use parking_lot::Mutex;
use skald_model::{Label, LabelMatcher, Labels};

use crate::chunk_ref::ChunkRef;
use crate::error::{Error, Result};
use crate::store::{
    days_spanned, group_by_day, label_names_of, label_values_of, IndexStore, Merger, SeriesChunks,
    NANOS_PER_DAY,
};
use crate::varint::{put_uvarint, Reader};

/// Items per `BatchWriteItem` call (DynamoDB's limit).
pub const BATCH_WRITE_ITEMS: usize = 25;
/// Matched series at or below which chunks are fetched with one bounded query per series
/// rather than one query over the whole day.
const PER_SERIES_QUERY_MAX: usize = 8;
/// Ranges of at least this many days are read only on the days the tenant's day rows name.
const LONG_RANGE_DAYS: i64 = 32;
/// Days read at once by one query.
const DAYS_IN_FLIGHT: usize = 4;

/// Where and how to reach DynamoDB. `{:?}` masks the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct DynamoClientConfig {
    /// Region (`us-east-1`); for endpoints of emulated services any name works.
    pub region: String,
    /// Endpoint URL (`http://127.0.0.1:8000`); `None` = AWS's endpoint for the region.
    pub endpoint: Option<String>,
    /// Static credentials (access key id, secret); `None` = `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` from the environment.
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

/// `url` with the password of its `user:password@` part replaced by `xxxxx` (Go's
/// `url.Redacted`), for messages.
fn redacted_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else { return url.to_string() };
    let rest = &url[start..];
    match rest.rfind('@').and_then(|at| rest[..at].find(':').map(|c| (c, at))) {
        Some((colon, at)) => format!("{}{}:xxxxx{}", &url[..start], &rest[..colon], &rest[at..]),
        None => url.to_string(),
    }
}

impl DynamoClientConfig {
    /// Parses Loki's `dynamodb_url`: `dynamodb://region`, or
    /// `dynamodb://key:secret@host:port` (a host with a dot or a port is an endpoint, reached
    /// over plain HTTP, as Loki did; the region is then `AWS_REGION` or `dummy`). Key and
    /// secret are URL-escaped.
    pub fn from_url(url: &str) -> std::result::Result<Self, String> {
        let rest = url.strip_prefix("dynamodb://").ok_or_else(|| {
            format!("dynamodb_url `{}` must start with dynamodb://", redacted_url(url))
        })?;
        let (userinfo, hostpath) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let host = hostpath.split('/').next().unwrap_or_default();
        if host.is_empty() {
            return Err(format!("dynamodb_url `{}` names no region or host", redacted_url(url)));
        }
        let credentials = match userinfo {
            Some(u) => {
                let (k, s) = u.split_once(':').unwrap_or((u, ""));
                let unescape = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .map(|c| c.into_owned())
                        .map_err(|e| format!("dynamodb_url credentials: {e}"))
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
    pub fn connect(&self) -> std::result::Result<Client, String> {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        let credentials = match &self.credentials {
            Some((k, s)) => Credentials::new(k, s, None, None, "skald-config"),
            None => {
                let k = std::env::var("AWS_ACCESS_KEY_ID").map_err(|_| {
                    "no DynamoDB credentials: put them in dynamodb_url or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_string()
                })?;
                let s = std::env::var("AWS_SECRET_ACCESS_KEY")
                    .map_err(|_| "AWS_SECRET_ACCESS_KEY is not set".to_string())?;
                Credentials::new(k, s, std::env::var("AWS_SESSION_TOKEN").ok(), None, "env")
            }
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
        format!("{}{}", self.prefix, secs.div_euclid(self.period_secs.max(86_400)))
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

/// The index in DynamoDB periodic tables. See the module docs for the row layout.
pub struct DynamoIndexStore {
    client: Client,
    config: DynamoIndexConfig,
    metrics: DynamoMetrics,
    /// `(table/hash key, fingerprint or day)` of series and day rows this process wrote.
    written: Mutex<HashSet<(String, u64)>>,
}

impl std::fmt::Debug for DynamoIndexStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoIndexStore").field("config", &self.config).finish_non_exhaustive()
    }
}

type Item = HashMap<String, AttributeValue>;

/// An index row: hash key `h`, range key `r`, payload `v` when there is one.
fn row(h: String, r: Vec<u8>, v: Option<Vec<u8>>) -> Item {
    let mut item = Item::with_capacity(3);
    item.insert("h".into(), AttributeValue::S(h));
    item.insert("r".into(), AttributeValue::B(Blob::new(r)));
    if let Some(v) = v {
        item.insert("v".into(), AttributeValue::B(Blob::new(v)));
    }
    item
}

fn series_hash(tenant: &str, day: i64) -> String {
    format!("{tenant}:d{day}:s")
}

fn days_hash(tenant: &str) -> String {
    format!("{tenant}:days")
}

fn chunk_hash(tenant: &str, day: i64) -> String {
    format!("{tenant}:d{day}:c")
}

fn ts_key(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

fn ts_from_key(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    (u64::from_be_bytes(a) ^ (1 << 63)) as i64
}

fn chunk_range_key(c: &ChunkRef) -> Vec<u8> {
    let mut r = Vec::with_capacity(28);
    r.extend_from_slice(&c.fingerprint.to_be_bytes());
    r.extend_from_slice(&ts_key(c.from));
    r.extend_from_slice(&ts_key(c.through));
    r.extend_from_slice(&c.checksum.to_be_bytes());
    r
}

fn chunk_value(c: &ChunkRef) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    put_uvarint(&mut v, u64::from(c.entries));
    put_uvarint(&mut v, c.uncompressed_bytes);
    put_uvarint(&mut v, c.compressed_bytes);
    put_uvarint(&mut v, c.stats_bytes);
    v
}

fn decode_chunk(r: &[u8], v: &[u8]) -> Result<ChunkRef> {
    if r.len() != 28 {
        return Err(Error::corrupt(format!("chunk row key of {} bytes", r.len())));
    }
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&r[..8]);
    let mut cs = [0u8; 4];
    cs.copy_from_slice(&r[24..28]);
    let mut rd = Reader::new(v);
    let entries = u32::try_from(rd.uvarint()?).map_err(|_| Error::corrupt("chunk entries"))?;
    let uncompressed_bytes = rd.uvarint()?;
    let compressed_bytes = rd.uvarint()?;
    // rows written before the stats size existed end here: their raw size stands in for it
    let stats_bytes = if rd.remaining() == 0 { uncompressed_bytes } else { rd.uvarint()? };
    Ok(ChunkRef {
        fingerprint: u64::from_be_bytes(fp),
        from: ts_from_key(&r[8..16]),
        through: ts_from_key(&r[16..24]),
        checksum: u32::from_be_bytes(cs),
        entries,
        uncompressed_bytes,
        compressed_bytes,
        stats_bytes,
    })
}

fn labels_value(labels: &Labels) -> Vec<u8> {
    let mut v = Vec::new();
    put_uvarint(&mut v, labels.len() as u64);
    for l in labels.iter() {
        put_uvarint(&mut v, l.name.len() as u64);
        v.extend_from_slice(l.name.as_bytes());
        put_uvarint(&mut v, l.value.len() as u64);
        v.extend_from_slice(l.value.as_bytes());
    }
    v
}

fn decode_labels(v: &[u8]) -> Result<Labels> {
    let mut rd = Reader::new(v);
    let n = rd.count(2)?;
    let mut out = Vec::with_capacity(n);
    let string = |rd: &mut Reader<'_>| -> Result<String> {
        let len = rd.count(1)?;
        let b = rd.bytes(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| Error::corrupt("label is not UTF-8"))
    };
    for _ in 0..n {
        let name = string(&mut rd)?;
        let value = string(&mut rd)?;
        out.push(Label::new(name, value));
    }
    Ok(Labels::from_vec(out))
}

fn blob(item: &Item, name: &str) -> Result<Vec<u8>> {
    match item.get(name) {
        Some(AttributeValue::B(b)) => Ok(b.as_ref().to_vec()),
        _ => Err(Error::corrupt(format!("index row without binary `{name}`"))),
    }
}

/// Why a DynamoDB call failed, for retry decisions.
enum Failure {
    Throttled(String),
    Transient(String),
    MissingTable,
    Fatal(String),
}

fn classify<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::SdkError;
    let text = aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string();
    match e {
        SdkError::ServiceError(s) => match s.err().code() {
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded",
            ) => Failure::Throttled(text),
            Some("ResourceNotFoundException") => Failure::MissingTable,
            Some("InternalServerError" | "ServiceUnavailable") => Failure::Transient(text),
            _ => Failure::Fatal(text),
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Transient(text)
        }
        _ => Failure::Fatal(text),
    }
}

impl DynamoIndexStore {
    /// An index over `client`'s tables.
    pub fn new(client: Client, config: DynamoIndexConfig, metrics: DynamoMetrics) -> Self {
        DynamoIndexStore { client, config, metrics, written: Mutex::new(HashSet::new()) }
    }

    /// The settings.
    pub fn config(&self) -> &DynamoIndexConfig {
        &self.config
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.min_backoff.saturating_mul(1 << attempt.min(16));
        let base = base.min(self.config.max_backoff);
        // up to 25% jitter, from the clock's nanoseconds
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
    }

    fn store_error(&self, op: &'static str, msg: String) -> Error {
        self.metrics.failures.with_label_values(&[op]).inc();
        Error::Backend { op, message: msg }
    }

    /// Writes `items` into `table`, 25 per call, resending unprocessed ones and retrying
    /// throttled or failed calls with backoff.
    async fn batch_write(&self, table: &str, items: Vec<Item>) -> Result<()> {
        const OP: &str = "BatchWriteItem";
        for group in items.chunks(BATCH_WRITE_ITEMS) {
            let mut pending: Vec<WriteRequest> = group
                .iter()
                .map(|item| {
                    let put = PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map_err(|e| self.store_error(OP, e.to_string()))?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<_>>()?;
            let mut attempt = 0u32;
            while !pending.is_empty() {
                let sent = pending.len();
                let resp = self
                    .client
                    .batch_write_item()
                    .request_items(table, pending.clone())
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await;
                match resp {
                    Ok(out) => {
                        let cu: f64 =
                            out.consumed_capacity().iter().filter_map(|c| c.capacity_units()).sum();
                        self.metrics.consumed_capacity.with_label_values(&[OP]).inc_by(cu);
                        let left: Vec<WriteRequest> = out
                            .unprocessed_items()
                            .and_then(|m| m.get(table))
                            .cloned()
                            .unwrap_or_default();
                        self.metrics.items_written.inc_by((sent - left.len()) as u64);
                        if !left.is_empty() {
                            // DynamoDB could not take them all: a form of throttling
                            self.metrics.throttled.with_label_values(&[OP]).inc();
                            if attempt >= self.config.max_retries {
                                return Err(self.store_error(
                                    OP,
                                    format!("{} items still unprocessed in {table}", left.len()),
                                ));
                            }
                            tokio::time::sleep(self.backoff(attempt)).await;
                            attempt += 1;
                        }
                        pending = left;
                    }
                    Err(e) => match classify(&e) {
                        Failure::Throttled(msg) | Failure::Transient(msg)
                            if attempt < self.config.max_retries =>
                        {
                            if matches!(classify(&e), Failure::Throttled(_)) {
                                self.metrics.throttled.with_label_values(&[OP]).inc();
                            }
                            tracing::warn!(table, error = %msg, attempt, "DynamoDB write failed, retrying");
                            tokio::time::sleep(self.backoff(attempt)).await;
                            attempt += 1;
                        }
                        Failure::MissingTable => {
                            return Err(self.store_error(
                                OP,
                                format!(
                                    "table {table} does not exist (is the table-manager running?)"
                                ),
                            ))
                        }
                        Failure::Throttled(msg) | Failure::Transient(msg) | Failure::Fatal(msg) => {
                            return Err(self.store_error(OP, format!("{table}: {msg}")))
                        }
                    },
                }
            }
        }
        Ok(())
    }

    /// Every item of `table` under hash key `h`, with an optional `BETWEEN` on the range key,
    /// following `LastEvaluatedKey`. A missing table holds nothing.
    async fn query_all(
        &self,
        table: &str,
        h: &str,
        between: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Vec<Item>> {
        const OP: &str = "Query";
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        let mut attempt = 0u32;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(table)
                .expression_attribute_values(":h", AttributeValue::S(h.to_string()))
                .consistent_read(true)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_exclusive_start_key(start.clone());
            q = match &between {
                Some((lo, hi)) => q
                    .key_condition_expression("h = :h AND r BETWEEN :lo AND :hi")
                    .expression_attribute_values(":lo", AttributeValue::B(Blob::new(lo.clone())))
                    .expression_attribute_values(":hi", AttributeValue::B(Blob::new(hi.clone()))),
                None => q.key_condition_expression("h = :h"),
            };
            match q.send().await {
                Ok(resp) => {
                    if let Some(cu) = resp.consumed_capacity().and_then(|c| c.capacity_units()) {
                        self.metrics.consumed_capacity.with_label_values(&[OP]).inc_by(cu);
                    }
                    out.extend(resp.items().iter().cloned());
                    match resp.last_evaluated_key() {
                        Some(k) if !k.is_empty() => start = Some(k.clone()),
                        _ => return Ok(out),
                    }
                    attempt = 0;
                }
                Err(e) => match classify(&e) {
                    Failure::MissingTable => return Ok(out),
                    Failure::Throttled(msg) | Failure::Transient(msg)
                        if attempt < self.config.max_retries =>
                    {
                        if matches!(classify(&e), Failure::Throttled(_)) {
                            self.metrics.throttled.with_label_values(&[OP]).inc();
                        }
                        tracing::warn!(table, error = %msg, attempt, "DynamoDB query failed, retrying");
                        tokio::time::sleep(self.backoff(attempt)).await;
                        attempt += 1;
                    }
                    Failure::Throttled(msg) | Failure::Transient(msg) | Failure::Fatal(msg) => {
                        return Err(self.store_error(OP, format!("{table}: {msg}")))
                    }
                },
            }
        }
    }

    /// Days of `[from, through]` to read. A short range is read day by day; a long one (the
    /// label APIs without a range, say) only on the days the tenant's day rows name, in the
    /// tables that exist.
    async fn days_with_data(&self, tenant: &str, from: i64, through: i64) -> Result<Vec<i64>> {
        let span = days_spanned(from, through);
        let (first, last) = (*span.start(), *span.end());
        if last - first < LONG_RANGE_DAYS {
            return Ok(span.collect());
        }
        let period_days = (self.config.period_secs / 86_400).max(1);
        let mut days = Vec::new();
        for n in self.table_numbers().await? {
            let (lo, hi) = (n.saturating_mul(period_days), (n + 1).saturating_mul(period_days) - 1);
            if hi < first || lo > last {
                continue;
            }
            let table = format!("{}{n}", self.config.prefix);
            for item in self.query_all(&table, &days_hash(tenant), None).await? {
                let r = blob(&item, "r")?;
                if r.len() != 8 {
                    return Err(Error::corrupt("day row key"));
                }
                let day = ts_from_key(&r);
                if (first..=last).contains(&day) {
                    days.push(day);
                }
            }
        }
        days.sort_unstable();
        days.dedup();
        Ok(days)
    }

    /// Numbers of the tables named `<prefix><number>` that exist.
    async fn table_numbers(&self) -> Result<Vec<i64>> {
        const OP: &str = "ListTables";
        let mut out = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let resp = self
                .client
                .list_tables()
                .set_exclusive_start_table_name(start.clone())
                .limit(100)
                .send()
                .await
                .map_err(|e| {
                    self.store_error(
                        OP,
                        aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
                    )
                })?;
            for name in resp.table_names() {
                if let Some(n) =
                    name.strip_prefix(&self.config.prefix).and_then(|n| n.parse::<i64>().ok())
                {
                    out.push(n);
                }
            }
            match resp.last_evaluated_table_name() {
                Some(n) => start = Some(n.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// Series of one day matching `matchers`: fingerprint → labels.
    async fn day_series(
        &self,
        tenant: &str,
        day: i64,
        matchers: &[LabelMatcher],
    ) -> Result<BTreeMap<u64, Labels>> {
        let table = self.config.table_for_day(day);
        let items = self.query_all(&table, &series_hash(tenant, day), None).await?;
        let mut out = BTreeMap::new();
        for item in items {
            let r = blob(&item, "r")?;
            let fp = <[u8; 8]>::try_from(r.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| Error::corrupt("series row key"))?;
            let labels = decode_labels(&blob(&item, "v")?)?;
            if LabelMatcher::all_match(matchers, &labels) {
                out.insert(fp, labels);
            }
        }
        Ok(out)
    }

    /// Chunks of one day overlapping `[from, through]` of the given series.
    async fn day_chunks(
        &self,
        tenant: &str,
        day: i64,
        fps: &BTreeSet<u64>,
        from: i64,
        through: i64,
    ) -> Result<Vec<ChunkRef>> {
        let table = self.config.table_for_day(day);
        let h = chunk_hash(tenant, day);
        let items = if fps.len() <= PER_SERIES_QUERY_MAX {
            type Page<'a> =
                std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Item>>> + Send + 'a>>;
            let queries: Vec<Page<'_>> = fps
                .iter()
                .map(|fp| -> Page<'_> {
                    let mut lo = fp.to_be_bytes().to_vec();
                    lo.extend_from_slice(&[0u8; 20]);
                    let mut hi = fp.to_be_bytes().to_vec();
                    hi.extend_from_slice(&ts_key(through));
                    hi.extend_from_slice(&[0xff; 12]);
                    Box::pin(self.query_all(&table, &h, Some((lo, hi))))
                })
                .collect();
            use futures::StreamExt;
            let pages: Vec<Result<Vec<Item>>> =
                futures::stream::iter(queries).buffered(PER_SERIES_QUERY_MAX).collect().await;
            let mut items = Vec::new();
            for p in pages {
                items.extend(p?);
            }
            items
        } else {
            self.query_all(&table, &h, None).await?
        };
        let mut out = Vec::new();
        for item in items {
            let c = decode_chunk(&blob(&item, "r")?, &blob(&item, "v")?)?;
            if fps.contains(&c.fingerprint) && c.overlaps(from, through) {
                out.push(c);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl IndexStore for DynamoIndexStore {
    async fn write_chunks(&self, tenant: &str, refs: Vec<(Labels, ChunkRef)>) -> Result<()> {
        let days = group_by_day(tenant, refs)?;
        // table → (hash key, range key) → payload; one batch may not hold a key twice, so
        // duplicates (the same chunk ref twice) collapse here
        type Rows = BTreeMap<(String, Vec<u8>), Option<Vec<u8>>>;
        let mut by_table: BTreeMap<String, Rows> = BTreeMap::new();
        let mut remember: Vec<(String, u64)> = Vec::new();
        for (day, refs) in days {
            let table = self.config.table_for_day(day);
            let (sh, ch) = (series_hash(tenant, day), chunk_hash(tenant, day));
            let (series_key, days_key) =
                (format!("{table}/{sh}"), format!("{table}/{tenant}:days"));
            let rows = by_table.entry(table).or_default();
            let written = self.written.lock();
            if !written.contains(&(days_key.clone(), day as u64)) {
                rows.insert((days_hash(tenant), ts_key(day).to_vec()), None);
                remember.push((days_key, day as u64));
            }
            for (labels, c) in refs {
                if !written.contains(&(series_key.clone(), c.fingerprint)) {
                    let key = (sh.clone(), c.fingerprint.to_be_bytes().to_vec());
                    if let std::collections::btree_map::Entry::Vacant(slot) = rows.entry(key) {
                        slot.insert(Some(labels_value(&labels)));
                        remember.push((series_key.clone(), c.fingerprint));
                    }
                }
                rows.insert((ch.clone(), chunk_range_key(&c)), Some(chunk_value(&c)));
            }
        }
        for (table, rows) in by_table {
            let items: Vec<Item> = rows.into_iter().map(|((h, r), v)| row(h, r, v)).collect();
            self.batch_write(&table, items).await?;
        }
        // remembered only once written, so a failed write is written again next time
        let mut written = self.written.lock();
        if written.len() + remember.len() > self.config.written_series_cache {
            written.clear();
        }
        written.extend(remember);
        Ok(())
    }

    async fn series(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        from: i64,
        through: i64,
    ) -> Result<Vec<SeriesChunks>> {
        skald_chunk_store::validate_tenant(tenant)?;
        if from > through {
            return Ok(Vec::new());
        }
        let days = self.days_with_data(tenant, from, through).await?;
        type DayAnswer<'a> = std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Vec<(Labels, ChunkRef)>>> + Send + 'a>,
        >;
        let per_day: Vec<DayAnswer<'_>> = days
            .into_iter()
            .map(|day| -> DayAnswer<'_> {
                Box::pin(async move {
                    let series = self.day_series(tenant, day, matchers).await?;
                    if series.is_empty() {
                        return Ok::<_, Error>(Vec::new());
                    }
                    let fps: BTreeSet<u64> = series.keys().copied().collect();
                    let chunks = self.day_chunks(tenant, day, &fps, from, through).await?;
                    Ok(chunks
                        .into_iter()
                        .filter_map(|c| series.get(&c.fingerprint).map(|l| (l.clone(), c)))
                        .collect::<Vec<_>>())
                })
            })
            .collect();
        use futures::StreamExt;
        // a few days at a time: each day is one or more queries
        let answers: Vec<Result<Vec<(Labels, ChunkRef)>>> =
            futures::stream::iter(per_day).buffered(DAYS_IN_FLIGHT).collect().await;
        let mut merged = Merger::default();
        for day in answers {
            for (labels, c) in day? {
                merged.add(labels, [c]);
            }
        }
        Ok(merged.finish())
    }

    async fn label_names(
        &self,
        tenant: &str,
        from: i64,
        through: i64,
        matchers: &[LabelMatcher],
    ) -> Result<Vec<String>> {
        Ok(label_names_of(&self.series(tenant, matchers, from, through).await?))
    }

    async fn label_values(
        &self,
        tenant: &str,
        name: &str,
        from: i64,
        through: i64,
        matchers: &[LabelMatcher],
    ) -> Result<Vec<String>> {
        Ok(label_values_of(&self.series(tenant, matchers, from, through).await?, name))
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
        let err = DynamoClientConfig::from_url("http://k:Sup3rS3cret@h:1").unwrap_err();
        assert!(err.contains("http://k:xxxxx@h:1"), "{err}");
        let err = DynamoClientConfig::from_url("dynamodb://k:Sup3rS3cret@").unwrap_err();
        assert!(!err.contains("Sup3rS3cret"), "{err}");
        let c = DynamoClientConfig::from_url("dynamodb://k:Sup3rS3cret@127.0.0.1:8000").unwrap();
        assert!(!format!("{c:?}").contains("Sup3rS3cret"));
    }

    #[test]
    fn keys_round_trip_and_sort_by_time() {
        let c = ChunkRef {
            fingerprint: 0xdead_beef,
            from: -5,
            through: 1_700_000_000_000_000_000,
            checksum: 7,
            entries: 3,
            uncompressed_bytes: 100,
            compressed_bytes: 40,
            stats_bytes: 90,
        };
        assert_eq!(decode_chunk(&chunk_range_key(&c), &chunk_value(&c)).unwrap(), c);
        // a row from before the stats size: three varints
        let mut old_row = Vec::new();
        for v in [3u64, 100, 40] {
            put_uvarint(&mut old_row, v);
        }
        let old = decode_chunk(&chunk_range_key(&c), &old_row).unwrap();
        assert_eq!(old, ChunkRef { stats_bytes: 100, ..c });
        assert!(ts_key(-5) < ts_key(0) && ts_key(0) < ts_key(5));
        let l = Labels::parse(r#"{app="a", env="é"}"#).unwrap();
        assert_eq!(decode_labels(&labels_value(&l)).unwrap(), l);
        assert!(decode_labels(&[5, 1]).is_err());
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
