use std::sync::atomic::{AtomicI64, Ordering};

use super::*;
use crate::mem::MemTableClient;

use crate::test_util::{at, period, DAY, HOUR, WEEK};

const ACTIVE: Throughput = Throughput::Provisioned { read: 300, write: 1000 };
const INACTIVE: Throughput = Throughput::Provisioned { read: 300, write: 1 };

fn retention_config(retention_days: i64) -> TableManagerConfig {
    TableManagerConfig {
        creation_grace_period: Duration::from_secs(3 * HOUR as u64),
        retention_period: Duration::from_secs((retention_days * DAY) as u64),
        retention_deletes_enabled: true,
        ..Default::default()
    }
}

fn manager(
    config: TableManagerConfig,
    periods: Vec<PeriodicTableConfig>,
) -> (TableManager, Arc<MemTableClient>, Registry) {
    let client = Arc::new(MemTableClient::new());
    let registry = Registry::new();
    let tm = TableManager::new(config, periods, client.clone(), &registry).unwrap();
    (tm, client, registry)
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn metric(registry: &Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .find(|f| f.name() == name)
        .map(|f| {
            f.get_metric()
                .iter()
                .map(|m| {
                    // Only the field of the family's type is set; the others read as 0.
                    m.get_counter().get_value()
                        + m.get_gauge().get_value()
                        + m.get_histogram().get_sample_count() as f64
                })
                .sum()
        })
        .unwrap_or(f64::NAN)
}

#[tokio::test]
async fn creates_then_is_idempotent() {
    let (tm, client, registry) = manager(TableManagerConfig::default(), vec![period(0, "t_", DAY)]);
    let report = tm.reconcile(at(3 * DAY + HOUR)).await.unwrap();
    assert_eq!(report.created, strings(&["t_0", "t_1", "t_2", "t_3"]));
    assert_eq!(report.expected, 4);
    assert!(report.updated.is_empty() && report.deleted.is_empty());
    assert_eq!(client.throughput("t_0"), Some(INACTIVE));
    assert_eq!(client.throughput("t_3"), Some(ACTIVE));

    let report = tm.reconcile(at(3 * DAY + 2 * HOUR)).await.unwrap();
    assert!(report.is_noop(), "{report:?}");
    assert_eq!(client.mutations().len(), 4);
    assert_eq!(metric(&registry, "loki_table_manager_tables_created_total"), 4.0);
    assert_eq!(metric(&registry, "loki_table_manager_expected_tables"), 4.0);
    assert_eq!(metric(&registry, "loki_table_manager_sync_duration_seconds"), 2.0);
    assert_eq!(
        metric(&registry, "loki_table_manager_sync_success_timestamp_seconds"),
        (3 * DAY + 2 * HOUR) as f64
    );
    // The second pass described the 4 tables: one read and one write gauge each.
    let families = registry.gather();
    let capacity = families.iter().find(|f| f.name() == "loki_table_capacity_units").unwrap();
    assert_eq!(capacity.get_metric().len(), 8);
}

#[tokio::test]
async fn switches_to_inactive_throughput_after_the_table_ends() {
    let (tm, client, registry) = manager(TableManagerConfig::default(), vec![period(0, "t_", DAY)]);
    tm.reconcile(at(DAY + HOUR)).await.unwrap();
    assert_eq!(client.throughput("t_0"), Some(ACTIVE));
    // 12h (MAX_CHUNK_AGE) after day 1, table 0 becomes inactive.
    let report = tm.reconcile(at(DAY + 12 * HOUR - 1)).await.unwrap();
    assert!(report.is_noop());
    let report = tm.reconcile(at(DAY + 12 * HOUR)).await.unwrap();
    assert_eq!(report.updated, strings(&["t_0"]));
    assert_eq!(client.throughput("t_0"), Some(INACTIVE));
    assert_eq!(metric(&registry, "loki_table_manager_tables_updated_total"), 1.0);
}

#[tokio::test]
async fn fixes_billing_mode_both_ways() {
    let mut config = TableManagerConfig::default();
    config.index_tables_provisioning.enable_ondemand_throughput_mode = true;
    let (tm, client, _) = manager(config, vec![period(0, "t_", DAY)]);
    client.insert("t_0", INACTIVE); // active table, but provisioned: must become on-demand
    client.insert("t_1", Throughput::OnDemand); // not expected yet at hour 1
    let report = tm.reconcile(at(HOUR)).await.unwrap();
    assert_eq!(report.updated, strings(&["t_0"]));
    assert_eq!(client.throughput("t_0"), Some(Throughput::OnDemand));
    // Not expected, not expired (no retention): left alone.
    assert_eq!(client.throughput("t_1"), Some(Throughput::OnDemand));

    // Later t_0 is inactive: provisioned inactive capacity.
    let report = tm.reconcile(at(2 * DAY)).await.unwrap();
    assert_eq!(report.updated, strings(&["t_0"]));
    assert_eq!(report.created, strings(&["t_2"]));
    assert_eq!(client.throughput("t_0"), Some(INACTIVE));
}

#[tokio::test]
async fn throughput_updates_disabled_still_creates() {
    let config = TableManagerConfig { throughput_updates_disabled: true, ..Default::default() };
    let (tm, client, _) = manager(config, vec![period(0, "t_", DAY)]);
    client.insert("t_0", Throughput::Provisioned { read: 5, write: 5 });
    let report = tm.reconcile(at(DAY + HOUR)).await.unwrap();
    assert_eq!(report.created, strings(&["t_1"]));
    assert!(report.updated.is_empty());
    assert_eq!(client.throughput("t_0"), Some(Throughput::Provisioned { read: 5, write: 5 }));
    assert_eq!(client.call_count(Operation::Update), 0);
}

#[tokio::test]
async fn tables_not_active_are_not_updated() {
    let (tm, client, _) = manager(TableManagerConfig::default(), vec![period(0, "t_", DAY)]);
    client.insert("t_0", INACTIVE);
    client.set_status("t_0", TableStatus::Updating);
    let report = tm.reconcile(at(HOUR)).await.unwrap();
    assert!(report.is_noop());
    client.set_status("t_0", TableStatus::Active);
    let report = tm.reconcile(at(HOUR)).await.unwrap();
    assert_eq!(report.updated, strings(&["t_0"]));
}

#[tokio::test]
async fn retention_deletes_only_managed_numbered_expired_tables() {
    let periods = vec![period(0, "a_", DAY), period(10 * DAY, "b_", WEEK)];
    let (tm, client, registry) = manager(retention_config(7), periods);
    for name in [
        "a_0", "a_5", "b_0", // managed, expired at day 17
        "a_abc", "a_", "a_05", "a_-1", "a_1x", // managed prefix, not a number
        "other_1", "ab_1", "A_1", // other prefixes
    ] {
        client.insert(name, INACTIVE);
    }
    let report = tm.reconcile(at(17 * DAY)).await.unwrap();
    assert_eq!(report.deleted, strings(&["a_0", "a_5", "b_0"]));
    assert_eq!(report.created, strings(&["b_1", "b_2"]));
    assert_eq!(
        client.names(),
        strings(&["A_1", "a_", "a_-1", "a_05", "a_1x", "a_abc", "ab_1", "b_1", "b_2", "other_1"])
    );
    assert_eq!(metric(&registry, "loki_table_manager_tables_deleted_total"), 3.0);
    for op in client.mutations() {
        assert!(["a_0", "a_5", "b_0", "b_1", "b_2"].contains(&op.1.as_str()), "{op:?}");
    }
}

#[tokio::test]
async fn never_deletes_tables_still_within_retention_or_in_the_future() {
    let (tm, client, _) = manager(retention_config(3), vec![period(0, "t_", DAY)]);
    // t_6 ends at day 7 = cutoff (deleted); t_7 overlaps the window; t_50 is in the future
    // (e.g. created by a previous config): managed and numbered, but not expired.
    for name in ["t_6", "t_7", "t_50"] {
        client.insert(name, INACTIVE);
    }
    let report = tm.reconcile(at(10 * DAY)).await.unwrap();
    assert_eq!(report.deleted, strings(&["t_6"]));
    assert_eq!(report.created, strings(&["t_10", "t_8", "t_9"]));
    assert_eq!(client.names(), strings(&["t_10", "t_50", "t_7", "t_8", "t_9"]));
}

#[tokio::test]
async fn retention_without_deletes_keeps_and_reports() {
    let mut config = retention_config(3);
    config.retention_deletes_enabled = false;
    let (tm, client, _) = manager(config, vec![period(0, "t_", DAY)]);
    client.insert("t_1", INACTIVE);
    let report = tm.reconcile(at(10 * DAY)).await.unwrap();
    assert!(report.deleted.is_empty());
    assert_eq!(report.past_retention, strings(&["t_1"]));
    // Tables before the retention window are not created either (Loki's behaviour).
    assert_eq!(report.created, strings(&["t_10", "t_7", "t_8", "t_9"]));
    assert!(client.names().contains(&"t_1".to_string()));
    assert_eq!(client.call_count(Operation::Delete), 0);
}

#[tokio::test]
async fn no_retention_means_no_deletes() {
    let config = TableManagerConfig { retention_deletes_enabled: true, ..Default::default() };
    let (tm, client, _) = manager(config, vec![period(5 * DAY, "t_", DAY)]);
    client.insert("t_1", INACTIVE); // before the period's start, managed, numbered
    let report = tm.reconcile(at(6 * DAY + HOUR)).await.unwrap();
    assert!(report.deleted.is_empty());
    assert_eq!(report.created, strings(&["t_5", "t_6"]));
    assert!(client.names().contains(&"t_1".to_string()));
}

#[tokio::test]
async fn failures_do_not_stop_the_pass_and_are_reported() {
    let (tm, client, registry) = manager(retention_config(3), vec![period(0, "t_", DAY)]);
    client.insert("t_1", INACTIVE);
    client.insert("t_9", INACTIVE); // ended on day 10, still active for 12h: needs an update
    client.fail(Operation::Create, Some("t_8"));
    client.fail(Operation::Delete, Some("t_1"));
    client.fail(Operation::Update, None);
    let err = tm.reconcile(at(10 * DAY + HOUR)).await.unwrap_err();
    let Error::Reconcile { report, failures } = &err else { panic!("{err:?}") };
    assert_eq!(report.created, strings(&["t_10", "t_7"]));
    assert!(report.deleted.is_empty());
    let failed: Vec<(Operation, &str)> =
        failures.iter().map(|f| (f.operation, f.table.as_str())).collect();
    assert_eq!(
        failed,
        vec![(Operation::Delete, "t_1"), (Operation::Create, "t_8"), (Operation::Update, "t_9")]
    );
    assert_eq!(
        err.to_string(),
        "table reconciliation incomplete: 3 operation(s) failed, first: DeleteTable of `t_1` \
         failed: injected failure"
    );
    assert_eq!(metric(&registry, "loki_table_manager_create_failures"), 1.0);
    assert_eq!(metric(&registry, "loki_table_manager_delete_failures"), 1.0);
    assert_eq!(metric(&registry, "loki_table_manager_update_failures"), 1.0);
    assert!(metric(&registry, "loki_table_manager_sync_success_timestamp_seconds") == 0.0);

    client.heal();
    let report = tm.reconcile(at(10 * DAY + HOUR)).await.unwrap();
    assert_eq!(report.deleted, strings(&["t_1"]));
    assert_eq!(report.created, strings(&["t_8"]));
    assert_eq!(report.updated, strings(&["t_9"]));
    assert_eq!(metric(&registry, "loki_table_manager_create_failures"), 0.0);
}

#[tokio::test]
async fn list_failure_aborts_the_pass() {
    let (tm, client, _) = manager(TableManagerConfig::default(), vec![period(0, "t_", DAY)]);
    client.fail(Operation::List, None);
    let err = tm.reconcile(at(HOUR)).await.unwrap_err();
    assert!(matches!(err, Error::Client { operation: Operation::List, .. }), "{err:?}");
    assert!(client.mutations().is_empty());
}

#[tokio::test]
async fn walks_many_periods_with_two_schemas() {
    let periods = vec![period(0, "a_", DAY), period(10 * DAY, "b_", WEEK)];
    let (tm, client, _) = manager(retention_config(7), periods.clone());
    let config = retention_config(7);
    let mut t = 0;
    while t < 40 * DAY {
        tm.reconcile(at(t)).await.unwrap();
        let expected = crate::expected_tables(at(t), &periods, &config);
        let got: Vec<TableDesc> = client
            .tables()
            .into_iter()
            .map(|s| TableDesc { name: s.name, throughput: s.throughput })
            .collect();
        assert_eq!(got, expected, "at {t}");
        t += 5 * HOUR;
    }
}

#[tokio::test]
async fn invalid_config_is_refused_before_registering_metrics() {
    let registry = Registry::new();
    let config = TableManagerConfig {
        retention_period: Duration::from_secs(DAY as u64 + 1),
        ..Default::default()
    };
    let err = TableManager::new(
        config,
        vec![period(0, "t_", DAY)],
        Arc::new(MemTableClient::new()),
        &registry,
    )
    .unwrap_err();
    assert!(err.to_string().contains("`table_manager.retention_period`"), "{err}");
    assert!(registry.gather().is_empty());
    // Registering twice into one registry is refused.
    let (_tm, _c, registry) = manager(TableManagerConfig::default(), vec![period(0, "t_", DAY)]);
    let again = TableManager::new(
        TableManagerConfig::default(),
        vec![],
        Arc::new(MemTableClient::new()),
        &registry,
    );
    assert!(matches!(again, Err(Error::Metrics(_))));
}

#[tokio::test(start_paused = true)]
async fn run_polls_retries_with_backoff_and_stops() {
    let config = TableManagerConfig {
        poll_interval: Duration::from_secs(60),
        creation_grace_period: Duration::ZERO,
        ..Default::default()
    };
    let client = Arc::new(MemTableClient::new());
    let registry = Registry::new();
    let clock = Arc::new(AtomicI64::new(HOUR));
    let clock_reader = clock.clone();
    let tm = TableManager::new(config, vec![period(0, "t_", DAY)], client.clone(), &registry)
        .unwrap()
        .with_clock(move || at(clock_reader.load(Ordering::SeqCst)));
    let (stop, shutdown) = watch::channel(false);
    client.fail(Operation::List, None);
    let task = tokio::spawn(tm.run(shutdown));

    // First pass immediately (fails), then retries after 1s, 2s, 4s (cumulative 7s).
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(client.call_count(Operation::List), 1);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(client.call_count(Operation::List), 2);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(client.call_count(Operation::List), 3);
    tokio::time::sleep(Duration::from_millis(4000)).await;
    assert_eq!(client.call_count(Operation::List), 4);
    assert!(client.names().is_empty());

    // Healed: the next retry (after 8s) succeeds, then the loop polls every 60s.
    client.heal();
    tokio::time::sleep(Duration::from_millis(8000)).await;
    assert_eq!(client.call_count(Operation::List), 5);
    assert_eq!(client.names(), strings(&["t_0"]));
    clock.store(DAY + 1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(client.call_count(Operation::List), 5);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(client.call_count(Operation::List), 6);
    assert_eq!(client.names(), strings(&["t_0", "t_1"]));

    // The backoff is capped at poll_interval.
    client.fail(Operation::List, None);
    tokio::time::sleep(Duration::from_secs(60 + 1 + 2 + 4 + 8 + 16 + 32 + 60)).await;
    assert_eq!(client.call_count(Operation::List), 6 + 8);

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(1), task).await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn run_stops_when_the_sender_is_dropped() {
    let (tm, _client, _) = manager(TableManagerConfig::default(), vec![period(0, "t_", DAY)]);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(tm.run(shutdown));
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(stop);
    tokio::time::timeout(Duration::from_secs(1), task).await.unwrap().unwrap();
}
