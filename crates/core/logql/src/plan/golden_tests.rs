//! Every range query of the LogQL golden files (`tests/logql/*.logql`, see its README) over
//! the reference dataset (`tests/data/reference/push`), evaluated whole and split at 5m and
//! 1h: the answers (or the errors) must be the same.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use skald_model::{Direction, Entry, Label, Labels, Stream};

use super::*;
use crate::engine::tests::MemSource;
use crate::engine::{evaluate, EngineError, Limits, QueryParams, QueryResult};
use crate::syntax::ast::Expr;
use crate::syntax::parse_expr;

const SEC: i64 = 1_000_000_000;
/// The dataset's T0, 2026-11-01T00:00:00Z.
const T0: i64 = 1_793_491_200 * SEC;

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// The reference dataset as streams, each stream's entries in time order.
fn reference_source() -> MemSource {
    let dir = repo_dir().join("tests/data/reference/push");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut streams: BTreeMap<Labels, Vec<Entry>> = BTreeMap::new();
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "json")) {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        for s in v["streams"].as_array().unwrap() {
            let labels = Labels::from_vec(
                s["stream"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| Label::new(k.as_str(), v.as_str().unwrap()))
                    .collect(),
            );
            let entries = streams.entry(labels).or_default();
            for e in s["values"].as_array().unwrap() {
                let sm = e.get(2).and_then(|m| m.as_object()).map_or_else(Vec::new, |m| {
                    m.iter().map(|(k, v)| Label::new(k.as_str(), v.as_str().unwrap())).collect()
                });
                entries.push(Entry {
                    ts: e[0].as_str().unwrap().parse().unwrap(),
                    line: e[1].as_str().unwrap().into(),
                    structured_metadata: sm,
                });
            }
        }
    }
    MemSource {
        streams: streams
            .into_iter()
            .map(|(labels, mut entries)| {
                entries.sort_by_key(|e| e.ts);
                Stream { labels, entries }
            })
            .collect(),
    }
}

/// `0`, `90s`, `10m`, `1h30m`, `500ms`, or plain seconds, in ns.
fn duration_ns(s: &str) -> i64 {
    if let Ok(secs) = s.parse::<i64>() {
        return secs * SEC;
    }
    let (mut total, mut num) = (0i64, String::new());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().unwrap();
        num.clear();
        total += match c {
            'h' => n * 3600 * SEC,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                n * 1_000_000
            }
            'm' => n * 60 * SEC,
            's' => n * SEC,
            _ => panic!("bad duration {s:?}"),
        };
    }
    total
}

/// The golden files' request parameters (their README).
#[derive(Clone)]
struct Golden {
    instant: bool,
    start: i64,
    end: i64,
    step: i64,
    limit: u32,
    direction: Direction,
    interval: bool,
    categorize: bool,
}

impl Default for Golden {
    fn default() -> Self {
        Golden {
            instant: false,
            start: 0,
            end: 7200 * SEC,
            step: 60 * SEC,
            limit: 20,
            direction: Direction::Forward,
            interval: false,
            categorize: false,
        }
    }
}

fn apply(base: &Golden, text: &str) -> Golden {
    let mut g = base.clone();
    for kv in text.split_whitespace() {
        let (k, v) = kv.split_once('=').unwrap();
        match k {
            "instant" => g.instant = v.parse().unwrap(),
            "start" => g.start = duration_ns(v),
            "end" => g.end = duration_ns(v),
            "step" => g.step = duration_ns(v),
            "limit" => g.limit = v.parse().unwrap(),
            "direction" => {
                g.direction = if v == "backward" { Direction::Backward } else { Direction::Forward }
            }
            "interval" => g.interval = true,
            "categorize" => g.categorize = v.parse().unwrap(),
            "time" => {}
            _ => panic!("unknown param {k}"),
        }
    }
    g
}

fn params(g: &Golden, start: i64, end: i64) -> QueryParams {
    QueryParams {
        start,
        end,
        step_ns: g.step,
        interval_ns: 0,
        limit: g.limit,
        direction: g.direction,
        instant: false,
        categorize_labels: g.categorize,
    }
}

