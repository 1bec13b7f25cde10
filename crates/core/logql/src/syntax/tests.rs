//! Parser/printer tests: Loki's reference queries, exact printing and error texts, operator
//! precedence, a round-trip property over generated ASTs and robustness on arbitrary input.

use proptest::prelude::*;
use skald_model::{LabelMatcher, MatchType};

use super::ast::*;
use super::{goutil, parse_expr, parse_expr_unchecked, parse_matchers};

/// Every query string in the reference `queries.json` that Loki accepted.
const REFERENCE_QUERIES: &[&str] = &[
    r####"{job="apache"}"####,
    r####"{job="openssh", host="node-0"}"####,
    r####"{job=~"hdfs|hadoop", env="test"}"####,
    r####"{job="web"} |= "DELETE""####,
    r####"{job="openssh"} |= "Failed password" != "root""####,
    r####"{job="zookeeper"} |~ "(?i)exception""####,
    r####"{job="hdfs"} !~ "INFO""####,
    r####"{job="openssh"} |> "<_> Invalid user <_> from <_>""####,
    r####"{job="apache"} !> "<_>[notice]<_>""####,
    r####"{job="bgl"} |= "FATAL" or "SEVERE""####,
    r####"{job="openssh"} |= ip("173.234.31.0/24")"####,
    r####"{job="apache"} | regexp "\\[(?P<severity>notice|error|warn)\\] (?P<msg>.*)" | severity="error""####,
    r####"{job="openssh"} | pattern "<_> <_> <_> <host> sshd[<pid>]: <msg>" | pid > 24500"####,
    r####"{job="web"} | json | status >= 500"####,
    r####"{job="web"} | json method, code="status", up="upstream.host", tag0="tags[0]" | code = 404 | line_format "{{.method}} {{.code}} via {{.up}} [{{.tag0}}]""####,
    r####"{job="worker"} | logfmt | took > 1m"####,
    r####"{job="worker"} | logfmt | size > 5MB"####,
    r####"{job="web"} | json | (status = 500 or status = 503) and latency_ms > 900 or upstream_host = "static-1" and method = "DELETE""####,
    r####"{job="web"} | json | __error__ != """####,
    r####"{job="web"} | json | line_format "{{ .method | lower }} {{ .path | trunc 12 }} {{ .status }} {{ default \"none\" .missing }} {{ .user_agent | replace \" \" \"_\" | upper | trunc 10 }} {{ __timestamp__ | unixEpoch }} {{ len __line__ }}""####,
    r####"{job="worker"} | logfmt | label_format lvl=level, where="{{.queue}}/{{.job_id}}" | line_format "{{.lvl}} {{.where}} {{.took}}""####,
    r####"{job="worker"} | logfmt | drop msg, took, size, job_id, attempt, level="debug""####,
    r####"{job="web"} | json | keep job, method, status"####,
    r####"{job="worker"} |~ "\\x1b\\[" | decolorize"####,
    r####"{job="web"} | unpack"####,
    r####"{source="loghub"} | trace_id != "" | job=~"hdfs|spark""####,
    r####"sum by (job) (count_over_time({env="test"}[5m]))"####,
    r####"rate({job="openssh"} |= "Failed password" [1m])"####,
    r####"sum by (host) (bytes_over_time({job="android"}[2m]))"####,
    r####"sum(bytes_rate({job="web"}[10m]))"####,
    r####"sum by (method) (sum_over_time({job="web"} | json | __error__="" | unwrap bytes [10m]))"####,
    r####"avg_over_time({job="web"} | json | __error__="" | unwrap latency_ms [10m]) by (method)"####,
    r####"min_over_time({job="web"} | json | __error__="" | unwrap latency_ms [30m]) by (status)"####,
    r####"max_over_time({job="web"} | json | __error__="" | unwrap latency_ms [30m]) by (upstream_host)"####,
    r####"stddev_over_time({job="web"} | json | __error__="" | unwrap latency_ms [30m]) by (method)"####,
    r####"stdvar_over_time({job="web"} | json | __error__="" | unwrap bytes [30m]) by (status)"####,
    r####"quantile_over_time(0.95, {job="web"} | json | __error__="" | unwrap latency_ms [15m]) by (method)"####,
    r####"first_over_time({job="worker"} | logfmt | unwrap attempt [10m]) by (queue)"####,
    r####"last_over_time({job="worker"} | logfmt | unwrap attempt [10m]) by (queue)"####,
    r####"avg_over_time({job="worker"} | logfmt | unwrap duration(took) | __error__="" [10m]) by (level)"####,
    r####"sum by (queue) (sum_over_time({job="worker"} | logfmt | unwrap bytes(size) | __error__="" [10m]))"####,
    r####"sum by (__error__) (count_over_time({job="web"} | json [30m]))"####,
    r####"sum(rate_counter({job="web"} | json | __error__="" | unwrap bytes [10m]))"####,
    r####"sum by (queue) (rate({job="worker"} | logfmt | unwrap attempt [10m]))"####,
    r####"absent_over_time({job="nosuchjob"}[10m])"####,
    r####"absent_over_time({job="openssh", host="node-1"}[5m])"####,
    r####"avg without (host) (count_over_time({source="loghub", job=~"linux|spark"}[5m]))"####,
    r####"count(sum by (job) (count_over_time({env="test"}[10m]))) + max(sum by (job) (count_over_time({env="test"}[10m]))) - min(sum by (job) (count_over_time({env="test"}[10m])))"####,
    r####"stddev by (env) (sum by (env, job) (count_over_time({env="test"}[10m]))) or stdvar by (source) (sum by (source, job) (count_over_time({source="loghub"}[10m])))"####,
    r####"topk(3, sum by (job) (bytes_over_time({env="test"}[10m])))"####,
    r####"bottomk(2, sum by (job) (bytes_over_time({env="test"}[10m])))"####,
    r####"sum by (job) (count_over_time({env="test"} |~ "(?i)error" [10m])) / on(job) sum by (job) (count_over_time({env="test"}[10m]))"####,
    r####"sum by (job) (count_over_time({env="test"}[10m])) > bool 500"####,
    r####"sum by (job, host) (count_over_time({source="loghub"}[10m])) / ignoring(host) group_left sum by (job) (count_over_time({source="loghub"}[10m]))"####,
    r####"sum(rate({job="web"}[5m])) * 60 + 2 ^ 2"####,
    r####"sum by (status) (count_over_time({job="web"} | json | __error__="" [30m])) > 20"####,
    r####"(sum by (job) (count_over_time({env="test"}[10m])) and sum by (job) (count_over_time({env="test"} |= "error" [10m]))) unless sum by (job) (count_over_time({job="web"}[10m]))"####,
    r####"sum(count_over_time({job="nosuchjob"}[5m])) or vector(0)"####,
    r####"label_replace(sum by (job) (count_over_time({source="loghub"}[10m])), "system", "sys-$1", "job", "(h.*)")"####,
    r####"sum(count_over_time({job="web"}[10m] offset 30m))"####,
    r####"vector(1)+vector(1)"####,
    r####"sum by (job) (count_over_time({env="test"}[30m]))"####,
    r####"topk(3, sum by (path) (sum_over_time({job="web"} | json | __error__="" | unwrap bytes [1h])))"####,
    r####"sort_desc(sum by (job) (bytes_over_time({env="test"}[1h])))"####,
    r####"sort(sum by (level) (count_over_time({job="worker"} | logfmt [1h])))"####,
    r####"quantile_over_time(0.5, {job="web"} | json | __error__="" | unwrap latency_ms [1h]) by (method)"####,
    r####"1 + 2 * 3"####,
    r####"{job="web"}"####,
    r####"{job="openssh"}"####,
    r####"{job=~"h.*", host="node-0"}"####,
    r####"{format=~".+"}"####,
    r####"{env="test"}"####,
    r####"{source="loghub"}"####,
    r####"{job=~"web|worker|openssh"}"####,
    r####"{job="worker"}"####,
    r####"{job="web"}|json|status>=500|line_format "{{.path}}""####,
    r####"sum by(job)(rate({env="test"}|="error"[5m]))>0"####,
    r####"count_over_time({job="web"}[5m])"####,
    r####"sum_over_time({job="worker"} | logfmt | unwrap took [30m])"####,
];

