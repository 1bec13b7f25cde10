//! LogQL for Skald: the syntax (lexer, parser, AST, printer), the line pipeline (filters,
//! parsers, formatters) and the evaluator for log and metric queries. The crate does no I/O: the
//! querier hands it streams through the [`engine::Source`] trait.

#![warn(missing_docs)]

pub mod engine;
pub mod log;
pub mod plan;
pub mod syntax;
