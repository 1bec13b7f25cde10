//! The query-frontend's splitting over real data: a real `skald` holding the reference
//! dataset answers every `query_range` of the golden files and the reference lists whole, and
//! the frontend's query path (in this process, sending its part requests to that `skald`
//! over HTTP, as the queue will) answers them split; the answers are the same bytes but for
//! `stats`, at several split intervals, and sharded by stream with a tiny
//! `tsdb_max_bytes_per_shard` (in this process, and in a server configured with it).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use skald_common::limits::Limits;
use skald_frontend::{
    FrontendError, HttpRequest, HttpResponse, QueryFrontend, QueryFrontendConfig, RoundTrip,
};
use skald_integration_tests::replay::{golden_requests, reference_requests, Request};
use skald_integration_tests::{
    push_reference_dataset, push_reference_dataset_to, temp_dir, Skald, REFERENCE_CONFIG,
};

/// Sends each request to a `skald` over HTTP.
struct HttpRoundTrip {
    url: String,
}

impl RoundTrip for HttpRoundTrip {
    fn round_trip(
        &self,
        _tenant: &str,
        req: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, FrontendError>> {
        let url = format!("{}{}", self.url, req.uri);
        Box::pin(async move {
            let answer = tokio::task::spawn_blocking(move || {
                let mut r = ureq::get(&url).timeout(Duration::from_secs(120));
                for (n, v) in &req.headers {
                    r = r.set(n, v);
                }
                let resp = match r.call() {
                    Ok(r) | Err(ureq::Error::Status(_, r)) => r,
                    Err(e) => return Err(FrontendError::Unavailable(e.to_string())),
                };
                let status = resp.status();
                let headers = resp
                    .headers_names()
                    .into_iter()
                    .filter_map(|n| Some((n.clone(), resp.header(&n)?.to_string())))
                    .collect();
                let mut body = Vec::new();
                resp.into_reader().read_to_end(&mut body).unwrap();
                Ok(HttpResponse { status, headers, body: body.into() })
            })
            .await;
            answer.unwrap()
        })
    }
}

fn http_request(r: &Request) -> HttpRequest {
    let mut q = url_encode(&r.params);
    if !q.is_empty() {
        q.insert(0, '?');
    }
    HttpRequest {
        method: "GET".into(),
        uri: format!("{}{q}", r.path),
        headers: r.headers.clone(),
        body: Default::default(),
    }
}

fn url_encode(params: &[(String, String)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    params.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// The body without its `stats` object (the last member of `data`).
fn without_stats(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body).into_owned();
    match s.rfind(",\"stats\":") {
        Some(i) if s.ends_with("},\"status\":\"success\"}") => s[..i].to_string(),
        _ => s,
    }
}

/// Over data flushed to the store.
#[test]
fn split_answers_are_the_whole_answers() {
    let dir = temp_dir("frontend-split");
    let skald = Skald::start(&dir, REFERENCE_CONFIG);
    push_reference_dataset(&skald, "tenant-a");
    compare_split_and_whole(&skald, None);
}

/// Over data still in the ingester, which runs each part's pipeline itself.
#[test]
fn split_answers_from_the_ingester_are_the_whole_answers() {
    let dir = temp_dir("frontend-split-ingester");
    let config = format!("{REFERENCE_CONFIG}querier:\n  query_ingesters_within: 0s\n");
    let skald = Skald::start(&dir, &config);
    push_reference_dataset_to(&skald.url, &[], "tenant-a");
    compare_split_and_whole(&skald, None);
}

/// A tiny `tsdb_max_bytes_per_shard`: the frontend's shardable queries run in 2 to 16
/// shards per split, each reading its shard of the streams from the store (the querier
/// filters the index's streams) and from the ingester (which filters its own): the answers
/// are the whole's, byte for byte but for `stats`.
#[test]
fn sharded_answers_are_the_whole_answers() {
    let dir = temp_dir("frontend-shard");
    let skald = Skald::start(&dir, REFERENCE_CONFIG);
    push_reference_dataset(&skald, "tenant-a");
    compare_split_and_whole(&skald, Some(2 << 10));
    let dir = temp_dir("frontend-shard-ingester");
    let config = format!("{REFERENCE_CONFIG}querier:\n  query_ingesters_within: 0s\n");
    let skald = Skald::start(&dir, &config);
    push_reference_dataset_to(&skald.url, &[], "tenant-a");
    compare_split_and_whole(&skald, Some(2 << 10));
}

/// A server whose own frontend shards (a tiny `tsdb_max_bytes_per_shard` in its
/// `limits_config`) answers every `query_range` and `query` as a server that does not.
#[test]
fn a_sharding_server_answers_as_one_that_does_not() {
    let whole = Skald::start(&temp_dir("frontend-unsharded"), REFERENCE_CONFIG);
    push_reference_dataset(&whole, "tenant-a");
    let config = REFERENCE_CONFIG.replace(
        "limits_config:\n",
        "limits_config:\n  tsdb_max_bytes_per_shard: 2KB\n  tsdb_max_query_parallelism: 16\n",
    );
    let sharded = Skald::start(&temp_dir("frontend-sharded"), &config);
    push_reference_dataset(&sharded, "tenant-a");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let (a, b) =
        (HttpRoundTrip { url: whole.url.clone() }, HttpRoundTrip { url: sharded.url.clone() });
    let mut failures = Vec::new();
    let (mut legs, mut unsharded_legs, mut instant_legs) = (0, 0, 0);
    let instant = golden_requests()
        .into_iter()
        .chain(reference_requests().into_iter().map(|(r, _)| r))
        .filter(|r| r.path == "/loki/api/v1/query");
    for r in query_range_requests().into_iter().chain(instant) {
        let x = rt.block_on(a.round_trip("tenant-a", http_request(&r))).unwrap();
        let y = rt.block_on(b.round_trip("tenant-a", http_request(&r))).unwrap();
        if (x.status, without_stats(&x.body)) != (y.status, without_stats(&y.body)) {
            failures.push(format!(
                "{} {:?}\nwhole {}: {}\nsharded {}: {}",
                r.name,
                r.params,
                x.status,
                without_stats(&x.body).chars().take(600).collect::<String>(),
                y.status,
                without_stats(&y.body).chars().take(600).collect::<String>(),
            ));
        }
        legs += shard_legs(&y.body);
        unsharded_legs += shard_legs(&x.body);
        if r.path == "/loki/api/v1/query" {
            instant_legs += shard_legs(&y.body).saturating_sub(shard_legs(&x.body));
        }
    }
    println!(
        "{legs} more shard legs than splits, {unsharded_legs} unsharded, {instant_legs} more for instant queries"
    );
    assert!(instant_legs > 20, "only {instant_legs} shard legs for instant queries");
    assert!(failures.is_empty(), "{} differ:\n{}", failures.len(), failures.join("\n\n"));
    assert!(legs > unsharded_legs + 100, "only {legs} shard legs ({unsharded_legs} unsharded)");
}

/// `stats.summary.shards` beyond one per split (or one for a query run whole).
fn shard_legs(body: &[u8]) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let summary = &v["data"]["stats"]["summary"];
    let shards = summary["shards"].as_u64().unwrap_or(0);
    shards.saturating_sub(summary["splits"].as_u64().unwrap_or(0).max(1))
}

fn query_range_requests() -> Vec<Request> {
    golden_requests()
        .into_iter()
        .chain(reference_requests().into_iter().map(|(r, _)| r))
        .filter(|r| r.path == "/loki/api/v1/query_range")
        .collect()
}

/// The frontend's answers (split at several intervals; sharded with `shard_bytes` as
/// `tsdb_max_bytes_per_shard`) against `skald`'s own.
fn compare_split_and_whole(skald: &Skald, shard_bytes: Option<u64>) {
    let requests = query_range_requests();
    assert!(requests.len() > 100, "{}", requests.len());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let next: Arc<dyn RoundTrip> = Arc::new(HttpRoundTrip { url: skald.url.clone() });
    let whole: Vec<HttpResponse> = requests
        .iter()
        .map(|r| rt.block_on(next.round_trip("tenant-a", http_request(r))).unwrap())
        .collect();
    let mut failures = Vec::new();
    for minutes in [13u64, 30, 60] {
        let limits = Limits {
            max_entries_limit_per_query: 5000,
            split_queries_by_interval: Duration::from_secs(minutes * 60),
            max_query_parallelism: 4,
            tsdb_max_bytes_per_shard: shard_bytes
                .unwrap_or(Limits::default().tsdb_max_bytes_per_shard),
            tsdb_max_query_parallelism: 16,
            ..Limits::default()
        };
        let fe = QueryFrontend::new(next.clone(), limits, QueryFrontendConfig::default());
        let mut split = 0;
        let mut legs = 0;
        // metric queries answered with data, and those of them sharded
        let (mut metric, mut sharded) = (0, 0);
        for (r, whole) in requests.iter().zip(&whole) {
            let answer = rt.block_on(fe.query_range("tenant-a", http_request(r)));
            let same = answer.status == whole.status
                && answer.header("Content-Type") == whole.header("Content-Type")
                && without_stats(&answer.body) == without_stats(&whole.body);
            if !same {
                failures.push(format!(
                    "{minutes}m: {} {:?}\nwhole {}: {}\nsplit {}: {}",
                    r.name,
                    r.params,
                    whole.status,
                    without_stats(&whole.body).chars().take(600).collect::<String>(),
                    answer.status,
                    without_stats(&answer.body).chars().take(600).collect::<String>(),
                ));
            }
            let v: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
            split += usize::from(v["data"]["stats"]["summary"]["splits"].as_u64() > Some(0));
            legs += shard_legs(&answer.body);
            if v["data"]["resultType"] == "matrix" {
                metric += 1;
                sharded += usize::from(shard_legs(&answer.body) > 0);
            }
        }
        println!(
            "{minutes}m splits: {split} of {} queries split, {legs} more shard legs, {sharded} of {metric} metric queries sharded",
            requests.len()
        );
        if shard_bytes.is_some() {
            assert!(legs > 100, "{minutes}m: only {legs} shard legs");
            // all but those with `absent_over_time`, a grouped `quantile_over_time`, a sum of
            // `sum_over_time`, those whose data fits in one shard...
            assert!(sharded * 10 > metric * 7, "{minutes}m: {sharded} of {metric} sharded");
        }
        assert!(split * 2 > requests.len(), "{minutes}m: only {split} queries split");
    }
    assert!(failures.is_empty(), "{} differ:\n{}", failures.len(), failures.join("\n\n"));
}