fn p(q: &str) -> Expr {
    match parse_expr(q) {
        Ok(e) => e,
        Err(e) => panic!("{q}: {e}"),
    }
}

fn err(q: &str) -> String {
    match parse_expr(q) {
        Ok(e) => panic!("{q} parsed as {e:?}"),
        Err(e) => e.to_string(),
    }
}

fn fmt(q: &str) -> String {
    p(q).to_string()
}

#[test]
fn reference_queries_parse_and_print_stably() {
    for q in REFERENCE_QUERIES {
        let e1 = p(q);
        let s1 = e1.to_string();
        let e2 = match parse_expr(&s1) {
            Ok(e) => e,
            Err(e) => panic!("reparse of {s1:?} (from {q:?}) failed: {e}"),
        };
        assert_eq!(e1, e2, "{q} -> {s1}");
        assert_eq!(s1, e2.to_string());
    }
}

#[test]
fn reference_format_query() {
    assert_eq!(
        fmt(r#"{job="web"}|json|status>=500|line_format "{{.path}}""#),
        r#"{job="web"} | json | status>=500 | line_format "{{.path}}""#
    );
    assert_eq!(
        fmt(r#"sum by(job)(rate({env="test"}|="error"[5m]))>0"#),
        r#"(sum by (job)(rate({env="test"} |= "error"[5m])) > 0)"#
    );
}

#[test]
fn reference_errors() {
    assert_eq!(
        err(r#"{job="web"} | json |="#),
        "parse error at line 1, col 22: syntax error: unexpected $end, expecting STRING or ip"
    );
    assert_eq!(
        err(r#"{job="web"} |~ "(unclosed""#),
        "parse error : stage '|~ \"(unclosed\"' : error parsing regexp: missing closing ): `(unclosed`"
    );
    assert_eq!(
        err(r#"{job=~".*"}"#),
        "parse error : queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"
    );
    assert_eq!(err(""), "parse error : syntax error: unexpected $end");
}

#[test]
fn syntax_error_positions() {
    let cases = [
        ("unk({ foo = \"bar\" }[5m])", "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER"),
        (
            "label_replace(rate({ foo = \"bar\" }[5m]),\"\")",
            "parse error at line 1, col 43: syntax error: unexpected ), expecting ,",
        ),
        ("rate({ foo = \"bar\" }[5)", "parse error at line 0, col 21: missing closing ']' in duration"),
        ("min({ foo = \"bar\" }[5m])", "parse error at line 0, col 20: syntax error: unexpected RANGE"),
        (
            "rate({ foo = \"bar\" }[5minutes])",
            "parse error at line 0, col 21: unknown unit \"minutes\" in duration \"5minutes\"",
        ),
        ("{ foo = \"bar\" }|logfmt|addr>=ip(\"1.2.3.4\")", "parse error at line 1, col 30: syntax error: unexpected ip"),
        ("bottomk(he,count_over_time({ foo = \"bar\" }[5h]))", "parse error at line 1, col 9: syntax error: unexpected IDENTIFIER"),
        ("stddev({ foo = \"bar\" })", "parse error at line 1, col 23: syntax error: unexpected )"),
        ("{foo=\"bar}", "parse error at line 1, col 6: literal not terminated"),
        ("{foo=\"bar\"", "parse error at line 1, col 11: syntax error: unexpected $end, expecting } or ,"),
        ("{foo=\"bar\"} |~", "parse error at line 1, col 15: syntax error: unexpected $end, expecting STRING or ip"),
        ("{foo=\"bar\"} \"foo\"", "parse error at line 1, col 13: syntax error: unexpected STRING"),
        ("{foo=\"bar\"} foo", "parse error at line 1, col 13: syntax error: unexpected IDENTIFIER"),
        ("bool 1 > 1 > bool 1", "parse error at line 1, col 1: syntax error: unexpected bool"),
        (
            "quantile_over_time(foo,{namespace=\"tns\"} | unwrap latency [5m])",
            "parse error at line 1, col 20: syntax error: unexpected IDENTIFIER, expecting NUMBER or { or (",
        ),
        ("vector(abc)", "parse error at line 1, col 8: syntax error: unexpected IDENTIFIER, expecting NUMBER"),
        ("#{app=\"foo\"} | json", "parse error at line 1, col 20: syntax error: unexpected $end"),
        (
            "count without (rate({namespace=\"apps\"}[15s]))",
            "parse error at line 1, col 16: syntax error: unexpected RATE, expecting IDENTIFIER or )",
        ),
        ("{a=\"b\"}\n| json |", "parse error at line 2, col 9: syntax error: unexpected $end"),
    ];
    for (q, want) in cases {
        assert_eq!(err(q), want, "{q}");
    }
}

#[test]
fn semantic_errors() {
    let cases = [
        ("absent_over_time({ foo = \"bar\" }[5h]) by (foo)", "grouping not allowed for absent_over_time aggregation"),
        ("approx_topk(2, count_over_time({ foo = \"bar\" }[5h])) by (foo)", "grouping not allowed for approx_topk aggregation"),
        (
            "label_replace(rate({ foo = \"bar\" }[5m]),\"foo\",\"$1\",\"bar\",\"^^^^x43\\\\q\")",
            "invalid regex in label_replace: error parsing regexp: invalid escape sequence: `\\q`",
        ),
        ("sum(3 ,count_over_time({ foo = \"bar\" }[5h]))", "unsupported parameter for operation sum(3,"),
        ("topk(count_over_time({ foo = \"bar\" }[5h]))", "parameter required for operation topk"),
        ("bottomk(1.2,count_over_time({ foo = \"bar\" }[5h]))", "invalid parameter bottomk(1.2,"),
        (
            "{app=\"foo\"} | logfmt | status_code > 0x10",
            "unable to parse literal as a float: strconv.ParseFloat: parsing \"0x10\": invalid syntax",
        ),
        ("count_over_time({app=\"foo\"} |= \"foo\" | json | unwrap foo [5m])", "invalid aggregation count_over_time with unwrap"),
        ("sum_over_time({app=\"foo\"} |= \"bar\" | json [5m])", "invalid aggregation sum_over_time without unwrap"),
        ("sum_over_time({a=\"b\"} | unwrap latency [5m]) by (foo)", "grouping not allowed for sum_over_time aggregation"),
        ("sum_over_time(50,{a=\"b\"} | unwrap latency [5m])", "parameter 50 not supported for operation sum_over_time"),
        ("quantile_over_time({a=\"b\"} | unwrap latency [5m])", "parameter required for operation quantile_over_time"),
        ("{a=\"b\"} + 1", "unexpected type for left leg of binary operation (+): *syntax.MatchersExpr"),
        ("1 - {a=\"b\"} |= \"x\"", "unexpected type for right leg of binary operation (-): *syntax.PipelineExpr"),
        ("sum(rate({a=\"b\"}[1m])) or 1", "unexpected literal for right leg of logical/set binary operation (or): 1.000000"),
        ("sort by (a) (rate({a=\"b\"}[1m]))", "sort and sort_desc doesn't allow grouping by "),
        ("{a=~\"(\"}", "error parsing regexp: missing closing ): `(`"),
        ("{a=\"b\"} | regexp \"(.*)\"", "invalid regexp parser: at least one named capture must be supplied"),
        ("{a=\"b\"} | pattern \"<_> foo\"", "invalid pattern parser: at least one capture is required"),
        ("{a=\"b\"} | pattern \"<a><b>\"", "invalid pattern parser: found consecutive capture '<a><b>': invalid expression"),
        ("rate({a=~\".*\"}[1m])", "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"),
    ];
    for (q, want) in cases {
        assert_eq!(err(q), format!("parse error : {want}"), "{q}");
    }
    assert_eq!(
        parse_matchers("{a=\"b\"} |= \"x\"").unwrap_err().to_string(),
        "only label matchers are supported"
    );
    let big = format!("{{a=\"{}\"}}", "x".repeat(140_000));
    assert_eq!(err(&big), "parse error : input size too long (140006 > 131072)");
}

#[test]
fn printing() {
    let cases = [
        ("{a=\"b\"} != \"x\" or \"y\"", "{a=\"b\"} != \"x\" != \"y\""),
        (
            "{a=\"b\"} |= \"x\" or ip(\"1.1.1.1\") |~ `a\\d`",
            "{a=\"b\"} |= \"x\" or ip(\"1.1.1.1\") |~ \"a\\\\d\"",
        ),
        ("{a=\"b\"} | logfmt --strict --keep-empty", "{a=\"b\"} | logfmt --strict --keep-empty"),
        (
            "{a=\"b\"} | logfmt --keep-empty a, b=\"c\"",
            "{a=\"b\"} | logfmt --keep-empty a=\"a\",b=\"c\"",
        ),
        ("{a=\"b\"} | json a, b=\"x.y\"", "{a=\"b\"} | json a=\"a\",b=\"x.y\""),
        (
            "{a=\"b\"} | x > 1.5s, y <= 20MB z == 2 or w = ip(\"10.0.0.0/8\")",
            "{a=\"b\"} | ( x>1.5s , ( y<=20MB , ( z==2 or w=ip(\"10.0.0.0/8\") ) ) )",
        ),
        (
            "{a=\"b\"} | x=~\"5..\" | y=~\"foo|bar\" | z!~\"5..\"",
            "{a=\"b\"} | x=~`5..` | y=~\"foo|bar\" | z!~\"5..\"",
        ),
        (
            "{a=\"b\"} | label_format x=y, z=\"{{.a}}\" | drop a, b=\"c\" | keep d | decolorize",
            "{a=\"b\"} | label_format x=y,z=\"{{.a}}\" | drop a,b=\"c\" | keep d | decolorize",
        ),
        (
            "sum_over_time({a=\"b\"} | unwrap bytes(x) | __error__=\"\" [5m] offset 1h)",
            "sum_over_time({a=\"b\"} | unwrap bytes(x) | __error__=\"\"[5m] offset 1h0m0s)",
        ),
        (
            "rate({a=\"b\"}[90s] offset -5m |= \"x\")",
            "rate({a=\"b\"} |= \"x\"[1m30s] offset -5m0s)",
        ),
        (
            "quantile_over_time(0.99, ({a=\"b\"} | unwrap x)[1d]) without (c)",
            "quantile_over_time(0.99,{a=\"b\"} | unwrap x[1d]) without (c)",
        ),
        ("topk by (a) (3, rate({a=\"b\"}[7d]))", "topk by (a)(3,rate({a=\"b\"}[1w]))"),
        ("sum without () (rate({a=\"b\"}[1m]))", "sum without ()(rate({a=\"b\"}[1m]))"),
        ("sum by () (rate({a=\"b\"}[1m]))", "sum(rate({a=\"b\"}[1m]))"),
        (
            "rate({a=\"b\"}[1m]) / on (a) group_left (b) rate({a=\"b\"}[1m])",
            "(rate({a=\"b\"}[1m]) / on (a) group_left (b) rate({a=\"b\"}[1m]))",
        ),
        (
            "rate({a=\"b\"}[1m]) > bool on () rate({a=\"b\"}[1m])",
            "(rate({a=\"b\"}[1m]) > bool on ()  rate({a=\"b\"}[1m]))",
        ),
        ("1 + 2 * 3", "7"),
        (
            "vector(1) / on (a) group_left vector(1)",
            "(vector(1.000000) / on (a) group_left vector(1.000000))",
        ),
        (
            "vector(1) / on (a) group_right () (vector(1) + vector(2))",
            "(vector(1.000000) / on (a) group_right () (vector(1.000000) + vector(2.000000)))",
        ),
        ("(1 + 2) * 3 ^ 2 ^ 0.5 - -1", "15.186413163512247"),
        ("1000000 * 2", "2e+06"),
        ("vector(1)+vector(1)", "(vector(1.000000) + vector(1.000000))"),
        (
            "label_replace(vector(1), \"a\", \"$1\", \"b\", \"(.*)\")",
            "label_replace(vector(1.000000),\"a\",\"$1\",\"b\",\"(.*)\")",
        ),
    ];
    for (q, want) in cases {
        assert_eq!(fmt(q), want, "{q}");
    }
}

#[test]
fn precedence() {
    // binary operators
    assert_eq!(
        fmt("vector(1) + vector(2) * vector(3) ^ vector(4) ^ vector(5) or vector(6) and vector(7) > vector(8)")
            .replace("vector(", "v(").replace(".000000", ""),
        "((v(1) + (v(2) * (v(3) ^ (v(4) ^ v(5))))) or (v(6) and (v(7) > v(8))))"
    );
    assert_eq!(
        fmt("vector(1) - vector(2) - vector(3) / vector(4) % vector(5) unless vector(6)")
            .replace("vector(", "v(")
            .replace(".000000", ""),
        "(((v(1) - v(2)) - ((v(3) / v(4)) % v(5))) unless v(6))"
    );
    // label filters: and > or, comma/space absorb the rest
    let lf = |q: &str| match p(&format!("{{a=\"b\"}} | {q}")) {
        Expr::Log(l) => l.stages[0].to_string(),
        _ => unreachable!(),
    };
    assert_eq!(lf("a=1 or b=2 and c=3"), "| ( a==1 or ( b==2 , c==3 ) )");
    assert_eq!(lf("a=1 and b=2 or c=3"), "| ( ( a==1 , b==2 ) or c==3 )");
    assert_eq!(lf("a=1 or b=2 or c=3"), "| ( ( a==1 or b==2 ) or c==3 )");
    assert_eq!(lf("a=1, b=2 or c=3"), "| ( a==1 , ( b==2 or c==3 ) )");
    assert_eq!(lf("a=1 b=2 c=3"), "| ( a==1 , ( b==2 , c==3 ) )");
    assert_eq!(lf("a=1 or b=2, c=3 or d=4"), "| ( a==1 or ( b==2 , ( c==3 or d==4 ) ) )");
    assert_eq!(
        lf("(status = 500 or status = 503) and latency_ms > 900 or upstream_host = \"static-1\" and method = \"DELETE\""),
        "| ( ( ( status==500 or status==503 ) , latency_ms>900 ) or ( upstream_host=\"static-1\" , method=\"DELETE\" ) )"
    );
}

#[test]
fn ast_shapes() {
    let Expr::Sample(SampleExpr::VectorAggregation { op, expr, grouping, .. }) =
        p("sum(count_over_time({a=\"b\"}[5m])) by (x)")
    else {
        panic!()
    };
    assert_eq!(op, VectorOp::Sum);
    assert_eq!(grouping, Some(Grouping { without: false, labels: vec!["x".into()] }));
    let SampleExpr::RangeAggregation { range, .. } = *expr else { panic!() };
    assert_eq!(range.range_ns, 300_000_000_000);
    assert_eq!(range.range_literal, "5m");
    let Expr::Log(l) = p("{a=\"b\"} |= \"x\" or \"y\" | logfmt | took > 1m30s | size >= 1.5KiB")
    else {
        panic!()
    };
    assert_eq!(l.matchers, vec![LabelMatcher::new("a", MatchType::Equal, "b").unwrap()]);
    assert_eq!(
        l.stages[0],
        Stage::LineFilter(LineFilter {
            op: LineFilterOp::Contains,
            value: LineFilterValue::Literal("x".into()),
            or: vec![LineFilterValue::Literal("y".into())],
        })
    );
    assert!(matches!(
        &l.stages[2],
        Stage::LabelFilter(LabelFilterExpr::Duration { value_ns: 90_000_000_000, .. })
    ));
    assert!(matches!(&l.stages[3], Stage::LabelFilter(LabelFilterExpr::Bytes { value: 1536, .. })));
    // keywords are case-insensitive, comments and Go comments are skipped
    assert!(parse_expr("SUM BY (a) (RATE({a=\"b\"}[1m])) # c").is_ok());
    assert!(parse_expr("rate({a=\"b\"} /* c */ [1m]) // c").is_ok());
    // a label filter on `rate` (an identifier when not a call)
    assert!(parse_expr("{a=\"b\"} | rate > 2").is_ok());
    assert_eq!(parse_matchers("{a=\"b\", c!~\"d\"}").unwrap().len(), 2);
    assert!(parse_expr_unchecked("{a=\"b\"} |~ \"(\"").is_ok());
}

#[test]
fn nesting_limit() {
    let q = format!("{}vector(1){}", "(".repeat(300), ")".repeat(300));
    assert!(err(&q).contains("nests too deeply"));
    let q = format!("{}1", "sum(".repeat(300));
    assert!(err(&q).contains("nests too deeply"));
    let q = vec!["vector(1)"; 5000].join(" + ");
    assert!(err(&q).contains("nests too deeply"));
    let q = format!("{{a=\"b\"}} | {}", vec!["x=1"; 5000].join(", "));
    assert!(err(&q).contains("nests too deeply"));
    let q = format!("{}vector(1){}", "(".repeat(100), ")".repeat(100));
    assert!(parse_expr(&q).is_ok());
}

// ------------------------------------------------------------------ generated ASTs

fn ident() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["app", "job", "level_2", "_x", "Env", "status"])
        .prop_map(String::from)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "x",
            "foo bar",
            "a\"b",
            "tab\there",
            "é\u{1}\u{a0}\n",
            "{{.a}}",
            "`q`"
        ])
        .prop_map(String::from),
        "[ -~]{0,8}",
    ]
}

