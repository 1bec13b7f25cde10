//! The LogQL parser: a recursive-descent parser that accepts the language of Loki's
//! `syntax.y`, reproduces its operator precedences, literal folding and validation, and reports
//! errors with Loki's texts and positions.

mod label_filter;
mod log;
mod metric;

use skald_model::LabelMatcher;

use super::ast::*;
use super::error::ParseError;
use super::goutil;
use super::lexer::{tokenize, Tok, Token};

pub(super) use self::metric::range_op_name;

/// Loki's `maxInputSize`.
const MAX_INPUT_SIZE: usize = 131072;
/// Maximum syntactic nesting (parentheses, aggregations, label filter groups).
const MAX_NESTING: usize = 256;
/// Maximum depth of an operator tree (binary operations, label filter chains).
const MAX_TREE_DEPTH: usize = 1024;

const ERR_EMPTY_MATCHERS: &str = "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will";

/// Parses a LogQL query and validates it the way Loki's `syntax.ParseExpr` does, plus the
/// pipeline checks Loki makes when it builds the pipeline (invalid line-filter regexes give
/// `stage '<filters>' : error parsing regexp: ...`).
pub fn parse_expr(input: &str) -> Result<Expr, ParseError> {
    let expr = parse_expr_unchecked(input)?;
    check_pipelines(&expr)?;
    Ok(expr)
}

/// Like [`parse_expr`] but without the pipeline-construction checks: exactly what Loki's
/// `syntax.ParseExpr` accepts (used by `/loki/api/v1/format_query`).
pub fn parse_expr_unchecked(input: &str) -> Result<Expr, ParseError> {
    if input.len() >= MAX_INPUT_SIZE {
        return Err(ParseError::nopos(format!(
            "input size too long ({} > {MAX_INPUT_SIZE})",
            input.len()
        )));
    }
    let mut p = Parser::new(input);
    let op = p.parse_binary(0)?;
    if p.cur().kind != Tok::Eof || p.at_lex_error() {
        return Err(p.unexpected(&[]));
    }
    match op.node {
        Node::Log(l) => {
            validate_matchers(&l.matchers)?;
            Ok(Expr::Log(l))
        }
        Node::Sample(s) => match op.err {
            Some(e) => Err(e),
            None => Ok(Expr::Sample(s)),
        },
    }
}

/// Parses a bare stream selector `{a="b", c=~"d"}` (for `/series` `match[]` and
/// `/labels?query=`), with Loki's validation. Anything else gives the error
/// `only label matchers are supported` (without the `parse error` prefix).
pub fn parse_matchers(input: &str) -> Result<Vec<LabelMatcher>, ParseError> {
    match parse_expr_unchecked(input)? {
        Expr::Log(l) if l.stages.is_empty() => Ok(l.matchers),
        _ => Err(ParseError::plain("only label matchers are supported")),
    }
}

fn validate_matchers(ms: &[LabelMatcher]) -> Result<(), ParseError> {
    if ms.iter().all(|m| m.matches_empty()) {
        return Err(ParseError::nopos(ERR_EMPTY_MATCHERS));
    }
    Ok(())
}

/// A parsed operand: a log selector or a metric expression with the first deferred
/// validation error (in Loki's validation walk order) and its tree depth.
struct Operand {
    node: Node,
    err: Option<ParseError>,
    depth: usize,
}

enum Node {
    Log(LogSelectorExpr),
    Sample(SampleExpr),
}

/// The nested (parenthesised) operand forms.
enum Nested {
    Range(RangeOp),
    Vector(VectorOp),
    LabelReplace,
}

fn sample(e: SampleExpr, err: Option<ParseError>, depth: usize) -> Operand {
    Operand { node: Node::Sample(e), err, depth }
}

struct Parser {
    toks: Vec<Token>,
    lex_err: Option<ParseError>,
    pos: usize,
    nesting: usize,
    eof: Token,
}

impl Parser {
    fn new(input: &str) -> Self {
        let (toks, lex_err) = tokenize(input);
        let eof = Token {
            kind: Tok::Eof,
            text: String::new(),
            str_val: String::new(),
            dur: 0,
            bytes: 0,
            line: 0,
            col: 0,
        };
        Parser { toks, lex_err, pos: 0, nesting: 0, eof }
    }

