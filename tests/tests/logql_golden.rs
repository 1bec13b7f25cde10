//! LogQL golden tests: every query in `tests/logql/*.logql` against a real `skald` holding
//! the reference dataset, compared with `tests/logql/<name>.result` (see tests/logql/README.md).
//! `SKALD_BLESS=1` rewrites the `.result` files instead of comparing.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;
use skald_integration_tests::{get, push_reference_dataset, temp_dir, Skald, REFERENCE_CONFIG};

const T0: i64 = 1_793_491_200;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("logql")
}

fn answer(skald: &Skald, query: &str) -> String {
    let (start, end) = (T0.to_string(), (T0 + 7200).to_string());
    let params = [
        ("query", query),
        ("start", start.as_str()),
        ("end", end.as_str()),
        ("step", "60s"),
        ("limit", "20"),
        ("direction", "forward"),
    ];
    let r = get(
        &format!("{}/loki/api/v1/query_range", skald.url),
        &params,
        &[("X-Scope-OrgID", "tenant-a")],
    );
    if r.status != 200 {
        return format!("status {}\n{}\n", r.status, r.body.trim_end());
    }
    let body: Value = serde_json::from_str(&r.body).unwrap();
    let data = &body["data"];
    let shown = serde_json::json!({"resultType": data["resultType"], "result": data["result"]});
    format!("status 200\n{}\n", serde_json::to_string_pretty(&shown).unwrap())
}

#[test]
fn golden_queries() {
    let dir = temp_dir("golden");
    let skald = Skald::start(&dir, REFERENCE_CONFIG);
    push_reference_dataset(&skald, "tenant-a");
    let bless = std::env::var_os("SKALD_BLESS").is_some();

    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "logql"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    let mut total = 0;
    for file in &files {
        let mut out = String::new();
        for q in std::fs::read_to_string(file).unwrap().lines() {
            let q = q.trim();
            if q.is_empty() || q.starts_with("--") {
                continue;
            }
            total += 1;
            writeln!(out, "== {q}\n{}", answer(&skald, q)).unwrap();
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
