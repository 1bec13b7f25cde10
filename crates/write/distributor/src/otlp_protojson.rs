//! OTLP's JSON encoding of `ExportLogsServiceRequest` (the protobuf JSON mapping with OTLP's
//! exceptions), parsed into the prost messages:
//!
//! - keys in lowerCamelCase (`resourceLogs`); the proto names (`resource_logs`) are accepted too;
//! - 64-bit integers as decimal strings or as numbers; `severityNumber` as a number or the enum
//!   name (`SEVERITY_NUMBER_INFO`);
//! - `traceId` / `spanId` as hex strings (OTLP's exception to base64), `bytesValue` in base64;
//! - `doubleValue` as a number or `"NaN"`, `"Infinity"`, `"-Infinity"`;
//! - `null` is the same as an absent field; unknown fields are ignored.
//!
//! This follows protojson (google.golang.org/protobuf/encoding/protojson) with OTLP/HTTP's
//! exceptions, as the OpenTelemetry collector's pdata JSON unmarshaler accepts it. It stays
//! here rather than in `skald_gocompat::json` (whose table lists it) because it has no
//! tokenizer of its own: serde_json parses, and this file maps the values onto `skald-proto`'s
//! OTLP types.
//!
//! Errors name the JSON path: `otlp json: resourceLogs[0].scopeLogs[0].logRecords[2].timeUnixNano:
//! expected an integer, got "soon"`.

use base64::Engine as _;
use serde_json::{Map, Value};
use skald_proto::otlp::collector::ExportLogsServiceRequest;
use skald_proto::otlp::common::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use skald_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use skald_proto::otlp::resource::Resource;

use crate::error::OtlpJsonError;

type R<T> = Result<T, OtlpJsonError>;

fn err<T>(path: &str, msg: impl std::fmt::Display) -> R<T> {
    Err(OtlpJsonError::At { path: path.to_string(), message: msg.to_string() })
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 64 {
        let mut cut = 64;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

/// A field by its camelCase or proto name; `null` counts as absent.
fn field<'a>(o: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    o.get(camel).or_else(|| o.get(snake)).filter(|v| !v.is_null())
}

fn object<'a>(v: &'a Value, path: &str) -> R<&'a Map<String, Value>> {
    match v {
        Value::Object(o) => Ok(o),
        other => err(path, format!("expected an object, got {}", short(other))),
    }
}

fn array<'a>(o: &'a Map<String, Value>, camel: &str, snake: &str, path: &str) -> R<&'a [Value]> {
    match field(o, camel, snake) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => {
            err(&format!("{path}.{camel}"), format!("expected an array, got {}", short(other)))
        }
    }
}

fn string(o: &Map<String, Value>, camel: &str, snake: &str, path: &str) -> R<String> {
    match field(o, camel, snake) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => {
            err(&format!("{path}.{camel}"), format!("expected a string, got {}", short(other)))
        }
    }
}

/// An integer given as a JSON number or a decimal string, within `[min, max]`.
fn integer(v: &Value, path: &str, min: i128, max: i128) -> R<i128> {
    let n: Option<i128> = match v {
        Value::Number(n) => {
            n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)).or_else(|| {
                n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1.8e19).map(|f| f as i128)
            })
        }
        Value::String(s) => s.trim().parse::<i128>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(_) => err(path, format!("integer out of range: {}", short(v))),
        None => err(path, format!("expected an integer, got {}", short(v))),
    }
}

fn int_field(
    o: &Map<String, Value>,
    camel: &str,
    snake: &str,
    path: &str,
    min: i128,
    max: i128,
) -> R<i128> {
    match field(o, camel, snake) {
        None => Ok(0),
        Some(v) => integer(v, &format!("{path}.{camel}"), min, max),
    }
}

fn u64_field(o: &Map<String, Value>, camel: &str, snake: &str, path: &str) -> R<u64> {
    int_field(o, camel, snake, path, 0, i128::from(u64::MAX)).map(|n| n as u64)
}

fn u32_field(o: &Map<String, Value>, camel: &str, snake: &str, path: &str) -> R<u32> {
    int_field(o, camel, snake, path, 0, i128::from(u32::MAX)).map(|n| n as u32)
}

