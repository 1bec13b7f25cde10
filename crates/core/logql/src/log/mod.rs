//! The line pipeline: line filters, parsers, label filters and formatters, run per log entry
//! with Loki's semantics, and the sample extractor used by range aggregations.
//!
//! A [`Pipeline`] is compiled once per query (regexes, templates, patterns) and shared by all
//! streams; [`Pipeline::for_stream`] gives the per-stream state that processes entries.

mod conv;
mod error;
mod filter;
mod format;
mod hints;
mod ip;
mod json;
mod label_filter;
mod labels;
mod logfmt;
mod needles;
mod pattern;
mod scan;
pub mod template;

use std::borrow::Cow;
use std::sync::Arc;

use regex::Regex;
use skald_gocompat::utf8::lossy;
use skald_model::labels::go_quote;
use skald_model::{Label, Labels, Line};

pub use self::error::{JsonPathError, PatternError, RegexError, StageError};
use self::filter::{compile_go_regex, plain_literal, LineFilterC};
use self::format::{LabelFormatter, LineFormatter};
use self::hints::ParserHints;
use self::json::{sanitize_label_key, JsonExpressions};
use self::label_filter::LabelFilterC;
use self::labels::{Category, LabelsBuilder, DUPLICATE_SUFFIX};
use self::logfmt::LogfmtExpressions;
use self::pattern::Pattern;
use crate::syntax::ast::{
    self, LabelFormatOp, LineFilter, LineFilterOp, LineFilterValue, NamedMatcher, ParserStage,
    RangeOp, Stage, UnwrapConversion,
};

pub use self::labels::{LabelsResult, ERROR_DETAILS_LABEL, ERROR_LABEL};
pub use self::needles::{needles, NeedleClause, NeedleLiteral, Needles};
pub use self::scan::LiteralScan;

/// The error label value set when `unwrap` cannot convert a value.
pub const SAMPLE_EXTRACTION_ERR: &str = "SampleExtractionErr";

/// Why a pipeline could not be compiled. Users get it as a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    /// A stage could not be compiled (bad regex, template, pattern, IP range...). Displays
    /// like Loki: `parse error : stage '|~ "(x"' : error parsing regexp: ...`.
    #[error("parse error : stage '{stage}' : {reason}")]
    Stage {
        /// The stage as written (Loki's printing).
        stage: String,
        /// What is wrong with it.
        reason: StageError,
    },
}

/// A compiled stage.
#[derive(Debug)]
enum CStage {
    /// Consecutive line filters, all of which must pass.
    Filters(Vec<LineFilterC>),
    Json,
    JsonExpr(JsonExpressions),
    Logfmt {
        strict: bool,
        keep_empty: bool,
    },
    LogfmtExpr(LogfmtExpressions),
    Regexp {
        regex: Regex,
        names: Vec<(usize, String)>,
    },
    Pattern(Pattern),
    Unpack,
    LabelFilter(LabelFilterC),
    LineFormat(LineFormatter),
    LabelFormat(LabelFormatter),
    Decolorize,
    Drop(Vec<NamedMatcher>),
    Keep(Vec<NamedMatcher>),
}

impl CStage {
    /// The parsers that leave a line alone when the parser hints say so (`hints.rs`).
    fn honours_hints(&self) -> bool {
        matches!(
            self,
            CStage::Json
                | CStage::JsonExpr(_)
                | CStage::Logfmt { .. }
                | CStage::LogfmtExpr(_)
                | CStage::Pattern(_)
                | CStage::Unpack
        )
    }
}

