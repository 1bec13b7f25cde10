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
    // Like Loki, the printer quotes non-ASCII matcher names and prints folded NaN/Inf
    // literals, neither of which parses back.
    if !input.is_ascii() || printed.contains("NaN") || printed.contains("Inf") {
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
