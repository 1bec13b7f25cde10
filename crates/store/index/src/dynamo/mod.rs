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

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, PutRequest, ReturnConsumedCapacity, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use parking_lot::Mutex;
use skald_model::{LabelMatcher, Labels};

use crate::chunk_ref::ChunkRef;
use crate::error::{Error, Result};
use crate::store::{
    day_of, days_spanned, deleted_by_day, group_by_day, IndexStore, Merger, SeriesChunks,
};

mod config;
mod failure;
mod rows;
mod schema;
pub mod web_identity;

pub use config::{DynamoClientConfig, DynamoConfigError, DynamoIndexConfig, DynamoMetrics};
pub use failure::{classify, error_text, Failure, FailureKind};
use rows::{
    blob, chunk_hash, chunk_range_key, chunk_value, days_hash, decode_chunk, decode_labels,
    labels_value, row, series_hash, ts_from_key, ts_key, Item,
};
pub use schema::{attribute_definitions, key_schema, table_name, HASH_KEY, RANGE_KEY, VALUE};

/// Items per `BatchWriteItem` call (DynamoDB's limit).
pub const BATCH_WRITE_ITEMS: usize = 25;
/// Matched series at or below which chunks are fetched with one bounded query per series
/// rather than one query over the whole day.
const PER_SERIES_QUERY_MAX: usize = 8;
/// Ranges of at least this many days are read only on the days the tenant's day rows name.
const LONG_RANGE_DAYS: i64 = 32;
/// Days read at once by one query.
const DAYS_IN_FLIGHT: usize = 4;

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

    /// Writes `items` into `table` (see [`Self::send_writes`]).
    async fn batch_write(&self, table: &str, items: Vec<Item>) -> Result<()> {
        const OP: &str = "BatchWriteItem";
        let requests = items
            .into_iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| self.store_error(OP, e.to_string()))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>>>()?;
        self.send_writes(table, requests).await
    }

    /// Deletes the rows with keys `keys` (hash and range key only) from `table`, as
    /// [`Self::batch_write`] writes.
    async fn batch_delete(&self, table: &str, keys: Vec<Item>) -> Result<()> {
        const OP: &str = "BatchWriteItem";
        let requests = keys
            .into_iter()
            .map(|key| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map_err(|e| self.store_error(OP, e.to_string()))?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>>>()?;
        self.send_writes(table, requests).await
    }

    /// Sends `requests` to `table`, 25 per call, resending unprocessed ones and retrying
    /// throttled or failed calls with backoff.
    async fn send_writes(&self, table: &str, requests: Vec<WriteRequest>) -> Result<()> {
        const OP: &str = "BatchWriteItem";
        for group in requests.chunks(BATCH_WRITE_ITEMS) {
            let mut pending: Vec<WriteRequest> = group.to_vec();
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
                    Err(e) => {
                        let failure = classify(&e);
                        if failure.is_retryable() && attempt < self.config.max_retries {
                            if failure.kind == FailureKind::Throttled {
                                self.metrics.throttled.with_label_values(&[OP]).inc();
                            }
                            tracing::warn!(table, error = %failure.message, attempt, "DynamoDB write failed, retrying");
                            tokio::time::sleep(self.backoff(attempt)).await;
                            attempt += 1;
                        } else if failure.kind == FailureKind::MissingTable {
                            return Err(self.store_error(
                                OP,
                                format!(
                                    "table {table} does not exist (is the table-manager running?)"
                                ),
                            ));
                        } else {
                            return Err(
                                self.store_error(OP, format!("{table}: {}", failure.message))
                            );
                        }
                    }
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
                    // `h` and `r` are HASH_KEY and RANGE_KEY
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
                Err(e) => {
                    let failure = classify(&e);
                    if failure.kind == FailureKind::MissingTable {
                        return Ok(out);
                    } else if failure.is_retryable() && attempt < self.config.max_retries {
                        if failure.kind == FailureKind::Throttled {
                            self.metrics.throttled.with_label_values(&[OP]).inc();
                        }
                        tracing::warn!(table, error = %failure.message, attempt, "DynamoDB query failed, retrying");
                        tokio::time::sleep(self.backoff(attempt)).await;
                        attempt += 1;
                    } else {
                        return Err(self.store_error(OP, format!("{table}: {}", failure.message)));
                    }
                }
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
            let table = table_name(&self.config.prefix, n);
            for item in self.query_all(&table, &days_hash(tenant), None).await? {
                let r = blob(&item, RANGE_KEY)?;
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
                .map_err(|e| self.store_error(OP, error_text(&e)))?;
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
            let r = blob(&item, RANGE_KEY)?;
            let fp = <[u8; 8]>::try_from(r.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| Error::corrupt("series row key"))?;
            let labels = decode_labels(&blob(&item, VALUE)?)?;
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
            let c = decode_chunk(&blob(&item, RANGE_KEY)?, &blob(&item, VALUE)?)?;
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

    /// Writes `new`, then deletes the chunk rows of `old` in every day they span (series and
    /// day rows stay: a series without chunk rows in a day is not returned).
    async fn replace_chunks(
        &self,
        tenant: &str,
        old: Vec<(Labels, ChunkRef)>,
        new: Vec<(Labels, ChunkRef)>,
    ) -> Result<()> {
        self.write_chunks(tenant, new).await?;
        let mut by_table: BTreeMap<String, BTreeSet<(String, Vec<u8>)>> = BTreeMap::new();
        for (day, refs) in group_by_day(tenant, old)? {
            let table = self.config.table_for_day(day);
            let keys = by_table.entry(table).or_default();
            for (_, c) in refs {
                keys.insert((chunk_hash(tenant, day), chunk_range_key(&c)));
            }
        }
        for (table, keys) in by_table {
            let items = keys.into_iter().map(|(h, r)| row(h, r, None)).collect();
            self.batch_delete(&table, items).await?;
        }
        Ok(())
    }

    async fn days(&self, tenant: &str) -> Result<Vec<i64>> {
        skald_chunk_store::validate_tenant(tenant)?;
        // far enough apart to be read from the day rows of the tables that exist
        self.days_with_data(tenant, (day_of(i64::MIN) + 1) * crate::store::NANOS_PER_DAY, i64::MAX)
            .await
    }

    async fn delete_chunks(&self, tenant: &str, refs: Vec<(Labels, ChunkRef)>) -> Result<()> {
        skald_chunk_store::validate_tenant(tenant)?;
        let mut by_day: BTreeMap<i64, Vec<ChunkRef>> = BTreeMap::new();
        let listed = deleted_by_day(&refs);
        for (_, c) in &refs {
            for day in days_spanned(c.from, c.through) {
                if listed.get(&day).is_some_and(|ids| ids.contains(&c.identity())) {
                    by_day.entry(day).or_default().push(*c);
                }
            }
        }
        for (day, chunks) in by_day {
            let table = self.config.table_for_day(day);
            let h = chunk_hash(tenant, day);
            // a batch may not name a key twice
            let keys: BTreeSet<Vec<u8>> = chunks.iter().map(chunk_range_key).collect();
            let keys: Vec<Item> = keys.into_iter().map(|r| row(h.clone(), r, None)).collect();
            self.batch_delete(&table, keys).await?;
        }
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
}
