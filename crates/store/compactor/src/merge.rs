//! Chunk compaction: a stream's small chunks (cut by idle timeouts, flushes at shutdown, ...)
//! re-encoded into full ones, at a higher zstd level than ingestion uses, so that a tenant
//! keeps fewer, smaller objects. Queries keep their answers throughout: the new chunks are
//! written, their filter-table entries written and their index refs recorded before the old
//! refs are removed; the old objects are then named in a deletion marker and deleted by the
//! sweep after `retention_delete_delay`, so that queries planned before the swap still read
//! them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use skald_chunk::{Chunk, ChunkBuilder};
use skald_chunk_store::ChunkStore;
use skald_index::{ChunkRef, FilterIndex, IndexStore, NANOS_PER_DAY};
use skald_model::{Entry, Labels};
use skald_needle::ChunkId;

use crate::compactor::CompactorError;

/// How chunks are compacted (the compactor block's `chunk_compaction_*` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeSettings {
    /// Compressed size a merged chunk is cut at; chunks below it are "small".
    pub target_size: u64,
    /// Raw size of a merged chunk's blocks.
    pub block_size: usize,
    /// zstd level of merged chunks.
    pub zstd_level: i32,
    /// Chunks whose last entry is younger than this are left alone.
    pub min_age: Duration,
    /// Most raw bytes decoded at once for one group of chunks.
    pub max_group_raw_bytes: u64,
}

/// What chunk compaction did in one pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MergeReport {
    /// Chunks read and replaced.
    pub chunks_in: usize,
    /// Chunks written in their place.
    pub chunks_out: usize,
    /// Object bytes of the replaced chunks.
    pub bytes_in: u64,
    /// Object bytes of the chunks written.
    pub bytes_out: u64,
    /// Duplicate entries (same time, line and metadata, in overlapping chunks) kept once.
    pub duplicates_dropped: u64,
}

impl MergeReport {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &MergeReport) {
        self.chunks_in += other.chunks_in;
        self.chunks_out += other.chunks_out;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.duplicates_dropped += other.duplicates_dropped;
    }
}

/// The stores chunk compaction reads and writes.
pub(crate) struct MergeStores<'a> {
    pub store: &'a Arc<dyn ChunkStore>,
    pub index: &'a Arc<dyn IndexStore>,
    pub filters: &'a FilterIndex,
}

fn day_of(ts: i64) -> i64 {
    ts.div_euclid(NANOS_PER_DAY)
}

/// The groups of `chunks` (one stream's, any order) worth merging: runs of consecutive small
/// chunks (by start time) of one UTC day, old enough, whose merge makes fewer chunks.
pub(crate) fn plan_groups(
    chunks: &BTreeSet<ChunkRef>,
    settings: &MergeSettings,
    now: i64,
) -> Vec<Vec<ChunkRef>> {
    let min_age = i64::try_from(settings.min_age.as_nanos()).unwrap_or(i64::MAX);
    let settled = now.saturating_sub(min_age);
    let mut sorted: Vec<ChunkRef> = chunks.iter().copied().collect();
    sorted.sort_by_key(|c| (c.from, c.through, c.checksum));
    let mut groups = Vec::new();
    let mut run: Vec<ChunkRef> = Vec::new();
    let close = |run: &mut Vec<ChunkRef>, groups: &mut Vec<Vec<ChunkRef>>| {
        let bytes: u64 = run.iter().map(|c| c.compressed_bytes).sum();
        let out = bytes.div_ceil(settings.target_size.max(1)) as usize;
        if run.len() >= 2 && out < run.len() {
            groups.push(std::mem::take(run));
        } else {
            run.clear();
        }
    };
    for c in sorted {
        let small = c.compressed_bytes < settings.target_size && c.through < settled;
        if !small {
            close(&mut run, &mut groups);
            continue;
        }
        let raw: u64 = run.iter().map(|c| c.uncompressed_bytes).sum();
        if run.first().is_some_and(|f| {
            day_of(f.from) != day_of(c.from)
                || raw + c.uncompressed_bytes > settings.max_group_raw_bytes
        }) {
            close(&mut run, &mut groups);
        }
        run.push(c);
    }
    close(&mut run, &mut groups);
    groups
}

/// Loki's size of a chunk's entries: the lines, 8 bytes per metadata pair, each distinct
/// metadata name and value once.
fn stats_bytes<'a>(entries: impl Iterator<Item = &'a Entry>) -> u64 {
    let mut symbols: HashSet<&str> = HashSet::new();
    let mut total = 0u64;
    for e in entries {
        total += e.line.len() as u64 + 8 * e.structured_metadata.len() as u64;
        for l in &e.structured_metadata {
            for s in [l.name.as_str(), l.value.as_str()] {
                if symbols.insert(s) {
                    total += s.len() as u64;
                }
            }
        }
    }
    total
}

/// A re-encoded chunk: its ref and bytes.
pub(crate) type Encoded = (ChunkRef, Vec<u8>);

