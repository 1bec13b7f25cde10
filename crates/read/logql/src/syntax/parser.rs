//! The LogQL parser: a recursive-descent parser that accepts the language of Loki's
//! `syntax.y`, reproduces its operator precedences, literal folding and validation, and reports
//! errors with Loki's texts and positions.

use skald_model::{LabelMatcher, MatchType};

use super::ast::*;
use super::error::ParseError;
use super::goutil::{self, go_parse_float};
use super::lexer::{tokenize, Tok, Token, RANGE_OPS};

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

fn bin_prec(t: Tok) -> Option<(usize, BinOp)> {
    Some(match t {
        Tok::Or => (1, BinOp::Or),
        Tok::And => (2, BinOp::And),
        Tok::Unless => (2, BinOp::Unless),
        Tok::CmpEq => (3, BinOp::Eq),
        Tok::Neq => (3, BinOp::Ne),
        Tok::Lt => (3, BinOp::Lt),
        Tok::Lte => (3, BinOp::Le),
        Tok::Gt => (3, BinOp::Gt),
        Tok::Gte => (3, BinOp::Ge),
        Tok::Add => (4, BinOp::Add),
        Tok::Sub => (4, BinOp::Sub),
        Tok::Mul => (5, BinOp::Mul),
        Tok::Div => (5, BinOp::Div),
        Tok::Mod => (5, BinOp::Mod),
        Tok::Pow => (6, BinOp::Pow),
        _ => return None,
    })
}

fn binop_str(op: BinOp) -> &'static str {
    match op {
        BinOp::Or => "or",
        BinOp::And => "and",
        BinOp::Unless => "unless",
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Mod => "%",
        BinOp::Pow => "^",
        BinOp::Eq => "==",
        BinOp::Ne => "!=",
        BinOp::Gt => ">",
        BinOp::Ge => ">=",
        BinOp::Lt => "<",
        BinOp::Le => "<=",
    }
}

fn range_op(i: u8) -> RangeOp {
    use RangeOp::*;
    const OPS: [RangeOp; 15] = [
        CountOverTime,
        Rate,
        RateCounter,
        BytesOverTime,
        BytesRate,
        AvgOverTime,
        SumOverTime,
        MinOverTime,
        MaxOverTime,
        StdvarOverTime,
        StddevOverTime,
        QuantileOverTime,
        FirstOverTime,
        LastOverTime,
        AbsentOverTime,
    ];
    OPS.get(usize::from(i)).copied().unwrap_or(Rate)
}

fn vector_op(i: u8) -> VectorOp {
    use VectorOp::*;
    const OPS: [VectorOp; 12] =
        [Sum, Avg, Min, Max, Count, Stddev, Stdvar, Topk, Bottomk, Sort, SortDesc, ApproxTopk];
    OPS.get(usize::from(i)).copied().unwrap_or(Sum)
}