/// An answer as comparable text (`Debug`, so that NaN equals NaN), or the error.
fn shown(r: Result<QueryResult, EngineError>) -> String {
    match r {
        Ok(r) => format!("{r:?}"),
        Err(e) => format!("error {}: {e}", e.status_code()),
    }
}

fn run_split(expr: &Expr, g: &Golden, src: &MemSource, interval: i64) -> String {
    let limits = Limits::default();
    let eval = |s: i64, e: i64| evaluate(expr, &params(g, s, e), &limits, src).map(|o| o.result);
    // Every split runs (as the frontend runs them in parallel); the errors are merged.
    let merged = match expr {
        Expr::Sample(_) => {
            let (start, end) = align(T0 + g.start, T0 + g.end, g.step);
            let (parts, errors) = partition(
                split_range(start, end, g.step, interval, max_range(expr))
                    .into_iter()
                    .map(|(s, e)| {
                        eval(s, e).map(|r| match r {
                            QueryResult::Matrix(m) => m,
                            other => panic!("not a matrix: {other:?}"),
                        })
                    })
                    .collect(),
            );
            match merge_errors(errors) {
                Some(e) => Err(e),
                None => {
                    let m = merge_matrix(parts, start, end, g.step, max_range(expr));
                    check_series_limit(&m, limits.max_query_series).map(|()| QueryResult::Matrix(m))
                }
            }
        }
        Expr::Log(_) => {
            let (parts, errors) = partition(
                split_log_range(T0 + g.start, T0 + g.end, interval, g.direction)
                    .into_iter()
                    .map(|(s, e)| {
                        eval(s, e).map(|r| match r {
                            QueryResult::Streams(s) => s,
                            other => panic!("not streams: {other:?}"),
                        })
                    })
                    .collect(),
            );
            match merge_errors(errors) {
                Some(e) => Err(e),
                None => {
                    Ok(QueryResult::Streams(merge_streams(parts, g.limit as usize, g.direction)))
                }
            }
        }
    };
    shown(merged)
}

fn partition<T>(results: Vec<Result<T, EngineError>>) -> (Vec<T>, Vec<EngineError>) {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(e) => errors.push(e),
        }
    }
    (ok, errors)
}

fn align(start: i64, end: i64, step: i64) -> (i64, i64) {
    let s = start - start.rem_euclid(step);
    let r = end.rem_euclid(step);
    (s, if r == 0 { end } else { end + step - r })
}

#[test]
fn every_golden_range_query_split_equals_the_whole_query() {
    let src = reference_source();
    let dir = repo_dir().join("tests/logql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "logql"))
        .collect();
    files.sort();
    let (mut checked, mut failures) = (0, Vec::new());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut defaults = Golden::default();
        let mut next: Option<Golden> = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with("--") {
                continue;
            }
            if let Some(d) = line.strip_prefix("# defaults:") {
                defaults = apply(&Golden::default(), d);
                continue;
            }
            if let Some(d) = line.strip_prefix("# params:") {
                next = Some(apply(&defaults, d));
                continue;
            }
            let g = next.take().unwrap_or_else(|| defaults.clone());
            // Instant queries and log queries thinned by `interval` are not split.
            let Ok(expr) = parse_expr(line) else { continue };
            if g.instant || (g.interval && matches!(expr, Expr::Log(_))) {
                continue;
            }
            let whole = match &expr {
                Expr::Sample(_) => {
                    let (start, end) = align(T0 + g.start, T0 + g.end, g.step);
                    evaluate(&expr, &params(&g, start, end), &Limits::default(), &src)
                }
                Expr::Log(_) => {
                    evaluate(&expr, &params(&g, T0 + g.start, T0 + g.end), &Limits::default(), &src)
                }
            };
            let whole = shown(whole.map(|o| o.result));
            for interval in [5 * 60 * SEC, 3600 * SEC] {
                let split = run_split(&expr, &g, &src, interval);
                if split != whole {
                    failures.push(format!(
                        "{}: {line} (interval {interval}):\n whole {whole}\n split {split}",
                        file.display()
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 80, "only {checked} queries checked");
}
