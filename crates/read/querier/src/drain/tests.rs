use super::*;

fn toks(line: &str) -> Vec<String> {
    split_punctuation(line).tokens
}

#[test]
fn punctuation_tokens_keep_paths_times_and_spacing() {
    let t = split_punctuation("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster");
    assert_eq!(
        t.tokens,
        [
            "Dec",
            "10",
            "06:55:46",
            "LabSZ",
            "sshd",
            "[",
            "24200",
            "]",
            ":",
            "Invalid",
            "user",
            "webmaster"
        ]
    );
    assert_eq!(
        join_spaced(&t.tokens, &t.spaces),
        "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster"
    );
    // '=' stands alone; symbols stay inside tokens; double spaces are kept
    let t = split_punctuation("a=b  x+y <tag> /usr/lib");
    assert_eq!(t.tokens, ["a", "=", "b", "x+y", "<tag>", "/usr/lib"]);
    assert_eq!(join_spaced(&t.tokens, &t.spaces), "a=b  x+y <tag> /usr/lib");
    // leading spaces are not remembered
    let t = split_punctuation("  x y");
    assert_eq!(join_spaced(&t.tokens, &t.spaces), "x y");
    assert_eq!(toks("a\tb c d"), ["a\tb", "c", "d"]);
    // Unicode classes: letters and numbers stay in tokens, punctuation stands alone,
    // symbols stay in tokens
    assert_eq!(toks("héllo “wörld” ٣x a€b"), ["héllo", "“", "wörld", "”", "٣x", "a€b"]);
}

