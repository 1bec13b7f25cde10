//! `POST /otlp/v1/logs`: OTLP/HTTP log export requests, mapped to Loki streams the way Loki
//! maps them (`docs/sources/shared/otel.md`; behaviour read from Loki's Apache-2.0
//! `pkg/loghttp/push/otlp.go`, not ported).
//!
//! - **Body.** `Content-Type` `application/x-protobuf` (an `ExportLogsServiceRequest`) or
//!   `application/json` (OTLP's JSON mapping, [`crate::otlp_protojson`]); any other type is a 400.
//!   `Content-Encoding` none, `gzip`, `zstd` or `lz4` (frame format); decompression is capped
//!   at `max_decompressed_size` (413) and the body as received at `max_recv_msg_size` (413).
//! - **Index labels.** Resource attributes whose rule says `index_label` (by default Loki's
//!   list, [`crate::config::DEFAULT_OTLP_INDEX_LABEL_ATTRIBUTES`]), with names normalized
//!   (`service.name` → `service_name`). `service_name` is `service.name`, else the first indexed
//!   attribute named in `discover_service_name`, else `unknown_service`. Log attributes with
//!   `index_label` rules (and `severity_text` with `severity_text_as_label`) split the stream.
//! - **Structured metadata**, in this order: the log attributes, `observed_timestamp` (when the
//!   record has both timestamps), `severity_number` (when set), `severity_text` (when set),
//!   `dropped_attributes_count`, `flags` (when non-zero), `trace_id`, `span_id` (lower-case hex,
//!   when set); then every other resource attribute; then the scope attributes, `scope_name`,
//!   `scope_version` and `scope_dropped_attributes_count`. Nested (map) values are flattened
//!   into `parent_child` names; other non-string values are stringified like the OTel
//!   collector's `AsString` (JSON for arrays and maps, base64 for bytes).
//! - **Line**: the body, stringified the same way (a map body becomes its JSON, keys sorted).
//! - **Timestamp**: `time_unix_nano`, else `observed_time_unix_nano`, else the time of arrival.
//! - `detected_level` then comes from `severity_number` (see `level.rs`), like Loki.
//!
//! The resulting streams go through the normal push path (validation, limits, rate limits).

use std::collections::HashMap;
use std::io::Read;

use base64::Engine as _;
use bytes::Bytes;
use prost::Message as _;
use regex::Regex;
use skald_common::limits::Limits;
use skald_common::otlp::{anchored, OtlpAction, OtlpAttributesConfig, OtlpConfig};
use skald_gocompat::json;
use skald_model::labels::go_quote;
use skald_model::{Entry, Label};
use skald_proto::otlp::collector::ExportLogsServiceRequest;
use skald_proto::otlp::common::{any_value, AnyValue, KeyValue};

use crate::decode::{
    parse_media_type, read_capped, too_large, DecodeError, DecodeLimits, RawStream,
};
use crate::error::ConfigError;
use crate::{normalize_metadata_name, Distributor, PushError, PushOutcome, SERVICE_NAME_LABEL};

const APPLICATION_JSON: &str = "application/json";
const APPLICATION_PROTOBUF: &str = "application/x-protobuf";

/// Which encoding a request used; the answer uses the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpFormat {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl OtlpFormat {
    /// The format a `Content-Type` asks for (JSON only for `application/json`); used to pick
    /// the encoding of an answer even when the body could not be decoded.
    pub fn from_content_type(content_type: Option<&str>) -> OtlpFormat {
        match content_type.map(parse_media_type) {
            Some(Ok(t)) if t == APPLICATION_JSON => OtlpFormat::Json,
            _ => OtlpFormat::Protobuf,
        }
    }

    /// The `Content-Type` of answers in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            OtlpFormat::Protobuf => APPLICATION_PROTOBUF,
            OtlpFormat::Json => APPLICATION_JSON,
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error answers.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The body of a successful answer: an empty `ExportLogsServiceResponse`.
pub fn success_body(format: OtlpFormat) -> Vec<u8> {
    match format {
        OtlpFormat::Protobuf => Vec::new(),
        OtlpFormat::Json => b"{}".to_vec(),
    }
}