/// Decodes `chunks` (one stream's), sorts their entries by time (stable: entries of equal
/// time keep their order), keeps one of each identical entry, and encodes them into chunks
/// cut at the target size. Returns the chunks and the number of duplicates dropped.
pub(crate) fn reencode(
    fingerprint: u64,
    chunks: Vec<Bytes>,
    settings: &MergeSettings,
) -> Result<(Vec<Encoded>, u64), skald_chunk::Error> {
    let mut entries: Vec<Entry> = Vec::new();
    for bytes in chunks {
        let chunk = Chunk::from_bytes(bytes)?;
        for e in chunk.iter_entries(i64::MIN, i64::MAX) {
            entries.push(e?);
        }
    }
    entries.sort_by_key(|e| e.ts);
    let before = entries.len();
    // identical entries have equal times: compare each with the others of its time
    let mut kept: Vec<Entry> = Vec::with_capacity(entries.len());
    let mut same_ts_start = 0;
    for e in entries {
        if kept.last().is_none_or(|l| l.ts != e.ts) {
            same_ts_start = kept.len();
        }
        if kept[same_ts_start..]
            .iter()
            .any(|k| k.line == e.line && k.structured_metadata == e.structured_metadata)
        {
            continue;
        }
        kept.push(e);
    }
    let dropped = (before - kept.len()) as u64;
    let new_builder =
        || ChunkBuilder::new(settings.block_size).with_zstd_level(settings.zstd_level);
    let mut out = Vec::new();
    let mut builder = new_builder();
    let mut first = 0;
    for (i, e) in kept.iter().enumerate() {
        builder.append(e)?;
        if builder.compressed_estimate() as u64 >= settings.target_size && i + 1 < kept.len() {
            let done = std::mem::replace(&mut builder, new_builder());
            let encoded = done.finish()?;
            let stats = stats_bytes(kept[first..=i].iter());
            out.push((ChunkRef::of_encoded(fingerprint, &encoded, stats), encoded.bytes));
            first = i + 1;
        }
    }
    if !builder.is_empty() {
        let encoded = builder.finish()?;
        let stats = stats_bytes(kept[first..].iter());
        out.push((ChunkRef::of_encoded(fingerprint, &encoded, stats), encoded.bytes));
    }
    Ok((out, dropped))
}

fn chunk_id(c: &ChunkRef) -> ChunkId {
    ChunkId { fingerprint: c.fingerprint, from: c.from, through: c.through, checksum: c.checksum }
}

/// Every indexed chunk of `tenant`, by stream.
pub(crate) async fn tenant_chunks(
    index: &dyn IndexStore,
    tenant: &str,
    days: &[i64],
) -> Result<BTreeMap<Labels, BTreeSet<ChunkRef>>, CompactorError> {
    let mut streams: BTreeMap<Labels, BTreeSet<ChunkRef>> = BTreeMap::new();
    for &day in days {
        let start = day.saturating_mul(NANOS_PER_DAY);
        for s in index.series(tenant, &[], start, start + NANOS_PER_DAY - 1).await? {
            streams.entry(s.labels).or_default().extend(s.chunks);
        }
    }
    Ok(streams)
}

/// Every chunk the index names for `tenant`, with its size.
pub(crate) async fn live_chunks(
    index: &dyn IndexStore,
    tenant: &str,
) -> Result<std::collections::HashMap<skald_chunk_store::ChunkKey, u64>, CompactorError> {
    let days = index.days(tenant).await?;
    Ok(tenant_chunks(index, tenant, &days)
        .await?
        .into_values()
        .flatten()
        .map(|c| (c.key(tenant), c.compressed_bytes))
        .collect())
}

/// Compacts the small chunks of `tenant`'s streams (see the module docs) at time `now` (ns).
pub(crate) async fn merge_tenant(
    stores: MergeStores<'_>,
    tenant: &str,
    days: &[i64],
    settings: &MergeSettings,
    now: i64,
) -> Result<MergeReport, CompactorError> {
    let mut report = MergeReport::default();
    let streams = tenant_chunks(stores.index.as_ref(), tenant, days).await?;
    let mut replaced: HashSet<ChunkId> = HashSet::new();
    let mut days_touched: BTreeSet<i64> = BTreeSet::new();
    for (labels, chunks) in streams {
        for group in plan_groups(&chunks, settings, now) {
            let old =
                merge_group(&stores, tenant, &labels, group, settings, now, &mut report).await?;
            replaced.extend(old.iter().map(chunk_id));
            days_touched
                .extend(old.iter().flat_map(|c| skald_index::days_spanned(c.from, c.through)));
        }
    }
    // the replaced chunks' filter-table entries (left behind they would only take space)
    for day in days_touched {
        stores.filters.rewrite_day(tenant, day, &replaced).await?;
    }
    if report.chunks_in > 0 {
        tracing::info!(
            tenant,
            chunks_in = report.chunks_in,
            chunks_out = report.chunks_out,
            bytes_in = report.bytes_in,
            bytes_out = report.bytes_out,
            duplicates_dropped = report.duplicates_dropped,
            "chunk compaction: small chunks merged"
        );
    }
    Ok(report)
}