/// The LogQL name of a range operation.
pub(crate) fn range_op_name(op: RangeOp) -> &'static str {
    let i = match op {
        RangeOp::CountOverTime => 0,
        RangeOp::Rate => 1,
        RangeOp::RateCounter => 2,
        RangeOp::BytesOverTime => 3,
        RangeOp::BytesRate => 4,
        RangeOp::AvgOverTime => 5,
        RangeOp::SumOverTime => 6,
        RangeOp::MinOverTime => 7,
        RangeOp::MaxOverTime => 8,
        RangeOp::StdvarOverTime => 9,
        RangeOp::StddevOverTime => 10,
        RangeOp::QuantileOverTime => 11,
        RangeOp::FirstOverTime => 12,
        RangeOp::LastOverTime => 13,
        RangeOp::AbsentOverTime => 14,
    };
    RANGE_OPS[i].0
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

    // ---------------------------------------------------------------- expressions

    /// Precedence climbing over `expr OP [modifiers] expr`.
    fn parse_binary(&mut self, min_prec: usize) -> Result<Operand, ParseError> {
        let mut lhs = self.parse_operand()?;
        while let Some((prec, op)) = self.peek_binop(min_prec) {
            lhs = self.binary_rhs(lhs, prec, op)?;
        }
        Ok(lhs)
    }

    fn peek_binop(&self, min_prec: usize) -> Option<(usize, BinOp)> {
        if self.at_lex_error() {
            return None;
        }
        bin_prec(self.cur().kind).filter(|(prec, _)| *prec >= min_prec)
    }

    /// After `lhs`, at a binary operator: parses the modifiers and the right operand.
    #[inline(never)]
    fn binary_rhs(&mut self, lhs: Operand, prec: usize, op: BinOp) -> Result<Operand, ParseError> {
        self.pos += 1;
        let (return_bool, matching) = self.parse_bin_modifiers()?;
        // `^` is right-associative, everything else left-associative.
        let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
        self.enter()?;
        let rhs = self.parse_binary(next_min)?;
        self.leave();
        self.make_binop(op, return_bool, matching, lhs, rhs)
    }

    #[inline(never)]
    fn parse_bin_modifiers(&mut self) -> Result<(bool, VectorMatching), ParseError> {
        let return_bool = if self.is(Tok::Bool) {
            self.bump();
            true
        } else {
            false
        };
        let mut vm = VectorMatching::default();
        if self.is(Tok::On) || self.is(Tok::Ignoring) {
            let without = self.bump().kind == Tok::Ignoring;
            self.eat(Tok::LParen, &["("])?;
            let labels = self.parse_labels_until_rparen()?;
            if !(without && labels.is_empty()) {
                vm.matching = Some(Grouping { without, labels });
            }
            if self.is(Tok::GroupLeft) || self.is(Tok::GroupRight) {
                let left = self.bump().kind == Tok::GroupLeft;
                let mut include = Vec::new();
                if self.is(Tok::LParen) {
                    self.bump();
                    include = self.parse_labels_until_rparen()?;
                }
                vm.group =
                    Some(if left { GroupSide::Left(include) } else { GroupSide::Right(include) });
            }
        }
        Ok((return_bool, vm))
    }

    /// `labels? )` after an opening parenthesis.
    fn parse_labels_until_rparen(&mut self) -> Result<Vec<String>, ParseError> {
        let mut out = Vec::new();
        if self.is(Tok::RParen) {
            self.bump();
            return Ok(out);
        }
        out.push(self.expect(Tok::Ident, &["IDENTIFIER", ")"])?.text);
        loop {
            if self.is(Tok::RParen) {
                self.bump();
                return Ok(out);
            }
            self.eat(Tok::Comma, &[",", ")"])?;
            out.push(self.expect(Tok::Ident, &["IDENTIFIER"])?.text);
        }
    }

    #[inline(never)]
    fn make_binop(
        &self,
        op: BinOp,
        return_bool: bool,
        matching: VectorMatching,
        lhs: Operand,
        rhs: Operand,
    ) -> Result<Operand, ParseError> {
        let depth = 1 + lhs.depth.max(rhs.depth);
        if depth > MAX_TREE_DEPTH {
            return Err(self.too_deep());
        }
        let ops = binop_str(op);
        let type_name = |l: &LogSelectorExpr| {
            if l.stages.is_empty() {
                "*syntax.MatchersExpr"
            } else {
                "*syntax.PipelineExpr"
            }
        };
        let placeholder = SampleExpr::Literal(0.0);
        let (l, lerr) = match lhs.node {
            Node::Log(l) => {
                let e = ParseError::nopos(format!(
                    "unexpected type for left leg of binary operation ({ops}): {}",
                    type_name(&l)
                ));
                return Ok(sample(placeholder, Some(e), depth));
            }
            Node::Sample(s) => (s, lhs.err),
        };
        let (r, rerr) = match rhs.node {
            Node::Log(r) => {
                let e = ParseError::nopos(format!(
                    "unexpected type for right leg of binary operation ({ops}): {}",
                    type_name(&r)
                ));
                return Ok(sample(placeholder, Some(e), depth));
            }
            Node::Sample(s) => (s, rhs.err),
        };
        let lit_l = matches!(l, SampleExpr::Literal(_));
        let lit_r = matches!(r, SampleExpr::Literal(_));
        // a literal's own parse error becomes the binary operation's error
        if lit_l {
            if let Some(e) = lerr.clone() {
                return Ok(sample(placeholder, Some(e), depth));
            }
        }
        if lit_r {
            if let Some(e) = rerr.clone() {
                return Ok(sample(placeholder, Some(e), depth));
            }
        }
        if matches!(op, BinOp::Or | BinOp::And | BinOp::Unless) {
            if let SampleExpr::Literal(v) = l {
                let e = ParseError::nopos(format!(
                    "unexpected literal for left leg of logical/set binary operation ({ops}): {v:.6}"
                ));
                return Ok(sample(placeholder, Some(e), depth));
            }
            if let SampleExpr::Literal(v) = r {
                let e = ParseError::nopos(format!(
                    "unexpected literal for right leg of logical/set binary operation ({ops}): {v:.6}"
                ));
                return Ok(sample(placeholder, Some(e), depth));
            }
        }
        if let (SampleExpr::Literal(a), SampleExpr::Literal(b)) = (&l, &r) {
            return Ok(sample(SampleExpr::Literal(fold(op, *a, *b)), None, 1));
        }
        let err = lerr.or(rerr);
        Ok(sample(
            SampleExpr::Binary { op, lhs: Box::new(l), rhs: Box::new(r), return_bool, matching },
            err,
            depth,
        ))
    }

    fn parse_operand(&mut self) -> Result<Operand, ParseError> {
        if self.at_lex_error() {
            return Err(self.unexpected(&[]));
        }
        // Each form lives in its own (non-inlined) function so that this recursive path keeps
        // small stack frames even in debug builds.
        match self.cur().kind {
            Tok::LBrace => self.operand_log(),
            Tok::LParen => self.operand_paren(),
            Tok::Number | Tok::Add | Tok::Sub => self.operand_literal(),
            Tok::RangeFn(i) => self.operand_nested(Nested::Range(range_op(i))),
            Tok::VectorFn(i) => self.operand_nested(Nested::Vector(vector_op(i))),
            Tok::LabelReplace => self.operand_nested(Nested::LabelReplace),
            Tok::Vector => self.operand_vector(),
            _ => Err(self.unexpected(&[])),
        }
    }

    #[inline(never)]
    fn operand_log(&mut self) -> Result<Operand, ParseError> {
        let sel = self.parse_selector()?;
        let stages = self.parse_stages(false)?;
        Ok(Operand {
            node: Node::Log(LogSelectorExpr { matchers: sel, stages }),
            err: None,
            depth: 1,
        })
    }

    #[inline(never)]
    fn operand_paren(&mut self) -> Result<Operand, ParseError> {
        self.bump();
        self.enter()?;
        let inner = self.parse_binary(0)?;
        self.leave();
        self.eat(Tok::RParen, &[])?;
        Ok(inner)
    }

    #[inline(never)]
    fn operand_literal(&mut self) -> Result<Operand, ParseError> {
        let (v, err) = self.parse_literal()?;
        Ok(sample(SampleExpr::Literal(v), err, 1))
    }

    #[inline(never)]
    fn operand_nested(&mut self, what: Nested) -> Result<Operand, ParseError> {
        self.bump();
        self.enter()?;
        let r = match what {
            Nested::Range(op) => self.parse_range_aggregation(op),
            Nested::Vector(op) => self.parse_vector_aggregation(op),
            Nested::LabelReplace => self.parse_label_replace(),
        };
        self.leave();
        r
    }

    #[inline(never)]
    fn operand_vector(&mut self) -> Result<Operand, ParseError> {
        self.bump();
        self.eat(Tok::LParen, &["("])?;
        let n = self.expect(Tok::Number, &["NUMBER"])?;
        self.eat(Tok::RParen, &[")"])?;
        match go_parse_float(&n.text) {
            Ok(v) => Ok(sample(SampleExpr::Vector(v), None, 1)),
            Err(e) => Ok(sample(
                SampleExpr::Vector(0.0),
                Some(ParseError::nopos(format!("unable to parse vectorExpr as a float: {e}"))),
                1,
            )),
        }
    }

    /// `NUMBER | + NUMBER | - NUMBER`, with the float error deferred like Loki's LiteralExpr.
    fn parse_literal(&mut self) -> Result<(f64, Option<ParseError>), ParseError> {
        let neg = match self.cur().kind {
            Tok::Add => {
                self.bump();
                false
            }
            Tok::Sub => {
                self.bump();
                true
            }
            _ => false,
        };
        let n = self.expect(Tok::Number, &["NUMBER"])?;
        match go_parse_float(&n.text) {
            Ok(v) => Ok((if neg { -v } else { v }, None)),
            Err(e) => Ok((
                0.0,
                Some(ParseError::nopos(format!("unable to parse literal as a float: {e}"))),
            )),
        }
    }

    /// Parses an expression that must be a metric expression (inside aggregations).
    fn parse_metric_arg(&mut self) -> Result<(SampleExpr, Option<ParseError>, usize), ParseError> {
        let op = self.parse_binary(0)?;
        match op.node {
            Node::Sample(s) => Ok((s, op.err, op.depth)),
            Node::Log(_) => Err(self.unexpected(&[])),
        }
    }

    fn parse_grouping(&mut self) -> Result<Grouping, ParseError> {
        let without = self.bump().kind == Tok::Without;
        self.eat(Tok::LParen, &["("])?;
        let labels = self.parse_labels_until_rparen()?;
        Ok(Grouping { without, labels })
    }

    #[inline(never)]
    fn parse_vector_aggregation(&mut self, op: VectorOp) -> Result<Operand, ParseError> {
        let mut grouping = None;
        let mut pre = false;
        if self.is(Tok::By) || self.is(Tok::Without) {
            grouping = Some(self.parse_grouping()?);
            pre = true;
            self.eat(Tok::LParen, &["("])?;
        } else {
            self.eat(Tok::LParen, &["(", "by", "without"])?;
        }
        let mut param_text = None;
        if self.is(Tok::Number) && self.peek_kind(1) == Tok::Comma {
            param_text = Some(self.bump().text);
            self.bump();
        }
        let (inner, inner_err, depth) = self.parse_metric_arg()?;
        self.eat(Tok::RParen, &[])?;
        if !pre && (self.is(Tok::By) || self.is(Tok::Without)) {
            grouping = Some(self.parse_grouping()?);
        }
        finish_vector_aggregation(op, param_text, grouping, inner, inner_err, depth)
            .ok_or_else(|| self.too_deep())
    }

    #[inline(never)]
    fn parse_label_replace(&mut self) -> Result<Operand, ParseError> {
        self.eat(Tok::LParen, &["("])?;
        let (inner, inner_err, depth) = self.parse_metric_arg()?;
        let mut strs = Vec::with_capacity(4);
        for _ in 0..4 {
            self.eat(Tok::Comma, &[","])?;
            strs.push(self.expect(Tok::Str, &["STRING"])?.str_val);
        }
        self.eat(Tok::RParen, &[")"])?;
        let regex = strs.pop().unwrap_or_default();
        let src = strs.pop().unwrap_or_default();
        let replacement = strs.pop().unwrap_or_default();
        let dst = strs.pop().unwrap_or_default();
        let full = format!("^(?:{regex})$");
        let own = regex::Regex::new(&full).err().map(|e| {
            ParseError::nopos(format!(
                "invalid regex in label_replace: {}",
                goutil::go_regex_error(&full, &e.to_string())
            ))
        });
        Ok(sample(
            SampleExpr::LabelReplace { expr: Box::new(inner), dst, replacement, src, regex },
            own.or(inner_err),
            depth + 1,
        ))
    }

    #[inline(never)]
    fn parse_range_aggregation(&mut self, op: RangeOp) -> Result<Operand, ParseError> {
        self.eat(Tok::LParen, &["("])?;
        let mut param_text = None;
        if self.is(Tok::Number) {
            param_text = Some(self.bump().text);
            self.eat(Tok::Comma, &[","])?;
        } else if !(self.is(Tok::LBrace) || self.is(Tok::LParen)) {
            return Err(self.unexpected(&["NUMBER", "{", "("]));
        }
        let range = self.parse_log_range()?;
        self.eat(Tok::RParen, &[])?;
        let mut grouping = None;
        if self.is(Tok::By) || self.is(Tok::Without) {
            grouping = Some(self.parse_grouping()?);
        }
        let name = range_op_name(op);
        let mut param = None;
        let mut own: Option<String> = None;
        match &param_text {
            Some(t) => {
                if op != RangeOp::QuantileOverTime {
                    own = Some(format!("parameter {t} not supported for operation {name}"));
                } else {
                    match go_parse_float(t) {
                        Ok(v) => param = Some(v),
                        Err(e) => {
                            own = Some(format!("invalid parameter for operation {name}: {e}"))
                        }
                    }
                }
            }
            None if op == RangeOp::QuantileOverTime => {
                own = Some(format!("parameter required for operation {name}"));
            }
            None => {}
        }
        if own.is_none() {
            own = validate_range_agg(op, grouping.is_some(), range.unwrap.is_some());
        }
        let err = match own {
            Some(m) => Some(ParseError::nopos(m)),
            None => validate_matchers(&range.selector.matchers).err(),
        };
        Ok(sample(
            SampleExpr::RangeAggregation { op, range: Box::new(range), param, grouping },
            err,
            1,
        ))
    }

    // ---------------------------------------------------------------- log ranges

    fn parse_log_range(&mut self) -> Result<LogRangeExpr, ParseError> {
        if self.is(Tok::LParen) {
            self.bump();
            self.enter()?;
            if self.is(Tok::LParen) {
                let r = self.parse_log_range()?;
                self.eat(Tok::RParen, &[])?;
                self.leave();
                return Ok(r);
            }
            if !self.is(Tok::LBrace) {
                return Err(self.unexpected(&[]));
            }
            let matchers = self.parse_selector()?;
            let stages = self.parse_stages(true)?;
            let unwrap = self.parse_opt_unwrap()?;
            let selector = LogSelectorExpr { matchers, stages };
            if self.is(Tok::RParen) {
                self.bump();
                let range = self.expect(Tok::Range, &[])?;
                let offset = self.parse_opt_offset()?;
                self.leave();
                return Ok(make_range(selector, range.dur, unwrap, offset));
            }
            let r = self.continue_log_range(selector, unwrap)?;
            self.eat(Tok::RParen, &[])?;
            self.leave();
            return Ok(r);
        }
        if !self.is(Tok::LBrace) {
            return Err(self.unexpected(&[]));
        }
        let matchers = self.parse_selector()?;
        let stages = self.parse_stages(true)?;
        let unwrap = self.parse_opt_unwrap()?;
        self.continue_log_range(LogSelectorExpr { matchers, stages }, unwrap)
    }

    /// After `selector [pipeline] [unwrap]`: `RANGE [offset]`, and when nothing came before
    /// the range, an optional `[offset] pipeline [unwrap]` after it.
    fn continue_log_range(
        &mut self,
        mut selector: LogSelectorExpr,
        unwrap: Option<Unwrap>,
    ) -> Result<LogRangeExpr, ParseError> {
        let range = self.expect(Tok::Range, &[])?;
        let offset = self.parse_opt_offset()?;
        let mut unwrap = unwrap;
        if selector.stages.is_empty() && unwrap.is_none() {
            selector.stages = self.parse_stages(true)?;
            unwrap = self.parse_opt_unwrap()?;
        }
        Ok(make_range(selector, range.dur, unwrap, offset))
    }

    fn parse_opt_offset(&mut self) -> Result<Option<i64>, ParseError> {
        if self.is(Tok::Offset) {
            self.bump();
            let d = self.expect(Tok::Duration, &["DURATION"])?;
            return Ok(Some(d.dur));
        }
        Ok(None)
    }

    fn parse_opt_unwrap(&mut self) -> Result<Option<Unwrap>, ParseError> {
        if !(self.is(Tok::Pipe) && self.peek_kind(1) == Tok::Unwrap) {
            return Ok(None);
        }
        self.bump();
        self.bump();
        let conversion = match self.cur().kind {
            Tok::BytesConv => UnwrapConversion::Bytes,
            Tok::DurationConv => UnwrapConversion::Duration,
            Tok::DurationSecondsConv => UnwrapConversion::DurationSeconds,
            _ => UnwrapConversion::None,
        };
        let label = if conversion == UnwrapConversion::None {
            self.expect(Tok::Ident, &[])?.text
        } else {
            self.bump();
            self.eat(Tok::LParen, &["("])?;
            let l = self.expect(Tok::Ident, &["IDENTIFIER"])?.text;
            self.eat(Tok::RParen, &[")"])?;
            l
        };
        let mut post_filters = Vec::new();
        while self.is(Tok::Pipe) {
            self.bump();
            if !(self.is(Tok::Ident) || self.is(Tok::LParen)) {
                return Err(self.unexpected(&[]));
            }
            post_filters.push(self.parse_label_filter_expr()?);
        }
        Ok(Some(Unwrap { label, conversion, post_filters }))
    }

    // ---------------------------------------------------------------- selectors & pipelines

    fn parse_selector(&mut self) -> Result<Vec<LabelMatcher>, ParseError> {
        self.eat(Tok::LBrace, &["{"])?;
        let mut out = Vec::new();
        if self.is(Tok::RBrace) {
            self.bump();
            return Ok(out);
        }
        if !self.is(Tok::Ident) {
            return Err(self.unexpected(&["IDENTIFIER", "}"]));
        }
        loop {
            out.push(self.parse_matcher()?);
            if self.is(Tok::RBrace) {
                self.bump();
                return Ok(out);
            }
            self.eat(Tok::Comma, &["}", ","])?;
            if !self.is(Tok::Ident) {
                return Err(self.unexpected(&["IDENTIFIER"]));
            }
        }
    }

    /// `IDENTIFIER (=|!=|=~|!~) STRING`; the current token is the identifier.
    fn parse_matcher(&mut self) -> Result<LabelMatcher, ParseError> {
        let name = self.bump().text;
        let op = match self.cur().kind {
            Tok::Eq if !self.at_lex_error() => MatchType::Equal,
            Tok::Neq if !self.at_lex_error() => MatchType::NotEqual,
            Tok::Re if !self.at_lex_error() => MatchType::Regex,
            Tok::Nre if !self.at_lex_error() => MatchType::NotRegex,
            _ => return Err(self.unexpected(&["=", "=~", "!~", "!="])),
        };
        self.bump();
        let v = self.expect(Tok::Str, &["STRING"])?.str_val;
        new_matcher(name, op, v)
    }

    fn is_line_filter_op(&self) -> Option<LineFilterOp> {
        if self.at_lex_error() {
            return None;
        }
        Some(match self.cur().kind {
            Tok::PipeExact => LineFilterOp::Contains,
            Tok::Neq => LineFilterOp::NotContains,
            Tok::PipeMatch => LineFilterOp::Regex,
            Tok::Nre => LineFilterOp::NotRegex,
            Tok::PipePattern => LineFilterOp::Pattern,
            Tok::Npa => LineFilterOp::NotPattern,
            _ => return None,
        })
    }

    /// Pipeline stages. In a range context, stops before `| unwrap`.
    fn parse_stages(&mut self, in_range: bool) -> Result<Vec<Stage>, ParseError> {
        let mut stages = Vec::new();
        loop {
            if let Some(op) = self.is_line_filter_op() {
                self.bump();
                self.parse_line_filter(op, &mut stages)?;
                continue;
            }
            if !self.is(Tok::Pipe) {
                return Ok(stages);
            }
            if in_range && self.peek_kind(1) == Tok::Unwrap {
                return Ok(stages);
            }
            self.bump();
            let stage = self.parse_pipe_stage()?;
            stages.push(stage);
        }
    }

    fn parse_line_filter_value(&mut self) -> Result<LineFilterValue, ParseError> {
        if self.is(Tok::Str) {
            return Ok(LineFilterValue::Literal(self.bump().str_val));
        }
        if self.is(Tok::Ip) {
            self.bump();
            self.eat(Tok::LParen, &["("])?;
            let s = self.expect(Tok::Str, &["STRING"])?.str_val;
            self.eat(Tok::RParen, &[")"])?;
            return Ok(LineFilterValue::Ip(s));
        }
        Err(self.unexpected(&["STRING", "ip"]))
    }

    fn parse_line_filter(
        &mut self,
        op: LineFilterOp,
        stages: &mut Vec<Stage>,
    ) -> Result<(), ParseError> {
        let value = self.parse_line_filter_value()?;
        let mut or = Vec::new();
        while self.is(Tok::Or) {
            self.bump();
            or.push(self.parse_line_filter_value()?);
        }
        let negative = matches!(
            op,
            LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern
        );
        if negative && !or.is_empty() {
            // Loki rewrites `!= "a" or "b"` into `!= "a" != "b"`.
            stages.push(Stage::LineFilter(LineFilter { op, value, or: Vec::new() }));
            for v in or {
                stages.push(Stage::LineFilter(LineFilter { op, value: v, or: Vec::new() }));
            }
        } else {
            stages.push(Stage::LineFilter(LineFilter { op, value, or }));
        }
        Ok(())
    }

    fn parse_pipe_stage(&mut self) -> Result<Stage, ParseError> {
        if self.at_lex_error() {
            return Err(self.unexpected(&[]));
        }
        match self.cur().kind {
            Tok::Logfmt => {
                self.bump();
                let (mut strict, mut keep_empty) = (false, false);
                while self.is(Tok::Flag) {
                    match self.bump().text.as_str() {
                        "--strict" => strict = true,
                        _ => keep_empty = true,
                    }
                }
                let extractions =
                    if self.is(Tok::Ident) { self.parse_extractions()? } else { Vec::new() };
                Ok(Stage::Parser(ParserStage::Logfmt { strict, keep_empty, extractions }))
            }
            Tok::Json => {
                self.bump();
                let ex = if self.is(Tok::Ident) { self.parse_extractions()? } else { Vec::new() };
                Ok(Stage::Parser(ParserStage::Json(ex)))
            }
            Tok::Regexp => {
                self.bump();
                let s = self.expect(Tok::Str, &["STRING"])?.str_val;
                validate_regexp_parser(&s)?;
                Ok(Stage::Parser(ParserStage::Regexp(s)))
            }
            Tok::Pattern => {
                self.bump();
                let s = self.expect(Tok::Str, &["STRING"])?.str_val;
                validate_pattern_parser(&s)?;
                Ok(Stage::Parser(ParserStage::Pattern(s)))
            }
            Tok::Unpack => {
                self.bump();
                Ok(Stage::Parser(ParserStage::Unpack))
            }
            Tok::LineFmt => {
                self.bump();
                Ok(Stage::LineFormat(self.expect(Tok::Str, &["STRING"])?.str_val))
            }
            Tok::Decolorize => {
                self.bump();
                Ok(Stage::Decolorize)
            }
            Tok::LabelFmt => {
                self.bump();
                let mut ops = Vec::new();
                loop {
                    let dst = self.expect(Tok::Ident, &["IDENTIFIER"])?.text;
                    self.eat(Tok::Eq, &["="])?;
                    if self.is(Tok::Ident) {
                        ops.push(LabelFormatOp::Rename { dst, src: self.bump().text });
                    } else if self.is(Tok::Str) {
                        ops.push(LabelFormatOp::Template { dst, template: self.bump().str_val });
                    } else {
                        return Err(self.unexpected(&["IDENTIFIER", "STRING"]));
                    }
                    if !self.is(Tok::Comma) {
                        return Ok(Stage::LabelFormat(ops));
                    }
                    self.bump();
                }
            }
            Tok::Drop | Tok::Keep => {
                let drop = self.bump().kind == Tok::Drop;
                let mut ms = Vec::new();
                loop {
                    if !self.is(Tok::Ident) {
                        return Err(self.unexpected(&["IDENTIFIER"]));
                    }
                    if matches!(self.peek_kind(1), Tok::Eq | Tok::Neq | Tok::Re | Tok::Nre) {
                        ms.push(NamedMatcher::Matcher(self.parse_matcher()?));
                    } else {
                        ms.push(NamedMatcher::Name(self.bump().text));
                    }
                    if !self.is(Tok::Comma) {
                        break;
                    }
                    self.bump();
                }
                Ok(if drop { Stage::Drop(ms) } else { Stage::Keep(ms) })
            }
            Tok::Ident | Tok::LParen => Ok(Stage::LabelFilter(self.parse_label_filter_expr()?)),
            _ => Err(self.unexpected(&[])),
        }
    }

    fn parse_extractions(&mut self) -> Result<Vec<LabelExtraction>, ParseError> {
        let mut out = Vec::new();
        loop {
            let name = self.expect(Tok::Ident, &["IDENTIFIER"])?.text;
            let mut expr = None;
            if self.is(Tok::Eq) {
                self.bump();
                let e = self.expect(Tok::Str, &["STRING"])?.str_val;
                // `a="a"` means the same as the bare `a` (and Loki prints both as `a="a"`).
                if e != name {
                    expr = Some(e);
                }
            }
            out.push(LabelExtraction { name, expr });
            if !self.is(Tok::Comma) {
                return Ok(out);
            }
            self.bump();
        }
    }

    // ---------------------------------------------------------------- label filters

    /// A label filter expression with Loki's (yacc-resolved) precedence: `or` < `and`
    /// (both left-associative); `,` and juxtaposition bind to the filter just before them and
    /// take everything after them as their right operand.
    fn parse_label_filter_expr(&mut self) -> Result<LabelFilterExpr, ParseError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Op {
            Or,
            And,
            Comma,
        }
        let mut operands: Vec<(LabelFilterExpr, usize)> = Vec::new();
        let mut ops: Vec<Op> = Vec::new();
        let reduce = |operands: &mut Vec<(LabelFilterExpr, usize)>,
                      ops: &mut Vec<Op>,
                      this: &Parser|
         -> Result<(), ParseError> {
            let (Some(op), Some((r, rd)), Some((l, ld))) =
                (ops.pop(), operands.pop(), operands.pop())
            else {
                return Ok(());
            };
            let d = 1 + ld.max(rd);
            if d > MAX_TREE_DEPTH {
                return Err(this.too_deep());
            }
            let e = match op {
                Op::Or => LabelFilterExpr::Or(Box::new(l), Box::new(r)),
                Op::And | Op::Comma => LabelFilterExpr::And(Box::new(l), Box::new(r)),
            };
            operands.push((e, d));
            Ok(())
        };
        loop {
            let prim = self.parse_label_filter_primary()?;
            operands.push(prim);
            let next = if self.at_lex_error() {
                None
            } else {
                match self.cur().kind {
                    Tok::Or => Some((Op::Or, true)),
                    Tok::And => Some((Op::And, true)),
                    Tok::Comma => Some((Op::Comma, true)),
                    Tok::Ident | Tok::LParen => Some((Op::Comma, false)),
                    _ => None,
                }
            };
            let Some((op, consume)) = next else { break };
            match op {
                Op::Or => {
                    while matches!(ops.last(), Some(Op::Or | Op::And)) {
                        reduce(&mut operands, &mut ops, self)?;
                    }
                }
                Op::And => {
                    while matches!(ops.last(), Some(Op::And)) {
                        reduce(&mut operands, &mut ops, self)?;
                    }
                }
                Op::Comma => {}
            }
            if consume {
                self.bump();
            }
            ops.push(op);
        }
        while !ops.is_empty() {
            reduce(&mut operands, &mut ops, self)?;
        }
        match operands.pop() {
            Some((e, _)) => Ok(e),
            None => Err(self.unexpected(&[])),
        }
    }

    fn parse_label_filter_primary(&mut self) -> Result<(LabelFilterExpr, usize), ParseError> {
        if self.is(Tok::LParen) {
            self.bump();
            self.enter()?;
            let e = self.parse_label_filter_expr()?;
            self.eat(Tok::RParen, &[])?;
            self.leave();
            let d = label_filter_depth_hint(&e);
            return Ok((e, d));
        }
        if !self.is(Tok::Ident) {
            return Err(self.unexpected(&[]));
        }
        let name = self.bump().text;
        if self.at_lex_error() {
            return Err(self.unexpected(&[]));
        }
        let kind = self.cur().kind;
        let cmp = match kind {
            Tok::Eq => CmpOp::Eq,
            Tok::CmpEq => CmpOp::Eq,
            Tok::Neq => CmpOp::Ne,
            Tok::Gt => CmpOp::Gt,
            Tok::Gte => CmpOp::Ge,
            Tok::Lt => CmpOp::Lt,
            Tok::Lte => CmpOp::Le,
            Tok::Re | Tok::Nre => {
                self.bump();
                let v = self.expect(Tok::Str, &["STRING"])?.str_val;
                let op = if kind == Tok::Re { MatchType::Regex } else { MatchType::NotRegex };
                return Ok((LabelFilterExpr::String(new_matcher(name, op, v)?), 1));
            }
            _ => return Err(self.unexpected(&[])),
        };
        self.bump();
        if self.at_lex_error() {
            return Err(self.unexpected(&[]));
        }
        let string_ok = matches!(kind, Tok::Eq | Tok::Neq);
        let e = match self.cur().kind {
            Tok::Str if string_ok => {
                let v = self.bump().str_val;
                let op = if kind == Tok::Eq { MatchType::Equal } else { MatchType::NotEqual };
                LabelFilterExpr::String(new_matcher(name, op, v)?)
            }
            Tok::Ip if string_ok => {
                self.bump();
                self.eat(Tok::LParen, &["("])?;
                let pattern = self.expect(Tok::Str, &["STRING"])?.str_val;
                self.eat(Tok::RParen, &[")"])?;
                LabelFilterExpr::Ip { name, equal: kind == Tok::Eq, pattern }
            }
            Tok::Duration => {
                let t = self.bump();
                LabelFilterExpr::Duration {
                    name,
                    op: cmp,
                    value_ns: t.dur,
                    literal: goutil::go_duration_string(t.dur),
                }
            }
            Tok::Bytes => {
                let t = self.bump();
                LabelFilterExpr::Bytes {
                    name,
                    op: cmp,
                    value: t.bytes,
                    literal: goutil::humanize_bytes(t.bytes),
                }
            }
            Tok::Number | Tok::Add | Tok::Sub => {
                let (v, err) = self.parse_literal()?;
                if let Some(e) = err {
                    // Loki panics here, so the error is immediate.
                    return Err(e);
                }
                LabelFilterExpr::Number { name, op: cmp, value: v }
            }
            _ => return Err(self.unexpected(&[])),
        };
        Ok((e, 1))
    }
}

