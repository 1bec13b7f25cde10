//! The index conformance suite for the object-store index kept in a real S3 server (SeaweedFS,
//! started by `scripts/test-servers/start.sh`), as `store: tsdb` + `object_store: s3` uses it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use skald_chunk_store::{ObjectChunkStore, ObjectChunkStoreConfig, S3Config, S3Credentials};
use skald_index::{ObjectIndexStore, ObjectIndexStoreConfig};

fn var(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| {
        panic!("{k} is not set: run scripts/test-servers/start.sh and source the env file it writes (the README's test command does both)")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_seaweedfs() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let s3 = S3Config {
        bucket: var("SKALD_TEST_S3_BUCKET"),
        region: var("SKALD_TEST_S3_REGION"),
        endpoint: Some(var("SKALD_TEST_S3_ENDPOINT")),
        force_path_style: true,
        credentials: Some(S3Credentials {
            access_key_id: var("SKALD_TEST_S3_ACCESS_KEY"),
            secret_access_key: var("SKALD_TEST_S3_SECRET_KEY"),
            session_token: None,
        }),
        prefix: format!("index-suite-{}-{nanos}", std::process::id()),
    };
    let chunks = Arc::new(ObjectChunkStore::s3(&s3, ObjectChunkStoreConfig::default()).unwrap());
    let index = ObjectIndexStore::new(chunks, ObjectIndexStoreConfig::default());
    skald_index::testsuite::run_all(&index).await;
}
