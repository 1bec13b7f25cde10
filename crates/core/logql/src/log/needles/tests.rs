//! `needles`: the shapes by hand, and the one rule (an accepted line satisfies every clause)
//! over random lines, substrings, regexes and patterns.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use skald_model::{LabelMatcher, Labels, MatchType};

use super::*;
use crate::log::{required_literals, Pipeline};
use crate::syntax::ast::LineFilter;

fn lf(op: LineFilterOp, v: &str) -> Stage {
    lf_or(op, v, &[])
}

fn lf_or(op: LineFilterOp, v: &str, or: &[&str]) -> Stage {
    Stage::LineFilter(LineFilter {
        op,
        value: LineFilterValue::Literal(v.into()),
        or: or.iter().map(|s| LineFilterValue::Literal((*s).into())).collect(),
    })
}

fn eq(name: &str, v: &str) -> LabelFilterExpr {
    LabelFilterExpr::String(LabelMatcher::new(name, MatchType::Equal, v).unwrap())
}

fn x(s: &str) -> NeedleLiteral {
    NeedleLiteral::exact(s.as_bytes())
}

fn i(s: &str) -> NeedleLiteral {
    NeedleLiteral::folded(s.as_bytes())
}

/// The clauses of one regex filter.
fn re(src: &str) -> Vec<NeedleClause> {
    needles(&[lf(LineFilterOp::Regex, src)]).clauses
}

#[test]
fn contains_and_or() {
    let n = needles(&[
        lf(LineFilterOp::Contains, "needle-5kald"),
        lf_or(LineFilterOp::Contains, "FATAL", &["SEVERE"]),
        lf(LineFilterOp::Contains, ""),
        lf(LineFilterOp::NotContains, "debug"),
        lf_or(LineFilterOp::Contains, "a", &[""]),
    ]);
    assert_eq!(n.clauses, vec![vec![x("needle-5kald")], vec![x("FATAL"), x("SEVERE")]]);
    assert!(n.metadata.is_empty());
    // ip() gives nothing, even beside a literal
    let ip = Stage::LineFilter(LineFilter {
        op: LineFilterOp::Contains,
        value: LineFilterValue::Literal("x".into()),
        or: vec![LineFilterValue::Ip("10.0.0.0/8".into())],
    });
    assert!(needles(&[ip]).is_empty());
}

#[test]
fn regex_factors() {
    assert_eq!(re("needle-7f3a9c"), vec![vec![x("needle-7f3a9c")]]);
    assert_eq!(re(r"user=\w+ id=\d{3}x"), vec![vec![x("user=")], vec![x(" id=")]]);
    assert_eq!(re("foo.*bar"), vec![vec![x("foo")], vec![x("bar")]]);
    assert_eq!(re("(error|warn)ing"), vec![vec![x("erroring"), x("warning")]]);
    assert_eq!(re("colou?r"), vec![vec![x("color"), x("colour")]]);
    assert_eq!(re(r"^GET /api\b"), vec![vec![x("GET /api")]]);
    // nothing certain
    assert!(re(".*").is_empty());
    assert!(re("a*").is_empty());
    assert!(re("(foo|.*)").is_empty());
    assert!(re("(unclosed").is_empty());
    // a repetition requires its body once
    assert_eq!(re("(abc)+xyz"), vec![vec![x("abc")], vec![x("xyz")]]);
    // one-byte requirements are noise
    assert!(re("a.b").is_empty());
    // an alternation of factored branches keeps one clause of each
    assert_eq!(re("(foo.*bar|bazz.*q)"), vec![vec![x("bar"), x("bazz")]]);
}

