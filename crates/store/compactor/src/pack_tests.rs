//! Packing and the orphan scan over an in-memory store (real times: the orphan scan reads
//! objects' modification times).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use skald_chunk::{Chunk, ChunkBuilder};

use skald_index::ChunkRef;
use skald_model::{Entry, Labels};

use crate::merge_tests::{fixture, Fixture};
use crate::{now_ns, Compactor, CompactorConfig};

const SEC: i64 = 1_000_000_000;

fn compactor(f: &Fixture, grace: Duration) -> Compactor {
    let config = CompactorConfig {
        retention_delete_delay: Duration::ZERO,
        chunk_compaction_enabled: true,
        chunk_compaction_target_size: 1 << 20,
        chunk_compaction_min_age: Duration::from_secs(60),
        chunk_compaction_pack_size: 1 << 20,
        chunk_compaction_orphan_grace: grace,
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

fn encode(t0: i64, n: i64, tag: &str) -> skald_chunk::EncodedChunk {
    let mut b = ChunkBuilder::default();
    for i in 0..n {
        b.append(&Entry {
            ts: t0 + i * SEC,
            line: format!("{tag} line {i} status=200 path=/x/{}", i % 7).into(),
            structured_metadata: vec![],
        })
        .unwrap();
    }
    b.finish().unwrap()
}

async fn flush(f: &Fixture, labels: &Labels, t0: i64, n: i64) -> ChunkRef {
    let e = encode(t0, n, &labels.to_string());
    let c = ChunkRef::of_encoded(labels.hash(), &e, 10 * n as u64);
    let filter = Chunk::parse(&e.bytes).unwrap().chunk_filter().unwrap();
    f.store.put(&c.key("t"), Bytes::from(e.bytes)).await.unwrap();
    f.filters.write("t", vec![(c, filter)]).await.unwrap();
    f.index.write_chunks("t", vec![(labels.clone(), c)]).await.unwrap();
    c
}

/// Every stream's lines, read as a query does (through the store, packs included).
async fn answers(f: &Fixture) -> BTreeMap<String, Vec<(i64, String)>> {
    let mut out = BTreeMap::new();
    for s in f.index.series("t", &[], 0, i64::MAX).await.unwrap() {
        let mut lines = Vec::new();
        for c in &s.chunks {
            let chunk = Chunk::from_bytes(f.store.get(&c.key("t")).await.unwrap()).unwrap();
            lines.extend(chunk.iter_entries(i64::MIN, i64::MAX).map(|e| {
                let e = e.unwrap();
                (e.ts, e.line.to_string())
            }));
        }
        lines.sort();
        out.insert(s.labels.to_string(), lines);
    }
    out
}

async fn objects(f: &Fixture, prefix: &str) -> Vec<String> {
    f.store.list_prefix(&format!("t/{prefix}")).await.unwrap()
}

#[tokio::test]
async fn streams_are_packed_and_dead_chunks_leave_their_pack() {
    let f = fixture();
    let now = now_ns();
    // yesterday, 06:00: one day
    let day = 86_400 * SEC;
    let t0 = (now - day).div_euclid(day) * day + 6 * 3600 * SEC;
    let streams: Vec<Labels> =
        (0..10).map(|i| Labels::parse(&format!("{{app=\"s{i}\"}}")).unwrap()).collect();
    for s in &streams {
        flush(&f, s, t0, 30).await;
        flush(&f, s, t0 + 100 * SEC, 30).await;
    }
    let before = answers(&f).await;
    assert_eq!(objects(&f, "chunks").await.len(), 20);
    let c = compactor(&f, Duration::from_secs(3600));
    let r = c.run_pass(now).await;
    assert_eq!(r.failures, 0, "{r:?}");
    assert_eq!((r.merged.chunks_in, r.merged.chunks_out), (20, 10), "{r:?}");
    assert_eq!((r.packed.packs_written, r.packed.chunks_packed), (1, 10), "{r:?}");
    // the packed chunks' own objects went with the sweep (delay 0)
    assert_eq!(objects(&f, "chunks").await, Vec::<String>::new());
    assert_eq!(objects(&f, "packs").await.len(), 2, "a .pack and its .idx");
    assert_eq!(answers(&f).await, before);
    let again = c.run_pass(now).await;
    assert_eq!((again.merged.chunks_in, again.packed.packs_written), (0, 0), "{again:?}");
    assert_eq!(again.packed.orphans_deleted, 0);

    // one stream's chunk leaves the index (a delete request, retention): the pack is
    // rewritten without it, and its bytes leave the store
    let series = f.index.series("t", &[], 0, i64::MAX).await.unwrap();
    let gone = series[0].chunks[0];
    let gone_bytes = f.store.get(&gone.key("t")).await.unwrap();
    f.index.delete_chunks("t", vec![(series[0].labels.clone(), gone)]).await.unwrap();
    let mut want = before.clone();
    want.remove(&series[0].labels.to_string());
    let r = c.run_pass(now).await;
    assert_eq!((r.packed.packs_replaced, r.packed.packs_written), (1, 1), "{r:?}");
    assert_eq!(r.packed.dead_bytes, gone.compressed_bytes);
    assert_eq!(answers(&f).await, want);
    let packs = objects(&f, "packs").await;
    assert_eq!(packs.len(), 2, "{packs:?}");
    for path in f.store.list_prefix("t").await.unwrap() {
        let object = f.store.get_object(&path).await.unwrap();
        assert!(
            !object.windows(gone_bytes.len()).any(|w| w == &gone_bytes[..]),
            "the dead chunk's bytes are in no stored object: {path}"
        );
    }
}

#[tokio::test]
async fn orphans_are_deleted_after_the_grace_period_only() {
    let f = fixture();
    let now = now_ns();
    let labels = Labels::parse(r#"{app="a"}"#).unwrap();
    let kept = flush(&f, &labels, now - 7200 * SEC, 5).await;
    // written, never indexed (an ingester killed between the two, a swap cut short)
    let e = encode(now - 7000 * SEC, 5, "orphan");
    let orphan = ChunkRef::of_encoded(labels.hash(), &e, 50);
    f.store.put(&orphan.key("t"), Bytes::from(e.bytes)).await.unwrap();
    // a pack whose directory was never written
    f.store.put_object("t/packs/1/00000000000000ab.pack", Bytes::from_static(b"x")).await.unwrap();
    // within the grace period both stay
    let r = compactor(&f, Duration::from_secs(3600)).run_pass(now).await;
    assert_eq!((r.failures, r.packed.orphans_deleted), (0, 0), "{r:?}");
    assert!(f.store.get_object(&orphan.key("t").path()).await.is_ok());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = compactor(&f, Duration::from_millis(10)).run_pass(now_ns()).await;
    assert_eq!((r.failures, r.packed.orphans_deleted), (0, 2), "{r:?}");
    assert!(f.store.get_object(&orphan.key("t").path()).await.unwrap_err().is_not_found());
    assert!(f.store.get_object(&kept.key("t").path()).await.is_ok(), "indexed: kept");
    assert!(objects(&f, "packs").await.is_empty());
}
