//! Loki's JSON response shapes.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Map, Value};
use skald_logql::engine::{
    result_too_large, EngineError, QueryOutput, QueryResult, ResultEntry, ResultStream, Stats,
};
use skald_model::Labels;

use crate::error::CANCELED_MSG;
use crate::StoreFigures;

/// Formats a sample value the way Go's `strconv.FormatFloat(v, 'f', -1, 64)` does, except
/// that negative zero prints as `0`.
pub fn format_value(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else {
        skald_gocompat::strconv::format_float_f(v)
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

/// How a query was cut up, as `stats.summary` reports it (`splits`, `shards`): Loki's
/// figures, see [`crate::query::shards_per_split`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PlanFigures {
    /// The time splits that ran (0 when the query ran whole).
    pub splits: u64,
    /// The shards that ran, over every split.
    pub shards: u64,
}

/// The `stats` object in Loki's full shape, with the counters Skald tracks filled in.
/// The `stats` object: the engine's summary, and what the query read from the store and
/// the ingesters (`store`; the chunk figures are those of the chunks fetched, as the index
/// describes them).
pub fn stats_json(stats: &Stats, store: &StoreFigures, exec_secs: f64) -> Value {
    planned_stats_json(stats, store, &PlanFigures::default(), exec_secs)
}

/// [`stats_json`] with the query's splits and shards.
pub fn planned_stats_json(
    stats: &Stats,
    store: &StoreFigures,
    plan: &PlanFigures,
    exec_secs: f64,
) -> Value {
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
        s.insert("splits".into(), json!(plan.splits));
        s.insert("shards".into(), json!(plan.shards));
        s.insert("totalPostFilterLines".into(), json!(stats.total_post_filter_lines));
        s.insert(
            "totalStructuredMetadataBytesProcessed".into(),
            json!(stats.total_structured_metadata_bytes_processed),
        );
    }
    let set = |v: &mut Value, path: &[&str], n: u64| {
        let mut at = v;
        for key in path {
            at = &mut at[*key];
        }
        *at = json!(n);
    };
    let chunk = ["querier", "store", "chunk"];
    set(&mut v, &["querier", "store", "totalChunksRef"], store.chunk_refs);
    set(&mut v, &["querier", "store", "totalChunksDownloaded"], store.chunks_downloaded);
    set(&mut v, &[&chunk[..], &["compressedBytes"]].concat(), store.compressed_bytes);
    set(&mut v, &[&chunk[..], &["decompressedBytes"]].concat(), store.decompressed_bytes);
    set(&mut v, &[&chunk[..], &["decompressedLines"]].concat(), store.decompressed_lines);
    // what passed the pipeline, less what the ingesters sent (they send only such lines)
    let store_post_filter = stats.total_post_filter_lines.saturating_sub(store.ingester_lines);
    set(&mut v, &[&chunk[..], &["postFilterLines"]].concat(), store_post_filter);
    set(&mut v, &["index", "totalChunks"], store.chunk_refs);
    set(&mut v, &["ingester", "totalReached"], store.ingester_requests);
    set(&mut v, &["ingester", "totalBatches"], store.ingester_requests);
    set(&mut v, &["ingester", "totalChunksMatched"], store.ingester_streams);
    set(&mut v, &["ingester", "totalLinesSent"], store.ingester_lines);
    let head = ["ingester", "store", "chunk"];
    set(&mut v, &[&head[..], &["headChunkLines"]].concat(), store.ingester_lines);
    set(&mut v, &[&head[..], &["headChunkBytes"]].concat(), store.ingester_bytes);
    v
}

/// One log entry as Loki writes it: `[ts, line]`, or with categorize-labels
/// `[ts, line, {"structuredMetadata": .., "parsed": ..}]`.
fn entry_json(e: &ResultEntry, categorize: bool) -> Value {
    if categorize {
        let mut meta = Map::new();
        if !e.structured_metadata.is_empty() {
            meta.insert("structuredMetadata".into(), labels_json(&e.structured_metadata));
        }
        if !e.parsed.is_empty() {
            meta.insert("parsed".into(), labels_json(&e.parsed));
        }
        json!([e.ts.to_string(), e.line.to_str_lossy(), Value::Object(meta)])
    } else {
        json!([e.ts.to_string(), e.line.to_str_lossy()])
    }
}

