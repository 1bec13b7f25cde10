//! The table manager against a real DynamoDB-compatible server (DynamoDB Local).
//!
//! Needs the `SKALD_TEST_DYNAMODB_*` variables: run `scripts/test-servers/start.sh` and source
//! the env file whose path it prints. Without them the tests fail; they never pass silently.
//!
//! Every run uses table names with its own unique prefix and deletes them at the end, so
//! runs may share a server.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{BillingMode, KeyType, ScalarAttributeType};
use skald_table_manager::{
    DynamoTableClient, Error, PeriodicTableConfig, TableClient, TableDesc, TableManager,
    TableManagerConfig, TableStatus, Throughput,
};

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

fn sdk_client() -> aws_sdk_dynamodb::Client {
    skald_index::testsuite::dynamo_config_from_test_env().connect().expect("DynamoDB client")
}

/// A table-name stem unique to this run: pid plus the clock's nanoseconds.
fn unique_stem(test: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("skaldtm{test}{}x{nanos}", std::process::id())
}

/// Runs `body`, then deletes every table whose name starts with `stem`, even if `body`
/// panicked; then re-raises the panic.
async fn with_cleanup<F>(sdk: aws_sdk_dynamodb::Client, stem: String, body: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(body).await;
    let client = DynamoTableClient::new(sdk);
    let mut leftovers = Vec::new();
    match client.list_tables().await {
        Ok(names) => {
            for name in names.into_iter().filter(|n| n.starts_with(&stem)) {
                if let Err(e) = client.delete_table(&name).await {
                    leftovers.push(format!("{name}: {e}"));
                }
            }
        }
        Err(e) => leftovers.push(format!("listing: {e}")),
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    assert!(leftovers.is_empty(), "cleanup failed: {leftovers:?}");
}

/// Independent oracle for the expected tables of one schema period (not the crate's code).
struct Oracle {
    from: i64,
    until: i64,
    prefix: String,
    period: i64,
}

const GRACE: i64 = 3 * HOUR;
const RETENTION: i64 = 3 * DAY;
const CHUNK_AGE: i64 = 12 * HOUR;
const INACTIVE: Throughput = Throughput::Provisioned { read: 5, write: 2 };

impl Oracle {
    fn tables(&self, now: i64, out: &mut BTreeMap<String, Throughput>) {
        let mut n = self.from / self.period;
        loop {
            let (start, end) = (n * self.period, (n + 1) * self.period);
            // The table is needed for the part of its range inside this schema period,
            // once that part starts within the grace period.
            if start >= self.until || start.max(self.from) >= now + GRACE {
                break;
            }
            if end > now - RETENTION {
                let active = start - GRACE <= now && now < end + CHUNK_AGE;
                let throughput = if active { Throughput::OnDemand } else { INACTIVE };
                let entry = out.entry(format!("{}{n}", self.prefix)).or_insert(throughput);
                if active {
                    *entry = Throughput::OnDemand;
                }
            }
            n += 1;
        }
    }
}

/// Name -> (billing mode, read, write) of every table starting with `stem`, straight from
/// the server (not through the crate's client).
async fn server_tables(sdk: &aws_sdk_dynamodb::Client, stem: &str) -> BTreeMap<String, Throughput> {
    let mut names = Vec::new();
    let mut start = None;
    loop {
        let page = sdk
            .list_tables()
            .set_exclusive_start_table_name(start)
            .send()
            .await
            .expect("ListTables");
        names.extend(page.table_names().iter().filter(|n| n.starts_with(stem)).cloned());
        match page.last_evaluated_table_name() {
            Some(last) => start = Some(last.to_string()),
            None => break,
        }
    }
    let mut out = BTreeMap::new();
    for name in names {
        let desc = sdk.describe_table().table_name(&name).send().await.expect("DescribeTable");
        let table = desc.table().expect("table description");
        let on_demand = table
            .billing_mode_summary()
            .and_then(|s| s.billing_mode())
            .is_some_and(|m| *m == BillingMode::PayPerRequest);
        let throughput = if on_demand {
            Throughput::OnDemand
        } else {
            let p = table.provisioned_throughput().expect("provisioned throughput");
            Throughput::Provisioned {
                read: p.read_capacity_units().unwrap_or(-1),
                write: p.write_capacity_units().unwrap_or(-1),
            }
        };
        out.insert(name, throughput);
    }
    out
}

async fn assert_key_schema(sdk: &aws_sdk_dynamodb::Client, name: &str) {
    let desc = sdk.describe_table().table_name(name).send().await.expect("DescribeTable");
    let table = desc.table().expect("table description");
    let mut attrs: Vec<(String, ScalarAttributeType)> = table
        .attribute_definitions()
        .iter()
        .map(|a| (a.attribute_name().to_string(), a.attribute_type().clone()))
        .collect();
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        attrs,
        vec![("h".to_string(), ScalarAttributeType::S), ("r".to_string(), ScalarAttributeType::B)],
        "{name}"
    );
    let keys: Vec<(String, KeyType)> = table
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name().to_string(), k.key_type().clone()))
        .collect();
    assert_eq!(
        keys,
        vec![("h".to_string(), KeyType::Hash), ("r".to_string(), KeyType::Range)],
        "{name}"
    );
}

