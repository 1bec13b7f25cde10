//! Differential testing against real Loki: replays the pushes of `tests/data/differential` into
//! a real `skald`, runs every recorded request (thousands, generated from LogQL's grammar), and
//! compares each answer with Loki's field by field (stats left out). A difference must belong to
//! a deviation class listed in `docs/api.md`; the test prints the count per class and fails on
//! any other.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;
use skald_integration_tests::differential::classes::{classify, CLASSES};
use skald_integration_tests::differential::requests::requests;
use skald_integration_tests::differential::{run, Corpus, TENANT};
use skald_integration_tests::{compare, post, temp_dir, Skald, REFERENCE_CONFIG};

/// Requests answered at once.
const WORKERS: usize = 8;
/// The seed `requests.json` was generated with (`scripts/record-differential.sh`).
const RECORDED_SEED: u64 = 20;

#[test]
fn differential_answers_match_real_loki() {
    let started = Instant::now();
    let corpus = Corpus::load();
    assert!(corpus.requests.len() >= 5000, "{} requests", corpus.requests.len());
    let dir = temp_dir("differential");
    let skald = Skald::start(&dir, REFERENCE_CONFIG);

    let mut push_diffs = Vec::new();
    assert_eq!(corpus.pushes.len(), corpus.push_results.len(), "a recorded status per push");
    for ((name, body), loki) in corpus.pushes.iter().zip(&corpus.push_results) {
        let r = post(
            &format!("{}/loki/api/v1/push", skald.url),
            &[("Content-Type", "application/json"), ("X-Scope-OrgID", TENANT)],
            body,
        );
        if u64::from(r.status) != loki["status"].as_u64().unwrap_or(0) {
            push_diffs.push(format!(
                "{name}: Loki {} {}, Skald {} {}",
                loki["status"], loki["body"], r.status, r.body
            ));
        }
    }
    let r = post(&format!("{}/flush", skald.url), &[], b"");
    assert_eq!(r.status, 204, "{}", r.body);
    println!("pushed and flushed in {:?}", started.elapsed());

    let asked = Instant::now();
    let ours = run(&skald.url, &corpus.requests, WORKERS);
    println!("{} requests answered in {:?}", ours.len(), asked.elapsed());

    let mut matched = 0usize;
    let mut per_class: BTreeMap<&str, usize> = CLASSES.iter().map(|c| (c.name, 0)).collect();
    let mut unexplained = Vec::new();
    for ((req, loki), skald_answer) in corpus.requests.iter().zip(&corpus.answers).zip(&ours) {
        let record = |a: &Value| {
            let body =
                a.get("body").or_else(|| a.get("body_bytes")).cloned().unwrap_or(Value::Null);
            serde_json::json!({
                "request": {"path": req.path},
                "status": a["status"],
                "content_type": a["content_type"],
                "body": body,
            })
        };
        let diffs = compare::compare(record(loki), record(skald_answer));
        if diffs.is_empty() {
            matched += 1;
            continue;
        }
        match classify(req, loki, skald_answer, &diffs) {
            Some(class) => {
                if std::env::var("SKALD_DIFF_SHOW")
                    .is_ok_and(|c| c.split(",").any(|x| x == class.name))
                {
                    let shown: Vec<&String> = diffs.iter().take(6).collect();
                    println!(
                        "CLASS {} {} {} {:?}: {shown:#?}",
                        class.name, req.name, req.path, req.params
                    );
                }
                *per_class.entry(class.name).or_default() += 1
            }
            None => {
                let shown: Vec<&String> = diffs.iter().take(4).collect();
                unexplained.push(format!("{} {} {:?}: {shown:#?}", req.name, req.path, req.params));
            }
        }
    }
    println!("matched {matched} of {}", corpus.requests.len());
    for c in CLASSES {
        println!(
            "deviation class {} ({:?}): {}",
            c.name,
            c.kind,
            per_class.get(c.name).unwrap_or(&0)
        );
    }
    println!("unexplained: {}", unexplained.len());
    for u in unexplained.iter().take(60) {
        println!("UNEXPLAINED {u}");
    }
    let api = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/api.md"),
    )
    .unwrap();
    for c in CLASSES {
        assert!(
            api.contains(&format!("`{}`", c.name)),
            "docs/api.md does not list class {}",
            c.name
        );
    }
    println!("total {:?}", started.elapsed());
    assert!(push_diffs.is_empty(), "push statuses differ from Loki's:\n{}", push_diffs.join("\n"));
    assert!(
        unexplained.is_empty(),
        "{} answers differ from Loki's in no listed class (first shown above)",
        unexplained.len()
    );
}

/// The Rust generator draws what the recorder's Python generator drew: the same seed gives the
/// same requests (`requests.json`, seed 20), so the property test runs the recorded grammar.
#[test]
fn rust_generator_matches_the_recorded_requests() {
    let corpus = Corpus::load();
    let ours = requests(RECORDED_SEED, corpus.requests.len());
    let mut differ = 0;
    for (a, b) in corpus.requests.iter().zip(&ours) {
        let (mut pa, mut pb) = (a.params.clone(), b.params.clone());
        pa.sort();
        pb.sort();
        if (a.name.as_str(), a.path.as_str(), &pa) != (b.name.as_str(), b.path.as_str(), &pb) {
            if differ < 5 {
                println!(
                    "recorded {} {} {pa:?}\ngenerated {} {} {pb:?}",
                    a.name, a.path, b.name, b.path
                );
            }
            differ += 1;
        }
    }
    assert_eq!(differ, 0, "{differ} generated requests differ from the recorded ones");
}
