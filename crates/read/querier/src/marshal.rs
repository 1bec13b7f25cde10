//! Loki's JSON response shapes.

use serde_json::{json, Map, Value};
use skald_logql::engine::{QueryOutput, QueryResult, ResultStream, Stats};
use skald_model::Labels;

/// Formats a sample value the way Go's `strconv.FormatFloat(v, 'f', -1, 64)` does.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v == 0.0 {
        "0".to_string()
    } else {
        format!("{v}")
    }
}

/// A Prometheus-style timestamp: seconds as a JSON number with millisecond precision.
pub fn ts_seconds(ns: i64) -> Value {
    let ms = ns.div_euclid(1_000_000);
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        serde_json::Number::from_f64(ms as f64 / 1000.0).map(Value::Number).unwrap_or(Value::Null)
    }
}

/// Labels as a JSON object.
pub fn labels_json(labels: &Labels) -> Value {
    let mut m = Map::new();
    for l in labels {
        m.insert(l.name.clone(), Value::String(l.value.clone()));
    }
    Value::Object(m)
}

static STATS_TEMPLATE: &str = include_str!("stats_template.json");

/// The `stats` object in Loki's full shape, with the counters Skald tracks filled in.
pub fn stats_json(stats: &Stats, exec_secs: f64) -> Value {
    let mut v: Value = serde_json::from_str(STATS_TEMPLATE).unwrap_or_else(|_| json!({}));
    let lines = stats.total_lines_processed;
    let bytes = stats.total_bytes_processed;
    let per_sec = |n: u64| if exec_secs > 0.0 { (n as f64 / exec_secs) as u64 } else { 0 };
    if let Some(s) = v.get_mut("summary").and_then(Value::as_object_mut) {
        s.insert("bytesProcessedPerSecond".into(), json!(per_sec(bytes)));
        s.insert("linesProcessedPerSecond".into(), json!(per_sec(lines)));
        s.insert("totalBytesProcessed".into(), json!(bytes));
        s.insert("totalLinesProcessed".into(), json!(lines));
        s.insert("execTime".into(), json!(exec_secs));
        s.insert("totalEntriesReturned".into(), json!(stats.total_entries_returned));
        s.insert("totalPostFilterLines".into(), json!(stats.total_post_filter_lines));
        s.insert(
            "totalStructuredMetadataBytesProcessed".into(),
            json!(stats.total_structured_metadata_bytes_processed),
        );
    }
    v
}

/// Log streams as Loki writes them: `{"stream": {..}, "values": [[ts, line], ..]}`, or with
/// categorize-labels `[ts, line, {"structuredMetadata": .., "parsed": ..}]`.
pub fn streams_json(streams: &[ResultStream], categorize: bool) -> Vec<Value> {
    streams
        .iter()
        .map(|s| {
            let values: Vec<Value> = s
                .entries
                .iter()
                .map(|e| {
                    if categorize {
                        let mut meta = Map::new();
                        if !e.structured_metadata.is_empty() {
                            meta.insert(
                                "structuredMetadata".into(),
                                labels_json(&e.structured_metadata),
                            );
                        }
                        if !e.parsed.is_empty() {
                            meta.insert("parsed".into(), labels_json(&e.parsed));
                        }
                        json!([e.ts.to_string(), e.line, Value::Object(meta)])
                    } else {
                        json!([e.ts.to_string(), e.line])
                    }
                })
                .collect();
            json!({"stream": labels_json(&s.labels), "values": values})
        })
        .collect()
}

/// Log streams in the legacy (`/api/prom`) shape: `{"labels": "{a=\"b\"}", "entries":
/// [{"ts": "<RFC3339Nano>", "line": ..}]}`.
pub fn legacy_streams_json(streams: &[ResultStream]) -> Vec<Value> {
    streams
        .iter()
        .map(|s| {
            let entries: Vec<Value> = s
                .entries
                .iter()
                .map(|e| json!({"ts": rfc3339_nano(e.ts), "line": e.line}))
                .collect();
            json!({"labels": s.labels.to_string(), "entries": entries})
        })
        .collect()
}

/// A timestamp as Go's `time.RFC3339Nano` in UTC (trailing zeros of the fraction dropped).
pub fn rfc3339_nano(ns: i64) -> String {
    let (secs, nanos) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32);
    let Some(t) = chrono::DateTime::from_timestamp(secs, 0) else {
        return ns.to_string();
    };
    let mut out = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// The `data` object of a query answer.
pub fn query_data(out: &QueryOutput, categorize: bool, exec_secs: f64) -> Value {
    let mut data = Map::new();
    match &out.result {
        QueryResult::Streams(streams) => {
            data.insert("resultType".into(), json!("streams"));
            if categorize {
                data.insert("encodingFlags".into(), json!(["categorize-labels"]));
            }
            let result = streams_json(streams, categorize);
            data.insert("result".into(), Value::Array(result));
        }
        QueryResult::Vector(samples) => {
            data.insert("resultType".into(), json!("vector"));
            let result: Vec<Value> = samples
                .iter()
                .map(|s| {
                    json!({"metric": labels_json(&s.labels), "value": [ts_seconds(s.ts), format_value(s.value)]})
                })
                .collect();
            data.insert("result".into(), Value::Array(result));
        }
        QueryResult::Matrix(series) => {
            data.insert("resultType".into(), json!("matrix"));
            let result: Vec<Value> = series
                .iter()
                .map(|s| {
                    let values: Vec<Value> = s
                        .samples
                        .iter()
                        .map(|p| json!([ts_seconds(p.ts), format_value(p.value)]))
                        .collect();
                    json!({"metric": labels_json(&s.labels), "values": values})
                })
                .collect();
            data.insert("result".into(), Value::Array(result));
        }
        QueryResult::Scalar { ts, value } => {
            data.insert("resultType".into(), json!("scalar"));
            // Loki writes an instant scalar's timestamp in milliseconds.
            data.insert("result".into(), json!([ts.div_euclid(1_000_000), format_value(*value)]));
        }
    }
    data.insert("stats".into(), stats_json(&out.stats, exec_secs));
    Value::Object(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_like_go() {
        assert_eq!(format_value(600.0), "600");
        assert_eq!(format_value(0.016666666666666666), "0.016666666666666666");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(ts_seconds(1793491200000000000), json!(1793491200));
        assert_eq!(ts_seconds(1793491200500000000), json!(1793491200.5));
        assert_eq!(rfc3339_nano(1793491200500000000), "2026-11-01T00:00:00.5Z");
        assert_eq!(rfc3339_nano(1793491200000000001), "2026-11-01T00:00:00.000000001Z");
        assert_eq!(rfc3339_nano(1793491200000000000), "2026-11-01T00:00:00Z");
    }
}