fn at(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).expect("after 1970"))
}

#[tokio::test]
async fn reconciles_periodic_tables_on_a_real_server() {
    let sdk = sdk_client();
    let stem = unique_stem("rec");
    with_cleanup(sdk.clone(), stem.clone(), walk_the_clock(sdk, stem)).await;
}

async fn walk_the_clock(sdk: aws_sdk_dynamodb::Client, stem: String) {
    let prefix_a = format!("{stem}a_");
    let prefix_b = format!("{stem}b_");
    // 2026-01-01T00:00:00Z; the second schema period (72h tables) starts 5 days later.
    let from_a = 20_454 * DAY;
    let from_b = from_a + 5 * DAY;
    let periods = vec![
        PeriodicTableConfig {
            from_secs: from_a,
            prefix: prefix_a.clone(),
            period: Duration::from_secs(DAY as u64),
        },
        PeriodicTableConfig {
            from_secs: from_b,
            prefix: prefix_b.clone(),
            period: Duration::from_secs(3 * DAY as u64),
        },
    ];
    let oracles = [
        Oracle { from: from_a, until: from_b, prefix: prefix_a.clone(), period: DAY },
        Oracle { from: from_b, until: i64::MAX, prefix: prefix_b.clone(), period: 3 * DAY },
    ];
    let mut config = TableManagerConfig {
        creation_grace_period: Duration::from_secs(GRACE as u64),
        retention_period: Duration::from_secs(RETENTION as u64),
        retention_deletes_enabled: true,
        ..Default::default()
    };
    let p = &mut config.index_tables_provisioning;
    p.enable_ondemand_throughput_mode = true;
    p.inactive_read_throughput = 5;
    p.inactive_write_throughput = 2;

    // A small page size forces ListTables pagination.
    let client = Arc::new(DynamoTableClient::new(sdk.clone()).with_list_page_size(2));

    // Tables the manager must never touch: another prefix, and managed prefixes followed by
    // something that is not a canonical number. All with distinctive capacity.
    let untouchable = Throughput::Provisioned { read: 3, write: 4 };
    let foreign = [
        format!("{stem}other_20454"),
        format!("{prefix_a}abc"),
        format!("{prefix_a}020454"),
        format!("{prefix_b}1x"),
    ];
    for name in &foreign {
        client
            .create_table(&TableDesc { name: name.clone(), throughput: untouchable })
            .await
            .expect("create foreign table");
    }
    // Creating an existing table is not an error (ResourceInUseException).
    client
        .create_table(&TableDesc { name: foreign[0].clone(), throughput: untouchable })
        .await
        .expect("create of an existing table is a no-op");

    let registry = prometheus::Registry::new();
    let tm = TableManager::new(config, periods, client.clone(), &registry).expect("manager");

    // Walk from 1h after `from_a` to 14 days later in 7h steps (crosses every boundary
    // kind: grace, period starts, the schema change, active -> inactive, retention).
    let mut now = from_a + HOUR;
    let mut steps = 0;
    let mut saw = (false, false, false); // (created, updated, deleted)
    while now < from_a + 14 * DAY {
        let report = tm.reconcile(at(now)).await.unwrap_or_else(|e| panic!("at {now}: {e}"));
        saw.0 |= !report.created.is_empty();
        saw.1 |= !report.updated.is_empty();
        saw.2 |= !report.deleted.is_empty();

        let mut expected = BTreeMap::new();
        for oracle in &oracles {
            oracle.tables(now, &mut expected);
        }
        for name in &foreign {
            expected.insert(name.clone(), untouchable);
        }
        let actual = server_tables(&sdk, &stem).await;
        assert_eq!(actual, expected, "tables after reconciling at {now} (step {steps})");
        assert_eq!(report.expected, expected.len() - foreign.len());

        // A second pass at the same time changes nothing.
        let again = tm.reconcile(at(now)).await.expect("second pass");
        assert!(again.is_noop(), "at {now}: {again:?}");
        now += 7 * HOUR;
        steps += 1;
    }
    assert!(saw.0 && saw.1 && saw.2, "the walk must create, update and delete: {saw:?}");

    // Managed tables have the key schema the index relies on.
    let managed = server_tables(&sdk, &prefix_b).await;
    let any_b = managed.keys().find(|n| !foreign.contains(n)).expect("a b_ table");
    assert_key_schema(&sdk, any_b).await;

    // Describe of a missing table is TableNotFound; deleting it is a no-op.
    let missing = format!("{stem}missing");
    let err = client.describe_table(&missing).await.expect_err("missing table");
    assert!(matches!(err, Error::TableNotFound { .. }), "{err:?}");
    client.delete_table(&missing).await.expect("deleting a missing table is fine");
    let state = client.describe_table(any_b).await.expect("describe");
    assert_eq!(state.status, TableStatus::Active);
}

