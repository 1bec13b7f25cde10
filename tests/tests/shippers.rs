//! Log shippers against a real `skald` over real sockets: OTLP/HTTP (protobuf+gzip,
//! JSON+zstd), the Elasticsearch bulk API with the Filebeat start-up sequence, Fluent Bit's
//! `loki` and `es` outputs replayed byte for byte from `tests/data/shippers/` (see its
//! PROVENANCE.md), and the Python `elasticsearch` and `python-logging-loki` clients when they
//! are installed. Everything is queried back through `/loki/api/v1/query_range`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use prost::Message;
use serde_json::{json, Value};
use skald_integration_tests::{data_dir, get, gzip, not_run, now_ns, post, temp_dir, Skald};
use skald_proto::otlp::collector::ExportLogsServiceRequest;
use skald_proto::otlp::common::{any_value, AnyValue, InstrumentationScope, KeyValue};
use skald_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use skald_proto::otlp::resource::Resource;

const TENANT: &str = "shippers";

const CONFIG: &str = "auth_enabled: true
limits_config:
  reject_old_samples: false
  ingestion_rate_mb: 64
  ingestion_burst_size_mb: 128
  max_line_size: 64KB
distributor:
  max_decompressed_size: 4MB
";

/// One returned entry: timestamp, line, structured metadata.
type Row = (i64, String, Value);

/// Log query results as `(labels, [(ts, line, structured metadata)])`, oldest first.
fn query(s: &Skald, tenant: Option<&str>, q: &str, start: i64, end: i64) -> Vec<(Value, Vec<Row>)> {
    let (st, en) = (start.to_string(), end.to_string());
    let mut headers = vec![("X-Loki-Response-Encoding-Flags", "categorize-labels")];
    if let Some(t) = tenant {
        headers.push(("X-Scope-OrgID", t));
    }
    let r = get(
        &format!("{}/loki/api/v1/query_range", s.url),
        &[("query", q), ("start", &st), ("end", &en), ("direction", "forward"), ("limit", "1000")],
        &headers,
    );
    assert_eq!(r.status, 200, "{q}: {}", r.body);
    let v = r.json();
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let entries = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    let sm = e.get(2).and_then(|m| m.get("structuredMetadata")).cloned();
                    (
                        e[0].as_str().unwrap().parse().unwrap(),
                        e[1].as_str().unwrap().to_string(),
                        sm.unwrap_or(json!({})),
                    )
                })
                .collect();
            (s["stream"].clone(), entries)
        })
        .collect()
}

/// Sends the exact bytes of a recorded request and returns (status, headers, body).
fn replay(s: &Skald, raw: &[u8]) -> (u16, String, Vec<u8>) {
    skald_integration_tests::send_raw(s.http_port, raw)
}

/// Old timestamps are read from the store only (queriers ask ingesters about recent data), so
/// the tests with 2024 fixtures flush first.
fn flush(s: &Skald) {
    let r = post(&format!("{}/flush", s.url), &[], b"");
    assert_eq!(r.status, 204, "{}", r.body);
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join("shippers").join(name)).unwrap()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) })
}

fn kv(k: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue { key: k.into(), value, ..Default::default() }
}