fn regex_text() -> impl Strategy<Value = String> {
    prop::sample::select(vec![".*", ".+", "foo|bar", "5..", "a.*b", "(?i)err", "x`y", "", "[a-z]+"])
        .prop_map(String::from)
}

fn matcher() -> impl Strategy<Value = LabelMatcher> {
    prop_oneof![
        (ident(), text(), prop::bool::ANY).prop_map(|(n, v, eq)| {
            LabelMatcher::new(n, if eq { MatchType::Equal } else { MatchType::NotEqual }, v)
                .unwrap()
        }),
        (ident(), regex_text(), prop::bool::ANY).prop_map(|(n, v, eq)| {
            LabelMatcher::new(n, if eq { MatchType::Regex } else { MatchType::NotRegex }, v)
                .unwrap()
        }),
    ]
}

fn ascii_ident() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["app", "job", "level_2", "_x", "Env", "status"])
        .prop_map(String::from)
}

fn selector() -> impl Strategy<Value = Vec<LabelMatcher>> {
    (ascii_ident(), prop::collection::vec(matcher(), 0..3)).prop_map(|(n, mut rest)| {
        rest.insert(0, LabelMatcher::new(n, MatchType::Equal, "v").unwrap());
        rest
    })
}

fn cmp() -> impl Strategy<Value = CmpOp> {
    prop::sample::select(vec![CmpOp::Eq, CmpOp::Ne, CmpOp::Gt, CmpOp::Ge, CmpOp::Lt, CmpOp::Le])
}

