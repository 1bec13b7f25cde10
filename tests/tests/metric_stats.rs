//! Metric queries answered from chunk statistics (issue 15, section 4): `count_over_time`,
//! `bytes_over_time`, `rate` and `bytes_rate` over a bare selector give the same answers while
//! the data is in the ingester, half flushed, and all flushed (then read from the per-second
//! statistics of the chunks), and those answers are the counts computed here.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};
use skald_integration_tests::{get, now_ns, post, temp_dir, Skald};

const SEC: i64 = 1_000_000_000;
const LINES: i64 = 12_000;
/// Time between two lines of one stream.
const GAP: i64 = 250_000_000;

const CONFIG: &str = "auth_enabled: true
limits_config:
  ingestion_rate_mb: 64
  ingestion_burst_size_mb: 128
";

/// The six streams: (job, pod).
fn streams() -> Vec<(&'static str, i64)> {
    ["app", "db"].iter().flat_map(|&job| (0..3).map(move |pod| (job, pod))).collect()
}

/// Line `i` of a stream: timestamp (some on whole seconds, some not), text, and structured
/// metadata on every tenth line of `db` pod 2 (those blocks carry no statistics).
fn line(base: i64, job: &str, pod: i64, i: i64) -> (i64, String, Option<Value>) {
    let ts = base + i * GAP + pod * 7_000_000;
    let text = format!("level=info job={job} pod={pod} i={i} {}", "x".repeat((i % 13) as usize));
    let meta =
        (job == "db" && pod == 2 && i % 10 == 0).then(|| json!({"trace_id": format!("t{i}")}));
    (ts, text, meta)
}

