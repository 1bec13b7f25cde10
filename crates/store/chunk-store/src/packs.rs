//! Packs: chunks of many streams of a tenant-day concatenated (bytes unchanged) into one
//! object, so that a tenant keeps fewer objects. The compactor writes them; readers find a
//! chunk in a pack when its own object is gone, by the pack's directory.
//!
//! A pack is two objects under `<tenant>/packs/<day>/` (`day`: the UTC day of the chunks'
//! `from`, as days since the epoch): `<id>.pack`, the chunks back to back, and `<id>.idx`,
//! its directory, one line per chunk: `<chunk key path> <offset> <length>`. `id` is the xxh3
//! of the directory (16 hex digits). The `.pack` is written before the `.idx`: a directory
//! always names bytes that exist (until the compactor deletes a pack, directory first... see
//! the compactor's README for the order of deletes). A chunk may be in several packs at once
//! (a pack rewritten without dead chunks keeps its live ones in the new pack until the old
//! one is deleted); readers try each place.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use crate::error::Result;
use crate::key::ChunkKey;

/// Nanoseconds per UTC day.
const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// Where a packed chunk's bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackLocation {
    /// The `.pack` object's path.
    pub pack: String,
    /// Offset of the chunk in it.
    pub offset: u64,
    /// The chunk's length.
    pub len: u64,
}

impl PackLocation {
    /// `range` of the chunk (relative to its start) as a range of the pack; `None` when it
    /// reaches past the chunk's end.
    pub fn translate(&self, range: &Range<u64>) -> Option<Range<u64>> {
        (range.start <= range.end && range.end <= self.len)
            .then(|| self.offset + range.start..self.offset + range.end)
    }
}

/// The day directory of packs holding chunks starting at `from` (ns).
pub fn pack_day(from: i64) -> i64 {
    from.div_euclid(NANOS_PER_DAY)
}

/// The prefix of `tenant`'s packs.
pub fn packs_prefix(tenant: &str) -> String {
    format!("{tenant}/packs")
}

/// The prefix of `tenant`'s packs of `day`.
pub fn day_prefix(tenant: &str, day: i64) -> String {
    format!("{tenant}/packs/{day}")
}

/// A pack's directory: its chunks with their offsets and lengths, in pack order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackIndex {
    /// `(key, offset, length)` of each chunk.
    pub chunks: Vec<(ChunkKey, u64, u64)>,
}

impl PackIndex {
    /// The directory's text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (k, off, len) in &self.chunks {
            out.push_str(&format!("{} {off} {len}\n", k.path()));
        }
        out
    }

    /// Parses a directory; lines that do not parse are skipped (and reported in the count).
    pub fn parse(text: &str) -> (PackIndex, usize) {
        let mut chunks = Vec::new();
        let mut bad = 0;
        for line in text.lines().filter(|l| !l.is_empty()) {
            let mut f = line.split(' ');
            let parsed = (|| {
                let key = ChunkKey::parse(f.next()?).ok()?;
                let off = f.next()?.parse().ok()?;
                let len = f.next()?.parse().ok()?;
                f.next().is_none().then_some((key, off, len))
            })();
            match parsed {
                Some(c) => chunks.push(c),
                None => bad += 1,
            }
        }
        (PackIndex { chunks }, bad)
    }

    /// The paths of the pack `(".pack", ".idx")` with this directory, for `tenant`'s `day`.
    pub fn paths(&self, tenant: &str, day: i64) -> (String, String) {
        let id = xxhash_rust::xxh3::xxh3_64(self.encode().as_bytes());
        let base = format!("{}/{id:016x}", day_prefix(tenant, day));
        (format!("{base}.pack"), format!("{base}.idx"))
    }
}

/// The `.pack` path of the directory at `idx_path`; `None` when it is not a directory's path.
pub fn pack_of_idx(idx_path: &str) -> Option<String> {
    idx_path.strip_suffix(".idx").map(|b| format!("{b}.pack"))
}

type Day = (String, i64);

/// A day's directories merged: each chunk's places.
type Places = HashMap<ChunkKey, Vec<PackLocation>>;

/// The directories a reader has loaded, by tenant-day: where each packed chunk is.
#[derive(Debug, Default)]
pub(crate) struct PackDirectory {
    days: Mutex<HashMap<Day, Arc<Places>>>,
}

impl PackDirectory {
    /// The places of `key` known without reading anything (empty: not loaded, or not packed).
    pub(crate) fn cached(&self, key: &ChunkKey) -> Vec<PackLocation> {
        let day = (key.tenant.clone(), pack_day(key.from));
        let days = self.days.lock();
        days.get(&day).and_then(|d| d.get(key).cloned()).unwrap_or_default()
    }

    /// Replaces the loaded directory of `key`'s day with `loaded` and returns `key`'s places.
    pub(crate) fn set(
        &self,
        key: &ChunkKey,
        loaded: HashMap<ChunkKey, Vec<PackLocation>>,
    ) -> Vec<PackLocation> {
        let found = loaded.get(key).cloned().unwrap_or_default();
        let day = (key.tenant.clone(), pack_day(key.from));
        self.days.lock().insert(day, Arc::new(loaded));
        found
    }
}

