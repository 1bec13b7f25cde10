//! Query limits of `limits_config` that Loki enforces, over real HTTP, with Loki's statuses and
//! messages: `max_streams_matchers_per_query`, `max_query_lookback`, `max_chunks_per_query`,
//! `volume_max_series`, `max_query_bytes_read` and `max_querier_bytes_read`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skald_integration_tests::{get, now_ns, post, temp_dir, Skald};

const HOUR: i64 = 3_600_000_000_000;

fn push(url: &str, now: i64) {
    for app in ["a", "b", "c"] {
        let body = json!({"streams": [{"stream": {"app": app, "env": "x"}, "values": [
            [(now - 2 * HOUR).to_string(), format!("old {app}")],
            [now.to_string(), format!("new {app}")],
        ]}]});
        let r = post(
            &format!("{url}/loki/api/v1/push"),
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 204, "{}", r.body);
    }
}

fn query_range(url: &str, query: &str, start: i64, end: i64) -> (u16, String) {
    let r = get(
        &format!("{url}/loki/api/v1/query_range"),
        &[("query", query), ("start", &start.to_string()), ("end", &end.to_string())],
        &[],
    );
    (r.status, r.body)
}

fn lines(body: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(body).unwrap();
    let mut out: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().iter())
        .map(|e| e[1].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn matchers_lookback_chunks_and_volume_limits() {
    let dir = temp_dir("query-limits");
    let skald = Skald::start(
        &dir,
        "limits_config:
  reject_old_samples: false
  max_streams_matchers_per_query: 2
  max_query_lookback: 1h
  max_chunks_per_query: 2
",
    );
    let url = &skald.url;
    let now = now_ns();
    push(url, now);
    let (start, end) = (now - 3 * HOUR, now + 1_000_000_000);

    // max_streams_matchers_per_query: per selector, logs and metrics
    let want = "max streams matchers per query exceeded, matchers-count > limit (3 > 2)";
    for q in [
        r#"{app="a", env="x", x!="y"}"#,
        r#"sum(count_over_time({app=~".+", env="x", x!="y"}[1m]))"#,
        r#"count_over_time({env="x"}[1m]) / count_over_time({app="a", env="x", x!="y"}[1m])"#,
    ] {
        let (status, body) = query_range(url, q, start, end);
        assert_eq!((status, body.trim()), (400, want), "{q}");
    }
    let (status, _) = query_range(url, r#"{app="a", env="x"}"#, start, end);
    assert_eq!(status, 200);

    // max_query_lookback: the old lines are cut off, a range entirely older answers empty
    let (status, body) = query_range(url, r#"{env="x"}"#, start, end);
    assert_eq!(status, 200, "{body}");
    assert_eq!(lines(&body), vec!["new a", "new b", "new c"]);
    let (old_start, old_end) = (now - 2 * HOUR - 1_000_000_000, now - 2 * HOUR + 1_000_000_000);
    let (status, body) = query_range(url, r#"{env="x"}"#, old_start, old_end);
    assert_eq!(status, 200, "{body}");
    assert!(lines(&body).is_empty(), "{body}");
    // a metric query too; and a range longer than max_query_length answers empty as well
    let (status, body) = query_range(url, r#"count_over_time({env="x"}[1m])"#, old_start, old_end);
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["data"]["result"], json!([]));
    let (status, body) = query_range(url, r#"{env="x"}"#, now - 800 * HOUR, now - 2 * HOUR);
    assert_eq!(status, 200, "{body}");
    assert!(lines(&body).is_empty(), "{body}");
    // like Loki's frontend, an answer for nothing is empty before the matchers are counted
    let (status, _) = query_range(url, r#"{app="a", env="x", x!="y"}"#, old_start, old_end);
    assert_eq!(status, 200);
    let range = [("start", old_start.to_string()), ("end", old_end.to_string())];
    let range: Vec<(&str, &str)> = range.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut params = range.clone();
    params.push(("match[]", r#"{env="x"}"#));
    let s = get(&format!("{url}/loki/api/v1/series"), &params, &[]);
    assert_eq!((s.status, s.json()), (200, json!({"status": "success", "data": []})));
    let l = get(&format!("{url}/loki/api/v1/labels"), &range, &[]);
    assert_eq!((l.status, l.json()), (200, json!({"status": "success"})));

    // max_chunks_per_query: once flushed, the index holds 3 chunks for {env="x"}
    let f = post(&format!("{url}/flush"), &[], b"");
    assert!(f.status < 300, "{}", f.body);
    let want = "the query hit the max number of chunks limit (limit: 2 chunks)";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = query_range(url, r#"{env="x"}"#, start, end);
        if status == 400 {
            assert_eq!(body.trim(), want);
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(Instant::now() < deadline, "the chunks limit never applied: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) =
        query_range(url, r#"sum(count_over_time({env="x"}[5m]))"#, now - HOUR / 2, end);
    assert_eq!((status, body.trim()), (400, want));
    // one stream's chunks are within the limit
    let (status, body) = query_range(url, r#"{app="a"}"#, start, end);
    assert_eq!(status, 200, "{body}");
    assert_eq!(lines(&body), vec!["new a"]);
}

/// 200 lines of 87 bytes each (17,400 bytes, Loki's 17 KiB) in one stream, the last second
/// newest.
fn push_200(url: &str, now: i64) {
    let values: Vec<Value> = (0..200)
        .map(|i| {
            let line = format!(
                "line number {i} with some padding text to make it longer {}",
                "x".repeat(23)
            );
            json!([(now - (200 - i) * 1_000_000_000).to_string(), line])
        })
        .collect();
    let body = json!({"streams": [{"stream": {"job": "x"}, "values": values}]});
    let r = post(
        &format!("{url}/loki/api/v1/push"),
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    // the estimate reads the store's index, as Loki's did: flush (it returns once written)
    let f = post(&format!("{url}/flush"), &[], b"");
    assert!(f.status < 300, "{}", f.body);
}

#[test]
fn byte_read_limits_refuse_queries_as_loki_does() {
    // Loki 3.x (main-65e30f8) with `max_query_bytes_read: 1KB` answered these with 400 over the
    // same 200 lines once flushed (index/stats: 17408 bytes; before the flush Loki ran them);
    // a bare selector is not sized
    let dir = temp_dir("query-limits-bytes-read");
    let skald = Skald::start(&dir, "limits_config:\n  max_query_bytes_read: 1KB\n");
    let url = &skald.url;
    // The 200 s of lines stay inside one hour: the querier's limit is checked per split of an
    // hour, and index stats count a chunk that crosses a split's edge by its overlap, so a
    // run in the minutes after the hour saw 12-15 KiB in its largest split instead of 17.
    let now = match now_ns() {
        t if t.rem_euclid(HOUR) < 300_000_000_000 => t - t.rem_euclid(HOUR) - 1_000_000_000,
        t => t,
    };
    push_200(url, now);
    let (start, end) = (now - HOUR, now);
    let want = "the query would read too many bytes (query: 17 KiB, limit: 1.0 KiB); consider adding more specific stream selectors or reduce the time range of the query";
    for q in [
        r#"{job="x"} |= "line""#,
        r#"count_over_time({job="x"}[5m])"#,
        r#"sum(count_over_time({job="x"}[1h]))"#,
    ] {
        let (status, body) = query_range(url, q, start, end);
        assert_eq!((status, body.trim()), (400, want), "{q}");
    }
    let r = get(
        &format!("{url}/loki/api/v1/query"),
        &[("query", r#"sum(count_over_time({job="x"}[1h]))"#), ("time", &now.to_string())],
        &[],
    );
    assert_eq!((r.status, r.body.trim()), (400, want));
    let (status, body) = query_range(url, r#"{job="x"}"#, start, end);
    assert_eq!(status, 200, "{body}");
    // a narrower range reads less: 10 s of the stream is under 1 KiB
    let (status, body) =
        query_range(url, r#"{job="x"} |= "line""#, now - 10_000_000_000, now - 5_000_000_000);
    assert_eq!(status, 200, "{body}");
    drop(skald);

    // `max_querier_bytes_read: 1KB`: Loki answered the shard text, and the un-shardable one
    // for a top-level quantile_over_time; every log query counts
    let dir = temp_dir("query-limits-querier-bytes-read");
    let skald = Skald::start(&dir, "limits_config:\n  max_querier_bytes_read: 1KB\n");
    let url = &skald.url;
    push_200(url, now);
    let tail = "to execute on a single querier: (query: 17 KiB, limit: 1.0 KiB); consider adding more specific stream selectors or reduce the time range of the query";
    for (q, what) in [
        (r#"{job="x"}"#, "shard query is too large"),
        (r#"topk(1, count_over_time({job="x"}[1h]))"#, "shard query is too large"),
        (
            r#"quantile_over_time(0.5, {job="x"} | regexp `number (?P<n>\d+)` | unwrap n [1h])"#,
            "un-shardable query too large",
        ),
    ] {
        let (status, body) = query_range(url, q, start, end);
        assert_eq!((status, body.trim()), (400, format!("{what} {tail}").as_str()), "{q}");
    }
    // queries that read nothing answer
    let (status, body) = query_range(url, r#"{job="nothing"}"#, start, end);
    assert_eq!(status, 200, "{body}");
    let (status, body) = query_range(url, "vector(1)", start, end);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn volume_max_series_fails_like_loki() {
    let dir = temp_dir("query-limits-volume");
    let skald =
        Skald::start(&dir, "limits_config:\n  reject_old_samples: false\n  volume_max_series: 2\n");
    let url = &skald.url;
    let now = now_ns();
    push(url, now);
    assert!(post(&format!("{url}/flush"), &[], b"").status < 300);
    let start = (now - 3 * HOUR).to_string();
    let volume = |query: &str, by: &str| {
        get(
            &format!("{url}/loki/api/v1/index/volume"),
            &[("query", query), ("aggregateBy", by), ("start", &start)],
            &[],
        )
    };
    // 3 label names (app, env, service_name) > 2
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let v = volume(r#"{env="x"}"#, "labels");
        if v.status != 200 || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(v.status, 500, "{}", v.body);
    assert_eq!(
        v.body.trim(),
        "rpc error: code = Unknown desc = the query hit the max number of series limit (limit: 2 series)"
    );
    // 2 series are within the limit
    let v = volume(r#"{app=~"a|b"}"#, "series");
    assert_eq!(v.status, 200, "{}", v.body);
    assert_eq!(v.json()["data"]["result"].as_array().map(Vec::len), Some(2), "{}", v.body);
}