/// Depth of a label filter tree, computed iteratively along its spine (the tree was already
/// bounded while it was built).
fn label_filter_depth_hint(e: &LabelFilterExpr) -> usize {
    let mut d = 1;
    let mut cur = e;
    loop {
        match cur {
            LabelFilterExpr::And(_, r) | LabelFilterExpr::Or(_, r) => {
                d += 1;
                cur = r;
            }
            LabelFilterExpr::Paren(x) => cur = x,
            _ => return d,
        }
    }
}

/// Loki's checks on a vector aggregation (`mustNewVectorAggregationExpr` and the sort
/// grouping rule). Returns `None` when the tree gets too deep.
#[inline(never)]
fn finish_vector_aggregation(
    op: VectorOp,
    param_text: Option<String>,
    mut grouping: Option<Grouping>,
    inner: SampleExpr,
    inner_err: Option<ParseError>,
    depth: usize,
) -> Option<Operand> {
    let name = super::printer::vector_op_name(op);
    let mut own_err = None;
    let mut param = None;
    match op {
        VectorOp::Topk | VectorOp::Bottomk | VectorOp::ApproxTopk => match &param_text {
            None => {
                own_err = Some(format!("parameter required for operation {name}"));
            }
            Some(t) => match goutil::go_atoi(t) {
                None => own_err = Some(format!("invalid parameter {name}({t},")),
                Some(p) if p <= 0 => {
                    own_err = Some(format!("invalid parameter (must be greater than 0) {name}({t}"))
                }
                Some(p) => {
                    param = Some(p as f64);
                    if op == VectorOp::ApproxTopk && grouping.is_some() {
                        own_err = Some(format!("grouping not allowed for {name} aggregation"));
                    }
                }
            },
        },
        _ => {
            if let Some(t) = &param_text {
                own_err = Some(format!("unsupported parameter for operation {name}({t},"));
            }
        }
    }
    // `by ()` is the same as no grouping (Loki prints neither).
    if grouping.as_ref().is_some_and(|g| !g.without && g.labels.is_empty()) {
        grouping = None;
    }
    let mut err = own_err.map(ParseError::nopos);
    if err.is_none()
        && matches!(op, VectorOp::Sort | VectorOp::SortDesc)
        && grouping.as_ref().is_some_and(|g| !g.labels.is_empty())
    {
        err = Some(ParseError::nopos("sort and sort_desc doesn't allow grouping by "));
    }
    let err = err.or(inner_err);
    if depth + 1 > MAX_TREE_DEPTH {
        return None;
    }
    Some(sample(
        SampleExpr::VectorAggregation { op, expr: Box::new(inner), param, grouping },
        err,
        depth + 1,
    ))
}

