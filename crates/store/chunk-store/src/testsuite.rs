//! Conformance suite for [`ChunkStore`] implementations, in the style of object_store's
//! `integration.rs`: every backend runs the same functions. Each function panics on failure
//! and expects a store that is empty under the tenant(s) it uses.
//!
//! ```ignore
//! skald_chunk_store::testsuite::run_all(&my_store).await;
//! ```

use bytes::Bytes;

use crate::{ChunkKey, ChunkStore, Error};

/// Runs every conformance check.
pub async fn run_all(store: &dyn ChunkStore) {
    put_get_roundtrip(store).await;
    get_missing_is_not_found(store).await;
    delete_is_idempotent(store).await;
    overwrite_replaces(store).await;
    invalid_keys_are_refused(store).await;
    objects_and_listing(store).await;
    get_many_keeps_order(store).await;
    get_ranges_reads_the_asked_bytes(store).await;
    concurrent_puts(store).await;
    put_if_absent_uploads_once(store).await;
}

fn key(tenant: &str, fp: u64, from: i64) -> ChunkKey {
    ChunkKey::new(tenant, fp, from, from + 1_000, 0xfeed_0000 | (fp as u32 & 0xffff))
}

/// A chunk read back equals the bytes written, including empty and large chunks.
pub async fn put_get_roundtrip(store: &dyn ChunkStore) {
    for (i, len) in [0usize, 1, 1000, 3 * 1024 * 1024].into_iter().enumerate() {
        let k = key("suite-roundtrip", i as u64, 1_700_000_000_000_000_000);
        let data = Bytes::from((0..len).map(|b| (b % 251) as u8).collect::<Vec<u8>>());
        store.put(&k, data.clone()).await.expect("put");
        assert_eq!(store.get(&k).await.expect("get"), data, "len {len}");
        assert_eq!(store.get(&k).await.expect("get again"), data, "second read of len {len}");
    }
}

/// `put_if_absent` uploads a chunk once: a second call (another replica) finds it there and
/// leaves it, and so do replicas racing for it (at most one of them uploads, where the backend
/// has conditional puts: every one of the conforming stores).
pub async fn put_if_absent_uploads_once(store: &dyn ChunkStore) {
    let k = key("suite-absent", 1, 0);
    let data = Bytes::from_static(b"the chunk");
    assert!(store.put_if_absent(&k, data.clone()).await.expect("first"));
    assert!(!store.put_if_absent(&k, data.clone()).await.expect("second"));
    assert_eq!(store.get(&k).await.expect("get"), data);
    let k = key("suite-absent", 2, 0);
    let racing = (0..3).map(|_| store.put_if_absent(&k, data.clone()));
    let uploaded = futures::future::join_all(racing).await;
    let uploads = uploaded.into_iter().map(|r| r.expect("racing put")).filter(|u| *u).count();
    assert!((1..=3).contains(&uploads), "{uploads}");
    assert_eq!(store.get(&k).await.expect("get"), data);
}

/// Missing chunks and objects are `NotFound`.
pub async fn get_missing_is_not_found(store: &dyn ChunkStore) {
    let err = store.get(&key("suite-missing", 1, 0)).await.expect_err("missing chunk");
    assert!(err.is_not_found(), "{err:?}");
    let err =
        store.get_object("suite-missing/index/1/nothing.seg").await.expect_err("missing object");
    assert!(err.is_not_found(), "{err:?}");
}

/// Deleting removes the chunk, and deleting again (or a never-written chunk) succeeds.
pub async fn delete_is_idempotent(store: &dyn ChunkStore) {
    let k = key("suite-delete", 7, 0);
    store.put(&k, Bytes::from_static(b"bye")).await.expect("put");
    store.delete(&k).await.expect("delete");
    assert!(store.get(&k).await.expect_err("deleted").is_not_found());
    store.delete(&k).await.expect("delete again");
    store.delete_object("suite-delete/never/written").await.expect("delete missing object");
}

/// A second put of the same key is what a later get returns (also through the cache).
pub async fn overwrite_replaces(store: &dyn ChunkStore) {
    let k = key("suite-overwrite", 1, 0);
    store.put(&k, Bytes::from_static(b"one")).await.expect("put");
    assert_eq!(store.get(&k).await.expect("get"), Bytes::from_static(b"one"));
    store.put(&k, Bytes::from_static(b"two")).await.expect("put again");
    assert_eq!(store.get(&k).await.expect("get again"), Bytes::from_static(b"two"));
}

/// Tenants that are not path-safe and malformed object paths are refused before any I/O.
pub async fn invalid_keys_are_refused(store: &dyn ChunkStore) {
    for tenant in ["", "..", "a/b", "sp ace"] {
        let err = store.put(&key(tenant, 1, 0), Bytes::new()).await.expect_err(tenant);
        assert!(matches!(err, Error::InvalidTenant { .. }), "{err:?}");
    }
    let backwards = ChunkKey::new("suite-invalid", 1, 10, 5, 0);
    assert!(matches!(store.put(&backwards, Bytes::new()).await, Err(Error::InvalidKey { .. })));
    for path in ["", "/abs", "a//b", "a/../b", "trailing/"] {
        let err = store.put_object(path, Bytes::new()).await.expect_err(path);
        assert!(matches!(err, Error::InvalidPath { .. }), "{path}: {err:?}");
    }
}

