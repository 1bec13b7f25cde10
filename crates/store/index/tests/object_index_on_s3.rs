//! The index conformance suite for the object-store index kept in a real S3 server (SeaweedFS,
//! started by `scripts/test-servers/start.sh`), as `store: tsdb` + `object_store: s3` uses it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use skald_chunk_store::{ObjectChunkStore, ObjectChunkStoreConfig};
use skald_index::{ObjectIndexStore, ObjectIndexStoreConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_seaweedfs() {
    let s3 = skald_chunk_store::testsuite::s3_config_from_test_env("index-suite");
    let chunks = Arc::new(ObjectChunkStore::s3(&s3, ObjectChunkStoreConfig::default()).unwrap());
    let index = ObjectIndexStore::new(chunks, ObjectIndexStoreConfig::default());
    skald_index::testsuite::run_all(&index).await;
}