fn label_filter_leaf() -> impl Strategy<Value = LabelFilterExpr> {
    let ns = prop::sample::select(vec![
        250_000_000i64,
        1_500_000_000,
        60_000_000_000,
        3_600_000_000_000,
        750_000,
        -300_000_000_000,
        5,
    ]);
    let bytes = prop::sample::select(vec![5u64, 1_500, 20_000_000, 5_000_000, 3_000_000_000]);
    let nums = prop::sample::select(vec![0.0, 1.5, -2.0, 500.0, 1e21, 0.001]);
    prop_oneof![
        (ascii_ident(), matcher()).prop_map(|(n, m)| {
            LabelFilterExpr::String(LabelMatcher::new(n, m.op, m.value).unwrap())
        }),
        (ascii_ident(), cmp(), nums).prop_map(|(name, op, value)| LabelFilterExpr::Number {
            name,
            op,
            value
        }),
        (ascii_ident(), cmp(), ns).prop_map(|(name, op, v)| LabelFilterExpr::Duration {
            name,
            op,
            value_ns: v,
            literal: goutil::go_duration_string(v),
        }),
        (ascii_ident(), cmp(), bytes).prop_map(|(name, op, v)| LabelFilterExpr::Bytes {
            name,
            op,
            value: v,
            literal: goutil::humanize_bytes(v),
        }),
        (ascii_ident(), prop::bool::ANY, text())
            .prop_map(|(name, equal, pattern)| LabelFilterExpr::Ip { name, equal, pattern }),
    ]
}