#[test]
fn otlp_protobuf_gzip_and_json_zstd() {
    let dir = temp_dir("shippers-otlp");
    let skald = Skald::start(&dir, CONFIG);
    let url = format!("{}/otlp/v1/logs", skald.url);
    let t0 = now_ns() - 60_000_000_000;

    // Protobuf + gzip, as the OpenTelemetry Collector's otlphttp exporter sends it.
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("checkout")),
                    kv("k8s.namespace.name", s("shop")),
                    kv("host.name", s("node-1")),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "checkout.logger".into(),
                    ..Default::default()
                }),
                log_records: vec![
                    LogRecord {
                        time_unix_nano: t0 as u64,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: s("payment declined"),
                        attributes: vec![kv(
                            "http.status_code",
                            Some(AnyValue { value: Some(any_value::Value::IntValue(402)) }),
                        )],
                        trace_id: (1..=16).collect(),
                        span_id: (1..=8).collect(),
                        ..Default::default()
                    },
                    LogRecord {
                        time_unix_nano: t0 as u64 + 1_000_000,
                        severity_number: 9,
                        body: s("order placed"),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let r = post(
        &url,
        &[
            ("X-Scope-OrgID", TENANT),
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        &gzip(&req.encode_to_vec()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.content_type, "application/x-protobuf");
    assert!(r.body.is_empty());

    // JSON + zstd, OTLP's JSON mapping: hex ids, int64 as strings, camelCase.
    let json_body = json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "inventory"}},
            {"key": "deployment.environment.name", "value": {"stringValue": "prod"}},
            {"key": "process.pid", "value": {"intValue": "4711"}}
        ]},
        "scopeLogs": [{"scope": {"name": "inv", "version": "1.2.0"}, "logRecords": [{
            "timeUnixNano": (t0 + 2_000_000).to_string(),
            "severityNumber": 13,
            "severityText": "WARN",
            "body": {"kvlistValue": {"values": [
                {"key": "msg", "value": {"stringValue": "low stock"}},
                {"key": "sku", "value": {"intValue": "42"}}
            ]}},
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174",
            "attributes": [{"key": "warehouse", "value": {"kvlistValue": {"values": [
                {"key": "id", "value": {"stringValue": "w1"}}]}}}]
        }]}]
    }]});
    let zstd_body = zstd::encode_all(json_body.to_string().as_bytes(), 3).unwrap();
    let r = post(
        &url,
        &[
            ("X-Scope-OrgID", TENANT),
            ("Content-Type", "application/json"),
            ("Content-Encoding", "zstd"),
        ],
        &zstd_body,
    );
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    assert_eq!(r.content_type, "application/json");

    let (start, end) = (t0 - 1_000_000_000, now_ns() + 1_000_000_000);
    let got = query(&skald, Some(TENANT), r#"{service_name="checkout"}"#, start, end);
    assert_eq!(got.len(), 1, "{got:?}");
    let (labels, entries) = &got[0];
    assert_eq!(labels, &json!({"service_name": "checkout", "k8s_namespace_name": "shop"}));
    assert_eq!(entries.len(), 2);
    let (ts, line, sm) = &entries[0];
    assert_eq!((*ts, line.as_str()), (t0, "payment declined"));
    assert_eq!(sm["trace_id"], "0102030405060708090a0b0c0d0e0f10");
    assert_eq!(sm["span_id"], "0102030405060708");
    assert_eq!(sm["severity_number"], "17");
    assert_eq!(sm["severity_text"], "ERROR");
    assert_eq!(sm["http_status_code"], "402");
    assert_eq!(sm["host_name"], "node-1");
    assert_eq!(sm["scope_name"], "checkout.logger");
    assert_eq!(sm["detected_level"], "error");
    assert_eq!(entries[1].2["detected_level"], "info");

    let got = query(&skald, Some(TENANT), r#"{deployment_environment_name="prod"}"#, start, end);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].0,
        json!({"service_name": "inventory", "deployment_environment_name": "prod"})
    );
    let (ts, line, sm) = &got[0].1[0];
    assert_eq!(*ts, t0 + 2_000_000);
    assert_eq!(line, r#"{"msg":"low stock","sku":42}"#);
    assert_eq!(sm["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(sm["warehouse_id"], "w1");
    assert_eq!(sm["process_pid"], "4711");
    assert_eq!(sm["scope_version"], "1.2.0");
    assert_eq!(sm["detected_level"], "warn");

    // Structured metadata is queryable as label filters.
    let got = query(
        &skald,
        Some(TENANT),
        r#"{service_name=~".+"} | trace_id="5b8efff798038103d269b633813fc60c""#,
        start,
        end,
    );
    assert_eq!(got.iter().map(|g| g.1.len()).sum::<usize>(), 1);

    // Errors: a google.rpc.Status in the request's encoding, Loki's statuses.
    let r = post(
        &url,
        &[("X-Scope-OrgID", TENANT), ("Content-Type", "application/json")],
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"soon"}]}]}]}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.content_type, "application/json");
    assert_eq!(r.json()["code"], 3);
    assert!(r.json()["message"].as_str().unwrap().contains("timeUnixNano"), "{}", r.body);
    let r = post(
        &url,
        &[("X-Scope-OrgID", TENANT), ("Content-Type", "application/x-protobuf")],
        b"\x0a\xff\xff\xff",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.content_type, "application/x-protobuf");
    let r = post(&url, &[("X-Scope-OrgID", TENANT), ("Content-Type", "text/plain")], b"hello");
    assert_eq!(r.status, 400);
    // A zstd bomb: 64 MiB of zeros stop at the 4 MB decompression cap.
    let bomb = zstd::encode_all(vec![0u8; 64 << 20].as_slice(), 3).unwrap();
    let r = post(
        &url,
        &[
            ("X-Scope-OrgID", TENANT),
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "zstd"),
        ],
        &bomb,
    );
    assert_eq!(r.status, 413, "{}", r.body);
    // No tenant with auth on.
    let r = post(&url, &[("Content-Type", "application/json")], b"{}");
    assert_eq!(r.status, 401);
    // An export without records is a success.
    let r = post(&url, &[("X-Scope-OrgID", TENANT), ("Content-Type", "application/json")], b"{}");
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
}