/// Reads the directories of `tenant`'s packs of `day` with `list` and `get`.
pub(crate) async fn load_day<L, G, LF, GF>(
    tenant: &str,
    day: i64,
    list: L,
    get: G,
) -> Result<HashMap<ChunkKey, Vec<PackLocation>>>
where
    L: FnOnce(String) -> LF,
    LF: std::future::Future<Output = Result<Vec<String>>>,
    G: Fn(String) -> GF,
    GF: std::future::Future<Output = Result<bytes::Bytes>>,
{
    let mut out: HashMap<ChunkKey, Vec<PackLocation>> = HashMap::new();
    for idx in list(day_prefix(tenant, day)).await? {
        let Some(pack) = pack_of_idx(&idx) else { continue };
        let body = match get(idx.clone()).await {
            Ok(b) => b,
            // deleted since the listing
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        let (dir, _) = PackIndex::parse(&String::from_utf8_lossy(&body));
        for (key, offset, len) in dir.chunks {
            out.entry(key).or_default().push(PackLocation { pack: pack.clone(), offset, len });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_roundtrip_and_name_their_pack() {
        let a = ChunkKey::new("t", 1, 5, 9, 3);
        let b = ChunkKey::new("t", 2, -5, 9, 4);
        let dir = PackIndex { chunks: vec![(a.clone(), 0, 100), (b.clone(), 100, 7)] };
        let text = dir.encode();
        assert_eq!(PackIndex::parse(&text), (dir.clone(), 0));
        let (pack, idx) = dir.paths("t", 0);
        assert!(pack.starts_with("t/packs/0/") && pack.ends_with(".pack"), "{pack}");
        assert_eq!(pack_of_idx(&idx), Some(pack));
        let (bad, n) = PackIndex::parse(&format!("{text}nope 1 2\nt/x 1\n"));
        assert_eq!((bad, n), (dir, 2));
        let loc = PackLocation { pack: "p".into(), offset: 100, len: 7 };
        assert_eq!(loc.translate(&(2..7)), Some(102..107));
        assert_eq!(loc.translate(&(2..8)), None);
        assert_eq!(pack_day(-1), -1);
    }

    async fn write_pack(
        store: &crate::ObjectChunkStore,
        chunks: &[(&ChunkKey, &[u8])],
        filler: &[u8],
    ) -> (String, String) {
        use crate::ChunkStore;
        let mut body = filler.to_vec();
        let mut dir = PackIndex::default();
        for (k, b) in chunks {
            dir.chunks.push(((*k).clone(), body.len() as u64, b.len() as u64));
            body.extend_from_slice(b);
        }
        let (pack, idx) = dir.paths("t", pack_day(chunks[0].0.from));
        store.put_object(&pack, bytes::Bytes::from(body)).await.unwrap();
        store.put_object(&idx, bytes::Bytes::from(dir.encode())).await.unwrap();
        (pack, idx)
    }

    #[tokio::test]
    #[allow(clippy::single_range_in_vec_init)] // lists of one range
    async fn a_chunk_whose_object_is_gone_is_read_from_its_pack() {
        use crate::{ChunkStore, ObjectChunkStore, ObjectChunkStoreConfig};
        let cold = ObjectChunkStoreConfig { cache_bytes: 0, ..Default::default() };
        let store =
            ObjectChunkStore::new(std::sync::Arc::new(object_store::memory::InMemory::new()), cold);
        let a = ChunkKey::new("t", 1, 10, 20, 7);
        let b = ChunkKey::new("t", 2, 15, 25, 8);
        store.put(&a, bytes::Bytes::from_static(b"chunk a bytes")).await.unwrap();
        // read once while standalone: the day's directory (empty) is not loaded
        assert_eq!(&store.get(&a).await.unwrap()[..], b"chunk a bytes");
        let (pack, _) =
            write_pack(&store, &[(&b, b"the b chunk"), (&a, b"chunk a bytes")], b"xx").await;
        store.delete(&a).await.unwrap();
        assert_eq!(&store.get(&a).await.unwrap()[..], b"chunk a bytes");
        assert_eq!(&store.get(&b).await.unwrap()[..], b"the b chunk");
        let got = store.get_ranges(&a, &[0..5, 8..13]).await.unwrap();
        assert_eq!((&got[0][..], &got[1][..]), (&b"chunk"[..], &b"bytes"[..]));
        assert!(store.get_ranges(&a, &[0..14]).await.is_err(), "past the chunk's end");
        // the pack rewritten elsewhere (without b) and the old one deleted: the directory
        // read before is stale, and is read again
        write_pack(&store, &[(&a, b"chunk a bytes")], b"").await;
        store.delete_object(&pack).await.unwrap();
        assert_eq!(&store.get(&a).await.unwrap()[..], b"chunk a bytes");
        assert_eq!(&store.get_ranges(&a, &[6..7]).await.unwrap()[0][..], b"a");
        assert!(store.get(&b).await.unwrap_err().is_not_found());
        let listed = store.list_prefix_modified("t/packs").await.unwrap();
        assert!(listed.iter().all(|(_, t)| t.is_some()), "{listed:?}");
    }
}