/// Log streams as Loki writes them: `{"stream": {..}, "values": [[ts, line], ..]}`, or with
/// categorize-labels `[ts, line, {"structuredMetadata": .., "parsed": ..}]`.
pub fn streams_json(streams: &[ResultStream], categorize: bool) -> Vec<Value> {
    streams
        .iter()
        .map(|s| {
            let values: Vec<Value> = s.entries.iter().map(|e| entry_json(e, categorize)).collect();
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
                .map(|e| json!({"ts": rfc3339_nano(e.ts), "line": e.line.to_str_lossy()}))
                .collect();
            json!({"labels": s.labels.to_string(), "entries": entries})
        })
        .collect()
}

/// A timestamp as Go's `time.RFC3339Nano` in UTC (trailing zeros of the fraction dropped).
pub use skald_gocompat::time::rfc3339_nano;

/// The `data` object of a query answer.
pub fn query_data(
    out: &QueryOutput,
    store: &StoreFigures,
    plan: &PlanFigures,
    categorize: bool,
    exec_secs: f64,
) -> Value {
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
    data.insert("stats".into(), planned_stats_json(&out.stats, store, plan, exec_secs));
    Value::Object(data)
}

/// How many values are written between two looks at the cancel flag and the size cap.
const CHECK_EVERY: usize = 64;

/// Writes a query answer as it goes, failing as soon as the query is canceled or the body
/// passes the response size cap (`max_bytes`, 0 = none).
struct BodyWriter<'a> {
    buf: Vec<u8>,
    max_bytes: usize,
    cancel: &'a AtomicBool,
    n: usize,
}

impl BodyWriter<'_> {
    fn raw(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn value<T: serde::Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EngineError> {
        serde_json::to_writer(&mut self.buf, v)
            .map_err(|e| EngineError::Execution(format!("cannot write the answer: {e}")))?;
        self.n += 1;
        if self.n.is_multiple_of(CHECK_EVERY) {
            self.check()?;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), EngineError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Canceled(CANCELED_MSG.to_string()));
        }
        if self.max_bytes > 0 && self.buf.len() > self.max_bytes {
            return Err(result_too_large(self.max_bytes));
        }
        Ok(())
    }
}

