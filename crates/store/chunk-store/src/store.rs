//! The [`ChunkStore`] trait and [`ObjectChunkStore`], its `object_store` implementation.

use std::future::Future;
use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, PutPayload};
use tokio::sync::Semaphore;

use crate::cache::{ByteLru, CacheStats};
use crate::error::{Error, Result};
use crate::key::ChunkKey;

/// Where chunks and other immutable objects (index segments) are stored.
///
/// Paths of generic objects are `/`-separated, relative (no leading `/`), without empty,
/// `.` or `..` segments. Deletes are idempotent.
#[async_trait]
pub trait ChunkStore: Send + Sync {
    /// Stores a chunk. Writing the same key twice stores the last bytes (which, keys being
    /// content checksums, are the same bytes).
    async fn put(&self, key: &ChunkKey, bytes: Bytes) -> Result<()>;

    /// Stores a chunk unless an object is already at its key (which, keys being content
    /// checksums, holds the same bytes: another replica uploaded it). Returns whether it
    /// uploaded. Ingesters with replicas call it, so each chunk is uploaded about once, not
    /// once per replica. The default always uploads.
    async fn put_if_absent(&self, key: &ChunkKey, bytes: Bytes) -> Result<bool> {
        self.put(key, bytes).await.map(|()| true)
    }

    /// Fetches a chunk; [`Error::NotFound`] when it does not exist.
    async fn get(&self, key: &ChunkKey) -> Result<Bytes>;

    /// Fetches the byte ranges `ranges` of a chunk (each `start..end`, within the chunk), in
    /// `ranges` order: a reader that needs only some blocks of a chunk (and its block index)
    /// asks only for those bytes. [`Error::NotFound`] when the chunk does not exist; an
    /// error when a range reaches past its end. The default fetches the whole chunk.
    async fn get_ranges(&self, key: &ChunkKey, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let bytes = self.get(key).await?;
        slice_ranges(&bytes, ranges, key)
    }

    /// Fetches several chunks concurrently; results are in `keys` order.
    async fn get_many(&self, keys: &[ChunkKey]) -> Vec<Result<Bytes>> {
        futures::future::join_all(keys.iter().map(|k| self.get(k))).await
    }

    /// Deletes a chunk. Deleting a missing chunk succeeds.
    async fn delete(&self, key: &ChunkKey) -> Result<()>;

    /// Stores an arbitrary object at `path`, replacing any previous one.
    async fn put_object(&self, path: &str, bytes: Bytes) -> Result<()>;

    /// Fetches the object at `path`; [`Error::NotFound`] when it does not exist.
    async fn get_object(&self, path: &str) -> Result<Bytes>;

    /// Deletes the object at `path`. Deleting a missing object succeeds.
    async fn delete_object(&self, path: &str) -> Result<()>;

    /// Lists the paths of all objects below the directory `prefix` (recursively), sorted.
    /// `prefix` matches whole segments: `a/b` lists `a/b/c` but not `a/bc`. An empty prefix
    /// lists everything; a prefix with no objects gives an empty list.
    async fn list_prefix(&self, prefix: &str) -> Result<Vec<String>>;

    /// [`Self::list_prefix`] with each object's last modification (ms since the epoch), where
    /// the store knows it (the default does not: `None`).
    async fn list_prefix_modified(&self, prefix: &str) -> Result<Vec<(String, Option<i64>)>> {
        Ok(self.list_prefix(prefix).await?.into_iter().map(|p| (p, None)).collect())
    }

    /// The names of the directories directly below `prefix` (`""`: the top level), sorted:
    /// the tenants, for the compactor. The default derives them from [`Self::list_prefix`];
    /// a store that can list one level at a time overrides it.
    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let base = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        let mut dirs: Vec<String> = self
            .list_prefix(prefix)
            .await?
            .iter()
            .filter_map(|p| p.strip_prefix(&base)?.split_once('/').map(|(d, _)| d.to_string()))
            .collect();
        dirs.sort_unstable();
        dirs.dedup();
        Ok(dirs)
    }
}