fn push(s: &Skald, base: i64, lines: std::ops::Range<i64>) {
    for chunk_start in lines.clone().step_by(3000) {
        let chunk_end = (chunk_start + 3000).min(lines.end);
        let body: Vec<Value> = streams()
            .into_iter()
            .map(|(job, pod)| {
                let values: Vec<Value> = (chunk_start..chunk_end)
                    .map(|i| {
                        let (ts, text, meta) = line(base, job, pod, i);
                        match meta {
                            Some(m) => json!([ts.to_string(), text, m]),
                            None => json!([ts.to_string(), text]),
                        }
                    })
                    .collect();
                json!({"stream": {"env": "bench", "job": job, "pod": pod.to_string()}, "values": values})
            })
            .collect();
        let body = json!({ "streams": body }).to_string();
        let r = post(
            &format!("{}/loki/api/v1/push", s.url),
            &[("Content-Type", "application/json"), ("X-Scope-OrgID", "t1")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 204, "{}", r.body);
    }
}

fn flush(s: &Skald) {
    let r = post(&format!("{}/flush", s.url), &[], b"");
    assert_eq!(r.status, 204, "{}", r.body);
}

/// The matrix of a range query as {series: [(t in s, value)]}.
fn query(
    s: &Skald,
    q: &str,
    start: i64,
    end: i64,
    step: &str,
) -> BTreeMap<String, Vec<(i64, String)>> {
    let (st, en) = (start.to_string(), end.to_string());
    let r = get(
        &format!("{}/loki/api/v1/query_range", s.url),
        &[("query", q), ("start", &st), ("end", &en), ("step", step)],
        &[("X-Scope-OrgID", "t1")],
    );
    assert_eq!(r.status, 200, "{q}: {}", r.body);
    let v = r.json();
    let mut out = BTreeMap::new();
    for series in v["data"]["result"].as_array().unwrap() {
        let points = series["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap() as i64, p[1].as_str().unwrap().to_string()))
            .collect();
        out.insert(series["metric"].to_string(), points);
    }
    out
}

const QUERIES: [(&str, &str); 6] = [
    (r#"sum by (job) (count_over_time({env="bench"}[1m]))"#, "60"),
    (r#"sum by (job) (bytes_over_time({env="bench"}[5m]))"#, "60"),
    (r#"rate({env="bench", job="app"}[1m])"#, "15"),
    (r#"sum(bytes_rate({env="bench"}[30s] offset 1m))"#, "30"),
    (r#"sum by (pod) (count_over_time({env="bench", job="db"}[10s]))"#, "7"),
    // edges inside a second: always decoded
    (r#"sum by (job) (count_over_time({env="bench"}[1m] offset 1ms))"#, "60"),
];

fn answers(s: &Skald, start: i64, end: i64) -> Vec<BTreeMap<String, Vec<(i64, String)>>> {
    QUERIES.iter().map(|(q, step)| query(s, q, start, end, step)).collect()
}

#[test]
fn flushed_chunks_answer_counts_as_the_ingester_did() {
    check_counts(false);
}

/// The first half is pushed again once flushed (a client's retry, say): those entries are
/// then in the ingester and in stored chunks, and later in two overlapping chunks of each
/// stream. Each is still counted once.
#[test]
fn entries_pushed_again_after_their_flush_are_counted_once() {
    check_counts(true);
}

fn check_counts(repush: bool) {
    let dir = temp_dir("metric-stats");
    let s = Skald::start(&dir, CONFIG);
    // an hour ago, on a minute
    let base = (now_ns() - 3600 * SEC).div_euclid(60 * SEC) * 60 * SEC;
    let (start, end) = (base - 60 * SEC, base + 60 * 60 * SEC);

    push(&s, base, 0..LINES / 2);
    flush(&s);
    push(&s, base, LINES / 2..LINES);
    if repush {
        push(&s, base, 0..LINES / 2);
    }
    let half = answers(&s, start, end);
    flush(&s);
    let flushed = answers(&s, start, end);
    for (i, (a, b)) in half.iter().zip(&flushed).enumerate() {
        assert_eq!(a, b, "{} differs once everything is flushed", QUERIES[i].0);
    }

    // the counts, computed here
    let mut want: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for job in ["app", "db"] {
        let ts: Vec<i64> = streams()
            .into_iter()
            .filter(|(j, _)| *j == job)
            .flat_map(|(j, pod)| (0..LINES).map(move |i| line(base, j, pod, i).0))
            .collect();
        let points = (start / SEC..=end / SEC)
            .step_by(60)
            .filter_map(|t| {
                let t_ns = t * SEC;
                let n = ts.iter().filter(|&&x| x > t_ns - 60 * SEC && x <= t_ns).count();
                (n > 0).then(|| (t, n.to_string()))
            })
            .collect();
        want.insert(json!({ "job": job }).to_string(), points);
    }
    assert_eq!(flushed[0], want);
    assert!(s.log().lines().all(|l| !l.contains("corrupt chunk")), "{}", s.log());
    if repush {
        return;
    }

    // a rough timing (debug build): statistics against decoding the same windows shifted
    // by a millisecond
    let time = |q: &str| {
        let t = Instant::now();
        for _ in 0..5 {
            query(&s, q, start, end, "60");
        }
        t.elapsed() / 5
    };
    let from_stats = time(QUERIES[0].0);
    let decoded = time(QUERIES[5].0);
    eprintln!(
        "{} lines: count_over_time from statistics {from_stats:?}, decoded {decoded:?} ({:.1}x)",
        LINES * 6,
        decoded.as_secs_f64() / from_stats.as_secs_f64()
    );
}

/// Chunks read in parts (`querier/src/source/fetch.rs`): over a stream whose chunks are far
/// larger than 64 KiB, queries whose range cuts them answer as computed here, from a count on
/// the statistics (which reads the chunks' block index and statistics only) and from a line
/// filter (which reads the blocks of the range only), and their `stats` say they read a part
/// of the chunks' bytes and decompressed a part of their lines. (The single binary splits
/// queries at the hour: a part of a query over everything reads a chunk cut by the hour in
/// parts too.)
#[test]
fn chunks_a_range_cuts_are_read_in_parts() {
    let dir = temp_dir("partial-reads");
    let s = Skald::start(&dir, CONFIG);
    let base = (now_ns() - 3600 * SEC).div_euclid(60 * SEC) * 60 * SEC;
    // one stream, 20 000 lines 0.1 s apart over 2000 s, of pseudo-random hex (stored at
    // about half their size: a chunk of about a megabyte)
    let lines: Vec<(i64, String)> = (0..20_000i64)
        .map(|i| {
            let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let text: String = (0..6)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("{x:016x}")
                })
                .collect();
            (base + i * 100_000_000 + 1_000_000, text)
        })
        .collect();
    for batch in lines.chunks(2000) {
        let values: Vec<Value> =
            batch.iter().map(|(ts, text)| json!([ts.to_string(), text])).collect();
        let body = json!({"streams": [{"stream": {"env": "partial"}, "values": values}]});
        let r = post(
            &format!("{}/loki/api/v1/push", s.url),
            &[("Content-Type", "application/json"), ("X-Scope-OrgID", "t1")],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 204, "{}", r.body);
    }
    flush(&s);

    let run = |q: &str, start: i64, end: i64| {
        let (st, en) = (start.to_string(), end.to_string());
        let r = get(
            &format!("{}/loki/api/v1/query_range", s.url),
            &[("query", q), ("start", &st), ("end", &en), ("step", "60")],
            &[("X-Scope-OrgID", "t1")],
        );
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        r.json()
    };
    let points = |v: &Value| -> Vec<(i64, String)> {
        let result = v["data"]["result"].as_array().unwrap();
        assert!(result.len() <= 1, "{v}");
        result
            .iter()
            .flat_map(|s| s["values"].as_array().unwrap().iter())
            .map(|p| (p[0].as_f64().unwrap() as i64, p[1].as_str().unwrap().to_string()))
            .collect()
    };
    let store =
        |v: &Value, k: &str| v["data"]["stats"]["querier"]["store"]["chunk"][k].as_u64().unwrap();
    let want = |start: i64, end: i64, keep: &dyn Fn(&str) -> bool| -> Vec<(i64, String)> {
        (start / SEC..=end / SEC)
            .step_by(60)
            .filter_map(|t| {
                let t_ns = t * SEC;
                let n = lines
                    .iter()
                    .filter(|(ts, text)| *ts > t_ns - 60 * SEC && *ts <= t_ns && keep(text))
                    .count();
                (n > 0).then(|| (t, n.to_string()))
            })
            .collect()
    };

    // the chunks' size on disk
    fn sizes(dir: &std::path::Path) -> u64 {
        let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
        entries
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => sizes(&e.path()),
                Ok(_) if e.path().to_string_lossy().contains("/chunks/") => {
                    e.metadata().map_or(0, |m| m.len())
                }
                _ => 0,
            })
            .sum()
    }
    let whole = sizes(&dir);
    assert!(whole > 256 << 10, "the chunks are too small to be read in parts: {whole} bytes");

    // everything
    let (all_start, all_end) = (base, base + 2100 * SEC);
    let all = run(r#"sum(count_over_time({env="partial"} |= "ab" [1m]))"#, all_start, all_end);
    assert_eq!(points(&all), want(all_start, all_end, &|t| t.contains("ab")));
    assert!(store(&all, "decompressedLines") >= 20_000, "{all}");

    // ten minutes in the middle
    let (start, end) = (base + 600 * SEC, base + 1200 * SEC);
    let filtered = run(r#"sum(count_over_time({env="partial"} |= "ab" [1m]))"#, start, end);
    assert_eq!(points(&filtered), want(start, end, &|t| t.contains("ab")));
    let (read, decoded) =
        (store(&filtered, "compressedBytes"), store(&filtered, "decompressedLines"));
    // blocks of about 250 s: the range and the minute before it overlap three or four of
    // the eight, and the chunk's end is read too
    assert!(read * 4 < whole * 3, "read {read} of {whole} bytes");
    assert!((6_600..16_000).contains(&decoded), "{decoded} lines decompressed");

    let counted = run(r#"sum(count_over_time({env="partial"}[1m]))"#, start, end);
    assert_eq!(points(&counted), want(start, end, &|_| true));
    let read = store(&counted, "compressedBytes");
    assert!(read * 4 < whole, "read {read} of {whole} bytes for statistics");
    assert_eq!(store(&counted, "decompressedLines"), 0, "{counted}");
    assert!(s.log().lines().all(|l| !l.contains("corrupt chunk")), "{}", s.log());
}
