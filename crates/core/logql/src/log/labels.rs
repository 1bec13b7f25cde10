//! The per-line label state of a pipeline: stream labels, structured metadata and parsed labels,
//! kept apart so that results can be written in both of Loki's encodings.

use std::sync::Arc;

use skald_model::{Label, Labels};

use super::hints::ParserHints;

/// The error label set by failing stages.
pub const ERROR_LABEL: &str = "__error__";
/// The error details label set by failing stages.
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";
/// Suffix appended to extracted names that collide with stream labels or structured metadata.
pub const DUPLICATE_SUFFIX: &str = "_extracted";

/// Where a label comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    /// Structured metadata of the entry.
    StructuredMetadata = 0,
    /// Extracted by a parser or written by `label_format`.
    Parsed = 1,
}

/// Labels split by origin, so the querier can write both of Loki's encodings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelsResult {
    /// Stream labels (after `drop`/`keep`, without those overridden by other categories).
    pub stream: Labels,
    /// Structured metadata labels.
    pub structured_metadata: Labels,
    /// Parsed labels, plus `__error__` and `__error_details__` when set.
    pub parsed: Labels,
}

impl LabelsResult {
    /// All three merged, as Loki shows them without `categorize-labels`.
    pub fn all(&self) -> Labels {
        let mut v: Vec<Label> = Vec::with_capacity(
            self.stream.len() + self.structured_metadata.len() + self.parsed.len(),
        );
        v.extend(self.stream.iter().cloned());
        v.extend(self.structured_metadata.iter().cloned());
        v.extend(self.parsed.iter().cloned());
        Labels::from_vec(v)
    }
}

/// A list of labels cleared by resetting its length: the strings of earlier lines are
/// overwritten in place, so a steady state processes lines without allocating.
#[derive(Debug, Default)]
struct Slots {
    v: Vec<Label>,
    len: usize,
}

impl Slots {
    fn as_slice(&self) -> &[Label] {
        &self.v[..self.len]
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.as_slice().iter().position(|l| l.name == name)
    }

    fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    fn push(&mut self, name: &str, value: &str) {
        if let Some(l) = self.v.get_mut(self.len) {
            l.name.clear();
            l.name.push_str(name);
            l.value.clear();
            l.value.push_str(value);
        } else {
            self.v.push(Label::new(name, value));
        }
        self.len += 1;
    }

    /// Removes the label at `i`, keeping the order of the others.
    fn remove(&mut self, i: usize) {
        self.v[i..self.len].rotate_left(1);
        self.len -= 1;
    }

    fn remove_name(&mut self, name: &str) {
        while let Some(i) = self.position(name) {
            self.remove(i);
        }
    }
}

/// Mutable label state for one line, reset between lines. Mirrors the precedence rules Loki
/// applies: parsed labels override structured metadata, which overrides stream labels.
#[derive(Debug)]
pub(crate) struct LabelsBuilder {
    base: Labels,
    /// Deleted names (values unused).
    del: Slots,
    add: [Slots; 2],
    err: String,
    err_details: String,
    /// Names set as parsed labels during this line: later parsers do not overwrite them
    /// (values unused).
    extracted: Slots,
    /// The parser hints of a range aggregation (`hints.rs`); `None`: every parser reads all.
    hints: Option<Arc<ParserHints>>,
}

impl LabelsBuilder {
    pub(crate) fn new(base: Labels) -> Self {
        LabelsBuilder {
            base,
            del: Slots::default(),
            add: [Slots::default(), Slots::default()],
            err: String::new(),
            err_details: String::new(),
            extracted: Slots::default(),
            hints: None,
        }
    }

    /// The builder with the parser hints `hints` (none when they leave nothing out).
    pub(crate) fn with_hints(mut self, hints: &Arc<ParserHints>) -> Self {
        self.hints = (!hints.is_none()).then(|| hints.clone());
        self
    }

