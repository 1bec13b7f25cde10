//! Formatting stages: `line_format`, `label_format`, `decolorize`, `drop` and `keep`.

use std::sync::OnceLock;

use regex::bytes::Regex;
use skald_gocompat::utf8::lossy;
use skald_model::{LabelMatcher, Labels};

use super::error::StageError;
use super::labels::{Category, LabelsBuilder, ERROR_DETAILS_LABEL, ERROR_LABEL};
use super::template::Template;
use crate::syntax::ast::{LabelFormatOp, NamedMatcher};

/// The template error label value.
pub(crate) const TEMPLATE_FORMAT_ERR: &str = "TemplateFormatErr";

/// `| line_format "..."`.
#[derive(Debug)]
pub(crate) struct LineFormatter {
    template: Template,
    /// Set when the template is exactly `{{.name}}`: the value is copied directly.
    simple_key: Option<String>,
}

fn simple_key(src: &str) -> Option<String> {
    let inner = src.strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\n' || c == '\r');
    let name = inner.strip_prefix('.')?;
    let valid = name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    // no trim markers, comments or pipelines: just a field
    if valid && !inner.starts_with('-') && !inner.ends_with('-') {
        Some(name.to_string())
    } else {
        None
    }
}

impl LineFormatter {
    pub(crate) fn new(src: &str) -> Result<LineFormatter, StageError> {
        let template = Template::parse(src).map_err(StageError::LineTemplate)?;
        Ok(LineFormatter { template, simple_key: simple_key(src) })
    }

    /// Returns the new line, or `None` to keep the current one (after a template error).
    pub(crate) fn format(&self, ts: i64, line: &[u8], lbs: &mut LabelsBuilder) -> Option<Vec<u8>> {
        if let Some(k) = &self.simple_key {
            return Some(lbs.get(k).unwrap_or("").as_bytes().to_vec());
        }
        let labels = lbs.all();
        match self.template.render_bytes(&labels, line, ts) {
            Ok(s) => Some(s),
            Err(e) => {
                lbs.set_error(TEMPLATE_FORMAT_ERR, Some(&e.to_string()));
                None
            }
        }
    }
}

#[derive(Debug)]
enum LabelFmt {
    Rename { dst: String, src: String },
    Template { dst: String, template: Template },
}

/// `| label_format a=b, c="{{...}}"`.
#[derive(Debug)]
pub(crate) struct LabelFormatter {
    ops: Vec<LabelFmt>,
}

impl LabelFormatter {
    pub(crate) fn new(ops: &[LabelFormatOp]) -> Result<LabelFormatter, StageError> {
        let mut seen: Vec<&str> = Vec::new();
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let dst = match op {
                LabelFormatOp::Rename { dst, .. } | LabelFormatOp::Template { dst, .. } => dst,
            };
            if dst == ERROR_LABEL {
                return Err(StageError::LabelCannotBeFormatted(dst.clone()));
            }
            if seen.contains(&dst.as_str()) {
                return Err(StageError::DuplicateFormattedLabel(dst.clone()));
            }
            seen.push(dst);
            out.push(match op {
                LabelFormatOp::Rename { dst, src } => {
                    LabelFmt::Rename { dst: dst.clone(), src: src.clone() }
                }
                LabelFormatOp::Template { dst, template } => LabelFmt::Template {
                    dst: dst.clone(),
                    template: Template::parse_named("label", template).map_err(|reason| {
                        StageError::LabelTemplate { label: dst.clone(), reason }
                    })?,
                },
            });
        }
        Ok(LabelFormatter { ops: out })
    }

    pub(crate) fn process(&self, ts: i64, line: &[u8], lbs: &mut LabelsBuilder) {
        // templates of one stage all see the labels as they were when the first one ran
        let mut snapshot: Option<Labels> = None;
        for op in &self.ops {
            match op {
                LabelFmt::Rename { dst, src } => {
                    if let Some(v) = lbs.get(src).map(str::to_string) {
                        lbs.set(Category::Parsed, dst, &v);
                        lbs.del(src);
                    }
                }
                LabelFmt::Template { dst, template } => {
                    if snapshot.as_ref().is_none_or(Labels::is_empty) {
                        snapshot = Some(lbs.all());
                    }
                    let labels = snapshot.as_ref().map_or_else(Labels::default, Clone::clone);
                    // label values are text: bytes that are not UTF-8 show as U+FFFD
                    match template.render_bytes(&labels, line, ts) {
                        Ok(v) => lbs.set(Category::Parsed, dst, &lossy(&v)),
                        Err(e) => lbs.set_error(TEMPLATE_FORMAT_ERR, Some(&e.to_string())),
                    }
                }
            }
        }
    }
}

