//! Lines that are not UTF-8 (Skald issue 20): the pipeline reads a line's bytes as Loki reads
//! a Go string. Byte counts, `len`, logfmt error positions and literal filters see the raw
//! bytes; a `line_format` that copies the line keeps them. The expected values are Loki's
//! answers over the differential corpus' `legacy` lines (`\xe9 \xff \xfe`).

use skald_model::Labels;

use super::*;
use crate::syntax::ast::{Expr, SampleExpr};
use crate::syntax::parse_expr;

/// A `legacy`-style line: 3 invalid bytes (Go-lossy text is 6 bytes longer).
const LINE: &[u8] = b"2026-11-08T00:10:00Z WARN cache \xe9 \xff \xfe user=alice msg=done";

fn stages(q: &str) -> Vec<Stage> {
    match parse_expr(q).unwrap() {
        Expr::Log(sel) => sel.stages,
        other => panic!("not a log query: {other:?}"),
    }
}

fn range(q: &str) -> (ast::LogRangeExpr, RangeOp) {
    match parse_expr(q).unwrap() {
        Expr::Sample(SampleExpr::RangeAggregation { op, range, .. }) => (*range, op),
        other => panic!("not a range aggregation: {other:?}"),
    }
}

fn run_one(q: &str, line: &[u8]) -> Option<(Vec<u8>, Labels)> {
    let p = Pipeline::new(&stages(q)).unwrap();
    let mut sp = p.for_stream(&Labels::default());
    sp.process(1, line, &[]).map(|e| (e.line.into_bytes(), e.labels.all()))
}

#[test]
fn bytes_over_time_counts_the_raw_bytes() {
    let (r, op) = range(r#"bytes_over_time({app="legacy"} [1m])"#);
    let ex = SampleExtractor::new(&r, op).unwrap();
    assert_eq!(ex.line_value(LINE), Some(LINE.len() as f64));
    let (r, op) = range(r#"bytes_over_time({app="legacy"} | regexp "user=(?P<u>\\w+)" [1m])"#);
    let ex = SampleExtractor::new(&r, op).unwrap();
    let (v, labels) = ex.for_stream(&Labels::default()).process(1, LINE, &[]).unwrap();
    assert_eq!(v, LINE.len() as f64);
    assert_eq!(labels.get("u"), Some("alice"));
}

#[test]
fn literal_filters_match_bytes_and_regexes_see_one_rune_per_invalid_byte() {
    // `é` is two bytes, not the line's lone 0xe9
    assert!(run_one(r#"{a="b"} |= "cache é""#, LINE).is_none());
    assert!(run_one(r#"{a="b"} |= "user=alice""#, LINE).is_some());
    assert!(run_one(r#"{a="b"} != "user=alice""#, LINE).is_none());
    // Go's regexp reads each invalid byte as one U+FFFD
    assert!(run_one(r#"{a="b"} |~ "cache . . . user""#, LINE).is_some());
    assert!(run_one(r#"{a="b"} |~ "cache [^ ]{2}""#, LINE).is_none());
}

#[test]
fn logfmt_error_positions_count_bytes() {
    // the key before `=` holds an invalid byte: go-logfmt's position counts bytes (22, where
    // the Go-lossy text, 2 bytes longer, would give 24)
    let line = b"level=info msg=x caf\xe9=1 k=v";
    let (_, labels) = run_one(r#"{a="b"} | logfmt --strict"#, line).unwrap();
    assert_eq!(labels.get(ERROR_LABEL), Some("LogfmtParserErr"));
    let details = labels.get(ERROR_DETAILS_LABEL).unwrap();
    assert_eq!(details, "logfmt syntax error at pos 22 : invalid key", "{details}");
}

#[test]
fn templates_count_and_keep_the_line_bytes() {
    let (_, labels) = run_one(r#"{a="b"} | label_format n="{{ __line__ | len }}""#, LINE).unwrap();
    assert_eq!(labels.get("n"), Some(LINE.len().to_string().as_str()));
    let (line, _) = run_one(r#"{a="b"} | line_format "{{ __line__ | trim }}!""#, LINE).unwrap();
    assert_eq!(line, [LINE, b"!"].concat());
    let (line, _) =
        run_one(r#"{a="b"} | line_format "{{ regexReplaceAll \"[0-9]+\" __line__ \"N\" }}""#, LINE)
            .unwrap();
    assert_eq!(line, b"N-N-NTN:N:NZ WARN cache \xe9 \xff \xfe user=alice msg=done");
    // a label that takes the line is text: U+FFFD per invalid byte
    let (_, labels) = run_one(r#"{a="b"} | label_format l="{{ __line__ }}""#, b"x\xffy").unwrap();
    assert_eq!(labels.get("l"), Some("x\u{FFFD}y"));
}

#[test]
fn decolorize_unpack_and_unchanged_lines_keep_their_bytes() {
    let (line, _) = run_one(r#"{a="b"} | decolorize"#, b"\x1b[31m\xe9t\xe9\x1b[0m").unwrap();
    assert_eq!(line, b"\xe9t\xe9");
    let (line, _) = run_one(r#"{a="b"} | json"#, LINE).unwrap();
    assert_eq!(line, LINE);
    // `unpack`'s `_entry` is a Go string: its bytes become the line
    let (line, labels) =
        run_one(r#"{a="b"} | unpack"#, b"{\"_entry\":\"caf\xe9\",\"k\":\"v\"}").unwrap();
    assert_eq!((line.as_slice(), labels.get("k")), (&b"caf\xe9"[..], Some("v")));
}

/// A truncated sequence (`\xe2\x82`, the start of a 3-byte character) is two invalid bytes to
/// Go and one "maximal subpart" to Rust's `from_utf8_lossy`: parsed values get one space per
/// byte and `json` keys one `_` per byte, as Loki's `bytes.Map` and `sanitizeLabelKey` over the Go
/// string give them.
#[test]
fn parsed_values_and_keys_read_each_invalid_byte_as_go_does() {
    let label = |line: &[u8], q: &str, name: &str| -> String {
        let (_, labels) = run_one(q, line).expect("kept");
        labels.get(name).unwrap_or("<none>").to_string()
    };
    assert_eq!(label(b"a=x\xe2\x82y", r#"{app="legacy"} | logfmt"#, "a"), "x  y");
    // `logfmt a` empties such a value instead (Loki's LogfmtExpressionParser)
    assert_eq!(label(b"a=x\xe2\x82y", r#"{app="legacy"} | logfmt a"#, "a"), "");
    assert_eq!(label(br#"{"a":"x\u00e9"}"#, r#"{app="legacy"} | json"#, "a"), "x\u{e9}");
    assert_eq!(label(b"{\"a\":\"x\xe2\x82y\"}", r#"{app="legacy"} | json"#, "a"), "x  y");
    assert_eq!(label(b"{\"k\xe2\x82\":\"v\"}", r#"{app="legacy"} | json"#, "k__"), "v");
    // Loki's logfmt decoder refuses such a key (`invalid key`) where `json` sanitizes it
    assert_eq!(label(b"k\xe2\x82=v", r#"{app="legacy"} | logfmt"#, "k__"), "<none>");
}
