//! What every line a selector's line filters accept must contain: [`needles`] turns the line
//! filters that apply to the stored line into a conjunction of clauses, each a disjunction of
//! literals, for indexes that can tell "no stored line contains any of these" (the n-gram
//! filters of `skald-needle`, a memmem scan). Label-filter equalities before any parser give
//! (name, value) requirements on stream labels or structured metadata.
//!
//! Soundness is the one rule: every line the filters accept satisfies every clause. When the
//! analysis is unsure it requires less (a regex it cannot reduce gives no clause).

mod regex;

use crate::syntax::ast::{LabelFilterExpr, LineFilterOp, LineFilterValue, ParserStage, Stage};
use skald_model::MatchType;

use super::labels::DUPLICATE_SUFFIX;
use super::pattern::Pattern;

/// One literal a line may contain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NeedleLiteral {
    /// The bytes; ASCII-lowercased when `case_insensitive`.
    pub bytes: Vec<u8>,
    /// True when the line is compared after ASCII lowercasing (the literal matches `ERROR`,
    /// `Error`, `error`...). Only ASCII letters fold: other bytes compare exactly.
    pub case_insensitive: bool,
}

impl NeedleLiteral {
    /// A case-sensitive literal.
    pub fn exact(bytes: impl Into<Vec<u8>>) -> Self {
        NeedleLiteral { bytes: bytes.into(), case_insensitive: false }
    }

    /// An ASCII-case-insensitive literal (its bytes are lowercased).
    pub fn folded(bytes: impl Into<Vec<u8>>) -> Self {
        let mut bytes = bytes.into();
        bytes.make_ascii_lowercase();
        NeedleLiteral { bytes, case_insensitive: true }
    }

    /// True when `line` contains this literal (ASCII-lowercased first when case-insensitive).
    pub fn found_in(&self, line: &[u8]) -> bool {
        if self.bytes.is_empty() {
            return true;
        }
        if self.case_insensitive {
            let lower = line.to_ascii_lowercase();
            memchr::memmem::find(&lower, &self.bytes).is_some()
        } else {
            memchr::memmem::find(line, &self.bytes).is_some()
        }
    }

    /// This literal followed by `other`: case-insensitive when either is (a line containing
    /// the exact concatenation contains its lowercased form after lowercasing).
    fn concat(&self, other: &NeedleLiteral) -> NeedleLiteral {
        let mut bytes = Vec::with_capacity(self.bytes.len() + other.bytes.len());
        bytes.extend_from_slice(&self.bytes);
        bytes.extend_from_slice(&other.bytes);
        if self.case_insensitive || other.case_insensitive {
            NeedleLiteral::folded(bytes)
        } else {
            NeedleLiteral::exact(bytes)
        }
    }
}

/// A disjunction: a matching line contains at least one of the literals. Never empty in a
/// [`Needles`].
pub type NeedleClause = Vec<NeedleLiteral>;

/// What every line accepted by a selector's line filters contains, and what its labels hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needles {
    /// A conjunction: a matching line satisfies every clause. No clause is empty and no
    /// literal is empty (those would say nothing).
    pub clauses: Vec<NeedleClause>,
    /// `(name, value)` pairs from label-filter equalities `| name="value"` (non-empty value;
    /// not `__error__` or a name ending in `_extracted`, which can name a metadata key
    /// renamed beside a stream label) that come before any parser, `label_format`, `drop` or
    /// `keep`: a matching entry has that label, with that value, among its stream labels or
    /// its structured metadata. The line filters cannot check these.
    pub metadata: Vec<(String, String)>,
}

impl Needles {
    /// True when nothing is required (every line may match).
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty() && self.metadata.is_empty()
    }

    /// True when `line` satisfies every clause (the metadata requirements are not checked).
    pub fn line_satisfies(&self, line: &[u8]) -> bool {
        self.clauses.iter().all(|c| c.iter().any(|l| l.found_in(line)))
    }

    fn push_clause(&mut self, mut clause: NeedleClause) {
        if clause.is_empty() || clause.iter().any(|l| l.bytes.is_empty()) {
            return;
        }
        clause.sort();
        clause.dedup();
        if !self.clauses.contains(&clause) {
            self.clauses.push(clause);
        }
    }
}

