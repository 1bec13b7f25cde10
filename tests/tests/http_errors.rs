//! Loki's status codes and messages for rejected queries, over a real `skald` and real sockets:
//! `max_query_length`, `max_query_series`, `max_entries_limit_per_query`, `query_timeout`, an
//! instant log query, a parse error, a bad regex and a bad template. The expected texts are
//! Loki's (pkg/util/validation, pkg/logqlmodel, pkg/querier/queryrange, pkg/util/server).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use serde_json::{json, Value};
use skald_integration_tests::{
    get, post, push_reference_dataset, temp_dir, Resp, Skald, REFERENCE_CONFIG,
};

/// 2026-11-01T00:00:00Z in seconds.
const T0: i64 = 1_793_491_200;
const NS: i64 = 1_000_000_000;

const LIMITS: &str = "auth_enabled: true
limits_config:
  reject_old_samples: false
  max_query_length: 2h
  max_query_series: 3
  max_entries_limit_per_query: 100
";

fn push_five_streams(s: &Skald) {
    let streams: Vec<Value> = (0..5)
        .map(|h| {
            let values: Vec<Value> = (0..60)
                .map(|i| {
                    json!([((T0 + i * 10) * NS + h).to_string(), format!("host {h} line {i}")])
                })
                .collect();
            json!({"stream": {"job": "five", "host": format!("h{h}")}, "values": values})
        })
        .collect();
    let body = json!({ "streams": streams }).to_string();
    let r = post(
        &format!("{}/loki/api/v1/push", s.url),
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", "t")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    // The data is weeks old: the querier reads it from storage, not from the ingester.
    let r = post(&format!("{}/flush", s.url), &[], b"");
    assert_eq!(r.status, 204, "{}", r.body);
}

fn range(s: &Skald, query: &str, start: i64, end: i64, extra: &[(&str, &str)]) -> Resp {
    let (st, en) = ((start * NS).to_string(), (end * NS).to_string());
    let mut p = vec![("query", query), ("start", st.as_str()), ("end", en.as_str())];
    p.extend_from_slice(extra);
    get(&format!("{}/loki/api/v1/query_range", s.url), &p, &[("X-Scope-OrgID", "t")])
}

fn instant(s: &Skald, query: &str, time: i64) -> Resp {
    let t = (time * NS).to_string();
    get(
        &format!("{}/loki/api/v1/query", s.url),
        &[("query", query), ("time", t.as_str())],
        &[("X-Scope-OrgID", "t")],
    )
}

/// A rejected request: Loki's status, its exact text, as `text/plain; charset=utf-8`.
fn assert_rejected(r: &Resp, status: u16, text: &str) {
    assert_eq!((r.status, r.body.as_str()), (status, text));
    assert_eq!(r.content_type, "text/plain; charset=utf-8");
}

#[test]
fn limits_and_bad_queries_answer_like_loki() {
    let dir = temp_dir("http-errors");
    let s = Skald::start(&dir, LIMITS);
    push_five_streams(&s);
    let q = "{job=\"five\"}";

    // max_query_length: the frontend's check, `queryLen > limit` (equal passes).
    let r = range(&s, q, T0, T0 + 3 * 3600 + 1, &[]);
    assert_rejected(
        &r,
        400,
        "the query time range exceeds the limit (query length: 3h0m1s, limit: 2h)",
    );
    let r = range(&s, "count_over_time({job=\"five\"}[1m])", T0, T0 + 7201, &[("step", "60")]);
    assert_rejected(
        &r,
        400,
        "the query time range exceeds the limit (query length: 2h0m1s, limit: 2h)",
    );
    assert_eq!(range(&s, q, T0, T0 + 7200, &[]).status, 200);

    // max_entries_limit_per_query.
    let r = range(&s, q, T0, T0 + 600, &[("limit", "101")]);
    assert_rejected(
        &r,
        400,
        "max entries limit per query exceeded, limit > max_entries_limit_per_query (101 > 100)",
    );
    let r = range(&s, q, T0, T0 + 600, &[("limit", "100")]);
    assert_eq!(r.status, 200, "{}", r.body);
    let n: usize = r.json()["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["values"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, 100);

    // max_query_series: 5 series > 3, for range and instant queries; aggregated is fine.
    let series_text = "maximum number of series (3) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reducing the time range, or aggregating results with functions like sum(), count() or topk()";
    let r = range(&s, "count_over_time({job=\"five\"}[1m])", T0, T0 + 600, &[("step", "60")]);
    assert_rejected(&r, 400, series_text);
    let r = instant(&s, "count_over_time({job=\"five\"}[10m])", T0 + 600);
    assert_rejected(&r, 400, series_text);
    let r = instant(&s, "sum(count_over_time({job=\"five\"}[10m]))", T0 + 600);
    assert_eq!(r.status, 200, "{}", r.body);
    // (T0, T0+10m] is left-open: h0's line at exactly T0 is out, the others are 1-4 ns later.
    assert_eq!(r.json()["data"]["result"][0]["value"][1], json!("299"));
    let r = instant(&s, "topk(3, count_over_time({job=\"five\"}[10m]))", T0 + 600);
    assert_eq!(r.status, 200, "{}", r.body);

    // An instant log query.
    let r = instant(&s, q, T0 + 600);
    assert_rejected(
        &r,
        400,
        "log queries are not supported as an instant query type, please change your query to a range query type",
    );

    // Parse errors, with Loki's line and column.
    let r = range(&s, "{job=\"web\"} | json |=", T0, T0 + 600, &[]);
    assert_rejected(
        &r,
        400,
        "parse error at line 1, col 22: syntax error: unexpected $end, expecting STRING or ip",
    );
    let r = range(&s, "sum(count_over_time({job=\"five\"}[1m]) by (host)", T0, T0 + 600, &[]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.starts_with("parse error at line 1, col "), "{}", r.body);

    // A bad regex, a bad template: stage errors, without position.
    let r = range(&s, "{job=\"web\"} |~ \"(unclosed\"", T0, T0 + 600, &[]);
    assert_rejected(
        &r,
        400,
        "parse error : stage '|~ \"(unclosed\"' : error parsing regexp: missing closing ): `(unclosed`",
    );
    let r = range(&s, "{job=\"five\"} | line_format \"{{.x\"", T0, T0 + 600, &[]);
    assert_rejected(
        &r,
        400,
        "parse error : stage '| line_format \"{{.x\"' : invalid line template: template: line:1: unclosed action",
    );
    let r = range(&s, "{job=\"five\"} | label_format a=`{{ nope }}`", T0, T0 + 600, &[]);
    assert_rejected(
        &r,
        400,
        "parse error : stage '| label_format a=\"{{ nope }}\"' : invalid template for label 'a': template: label:1: function \"nope\" not defined",
    );
}

#[test]
fn query_timeout_answers_504() {
    let dir = temp_dir("http-timeout");
    let config =
        REFERENCE_CONFIG.replace("limits_config:\n", "limits_config:\n  query_timeout: 1ms\n");
    let s = Skald::start(&dir, &config);
    push_reference_dataset(&s, "tenant-a");
    let (st, en) = ((T0 * NS).to_string(), ((T0 + 7200) * NS).to_string());
    let r = get(
        &format!("{}/loki/api/v1/query_range", s.url),
        &[
            ("query", "sum by (job) (count_over_time({env=\"test\"} |~ \"(?i)e.*r.*o\" [10m]))"),
            ("start", st.as_str()),
            ("end", en.as_str()),
            ("step", "1"),
        ],
        &[("X-Scope-OrgID", "tenant-a")],
    );
    assert_rejected(
        &r,
        504,
        "request timed out, decrease the duration of the request or add more label matchers (prefer exact match over regex match) to reduce the amount of data processed",
    );
}

#[test]
fn approx_topk_follows_shard_aggregations() {
    let q = "approx_topk(2, sum by (host) (count_over_time({job=\"five\"}[10m])))";
    // Loki's default: shard_aggregations is empty, so approx_topk is refused.
    let dir = temp_dir("http-approx-default");
    let s = Skald::start(&dir, LIMITS);
    push_five_streams(&s);
    assert_rejected(
        &instant(&s, q, T0 + 600),
        500,
        "approx_topk is not enabled. See -limits.shard_aggregations",
    );
    drop(s);

    // Enabled: instant queries answer (Skald's counts are exact), range queries are refused.
    let dir = temp_dir("http-approx-enabled");
    let config =
        LIMITS.replace("limits_config:\n", "limits_config:\n  shard_aggregations: [approx_topk]\n");
    let s = Skald::start(&dir, &config);
    push_five_streams(&s);
    let r = instant(&s, q, T0 + 600);
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2, "{}", r.body);
    for p in result {
        assert_eq!(p["value"][1], "60", "{}", r.body);
    }
    assert_rejected(
        &range(&s, q, T0, T0 + 600, &[]),
        500,
        "count min sketches are only supported on instant queries",
    );
}

/// A request to `path` with `params`, as tenant `t`.
fn request(s: &Skald, path: &str, params: &[(&str, &str)]) -> Resp {
    get(&format!("{}{path}", s.url), params, &[("X-Scope-OrgID", "t")])
}

/// Every time parameter's parse error, per endpoint, with the status and exact text real Loki
/// answers (recorded from Loki 3.x, main-65e30f8, with bad values for each parameter): range
/// endpoints name the parameter (`could not parse 'start' parameter: ...`), the instant
/// `time` does not; `since` is Prometheus' duration, `step` and `interval` Loki's
/// seconds-or-duration; endpoints that do not read a parameter ignore it.
#[test]
fn time_parameter_errors_answer_like_loki() {
    let dir = temp_dir("http-time-params");
    let s = Skald::start(&dir, LIMITS);
    let (st, en) = (T0.to_string(), (T0 + 600).to_string());
    let q = r#"{job="five"}"#;
    let metric = r#"count_over_time({job="five"}[1m])"#;
    let start_abc =
        r#"could not parse 'start' parameter: strconv.ParseInt: parsing "abc": invalid syntax"#;
    let end_abc =
        r#"could not parse 'end' parameter: strconv.ParseInt: parsing "abc": invalid syntax"#;
    let end_1e400 =
        r#"could not parse 'end' parameter: strconv.ParseInt: parsing "1e400": invalid syntax"#;
    let start_range = r#"could not parse 'start' parameter: strconv.ParseInt: parsing "99999999999999999999": value out of range"#;
    let start_rfc = r#"could not parse 'start' parameter: strconv.ParseInt: parsing "2026-13-01T00:00:00Z": invalid syntax"#;
    let since_xyz = r#"could not parse 'since' parameter: not a valid duration string: "xyz""#;
    let since_frac = r#"could not parse 'since' parameter: unknown unit "." in duration "1.5h""#;
    let since_order = r#"could not parse 'since' parameter: not a valid duration string: "30m1h""#;
    let since_ns = r#"could not parse 'since' parameter: unknown unit "ns" in duration "5ns""#;
    let since_big = "could not parse 'since' parameter: duration out of range";
    let time_bad = r#"strconv.ParseInt: parsing "bad": invalid syntax"#;
    let step_abc = r#"cannot parse "abc" to a valid duration"#;
    let step_1e400 = r#"cannot parse "1e400" to a valid duration"#;
    let step_1e300 = r#"cannot parse "1e300" to a valid duration. It overflows int64"#;
    let step_frac = r#"cannot parse "1.5m" to a valid duration"#;
    let step_neg =
        "zero or negative query resolution step widths are not accepted. Try a positive integer";
    let points = "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter";
    let interval_neg = "interval must be >= 0";
    let limit_abc = r#"strconv.Atoi: parsing "abc": invalid syntax"#;

    // The endpoints that read `start`, `end` and `since` (and the query they need).
    let ranged: [(&str, &[(&str, &str)]); 11] = [
        ("/loki/api/v1/query_range", &[("query", q)]),
        ("/loki/api/v1/labels", &[]),
        ("/loki/api/v1/label/job/values", &[]),
        ("/loki/api/v1/series", &[("match[]", q)]),
        ("/loki/api/v1/index/stats", &[("query", q)]),
        ("/loki/api/v1/index/volume", &[("query", q)]),
        ("/loki/api/v1/index/volume_range", &[("query", q)]),
        ("/loki/api/v1/detected_labels", &[("query", q)]),
        ("/loki/api/v1/detected_fields", &[("query", q)]),
        ("/loki/api/v1/patterns", &[("query", q)]),
        ("/loki/api/v1/tail", &[("query", q)]),
    ];
    for (path, base) in ranged {
        for (bad, text) in [
            (&[("start", "abc")][..], start_abc),
            (&[("end", "abc")][..], end_abc),
            (&[("end", "1e400")][..], end_1e400),
            (&[("start", "99999999999999999999")][..], start_range),
            (&[("start", "2026-13-01T00:00:00Z")][..], start_rfc),
            (&[("since", "xyz")][..], since_xyz),
            (&[("since", "1.5h")][..], since_frac),
            (&[("since", "30m1h")][..], since_order),
            (&[("since", "5ns")][..], since_ns),
            (&[("since", "99999999y")][..], since_big),
            // `since` is read first, then `end`, then `start`
            (&[("end", "abc"), ("since", "xyz")][..], since_xyz),
            (&[("end", "abc"), ("start", "abc")][..], end_abc),
        ] {
            let mut p = base.to_vec();
            p.extend_from_slice(bad);
            assert_rejected(&request(&s, path, &p), 400, text);
        }
    }

    // `step` (and `interval`) where Loki reads them; the range is 10 minutes.
    let stepped: [(&str, &[(&str, &str)]); 6] = [
        ("/loki/api/v1/query_range", &[("query", metric)]),
        ("/loki/api/v1/index/stats", &[("query", q)]),
        ("/loki/api/v1/index/volume_range", &[("query", q)]),
        ("/loki/api/v1/detected_fields", &[("query", q)]),
        ("/loki/api/v1/detected_field/job/values", &[("query", q)]),
        ("/loki/api/v1/patterns", &[("query", q)]),
    ];
    for (path, base) in stepped {
        for (step, text) in [
            ("abc", step_abc),
            ("1e400", step_1e400),
            ("1e300", step_1e300),
            ("1.5m", step_frac),
            ("-1", step_neg),
            ("0", step_neg),
            ("1e-10", step_neg),
            ("0.01", points),
        ] {
            let mut p = base.to_vec();
            p.extend_from_slice(&[("start", &st), ("end", &en), ("step", step)]);
            assert_rejected(&request(&s, path, &p), 400, text);
        }
    }
    for path in ["/loki/api/v1/query_range", "/loki/api/v1/index/stats"] {
        let p = [("query", q), ("start", &st), ("end", &en), ("interval", "-1")];
        assert_rejected(&request(&s, path, &p), 400, interval_neg);
        let p = [("query", q), ("start", &st), ("end", &en), ("interval", "abc")];
        assert_rejected(&request(&s, path, &p), 400, step_abc);
        let p = [("query", q), ("start", &st), ("end", &en), ("limit", "abc")];
        assert_rejected(&request(&s, path, &p), 400, limit_abc);
    }
    // ... and not elsewhere: `labels` ignores `step`, `patterns` ignores `interval`.
    let p = [("start", st.as_str()), ("end", &en), ("step", "abc"), ("interval", "abc")];
    assert_eq!(request(&s, "/loki/api/v1/labels", &p).status, 200);
    let p = [("query", q), ("start", &st), ("end", &en), ("interval", "abc")];
    assert_eq!(request(&s, "/loki/api/v1/patterns", &p).status, 200);

    // `time`: the instant query and the volume read it, without naming it; range endpoints
    // ignore it.
    let p = [("query", metric), ("time", "bad")];
    assert_rejected(&request(&s, "/loki/api/v1/query", &p), 400, time_bad);
    let p = [("query", q), ("time", "bad")];
    assert_rejected(&request(&s, "/loki/api/v1/index/volume", &p), 400, time_bad);
    let p = [("query", q), ("start", &st), ("end", &en), ("time", "bad")];
    assert_eq!(request(&s, "/loki/api/v1/query_range", &p).status, 200);
    // the instant query reads `time` before it refuses a log query
    let p = [("query", q), ("time", "bad")];
    assert_rejected(&request(&s, "/loki/api/v1/query", &p), 400, time_bad);

    // The widest range there is: refused by max_query_length everywhere, never a crash.
    let (min, max) = (i64::MIN.to_string(), i64::MAX.to_string());
    for path in [
        "/loki/api/v1/query_range",
        "/loki/api/v1/labels",
        "/loki/api/v1/series",
        "/loki/api/v1/index/stats",
        "/loki/api/v1/index/volume",
        "/loki/api/v1/index/volume_range",
    ] {
        let p = [("query", q), ("match[]", q), ("start", &min), ("end", &max), ("step", "1e9")];
        let r = request(&s, path, &p);
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.body.starts_with("the query time range exceeds the limit"), "{}", r.body);
    }

    // A tail request that passes the checks but is no WebSocket handshake: the WebSocket
    // library's answer.
    let r = request(&s, "/loki/api/v1/tail", &[("query", q)]);
    assert_rejected(&r, 400, "Bad Request\n");
}

