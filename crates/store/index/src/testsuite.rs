//! Conformance suite for [`IndexStore`] implementations: every implementation runs the same
//! functions. Each function panics on failure and uses its own tenant, so all of them can share
//! one store.
//!
//! ```ignore
//! skald_index::testsuite::run_all(&my_index).await;
//! ```

use skald_model::{LabelMatcher, Labels, MatchType};

use crate::{ChunkRef, Error, IndexStore, SeriesChunks, NANOS_PER_DAY};

const DAY: i64 = NANOS_PER_DAY;
const HOUR: i64 = DAY / 24;
/// 2023-11-14, a day well inside the positive range.
const T0: i64 = 19_675 * DAY;

/// Runs every conformance check.
pub async fn run_all(index: &dyn IndexStore) {
    matchers_select_series(index).await;
    time_range_filters_chunks(index).await;
    chunk_spanning_days(index).await;
    writes_merge_and_dedup(index).await;
    tenants_are_isolated(index).await;
    label_names_and_values(index).await;
    invalid_input_is_refused(index).await;
    empty_results(index).await;
    replace_swaps_refs(index).await;
    deletes_and_compaction(index).await;
}

fn labels(s: &str) -> Labels {
    Labels::parse(s).expect("test labels")
}

fn m(name: &str, op: MatchType, value: &str) -> LabelMatcher {
    LabelMatcher::new(name, op, value).expect("test matcher")
}

fn chunk(labels: &Labels, from: i64, through: i64) -> ChunkRef {
    ChunkRef {
        fingerprint: labels.hash(),
        from,
        through,
        checksum: (from as u32) ^ 0x5a5a_5a5a,
        entries: 100,
        uncompressed_bytes: 10_000,
        compressed_bytes: 1_000,
        stats_bytes: 9_000,
    }
}

fn names(result: &[SeriesChunks]) -> Vec<String> {
    result.iter().map(|s| s.labels.to_string()).collect()
}

async fn select(index: &dyn IndexStore, tenant: &str, ms: &[LabelMatcher]) -> Vec<String> {
    names(&index.series(tenant, ms, T0, T0 + DAY - 1).await.expect("series"))
}

/// Equality, regex and negative matchers, and empty-value semantics.
pub async fn matchers_select_series(index: &dyn IndexStore) {
    let t = "suite-matchers";
    let all = [
        r#"{app="api", env="prod"}"#,
        r#"{app="web", env="prod"}"#,
        r#"{app="api", env="dev"}"#,
        r#"{app="batch"}"#,
    ];
    let refs = all.iter().map(|s| {
        let l = labels(s);
        let c = chunk(&l, T0 + HOUR, T0 + 2 * HOUR);
        (l, c)
    });
    index.write_chunks(t, refs.collect()).await.expect("write");

    let api_dev = r#"{app="api", env="dev"}"#.to_string();
    let api_prod = r#"{app="api", env="prod"}"#.to_string();
    let batch = r#"{app="batch"}"#.to_string();
    let web_prod = r#"{app="web", env="prod"}"#.to_string();

    assert_eq!(select(index, t, &[]).await.len(), 4);
    assert_eq!(
        select(index, t, &[m("app", MatchType::Equal, "api")]).await,
        vec![api_dev.clone(), api_prod.clone()]
    );
    assert_eq!(
        select(
            index,
            t,
            &[m("app", MatchType::Equal, "api"), m("env", MatchType::NotEqual, "dev")]
        )
        .await,
        vec![api_prod.clone()]
    );
    assert_eq!(
        select(index, t, &[m("app", MatchType::Regex, "web|batch")]).await,
        vec![batch.clone(), web_prod.clone()]
    );
    assert_eq!(
        select(index, t, &[m("app", MatchType::Regex, "a.*")]).await,
        vec![api_dev.clone(), api_prod.clone()]
    );
    assert_eq!(
        select(index, t, &[m("app", MatchType::NotRegex, "a.*|w.*")]).await,
        vec![batch.clone()]
    );
    // Matchers accepting "" also accept series without the label.
    assert_eq!(select(index, t, &[m("env", MatchType::Equal, "")]).await, vec![batch.clone()]);
    assert_eq!(
        select(index, t, &[m("env", MatchType::Regex, "dev|")]).await,
        vec![api_dev.clone(), batch.clone()]
    );
    assert_eq!(select(index, t, &[m("env", MatchType::NotEqual, "")]).await.len(), 3);
    assert_eq!(select(index, t, &[m("env", MatchType::Regex, ".+")]).await.len(), 3);
    assert_eq!(
        select(index, t, &[m("env", MatchType::NotRegex, "prod")]).await,
        vec![api_dev, batch]
    );
    assert!(select(index, t, &[m("nope", MatchType::Equal, "x")]).await.is_empty());
    assert_eq!(select(index, t, &[m("nope", MatchType::NotEqual, "x")]).await.len(), 4);
}

