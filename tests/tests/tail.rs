//! Live tail over a real WebSocket (`/loki/api/v1/tail`, `/api/prom/tail`): the history
//! first, then every line pushed after the connection, in order and within a second, through
//! the query's pipeline; ping frames; Loki's parameter errors and the concurrency limit; and
//! a 3-ingester RF 3 cluster where the querier tails every ingester and sends each line once.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skald_integration_tests::ws::{self, OpenError, Ws};
use skald_integration_tests::{now_ns, post, start_cluster, temp_dir, Skald};

const TENANT: &str = "tail-tenant";

/// Opens a tail for [`TENANT`]; `Err(status)` when the server refused the upgrade.
fn connect(http_url: &str, path: &str, params: &[(&str, &str)]) -> Result<Ws, u16> {
    match ws::open(http_url, path, params, &[("X-Scope-OrgID", TENANT)]) {
        Ok(w) => Ok(w),
        Err(OpenError::Refused(status)) => Err(status),
        Err(OpenError::Failed(e)) => panic!("tail connection failed: {e}"),
    }
}

/// Reads frames until `deadline` or `done`; returns the JSON frames and the number of pings.
fn read_until(
    w: &mut Ws,
    deadline: Instant,
    done: impl FnMut(&[Value]) -> bool,
) -> (Vec<Value>, usize) {
    let r = ws::read(w, deadline, done).unwrap();
    (r.frames, r.pings)
}

/// (ts, line, labels) of every entry in v1 frames, in frame order.
fn entries(frames: &[Value]) -> Vec<(i64, String, Value)> {
    let mut out = Vec::new();
    for f in frames {
        for s in f["streams"].as_array().unwrap() {
            for v in s["values"].as_array().unwrap() {
                out.push((
                    v[0].as_str().unwrap().parse().unwrap(),
                    v[1].as_str().unwrap().to_string(),
                    s["stream"].clone(),
                ));
            }
        }
    }
    out
}

