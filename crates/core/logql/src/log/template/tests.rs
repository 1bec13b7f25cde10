//! Template tests: Loki's reference renders, the language, the functions, Go's time and
//! number formatting, error texts and robustness on odd input.

use std::collections::BTreeMap;

use skald_gocompat::time::zone::ZONEINFO_DIRS;

use super::*;

const TS: i64 = 1_793_491_398_920_250_000; // 2026-11-01T00:03:18.92025Z

fn labels_from_json(j: &str) -> Labels {
    let m: BTreeMap<String, String> = serde_json::from_str(j).unwrap();
    Labels::from_pairs(m)
}

fn r(src: &str) -> String {
    let l = Labels::from_pairs([
        ("app", "web"),
        ("status", "200"),
        ("msg", "hello world"),
        ("n", "5"),
        ("f", "2.5"),
    ]);
    Template::parse(src).unwrap().render(&l, "the line", TS).unwrap()
}

fn err(src: &str) -> String {
    let l = Labels::from_pairs([("app", "web"), ("n", "5")]);
    match Template::parse(src) {
        Err(e) => format!("parse: {e}"),
        Ok(t) => match t.render(&l, "the line", TS) {
            Ok(s) => panic!("expected an error for {src:?}, got {s:?}"),
            Err(e) => e.to_string(),
        },
    }
}

