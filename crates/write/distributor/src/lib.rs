//! The Skald distributor: the `/loki/api/v1/push` write path.
//!
//! It decodes push bodies exactly as Loki does (snappy protobuf or JSON, optionally gzip- or
//! deflate-encoded, with capped decompression), parses stream labels, adds Loki's default
//! enrichment (`service_name` label, `detected_level` structured metadata), validates streams
//! and entries against the tenant's [`Limits`] with Loki's messages, enforces the tenant
//! ingestion rate and the per-stream rate, and forwards the valid streams to an ingester through
//! [`IngesterClient`]. Its HTTP edge ([`http`]) is a thin layer over that: the handlers map
//! [`PushError::status_code`] and `Display` to the response, and the server mounts the routers.
//!
//! `max_global_streams_per_user` / `max_streams_per_user` are enforced by the ingester, which
//! knows the active streams; the distributor does not check them.

#![warn(missing_docs)]

mod config;
pub mod decode;
pub mod elastic;
mod error;
pub mod http;
mod labels;
pub mod level;
mod metrics;
pub mod otlp;
mod otlp_protojson;
mod rate;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use skald_common::limits::Limits;
use skald_common::overrides::Overrides;
use skald_model::{Entry, Label, Labels, Stream};
use skald_proto::ingester::IngesterClient;

pub use config::{DistributorConfig, DistributorOtlpConfig, DEFAULT_OTLP_INDEX_LABEL_ATTRIBUTES};
pub use decode::{decode_push_body, DecodeError, DecodeLimits, RawStream};
pub use error::{
    ConfigError, ElasticConfigError, LabelsError, MediaTypeError, MetadataNameError, OtlpJsonError,
    PushError,
};
pub use level::{LevelDetector, DETECTED_LEVEL};
pub use metrics::DistributorMetrics;

use crate::metrics::FORMAT_LOKI;
use crate::rate::Limiters;

/// The label Loki adds to every stream that lacks it.
pub const SERVICE_NAME_LABEL: &str = "service_name";
/// The `service_name` value used when no discovery label is present.
pub const UNKNOWN_SERVICE: &str = "unknown_service";
/// Streams with these labels are Loki-internal (aggregated metrics, patterns): they skip
/// `service_name` discovery and label validation.
pub const INTERNAL_STREAM_LABELS: [&str; 2] = ["__aggregated_metric__", "__pattern__"];

/// Largest accepted label string of one stream (Prometheus' parser limit, 16 MiB).
const MAX_STREAM_LABELS_SIZE: usize = 1 << 24;

/// Discard reasons (the `reason` label of `loki_discarded_*`), as in Loki.
pub mod reason {
    /// Body over a size cap.
    pub const REQUEST_BODY_TOO_LARGE: &str = "request_body_too_large";
    /// A stream without labels.
    pub const MISSING_LABELS: &str = "missing_labels";
    /// Tenant ingestion rate.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// Per-stream rate.
    pub const STREAM_RATE_LIMIT: &str = "per_stream_rate_limit";
    /// Line over `max_line_size`.
    pub const LINE_TOO_LONG: &str = "line_too_long";
    /// Older than `reject_old_samples_max_age`.
    pub const GREATER_THAN_MAX_SAMPLE_AGE: &str = "greater_than_max_sample_age";
    /// Newer than now + `creation_grace_period`.
    pub const TOO_FAR_IN_FUTURE: &str = "too_far_in_future";
    /// More than `max_label_names_per_series`.
    pub const MAX_LABEL_NAMES_PER_SERIES: &str = "max_label_names_per_series";
    /// Label name over `max_label_name_length`.
    pub const LABEL_NAME_TOO_LONG: &str = "label_name_too_long";
    /// Label value over `max_label_value_length`.
    pub const LABEL_VALUE_TOO_LONG: &str = "label_value_too_long";
    /// The same label name twice.
    pub const DUPLICATE_LABEL_NAMES: &str = "duplicate_label_names";
    /// Structured metadata while `allow_structured_metadata` is false.
    pub const DISALLOWED_STRUCTURED_METADATA: &str = "disallowed_structured_metadata";
    /// Structured metadata over `max_structured_metadata_size`.
    pub const STRUCTURED_METADATA_TOO_LARGE: &str = "structured_metadata_too_large";
    /// More than `max_structured_metadata_entries_count` pairs.
    pub const STRUCTURED_METADATA_TOO_MANY: &str = "structured_metadata_too_many";
}

