//! Fuzzes the LogQL parser: no input may panic, and whatever parses must print to a query
//! that parses again and prints the same way (printing reaches a fixed point).
#![no_main]

use libfuzzer_sys::fuzz_target;
use skald_logql::syntax::{parse_expr, parse_expr_unchecked};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_expr_unchecked(input);
    let Ok(expr) = parse_expr(input) else {
        return;
    };
    let printed = expr.to_string();
    // Like Loki, the lexer turns any unknown character (non-ASCII, control) into an identifier
    // that the printer then quotes, and the printer prints folded NaN/Inf literals; neither
    // parses back, in Loki either.
    let plain = only_known_chars(input);
    // A literal folded to negative zero prints as `-0`, which Loki's lexer (and Skald's)
    // reads as a negative duration.
    let b = printed.as_bytes();
    let neg_zero = b.windows(2).enumerate().any(|(i, w)| {
        w == b"-0" && !b.get(i + 2).is_some_and(|c| c.is_ascii_digit() || *c == b'.')
    });
    if !plain || neg_zero || printed.contains("NaN") || printed.contains("Inf") {
        return;
    }
    let reparsed = match parse_expr(&printed) {
        Ok(e) => e,
        Err(e) => panic!("printed form does not parse: {input:?} -> {printed:?}: {e}"),
    };
    let printed2 = reparsed.to_string();
    if let Ok(again) = parse_expr(&printed2) {
        assert_eq!(again.to_string(), printed2, "printing is not stable for {input:?}");
    } else {
        panic!("second printed form does not parse: {printed2:?}");
    }
});

/// True when every character outside string literals and comments is one Loki's lexer knows
/// (anything else becomes an IDENTIFIER token that prints quoted and does not parse back).
fn only_known_chars(input: &str) -> bool {
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '`' => {
                for d in chars.by_ref() {
                    if d == '`' {
                        break;
                    }
                }
            }
            '#' => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | ' ' | '\t' | '\n' | '\r' => {}
            ',' | '.' | '{' | '}' | '=' | '|' | '(' | ')' | '[' | ']' | '+' | '-' | '*' | '/'
            | '%' | '^' | '>' | '<' | '!' | '~' => {}
            _ => return false,
        }
    }
    true
}