#[test]
fn logfmt_pairs_and_rendering() {
    let p = parse_logfmt_pairs(r#"level=info msg="job started" id=7 empty= bare"#).unwrap();
    assert_eq!(
        p,
        [
            ("level".to_string(), "info".to_string()),
            ("msg".into(), "job started".into()),
            ("id".into(), "7".into()),
            ("empty".into(), "".into()),
            ("bare".into(), "".into()),
        ]
    );
    assert!(parse_logfmt_pairs(r#"a="unterminated"#).is_none());
    assert!(parse_logfmt_pairs(r#"{"json":1}"#).is_none());
    assert!(parse_logfmt_pairs("=x").is_none());
    let t = LineFormat::Logfmt.tokenize(r#"ts=2024-01-01 level=info msg="a b""#, 3000).unwrap();
    assert_eq!(t.tokens, ["ts", PARAM, "level", "info", "msg", "a b"]);
    assert_eq!(LineFormat::Logfmt.render(&t).unwrap(), r#"ts=<_> level=info msg="a b""#);
    let esc = Tokens { tokens: vec!["m".into(), "\u{1b}[1mx\u{1b}[0m".into()], spaces: vec![] };
    assert_eq!(LineFormat::Logfmt.render(&esc).unwrap(), r#"m="\u001b[1mx\u001b[0m""#);
}

#[test]
fn formats_are_guessed_from_a_line() {
    assert_eq!(detect_format(r#"{"msg":"x"}"#), LineFormat::Json);
    assert_eq!(detect_format(r#"level=info msg="job done" took=1s"#), LineFormat::Logfmt);
    assert_eq!(detect_format("Dec 10 06:55:46 LabSZ sshd[24200]: hi"), LineFormat::Unstructured);
    assert_eq!(detect_format("x"), LineFormat::Unstructured);
}

#[test]
fn json_lines_mine_their_message_field() {
    let t = LineFormat::Json
        .tokenize(r#"{"level":"info","msg":"user 42 logged in","n":1}"#, 3000)
        .unwrap();
    assert_eq!(t.tokens, ["user", "42", "logged", "in"]);
    assert_eq!(LineFormat::Json.render(&t).unwrap(), "<_>user 42 logged in<_>");
    assert!(LineFormat::Json.tokenize(r#"{"status":200}"#, 3000).is_none());
}

#[test]
fn placeholders_collapse() {
    assert_eq!(collapse_params("a <_><_><_> b<_><_>"), "a <_> b<_>");
    assert_eq!(collapse_params("<_>x<_>"), "<_>x<_>");
}

fn drain() -> Drain {
    Drain::new(DrainSettings::default(), LineFormat::Unstructured)
}

#[test]
fn similar_lines_share_a_template() {
    let mut d = drain();
    let base = 1_700_000_000_000_000_000i64;
    // variable tokens with digits go down the `<_>` branch of the tree; a variable word
    // early in the line (no digits) would split the tree, as Drain assumes leading
    // tokens are constant
    for (i, user) in ["alice", "bob", "carol", "dave"].iter().enumerate() {
        let line = format!("Accepted password for uid{i} from 10.0.0.{i} port 22 ssh2 {user}");
        assert!(d.train(&line, base + i as i64 * 1_000_000_000));
    }
    d.train("Connection closed by 10.0.0.9 port 4242 [preauth]", base + 5_000_000_000);
    assert_eq!(d.len(), 2);
    let mut p = d.patterns(0, i64::MAX, 10_000);
    p.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(p[0].0, "Accepted password for <_> from <_> port 22 ssh2 <_>");
    assert_eq!(p[0].1.iter().map(|s| s.1).sum::<i64>(), 4);
    assert_eq!(p[1].0, "Connection closed by 10.0.0.9 port 4242 [preauth]");
}

#[test]
fn dissimilar_lines_of_equal_length_stay_apart() {
    let mut d = drain();
    d.train("alpha beta gamma delta", 0);
    d.train("one two three four", 0);
    assert_eq!(d.len(), 2);
    // three of four tokens equal: joins
    d.train("alpha beta gamma epsilon", 0);
    assert_eq!(d.len(), 2);
    let names: Vec<String> = d.patterns(0, 1, 10_000).into_iter().map(|p| p.0).collect();
    assert!(names.contains(&"alpha beta gamma <_>".to_string()), "{names:?}");
}

#[test]
fn too_short_and_too_long_lines_are_skipped() {
    let mut d = drain();
    assert!(!d.train("a b c", 0));
    let long = vec!["w"; 81].join(" ");
    assert!(!d.train(&long, 0));
    let over = "x".repeat(3001);
    assert!(!d.train(&format!("a b c {over}"), 0));
    assert_eq!(d.len(), 0);
}

#[test]
fn least_recently_used_templates_are_evicted_and_learning_pauses() {
    let settings = DrainSettings { max_clusters: 2, ..DrainSettings::default() };
    let mut d = Drain::new(settings, LineFormat::Unstructured);
    d.train("one one one one", 0);
    d.train("two two two two", 0);
    d.train("three three three three", 0);
    assert_eq!(d.len(), 2);
    // 1 evicted of 3 added: above 0.25, the next line is refused for 10 minutes
    assert!(!d.train("four four four four", 1));
    assert!(!d.train("one one one one", BLOCK_NS - 1));
    assert!(d.train("one one one one", BLOCK_NS + 1));
}

#[test]
fn samples_are_bucketed_by_step_with_zeros_between() {
    let mut s = Samples::default();
    for ts in [0, 5_000, 12_000, 95_000] {
        s.add(ts, 10_000, 3_600_000);
    }
    let mut raw = Vec::new();
    s.for_range(0, 100_000, 10_000, 10_000, &mut raw);
    assert_eq!(raw, [(0, 2), (10_000, 1), (90_000, 1)]);
    let mut by_min = Vec::new();
    s.for_range(0, 100_000, 60_000, 10_000, &mut by_min);
    assert_eq!(by_min, [(0, 3), (60_000, 1)]);
    let mut by_30s = Vec::new();
    s.for_range(0, 100_000, 30_000, 10_000, &mut by_30s);
    assert_eq!(by_30s, [(0, 3), (30_000, 0), (60_000, 0), (90_000, 1)]);
    // a new chunk starts once the first bucket is max_chunk_age old
    let mut s = Samples::default();
    s.add(0, 10_000, 60_000);
    s.add(60_000, 10_000, 60_000);
    assert_eq!(s.chunks.len(), 2);
}

#[test]
fn digits_route_to_the_wildcard_branch() {
    let mut d = drain();
    d.train("job 1234 finished ok", 0);
    d.train("job 99 finished ok", 0);
    assert_eq!(d.len(), 1);
    assert_eq!(d.patterns(0, 1, 10_000)[0].0, "job <_> finished ok");
}
