//! The query-frontend's splitting over real data: a real `skald` holding the reference
//! dataset answers every `query_range` of the golden files and the reference lists whole, and
//! the frontend's query path (in this process, sending its part requests to that `skald`
//! over HTTP, as the queue will) answers them split; the answers are the same bytes but for
//! `stats`, at several split intervals. Until the server mounts the frontend, this is the
//! check that splitting changes no answer.

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
    compare_split_and_whole(&skald);
}

/// Over data still in the ingester, which runs each part's pipeline itself.
#[test]
fn split_answers_from_the_ingester_are_the_whole_answers() {
    let dir = temp_dir("frontend-split-ingester");
    let config = format!("{REFERENCE_CONFIG}querier:\n  query_ingesters_within: 0s\n");
    let skald = Skald::start(&dir, &config);
    push_reference_dataset_to(&skald.url, &[], "tenant-a");
    compare_split_and_whole(&skald);
}

fn compare_split_and_whole(skald: &Skald) {
    let requests: Vec<Request> = golden_requests()
        .into_iter()
        .chain(reference_requests().into_iter().map(|(r, _)| r))
        .filter(|r| r.path == "/loki/api/v1/query_range")
        .collect();
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
            ..Limits::default()
        };
        let fe = QueryFrontend::new(next.clone(), limits, QueryFrontendConfig::default());
        let mut split = 0;
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
        }
        println!("{minutes}m splits: {split} of {} queries split", requests.len());
        assert!(split * 2 > requests.len(), "{minutes}m: only {split} queries split");
    }
    assert!(failures.is_empty(), "{} differ:\n{}", failures.len(), failures.join("\n\n"));
}