    pub(crate) fn hints(&self) -> Option<&ParserHints> {
        self.hints.as_deref()
    }

    /// Clears the per-line state.
    pub(crate) fn reset(&mut self) {
        self.del.clear();
        self.add[0].clear();
        self.add[1].clear();
        self.err.clear();
        self.err_details.clear();
        self.extracted.clear();
    }

    pub(crate) fn base(&self) -> &Labels {
        &self.base
    }

    /// Adds structured metadata the way Loki does: names colliding with stream labels get the
    /// `_extracted` suffix, and `__error__` / `__error_details__` set the error state.
    pub(crate) fn add_structured_metadata(&mut self, metadata: &[Label]) {
        for l in metadata {
            if self.base_has(&l.name) {
                let name = format!("{}{DUPLICATE_SUFFIX}", l.name);
                self.add_one_metadata(&name, &l.value);
            } else {
                self.add_one_metadata(&l.name, &l.value);
            }
        }
    }

    fn add_one_metadata(&mut self, name: &str, value: &str) {
        if name == ERROR_LABEL {
            self.err.clear();
            self.err.push_str(value);
        } else if name == ERROR_DETAILS_LABEL {
            self.err_details.clear();
            self.err_details.push_str(value);
        } else {
            self.set(Category::StructuredMetadata, name, value);
        }
    }

    pub(crate) fn set_err(&mut self, err: &str) {
        self.err.clear();
        self.err.push_str(err);
    }

    pub(crate) fn set_err_details(&mut self, details: &str) {
        self.err_details.clear();
        self.err_details.push_str(details);
    }

    /// Sets `__error__` and, when given, `__error_details__`.
    pub(crate) fn set_error(&mut self, err: &str, details: Option<&str>) {
        self.set_err(err);
        if let Some(d) = details {
            self.set_err_details(d);
        }
    }

    pub(crate) fn err(&self) -> &str {
        &self.err
    }

    pub(crate) fn err_details(&self) -> &str {
        &self.err_details
    }

    pub(crate) fn has_err(&self) -> bool {
        !self.err.is_empty()
    }

    pub(crate) fn reset_err(&mut self) {
        self.err.clear();
    }

    pub(crate) fn reset_err_details(&mut self) {
        self.err_details.clear();
    }

    /// True when the stream labels have `name` (whatever later stages did).
    pub(crate) fn base_has(&self, name: &str) -> bool {
        self.base.get(name).is_some()
    }

    pub(crate) fn has_in(&self, name: &str, cat: Category) -> bool {
        self.add[cat as usize].contains(name)
    }

    /// True when an extracted name must get the `_extracted` suffix.
    pub(crate) fn collides(&self, name: &str) -> bool {
        self.base_has(name) || self.has_in(name, Category::StructuredMetadata)
    }

    /// True when a parser already set `name` on this line.
    pub(crate) fn extracted(&self, name: &str) -> bool {
        self.extracted.contains(name)
    }

