//! The LogQL abstract syntax tree. This file is the contract between the parser
//! (`syntax::parser`), the printer (`syntax::printer`, `Display`), the line pipeline (`log`) and
//! the evaluator (`engine`). Change it only in agreement with all of them.

use skald_model::LabelMatcher;

/// A whole query.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A log query: selector plus pipeline. Evaluates to streams.
    Log(LogSelectorExpr),
    /// A metric query. Evaluates to a vector/matrix (or a scalar for pure literals).
    Sample(SampleExpr),
}

/// `{a="b"} |= "x" | json ...`
#[derive(Debug, Clone, PartialEq)]
pub struct LogSelectorExpr {
    /// Stream matchers inside the braces.
    pub matchers: Vec<LabelMatcher>,
    /// Pipeline stages in order.
    pub stages: Vec<Stage>,
}

/// One pipeline stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// One line filter `|= "a"`, possibly with `or` alternatives: `|= "a" or "b"`.
    LineFilter(LineFilter),
    /// `| json`, `| logfmt`, `| regexp "..."`, `| pattern "..."`, `| unpack`.
    Parser(ParserStage),
    /// `| <label filter expression>`.
    LabelFilter(LabelFilterExpr),
    /// `| line_format "template"`.
    LineFormat(String),
    /// `| label_format a=b, c="{{template}}"`.
    LabelFormat(Vec<LabelFormatOp>),
    /// `| decolorize`.
    Decolorize,
    /// `| drop a, b="v", c=~"re"`.
    Drop(Vec<NamedMatcher>),
    /// `| keep a, b="v"`.
    Keep(Vec<NamedMatcher>),
}

/// Line filter operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFilterOp {
    /// `|=`
    Contains,
    /// `!=`
    NotContains,
    /// `|~`
    Regex,
    /// `!~`
    NotRegex,
    /// `|>`
    Pattern,
    /// `!>`
    NotPattern,
}

/// The right-hand side of a line filter.
#[derive(Debug, Clone, PartialEq)]
pub enum LineFilterValue {
    /// A plain string literal.
    Literal(String),
    /// `ip("...")`.
    Ip(String),
}

/// `|= "a" or "b"`: the first value plus any `or` alternatives (all with the same operator).
#[derive(Debug, Clone, PartialEq)]
pub struct LineFilter {
    /// Operator.
    pub op: LineFilterOp,
    /// The first value.
    pub value: LineFilterValue,
    /// Values after `or`.
    pub or: Vec<LineFilterValue>,
}

/// Parser stages.
#[derive(Debug, Clone, PartialEq)]
pub enum ParserStage {
    /// `| json` (empty) or `| json a="path", b` (extraction expressions).
    Json(Vec<LabelExtraction>),
    /// `| logfmt [--strict] [--keep-empty] [a="key", b]`.
    Logfmt {
        /// `--strict`
        strict: bool,
        /// `--keep-empty`
        keep_empty: bool,
        /// Extraction expressions (empty = extract everything).
        extractions: Vec<LabelExtraction>,
    },
    /// `| regexp "(?P<name>...)"`.
    Regexp(String),
    /// `| pattern "<a> <_>"`.
    Pattern(String),
    /// `| unpack`.
    Unpack,
}

/// `name="expression"` or a bare `name` (expression = name) in `json`/`logfmt` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelExtraction {
    /// Target label name.
    pub name: String,
    /// The JSON path / logfmt key; `None` for the bare form.
    pub expr: Option<String>,
}