fn make_range(
    selector: LogSelectorExpr,
    range_ns: i64,
    unwrap: Option<Unwrap>,
    offset: Option<i64>,
) -> LogRangeExpr {
    let offset_ns = offset.unwrap_or(0);
    LogRangeExpr {
        selector,
        range_ns,
        range_literal: goutil::prom_duration_string(range_ns),
        unwrap,
        offset_ns,
        offset_literal: if offset_ns != 0 {
            Some(goutil::go_duration_string(offset_ns))
        } else {
            None
        },
    }
}

fn new_matcher(name: String, op: MatchType, value: String) -> Result<LabelMatcher, ParseError> {
    LabelMatcher::new(name, op, value.clone())
        .map_err(|e| ParseError::nopos(goutil::go_regex_error(&value, &e.message)))
}

fn validate_range_agg(op: RangeOp, grouping: bool, unwrap: bool) -> Option<String> {
    use RangeOp::*;
    let name = range_op_name(op);
    if grouping
        && !matches!(
            op,
            AvgOverTime
                | StddevOverTime
                | StdvarOverTime
                | QuantileOverTime
                | MaxOverTime
                | MinOverTime
                | FirstOverTime
                | LastOverTime
        )
    {
        return Some(format!("grouping not allowed for {name} aggregation"));
    }
    if unwrap {
        return match op {
            AvgOverTime | SumOverTime | MaxOverTime | MinOverTime | StddevOverTime
            | StdvarOverTime | QuantileOverTime | Rate | RateCounter | AbsentOverTime
            | FirstOverTime | LastOverTime => None,
            _ => Some(format!("invalid aggregation {name} with unwrap")),
        };
    }
    match op {
        BytesOverTime | BytesRate | CountOverTime | Rate | AbsentOverTime => None,
        _ => Some(format!("invalid aggregation {name} without unwrap")),
    }
}