/// The stages in Loki's execution order: line filters move in front of the stages that do
/// not change the line (all but `line_format`, `unpack` and label filters act as barriers).
fn reorder(stages: &[Stage]) -> Vec<Vec<&Stage>> {
    fn flush<'s>(
        out: &mut Vec<Vec<&'s Stage>>,
        filters: &mut Vec<&'s Stage>,
        others: &mut Vec<&'s Stage>,
    ) {
        if !filters.is_empty() {
            out.push(std::mem::take(filters));
        }
        for s in others.drain(..) {
            out.push(vec![s]);
        }
    }
    let mut out: Vec<Vec<&Stage>> = Vec::new();
    let mut filters: Vec<&Stage> = Vec::new();
    let mut others: Vec<&Stage> = Vec::new();
    for s in stages {
        match s {
            Stage::LabelFilter(_) => {
                flush(&mut out, &mut filters, &mut others);
                out.push(vec![s]);
            }
            Stage::LineFilter(_) => filters.push(s),
            Stage::LineFormat(_) => {
                others.push(s);
                flush(&mut out, &mut filters, &mut others);
            }
            Stage::Parser(ParserStage::Unpack) => {
                others.push(s);
                flush(&mut out, &mut filters, &mut others);
            }
            _ => others.push(s),
        }
    }
    flush(&mut out, &mut filters, &mut others);
    out
}

fn op_str(op: LineFilterOp) -> &'static str {
    match op {
        LineFilterOp::Contains => "|=",
        LineFilterOp::NotContains => "!=",
        LineFilterOp::Regex => "|~",
        LineFilterOp::NotRegex => "!~",
        LineFilterOp::Pattern => "|>",
        LineFilterOp::NotPattern => "!>",
    }
}

fn filter_value_str(v: &LineFilterValue) -> String {
    match v {
        LineFilterValue::Literal(s) => go_quote(s),
        LineFilterValue::Ip(s) => format!("ip({})", go_quote(s)),
    }
}

fn line_filter_str(f: &LineFilter) -> String {
    let mut s = format!("{} {}", op_str(f.op), filter_value_str(&f.value));
    for o in &f.or {
        s.push_str(" or ");
        s.push_str(&filter_value_str(o));
    }
    s
}

/// Loki's printing of a stage, for error messages.
fn stage_str(s: &Stage) -> String {
    match s {
        Stage::LineFilter(f) => line_filter_str(f),
        Stage::Parser(ParserStage::Json(ex)) if ex.is_empty() => "| json".to_string(),
        Stage::Parser(ParserStage::Json(ex)) => format!("| json {}", extractions_str(ex)),
        Stage::Parser(ParserStage::Logfmt { strict, keep_empty, extractions }) => {
            let mut s = "| logfmt".to_string();
            if *strict {
                s.push_str(" --strict");
            }
            if *keep_empty {
                s.push_str(" --keep-empty");
            }
            if !extractions.is_empty() {
                s.push(' ');
                s.push_str(&extractions_str(extractions));
            }
            s
        }
        Stage::Parser(ParserStage::Regexp(r)) => format!("| regexp {}", go_quote(r)),
        Stage::Parser(ParserStage::Pattern(p)) => format!("| pattern {}", go_quote(p)),
        Stage::Parser(ParserStage::Unpack) => "| unpack".to_string(),
        Stage::LabelFilter(ast::LabelFilterExpr::Ip { name, equal, pattern }) => {
            format!("| {name}{}ip({})", if *equal { "=" } else { "!=" }, go_quote(pattern))
        }
        Stage::LabelFilter(_) => "| label filter".to_string(),
        Stage::LineFormat(t) => format!("| line_format {}", go_quote(t)),
        Stage::LabelFormat(ops) => {
            let parts: Vec<String> = ops
                .iter()
                .map(|o| match o {
                    LabelFormatOp::Rename { dst, src } => format!("{dst}={src}"),
                    LabelFormatOp::Template { dst, template } => {
                        format!("{dst}={}", go_quote(template))
                    }
                })
                .collect();
            format!("| label_format {}", parts.join(","))
        }
        Stage::Decolorize => "| decolorize".to_string(),
        Stage::Drop(_) => "| drop".to_string(),
        Stage::Keep(_) => "| keep".to_string(),
    }
}

fn extractions_str(ex: &[ast::LabelExtraction]) -> String {
    ex.iter()
        .map(|e| format!("{}={}", e.name, go_quote(e.expr.as_deref().unwrap_or(&e.name))))
        .collect::<Vec<_>>()
        .join(",")
}

fn extraction_pairs(ex: &[ast::LabelExtraction]) -> Vec<(String, String)> {
    ex.iter().map(|e| (e.name.clone(), e.expr.clone().unwrap_or_else(|| e.name.clone()))).collect()
}

