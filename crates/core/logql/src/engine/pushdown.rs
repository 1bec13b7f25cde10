//! Push-down: what a data holder (an ingester) may leave out of its answer to
//! [`Source::select`](super::Source::select), so that it sends only entries the query can use.

use skald_model::Stream;

use super::SelectLimit;
use crate::log::Pipeline;

/// Keeps the entries of `streams` that `pipeline` accepts and, with `limit`, only those no
/// farther from the query's edge than the `limit`-th nearest accepted entry (entries tied with
/// it are kept, so the engine's own tie-breaking still sees them all). Entries stay in their
/// order; streams left empty are dropped.
pub fn push_down(
    pipeline: &Pipeline,
    mut streams: Vec<Stream>,
    limit: Option<SelectLimit>,
) -> Vec<Stream> {
    if !pipeline.is_empty() {
        for s in &mut streams {
            let mut sp = pipeline.for_stream(&s.labels);
            s.entries.retain(|e| sp.process_ref(e.ts, &e.line, &e.structured_metadata).is_some());
        }
    }
    if let Some(SelectLimit { limit, backward }) = limit {
        let mut ts: Vec<i64> =
            streams.iter().flat_map(|s| s.entries.iter().map(|e| e.ts)).collect();
        if ts.len() > limit {
            let bound = if limit == 0 {
                None
            } else if backward {
                // the limit-th largest timestamp
                let k = ts.len() - limit;
                Some(*ts.select_nth_unstable(k).1)
            } else {
                Some(*ts.select_nth_unstable(limit - 1).1)
            };
            for s in &mut streams {
                s.entries.retain(|e| match bound {
                    None => false,
                    Some(b) if backward => e.ts >= b,
                    Some(b) => e.ts <= b,
                });
            }
        }
    }
    streams.retain(|s| !s.entries.is_empty());
    streams
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::{ast::Expr, parse_expr};
    use skald_model::{Entry, Label, Labels};

    fn stream(name: &str, entries: &[(i64, &str)]) -> Stream {
        Stream {
            labels: Labels::from_vec(vec![Label::new("app", name)]),
            entries: entries
                .iter()
                .map(|&(ts, line)| Entry { ts, line: line.into(), structured_metadata: vec![] })
                .collect(),
        }
    }

    fn pipeline(q: &str) -> Pipeline {
        let Ok(Expr::Log(sel)) = parse_expr(q) else { panic!("not a log query: {q}") };
        Pipeline::new(&sel.stages).expect("pipeline")
    }

    fn kept(streams: &[Stream]) -> Vec<(String, i64)> {
        streams
            .iter()
            .flat_map(|s| s.entries.iter().map(|e| (s.labels.to_string(), e.ts)))
            .collect()
    }

    #[test]
    fn full_pipeline_filters() {
        let s = vec![
            stream("a", &[(1, "level=error x=1"), (2, "level=info x=2"), (3, "level=error x=30")]),
            stream("b", &[(4, "level=info")]),
        ];
        let out = push_down(&pipeline(r#"{app=~".+"} | logfmt | level="error" | x > 10"#), s, None);
        assert_eq!(kept(&out), vec![(r#"{app="a"}"#.to_string(), 3)]);
    }

    #[test]
    fn limit_keeps_ties_at_the_bound() {
        let s = || {
            vec![stream("a", &[(1, "x"), (5, "x"), (9, "x")]), stream("b", &[(5, "y"), (7, "y")])]
        };
        let p = pipeline(r#"{app=~".+"}"#);
        let back = push_down(&p, s(), Some(SelectLimit { limit: 3, backward: true }));
        // nearest end: 9, 7, then 5 (twice: the tie is kept)
        let mut ts: Vec<i64> = kept(&back).into_iter().map(|k| k.1).collect();
        ts.sort();
        assert_eq!(ts, vec![5, 5, 7, 9]);
        let fwd = push_down(&p, s(), Some(SelectLimit { limit: 2, backward: false }));
        let mut ts: Vec<i64> = kept(&fwd).into_iter().map(|k| k.1).collect();
        ts.sort();
        assert_eq!(ts, vec![1, 5, 5]);
        assert!(push_down(&p, s(), Some(SelectLimit { limit: 0, backward: true })).is_empty());
        assert_eq!(
            kept(&push_down(&p, s(), Some(SelectLimit { limit: 9, backward: true }))).len(),
            5
        );
    }
}