async fn merge_group(
    stores: &MergeStores<'_>,
    tenant: &str,
    labels: &Labels,
    group: Vec<ChunkRef>,
    settings: &MergeSettings,
    now: i64,
    report: &mut MergeReport,
) -> Result<Vec<ChunkRef>, CompactorError> {
    let keys: Vec<skald_chunk_store::ChunkKey> = group.iter().map(|c| c.key(tenant)).collect();
    let store = stores.store.clone();
    let fetched: Vec<Result<Bytes, skald_chunk_store::Error>> = futures::stream::iter(keys)
        .map(move |key| {
            let store = store.clone();
            async move { store.get(&key).await }
        })
        .buffered(8)
        .collect()
        .await;
    let mut bytes = Vec::with_capacity(group.len());
    for (c, b) in group.iter().zip(fetched) {
        match b {
            Ok(b) => bytes.push(b),
            Err(e) if e.is_not_found() => {
                // a chunk being deleted (by retention or a delete request) meanwhile: the
                // next pass sees the index without it
                tracing::warn!(tenant, chunk = %c.key(tenant).path(), "indexed chunk missing; its group is skipped");
                return Ok(Vec::new());
            }
            Err(e) => return Err(e.into()),
        }
    }
    let fingerprint = group[0].fingerprint;
    let s = *settings;
    let (new, dropped) = tokio::task::spawn_blocking(move || reencode(fingerprint, bytes, &s))
        .await
        .map_err(|e| CompactorError::Merge(format!("re-encoding task failed: {e}")))?
        .map_err(|e| CompactorError::Merge(format!("chunk of {labels}: {e}")))?;
    let new_ids: HashSet<ChunkId> = new.iter().map(|(c, _)| chunk_id(c)).collect();
    // an output identical to an input stays where it is
    let old: Vec<ChunkRef> =
        group.iter().copied().filter(|c| !new_ids.contains(&chunk_id(c))).collect();
    // 1. the new objects and their filters
    let mut filters = Vec::new();
    for (c, b) in &new {
        if let Some(f) = Chunk::parse(b).ok().and_then(|ch| ch.chunk_filter()) {
            filters.push((*c, f));
        }
    }
    let uploads: Vec<(skald_chunk_store::ChunkKey, Bytes)> =
        new.iter().map(|(c, b)| (c.key(tenant), Bytes::from(b.clone()))).collect();
    let store = stores.store.clone();
    futures::stream::iter(uploads)
        .map(move |(key, bytes)| {
            let store = store.clone();
            async move { store.put_if_absent(&key, bytes).await }
        })
        .buffered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<bool>, _>>()?;
    stores.filters.write(tenant, filters).await?;
    // 2. the index: new refs recorded, then the old ones removed
    let with_labels = |cs: Vec<ChunkRef>| cs.into_iter().map(|c| (labels.clone(), c)).collect();
    stores
        .index
        .replace_chunks(
            tenant,
            with_labels(old.clone()),
            with_labels(new.iter().map(|(c, _)| *c).collect()),
        )
        .await?;
    // 3. the old objects: deleted by the sweep, after `retention_delete_delay`
    report.chunks_in += group.len();
    report.chunks_out += new.len();
    report.bytes_in += group.iter().map(|c| c.compressed_bytes).sum::<u64>();
    report.bytes_out += new.iter().map(|(c, _)| c.compressed_bytes).sum::<u64>();
    report.duplicates_dropped += dropped;
    write_marker(stores.store.as_ref(), tenant, &old, now).await?;
    Ok(old)
}

/// A deletion marker naming the objects of `refs` (the sweep deletes them once it is
/// `retention_delete_delay` old), as retention writes: see [`write_marker_paths`].
pub(crate) async fn write_marker(
    store: &dyn ChunkStore,
    tenant: &str,
    refs: &[ChunkRef],
    now: i64,
) -> Result<(), CompactorError> {
    let items: Vec<(String, u64)> =
        refs.iter().map(|c| (c.key(tenant).path(), c.compressed_bytes)).collect();
    write_marker_paths(store, tenant, &items, now).await
}

/// A deletion marker `compactor/markers/<tenant>/<created ms>-<xxh3>.txt` naming objects of
/// `tenant` (chunk objects, or the objects of a pack), one `path bytes` line each; nothing
/// when `items` is empty.
pub(crate) async fn write_marker_paths(
    store: &dyn ChunkStore,
    tenant: &str,
    items: &[(String, u64)],
    now: i64,
) -> Result<(), CompactorError> {
    if items.is_empty() {
        return Ok(());
    }
    let mut body = String::new();
    for (path, bytes) in items {
        body.push_str(&format!("{path} {bytes}\n"));
    }
    let id = xxhash_rust::xxh3::xxh3_64(body.as_bytes());
    let path = format!("{}/{tenant}/{:020}-{id:016x}.txt", crate::MARKERS_PREFIX, now / 1_000_000);
    store.put_object(&path, Bytes::from(body)).await?;
    Ok(())
}
