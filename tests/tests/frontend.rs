//! The query-frontend (issue 16) through real processes and sockets:
//! - one tenant's flood does not starve another: tenants are served round robin, a full queue
//!   answers Loki's 429, and no query is dropped without it;
//! - a client that goes away cancels every split on every querier (over gRPC);
//! - the results cache answers a repeated query without reading anything, never answers one
//!   tenant with another's data, honours `Cache-Control: no-cache`, and degrades to a miss
//!   (never an error) when its memcached dies.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use skald_integration_tests::replay::without_stats;
use skald_integration_tests::{
    cpu_ticks, free_port, get, jitter_ms, now_ns, post, start_frontend_cluster, temp_dir, Resp,
    Skald,
};

const LIMITS: &str = "limits_config:
  ingestion_rate_mb: 1000
  ingestion_burst_size_mb: 1000
  per_stream_rate_limit: 1000MB
  per_stream_rate_limit_burst: 1000MB
  max_query_series: 100000
";

const MINUTE: i64 = 60_000_000_000;

/// A JSON line of about 1 KB.
fn json_line(i: usize) -> String {
    let mut s = String::from("{");
    for f in 0..10 {
        s.push_str(&format!("\"f{f}\":\"{}{:0>92}\",", f % 10, i));
    }
    s.push_str(&format!("\"n\":{i}}}"));
    s
}

/// Pushes `lines` lines to `{job="<job>"}` for `tenant`, spread evenly over `[start, end)`.
fn push_spread(url: &str, tenant: &str, job: &str, lines: usize, start: i64, end: i64) {
    let gap = (end - start) / lines as i64;
    for chunk in (0..lines).collect::<Vec<_>>().chunks(2000) {
        let values: Vec<Value> = chunk
            .iter()
            .map(|&i| serde_json::json!([(start + i as i64 * gap).to_string(), json_line(i)]))
            .collect();
        let body = serde_json::json!({"streams": [{"stream": {"job": job}, "values": values}]});
        let r = post(
            &format!("{url}/loki/api/v1/push"),
            &[("Content-Type", "application/json"), ("X-Scope-OrgID", tenant)],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 204, "push: {}", r.body);
    }
}

fn query_range(url: &str, tenant: &str, q: &str, start: i64, end: i64, step: &str) -> Resp {
    query_range_with(url, tenant, q, start, end, step, &[])
}