const LOG_LINE_FORMAT_FUNCTIONS: &[(&str, &str, i64, &str)] = &[
    ("{\"__error__\": \"JSONParserErr\", \"__error_details__\": \"Value is array, but can't find closing ']' symbol\", \"bytes\": \"2840\", \"client_ip\": \"192.168.1.21\", \"detected_level\": \"unknown\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"11.733\", \"method\": \"GET\", \"path\": \"/search\", \"service_name\": \"web\", \"status\": \"200\", \"trace_id\": \"6561a46616c66860fb8fce548e2045a5\"}", "{\"method\":\"GET\",\"path\":\"/search\",\"status\":200,\"latency_ms\":11.733,\"bytes\":2840,\"client_ip\":\"192.168.1.21\",", 1793491398920250000, "get /search 200 none  1793491398 106"),
    ("{\"bytes\": \"0\", \"client_ip\": \"172.16.6.160\", \"detected_level\": \"unknown\", \"duration\": \"188ms\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"188.426\", \"method\": \"GET\", \"path\": \"/login\", \"service_name\": \"web\", \"status\": \"301\", \"upstream_host\": \"api-1\", \"upstream_port\": \"8081\", \"user_agent\": \"curl/8.5.0\"}", "{\"method\":\"GET\",\"path\":\"/login\",\"status\":301,\"latency_ms\":188.426,\"bytes\":0,\"client_ip\":\"172.16.6.160\",\"user_agent\":\"curl/8.5.0\",\"duration\":\"188ms\",\"upstream\":{\"host\":\"api-1\",\"port\":8081},\"tags\":[\"v2\"]}", 1793491275120250000, "get /login 301 none CURL/8.5.0 1793491275 202"),
    ("{\"bytes\": \"0\", \"client_ip\": \"192.168.1.193\", \"detected_level\": \"unknown\", \"duration\": \"625ms\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"625.454\", \"method\": \"PATCH\", \"path\": \"/login\", \"service_name\": \"web\", \"status\": \"301\", \"upstream_host\": \"api-2\", \"upstream_port\": \"8081\", \"user_agent\": \"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\"}", "{\"method\":\"PATCH\",\"path\":\"/login\",\"status\":301,\"latency_ms\":625.454,\"bytes\":0,\"client_ip\":\"192.168.1.193\",\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\",\"duration\":\"625ms\",\"upstream\":{\"host\":\"api-2\",\"port\":8081},\"tags\":[\"internal\"]}", 1793491254840250000, "patch /login 301 none MOZILLA/5. 1793491254 271"),
    ("{\"bytes\": \"10522\", \"client_ip\": \"172.16.2.140\", \"detected_level\": \"unknown\", \"duration\": \"33ms\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"33.766\", \"method\": \"PUT\", \"path\": \"/api/v1/cart\", \"service_name\": \"web\", \"status\": \"201\", \"upstream_host\": \"api-1\", \"upstream_port\": \"8081\", \"user_agent\": \"curl/8.5.0\"}", "{\"method\":\"PUT\",\"path\":\"/api/v1/cart\",\"status\":201,\"latency_ms\":33.766,\"bytes\":10522,\"client_ip\":\"172.16.2.140\",\"user_agent\":\"curl/8.5.0\",\"duration\":\"33ms\",\"upstream\":{\"host\":\"api-1\",\"port\":8081},\"tags\":[\"internal\",\"edge\"]}", 1793491204336250000, "put /api/v1/cart 201 none CURL/8.5.0 1793491204 223"),
    ("{\"bytes\": \"1065\", \"client_ip\": \"192.168.1.24\", \"detected_level\": \"unknown\", \"duration\": \"65ms\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"65.862\", \"method\": \"GET\", \"path\": \"/api/v1/orders/3366\", \"service_name\": \"web\", \"status\": \"200\", \"upstream_host\": \"api-3\", \"upstream_port\": \"8080\", \"user_agent\": \"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\"}", "{\"method\":\"GET\",\"path\":\"/api/v1/orders/3366\",\"status\":200,\"latency_ms\":65.862,\"bytes\":1065,\"client_ip\":\"192.168.1.24\",\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\",\"duration\":\"65ms\",\"upstream\":{\"host\":\"api-3\",\"port\":8080},\"tags\":[\"internal\",\"edge\"]}", 1793491239899250000, "get /api/v1/orde 200 none MOZILLA/5. 1793491239 289"),
    ("{\"bytes\": \"11335\", \"client_ip\": \"10.0.0.84\", \"detected_level\": \"unknown\", \"duration\": \"662ms\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"662.063\", \"method\": \"GET\", \"path\": \"/api/v1/cart\", \"service_name\": \"web\", \"status\": \"200\", \"upstream_host\": \"static-1\", \"upstream_port\": \"8080\", \"user_agent\": \"curl/8.5.0\"}", "{\"method\":\"GET\",\"path\":\"/api/v1/cart\",\"status\":200,\"latency_ms\":662.063,\"bytes\":11335,\"client_ip\":\"10.0.0.84\",\"user_agent\":\"curl/8.5.0\",\"duration\":\"662ms\",\"upstream\":{\"host\":\"static-1\",\"port\":8080},\"tags\":[\"internal\",\"canary\"]}", 1793491348100250000, "get /api/v1/cart 200 none CURL/8.5.0 1793491348 227"),
    ("{\"bytes\": \"11537\", \"client_ip\": \"192.168.1.232\", \"detected_level\": \"unknown\", \"duration\": \"11ms\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"11.491\", \"method\": \"PUT\", \"path\": \"/api/v1/orders\", \"service_name\": \"web\", \"status\": \"200\", \"upstream_host\": \"api-3\", \"upstream_port\": \"8082\", \"user_agent\": \"Go-http-client/1.1\"}", "{\"method\":\"PUT\",\"path\":\"/api/v1/orders\",\"status\":200,\"latency_ms\":11.491,\"bytes\":11537,\"client_ip\":\"192.168.1.232\",\"user_agent\":\"Go-http-client/1.1\",\"duration\":\"11ms\",\"upstream\":{\"host\":\"api-3\",\"port\":8082},\"tags\":[\"internal\",\"v2\"]}", 1793491368136250000, "put /api/v1/orde 200 none GO-HTTP-CL 1793491368 232"),
    ("{\"bytes\": \"11538\", \"client_ip\": \"203.0.113.83\", \"detected_level\": \"unknown\", \"duration\": \"86ms\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"86.944\", \"method\": \"GET\", \"path\": \"/api/v1/cart\", \"service_name\": \"web\", \"status\": \"200\", \"upstream_host\": \"static-1\", \"upstream_port\": \"8082\", \"user_agent\": \"python-requests/2.32.3\"}", "{\"method\":\"GET\",\"path\":\"/api/v1/cart\",\"status\":200,\"latency_ms\":86.944,\"bytes\":11538,\"client_ip\":\"203.0.113.83\",\"user_agent\":\"python-requests/2.32.3\",\"duration\":\"86ms\",\"upstream\":{\"host\":\"static-1\",\"port\":8082},\"tags\":[\"canary\"]}", 1793491365094250000, "get /api/v1/cart 200 none PYTHON-REQ 1793491365 229"),
];
const LOG_LABEL_FORMAT: &[(&str, &str, i64, &str)] = &[
    ("{\"attempt\": \"1\", \"detected_level\": \"debug\", \"env\": \"test\", \"format\": \"logfmt\", \"job\": \"worker\", \"job_id\": \"job-05421\", \"lvl\": \"debug\", \"msg\": \"cache hit\", \"queue\": \"default\", \"service_name\": \"worker\", \"size\": \"4.8MB\", \"took\": \"28.2s\", \"where\": \"default/job-05421\"}", "level=debug msg=\"cache hit\" job_id=job-05421 queue=default took=28.2s size=4.8MB attempt=1", 1793497035236750000, "debug default/job-05421 28.2s"),
    ("{\"attempt\": \"1\", \"detected_level\": \"debug\", \"env\": \"test\", \"format\": \"logfmt\", \"job\": \"worker\", \"job_id\": \"job-08758\", \"lvl\": \"debug\", \"msg\": \"\\u001b[1;36mlease renewed\\u001b[0m\", \"queue\": \"default\", \"service_name\": \"worker\", \"size\": \"43KiB\", \"took\": \"422ms\", \"where\": \"default/job-08758\"}", "level=debug msg=\"\u{1b}[1;36mlease renewed\u{1b}[0m\" job_id=job-08758 queue=default took=422ms size=43KiB attempt=1", 1793497157587750000, "debug default/job-08758 422ms"),
    ("{\"attempt\": \"1\", \"detected_level\": \"debug\", \"env\": \"test\", \"format\": \"logfmt\", \"job\": \"worker\", \"job_id\": \"job-13208\", \"lvl\": \"debug\", \"msg\": \"cache hit\", \"queue\": \"high\", \"service_name\": \"worker\", \"size\": \"36KB\", \"took\": \"4.9s\", \"where\": \"high/job-13208\"}", "level=debug msg=\"cache hit\" job_id=job-13208 queue=high took=4.9s size=36KB attempt=1", 1793497007471750000, "debug high/job-13208 4.9s"),
    ("{\"attempt\": \"1\", \"detected_level\": \"debug\", \"env\": \"test\", \"format\": \"logfmt\", \"job\": \"worker\", \"job_id\": \"job-25099\", \"lvl\": \"debug\", \"msg\": \"cache hit\", \"queue\": \"high\", \"service_name\": \"worker\", \"size\": \"21KB\", \"took\": \"859ms\", \"where\": \"high/job-25099\"}", "level=debug msg=\"cache hit\" job_id=job-25099 queue=high took=859ms size=21KB attempt=1", 1793497025038750000, "debug high/job-25099 859ms"),
];
const LOG_JSON_PARAMS_LINE_FORMAT: &[(&str, &str, i64, &str)] = &[
    ("{\"code\": \"404\", \"detected_level\": \"unknown\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"method\": \"DELETE\", \"service_name\": \"web\", \"tag0\": \"canary\", \"up\": \"api-2\"}", "{\"method\":\"DELETE\",\"path\":\"/static/app.js\",\"status\":404,\"latency_ms\":92.677,\"bytes\":22923,\"client_ip\":\"10.0.1.174\",\"user_agent\":\"Go-http-client/1.1\",\"duration\":\"92ms\",\"upstream\":{\"host\":\"api-2\",\"port\":8080},\"tags\":[\"canary\"]}", 1793496180595250000, "DELETE 404 via api-2 [canary]"),
    ("{\"code\": \"404\", \"detected_level\": \"unknown\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"method\": \"DELETE\", \"service_name\": \"web\", \"tag0\": \"edge\", \"up\": \"api-2\"}", "{\"method\":\"DELETE\",\"path\":\"/login\",\"status\":404,\"latency_ms\":3.293,\"bytes\":49869,\"client_ip\":\"203.0.113.37\",\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\",\"duration\":\"3ms\",\"upstream\":{\"host\":\"api-2\",\"port\":8080},\"tags\":[\"edge\"]}", 1793496478670250000, "DELETE 404 via api-2 [edge]"),
    ("{\"code\": \"404\", \"detected_level\": \"unknown\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"method\": \"DELETE\", \"service_name\": \"web\", \"tag0\": \"internal\", \"up\": \"api-3\"}", "{\"method\":\"DELETE\",\"path\":\"/api/v1/orders\",\"status\":404,\"latency_ms\":209.81,\"bytes\":57184,\"client_ip\":\"203.0.113.90\",\"user_agent\":\"kube-probe/1.30\",\"duration\":\"209ms\",\"upstream\":{\"host\":\"api-3\",\"port\":8080},\"tags\":[\"internal\"]}", 1793495560048250000, "DELETE 404 via api-3 [internal]"),
    ("{\"code\": \"404\", \"detected_level\": \"unknown\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"method\": \"DELETE\", \"service_name\": \"web\", \"tag0\": \"v2\", \"up\": \"api-1\"}", "{\"method\":\"DELETE\",\"path\":\"/api/v1/orders\",\"status\":404,\"latency_ms\":366.002,\"bytes\":3723,\"client_ip\":\"192.168.1.60\",\"user_agent\":\"python-requests/2.32.3\",\"duration\":\"366ms\",\"upstream\":{\"host\":\"api-1\",\"port\":8080},\"tags\":[\"v2\"]}", 1793495039189250000, "DELETE 404 via api-1 [v2]"),
];