/// Loki's literal folding (`MergeBinOp` on two scalars, comparisons without filtering).
fn fold(op: BinOp, a: f64, b: f64) -> f64 {
    let t = |c: bool| if c { 1.0 } else { 0.0 };
    match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => {
            if b == 0.0 {
                f64::NAN
            } else {
                a / b
            }
        }
        BinOp::Mod => {
            if b == 0.0 {
                f64::NAN
            } else {
                a % b
            }
        }
        BinOp::Pow => a.powf(b),
        BinOp::Eq => t(a == b),
        BinOp::Ne => t(a != b),
        BinOp::Gt => t(a > b),
        BinOp::Ge => t(a >= b),
        BinOp::Lt => t(a < b),
        BinOp::Le => t(a <= b),
        // logical operators never reach here with two literals
        BinOp::Or | BinOp::And | BinOp::Unless => a,
    }
}

fn validate_regexp_parser(re: &str) -> Result<(), ParseError> {
    let err = |m: String| ParseError::nopos(format!("invalid regexp parser: {m}"));
    let compiled = match regex::Regex::new(re) {
        Ok(r) => r,
        Err(e) => {
            let s = e.to_string();
            if s.contains("duplicate capture group name") {
                let name = s
                    .lines()
                    .find_map(|l| l.split_once("(?P<").map(|x| x.1.to_string()))
                    .unwrap_or_default();
                let name = name.split('>').next().unwrap_or_default().to_string();
                return Err(err(format!("duplicate extracted label name '{name}'")));
            }
            return Err(err(goutil::go_regex_error(re, &s)));
        }
    };
    if compiled.capture_names().flatten().next().is_none() {
        return Err(err("at least one named capture must be supplied".into()));
    }
    Ok(())
}

