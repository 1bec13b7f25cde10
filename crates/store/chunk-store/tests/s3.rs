//! The chunk-store conformance suite, multipart uploads and an outage against a real S3 server
//! (SeaweedFS, started by `scripts/test-servers/start.sh`; the test command sources its env
//! file). Every test works under its own key prefix, so runs sharing the bucket do not meet.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use bytes::Bytes;
use skald_chunk_store::{ChunkStore, ObjectChunkStore, ObjectChunkStoreConfig, S3Config};

fn s3_config(name: &str) -> S3Config {
    skald_chunk_store::testsuite::s3_config_from_test_env(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_seaweedfs() {
    let store = ObjectChunkStore::s3(&s3_config("suite"), ObjectChunkStoreConfig::default())
        .expect("s3 store");
    skald_chunk_store::testsuite::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_go_up_in_parts() {
    let config = ObjectChunkStoreConfig {
        multipart_threshold: 6 * 1024 * 1024,
        multipart_part_size: 5 * 1024 * 1024,
        ..Default::default()
    };
    let store = ObjectChunkStore::s3(&s3_config("multipart"), config).expect("s3 store");
    // 13 MiB of varied bytes: three parts
    let body: Vec<u8> =
        (0..13 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let body = Bytes::from(body);
    store.put_object("big/object.bin", body.clone()).await.expect("multipart put");
    let back = store.get_object("big/object.bin").await.expect("get");
    assert_eq!(back.len(), body.len());
    assert!(back == body, "multipart object read back differs");
    assert_eq!(store.list_prefix("big").await.unwrap(), vec!["big/object.bin".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_clear_error_after_retries() {
    // a port nothing listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut s3 = s3_config("down");
    s3.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let config = ObjectChunkStoreConfig {
        max_retries: 2,
        retry_min_backoff: std::time::Duration::from_millis(10),
        ..Default::default()
    };
    let store = ObjectChunkStore::s3(&s3, config).expect("s3 store");
    let started = std::time::Instant::now();
    let err = store.put_object("x/y", Bytes::from_static(b"z")).await.unwrap_err();
    let text = format!("{err}");
    assert!(text.contains("put") && text.contains("x/y"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// Every request is timed in `loki_s3_request_duration_seconds` under Loki's S3 operation
/// names, and an upload another replica already made counts in
/// `loki_chunk_store_deduped_chunks_total` (the store's metrics are process-wide, and other
/// tests of this binary run at the same time: counts only grow by at least ours).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_timed_under_lokis_s3_operations() {
    use skald_chunk_store::metrics::{deduped_chunks, s3_requests};
    use skald_chunk_store::ChunkKey;
    // one prefix (one config) for every store of the test: they are replicas of one bucket
    let config = s3_config("timed");
    let open = || ObjectChunkStore::s3(&config, ObjectChunkStoreConfig::default()).unwrap();
    let store = open();
    let key = ChunkKey::new("timed", 7, 1_000, 2_000, 0xabcd);
    let before = |op: &str, code: &str| s3_requests(op, code);
    let (puts, heads_404, heads_200, gets, deletes, lists, deduped) = (
        before("S3.PutObject", "200"),
        before("S3.ObjectExists", "404"),
        before("S3.ObjectExists", "200"),
        before("S3.GetObject", "200"),
        before("S3.DeleteObject", "200"),
        before("S3.List", "200"),
        deduped_chunks(),
    );
    let bytes = Bytes::from_static(b"chunk bytes for the timing test");
    assert!(store.put_if_absent(&key, bytes.clone()).await.unwrap(), "first upload writes");
    // a second replica flushing the same chunk: HEAD finds it, nothing is uploaded
    let replica = open();
    assert!(!replica.put_if_absent(&key, bytes.clone()).await.unwrap(), "second is skipped");
    // readers with empty caches
    assert_eq!(&open().get(&key).await.unwrap()[..], &bytes[..]);
    assert_eq!(open().get_ranges(&key, &[0..5, 6..11]).await.unwrap().len(), 2);
    let tenant_dir = key.path();
    let listed = replica.list_prefix(tenant_dir.rsplit_once('/').unwrap().0).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    replica.delete(&key).await.unwrap();

    assert!(s3_requests("S3.PutObject", "200") > puts);
    assert!(s3_requests("S3.ObjectExists", "404") > heads_404, "the check before the upload");
    assert!(s3_requests("S3.ObjectExists", "200") > heads_200, "the replica's check");
    assert!(s3_requests("S3.GetObject", "200") >= gets + 3, "one read and two ranges");
    assert!(s3_requests("S3.DeleteObject", "200") > deletes);
    assert!(s3_requests("S3.List", "200") > lists);
    assert!(deduped_chunks() > deduped);
}