/// Only chunks overlapping the closed query range are returned; bounds are inclusive.
pub async fn time_range_filters_chunks(index: &dyn IndexStore) {
    let t = "suite-time";
    let l = labels(r#"{app="api"}"#);
    let c1 = chunk(&l, T0 + HOUR, T0 + 2 * HOUR);
    let c2 = chunk(&l, T0 + 3 * HOUR, T0 + 4 * HOUR);
    index.write_chunks(t, vec![(l.clone(), c2), (l.clone(), c1)]).await.expect("write");
    let q =
        |from, through| async move { index.series(t, &[], from, through).await.expect("series") };

    assert_eq!(
        q(T0, T0 + DAY - 1).await,
        vec![SeriesChunks { labels: l.clone(), chunks: vec![c1, c2] }]
    );
    assert_eq!(q(T0 + 2 * HOUR, T0 + 2 * HOUR).await[0].chunks, vec![c1]);
    assert_eq!(q(T0 + 2 * HOUR + 1, T0 + 3 * HOUR - 1).await, vec![]);
    assert_eq!(q(T0 + 3 * HOUR, T0 + 5 * HOUR).await[0].chunks, vec![c2]);
    assert_eq!(q(T0 - DAY, T0 + HOUR - 1).await, vec![]);
    assert_eq!(q(i64::MIN, i64::MAX).await[0].chunks, vec![c1, c2]);
    assert_eq!(q(T0 + 5 * HOUR, T0).await, vec![], "inverted range");
}

/// A chunk crossing midnight is found from either day and listed once.
pub async fn chunk_spanning_days(index: &dyn IndexStore) {
    let t = "suite-span";
    let l = labels(r#"{app="night"}"#);
    let c = chunk(&l, T0 + DAY - HOUR, T0 + DAY + HOUR);
    index.write_chunks(t, vec![(l.clone(), c)]).await.expect("write");
    assert_eq!(index.series(t, &[], T0, T0 + HOUR).await.expect("series"), vec![]);
    assert_eq!(
        index.series(t, &[], T0 + DAY - 1, T0 + DAY - 1).await.expect("series")[0].chunks,
        vec![c]
    );
    assert_eq!(
        index.series(t, &[], T0 + DAY + 1, T0 + DAY + 2).await.expect("series")[0].chunks,
        vec![c]
    );
    let both = index.series(t, &[], T0, T0 + 2 * DAY).await.expect("series");
    assert_eq!(both, vec![SeriesChunks { labels: l, chunks: vec![c] }]);
}

/// Several writes for one series merge; rewriting the same chunk does not duplicate it.
pub async fn writes_merge_and_dedup(index: &dyn IndexStore) {
    let t = "suite-merge";
    let l = labels(r#"{app="api", pod="p-1"}"#);
    let c1 = chunk(&l, T0 + HOUR, T0 + 2 * HOUR);
    let c2 = chunk(&l, T0 + 2 * HOUR, T0 + 3 * HOUR);
    index.write_chunks(t, vec![(l.clone(), c2)]).await.expect("write 1");
    index.write_chunks(t, vec![(l.clone(), c1)]).await.expect("write 2");
    index.write_chunks(t, vec![(l.clone(), c1), (l.clone(), c2)]).await.expect("write 3");
    index.write_chunks(t, vec![]).await.expect("empty write");
    let got =
        index.series(t, &[m("pod", MatchType::Equal, "p-1")], T0, T0 + DAY).await.expect("series");
    assert_eq!(got, vec![SeriesChunks { labels: l, chunks: vec![c1, c2] }]);
}

/// One tenant never sees another's series.
pub async fn tenants_are_isolated(index: &dyn IndexStore) {
    let l = labels(r#"{app="secret"}"#);
    index
        .write_chunks("suite-tenant-a", vec![(l.clone(), chunk(&l, T0, T0 + 1))])
        .await
        .expect("write");
    assert_eq!(index.series("suite-tenant-a", &[], T0, T0 + DAY).await.expect("a").len(), 1);
    assert!(index.series("suite-tenant-b", &[], T0, T0 + DAY).await.expect("b").is_empty());
    assert!(index
        .label_names("suite-tenant-b", T0, T0 + DAY, &[])
        .await
        .expect("b names")
        .is_empty());
}

/// Label names and values honour matchers and the time range.
pub async fn label_names_and_values(index: &dyn IndexStore) {
    let t = "suite-labels";
    let a = labels(r#"{app="api", env="prod", pod="a-1"}"#);
    let b = labels(r#"{app="web", team="x"}"#);
    let late = labels(r#"{app="late", zone="z"}"#);
    index
        .write_chunks(
            t,
            vec![
                (a.clone(), chunk(&a, T0 + HOUR, T0 + 2 * HOUR)),
                (b.clone(), chunk(&b, T0 + HOUR, T0 + 2 * HOUR)),
                (late.clone(), chunk(&late, T0 + 10 * HOUR, T0 + 11 * HOUR)),
            ],
        )
        .await
        .expect("write");
    let day = (T0, T0 + DAY - 1);
    let early = (T0, T0 + 3 * HOUR);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    assert_eq!(
        index.label_names(t, day.0, day.1, &[]).await.expect("names"),
        s(&["app", "env", "pod", "team", "zone"])
    );
    assert_eq!(
        index.label_names(t, early.0, early.1, &[]).await.expect("names"),
        s(&["app", "env", "pod", "team"])
    );
    let web = [m("app", MatchType::Equal, "web")];
    assert_eq!(index.label_names(t, day.0, day.1, &web).await.expect("names"), s(&["app", "team"]));
    assert_eq!(
        index.label_values(t, "app", day.0, day.1, &[]).await.expect("values"),
        s(&["api", "late", "web"])
    );
    assert_eq!(
        index.label_values(t, "app", early.0, early.1, &[]).await.expect("values"),
        s(&["api", "web"])
    );
    let prod = [m("env", MatchType::Equal, "prod")];
    assert_eq!(
        index.label_values(t, "app", day.0, day.1, &prod).await.expect("values"),
        s(&["api"])
    );
    assert!(index.label_values(t, "nope", day.0, day.1, &[]).await.expect("values").is_empty());
    assert!(index
        .label_values(t, "app", T0 + DAY, T0 + 2 * DAY, &[])
        .await
        .expect("values")
        .is_empty());
}

/// Bad tenants and chunk refs are refused.
pub async fn invalid_input_is_refused(index: &dyn IndexStore) {
    let l = labels(r#"{app="x"}"#);
    let ok = chunk(&l, T0, T0 + 1);
    for tenant in ["", "..", "a/b"] {
        let err = index.write_chunks(tenant, vec![(l.clone(), ok)]).await.expect_err("bad tenant");
        assert!(matches!(err, Error::Store(_)), "{err:?}");
        assert!(index.series(tenant, &[], T0, T0 + 1).await.is_err());
    }
    let backwards = chunk(&l, T0 + 10, T0);
    let err = index
        .write_chunks("suite-invalid", vec![(l.clone(), backwards)])
        .await
        .expect_err("backwards");
    assert!(matches!(err, Error::InvalidChunkRef { .. }), "{err:?}");
    let huge = chunk(&l, 0, T0);
    assert!(matches!(
        index.write_chunks("suite-invalid", vec![(l, huge)]).await,
        Err(Error::InvalidChunkRef { .. })
    ));
    assert!(index
        .series("suite-invalid", &[], i64::MIN, i64::MAX)
        .await
        .expect("series")
        .is_empty());
}

/// Queries on a tenant with no data succeed with empty answers.
pub async fn empty_results(index: &dyn IndexStore) {
    let t = "suite-empty";
    assert!(index.series(t, &[], i64::MIN, i64::MAX).await.expect("series").is_empty());
    assert!(index.label_names(t, T0, T0 + DAY, &[]).await.expect("names").is_empty());
    assert!(index.label_values(t, "app", T0, T0 + DAY, &[]).await.expect("values").is_empty());
}

/// How to reach the test DynamoDB that `scripts/test-servers/start.sh` started (its env file
/// names it). A missing variable fails the test with what to run.
pub fn dynamo_config_from_test_env() -> crate::DynamoClientConfig {
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: run scripts/test-servers/start.sh and source the env file it writes (the README's test command does both)")
        })
    };
    crate::DynamoClientConfig {
        region: var("SKALD_TEST_DYNAMODB_REGION"),
        endpoint: Some(var("SKALD_TEST_DYNAMODB_ENDPOINT")),
        credentials: Some((
            var("SKALD_TEST_DYNAMODB_ACCESS_KEY"),
            var("SKALD_TEST_DYNAMODB_SECRET_KEY"),
        )),
    }
}

/// `replace_chunks` records the new refs and removes the old ones (in every day they span),
/// leaves other chunks of the series and of other series alone, and removes a ref without a
/// replacement when `new` is empty.
pub async fn replace_swaps_refs(index: &dyn IndexStore) {
    let t = "suite-replace";
    let a = labels(r#"{app="a"}"#);
    let b = labels(r#"{app="b"}"#);
    let old = chunk(&a, T0 + DAY - HOUR, T0 + DAY + HOUR);
    let kept = chunk(&a, T0 + 2 * HOUR, T0 + 3 * HOUR);
    let other = chunk(&b, T0 + HOUR, T0 + 2 * HOUR);
    index
        .write_chunks(t, vec![(a.clone(), old), (a.clone(), kept), (b.clone(), other)])
        .await
        .expect("write");
    let new = ChunkRef { checksum: old.checksum ^ 1, entries: 50, ..old };
    index.replace_chunks(t, vec![(a.clone(), old)], vec![(a.clone(), new)]).await.expect("replace");
    let got = index.series(t, &[], T0, T0 + 2 * DAY).await.expect("series");
    assert_eq!(
        got,
        vec![
            SeriesChunks { labels: a.clone(), chunks: vec![kept, new] },
            SeriesChunks { labels: b.clone(), chunks: vec![other] },
        ]
    );
    // the second day too
    let day2 = index.series(t, &[], T0 + DAY + 1, T0 + DAY + 2).await.expect("series");
    assert_eq!(day2, vec![SeriesChunks { labels: a.clone(), chunks: vec![new] }]);
    // removal only; removing what is not there succeeds
    index.replace_chunks(t, vec![(b.clone(), other)], vec![]).await.expect("remove");
    index.replace_chunks(t, vec![(b.clone(), other)], vec![]).await.expect("remove again");
    let got = index.series(t, &[], T0, T0 + 2 * DAY).await.expect("series");
    assert_eq!(got, vec![SeriesChunks { labels: a, chunks: vec![kept, new] }]);
}

/// `days`, `compact_day` (answers unchanged) and `delete_chunks` (entries gone from every day
/// a chunk spans; deleting again or deleting unknown chunks is harmless).
pub async fn deletes_and_compaction(index: &dyn IndexStore) {
    let t = "suite-deletes";
    let a = labels(r#"{app="a"}"#);
    let b = labels(r#"{app="b"}"#);
    let day = T0 / DAY;
    let (a1, a2) = (chunk(&a, T0 + HOUR, T0 + 2 * HOUR), chunk(&a, T0 + 3 * HOUR, T0 + 4 * HOUR));
    let b1 = chunk(&b, T0 + DAY - HOUR, T0 + DAY + HOUR); // spans two days
    index.write_chunks(t, vec![(a.clone(), a1)]).await.expect("write");
    index.write_chunks(t, vec![(a.clone(), a2)]).await.expect("write");
    index.write_chunks(t, vec![(b.clone(), b1)]).await.expect("write");
    assert_eq!(index.days(t).await.expect("days"), vec![day, day + 1]);
    let before = index.series(t, &[], T0, T0 + 2 * DAY).await.expect("series");
    for d in [day, day + 1] {
        index.compact_day(t, d).await.expect("compact");
    }
    assert_eq!(index.compact_day(t, day).await.expect("compact again"), 0, "one unit left");
    assert_eq!(index.series(t, &[], T0, T0 + 2 * DAY).await.expect("series"), before);

    index.delete_chunks(t, vec![(a.clone(), a1), (b.clone(), b1)]).await.expect("delete");
    let after = index.series(t, &[], T0, T0 + 2 * DAY).await.expect("series");
    assert_eq!(names(&after), vec![r#"{app="a"}"#]);
    assert_eq!(after[0].chunks, vec![a2]);
    assert!(index.series(t, &[], T0 + DAY, T0 + 2 * DAY).await.expect("series").is_empty());
    assert_eq!(index.label_values(t, "app", T0, T0 + 2 * DAY, &[]).await.expect("values"), ["a"]);
    // again, and an unknown chunk: no error, nothing else changes
    index
        .delete_chunks(t, vec![(a.clone(), a1), (b.clone(), chunk(&b, T0, T0 + 1))])
        .await
        .expect("delete again");
    assert_eq!(index.series(t, &[], T0, T0 + 2 * DAY).await.expect("series"), after);
    index.delete_chunks(t, vec![(a.clone(), a2)]).await.expect("delete last");
    assert!(index.series(t, &[], T0, T0 + 2 * DAY).await.expect("series").is_empty());
}
