//! The [`IndexStore`] contract and the helpers its implementations share.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use async_trait::async_trait;
use skald_model::{LabelMatcher, Labels};

use crate::chunk_ref::{sort_dedup, ChunkRef};
use crate::error::{Error, Result};
use crate::segment::Segment;

/// Nanoseconds per index day.
pub const NANOS_PER_DAY: i64 = 86_400_000_000_000;
/// Longest chunk the index accepts, in days spanned (a chunk is listed in each of them).
pub const MAX_CHUNK_DAYS: i64 = 31;

/// The index day of a timestamp: `ts_ns / 86_400e9`, rounded toward negative infinity.
pub fn day_of(ts: i64) -> i64 {
    ts.div_euclid(NANOS_PER_DAY)
}

/// The content-addressed id of an immutable index object: the xxh3-128 of its bytes, 32 hex
/// digits (identical objects, e.g. from replicas, share one path; different ones never
/// collide).
pub(crate) fn content_id(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// Replaces a day's objects `old` by `new` (its bytes, stored at `path_of(content id)`), or by
/// nothing: the new object is written before any old one is deleted, so a reader always finds
/// the day's entries in one or the other. Returns how many old objects were deleted.
pub(crate) async fn replace_day_objects(
    store: &dyn skald_chunk_store::ChunkStore,
    old: Vec<String>,
    new: Option<Vec<u8>>,
    path_of: impl Fn(&str) -> String,
) -> Result<usize> {
    let mut keep = None;
    if let Some(bytes) = new {
        let path = path_of(&content_id(&bytes));
        store.put_object(&path, bytes::Bytes::from(bytes)).await?;
        keep = Some(path);
    }
    let mut deleted = 0;
    for p in old {
        if Some(&p) != keep.as_ref() {
            store.delete_object(&p).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// The day of a per-day object path `<tenant>/<dir>/<day>/<id>.<ext>`, or `None` when `path`
/// is not one (index segments, filter tables).
pub(crate) fn object_day(tenant: &str, path: &str, dir: &str, ext: &str) -> Option<i64> {
    let rest =
        path.strip_prefix(tenant)?.strip_prefix('/')?.strip_prefix(dir)?.strip_prefix('/')?;
    let (day, file) = rest.split_once('/')?;
    let id = file.strip_suffix(ext)?.strip_suffix('.')?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    day.parse().ok()
}

/// Index days overlapped by the closed interval `[from, through]`.
pub fn days_spanned(from: i64, through: i64) -> RangeInclusive<i64> {
    day_of(from)..=day_of(through)
}

/// A series and its chunks overlapping a queried time range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesChunks {
    /// The stream's labels.
    pub labels: Labels,
    /// Chunks sorted by `from`, deduplicated.
    pub chunks: Vec<ChunkRef>,
}

/// The label index: which series exist and in which chunks their entries live.
///
/// Time ranges are closed intervals `[from, through]` in nanoseconds (a half-open
/// `[start, end)` query passes `through = end - 1`). A chunk is returned when it overlaps the
/// range. Matchers follow Prometheus semantics: a missing label has the empty value, so a
/// matcher that accepts `""` also accepts series lacking the label. An empty matcher list
/// selects every series.
#[async_trait]
pub trait IndexStore: Send + Sync {
    /// Records chunks that were written to the chunk store. Chunks are grouped by index day
    /// (a chunk spanning several days is listed in each), and each day gets one new segment.
    async fn write_chunks(&self, tenant: &str, refs: Vec<(Labels, ChunkRef)>) -> Result<()>;

    /// Series matching `matchers` with at least one chunk overlapping `[from, through]`, sorted
    /// by labels, each with only its overlapping chunks.
    async fn series(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        from: i64,
        through: i64,
    ) -> Result<Vec<SeriesChunks>>;

    /// Swaps chunk refs of `tenant`: records `new` (as [`IndexStore::write_chunks`] does),
    /// then removes `old` (each with its series' labels). A query running meanwhile may see
    /// both, never neither: `new` is recorded before `old` goes, and readers drop the duplicate
    /// entries of overlapping chunks. Removing a ref that is not recorded succeeds. Used by
    /// the delete API's chunk rewrite (`skald-deletes`); an empty `new` only removes.
    async fn replace_chunks(
        &self,
        tenant: &str,
        old: Vec<(Labels, ChunkRef)>,
        new: Vec<(Labels, ChunkRef)>,
    ) -> Result<()>;

    /// Sorted, distinct label names of the series `series(matchers, from, through)` returns.
    ///
    /// By default derived from [`IndexStore::series`]; a store with a cheaper way (names from
    /// a symbol table, say) overrides it.
    async fn label_names(
        &self,
        tenant: &str,
        from: i64,
        through: i64,
        matchers: &[LabelMatcher],
    ) -> Result<Vec<String>> {
        Ok(label_names_of(&self.series(tenant, matchers, from, through).await?))
    }

    /// Sorted, distinct non-empty values of label `name` over the same series.
    ///
    /// By default derived from [`IndexStore::series`], like [`IndexStore::label_names`].
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

    /// The index days of `tenant` holding entries, sorted (the compactor's unit of work).
    async fn days(&self, tenant: &str) -> Result<Vec<i64>>;

    /// Removes the entries of `refs` (a chunk spanning several days from each of them):
    /// queries no longer return them. Chunks that are not indexed are ignored, so a repeated
    /// call is harmless. The chunk objects themselves are the caller's to delete, after this.
    async fn delete_chunks(&self, tenant: &str, refs: Vec<(Labels, ChunkRef)>) -> Result<()>;

    /// Merges the storage units of one index day into one (the segments of an object-store
    /// index), so that queries read fewer objects; answers do not change. Returns how many
    /// units were replaced (0: nothing to do, or a store without such units).
    async fn compact_day(&self, _tenant: &str, _day: i64) -> Result<usize> {
        Ok(0)
    }
}

/// The days of `refs`, each with the identities of the chunks listed in it.
pub(crate) fn deleted_by_day(
    refs: &[(Labels, ChunkRef)],
) -> BTreeMap<i64, std::collections::HashSet<(i64, i64, u64, u32)>> {
    let mut out: BTreeMap<i64, std::collections::HashSet<_>> = BTreeMap::new();
    for (_, c) in refs {
        if c.from > c.through || c.through - c.from >= MAX_CHUNK_DAYS * NANOS_PER_DAY {
            continue;
        }
        for day in days_spanned(c.from, c.through) {
            out.entry(day).or_default().insert(c.identity());
        }
    }
    out
}

/// Checks the tenant and every chunk ref, then groups refs by index day.
pub(crate) fn group_by_day(
    tenant: &str,
    refs: Vec<(Labels, ChunkRef)>,
) -> Result<BTreeMap<i64, Vec<(Labels, ChunkRef)>>> {
    skald_chunk_store::validate_tenant(tenant)?;
    let mut days: BTreeMap<i64, Vec<(Labels, ChunkRef)>> = BTreeMap::new();
    for (labels, c) in refs {
        let invalid = |reason| Error::InvalidChunkRef {
            labels: labels.to_string(),
            from: c.from,
            through: c.through,
            reason,
        };
        if c.from > c.through {
            return Err(invalid("from is after through"));
        }
        let span = days_spanned(c.from, c.through);
        if span.end() - span.start() >= MAX_CHUNK_DAYS {
            return Err(invalid("chunk spans too many days"));
        }
        for day in span {
            days.entry(day).or_default().push((labels.clone(), c));
        }
    }
    Ok(days)
}

/// Merges the answers of many segments to one query.
#[derive(Debug, Default)]
pub(crate) struct Merger {
    series: BTreeMap<Labels, Vec<ChunkRef>>,
}

impl Merger {
    /// Adds the matching series of `seg` with their chunks overlapping `[from, through]`.
    pub(crate) fn add_series(
        &mut self,
        seg: &Segment,
        matchers: &[LabelMatcher],
        from: i64,
        through: i64,
    ) {
        if !seg.overlaps(from, through) {
            return;
        }
        for id in seg.select(matchers) {
            let Some(s) = seg.series().get(id as usize) else { continue };
            let mut chunks = s.chunks.iter().filter(|c| c.overlaps(from, through)).peekable();
            if chunks.peek().is_none() {
                continue;
            }
            self.series.entry(s.labels.clone()).or_default().extend(chunks);
        }
    }

    /// Adds chunks of a series (already filtered to the queried range).
    pub(crate) fn add(&mut self, labels: Labels, chunks: impl IntoIterator<Item = ChunkRef>) {
        self.series.entry(labels).or_default().extend(chunks);
    }

    pub(crate) fn finish(self) -> Vec<SeriesChunks> {
        self.series
            .into_iter()
            .map(|(labels, mut chunks)| {
                sort_dedup(&mut chunks);
                SeriesChunks { labels, chunks }
            })
            .collect()
    }
}

/// Sorted, distinct label names of `series`.
fn label_names_of(series: &[SeriesChunks]) -> Vec<String> {
    let names: BTreeSet<&str> =
        series.iter().flat_map(|s| s.labels.iter().map(|l| l.name.as_str())).collect();
    names.into_iter().map(str::to_owned).collect()
}

/// Sorted, distinct non-empty values of label `name` in `series`.
fn label_values_of(series: &[SeriesChunks], name: &str) -> Vec<String> {
    let values: BTreeSet<&str> =
        series.iter().filter_map(|s| s.labels.get(name)).filter(|v| !v.is_empty()).collect();
    values.into_iter().map(str::to_owned).collect()
}

/// The sorted union of several string lists.
pub(crate) fn sorted_union(lists: impl IntoIterator<Item = Vec<String>>) -> Vec<String> {
    let set: BTreeSet<String> = lists.into_iter().flatten().collect();
    set.into_iter().collect()
}

/// Label names of the selected series of `seg` that have chunks in `[from, through]`.
pub(crate) fn segment_label_names(
    seg: &Segment,
    matchers: &[LabelMatcher],
    from: i64,
    through: i64,
    out: &mut BTreeSet<String>,
) {
    if !seg.overlaps(from, through) {
        return;
    }
    if matchers.is_empty() && seg.within(from, through) {
        out.extend(seg.label_names().map(str::to_owned));
        return;
    }
    for id in seg.select(matchers) {
        let Some(s) = seg.series().get(id as usize) else { continue };
        if s.chunks.iter().any(|c| c.overlaps(from, through)) {
            out.extend(s.labels.iter().map(|l| l.name.clone()));
        }
    }
}

/// Values of `name` of the selected series of `seg` that have chunks in `[from, through]`.
pub(crate) fn segment_label_values(
    seg: &Segment,
    name: &str,
    matchers: &[LabelMatcher],
    from: i64,
    through: i64,
    out: &mut BTreeSet<String>,
) {
    if !seg.overlaps(from, through) {
        return;
    }
    if matchers.is_empty() && seg.within(from, through) {
        out.extend(seg.label_values(name).filter(|v| !v.is_empty()).map(str::to_owned));
        return;
    }
    for id in seg.select(matchers) {
        let Some(s) = seg.series().get(id as usize) else { continue };
        match s.labels.get(name) {
            Some(v) if !v.is_empty() && s.chunks.iter().any(|c| c.overlaps(from, through)) => {
                out.insert(v.to_owned());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(NANOS_PER_DAY - 1), 0);
        assert_eq!(day_of(NANOS_PER_DAY), 1);
        assert_eq!(day_of(-1), -1);
        assert_eq!(days_spanned(NANOS_PER_DAY - 1, NANOS_PER_DAY), 0..=1);
    }
}