#[test]
fn case_insensitive() {
    assert_eq!(re("(?i)error"), vec![vec![i("error")]]);
    assert_eq!(re("(?i)Error: x"), vec![vec![i("error: x")]]);
    // mixing: the whole literal is compared lowercased
    assert_eq!(re("ID-(?i:ab)"), vec![vec![i("id-ab")]]);
    // `k` also matches the Kelvin sign, `s` the long s: those stay exact alternatives
    let c = re("(?i)ks");
    assert_eq!(c.len(), 1);
    assert!(c[0].contains(&i("ks")));
    assert!(c[0].contains(&NeedleLiteral::folded("\u{212A}s".as_bytes())));
    assert!(c[0].contains(&NeedleLiteral::folded("k\u{17F}".as_bytes())));
    let n = Needles { clauses: c, metadata: vec![] };
    for line in ["KS", "\u{212A}S", "x k\u{17F} y", "Ks"] {
        assert!(n.line_satisfies(line.as_bytes()), "{line}");
    }
    assert!(!n.line_satisfies(b"k s"));
    assert!(i("error").found_in(b"An ERROR here"));
    assert!(!x("error").found_in(b"An ERROR here"));
}

#[test]
fn patterns() {
    let n = needles(&[lf(LineFilterOp::Pattern, "<_> Invalid user <_> from <_>")]);
    assert_eq!(n.clauses, vec![vec![x(" Invalid user ")], vec![x(" from ")]]);
    assert!(needles(&[lf(LineFilterOp::NotPattern, "<_> x <_>")]).is_empty());
    assert!(needles(&[lf(LineFilterOp::Pattern, "<a> x")]).is_empty());
    let n = needles(&[lf_or(LineFilterOp::Pattern, "<_> GET <_>", &["<_> POST /api<_>"])]);
    assert_eq!(n.clauses, vec![vec![x(" GET "), x(" POST /api")]]);
}

#[test]
fn stored_line_only() {
    let stages = vec![
        lf(LineFilterOp::Contains, "a1"),
        Stage::Parser(ParserStage::Json(vec![])),
        lf(LineFilterOp::Contains, "a2"),
        Stage::LineFormat("{{.msg}}".into()),
        lf(LineFilterOp::Contains, "after"),
    ];
    assert_eq!(needles(&stages).clauses, vec![vec![x("a1")], vec![x("a2")]]);
    for barrier in [Stage::Decolorize, Stage::Parser(ParserStage::Unpack)] {
        let n = needles(&[barrier, lf(LineFilterOp::Contains, "after")]);
        assert!(n.is_empty());
    }
}

#[test]
fn metadata_equalities() {
    let stages = vec![
        Stage::LabelFilter(LabelFilterExpr::And(
            Box::new(eq("trace_id", "abc123")),
            Box::new(LabelFilterExpr::Paren(Box::new(eq("pod", "p-1")))),
        )),
        Stage::LabelFilter(LabelFilterExpr::Or(Box::new(eq("a", "1")), Box::new(eq("b", "2")))),
        Stage::LabelFilter(eq("empty", "")),
        Stage::LabelFilter(eq("pod_extracted", "p-2")),
        Stage::LabelFilter(eq("__error__", "JSONParserErr")),
        Stage::LabelFilter(LabelFilterExpr::String(
            LabelMatcher::new("re", MatchType::Regex, "x").unwrap(),
        )),
        Stage::Parser(ParserStage::Logfmt {
            strict: false,
            keep_empty: false,
            extractions: vec![],
        }),
        Stage::LabelFilter(eq("level", "error")),
    ];
    let n = needles(&stages);
    assert_eq!(
        n.metadata,
        vec![("trace_id".to_string(), "abc123".to_string()), ("pod".into(), "p-1".into())]
    );
    assert!(n.clauses.is_empty());
    let n = needles(&[Stage::Drop(vec![]), Stage::LabelFilter(eq("a", "b"))]);
    assert!(n.is_empty());
}

#[test]
fn required_literals_are_one_literal_clauses() {
    let stages = vec![
        lf(LineFilterOp::Contains, "Failed password"),
        lf(LineFilterOp::Regex, "sshd"),
        lf(LineFilterOp::Regex, "ss.d"),
        lf_or(LineFilterOp::Contains, "p", &["q"]),
    ];
    let n = needles(&stages);
    for l in required_literals(&stages) {
        assert!(n.clauses.contains(&vec![x(&l)]), "{l}");
    }
}