/// Tuning of [`ObjectChunkStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectChunkStoreConfig {
    /// Most backend requests in flight at once.
    pub max_concurrency: usize,
    /// Retries after the first attempt for transient backend errors.
    pub max_retries: u32,
    /// Backoff before the first retry; doubled on each further retry.
    pub retry_min_backoff: Duration,
    /// Upper bound of the backoff.
    pub retry_max_backoff: Duration,
    /// Capacity of the chunk LRU cache, in bytes; 0 disables it.
    pub cache_bytes: usize,
    /// Also cache chunks when they are written (useful when the same process queries them).
    pub cache_on_put: bool,
    /// Objects larger than this are uploaded in parts.
    pub multipart_threshold: usize,
    /// Size of each uploaded part (at least 5 MiB, S3's smallest).
    pub multipart_part_size: usize,
}

/// Where an S3-compatible bucket is and how to sign for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Region (`us-east-1` for most S3-compatible servers).
    pub region: String,
    /// Endpoint URL (`http://127.0.0.1:8333`); `None` = AWS's endpoint for the region.
    pub endpoint: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted ones.
    pub force_path_style: bool,
    /// Static credentials; `None` = the `AWS_*` environment variables.
    pub credentials: Option<S3Credentials>,
    /// Key prefix inside the bucket (empty: none).
    pub prefix: String,
}

/// Static S3 credentials.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct S3Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Default for ObjectChunkStoreConfig {
    fn default() -> Self {
        ObjectChunkStoreConfig {
            max_concurrency: 64,
            max_retries: 3,
            retry_min_backoff: Duration::from_millis(50),
            retry_max_backoff: Duration::from_secs(2),
            cache_bytes: 64 * 1024 * 1024,
            cache_on_put: false,
            multipart_threshold: 64 * 1024 * 1024,
            multipart_part_size: 16 * 1024 * 1024,
        }
    }
}

/// A [`ChunkStore`] over any [`ObjectStore`] (local filesystem, in-memory, S3...), with bounded
/// concurrency, retries with exponential backoff on transient errors, and an LRU cache of
/// chunk bytes (generic objects are not cached).
#[derive(Debug)]
pub struct ObjectChunkStore {
    store: Arc<dyn ObjectStore>,
    config: ObjectChunkStoreConfig,
    permits: Semaphore,
    cache: ByteLru<ChunkKey, Bytes>,
    /// The pack directories read so far.
    packs: crate::packs::PackDirectory,
    /// The backend reads several ranges of one object in one call without reading what lies
    /// between them (the local filesystem, memory); otherwise each range is its own request
    /// (`object_store`'s S3 merges ranges less than 1 MiB apart into one request, which would
    /// read most of a chunk to get its header and its trailer).
    ranges_in_one_call: bool,
    /// An S3 backend: requests are timed in `loki_s3_request_duration_seconds`.
    is_s3: bool,
}

impl ObjectChunkStore {
    /// Wraps `store`.
    pub fn new(store: Arc<dyn ObjectStore>, config: ObjectChunkStoreConfig) -> Self {
        let permits = Semaphore::new(config.max_concurrency.max(1));
        let cache = ByteLru::new(config.cache_bytes);
        ObjectChunkStore {
            store,
            config,
            permits,
            cache,
            packs: Default::default(),
            ranges_in_one_call: false,
            is_s3: false,
        }
    }

    /// A store kept in memory (tests, single-process experiments).
    pub fn in_memory() -> Self {
        let store =
            ObjectChunkStore::new(Arc::new(InMemory::new()), ObjectChunkStoreConfig::default());
        ObjectChunkStore { ranges_in_one_call: true, ..store }
    }