/// A label filter expression tree.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelFilterExpr {
    /// `a and b` (also written `a, b` or `a | b` by users; the parser produces `And`).
    And(Box<LabelFilterExpr>, Box<LabelFilterExpr>),
    /// `a or b`.
    Or(Box<LabelFilterExpr>, Box<LabelFilterExpr>),
    /// `( ... )`: kept so that printing round-trips.
    Paren(Box<LabelFilterExpr>),
    /// `name = "v"`, `name =~ "re"` etc.
    String(LabelMatcher),
    /// `name > 1.5`, `name == 2`, ...
    Number {
        /// Label name.
        name: String,
        /// Comparison.
        op: CmpOp,
        /// Literal value.
        value: f64,
    },
    /// `name > 250ms` (value in seconds, as Loki compares durations).
    Duration {
        /// Label name.
        name: String,
        /// Comparison.
        op: CmpOp,
        /// Literal value in nanoseconds.
        value_ns: i64,
        /// The literal as written, for printing (e.g. `250ms`).
        literal: String,
    },
    /// `name > 20MB` (value in bytes).
    Bytes {
        /// Label name.
        name: String,
        /// Comparison.
        op: CmpOp,
        /// Literal value in bytes.
        value: u64,
        /// The literal as written, for printing (e.g. `20MB`).
        literal: String,
    },
    /// `name = ip("...")` or `name != ip("...")`.
    Ip {
        /// Label name.
        name: String,
        /// true for `=`, false for `!=`.
        equal: bool,
        /// The CIDR / range / address pattern.
        pattern: String,
    },
}

/// Comparison operators used by numeric label filters and binary operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==` (label filters also accept `=`)
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

/// A matcher in `drop`/`keep`: a bare name or a `name op "value"` matcher.
#[derive(Debug, Clone, PartialEq)]
pub enum NamedMatcher {
    /// A bare label name.
    Name(String),
    /// A matcher.
    Matcher(LabelMatcher),
}

/// One `label_format` operation.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelFormatOp {
    /// `dst=src`: rename.
    Rename {
        /// Destination.
        dst: String,
        /// Source label.
        src: String,
    },
    /// `dst="{{ template }}"`.
    Template {
        /// Destination.
        dst: String,
        /// Template source.
        template: String,
    },
}

/// Range (log) aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    /// `count_over_time`
    CountOverTime,
    /// `rate`
    Rate,
    /// `rate_counter`
    RateCounter,
    /// `bytes_over_time`
    BytesOverTime,
    /// `bytes_rate`
    BytesRate,
    /// `avg_over_time`
    AvgOverTime,
    /// `sum_over_time`
    SumOverTime,
    /// `min_over_time`
    MinOverTime,
    /// `max_over_time`
    MaxOverTime,
    /// `stdvar_over_time`
    StdvarOverTime,
    /// `stddev_over_time`
    StddevOverTime,
    /// `quantile_over_time`
    QuantileOverTime,
    /// `first_over_time`
    FirstOverTime,
    /// `last_over_time`
    LastOverTime,
    /// `absent_over_time`
    AbsentOverTime,
}

/// Conversion applied by `unwrap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwrapConversion {
    /// Plain float parse.
    None,
    /// `duration(label)`: Go duration to seconds.
    Duration,
    /// `duration_seconds(label)`: same as `duration`.
    DurationSeconds,
    /// `bytes(label)`: humanized bytes to a number.
    Bytes,
}

/// `| unwrap [conv(]label[)] [| post-filters]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Unwrap {
    /// Label whose value becomes the sample value.
    pub label: String,
    /// Conversion.
    pub conversion: UnwrapConversion,
    /// Label filters written after the unwrap (`| unwrap x | __error__=""`).
    pub post_filters: Vec<LabelFilterExpr>,
}

/// `{sel} | pipeline [| unwrap ...] [5m] [offset 1h]`: the inside of a range aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRangeExpr {
    /// Selector and pipeline.
    pub selector: LogSelectorExpr,
    /// Range in nanoseconds.
    pub range_ns: i64,
    /// The range as written (`5m`), for printing.
    pub range_literal: String,
    /// Optional unwrap.
    pub unwrap: Option<Unwrap>,
    /// Offset in nanoseconds (0 = none).
    pub offset_ns: i64,
    /// The offset as written, for printing.
    pub offset_literal: Option<String>,
}