fn push(push_url: &str, job: &str, lines: &[(i64, String)]) {
    let values: Vec<Value> = lines.iter().map(|(ts, l)| json!([ts.to_string(), l])).collect();
    let body = json!({"streams": [{"stream": {"job": job, "env": "tail"}, "values": values}]});
    let r = post(
        push_url,
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", TENANT)],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 204, "push failed: {}", r.body);
}

#[test]
fn tail_sends_history_then_live_lines_in_order_within_a_second() {
    let dir = temp_dir("tail-single");
    let skald = Skald::start(
        &dir,
        "auth_enabled: true\nlimits_config:\n  max_concurrent_tail_requests: 3\n",
    );
    let push_url = format!("{}/loki/api/v1/push", skald.url);
    let t0 = now_ns() - 60_000_000_000;
    let history: Vec<(i64, String)> =
        (0..5).map(|i| (t0 + i, format!("level=info msg=old n={i}"))).collect();
    push(&push_url, "app", &history);

    let mut plain =
        connect(&skald.url, "/loki/api/v1/tail", &[("query", r#"{job="app"}"#), ("limit", "3")])
            .unwrap();
    let mut piped = connect(
        &skald.url,
        "/loki/api/v1/tail",
        &[(
            "query",
            r#"{job="app"} |= "even" | logfmt | line_format "{{.msg}} {{.n}}" | drop msg"#,
        )],
    )
    .unwrap();
    let mut legacy =
        connect(&skald.url, "/api/prom/tail", &[("query", r#"{job="app"}"#), ("limit", "1")])
            .unwrap();

    // the history: the last `limit` entries since `start`, oldest first
    let (frames, _) =
        read_until(&mut plain, Instant::now() + Duration::from_secs(5), |f| !f.is_empty());
    let got: Vec<i64> = entries(&frames).iter().map(|e| e.0).collect();
    assert_eq!(got, vec![t0 + 2, t0 + 3, t0 + 4], "history frame: {frames:?}");
    let (lframes, _) =
        read_until(&mut legacy, Instant::now() + Duration::from_secs(5), |f| !f.is_empty());
    assert_eq!(
        lframes[0]["streams"][0]["labels"],
        json!(r#"{detected_level="info", env="tail", job="app", service_name="app"}"#)
    );
    assert_eq!(lframes[0]["streams"][0]["entries"][0]["line"], json!("level=info msg=old n=4"));
    assert!(lframes[0]["streams"][0]["entries"][0]["ts"].as_str().unwrap().ends_with('Z'));

    // live lines, one push at a time: each arrives in order, within a second of its push
    let mut latencies = Vec::new();
    let base = now_ns();
    for i in 0..20i64 {
        let kind = if i % 2 == 0 { "even" } else { "odd" };
        let line = format!("level=info msg={kind} n={i}");
        push(&push_url, "app", &[(base + i, line.clone())]);
        let pushed = Instant::now();
        let (frames, _) = read_until(&mut plain, pushed + Duration::from_secs(2), |f| {
            entries(f).iter().any(|e| e.1 == line)
        });
        let seen = entries(&frames);
        assert_eq!(seen.len(), 1, "push {i}: {frames:?}");
        assert_eq!(seen[0].0, base + i);
        assert_eq!(seen[0].1, line);
        latencies.push(pushed.elapsed());
    }
    let worst = latencies.iter().max().copied().unwrap();
    println!("tail latency: worst {worst:?} over {} pushes", latencies.len());
    assert!(worst < Duration::from_secs(1), "a line took {worst:?} to arrive");

    // the pipelined tail saw only the even lines, formatted, with the parsed labels
    let (frames, _) =
        read_until(&mut piped, Instant::now() + Duration::from_secs(3), |f| entries(f).len() >= 10);
    let got = entries(&frames);
    let lines: Vec<&str> = got.iter().map(|e| e.1.as_str()).collect();
    let want: Vec<String> = (0..20).step_by(2).map(|i| format!("even {i}")).collect();
    assert_eq!(lines, want);
    assert_eq!(
        got[0].2,
        json!({"detected_level": "info", "env": "tail", "job": "app", "level": "info", "n": "0", "service_name": "app"})
    );

    // an idle tail is pinged
    let (_, pings) =
        read_until(&mut plain, Instant::now() + Duration::from_millis(2500), |_| false);
    assert!(pings >= 1, "no ping frame in 2.5 s");

    // the limit of concurrent tails (3 open): Loki's error, before the upgrade
    assert_eq!(
        connect(&skald.url, "/loki/api/v1/tail", &[("query", r#"{job="app"}"#)]).err(),
        Some(400)
    );
    legacy.close(None).unwrap();
    let _ = read_until(&mut legacy, Instant::now() + Duration::from_millis(500), |_| false);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut reopened = None;
    while reopened.is_none() && Instant::now() < deadline {
        reopened = connect(&skald.url, "/loki/api/v1/tail", &[("query", r#"{job="app"}"#)]).ok();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(reopened.is_some(), "a closed tail did not give its slot back");
}

/// Live frames of a plain selector carry the stream's labels only: Loki's ingester sends such
/// entries as pushed, without structured metadata (nor `detected_level`, which is metadata)
/// in the labels; with any pipeline stage, and in the history, the metadata are labels.
/// Recorded from Loki 3.x (main-65e30f8) over a WebSocket tail.
#[test]
fn plain_tail_frames_carry_stream_labels_only() {
    let dir = temp_dir("tail-metadata");
    let skald = Skald::start(
        &dir,
        "auth_enabled: true\nlimits_config:\n  allow_structured_metadata: true\n",
    );
    let push_url = format!("{}/loki/api/v1/push", skald.url);
    let push_with_metadata = |ts: i64, line: &str, trace: &str| {
        let body = json!({"streams": [{"stream": {"job": "meta", "env": "tail"},
            "values": [[ts.to_string(), line, {"trace_id": trace}]]}]});
        let r = post(
            &push_url,
            &[("Content-Type", "application/json"), ("X-Scope-OrgID", TENANT)],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 204, "push failed: {}", r.body);
    };
    push_with_metadata(now_ns() - 30_000_000_000, "history line", "abc");
    let mut plain =
        connect(&skald.url, "/loki/api/v1/tail", &[("query", r#"{job="meta"}"#)]).unwrap();
    let mut filtered =
        connect(&skald.url, "/loki/api/v1/tail", &[("query", r#"{job="meta"} |= "line""#)])
            .unwrap();
    let with_metadata = |trace: &str| {
        json!({"detected_level": "unknown", "env": "tail", "job": "meta",
            "service_name": "meta", "trace_id": trace})
    };
    for w in [&mut plain, &mut filtered] {
        let (frames, _) = read_until(w, Instant::now() + Duration::from_secs(5), |f| !f.is_empty());
        let got = entries(&frames);
        assert_eq!(got.len(), 1, "{frames:?}");
        assert_eq!(got[0].2, with_metadata("abc"), "history: {frames:?}");
    }
    push_with_metadata(now_ns(), "live line", "def");
    let live = |w: &mut Ws| {
        let (frames, _) = read_until(w, Instant::now() + Duration::from_secs(3), |f| {
            entries(f).iter().any(|e| e.1 == "live line")
        });
        let got = entries(&frames);
        assert_eq!(got.len(), 1, "{frames:?}");
        got[0].2.clone()
    };
    assert_eq!(live(&mut plain), json!({"env": "tail", "job": "meta", "service_name": "meta"}));
    assert_eq!(live(&mut filtered), with_metadata("def"));
}

#[test]
fn tail_refuses_bad_requests_like_loki() {
    let dir = temp_dir("tail-errors");
    let skald = Skald::start(&dir, "auth_enabled: true\n");
    let bad: &[&[(&str, &str)]] = &[
        &[("query", r#"count_over_time({job="app"}[1m])"#)],
        &[("query", r#"{job="app""#)],
        &[],
        &[("query", r#"{job="app"}"#), ("delay_for", "6")],
        &[("query", r#"{job="app"}"#), ("delay_for", "soon")],
        &[("query", r#"{job="app"}"#), ("limit", "50000")],
        &[("query", r#"{job="app"}"#), ("start", "yesterday")],
    ];
    for params in bad {
        assert_eq!(connect(&skald.url, "/loki/api/v1/tail", params).err(), Some(400), "{params:?}");
    }
    // a plain GET (no upgrade) is refused too
    let r = skald_integration_tests::get(
        &format!("{}/loki/api/v1/tail", skald.url),
        &[("query", r#"{job="app"}"#)],
        &[("X-Scope-OrgID", TENANT)],
    );
    assert!(r.status >= 400 && r.status < 500, "{}", r.status);
}

#[test]
fn cluster_tail_reaches_every_ingester_and_sends_each_line_once() {
    let dir = temp_dir("tail-cluster");
    let cluster = start_cluster(&dir, "auth_enabled: true\n");
    let push_url = format!("{}/loki/api/v1/push", cluster.distributor.url);
    let mut ws =
        connect(&cluster.querier.url, "/loki/api/v1/tail", &[("query", r#"{env="tail"}"#)])
            .unwrap();
    // many streams, so that they spread over the ring; RF 3 means three copies of each
    let base = now_ns();
    let mut want = Vec::new();
    for i in 0..30i64 {
        let job = format!("job-{}", i % 10);
        let line = format!("cluster line {i}");
        push(&push_url, &job, &[(base + i, line.clone())]);
        want.push(line);
    }
    let (frames, _) =
        read_until(&mut ws, Instant::now() + Duration::from_secs(5), |f| entries(f).len() >= 30);
    // a little longer: late copies would show up here
    let (more, _) = read_until(&mut ws, Instant::now() + Duration::from_millis(700), |_| false);
    let got: Vec<String> =
        entries(&frames).into_iter().chain(entries(&more)).map(|e| e.1).collect();
    let mut sorted = got.clone();
    sorted.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(sorted, want_sorted, "every line exactly once");

    // an ingester restarts: the tail resubscribes and keeps going
    let mut cluster = cluster;
    cluster.ingesters[0].restart();
    std::thread::sleep(Duration::from_secs(4));
    let base = now_ns();
    let lines: Vec<String> = (0..10).map(|i| format!("after restart {i}")).collect();
    for (i, l) in lines.iter().enumerate() {
        push(&push_url, &format!("job-{i}"), &[(base + i as i64, l.clone())]);
    }
    let (frames, _) =
        read_until(&mut ws, Instant::now() + Duration::from_secs(5), |f| entries(f).len() >= 10);
    let (more, _) = read_until(&mut ws, Instant::now() + Duration::from_millis(700), |_| false);
    let mut got: Vec<String> =
        entries(&frames).into_iter().chain(entries(&more)).map(|e| e.1).collect();
    got.sort();
    let mut want = lines;
    want.sort();
    assert_eq!(got, want);
}

/// A client that opens a tail and never reads must not make the server buffer what is pushed
/// meanwhile: the ingester and the querier each hold a few MiB per tail and drop the rest
/// (reported in `dropped_entries`). 400 MB pushed past such a tail leave the server's memory
/// well under that, and a fresh tail still works.
#[test]
fn a_tail_that_never_reads_keeps_the_server_memory_bounded() {
    let dir = temp_dir("tail-stuck");
    let mut skald = Skald::start(
        &dir,
        "auth_enabled: true\nlimits_config:\n  ingestion_rate_mb: 100000\n  ingestion_burst_size_mb: 100000\n  per_stream_rate_limit: 100GB\n  per_stream_rate_limit_burst: 100GB\n",
    );
    let push_url = format!("{}/loki/api/v1/push", skald.url);
    let line = |i: i64| format!("{i:08} {}", "stuck tail line ".repeat(6400)); // ~100 KB
    let base = now_ns();
    // warm up (allocator arenas, the stream's head) before measuring
    for p in 0..5i64 {
        let lines: Vec<(i64, String)> = (0..20).map(|i| (base + p * 20 + i, line(i))).collect();
        push(&push_url, "stuck", &lines);
    }
    let before = skald.rss_bytes();
    let stuck = connect(&skald.url, "/loki/api/v1/tail", &[("query", r#"{env="tail"}"#)]).unwrap();
    let base = now_ns();
    for p in 0..200i64 {
        // 2 MB per push, 400 MB in all
        let lines: Vec<(i64, String)> = (0..20).map(|i| (base + p * 20 + i, line(i))).collect();
        push(&push_url, "stuck", &lines);
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = skald.rss_bytes();
    let growth = after.saturating_sub(before);
    eprintln!("RSS {} MB before, {} MB after 400 MB past a stuck tail", before >> 20, after >> 20);
    assert!(
        growth < 200 << 20,
        "RSS grew by {} MB (from {} MB) with a tail that never reads",
        growth >> 20,
        before >> 20
    );
    // once the client reads again, it is told what it missed
    let mut stuck = stuck;
    let (frames, _) = read_until(&mut stuck, Instant::now() + Duration::from_secs(10), |f| {
        f.iter().any(|x| x["dropped_entries"].as_array().is_some_and(|d| !d.is_empty()))
    });
    let told =
        frames.iter().find_map(|x| x["dropped_entries"].as_array().filter(|d| !d.is_empty()));
    let told = told.expect("dropped_entries reported");
    assert!(told.len() <= 1000, "{}", told.len());
    assert_eq!(
        (&told[0]["labels"]["job"], &told[0]["labels"]["env"]),
        (&json!("stuck"), &json!("tail")),
        "{}",
        told[0]
    );
    assert!(told[0]["timestamp"].as_str().unwrap().parse::<i64>().unwrap() >= base);
    drop(stuck);

    // a fresh tail works
    let mut ws = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while ws.is_none() && Instant::now() < deadline {
        ws = connect(&skald.url, "/loki/api/v1/tail", &[("query", r#"{job="fresh"}"#)]).ok();
        if ws.is_none() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let mut ws = ws.expect("a fresh tail opens");
    let _ = read_until(&mut ws, Instant::now() + Duration::from_millis(300), |_| false);
    push(&push_url, "fresh", &[(now_ns(), "after the stuck tail".to_string())]);
    let (frames, _) =
        read_until(&mut ws, Instant::now() + Duration::from_secs(5), |f| !entries(f).is_empty());
    let got: Vec<String> = entries(&frames).into_iter().map(|e| e.1).collect();
    assert_eq!(got, vec!["after the stuck tail".to_string()]);
    // its WAL holds the 400 MB pushed: give the disk back
    drop(ws);
    skald.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