fn label_filter() -> impl Strategy<Value = LabelFilterExpr> {
    label_filter_leaf().prop_recursive(3, 12, 2, |inner| {
        (inner.clone(), inner, prop::bool::ANY).prop_map(|(a, b, and)| {
            if and {
                LabelFilterExpr::And(Box::new(a), Box::new(b))
            } else {
                LabelFilterExpr::Or(Box::new(a), Box::new(b))
            }
        })
    })
}

fn extraction() -> impl Strategy<Value = LabelExtraction> {
    (ascii_ident(), prop::option::of(prop::sample::select(vec!["a.b", "tags[0]", "x y"])))
        .prop_map(|(name, e)| LabelExtraction { name, expr: e.map(String::from) })
}

fn lf_value() -> impl Strategy<Value = LineFilterValue> {
    prop_oneof![text().prop_map(LineFilterValue::Literal), text().prop_map(LineFilterValue::Ip)]
}

fn stage() -> impl Strategy<Value = Stage> {
    let ops = prop::sample::select(vec![
        LineFilterOp::Contains,
        LineFilterOp::NotContains,
        LineFilterOp::Pattern,
        LineFilterOp::NotPattern,
    ]);
    prop_oneof![
        (ops, lf_value(), prop::collection::vec(lf_value(), 0..3)).prop_map(|(op, value, or)| {
            let neg = matches!(op, LineFilterOp::NotContains | LineFilterOp::NotPattern);
            Stage::LineFilter(LineFilter { op, value, or: if neg { vec![] } else { or } })
        }),
        prop::sample::select(vec!["a.*b", "(?i)x", ""]).prop_map(|r| Stage::LineFilter(
            LineFilter {
                op: LineFilterOp::Regex,
                value: LineFilterValue::Literal(r.into()),
                or: vec![]
            }
        )),
        prop::collection::vec(extraction(), 0..3).prop_map(|e| Stage::Parser(ParserStage::Json(e))),
        (prop::bool::ANY, prop::bool::ANY, prop::collection::vec(extraction(), 0..3)).prop_map(
            |(strict, keep_empty, extractions)| Stage::Parser(ParserStage::Logfmt {
                strict,
                keep_empty,
                extractions
            })
        ),
        Just(Stage::Parser(ParserStage::Regexp("(?P<x>\\d+) \"q\"".into()))),
        Just(Stage::Parser(ParserStage::Pattern("<_> <a> - <b>".into()))),
        Just(Stage::Parser(ParserStage::Unpack)),
        label_filter().prop_map(Stage::LabelFilter),
        text().prop_map(Stage::LineFormat),
        (ascii_ident(), ascii_ident(), text()).prop_map(|(a, b, t)| Stage::LabelFormat(vec![
            LabelFormatOp::Rename { dst: a.clone(), src: b },
            LabelFormatOp::Template { dst: a, template: t }
        ])),
        Just(Stage::Decolorize),
        (ascii_ident(), matcher()).prop_map(|(n, m)| Stage::Drop(vec![
            NamedMatcher::Name(n),
            NamedMatcher::Matcher(LabelMatcher::new("k", m.op, m.value).unwrap())
        ])),
        // (a bare name last would swallow a following `!=` line filter, in Loki too)
        ascii_ident().prop_map(|n| Stage::Keep(vec![
            NamedMatcher::Name(n),
            NamedMatcher::Matcher(LabelMatcher::new("k", MatchType::Equal, "v").unwrap())
        ])),
    ]
}

