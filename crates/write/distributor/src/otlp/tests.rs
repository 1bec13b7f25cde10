use super::*;
use skald_proto::otlp::common::{ArrayValue, InstrumentationScope, KeyValueList};
use skald_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use skald_proto::otlp::resource::Resource;

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) })
}
fn v(x: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(x) })
}
fn kv(k: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue { key: k.into(), value, ..Default::default() }
}
fn defaults() -> Vec<String> {
    crate::config::DEFAULT_OTLP_INDEX_LABEL_ATTRIBUTES.iter().map(|s| s.to_string()).collect()
}
fn discover() -> Vec<String> {
    skald_common::limits::DEFAULT_DISCOVER_SERVICE_NAME.iter().map(|s| s.to_string()).collect()
}

#[test]
fn stringifies_like_the_collector() {
    use any_value::Value as V;
    assert_eq!(value_as_string(None), "");
    assert_eq!(value_as_string(v(V::IntValue(-42)).as_ref()), "-42");
    assert_eq!(value_as_string(v(V::BoolValue(true)).as_ref()), "true");
    assert_eq!(value_as_string(v(V::DoubleValue(1.5)).as_ref()), "1.5");
    assert_eq!(value_as_string(v(V::DoubleValue(100.0)).as_ref()), "100");
    assert_eq!(value_as_string(v(V::DoubleValue(1e21)).as_ref()), "1e+21");
    assert_eq!(value_as_string(v(V::DoubleValue(1.5e-7)).as_ref()), "1.5e-7");
    assert_eq!(value_as_string(v(V::DoubleValue(0.000001)).as_ref()), "0.000001");
    assert_eq!(
        value_as_string(v(V::DoubleValue(f64::NAN)).as_ref()),
        "json: unsupported value: NaN"
    );
    assert_eq!(value_as_string(v(V::BytesValue(vec![1, 2, 255])).as_ref()), "AQL/");
    let arr = V::ArrayValue(ArrayValue {
        values: vec![
            AnyValue { value: Some(V::StringValue("a<b".into())) },
            AnyValue { value: Some(V::IntValue(1)) },
            AnyValue { value: None },
            AnyValue { value: Some(V::DoubleValue(2.0)) },
        ],
    });
    assert_eq!(value_as_string(v(arr).as_ref()), r#"["a\u003cb",1,null,2]"#);
    let map = V::KvlistValue(KeyValueList {
        values: vec![kv("z", s("1")), kv("a", v(V::BoolValue(false))), kv("z", s("2"))],
    });
    assert_eq!(value_as_string(v(map).as_ref()), r#"{"a":false,"z":"2"}"#);
    let bad = V::ArrayValue(ArrayValue {
        values: vec![AnyValue { value: Some(V::DoubleValue(f64::INFINITY)) }],
    });
    assert_eq!(value_as_string(v(bad).as_ref()), "");
}

fn request() -> ExportLogsServiceRequest {
    use any_value::Value as V;
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("checkout")),
                    kv("k8s.namespace.name", s("shop")),
                    kv("host.name", s("node-1")),
                    kv(
                        "process.runtime",
                        v(V::KvlistValue(KeyValueList {
                            values: vec![kv("name", s("go")), kv("version", s("1.22"))],
                        })),
                    ),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "io.skald.test".into(),
                    version: "1.0".into(),
                    attributes: vec![kv("scope.attr", v(V::IntValue(7)))],
                    dropped_attributes_count: 0,
                }),
                log_records: vec![
                    LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_001,
                        observed_time_unix_nano: 1_700_000_000_000_000_999,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: s("payment failed"),
                        attributes: vec![
                            kv("http.status_code", v(V::IntValue(502))),
                            kv(
                                "user.tags",
                                v(V::ArrayValue(ArrayValue {
                                    values: vec![AnyValue {
                                        value: Some(V::StringValue("x".into())),
                                    }],
                                })),
                            ),
                        ],
                        flags: 1,
                        trace_id: vec![0xab; 16],
                        span_id: vec![0x01; 8],
                        ..Default::default()
                    },
                    LogRecord {
                        observed_time_unix_nano: 1_700_000_000_000_000_500,
                        body: v(V::KvlistValue(KeyValueList {
                            values: vec![kv("msg", s("hi")), kv("n", v(V::IntValue(3)))],
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn default_mapping() {
    let rules = OtlpRules::new(&defaults(), &OtlpConfig::default()).unwrap();
    let streams = otlp_to_streams(request(), &rules, &discover(), 5);
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].labels, r#"{k8s_namespace_name="shop", service_name="checkout"}"#);
    let e = &streams[0].entries[0];
    assert_eq!(e.ts, 1_700_000_000_000_000_001);
    assert_eq!(e.line, "payment failed");
    let sm: Vec<(&str, &str)> =
        e.structured_metadata.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
    assert_eq!(
        sm,
        vec![
            ("http_status_code", "502"),
            ("user_tags", r#"["x"]"#),
            ("observed_timestamp", "1700000000000000999"),
            ("severity_number", "17"),
            ("severity_text", "ERROR"),
            ("flags", "1"),
            ("trace_id", "abababababababababababababababab"),
            ("span_id", "0101010101010101"),
            ("host_name", "node-1"),
            ("process_runtime_name", "go"),
            ("process_runtime_version", "1.22"),
            ("scope_attr", "7"),
            ("scope_name", "io.skald.test"),
            ("scope_version", "1.0"),
        ]
    );
    let e2 = &streams[0].entries[1];
    assert_eq!(e2.ts, 1_700_000_000_000_000_500);
    assert_eq!(e2.line, r#"{"msg":"hi","n":3}"#);
    assert!(!e2.structured_metadata.iter().any(|l| l.name == "observed_timestamp"));
}

#[test]
fn service_name_fallbacks() {
    let rules = OtlpRules::new(&defaults(), &OtlpConfig::default()).unwrap();
    let mut req = request();
    let res = req.resource_logs[0].resource.as_mut().unwrap();
    res.attributes.retain(|kv| kv.key != "service.name");
    res.attributes.push(kv("k8s.container.name", s("api")));
    let streams = otlp_to_streams(req, &rules, &discover(), 5);
    assert_eq!(
        streams[0].labels,
        r#"{k8s_container_name="api", k8s_namespace_name="shop", service_name="api"}"#
    );
    let mut req = request();
    req.resource_logs[0].resource = None;
    let streams = otlp_to_streams(req, &rules, &discover(), 5);
    assert_eq!(streams[0].labels, r#"{service_name="unknown_service"}"#);
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default()],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let streams = otlp_to_streams(req, &rules, &[], 77);
    assert_eq!(streams[0].labels, "{}");
    assert_eq!(streams[0].entries[0].ts, 77);
}

#[test]
fn tenant_rules() {
    let cfg: OtlpConfig = serde_json::from_value(serde_json::json!({
        "resource_attributes": {
            "ignore_defaults": true,
            "attributes_config": [
                {"action": "index_label", "attributes": ["host.name"]},
                {"action": "drop", "regex": "process\\..*"},
            ]
        },
        "scope_attributes": [{"action": "drop", "attributes": ["scope.attr"]}],
        "log_attributes": [
            {"action": "index_label", "attributes": ["http.status_code"]},
            {"action": "drop", "regex": "user\\..*"},
        ],
        "severity_text_as_label": true,
    }))
    .unwrap();
    let rules = OtlpRules::new(&defaults(), &cfg).unwrap();
    let streams = otlp_to_streams(request(), &rules, &discover(), 5);
    assert_eq!(streams.len(), 2);
    // service.name is present (so no discovery) but no longer an index label.
    assert_eq!(
        streams[0].labels,
        r#"{host_name="node-1", http_status_code="502", severity_text="ERROR"}"#
    );
    assert_eq!(streams[1].labels, r#"{host_name="node-1"}"#);
    let names: Vec<&str> =
        streams[0].entries[0].structured_metadata.iter().map(|l| l.name.as_str()).collect();
    assert!(names.contains(&"service_name"));
    assert!(names.contains(&"k8s_namespace_name"));
    assert!(!names.iter().any(|n| n.starts_with("process_") || n.starts_with("user_")));
    assert!(!names.contains(&"scope_attr"));
    assert!(names.contains(&"severity_text"));
}

fn limits() -> DecodeLimits {
    DecodeLimits { max_recv_msg_size: 1 << 20, max_decompressed_size: 1 << 20 }
}

#[test]
fn decodes_encodings_and_caps_them() {
    use std::io::Write;
    let raw = request().encode_to_vec();
    let ct = Some("application/x-protobuf");
    let (r, f) = decode_otlp_body(&raw, ct, None, &limits()).unwrap();
    assert_eq!(f, OtlpFormat::Protobuf);
    assert_eq!(r, request());

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(decode_otlp_body(&gz, ct, Some("gzip"), &limits()).unwrap().0, request());
    let zs = zstd::encode_all(raw.as_slice(), 3).unwrap();
    assert_eq!(decode_otlp_body(&zs, ct, Some("zstd"), &limits()).unwrap().0, request());
    let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
    lz.write_all(&raw).unwrap();
    let lz = lz.finish().unwrap();
    assert_eq!(decode_otlp_body(&lz, ct, Some("lz4"), &limits()).unwrap().0, request());

    // Bombs: 64 MiB of zeros compress to a few KiB and stop at the 1 MiB cap.
    let zeros = vec![0u8; 64 << 20];
    let bomb = zstd::encode_all(zeros.as_slice(), 3).unwrap();
    assert!(bomb.len() < 64 << 10);
    assert_eq!(
        decode_otlp_body(&bomb, ct, Some("zstd"), &limits()).unwrap_err(),
        DecodeError::TooLarge(
            "decompressed message size too large than max (1048577 vs 1048576)".into()
        )
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&zeros).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(matches!(
        decode_otlp_body(&bomb, ct, Some("gzip"), &limits()),
        Err(DecodeError::TooLarge(_))
    ));
    let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
    lz.write_all(&zeros).unwrap();
    let bomb = lz.finish().unwrap();
    assert!(matches!(
        decode_otlp_body(&bomb, ct, Some("lz4"), &limits()),
        Err(DecodeError::TooLarge(_))
    ));
    let small = DecodeLimits { max_recv_msg_size: 10, max_decompressed_size: 0 };
    assert!(matches!(
        decode_otlp_body(&raw, ct, None, &small),
        Err(DecodeError::TooLarge(m)) if m.starts_with("message size too large than max")
    ));

    // Malformed bodies.
    let bad =
        |b: &[u8], ct: &str, ce: Option<&str>| match decode_otlp_body(b, Some(ct), ce, &limits()) {
            Err(DecodeError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
    assert!(bad(b"\x0a\xff\xff", "application/x-protobuf", None).starts_with("proto: "));
    assert!(bad(b"not gzip", "application/x-protobuf", Some("gzip")).starts_with("gzip"));
    assert!(bad(b"not zstd", "application/x-protobuf", Some("zstd")).starts_with("zstd"));
    assert!(bad(b"not lz4!", "application/x-protobuf", Some("lz4")).starts_with("lz4"));
    assert_eq!(
        bad(b"", "application/x-protobuf", Some("br")),
        "Content-Encoding \"br\" not supported (supported: gzip, zstd, lz4)"
    );
    assert_eq!(bad(b"x", "text/plain", None), "content type: text/plain is not supported");
    assert_eq!(bad(b"x", "", None), "mime: no media type");
    assert!(bad(b"{", "application/json", None).starts_with("otlp json: "));
}

#[test]
fn error_bodies() {
    let pb = error_body(OtlpFormat::Protobuf, 429, "slow down");
    let st = RpcStatus::decode(pb.as_slice()).unwrap();
    assert_eq!((st.code, st.message.as_str()), (8, "slow down"));
    assert_eq!(
        String::from_utf8(error_body(OtlpFormat::Json, 400, "bad")).unwrap(),
        r#"{"code":3,"message":"bad"}"#
    );
    assert_eq!(success_body(OtlpFormat::Json), b"{}");
    assert!(success_body(OtlpFormat::Protobuf).is_empty());
    assert_eq!(
        OtlpFormat::from_content_type(Some("application/json; charset=utf-8")),
        OtlpFormat::Json
    );
    assert_eq!(
        error_status(&PushError::Ingester(skald_proto::ServiceError::new(
            skald_proto::ErrorCode::Internal,
            "x"
        ))),
        503
    );
}