fn check_reference(tmpl: &str, cases: &[(&str, &str, i64, &str)]) {
    let t = Template::parse(tmpl).unwrap();
    assert!(!cases.is_empty());
    for (labels, line, ts, want) in cases {
        let got = t.render(&labels_from_json(labels), line, *ts).unwrap();
        assert_eq!(&got, want, "labels {labels}");
    }
}

#[test]
fn reference_line_format_functions() {
    check_reference(
        r#"{{ .method | lower }} {{ .path | trunc 12 }} {{ .status }} {{ default "none" .missing }} {{ .user_agent | replace " " "_" | upper | trunc 10 }} {{ __timestamp__ | unixEpoch }} {{ len __line__ }}"#,
        LOG_LINE_FORMAT_FUNCTIONS,
    );
}

#[test]
fn reference_label_format() {
    // `where="{{.queue}}/{{.job_id}}"` then `line_format "{{.lvl}} {{.where}} {{.took}}"`.
    let where_t = Template::parse_named("label", "{{.queue}}/{{.job_id}}").unwrap();
    for (labels, line, ts, _) in LOG_LABEL_FORMAT {
        let l = labels_from_json(labels);
        assert_eq!(where_t.render(&l, line, *ts).unwrap(), l.get("where").unwrap());
    }
    check_reference("{{.lvl}} {{.where}} {{.took}}", LOG_LABEL_FORMAT);
}

