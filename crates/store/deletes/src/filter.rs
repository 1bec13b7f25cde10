//! [`TenantDeletes`]: a tenant's delete requests compiled, deciding per entry whether it is
//! deleted. Queriers drop such entries from every answer; the chunk rewrite drops them from
//! the chunks.

use skald_logql::log::{Pipeline, StreamPipeline};
use skald_model::{Label, LabelMatcher, Labels};

use crate::params::{has_filter, parse_query};
use crate::request::{Part, RequestGroup};

/// One compiled part of a request.
#[derive(Debug)]
struct CompiledPart {
    matchers: Vec<LabelMatcher>,
    /// `None`: every line of a matching stream in the window is deleted.
    pipeline: Option<Pipeline>,
    start_ns: i64,
    end_ns: i64,
}

/// A tenant's delete requests (the parts chosen when compiled), ready to test entries.
#[derive(Debug, Default)]
pub struct TenantDeletes {
    parts: Vec<CompiledPart>,
}

impl TenantDeletes {
    /// Compiles the parts of `groups` that `keep` accepts. A part whose query no longer
    /// parses or whose pipeline does not compile (Loki accepts a line filter with a bad
    /// regex) deletes nothing; it is logged.
    pub fn compile(groups: &[RequestGroup], keep: impl Fn(&RequestGroup, &Part) -> bool) -> Self {
        let mut parts = Vec::new();
        for g in groups {
            let Ok(sel) = parse_query(&g.query) else {
                tracing::warn!(request_id = %g.request_id, query = %g.query, "delete request query does not parse; it deletes nothing");
                continue;
            };
            let pipeline = if has_filter(&sel) {
                match Pipeline::new(&sel.stages) {
                    Ok(p) => Some(p),
                    Err(error) => {
                        tracing::warn!(request_id = %g.request_id, %error, "delete request pipeline does not compile; it deletes nothing");
                        continue;
                    }
                }
            } else {
                None
            };
            for p in g.parts.iter().filter(|p| keep(g, p)) {
                let pipeline = match &pipeline {
                    // a pipeline is compiled per part: parts are few, and each owns its state
                    Some(_) => Pipeline::new(&sel.stages).ok(),
                    None => None,
                };
                parts.push(CompiledPart {
                    matchers: sel.matchers.clone(),
                    pipeline,
                    start_ns: p.start_ms.saturating_mul(1_000_000),
                    end_ns: p.end_ms.saturating_mul(1_000_000),
                });
            }
        }
        TenantDeletes { parts }
    }

    /// True when nothing is deleted.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Number of compiled parts.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether some part's window overlaps `[from_ns, through_ns]`.
    pub fn overlaps(&self, from_ns: i64, through_ns: i64) -> bool {
        self.parts.iter().any(|p| p.start_ns <= through_ns && p.end_ns >= from_ns)
    }

    /// The parts that apply to a stream with `labels`, or `None` when none does.
    pub fn for_stream(&self, labels: &Labels) -> Option<StreamDeletes<'_>> {
        let parts: Vec<_> = self
            .parts
            .iter()
            .filter(|p| LabelMatcher::all_match(&p.matchers, labels))
            .map(|p| (p, p.pipeline.as_ref().map(|pl| pl.for_stream(labels))))
            .collect();
        (!parts.is_empty()).then_some(StreamDeletes { parts })
    }
}

/// The parts of a [`TenantDeletes`] that apply to one stream.
#[derive(Debug)]
pub struct StreamDeletes<'a> {
    parts: Vec<(&'a CompiledPart, Option<StreamPipeline<'a>>)>,
}

impl StreamDeletes<'_> {
    /// Whether the entry is deleted: inside a part's window (both ends inclusive, as Loki)
    /// and, when the part filters lines, accepted by its pipeline.
    pub fn is_deleted(&mut self, ts: i64, line: &[u8], structured_metadata: &[Label]) -> bool {
        self.parts.iter_mut().any(|(p, pipeline)| {
            if ts < p.start_ns || ts > p.end_ns {
                return false;
            }
            match pipeline {
                None => true,
                Some(pl) => pl.process_ref(ts, line, structured_metadata).is_some(),
            }
        })
    }

    /// Whether some part's window overlaps `[from_ns, through_ns]`.
    pub fn overlaps(&self, from_ns: i64, through_ns: i64) -> bool {
        self.parts.iter().any(|(p, _)| p.start_ns <= through_ns && p.end_ns >= from_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Status;

    fn group(query: &str, start_ms: i64, end_ms: i64) -> RequestGroup {
        RequestGroup {
            request_id: "00000001".into(),
            query: query.into(),
            created_at_ms: 0,
            parts: vec![Part { start_ms, end_ms, status: Status::Received, processed_at_ms: None }],
        }
    }

    fn labels(s: &str) -> Labels {
        Labels::parse(s).unwrap()
    }

    #[test]
    fn selector_window_and_line_filter() {
        let d = TenantDeletes::compile(&[group(r#"{app="a"} |= "secret""#, 10, 20)], |_, _| true);
        let mut s = d.for_stream(&labels(r#"{app="a", env="x"}"#)).unwrap();
        assert!(s.is_deleted(10_000_000, b"a secret line", &[]));
        assert!(s.is_deleted(20_000_000, b"a secret line", &[]));
        assert!(!s.is_deleted(20_000_001, b"a secret line", &[]));
        assert!(!s.is_deleted(9_999_999, b"a secret line", &[]));
        assert!(!s.is_deleted(15_000_000, b"public", &[]));
        assert!(d.for_stream(&labels(r#"{app="b"}"#)).is_none());
    }

    #[test]
    fn without_filter_everything_in_window() {
        let d = TenantDeletes::compile(&[group(r#"{app="a"} | json"#, 0, 5)], |_, _| true);
        let mut s = d.for_stream(&labels(r#"{app="a"}"#)).unwrap();
        assert!(s.is_deleted(1, b"not json", &[]));
        assert!(d.overlaps(5_000_000, 6_000_000));
        assert!(!d.overlaps(5_000_001, 6_000_000));
    }

    #[test]
    fn bad_regex_deletes_nothing() {
        let d = TenantDeletes::compile(&[group(r#"{app="a"} |~ "(x""#, 0, 5)], |_, _| true);
        assert!(d.is_empty());
    }
}
