use std::sync::Arc;

use skald_chunk_store::{ChunkStore, ObjectChunkStore, ObjectChunkStoreConfig};
use skald_model::{LabelMatcher, Labels, MatchType};

use super::*;
use crate::{testsuite, MemIndexStore, NANOS_PER_DAY};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    std::env::temp_dir().join(format!("skald-index-{name}-{}-{nanos}", std::process::id()))
}

fn chunk(from: i64, through: i64) -> ChunkRef {
    ChunkRef {
        fingerprint: 7,
        from,
        through,
        checksum: 1,
        entries: 1,
        uncompressed_bytes: 2,
        compressed_bytes: 3,
        stats_bytes: 4,
    }
}

#[tokio::test]
async fn conformance_mem() {
    testsuite::run_all(&MemIndexStore::new()).await;
}

#[tokio::test]
async fn conformance_object_in_memory() {
    let store = Arc::new(ObjectChunkStore::in_memory());
    testsuite::run_all(&ObjectIndexStore::new(store, ObjectIndexStoreConfig::default())).await;
}

#[tokio::test]
async fn conformance_object_uncompressed_uncached_few_listed_days() {
    let store = Arc::new(ObjectChunkStore::in_memory());
    let config = ObjectIndexStoreConfig {
        compress: false,
        segment_cache_bytes: 0,
        load_concurrency: 1,
        max_listed_days: 1,
    };
    testsuite::run_all(&ObjectIndexStore::new(store, config)).await;
}

