use std::sync::Arc;
use std::time::Duration;

use skald_chunk_store::{ChunkStore, ObjectChunkStore};
use skald_common::limits::Limits;
use skald_index::{ChunkRef, IndexStore, ObjectIndexStore, ObjectIndexStoreConfig, NANOS_PER_DAY};
use skald_model::Labels;

use crate::{Compactor, CompactorConfig, TenantLimits};

const DAY: i64 = NANOS_PER_DAY;
const NOW: i64 = 20_000 * DAY + DAY / 2;

struct Fixture {
    store: Arc<dyn ChunkStore>,
    index: Arc<dyn IndexStore>,
}

fn fixture() -> Fixture {
    let store: Arc<dyn ChunkStore> = Arc::new(ObjectChunkStore::in_memory());
    let index: Arc<dyn IndexStore> =
        Arc::new(ObjectIndexStore::new(store.clone(), ObjectIndexStoreConfig::default()));
    Fixture { store, index }
}

fn limits(yaml: &str) -> TenantLimits {
    let l: Arc<Limits> = Arc::new(serde_yaml::from_str(yaml).unwrap());
    Arc::new(move |_: &str| l.clone())
}

fn compactor(f: &Fixture, delay: Duration, yaml: &str) -> Compactor {
    let config = CompactorConfig {
        retention_enabled: true,
        retention_delete_delay: delay,
        ..Default::default()
    };
    Compactor::new(
        config,
        f.store.clone(),
        f.index.clone(),
        limits(yaml),
        &prometheus::Registry::new(),
    )
    .unwrap()
}

/// Stores a chunk object and indexes it (one segment per call).
async fn put_chunk(f: &Fixture, tenant: &str, labels: &Labels, from: i64) -> ChunkRef {
    let c = ChunkRef {
        fingerprint: labels.hash(),
        from,
        through: from + 1_000,
        checksum: from as u32,
        entries: 1,
        uncompressed_bytes: 10,
        compressed_bytes: 7,
        stats_bytes: 10,
    };
    f.store.put(&c.key(tenant), bytes::Bytes::from_static(b"chunk!!")).await.unwrap();
    f.index.write_chunks(tenant, vec![(labels.clone(), c)]).await.unwrap();
    c
}

async fn chunks_of(f: &Fixture, tenant: &str) -> usize {
    f.index.series(tenant, &[], 0, i64::MAX).await.unwrap().iter().map(|s| s.chunks.len()).sum()
}

