//! Go JSON: [`encode`] is `encoding/json`'s encoder (`json.Marshal` of strings and
//! `float64`s; its two routines are re-exported here). The rest is JSON scanning, once per Go library whose quirks Loki shows. Each scanner matches a
//! different library (or a different use of one), so they are kept apart, side by side, each
//! named after what it follows; what their users build on top (LogQL labels, label
//! sanitising, detected-field types, OTLP messages) stays in the users' crates.
//!
//! | scanner | follows | style | tolerance | error texts | used by |
//! |---|---|---|---|---|---|
//! | [`jsonparser`] | buger/jsonparser (`Get`, `ObjectEach`, `ArrayEach`, `EachKey`, `Unescape`), as Loki's `\| json`, `\| json a="b.c"` and `\| unpack` call it | callbacks over byte offsets | lenient: fields before a syntax error stay extracted; scalars judged by their first byte | jsonparser's (`Malformed JSON error`, `Value is string, but can't find closing '"' symbol`, …) | logql `log/json/` |
//! | [`jsoniter`] | json-iterator/go's `Iterator` (Loki decodes push bodies with it) hosting Loki's jsonparser-based `UnmarshalJSON` of streams and entries | pull cursor (`begin_object`, `member_key`, `next_member`, `skip_value`, …) | strict: every syntax error is one; nesting capped at 512 | jsonparser's per value, framed by jsoniter's `error found in #N byte of ...|…|...` ([`jsoniter::error_context`]) | distributor JSON push decoder, `detected_level` JSON walk, Elasticsearch bulk rewriting |
//! | [`jsonparser_paths`] | jsonparser's `ObjectEach` as Loki's `\| json` walks it to record each field's JSON path (Logs Drilldown `jsonPath`) | visitor over key paths in document order | lenient: stops at the first error; keys decoded by the caller; string values left escaped; scalars unvalidated; depth cap from the caller | none | querier `detected.rs` (detected fields, `jsonPath`), Drain |
//!
//! Not here: the OTLP/JSON decoder (`crates/write/distributor/src/otlp_protojson.rs`)
//! follows the OTLP/HTTP JSON mapping (protojson with OTLP's exceptions: hex `traceId` and
//! `spanId`, integers as strings or numbers, enum names, camelCase or proto field names) as
//! the collector's pdata unmarshaler accepts it. It has no tokenizer of its own: it parses with
//! serde_json and maps `serde_json::Value`s straight onto the prost OTLP types of
//! `skald-proto`, so its core is its crate's types and it stays in the distributor.

pub mod encode;
pub mod jsoniter;
pub mod jsonparser;
pub mod jsonparser_paths;

pub use encode::{format_float, write_string};
