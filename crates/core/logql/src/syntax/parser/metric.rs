//! Metric expressions: binary operators with Loki's precedences and literal folding, range
//! and vector aggregations, `label_replace`, `vector()` and their validation.

use super::{sample, validate_matchers, Nested, Node, Operand, Parser, MAX_TREE_DEPTH};
use crate::syntax::ast::*;
use crate::syntax::error::ParseError;
use crate::syntax::goutil::{self, go_parse_float};
use crate::syntax::lexer::{Tok, RANGE_OPS};

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

impl Parser {
    /// Precedence climbing over `expr OP [modifiers] expr`.
    pub(super) fn parse_binary(&mut self, min_prec: usize) -> Result<Operand, ParseError> {
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
    pub(super) fn parse_literal(&mut self) -> Result<(f64, Option<ParseError>), ParseError> {
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
        self.eat(Tok::RParen, &[")"])?;
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
    let name = crate::syntax::printer::vector_op_name(op);
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