/// The HTTP status OTLP clients get for a push error: Loki's status, except that a 500 is
/// answered as 503 (OTLP clients retry 503, not 500).
pub fn error_status(e: &PushError) -> u16 {
    match e.status_code() {
        500 => 503,
        s => s,
    }
}

/// The body of an error answer: a `google.rpc.Status` in the request's encoding.
pub fn error_body(format: OtlpFormat, http_status: u16, message: &str) -> Vec<u8> {
    // gRPC codes: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL.
    let code = match http_status {
        400 | 422 => 3,
        413 | 429 => 8,
        503 => 14,
        _ => 13,
    };
    match format {
        OtlpFormat::Protobuf => RpcStatus { code, message: message.to_string() }.encode_to_vec(),
        OtlpFormat::Json => {
            serde_json::json!({ "code": code, "message": message }).to_string().into_bytes()
        }
    }
}

/// Decompresses (capped) and decodes an OTLP/HTTP logs body.
pub fn decode_otlp_body(
    body: &[u8],
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    limits: &DecodeLimits,
) -> Result<(ExportLogsServiceRequest, OtlpFormat), DecodeError> {
    let max_recv = limits.max_recv_msg_size;
    if max_recv > 0 && body.len() as u64 > max_recv {
        return Err(too_large("message size too large", body.len() as u64, max_recv));
    }
    let cap = limits.max_decompressed_size;
    let decompressed: Option<Vec<u8>> = match content_encoding.unwrap_or("").trim() {
        "" | "identity" => None,
        enc if enc.eq_ignore_ascii_case("gzip") => {
            if body.len() < 2 || body[0] != 0x1f || body[1] != 0x8b {
                return Err(DecodeError::Invalid("gzip: invalid header".to_string()));
            }
            Some(read_capped(flate2::read::MultiGzDecoder::new(body), cap)?)
        }
        enc if enc.eq_ignore_ascii_case("zstd") => {
            let dec = zstd::stream::read::Decoder::new(body)
                .map_err(|e| DecodeError::Invalid(format!("zstd: {e}")))?;
            Some(read_capped_named(dec, cap, "zstd")?)
        }
        enc if enc.eq_ignore_ascii_case("lz4") => {
            Some(read_capped_named(lz4_flex::frame::FrameDecoder::new(body), cap, "lz4")?)
        }
        other => {
            return Err(DecodeError::Invalid(format!(
                "Content-Encoding {} not supported (supported: gzip, zstd, lz4)",
                go_quote(other)
            )))
        }
    };
    let data: &[u8] = decompressed.as_deref().unwrap_or(body);
    let raw_type = content_type.unwrap_or("");
    let media = parse_media_type(raw_type).map_err(|e| DecodeError::Invalid(e.to_string()))?;
    match media.as_str() {
        APPLICATION_PROTOBUF => ExportLogsServiceRequest::decode(data)
            .map(|r| (r, OtlpFormat::Protobuf))
            .map_err(|e| DecodeError::Invalid(format!("proto: {e}"))),
        APPLICATION_JSON => crate::otlp_protojson::parse(data)
            .map(|r| (r, OtlpFormat::Json))
            .map_err(|e| DecodeError::Invalid(e.to_string())),
        _ => Err(DecodeError::Invalid(format!("content type: {raw_type} is not supported"))),
    }
}

/// [`read_capped`] for decoders whose errors are not flate's: the error names the codec.
fn read_capped_named<R: Read>(r: R, cap: u64, codec: &str) -> Result<Vec<u8>, DecodeError> {
    read_capped(r, cap).map_err(|e| match e {
        DecodeError::Invalid(msg) => {
            let msg = msg
                .strip_prefix("flate: corrupt input (")
                .map_or(msg.as_str(), |m| m.strip_suffix(')').unwrap_or(m));
            DecodeError::Invalid(format!("{codec}: corrupt input ({msg})"))
        }
        other => other,
    })
}