#[test]
fn filebeat_start_up_and_bulk_replayed() {
    let dir = temp_dir("shippers-filebeat");
    let skald = Skald::start(&dir, CONFIG);

    let (status, head, body) = replay(&skald, &fixture("filebeat-1-get-root.http"));
    assert_eq!(status, 200);
    assert_eq!(header(&head, "X-Elastic-Product"), Some("Elasticsearch"));
    let root: Value = serde_json::from_slice(&body).unwrap();
    assert!(root["version"]["number"].as_str().unwrap().starts_with("8."));

    let (status, _, body) = replay(&skald, &fixture("filebeat-2-get-license.http"));
    assert_eq!(status, 200);
    let lic: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(lic["license"]["status"], "active");

    let (status, head, _) = replay(&skald, &fixture("filebeat-3-head-template.http"));
    assert_eq!(status, 404);
    assert_eq!(header(&head, "X-Elastic-Product"), Some("Elasticsearch"));
    let (status, _, body) = replay(&skald, &fixture("filebeat-4-put-template.http"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = replay(&skald, &fixture("filebeat-3-head-template.http"));
    assert_eq!(status, 200, "the template put above is found");
    let (status, _, _) = replay(&skald, &fixture("filebeat-5-get-data-stream.http"));
    assert_eq!(status, 404);

    let (status, head, body) = replay(&skald, &fixture("filebeat-6-bulk.http"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&head, "X-Elastic-Product"), Some("Elasticsearch"));
    let resp: Value = serde_json::from_slice(&body).unwrap();
    // filter_path=errors,items.*.error,items.*.status
    assert_eq!(
        resp,
        json!({"errors": false, "items": [{"create": {"status": 201}}, {"create": {"status": 201}}]})
    );

    flush(&skald);
    let start = 1_714_564_800_000_000_000_i64;
    let end = start + 10_000_000_000;
    let got = query(&skald, Some(TENANT), r#"{index="filebeat-8.19.0"}"#, start, end);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].0,
        json!({"index": "filebeat-8.19.0", "namespace": "ops", "pod": "bastion-0",
               "container": "sshd", "app": "bastion", "service_name": "bastion"})
    );
    let entries = &got[0].1;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].0, start + 2_000_000_000);
    assert_eq!(entries[1].0, start + 2_500_000_000);
    let doc: Value = serde_json::from_str(&entries[0].1).unwrap();
    assert_eq!(doc["message"], "Accepted publickey for deploy from 10.0.0.7 port 52114 ssh2");
    assert_eq!(
        doc["kubernetes"],
        json!({"pod": {"uid": "0d6c4a2e"}}),
        "promoted fields leave the line"
    );
    assert_eq!(doc["log"]["file"]["path"], "/var/log/auth.log");

    // Per-item errors: bad items fail alone, good ones are stored.
    let bulk = concat!(
        "{\"index\":{\"_index\":\"app\",\"_id\":\"a1\"}}\n{\"@timestamp\":1714564803000,\"message\":\"ok one\"}\n",
        "{\"delete\":{\"_index\":\"app\",\"_id\":\"a1\"}}\n",
        "{\"create\":{\"_index\":\"app\"}}\n{\"message\": broken}\n",
        "{\"update\":{\"_index\":\"app\",\"_id\":\"a1\"}}\n{\"doc\":{\"message\":\"x\"}}\n",
        "{\"create\":{}}\n{\"@timestamp\":\"2024-05-01T12:00:04Z\",\"message\":\"ok two\"}\n",
        "{\"create\":{\"_index\":\"app\"}}\n{\"@timestamp\":\"not a date\",\"message\":\"x\"}\n",
    );
    let r = post(
        &format!("{}/app/_bulk", skald.url),
        &[("X-Scope-OrgID", TENANT), ("Content-Type", "application/x-ndjson")],
        bulk.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["errors"], true);
    let statuses: Vec<(String, u64)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let (action, body) = i.as_object().unwrap().iter().next().unwrap();
            (action.clone(), body["status"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("index".into(), 201),
            ("delete".into(), 400),
            ("create".into(), 400),
            ("update".into(), 400),
            ("create".into(), 201),
            ("create".into(), 400),
        ]
    );
    assert_eq!(v["items"][0]["index"]["_id"], "a1");
    assert_eq!(v["items"][2]["create"]["error"]["type"], "document_parsing_exception");
    assert_eq!(v["items"][5]["create"]["error"]["type"], "document_parsing_exception");
    flush(&skald);
    let got = query(&skald, Some(TENANT), r#"{index="app"}"#, start, end);
    let lines: Vec<&str> = got[0].1.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(
        lines,
        vec![
            r#"{"@timestamp":1714564803000,"message":"ok one"}"#,
            r#"{"@timestamp":"2024-05-01T12:00:04Z","message":"ok two"}"#
        ]
    );

    // Whole-request failures in Elasticsearch's error shape.
    let r = post(
        &format!("{}/_bulk", skald.url),
        &[("X-Scope-OrgID", TENANT), ("Content-Type", "application/x-ndjson")],
        b"{\"upsert\":{}}\n{}\n",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "illegal_argument_exception");
    assert_eq!(r.json()["status"], 400);
    let bomb = gzip(&vec![b' '; 16 << 20]);
    let r = post(
        &format!("{}/_bulk", skald.url),
        &[("X-Scope-OrgID", TENANT), ("Content-Encoding", "gzip")],
        &bomb,
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["type"], "content_too_long_exception");
}

#[test]
fn fluent_bit_loki_output_replayed() {
    let dir = temp_dir("shippers-fluent-bit-loki");
    let skald = Skald::start(&dir, CONFIG);
    for name in ["fluent-bit-loki-json.http", "fluent-bit-loki-kv.http"] {
        let (status, _, body) = replay(&skald, &fixture(name));
        assert_eq!(status, 204, "{name}: {}", String::from_utf8_lossy(&body));
    }
    flush(&skald);
    let start = 1_714_564_800_000_000_000_i64;
    let end = start + 60_000_000_000;
    let got = query(&skald, Some(TENANT), r#"{job="fluent-bit"}"#, start, end);
    assert_eq!(got[0].0, json!({"job": "fluent-bit", "service_name": "fluent-bit"}));
    let lines: Vec<&Row> = got[0].1.iter().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0].0, start);
    let first: Value = serde_json::from_str(&lines[0].1).unwrap();
    assert_eq!(first["log"], "GET /index.html HTTP/1.1 200 612");
    assert_eq!(lines[1].2["detected_level"], "error");
    // line_format key_value, parsed back with logfmt.
    let got = query(
        &skald,
        Some(TENANT),
        r#"{job="fluent-bit-kv", env="test"} | logfmt | level="warn""#,
        start,
        end,
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1[0].1, r#"log="disk 91% full" stream="stdout" level="warn" pct=91"#);
    // Another tenant sees nothing.
    assert!(query(&skald, Some("other"), r#"{job="fluent-bit"}"#, start, end).is_empty());
}

#[test]
fn fluent_bit_es_output_replayed() {
    // Fluent Bit's es output cannot send X-Scope-OrgID: a single-tenant Skald (tenant `fake`).
    let dir = temp_dir("shippers-fluent-bit-es");
    let skald = Skald::start(&dir, &CONFIG.replace("auth_enabled: true", "auth_enabled: false"));
    let (status, head, body) = replay(&skald, &fixture("fluent-bit-es-bulk.http"));
    assert_eq!(status, 200);
    assert_eq!(header(&head, "Content-Type"), Some("application/json"));
    let text = String::from_utf8(body).unwrap();
    // Fluent Bit looks for `"errors":false` before reading the items.
    assert!(text.contains("\"errors\":false,\"items\":["), "{text}");
    flush(&skald);
    let start = 1_714_564_800_000_000_000_i64;
    let got = query(
        &skald,
        None,
        r#"{index="fluent-bit", namespace="shop"}"#,
        start,
        start + 10_000_000_000,
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].0,
        json!({"index": "fluent-bit", "namespace": "shop", "pod": "cart-5f6c7", "container": "cart",
               "app": "cart", "app_kubernetes_io_part_of": "shop", "service_name": "cart"})
    );
    let e = &got[0].1;
    assert_eq!(e.len(), 2);
    assert_eq!(e[1].0, start + 1_250_000_000);
    assert_eq!(
        e[1].1,
        r#"{"@timestamp":"2024-05-01T12:00:01.250Z","log":"POST /cart 500 payment declined","stream":"stderr","kubernetes":{"host":"node-1"}}"#
    );
    // A JSON line without a level field: Loki's detection says `unknown`.
    assert_eq!(e[1].2["detected_level"], "unknown");
}

/// The Python `elasticsearch` client (`helpers.bulk`) and `python-logging-loki`'s LokiHandler.
/// Reported as not run (`not_run`) when python3 or the packages are missing (`scripts/test.sh`
/// installs them; `SKALD_PYTHON` names another interpreter).
#[test]
fn python_clients() {
    let python = std::env::var("SKALD_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import elasticsearch, elasticsearch.helpers, logging_loki"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            let why = format!(
                "{python} lacks elasticsearch or python-logging-loki: {}",
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
            );
            not_run("shippers::python_clients", &why);
            return;
        }
        Err(e) => {
            not_run("shippers::python_clients", &format!("cannot run {python}: {e}"));
            return;
        }
    }
    let dir = temp_dir("shippers-python");
    let skald = Skald::start(&dir, CONFIG);
    let t0 = now_ns();
    let out = std::process::Command::new(&python)
        .arg(data_dir().join("shippers").join("python_clients.py"))
        .arg(&skald.url)
        .arg(TENANT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python_clients.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let end = now_ns() + 1_000_000_000;
    let got = query(&skald, Some(TENANT), r#"{index="py-logs"}"#, t0 - 60_000_000_000, end);
    let lines: Vec<Value> =
        got.iter().flat_map(|g| &g.1).map(|e| serde_json::from_str(&e.1).unwrap()).collect();
    assert_eq!(lines.len(), 20, "{got:?}");
    assert!(lines.iter().any(|l| l["message"] == "bulk doc 7" && l["n"] == 7));
    let got = query(&skald, Some(TENANT), r#"{application="py-app"}"#, t0 - 60_000_000_000, end);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0["logger"], "skald-test");
    assert_eq!(got[0].0["severity"], "warning");
    assert_eq!(got[0].1[0].1, "disk almost full");
}

#[test]
fn otlp_per_tenant_config_and_bad_config() {
    let dir = temp_dir("shippers-otlp-tenant");
    let cfg = format!(
        "{CONFIG}  otlp_config:
    tenant_overrides:
      special:
        resource_attributes:
          attributes_config:
            - action: index_label
              attributes: [host.name]
            - action: drop
              regex: 'process\\..*'
        log_attributes:
          - action: drop
            attributes: [secret]
"
    );
    let skald = Skald::start(&dir, &cfg);
    let t0 = now_ns() - 10_000_000_000;
    let body = |t: i64| {
        json!({"resourceLogs": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "api"}},
                {"key": "host.name", "value": {"stringValue": "node-9"}},
                {"key": "process.pid", "value": {"intValue": 1}}
            ]},
            "scopeLogs": [{"logRecords": [{"timeUnixNano": t.to_string(),
                "body": {"stringValue": "hello"},
                "attributes": [{"key": "secret", "value": {"stringValue": "s3cr3t"}}]}]}]
        }]})
        .to_string()
    };
    for tenant in ["special", "plain"] {
        let r = post(
            &format!("{}/otlp/v1/logs", skald.url),
            &[("X-Scope-OrgID", tenant), ("Content-Type", "application/json")],
            body(t0).as_bytes(),
        );
        assert_eq!(r.status, 200, "{tenant}: {}", r.body);
    }
    let (start, end) = (t0 - 1_000_000_000, now_ns() + 1_000_000_000);
    let special = query(&skald, Some("special"), r#"{service_name="api"}"#, start, end);
    assert_eq!(special[0].0, json!({"service_name": "api", "host_name": "node-9"}));
    let sm = &special[0].1[0].2;
    assert!(sm.get("process_pid").is_none() && sm.get("secret").is_none(), "{sm}");
    let plain = query(&skald, Some("plain"), r#"{service_name="api"}"#, start, end);
    assert_eq!(plain[0].0, json!({"service_name": "api"}));
    assert_eq!(plain[0].1[0].2["host_name"], "node-9");
    assert_eq!(plain[0].1[0].2["secret"], "s3cr3t");
    drop(skald);

    // Bad values stop the process at start with a message that names them.
    for (bad, want) in [
        (
            "limits_config:\n  otlp_config:\n    scope_attributes:\n      - action: index_label\n        attributes: [a]\n",
            "index_label action is only supported for resource_attributes and log_attributes",
        ),
        (
            "limits_config:\n  otlp_config:\n    log_attributes:\n      - action: keep\n        attributes: [a]\n",
            "unknown variant `keep`",
        ),
        (
            "distributor:\n  elasticsearch:\n    index_label: 'bad-label'\n",
            "elasticsearch.index_label",
        ),
    ] {
        let path = dir.join("bad.yaml");
        std::fs::write(&path, bad).unwrap();
        let out = std::process::Command::new(skald_integration_tests::skald_bin())
            .arg(format!("-config.file={}", path.display()))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{want}: {err}");
    }
}