/// `by (...)` / `without (...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// true for `without`.
    pub without: bool,
    /// Label names.
    pub labels: Vec<String>,
}

/// Vector aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorOp {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `count`
    Count,
    /// `stddev`
    Stddev,
    /// `stdvar`
    Stdvar,
    /// `topk`
    Topk,
    /// `bottomk`
    Bottomk,
    /// `sort`
    Sort,
    /// `sort_desc`
    SortDesc,
    /// `approx_topk`
    ApproxTopk,
}

/// Binary operators, arithmetic, comparison and set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `or`
    Or,
    /// `and`
    And,
    /// `unless`
    Unless,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

/// Vector matching for binary operations: `on(...)`/`ignoring(...)` and
/// `group_left(...)`/`group_right(...)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VectorMatching {
    /// `Some` when `on` or `ignoring` was written.
    pub matching: Option<Grouping>,
    /// `on` (false) vs `ignoring` (true) is `matching.without`.
    /// Grouping side: `None`, `Some(Left(labels))` or `Some(Right(labels))`.
    pub group: Option<GroupSide>,
}

/// `group_left(...)` or `group_right(...)` with the extra labels to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSide {
    /// `group_left(labels)`
    Left(Vec<String>),
    /// `group_right(labels)`
    Right(Vec<String>),
}

/// A metric expression.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleExpr {
    /// `count_over_time({..}[5m])`, `quantile_over_time(0.9, ...) by (x)`.
    RangeAggregation {
        /// Operator.
        op: RangeOp,
        /// The log range.
        range: Box<LogRangeExpr>,
        /// φ for `quantile_over_time`.
        param: Option<f64>,
        /// Optional `by`/`without` after the call.
        grouping: Option<Grouping>,
    },
    /// `sum by (x) (expr)`, `topk(3, expr)`.
    VectorAggregation {
        /// Operator.
        op: VectorOp,
        /// The inner expression.
        expr: Box<SampleExpr>,
        /// k for topk/bottomk/approx_topk.
        param: Option<f64>,
        /// Grouping, written before or after the parentheses.
        grouping: Option<Grouping>,
    },
    /// `lhs op [bool] [on/ignoring] [group_x] rhs`.
    Binary {
        /// Operator.
        op: BinOp,
        /// Left operand.
        lhs: Box<SampleExpr>,
        /// Right operand.
        rhs: Box<SampleExpr>,
        /// `bool` modifier on comparisons.
        return_bool: bool,
        /// Vector matching.
        matching: VectorMatching,
    },
    /// A number literal (possibly signed).
    Literal(f64),
    /// `vector(1)`.
    Vector(f64),
    /// `label_replace(expr, "dst", "replacement", "src", "regex")`.
    LabelReplace {
        /// Inner expression.
        expr: Box<SampleExpr>,
        /// Destination label.
        dst: String,
        /// Replacement template with `$1`.
        replacement: String,
        /// Source label.
        src: String,
        /// Regex (anchored when applied).
        regex: String,
    },
    /// `( expr )`: kept so that printing round-trips.
    Paren(Box<SampleExpr>),
}

impl SampleExpr {
    /// True when a vector aggregation with `op` appears anywhere in the expression.
    pub fn uses_vector_op(&self, op: VectorOp) -> bool {
        match self {
            SampleExpr::VectorAggregation { op: o, expr, .. } => {
                *o == op || expr.uses_vector_op(op)
            }
            SampleExpr::Binary { lhs, rhs, .. } => lhs.uses_vector_op(op) || rhs.uses_vector_op(op),
            SampleExpr::LabelReplace { expr, .. } | SampleExpr::Paren(expr) => {
                expr.uses_vector_op(op)
            }
            SampleExpr::RangeAggregation { .. }
            | SampleExpr::Literal(_)
            | SampleExpr::Vector(_) => false,
        }
    }
}