fn log_selector() -> impl Strategy<Value = LogSelectorExpr> {
    (selector(), prop::collection::vec(stage(), 0..4))
        .prop_map(|(matchers, stages)| LogSelectorExpr { matchers, stages })
}

fn range_expr(unwrap: bool) -> impl Strategy<Value = LogRangeExpr> {
    let conv = prop::sample::select(vec![
        UnwrapConversion::None,
        UnwrapConversion::Bytes,
        UnwrapConversion::Duration,
        UnwrapConversion::DurationSeconds,
    ]);
    (
        log_selector(),
        prop::sample::select(vec![
            60_000_000_000i64,
            90_000_000_000,
            86_400_000_000_000,
            1_000_000,
        ]),
        prop::sample::select(vec![0i64, 3_600_000_000_000, -1_500_000_000]),
        ascii_ident(),
        conv,
        prop::collection::vec(label_filter(), 0..2),
    )
        .prop_map(move |(selector, range_ns, offset_ns, label, conversion, post_filters)| {
            LogRangeExpr {
                selector,
                range_ns,
                range_literal: goutil::prom_duration_string(range_ns),
                unwrap: unwrap.then_some(Unwrap { label, conversion, post_filters }),
                offset_ns,
                offset_literal: (offset_ns != 0).then(|| goutil::go_duration_string(offset_ns)),
            }
        })
}

