//! Chunk compaction over an in-memory store: answers unchanged, fewer and smaller objects,
//! filters for the new chunks, idempotent passes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use skald_chunk::{Chunk, ChunkBuilder};
use skald_chunk_store::{ChunkKey, ChunkStore, ObjectChunkStore};
use skald_index::{
    ChunkRef, FilterIndex, IndexStore, ObjectIndexStore, ObjectIndexStoreConfig, NANOS_PER_DAY,
};
use skald_model::{Entry, Label, Labels};

use crate::merge::{plan_groups, reencode, MergeSettings};
use crate::{Compactor, CompactorConfig};

const SEC: i64 = 1_000_000_000;
const NOW: i64 = 20_000 * NANOS_PER_DAY + NANOS_PER_DAY / 2;

/// An in-memory store with its index and filter tables (the pack tests' too).
pub(crate) struct Fixture {
    pub(crate) store: Arc<dyn ChunkStore>,
    pub(crate) index: Arc<dyn IndexStore>,
    pub(crate) filters: FilterIndex,
}

pub(crate) fn fixture() -> Fixture {
    let store: Arc<dyn ChunkStore> = Arc::new(ObjectChunkStore::in_memory());
    let index: Arc<dyn IndexStore> =
        Arc::new(ObjectIndexStore::new(store.clone(), ObjectIndexStoreConfig::default()));
    let filters = FilterIndex::new(store.clone(), 0);
    Fixture { store, index, filters }
}

fn compactor(f: &Fixture, target: u64) -> Compactor {
    let config = CompactorConfig {
        retention_delete_delay: Duration::ZERO,
        chunk_compaction_enabled: true,
        chunk_compaction_target_size: target,
        chunk_compaction_block_size: 16 * 1024,
        chunk_compaction_min_age: Duration::from_secs(60),
        // packing is `pack_tests`'
        chunk_compaction_pack_size: 0,
        ..Default::default()
    };
    let limits = Arc::new(skald_common::limits::Limits::default());
    Compactor::new(
        config,
        f.store.clone(),
        f.index.clone(),
        Arc::new(move |_: &str| limits.clone()),
        &prometheus::Registry::new(),
    )
    .unwrap()
}

fn entry(ts: i64, line: String, md: &[(&str, &str)]) -> Entry {
    Entry {
        ts,
        line: line.into(),
        structured_metadata: md
            .iter()
            .map(|(n, v)| Label { name: n.to_string(), value: v.to_string() })
            .collect(),
    }
}

/// Stores and indexes one chunk of `entries` as an ingester's flush does.
async fn flush(f: &Fixture, labels: &Labels, entries: &[Entry]) -> ChunkRef {
    let mut b = ChunkBuilder::default();
    for e in entries {
        b.append(e).unwrap();
    }
    let e = b.finish().unwrap();
    let stats = entries.iter().map(|e| e.line.len() as u64).sum();
    let c = ChunkRef::of_encoded(labels.hash(), &e, stats);
    let filter = Chunk::parse(&e.bytes).unwrap().chunk_filter().unwrap();
    f.store.put(&c.key("t"), Bytes::from(e.bytes)).await.unwrap();
    f.filters.write("t", vec![(c, filter)]).await.unwrap();
    f.index.write_chunks("t", vec![(labels.clone(), c)]).await.unwrap();
    c
}

/// What a query reads: each stream's entries over its indexed chunks, sorted by time,
/// identical entries once (as readers drop the duplicates of overlapping chunks).
async fn answers(f: &Fixture) -> BTreeMap<String, Vec<(i64, String, Vec<Label>)>> {
    let mut out = BTreeMap::new();
    for s in f.index.series("t", &[], 0, i64::MAX).await.unwrap() {
        let mut set = BTreeSet::new();
        for c in &s.chunks {
            let chunk = Chunk::from_bytes(f.store.get(&c.key("t")).await.unwrap()).unwrap();
            for e in chunk.iter_entries(i64::MIN, i64::MAX) {
                let e = e.unwrap();
                set.insert((e.ts, e.line.to_string(), e.structured_metadata));
            }
        }
        out.insert(s.labels.to_string(), set.into_iter().collect());
    }
    out
}

async fn chunk_objects(f: &Fixture) -> Vec<String> {
    f.store.list_prefix("t/chunks").await.unwrap()
}

fn line(stream: usize, i: i64) -> String {
    format!("level=info stream={stream} msg=\"request served\" path=/api/v1/items/{} status=200 took={}ms", i % 97, i % 13)
}

