#![allow(clippy::unwrap_used)]

use skald_model::MatchType;

use super::*;
use crate::{MemIndexStore, NANOS_PER_DAY};

const DAY: i64 = NANOS_PER_DAY;
const T0: i64 = 19_675 * DAY;

fn chunk(labels: &Labels, from: i64, through: i64) -> ChunkRef {
    ChunkRef {
        fingerprint: labels.hash(),
        from,
        through,
        checksum: from as u32,
        entries: 10,
        uncompressed_bytes: 100,
        compressed_bytes: 10,
        stats_bytes: 90,
    }
}

#[tokio::test]
async fn the_wrapped_index_still_passes_the_suite() {
    crate::testsuite::run_all(&TimedIndexStore::new(Arc::new(MemIndexStore::new()))).await;
}

/// The metrics are process-wide and other tests of this binary write indexes at the same
/// time: counts are compared as "grew by at least ours".
#[tokio::test]
async fn requests_are_timed_under_lokis_operations() {
    let index = TimedIndexStore::new(Arc::new(MemIndexStore::new()));
    let before = |op: &str| index_requests(op, "200");
    let (writes, refs, names, values) = (
        before("index_chunk"),
        before("chunk_refs"),
        before("label_names"),
        before("label_values"),
    );
    let failed = index_requests("index_chunk", "500");
    let (chunks, entries) = entries_per_chunk();

    let a = Labels::parse(r#"{app="a"}"#).unwrap();
    let b = Labels::parse(r#"{app="b"}"#).unwrap();
    // one chunk within a day, one across a midnight (two days: two entries)
    let refs_written = vec![
        (a.clone(), chunk(&a, T0, T0 + 1_000)),
        (b.clone(), chunk(&b, T0 + DAY - 5, T0 + DAY + 5)),
    ];
    index.write_chunks("t", refs_written).await.unwrap();
    let m = LabelMatcher::new("app", MatchType::Equal, "a").unwrap();
    let found = index.series("t", &[m], T0, T0 + DAY).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(index.label_names("t", T0, T0 + DAY, &[]).await.unwrap(), vec!["app"]);
    assert_eq!(index.label_values("t", "app", T0, T0 + DAY, &[]).await.unwrap(), vec!["a", "b"]);
    // a chunk ending before it starts is refused: a failed write
    let bad = vec![(a.clone(), chunk(&a, T0 + 10, T0))];
    assert!(index.write_chunks("t", bad).await.is_err());

    assert!(before("index_chunk") > writes);
    assert!(before("chunk_refs") > refs);
    assert!(before("label_names") > names);
    assert!(before("label_values") > values);
    assert!(index_requests("index_chunk", "500") > failed);
    let (chunks_now, entries_now) = entries_per_chunk();
    assert!(chunks_now >= chunks + 2, "both written chunks observed, not the refused one");
    assert!(entries_now >= entries + 3.0, "1 + 2 entries");
}

#[tokio::test]
async fn a_request_given_up_is_a_cancel() {
    struct Slow;
    #[async_trait]
    impl IndexStore for Slow {
        async fn write_chunks(&self, _: &str, _: Vec<(Labels, ChunkRef)>) -> Result<()> {
            std::future::pending().await
        }
        async fn series(
            &self,
            _: &str,
            _: &[LabelMatcher],
            _: i64,
            _: i64,
        ) -> Result<Vec<SeriesChunks>> {
            std::future::pending().await
        }
        async fn replace_chunks(
            &self,
            _: &str,
            _: Vec<(Labels, ChunkRef)>,
            _: Vec<(Labels, ChunkRef)>,
        ) -> Result<()> {
            Ok(())
        }
        async fn days(&self, _: &str) -> Result<Vec<i64>> {
            Ok(Vec::new())
        }
        async fn delete_chunks(&self, _: &str, _: Vec<(Labels, ChunkRef)>) -> Result<()> {
            Ok(())
        }
    }
    let index = TimedIndexStore::new(Arc::new(Slow));
    let cancelled = index_requests("chunk_refs", "cancel");
    let gave_up =
        tokio::time::timeout(std::time::Duration::from_millis(20), index.series("t", &[], 0, 1))
            .await;
    assert!(gave_up.is_err());
    assert!(index_requests("chunk_refs", "cancel") > cancelled);
}

#[test]
fn buckets_and_entries_are_lokis() {
    let b = index_buckets();
    assert_eq!(b.len(), 12);
    assert!((b[0] - 0.005).abs() < 1e-12 && (b[11] - 100.0).abs() < 1e-9, "{b:?}");
    assert!(b.windows(2).all(|w| w[1] > w[0]));
    let l = Labels::parse(r#"{app="a"}"#).unwrap();
    assert_eq!(index_entries(&chunk(&l, T0, T0 + 1)), 1);
    assert_eq!(index_entries(&chunk(&l, T0 + DAY - 1, T0 + 2 * DAY + 1)), 3);
}
