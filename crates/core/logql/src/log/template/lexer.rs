//! The lexer: template source to tokens (Go's `text/template/parse` lexer).

use super::{SyntaxError, MAX_DEPTH};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Text(String),
    Left,
    Right,
    Space,
    Pipe,
    LParen,
    RParen,
    Comma,
    Declare,
    Assign,
    Str(String, String),
    Number(String),
    CharConst(String),
    Bool(bool),
    Dot,
    Field(String),
    Variable(String),
    Ident(String),
    Keyword(&'static str),
    Eof,
}

const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue", "nil",
];

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

type LexResult<T> = Result<T, SyntaxError>;

pub(super) fn lex(src: &str) -> LexResult<Vec<(usize, Tok)>> {
    let b = src.as_bytes();
    let mut toks: Vec<(usize, Tok)> = Vec::new();
    let mut pos = 0usize;
    let mut trim_next = false;
    loop {
        // text up to the next "{{"
        let start = pos;
        let next = src[pos..].find("{{").map(|i| pos + i);
        let end = next.unwrap_or(src.len());
        let mut text = &src[start..end];
        if trim_next {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
            trim_next = false;
        }
        let Some(lpos) = next else {
            if !text.is_empty() {
                toks.push((start, Tok::Text(text.to_string())));
            }
            toks.push((src.len(), Tok::Eof));
            return Ok(toks);
        };
        let mut p = lpos + 2;
        let left_trim = b.len() >= p + 2 && b[p] == b'-' && is_space(b[p + 1]);
        if left_trim {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            p += 2;
        }
        if !text.is_empty() {
            toks.push((start, Tok::Text(text.to_string())));
        }
        // comment
        if src[p..].starts_with("/*") {
            let Some(close) = src[p + 2..].find("*/") else {
                return Err(SyntaxError::new(lpos, "unclosed comment"));
            };
            let mut q = p + 2 + close + 2;
            if b.len() >= q + 2
                && is_space(b[q])
                && b[q + 1] == b'-'
                && src[q + 2..].starts_with("}}")
            {
                trim_next = true;
                q += 2;
            }
            if !src[q..].starts_with("}}") {
                return Err(SyntaxError::new(lpos, "comment ends before closing delimiter"));
            }
            pos = q + 2;
            continue;
        }
        toks.push((lpos, Tok::Left));
        pos = lex_action(src, p, &mut toks, &mut trim_next)?;
    }
}

