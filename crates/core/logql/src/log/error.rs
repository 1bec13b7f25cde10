//! Why a pipeline stage does not compile. Every variant prints Loki's text for it byte for
//! byte (clients see it after `parse error : stage '<stage>' : `, see [`super::PipelineError`]).

use super::template::TemplateError;

/// A stage that cannot be compiled: bad regex, pattern, template, IP range, extraction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    /// A regular expression Go's `regexp` refuses.
    #[error(transparent)]
    Regex(#[from] RegexError),
    /// A `pattern` parser or `|>` / `!>` filter pattern Loki refuses.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// An `ip("...")` pattern that is not an address, a CIDR range or an address range.
    #[error("ip: invalid pattern: {}", skald_model::labels::go_quote(.0))]
    IpPattern(String),
    /// `ip(...)` with an operator other than `|=` / `!=`.
    #[error("ip: invalid operation")]
    IpOperation,
    /// A label name that an extraction (`json a="..."`, `logfmt a="..."`, a named regexp
    /// capture) would produce but is not a valid label name.
    #[error("invalid extracted label name '{0}'")]
    InvalidExtractedLabelName(String),
    /// A `regexp` parser without a named capture.
    #[error("at least one named capture must be supplied")]
    NoNamedCapture,
    /// A `json a="<path>"` path Loki's `jsonexpr` grammar refuses.
    #[error("cannot parse expression [{expr}]: {reason}")]
    JsonPath {
        /// The path as written.
        expr: String,
        /// What is wrong with it.
        reason: JsonPathError,
    },
    /// A `logfmt a="<key>"` key that is empty.
    #[error("cannot parse expression [{0}]: syntax error")]
    LogfmtExpression(String),
    /// `logfmt` with an empty extraction list.
    #[error("no logfmt expression provided")]
    NoLogfmtExpression,
    /// A `line_format` template that does not parse.
    #[error("invalid line template: {0}")]
    LineTemplate(TemplateError),
    /// A `label_format` template that does not parse.
    #[error("invalid template for label '{label}': {reason}")]
    LabelTemplate {
        /// The label it would write.
        label: String,
        /// The template error.
        reason: TemplateError,
    },
    /// `label_format __error__=...`.
    #[error("{0} cannot be formatted")]
    LabelCannotBeFormatted(String),
    /// `label_format` writing one label twice.
    #[error("multiple label name '{0}' not allowed in a single format operation")]
    DuplicateFormattedLabel(String),
}

/// A regular expression error in Go's `regexp/syntax` wording:
/// ``error parsing regexp: <code>: `<expr>` ``.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error parsing regexp: {code}: `{expr}`")]
pub struct RegexError {
    /// Go's error code text (`missing closing ]`, `expression too large`, ...).
    pub code: String,
    /// The offending fragment (or the whole expression).
    pub expr: String,
}

/// A pattern Loki's `pattern` package refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// An empty pattern.
    #[error("syntax error: unexpected $end")]
    Empty,
    /// A parser pattern without a named capture.
    #[error("at least one capture is required")]
    NoCapture,
    /// Two captures in a row.
    #[error("found consecutive capture '<{0}><{1}>': invalid expression")]
    ConsecutiveCaptures(String, String),
    /// A capture name used twice.
    #[error("duplicate capture name ({0}): invalid expression")]
    DuplicateCapture(String),
    /// A named capture in a `|>` / `!>` filter pattern.
    #[error("named captures are not allowed: found '<{0}>'")]
    NamedCaptureInFilter(String),
}

/// A JSON path Loki's `jsonexpr` grammar refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPathError {
    /// A goyacc syntax error (`unexpected DOT`, `missing RSB`, `unexpected $end`, ...).
    #[error("syntax error: {0}")]
    Syntax(&'static str),
    /// `[1.5]`.
    #[error("cannot use float as array index")]
    FloatIndex,
    /// An index too large for an integer.
    #[error("non-integer value: {0}")]
    NonInteger(String),
    /// A character the lexer does not know.
    #[error("unexpected char {0}")]
    UnexpectedChar(char),
}
