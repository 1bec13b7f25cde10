//! Packing and the orphan scan: a tenant-day's chunks concatenated into packs
//! (`skald_chunk_store::packs`), packs holding dead chunks rewritten with their live ones
//! only, and objects no index ref needs deleted.
//!
//! Order of writes (a query's answer never changes): a new pack's `.pack`, then its `.idx`
//! (from then on readers find its chunks there), then a deletion marker naming the objects it
//! replaces (the chunks' own objects, or the pack rewritten), deleted by the sweep after
//! `retention_delete_delay`. The orphan scan deletes, once older than the grace period,
//! chunk objects no index ref names, `.pack` objects without a directory, and directories
//! whose pack is gone: what a crash between two of these steps (or an ingester's, between a
//! chunk's upload and its index write) leaves.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use skald_chunk_store::packs::{pack_day, pack_of_idx, packs_prefix, PackIndex};
use skald_chunk_store::{ChunkKey, ChunkStore};

use crate::compactor::CompactorError;

/// How chunks are packed (the compactor block's `chunk_compaction_*` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackSettings {
    /// Largest pack, in bytes (a chunk larger than this is a pack of its own).
    pub pack_size: u64,
    /// Chunks whose last entry is younger than this are not packed yet.
    pub min_age: Duration,
    /// Objects no index ref names are deleted once this old.
    pub orphan_grace: Duration,
}

/// What packing and the orphan scan did in one pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PackReport {
    /// Packs written (new ones and rewritten ones).
    pub packs_written: usize,
    /// Chunks written into them.
    pub chunks_packed: usize,
    /// Packs rewritten without their dead chunks, or marked whole (all dead).
    pub packs_replaced: usize,
    /// Bytes of dead chunks that left packs (with the packs' deletion).
    pub dead_bytes: u64,
    /// Objects named in deletion markers (chunk objects now packed, replaced packs).
    pub objects_marked: usize,
    /// Orphaned objects deleted.
    pub orphans_deleted: usize,
}

impl PackReport {
    /// Adds `other`'s counts.
    pub fn add(&mut self, o: &PackReport) {
        self.packs_written += o.packs_written;
        self.chunks_packed += o.chunks_packed;
        self.packs_replaced += o.packs_replaced;
        self.dead_bytes += o.dead_bytes;
        self.objects_marked += o.objects_marked;
        self.orphans_deleted += o.orphans_deleted;
    }
}

/// Where a chunk to pack is read from.
#[derive(Clone)]
enum Source {
    /// Its own object.
    Object,
    /// A range of a pack already read.
    Packed(Bytes),
}

/// The objects of one tenant as a pass finds them.
struct Listing {
    /// Chunk objects, with their modification time (ms), when known.
    chunk_objects: Vec<(String, Option<i64>)>,
    /// `.pack` objects and their times.
    packs: HashMap<String, Option<i64>>,
    /// Directories: path, time, contents.
    dirs: Vec<(String, Option<i64>, PackIndex)>,
    /// Paths already named in a deletion marker of the tenant.
    marked: HashSet<String>,
}