fn hex_id(o: &Map<String, Value>, camel: &str, snake: &str, path: &str, len: usize) -> R<Vec<u8>> {
    let p = format!("{path}.{camel}");
    let s = string(o, camel, snake, path)?;
    if s.is_empty() {
        return Ok(Vec::new());
    }
    if s.len() != len * 2 {
        return err(&p, format!("expected {} hex digits, got {:?}", len * 2, s));
    }
    let mut out = Vec::with_capacity(len);
    for pair in s.as_bytes().chunks(2) {
        let digit = |c: u8| (c as char).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
            _ => return err(&p, format!("invalid hex id {s:?}")),
        }
    }
    Ok(out)
}

fn any_value(v: &Value, path: &str) -> R<AnyValue> {
    let o = object(v, path)?;
    let mut out = AnyValue { value: None };
    // The last set member wins, as in a protobuf oneof.
    for (k, val) in o {
        if val.is_null() {
            continue;
        }
        let p = format!("{path}.{k}");
        let value = match k.as_str() {
            "stringValue" | "string_value" => match val {
                Value::String(s) => any_value::Value::StringValue(s.clone()),
                other => return err(&p, format!("expected a string, got {}", short(other))),
            },
            "boolValue" | "bool_value" => match val {
                Value::Bool(b) => any_value::Value::BoolValue(*b),
                other => return err(&p, format!("expected a boolean, got {}", short(other))),
            },
            "intValue" | "int_value" => any_value::Value::IntValue(integer(
                val,
                &p,
                i128::from(i64::MIN),
                i128::from(i64::MAX),
            )? as i64),
            "doubleValue" | "double_value" => any_value::Value::DoubleValue(match val {
                Value::Number(n) => match n.as_f64() {
                    Some(f) => f,
                    None => return err(&p, format!("expected a number, got {}", short(val))),
                },
                Value::String(s) => match s.as_str() {
                    "NaN" => f64::NAN,
                    "Infinity" => f64::INFINITY,
                    "-Infinity" => f64::NEG_INFINITY,
                    s => match s.parse::<f64>() {
                        Ok(f) => f,
                        Err(_) => return err(&p, format!("expected a number, got {s:?}")),
                    },
                },
                other => return err(&p, format!("expected a number, got {}", short(other))),
            }),
            "bytesValue" | "bytes_value" => match val {
                Value::String(s) => any_value::Value::BytesValue(decode_base64(s, &p)?),
                other => return err(&p, format!("expected base64, got {}", short(other))),
            },
            "arrayValue" | "array_value" => {
                let a = object(val, &p)?;
                let values = array(a, "values", "values", &p)?
                    .iter()
                    .enumerate()
                    .map(|(i, x)| any_value(x, &format!("{p}.values[{i}]")))
                    .collect::<R<Vec<_>>>()?;
                any_value::Value::ArrayValue(ArrayValue { values })
            }
            "kvlistValue" | "kvlist_value" => {
                let a = object(val, &p)?;
                let values = key_values(array(a, "values", "values", &p)?, &format!("{p}.values"))?;
                any_value::Value::KvlistValue(KeyValueList { values })
            }
            _ => continue,
        };
        out.value = Some(value);
    }
    Ok(out)
}

fn decode_base64(s: &str, path: &str) -> R<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(b) = engine.decode(s) {
            return Ok(b);
        }
    }
    err(path, format!("invalid base64 {:?}", s.chars().take(64).collect::<String>()))
}

fn key_values(items: &[Value], path: &str) -> R<Vec<KeyValue>> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let p = format!("{path}[{i}]");
            let o = object(item, &p)?;
            let key = string(o, "key", "key", &p)?;
            let value = match field(o, "value", "value") {
                Some(v) => Some(any_value(v, &format!("{p}.value"))?),
                None => None,
            };
            Ok(KeyValue { key, value, ..Default::default() })
        })
        .collect()
}

fn severity(o: &Map<String, Value>, path: &str) -> R<i32> {
    match field(o, "severityNumber", "severity_number") {
        None => Ok(0),
        Some(Value::String(s)) if s.starts_with("SEVERITY_NUMBER_") => {
            match SeverityNumber::from_str_name(s) {
                Some(n) => Ok(n as i32),
                None => err(&format!("{path}.severityNumber"), format!("unknown severity {s:?}")),
            }
        }
        Some(v) => int_field(o, "severityNumber", "severity_number", path, 0, i128::from(i32::MAX))
            .map_err(|_| OtlpJsonError::At {
                path: format!("{path}.severityNumber"),
                message: format!("expected a severity number, got {}", short(v)),
            })
            .map(|n| n as i32),
    }
}