/// Parses a pushed label string the way the push path does (duplicates kept, empty values
/// dropped, sorted by name). The error text follows `couldn't parse labels: ` in responses.
pub fn parse_push_labels(s: &str) -> Result<Vec<Label>, LabelsError> {
    labels::parse_stream_labels(s)
}

/// What a fully successful push stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushOutcome {
    /// Streams forwarded to the ingester.
    pub streams: usize,
    /// Entries forwarded.
    pub entries: usize,
    /// Line plus structured-metadata bytes forwarded (after enrichment).
    pub bytes: u64,
}

/// A stream after label parsing and enrichment, before validation.
struct Prepared {
    labels: Vec<Label>,
    labels_str: String,
    internal: bool,
    entries: Vec<Entry>,
}

/// The push path. Cheap to share behind an `Arc`; all state is internally synchronized.
pub struct Distributor {
    config: DistributorConfig,
    overrides: Overrides,
    ingester: IngesterClient,
    metrics: DistributorMetrics,
    levels: LevelDetector,
    tenant_limiters: Limiters<String>,
    stream_limiters: Limiters<(String, u64)>,
    otlp: otlp::OtlpRuleSet,
}

impl std::fmt::Debug for Distributor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distributor").field("config", &self.config).finish_non_exhaustive()
    }
}

fn entry_size(e: &Entry) -> u64 {
    (e.line.len() + metadata_size(&e.structured_metadata)) as u64
}