async fn list(store: &dyn ChunkStore, tenant: &str) -> Result<Listing, CompactorError> {
    let chunk_objects = store.list_prefix_modified(&format!("{tenant}/chunks")).await?;
    let mut packs = HashMap::new();
    let mut dirs = Vec::new();
    for (path, time) in store.list_prefix_modified(&packs_prefix(tenant)).await? {
        if path.ends_with(".pack") {
            packs.insert(path, time);
        } else if path.ends_with(".idx") {
            match store.get_object(&path).await {
                Ok(body) => {
                    let (dir, bad) = PackIndex::parse(&String::from_utf8_lossy(&body));
                    if bad > 0 {
                        tracing::warn!(
                            tenant,
                            path,
                            lines = bad,
                            "unreadable lines in a pack directory"
                        );
                    }
                    dirs.push((path, time, dir));
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut marked = HashSet::new();
    for m in store.list_prefix(&format!("{}/{tenant}", crate::MARKERS_PREFIX)).await? {
        match store.get_object(&m).await {
            Ok(body) => marked.extend(
                String::from_utf8_lossy(&body)
                    .lines()
                    .filter_map(|l| l.split(' ').next())
                    .map(str::to_string),
            ),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Listing { chunk_objects, packs, dirs, marked })
}

/// True for the path of a pack's object (`<tenant>/packs/<day>/<id>.pack` or `.idx`).
pub(crate) fn is_pack_object(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts.len() == 4
        && parts[1] == "packs"
        && skald_chunk_store::validate_tenant(parts[0]).is_ok()
        && (parts[3].ends_with(".pack") || parts[3].ends_with(".idx"))
}

fn older_than(time: Option<i64>, grace: Duration, now: i64) -> bool {
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    time.is_some_and(|t| t.saturating_add(grace_ms) <= now / 1_000_000)
}

/// Packs `tenant`'s settled chunks, rewrites packs holding dead chunks and deletes orphans.
/// `live` holds every chunk the index names, with its size; `now` is in ns.
pub(crate) async fn pack_tenant(
    store: &Arc<dyn ChunkStore>,
    tenant: &str,
    live: &HashMap<ChunkKey, u64>,
    settings: &PackSettings,
    now: i64,
) -> Result<PackReport, CompactorError> {
    let mut report = PackReport::default();
    let l = list(store.as_ref(), tenant).await?;
    let mut to_mark: Vec<(String, u64)> = Vec::new();
    // chunks in a pack that stays (those of packs being rewritten are packed again below)
    let mut packed: HashSet<ChunkKey> = HashSet::new();
    // chunks to pack, by day, with where to read them
    let mut todo: BTreeMap<i64, Vec<(ChunkKey, u64, Source)>> = BTreeMap::new();

    // 1. packs: kept whole, rewritten without dead chunks, or dropped
    let mut with_dir: HashSet<String> = HashSet::new();
    for (idx, _, dir) in &l.dirs {
        let Some(pack) = pack_of_idx(idx) else { continue };
        if l.marked.contains(idx) {
            continue; // replaced already; the sweep deletes it
        }
        if !l.packs.contains_key(&pack) {
            // its pack was deleted (a sweep cut short): nothing to read by it
            store.delete_object(idx).await?;
            report.orphans_deleted += 1;
            continue;
        }
        with_dir.insert(pack.clone());
        let dead: Vec<&(ChunkKey, u64, u64)> =
            dir.chunks.iter().filter(|(k, _, _)| !live.contains_key(k)).collect();
        let small = (dir.chunks.iter().map(|c| c.2).sum::<u64>()) < settings.pack_size / 2;
        let day_small_packs = l
            .dirs
            .iter()
            .filter(|(i, _, d)| {
                !l.marked.contains(i)
                    && d.chunks.first().map(|c| pack_day(c.0.from))
                        == dir.chunks.first().map(|c| pack_day(c.0.from))
                    && d.chunks.iter().map(|c| c.2).sum::<u64>() < settings.pack_size / 2
            })
            .count();
        if dead.is_empty() && !(small && day_small_packs >= 2) {
            packed.extend(dir.chunks.iter().map(|c| c.0.clone()));
            continue;
        }
        // rewritten: its live chunks are packed again (with the day's other chunks)
        let bytes = store.get_object(&pack).await?;
        for (key, off, len) in &dir.chunks {
            if !live.contains_key(key) {
                report.dead_bytes += len;
                continue;
            }
            let (Ok(s), Ok(e)) = (usize::try_from(*off), usize::try_from(off + len)) else {
                continue;
            };
            if e > bytes.len() {
                tracing::warn!(tenant, pack, chunk = %key.path(), "pack directory points past the pack's end");
                continue;
            }
            let src = Source::Packed(bytes.slice(s..e));
            todo.entry(pack_day(key.from)).or_default().push((key.clone(), *len, src));
        }
        report.packs_replaced += 1;
        to_mark.push((idx.clone(), 0));
        to_mark.push((pack.clone(), bytes.len() as u64));
    }
    // `.pack` objects without a directory: a crash between the two writes
    for (pack, time) in &l.packs {
        if !with_dir.contains(pack)
            && !l.marked.contains(pack)
            && older_than(*time, settings.orphan_grace, now)
        {
            store.delete_object(pack).await?;
            report.orphans_deleted += 1;
        }
    }

    // 2. chunk objects: packed ones marked, orphans deleted, settled ones packed
    let min_age = i64::try_from(settings.min_age.as_nanos()).unwrap_or(i64::MAX);
    let queued: HashSet<ChunkKey> = todo.values().flatten().map(|c| c.0.clone()).collect();
    for (path, time) in &l.chunk_objects {
        let Ok(key) = ChunkKey::parse(path) else { continue };
        if l.marked.contains(path) {
            continue;
        }
        match live.get(&key) {
            None => {
                if older_than(*time, settings.orphan_grace, now) {
                    store.delete_object(path).await?;
                    report.orphans_deleted += 1;
                }
            }
            Some(_) if packed.contains(&key) => to_mark.push((path.clone(), 0)),
            Some(&size) => {
                if !queued.contains(&key) && key.through < now.saturating_sub(min_age) {
                    todo.entry(pack_day(key.from)).or_default().push((key, size, Source::Object));
                }
            }
        }
    }

    // 3. new packs, per day; chunks read from their own object are marked once packed
    for (day, mut chunks) in todo {
        let from_packs = chunks.iter().any(|c| matches!(c.2, Source::Packed(_)));
        if chunks.len() < 2 && !from_packs {
            continue; // one chunk gains nothing from a pack
        }
        chunks.sort_by_key(|c| (c.0.fingerprint, c.0.from));
        let mut start = 0;
        while start < chunks.len() {
            let mut end = start;
            let mut size = 0u64;
            while end < chunks.len() && (end == start || size + chunks[end].1 <= settings.pack_size)
            {
                size += chunks[end].1;
                end += 1;
            }
            let written = write_pack(store.as_ref(), tenant, day, &chunks[start..end]).await?;
            report.packs_written += 1;
            report.chunks_packed += end - start;
            to_mark.extend(written);
            start = end;
        }
    }

    report.objects_marked = to_mark.len();
    crate::merge::write_marker_paths(store.as_ref(), tenant, &to_mark, now).await?;
    Ok(report)
}

/// Writes one pack of `chunks` (the `.pack`, then the `.idx`); returns the chunk objects it
/// replaces (those read from their own object), to mark.
async fn write_pack(
    store: &dyn ChunkStore,
    tenant: &str,
    day: i64,
    chunks: &[(ChunkKey, u64, Source)],
) -> Result<Vec<(String, u64)>, CompactorError> {
    let mut body = BytesMut::new();
    let mut dir = PackIndex::default();
    let mut replaced = Vec::new();
    for (key, _, src) in chunks {
        let bytes = match src {
            Source::Packed(b) => b.clone(),
            Source::Object => match store.get(key).await {
                Ok(b) => {
                    replaced.push((key.path(), b.len() as u64));
                    b
                }
                // deleted meanwhile (a delete request, retention): not packed
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            },
        };
        dir.chunks.push((key.clone(), body.len() as u64, bytes.len() as u64));
        body.extend_from_slice(&bytes);
    }
    if dir.chunks.is_empty() {
        return Ok(Vec::new());
    }
    let (pack, idx) = dir.paths(tenant, day);
    store.put_object(&pack, body.freeze()).await?;
    store.put_object(&idx, Bytes::from(dir.encode())).await?;
    tracing::info!(tenant, pack, chunks = dir.chunks.len(), "chunk compaction: pack written");
    Ok(replaced)
}
