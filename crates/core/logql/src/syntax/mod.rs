//! LogQL syntax: lexer, parser, AST and printer.
//!
//! [`parse_expr`] accepts the grammar of Loki's `syntax.y` and validates like Loki's
//! `syntax.ParseExpr`; `Display` on [`ast::Expr`] prints like Loki's `String()` methods (the
//! text `/loki/api/v1/format_query` returns).

pub mod ast;
mod error;
pub mod goutil;
mod lexer;
mod parser;
mod printer;
#[cfg(test)]
mod tests;

pub use error::{ParseError, ParseErrorKind};
pub use parser::{parse_expr, parse_expr_unchecked, parse_matchers};