fn metadata_size(sm: &[Label]) -> usize {
    sm.iter().map(|l| l.name.len() + l.value.len()).sum()
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn duration_ns(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

use skald_gocompat::humanize::bytes as humanize_bytes;

/// Distinct messages a validation error lists; the others are counted (`... and N more
/// errors`), so that a push of thousands of bad streams gets a short answer.
const MAX_ERROR_GROUPS: usize = 10;

/// Joins validation errors as Loki's `GroupedErrors` does: identical messages are counted
/// (`N errors like: msg`), distinct ones joined with `; ` (here in first-seen order), at most
/// [`MAX_ERROR_GROUPS`] of them.
fn group_errors(errors: &[String]) -> Option<String> {
    if errors.is_empty() {
        return None;
    }
    let mut groups: Vec<(&str, usize)> = Vec::new();
    let mut more = 0usize;
    for e in errors {
        if let Some(g) = groups.iter_mut().find(|(m, _)| *m == e.as_str()) {
            g.1 += 1;
        } else if groups.len() < MAX_ERROR_GROUPS {
            groups.push((e.as_str(), 1));
        } else {
            more += 1;
        }
    }
    let many = groups.len() > 1 || more > 0;
    let mut parts: Vec<String> = groups
        .iter()
        .map(
            |(m, n)| {
                if many || *n > 1 {
                    format!("{n} errors like: {m}")
                } else {
                    (*m).to_string()
                }
            },
        )
        .collect();
    if more > 0 {
        parts.push(format!("... and {more} more errors"));
    }
    Some(parts.join("; "))
}

/// Structured-metadata name normalization (OTLP translator rules, as Loki applies them):
/// invalid characters become `_`, runs of `_` collapse, a leading digit gets `key_`.
pub(crate) fn normalize_metadata_name(name: &str) -> Result<String, MetadataNameError> {
    if name.is_empty() {
        return Err(MetadataNameError::Empty);
    }
    if skald_model::labels::is_valid_label_name(name) && !name.contains("__") {
        return Ok(name.to_string());
    }
    fn sanitize(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut prev_us = false;
        for c in s.chars() {
            let c = if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' };
            if c == '_' {
                if prev_us {
                    continue;
                }
                prev_us = true;
            } else {
                prev_us = false;
            }
            out.push(c);
        }
        out
    }
    let mut out = if name.len() > 4 && name.starts_with("__") && name.ends_with("__") {
        format!("__{}__", sanitize(&name[2..name.len() - 2]))
    } else {
        sanitize(name)
    };
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out = format!("key_{out}");
    }
    if out.chars().all(|c| c == '_') {
        return Err(MetadataNameError::Invalid { name: name.to_string(), normalized: out });
    }
    Ok(out)
}

impl Distributor {
    /// Builds a distributor over the tenants' limits (`limits_config` and its per-tenant
    /// overrides; a plain [`Limits`] applies to every tenant). Metrics are registered into
    /// `registry`; this fails only when they are already registered there.
    pub fn new(
        config: DistributorConfig,
        overrides: impl Into<Overrides>,
        ingester: IngesterClient,
        registry: &prometheus::Registry,
    ) -> Result<Self, prometheus::Error> {
        let overrides = overrides.into();
        let limits = overrides.defaults();
        let metrics = DistributorMetrics::new(registry)?;
        let levels =
            LevelDetector::new(&limits.log_level_fields, limits.log_level_from_json_max_depth);
        let defaults = &config.otlp_config.default_resource_attributes_as_index_labels;
        // `limits_config` was validated when the config was loaded; should a bad OTLP rule get
        // here anyway, the defaults apply rather than no OTLP at all.
        let default_rules = otlp::OtlpRules::new(defaults, &limits.otlp_config)
            .or_else(|e| {
                tracing::error!("limits_config.otlp_config ignored: {e}");
                otlp::OtlpRules::new(defaults, &Default::default())
            })
            .unwrap_or_else(|_| otlp::OtlpRules::empty());
        let mut tenants = std::collections::HashMap::new();
        for (tenant, c) in &config.otlp_config.tenant_overrides {
            match otlp::OtlpRules::new(defaults, c) {
                Ok(r) => {
                    tenants.insert(tenant.clone(), std::sync::Arc::new(r));
                }
                Err(e) => tracing::error!(tenant, "otlp_config override ignored: {e}"),
            }
        }
        let otlp = otlp::OtlpRuleSet {
            default: default_rules,
            tenants: parking_lot::RwLock::new(tenants),
            runtime: parking_lot::RwLock::new(std::collections::HashMap::new()),
        };
        Ok(Distributor {
            config,
            overrides,
            ingester,
            metrics,
            levels,
            tenant_limiters: Limiters::new(),
            stream_limiters: Limiters::new(),
            otlp,
        })
    }

    fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_recv_msg_size: self.config.max_recv_msg_size,
            max_decompressed_size: self.config.max_decompressed_size,
        }
    }

    /// Maps a body decoding error to the push error, counting discarded oversized bodies.
    fn decode_error(&self, tenant: &str, body_len: usize, e: DecodeError) -> PushError {
        match e {
            DecodeError::TooLarge(msg) => {
                self.metrics
                    .discarded_bytes
                    .with_label_values(&[
                        reason::REQUEST_BODY_TOO_LARGE,
                        tenant,
                        "",
                        "",
                        FORMAT_LOKI,
                    ])
                    .inc_by(body_len as u64);
                PushError::BodyTooLarge(msg)
            }
            DecodeError::Invalid(msg) => PushError::BadRequest(msg),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &DistributorConfig {
        &self.config
    }

    /// The limits of every tenant without an override (`limits_config`).
    pub fn limits(&self) -> std::sync::Arc<Limits> {
        self.overrides.defaults()
    }

    /// The tenants' limits, overrides included.
    pub fn overrides(&self) -> &Overrides {
        &self.overrides
    }

    /// The registered metrics.
    pub fn metrics(&self) -> &DistributorMetrics {
        &self.metrics
    }

    /// Handles one HTTP push body for `tenant` (already authenticated and validated).
    ///
    /// `Ok` means every entry was stored (HTTP 204). On `Err`, [`PushError::status_code`] and
    /// `to_string()` are the status and body Loki would answer with; for
    /// [`PushError::is_partial`] errors the valid part was stored first.
    pub async fn push(
        &self,
        tenant: &str,
        body: Bytes,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> Result<PushOutcome, PushError> {
        let raw = decode_push_body(&body, content_type, content_encoding, &self.decode_limits())
            .map_err(|e| self.decode_error(tenant, body.len(), e))?;
        self.push_raw(tenant, raw).await
    }

    /// Handles already-decoded streams (e.g. from the gRPC `Pusher` service): label parsing,
    /// enrichment, validation, rate limits, forwarding.
    pub async fn push_raw(
        &self,
        tenant: &str,
        raw: Vec<RawStream>,
    ) -> Result<PushOutcome, PushError> {
        let prepared = self.prepare(tenant, raw)?;
        self.push_prepared(tenant, prepared, now_ns()).await
    }

    /// Parses labels, adds `service_name`, counts received bytes and lines.
    fn prepare(&self, tenant: &str, raw: Vec<RawStream>) -> Result<Vec<Prepared>, PushError> {
        let limits = self.overrides.tenant(tenant);
        let discover = &limits.discover_service_name;
        let mut out = Vec::with_capacity(raw.len());
        let (mut line_bytes, mut sm_bytes, mut lines, mut any_internal) = (0u64, 0u64, 0u64, false);
        for s in raw {
            if s.labels.len() > MAX_STREAM_LABELS_SIZE {
                return Err(PushError::BodyTooLarge(format!(
                    "stream labels size {} exceeds limit of {}",
                    humanize_bytes(s.labels.len() as u64),
                    humanize_bytes(MAX_STREAM_LABELS_SIZE as u64)
                )));
            }
            let mut lbls = labels::parse_stream_labels(&s.labels)
                .map_err(|e| PushError::BadRequest(format!("couldn't parse labels: {e}")))?;
            let internal = INTERNAL_STREAM_LABELS.iter().any(|n| labels::get(&lbls, n).is_some());
            any_internal |= internal;
            if labels::get(&lbls, SERVICE_NAME_LABEL).is_none() && !discover.is_empty() && !internal
            {
                let service = discover
                    .iter()
                    .find_map(|n| labels::get(&lbls, n).filter(|v| !v.is_empty()))
                    .unwrap_or(UNKNOWN_SERVICE)
                    .to_string();
                labels::set(&mut lbls, SERVICE_NAME_LABEL, &service);
            }
            for e in &s.entries {
                line_bytes += e.line.len() as u64;
                sm_bytes += metadata_size(&e.structured_metadata) as u64;
            }
            lines += s.entries.len() as u64;
            out.push(Prepared {
                labels_str: labels::to_string(&lbls),
                labels: lbls,
                internal,
                entries: s.entries,
            });
        }
        let internal = if any_internal { "true" } else { "false" };
        let recv = [tenant, "", internal, "", FORMAT_LOKI];
        self.metrics.bytes_received.with_label_values(&recv).inc_by(line_bytes + sm_bytes);
        self.metrics.structured_metadata_bytes_received.with_label_values(&recv).inc_by(sm_bytes);
        if lines > 0 {
            self.metrics
                .lines_received
                .with_label_values(&[tenant, internal, "", FORMAT_LOKI])
                .inc_by(lines);
        }
        Ok(out)
    }

    /// `ValidateLabels`: returns (reason, message) for the first violation.
    fn validate_labels(l: &Limits, p: &Prepared) -> Result<(), (&'static str, String)> {
        if p.labels.is_empty() {
            return Err((
                reason::MISSING_LABELS,
                "error at least one label pair is required per stream".to_string(),
            ));
        }
        if p.internal {
            return Ok(());
        }
        let mut count = p.labels.len();
        if labels::get(&p.labels, SERVICE_NAME_LABEL).is_some() {
            count -= 1;
        }
        if count > l.max_label_names_per_series {
            return Err((
                reason::MAX_LABEL_NAMES_PER_SERIES,
                format!(
                    "entry for stream '{}' has {count} label names; limit {}",
                    p.labels_str, l.max_label_names_per_series
                ),
            ));
        }
        let mut last = "";
        for lbl in &p.labels {
            if lbl.name.len() > l.max_label_name_length {
                return Err((
                    reason::LABEL_NAME_TOO_LONG,
                    format!("stream '{}' has label name too long: '{}'", p.labels_str, lbl.name),
                ));
            }
            if lbl.value.len() > l.max_label_value_length {
                return Err((
                    reason::LABEL_VALUE_TOO_LONG,
                    format!("stream '{}' has label value too long: '{}'", p.labels_str, lbl.value),
                ));
            }
            if lbl.name == last {
                return Err((
                    reason::DUPLICATE_LABEL_NAMES,
                    format!("stream '{}' has duplicate label name: '{}'", p.labels_str, lbl.name),
                ));
            }
            last = &lbl.name;
        }
        Ok(())
    }

    /// `ValidateEntry`: returns (reason, message) for the first violation.
    fn validate_entry(
        l: &Limits,
        labels_str: &str,
        e: &Entry,
        now: i64,
    ) -> Result<(), (&'static str, String)> {
        if l.reject_old_samples {
            let oldest = now.saturating_sub(duration_ns(l.reject_old_samples_max_age));
            if e.ts < oldest {
                return Err((
                    reason::GREATER_THAN_MAX_SAMPLE_AGE,
                    format!(
                        "entry for stream '{labels_str}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                        skald_gocompat::time::rfc3339(e.ts),
                        skald_gocompat::time::rfc3339(oldest)
                    ),
                ));
            }
        }
        if e.ts > now.saturating_add(duration_ns(l.creation_grace_period)) {
            return Err((
                reason::TOO_FAR_IN_FUTURE,
                format!(
                    "entry for stream '{labels_str}' has timestamp too new: {}",
                    skald_gocompat::time::rfc3339(e.ts)
                ),
            ));
        }
        if l.max_line_size != 0 && e.line.len() as u64 > l.max_line_size {
            return Err((
                reason::LINE_TOO_LONG,
                format!(
                    "max entry size '{}' bytes exceeded for stream '{labels_str}' while adding an entry with length '{}' bytes",
                    l.max_line_size,
                    e.line.len()
                ),
            ));
        }
        if !e.structured_metadata.is_empty() {
            if !l.allow_structured_metadata {
                return Err((
                    reason::DISALLOWED_STRUCTURED_METADATA,
                    format!("stream '{labels_str}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it"),
                ));
            }
            let size = metadata_size(&e.structured_metadata);
            if l.max_structured_metadata_size != 0 && size as u64 > l.max_structured_metadata_size {
                return Err((
                    reason::STRUCTURED_METADATA_TOO_LARGE,
                    format!("stream '{labels_str}' has structured metadata too large: '{size}' bytes, limit: '{}' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it", l.max_structured_metadata_size),
                ));
            }
            let count = e.structured_metadata.len();
            if l.max_structured_metadata_entries_count != 0
                && count > l.max_structured_metadata_entries_count
            {
                return Err((
                    reason::STRUCTURED_METADATA_TOO_MANY,
                    format!("stream '{labels_str}' has too many structured metadata labels: '{count}', limit: '{}'. Please see `limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it", l.max_structured_metadata_entries_count),
                ));
            }
        }
        Ok(())
    }

    /// Truncates over-long lines when `max_line_size_truncate` is on.
    fn truncate_lines(&self, l: &Limits, tenant: &str, entries: &mut [Entry]) {
        if !l.max_line_size_truncate || l.max_line_size == 0 {
            return;
        }
        let suffix = &l.max_line_size_truncate_identifier;
        let max = usize::try_from(l.max_line_size).unwrap_or(usize::MAX);
        let (mut samples, mut bytes) = (0u64, 0u64);
        for e in entries.iter_mut() {
            if e.line.len() <= max || max <= suffix.len() {
                continue;
            }
            let mut line = std::mem::take(&mut e.line).into_bytes();
            // never inside a UTF-8 character (the line's other bytes are kept as pushed)
            let mut cut = max - suffix.len();
            while cut > 0 && line[cut] & 0xC0 == 0x80 {
                cut -= 1;
            }
            bytes += (line.len() - cut) as u64;
            line.truncate(cut);
            line.extend_from_slice(suffix.as_bytes());
            e.line = line.into();
            samples += 1;
        }
        if samples > 0 {
            self.metrics
                .mutated_samples
                .with_label_values(&[reason::LINE_TOO_LONG, tenant])
                .inc_by(samples);
            self.metrics
                .mutated_bytes
                .with_label_values(&[reason::LINE_TOO_LONG, tenant])
                .inc_by(bytes);
        }
    }

    async fn push_prepared(
        &self,
        tenant: &str,
        prepared: Vec<Prepared>,
        now: i64,
    ) -> Result<PushOutcome, PushError> {
        if prepared.is_empty() {
            return Err(PushError::NoStreams);
        }
        let l = &*self.overrides.tenant(tenant);
        let detect_levels = l.allow_structured_metadata && l.discover_log_levels;
        let (mut received_lines, mut received_bytes) = (0u64, 0u64);
        let mut errors: Vec<String> = Vec::new();
        let mut valid: Vec<(Vec<Label>, String, Vec<Entry>)> = Vec::new();
        let (mut total_bytes, mut total_lines) = (0u64, 0u64);

        for mut p in prepared {
            received_lines += p.entries.len() as u64;
            received_bytes += p.entries.iter().map(entry_size).sum::<u64>();
            if p.entries.is_empty() {
                continue;
            }
            self.truncate_lines(l, tenant, &mut p.entries);
            if let Err((why, msg)) = Self::validate_labels(l, &p) {
                let size = p.entries.iter().map(entry_size).sum();
                self.metrics.discard(why, tenant, p.entries.len() as u64, size);
                errors.push(msg);
                continue;
            }
            let mut kept: Vec<Entry> = Vec::with_capacity(p.entries.len());
            let mut prev_ts = p.entries[0].ts;
            let stream_level =
                if detect_levels { self.levels.stream_level(&p.labels) } else { None };
            for mut e in std::mem::take(&mut p.entries) {
                if let Err((why, msg)) = Self::validate_entry(l, &p.labels_str, &e, now) {
                    self.metrics.discard(why, tenant, 1, entry_size(&e));
                    errors.push(msg);
                    continue;
                }
                for sm in &mut e.structured_metadata {
                    let normalized = normalize_metadata_name(&sm.name)
                        .map_err(|e| PushError::BadRequest(e.to_string()))?;
                    if normalized != sm.name {
                        sm.name = normalized;
                    }
                }
                e.structured_metadata.sort_by(|a, b| a.name.cmp(&b.name));
                if detect_levels {
                    if let Some(level) = self.levels.detect(
                        stream_level.as_deref(),
                        &mut e.structured_metadata,
                        &e.line.to_str_lossy(),
                    ) {
                        e.structured_metadata.push(Label::new(DETECTED_LEVEL, level));
                    }
                }
                if l.increment_duplicate_timestamp {
                    if let Some(prev) = kept.last() {
                        if prev.line != e.line && (e.ts == prev_ts || e.ts == prev.ts) {
                            e.ts = prev.ts.saturating_add(1);
                        } else {
                            prev_ts = e.ts;
                        }
                    }
                }
                total_bytes += entry_size(&e);
                total_lines += 1;
                kept.push(e);
            }
            if !kept.is_empty() {
                valid.push((p.labels, p.labels_str, kept));
            }
        }

        let validation_err = group_errors(&errors);
        if valid.is_empty() {
            return match validation_err {
                Some(msg) => Err(PushError::Validation(msg)),
                None => Ok(PushOutcome::default()),
            };
        }

        // Tenant ingestion rate: all or nothing. With the `global` strategy Loki divides the
        // limit by the number of healthy distributors; Skald runs one distributor per tenant
        // path, so both strategies use the whole limit.
        let rate = l.ingestion_rate_bytes();
        let clock = Instant::now();
        if !self.tenant_limiters.allow_n(
            &tenant.to_string(),
            clock,
            total_bytes as f64,
            rate,
            l.ingestion_burst_size_bytes(),
        ) {
            self.metrics.discard(reason::RATE_LIMITED, tenant, received_lines, received_bytes);
            return Err(PushError::RateLimited(format!(
                "ingestion rate limit exceeded for user {tenant} (limit: {} bytes/sec) while attempting to ingest '{total_lines}' lines totaling '{total_bytes}' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased",
                rate as i64
            )));
        }

        // Per-stream rate (Loki's ingester check): entries over the limit are dropped one by one.
        let mut stream_rate_err: Option<String> = None;
        let mut streams: Vec<Stream> = Vec::with_capacity(valid.len());
        let mut outcome = PushOutcome::default();
        for (lbls, labels_str, entries) in valid {
            let labels = Labels::from_vec(lbls);
            let mut kept = Vec::with_capacity(entries.len());
            if l.per_stream_rate_limit > 0 {
                let key = (tenant.to_string(), labels.hash());
                let total = entries.len();
                let mut refused = vec![false; entries.len()];
                self.stream_limiters.allow_each(
                    &key,
                    clock,
                    l.per_stream_rate_limit as f64,
                    l.per_stream_rate_limit_burst as f64,
                    entries.iter().map(|e| entry_size(e) as f64),
                    |i| refused[i] = true,
                );
                let mut failed: Vec<(i64, u64)> = Vec::new();
                for (e, refused) in entries.into_iter().zip(refused) {
                    if refused {
                        failed.push((e.ts, entry_size(&e)));
                    } else {
                        kept.push(e);
                    }
                }
                if !failed.is_empty() {
                    let bytes: u64 = failed.iter().map(|f| f.1).sum();
                    self.metrics.discard(
                        reason::STREAM_RATE_LIMIT,
                        tenant,
                        failed.len() as u64,
                        bytes,
                    );
                    let mut msg = String::new();
                    for (ts, size) in
                        failed.iter().take(self.config.max_returned_stream_errors.max(1))
                    {
                        msg.push_str(&format!(
                            "entry with timestamp {} ignored, reason: 'Per stream rate limit exceeded (limit: {}/sec) while attempting to ingest for stream '{labels_str}' totaling {}, consider splitting a stream via additional labels or contact your Loki administrator to see if the limit can be increased',\n",
                            skald_gocompat::time::utc_string(*ts),
                            skald_common::units::format_bytes(l.per_stream_rate_limit),
                            skald_common::units::format_bytes(*size),
                        ));
                    }
                    msg.push_str(&format!(
                        "user '{tenant}', total ignored: {} out of {total} for stream: {labels_str}",
                        failed.len()
                    ));
                    stream_rate_err = Some(msg);
                }
            } else {
                kept = entries;
            }
            if kept.is_empty() {
                continue;
            }
            outcome.streams += 1;
            outcome.entries += kept.len();
            outcome.bytes += kept.iter().map(entry_size).sum::<u64>();
            streams.push(Stream { labels, entries: kept });
        }

        if !streams.is_empty() {
            self.ingester.push(tenant, streams).await.map_err(PushError::Ingester)?;
        }
        if let Some(msg) = stream_rate_err {
            return Err(PushError::StreamRateLimited(msg));
        }
        match validation_err {
            Some(msg) => Err(PushError::Validation(msg)),
            None => Ok(outcome),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_errors_like_loki() {
        assert_eq!(group_errors(&[]), None);
        assert_eq!(group_errors(&["a".into()]).as_deref(), Some("a"));
        assert_eq!(group_errors(&["a".into(), "a".into()]).as_deref(), Some("2 errors like: a"));
        assert_eq!(
            group_errors(&["a".into(), "b".into(), "a".into()]).as_deref(),
            Some("2 errors like: a; 1 errors like: b")
        );
        // distinct messages are capped: the rest are counted
        let many: Vec<String> = (0..5000).map(|i| format!("bad stream {i}")).collect();
        let m = group_errors(&many).unwrap();
        assert!(m.starts_with("1 errors like: bad stream 0; "), "{m}");
        assert!(m.ends_with("; 1 errors like: bad stream 9; ... and 4990 more errors"), "{m}");
        assert!(m.len() < 400, "{}", m.len());
    }

    #[test]
    fn humanize_like_go() {
        assert_eq!(humanize_bytes(5), "5 B");
        assert_eq!(humanize_bytes(1 << 24), "17 MB");
        assert_eq!(humanize_bytes(82_854_982), "83 MB");
        assert_eq!(humanize_bytes(1500), "1.5 kB");
    }

    #[test]
    fn metadata_names() {
        assert_eq!(normalize_metadata_name("trace_id").unwrap(), "trace_id");
        assert_eq!(normalize_metadata_name("http.method").unwrap(), "http_method");
        assert_eq!(normalize_metadata_name("a..b").unwrap(), "a_b");
        assert_eq!(normalize_metadata_name("1x").unwrap(), "key_1x");
        assert_eq!(normalize_metadata_name("__x.y__").unwrap(), "__x_y__");
        assert_eq!(normalize_metadata_name("").unwrap_err().to_string(), "label name is empty");
        assert!(normalize_metadata_name("..").is_err());
    }
}