fn log_record(v: &Value, path: &str) -> R<LogRecord> {
    let o = object(v, path)?;
    let body = match field(o, "body", "body") {
        Some(b) => Some(any_value(b, &format!("{path}.body"))?),
        None => None,
    };
    Ok(LogRecord {
        time_unix_nano: u64_field(o, "timeUnixNano", "time_unix_nano", path)?,
        observed_time_unix_nano: u64_field(
            o,
            "observedTimeUnixNano",
            "observed_time_unix_nano",
            path,
        )?,
        severity_number: severity(o, path)?,
        severity_text: string(o, "severityText", "severity_text", path)?,
        body,
        attributes: key_values(
            array(o, "attributes", "attributes", path)?,
            &format!("{path}.attributes"),
        )?,
        dropped_attributes_count: u32_field(
            o,
            "droppedAttributesCount",
            "dropped_attributes_count",
            path,
        )?,
        flags: u32_field(o, "flags", "flags", path)?,
        trace_id: hex_id(o, "traceId", "trace_id", path, 16)?,
        span_id: hex_id(o, "spanId", "span_id", path, 8)?,
        event_name: string(o, "eventName", "event_name", path)?,
    })
}

fn scope(v: &Value, path: &str) -> R<InstrumentationScope> {
    let o = object(v, path)?;
    Ok(InstrumentationScope {
        name: string(o, "name", "name", path)?,
        version: string(o, "version", "version", path)?,
        attributes: key_values(
            array(o, "attributes", "attributes", path)?,
            &format!("{path}.attributes"),
        )?,
        dropped_attributes_count: u32_field(
            o,
            "droppedAttributesCount",
            "dropped_attributes_count",
            path,
        )?,
    })
}

