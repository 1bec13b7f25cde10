//! The querier's HTTP edge without a socket: its router, driven with `tower::ServiceExt::oneshot`
//! over an in-memory chunk store and index (no ingesters). Each test pins the status, the
//! content type and the body as Loki answers them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use skald_chunk::ChunkBuilder;
use skald_chunk_store::{ChunkStore, ObjectChunkStore};
use skald_common::limits::Limits;
use skald_common::tenant::TenantId;
use skald_index::{ChunkRef, IndexStore, MemIndexStore};
use skald_model::{Entry, Label, Labels};
use skald_querier::{Querier, QuerierConfig};
use tower::ServiceExt;

const SECOND: i64 = 1_000_000_000;
/// 2024-01-01T00:00:00Z, where the fixed data set starts.
const T0: i64 = 1_704_067_200 * SECOND;
const JSON: &str = "application/json; charset=UTF-8";
const TEXT: &str = "text/plain; charset=utf-8";

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_vec(pairs.iter().map(|(k, v)| Label::new(*k, *v)).collect())
}

/// Writes one chunk of `entries` for the stream `labels` to the store and the index.
async fn write_stream(
    chunks: &ObjectChunkStore,
    index: &MemIndexStore,
    labels: Labels,
    entries: &[(i64, String)],
) {
    let mut builder = ChunkBuilder::new(256 * 1024);
    for (ts, line) in entries {
        builder
            .append(&Entry { ts: *ts, line: line.clone().into(), structured_metadata: vec![] })
            .unwrap();
    }
    let encoded = builder.finish().unwrap();
    let stats_bytes = entries.iter().map(|(_, l)| l.len() as u64).sum();
    let chunk_ref = ChunkRef::of_encoded(skald_model::fingerprint(&labels), &encoded, stats_bytes);
    chunks.put(&chunk_ref.key("fake"), encoded.bytes.into()).await.unwrap();
    index.write_chunks("fake", vec![(labels, chunk_ref)]).await.unwrap();
}

