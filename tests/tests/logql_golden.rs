//! LogQL golden tests: every query in `tests/logql/*.logql` against a real `skald` holding
//! the reference dataset, compared with `tests/logql/<name>.result` (see tests/logql/README.md).
//! `SKALD_BLESS=1` rewrites the `.result` files instead of comparing.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::fmt::Write as _;

use serde_json::Value;
use skald_integration_tests::replay::{golden_file_queries, golden_files, GoldenParams};
use skald_integration_tests::{
    push_reference_dataset, push_reference_dataset_to, temp_dir, Skald, REFERENCE_CONFIG,
};

fn answer(skald: &Skald, query: &str, qp: &GoldenParams) -> String {
    let r = qp.request(query).send(&skald.url);
    if r.status != 200 {
        return format!("status {}\n{}\n", r.status, r.body.trim_end());
    }
    let body: Value = serde_json::from_str(&r.body).unwrap();
    let data = &body["data"];
    let mut shown = serde_json::json!({"resultType": data["resultType"], "result": data["result"]});
    if qp.categorize {
        shown["encodingFlags"] = data["encodingFlags"].clone();
    }
    format!("status 200\n{}\n", serde_json::to_string_pretty(&shown).unwrap())
}

/// The golden queries over data flushed to the store.
#[test]
fn golden_queries() {
    let dir = temp_dir("golden");
    let skald = Skald::start(&dir, REFERENCE_CONFIG);
    push_reference_dataset(&skald, "tenant-a");
    run_golden(&skald, std::env::var_os("SKALD_BLESS").is_some());
}

/// The same queries, with the same answers, over data still held by the ingester: the querier
/// asks it whatever the age, and it runs each query's pipeline (and limit) itself.
#[test]
fn golden_queries_from_the_ingester() {
    let dir = temp_dir("golden-ingester");
    let config = format!("{REFERENCE_CONFIG}querier:\n  query_ingesters_within: 0s\n");
    let skald = Skald::start(&dir, &config);
    push_reference_dataset_to(&skald.url, &[], "tenant-a");
    run_golden(&skald, false);
}

fn run_golden(skald: &Skald, bless: bool) {
    let files = golden_files();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    let mut total = 0;
    for file in &files {
        let mut out = String::new();
        for (q, qp) in golden_file_queries(file) {
            total += 1;
            let shown_params = if qp.directive.is_empty() {
                String::new()
            } else {
                format!("# params: {}\n", qp.directive)
            };
            writeln!(out, "== {q}\n{shown_params}{}", answer(skald, &q, &qp)).unwrap();
        }
        let result = file.with_extension("result");
        if bless {
            std::fs::write(&result, &out).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&result).unwrap_or_default();
        if expected != out {
            let first = expected
                .split("\n== ")
                .zip(out.split("\n== "))
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("expected:\n{a}\ngot:\n{b}"))
                .unwrap_or_else(|| "different number of queries".to_string());
            failures.push(format!("{}: {first}", file.display()));
        }
    }
    println!("golden: {total} queries in {} files", files.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