#[tokio::test]
async fn small_chunks_become_full_ones_with_the_same_answers() {
    let f = fixture();
    let streams =
        [Labels::parse(r#"{app="a"}"#).unwrap(), Labels::parse(r#"{app="b", env="x"}"#).unwrap()];
    let t0 = NOW - 3_600 * SEC;
    let mut flushed = Vec::new();
    let md = |n: i64| -> &'static [(&'static str, &'static str)] {
        if n % 7 == 0 {
            &[("trace_id", "abc")]
        } else {
            &[]
        }
    };
    for (s, labels) in streams.iter().enumerate() {
        for k in 0..20i64 {
            // 20 chunks of 50 lines each, as idle timeouts cut them
            let entries: Vec<Entry> = (0..50)
                .map(|i| {
                    let n = k * 50 + i;
                    entry(t0 + n * SEC, line(s, n), md(n))
                })
                .collect();
            flushed.push(flush(&f, labels, &entries).await);
        }
    }
    // a leftover of an interrupted swap: a chunk overlapping another with the same entries,
    // plus one entry of its own at an equal time
    let mut dup: Vec<Entry> = (100..110).map(|n| entry(t0 + n * SEC, line(0, n), md(n))).collect();
    dup.push(entry(t0 + 105 * SEC, "same time, other line".into(), &[]));
    dup.sort_by_key(|e| e.ts);
    flush(&f, &streams[0], &dup).await;
    // a young chunk stays as it is
    let young = flush(&f, &streams[0], &[entry(NOW - SEC, "young".into(), &[])]).await;
    let before = answers(&f).await;
    let objects_before = chunk_objects(&f).await.len();
    assert_eq!(objects_before, 42);

    let c = compactor(&f, 8 * 1024);
    let report = c.run_pass(NOW).await;
    assert_eq!(report.failures, 0, "{report:?}");
    let m = &report.merged;
    assert_eq!(m.chunks_in, 41, "{m:?}");
    assert!(m.chunks_out < 10, "{m:?}");
    assert!(m.bytes_out < m.bytes_in, "{m:?}");
    assert_eq!(m.duplicates_dropped, 10);
    assert_eq!(answers(&f).await, before, "same entries, metadata and order");
    // the old objects went with the sweep (delay 0); the young chunk is still there
    let objects = chunk_objects(&f).await;
    assert_eq!(objects.len(), m.chunks_out + 1, "{objects:?}");
    assert!(objects.contains(&young.key("t").path()));
    assert!(f.store.get(&flushed[0].key("t")).await.unwrap_err().is_not_found());
    assert!(f.store.list_prefix(crate::MARKERS_PREFIX).await.unwrap().is_empty());
    // the new chunks are full-sized (all but each stream's last) and have filter entries;
    // the old ones' entries are gone
    let series = f.index.series("t", &[], 0, i64::MAX).await.unwrap();
    let tables = f.filters.filters("t", t0, NOW).await.unwrap();
    for s in &series {
        for c in &s.chunks {
            assert!(tables.get(c).is_some(), "{c:?} has a filter entry");
            let chunk = Chunk::from_bytes(f.store.get(&c.key("t")).await.unwrap()).unwrap();
            assert_eq!(chunk.entries(), c.entries);
        }
    }
    assert!(tables.get(&flushed[3]).is_none());
    // a second pass has nothing to merge
    let again = c.run_pass(NOW).await;
    assert_eq!(again.merged.chunks_in, 0, "{again:?}");
    assert_eq!(answers(&f).await, before);
    // once old enough, the young chunk joins its stream's last chunk
    let later = c.run_pass(NOW + 120 * SEC).await;
    assert!(later.merged.chunks_in >= 2, "{later:?}");
    assert_eq!(answers(&f).await, before);
    let indexed: usize =
        f.index.series("t", &[], 0, i64::MAX).await.unwrap().iter().map(|s| s.chunks.len()).sum();
    assert_eq!(chunk_objects(&f).await.len(), indexed);
    assert!(!chunk_objects(&f).await.contains(&young.key("t").path()));
}

#[tokio::test]
async fn an_index_key_lists_only_chunks_of_its_stream() {
    // the merged objects are valid chunk keys of their stream
    let f = fixture();
    let labels = Labels::parse(r#"{app="a"}"#).unwrap();
    for k in 0..4i64 {
        flush(&f, &labels, &[entry(NOW - 7200 * SEC + k * SEC, line(0, k), &[])]).await;
    }
    compactor(&f, 1 << 20).run_pass(NOW).await;
    let objects = chunk_objects(&f).await;
    assert_eq!(objects.len(), 1, "{objects:?}");
    let key = ChunkKey::parse(&objects[0]).unwrap();
    assert_eq!(key.fingerprint, labels.hash());
}

fn chunk(from: i64, through: i64, compressed: u64) -> ChunkRef {
    ChunkRef {
        fingerprint: 1,
        from,
        through,
        checksum: from as u32,
        entries: 1,
        uncompressed_bytes: compressed * 5,
        compressed_bytes: compressed,
        stats_bytes: compressed * 5,
    }
}

#[test]
fn groups_are_runs_of_small_settled_chunks_of_one_day() {
    let s = MergeSettings {
        target_size: 100,
        block_size: 1024,
        zstd_level: 3,
        min_age: Duration::from_secs(10),
        max_group_raw_bytes: 450,
    };
    let d = NANOS_PER_DAY;
    let now = 10 * d;
    let set: BTreeSet<ChunkRef> = [
        chunk(d, d + 1, 10),
        chunk(d + 2, d + 3, 10),
        chunk(d + 4, d + 5, 200), // full: ends the run
        chunk(d + 6, d + 7, 10),  // a run of one: left alone
        chunk(2 * d, 2 * d + 1, 30),
        chunk(2 * d + 2, 2 * d + 3, 30),
        chunk(2 * d + 4, 2 * d + 5, 30),
        chunk(2 * d + 6, 2 * d + 7, 30), // 4 × 150 raw > 450 would be too much: split
        chunk(3 * d, 3 * d + 1, 60),
        chunk(3 * d + 2, 3 * d + 3, 60), // 120 bytes make 2 chunks again: no gain
        chunk(now - SEC, now, 10),
        chunk(now - SEC + 1, now, 10), // too young
    ]
    .into_iter()
    .collect();
    let groups = plan_groups(&set, &s, now);
    let firsts: Vec<(i64, usize)> = groups.iter().map(|g| (g[0].from, g.len())).collect();
    assert_eq!(firsts, vec![(d, 2), (2 * d, 3)]);
}

#[test]
fn reencoding_sorts_keeps_one_of_identical_entries_and_cuts_at_the_target() {
    let s = MergeSettings {
        target_size: 2_000,
        block_size: 1024,
        zstd_level: 19,
        min_age: Duration::ZERO,
        max_group_raw_bytes: u64::MAX,
    };
    let encode = |entries: &[Entry]| {
        let mut b = ChunkBuilder::default();
        for e in entries {
            b.append(e).unwrap();
        }
        Bytes::from(b.finish().unwrap().bytes)
    };
    let a: Vec<Entry> =
        (0..500).map(|n| entry(n * 2 * SEC, format!("{} {n:x}", line(1, n * 31)), &[])).collect();
    let b: Vec<Entry> = (0..500)
        .map(|n| entry(n * 2 * SEC + SEC, format!("odd {n} {}", n * 7919 % 1000), &[("k", "v")]))
        .collect();
    let (out, dropped) = reencode(9, vec![encode(&a), encode(&b), encode(&a[..10])], &s).unwrap();
    assert_eq!(dropped, 10);
    assert!(out.len() > 1, "cut at the target: {}", out.len());
    let mut all = Vec::new();
    for (i, (r, bytes)) in out.iter().enumerate() {
        assert_eq!(r.compressed_bytes, bytes.len() as u64);
        if i + 1 < out.len() {
            assert!(r.compressed_bytes >= 1_500, "{r:?}");
        }
        let c = Chunk::from_bytes(Bytes::from(bytes.clone())).unwrap();
        all.extend(c.iter_entries(i64::MIN, i64::MAX).map(|e| e.unwrap()));
    }
    let mut want: Vec<Entry> = a.iter().chain(&b).cloned().collect();
    want.sort_by_key(|e| e.ts);
    assert_eq!(all, want);
    let stats: u64 = out.iter().map(|(r, _)| r.stats_bytes).sum();
    let lines: u64 =
        want.iter().map(|e| e.line.len() as u64 + 8 * e.structured_metadata.len() as u64).sum();
    assert_eq!(stats, lines + 2 * out.len() as u64, "each chunk counts `k` and `v` once");
}