/// The router over a store with two streams of forty lines each, one second apart from `base`:
/// `{app="api", env="prod"}` writes logfmt, `{app="web", env="prod"}` writes JSON.
async fn router(base: i64) -> Router {
    let chunks = Arc::new(ObjectChunkStore::in_memory());
    let index = Arc::new(MemIndexStore::new());
    let api: Vec<(i64, String)> = (0..40)
        .map(|i| {
            let status = if i % 5 == 4 { 500 } else { 200 };
            (
                base + i * SECOND,
                format!("level=info msg=\"request done\" status={status} took={i}ms"),
            )
        })
        .collect();
    let web: Vec<(i64, String)> = (0..40)
        .map(|i| (base + i * SECOND, format!(r#"{{"path":"/page/{i}","bytes":{}}}"#, 100 * i)))
        .collect();
    write_stream(&chunks, &index, labels(&[("app", "api"), ("env", "prod")]), &api).await;
    write_stream(&chunks, &index, labels(&[("app", "web"), ("env", "prod")]), &web).await;
    let querier = Querier::new(QuerierConfig::default(), Limits::default(), chunks, index, None);
    skald_querier::http::router(Arc::new(querier))
}

fn uri(path: &str, params: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    format!("{path}?{}", q.finish())
}

/// Sends a GET as the tenant `fake` (the server's tenant layer puts the id there); returns the
/// status, the content type and the body.
async fn get(router: &Router, uri: &str) -> (StatusCode, String, String) {
    let req =
        Request::builder().uri(uri).extension(TenantId("fake".into())).body(Body::empty()).unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, ct, String::from_utf8(body.to_vec()).unwrap())
}

async fn get_json(router: &Router, uri: &str) -> Value {
    let (status, ct, body) = get(router, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    assert_eq!(ct, JSON, "{uri}");
    serde_json::from_str(&body).unwrap()
}

fn range() -> [(&'static str, String); 2] {
    [("start", T0.to_string()), ("end", (T0 + 60 * SECOND).to_string())]
}

fn with_range<'a>(
    extra: &[(&'a str, &'a str)],
    r: &'a [(&'static str, String); 2],
) -> Vec<(&'a str, &'a str)> {
    let mut p: Vec<(&str, &str)> = r.iter().map(|(k, v)| (*k, v.as_str())).collect();
    p.extend_from_slice(extra);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_range_of_a_log_query_returns_streams() {
    let r = router(T0).await;
    let rg = range();
    let p = with_range(&[("query", r#"{app="api"} |= "status=500""#), ("limit", "3")], &rg);
    let v = get_json(&r, &uri("/loki/api/v1/query_range", &p)).await;
    assert_eq!(v["status"], "success");
    assert_eq!(v["data"]["resultType"], "streams");
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["stream"], json!({"app": "api", "env": "prod"}));
    assert_eq!(
        result[0]["values"],
        json!([
            [
                (T0 + 39 * SECOND).to_string(),
                "level=info msg=\"request done\" status=500 took=39ms"
            ],
            [
                (T0 + 34 * SECOND).to_string(),
                "level=info msg=\"request done\" status=500 took=34ms"
            ],
            [
                (T0 + 29 * SECOND).to_string(),
                "level=info msg=\"request done\" status=500 took=29ms"
            ],
        ])
    );
    assert_eq!(v["data"]["stats"]["summary"]["totalEntriesReturned"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_range_of_a_metric_query_returns_a_matrix() {
    let r = router(T0).await;
    let rg = range();
    let p = with_range(
        &[("query", r#"sum by (app) (count_over_time({env="prod"}[1m]))"#), ("step", "60")],
        &rg,
    );
    let v = get_json(&r, &uri("/loki/api/v1/query_range", &p)).await;
    assert_eq!(v["data"]["resultType"], "matrix");
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2);
    assert_eq!(result[0]["metric"], json!({"app": "api"}));
    assert_eq!(result[1]["metric"], json!({"app": "web"}));
    // steps at `start` and `start + 60s`, each counting the minute up to it
    let t = T0 / SECOND;
    assert_eq!(result[0]["values"], json!([[t, "1"], [t + 60, "39"]]));
    assert_eq!(result[1]["values"], json!([[t, "1"], [t + 60, "39"]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_query_returns_a_vector() {
    let r = router(T0).await;
    let time = (T0 + 30 * SECOND).to_string();
    let p = [("query", r#"count_over_time({app="web"}[1m])"#), ("time", time.as_str())];
    let v = get_json(&r, &uri("/loki/api/v1/query", &p)).await;
    assert_eq!(v["data"]["resultType"], "vector");
    assert_eq!(
        v["data"]["result"],
        json!([{"metric": {"app": "web", "env": "prod"}, "value": [T0 / SECOND + 30, "31"]}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_label_values_and_series() {
    let r = router(T0).await;
    let rg = range();
    let v = get_json(&r, &uri("/loki/api/v1/labels", &with_range(&[], &rg))).await;
    assert_eq!(v, json!({"status": "success", "data": ["app", "env"]}));
    let v = get_json(&r, &uri("/loki/api/v1/label/app/values", &with_range(&[], &rg))).await;
    assert_eq!(v, json!({"status": "success", "data": ["api", "web"]}));
    let p = with_range(&[("query", r#"{app="web"}"#)], &rg);
    let v = get_json(&r, &uri("/loki/api/v1/label/app/values", &p)).await;
    assert_eq!(v, json!({"status": "success", "data": ["web"]}));
    // no stream has the label: no `data` at all, as in Loki
    let v = get_json(&r, &uri("/loki/api/v1/label/nope/values", &with_range(&[], &rg))).await;
    assert_eq!(v, json!({"status": "success"}));
    let p = with_range(&[("match[]", r#"{app=~"a.*"}"#)], &rg);
    let v = get_json(&r, &uri("/loki/api/v1/series", &p)).await;
    assert_eq!(v, json!({"status": "success", "data": [{"app": "api", "env": "prod"}]}));
    let (status, ct, body) = get(&r, &uri("/loki/api/v1/series", &with_range(&[], &rg))).await;
    assert_eq!(
        (status, ct.as_str(), body.as_str()),
        (StatusCode::BAD_REQUEST, TEXT, "0 matchers provided")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_stats_count_streams_chunks_entries_and_bytes() {
    let r = router(T0).await;
    let rg = range();
    let p = with_range(&[("query", r#"{env="prod"}"#)], &rg);
    let v = get_json(&r, &uri("/loki/api/v1/index/stats", &p)).await;
    assert_eq!(v, json!({"streams": 2, "chunks": 2, "entries": 80, "bytes": 3072}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_query_is_a_400_with_loki_s_text() {
    let r = router(T0).await;
    let rg = range();
    let p = with_range(&[("query", r#"{app="api"} |= "#)], &rg);
    let (status, ct, body) = get(&r, &uri("/loki/api/v1/query_range", &p)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(ct, TEXT);
    assert_eq!(
        body,
        "parse error at line 1, col 16: syntax error: unexpected $end, expecting STRING or ip"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_start_is_a_400() {
    let r = router(T0).await;
    let p = [("query", r#"{app="api"}"#), ("start", "yesterday")];
    let (status, ct, body) = get(&r, &uri("/loki/api/v1/query_range", &p)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(ct, TEXT);
    // Loki 3.x's text (recorded from main-65e30f8)
    assert_eq!(
        body,
        r#"could not parse 'start' parameter: strconv.ParseInt: parsing "yesterday": invalid syntax"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detected_fields_of_logfmt_and_json_lines() {
    let r = router(T0).await;
    let rg = range();
    let p = with_range(&[("query", r#"{env="prod"}"#)], &rg);
    let v = get_json(&r, &uri("/loki/api/v1/detected_fields", &p)).await;
    assert_eq!(
        v,
        json!({"fields": [
            {"label": "bytes", "type": "int", "cardinality": 40, "parsers": ["json"], "jsonPath": ["bytes"]},
            {"label": "level", "type": "string", "cardinality": 1, "parsers": ["logfmt"]},
            {"label": "msg", "type": "string", "cardinality": 1, "parsers": ["logfmt"]},
            {"label": "path", "type": "string", "cardinality": 40, "parsers": ["json"], "jsonPath": ["path"]},
            {"label": "status", "type": "int", "cardinality": 2, "parsers": ["logfmt"]},
            {"label": "took", "type": "duration", "cardinality": 40, "parsers": ["logfmt"]},
        ], "limit": 1000})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_are_mined_from_recent_lines() {
    // patterns look at the last `pattern_ingester.retain_for` (3h) only: recent data
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        as i64;
    let base = now - 600 * SECOND;
    let r = router(base).await;
    let (start, end) = ((base - 60 * SECOND).to_string(), (base + 60 * SECOND).to_string());
    let p = [("query", r#"{app="api"}"#), ("start", start.as_str()), ("end", end.as_str())];
    let v = get_json(&r, &uri("/loki/api/v1/patterns", &p)).await;
    assert_eq!(v["status"], "success");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{v}");
    assert_eq!(data[0]["pattern"], r#"level=info msg="request done" status=<_> took=<_>"#);
    assert_eq!(data[0]["level"], "unknown");
    // counted in 10s buckets (the first and last partly filled), every line once
    let samples = data[0]["samples"].as_array().unwrap();
    let total: i64 = samples.iter().map(|s| s[1].as_i64().unwrap()).sum();
    assert_eq!(total, 40);
    assert!(samples.windows(2).all(|w| w[1][0].as_i64() > w[0][0].as_i64()), "{samples:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_form_body_is_read_like_a_query_string() {
    let r = router(T0).await;
    let rg = range();
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in with_range(&[("query", r#"{app="web"}"#), ("limit", "1")], &rg) {
        form.append_pair(k, v);
    }
    let req = Request::builder()
        .method("POST")
        .uri("/loki/api/v1/query_range")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .extension(TenantId("fake".into()))
        .body(Body::from(form.finish()))
        .unwrap();
    let resp = r.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["data"]["result"][0]["values"],
        json!([[(T0 + 39 * SECOND).to_string(), r#"{"path":"/page/39","bytes":3900}"#]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_query_answers_in_lowercase_utf_8() {
    let r = router(T0).await;
    let p = [("query", r#"{app="api"}|="x""#)];
    let (status, ct, body) = get(&r, &uri("/loki/api/v1/format_query", &p)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct, "application/json; charset=utf-8");
    assert_eq!(body, r#"{"data":"{app=\"api\"} |= \"x\"","status":"success"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_query_answers_in_the_legacy_shape() {
    let r = router(T0).await;
    let rg = range();
    let p =
        with_range(&[("query", r#"{app="api"}"#), ("limit", "1"), ("regexp", "took=3.ms")], &rg);
    let v = get_json(&r, &uri("/api/prom/query", &p)).await;
    assert_eq!(
        v,
        json!({"streams": [{"labels": r#"{app="api", env="prod"}"#, "entries": [
            {"ts": "2024-01-01T00:00:39Z", "line": "level=info msg=\"request done\" status=500 took=39ms"}
        ]}]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_volume_sums_by_the_matched_labels() {
    let r = router(T0).await;
    let rg = range();
    let p = with_range(&[("query", r#"{env="prod"}"#)], &rg);
    let v = get_json(&r, &uri("/loki/api/v1/index/volume", &p)).await;
    assert_eq!(v["data"]["resultType"], "vector");
    // series keep the labels the selector names (Loki's default), at the range's end
    assert_eq!(
        v["data"]["result"],
        json!([{"metric": {"env": "prod"}, "value": [T0 / SECOND + 60, "3072"]}])
    );
    let p = with_range(&[("query", r#"{env="prod"}"#), ("targetLabels", "app")], &rg);
    let v = get_json(&r, &uri("/loki/api/v1/index/volume", &p)).await;
    assert_eq!(
        v["data"]["result"],
        json!([
            {"metric": {"app": "api"}, "value": [T0 / SECOND + 60, "2048"]},
            {"metric": {"app": "web"}, "value": [T0 / SECOND + 60, "1024"]},
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drilldown_limits_end_with_a_newline() {
    let r = router(T0).await;
    let (status, ct, body) = get(&r, "/loki/api/v1/drilldown-limits").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct, "application/json");
    assert!(body.ends_with("}\n"), "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["pattern_ingester_enabled"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_a_tenant_is_a_500() {
    // the server's tenant layer always puts one there; without it the edge refuses
    let r = router(T0).await;
    let req = Request::builder().uri("/loki/api/v1/labels").body(Body::empty()).unwrap();
    let resp = r.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    assert_eq!(&body[..], b"no tenant on the request");
}

/// A part request of the query-frontend (`skald_part_start`, `skald_part_end`, the part's
/// `Accept`) is answered with the encoded part of the steps inside it; without that `Accept`
/// the same request is an ordinary query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_request_answers_the_part_alone() {
    use skald_loghttp::part::{decode_part, PART_CONTENT_TYPE};
    use skald_logql::engine::QueryResult;
    let r = router(T0).await;
    let part_uri = |part_start: i64, part_end: i64| {
        uri(
            "/loki/api/v1/query_range",
            &[
                ("query", r#"count_over_time({app="api"}[10s])"#),
                ("start", &T0.to_string()),
                ("end", &(T0 + 60 * SECOND).to_string()),
                ("step", &(10 * SECOND).to_string()),
                ("skald_part_start", &part_start.to_string()),
                ("skald_part_end", &part_end.to_string()),
            ],
        )
    };
    let send = |uri: String, accept: bool| {
        let mut b = Request::builder().uri(uri).extension(TenantId("fake".into()));
        if accept {
            b = b.header(header::ACCEPT, PART_CONTENT_TYPE);
        }
        let req = b.body(Body::empty()).unwrap();
        r.clone().oneshot(req)
    };
    // the steps at 20 s and 30 s: 10 lines in each window
    let resp = send(part_uri(T0 + 15 * SECOND, T0 + 30 * SECOND), true).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers().get(header::CONTENT_TYPE).unwrap(), PART_CONTENT_TYPE);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let (out, store) = decode_part(&body).unwrap();
    let QueryResult::Matrix(m) = out.result else { panic!("not a matrix") };
    let points: Vec<(i64, f64)> = m[0].samples.iter().map(|s| (s.ts, s.value)).collect();
    assert_eq!(points, vec![(T0 + 20 * SECOND, 10.0), (T0 + 30 * SECOND, 10.0)]);
    assert_eq!(store.chunk_refs, 1);
    // a part outside the whole query holds nothing
    let resp = send(part_uri(T0 + 61 * SECOND, T0 + 90 * SECOND), true).await.unwrap();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    assert_eq!(decode_part(&body).unwrap().0.result, QueryResult::Matrix(vec![]));
    // the whole query's checks still apply: a bad step is the querier's 400
    let bad = part_uri(T0, T0).replace("step=10000000000", "step=0");
    let resp = send(bad, true).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // without the part's Accept: an ordinary answer (the step read as seconds, Loki's way)
    let plain = part_uri(T0, T0).replace("step=10000000000", "step=10");
    let resp = send(plain, false).await.unwrap();
    assert_eq!(resp.headers().get(header::CONTENT_TYPE).unwrap(), JSON);
}