// ---------------------------------------------------------------------------------------------
// Attribute rules

struct Rule {
    action: OtlpAction,
    attributes: Vec<String>,
    regex: Option<Regex>,
}

impl Rule {
    fn compile(c: &OtlpAttributesConfig) -> Result<Rule, ConfigError> {
        let regex = match &c.regex {
            Some(re) => Some(Regex::new(&anchored(re)).map_err(|e| ConfigError::OtlpRegex {
                regex: re.clone(),
                message: e.to_string(),
            })?),
            None => None,
        };
        Ok(Rule { action: c.action, attributes: c.attributes.clone(), regex })
    }

    fn matches(&self, name: &str) -> bool {
        self.regex.as_ref().is_some_and(|r| r.is_match(name))
            || self.attributes.iter().any(|a| a == name)
    }
}

fn first_action(rules: &[Rule], name: &str) -> OtlpAction {
    rules.iter().find(|r| r.matches(name)).map_or(OtlpAction::StructuredMetadata, |r| r.action)
}

/// A tenant's compiled `otlp_config`.
pub struct OtlpRules {
    resource: Vec<Rule>,
    scope: Vec<Rule>,
    log: Vec<Rule>,
    severity_text_as_label: bool,
}

impl std::fmt::Debug for OtlpRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpRules").finish_non_exhaustive()
    }
}

impl OtlpRules {
    /// No rules at all: every attribute becomes structured metadata.
    pub(crate) fn empty() -> OtlpRules {
        OtlpRules {
            resource: Vec::new(),
            scope: Vec::new(),
            log: Vec::new(),
            severity_text_as_label: false,
        }
    }

