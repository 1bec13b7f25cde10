use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::stream::BoxStream;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, PutMultipartOptions,
    PutOptions, PutResult,
};

use super::*;
use crate::testsuite;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    std::env::temp_dir().join(format!("skald-chunk-store-{name}-{}-{nanos}", std::process::id()))
}

fn fast_config() -> ObjectChunkStoreConfig {
    ObjectChunkStoreConfig {
        retry_min_backoff: Duration::from_millis(1),
        retry_max_backoff: Duration::from_millis(5),
        ..ObjectChunkStoreConfig::default()
    }
}

#[tokio::test]
async fn conformance_in_memory() {
    testsuite::run_all(&ObjectChunkStore::in_memory()).await;
}

#[tokio::test]
async fn conformance_in_memory_without_cache() {
    let config = ObjectChunkStoreConfig { cache_bytes: 0, ..ObjectChunkStoreConfig::default() };
    testsuite::run_all(&ObjectChunkStore::new(Arc::new(InMemory::new()), config)).await;
}

#[tokio::test]
async fn conformance_local_filesystem() {
    let dir = temp_dir("conformance");
    let store = ObjectChunkStore::local(&dir, ObjectChunkStoreConfig::default()).unwrap();
    testsuite::run_all(&store).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn chunks_land_at_their_key_path_on_disk() {
    let dir = temp_dir("layout");
    let store = ObjectChunkStore::local(&dir, ObjectChunkStoreConfig::default()).unwrap();
    let k = ChunkKey::new("fake", 1, 2, 3, 4);
    store.put(&k, Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(std::fs::read(dir.join("fake/chunks/0000000000000001/2-3-00000004")).unwrap(), b"x");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn cache_serves_repeated_gets() {
    let store = ObjectChunkStore::in_memory();
    let k = ChunkKey::new("fake", 1, 2, 3, 4);
    store.put(&k, Bytes::from_static(b"abc")).await.unwrap();
    store.get(&k).await.unwrap();
    store.get(&k).await.unwrap();
    let stats = store.cache_stats();
    assert_eq!((stats.hits, stats.misses, stats.bytes), (1, 1, 3));
    store.delete(&k).await.unwrap();
    assert!(store.get(&k).await.unwrap_err().is_not_found());
}

/// An in-memory store whose first `fail` calls of every kind fail with `error`.
#[derive(Debug)]
struct Flaky {
    inner: InMemory,
    fail: usize,
    calls: AtomicUsize,
    permanent: bool,
    /// The byte range of every object read.
    reads: parking_lot::Mutex<Vec<std::ops::Range<u64>>>,
}

impl Flaky {
    fn new(fail: usize, permanent: bool) -> Self {
        Flaky {
            inner: InMemory::new(),
            fail,
            calls: AtomicUsize::new(0),
            permanent,
            reads: parking_lot::Mutex::new(Vec::new()),
        }
    }

    fn check(&self) -> object_store::Result<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail {
            if self.permanent {
                return Err(object_store::Error::PermissionDenied {
                    path: "x".into(),
                    source: "denied".into(),
                });
            }
            return Err(object_store::Error::Generic {
                store: "Flaky",
                source: "connection reset".into(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for Flaky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Flaky")
    }
}

#[async_trait]
impl ObjectStore for Flaky {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check()?;
        let got = self.inner.get_opts(location, options).await?;
        self.reads.lock().push(got.range.clone());
        Ok(got)
    }

    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.check()?;
        self.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

#[tokio::test]
async fn transient_errors_are_retried() {
    let flaky = Arc::new(Flaky::new(2, false));
    let store = ObjectChunkStore::new(flaky.clone(), fast_config());
    store.put_object("a/b", Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
    assert_eq!(store.get_object("a/b").await.unwrap(), Bytes::from_static(b"x"));
}

#[tokio::test]
async fn retries_are_bounded() {
    let flaky = Arc::new(Flaky::new(100, false));
    let store = ObjectChunkStore::new(flaky.clone(), fast_config());
    let err = store.put_object("a/b", Bytes::new()).await.unwrap_err();
    assert!(matches!(err, Error::Backend { op: "put", .. }), "{err:?}");
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn permanent_errors_are_not_retried() {
    let flaky = Arc::new(Flaky::new(1, true));
    let store = ObjectChunkStore::new(flaky.clone(), fast_config());
    assert!(store.get_object("a/b").await.is_err());
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn backoff_grows_and_is_capped() {
    let c = ObjectChunkStoreConfig::default();
    assert!(
        backoff(&c, 0) >= Duration::from_millis(50) && backoff(&c, 0) <= Duration::from_millis(63)
    );
    assert!(backoff(&c, 1) >= Duration::from_millis(100));
    assert!(backoff(&c, 30) <= Duration::from_millis(2500));
}

#[tokio::test]
#[allow(clippy::single_range_in_vec_init)] // lists of one range
async fn ranged_reads_ask_only_the_ranges() {
    let backend = Arc::new(Flaky::new(0, false));
    let store = ObjectChunkStore::new(backend.clone(), fast_config());
    let k = ChunkKey::new("fake", 1, 2, 3, 4);
    let data = Bytes::from((0..100_000u32).map(|i| i as u8).collect::<Vec<u8>>());
    store.put(&k, data.clone()).await.unwrap();
    let ranges = [0..8, 99_000..100_000, 500..1_500];
    let got = store.get_ranges(&k, &ranges).await.unwrap();
    for (r, b) in ranges.iter().zip(&got) {
        assert_eq!(b, &data.slice(r.start as usize..r.end as usize));
    }
    // one request per range, never merged into a read of what lies between
    let mut reads = std::mem::take(&mut *backend.reads.lock());
    reads.sort_by_key(|r| r.start);
    assert_eq!(reads, vec![0..8, 500..1_500, 99_000..100_000]);
    // ranged reads are not cached; a chunk the cache holds is sliced, not read
    store.get(&k).await.unwrap();
    assert_eq!(backend.reads.lock().len(), 1, "{:?}", backend.reads.lock());
    let again = store.get_ranges(&k, &ranges).await.unwrap();
    assert_eq!(again, got);
    assert_eq!(backend.reads.lock().len(), 1);
    // a range past the end is an error, from the backend or from the cache
    assert!(store.get_ranges(&k, &[99_990..100_010]).await.is_err());
    let uncached = ObjectChunkStore::new(
        backend.clone(),
        ObjectChunkStoreConfig { cache_bytes: 0, ..fast_config() },
    );
    assert!(uncached.get_ranges(&k, &[99_990..100_010]).await.is_err());
}

#[tokio::test]
async fn local_ranged_reads_are_the_bytes_asked() {
    let dir = temp_dir("ranges");
    let config = ObjectChunkStoreConfig { cache_bytes: 0, ..ObjectChunkStoreConfig::default() };
    let store = ObjectChunkStore::local(&dir, config).unwrap();
    assert!(store.ranges_in_one_call);
    testsuite::get_ranges_reads_the_asked_bytes(&store).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_skipped_upload_counts_as_deduped_and_only_s3_is_timed() {
    use crate::metrics::{deduped_chunks, s3_requests};
    let store = ObjectChunkStore::in_memory();
    let key = ChunkKey::new("dedupe", 1, 10, 20, 3);
    let (deduped, timed) = (deduped_chunks(), s3_requests("S3.PutObject", "200"));
    assert!(store.put_if_absent(&key, Bytes::from_static(b"abc")).await.unwrap());
    assert_eq!(deduped_chunks(), deduped, "the first upload is no duplicate");
    assert!(!store.put_if_absent(&key, Bytes::from_static(b"abc")).await.unwrap());
    assert!(deduped_chunks() > deduped);
    // no unit test talks to S3: a store of another backend times nothing
    assert_eq!(s3_requests("S3.PutObject", "200"), timed);
}

#[test]
fn s3_operations_and_statuses_are_lokis() {
    use crate::metrics::{s3_operation, s3_status};
    for (op, loki) in [
        ("get", "S3.GetObject"),
        ("get_range", "S3.GetObject"),
        ("put", "S3.PutObject"),
        ("put_multipart", "S3.PutObject"),
        ("head", "S3.ObjectExists"),
        ("delete", "S3.DeleteObject"),
        ("list", "S3.List"),
    ] {
        assert_eq!(s3_operation(op), loki, "{op}");
    }
    let missing: object_store::Result<()> =
        Err(object_store::Error::NotFound { path: "p".into(), source: "gone".into() });
    let exists: object_store::Result<()> =
        Err(object_store::Error::AlreadyExists { path: "p".into(), source: "there".into() });
    let failed: object_store::Result<()> =
        Err(object_store::Error::Generic { store: "S3", source: "boom".into() });
    assert_eq!(s3_status(&Ok::<(), object_store::Error>(())), "200");
    assert_eq!(s3_status(&missing), "404");
    assert_eq!(s3_status(&exists), "412");
    assert_eq!(s3_status(&failed), "500");
}