#[tokio::test]
async fn conformance_object_local_filesystem() {
    let dir = temp_dir("conformance");
    let store = Arc::new(ObjectChunkStore::local(&dir, ObjectChunkStoreConfig::default()).unwrap());
    testsuite::run_all(&ObjectIndexStore::new(store, ObjectIndexStoreConfig::default())).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn segments_are_per_day_and_cached() {
    let store = Arc::new(ObjectChunkStore::in_memory());
    let index = ObjectIndexStore::new(store.clone(), ObjectIndexStoreConfig::default());
    let l = Labels::parse(r#"{app="a"}"#).unwrap();
    let day = 19_000 * NANOS_PER_DAY;
    index
        .write_chunks(
            "t",
            vec![(l.clone(), chunk(day - 10, day + 10)), (l.clone(), chunk(day + 20, day + 30))],
        )
        .await
        .unwrap();
    let paths = store.list_prefix("t/index").await.unwrap();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(paths[0].starts_with("t/index/18999/") && paths[0].ends_with(".seg"));
    assert!(paths[1].starts_with("t/index/19000/"));
    let day1 = Segment::decode(&store.get_object(&paths[1]).await.unwrap()).unwrap();
    assert_eq!(day1.series()[0].chunks.len(), 2);

    let q = [LabelMatcher::new("app", MatchType::Equal, "a").unwrap()];
    index.series("t", &q, day, day + 100).await.unwrap();
    index.series("t", &q, day, day + 100).await.unwrap();
    let stats = index.cache_stats();
    assert_eq!((stats.misses, stats.hits, stats.entries), (1, 1, 1));

    // Identical content gets the identical (content-addressed) path.
    index
        .write_chunks(
            "t",
            vec![(l.clone(), chunk(day + 20, day + 30)), (l, chunk(day - 10, day + 10))],
        )
        .await
        .unwrap();
    assert_eq!(store.list_prefix("t/index").await.unwrap(), paths);
}

#[tokio::test]
async fn corrupt_segment_fails_the_query() {
    let store = Arc::new(ObjectChunkStore::in_memory());
    let index = ObjectIndexStore::new(store.clone(), ObjectIndexStoreConfig::default());
    store.put_object("t/index/5/bad.seg", bytes::Bytes::from_static(b"garbage")).await.unwrap();
    store.put_object("t/index/5/ignored.tmp", bytes::Bytes::from_static(b"garbage")).await.unwrap();
    let err = index.series("t", &[], 5 * NANOS_PER_DAY, 5 * NANOS_PER_DAY + 1).await.unwrap_err();
    assert!(
        matches!(err, Error::CorruptSegment { ref path, .. } if path == "t/index/5/bad.seg"),
        "{err:?}"
    );
}

#[test]
fn segment_day_parsing() {
    assert_eq!(segment_day("t", "t/index/19000/abc.seg"), Some(19000));
    assert_eq!(segment_day("t", "t/index/-3/abc.seg"), Some(-3));
    assert_eq!(segment_day("t", "t/index/19000/abc.tmp"), None);
    assert_eq!(segment_day("t", "t/index/19000/.seg"), None);
    assert_eq!(segment_day("t", "tt/index/19000/a.seg"), None);
    assert_eq!(segment_day("t", "t/index/x/a.seg"), None);
    assert_eq!(segment_day("t", "t/index/1/a/b.seg"), None);
}

#[tokio::test]
async fn compaction_leaves_one_segment_and_the_same_answers() {
    let store: Arc<dyn ChunkStore> = Arc::new(ObjectChunkStore::in_memory());
    let index = ObjectIndexStore::new(store.clone(), ObjectIndexStoreConfig::default());
    let labels = Labels::parse(r#"{app="x"}"#).unwrap();
    let day = 19_000;
    let t = day * NANOS_PER_DAY;
    for i in 0..4 {
        index.write_chunks("t", vec![(labels.clone(), chunk(t + i, t + i + 10))]).await.unwrap();
    }
    let before = index.series("t", &[], t, t + NANOS_PER_DAY - 1).await.unwrap();
    assert_eq!(index.segment_paths("t", t, t).await.unwrap().len(), 4);
    assert_eq!(index.compact_day("t", day).await.unwrap(), 4);
    assert_eq!(index.segment_paths("t", t, t).await.unwrap().len(), 1);
    assert_eq!(index.series("t", &[], t, t + NANOS_PER_DAY - 1).await.unwrap(), before);
    assert_eq!(index.compact_day("t", day).await.unwrap(), 0);
    // deleting every chunk of the day removes its segments
    let all: Vec<(Labels, ChunkRef)> =
        before[0].chunks.iter().map(|c| (labels.clone(), *c)).collect();
    index.delete_chunks("t", all).await.unwrap();
    assert!(store.list_prefix("t/index").await.unwrap().is_empty());
    assert!(index.days("t").await.unwrap().is_empty());
}

/// A store whose first listing is a stale one given in advance: what a query sees when a
/// rewrite replaces the segments between its listing and its loads.
struct StaleOnce {
    inner: Arc<dyn ChunkStore>,
    stale: parking_lot::Mutex<Option<Vec<String>>>,
}

#[async_trait::async_trait]
impl ChunkStore for StaleOnce {
    async fn put(
        &self,
        key: &skald_chunk_store::ChunkKey,
        b: bytes::Bytes,
    ) -> skald_chunk_store::Result<()> {
        self.inner.put(key, b).await
    }
    async fn get(
        &self,
        key: &skald_chunk_store::ChunkKey,
    ) -> skald_chunk_store::Result<bytes::Bytes> {
        self.inner.get(key).await
    }
    async fn delete(&self, key: &skald_chunk_store::ChunkKey) -> skald_chunk_store::Result<()> {
        self.inner.delete(key).await
    }
    async fn put_object(&self, path: &str, b: bytes::Bytes) -> skald_chunk_store::Result<()> {
        self.inner.put_object(path, b).await
    }
    async fn get_object(&self, path: &str) -> skald_chunk_store::Result<bytes::Bytes> {
        self.inner.get_object(path).await
    }
    async fn delete_object(&self, path: &str) -> skald_chunk_store::Result<()> {
        self.inner.delete_object(path).await
    }
    async fn list_prefix(&self, prefix: &str) -> skald_chunk_store::Result<Vec<String>> {
        if let Some(stale) = self.stale.lock().take() {
            return Ok(stale);
        }
        self.inner.list_prefix(prefix).await
    }
}

#[tokio::test]
async fn a_query_racing_a_rewrite_lists_again() {
    let inner: Arc<dyn ChunkStore> = Arc::new(ObjectChunkStore::in_memory());
    let config = ObjectIndexStoreConfig { segment_cache_bytes: 0, ..Default::default() };
    let writer = ObjectIndexStore::new(inner.clone(), config.clone());
    let labels = Labels::parse(r#"{app="x"}"#).unwrap();
    let day = 19_000;
    let t = day * NANOS_PER_DAY;
    for i in 0..3 {
        writer.write_chunks("t", vec![(labels.clone(), chunk(t + i, t + i + 10))]).await.unwrap();
    }
    let old = writer.segment_paths("t", t, t).await.unwrap();
    assert_eq!(writer.compact_day("t", day).await.unwrap(), 3);
    let reader = ObjectIndexStore::new(
        Arc::new(StaleOnce { inner, stale: parking_lot::Mutex::new(Some(old)) }),
        config,
    );
    let answer = reader.series("t", &[], t, t + 100).await.unwrap();
    assert_eq!(answer[0].chunks.len(), 3, "listed again, found the merged segment");
}