/// Parses an OTLP JSON logs body.
pub(crate) fn parse(body: &[u8]) -> R<ExportLogsServiceRequest> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| OtlpJsonError::InvalidJson(e.to_string()))?;
    let o = object(&root, "$")?;
    let mut req = ExportLogsServiceRequest::default();
    for (i, rl) in array(o, "resourceLogs", "resource_logs", "$")?.iter().enumerate() {
        let p = format!("resourceLogs[{i}]");
        let rlo = object(rl, &p)?;
        let resource = match field(rlo, "resource", "resource") {
            Some(r) => {
                let rp = format!("{p}.resource");
                let ro = object(r, &rp)?;
                Some(Resource {
                    attributes: key_values(
                        array(ro, "attributes", "attributes", &rp)?,
                        &format!("{rp}.attributes"),
                    )?,
                    dropped_attributes_count: u32_field(
                        ro,
                        "droppedAttributesCount",
                        "dropped_attributes_count",
                        &rp,
                    )?,
                    ..Default::default()
                })
            }
            None => None,
        };
        let mut scope_logs = Vec::new();
        for (j, sl) in array(rlo, "scopeLogs", "scope_logs", &p)?.iter().enumerate() {
            let sp = format!("{p}.scopeLogs[{j}]");
            let slo = object(sl, &sp)?;
            let scope = match field(slo, "scope", "scope") {
                Some(s) => Some(scope(s, &format!("{sp}.scope"))?),
                None => None,
            };
            let log_records = array(slo, "logRecords", "log_records", &sp)?
                .iter()
                .enumerate()
                .map(|(k, r)| log_record(r, &format!("{sp}.logRecords[{k}]")))
                .collect::<R<Vec<_>>>()?;
            scope_logs.push(ScopeLogs {
                scope,
                log_records,
                schema_url: string(slo, "schemaUrl", "schema_url", &sp)?,
            });
        }
        req.resource_logs.push(ResourceLogs {
            resource,
            scope_logs,
            schema_url: string(rlo, "schemaUrl", "schema_url", &p)?,
        });
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{
      "resourceLogs": [{
        "resource": {"attributes": [
          {"key": "service.name", "value": {"stringValue": "cart"}},
          {"key": "pid", "value": {"intValue": "4711"}},
          {"key": "ratio", "value": {"doubleValue": 0.5}},
          {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"boolValue": true}]}}},
          {"key": "nested", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": 1}}]}}},
          {"key": "raw", "value": {"bytesValue": "AQL/"}},
          {"key": "empty", "value": {}}
        ]},
        "scopeLogs": [{
          "scope": {"name": "lib", "version": "2"},
          "logRecords": [{
            "timeUnixNano": "1700000000000000001",
            "observed_time_unix_nano": 1700000000000000002,
            "severityNumber": "SEVERITY_NUMBER_WARN",
            "severityText": "WARN",
            "body": {"stringValue": "low stock"},
            "traceId": "5B8EFFF798038103D269B633813FC60C",
            "spanId": "eee19b7ec3c1b174",
            "flags": 1,
            "unknownField": {"whatever": [1, 2]}
          }, {"severityNumber": 9, "body": null}]
        }]
      }]
    }"#;

    #[test]
    fn parses_the_otlp_json_mapping() {
        let r = parse(BODY.as_bytes()).unwrap();
        let rl = &r.resource_logs[0];
        let attrs = &rl.resource.as_ref().unwrap().attributes;
        assert_eq!(attrs.len(), 7);
        assert_eq!(attrs[1].value.as_ref().unwrap().value, Some(any_value::Value::IntValue(4711)));
        assert_eq!(
            attrs[5].value.as_ref().unwrap().value,
            Some(any_value::Value::BytesValue(vec![1, 2, 255]))
        );
        assert_eq!(attrs[6].value.as_ref().unwrap().value, None);
        let rec = &rl.scope_logs[0].log_records[0];
        assert_eq!(rec.time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(rec.observed_time_unix_nano, 1_700_000_000_000_000_002);
        assert_eq!(rec.severity_number, 13);
        assert_eq!(rec.trace_id[0], 0x5b);
        assert_eq!(rec.span_id.len(), 8);
        assert_eq!(rec.flags, 1);
        assert_eq!(rl.scope_logs[0].log_records[1].severity_number, 9);
        assert!(rl.scope_logs[0].log_records[1].body.is_none());
        assert!(parse(b"{}").unwrap().resource_logs.is_empty());
        assert!(parse(br#"{"resourceLogs": null}"#).unwrap().resource_logs.is_empty());
    }

    #[test]
    fn rejects_bad_types_with_a_path() {
        let bad = |s: &str| parse(s.as_bytes()).unwrap_err().to_string();
        assert!(bad("").starts_with("otlp json: invalid JSON"));
        assert!(bad("[]").starts_with("otlp json: $: expected an object"));
        assert_eq!(
            bad(r#"{"resourceLogs": {}}"#),
            "otlp json: $.resourceLogs: expected an array, got {}"
        );
        assert_eq!(
            bad(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"soon"}]}]}]}"#),
            "otlp json: resourceLogs[0].scopeLogs[0].logRecords[0].timeUnixNano: expected an integer, got \"soon\""
        );
        assert!(bad(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":-1}]}]}]}"#)
            .contains("out of range"));
        assert_eq!(
            bad(r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"a","value":{"intValue":"x"}}]}}]}"#),
            "otlp json: resourceLogs[0].resource.attributes[0].value.intValue: expected an integer, got \"x\""
        );
        assert!(bad(r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"a","value":{"kvlistValue":"x"}}]}}]}"#)
            .contains("kvlistValue: expected an object"));
        assert!(bad(r#"{"resourceLogs":[{"resource":{"attributes":[{"key":1}]}}]}"#)
            .contains("attributes[0].key: expected a string"));
        assert!(bad(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"xyz"}]}]}]}"#)
            .contains("traceId: expected 32 hex digits"));
        assert!(bad(
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"spanId":"zzzzzzzzzzzzzzzz"}]}]}]}"#
        )
        .contains("invalid hex id"));
        assert!(bad(
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"LOUD"}]}]}]}"#
        )
        .contains("severityNumber"));
        assert!(bad(
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"bytesValue":"%%"}}]}]}]}"#
        )
        .contains("invalid base64"));
        assert!(bad(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"flags":4294967296}]}]}]}"#)
            .contains("out of range"));
        // Deep nesting is refused by the JSON parser's recursion limit, not the stack.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(bad(&deep).starts_with("otlp json: invalid JSON"));
    }
}