    /// Returns the value of `name`: added labels first, then the stream labels unless deleted.
    /// A stream label with an empty value counts as missing.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        for cat in &self.add {
            if let Some(l) = cat.as_slice().iter().find(|l| l.name == name) {
                return Some(&l.value);
            }
        }
        if self.del.contains(name) {
            return None;
        }
        match self.base.get(name) {
            Some(v) if !v.is_empty() => Some(v),
            _ => None,
        }
    }

    /// Sets `name` in `cat`, honouring the precedence parsed > structured metadata > stream.
    pub(crate) fn set(&mut self, cat: Category, name: &str, value: &str) {
        match cat {
            Category::Parsed => {
                self.add[Category::StructuredMetadata as usize].remove_name(name);
            }
            Category::StructuredMetadata => {
                if self.has_in(name, Category::Parsed) {
                    return;
                }
            }
        }
        let list = &mut self.add[cat as usize];
        if let Some(i) = list.position(name) {
            let l = &mut list.v[i];
            l.value.clear();
            l.value.push_str(value);
            return;
        }
        list.push(name, value);
        if cat == Category::Parsed && !self.extracted.contains(name) {
            self.extracted.push(name, "");
        }
    }

    /// Deletes `name` from every category and hides the stream label.
    pub(crate) fn del(&mut self, name: &str) {
        for cat in &mut self.add {
            cat.remove_name(name);
        }
        self.del.push(name, "");
    }

    fn push_errors(&self, out: &mut Vec<Label>) {
        if !self.err.is_empty() {
            out.push(Label::new(ERROR_LABEL, self.err.as_str()));
        }
        if !self.err_details.is_empty() {
            out.push(Label::new(ERROR_DETAILS_LABEL, self.err_details.as_str()));
        }
    }

    /// True when the stream label `name` is visible (not deleted, not overridden).
    fn base_visible(&self, name: &str) -> bool {
        !(self.del.contains(name)
            || self.has_in(name, Category::StructuredMetadata)
            || self.has_in(name, Category::Parsed))
    }

    /// All current labels, unsorted, including the error labels.
    pub(crate) fn unsorted(&self) -> Vec<Label> {
        let mut out = Vec::with_capacity(
            self.base.len() + self.add[0].as_slice().len() + self.add[1].as_slice().len() + 2,
        );
        out.extend(self.base.iter().filter(|l| self.base_visible(&l.name)).cloned());
        out.extend(self.visible_metadata().cloned());
        out.extend(self.add[Category::Parsed as usize].as_slice().iter().cloned());
        self.push_errors(&mut out);
        out
    }

    fn visible_metadata(&self) -> impl Iterator<Item = &Label> {
        self.add[Category::StructuredMetadata as usize]
            .as_slice()
            .iter()
            .filter(|l| !self.has_in(&l.name, Category::Parsed))
    }

    /// All current labels, sorted (what templates see).
    pub(crate) fn all(&self) -> Labels {
        Labels::from_vec(self.unsorted())
    }

    /// The categorised result.
    pub(crate) fn result(&self) -> LabelsResult {
        // The stream labels are sorted already and keep that order when filtered.
        let stream: Vec<Label> =
            self.base.iter().filter(|l| self.base_visible(&l.name)).cloned().collect();
        let meta: Vec<Label> = self.visible_metadata().cloned().collect();
        let mut parsed: Vec<Label> =
            Vec::with_capacity(self.add[Category::Parsed as usize].as_slice().len() + 2);
        parsed.extend(self.add[Category::Parsed as usize].as_slice().iter().cloned());
        self.push_errors(&mut parsed);
        LabelsResult {
            stream: Labels::from_vec(stream),
            structured_metadata: Labels::from_vec(meta),
            parsed: Labels::from_vec(parsed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_categories() {
        let base = Labels::parse(r#"{job="web", host="a"}"#).unwrap();
        let mut b = LabelsBuilder::new(base);
        b.add_structured_metadata(&[Label::new("trace_id", "t1"), Label::new("host", "x")]);
        assert_eq!(b.get("host_extracted"), Some("x"));
        b.set(Category::Parsed, "trace_id", "p");
        b.set(Category::Parsed, "level", "info");
        b.set_error("JSONParserErr", Some("bad"));
        let r = b.result();
        assert_eq!(r.stream.to_string(), r#"{host="a", job="web"}"#);
        assert_eq!(r.structured_metadata.to_string(), r#"{host_extracted="x"}"#);
        assert_eq!(
            r.parsed.to_string(),
            r#"{__error__="JSONParserErr", __error_details__="bad", level="info", trace_id="p"}"#
        );
        b.del("job");
        assert_eq!(b.get("job"), None);
        assert!(b.extracted("level"));
        b.reset();
        assert!(!b.extracted("level"));
        assert_eq!(b.get("job"), Some("web"));
    }
}