fn grouping() -> impl Strategy<Value = Grouping> {
    (prop::bool::ANY, prop::collection::vec(ascii_ident(), 0..3))
        .prop_map(|(without, labels)| Grouping { without, labels })
}

fn range_agg() -> impl Strategy<Value = SampleExpr> {
    use RangeOp::*;
    let ops = prop::sample::select(vec![
        CountOverTime,
        Rate,
        RateCounter,
        BytesOverTime,
        BytesRate,
        AvgOverTime,
        SumOverTime,
        MinOverTime,
        MaxOverTime,
        StdvarOverTime,
        StddevOverTime,
        QuantileOverTime,
        FirstOverTime,
        LastOverTime,
        AbsentOverTime,
    ]);
    (ops, range_expr(false), range_expr(true), grouping(), prop::bool::ANY).prop_map(
        |(op, plain, unwrapped, g, use_group)| {
            let needs_unwrap =
                !matches!(op, CountOverTime | Rate | BytesOverTime | BytesRate | AbsentOverTime);
            let groupable = matches!(
                op,
                AvgOverTime
                    | StddevOverTime
                    | StdvarOverTime
                    | QuantileOverTime
                    | MaxOverTime
                    | MinOverTime
                    | FirstOverTime
                    | LastOverTime
            );
            SampleExpr::RangeAggregation {
                op,
                range: Box::new(if needs_unwrap { unwrapped } else { plain }),
                param: (op == QuantileOverTime).then_some(0.95),
                grouping: (groupable && use_group).then_some(g),
            }
        },
    )
}