// ---- property: an accepted line satisfies every clause ----

const ALPHABET: &[char] =
    &['a', 'b', 'k', 's', 'A', 'B', 'K', 'S', '0', '7', ' ', '-', '.', '\u{212A}', '\u{17F}', 'é'];

fn line() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(ALPHABET), 0..24)
        .prop_map(|v| v.into_iter().collect())
}

fn flip(c: char) -> char {
    if c.is_ascii_lowercase() {
        c.to_ascii_uppercase()
    } else {
        c.to_ascii_lowercase()
    }
}

/// A regex that matches `s` (each character rendered by one of `how`'s choices).
fn regex_matching(s: &str, how: &[u8], wrap: u8) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        let e = ::regex::escape(&c.to_string());
        let piece = match how.get(n).copied().unwrap_or(0) % 10 {
            0 => e,
            1 => format!("(?i:{})", ::regex::escape(&flip(c).to_string())),
            2 => format!("[{}xK]", e),
            3 => ".".to_string(),
            4 => format!("(?:{e})+"),
            5 => format!("(?:{e}|zz)"),
            6 => format!("(?:{e})?"),
            7 if c.is_ascii_alphanumeric() => r"\w".to_string(),
            8 if c.is_ascii_digit() => "[0-9]".to_string(),
            9 => format!("{e}{{1,2}}"),
            _ => e,
        };
        out.push_str(&piece);
    }
    match wrap % 5 {
        0 => out,
        1 => format!("(?i){out}"),
        2 => format!("(?:{out}|ab+)"),
        3 => format!("^.*{out}"),
        _ => format!("(?:b{{2}}|{out})k*"),
    }
}

/// Random regexes from a small grammar (literals, classes, alternations, repetitions, `(?i)`).
fn grammar_regex() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        proptest::sample::select(ALPHABET).prop_map(|c| ::regex::escape(&c.to_string())),
        Just("[a-b]".to_string()),
        Just("[kK0]".to_string()),
        Just(r"\d".to_string()),
        Just(".".to_string()),
        Just("ab".to_string()),
        Just("sk".to_string()),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..4).prop_map(|v| v.concat()),
            proptest::collection::vec(inner.clone(), 1..3)
                .prop_map(|v| format!("(?:{})", v.join("|"))),
            (inner.clone(), 0..5u8).prop_map(|(r, k)| {
                let op = ["*", "+", "?", "{2}", "{1,3}"][k as usize];
                format!("(?:{r}){op}")
            }),
            inner.prop_map(|r| format!("(?i:{r})")),
        ]
    })
}

/// A `|>` pattern whose literal parts are pieces of `s` between `<_>` captures.
fn pattern_from(s: &str, cuts: &[usize], lead: bool, trail: bool) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (chars.len() + 1)).collect();
    bounds.sort_unstable();
    bounds.dedup();
    let mut parts = Vec::new();
    for w in bounds.chunks(2) {
        if let [a, b] = w {
            if a < b {
                parts.push(chars[*a..*b].iter().collect::<String>());
            }
        }
    }
    let mut out = String::new();
    if lead {
        out.push_str("<_>");
    }
    out.push_str(&parts.join("<_>"));
    if trail && !out.is_empty() {
        out.push_str("<_>");
    }
    out
}

fn substring(s: &str, a: usize, len: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    let a = a % (chars.len() + 1);
    chars[a..(a + len).min(chars.len())].iter().collect()
}

