//! The parse error type, printed exactly as Loki prints its `ParseError`.

use std::fmt;

/// A LogQL parse or validation error.
///
/// `Display` gives Loki's exact text: `parse error at line L, col C: <msg>` when a position is
/// known, and `parse error : <msg>` when both `line` and `col` are 0 (Loki reports semantic
/// errors, such as a missing non-empty matcher, without a position). Like Loki, some tokens
/// (two-character operators, ranges, durations) report line 0 with a non-zero column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// How the error prints.
    pub kind: ParseErrorKind,
    /// 1-based line, or 0.
    pub line: usize,
    /// 1-based column in characters, or 0.
    pub col: usize,
    /// The message after the position prefix.
    pub msg: String,
}

impl ParseError {
    /// Builds an error at a position.
    pub fn new(msg: impl Into<String>, line: usize, col: usize) -> Self {
        ParseError { kind: ParseErrorKind::Parse, line, col, msg: msg.into() }
    }

    /// Builds an error without a position (`parse error : <msg>`).
    pub fn nopos(msg: impl Into<String>) -> Self {
        ParseError { kind: ParseErrorKind::Parse, line: 0, col: 0, msg: msg.into() }
    }

    /// Builds an error that prints as its bare message (Loki's plain errors such as
    /// `only label matchers are supported`).
    pub fn plain(msg: impl Into<String>) -> Self {
        ParseError { kind: ParseErrorKind::Plain, line: 0, col: 0, msg: msg.into() }
    }
}

/// How a [`ParseError`] is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParseErrorKind {
    /// `parse error ...: <msg>` (Loki's `logqlmodel.ParseError`).
    #[default]
    Parse,
    /// Just `<msg>` (Loki errors that are not parse errors, e.g. `ErrParseMatchers`).
    Plain,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == ParseErrorKind::Plain {
            f.write_str(&self.msg)
        } else if self.line == 0 && self.col == 0 {
            write!(f, "parse error : {}", self.msg)
        } else {
            write!(f, "parse error at line {}, col {}: {}", self.line, self.col, self.msg)
        }
    }
}