/// The whole answer of `/query` and `/query_range` (`{"data": .., "status": "success"}`,
/// the same bytes as serialising [`query_data`]), written directly: streams and matrices
/// never exist as a `serde_json::Value` tree, a canceled query stops writing, and an answer
/// larger than `max_bytes` (0 = no cap) fails with [`result_too_large`] once it passes it.
pub fn query_body(
    out: &QueryOutput,
    store: &StoreFigures,
    plan: &PlanFigures,
    categorize: bool,
    exec_secs: f64,
    max_bytes: usize,
    cancel: &AtomicBool,
) -> Result<Vec<u8>, EngineError> {
    let mut w = BodyWriter { buf: Vec::new(), max_bytes, cancel, n: 0 };
    match &out.result {
        QueryResult::Streams(streams) => {
            w.raw("{\"data\":{");
            if categorize {
                w.raw("\"encodingFlags\":[\"categorize-labels\"],");
            }
            w.raw("\"result\":[");
            for (i, s) in streams.iter().enumerate() {
                w.raw(if i == 0 { "{\"stream\":" } else { ",{\"stream\":" });
                w.value(&labels_json(&s.labels))?;
                w.raw(",\"values\":[");
                for (j, e) in s.entries.iter().enumerate() {
                    if j > 0 {
                        w.raw(",");
                    }
                    w.value(&entry_json(e, categorize))?;
                }
                w.raw("]}");
            }
            w.raw("],\"resultType\":\"streams\",\"stats\":");
        }
        QueryResult::Matrix(series) => {
            w.raw("{\"data\":{\"result\":[");
            for (i, s) in series.iter().enumerate() {
                w.raw(if i == 0 { "{\"metric\":" } else { ",{\"metric\":" });
                w.value(&labels_json(&s.labels))?;
                w.raw(",\"values\":[");
                for (j, p) in s.samples.iter().enumerate() {
                    if j > 0 {
                        w.raw(",");
                    }
                    w.value(&(ts_seconds(p.ts), format_value(p.value)))?;
                }
                w.raw("]}");
            }
            w.raw("],\"resultType\":\"matrix\",\"stats\":");
        }
        QueryResult::Vector(_) | QueryResult::Scalar { .. } => {
            // small: at most one value per series
            let data = query_data(out, store, plan, categorize, exec_secs);
            let v = json!({"status": "success", "data": data});
            w.value(&v)?;
            w.check()?;
            return Ok(w.buf);
        }
    }
    w.value(&planned_stats_json(&out.stats, store, plan, exec_secs))?;
    w.raw("},\"status\":\"success\"}");
    w.check()?;
    Ok(w.buf)
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
        assert_eq!(format_value(-0.0), "0");
    }

    fn streams_output(lines: usize, line: &str) -> QueryOutput {
        let entry = |i: usize| ResultEntry {
            ts: 1_700_000_000_000_000_000 + i as i64,
            line: line.into(),
            structured_metadata: Labels::parse(r#"{trace="t\"1"}"#).unwrap_or_default(),
            parsed: Labels::parse(r#"{level="info"}"#).unwrap_or_default(),
        };
        let stream = |app: &str| ResultStream {
            labels: Labels::parse(&format!(r#"{{app="{app}"}}"#)).unwrap_or_default(),
            entries: (0..lines).map(entry).collect(),
        };
        QueryOutput {
            result: QueryResult::Streams(vec![stream("a"), stream("b")]),
            stats: Stats { total_lines_processed: 7, ..Stats::default() },
        }
    }

    fn plan() -> PlanFigures {
        PlanFigures { splits: 3, shards: 6 }
    }

    fn as_value(out: &QueryOutput, categorize: bool) -> Vec<u8> {
        let v = json!({"status": "success", "data": query_data(out, &StoreFigures::default(), &plan(), categorize, 0.5)});
        serde_json::to_vec(&v).unwrap_or_default()
    }

    #[test]
    fn body_is_the_bytes_of_the_value_answer() {
        let no = AtomicBool::new(false);
        let matrix = QueryOutput {
            result: QueryResult::Matrix(vec![
                skald_logql::engine::Series {
                    labels: Labels::parse(r#"{a="1"}"#).unwrap_or_default(),
                    samples: vec![
                        skald_model::Sample { ts: 1_000_000_000, value: 0.5 },
                        skald_model::Sample { ts: 2_000_000_000, value: f64::NAN },
                    ],
                },
                skald_logql::engine::Series { labels: Labels::default(), samples: vec![] },
            ]),
            stats: Stats::default(),
        };
        let scalar = QueryOutput {
            result: QueryResult::Scalar { ts: 1_000_000_000, value: 2.0 },
            stats: Stats::default(),
        };
        let empty = QueryOutput { result: QueryResult::Streams(vec![]), stats: Stats::default() };
        for out in [streams_output(100, "a \"quoted\" line\n"), matrix, scalar, empty] {
            for categorize in [false, true] {
                let body =
                    query_body(&out, &StoreFigures::default(), &plan(), categorize, 0.5, 0, &no)
                        .unwrap_or_default();
                assert_eq!(
                    String::from_utf8_lossy(&body),
                    String::from_utf8_lossy(&as_value(&out, categorize))
                );
            }
        }
    }

    #[test]
    fn lines_that_are_not_utf8_show_one_replacement_character_per_byte() {
        // Go's encoding/json: every byte of an invalid sequence is one U+FFFD (Rust's
        // from_utf8_lossy would write one for `\xe2\x82`)
        let e = ResultEntry {
            ts: 5,
            line: b"a\xe2\x82b \xff".to_vec().into(),
            structured_metadata: Labels::default(),
            parsed: Labels::default(),
        };
        assert_eq!(entry_json(&e, false), json!(["5", "a\u{FFFD}\u{FFFD}b \u{FFFD}"]));
        let s = ResultStream { labels: Labels::default(), entries: vec![e] };
        assert_eq!(
            legacy_streams_json(&[s])[0]["entries"][0]["line"],
            json!("a\u{FFFD}\u{FFFD}b \u{FFFD}")
        );
    }

    #[test]
    fn body_past_the_cap_fails_and_a_canceled_one_stops() {
        let out = streams_output(1000, &"x".repeat(1000));
        let full = as_value(&out, false).len();
        let no = AtomicBool::new(false);
        assert!(query_body(&out, &StoreFigures::default(), &plan(), false, 0.0, full, &no).is_ok());
        let err =
            query_body(&out, &StoreFigures::default(), &plan(), false, 0.0, full / 2, &no).err();
        let Some(EngineError::Limit(msg)) = err else { panic!("not a limit error: {err:?}") };
        assert!(msg.contains("skald_max_query_response_size"), "{msg}");
        let yes = AtomicBool::new(true);
        let err = query_body(&out, &StoreFigures::default(), &plan(), false, 0.0, 0, &yes).err();
        assert!(matches!(err, Some(EngineError::Canceled(_))), "{err:?}");
    }
}
