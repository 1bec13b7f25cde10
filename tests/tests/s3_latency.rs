//! A query over many streams on S3 (SeaweedFS, `scripts/test-servers`) seen through a proxy
//! that adds 20 ms to every request: the querier fetches the query's chunks across streams at
//! once, so the query costs a few round trips, not one per stream (issue 15, section 3).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use skald_integration_tests::{
    aws_storage_block, get, host_port, metric_sum, now_ns, post, temp_dir, test_servers,
    unique_prefix, DelayingProxy, Skald,
};

const STREAMS: usize = 100;
const LINES: i64 = 200;
const DELAY: Duration = Duration::from_millis(20);

fn config(storage: &str) -> String {
    format!(
        "auth_enabled: true
limits_config:
  reject_old_samples: false
  max_entries_limit_per_query: 100000
  max_query_series: 100000
schema_config:
  configs:
  - from: 2020-05-15
    store: tsdb
    object_store: s3
    schema: v13
    index:
      prefix: index_
      period: 24h
{storage}"
    )
}

#[test]
fn a_query_over_many_streams_costs_a_few_round_trips_not_one_per_stream() {
    let servers = test_servers();
    let tenant = unique_prefix("lat").trim_end_matches('_').to_string();
    let direct = host_port(&servers.s3_endpoint);
    let dynamodb = host_port(&servers.dynamodb_endpoint);
    let h = [("X-Scope-OrgID", tenant.as_str())];

    // 100 streams of 200 lines, two hours old, flushed to one chunk each in S3
    let start = now_ns() - 3 * 3_600_000_000_000;
    let end = start + 3_600_000_000_000;
    {
        let dir = temp_dir("s3lat-push");
        let mut writer =
            Skald::start(&dir, &config(&aws_storage_block(&servers, &direct, &dynamodb)));
        let streams: Vec<serde_json::Value> = (0..STREAMS)
            .map(|s| {
                let values: Vec<serde_json::Value> = (0..LINES)
                    .map(|i| {
                        let ts = start + i * 15_000_000_000 + s as i64;
                        serde_json::json!([ts.to_string(), format!("stream={s} line={i} level=info")])
                    })
                    .collect();
                serde_json::json!({"stream": {"env": "s3lat", "stream": format!("s{s:03}")}, "values": values})
            })
            .collect();
        let body = serde_json::json!({ "streams": streams }).to_string();
        let push_h = [("Content-Type", "application/json"), h[0]];
        let r = post(&format!("{}/loki/api/v1/push", writer.url), &push_h, body.as_bytes());
        assert_eq!(r.status, 204, "{}", r.body);
        let r = post(&format!("{}/flush", writer.url), &[], b"");
        assert_eq!(r.status, 204, "{}", r.body);
        let deadline = Instant::now() + Duration::from_secs(60);
        while metric_sum(&writer.url, "loki_ingester_memory_chunks") > 0.0 {
            assert!(Instant::now() < deadline, "chunks still in memory");
            std::thread::sleep(Duration::from_millis(200));
        }
        writer.stop();
    }

    // two queriers with empty ingesters (every answer comes from S3), one behind the proxy
    let proxy = DelayingProxy::start(&direct, DELAY);
    let mut plain = Skald::start(
        &temp_dir("s3lat-plain"),
        &config(&aws_storage_block(&servers, &direct, &dynamodb)),
    );
    let mut slow = Skald::start(
        &temp_dir("s3lat-slow"),
        &config(&aws_storage_block(&servers, &proxy.addr, &dynamodb)),
    );
    let (s, e) = (start.to_string(), end.to_string());
    let query = |skald: &Skald, q: &str| -> (Duration, serde_json::Value) {
        let t = Instant::now();
        let r = get(
            &format!("{}/loki/api/v1/query_range", skald.url),
            &[("query", q), ("start", &s), ("end", &e), ("limit", "100000"), ("step", "60s")],
            &h,
        );
        let took = t.elapsed();
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        let mut v = r.json();
        v["data"]["stats"] = serde_json::Value::Null;
        (took, v["data"].clone())
    };
    let queries = [
        r#"{env="s3lat"}"#,
        r#"{env="s3lat"} |= "level=info""#,
        r#"sum by (stream) (count_over_time({env="s3lat"}[5m]))"#,
    ];
    for q in queries {
        // Fresh processes (chunks are cached in memory once read); a query that matches no
        // stream first loads the index, so the timed one pays for its chunks only.
        let cold = |skald: &mut Skald| {
            skald.restart();
            let (_, none) = query(skald, r#"{env="none"}"#);
            assert_eq!(none["result"], serde_json::json!([]));
            let before = proxy.writes.load(std::sync::atomic::Ordering::Relaxed);
            let (took, answer) = query(skald, q);
            let requests = proxy.writes.load(std::sync::atomic::Ordering::Relaxed) - before;
            (took, answer, requests)
        };
        let (plain_took, plain_answer, _) = cold(&mut plain);
        let (slow_took, slow_answer, requests) = cold(&mut slow);
        assert_eq!(slow_answer, plain_answer, "{q}");
        let series = plain_answer["result"].as_array().unwrap().len();
        assert_eq!(series, STREAMS, "{q}");
        // one chunk per stream: reading them one stream at a time costs 100 round trips
        let serial = DELAY * STREAMS as u32;
        eprintln!(
            "s3 latency, {STREAMS} streams, {q}: {plain_took:?} direct, {slow_took:?} through a \
             proxy adding {DELAY:?} per request ({requests} requests; one stream at a time \
             would take at least {serial:?})"
        );
        assert!(requests >= STREAMS as u64, "{q}: only {requests} requests reached S3");
        // what the proxy added, so that a loaded machine (which slows both) does not decide
        // (one stream at a time adds at least `serial`; a loaded CI machine stretches the rest)
        let added = slow_took.saturating_sub(plain_took);
        assert!(
            added < serial * 3 / 4,
            "{q}: the proxy added {added:?} ({slow_took:?} vs {plain_took:?} direct), not well below {serial:?}"
        );
    }
}