    /// A store in the local directory `dir`, created if missing.
    pub fn local(dir: impl AsRef<FsPath>, config: ObjectChunkStoreConfig) -> Result<Self> {
        let dir = dir.as_ref();
        let display = dir.display().to_string();
        std::fs::create_dir_all(dir).map_err(|e| Error::Backend {
            op: "create_dir",
            path: display.clone(),
            source: object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) },
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir).map_err(|source| Error::Backend {
            op: "open",
            path: display,
            source,
        })?;
        let store = ObjectChunkStore::new(Arc::new(fs), config);
        Ok(ObjectChunkStore { ranges_in_one_call: true, ..store })
    }

    /// A store in an S3-compatible bucket. object_store's own retries are turned off: this
    /// store retries (and bounds concurrency) itself.
    pub fn s3(s3: &S3Config, config: ObjectChunkStoreConfig) -> Result<Self> {
        // Without static credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
        // AWS_SESSION_TOKEN, web identity and instance metadata, as the AWS SDKs find them.
        let base = if s3.credentials.is_some() {
            object_store::aws::AmazonS3Builder::new()
        } else {
            object_store::aws::AmazonS3Builder::from_env()
        };
        let mut b = base
            .with_bucket_name(&s3.bucket)
            .with_region(&s3.region)
            .with_virtual_hosted_style_request(!s3.force_path_style)
            .with_retry(object_store::RetryConfig { max_retries: 0, ..Default::default() })
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_allow_http(true)
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(60)),
            );
        if let Some(e) = &s3.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(c) = &s3.credentials {
            b = b.with_access_key_id(&c.access_key_id).with_secret_access_key(&c.secret_access_key);
            if let Some(t) = &c.session_token {
                b = b.with_token(t);
            }
        }
        let store = b.build().map_err(|source| Error::Backend {
            op: "open",
            path: format!("s3://{}", s3.bucket),
            source,
        })?;
        let store: Arc<dyn ObjectStore> = if s3.prefix.is_empty() {
            Arc::new(store)
        } else {
            let prefix = parse_path(s3.prefix.trim_matches('/'))?;
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
        };
        Ok(ObjectChunkStore { is_s3: true, ..ObjectChunkStore::new(store, config) })
    }

    /// The wrapped object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Counters of the chunk cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Every object under `prefix` (`""`: the whole store), sorted by path; none when the
    /// prefix does not exist.
    async fn list_objects(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let location = if prefix.is_empty() { None } else { Some(parse_path(prefix)?) };
        let listed = self
            .retry("list", prefix, || async {
                self.store.list(location.as_ref()).try_collect::<Vec<_>>().await
            })
            .await;
        let mut objects = match listed {
            Err(Error::NotFound { .. }) => Vec::new(),
            other => other?,
        };
        objects.sort_unstable_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// Runs `attempt` under a concurrency permit, retrying transient failures.
    async fn retry<T, F, Fut>(&self, op: &'static str, path: &str, attempt: F) -> Result<T>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = object_store::Result<T>> + Send,
        T: Send,
    {
        let mut retries = 0;
        loop {
            let result = {
                // The semaphore is never closed; a closed one would only mean no limit.
                let _permit = self.permits.acquire().await.ok();
                crate::metrics::count_request(op);
                let timer = self.is_s3.then(|| crate::metrics::S3Timer::start(op));
                let result = attempt().await;
                if let Some(t) = timer {
                    t.done(crate::metrics::s3_status(&result));
                }
                result
            };
            match result {
                Ok(v) => return Ok(v),
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(Error::NotFound { path: path.to_string() })
                }
                Err(e) if is_transient(&e) && retries < self.config.max_retries => {
                    let delay = backoff(&self.config, retries);
                    tracing::warn!(op, path, error = %e, retry = retries + 1, "transient object store error, retrying");
                    retries += 1;
                    tokio::time::sleep(delay).await;
                }
                Err(source) => return Err(Error::Backend { op, path: path.to_string(), source }),
            }
        }
    }

    /// Reads `ranges` of the object at `path`.
    async fn ranges_at(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let location = parse_path(path)?;
        let got = if self.ranges_in_one_call {
            self.retry("get_range", path, || self.store.get_ranges(&location, ranges)).await?
        } else {
            let location = &location;
            let one = |r: &Range<u64>| {
                let r = r.clone();
                self.retry("get_range", path, move || self.store.get_range(location, r.clone()))
            };
            futures::future::try_join_all(ranges.iter().map(one)).await?
        };
        if got.len() != ranges.len()
            || got.iter().zip(ranges).any(|(b, r)| b.len() as u64 != r.end.saturating_sub(r.start))
        {
            return Err(Error::RangeOutOfBounds { path: path.to_string() });
        }
        Ok(got)
    }

    /// `key`'s bytes (`ranges` of them, or all) from a pack holding it: by the directories
    /// already loaded, or (`reload`) by its day's directories read again. `None`: in no pack.
    async fn packed(
        &self,
        key: &ChunkKey,
        ranges: Option<&[Range<u64>]>,
        reload: bool,
    ) -> Result<Option<Vec<Bytes>>> {
        let places = if reload {
            let day = crate::packs::pack_day(key.from);
            let loaded = crate::packs::load_day(
                &key.tenant,
                day,
                |p| async move { self.list_prefix(&p).await },
                |p| async move { self.get_path(&p).await },
            )
            .await?;
            self.packs.set(key, loaded)
        } else {
            self.packs.cached(key)
        };
        for place in places {
            let wanted: Vec<Range<u64>> = match ranges {
                None => std::iter::once(place.offset..place.offset + place.len).collect(),
                Some(rs) => rs
                    .iter()
                    .map(|r| place.translate(r))
                    .collect::<Option<_>>()
                    .ok_or_else(|| Error::RangeOutOfBounds { path: key.path() })?,
            };
            match self.ranges_at(&place.pack, &wanted).await {
                Ok(got) => return Ok(Some(got)),
                // a pack deleted since its directory was read: another may hold the chunk
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    async fn put_path(&self, path: &str, bytes: Bytes) -> Result<()> {
        let location = parse_path(path)?;
        if bytes.len() > self.config.multipart_threshold {
            return self
                .retry("put_multipart", path, || self.put_multipart(&location, bytes.clone()))
                .await;
        }
        self.retry("put", path, || self.store.put(&location, PutPayload::from_bytes(bytes.clone())))
            .await
            .map(|_| ())
    }

    /// Uploads `bytes` in parts of `multipart_part_size` (a failed upload is aborted, so no
    /// parts are left behind, and the retry starts a new one).
    async fn put_multipart(&self, location: &Path, bytes: Bytes) -> object_store::Result<()> {
        let upload = self.store.put_multipart(location).await?;
        let mut w = object_store::WriteMultipart::new_with_chunk_size(
            upload,
            self.config.multipart_part_size.max(5 * 1024 * 1024),
        );
        w.put(bytes);
        w.finish().await.map(|_| ())
    }

    async fn get_path(&self, path: &str) -> Result<Bytes> {
        let location = parse_path(path)?;
        self.retry("get", path, || async { self.store.get(&location).await?.bytes().await }).await
    }

    async fn delete_path(&self, path: &str) -> Result<()> {
        let location = parse_path(path)?;
        match self.retry("delete", path, || self.store.delete(&location)).await {
            Err(Error::NotFound { .. }) => Ok(()),
            other => other,
        }
    }
}

#[async_trait]
impl ChunkStore for ObjectChunkStore {
    async fn put(&self, key: &ChunkKey, bytes: Bytes) -> Result<()> {
        key.validate()?;
        self.put_path(&key.path(), bytes.clone()).await?;
        if self.config.cache_on_put {
            self.cache.insert(key.clone(), bytes.clone(), bytes.len());
        } else {
            self.cache.remove(key);
        }
        Ok(())
    }

    /// A `HEAD` first (a read-priced request); when the object is absent, a create-only `PUT`
    /// (`If-None-Match: *` on S3), so that of replicas flushing the same chunk at once only
    /// one writes it; a backend without conditional puts gets a plain `PUT` (same bytes).
    async fn put_if_absent(&self, key: &ChunkKey, bytes: Bytes) -> Result<bool> {
        key.validate()?;
        let path = key.path();
        let location = parse_path(&path)?;
        let uploaded = match self.retry("head", &path, || self.store.head(&location)).await {
            Ok(_) => false,
            Err(Error::NotFound { .. }) => {
                let create = object_store::PutOptions {
                    mode: object_store::PutMode::Create,
                    ..Default::default()
                };
                let put = || async {
                    let payload = PutPayload::from_bytes(bytes.clone());
                    match self.store.put_opts(&location, payload, create.clone()).await {
                        Ok(_) => Ok(true),
                        Err(object_store::Error::NotImplemented) => self
                            .store
                            .put(&location, PutPayload::from_bytes(bytes.clone()))
                            .await
                            .map(|_| true),
                        Err(e) => Err(e),
                    }
                };
                if bytes.len() > self.config.multipart_threshold {
                    self.put_path(&path, bytes.clone()).await?;
                    true
                } else {
                    match self.retry("put", &path, put).await {
                        // another replica's upload came first
                        Err(Error::Backend {
                            source: object_store::Error::AlreadyExists { .. },
                            ..
                        }) => false,
                        other => other?,
                    }
                }
            }
            Err(e) => return Err(e),
        };
        if !uploaded {
            crate::metrics::count_skipped_put(bytes.len());
        }
        if self.config.cache_on_put {
            self.cache.insert(key.clone(), bytes.clone(), bytes.len());
        }
        Ok(uploaded)
    }

    /// From the cache, else the chunk's object, else a pack holding it
    /// ([`crate::packs`]).
    async fn get(&self, key: &ChunkKey) -> Result<Bytes> {
        key.validate()?;
        if let Some(bytes) = self.cache.get(key) {
            return Ok(bytes);
        }
        let whole = |got: Option<Vec<Bytes>>| got.and_then(|mut v| v.pop());
        let bytes = match whole(self.packed(key, None, false).await?) {
            Some(b) => b,
            None => match self.get_path(&key.path()).await {
                Err(Error::NotFound { path }) => {
                    whole(self.packed(key, None, true).await?).ok_or(Error::NotFound { path })?
                }
                other => other?,
            },
        };
        self.cache.insert(key.clone(), bytes.clone(), bytes.len());
        Ok(bytes)
    }

    /// From the cache when the whole chunk is there; else only the ranges are read (and not
    /// cached): of the chunk's object, or of a pack holding it.
    async fn get_ranges(&self, key: &ChunkKey, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        key.validate()?;
        if let Some(bytes) = self.cache.get(key) {
            return slice_ranges(&bytes, ranges, key);
        }
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(got) = self.packed(key, Some(ranges), false).await? {
            return Ok(got);
        }
        match self.ranges_at(&key.path(), ranges).await {
            Err(Error::NotFound { path }) => {
                self.packed(key, Some(ranges), true).await?.ok_or(Error::NotFound { path })
            }
            other => other,
        }
    }

    async fn delete(&self, key: &ChunkKey) -> Result<()> {
        key.validate()?;
        self.cache.remove(key);
        self.delete_path(&key.path()).await
    }

    async fn put_object(&self, path: &str, bytes: Bytes) -> Result<()> {
        self.put_path(path, bytes).await
    }

    async fn get_object(&self, path: &str) -> Result<Bytes> {
        self.get_path(path).await
    }

    async fn delete_object(&self, path: &str) -> Result<()> {
        self.delete_path(path).await
    }

    async fn list_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self.list_objects(prefix).await?.into_iter().map(|m| m.location.to_string()).collect())
    }

    async fn list_prefix_modified(&self, prefix: &str) -> Result<Vec<(String, Option<i64>)>> {
        let listed = self.list_objects(prefix).await?;
        Ok(listed
            .into_iter()
            .map(|m| (m.location.to_string(), Some(m.last_modified.timestamp_millis())))
            .collect())
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let location = if prefix.is_empty() { None } else { Some(parse_path(prefix)?) };
        let listed = self
            .retry("list", prefix, || async {
                self.store.list_with_delimiter(location.as_ref()).await
            })
            .await;
        let mut dirs: Vec<String> = match listed {
            Err(Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
            Ok(result) => result
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_string))
                .collect(),
        };
        dirs.sort_unstable();
        Ok(dirs)
    }
}

