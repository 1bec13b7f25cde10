use std::sync::Arc;

use skald_chunk_store::{ChunkStore, ObjectChunkStore};

use super::*;
use crate::NANOS_PER_DAY;

fn chunk(fingerprint: u64, from: i64, through: i64) -> ChunkRef {
    ChunkRef {
        fingerprint,
        from,
        through,
        checksum: fingerprint as u32 ^ 0xabcd,
        entries: 1,
        uncompressed_bytes: 2,
        compressed_bytes: 3,
        stats_bytes: 4,
    }
}

fn filter_of(text: &str) -> NgramFilter {
    let mut f = NgramFilter::for_text_len(64 * 1024);
    f.add(text.as_bytes());
    f
}

/// A table holds each chunk's filter as the chunk does (already at most 0.25 full).
#[test]
fn a_days_table_holds_the_chunks_filters() {
    let (a, b) = (chunk(1, 10, 20), chunk(2, 10, 20));
    let t = filter_table([(a, filter_of("needle-7f3a9c")), (b, filter_of("user=bob"))]);
    let back = FilterTable::decode(&t.encode()).unwrap();
    let fa = back.get(&id_of(&a)).unwrap();
    assert!(fa.may_contain(b"needle-7f3a9c") && !fa.may_contain(b"user=bob"));
    assert_eq!(fa, &filter_of("needle-7f3a9c").shrink(TABLE_MAX_FILL, 6));
}

#[tokio::test]
async fn tables_are_written_per_day_and_read_for_a_range() {
    let store: Arc<dyn ChunkStore> = Arc::new(ObjectChunkStore::in_memory());
    let idx = FilterIndex::new(store.clone(), 1 << 20);
    let day = NANOS_PER_DAY;
    let in_day1 = chunk(1, day + 5, day + 10);
    let across = chunk(2, 2 * day - 5, 2 * day + 5);
    let in_day3 = chunk(3, 3 * day + 1, 3 * day + 2);
    idx.write(
        "t1",
        vec![
            (in_day1, filter_of("alpha-1")),
            (across, filter_of("beta-2")),
            (in_day3, filter_of("gamma-3")),
        ],
    )
    .await
    .unwrap();
    let mut listed = store.list_prefix("t1/filters").await.unwrap();
    listed.sort();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed[0].starts_with("t1/filters/1/") && listed[0].ends_with(".flt"));

    let f = idx.filters("t1", day, 2 * day - 1).await.unwrap();
    assert!(f.get(&in_day1).is_some() && f.get(&across).is_some());
    assert!(f.get(&in_day3).is_none());
    let f = idx.filters("t1", 2 * day, 3 * day + 1).await.unwrap();
    assert!(f.get(&in_day1).is_none());
    assert!(f.get(&across).unwrap().may_contain(b"beta-2"));
    assert!(f.get(&in_day3).unwrap().may_contain(b"gamma-3"));
    // other tenants see nothing; a bad tenant id is refused
    assert!(idx.filters("t2", 0, 4 * day).await.unwrap().is_empty());
    assert!(idx.filters("../x", 0, 4 * day).await.is_err());
    // too many days: no tables read
    assert!(idx.filters("t1", 0, MAX_FILTER_DAYS * day).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_corrupt_table_is_left_out() {
    let store: Arc<dyn ChunkStore> = Arc::new(ObjectChunkStore::in_memory());
    let idx = FilterIndex::new(store.clone(), 0);
    let good = chunk(1, 5, 10);
    idx.write("t1", vec![(good, filter_of("alpha-1"))]).await.unwrap();
    store
        .put_object(&filter_table_path("t1", 0, "0000"), bytes::Bytes::from_static(b"garbage"))
        .await
        .unwrap();
    let f = idx.filters("t1", 0, 100).await.unwrap();
    assert_eq!(f.len(), 1);
    assert!(f.get(&good).is_some());
}

#[tokio::test]
async fn rewrite_day_merges_tables_and_drops_excluded_chunks() {
    let store: Arc<dyn ChunkStore> = Arc::new(ObjectChunkStore::in_memory());
    let index = FilterIndex::new(store.clone(), 0);
    let day = 19_000;
    let t = day * NANOS_PER_DAY;
    let c = |i: i64| ChunkRef {
        fingerprint: 7,
        from: t + i,
        through: t + i + 1,
        checksum: i as u32,
        entries: 1,
        uncompressed_bytes: 1,
        compressed_bytes: 1,
        stats_bytes: 1,
    };
    let f = || filter_of("needle-1");
    for i in 0..3 {
        index.write("t", vec![(c(i), f())]).await.unwrap();
    }
    assert_eq!(store.list_prefix("t/filters").await.unwrap().len(), 3);
    let gone: std::collections::HashSet<_> = [id_of(&c(0))].into_iter().collect();
    assert_eq!(index.rewrite_day("t", day, &gone).await.unwrap(), 3);
    assert_eq!(store.list_prefix("t/filters").await.unwrap().len(), 1);
    let filters = index.filters("t", t, t + 10).await.unwrap();
    assert!(filters.get(&c(0)).is_none());
    assert!(filters.get(&c(1)).is_some() && filters.get(&c(2)).is_some());
    assert_eq!(index.rewrite_day("t", day, &Default::default()).await.unwrap(), 0);
    assert_eq!(index.days("t").await.unwrap(), vec![day]);
}