fn compile_regexp_parser(src: &str) -> Result<CStage, StageError> {
    let regex = compile_go_regex(src, false)?;
    let mut names = Vec::new();
    for (i, n) in regex.capture_names().enumerate() {
        if let Some(n) = n {
            if !skald_model::labels::is_valid_label_name(n) {
                return Err(StageError::InvalidExtractedLabelName(n.to_string()));
            }
            names.push((i, n.to_string()));
        }
    }
    if names.is_empty() {
        return Err(StageError::NoNamedCapture);
    }
    Ok(CStage::Regexp { regex, names })
}

fn compile_one(s: &Stage) -> Result<CStage, StageError> {
    Ok(match s {
        Stage::LineFilter(f) => CStage::Filters(vec![LineFilterC::new(f)?]),
        Stage::Parser(p) => match p {
            ParserStage::Json(ex) if ex.is_empty() => CStage::Json,
            ParserStage::Json(ex) => CStage::JsonExpr(JsonExpressions::new(&extraction_pairs(ex))?),
            ParserStage::Logfmt { strict, keep_empty, extractions } if extractions.is_empty() => {
                CStage::Logfmt { strict: *strict, keep_empty: *keep_empty }
            }
            ParserStage::Logfmt { strict, extractions, .. } => {
                CStage::LogfmtExpr(LogfmtExpressions::new(&extraction_pairs(extractions), *strict)?)
            }
            ParserStage::Regexp(r) => compile_regexp_parser(r)?,
            ParserStage::Pattern(p) => CStage::Pattern(Pattern::for_parser(p)?),
            ParserStage::Unpack => CStage::Unpack,
        },
        Stage::LabelFilter(f) => CStage::LabelFilter(LabelFilterC::new(f)?),
        Stage::LineFormat(t) => CStage::LineFormat(LineFormatter::new(t)?),
        Stage::LabelFormat(ops) => CStage::LabelFormat(LabelFormatter::new(ops)?),
        Stage::Decolorize => CStage::Decolorize,
        Stage::Drop(m) => CStage::Drop(m.clone()),
        Stage::Keep(m) => CStage::Keep(m.clone()),
    })
}

fn compile(stages: &[Stage]) -> Result<Vec<CStage>, PipelineError> {
    let mut out = Vec::with_capacity(stages.len());
    for group in reorder(stages) {
        if group.len() > 1 || matches!(group.first(), Some(Stage::LineFilter(_))) {
            let mut filters = Vec::with_capacity(group.len());
            for s in &group {
                if let Stage::LineFilter(f) = s {
                    let c = LineFilterC::new(f).map_err(|reason| PipelineError::Stage {
                        stage: group.iter().map(|s| stage_str(s)).collect::<Vec<_>>().join(" "),
                        reason,
                    })?;
                    filters.push(c);
                }
            }
            out.push(CStage::Filters(filters));
        } else if let Some(s) = group.first() {
            let c = compile_one(s)
                .map_err(|reason| PipelineError::Stage { stage: stage_str(s), reason })?;
            out.push(c);
        }
    }
    Ok(out)
}