fn sample_expr() -> impl Strategy<Value = SampleExpr> {
    let leaf = prop_oneof![
        4 => range_agg(),
        1 => prop::sample::select(vec![0.0, 1.0, 2.5, 1e6]).prop_map(SampleExpr::Vector),
    ];
    leaf.prop_recursive(3, 16, 2, |inner| {
        use VectorOp::*;
        let vops = prop::sample::select(vec![
            Sum, Avg, Min, Max, Count, Stddev, Stdvar, Topk, Bottomk, Sort, SortDesc, ApproxTopk,
        ]);
        let bops = prop::sample::select(vec![
            BinOp::Or,
            BinOp::And,
            BinOp::Unless,
            BinOp::Add,
            BinOp::Sub,
            BinOp::Mul,
            BinOp::Div,
            BinOp::Mod,
            BinOp::Pow,
            BinOp::Eq,
            BinOp::Ne,
            BinOp::Gt,
            BinOp::Ge,
            BinOp::Lt,
            BinOp::Le,
        ]);
        prop_oneof![
            (vops, inner.clone(), grouping(), 1u32..10).prop_map(|(op, e, g, k)| {
                let has_k = matches!(op, Topk | Bottomk | ApproxTopk);
                let g = if matches!(op, Sort | SortDesc | ApproxTopk)
                    || (!g.without && g.labels.is_empty())
                {
                    None
                } else {
                    Some(g)
                };
                SampleExpr::VectorAggregation {
                    op,
                    expr: Box::new(e),
                    param: has_k.then_some(f64::from(k)),
                    grouping: g,
                }
            }),
            (
                bops,
                inner.clone(),
                prop_oneof![
                    inner.clone(),
                    prop::sample::select(vec![2.0, -0.5, 1e-7]).prop_map(SampleExpr::Literal)
                ],
                prop::bool::ANY,
                prop::option::of((prop::bool::ANY, prop::collection::vec(ascii_ident(), 1..3))),
                0u8..3
            )
                .prop_map(|(op, lhs, rhs, b, m, g)| {
                    let logical = matches!(op, BinOp::Or | BinOp::And | BinOp::Unless);
                    let rhs = if logical && matches!(rhs, SampleExpr::Literal(_)) {
                        lhs.clone()
                    } else {
                        rhs
                    };
                    let matching = match m {
                        None => VectorMatching::default(),
                        Some((without, labels)) => VectorMatching {
                            matching: Some(Grouping { without, labels: labels.clone() }),
                            group: match g {
                                0 => None,
                                1 => Some(GroupSide::Left(labels)),
                                _ => Some(GroupSide::Right(vec![])),
                            },
                        },
                    };
                    SampleExpr::Binary {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                        return_bool: b,
                        matching,
                    }
                }),
            inner.prop_map(|e| SampleExpr::LabelReplace {
                expr: Box::new(e),
                dst: "d".into(),
                replacement: "$1-x".into(),
                src: "s".into(),
                regex: "(.*)\\.x".into(),
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn roundtrip_log(l in log_selector()) {
        let e = Expr::Log(l);
        let s = e.to_string();
        let back = parse_expr(&s).map_err(|err| TestCaseError::fail(format!("{s}: {err}")))?;
        prop_assert_eq!(&back, &e, "{}", s);
    }

    #[test]
    fn roundtrip_metric(m in sample_expr()) {
        let e = Expr::Sample(m);
        let s = e.to_string();
        let back = parse_expr(&s).map_err(|err| TestCaseError::fail(format!("{s}: {err}")))?;
        prop_assert_eq!(&back, &e, "{}", s);
    }

    #[test]
    fn no_panic_on_arbitrary_input(s in "\\PC{0,40}") {
        let _ = parse_expr(&s);
    }

    #[test]
    fn no_panic_on_token_soup(parts in prop::collection::vec(prop::sample::select(vec![
        "{", "}", "(", ")", "[5m]", "[", "]", "a", "=", "\"x\"", "`y`", "|", "|=", "!=", "|~", "json",
        "logfmt", "--strict", "unwrap", "bytes(", "rate(", "sum", "by", "(a)", "or", "and", ",",
        "1", "-", "+", "5m", "5MB", "offset", "ip(", "on", "group_left", "bool", "vector(", "#",
        "label_replace(", "topk(", "quantile_over_time(", "0.5", "\n", "é", "\"", "\\",
    ]), 0..30)) {
        let q = parts.join(" ");
        if let Ok(e) = parse_expr(&q) {
            let s = e.to_string();
            prop_assert!(parse_expr(&s).is_ok(), "{} -> {}", q, s);
        }
        let q = parts.concat();
        if let Ok(e) = parse_expr(&q) {
            let s = e.to_string();
            prop_assert!(parse_expr(&s).is_ok(), "{} -> {}", q, s);
        }
    }
}

/// Found by the `parse` fuzz target: a long fraction in a Go duration overflowed u128.
#[test]
fn long_duration_fraction_does_not_overflow() {
    use crate::syntax::goutil::go_parse_duration;
    let h = go_parse_duration("0.94444444444444444444444444444444444444444h").unwrap();
    // Go: 944444444444444444 (18 digits) * (3.6e12 / 1e18) in float64, truncated.
    assert_eq!(h, 3_399_999_999_999);
    assert_eq!(go_parse_duration("1.5s"), Some(1_500_000_000));
    let crash = "quantile_o;er_time(0.94444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444444sesortt 2h) by (x)";
    assert!(crate::syntax::parse_expr(crash).is_err());
}
