//! End-to-end tests of `Distributor::push` against a mock ingester.
#![allow(clippy::unwrap_used, clippy::type_complexity)]

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;
use skald_common::limits::Limits;
use skald_distributor::{Distributor, DistributorConfig, PushError};
use skald_model::Label;
use skald_proto::logproto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter};
use skald_proto::{ErrorCode, ServiceError};

mod support;
use support::MockIngester;

struct Fixture {
    d: Distributor,
    ing: Arc<MockIngester>,
    registry: prometheus::Registry,
}

fn fixture_with(config: DistributorConfig, limits: Limits, ing: MockIngester) -> Fixture {
    let ing = Arc::new(ing);
    let registry = prometheus::Registry::new();
    let d = Distributor::new(config, limits, ing.clone(), &registry).unwrap();
    Fixture { d, ing, registry }
}

fn fixture(limits: Limits) -> Fixture {
    fixture_with(DistributorConfig::default(), limits, MockIngester::default())
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

const JSON: Option<&str> = Some("application/json");
const PROTO: Option<&str> = Some("application/x-protobuf");

fn json_body(streams: &[(&str, Vec<(i64, &str)>)]) -> Bytes {
    let streams: Vec<serde_json::Value> = streams
        .iter()
        .map(|(labels, entries)| {
            let labels: serde_json::Value = serde_json::from_str(labels).unwrap();
            let values: Vec<serde_json::Value> = entries
                .iter()
                .map(|(ts, line)| serde_json::json!([ts.to_string(), line]))
                .collect();
            serde_json::json!({"stream": labels, "values": values})
        })
        .collect();
    Bytes::from(serde_json::json!({ "streams": streams }).to_string())
}

fn proto_request(labels: &str, entries: &[(i64, &str, &[(&str, &str)])]) -> PushRequest {
    PushRequest {
        streams: vec![StreamAdapter {
            labels: labels.to_string(),
            entries: entries
                .iter()
                .map(|(ts, line, sm)| EntryAdapter {
                    timestamp: Some(prost_types::Timestamp {
                        seconds: ts.div_euclid(1_000_000_000),
                        nanos: ts.rem_euclid(1_000_000_000) as i32,
                    }),
                    line: line.as_bytes().to_vec(),
                    structured_metadata: sm
                        .iter()
                        .map(|(n, v)| LabelPairAdapter {
                            name: n.to_string(),
                            value: v.to_string(),
                        })
                        .collect(),
                    parsed: vec![],
                })
                .collect(),
            hash: 0,
        }],
        format: String::new(),
    }
}

fn snappy(b: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(b).unwrap()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn deflate(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zlib(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn sm(e: &skald_model::Entry, name: &str) -> Option<String> {
    e.structured_metadata.iter().find(|l| l.name == name).map(|l| l.value.clone())
}

fn counter(reg: &prometheus::Registry, name: &str, label: (&str, &str)) -> f64 {
    reg.gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| m.get_label().iter().any(|l| l.name() == label.0 && l.value() == label.1))
        .map(|m| m.get_counter().get_value())
        .sum()
}

async fn err(f: &Fixture, body: impl Into<Bytes>, ct: Option<&str>, ce: Option<&str>) -> PushError {
    f.d.push("tenant-a", body.into(), ct, ce).await.unwrap_err()
}

#[tokio::test]
async fn snappy_protobuf_push_is_enriched_and_forwarded() {
    let f = fixture(Limits::default());
    let t = now_ns();
    let req = proto_request(
        r#"{ "job"="web",  env="prod" }"#,
        &[(t, "level=warn msg=hi", &[("trace.id", "abc")]), (t + 1, "plain line", &[])],
    );
    let out = f.d.push("tenant-a", snappy(&req.encode_to_vec()).into(), PROTO, None).await.unwrap();
    assert_eq!((out.streams, out.entries), (1, 2));
    let streams = f.ing.streams();
    assert_eq!(streams[0].labels.to_string(), r#"{env="prod", job="web", service_name="web"}"#);
    let e = &streams[0].entries;
    assert_eq!(e[0].ts, t);
    assert_eq!(sm(&e[0], "detected_level").as_deref(), Some("warn"));
    // names are normalized, then sorted, then detected_level is appended
    assert_eq!(
        e[0].structured_metadata,
        vec![Label::new("trace_id", "abc"), Label::new("detected_level", "warn")]
    );
    assert_eq!(sm(&e[1], "detected_level").as_deref(), Some("unknown"));
    assert_eq!(f.ing.pushed.lock().unwrap()[0].0, "tenant-a");
    // snappy content-encoding is a no-op for protobuf
    f.d.push("tenant-a", snappy(&req.encode_to_vec()).into(), PROTO, Some("snappy")).await.unwrap();
    // unknown content types are read as protobuf too
    f.d.push("tenant-a", snappy(&req.encode_to_vec()).into(), Some("text/plain"), None)
        .await
        .unwrap();
    // gzip around snappy protobuf
    f.d.push("tenant-a", gzip(&snappy(&req.encode_to_vec())).into(), PROTO, Some("gzip"))
        .await
        .unwrap();
    assert_eq!(f.ing.pushed.lock().unwrap().len(), 4);
    let received =
        counter(&f.registry, "loki_distributor_lines_received_total", ("tenant", "tenant-a"));
    assert_eq!(received, 8.0);
    assert!(
        counter(&f.registry, "loki_distributor_bytes_received_total", ("tenant", "tenant-a")) > 0.0
    );
}

#[tokio::test]
async fn json_push_with_every_encoding() {
    let f = fixture(Limits::default());
    let t = now_ns();
    let body =
        json_body(&[(r#"{"app":"api","job":"x"}"#, vec![(t, r#"{"level":"ERROR","msg":"x"}"#)])]);
    for (b, ce) in [
        (body.to_vec(), None),
        (gzip(&body), Some("gzip")),
        (deflate(&body), Some("deflate")),
        (zlib(&body), Some("deflate")),
    ] {
        f.d.push("tenant-a", b.into(), Some("application/json; charset=utf-8"), ce).await.unwrap();
    }
    let streams = f.ing.streams();
    assert_eq!(streams.len(), 4);
    for s in streams {
        assert_eq!(s.labels.get("service_name"), Some("api"));
        assert_eq!(sm(&s.entries[0], "detected_level").as_deref(), Some("error"));
    }
    // structured metadata as the third element
    let body =
        format!(r#"{{"streams":[{{"stream":{{"job":"j"}},"values":[["{t}","l",{{"k":"v"}}]]}}]}}"#);
    f.d.push("tenant-a", body.into(), JSON, None).await.unwrap();
    let last = f.ing.streams().pop().unwrap();
    assert_eq!(sm(&last.entries[0], "k").as_deref(), Some("v"));
}

#[tokio::test]
async fn service_name_fallback_and_disabled_discovery() {
    let f = fixture(Limits::default());
    let t = now_ns();
    f.d.push("t", json_body(&[(r#"{"foo":"bar"}"#, vec![(t, "x")])]), JSON, None).await.unwrap();
    f.d.push(
        "t",
        json_body(&[(r#"{"foo":"bar","service_name":"mine"}"#, vec![(t, "x")])]),
        JSON,
        None,
    )
    .await
    .unwrap();
    let s = f.ing.streams();
    assert_eq!(s[0].labels.get("service_name"), Some("unknown_service"));
    assert_eq!(s[1].labels.get("service_name"), Some("mine"));

    let f = fixture(Limits {
        discover_service_name: vec![],
        discover_log_levels: false,
        ..Limits::default()
    });
    f.d.push("t", json_body(&[(r#"{"foo":"bar"}"#, vec![(t, "error!")])]), JSON, None)
        .await
        .unwrap();
    let s = f.ing.streams();
    assert_eq!(s[0].labels.to_string(), r#"{foo="bar"}"#);
    assert!(s[0].entries[0].structured_metadata.is_empty());
}

#[tokio::test]
async fn decoding_errors_have_loki_texts() {
    let f = fixture(Limits::default());
    let body = json_body(&[(r#"{"a":"b"}"#, vec![(now_ns(), "x")])]);
    let e = err(&f, body.clone(), JSON, Some("br")).await;
    assert_eq!(
        (e.status_code(), e.to_string().as_str()),
        (400, "Content-Encoding \"br\" not supported")
    );
    let e = err(&f, body.clone(), None, None).await;
    assert_eq!((e.status_code(), e.to_string().as_str()), (400, "mime: no media type"));
    let e = err(&f, body.clone(), Some("application/json; charsetutf-8"), None).await;
    assert_eq!(e.to_string(), "mime: invalid media parameter");
    // JSON sent as protobuf, and snappy content-encoding on JSON (a no-op, so gzip bytes fail)
    let e = err(&f, body.clone(), Some("application/jsonn"), None).await;
    assert_eq!((e.status_code(), e.to_string().as_str()), (400, "snappy: corrupt input"));
    let e = err(&f, gzip(&body), JSON, Some("snappy")).await;
    assert_eq!(e.status_code(), 400);
    let e = err(&f, body.clone(), JSON, Some("gzip")).await;
    assert_eq!(e.to_string(), "gzip: invalid header");
    let e = err(&f, snappy(b"\xff\xff\xff garbage"), PROTO, None).await;
    assert_eq!(e.status_code(), 400);
    assert!(e.to_string().starts_with("proto: "), "{e}");
    let e = err(
        &f,
        r#"{"streams":[{"stream":{"a":"b"},"values":[[1570818238000000000,"x"]]}]}"#,
        JSON,
        None,
    )
    .await;
    assert_eq!(e.status_code(), 400);
    assert!(e.to_string().contains("Value is string, but can't find closing '\"' symbol"), "{e}");
    let e = err(&f, "", JSON, None).await;
    assert_eq!(e.to_string(), "EOF");
    let e = err(&f, json_body(&[(r#"{"a-b":"x"}"#, vec![(now_ns(), "x")])]), JSON, None).await;
    assert_eq!(e.status_code(), 400);
    assert!(e.to_string().starts_with("couldn't parse labels: "), "{e}");
    let req = proto_request("{a=", &[(now_ns(), "x", &[])]);
    let e = err(&f, snappy(&req.encode_to_vec()), PROTO, None).await;
    assert!(e.to_string().starts_with("couldn't parse labels: "), "{e}");
    let e = err(&f, r#"{"streams":[]}"#, JSON, None).await;
    assert_eq!(
        (e.status_code(), e.to_string().as_str()),
        (422, "error at least one valid stream is required for ingestion")
    );
    assert!(f.ing.streams().is_empty());
}

#[tokio::test]
async fn size_caps_answer_413() {
    let config = DistributorConfig {
        max_recv_msg_size: 100,
        max_decompressed_size: 1000,
        ..Default::default()
    };
    let f = fixture_with(config, Limits::default(), MockIngester::default());
    let e = err(&f, vec![b' '; 101], JSON, None).await;
    assert_eq!(
        (e.status_code(), e.to_string().as_str()),
        (413, "request body too large: message size too large than max (101 vs 100)")
    );
    let e = err(&f, gzip(&[b' '; 5000]), JSON, Some("gzip")).await;
    assert_eq!(
        (e.status_code(), e.to_string().as_str()),
        (
            413,
            "request body too large: decompressed message size too large than max (1001 vs 1000)"
        )
    );
    let e = err(&f, deflate(&[b' '; 5000]), JSON, Some("deflate")).await;
    assert_eq!(e.status_code(), 413);
    // a snappy block whose header claims 1 GiB: rejected from the header alone
    let mut bomb = vec![0x80, 0x80, 0x80, 0x80, 0x04];
    bomb.extend_from_slice(&[0u8; 20]);
    let e = err(&f, bomb, PROTO, None).await;
    assert_eq!(
        e.to_string(),
        "request body too large: decompressed message size too large than max (1073741824 vs 1000)"
    );
    assert!(
        counter(&f.registry, "loki_discarded_bytes_total", ("reason", "request_body_too_large"))
            > 0.0
    );
}

#[tokio::test]
async fn gzip_bomb_of_one_gib_is_rejected_fast() {
    let f = fixture(Limits::default());
    // 1024 concatenated gzip members of 1 MiB of zeros each: 1 GiB decompressed, ~1 MB sent
    let member = gzip(&vec![0u8; 1 << 20]);
    let bomb: Vec<u8> = member.iter().copied().cycle().take(member.len() * 1024).collect();
    assert!(bomb.len() < 2 << 20);
    let start = Instant::now();
    let e = err(&f, bomb, JSON, Some("gzip")).await;
    assert_eq!(e.status_code(), 413, "{e}");
    assert!(e
        .to_string()
        .starts_with("request body too large: decompressed message size too large than max"));
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());

    // a deflate bomb of 256 MiB
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    let e = err(&f, bomb, PROTO, Some("deflate")).await;
    assert_eq!(e.status_code(), 413, "{e}");
}

#[tokio::test]
async fn partial_validity_stores_the_valid_part_and_answers_400() {
    let f = fixture(Limits::default());
    let t = now_ns();
    let old = t - 8 * 24 * 3600 * 1_000_000_000;
    let body = json_body(&[
        (r#"{"job":"a"}"#, vec![(t, "good"), (old, "too old")]),
        (r#"{"job":"b"}"#, vec![(t, "also good")]),
    ]);
    let e = err(&f, body, JSON, None).await;
    assert_eq!(e.status_code(), 400);
    assert!(e.is_partial());
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            r#"entry for stream '{job="a", service_name="a"}' has timestamp too old: "#
        ),
        "{msg}"
    );
    assert!(msg.contains(", oldest acceptable timestamp is: "), "{msg}");
    let stored = f.ing.streams();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored.iter().map(|s| s.entries.len()).sum::<usize>(), 2);
    assert_eq!(
        counter(
            &f.registry,
            "loki_discarded_samples_total",
            ("reason", "greater_than_max_sample_age")
        ),
        1.0
    );
    // identical messages are grouped
    let body = json_body(&[(r#"{"job":"a"}"#, vec![(old, "x"), (old, "y")])]);
    let e = err(&f, body, JSON, None).await;
    assert!(e.to_string().starts_with("2 errors like: entry for stream"), "{e}");
}

async fn validation_message(
    limits: Limits,
    labels: &str,
    line: &str,
    metadata: &[(&str, &str)],
    ts_offset: i64,
) -> String {
    let f = fixture(limits);
    let req = proto_request(labels, &[(now_ns() + ts_offset, line, metadata)]);
    let e =
        f.d.push("tenant-a", snappy(&req.encode_to_vec()).into(), PROTO, None).await.unwrap_err();
    assert_eq!(e.status_code(), 400, "{e}");
    assert!(f.ing.streams().is_empty());
    e.to_string()
}

#[tokio::test]
async fn every_validation_message() {
    let d = Limits::default;
    let s = r#"{job="j", service_name="j"}"#;
    assert_eq!(
        validation_message(Limits { discover_service_name: vec![], ..d() }, "{}", "x", &[], 0)
            .await,
        "error at least one label pair is required per stream"
    );
    assert_eq!(
        validation_message(
            Limits { max_label_names_per_series: 1, ..d() },
            r#"{job="j", a="b"}"#,
            "x",
            &[],
            0
        )
        .await,
        r#"entry for stream '{a="b", job="j", service_name="j"}' has 2 label names; limit 1"#
    );
    assert_eq!(
        validation_message(Limits { max_label_name_length: 2, ..d() }, r#"{job="j"}"#, "x", &[], 0)
            .await,
        format!("stream '{s}' has label name too long: 'job'")
    );
    assert_eq!(
        validation_message(
            Limits { max_label_value_length: 0, ..d() },
            r#"{job="j"}"#,
            "x",
            &[],
            0
        )
        .await,
        format!("stream '{s}' has label value too long: 'j'")
    );
    assert_eq!(
        validation_message(d(), r#"{job="j", job="k"}"#, "x", &[], 0).await,
        r#"stream '{job="j", job="k", service_name="j"}' has duplicate label name: 'job'"#
    );
    assert_eq!(
        validation_message(Limits { max_line_size: 3, ..d() }, r#"{job="j"}"#, "four", &[], 0).await,
        format!("max entry size '3' bytes exceeded for stream '{s}' while adding an entry with length '4' bytes")
    );
    let msg = validation_message(d(), r#"{job="j"}"#, "x", &[], 3600 * 1_000_000_000).await;
    assert!(msg.starts_with(&format!("entry for stream '{s}' has timestamp too new: ")), "{msg}");
    let msg =
        validation_message(d(), r#"{job="j"}"#, "x", &[], -8 * 24 * 3600 * 1_000_000_000).await;
    assert!(msg.starts_with(&format!("entry for stream '{s}' has timestamp too old: ")), "{msg}");
    assert_eq!(
        validation_message(Limits { allow_structured_metadata: false, ..d() }, r#"{job="j"}"#, "x", &[("a", "b")], 0).await,
        format!("stream '{s}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it")
    );
    assert_eq!(
        validation_message(Limits { max_structured_metadata_size: 3, ..d() }, r#"{job="j"}"#, "x", &[("ab", "cd")], 0).await,
        format!("stream '{s}' has structured metadata too large: '4' bytes, limit: '3' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it")
    );
    assert_eq!(
        validation_message(Limits { max_structured_metadata_entries_count: 1, ..d() }, r#"{job="j"}"#, "x", &[("a", "1"), ("b", "2")], 0).await,
        format!("stream '{s}' has too many structured metadata labels: '2', limit: '1'. Please see `limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it")
    );
}

#[tokio::test]
async fn old_samples_pass_when_not_rejected_and_lines_can_be_truncated() {
    let f = fixture(Limits {
        reject_old_samples: false,
        max_line_size: 8,
        max_line_size_truncate: true,
        max_line_size_truncate_identifier: "...".into(),
        ..Limits::default()
    });
    let body = json_body(&[(r#"{"job":"a"}"#, vec![(1, "0123456789"), (2, "short")])]);
    f.d.push("t", body, JSON, None).await.unwrap();
    let s = f.ing.streams();
    assert_eq!(s[0].entries[0].line, "01234...");
    assert_eq!(s[0].entries[1].line, "short");
    assert_eq!(
        counter(&f.registry, "loki_mutated_samples_total", ("reason", "line_too_long")),
        1.0
    );
}

#[tokio::test]
async fn duplicate_timestamps_can_be_incremented() {
    let f = fixture(Limits { increment_duplicate_timestamp: true, ..Limits::default() });
    let t = now_ns();
    let body = json_body(&[(r#"{"job":"a"}"#, vec![(t, "a"), (t, "b"), (t, "b"), (t, "c")])]);
    f.d.push("t", body, JSON, None).await.unwrap();
    let ts: Vec<i64> = f.ing.streams()[0].entries.iter().map(|e| e.ts - t).collect();
    // Loki's rule: only a different line gets prev+1; an identical line keeps its timestamp
    assert_eq!(ts, vec![0, 1, 0, 1]);
}

#[tokio::test]
async fn tenant_rate_limit_rejects_the_whole_push() {
    // 1 byte/s, burst 100 bytes
    let f = fixture(Limits {
        ingestion_rate_mb: 1.0 / 1_048_576.0,
        ingestion_burst_size_mb: 100.0 / 1_048_576.0,
        discover_log_levels: false,
        ..Limits::default()
    });
    let t = now_ns();
    let line = "x".repeat(60);
    let body = json_body(&[(r#"{"job":"a"}"#, vec![(t, line.as_str())])]);
    f.d.push("tenant-a", body.clone(), JSON, None).await.unwrap();
    let e = err(&f, body.clone(), JSON, None).await;
    assert_eq!(e.status_code(), 429);
    assert_eq!(
        e.to_string(),
        "ingestion rate limit exceeded for user tenant-a (limit: 1 bytes/sec) while attempting to ingest '1' lines totaling '60' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased"
    );
    assert_eq!(f.ing.pushed.lock().unwrap().len(), 1);
    assert_eq!(
        counter(&f.registry, "loki_discarded_samples_total", ("reason", "rate_limited")),
        1.0
    );
    // other tenants have their own bucket
    f.d.push("tenant-b", body, JSON, None).await.unwrap();
}

#[tokio::test]
async fn per_stream_rate_limit_drops_entries_over_the_limit() {
    let f = fixture(Limits {
        per_stream_rate_limit: 1,
        per_stream_rate_limit_burst: 10,
        discover_log_levels: false,
        reject_old_samples: false,
        ..Limits::default()
    });
    let t = 1_793_491_200_000_250_000;
    let body = json_body(&[
        (r#"{"job":"a"}"#, vec![(t, "12345678"), (t + 1, "1234")]),
        (r#"{"job":"b"}"#, vec![(t, "ok")]),
    ]);
    let e = err(&f, body, JSON, None).await;
    assert_eq!(e.status_code(), 429);
    assert!(e.is_partial());
    assert_eq!(
        e.to_string(),
        "entry with timestamp 2026-11-01 00:00:00.000250001 +0000 UTC ignored, reason: 'Per stream rate limit exceeded (limit: 1B/sec) while attempting to ingest for stream '{job=\"a\", service_name=\"a\"}' totaling 4B, consider splitting a stream via additional labels or contact your Loki administrator to see if the limit can be increased',\nuser 'tenant-a', total ignored: 1 out of 2 for stream: {job=\"a\", service_name=\"a\"}"
    );
    let stored = f.ing.streams();
    assert_eq!(stored.iter().map(|s| s.entries.len()).sum::<usize>(), 2);
    assert_eq!(
        counter(&f.registry, "loki_discarded_samples_total", ("reason", "per_stream_rate_limit")),
        1.0
    );
}

#[tokio::test]
async fn ingester_errors_keep_their_status() {
    let ing = MockIngester {
        fail: Some(ServiceError::new(ErrorCode::Unavailable, "no ingesters")),
        ..Default::default()
    };
    let f = fixture_with(DistributorConfig::default(), Limits::default(), ing);
    let e = err(&f, json_body(&[(r#"{"job":"a"}"#, vec![(now_ns(), "x")])]), JSON, None).await;
    assert_eq!((e.status_code(), e.to_string().as_str()), (503, "no ingesters"));
}

#[tokio::test]
async fn internal_streams_skip_enrichment_and_label_checks() {
    let f = fixture(Limits { max_label_names_per_series: 1, ..Limits::default() });
    let body = json_body(&[(
        r#"{"__aggregated_metric__":"x","a":"1","b":"2"}"#,
        vec![(now_ns(), "count=1")],
    )]);
    f.d.push("t", body, JSON, None).await.unwrap();
    assert_eq!(f.ing.streams()[0].labels.get("service_name"), None);
}

#[tokio::test]
async fn streams_without_entries_are_ignored() {
    let f = fixture(Limits::default());
    f.d.push("t", r#"{"streams":[{"stream":{"a":"b"},"values":[]}]}"#.into(), JSON, None)
        .await
        .unwrap();
    assert!(f.ing.pushed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn runtime_overrides_apply_per_tenant_and_follow_reloads() {
    use skald_common::overrides::{parse_runtime_config, Overrides};
    let overrides = Overrides::new(Limits::default());
    let ing = Arc::new(MockIngester::default());
    let registry = prometheus::Registry::new();
    let d =
        Distributor::new(DistributorConfig::default(), overrides.clone(), ing.clone(), &registry)
            .unwrap();
    let body = || json_body(&[(r#"{"job":"j"}"#, vec![(now_ns(), "a line of 20 bytes...")])]);
    let file = "overrides:\n  small:\n    max_line_size: 10\n  big: {}\n";
    overrides.replace(parse_runtime_config(file, &Limits::default()).unwrap());
    let err = d.push("small", body(), JSON, None).await.unwrap_err();
    assert_eq!(err.status_code(), 400);
    assert!(err.to_string().contains("max entry size '10' bytes exceeded"), "{err}");
    d.push("big", body(), JSON, None).await.unwrap();
    d.push("other", body(), JSON, None).await.unwrap();
    // a reload lifts the limit at once
    overrides
        .replace(parse_runtime_config("overrides:\n  small: {}\n", &Limits::default()).unwrap());
    d.push("small", body(), JSON, None).await.unwrap();
    // and the ingestion rate is the tenant's too
    let file = "overrides:\n  small:\n    ingestion_rate_mb: 0.00001\n    ingestion_burst_size_mb: 0.00001\n";
    overrides.replace(parse_runtime_config(file, &Limits::default()).unwrap());
    let err = d.push("small", body(), JSON, None).await.unwrap_err();
    assert_eq!(err.status_code(), 429, "{err}");
    d.push("big", body(), JSON, None).await.unwrap();
}

#[tokio::test]
async fn a_runtime_otlp_config_applies_to_its_tenant_only() {
    use skald_common::overrides::{parse_runtime_config, Overrides};
    let overrides = Overrides::new(Limits::default());
    let file = "overrides:\n  t:\n    otlp_config:\n      severity_text_as_label: true\n";
    overrides.replace(parse_runtime_config(file, &Limits::default()).unwrap());
    let ing = Arc::new(MockIngester::default());
    let registry = prometheus::Registry::new();
    let d =
        Distributor::new(DistributorConfig::default(), overrides.clone(), ing.clone(), &registry)
            .unwrap();
    let body = || {
        Bytes::from(
            serde_json::json!({"resourceLogs": [{
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "c"}}]},
                "scopeLogs": [{"logRecords": [{
                    "timeUnixNano": now_ns().to_string(),
                    "severityText": "INFO",
                    "body": {"stringValue": "x"},
                }]}],
            }]})
            .to_string(),
        )
    };
    d.push_otlp("t", body(), JSON, None).await.unwrap();
    d.push_otlp("u", body(), JSON, None).await.unwrap();
    let labels: Vec<String> = ing.streams().iter().map(|s| s.labels.to_string()).collect();
    assert_eq!(labels, [r#"{service_name="c", severity_text="INFO"}"#, r#"{service_name="c"}"#]);
}
