//! The deviation classes: named predicates over (request, Loki's answer, Skald's answer, the
//! differences [`crate::compare::compare`] found). `docs/api.md` lists each class on one line
//! ("Differential deviations"), with the reason; the differential test counts the differences
//! per class and fails on any difference no class explains.
//!
//! [`Kind::Loki`] classes are Loki's bugs or answers Loki gives inconsistently, where Skald
//! keeps its answer on purpose. [`Kind::Open`] classes are Skald differences not fixed yet:
//! listed so that the test guards everything else, and to be fixed (they are not deliberate).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::replay::Request;

/// Whether a class is a deliberate deviation or an open Skald difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Loki's bug or nondeterminism: Skald's answer is kept on purpose.
    Loki,
    /// A Skald difference still to fix.
    Open,
}

/// One class of difference from Loki.
pub struct Class {
    /// The name `docs/api.md` lists.
    pub name: &'static str,
    /// Deliberate or open.
    pub kind: Kind,
    /// Whether a difference belongs to the class.
    pub matches: fn(&Request, &Value, &Value, &[String]) -> bool,
}

/// The listed classes, in the order they are tried.
pub const CLASSES: &[Class] = &[
    Class { name: "loki-500-on-literal", kind: Kind::Loki, matches: loki_500_on_literal },
    Class { name: "loki-series-limit-on-subqueries", kind: Kind::Loki, matches: series_limit },
    Class { name: "loki-validates-stages-lazily", kind: Kind::Loki, matches: lazy_validation },
    Class {
        name: "loki-index-lists-streams-outside-range",
        kind: Kind::Loki,
        matches: index_superset,
    },
    Class { name: "loki-or-empty-line-filter", kind: Kind::Loki, matches: or_empty_filter },
    Class { name: "loki-tie-order", kind: Kind::Loki, matches: tie_order },
    Class { name: "loki-detected-fields-unstable", kind: Kind::Loki, matches: fields_unstable },
    Class { name: "loki-unstable-between-runs", kind: Kind::Loki, matches: unstable_between_runs },
    Class { name: "loki-first-failing-series", kind: Kind::Loki, matches: first_failing },
    Class {
        name: "loki-label-filter-regex-simplified",
        kind: Kind::Loki,
        matches: regex_simplified,
    },
];

/// The first class that explains the differences, if any.
pub fn classify(
    r: &Request,
    loki: &Value,
    skald: &Value,
    diffs: &[String],
) -> Option<&'static Class> {
    CLASSES.iter().find(|c| (c.matches)(r, loki, skald, diffs))
}

fn param<'a>(r: &'a Request, name: &str) -> &'a str {
    r.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
}

fn body_text(a: &Value) -> &str {
    a["body"].as_str().unwrap_or("")
}

fn result(a: &Value) -> &Value {
    &a["body"]["data"]["result"]
}

fn is_empty_result(a: &Value) -> bool {
    a["status"] == 200 && result(a).as_array().is_some_and(Vec::is_empty)
}

/// Loki answers 500 `unexpected expr type (*syntax.LiteralExpr)` where a literal stands for a
/// vector (`label_replace(0, ...)`, `min(1 <= -1)`); Skald refuses the query with a 400.
fn loki_500_on_literal(_: &Request, loki: &Value, skald: &Value, _: &[String]) -> bool {
    loki["status"] == 500
        && body_text(loki).starts_with("unexpected expr type")
        && skald["status"] == 400
}

const SERIES_LIMIT: &str = "maximum number of series";

/// Loki checks `max_query_series` on the results of its sub-queries (splits, shards, the inner
/// expressions before an outer aggregation); Skald on what the query holds at once.
fn series_limit(_: &Request, loki: &Value, skald: &Value, _: &[String]) -> bool {
    body_text(loki).starts_with(SERIES_LIMIT) != body_text(skald).starts_with(SERIES_LIMIT)
}

/// Loki builds a query's pipeline only when a chunk matches, so an invalid stage (a bad regex,
/// an unclosed template) over a range with no data answers 200 and nothing; Skald validates the
/// whole query first and answers 400 whatever the range holds.
fn lazy_validation(_: &Request, loki: &Value, skald: &Value, _: &[String]) -> bool {
    is_empty_result(loki) && skald["status"] == 400 && body_text(skald).starts_with("parse error")
}

fn string_set(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap_or("").to_string()).collect())
        .unwrap_or_default()
}