/// Generic objects round-trip and `list_prefix` lists whole-segment prefixes recursively.
pub async fn objects_and_listing(store: &dyn ChunkStore) {
    let paths = [
        "suite-list/index/19700/a.seg",
        "suite-list/index/19700/b.seg",
        "suite-list/index/19701/c.seg",
        "suite-list/index/197010/d.seg",
    ];
    for p in paths {
        store.put_object(p, Bytes::from(p.as_bytes().to_vec())).await.expect("put_object");
    }
    for p in paths {
        assert_eq!(
            store.get_object(p).await.expect("get_object"),
            Bytes::from(p.as_bytes().to_vec())
        );
    }
    assert_eq!(
        store.list_prefix("suite-list/index/19700").await.expect("list"),
        vec![paths[0].to_string(), paths[1].to_string()]
    );
    assert_eq!(store.list_prefix("suite-list/index").await.expect("list").len(), 4);
    assert!(store.list_prefix("suite-list/nothing-here").await.expect("list missing").is_empty());
    let k = key("suite-list", 3, 0);
    store.put(&k, Bytes::from_static(b"c")).await.expect("put");
    assert_eq!(store.list_prefix("suite-list/chunks").await.expect("list chunks"), vec![k.path()]);
    store.delete_object(paths[0]).await.expect("delete_object");
    assert_eq!(
        store.list_prefix("suite-list/index/19700").await.expect("list"),
        vec![paths[1].to_string()]
    );
    assert_eq!(
        store.list_dirs("suite-list/index").await.expect("list dirs"),
        vec!["19700", "19701", "197010"]
    );
    assert_eq!(store.list_dirs("suite-list").await.expect("list dirs"), vec!["chunks", "index"]);
    assert!(store.list_dirs("").await.expect("top level").contains(&"suite-list".to_string()));
    assert!(store.list_dirs("suite-list/nothing-here").await.expect("missing").is_empty());
}

/// `get_many` returns results in key order, with `NotFound` for missing keys.
pub async fn get_many_keeps_order(store: &dyn ChunkStore) {
    let keys: Vec<ChunkKey> = (0..5).map(|i| key("suite-many", i, i as i64)).collect();
    for k in keys.iter().step_by(2) {
        store.put(k, Bytes::from(k.path().into_bytes())).await.expect("put");
    }
    let got = store.get_many(&keys).await;
    assert_eq!(got.len(), 5);
    for (i, (k, r)) in keys.iter().zip(got).enumerate() {
        if i % 2 == 0 {
            assert_eq!(r.expect("present"), Bytes::from(k.path().into_bytes()));
        } else {
            assert!(r.expect_err("absent").is_not_found());
        }
    }
}

/// Ranges of a chunk read back as the bytes at those places, in the order asked; a range past
/// the end is an error, a missing chunk is not found.
#[allow(clippy::single_range_in_vec_init)] // lists of one range
pub async fn get_ranges_reads_the_asked_bytes(store: &dyn ChunkStore) {
    let k = key("suite-ranges", 1, 1_700_000_000_000_000_000);
    let len = 3 * 1024 * 1024u64;
    let data = Bytes::from((0..len).map(|b| (b % 251) as u8).collect::<Vec<u8>>());
    store.put(&k, data.clone()).await.expect("put");
    let ranges = [len - 16..len, 0..8, 100..70_000, 2_000_000..2_000_001];
    let got = store.get_ranges(&k, &ranges).await.expect("get_ranges");
    assert_eq!(got.len(), ranges.len());
    for (r, b) in ranges.iter().zip(&got) {
        assert_eq!(b, &data.slice(r.start as usize..r.end as usize), "range {r:?}");
    }
    assert!(store.get_ranges(&k, &[]).await.expect("no ranges").is_empty());
    assert!(store.get_ranges(&k, &[len - 4..len + 4]).await.is_err(), "past the end");
    let missing = key("suite-ranges", 2, 1_700_000_000_000_000_000);
    let err = store.get_ranges(&missing, &[0..8]).await.expect_err("absent");
    assert!(err.is_not_found(), "{err}");
    store.delete(&k).await.expect("delete");
}

/// Many concurrent writers and readers see their own data.
pub async fn concurrent_puts(store: &dyn ChunkStore) {
    let keys: Vec<ChunkKey> = (0..64).map(|i| key("suite-concurrent", i, 0)).collect();
    futures::future::join_all(
        keys.iter().map(|k| store.put(k, Bytes::from(k.fingerprint.to_le_bytes().to_vec()))),
    )
    .await
    .into_iter()
    .for_each(|r| r.expect("concurrent put"));
    let got = store.get_many(&keys).await;
    for (k, r) in keys.iter().zip(got) {
        assert_eq!(r.expect("concurrent get"), Bytes::from(k.fingerprint.to_le_bytes().to_vec()));
    }
}

/// The test S3 server `scripts/test-servers/start.sh` started (its env file names it), with a
/// key prefix of its own under `tag`, so tests sharing the bucket do not meet. A missing
/// variable fails the test with what to run.
pub fn s3_config_from_test_env(tag: &str) -> crate::S3Config {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: run scripts/test-servers/start.sh and source the env file it writes (the README's test command does both)")
        })
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    crate::S3Config {
        bucket: var("SKALD_TEST_S3_BUCKET"),
        region: var("SKALD_TEST_S3_REGION"),
        endpoint: Some(var("SKALD_TEST_S3_ENDPOINT")),
        force_path_style: true,
        credentials: Some(crate::S3Credentials {
            access_key_id: var("SKALD_TEST_S3_ACCESS_KEY"),
            secret_access_key: var("SKALD_TEST_S3_SECRET_KEY"),
            session_token: None,
        }),
        prefix: format!("test-{tag}-{}-{nanos}", std::process::id()),
    }
}
