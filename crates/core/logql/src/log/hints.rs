//! Loki's parser hints for range aggregations: which labels the query needs from its parsers,
//! so that they extract only those and stop once all of them were extracted.
//!
//! The labels a range aggregation needs are the ones its stages read (label filters, template
//! fields, renamed labels), its post-`unwrap` filters', the `unwrap` label and its effective
//! grouping (its own or the one a `sum` pushes down). They are hints only when the query drops
//! every other label: a grouping `by (...)` with names, or no labels at all (`by ()`,
//! `absent_over_time`). With hints:
//!
//! - `json`, `logfmt`, `pattern`, `regexp` and `unpack` extract only the needed names (a name
//!   ending in `_extracted` also stands for the name without it);
//! - `json` and `logfmt` stop reading a line once every needed name was extracted, so what
//!   follows is never checked (a later syntax error is none);
//! - `json`, `logfmt`, `pattern`, `unpack` and the extraction forms (`json a="b"`,
//!   `logfmt a`) leave a line alone when every needed name was extracted by an earlier
//!   parser, or when the query needs no label at all: their errors never reach the query.
//!
//! So in `sum by (level) (sum_over_time({app="x"} | logfmt | unpack | unwrap bytes(size) [5m]))`
//! a line `logfmt` found `level` and `size` in is never unpacked. A grouping `without (...)`,
//! or none, gives no hints: every parser runs over the whole line.

use crate::syntax::ast::{Grouping, LabelFilterExpr, LabelFormatOp, LogRangeExpr, RangeOp, Stage};

use super::labels::{LabelsBuilder, DUPLICATE_SUFFIX};
use super::template::Template;

/// What a range aggregation's parsers may leave out (see the module).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ParserHints {
    /// The names the query needs; empty: every name (no hints).
    required: Vec<String>,
    /// The query needs no label: the parsers that honour hints skip every line.
    no_labels: bool,
}

impl ParserHints {
    /// The hints of `op(range)` evaluated with the effective grouping `grouping`.
    pub(crate) fn new(op: RangeOp, range: &LogRangeExpr, grouping: Option<&Grouping>) -> Self {
        let mut groups: Vec<&str> = Vec::new();
        let mut without = false;
        let mut no_labels = false;
        if let Some(g) = grouping {
            groups = g.labels.iter().map(String::as_str).collect();
            without = g.without;
            no_labels = !g.without && g.labels.is_empty();
        }
        if op == RangeOp::AbsentOverTime {
            no_labels = true;
        }
        let mut names: Vec<String> = Vec::new();
        for s in &range.selector.stages {
            stage_label_names(s, &mut names);
        }
        if let Some(u) = &range.unwrap {
            for f in &u.post_filters {
                filter_label_names(f, &mut names);
            }
            // an unwrap without a grouping by names keeps every label but the unwrapped one
            if groups.is_empty() || without {
                without = true;
                groups.push(&u.label);
            }
            names.extend(groups.iter().map(|g| g.to_string()));
            names.push(u.label.clone());
        } else {
            names.extend(groups.iter().map(|g| g.to_string()));
        }
        let mut required: Vec<String> = Vec::new();
        let mut add = |n: &str| {
            if !n.is_empty() && !required.iter().any(|r| r == n) {
                required.push(n.to_string());
            }
        };
        for n in &names {
            add(n);
            if let Some(stripped) = n.strip_suffix(DUPLICATE_SUFFIX) {
                add(stripped);
            }
        }
        if no_labels {
            let no_labels = required.is_empty();
            return ParserHints { required, no_labels };
        }
        if without || groups.is_empty() {
            return ParserHints::default();
        }
        ParserHints { required, no_labels: false }
    }

    /// True when the hints leave nothing out.
    pub(crate) fn is_none(&self) -> bool {
        self.required.is_empty() && !self.no_labels
    }

    fn should_extract(&self, name: &str) -> bool {
        self.required.is_empty() || self.required.iter().any(|r| r == name)
    }

    fn should_extract_prefix(&self, prefix: &str) -> bool {
        self.required.is_empty() || self.required.iter().any(|r| r.starts_with(prefix))
    }
}

/// The label names a stage reads (Loki's `RequiredLabelNames`): label filters, template fields
/// of `line_format` and `label_format`, the sources of renames. A template that does not
/// parse names none (the pipeline does not compile anyway).
fn stage_label_names(s: &Stage, out: &mut Vec<String>) {
    let fields = |src: &str| Template::parse(src).map(|t| t.field_names()).unwrap_or_default();
    match s {
        Stage::LabelFilter(f) => filter_label_names(f, out),
        Stage::LineFormat(t) => out.extend(fields(t)),
        Stage::LabelFormat(ops) => {
            for o in ops {
                match o {
                    LabelFormatOp::Rename { src, .. } => out.push(src.clone()),
                    LabelFormatOp::Template { template, .. } => out.extend(fields(template)),
                }
            }
        }
        _ => {}
    }
}

fn filter_label_names(f: &LabelFilterExpr, out: &mut Vec<String>) {
    match f {
        LabelFilterExpr::And(a, b) | LabelFilterExpr::Or(a, b) => {
            filter_label_names(a, out);
            filter_label_names(b, out);
        }
        LabelFilterExpr::Paren(a) => filter_label_names(a, out),
        LabelFilterExpr::String(m) => out.push(m.name.clone()),
        LabelFilterExpr::Number { name, .. }
        | LabelFilterExpr::Duration { name, .. }
        | LabelFilterExpr::Bytes { name, .. }
        | LabelFilterExpr::Ip { name, .. } => out.push(name.clone()),
    }
}

impl LabelsBuilder {
    /// Whether a parser that honours hints leaves this line alone: the query needs no label,
    /// or every name it needs was extracted already.
    pub(crate) fn parser_skips(&self) -> bool {
        self.hints().is_some_and(|h| h.no_labels) || self.all_required_extracted()
    }

    /// Whether a parser extracts `name` (already suffixed when it collides).
    pub(crate) fn should_extract(&self, name: &str) -> bool {
        self.hints().is_none_or(|h| h.should_extract(name))
    }

    /// Whether `json` descends into an object whose sanitized key path is `prefix`.
    pub(crate) fn should_extract_prefix(&self, prefix: &str) -> bool {
        self.hints().is_none_or(|h| h.should_extract_prefix(prefix))
    }

    /// True when the hints name labels and every one of them was extracted on this line.
    pub(crate) fn all_required_extracted(&self) -> bool {
        self.hints()
            .is_some_and(|h| !h.required.is_empty() && h.required.iter().all(|r| self.extracted(r)))
    }
}

#[cfg(test)]
mod tests;