#[tokio::test]
async fn billing_mode_switches_and_throughput_updates_disabled() {
    let sdk = sdk_client();
    let stem = unique_stem("bill");
    with_cleanup(sdk.clone(), stem.clone(), billing(sdk, stem)).await;
}

async fn billing(sdk: aws_sdk_dynamodb::Client, stem: String) {
    let prefix = format!("{stem}t_");
    let from = 20_454 * DAY;
    let periods = vec![PeriodicTableConfig {
        from_secs: from,
        prefix: prefix.clone(),
        period: Duration::from_secs(DAY as u64),
    }];
    let client = Arc::new(DynamoTableClient::new(sdk.clone()));
    let name = format!("{prefix}20454");

    // Provisioned active table.
    let mut config = TableManagerConfig::default();
    config.index_tables_provisioning.provisioned_read_throughput = 7;
    config.index_tables_provisioning.provisioned_write_throughput = 8;
    let tm =
        TableManager::new(config.clone(), periods.clone(), client.clone(), &Default::default())
            .expect("manager");
    let report = tm.reconcile(at(from + HOUR)).await.expect("reconcile");
    assert_eq!(report.created, vec![name.clone()]);
    let tables = server_tables(&sdk, &stem).await;
    assert_eq!(tables[&name], Throughput::Provisioned { read: 7, write: 8 });

    // Switch active tables to on-demand: PROVISIONED -> PAY_PER_REQUEST.
    config.index_tables_provisioning.enable_ondemand_throughput_mode = true;
    let tm =
        TableManager::new(config.clone(), periods.clone(), client.clone(), &Default::default())
            .expect("manager");
    let report = tm.reconcile(at(from + 2 * HOUR)).await.expect("reconcile");
    assert_eq!(report.updated, vec![name.clone()]);
    assert_eq!(server_tables(&sdk, &stem).await[&name], Throughput::OnDemand);

    // With updates disabled nothing changes back, but new tables are still created.
    config.index_tables_provisioning.enable_ondemand_throughput_mode = false;
    config.throughput_updates_disabled = true;
    let tm =
        TableManager::new(config.clone(), periods.clone(), client.clone(), &Default::default())
            .expect("manager");
    let report = tm.reconcile(at(from + DAY + HOUR)).await.expect("reconcile");
    assert!(report.updated.is_empty());
    let tables = server_tables(&sdk, &stem).await;
    assert_eq!(tables[&name], Throughput::OnDemand);
    assert_eq!(tables[&format!("{prefix}20455")], Throughput::Provisioned { read: 7, write: 8 });

    // Updates enabled again: PAY_PER_REQUEST -> PROVISIONED (still active until +12h).
    config.throughput_updates_disabled = false;
    let tm =
        TableManager::new(config, periods, client.clone(), &Default::default()).expect("manager");
    let report = tm.reconcile(at(from + DAY + 2 * HOUR)).await.expect("reconcile");
    assert_eq!(report.updated, vec![name.clone()]);
    assert_eq!(
        server_tables(&sdk, &stem).await[&name],
        Throughput::Provisioned { read: 7, write: 8 }
    );
}
