//! Queries that must not outlive their client, their timeout or the process, and answers
//! that must not outgrow `querier.skald_max_query_response_size` (issue 13, items 6 and 7).

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use skald_integration_tests::{cpu_ticks, free_port_pair, get, now_ns, post, temp_dir, Skald};

const LIMITS: &str = "limits_config:
  ingestion_rate_mb: 1000
  ingestion_burst_size_mb: 1000
  per_stream_rate_limit: 1000MB
  per_stream_rate_limit_burst: 1000MB
";

/// A JSON line of about 4 KB: 40 fields of 100 characters.
fn wide_line(i: usize) -> String {
    let mut s = String::from("{");
    for f in 0..40 {
        s.push_str(&format!("\"f{f}\":\"{}{:0>92}\",", f % 10, i));
    }
    s.push_str(&format!("\"n\":{i}}}"));
    s
}

/// Pushes `lines` lines produced by `line` to `{job="<job>"}`, ending now, in pushes of 2000.
fn push_lines(s: &Skald, job: &str, lines: usize, line: impl Fn(usize) -> String) {
    let start = now_ns() - 600_000_000_000;
    for chunk in (0..lines).collect::<Vec<_>>().chunks(2000) {
        let values: Vec<serde_json::Value> = chunk
            .iter()
            .map(|&i| serde_json::json!([(start + i as i64 * 1_000_000).to_string(), line(i)]))
            .collect();
        let body = serde_json::json!({"streams": [{"stream": {"job": job}, "values": values}]});
        let r = post(
            &format!("{}/loki/api/v1/push", s.url),
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 204, "push: {}", r.body);
    }
}

/// Waits until the process uses less than a fifth of a core over one second; panics if that
/// does not happen within `within`.
fn wait_idle(s: &Skald, within: Duration, what: &str) {
    let pid = s.pid().expect("running");
    let deadline = Instant::now() + within;
    loop {
        let before = cpu_ticks(pid);
        thread::sleep(Duration::from_secs(1));
        let used = cpu_ticks(pid) - before;
        if used < 20 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the process still uses CPU ({used} ticks in the last second)"
        );
    }
}