#[test]
fn reference_json_params_line_format() {
    check_reference("{{.method}} {{.code}} via {{.up}} [{{.tag0}}]", LOG_JSON_PARAMS_LINE_FORMAT);
}

#[test]
fn text_fields_and_trim() {
    assert_eq!(r("plain"), "plain");
    assert_eq!(r(""), "");
    assert_eq!(r("{{.app}}-{{.missing}}-"), "web--");
    assert_eq!(r("a  {{- .app -}}  b"), "awebb");
    assert_eq!(r("a {{- /* c */ -}} b"), "ab");
    assert_eq!(r("a{{/* comment */}}b"), "ab");
    assert_eq!(r("{{-3}}"), "-3");
    assert_eq!(r("{{ . }}"), "map[app:web f:2.5 msg:hello world n:5 status:200]");
    assert_eq!(r("{{ $.app }}"), "web");
    assert_eq!(r(r#"{{ "a\tb" }}|{{ `x\n` }}"#), "a\tb|x\\n");
    assert_eq!(r("{{ 'a' }} {{ 1.5 }} {{ 0x10 }} {{ 1e3 }} {{ true }}"), "97 1.5 16 1000 true");
    assert_eq!(r("{{ __line__ }}"), "the line");
    assert_eq!(r("{{ __timestamp__ }}"), "2026-11-01 00:03:18.92025 +0000 UTC");
}

#[test]
fn variables_and_control() {
    assert_eq!(r("{{ $x := .app }}{{ $x }}{{ $x = \"b\" }}{{ $x }}"), "webb");
    assert_eq!(r("{{ if eq .status \"200\" }}ok{{ else }}ko{{ end }}"), "ok");
    assert_eq!(r("{{ if .missing }}a{{ else if .app }}b{{ else }}c{{ end }}"), "b");
    assert_eq!(r("{{ with .app }}<{{ . }}>{{ else }}none{{ end }}"), "<web>");
    assert_eq!(r("{{ with .missing }}<{{ . }}>{{ else }}none{{ end }}"), "none");
    assert_eq!(r("{{ if and .app (not .missing) }}y{{ end }}"), "y");
    assert_eq!(r("{{ or .missing .app }}|{{ and .app .missing }}|{{ and 1 2 }}"), "web||2");
    assert_eq!(r("{{ .app | or .missing }}"), "web");
    assert_eq!(
        r(r#"{{ range $i, $e := fromJson "[\"a\",\"b\"]" }}{{ $i }}={{ $e }};{{ end }}"#),
        "0=a;1=b;"
    );
    assert_eq!(r(r#"{{ range fromJson "{\"k\":1,\"j\":2}" }}{{ . }},{{ end }}"#), "2,1,");
    assert_eq!(r(r#"{{ range fromJson "[]" }}x{{ else }}empty{{ end }}"#), "empty");
    assert_eq!(
        r("{{ range $i := 5 }}{{ if eq $i 3 }}{{ break }}{{ end }}{{ $i }}{{ end }}"),
        "012"
    );
    assert_eq!(
        r("{{ range $i := 4 }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ $i }}{{ end }}"),
        "023"
    );
    assert_eq!(r("{{ range $k, $v := . }}{{ if eq $k \"app\" }}{{ $v }}{{ end }}{{ end }}"), "web");
    assert_eq!(
        r(r#"{{ $q := fromJson "{\"a\":{\"b\":\"c\"}}" }}{{ $q.a.b }}{{ $q.zz }}"#),
        "c<no value>"
    );
    assert_eq!(r(r#"{{ (fromJson "{\"a\":1}").a }}"#), "1");
    assert_eq!(
        r(r#"{{ range $q := fromJson "[{\"query\":\"up\"}]" }} {{ $q.query }} {{ end }}"#),
        " up "
    );
}

#[test]
fn builtins() {
    assert_eq!(r("{{ len .msg }} {{ len . }}"), "11 5");
    assert_eq!(r(r#"{{ index . "app" }} {{ index (fromJson "[1,[2,3]]") 1 0 }}"#), "web 2");
    assert_eq!(r(r#"{{ slice "hello" 1 3 }}"#), "el");
    assert_eq!(r(r#"{{ print "a" 1 2 "b" }}|{{ println 1 "x" }}"#), "a1 2b|1 x\n");
    assert_eq!(
        r(r#"{{ html "<a&'\">" }} {{ urlquery "a b&c" }} {{ js "a'b" }}"#),
        "&lt;a&amp;&#39;&#34;&gt; a+b%26c a\\'b"
    );
    assert_eq!(r("{{ eq 1 2 1 }} {{ ne .app \"x\" }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2.5 }}"), "true true true true true false");
    assert_eq!(r("{{ eq (add 1 1) 2 }}"), "true");
    assert_eq!(r("{{ not 0 }} {{ not .app }}"), "true false");
}

#[test]
fn printf_subset() {
    assert_eq!(r(r#"{{ printf "%s=%d" "a" 5 }}"#), "a=5");
    assert_eq!(
        r(r#"{{ printf "%5s|%-5s|%05d|%x|%X|%o|%b" "ab" "cd" -42 255 255 8 5 }}"#),
        "   ab|cd   |-0042|ff|FF|10|101"
    );
    assert_eq!(
        r(r#"{{ printf "%.2f %e %g %v %G" 3.14159 1234.5678 0.000012345 1e21 1e-7 }}"#),
        "3.14 1.234568e+03 1.2345e-05 1e+21 1E-07"
    );
    assert_eq!(r(r#"{{ printf "%v %v %v" 100000.0 1000000.0 0.0001 }}"#), "100000 1e+06 0.0001");
    assert_eq!(
        r(r#"{{ printf "%q %v %t %T %T" "a\"b" true false .app 1.5 }}"#),
        r#""a\"b" true false string float64"#
    );
    assert_eq!(r(r#"{{ printf "%d" .status }}"#), "%!d(string=200)");
    assert_eq!(r(r#"{{ printf "%d %d" 1 }}"#), "1 %!d(MISSING)");
    assert_eq!(r(r#"{{ printf "%d" 1 2 }}"#), "1%!(EXTRA int=2)");
    assert_eq!(
        r(r#"{{ printf "%-10.3s|%8.3f|%+d|%%|%c|%U" "abcdef" 3.14159 5 65 65 }}"#),
        "abc       |   3.142|+5|%|A|U+0041"
    );
    assert_eq!(r(r#"{{ printf "%*d|%.*f" 4 7 1 2.25 }}"#), "   7|2.2");
    assert_eq!(r(r#"{{ printf "%[2]s %[1]s" "a" "b" }}"#), "b a");
    assert_eq!(r(r#"{{ printf "%v" (fromJson "{\"a\":[1,\"x\",null]}") }}"#), "map[a:[1 x <nil>]]");
    assert_eq!(r(r#"{{ printf "%15.15s" "short" }}"#), "          short");
    assert_eq!(
        r(r#"{{ printf "%-40.40s" "/a/509965767/alternative-to-my-mtg.html" }}|"#),
        "/a/509965767/alternative-to-my-mtg.html |"
    );
}

#[test]
fn string_functions() {
    assert_eq!(
        r(
            r#"{{ alignLeft 5 "hello world" }}|{{ alignLeft 5 "hi" }}|{{ alignRight 5 "hello world" }}|{{ alignRight 5 "hi" }}"#
        ),
        "hello|hi   |world|   hi"
    );
    assert_eq!(
        r(
            r#"{{ b64enc "hello" }} {{ b64dec "aGVsbG8=" }} {{ b64dec "aGVsbG8" }} {{ b64dec "!!" }}"#
        ),
        "aGVsbG8= hello hello illegal base64 data at input byte 0"
    );
    assert_eq!(
        r(
            r#"{{ default "-" "" }} {{ default "-" "foo" }} {{ .missing | default "x" }} {{ default 1 0 }}"#
        ),
        "- foo x 1"
    );
    assert_eq!(
        r(r#"{{ lower "HELLO" }} {{ upper "hello" }} {{ title "hello world" }}"#),
        "hello HELLO Hello World"
    );
    assert_eq!(r(r#"{{ indent 2 "a\nb" }}|{{ nindent 2 "a" }}"#), "  a\n  b|\n  a");
    assert_eq!(r(r#"{{ repeat 3 "ab" }}"#), "ababab");
    assert_eq!(
        r(
            r#"{{ replace "hello" "world" "hello world" }} {{ "a-cluster" | replace "-cluster" "" }}"#
        ),
        "world world a"
    );
    assert_eq!(
        r(
            r#"{{ substr 0 5 "hello world" }} {{ substr 6 11 "hello world" }} {{ substr -1 2 "hello" }} {{ substr 2 -1 "hello" }} {{ substr 2 99 "hello" }}"#
        ),
        "hello world he llo llo"
    );
    assert_eq!(
        r(
            r#"{{ trim "   hello    " }}|{{ trimAll "$" "$5.00$" }}|{{ trimPrefix "-" "-hello" }}|{{ trimSuffix "-" "hello-" }}"#
        ),
        "hello|5.00|hello|hello"
    );
    assert_eq!(
        r(r#"{{ trunc 5 "hello world" }} {{ trunc -5 "hello world" }} {{ trunc 50 "hi" }}"#),
        "hello world hi"
    );
    assert_eq!(
        r(r#"{{ urlencode "a b/c?d=é" }} {{ urldecode "a+b%2Fc" }}"#),
        "a+b%2Fc%3Fd%3D%C3%A9 a b/c"
    );
    assert_eq!(
        r(
            r#"{{ contains "ll" "hello" }} {{ hasPrefix "he" "hello" }} {{ hasSuffix "lo" "hello" }} {{ contains "x" .msg }}"#
        ),
        "true true true false"
    );
    assert_eq!(r(r#"{{ if contains "he" "hello" }} yes {{end}}"#), " yes ");
    assert_eq!(
        r(r#"{{ count "a|b" "abab" }} {{ count "o" "foo" }} {{ __line__ | count "e" }}"#),
        "4 2 2"
    );
    assert_eq!(
        r(
            r#"{{ regexReplaceAll "(a*)bc" "xaabcy" "${1}Z" }} {{ regexReplaceAllLiteral "(ts=)" "ts=1" "$1" }}"#
        ),
        "xaaZy $11"
    );
    assert_eq!(
        r(
            r#"{{ ToUpper "a" }}{{ ToLower "B" }}{{ Replace "aaa" "a" "b" 2 }}{{ TrimSpace " c " }}{{ Trim "xdx" "x" }}{{ TrimLeft "xdx" "x" }}{{ TrimPrefix "pq" "p" }}"#
        ),
        "Abbbacddxq"
    );
}

#[test]
fn to_date_in_zone_reads_the_zone_database() {
    assert_eq!(
        r(r#"{{ toDateInZone "2006-01-02" "No/Such_Zone" "2021-11-02" | unixEpoch }}"#),
        "1635811200"
    );
    assert_eq!(
        r(r#"{{ toDateInZone "2006-01-02" "../etc/passwd" "2021-11-02" | unixEpoch }}"#),
        "1635811200"
    );
    if !ZONEINFO_DIRS
        .iter()
        .any(|d| std::path::Path::new(d).join("America/New_York").try_exists().is_ok_and(|e| e))
    {
        eprintln!("no system time zone database: skipping the America/New_York check");
        return;
    }
    assert_eq!(
        r(r#"{{ toDateInZone "2006-01-02" "America/New_York" "2021-11-02" | unixEpoch }}"#),
        "1635825600"
    );
    assert_eq!(
        r(r#"{{ toDateInZone "2006-01-02" "America/New_York" "2021-11-02" }}"#),
        "2021-11-02 00:00:00 -0400 EDT"
    );
}

#[test]
fn math_functions() {
    assert_eq!(r("{{ add 3 2 5 }} {{ addf 3.5 2 5 }} {{ addf 0.1 0.2 }}"), "10 10.5 0.3");
    assert_eq!(r("{{ ceil 123.001 }} {{ floor 123.9999 }} {{ div 10 2 }} {{ divf 10 2 4 }} {{ divf 1 3 }}"), "124 123 5 1.25 0.3333333333333333");
    assert_eq!(
        r(
            r#"{{ "3.5" | float64 }} {{ "3" | int }} {{ "abc" | int }} {{ "0x10" | int }} {{ .f | int }}"#
        ),
        "3.5 3 0 16 2"
    );
    assert_eq!(
        r("{{ max 1 2 3 }} {{ maxf 1 2.5 3 }} {{ min 1 2 3 }} {{ minf 1 2.5 3 }}"),
        "3 3 1 1"
    );
    assert_eq!(
        r("{{ mul 5 2 3 }} {{ mulf 5.5 2 2.5 }} {{ mod 10 3 }} {{ sub 5 2 }} {{ subf 5.5 2 1.5 }}"),
        "30 27.5 1 3 2"
    );
    assert_eq!(r("{{ round 123.555555 3 }} {{ round 123.88571428571 5 .2 }} {{ round 123.88571428571 5 }}"), "123.556 123.88572 123.88571");
    assert_eq!(
        r("{{ add .n 1 }} {{ sub .n .status }} {{ mulf .f 2 }} {{ add \"x\" 1 }}"),
        "6 -195 5 1"
    );
    assert_eq!(r("{{ addf 1e300 1e300 }}"), "2e+300");
}

#[test]
fn time_functions() {
    assert_eq!(r("{{ __timestamp__ | unixEpoch }} {{ unixEpochMillis __timestamp__ }} {{ unixEpochNanos __timestamp__ }}"), "1793491398 1793491398920 1793491398920250000");
    assert_eq!(
        r(r#"{{ __timestamp__ | date "2006-01-02T15:04:05.00Z07:00" }}"#),
        "2026-11-01T00:03:18.92Z"
    );
    assert_eq!(
        r(r#"{{ date "Mon Jan _2 3:04PM 2006 .000 MST -0700" __timestamp__ }}"#),
        "Sun Nov  1 12:03AM 2026 .920 UTC +0000"
    );
    assert_eq!(r(r#"{{ date "2006-01-02" 86400 }}"#), "1970-01-02");
    assert_eq!(r(r#"{{ toDate "2006-01-02" "2021-11-02" | unixEpoch }}"#), "1635811200");
    assert_eq!(r(r#"{{ toDate "2006-01-02" "junk" }}"#), "0001-01-01 00:00:00 +0000 UTC");
    assert_eq!(
        r(
            r#"{{ toDateInZone "2006-01-02T15:04:05.999999999Z07:00" "UTC" "2021-11-02T10:00:00.5+02:00" | unixEpochMillis }}"#
        ),
        "1635840000500"
    );
    assert_eq!(
        r(r#"{{ toDateInZone "2006-01-02 15:04:05 -0700" "UTC" "2021-11-02 10:00:00 +0200" }}"#),
        "2021-11-02 10:00:00 +0200 +0200"
    );
    assert_eq!(
        r(
            r#"{{ unixToTime "1679577215" | date "2006-01-02" }} {{ unixToTime "19373" | unixEpoch }} {{ unixToTime "1673798889902" | unixEpochMillis }}"#
        ),
        "2023-03-23 1673827200 1673798889902"
    );
    assert_eq!(
        r(
            r#"{{ duration "1h2m3.5s" }} {{ duration_seconds "250ms" }} {{ "1.5s" | duration }} {{ duration "-2us" }}"#
        ),
        "3723.5 0.25 1.5 -2e-06"
    );
    assert_eq!(
        r(r#"{{ bytes "1.5MB" }} {{ bytes "3KiB" }} {{ bytes "512" }} {{ bytes "12 kb" }}"#),
        "1.5e+06 3072 512 12000"
    );
    assert_eq!(
        r(r#"{{ __timestamp__.Unix }} {{ __timestamp__.Format "15:04" }}"#),
        "1793491398 00:03"
    );
    assert!(r("{{ now | unixEpoch }}").parse::<i64>().unwrap() > 1_700_000_000);
}

#[test]
fn execution_errors() {
    assert_eq!(
        err(r#"{{ .app | trunc .n }}"#),
        r#"template: line:1:16: executing "line" at <.n>: wrong type for value; expected int; got string"#
    );
    assert_eq!(
        err(r#"{{ unixEpoch .app }}"#),
        r#"template: line:1:13: executing "line" at <.app>: wrong type for value; expected time.Time; got string"#
    );
    assert_eq!(
        err(r#"{{ div 1 0 }}"#),
        r#"template: line:1:3: executing "line" at <div 1 0>: error calling div: runtime error: integer divide by zero"#
    );
    // Go's exec_test: `at <index "hi" $>: error calling index: ...` (the whole command).
    assert_eq!(
        err(r#"x {{ .app | printf "%s" | index (fromJson "[1]") 5 }}"#),
        r#"template: line:1:26: executing "line" at <index (fromJson "[1]") 5>: error calling index: index out of range: 5"#
    );
    assert_eq!(
        err(r#"{{ printf "%s" (unixToTime (print 1)) }}"#),
        r#"template: line:1:16: executing "line" at <unixToTime (print 1)>: error calling unixToTime: unable to parse time '1': %!w(<nil>)"#
    );
    assert!(err(r#"{{ unixToTime "abc" }}"#)
        .contains("error calling unixToTime: unable to parse time 'abc'"));
    assert!(err(r#"{{ duration "5x" }}"#)
        .ends_with(r#"error calling duration: time: unknown unit "x" in duration "5x""#));
    assert!(err(r#"{{ trunc 1 2 }}"#).ends_with("expected string; found 2"));
    assert!(
        err(r#"{{ eq .app 1 }}"#).ends_with("error calling eq: incompatible types for comparison")
    );
    assert!(err(r#"{{ .app.x }}"#).ends_with("can't evaluate field x in type string"));
    assert!(err(r#"{{ index (fromJson "[1]") 5 }}"#).ends_with("index out of range: 5"));
    assert!(err(r#"{{ repeat 100000000 "abc" }}"#).ends_with("output too large"));
    assert!(err(r#"{{ repeat -1 "abc" }}"#).ends_with("negative Repeat count"));
    assert!(err(r#"{{ range $i := 100000000 }}{{ end }}"#).ends_with("too many range iterations"));
    assert!(err(r#"{{ regexReplaceAll "(" "a" "b" }}"#).contains("error parsing regexp"));
    assert!(err(r#"{{ "x" 1 }}"#).ends_with("can't give argument to non-function \"x\""));
    assert!(err(r#"{{ trunc }}"#).ends_with("wrong number of args for trunc: want 2 got 0"));
    assert!(err(r#"{{ .app 1 }}"#).ends_with("app is not a method but has arguments"));
}

#[test]
fn parse_errors() {
    assert_eq!(err("{{ foo }}"), r#"parse: template: line:1: function "foo" not defined"#);
    assert_eq!(err("{{ $x }}"), r#"parse: template: line:1: undefined variable "$x""#);
    assert!(err("{{ if .a }}").contains("unexpected EOF"));
    assert!(err("{{ end }}").contains("unexpected {{end}}"));
    assert!(err("{{ else }}").contains("unexpected {{else}}"));
    assert!(err("{{ .a ").contains("unclosed action"));
    assert!(err("{{ (.a }}").contains("unclosed left paren"));
    assert!(err("{{ }}").contains("missing value for command"));
    assert!(err("{{ .a | }}").contains("missing command"));
    assert!(err("{{ .a | 1 }}").contains("non executable command in pipeline stage 2"));
    assert!(err(r#"{{ "abc }}"#).contains("unterminated quoted string"));
    assert!(err("{{/* x }}").contains("unclosed comment"));
    assert!(err("{{ break }}").contains("{{break}} outside {{range}}"));
    assert!(err("{{ 3x }}").contains("bad number syntax"));
    assert!(err("{{ define \"x\" }}{{ end }}").contains("not supported"));
    assert!(err("{{ % }}").contains("unrecognized character in action"));
    let deep = format!("{}{}{}", "{{ if 1 }}".repeat(200), "x", "{{ end }}".repeat(200));
    assert!(err(&deep).contains("nesting too deep"));
    let parens = format!("{{{{ {}1{} }}}}", "(".repeat(500), ")".repeat(500));
    assert!(err(&parens).contains("nesting too deep"));
}

#[test]
fn field_names_and_sharing() {
    let t =
        Template::parse("{{ .a }}{{ if .b }}{{ .c | lower }}{{ end }}{{ $.d }}{{ .a }}").unwrap();
    assert_eq!(t.field_names(), vec!["a", "b", "c"]);
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Template>();
}

#[test]
fn no_panics_on_odd_input() {
    let srcs = [
        "{{",
        "}}",
        "{{-",
        "{{- -}}",
        "{{ - }}",
        "{{ . . }}",
        "{{ .a.b.c }}",
        "{{ $ }}",
        "{{ ( ) }}",
        "{{ ) }}",
        "{{ 'ab' }}",
        "{{ '\\x' }}",
        "{{ 0x }}",
        "{{ 1e }}",
        "{{ 99999999999999999999 }}",
        "{{ \"\\q\" }}",
        "{{ printf \"%\" }}",
        "{{ printf \"%!\" 1 }}",
        "{{ printf \"%[9]d\" 1 }}",
        "{{ printf \"%.\" 1 }}",
        "{{ substr 9 2 \"ab\" }}",
        "{{ trunc 1 \"é\" }}",
        "{{ b64dec \"a===\" }}",
        "{{ urldecode \"%\" }}",
        "{{ index . 1 }}",
        "{{ slice . }}",
        "{{ len 3 }}",
        "{{ range 1.5 }}{{ end }}",
        "{{ with $x := 1 }}{{ $x }}{{ end }}",
        "{{ toDate \"Jan _2 __2 002 .999 ,000 pm PM Z07 -07:00:00\" \"x\" }}",
        "{{ date \"January Monday\" 0 }}",
        "{{ printf \"%x %X %o %e\" 1.5 \"ab\" -3 \"s\" }}",
        "{{ round 1 -400 }}",
        "{{ divf 1 0 }}",
        "{{ int \"-\" }}",
        "{{ else with }}",
        "{{ if 1 }}{{ else x }}{{ end }}",
        "{{ $x := 1 }}{{ $x.y }}",
        "{{ nil }}",
        "{{ print nil }}",
    ];
    let l = Labels::from_pairs([("a", "é")]);
    for s in srcs {
        if let Ok(t) = Template::parse(s) {
            let _ = t.render(&l, "line", -1);
        }
    }
    // every prefix of a complex template
    let src = r#"{{- if and (eq .a "x") (gt (len __line__) 2) -}} {{ printf "%5.2f|%v" 1.5 . }} {{ else with $v := .a | upper }}{{ $v }}{{ end }}{{/* c */}}"#;
    for i in 0..=src.len() {
        if let Some(p) = src.get(..i) {
            if let Ok(t) = Template::parse(p) {
                let _ = t.render(&l, "line", 0);
            }
        }
    }
}