    /// Compiles `config`; `defaults` is the distributor's list of resource attributes indexed
    /// unless `ignore_defaults` is set.
    pub fn new(defaults: &[String], config: &OtlpConfig) -> Result<OtlpRules, ConfigError> {
        config.validate().map_err(ConfigError::Otlp)?;
        let compile = |rules: &[OtlpAttributesConfig]| -> Result<Vec<Rule>, ConfigError> {
            rules.iter().map(Rule::compile).collect()
        };
        let mut resource = Vec::new();
        if !config.resource_attributes.ignore_defaults {
            resource.push(Rule {
                action: OtlpAction::IndexLabel,
                attributes: defaults.to_vec(),
                regex: None,
            });
        }
        resource.extend(compile(&config.resource_attributes.attributes_config)?);
        Ok(OtlpRules {
            resource,
            scope: compile(&config.scope_attributes)?,
            log: compile(&config.log_attributes)?,
            severity_text_as_label: config.severity_text_as_label,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Value stringification (the OTel collector's `pcommon.Value.AsString`)

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Writes `v` as Go's `json.Marshal(v.AsRaw())` would; `None` when Go's marshal fails (a NaN or
/// infinite double anywhere inside).
fn go_json(out: &mut String, v: Option<&any_value::Value>) -> Option<()> {
    match v {
        None => out.push_str("null"),
        Some(any_value::Value::StringValue(s)) => json::write_string(out, s),
        Some(any_value::Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(any_value::Value::IntValue(i)) => out.push_str(&i.to_string()),
        Some(any_value::Value::DoubleValue(d)) => {
            if !d.is_finite() {
                return None;
            }
            out.push_str(&json::format_float(*d));
        }
        Some(any_value::Value::BytesValue(b)) => json::write_string(out, &b64(b)),
        Some(any_value::Value::ArrayValue(a)) => {
            out.push('[');
            for (i, x) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(out, x.value.as_ref())?;
            }
            out.push(']');
        }
        Some(any_value::Value::KvlistValue(kv)) => {
            // A Go map: the last of duplicate keys wins, keys are written sorted.
            let mut m: std::collections::BTreeMap<&str, Option<&any_value::Value>> =
                std::collections::BTreeMap::new();
            for e in &kv.values {
                m.insert(e.key.as_str(), e.value.as_ref().and_then(|v| v.value.as_ref()));
            }
            out.push('{');
            for (i, (k, v)) in m.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json::write_string(out, k);
                out.push(':');
                go_json(out, v)?;
            }
            out.push('}');
        }
        // Dictionary references (profiles only) carry no value for logs.
        Some(any_value::Value::StringValueStrindex(_)) => out.push_str("null"),
    }
    Some(())
}

/// `pcommon.Value.AsString`: strings as they are, numbers and booleans in Go's formatting,
/// bytes in base64, arrays and maps as JSON, an empty value as "".
pub fn value_as_string(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(any_value::Value::StringValueStrindex(_)) => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => {
            if d.is_finite() {
                json::format_float(*d)
            } else {
                let g = if d.is_nan() {
                    "NaN"
                } else if *d > 0.0 {
                    "+Inf"
                } else {
                    "-Inf"
                };
                format!("json: unsupported value: {g}")
            }
        }
        Some(any_value::Value::BytesValue(b)) => b64(b),
        Some(other) => {
            let mut s = String::new();
            match go_json(&mut s, Some(other)) {
                Some(()) => s,
                None => String::new(),
            }
        }
    }
}

/// Flattens one attribute into `(normalized name, value)` pairs: a map value becomes one pair
/// per leaf (`parent_child`); every other value one pair. Names that normalize to nothing
/// (empty keys) are skipped.
fn flatten(key: &str, v: Option<&AnyValue>, prefix: &str, out: &mut Vec<Label>) {
    let joined = if prefix.is_empty() { key.to_string() } else { format!("{prefix}_{key}") };
    let Ok(name) = normalize_metadata_name(&joined) else { return };
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::KvlistValue(kv)) => {
            for e in &kv.values {
                flatten(&e.key, e.value.as_ref(), &name, out);
            }
        }
        _ => out.push(Label::new(name, value_as_string(v))),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn push_label(labels: &mut Vec<Label>, l: Label) {
    match labels.iter_mut().find(|x| x.name == l.name) {
        Some(x) => x.value = l.value,
        None => labels.push(l),
    }
}

fn label_string(labels: &[Label]) -> String {
    let mut sorted: Vec<&Label> = labels.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut s = String::from("{");
    for (i, l) in sorted.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&l.name);
        s.push('=');
        s.push_str(&go_quote(&l.value));
    }
    s.push('}');
    s
}

/// Streams grouped by label string, in first-seen order.
#[derive(Default)]
struct Grouped {
    index: HashMap<String, usize>,
    streams: Vec<RawStream>,
}

impl Grouped {
    fn push(&mut self, labels: String, e: Entry) {
        let i = match self.index.get(&labels) {
            Some(&i) => i,
            None => {
                self.streams.push(RawStream { labels: labels.clone(), entries: Vec::new() });
                self.index.insert(labels, self.streams.len() - 1);
                self.streams.len() - 1
            }
        };
        self.streams[i].entries.push(e);
    }
}

/// Maps an export request to raw streams (Loki's default mapping, adjusted by `rules`).
/// `discover_service_name` is `limits_config.discover_service_name`; `now_ns` stamps records
/// without any timestamp.
pub fn otlp_to_streams(
    req: ExportLogsServiceRequest,
    rules: &OtlpRules,
    discover_service_name: &[String],
    now_ns: i64,
) -> Vec<RawStream> {
    let mut out = Grouped::default();
    for rl in req.resource_logs {
        let res_attrs: Vec<KeyValue> = rl.resource.map(|r| r.attributes).unwrap_or_default();
        let mut stream_labels: Vec<Label> = Vec::new();
        let mut res_sm: Vec<Label> = Vec::new();
        let discover = !discover_service_name.is_empty();
        let mut has_service_name = res_attrs
            .iter()
            .any(|kv| kv.key == "service.name" && !value_as_string(kv.value.as_ref()).is_empty());
        for kv in &res_attrs {
            let action = first_action(&rules.resource, &kv.key);
            if action == OtlpAction::Drop {
                continue;
            }
            let mut flat = Vec::new();
            flatten(&kv.key, kv.value.as_ref(), "", &mut flat);
            match action {
                OtlpAction::IndexLabel => {
                    for l in flat {
                        if !has_service_name && discover && discover_service_name.contains(&l.name)
                        {
                            push_label(
                                &mut stream_labels,
                                Label::new(SERVICE_NAME_LABEL, l.value.clone()),
                            );
                            has_service_name = true;
                        }
                        push_label(&mut stream_labels, l);
                    }
                }
                _ => res_sm.extend(flat),
            }
        }
        if !has_service_name && discover {
            push_label(&mut stream_labels, Label::new(SERVICE_NAME_LABEL, crate::UNKNOWN_SERVICE));
        }
        let labels_str = label_string(&stream_labels);

        for sl in rl.scope_logs {
            let mut scope_sm: Vec<Label> = Vec::new();
            if let Some(scope) = &sl.scope {
                for kv in &scope.attributes {
                    if first_action(&rules.scope, &kv.key) == OtlpAction::StructuredMetadata {
                        flatten(&kv.key, kv.value.as_ref(), "", &mut scope_sm);
                    }
                }
                if !scope.name.is_empty() {
                    scope_sm.push(Label::new("scope_name", scope.name.clone()));
                }
                if !scope.version.is_empty() {
                    scope_sm.push(Label::new("scope_version", scope.version.clone()));
                }
                if scope.dropped_attributes_count != 0 {
                    scope_sm.push(Label::new(
                        "scope_dropped_attributes_count",
                        scope.dropped_attributes_count.to_string(),
                    ));
                }
            }
            for rec in sl.log_records {
                let mut sm: Vec<Label> = Vec::new();
                let mut log_labels: Vec<Label> = Vec::new();
                for kv in &rec.attributes {
                    let action = first_action(&rules.log, &kv.key);
                    match action {
                        OtlpAction::Drop => {}
                        OtlpAction::StructuredMetadata => {
                            flatten(&kv.key, kv.value.as_ref(), "", &mut sm)
                        }
                        OtlpAction::IndexLabel => {
                            let mut flat = Vec::new();
                            flatten(&kv.key, kv.value.as_ref(), "", &mut flat);
                            for l in flat {
                                push_label(&mut log_labels, l);
                            }
                        }
                    }
                }
                if rec.time_unix_nano != 0 && rec.observed_time_unix_nano != 0 {
                    sm.push(Label::new(
                        "observed_timestamp",
                        (rec.observed_time_unix_nano as i64).to_string(),
                    ));
                }
                if rec.severity_number != 0 {
                    sm.push(Label::new("severity_number", rec.severity_number.to_string()));
                }
                if !rec.severity_text.is_empty() {
                    if rules.severity_text_as_label {
                        push_label(
                            &mut log_labels,
                            Label::new("severity_text", rec.severity_text.clone()),
                        );
                    }
                    sm.push(Label::new("severity_text", rec.severity_text.clone()));
                }
                if rec.dropped_attributes_count != 0 {
                    sm.push(Label::new(
                        "dropped_attributes_count",
                        rec.dropped_attributes_count.to_string(),
                    ));
                }
                if rec.flags != 0 {
                    sm.push(Label::new("flags", rec.flags.to_string()));
                }
                if rec.trace_id.iter().any(|b| *b != 0) {
                    sm.push(Label::new("trace_id", hex(&rec.trace_id)));
                }
                if rec.span_id.iter().any(|b| *b != 0) {
                    sm.push(Label::new("span_id", hex(&rec.span_id)));
                }
                sm.extend(res_sm.iter().cloned());
                sm.extend(scope_sm.iter().cloned());
                // Go converts the uint64 nanoseconds with int64(): the same wrap here.
                let ts = if rec.time_unix_nano != 0 {
                    rec.time_unix_nano as i64
                } else if rec.observed_time_unix_nano != 0 {
                    rec.observed_time_unix_nano as i64
                } else {
                    now_ns
                };
                let entry = Entry {
                    ts,
                    line: value_as_string(rec.body.as_ref()).into(),
                    structured_metadata: sm,
                };
                if log_labels.is_empty() {
                    out.push(labels_str.clone(), entry);
                } else {
                    let mut combined = stream_labels.clone();
                    for l in log_labels {
                        push_label(&mut combined, l);
                    }
                    out.push(label_string(&combined), entry);
                }
            }
        }
    }
    out.streams
}

/// Per-tenant OTLP rules: the `limits_config.otlp_config` of every tenant, and overrides.
pub(crate) struct OtlpRuleSet {
    pub(crate) default: OtlpRules,
    pub(crate) tenants: parking_lot::RwLock<HashMap<String, std::sync::Arc<OtlpRules>>>,
    /// Rules compiled from a tenant's runtime-configuration `otlp_config`, with the limits
    /// they were compiled from (recompiled when a reload gives the tenant new limits).
    pub(crate) runtime: parking_lot::RwLock<HashMap<String, RuntimeRules>>,
}

/// A tenant's rules from the runtime configuration, and the limits they came from.
pub(crate) type RuntimeRules = (std::sync::Arc<Limits>, std::sync::Arc<OtlpRules>);

impl Distributor {
    /// Sets (or replaces) one tenant's `otlp_config`, overriding `limits_config.otlp_config`
    /// for that tenant (Loki's per-tenant overrides).
    pub fn set_tenant_otlp_config(
        &self,
        tenant: &str,
        config: &OtlpConfig,
    ) -> Result<(), ConfigError> {
        let rules = OtlpRules::new(
            &self.config.otlp_config.default_resource_attributes_as_index_labels,
            config,
        )?;
        self.otlp.tenants.write().insert(tenant.to_string(), std::sync::Arc::new(rules));
        Ok(())
    }

    /// Handles one `POST /otlp/v1/logs` body for `tenant`. On success (and on error) the
    /// format tells the encoding of the answer; see [`success_body`] and [`error_body`].
    pub async fn push_otlp(
        &self,
        tenant: &str,
        body: Bytes,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> Result<PushOutcome, PushError> {
        let limits = self.decode_limits();
        let req = match decode_otlp_body(&body, content_type, content_encoding, &limits) {
            Ok((req, _)) => req,
            Err(e) => return Err(self.decode_error(tenant, body.len(), e)),
        };
        let records: usize =
            req.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len()).sum();
        if records == 0 {
            // Loki answers an export without records as a success.
            return Ok(PushOutcome::default());
        }
        let limits = self.overrides.tenant(tenant);
        let tenant_rules = self.otlp.tenants.read().get(tenant).cloned();
        let tenant_rules = tenant_rules.or_else(|| self.runtime_otlp_rules(tenant, &limits));
        let rules: &OtlpRules = tenant_rules.as_deref().unwrap_or(&self.otlp.default);
        let streams = otlp_to_streams(req, rules, &limits.discover_service_name, crate::now_ns());
        self.push_raw(tenant, streams).await
    }

    /// The rules of a tenant whose runtime-configuration override changes `otlp_config`
    /// (`None` when it does not: the defaults' rules apply), compiled once per reload.
    fn runtime_otlp_rules(
        &self,
        tenant: &str,
        limits: &std::sync::Arc<Limits>,
    ) -> Option<std::sync::Arc<OtlpRules>> {
        if limits.otlp_config == self.overrides.defaults().otlp_config {
            return None;
        }
        if let Some((from, rules)) = self.otlp.runtime.read().get(tenant) {
            if std::sync::Arc::ptr_eq(from, limits) {
                return Some(rules.clone());
            }
        }
        let defaults = &self.config.otlp_config.default_resource_attributes_as_index_labels;
        match OtlpRules::new(defaults, &limits.otlp_config) {
            Ok(rules) => {
                let rules = std::sync::Arc::new(rules);
                self.otlp
                    .runtime
                    .write()
                    .insert(tenant.to_string(), (limits.clone(), rules.clone()));
                Some(rules)
            }
            Err(e) => {
                // the runtime configuration was validated when it loaded
                tracing::error!(tenant, "runtime otlp_config override ignored: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