/// Runs the stages over one line's bytes. `None` means the line was filtered out.
///
/// Stages read the bytes where Loki does (line filters' literals, `json`, `logfmt` with its
/// error positions, `unpack`, `decolorize`, the byte count); the stages that need text
/// (regular expressions, patterns, IP filters, templates) read Go's view of the line, where
/// each byte of an invalid sequence is one U+FFFD ([`skald_gocompat::utf8::lossy`], borrowed
/// when the line is UTF-8).
fn run<'l>(
    stages: &[CStage],
    ts: i64,
    line: &'l [u8],
    lbs: &mut LabelsBuilder,
) -> Option<Cow<'l, [u8]>> {
    let mut line: Cow<'l, [u8]> = Cow::Borrowed(line);
    for s in stages {
        if s.honours_hints() && lbs.parser_skips() {
            continue;
        }
        match s {
            CStage::Filters(fs) => {
                if !fs.iter().all(|f| f.matches(&line)) {
                    return None;
                }
            }
            CStage::Json => json::parse_json(&line, lbs),
            CStage::JsonExpr(ex) => ex.process(&line, lbs),
            CStage::Logfmt { strict, keep_empty } => {
                logfmt::parse_logfmt(&line, *strict, *keep_empty, lbs)
            }
            CStage::LogfmtExpr(ex) => ex.process(&line, lbs),
            CStage::Regexp { regex, names } => {
                let text = lossy(&line);
                if let Some(caps) = regex.captures(&text) {
                    for (i, name) in names {
                        let mut key = sanitize_label_key(name);
                        if key.is_empty() {
                            continue;
                        }
                        if lbs.collides(&key) {
                            key.to_mut().push_str(DUPLICATE_SUFFIX);
                        }
                        if lbs.extracted(&key) || !lbs.should_extract(&key) {
                            continue;
                        }
                        let v = caps.get(*i).map_or("", |m| m.as_str());
                        lbs.set(Category::Parsed, &key, v);
                    }
                }
            }
            CStage::Pattern(p) => {
                let text = lossy(&line);
                let matches = p.matches(&text);
                for (name, v) in p.names().iter().zip(matches) {
                    let mut key = name.clone();
                    if lbs.collides(&key) {
                        key.push_str(DUPLICATE_SUFFIX);
                    }
                    if lbs.extracted(&key) || !lbs.should_extract(&key) {
                        continue;
                    }
                    lbs.set(Category::Parsed, &key, v);
                }
            }
            CStage::Unpack => {
                if let Some(entry) = json::unpack(&line, lbs) {
                    line = Cow::Owned(entry);
                }
            }
            CStage::LabelFilter(f) => {
                if !f.process(lbs) {
                    return None;
                }
            }
            CStage::LineFormat(f) => {
                if let Some(new) = f.format(ts, &line, lbs) {
                    line = Cow::Owned(new);
                }
            }
            CStage::LabelFormat(f) => f.process(ts, &line, lbs),
            CStage::Decolorize => {
                if let Some(new) = format::decolorize(&line) {
                    line = Cow::Owned(new);
                }
            }
            CStage::Drop(m) => format::drop_labels(m, lbs),
            CStage::Keep(m) => format::keep_labels(m, lbs),
        }
    }
    Some(line)
}

/// A compiled line pipeline. Compile once per query; it is `Send + Sync` and shared by the
/// streams of the query.
#[derive(Debug)]
pub struct Pipeline {
    stages: Vec<CStage>,
}

/// One processed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedEntry {
    /// The line after the pipeline (changed by `line_format`, `unpack`, `decolorize`).
    pub line: Line,
    /// The entry's labels, by origin.
    pub labels: LabelsResult,
}

/// One processed entry borrowing the pipeline's label state (see
/// [`StreamPipeline::process_ref`]).
#[derive(Debug)]
pub struct ProcessedRef<'p, 'l> {
    /// The line's bytes after the pipeline; borrowed when no stage changed it.
    pub line: Cow<'l, [u8]>,
    lbs: &'p LabelsBuilder,
}

impl ProcessedRef<'_, '_> {
    /// The entry's labels, by origin.
    pub fn labels(&self) -> LabelsResult {
        self.lbs.result()
    }

    /// All the entry's labels merged (stream, structured metadata, parsed, errors).
    pub fn all_labels(&self) -> Labels {
        self.lbs.all()
    }

    /// Copies the result out.
    pub fn into_entry(self) -> ProcessedEntry {
        ProcessedEntry { labels: self.lbs.result(), line: Line::from(self.line.into_owned()) }
    }
}

impl Pipeline {
    /// Compiles stages (regexes, templates, patterns). A bad regex, template, pattern or IP
    /// range is an error (a 400 for users).
    pub fn new(stages: &[Stage]) -> Result<Pipeline, PipelineError> {
        Ok(Pipeline { stages: compile(stages)? })
    }

    /// True when there are no stages (fast path: entries pass unchanged).
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Per-stream state (caches the stream labels).
    pub fn for_stream(&self, labels: &Labels) -> StreamPipeline<'_> {
        StreamPipeline { stages: &self.stages, lbs: LabelsBuilder::new(labels.clone()) }
    }
}