/// `max_query_length` holds for `labels`, `label/<name>/values`, `series` and
/// `detected_labels` too (after `max_query_lookback` moved the start), and an end before the
/// start is reported as data past the lookback; texts recorded from Loki 3.x (main-65e30f8).
#[test]
fn max_query_length_applies_to_labels_and_series() {
    let dir = temp_dir("http-labels-length");
    let s = Skald::start(&dir, LIMITS);
    push_five_streams(&s);
    let q = r#"{job="five"}"#;
    let (st, long, short) = (
        (T0 * NS).to_string(),
        ((T0 + 3 * 3600 + 1) * NS).to_string(),
        ((T0 + 7200) * NS).to_string(),
    );
    let too_long = "the query time range exceeds the limit (query length: 3h0m1s, limit: 2h)";
    let endpoints: [(&str, &[(&str, &str)]); 4] = [
        ("/loki/api/v1/labels", &[]),
        ("/loki/api/v1/label/host/values", &[]),
        ("/loki/api/v1/series", &[("match[]", q)]),
        ("/loki/api/v1/detected_labels", &[("query", q)]),
    ];
    for (path, base) in endpoints {
        let mut p = base.to_vec();
        p.extend_from_slice(&[("start", st.as_str()), ("end", long.as_str())]);
        assert_rejected(&request(&s, path, &p), 400, too_long);
        let mut p = base.to_vec();
        p.extend_from_slice(&[("start", st.as_str()), ("end", short.as_str())]);
        let r = request(&s, path, &p);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(r.body.contains("host") || r.body.contains("h4"), "{path}: {}", r.body);
        // the default range is an hour, within the limit
        let r = request(&s, path, base);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let p = [("since", "3h")];
        let mut with = base.to_vec();
        with.extend_from_slice(&p);
        assert_rejected(
            &request(&s, path, &with),
            400,
            "the query time range exceeds the limit (query length: 3h0m0s, limit: 2h)",
        );
    }
    for (path, base) in &endpoints[..3] {
        let mut p = base.to_vec();
        p.extend_from_slice(&[("start", short.as_str()), ("end", st.as_str())]);
        assert_rejected(
            &request(&s, path, &p),
            400,
            "this data is no longer available, it is past now - max_query_lookback (0s)",
        );
    }
}