/// Checks the rule for `stages` over `lines`; returns how many lines were accepted.
fn check(stages: &[Stage], lines: &[String]) -> Result<usize, TestCaseError> {
    let Ok(p) = Pipeline::new(stages) else { return Ok(0) };
    let n = needles(stages);
    let mut sp = p.for_stream(&Labels::default());
    let mut accepted = 0;
    for l in lines {
        if sp.process(0, l.as_bytes(), &[]).is_some() {
            accepted += 1;
            prop_assert!(n.line_satisfies(l.as_bytes()), "line {l:?} stages {stages:?} {n:?}");
        }
    }
    Ok(accepted)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn contains_filters(lines in proptest::collection::vec(line(), 1..8),
                        picks in proptest::collection::vec((0usize..8, 0usize..30, 0usize..6, any::<bool>()), 1..4)) {
        let mut stages = Vec::new();
        for (k, (li, a, len, or)) in picks.iter().enumerate() {
            let s = substring(&lines[li % lines.len()], *a, *len);
            let other = substring(&lines[(li + k + 1) % lines.len()], a / 2, len + 1);
            stages.push(if *or {
                lf_or(LineFilterOp::Contains, &s, &[&other])
            } else {
                lf(LineFilterOp::Contains, &s)
            });
        }
        check(&stages, &lines)?;
    }

    #[test]
    fn regexes_built_from_lines(lines in proptest::collection::vec(line(), 1..8),
                                li in 0usize..8, a in 0usize..24, len in 1usize..12,
                                how in proptest::collection::vec(any::<u8>(), 12), wrap in any::<u8>(),
                                other in grammar_regex(), or in any::<bool>()) {
        let s = substring(&lines[li % lines.len()], a, len);
        let r = regex_matching(&s, &how, wrap);
        let stage = if or { lf_or(LineFilterOp::Regex, &r, &[&other]) } else { lf(LineFilterOp::Regex, &r) };
        check(&[stage], &lines)?;
    }

    #[test]
    fn grammar_regexes(lines in proptest::collection::vec(line(), 1..12), r in grammar_regex()) {
        check(&[lf(LineFilterOp::Regex, &r)], &lines)?;
    }

    #[test]
    fn patterns_from_lines(lines in proptest::collection::vec(line(), 1..8), li in 0usize..8,
                           cuts in proptest::collection::vec(0usize..30, 0..6),
                           lead in any::<bool>(), trail in any::<bool>(), negate in any::<bool>()) {
        let p = pattern_from(&lines[li % lines.len()], &cuts, lead, trail);
        let op = if negate { LineFilterOp::NotPattern } else { LineFilterOp::Pattern };
        check(&[lf(op, &p), lf(LineFilterOp::NotContains, "zzz")], &lines)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Label equalities: an accepted entry has each required pair among its stream labels
    /// or its structured metadata.
    #[test]
    fn metadata_requirements(stream in proptest::collection::btree_map("[ab]|pod", "[xy]", 0..3),
                             meta in proptest::collection::btree_map("[ab]|pod", "[xy]", 0..3),
                             filters in proptest::collection::vec(("[ab]|pod|pod_extracted", "[xy]"), 1..3)) {
        let labels = Labels::from_pairs(stream.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let sm: Vec<skald_model::Label> =
            meta.iter().map(|(k, v)| skald_model::Label::new(k.as_str(), v.as_str())).collect();
        let stages: Vec<Stage> = filters.iter().map(|(k, v)| Stage::LabelFilter(eq(k, v))).collect();
        let p = Pipeline::new(&stages).unwrap();
        let n = needles(&stages);
        if p.for_stream(&labels).process(0, b"line", &sm).is_some() {
            for (k, v) in &n.metadata {
                prop_assert!(stream.get(k) == Some(v) || meta.get(k) == Some(v), "{k}={v}");
            }
        }
    }
}

/// The generators above produce accepted lines often enough for the property to say something.
#[test]
fn generators_accept_lines() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (
        proptest::collection::vec(line(), 1..8),
        0usize..24,
        1usize..12,
        proptest::collection::vec(any::<u8>(), 12),
        any::<u8>(),
    );
    let mut accepted = 0;
    for _ in 0..200 {
        let (lines, a, len, how, wrap) = strategy.new_tree(&mut runner).unwrap().current();
        let r = regex_matching(&substring(&lines[0], a, len), &how, wrap);
        accepted += check(&[lf(LineFilterOp::Regex, &r)], &lines).unwrap();
    }
    assert!(accepted >= 200, "{accepted}");
}
