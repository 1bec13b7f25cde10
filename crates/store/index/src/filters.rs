//! Filter tables: the n-gram filter of every flushed chunk, kept beside the index so that a
//! needle search drops the chunks that cannot match before it fetches anything.
//!
//! One immutable table per (tenant, day, flush) at `<tenant>/filters/<day>/<xxh3-128>.flt`,
//! written by the ingester after the chunks and before their index entries (a chunk spanning
//! several days is in the table of each). A table maps a chunk's identity (fingerprint, bounds,
//! checksum) to its whole-chunk filter ([`NgramFilter`], folded to [`TABLE_MAX_FILL`]); the
//! byte format is `skald_needle::FilterTable`'s (`FILTER.md`). Tables are content-addressed like segments, so replicas
//! writing the same chunks share one object. They do not depend on where the index is kept
//! (segments or DynamoDB): every period keeps its chunks in the object store, and so its tables.
//!
//! A chunk without a table entry (flushed before tables existed, or a table that could not be
//! read) is simply not judged here; its own filters still are, when its end is read.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use skald_chunk_store::cache::ByteLru;
use skald_chunk_store::ChunkStore;
use skald_needle::{ChunkId, FilterTable, NgramFilter};

use crate::chunk_ref::ChunkRef;
use crate::error::{Error, Result};
use crate::store::{day_of, days_spanned, MAX_CHUNK_DAYS};

/// The fill a chunk's filter is folded down to in a table (while it stays under it): the
/// chunk's own bound (`skald_needle::DEFAULT_MAX_FILL`), so a table holds the chunk's filter
/// as it is. At 0.5 a table would cost half as much, but by the collision estimate a needle
/// such as `needle-7f3a9c`, whose distinctive 3-grams are its six hex ones, would pass about
/// 1 chunk in 64 (0.5^6) it is absent from; at 0.25, 1 in 4 000 (`FILTER.md`).
pub const TABLE_MAX_FILL: f64 = skald_needle::DEFAULT_MAX_FILL;

fn id_of(c: &ChunkRef) -> ChunkId {
    ChunkId { fingerprint: c.fingerprint, from: c.from, through: c.through, checksum: c.checksum }
}

/// The table of `chunks` of one day: each filter folded to [`TABLE_MAX_FILL`].
pub fn filter_table(chunks: impl IntoIterator<Item = (ChunkRef, NgramFilter)>) -> FilterTable {
    FilterTable::new(
        chunks
            .into_iter()
            .map(|(c, f)| (id_of(&c), f.shrink(TABLE_MAX_FILL, skald_needle::MIN_LOG2_BITS))),
    )
}

/// Object path of filter table `id` of `tenant` for index `day`.
pub fn filter_table_path(tenant: &str, day: i64, id: &str) -> String {
    format!("{tenant}/filters/{day}/{id}.flt")
}

/// The index day of a filter table path of `tenant`, or `None` when the path is not one.
fn table_day(tenant: &str, path: &str) -> Option<i64> {
    crate::store::object_day(tenant, path, "filters", "flt")
}

/// The filter tables of one query's days: a chunk's filter from whichever table has it.
#[derive(Debug, Clone, Default)]
pub struct ChunkFilters {
    tables: Vec<Arc<FilterTable>>,
    by_id: HashMap<ChunkId, (usize, usize)>,
}

impl ChunkFilters {
    /// Indexes `tables`.
    pub fn new(tables: Vec<Arc<FilterTable>>) -> ChunkFilters {
        let mut by_id = HashMap::with_capacity(tables.iter().map(|t| t.len()).sum());
        for (t, table) in tables.iter().enumerate() {
            for (i, (id, _)) in table.entries().iter().enumerate() {
                by_id.entry(*id).or_insert((t, i));
            }
        }
        ChunkFilters { tables, by_id }
    }

