//! Known bad queries against a real `skald` with a small `limits_config.max_query_memory`
//! (issue 15, section 2): each one fails cleanly (4xx with a message naming the limit it hit)
//! or answers, the process's peak resident memory stays within the cap plus its baseline (the
//! memory it held after start-up and the pushes), and the next query answers.
//!
//! The data is scaled so that the suite stays well under a minute in a debug build: the cap
//! is 64MB, and 150,000 distinct lines make ~100MB of series for a query that turns every line
//! into a label value. It is pushed two hours back and flushed, and the querier asks the
//! ingesters only about the last hour, so the queries read the store through the engine.
//!
//! After a query that held 8MB or more, or grew the resident memory by 16MB, the querier
//! gives its freed memory back to the system (glibc keeps it per thread otherwise): the
//! resident memory after each query is printed, and it stays within 16MB of the baseline.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skald_integration_tests::{get, now_ns, post, temp_dir, Resp, Skald};

const CAP: u64 = 64 << 20;
/// What the process may keep resident after a query, beyond its baseline (4 MB was seen).
const RESIDUE: u64 = 16 << 20;
const SEC: i64 = 1_000_000_000;
const HOUR: i64 = 3600 * SEC;
const LINES: usize = 150_000;

const CONFIG: &str = "querier:
  query_ingesters_within: 1h
limits_config:
  reject_old_samples: false
  ingestion_rate_mb: 1000
  ingestion_burst_size_mb: 1000
  per_stream_rate_limit: 1000MB
  per_stream_rate_limit_burst: 1000MB
  max_query_memory: 64MB
  max_query_series: 10000000
  max_query_length: 0
";

/// Pushes `lines` lines made by `line` to `{job="<job>"}`, one per millisecond from `start`.
fn push(s: &Skald, job: &str, start: i64, lines: usize, line: impl Fn(usize) -> String) {
    for chunk in (0..lines).collect::<Vec<_>>().chunks(5000) {
        let values: Vec<Value> = chunk
            .iter()
            .map(|&i| json!([(start + i as i64 * 1_000_000).to_string(), line(i)]))
            .collect();
        let body = json!({"streams": [{"stream": {"job": job}, "values": values}]});
        let r = post(
            &format!("{}/loki/api/v1/push", s.url),
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 204, "push: {}", r.body);
    }
}

