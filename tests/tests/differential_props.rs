//! The differential generator without Loki, as a property test: many more queries than the
//! recorded corpus holds (seeds other than the recording's), each parsed, printed and parsed
//! again (the printed form must be a fixed point), then evaluated by the engine over a slice of
//! the differential dataset within a memory cap. No query may panic; errors are answers.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use serde_json::Value;
use skald_integration_tests::differential::gen::T0;
use skald_integration_tests::differential::requests::requests;
use skald_integration_tests::differential::Corpus;
use skald_logql::engine::{evaluate, EngineError, Limits, QueryParams, SelectLimit, Source};
use skald_logql::syntax::ast::{Expr, LogSelectorExpr};
use skald_logql::syntax::parse_expr;
use skald_model::{Direction, Entry, EntryBatch, Label, LabelMatcher, Labels, Stream, StreamBatch};

/// Queries drawn per run (the corpus holds 5,200).
const CASES: usize = 20_000;
/// Entries kept per stream: enough for every stage to see data, small enough to run fast.
const ENTRIES_PER_STREAM: usize = 40;
/// The memory cap of every evaluation.
const MEMORY_CAP: u64 = 64 * 1024 * 1024;
const NS: i64 = 1_000_000_000;

struct MemSource {
    streams: Vec<Stream>,
}

impl Source for MemSource {
    fn select(
        &self,
        selector: &LogSelectorExpr,
        start: i64,
        end: i64,
        _limit: Option<SelectLimit>,
    ) -> Result<Box<dyn Iterator<Item = Result<StreamBatch, EngineError>> + Send + '_>, EngineError>
    {
        let matchers = selector.matchers.clone();
        Ok(Box::new(
            self.streams
                .iter()
                .filter(move |s| LabelMatcher::all_match(&matchers, &s.labels))
                .filter_map(move |s| {
                    let entries: Vec<Entry> =
                        s.entries.iter().filter(|e| e.ts >= start && e.ts < end).cloned().collect();
                    (!entries.is_empty()).then(|| {
                        Ok(StreamBatch {
                            labels: s.labels.clone(),
                            entries: EntryBatch::from(entries.as_slice()),
                        })
                    })
                }),
        ))
    }
}

/// The differential dataset's streams (the first entries of each), from the recorded bodies.
fn dataset() -> Vec<Stream> {
    let mut by_labels: BTreeMap<String, (Labels, Vec<Entry>)> = BTreeMap::new();
    for (_, body) in Corpus::load_pushes() {
        let v: Value = serde_json::from_str(&String::from_utf8_lossy(&body)).unwrap();
        for s in v["streams"].as_array().unwrap() {
            let mut pairs: Vec<(String, String)> = s["stream"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let service = pairs.iter().find(|(k, _)| k == "app").map(|(_, v)| v.clone());
            pairs.push(("service_name".into(), service.unwrap_or("unknown_service".into())));
            let labels = Labels::from_pairs(pairs);
            let slot =
                by_labels.entry(labels.to_string()).or_insert_with(|| (labels.clone(), Vec::new()));
            for e in s["values"].as_array().unwrap() {
                let structured_metadata = e
                    .get(2)
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter().map(|(k, v)| Label::new(k, v.as_str().unwrap_or(""))).collect()
                    })
                    .unwrap_or_default();
                slot.1.push(Entry {
                    ts: e[0].as_str().unwrap().parse().unwrap(),
                    line: e[1].as_str().unwrap().into(),
                    structured_metadata,
                });
            }
        }
    }
    by_labels
        .into_values()
        .map(|(labels, mut entries)| {
            entries.sort_by_key(|e| e.ts);
            entries.truncate(ENTRIES_PER_STREAM);
            Stream { labels, entries }
        })
        .collect()
}

#[test]
fn generated_queries_parse_print_and_evaluate_without_panic() {
    let started = Instant::now();
    let source = MemSource { streams: dataset() };
    let limits = Limits { max_query_memory: MEMORY_CAP, ..Limits::default() };
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let queries: Vec<String> = requests(0x5eed_0001, CASES)
        .into_iter()
        .filter_map(|r| r.params.into_iter().find(|(k, _)| k == "query").map(|(_, v)| v))
        .collect();
    for q in &queries {
        let outcome = catch_unwind(AssertUnwindSafe(|| check(q, &source, &limits)));
        match outcome {
            Ok(Ok(kind)) => *outcomes.entry(kind).or_default() += 1,
            Ok(Err(e)) => failures.push(format!("{q}: {e}")),
            Err(_) => failures.push(format!("{q}: panicked")),
        }
    }
    println!("{} queries in {:?}: {outcomes:?}", queries.len(), started.elapsed());
    for f in failures.iter().take(20) {
        println!("FAILED {f}");
    }
    assert!(queries.len() >= CASES * 3 / 4, "{} queries", queries.len());
    assert!(failures.is_empty(), "{} queries failed (first shown above)", failures.len());
}

/// Parses, prints, parses the printed form (which must print the same) and evaluates `q` as
/// a range query over the dataset's first minutes; the outcome's kind, or what went wrong.
fn check(q: &str, source: &MemSource, limits: &Limits) -> Result<String, String> {
    let expr = match parse_expr(q) {
        Ok(e) => e,
        Err(_) => return Ok("parse error".into()),
    };
    let printed = expr.to_string();
    let again = parse_expr(&printed).map_err(|e| format!("printed form {printed:?} fails: {e}"))?;
    if again.to_string() != printed {
        return Err(format!("printed {printed:?}, reprinted {:?}", again.to_string()));
    }
    let params = QueryParams {
        start: T0,
        end: T0 + 10 * 60 * NS,
        step_ns: 60 * NS,
        interval_ns: 0,
        limit: 100,
        direction: Direction::Backward,
        instant: false,
        categorize_labels: false,
    };
    let kind = match (&expr, evaluate(&expr, &params, limits, source)) {
        (Expr::Log(_), Ok(_)) => "log ok",
        (_, Ok(_)) => "metric ok",
        (_, Err(_)) => "evaluation error",
    };
    Ok(kind.into())
}