    /// The filter of `chunk`, when a table has it.
    pub fn get(&self, chunk: &ChunkRef) -> Option<&NgramFilter> {
        let &(t, i) = self.by_id.get(&id_of(chunk))?;
        self.tables.get(t)?.entries().get(i).map(|(_, f)| f)
    }

    /// Chunks with a filter.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when no chunk has a filter.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// Writes and reads filter tables in a [`ChunkStore`]'s generic objects; decoded tables are
/// cached by path (they never change).
pub struct FilterIndex {
    store: Arc<dyn ChunkStore>,
    cache: ByteLru<String, Arc<FilterTable>>,
    /// Tables fetched and decoded concurrently.
    concurrency: usize,
}

impl std::fmt::Debug for FilterIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterIndex").finish_non_exhaustive()
    }
}

/// Above this many days in a query, a needle search reads no filter table (and judges chunks by
/// their own filters only): one listing per day would cost more than it saves.
pub const MAX_FILTER_DAYS: i64 = 64;

impl FilterIndex {
    /// Tables in `store`, with a decoded-table cache of about `cache_bytes` (0: none, for a
    /// writer).
    pub fn new(store: Arc<dyn ChunkStore>, cache_bytes: usize) -> FilterIndex {
        FilterIndex { store, cache: ByteLru::new(cache_bytes), concurrency: 16 }
    }

    /// Writes the filters of `chunks` of `tenant`: one table per day the chunks span.
    pub async fn write(&self, tenant: &str, chunks: Vec<(ChunkRef, NgramFilter)>) -> Result<()> {
        skald_chunk_store::validate_tenant(tenant)?;
        if chunks.is_empty() {
            return Ok(());
        }
        let tenant_owned = tenant.to_string();
        let tables = tokio::task::spawn_blocking(move || -> Result<Vec<(String, Vec<u8>)>> {
            let mut by_day: std::collections::BTreeMap<i64, Vec<(ChunkRef, NgramFilter)>> =
                Default::default();
            for (c, f) in chunks {
                let span = days_spanned(c.from, c.through);
                if span.end() - span.start() >= MAX_CHUNK_DAYS {
                    return Err(Error::InvalidChunkRef {
                        labels: format!("fingerprint {:016x}", c.fingerprint),
                        from: c.from,
                        through: c.through,
                        reason: "chunk spans too many days",
                    });
                }
                for day in span {
                    by_day.entry(day).or_default().push((c, f.clone()));
                }
            }
            Ok(by_day
                .into_iter()
                .map(|(day, items)| {
                    let bytes = filter_table(items).encode();
                    let id = crate::store::content_id(&bytes);
                    (filter_table_path(&tenant_owned, day, &id), bytes)
                })
                .collect())
        })
        .await
        .map_err(Error::Task)??;
        futures::future::try_join_all(tables.into_iter().map(|(path, bytes)| async move {
            self.store.put_object(&path, bytes::Bytes::from(bytes)).await?;
            tracing::debug!(path = %path, "wrote filter table");
            Ok::<(), Error>(())
        }))
        .await?;
        Ok(())
    }

    /// The filters of the chunks of `tenant` in the days overlapping `[from, through]`: one
    /// listing per day, then the tables (cached). A table that cannot be read or decoded is
    /// left out with a warning: its chunks are judged by their own filters instead.
    pub async fn filters(&self, tenant: &str, from: i64, through: i64) -> Result<ChunkFilters> {
        skald_chunk_store::validate_tenant(tenant)?;
        let (first, last) = (day_of(from), day_of(through));
        if from > through || last - first >= MAX_FILTER_DAYS {
            return Ok(ChunkFilters::default());
        }
        let mut paths: Vec<String> = futures::stream::iter(first..=last)
            .map(|day| {
                let prefix = format!("{tenant}/filters/{day}");
                async move { self.store.list_prefix(&prefix).await }
            })
            .buffered(self.concurrency)
            .try_concat()
            .await?;
        paths.retain(|p| table_day(tenant, p).is_some_and(|d| d >= first && d <= last));
        paths.sort_unstable();
        let tables: Vec<Option<Arc<FilterTable>>> = futures::stream::iter(paths)
            .map(|p| self.load(p))
            .buffered(self.concurrency)
            .collect()
            .await;
        Ok(ChunkFilters::new(tables.into_iter().flatten().collect()))
    }

