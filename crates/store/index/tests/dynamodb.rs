//! The index conformance suite and pagination checks against a real DynamoDB (AWS's DynamoDB
//! Local, started by `scripts/test-servers/start.sh`; the test command sources its env file).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use skald_index::{
    ChunkRef, DynamoClientConfig, DynamoIndexConfig, DynamoIndexStore, DynamoMetrics, IndexStore,
    NANOS_PER_DAY,
};
use skald_model::Labels;

fn client_config() -> DynamoClientConfig {
    skald_index::testsuite::dynamo_config_from_test_env()
}

/// A table prefix no other run uses.
fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("skt_{name}_{}_{}_", std::process::id(), nanos % 1_000_000_000)
}

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    client
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("h")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("r")
                .attribute_type(ScalarAttributeType::B)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("h")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("r")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!("create {name}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e))
        });
}

async fn delete_tables(client: &aws_sdk_dynamodb::Client, prefix: &str) {
    let tables = client.list_tables().limit(100).send().await.unwrap();
    for t in tables.table_names() {
        if t.starts_with(prefix) {
            let _ = client.delete_table().table_name(t).send().await;
        }
    }
}

/// An index whose tables cover every day the suite uses (periods of 3650 days).
async fn store(name: &str) -> (DynamoIndexStore, aws_sdk_dynamodb::Client, String) {
    let client = client_config().connect().unwrap();
    let prefix = unique_prefix(name);
    let config = DynamoIndexConfig {
        prefix: prefix.clone(),
        period_secs: 3650 * 86_400,
        ..Default::default()
    };
    for n in 4..=6 {
        create_table(&client, &format!("{prefix}{n}")).await;
    }
    (DynamoIndexStore::new(client.clone(), config, DynamoMetrics::new()), client, prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_dynamodb_local() {
    let (index, client, prefix) = store("suite").await;
    use skald_index::testsuite as t;
    let within = |name: &'static str| {
        move |r: Result<(), tokio::time::error::Elapsed>| {
            r.unwrap_or_else(|_| panic!("{name} took over 60 s"))
        }
    };
    let limit = std::time::Duration::from_secs(60);
    within("matchers")(tokio::time::timeout(limit, t::matchers_select_series(&index)).await);
    within("time range")(tokio::time::timeout(limit, t::time_range_filters_chunks(&index)).await);
    within("spanning")(tokio::time::timeout(limit, t::chunk_spanning_days(&index)).await);
    within("merge")(tokio::time::timeout(limit, t::writes_merge_and_dedup(&index)).await);
    within("tenants")(tokio::time::timeout(limit, t::tenants_are_isolated(&index)).await);
    within("labels")(tokio::time::timeout(limit, t::label_names_and_values(&index)).await);
    within("invalid")(tokio::time::timeout(limit, t::invalid_input_is_refused(&index)).await);
    within("empty")(tokio::time::timeout(limit, t::empty_results(&index)).await);
    delete_tables(&client, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_batches() {
    let (index, client, prefix) = store("pages").await;
    let metrics = DynamoMetrics::new();
    let registry = prometheus::Registry::new();
    metrics.register(&registry).unwrap();
    let index = DynamoIndexStore::new(client.clone(), index.config().clone(), metrics.clone());
    // 3000 series with ~500-byte label sets: more than one 1 MB query page, 120+ batches
    let day = 19_700 * NANOS_PER_DAY;
    let pad = "x".repeat(480);
    let refs: Vec<(Labels, ChunkRef)> = (0..3000)
        .map(|i| {
            let labels = Labels::parse(&format!(r#"{{app="a{i:04}", pad="{pad}"}}"#)).unwrap();
            let c = ChunkRef {
                fingerprint: labels.hash(),
                from: day + i * 1000,
                through: day + i * 1000 + 999,
                checksum: i as u32,
                entries: 10,
                uncompressed_bytes: 100,
                compressed_bytes: 50,
                stats_bytes: 50,
            };
            (labels, c)
        })
        .collect();
    index.write_chunks("tenant-p", refs.clone()).await.unwrap();
    assert_eq!(metrics.items_written.get(), 6001); // a series row and a chunk row each, one day row
    let series = index.series("tenant-p", &[], day, day + NANOS_PER_DAY - 1).await.unwrap();
    assert_eq!(series.len(), 3000, "every page read");
    let values =
        index.label_values("tenant-p", "app", day, day + NANOS_PER_DAY - 1, &[]).await.unwrap();
    assert_eq!(values.len(), 3000);
    // the same series again: only the chunk rows are new
    let again: Vec<(Labels, ChunkRef)> = refs
        .iter()
        .take(100)
        .map(|(l, c)| (l.clone(), ChunkRef { checksum: c.checksum + 10_000, ..*c }))
        .collect();
    index.write_chunks("tenant-p", again).await.unwrap();
    assert_eq!(metrics.items_written.get(), 6101);
    let one = index
        .series(
            "tenant-p",
            &[skald_model::LabelMatcher::new("app", skald_model::MatchType::Equal, "a0005")
                .unwrap()],
            day,
            day + NANOS_PER_DAY - 1,
        )
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].chunks.len(), 2);
    println!(
        "consumed capacity: {:?} write units, {:?} read units",
        metrics.consumed_capacity.with_label_values(&["BatchWriteItem"]).get(),
        metrics.consumed_capacity.with_label_values(&["Query"]).get()
    );
    delete_tables(&client, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_table_fails_writes_clearly() {
    let client = client_config().connect().unwrap();
    let config = DynamoIndexConfig {
        prefix: unique_prefix("missing"),
        max_retries: 1,
        ..Default::default()
    };
    let index = DynamoIndexStore::new(client, config, DynamoMetrics::new());
    let labels = Labels::parse(r#"{app="a"}"#).unwrap();
    let c = ChunkRef {
        fingerprint: labels.hash(),
        from: 0,
        through: 1,
        checksum: 0,
        entries: 1,
        uncompressed_bytes: 1,
        compressed_bytes: 1,
        stats_bytes: 1,
    };
    let err = index.write_chunks("t", vec![(labels, c)]).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    // reads of a period whose table is not there find nothing
    assert!(index.series("t", &[], 0, 10).await.unwrap().is_empty());
}