/// A JSON object nested `depth` levels deep, two fields per level.
fn nested(i: usize, depth: usize) -> String {
    let mut s = String::new();
    for d in 0..depth {
        s.push_str(&format!(r#"{{"k{d}":"v{i}","n{d}":"#));
    }
    s.push_str(&i.to_string());
    s.push_str(&"}".repeat(depth));
    s
}

fn query_range(s: &Skald, q: &str, start: i64, end: i64, step: &str) -> Resp {
    get(
        &format!("{}/loki/api/v1/query_range", s.url),
        &[
            ("query", q),
            ("start", &start.to_string()),
            ("end", &end.to_string()),
            ("step", step),
            ("limit", "100"),
        ],
        &[],
    )
}

#[test]
fn bad_queries_fail_cleanly_within_the_memory_cap() {
    let dir = temp_dir("bad-queries");
    let s = Skald::start(&dir, CONFIG);
    let now = now_ns();
    let t0 = now - 2 * HOUR - 10 * 60 * SEC;
    push(&s, "lines", t0, LINES, |i| {
        format!("u{i:07} GET /api/v1/items status=200 aaaaaaaaaaaaaaaa")
    });
    push(&s, "nested", t0, 2000, |i| nested(i, 60));
    let f = post(&format!("{}/flush", s.url), &[], b"");
    assert!(f.status < 300, "flush: {}", f.body);
    let (start, end) = (t0 - 60 * SEC, now - HOUR - 30 * 60 * SEC);

    // a small query warms up the read path; its memory is part of the baseline
    let ok = r#"sum(count_over_time({job="lines"}[1h]))"#;
    let r = query_range(&s, ok, start, end, "600");
    assert_eq!(r.status, 200, "{}", r.body);
    let baseline = s.rss_bytes();
    // the cap over the baseline: the querier reserves the chunks it reads ahead in the cap
    let bound = baseline + CAP;
    eprintln!("baseline rss {} MB, peak so far {} MB", baseline >> 20, s.peak_rss_bytes() >> 20);

    let year = 365 * 24 * HOUR;
    let cases: [(&str, &str, i64, &str); 8] = [
        // one series per distinct line: ~100MB of series and labels
        (
            "sum by line",
            r#"sum by (l) (count_over_time({job="lines"} | label_format l="{{__line__}}" [1h]))"#,
            start,
            "600",
        ),
        (
            "topk over a series per line",
            r#"topk(5, count_over_time({job="lines"} | label_format l="{{__line__}}" [1h]))"#,
            start,
            "600",
        ),
        // 150k samples in every window of a 1s step
        (
            "quantile over every sample",
            r#"quantile_over_time(0.99, {job="lines"} | regexp `u(?P<n>\d+)` | unwrap n [1h])"#,
            start,
            "1",
        ),
        ("json over deep lines", r#"{job="nested"} | json"#, start, "60"),
        (
            "json metric over deep lines",
            r#"sum by (k0) (count_over_time({job="nested"} | json [1h]))"#,
            start,
            "60",
        ),
        // backtracking engines take exponential time here; Rust's regex is linear
        ("catastrophic regex", r#"{job="lines"} |~ "(a|aa)+$" |~ "(x+x+)+y|u""#, start, "60"),
        (
            "catastrophic regex metric",
            r#"count_over_time({job="lines"} |~ "^(a+)+$|(.*a){12}" [1h])"#,
            start,
            "600",
        ),
        // a year at a 1 ms step: too many points
        ("a year at 1ms", r#"count_over_time({job="lines"}[1m])"#, end - year, "0.001"),
    ];
    for (name, q, from, step) in cases {
        let t = Instant::now();
        let r = query_range(&s, q, from, end, step);
        let took = t.elapsed();
        let peak = s.peak_rss_bytes();
        eprintln!(
            "{name}: {} in {took:?}, peak rss {} MB: {}",
            r.status,
            peak >> 20,
            r.body.chars().take(160).collect::<String>()
        );
        assert!(
            r.status == 200 || (400..500).contains(&r.status),
            "{name}: {} {}",
            r.status,
            r.body
        );
        if r.status != 200 {
            assert!(!r.body.trim().is_empty(), "{name}: an error without a message");
        }
        assert!(took < Duration::from_secs(30), "{name}: took {took:?}");
        assert!(
            peak <= bound,
            "{name}: peak rss {} MB over baseline {} MB + cap {} MB",
            peak >> 20,
            baseline >> 20,
            CAP >> 20
        );
        // the process is alive and the next query answers
        let r = query_range(&s, ok, start, end, "600");
        assert_eq!(r.status, 200, "after {name}: {}", r.body);
        // and what the query used went back: with glibc's rising mmap threshold, the large
        // blocks of each heavy query stayed in the arenas and the resident memory ratcheted
        // up by 10 to 40 MB a query
        let after = s.rss_bytes();
        eprintln!("  rss after: {} MB", after >> 20);
        assert!(
            after <= baseline + RESIDUE,
            "after {name}: rss {} MB over baseline {} MB + {} MB",
            after >> 20,
            baseline >> 20,
            RESIDUE >> 20
        );
    }

    // the two series-per-line queries are the ones the cap stops, with its message
    for q in [
        r#"sum by (l) (count_over_time({job="lines"} | label_format l="{{__line__}}" [1h]))"#,
        r#"topk(5, count_over_time({job="lines"} | label_format l="{{__line__}}" [1h]))"#,
    ] {
        let r = query_range(&s, q, start, end, "600");
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert!(
            r.body.starts_with(
                "the query needs more than 64 MiB of memory (limits_config.max_query_memory)"
            ),
            "{q}: {}",
            r.body
        );
    }
    // and a year at 1 ms is Loki's too-many-points error
    let r = query_range(&s, r#"count_over_time({job="lines"}[1m])"#, end - year, end, "0.001");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("exceeded maximum resolution of 11,000 points"), "{}", r.body);
}