/// A pipeline bound to one stream.
#[derive(Debug)]
pub struct StreamPipeline<'a> {
    stages: &'a [CStage],
    lbs: LabelsBuilder,
}

impl StreamPipeline<'_> {
    /// Runs one entry. `None` = filtered out.
    pub fn process(
        &mut self,
        ts: i64,
        line: &[u8],
        structured_metadata: &[Label],
    ) -> Option<ProcessedEntry> {
        self.process_ref(ts, line, structured_metadata).map(ProcessedRef::into_entry)
    }

    /// Runs one entry without copying its result: the labels are read from the pipeline's
    /// state, valid until the next call. `None` = filtered out.
    pub fn process_ref<'l>(
        &mut self,
        ts: i64,
        line: &'l [u8],
        structured_metadata: &[Label],
    ) -> Option<ProcessedRef<'_, 'l>> {
        self.lbs.reset();
        self.lbs.add_structured_metadata(structured_metadata);
        let line = run(self.stages, ts, line, &mut self.lbs)?;
        Some(ProcessedRef { line, lbs: &self.lbs })
    }

    /// The stream labels this pipeline was created for.
    pub fn stream_labels(&self) -> &Labels {
        self.lbs.base()
    }
}

#[derive(Debug)]
struct UnwrapC {
    label: String,
    conversion: UnwrapConversion,
    post: Vec<LabelFilterC>,
}

/// Extracts one sample per entry for a range aggregation.
#[derive(Debug)]
pub struct SampleExtractor {
    stages: Vec<CStage>,
    unwrap: Option<UnwrapC>,
    bytes: bool,
    hints: Arc<ParserHints>,
}

impl SampleExtractor {
    /// For a range aggregation: the pipeline stages of `range.selector`, then `unwrap` (with its
    /// conversion and post-unwrap filters) if present. Without `unwrap`, `op` decides the
    /// value: the line's byte length for `bytes_over_time`/`bytes_rate`, 1.0 otherwise.
    pub fn new(range: &ast::LogRangeExpr, op: RangeOp) -> Result<SampleExtractor, PipelineError> {
        SampleExtractor::with_grouping(range, op, None)
    }

    /// [`SampleExtractor::new`] for `op(range)` evaluated with the effective grouping
    /// `grouping` (its own, or the one a `sum` pushes down): its parsers follow Loki's parser
    /// hints (see `log/hints.rs`), so they may leave out labels the grouping drops.
    pub fn with_grouping(
        range: &ast::LogRangeExpr,
        op: RangeOp,
        grouping: Option<&ast::Grouping>,
    ) -> Result<SampleExtractor, PipelineError> {
        let stages = compile(&range.selector.stages)?;
        let unwrap = match &range.unwrap {
            None => None,
            Some(u) => {
                let mut post = Vec::with_capacity(u.post_filters.len());
                for f in &u.post_filters {
                    post.push(LabelFilterC::new(f).map_err(|reason| PipelineError::Stage {
                        stage: stage_str(&Stage::LabelFilter(f.clone())),
                        reason,
                    })?);
                }
                Some(UnwrapC { label: u.label.clone(), conversion: u.conversion, post })
            }
        };
        Ok(SampleExtractor {
            stages,
            unwrap,
            bytes: matches!(op, RangeOp::BytesOverTime | RangeOp::BytesRate),
            hints: Arc::new(ParserHints::new(op, range, grouping)),
        })
    }