#[tokio::test]
async fn retention_removes_index_entries_then_objects_and_compacts_days() {
    let f = fixture();
    let (app, debug) =
        (Labels::parse(r#"{app="web"}"#).unwrap(), Labels::parse(r#"{app="debug"}"#).unwrap());
    // 10, 5 and 2 days old, and today (twice: two segments)
    let old = put_chunk(&f, "t", &app, NOW - 10 * DAY).await;
    let five = put_chunk(&f, "t", &app, NOW - 5 * DAY).await;
    let dbg_two = put_chunk(&f, "t", &debug, NOW - 2 * DAY).await;
    put_chunk(&f, "t", &app, NOW - 1_000_000).await;
    put_chunk(&f, "t", &app, NOW - 2_000_000).await;
    let c = compactor(
        &f,
        Duration::ZERO,
        "retention_period: 168h\nretention_stream:\n- selector: '{app=\"debug\"}'\n  priority: 1\n  period: 24h\n",
    );
    let report = c.run_pass(NOW).await;
    assert_eq!(report.failures, 0, "{report:?}");
    assert_eq!(report.chunks_marked, 2, "the 10-day-old chunk and the 2-day-old debug one");
    assert_eq!(report.chunks_deleted, 2);
    assert_eq!(report.bytes_deleted, 14);
    assert!(f.store.get(&old.key("t")).await.unwrap_err().is_not_found());
    assert!(f.store.get(&dbg_two.key("t")).await.unwrap_err().is_not_found());
    assert!(f.store.get(&five.key("t")).await.is_ok());
    assert_eq!(chunks_of(&f, "t").await, 3);
    // today's two segments became one; the expired days have none left
    let segs = f.store.list_prefix("t/index").await.unwrap();
    assert_eq!(segs.len(), 2, "{segs:?}");
    assert!(f.store.list_prefix(crate::MARKERS_PREFIX).await.unwrap().is_empty());
    // a second pass changes nothing
    let again = c.run_pass(NOW).await;
    assert_eq!((again.chunks_marked, again.chunks_deleted, again.objects_replaced), (0, 0, 0));
}

#[tokio::test]
async fn objects_wait_for_the_delete_delay() {
    let f = fixture();
    let app = Labels::parse(r#"{app="web"}"#).unwrap();
    let old = put_chunk(&f, "t", &app, NOW - 3 * DAY).await;
    let c = compactor(&f, Duration::from_secs(7200), "retention_period: 24h\n");
    let report = c.run_pass(NOW).await;
    assert_eq!((report.chunks_marked, report.chunks_deleted), (1, 0));
    assert_eq!(chunks_of(&f, "t").await, 0, "index entries are gone at once");
    assert!(f.store.get(&old.key("t")).await.is_ok(), "the object waits");
    let report = c.run_pass(NOW + 3_600 * 1_000_000_000).await;
    assert_eq!(report.chunks_deleted, 0);
    let report = c.run_pass(NOW + 7_200 * 1_000_000_000).await;
    assert_eq!(report.chunks_deleted, 1);
    assert!(f.store.get(&old.key("t")).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn without_retention_only_compaction_runs() {
    let f = fixture();
    let app = Labels::parse(r#"{app="web"}"#).unwrap();
    for i in 0..3 {
        put_chunk(&f, "t", &app, NOW - 30 * DAY + i).await;
    }
    let config = CompactorConfig::default();
    let c = Compactor::new(
        config,
        f.store.clone(),
        f.index.clone(),
        limits("retention_period: 24h\n"),
        &prometheus::Registry::new(),
    )
    .unwrap();
    let report = c.run_pass(NOW).await;
    assert_eq!((report.chunks_marked, report.objects_replaced), (0, 3));
    assert_eq!(chunks_of(&f, "t").await, 3);
    assert_eq!(f.store.list_prefix("t/index").await.unwrap().len(), 1);
}

#[tokio::test]
async fn size_retention_deletes_the_oldest_chunks_until_under_the_limit() {
    let f = fixture();
    let (a, b) = (Labels::parse(r#"{app="a"}"#).unwrap(), Labels::parse(r#"{app="b"}"#).unwrap());
    // 5 chunks of 7 bytes (35 bytes) over two streams and three days; another tenant untouched
    let oldest = put_chunk(&f, "t", &a, NOW - 3 * DAY).await;
    let second = put_chunk(&f, "t", &b, NOW - 2 * DAY).await;
    let third = put_chunk(&f, "t", &a, NOW - DAY).await;
    let fourth = put_chunk(&f, "t", &b, NOW - 2_000_000).await;
    let newest = put_chunk(&f, "t", &a, NOW - 1_000_000).await;
    let other = put_chunk(&f, "u", &a, NOW - 3 * DAY).await;
    let limits: TenantLimits = {
        let t: Arc<Limits> = Arc::new(serde_yaml::from_str("retention_max_bytes: 20").unwrap());
        let u: Arc<Limits> = Arc::new(Limits::default());
        Arc::new(move |tenant: &str| if tenant == "t" { t.clone() } else { u.clone() })
    };
    let config = CompactorConfig {
        retention_enabled: true,
        retention_delete_delay: Duration::ZERO,
        ..Default::default()
    };
    let c = Compactor::new(
        config,
        f.store.clone(),
        f.index.clone(),
        limits,
        &prometheus::Registry::new(),
    )
    .unwrap();
    let report = c.run_pass(NOW).await;
    assert_eq!(report.failures, 0, "{report:?}");
    // 35 -> 28 -> 21 -> 14 bytes: the three oldest go
    assert_eq!((report.chunks_marked, report.chunks_deleted, report.bytes_deleted), (3, 3, 21));
    for gone in [oldest, second, third] {
        assert!(f.store.get(&gone.key("t")).await.unwrap_err().is_not_found());
    }
    for kept in [fourth, newest] {
        assert!(f.store.get(&kept.key("t")).await.is_ok());
    }
    assert_eq!(chunks_of(&f, "t").await, 2);
    assert!(f.store.get(&other.key("u")).await.is_ok(), "a tenant without the limit keeps all");
    assert_eq!(chunks_of(&f, "u").await, 1);
    // under the limit now: a second pass deletes nothing
    let again = c.run_pass(NOW).await;
    assert_eq!((again.chunks_marked, again.chunks_deleted), (0, 0));
}