/// `ranges` of `bytes`, the whole chunk at `key`.
fn slice_ranges(bytes: &Bytes, ranges: &[Range<u64>], key: &ChunkKey) -> Result<Vec<Bytes>> {
    ranges
        .iter()
        .map(|r| {
            let (Ok(start), Ok(end)) = (usize::try_from(r.start), usize::try_from(r.end)) else {
                return Err(Error::RangeOutOfBounds { path: key.path() });
            };
            if start > end || end > bytes.len() {
                return Err(Error::RangeOutOfBounds { path: key.path() });
            }
            Ok(bytes.slice(start..end))
        })
        .collect()
}

/// Parses a relative object path, refusing anything `object_store` would reinterpret.
fn parse_path(path: &str) -> Result<Path> {
    let invalid = || Error::InvalidPath { path: path.to_string() };
    if path.is_empty() || path.starts_with('/') || path.ends_with('/') {
        return Err(invalid());
    }
    let parsed = Path::parse(path).map_err(|_| invalid())?;
    // `Path::parse` accepts some spellings it normalises; insist on an exact round trip.
    if parsed.as_ref() != path {
        return Err(invalid());
    }
    Ok(parsed)
}

/// Errors worth retrying: network and server trouble surface as `Generic` (and task join
/// failures as `JoinError`); everything else is a definite answer.
fn is_transient(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::Generic { .. } | object_store::Error::JoinError { .. })
}

/// Exponential backoff with up to 25% jitter.
fn backoff(config: &ObjectChunkStoreConfig, retry: u32) -> Duration {
    let base = config
        .retry_min_backoff
        .saturating_mul(1u32 << retry.min(16))
        .min(config.retry_max_backoff);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = base.mul_f64(f64::from(nanos % 1000) / 4000.0);
    base + jitter
}

#[cfg(test)]
mod tests;
