//! Needle searches over a real `skald` and real sockets, with the chunks flushed: the filter
//! tables written beside the index drop the chunks that cannot match before any object-store
//! read, answers are exactly those of the same search without filters (`|~` of a regex the
//! filters cannot use), an absent needle reads no chunk from the object store (counted by
//! `skald_object_store_requests_total`), and the query-frontend sizes a needle search's
//! shards by what its filters leave to read (`skald_needle_selector`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use serde_json::{json, Value};
use skald_integration_tests::{get, metric_sum, now_ns, post, temp_dir, Skald};

const NS: i64 = 1_000_000_000;
const TENANT: (&str, &str) = ("X-Scope-OrgID", "t");
const NEEDLE: &str = "needle-7f3a9c";
const STREAMS: usize = 12;
const LINES: usize = 3_000;

/// Shards of 64 KiB (so the frontend shards these few MB), no sync cuts.
const CONFIG: &str = "auth_enabled: true
limits_config:
  tsdb_max_bytes_per_shard: 64KB
  tsdb_max_query_parallelism: 16
ingester:
  sync_period: 0s
";

/// `STREAMS` streams of `LINES` lines each over the last 40 minutes; the needle in 3 lines
/// of stream 5 (and nowhere else). Returns the query range.
fn push(s: &Skald) -> (i64, i64) {
    let t0 = now_ns() - 40 * 60 * NS;
    let mut rng = 0x5eed_u64;
    for st in 0..STREAMS {
        let values: Vec<Value> = (0..LINES)
            .map(|i| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let mut line = format!(
                    "level=info stream={st} user=u{} msg=\"request done\" id={:016x} path=/api/v1/items/{}",
                    rng % 977,
                    rng,
                    (rng >> 20) % 500
                );
                if st == 5 && [100, 1_500, 2_900].contains(&i) {
                    line.push_str(&format!(" err={NEEDLE}"));
                }
                json!([(t0 + i as i64 * 800_000_000).to_string(), line])
            })
            .collect();
        let body = json!({"streams": [{"stream": {"job": "needle", "s": st.to_string()}, "values": values}]});
        let r = post(
            &format!("{}/loki/api/v1/push", s.url),
            &[("Content-Type", "application/json"), TENANT],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let r = post(&format!("{}/flush", s.url), &[], b"");
    assert_eq!(r.status, 204, "{}", r.body);
    (t0 - NS, now_ns())
}

fn query_range(s: &Skald, q: &str, (start, end): (i64, i64), step: Option<&str>) -> Value {
    let (start, end) = (start.to_string(), end.to_string());
    let mut params = vec![("query", q), ("start", &start), ("end", &end), ("limit", "1000")];
    if let Some(step) = step {
        params.push(("step", step));
    }
    let r = get(&format!("{}/loki/api/v1/query_range", s.url), &params, &[TENANT]);
    assert_eq!(r.status, 200, "{q}: {}", r.body);
    r.json()
}

fn lines(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["values"].as_array().unwrap().iter().map(|p| p[1].as_str().unwrap().to_string())
        })
        .collect();
    out.sort();
    out
}

fn store(v: &Value, key: &str) -> u64 {
    v["data"]["stats"]["querier"]["store"][key].as_u64().unwrap()
}

/// The requests of `op` the process sent to the object store so far.
fn reads(s: &Skald, op: &str) -> f64 {
    metric_sum(&s.url, &format!("skald_object_store_requests_total{{operation=\"{op}\"}}"))
}

#[test]
fn needle_searches_fetch_only_the_chunks_their_filters_allow() {
    let dir = temp_dir("needle");
    let s = Skald::start(&dir, CONFIG);
    let range = push(&s);
    let sel = r#"{job="needle"}"#;

    // the same lines as a search the filters cannot use: a match may hold only `zq` (no line
    // does), too short for a 3-gram filter to decide
    let needle = query_range(&s, &format!(r#"{sel} |= "{NEEDLE}""#), range, None);
    let plain = query_range(&s, &format!(r#"{sel} |~ "needle-7f3a9c|zq""#), range, None);
    let found = lines(&needle);
    assert_eq!(found.len(), 3);
    assert_eq!(found, lines(&plain));
    assert!(found.iter().all(|l| l.contains("stream=5 ")));
    // every chunk is a ref; only the needle's stream's are fetched
    let refs = store(&needle, "totalChunksRef");
    assert!(refs >= STREAMS as u64, "{refs}");
    let fetched = store(&needle, "totalChunksDownloaded");
    assert!(fetched >= 1 && fetched * 4 <= refs, "{fetched} of {refs}");
    assert_eq!(store(&plain, "totalChunksDownloaded"), refs);

    // a needle in no line: no chunk fetched, no chunk read from the object store (the index
    // segments and filter tables are cached by now: only their listings are sent)
    let before = (reads(&s, "get") + reads(&s, "get_range"), reads(&s, "list"));
    let absent = query_range(&s, &format!(r#"{sel} |= "needle-0b5e47""#), range, None);
    assert!(lines(&absent).is_empty());
    assert_eq!(store(&absent, "totalChunksDownloaded"), 0);
    assert_eq!(reads(&s, "get") + reads(&s, "get_range"), before.0);
    assert!(reads(&s, "list") > before.1);
    let plain = query_range(&s, &format!(r#"{sel} |~ "needle-0b5e47|zq""#), range, None);
    assert!(lines(&plain).is_empty());
    assert_eq!(store(&plain, "totalChunksDownloaded"), refs);

    // the count: same answer as without filters; sharded by what the filters leave
    let count = |q: &str| query_range(&s, q, range, Some("3600"));
    let total = |v: &Value| -> f64 {
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["values"].as_array().unwrap().iter())
            .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    let with = count(&format!(r#"sum(count_over_time({sel} |= "{NEEDLE}" [1h]))"#));
    let without = count(r#"sum(count_over_time({job="needle"} |~ "needle-7f3a9c|zq" [1h]))"#);
    assert_eq!(total(&with), 3.0);
    assert_eq!(with["data"]["result"], without["data"]["result"]);
    let shards = |v: &Value| v["data"]["stats"]["summary"]["shards"].as_u64().unwrap_or(0);
    assert!(shards(&without) > shards(&with), "{} vs {}", shards(&without), shards(&with));

    // index/stats: Loki's answer without the private parameter, the needle's chunks with it
    let stats = |extra: &[(&str, &str)]| {
        let (start, end) = (range.0.to_string(), range.1.to_string());
        let mut p = vec![("query", sel), ("start", &start), ("end", &end)];
        p.extend_from_slice(extra);
        let r = get(&format!("{}/loki/api/v1/index/stats", s.url), &p, &[TENANT]);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let all = stats(&[]);
    let needle_sel = format!(r#"{sel} |= "{NEEDLE}""#);
    let some = stats(&[("skald_needle_selector", &needle_sel)]);
    assert_eq!(all["streams"], STREAMS);
    assert_eq!(some["streams"], 1);
    assert!(some["bytes"].as_u64().unwrap() * 4 < all["bytes"].as_u64().unwrap());
    let bad = get(
        &format!("{}/loki/api/v1/index/stats", s.url),
        &[("query", sel), ("skald_needle_selector", "{oops")],
        &[TENANT],
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    drop(s);
}