    /// The days of `tenant` with filter tables, sorted.
    pub async fn days(&self, tenant: &str) -> Result<Vec<i64>> {
        skald_chunk_store::validate_tenant(tenant)?;
        let paths = self.store.list_prefix(&format!("{tenant}/filters")).await?;
        let days: std::collections::BTreeSet<i64> =
            paths.iter().filter_map(|p| table_day(tenant, p)).collect();
        Ok(days.into_iter().collect())
    }

    /// Replaces the tables of `tenant`'s `day` with one holding their entries except the
    /// chunks `exclude` names; returns how many tables were replaced. With nothing to exclude
    /// a day of one table is left as it is; a day left with no entry loses all its tables.
    /// The new table is written before the old ones are deleted; a needle search that lists
    /// the old tables and finds one gone judges its chunks by their own filters (still right).
    pub async fn rewrite_day(
        &self,
        tenant: &str,
        day: i64,
        exclude: &std::collections::HashSet<ChunkId>,
    ) -> Result<usize> {
        skald_chunk_store::validate_tenant(tenant)?;
        let mut paths = self.store.list_prefix(&format!("{tenant}/filters/{day}")).await?;
        paths.retain(|p| table_day(tenant, p) == Some(day));
        if paths.is_empty() || (exclude.is_empty() && paths.len() == 1) {
            return Ok(0);
        }
        let mut entries: HashMap<ChunkId, NgramFilter> = HashMap::new();
        let mut removed = 0usize;
        for p in &paths {
            let bytes = match self.store.get_object(p).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => return Ok(0),
                Err(e) => return Err(e.into()),
            };
            // a table that cannot be decoded is dropped with the rewrite: its chunks are
            // judged by their own filters, as when it could not be read
            let table = match FilterTable::decode(&bytes) {
                Ok(t) => t,
                Err(error) => {
                    tracing::warn!(path = %p, %error, "corrupt filter table dropped by compaction");
                    continue;
                }
            };
            for (id, f) in table.entries() {
                if exclude.contains(id) {
                    removed += 1;
                } else {
                    entries.entry(*id).or_insert_with(|| f.clone());
                }
            }
        }
        if removed == 0 && paths.len() == 1 {
            return Ok(0);
        }
        let table = (!entries.is_empty()).then(|| FilterTable::new(entries).encode());
        crate::store::replace_day_objects(&*self.store, paths, table, |id| {
            filter_table_path(tenant, day, id)
        })
        .await
    }

    /// One table, from the cache when possible; `None` (logged) when it cannot be read.
    async fn load(&self, path: String) -> Option<Arc<FilterTable>> {
        if let Some(t) = self.cache.get(&path) {
            return Some(t);
        }
        let bytes = match self.store.get_object(&path).await {
            Ok(b) => b,
            Err(error) if error.is_not_found() => {
                // replaced by a compaction since it was listed
                tracing::debug!(path = %path, "filter table gone");
                return None;
            }
            Err(error) => {
                tracing::warn!(path = %path, %error, "cannot read filter table");
                return None;
            }
        };
        let decoded = tokio::task::spawn_blocking(move || FilterTable::decode(&bytes)).await;
        match decoded {
            Ok(Ok(t)) => {
                let t = Arc::new(t);
                self.cache.insert(path, t.clone(), t.approx_size());
                Some(t)
            }
            Ok(Err(error)) => {
                tracing::warn!(path = %path, %error, "corrupt filter table");
                None
            }
            Err(error) => {
                tracing::warn!(path = %path, %error, "filter table task failed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