/// Splits a pattern expression into captures (`<name>`, `<_>`) and literals.
fn pattern_captures(p: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let b = p.as_bytes();
    let mut lit_start = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'<' {
            let mut j = i + 1;
            if j < b.len() && (b[j].is_ascii_alphabetic() || b[j] == b'_') {
                j += 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if j < b.len() && b[j] == b'>' {
                    if lit_start < i {
                        out.push((false, &p[lit_start..i]));
                    }
                    out.push((true, &p[i + 1..j]));
                    i = j + 1;
                    lit_start = i;
                    continue;
                }
            }
        }
        i += 1;
    }
    if lit_start < b.len() {
        out.push((false, &p[lit_start..]));
    }
    out
}

fn validate_pattern_parser(p: &str) -> Result<(), ParseError> {
    let err = |m: String| ParseError::nopos(format!("invalid pattern parser: {m}"));
    let nodes = pattern_captures(p);
    let names: Vec<&str> = nodes.iter().filter(|n| n.0 && n.1 != "_").map(|n| n.1).collect();
    if names.is_empty() {
        return Err(err("at least one capture is required".into()));
    }
    for w in nodes.windows(2) {
        if w[0].0 && w[1].0 {
            return Err(err(format!(
                "found consecutive capture '<{}><{}>': invalid expression",
                w[0].1, w[1].1
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err(err(format!("duplicate capture name ({n}): invalid expression")));
        }
    }
    Ok(())
}

// -------------------------------------------------------------------- pipeline checks

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
                        let text: Vec<String> =
                            group.iter().map(|f| super::printer::line_filter_string(f)).collect();
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
