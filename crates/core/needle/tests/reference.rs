//! The reference dataset (tests/data/reference/push: 22 streams, 26 000 lines, some with
//! structured metadata) against every selector of the LogQL golden files (tests/logql) and
//! the reference query lists, plus needle searches: each stream's lines, run through the
//! selector's pipeline (matchers ignored, so that every stream is tried), give accepted lines
//! that satisfy `skald_logql::log::needles`, and that the stream's filter may hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use skald_logql::log::{needles, Pipeline};
use skald_logql::syntax::ast::{Expr, LogSelectorExpr, SampleExpr};
use skald_logql::syntax::parse_expr;
use skald_model::{Label, Labels};
use skald_needle::{ChunkFilterBuilder, NgramFilter};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

struct Stream {
    labels: Labels,
    lines: Vec<(String, Vec<Label>)>,
}

fn streams() -> Vec<Stream> {
    let dir = repo().join("tests/data/reference/push");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("reference push data")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut by_labels: BTreeMap<String, Stream> = BTreeMap::new();
    for f in files {
        let v: Value = serde_json::from_slice(&std::fs::read(f).expect("read")).expect("json");
        for s in v["streams"].as_array().into_iter().flatten() {
            let pairs: Vec<(String, String)> = s["stream"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let key = format!("{pairs:?}");
            let stream = by_labels.entry(key).or_insert_with(|| Stream {
                labels: Labels::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.clone()))),
                lines: Vec::new(),
            });
            for e in s["values"].as_array().into_iter().flatten() {
                let line = e[1].as_str().unwrap_or_default().to_string();
                let meta = e[2]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| Label::new(k.as_str(), v.as_str().unwrap_or_default()))
                    .collect();
                stream.lines.push((line, meta));
            }
        }
    }
    by_labels.into_values().collect()
}

fn sample_selectors(e: &SampleExpr, out: &mut Vec<LogSelectorExpr>) {
    match e {
        SampleExpr::RangeAggregation { range, .. } => out.push(range.selector.clone()),
        SampleExpr::VectorAggregation { expr, .. }
        | SampleExpr::LabelReplace { expr, .. }
        | SampleExpr::Paren(expr) => sample_selectors(expr, out),
        SampleExpr::Binary { lhs, rhs, .. } => {
            sample_selectors(lhs, out);
            sample_selectors(rhs, out);
        }
        SampleExpr::Literal(_) | SampleExpr::Vector(_) => {}
    }
}

fn queries() -> Vec<String> {
    let mut out = Vec::new();
    let dir = repo().join("tests/logql");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("tests/logql")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "logql"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(f).expect("read");
        for l in text.lines().map(str::trim) {
            if !(l.is_empty() || l.starts_with("--") || l.starts_with('#')) {
                out.push(l.to_string());
            }
        }
    }
    for name in ["queries-edges.json", "queries-patterns.json", "queries-unaligned.json"] {
        let p = repo().join("tests/data/reference").join(name);
        let v: Value = serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json");
        for q in v.as_array().into_iter().flatten() {
            if let Some(s) = q["params"]["query"].as_str() {
                out.push(s.to_string());
            }
        }
    }
    out.extend(
        [
            r#"{job="openssh"} |~ "(?i)FAILED password for (ROOT|admin)""#,
            r#"{job="android"} | trace_id="086a35902ed9cc440b90c8de1d9bb92d""#,
            r#"{job="android"} |= "PowerManagerService" | trace_id="086a35902ed9cc440b90c8de1d9bb92d""#,
            r#"{job="hdfs"} |~ "blk_-?\\d{5,} (terminating|Received)""#,
            r#"{job="apache"} |> "<_>[error]<_>mod_jk<_>""#,
            r#"{job="x"} |= "needle-5kald-7f3a9c""#,
            r#"{job="x"} |~ "(?i)user (root|news)\\b" |= "session""#,
        ]
        .map(String::from),
    );
    out
}

#[test]
fn accepted_lines_satisfy_needles_and_pass_the_filters() {
    let streams = streams();
    assert!(streams.len() >= 20, "{}", streams.len());
    // one block per stream (the lines concatenated), its metadata added as labels
    let filters: Vec<NgramFilter> = streams
        .iter()
        .map(|s| {
            let mut b = ChunkFilterBuilder::new(256 * 1024, 4 << 20);
            let text: Vec<u8> = s.lines.iter().flat_map(|(l, _)| l.bytes()).collect();
            let meta: Vec<(&str, &str)> = s
                .lines
                .iter()
                .flat_map(|(_, m)| m.iter().map(|l| (l.name.as_str(), l.value.as_str())))
                .collect();
            let _ = b.add_block_with_labels(&text, meta);
            b.finish_chunk()
        })
        .collect();
    let (mut selectors, mut accepted, mut with_clauses, mut skipped) = (0, 0usize, 0, 0);
    for q in queries() {
        let sels = match parse_expr(&q) {
            Ok(Expr::Log(sel)) => vec![sel],
            Ok(Expr::Sample(e)) => {
                let mut v = Vec::new();
                sample_selectors(&e, &mut v);
                v
            }
            Err(_) => continue,
        };
        for sel in sels {
            let Ok(pipeline) = Pipeline::new(&sel.stages) else { continue };
            let n = needles(&sel.stages);
            selectors += 1;
            if n.is_empty() {
                // nothing required: nothing to check
                continue;
            }
            with_clauses += 1;
            for (s, f) in streams.iter().zip(&filters) {
                let filter_says = f
                    .may_match(n.clauses.iter().map(|c| c.iter().map(|l| l.bytes.as_slice())))
                    && n.metadata.iter().all(|(k, v)| {
                        s.labels.get(k) == Some(v.as_str()) || f.may_have_label(k, v)
                    });
                let mut sp = pipeline.for_stream(&s.labels);
                let mut any = false;
                for (line, meta) in &s.lines {
                    if sp.process(0, line.as_bytes(), meta).is_none() {
                        continue;
                    }
                    any = true;
                    accepted += 1;
                    assert!(n.line_satisfies(line.as_bytes()), "{q}: {line}");
                    for (k, v) in &n.metadata {
                        let has = s.labels.get(k) == Some(v.as_str())
                            || meta.iter().any(|l| &l.name == k && &l.value == v);
                        assert!(has, "{q}: {k}={v} missing from an accepted entry");
                    }
                }
                assert!(!any || filter_says, "{q}: the filter of {:?} rejects a match", s.labels);
                skipped += usize::from(!any && !filter_says);
            }
        }
    }
    println!(
        "{selectors} selectors ({with_clauses} with requirements), {accepted} accepted lines, \
         {skipped} (selector, stream) pairs skipped by the filters"
    );
    assert!(selectors > 100 && with_clauses > 15 && accepted > 10_000 && skipped > 50);
}