/// Removes ANSI escape sequences (the pattern Loki uses, from acarl005/stripansi).
pub(crate) fn decolorize(line: &[u8]) -> Option<Vec<u8>> {
    static ANSI: OnceLock<Option<Regex>> = OnceLock::new();
    let re = ANSI
        .get_or_init(|| {
            Regex::new(
                "[\u{1b}\u{9b}][\\[\\]()#;?]*(?:(?:(?:[a-zA-Z0-9]*(?:;[a-zA-Z0-9]*)*)?\u{7})|(?:(?:[0-9]{1,4}(?:;[0-9]{0,4})*)?[0-9A-PRZcf-ntqry=><~]))",
            )
            .ok()
        })
        .as_ref()?;
    match re.replace_all(line, &b""[..]) {
        std::borrow::Cow::Borrowed(_) => None,
        std::borrow::Cow::Owned(s) => Some(s),
    }
}

/// `| drop a, b="v"`.
pub(crate) fn drop_labels(matchers: &[NamedMatcher], lbs: &mut LabelsBuilder) {
    for m in matchers {
        match m {
            NamedMatcher::Name(name) => {
                if name == ERROR_LABEL {
                    lbs.reset_err();
                } else if name == ERROR_DETAILS_LABEL {
                    lbs.reset_err_details();
                } else if lbs.get(name).is_some() {
                    lbs.del(name);
                }
            }
            NamedMatcher::Matcher(m) => drop_matching(m, lbs),
        }
    }
}

fn drop_matching(m: &LabelMatcher, lbs: &mut LabelsBuilder) {
    if m.name == ERROR_LABEL {
        if m.matches(lbs.err()) {
            lbs.reset_err();
        }
        return;
    }
    if m.name == ERROR_DETAILS_LABEL {
        if m.matches(lbs.err_details()) {
            lbs.reset_err_details();
        }
        return;
    }
    let v = lbs.get(&m.name).unwrap_or("");
    if m.matches(v) {
        lbs.del(&m.name);
    }
}

/// `| keep a, b="v"`: deletes every other label; the error labels always stay.
pub(crate) fn keep_labels(matchers: &[NamedMatcher], lbs: &mut LabelsBuilder) {
    if matchers.is_empty() {
        return;
    }
    for l in lbs.unsorted() {
        if l.name == ERROR_LABEL || l.name == ERROR_DETAILS_LABEL || l.name == "__preserve_error__"
        {
            continue;
        }
        let keep = matchers.iter().any(|m| match m {
            NamedMatcher::Name(n) => *n == l.name,
            NamedMatcher::Matcher(m) => m.name == l.name && m.matches(&l.value),
        });
        if !keep {
            lbs.del(&l.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decolorize_lines() {
        assert_eq!(
            decolorize(b"level=warn msg=\"\x1b[1;33mretrying\x1b[0m\" attempt=2").as_deref(),
            Some(&b"level=warn msg=\"retrying\" attempt=2"[..])
        );
        assert_eq!(decolorize(b"plain"), None);
    }

    #[test]
    fn simple_keys() {
        assert_eq!(simple_key("{{.message}}").as_deref(), Some("message"));
        assert_eq!(simple_key("{{ .message }}").as_deref(), Some("message"));
        assert_eq!(simple_key("{{.a}} {{.b}}"), None);
        assert_eq!(simple_key("{{.a | lower}}"), None);
        assert_eq!(simple_key("{{- .a}}"), None);
    }
}
