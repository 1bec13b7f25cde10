//! [`ObjectIndexStore`]: the index as immutable per-(tenant, day) segment objects.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use skald_chunk_store::cache::{ByteLru, CacheStats};
use skald_chunk_store::ChunkStore;
use skald_model::{LabelMatcher, Labels};

use crate::chunk_ref::ChunkRef;
use crate::error::{Error, Result};
use crate::segment::{Segment, SegmentBuilder};
use crate::store::{
    day_of, deleted_by_day, group_by_day, segment_label_names, segment_label_values, IndexStore,
    Merger, SeriesChunks,
};

/// Tuning of [`ObjectIndexStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectIndexStoreConfig {
    /// zstd-compress segment bodies.
    pub compress: bool,
    /// Capacity of the decoded-segment cache (approximate bytes); 0 disables it.
    pub segment_cache_bytes: usize,
    /// Segments fetched and decoded concurrently per query.
    pub load_concurrency: usize,
    /// Above this many days in a query range, list the tenant's whole index once instead of
    /// one listing per day.
    pub max_listed_days: usize,
}

impl Default for ObjectIndexStoreConfig {
    fn default() -> Self {
        ObjectIndexStoreConfig {
            compress: true,
            segment_cache_bytes: 256 * 1024 * 1024,
            load_concurrency: 16,
            max_listed_days: 64,
        }
    }
}

/// An [`IndexStore`] keeping its segments in a [`ChunkStore`]'s generic objects at
/// `<tenant>/index/<day>/<segment id>.seg`, where the id is the xxh3-128 of the segment's bytes
/// (so identical segments from replicas share one object and distinct ones never collide).
///
/// Queries list the segments of the days in range, load them (decoded segments are cached by
/// path: they are immutable), resolve matchers through postings and merge the answers.
pub struct ObjectIndexStore {
    store: Arc<dyn ChunkStore>,
    config: ObjectIndexStoreConfig,
    cache: ByteLru<String, Arc<Segment>>,
}

impl std::fmt::Debug for ObjectIndexStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectIndexStore").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Object path of segment `id` of `tenant` for index `day`.
pub fn segment_path(tenant: &str, day: i64, id: &str) -> String {
    format!("{tenant}/index/{day}/{id}.seg")
}

/// The index day of a segment path of `tenant`, or `None` when the path is not one.
fn segment_day(tenant: &str, path: &str) -> Option<i64> {
    crate::store::object_day(tenant, path, "index", "seg")
}

impl ObjectIndexStore {
    /// Stores segments in `store`.
    pub fn new(store: Arc<dyn ChunkStore>, config: ObjectIndexStoreConfig) -> Self {
        let cache = ByteLru::new(config.segment_cache_bytes);
        ObjectIndexStore { store, config, cache }
    }

    /// Counters of the decoded-segment cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Paths of the segments of `tenant` for the days overlapping `[from, through]`, sorted.
    pub async fn segment_paths(
        &self,
        tenant: &str,
        from: i64,
        through: i64,
    ) -> Result<Vec<String>> {
        skald_chunk_store::validate_tenant(tenant)?;
        if from > through {
            return Ok(Vec::new());
        }
        let (first, last) = (day_of(from), day_of(through));
        let in_range = |p: &String| segment_day(tenant, p).is_some_and(|d| d >= first && d <= last);
        let days = (last - first) as u128 + 1;
        let mut paths: Vec<String> = if days > self.config.max_listed_days as u128 {
            self.store.list_prefix(&format!("{tenant}/index")).await?
        } else {
            futures::stream::iter(first..=last)
                .map(|day| {
                    let prefix = format!("{tenant}/index/{day}");
                    async move { self.store.list_prefix(&prefix).await }
                })
                .buffered(self.config.load_concurrency.max(1))
                .try_concat()
                .await?
        };
        paths.retain(in_range);
        paths.sort_unstable();
        Ok(paths)
    }

