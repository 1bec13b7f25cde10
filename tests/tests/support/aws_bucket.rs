//! The test servers' SeaweedFS bucket and DynamoDB Local as the compactor tests see them: the
//! storage YAML of a deployment with a prefix (and tenant) of its own, and the bucket's objects
//! read and written directly. Shared by `compactor.rs` and `compaction.rs` (`#[path]` module).

use std::time::Duration;

use skald_chunk_store::{ChunkStore, ObjectChunkStore, S3Config};
use skald_integration_tests::Skald;

/// One deployment's storage on the test servers.
pub struct AwsBucket {
    /// The `storage_config`/`schema_config` YAML of the deployment.
    pub yaml: String,
    /// Its tenant (the unique prefix, so that runs sharing the bucket do not meet).
    pub tenant: String,
    rt: tokio::runtime::Runtime,
    s3: ObjectChunkStore,
}

impl AwsBucket {
    /// A deployment whose table and key prefix start with `tag`.
    pub fn new(tag: &str) -> Self {
        let servers = skald_integration_tests::test_servers();
        let prefix = skald_integration_tests::unique_prefix(tag);
        let tenant = prefix.trim_end_matches('_').to_string();
        let yaml = skald_integration_tests::helm_aws_storage_yaml(
            &servers,
            &skald_integration_tests::host_port(&servers.s3_endpoint),
            &skald_integration_tests::host_port(&servers.dynamodb_endpoint),
            &prefix,
        );
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let s3 = ObjectChunkStore::s3(
            &S3Config {
                prefix: String::new(),
                ..skald_chunk_store::testsuite::s3_config_from_test_env("compactor")
            },
            Default::default(),
        )
        .unwrap();
        AwsBucket { yaml, tenant, rt, s3 }
    }

    /// Object paths under `prefix`.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.rt.block_on(self.s3.list_prefix(prefix)).unwrap()
    }

    /// An object's bytes; `None` when it is gone.
    pub fn get(&self, path: &str) -> Option<Vec<u8>> {
        match self.rt.block_on(self.s3.get_object(path)) {
            Ok(b) => Some(b.to_vec()),
            Err(e) if e.is_not_found() => None,
            Err(e) => panic!("{path}: {e}"),
        }
    }

    /// Writes an object (`compaction.rs` plants orphans; `compactor.rs` writes none).
    #[allow(dead_code)]
    pub fn put(&self, path: &str, bytes: &[u8]) {
        self.rt.block_on(self.s3.put_object(path, bytes.to_vec().into())).unwrap();
    }

    /// Waits until `s` has created its DynamoDB tables.
    pub fn ready(s: &Skald) {
        skald_integration_tests::wait_tables_synced(&s.url, Duration::from_secs(120));
    }
}