fn query_range_with(
    url: &str,
    tenant: &str,
    q: &str,
    start: i64,
    end: i64,
    step: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let (start, end) = (start.to_string(), end.to_string());
    let mut h = vec![("X-Scope-OrgID", tenant)];
    h.extend_from_slice(headers);
    get(
        &format!("{url}/loki/api/v1/query_range"),
        &[("query", q), ("start", &start), ("end", &end), ("step", step)],
        &h,
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Tenant A floods the single binary with 200 concurrent queries of 3 splits each, while
/// tenant B runs a query of one split of the same work: B's median latency stays within 2x of
/// its idle median, and every one of A's queries gets its answer or Loki's 429.
///
/// One querier worker (`querier.max_concurrent: 1`): B's request then waits for the split
/// running when it arrives and runs alone, which is what the queue decides (1.5x expected).
/// With two workers on two cores the figure also measures B's split sharing the CPU with one
/// of A's (1.5-1.9x was seen). Splits of about 60 ms keep the fixed costs of a request small
/// beside them, and B is measured once the flood is under way.
#[test]
fn a_flood_from_one_tenant_does_not_starve_another() {
    let dir = temp_dir("frontend-flood");
    let config = format!(
        "auth_enabled: true\n{LIMITS}  split_queries_by_interval: 10m\nquerier:\n  max_concurrent: 1\nfrontend:\n  max_outstanding_per_tenant: 400\n"
    );
    let s = Skald::start(&dir, &config);
    let end = now_ns() / (10 * MINUTE) * (10 * MINUTE) - 10 * MINUTE;
    let start = end - 60 * MINUTE;
    push_spread(&s.url, "a", "flood", 12_000, start, end);
    push_spread(&s.url, "b", "small", 12_000, start, end);
    // the label filter keeps the `json` stage: without one, a count that groups by nothing
    // skips the parser (Loki's parser hints), and the flood is over before B is measured
    let heavy = r#"sum(count_over_time({job="flood"} | json | __error__="" [1m]))"#;
    let small = r#"sum(count_over_time({job="small"} | json | __error__="" [1m]))"#;
    // A's queries cover three splits (30 minutes), B's one (10 minutes) of the same data
    let (a_start, a_end) = (end - 30 * MINUTE, end - MINUTE);
    let b_start = end - 10 * MINUTE;
    let b_run = || {
        // B's queries arrive when B's user sends them, not in step with the querier's work
        thread::sleep(Duration::from_millis(jitter_ms(50)));
        let t = Instant::now();
        let r = query_range(&s.url, "b", small, b_start, b_start + 9 * MINUTE, "60");
        assert_eq!(r.status, 200, "{}", r.body);
        t.elapsed()
    };
    b_run();
    let idle = median((0..11).map(|_| b_run()).collect());

    let done = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..200)
        .map(|_| {
            let (url, done, heavy) = (s.url.clone(), done.clone(), heavy.to_string());
            thread::spawn(move || {
                let r = query_range(&url, "a", &heavy, a_start, a_end, "60");
                done.fetch_add(1, Ordering::Relaxed);
                r
            })
        })
        .collect();
    // the flood under way: A's queries queued (or refused)
    thread::sleep(Duration::from_secs(2));
    let loaded = median((0..11).map(|_| b_run()).collect());
    let finished_during = done.load(Ordering::Relaxed);
    let answers: Vec<Resp> = flood.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = answers.iter().filter(|r| r.status == 200).count();
    let refused = answers.iter().filter(|r| r.status == 429).count();
    println!(
        "tenant B: idle median {idle:?}, under tenant A's flood {loaded:?} ({:.2}x); A: {ok} answered, {refused} refused with 429, {finished_during} of 200 done while B ran",
        loaded.as_secs_f64() / idle.as_secs_f64()
    );
    assert!(finished_during < 150, "the flood was over before B ran ({finished_during} done)");
    for r in &answers {
        match r.status {
            200 => {
                let v = r.json();
                let values = v["data"]["result"][0]["values"].as_array().unwrap();
                assert_eq!(values.len(), 30, "{}", r.body);
            }
            429 => {
                assert_eq!(r.body, "too many outstanding requests");
                assert!(r.content_type.starts_with("text/plain"), "{}", r.content_type);
            }
            other => panic!("tenant A's query answered {other}: {}", r.body),
        }
    }
    assert_eq!(ok + refused, 200);
    assert!(
        loaded <= idle * 2,
        "tenant B's median latency {loaded:?} under the flood is more than twice its idle {idle:?}"
    );
}

/// The clock ticks the processes use together over the next second.
fn ticks_over_a_second(pids: &[u32]) -> u64 {
    let before: u64 = pids.iter().map(|&p| cpu_ticks(p)).sum();
    thread::sleep(Duration::from_secs(1));
    pids.iter().map(|&p| cpu_ticks(p)).sum::<u64>() - before
}

/// A query through the frontend whose client gives up after a second: one second later the
/// queriers (and the ingesters they asked) are quiet.
#[test]
fn a_client_that_goes_away_cancels_every_split_on_every_querier() {
    let dir = temp_dir("frontend-cancel");
    let fc = start_frontend_cluster(
        &dir,
        &format!("{LIMITS}  split_queries_by_interval: 10m\n  query_timeout: 5m\n"),
    );
    let end = now_ns();
    let start = end - 60 * MINUTE;
    push_spread(&fc.cluster.distributor.url, "fake", "wide", 6_000, start, end);
    let mut pids: Vec<u32> = vec![fc.cluster.querier.pid().unwrap(), fc.querier2.pid().unwrap()];
    pids.extend(fc.cluster.ingesters.iter().map(|s| s.pid().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while ticks_over_a_second(&pids) >= 20 {
        assert!(Instant::now() < deadline, "the cluster did not settle after the push");
    }
    let q = vec![r#"count_over_time({job="wide"} | json [10m])"#; 30].join(" + ");
    let (s, e) = (start.to_string(), end.to_string());
    let sent = Instant::now();
    let r = ureq::get(&format!("{}/loki/api/v1/query_range", fc.frontend.url))
        .query("query", &q)
        .query("start", &s)
        .query("end", &e)
        .query("step", "60")
        .timeout(Duration::from_secs(1))
        .call();
    assert!(r.is_err(), "the query answered within a second: make it heavier");
    let gone = sent.elapsed();
    // how busy the queriers were: the query really ran on them
    let busy: Vec<u64> = [fc.cluster.querier.pid().unwrap(), fc.querier2.pid().unwrap()]
        .iter()
        .map(|&p| cpu_ticks(p))
        .collect();
    thread::sleep(Duration::from_secs(1));
    let before: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    let used = ticks_over_a_second(&pids);
    let each: Vec<u64> = pids.iter().zip(&before).map(|(&p, b)| cpu_ticks(p) - b).collect();
    println!(
        "client gone after {gone:?}; queriers had used {busy:?} ticks; the second second after: {used} ticks over queriers and ingesters ({each:?})"
    );
    assert!(used < 20, "{used} ticks in the second after the cancel's first second");
}

/// A memcached of the test's own, to kill mid-test.
struct Memcached {
    child: Child,
}

impl Memcached {
    fn start(port: u16) -> Memcached {
        let mut cmd = Command::new("memcached");
        cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0", "-m", "64"]);
        if Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n") {
            cmd.args(["-u", "root"]);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| {
            panic!("cannot run memcached ({e}): scripts/test-servers/start.sh installs it")
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "memcached did not listen on {port}");
            thread::sleep(Duration::from_millis(20));
        }
        Memcached { child }
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines a query read: from the engine's count, the ingesters' and the store's chunks.
fn lines_processed(r: &Resp) -> u64 {
    let stats = &r.json()["data"]["stats"];
    let n = |v: &Value| v.as_u64().unwrap();
    n(&stats["summary"]["totalLinesProcessed"])
        + n(&stats["ingester"]["totalLinesSent"])
        + n(&stats["querier"]["store"]["chunk"]["decompressedLines"])
}

/// The results cache on the embedded cache and on memcached: a repeated query is answered
/// without reading (and byte for byte the same), tenant B never gets tenant A's answer,
/// `Cache-Control: no-cache` reads again, and with memcached killed queries still answer.
#[test]
fn the_results_cache_is_per_tenant_and_survives_its_memcached() {
    let port = free_port();
    let mut memcached = Some(Memcached::start(port));
    for backend in [
        "embedded_cache:\n        enabled: true\n",
        "memcached_client:\n        addresses: 127.0.0.1:PORT\n        timeout: 200ms\n",
    ] {
        let backend = backend.replace("PORT", &port.to_string());
        let dir = temp_dir("frontend-cache");
        let config = format!(
            "auth_enabled: true\n{LIMITS}  split_queries_by_interval: 10m\nquery_range:\n  cache_results: true\n  results_cache:\n    cache:\n      {backend}"
        );
        let s = Skald::start(&dir, &config);
        let end = now_ns() / MINUTE * MINUTE - 30 * MINUTE;
        let start = end - 60 * MINUTE;
        push_spread(&s.url, "a", "app", 3_000, start, end);
        push_spread(&s.url, "b", "app", 1_000, start, end);
        let q = r#"sum by (job) (count_over_time({job="app"}[5m]))"#;
        let ask = |tenant: &str, h: &[(&str, &str)]| {
            let r = query_range_with(&s.url, tenant, q, start, end, "60", h);
            assert_eq!(r.status, 200, "{}", r.body);
            r
        };
        let a1 = ask("a", &[]);
        assert!(lines_processed(&a1) > 0, "{}", a1.json()["data"]["stats"]);
        let a2 = ask("a", &[]);
        assert_eq!(without_stats(&a2.body), without_stats(&a1.body), "{backend}");
        assert_eq!(lines_processed(&a2), 0, "{backend}: the repeat read lines: {}", a2.body);
        // tenant B: its own answer, read from its own data
        let b = ask("b", &[]);
        assert!(lines_processed(&b) > 0, "{backend}: B was answered from the cache");
        assert_ne!(without_stats(&b.body), without_stats(&a1.body));
        let total = |r: &Resp| -> f64 {
            r.json()["data"]["result"][0]["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v[1].as_str().unwrap().parse::<f64>().unwrap())
                .sum()
        };
        assert!(total(&a1) > 2.5 * total(&b), "{} vs {}", total(&a1), total(&b));
        // no-cache: read again, same answer
        let fresh = ask("a", &[("Cache-Control", "no-cache")]);
        assert!(lines_processed(&fresh) > 0, "{backend}: no-cache was answered from the cache");
        assert_eq!(without_stats(&fresh.body), without_stats(&a1.body));
        // up to now: the newest split reaches into the freshness window, so it is cached up
        // to the window's edge and asked for beyond it; log queries go whole
        let now = now_ns();
        let recent = |h: &[(&str, &str)]| {
            let r = query_range_with(&s.url, "a", q, start, now, "60", h);
            assert_eq!(r.status, 200, "{}", r.body);
            r
        };
        let (r1, r2) = (recent(&[]), recent(&[]));
        let fresh = recent(&[("Cache-Control", "no-cache")]);
        assert_eq!(without_stats(&r1.body), without_stats(&fresh.body), "{backend}");
        assert_eq!(without_stats(&r2.body), without_stats(&fresh.body), "{backend}");
        let logs = get(
            &format!("{}/loki/api/v1/query_range", s.url),
            &[
                ("query", r#"{job="app"}"#),
                ("start", &start.to_string()),
                ("end", &now.to_string()),
                ("limit", "10"),
            ],
            &[("X-Scope-OrgID", "a")],
        );
        assert_eq!(logs.status, 200, "{}", logs.body);
        assert_eq!(logs.json()["data"]["result"][0]["values"].as_array().map(Vec::len), Some(10));
        if backend.contains("memcached") {
            // each exchange with memcached timed under Loki's methods and the cache's name
            let timed = |method: &str, status: &str| -> f64 {
                let series = format!(
                    r#"loki_memcache_request_duration_seconds_count{{method="{method}",name="frontend.",status_code="{status}"}} "#
                );
                let text = get(&format!("{}/metrics", s.url), &[], &[]).body;
                text.lines()
                    .filter_map(|l| l.strip_prefix(&series)?.trim().parse::<f64>().ok())
                    .sum()
            };
            assert!(timed("Memcache.Put", "200") > 0.0);
            assert!(timed("Memcache.GetMulti", "200") > 0.0);
            assert_eq!(timed("Memcache.GetMulti", "500"), 0.0);
            // memcached dies: every query still answers, the same, from the queriers
            memcached = None;
            for tenant in ["a", "b", "a"] {
                let r = ask(tenant, &[]);
                assert!(lines_processed(&r) > 0);
                let want = if tenant == "a" { &a1 } else { &b };
                assert_eq!(without_stats(&r.body), without_stats(&want.body));
            }
            assert!(timed("Memcache.GetMulti", "500") > 0.0, "the failed reads, timed");
        }
    }
    drop(memcached);
}

/// A query-frontend that runs apart passes the live tail to `frontend.tail_proxy_url`: lines
/// pushed while a tail is open through the frontend arrive, and a refused tail answers the
/// querier's status.
#[test]
fn the_live_tail_goes_through_the_frontend_to_its_tail_proxy() {
    let dir = temp_dir("frontend-tail");
    std::fs::create_dir_all(dir.join("all")).unwrap();
    let querier = Skald::start(&dir.join("all"), &format!("auth_enabled: true\n{LIMITS}"));
    let (http, grpc) = skald_integration_tests::free_port_pair();
    let fe_dir = dir.join("frontend");
    std::fs::create_dir_all(&fe_dir).unwrap();
    let config = format!(
        "target: query-frontend\nauth_enabled: true\nserver:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {http}\n  grpc_listen_address: 127.0.0.1\n  grpc_listen_port: {grpc}\nfrontend:\n  tail_proxy_url: {}\n",
        querier.url
    );
    let path = fe_dir.join("skald.yaml");
    std::fs::write(&path, config).unwrap();
    let frontend = Skald::start_with_config(&fe_dir, &path, http, grpc);
    let open = |q: &str| {
        skald_integration_tests::ws::open(
            &frontend.url,
            "/loki/api/v1/tail",
            &[("query", q)],
            &[("X-Scope-OrgID", "t1")],
        )
    };
    let mut tail = open(r#"{job="tailed"}"#).unwrap_or_else(|e| panic!("tail refused: {e:?}"));
    thread::sleep(Duration::from_millis(300));
    let now = now_ns();
    let body = serde_json::json!({"streams": [{"stream": {"job": "tailed"}, "values": [
        [now.to_string(), "first through the proxy"], [(now + 1).to_string(), "second"]]}]});
    let r = post(
        &format!("{}/loki/api/v1/push", querier.url),
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", "t1")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let frames = skald_integration_tests::answer::read_tail_frames(
        &mut tail,
        Instant::now() + Duration::from_secs(10),
        |f| {
            f.iter()
                .map(|v| v["streams"][0]["values"].as_array().map_or(0, Vec::len))
                .sum::<usize>()
                >= 2
        },
    )
    .unwrap();
    let lines: Vec<&str> = frames
        .iter()
        .flat_map(|f| f["streams"].as_array().into_iter().flatten())
        .flat_map(|s| s["values"].as_array().into_iter().flatten())
        .filter_map(|v| v[1].as_str())
        .collect();
    assert_eq!(lines, ["first through the proxy", "second"]);
    // the querier refuses a bad query: its status through the proxy
    match open("not logql") {
        Err(skald_integration_tests::ws::OpenError::Refused(status)) => assert_eq!(status, 400),
        other => panic!("a bad tail query was not refused: {:?}", other.err()),
    }
}
