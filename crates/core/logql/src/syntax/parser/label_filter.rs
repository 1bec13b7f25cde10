//! Label filter expressions (`| status >= 400 or level="error"`) with Loki's precedence.

use skald_model::MatchType;

use super::log::new_matcher;
use super::{Parser, MAX_TREE_DEPTH};
use crate::syntax::ast::*;
use crate::syntax::error::ParseError;
use crate::syntax::goutil;
use crate::syntax::lexer::Tok;

impl Parser {
    /// A label filter expression with Loki's (yacc-resolved) precedence: `or` < `and`
    /// (both left-associative); `,` and juxtaposition bind to the filter just before them and
    /// take everything after them as their right operand.
    pub(super) fn parse_label_filter_expr(&mut self) -> Result<LabelFilterExpr, ParseError> {
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