/// Loki's TSDB head lists the names and values of every stream it indexes, whether or not the
/// stream has entries in the range (`labels`, `label/<n>/values`, `detected_labels`): Loki's
/// answer holds Skald's and more.
fn index_superset(r: &Request, loki: &Value, skald: &Value, _: &[String]) -> bool {
    if loki["status"] != 200 || skald["status"] != 200 {
        return false;
    }
    if r.path.ends_with("/labels") || (r.path.ends_with("/values") && r.path.contains("/label/")) {
        let (l, s) = (string_set(&loki["body"]["data"]), string_set(&skald["body"]["data"]));
        return s.iter().all(|x| l.contains(x)) && l.len() > s.len();
    }
    if r.path.ends_with("/detected_labels") {
        let card = |a: &Value| -> BTreeMap<String, u64> {
            a["body"]["detectedLabels"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| {
                    (
                        x["label"].as_str().unwrap_or("").to_string(),
                        x["cardinality"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        };
        let (l, s) = (card(loki), card(skald));
        return s.iter().all(|(k, n)| l.get(k).is_some_and(|m| m >= n));
    }
    false
}

/// `|= "a" or ""` (an empty alternative, which every line contains): Loki drops the lines
/// (answers nothing), Skald keeps every line.
fn or_empty_filter(r: &Request, loki: &Value, skald: &Value, _: &[String]) -> bool {
    let q = param(r, "query");
    (q.contains("or \"\"") || q.contains("\"\" or"))
        && is_empty_result(loki)
        && skald["status"] == 200
}

/// Per timestamp, the sorted sample values of a vector or matrix answer.
fn values_by_time(a: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in result(a).as_array().into_iter().flatten() {
        let points: Vec<&Value> = match s.get("values") {
            Some(Value::Array(v)) => v.iter().collect(),
            _ => s.get("value").into_iter().collect(),
        };
        for p in points {
            out.entry(p[0].to_string()).or_default().push(p[1].as_str().unwrap_or("").to_string());
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// `topk`, `bottomk`, `sort` and `sort_desc` order samples of equal value as Go's map
/// iteration left them, so Loki's own answers differ from run to run: the same values at every
/// timestamp, other series among the ties.
fn tie_order(r: &Request, loki: &Value, skald: &Value, _: &[String]) -> bool {
    let q = param(r, "query");
    ["topk", "bottomk", "sort"].iter().any(|f| q.contains(f))
        && loki["status"] == 200
        && skald["status"] == 200
        && values_by_time(loki) == values_by_time(skald)
}

/// `detected_fields`: Loki samples lines per split and keeps fields from Go maps, so its own
/// answers differ between runs (a second recording over the same pushes gave other
/// cardinalities and, under `limit`, other fields in 5 of 74 answers).
fn fields_unstable(r: &Request, loki: &Value, skald: &Value, _: &[String]) -> bool {
    r.path.ends_with("/detected_fields") && loki["status"] == 200 && skald["status"] == 200
}

/// Requests whose answer differed between two recordings from real Loki over the same pushes
/// (besides `detected_fields` and the index figures a rotation doubles): Loki itself gives
/// no stable answer to compare with.
const LOKI_UNSTABLE: &[&str] = &["d01690", "d02226", "d02549", "d02712", "d03438"];

fn unstable_between_runs(r: &Request, _: &Value, _: &Value, _: &[String]) -> bool {
    LOKI_UNSTABLE.contains(&r.name.as_str())
}

/// Two kinds of pipeline error in one query: Loki names the first failing series it reads
/// (the README's rule for the series), and with it that series' error.
fn first_failing(_: &Request, loki: &Value, skald: &Value, _: &[String]) -> bool {
    loki["status"] == 400
        && skald["status"] == 400
        && body_text(loki).starts_with("pipeline error: ")
        && body_text(skald).starts_with("pipeline error: ")
}

fn entries(a: &Value) -> usize {
    result(a).as_array().map_or(0, |r| r.len())
}

/// Loki's regex simplifier turns some label-filter regexes into looser tests (`=~"e.*"`
/// matches an `e` anywhere, `=~""` matches every value); Skald anchors label-filter regexes
/// (the deliberate deviation "Label-filter regexes match the whole value"), so Loki keeps more.
/// Under `limit`, Loki may keep another entry than Skald: one whose value the loosened regex
/// matches and Skald's does not (`trace_id=~"e.*"` keeping a `trace_id` without a leading `e`).
fn regex_simplified(r: &Request, loki: &Value, skald: &Value, _: &[String]) -> bool {
    let q = param(r, "query");
    if (q.contains("=~\"e.*\"") || q.contains("=~\"\"")) && entries(loki) > entries(skald) {
        return true;
    }
    let Some(at) = q.find("=~\"e.*\"") else { return false };
    let name: String = q[..at]
        .trim_end()
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect::<Vec<char>>()
        .into_iter()
        .rev()
        .collect();
    skald["status"] == 200
        && result(loki).as_array().into_iter().flatten().any(|s| {
            s["stream"][name.as_str()]
                .as_str()
                .is_some_and(|v| v.contains('e') && !v.starts_with('e'))
        })
}