    /// Loads one segment, from the cache when possible.
    async fn load(&self, path: String) -> Result<Arc<Segment>> {
        if let Some(seg) = self.cache.get(&path) {
            return Ok(seg);
        }
        let bytes = self.store.get_object(&path).await?;
        let decoded = tokio::task::spawn_blocking(move || Segment::decode(&bytes))
            .await
            .map_err(Error::Task)?;
        let seg = match decoded {
            Ok(seg) => Arc::new(seg),
            Err(e) => {
                tracing::warn!(path = %path, error = %e, "corrupt index segment");
                return Err(Error::CorruptSegment { path, reason: e.to_string() });
            }
        };
        self.cache.insert(path, seg.clone(), seg.approx_size());
        Ok(seg)
    }

    /// Loads every segment of `tenant` overlapping `[from, through]`.
    ///
    /// A segment listed but gone when it is read was replaced by a compaction or retention
    /// rewrite, which writes the new segment before it deletes the old ones: the days are
    /// listed again and read anew (a few times), so a query racing a rewrite sees either the
    /// old segments or the new one, never a mix missing entries.
    async fn segments(&self, tenant: &str, from: i64, through: i64) -> Result<Vec<Arc<Segment>>> {
        const ATTEMPTS: usize = 4;
        let mut attempt = 1;
        loop {
            let paths = self.segment_paths(tenant, from, through).await?;
            let loaded = futures::stream::iter(paths)
                .map(|p| self.load(p))
                .buffer_unordered(self.config.load_concurrency.max(1))
                .try_collect()
                .await;
            match loaded {
                Err(Error::Store(e)) if e.is_not_found() && attempt < ATTEMPTS => {
                    tracing::debug!(
                        tenant,
                        attempt,
                        "index segment replaced while read, listing again"
                    );
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Replaces the segments of `tenant`'s `day` with one holding their entries except the
    /// chunks `exclude` names (identities); returns how many segments were replaced. With
    /// nothing to exclude, a day of one segment is left as it is. The new segment is written
    /// before the old ones are deleted, so every moment a listing of the day finds all of the
    /// day's entries (the old segments, or the new one, or both: answers merge duplicates).
    async fn rewrite_day(
        &self,
        tenant: &str,
        day: i64,
        exclude: &HashSet<(i64, i64, u64, u32)>,
    ) -> Result<usize> {
        skald_chunk_store::validate_tenant(tenant)?;
        let mut paths = self.store.list_prefix(&format!("{tenant}/index/{day}")).await?;
        paths.retain(|p| segment_day(tenant, p) == Some(day));
        if paths.is_empty() || (exclude.is_empty() && paths.len() == 1) {
            return Ok(0);
        }
        let mut segments = Vec::with_capacity(paths.len());
        for p in &paths {
            match self.store.get_object(p).await {
                Ok(bytes) => segments.push(Segment::decode(&bytes).map_err(|e| {
                    Error::CorruptSegment { path: p.clone(), reason: e.to_string() }
                })?),
                // another rewrite got there first; the next pass sees its result
                Err(e) if e.is_not_found() => return Ok(0),
                Err(e) => return Err(e.into()),
            }
        }
        let compress = self.config.compress;
        let exclude = exclude.clone();
        let (removed, encoded) =
            tokio::task::spawn_blocking(move || -> Result<(usize, Option<Vec<u8>>)> {
                let mut builder = SegmentBuilder::new();
                let mut removed = 0;
                for seg in &segments {
                    for s in seg.series() {
                        for c in &s.chunks {
                            if exclude.contains(&c.identity()) {
                                removed += 1;
                            } else {
                                builder.add(s.labels.clone(), *c);
                            }
                        }
                    }
                }
                if builder.is_empty() {
                    return Ok((removed, None));
                }
                Ok((removed, Some(builder.encode(compress)?)))
            })
            .await
            .map_err(Error::Task)??;
        if removed == 0 && paths.len() == 1 {
            return Ok(0);
        }
        let replaced = crate::store::replace_day_objects(&*self.store, paths, encoded, |id| {
            segment_path(tenant, day, id)
        })
        .await?;
        tracing::debug!(tenant, day, replaced, removed, "rewrote index day");
        Ok(replaced)
    }
}

#[async_trait]
impl IndexStore for ObjectIndexStore {
    async fn write_chunks(&self, tenant: &str, refs: Vec<(Labels, ChunkRef)>) -> Result<()> {
        if refs.is_empty() {
            return Ok(());
        }
        let tenant_owned = tenant.to_string();
        let compress = self.config.compress;
        let encoded =
            tokio::task::spawn_blocking(move || -> Result<Vec<(String, bytes::Bytes)>> {
                let mut out = Vec::new();
                for (day, items) in group_by_day(&tenant_owned, refs)? {
                    let mut builder = SegmentBuilder::new();
                    for (labels, c) in items {
                        builder.add(labels, c);
                    }
                    let bytes = builder.encode(compress)?;
                    let id = crate::store::content_id(&bytes);
                    out.push((segment_path(&tenant_owned, day, &id), bytes::Bytes::from(bytes)));
                }
                Ok(out)
            })
            .await
            .map_err(Error::Task)??;
        futures::future::try_join_all(encoded.into_iter().map(|(path, bytes)| async move {
            self.store.put_object(&path, bytes).await?;
            tracing::debug!(path = %path, "wrote index segment");
            Ok::<(), Error>(())
        }))
        .await?;
        Ok(())
    }

    /// Writes `new` as a segment of its own, then rewrites the days `old` spans without it
    /// ([`IndexStore::delete_chunks`]: each day's segments become one, written before the old
    /// ones are deleted).
    async fn replace_chunks(
        &self,
        tenant: &str,
        old: Vec<(Labels, ChunkRef)>,
        new: Vec<(Labels, ChunkRef)>,
    ) -> Result<()> {
        group_by_day(tenant, old.clone())?;
        self.write_chunks(tenant, new).await?;
        self.delete_chunks(tenant, old).await
    }

    async fn days(&self, tenant: &str) -> Result<Vec<i64>> {
        skald_chunk_store::validate_tenant(tenant)?;
        let paths = self.store.list_prefix(&format!("{tenant}/index")).await?;
        let days: BTreeSet<i64> = paths.iter().filter_map(|p| segment_day(tenant, p)).collect();
        Ok(days.into_iter().collect())
    }

    async fn delete_chunks(&self, tenant: &str, refs: Vec<(Labels, ChunkRef)>) -> Result<()> {
        for (day, exclude) in deleted_by_day(&refs) {
            self.rewrite_day(tenant, day, &exclude).await?;
        }
        Ok(())
    }

    async fn compact_day(&self, tenant: &str, day: i64) -> Result<usize> {
        self.rewrite_day(tenant, day, &HashSet::new()).await
    }

    async fn series(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        from: i64,
        through: i64,
    ) -> Result<Vec<SeriesChunks>> {
        let segments = self.segments(tenant, from, through).await?;
        let matchers = matchers.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut merger = Merger::default();
            for seg in &segments {
                merger.add_series(seg, &matchers, from, through);
            }
            merger.finish()
        })
        .await
        .map_err(Error::Task)
    }

    async fn label_names(
        &self,
        tenant: &str,
        from: i64,
        through: i64,
        matchers: &[LabelMatcher],
    ) -> Result<Vec<String>> {
        let segments = self.segments(tenant, from, through).await?;
        let matchers = matchers.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut out = BTreeSet::new();
            for seg in &segments {
                segment_label_names(seg, &matchers, from, through, &mut out);
            }
            out.into_iter().collect()
        })
        .await
        .map_err(Error::Task)
    }

    async fn label_values(
        &self,
        tenant: &str,
        name: &str,
        from: i64,
        through: i64,
        matchers: &[LabelMatcher],
    ) -> Result<Vec<String>> {
        let segments = self.segments(tenant, from, through).await?;
        let matchers = matchers.to_vec();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            let mut out = BTreeSet::new();
            for seg in &segments {
                segment_label_values(seg, &name, &matchers, from, through, &mut out);
            }
            out.into_iter().collect()
        })
        .await
        .map_err(Error::Task)
    }
}

#[cfg(test)]
mod tests;