/// A metric query that runs `| json` over every line `n` times.
fn heavy_metric_query(n: usize) -> String {
    vec![r#"count_over_time({job="wide"} | json [1h])"#; n].join(" + ")
}

fn query_range(s: &Skald, q: &str, limit: &str) -> skald_integration_tests::Resp {
    query_range_step(s, q, limit, "60")
}

fn query_range_step(s: &Skald, q: &str, limit: &str, step: &str) -> skald_integration_tests::Resp {
    let (start, end) = ((now_ns() - 3_600_000_000_000).to_string(), (now_ns() + 1).to_string());
    get(
        &format!("{}/loki/api/v1/query_range", s.url),
        &[("query", q), ("start", &start), ("end", &end), ("limit", limit), ("step", step)],
        &[],
    )
}

#[test]
fn a_timed_out_query_stops_working() {
    let dir = temp_dir("timed-out-query");
    let s = Skald::start(&dir, &format!("{LIMITS}  query_timeout: 1s\n"));
    push_lines(&s, "wide", 20_000, wide_line);
    wait_idle(&s, Duration::from_secs(30), "after the push");

    // the ingester extracts the samples: its scan must stop too
    let r = query_range(&s, &heavy_metric_query(20), "100");
    assert_eq!(r.status, 504, "{}", r.body);
    wait_idle(&s, Duration::from_secs(5), "after a metric query's 504");

    // the ingester runs the pipeline of a log query
    let r =
        query_range(&s, r#"{job="wide"} | json | f1 = "nothing" | line_format "{{.f2}}""#, "100");
    assert!(r.status == 504 || r.status == 200, "{}: {}", r.status, r.body);
    wait_idle(&s, Duration::from_secs(5), "after a log query");
}

#[test]
fn a_query_stops_when_its_client_goes_and_sigterm_does_not_wait_for_queries() {
    let dir = temp_dir("abandoned-query");
    let (http, grpc) = free_port_pair();
    let config = format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {http}\n  grpc_listen_address: 127.0.0.1\n  grpc_listen_port: {grpc}\n  graceful_shutdown_timeout: 2s\ncommon:\n  path_prefix: {}\n{LIMITS}  query_timeout: 5m\n",
        dir.join("data").display()
    );
    let path = dir.join("skald.yaml");
    std::fs::write(&path, config).expect("config");
    let mut s = Skald::start_with_config(&dir, &path, http, grpc);
    push_lines(&s, "wide", 20_000, wide_line);
    wait_idle(&s, Duration::from_secs(30), "after the push");

    // the client gives up after a second
    let (start, end) = ((now_ns() - 3_600_000_000_000).to_string(), (now_ns() + 1).to_string());
    let q = heavy_metric_query(20);
    let r = ureq::get(&format!("{}/loki/api/v1/query_range", s.url))
        .query("query", &q)
        .query("start", &start)
        .query("end", &end)
        .query("step", "60")
        .timeout(Duration::from_secs(1))
        .call();
    assert!(r.is_err(), "the query answered within a second");
    wait_idle(&s, Duration::from_secs(5), "after the client went away");

    // SIGTERM while a query runs: the process exits within the grace period (plus the
    // ingester's flush), not when the query would have ended
    let url = s.url.clone();
    let client = thread::spawn(move || {
        let _ = ureq::get(&format!("{url}/loki/api/v1/query_range"))
            .query("query", &q)
            .query("start", &start)
            .query("end", &end)
            .query("step", "60")
            .timeout(Duration::from_secs(300))
            .call();
    });
    thread::sleep(Duration::from_secs(1));
    let pid = s.pid().expect("running").to_string();
    let sent = Instant::now();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let status = s.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    let took = sent.elapsed();
    assert!(took < Duration::from_secs(20), "exit took {took:?}; log:\n{}", s.log());
    let _ = client.join();
}

fn rss_kib(s: &Skald) -> u64 {
    let pid = s.pid().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn an_answer_past_the_response_size_limit_is_a_400_and_its_memory_is_given_back() {
    let dir = temp_dir("response-size");
    let s = Skald::start(&dir, LIMITS);
    push_lines(&s, "small", 1000, |i| format!("line {i}"));
    let before = rss_kib(&s);

    // ~1 MB per line: 1000 lines would answer 1 GB; the default cap is 100 MB
    let inflate = r#"{job="small"} | line_format "{{ repeat 100000 \"0123456789\" }}""#;
    let started = Instant::now();
    let r = query_range(&s, inflate, "1000");
    assert_eq!(r.status, 400, "{}", &r.body[..r.body.len().min(300)]);
    assert!(r.body.contains("querier.skald_max_query_response_size"), "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(60));
    let after = rss_kib(&s);
    assert!(
        after < before + 400 * 1024,
        "RSS grew from {before} KiB to {after} KiB for a refused query"
    );

    // under the cap the same kind of query answers
    let r = query_range(&s, inflate, "20");
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(300)]);
    assert_eq!(r.json()["data"]["result"][0]["values"].as_array().map(Vec::len), Some(20));

    // a smaller configured cap applies to the JSON written too (metric answers included)
    drop(s);
    let dir = temp_dir("response-size-small");
    let s =
        Skald::start(&dir, &format!("{LIMITS}querier:\n  skald_max_query_response_size: 16KB\n"));
    push_lines(&s, "small", 1000, |i| format!("line {i}"));
    let r = query_range(&s, r#"{job="small"}"#, "1000");
    assert_eq!(r.status, 400, "{}", r.body);
    // the lines sit 600 s back, so the series has 1201 half-second points: about 30 KB of JSON
    let r = query_range_step(&s, r#"count_over_time({job="small"}[1h])"#, "100", "0.5");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("16384 bytes"), "{}", r.body);
    let r = query_range(&s, r#"sum(count_over_time({job="small"}[1h]))"#, "100");
    assert_eq!(r.status, 200, "{}", r.body);
}