/// A conjunction of clauses (the analysis' working form; may hold trivially true clauses).
pub(crate) type Cnf = Vec<NeedleClause>;

/// How useful a clause is to an n-gram index: its shortest literal's length, then fewer
/// literals. Higher is better.
fn clause_score(c: &NeedleClause) -> (usize, std::cmp::Reverse<usize>) {
    (c.iter().map(|l| l.bytes.len()).min().unwrap_or(0), std::cmp::Reverse(c.len()))
}

/// The disjunction of conjunctions: a line satisfying one of `alternatives` satisfies the
/// union of one clause picked from each (the best one). Empty when an alternative requires
/// nothing.
pub(crate) fn or_cnfs(alternatives: Vec<Cnf>) -> Cnf {
    let mut union = NeedleClause::new();
    for cnf in alternatives {
        let best = cnf
            .into_iter()
            .filter(|c| !c.is_empty() && c.iter().all(|l| !l.bytes.is_empty()))
            .max_by_key(clause_score);
        match best {
            Some(c) => union.extend(c),
            None => return Cnf::new(),
        }
    }
    if union.is_empty() {
        return Cnf::new();
    }
    vec![union]
}

/// The clauses one alternative of a line filter requires (`ip(...)` and anything that does
/// not compile require nothing).
fn value_cnf(op: LineFilterOp, v: &LineFilterValue) -> Cnf {
    let LineFilterValue::Literal(s) = v else { return Cnf::new() };
    match op {
        LineFilterOp::Contains => vec![vec![NeedleLiteral::exact(s.as_bytes())]],
        LineFilterOp::Regex => regex::regex_cnf(s),
        LineFilterOp::Pattern => match Pattern::for_filter(s) {
            // every literal part must appear (see `Pattern::test`)
            Ok(p) => p.literals().map(|l| vec![NeedleLiteral::exact(l.as_bytes())]).collect(),
            Err(_) => Cnf::new(),
        },
        LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern => Cnf::new(),
    }
}

/// Adds the equalities of a label filter's `and` tree.
fn label_equalities(e: &LabelFilterExpr, out: &mut Vec<(String, String)>) {
    match e {
        LabelFilterExpr::And(a, b) => {
            label_equalities(a, out);
            label_equalities(b, out);
        }
        LabelFilterExpr::Paren(inner) => label_equalities(inner, out),
        // `x_extracted` may name the metadata key `x` (renamed when a stream label is `x`
        // too), and `__error__` is set by the pipeline: neither is a stored (name, value)
        LabelFilterExpr::String(m)
            if m.op == MatchType::Equal
                && !m.value.is_empty()
                && !m.name.ends_with(DUPLICATE_SUFFIX)
                && !m.name.starts_with("__") =>
        {
            let pair = (m.name.clone(), m.value.clone());
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
        _ => {}
    }
}

/// What every line the line filters of `stages` accept must contain: the filters that apply
/// to the stored line, i.e. before any `line_format`, `decolorize` or `unpack` (`|=`, `|~`
/// and `|>`, with their `or` alternatives; negative filters require nothing), and the
/// label-filter equalities before any parser, `label_format`, `drop` or `keep`.
pub fn needles(stages: &[Stage]) -> Needles {
    let mut out = Needles::default();
    let mut labels_are_stored = true;
    for s in stages {
        match s {
            Stage::LineFilter(f) => {
                let alternatives: Vec<Cnf> = std::iter::once(&f.value)
                    .chain(f.or.iter())
                    .map(|v| value_cnf(f.op, v))
                    .collect();
                let cnf = if alternatives.len() == 1 {
                    alternatives.into_iter().next().unwrap_or_default()
                } else {
                    or_cnfs(alternatives)
                };
                for c in cnf {
                    out.push_clause(c);
                }
            }
            Stage::LabelFilter(e) if labels_are_stored => label_equalities(e, &mut out.metadata),
            Stage::LabelFilter(_) => {}
            Stage::LineFormat(_) | Stage::Decolorize | Stage::Parser(ParserStage::Unpack) => break,
            Stage::Parser(_) | Stage::LabelFormat(_) | Stage::Drop(_) | Stage::Keep(_) => {
                labels_are_stored = false;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