    /// Per-stream state.
    pub fn for_stream(&self, labels: &Labels) -> StreamSampleExtractor<'_> {
        let lbs = LabelsBuilder::new(labels.clone()).with_hints(&self.hints);
        StreamSampleExtractor { ex: self, lbs }
    }

    /// True when an entry's series labels depend only on its stream and structured metadata:
    /// no unwrap, and every stage is a line filter. The engine then computes the labels once
    /// per distinct structured metadata and uses [`SampleExtractor::line_value`] per entry.
    pub fn labels_depend_on_metadata_only(&self) -> bool {
        self.unwrap.is_none() && self.stages.iter().all(|s| matches!(s, CStage::Filters(_)))
    }

    /// The sample value of `line` when it passes the line filters. Only meaningful when
    /// [`SampleExtractor::labels_depend_on_metadata_only`] holds.
    /// The value counts the line's bytes as stored (Loki counts a Go string's bytes, valid
    /// UTF-8 or not).
    pub fn line_value(&self, line: &[u8]) -> Option<f64> {
        for s in &self.stages {
            if let CStage::Filters(fs) = s {
                if !fs.iter().all(|f| f.matches(line)) {
                    return None;
                }
            }
        }
        Some(if self.bytes { line.len() as f64 } else { 1.0 })
    }
}

/// A sample extractor bound to one stream.
#[derive(Debug)]
pub struct StreamSampleExtractor<'a> {
    ex: &'a SampleExtractor,
    lbs: LabelsBuilder,
}

impl StreamSampleExtractor<'_> {
    /// Returns the sample value and the series labels ([`LabelsResult::all`] of the entry),
    /// or `None` when the entry is filtered out or has no value to unwrap. With `unwrap`, the
    /// unwrapped label is removed from the series labels, unless a stage set `__error__`
    /// (then all labels are kept, as Loki does; a failed conversion sets
    /// `__error__="SampleExtractionErr"` and `__error_details__`).
    pub fn process(
        &mut self,
        ts: i64,
        line: &[u8],
        structured_metadata: &[Label],
    ) -> Option<(f64, Labels)> {
        self.lbs.reset();
        self.lbs.add_structured_metadata(structured_metadata);
        let line = run(&self.ex.stages, ts, line, &mut self.lbs)?;
        let Some(u) = &self.ex.unwrap else {
            let v = if self.ex.bytes { line.len() as f64 } else { 1.0 };
            return Some((v, self.lbs.all()));
        };
        let raw = match self.lbs.get(&u.label) {
            Some(v) if !v.is_empty() => v.to_string(),
            _ => return None,
        };
        let converted = match u.conversion {
            UnwrapConversion::None => conv::parse_float(&raw).map_err(|e| e.to_string()),
            UnwrapConversion::Duration | UnwrapConversion::DurationSeconds => {
                conv::parse_duration(&raw).map(|ns| ns as f64 / 1e9).map_err(|e| e.to_string())
            }
            UnwrapConversion::Bytes => {
                conv::parse_bytes(&raw).map(|b| b as f64).map_err(|e| e.to_string())
            }
        };
        let v = match converted {
            Ok(v) => v,
            Err(e) => {
                self.lbs.set_error(SAMPLE_EXTRACTION_ERR, Some(&e));
                0.0
            }
        };
        let mut pass = true;
        for f in &u.post {
            pass &= f.process(&mut self.lbs);
        }
        if !pass {
            return None;
        }
        let mut labels = self.lbs.all();
        if !self.lbs.has_err() {
            labels.remove(&u.label);
        }
        Some((v, labels))
    }
}

/// Literal substrings every matching line must contain (from the `|=` filters without `or`
/// that apply to the stored line, i.e. before any `line_format`, `unpack` or `decolorize`),
/// for block-level prefiltering by the storage layer. [`needles()`] gives the general form
/// (regex factors, `or` alternatives, case-insensitive literals, patterns); every literal
/// here is a one-literal clause there.
pub fn required_literals(stages: &[Stage]) -> Vec<String> {
    let mut out = Vec::new();
    for s in stages {
        match s {
            Stage::LineFilter(f) if f.or.is_empty() => {
                if let LineFilterValue::Literal(v) = &f.value {
                    let lit = match f.op {
                        LineFilterOp::Contains => Some(v.as_str()),
                        LineFilterOp::Regex => plain_literal(v),
                        _ => None,
                    };
                    if let Some(l) = lit.filter(|l| !l.is_empty()) {
                        if !out.iter().any(|o: &String| o == l) {
                            out.push(l.to_string());
                        }
                    }
                }
            }
            Stage::LineFormat(_) | Stage::Decolorize | Stage::Parser(ParserStage::Unpack) => break,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod bytes_tests;
#[cfg(test)]
mod tests;