    fn cur(&self) -> &Token {
        self.toks.get(self.pos).unwrap_or(&self.eof)
    }

    fn at_lex_error(&self) -> bool {
        self.pos >= self.toks.len() && self.lex_err.is_some()
    }

    fn peek_kind(&self, n: usize) -> Tok {
        self.toks.get(self.pos + n).map_or(Tok::Eof, |t| t.kind)
    }

    fn is(&self, k: Tok) -> bool {
        !self.at_lex_error() && self.cur().kind == k
    }

    fn bump(&mut self) -> Token {
        let t = self.cur().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    /// Loki's goyacc error at the current token, optionally with the expected tokens.
    fn unexpected(&self, expecting: &[&str]) -> ParseError {
        if self.at_lex_error() {
            if let Some(e) = &self.lex_err {
                return e.clone();
            }
        }
        let t = self.cur();
        let mut msg = format!("syntax error: unexpected {}", t.kind.name());
        if !expecting.is_empty() {
            msg.push_str(", expecting ");
            msg.push_str(&expecting.join(" or "));
        }
        ParseError::new(msg, t.line, t.col)
    }

    /// Like `expect` but without returning the token (keeps stack frames small).
    fn eat(&mut self, k: Tok, expecting: &[&str]) -> Result<(), ParseError> {
        if self.is(k) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(expecting))
        }
    }

    fn expect(&mut self, k: Tok, expecting: &[&str]) -> Result<Token, ParseError> {
        if self.is(k) {
            Ok(self.bump())
        } else {
            Err(self.unexpected(expecting))
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            let t = self.cur();
            return Err(ParseError::new(
                "syntax error: expression nests too deeply",
                t.line.max(1),
                t.col.max(1),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting = self.nesting.saturating_sub(1);
    }

    fn too_deep(&self) -> ParseError {
        let t = self.cur();
        ParseError::new("syntax error: expression nests too deeply", t.line.max(1), t.col.max(1))
    }
}

/// The checks Loki makes when it builds a pipeline: line-filter regexes must compile. The
/// error names the group of consecutive line filters (as Loki combines them).
fn check_pipelines(expr: &Expr) -> Result<(), ParseError> {
    match expr {
        Expr::Log(l) => check_stages(&l.stages),
        Expr::Sample(s) => {
            let mut stack = vec![s];
            while let Some(s) = stack.pop() {
                match s {
                    SampleExpr::RangeAggregation { range, .. } => {
                        check_stages(&range.selector.stages)?
                    }
                    SampleExpr::VectorAggregation { expr, .. }
                    | SampleExpr::LabelReplace { expr, .. }
                    | SampleExpr::Paren(expr) => stack.push(expr),
                    SampleExpr::Binary { lhs, rhs, .. } => {
                        // evaluate lhs first
                        stack.push(rhs);
                        stack.push(lhs);
                    }
                    SampleExpr::Literal(_) | SampleExpr::Vector(_) => {}
                }
            }
            Ok(())
        }
    }
}

fn check_stages(stages: &[Stage]) -> Result<(), ParseError> {
    // Loki moves line filters forward and combines them, up to a label filter, a
    // line_format or an unpack stage.
    let mut group: Vec<&LineFilter> = Vec::new();
    let flush = |group: &mut Vec<&LineFilter>| -> Result<(), ParseError> {
        for f in group.iter() {
            if !matches!(f.op, LineFilterOp::Regex | LineFilterOp::NotRegex) {
                continue;
            }
            for v in std::iter::once(&f.value).chain(f.or.iter()) {
                if let LineFilterValue::Literal(re) = v {
                    if let Err(e) = regex::Regex::new(re) {
                        let text: Vec<String> = group
                            .iter()
                            .map(|f| crate::syntax::printer::line_filter_string(f))
                            .collect();
                        return Err(ParseError::nopos(format!(
                            "stage '{}' : {}",
                            text.join(" "),
                            goutil::go_regex_error(re, &e.to_string())
                        )));
                    }
                }
            }
        }
        group.clear();
        Ok(())
    };
    for s in stages {
        match s {
            Stage::LineFilter(f) => group.push(f),
            Stage::LabelFilter(_) | Stage::LineFormat(_) | Stage::Parser(ParserStage::Unpack) => {
                flush(&mut group)?
            }
            _ => {}
        }
    }
    flush(&mut group)
}