/// Lexes inside an action starting at `pos`; returns the position after the closing `}}`.
fn lex_action(
    src: &str,
    mut pos: usize,
    toks: &mut Vec<(usize, Tok)>,
    trim_next: &mut bool,
) -> LexResult<usize> {
    let b = src.as_bytes();
    let mut parens = 0usize;
    loop {
        // right delimiter?
        if b.len() >= pos + 4
            && is_space(b[pos])
            && b[pos + 1] == b'-'
            && src[pos + 2..].starts_with("}}")
        {
            if parens > 0 {
                return Err(SyntaxError::new(pos, "unclosed left paren"));
            }
            toks.push((pos, Tok::Right));
            *trim_next = true;
            return Ok(pos + 4);
        }
        if src[pos..].starts_with("}}") {
            if parens > 0 {
                return Err(SyntaxError::new(pos, "unclosed left paren"));
            }
            toks.push((pos, Tok::Right));
            return Ok(pos + 2);
        }
        let Some(c) = src[pos..].chars().next() else {
            return Err(SyntaxError::new(pos, "unclosed action"));
        };
        let start = pos;
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                while pos < b.len() && is_space(b[pos]) {
                    if b.len() >= pos + 4 && b[pos + 1] == b'-' && src[pos + 2..].starts_with("}}")
                    {
                        break;
                    }
                    pos += 1;
                }
                if pos == start {
                    pos += 1;
                }
                toks.push((start, Tok::Space));
            }
            '=' => {
                toks.push((start, Tok::Assign));
                pos += 1;
            }
            ':' => {
                if b.get(pos + 1) != Some(&b'=') {
                    return Err(SyntaxError::new(pos, "expected :="));
                }
                toks.push((start, Tok::Declare));
                pos += 2;
            }
            '|' => {
                toks.push((start, Tok::Pipe));
                pos += 1;
            }
            ',' => {
                toks.push((start, Tok::Comma));
                pos += 1;
            }
            '(' => {
                parens += 1;
                if parens > MAX_DEPTH {
                    return Err(SyntaxError::new(pos, "template nesting too deep"));
                }
                toks.push((start, Tok::LParen));
                pos += 1;
            }
            ')' => {
                if parens == 0 {
                    return Err(SyntaxError::new(pos, "unexpected right paren"));
                }
                parens -= 1;
                toks.push((start, Tok::RParen));
                pos += 1;
            }
            '"' => {
                let (v, n) = match skald_model::labels::unquote_at(&src[pos..]) {
                    Ok(x) => x,
                    Err(
                        skald_model::labels::UnquoteError::Unterminated
                        | skald_model::labels::UnquoteError::UnterminatedRaw
                        | skald_model::labels::UnquoteError::Newline,
                    ) => return Err(SyntaxError::new(pos, "unterminated quoted string")),
                    Err(e) => return Err(SyntaxError::new(pos, e.to_string())),
                };
                toks.push((start, Tok::Str(v, src[pos..pos + n].to_string())));
                pos += n;
            }
            '`' => {
                let Some(end) = src[pos + 1..].find('`') else {
                    return Err(SyntaxError::new(pos, "unterminated raw quoted string"));
                };
                let v = src[pos + 1..pos + 1 + end].replace('\r', "");
                toks.push((start, Tok::Str(v, src[pos..pos + end + 2].to_string())));
                pos += end + 2;
            }
            '\'' => {
                let mut q = pos + 1;
                loop {
                    match b.get(q) {
                        None | Some(b'\n') => {
                            return Err(SyntaxError::new(pos, "unterminated character constant"))
                        }
                        Some(b'\\') => q += 2,
                        Some(b'\'') => break,
                        Some(_) => q += 1,
                    }
                }
                let text = src
                    .get(pos..q + 1)
                    .ok_or_else(|| SyntaxError::new(pos, "unterminated character constant"))?;
                toks.push((start, Tok::CharConst(text.to_string())));
                pos = q + 1;
            }
            '$' => {
                pos += 1;
                while let Some(ch) = src[pos..].chars().next().filter(|&ch| is_alnum(ch)) {
                    pos += ch.len_utf8();
                }
                check_terminator(src, pos)?;
                toks.push((start, Tok::Variable(src[start..pos].to_string())));
            }
            '.' if !b.get(pos + 1).is_some_and(|d| d.is_ascii_digit()) => {
                pos += 1;
                while let Some(ch) = src[pos..].chars().next().filter(|&ch| is_alnum(ch)) {
                    pos += ch.len_utf8();
                }
                check_terminator(src, pos)?;
                if pos == start + 1 {
                    toks.push((start, Tok::Dot));
                } else {
                    toks.push((start, Tok::Field(src[start + 1..pos].to_string())));
                }
            }
            '+' | '-' | '.' | '0'..='9' => {
                pos = scan_number(src, pos);
                let text = &src[start..pos];
                if src[pos..].chars().next().is_some_and(is_alnum)
                    || text == "+"
                    || text == "-"
                    || text == "."
                {
                    let bad_end = pos + src[pos..].chars().next().map_or(0, |c| c.len_utf8());
                    return Err(SyntaxError::new(
                        start,
                        format!("bad number syntax: {:?}", &src[start..bad_end]),
                    ));
                }
                toks.push((start, Tok::Number(text.to_string())));
            }
            c if is_alnum(c) => {
                while let Some(ch) = src[pos..].chars().next().filter(|&ch| is_alnum(ch)) {
                    pos += ch.len_utf8();
                }
                check_terminator(src, pos)?;
                let word = &src[start..pos];
                let tok = match word {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    w => match KEYWORDS.iter().find(|k| **k == w) {
                        Some(k) => Tok::Keyword(k),
                        None => Tok::Ident(w.to_string()),
                    },
                };
                toks.push((start, tok));
            }
            c => {
                return Err(SyntaxError::new(
                    pos,
                    format!("unrecognized character in action: {}", go_rune_debug(c)),
                ));
            }
        }
    }
}

fn go_rune_debug(c: char) -> String {
    format!("U+{:04X} '{}'", c as u32, c)
}

fn check_terminator(src: &str, pos: usize) -> LexResult<()> {
    let rest = &src[pos..];
    match rest.chars().next() {
        None => Ok(()),
        Some(' ' | '\t' | '\r' | '\n' | '.' | ',' | '|' | ':' | ')' | '(') => Ok(()),
        Some(_) if rest.starts_with("}}") => Ok(()),
        Some(c) => Err(SyntaxError::new(pos, format!("bad character {}", go_rune_debug(c)))),
    }
}

fn scan_number(src: &str, mut pos: usize) -> usize {
    let b = src.as_bytes();
    if pos < b.len() && (b[pos] == b'+' || b[pos] == b'-') {
        pos += 1;
    }
    let mut digits: &[u8] = b"0123456789_";
    let mut exp: &[u8] = b"eE";
    if b.get(pos) == Some(&b'0') {
        match b.get(pos + 1) {
            Some(b'x' | b'X') => {
                pos += 2;
                digits = b"0123456789abcdefABCDEF_";
                exp = b"pP";
            }
            Some(b'o' | b'O') => {
                pos += 2;
                digits = b"01234567_";
                exp = b"";
            }
            Some(b'b' | b'B') => {
                pos += 2;
                digits = b"01_";
                exp = b"";
            }
            _ => {}
        }
    }
    while pos < b.len() && digits.contains(&b[pos]) {
        pos += 1;
    }
    if pos < b.len() && b[pos] == b'.' {
        pos += 1;
        while pos < b.len() && digits.contains(&b[pos]) {
            pos += 1;
        }
    }
    if !exp.is_empty() && pos < b.len() && exp.contains(&b[pos]) {
        pos += 1;
        if pos < b.len() && (b[pos] == b'+' || b[pos] == b'-') {
            pos += 1;
        }
        while pos < b.len() && (b[pos].is_ascii_digit() || b[pos] == b'_') {
            pos += 1;
        }
    }
    pos
}