/// `since` counts back from `end`, or from now when `end` is in the future, as Loki's
/// `bounds` does: with `end` 3 h ahead and `since=1h` the range starts an hour ago, so it is
/// about 4 h long and passes the 2 h `max_query_length`. Recorded from Loki 3.x (main-65e30f8):
/// with `end` 3h10s ahead and `since=720h`, `query_range`, `labels` and `series` each answered
/// `the query time range exceeds the limit (query length: 723h0m9.98s, limit: 30d1h)`.
#[test]
fn since_with_a_future_end_counts_back_from_now() {
    let dir = temp_dir("http-since-future");
    let s = Skald::start(&dir, LIMITS);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        as i64;
    let end = (now + (3 * 3600 + 10) * NS).to_string();
    for path in ["/loki/api/v1/query_range", "/loki/api/v1/labels"] {
        let r = request(
            &s,
            path,
            &[("query", r#"{job="five"}"#), ("end", end.as_str()), ("since", "1h")],
        );
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let (head, tail) =
            ("the query time range exceeds the limit (query length: 4h0m", ", limit: 2h)");
        assert!(r.body.starts_with(head) && r.body.ends_with(tail), "{path}: {}", r.body);
    }
    // `end` in the past: since counts back from it (1 h, within the limit)
    let end = (now - 600 * NS).to_string();
    let r = request(
        &s,
        "/loki/api/v1/query_range",
        &[("query", r#"{job="five"}"#), ("end", end.as_str()), ("since", "1h")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
}
