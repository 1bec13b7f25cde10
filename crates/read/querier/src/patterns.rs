//! `/loki/api/v1/patterns`: the log patterns of recent lines, as Loki's pattern ingester finds
//! them, mined when the request comes.
//!
//! Loki tees every push to a pattern ingester that trains one Drain template set per stream
//! and detected level, keeps line counts per template for `pattern_ingester.retain_for` (3h)
//! and answers from them. Skald reads the same recent lines through the querier's own data
//! path instead (the ingesters' memory and the store, exactly as a log query does) and trains
//! the same per-stream, per-level Drain sets over them in time order: no write-path cost, no
//! state to replicate, and the same retention semantics, since only lines newer than
//! `now - retain_for` are read. So for old data the answer is empty, as Loki's is. Templates
//! are learned from the lines of the requested window only (Loki's also remember older
//! retained lines), which can make a pattern more specific than Loki's.
//!
//! The answer follows Loki's querier: counts are bucketed by `step` (at least 10s), patterns
//! with fewer than 30 lines in the window are dropped, at most 300 are kept, sorted by total.

use skald_gocompat::utf8::lossy;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use skald_loghttp::params::{self, Params};
use skald_logql::engine::EngineError;
use skald_logql::syntax::{self, ast::LogSelectorExpr};
use skald_model::{LabelMatcher, Labels};

use crate::drain::{detect_format, Drain, DrainSettings, LineFormat};
use crate::error::QuerierError;
use crate::Querier;

/// Loki's querier drops patterns with fewer lines than this.
const MIN_PATTERN_LINES: i64 = 30;
/// Loki's querier returns at most this many patterns.
const MAX_PATTERNS: usize = 300;
/// The smallest step (Loki's pattern time resolution), in ms.
const MIN_STEP_MS: i64 = 10_000;
/// Levels a template set is kept under; anything else counts as `unknown`.
const KNOWN_LEVELS: &[&str] =
    &["unknown", "debug", "info", "warn", "error", "fatal", "critical", "trace"];
/// The structured-metadata field holding an entry's level.
const LEVEL_FIELD: &str = "detected_level";
const HOUR_NS: i64 = 3_600_000_000_000;

/// The `pattern_ingester` block, with Loki's key names. Loki runs a separate service; Skald
/// mines patterns in the querier, so only the settings of detection and retention apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PatternIngesterConfig {
    /// Serve `/loki/api/v1/patterns` (Loki's default is false; Skald's is true, since
    /// detection costs nothing until it is asked for).
    pub enabled: bool,
    /// Only lines newer than this are mined (Loki keeps patterns this long).
    #[serde(with = "skald_common::units::duration")]
    pub retain_for: Duration,
    /// Templates kept per stream and level; the least recently used are evicted.
    pub max_clusters: usize,
    /// Evicted/added ratio above which a template set stops learning for 10 minutes.
    pub max_eviction_ratio: f64,
    /// Longer lines are not mined.
    pub max_allowed_line_length: usize,
    /// Longest time span of one chunk of pattern counts (counts are zero-filled only inside
    /// a chunk).
    #[serde(with = "skald_common::units::duration")]
    pub max_chunk_age: Duration,
    /// Time resolution of pattern counts.
    #[serde(with = "skald_common::units::duration")]
    pub pattern_sample_interval: Duration,
    /// Loki keys of the separate pattern-ingester service, accepted and ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycler: Option<serde_json::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_config: Option<serde_json::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrent_flushes: Option<serde_json::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_check_period: Option<serde_json::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_aggregation: Option<serde_json::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern_persistence: Option<serde_json::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tee_config: Option<serde_json::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_timeout: Option<serde_json::Value>,
    #[allow(missing_docs)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_threshold: Option<serde_json::Value>,
}

impl Default for PatternIngesterConfig {
    fn default() -> Self {
        let d = DrainSettings::default();
        PatternIngesterConfig {
            enabled: true,
            retain_for: Duration::from_secs(3 * 3600),
            max_clusters: d.max_clusters,
            max_eviction_ratio: d.max_eviction_ratio,
            max_allowed_line_length: d.max_line_length,
            max_chunk_age: Duration::from_millis(d.max_chunk_age_ms as u64),
            pattern_sample_interval: Duration::from_millis(d.sample_interval_ms as u64),
            lifecycler: None,
            client_config: None,
            concurrent_flushes: None,
            flush_check_period: None,
            metric_aggregation: None,
            pattern_persistence: None,
            tee_config: None,
            connection_timeout: None,
            volume_threshold: None,
        }
    }
}

/// Why a `pattern_ingester` block was refused (Loki's rules; the messages name the block).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatternConfigError {
    /// `retain_for` shorter than `max_chunk_age`.
    #[error("pattern_ingester: retain_for ({retain_for:?}) must be greater than or equal to max_chunk_age ({max_chunk_age:?})")]
    RetainForBelowMaxChunkAge {
        /// `retain_for`.
        retain_for: Duration,
        /// `max_chunk_age`.
        max_chunk_age: Duration,
    },
    /// `pattern_sample_interval` under a millisecond.
    #[error("pattern_ingester: pattern_sample_interval must be at least 1ms")]
    SampleIntervalBelowOneMs,
    /// `max_chunk_age` shorter than `pattern_sample_interval`.
    #[error("pattern_ingester: max_chunk_age ({max_chunk_age:?}) must be greater than or equal to pattern_sample_interval ({sample_interval:?})")]
    MaxChunkAgeBelowSampleInterval {
        /// `max_chunk_age`.
        max_chunk_age: Duration,
        /// `pattern_sample_interval`.
        sample_interval: Duration,
    },
    /// `max_eviction_ratio` outside `[0, 1]`.
    #[error("pattern_ingester: max_eviction_ratio must be between 0 and 1")]
    EvictionRatioOutOfRange,
}

impl PatternIngesterConfig {
    /// Checks the values with Loki's rules.
    pub fn validate(&self) -> Result<(), PatternConfigError> {
        if self.retain_for < self.max_chunk_age {
            return Err(PatternConfigError::RetainForBelowMaxChunkAge {
                retain_for: self.retain_for,
                max_chunk_age: self.max_chunk_age,
            });
        }
        if self.pattern_sample_interval.as_millis() == 0 {
            return Err(PatternConfigError::SampleIntervalBelowOneMs);
        }
        if self.max_chunk_age < self.pattern_sample_interval {
            return Err(PatternConfigError::MaxChunkAgeBelowSampleInterval {
                max_chunk_age: self.max_chunk_age,
                sample_interval: self.pattern_sample_interval,
            });
        }
        if !(0.0..=1.0).contains(&self.max_eviction_ratio) {
            return Err(PatternConfigError::EvictionRatioOutOfRange);
        }
        Ok(())
    }

    /// `retain_for` in nanoseconds.
    fn retain_for_ns(&self) -> i64 {
        self.retain_for.as_nanos().min(i64::MAX as u128) as i64
    }

    fn drain_settings(&self) -> DrainSettings {
        DrainSettings {
            max_clusters: self.max_clusters,
            max_eviction_ratio: self.max_eviction_ratio,
            max_line_length: self.max_allowed_line_length,
            sample_interval_ms: (self.pattern_sample_interval.as_millis() as i64).max(1),
            max_chunk_age_ms: (self.max_chunk_age.as_millis() as i64).max(1),
            ..DrainSettings::default()
        }
    }
}

/// The template sets of one stream: one per detected level.
struct StreamPatterns {
    format: LineFormat,
    by_level: HashMap<String, Drain>,
}

/// The level a line is mined under: its `detected_level` in lower case, `unknown` when
/// missing or not one of Loki's levels.
fn level_of(metadata: &[skald_model::Label]) -> String {
    let level = metadata
        .iter()
        .find(|l| l.name == LEVEL_FIELD)
        .map(|l| l.value.to_lowercase())
        .unwrap_or_default();
    if KNOWN_LEVELS.contains(&level.as_str()) {
        level
    } else {
        "unknown".to_string()
    }
}

/// One pattern of the answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PatternSeries {
    pub pattern: String,
    pub level: String,
    /// `(step start ms, lines)`, ascending.
    pub samples: Vec<(i64, i64)>,
}

impl PatternSeries {
    fn total(&self) -> i64 {
        self.samples.iter().map(|s| s.1).sum()
    }
}

/// Trains the template sets over `streams` (each in time order) and returns their counts in
/// `[from_ms, through_ms)` by `step_ms`, merged across streams by pattern and level, pruned
/// and sorted as Loki's querier does.
pub(crate) fn mine<I>(
    streams: I,
    settings: &DrainSettings,
    from_ms: i64,
    through_ms: i64,
    step_ms: i64,
    cancel: &AtomicBool,
) -> Result<Vec<PatternSeries>, EngineError>
where
    I: IntoIterator<Item = Result<skald_model::StreamBatch, EngineError>>,
{
    let mut by_stream: HashMap<Labels, StreamPatterns> = HashMap::new();
    for batch in streams {
        let batch = batch?;
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Canceled(crate::source::CANCELED_MSG.to_string()));
        }
        let Some(first) = batch.entries.iter().next() else { continue };
        // a stream's format is guessed from its first line, as Loki does
        let stream = by_stream.entry(batch.labels).or_insert_with(|| StreamPatterns {
            format: detect_format(&lossy(first.line)),
            by_level: HashMap::new(),
        });
        for e in batch.entries.iter() {
            let level = level_of(e.structured_metadata);
            let format = stream.format;
            stream
                .by_level
                .entry(level)
                .or_insert_with(|| Drain::new(settings.clone(), format))
                .train(&lossy(e.line), e.ts);
        }
    }
    let mut merged: BTreeMap<(String, String), BTreeMap<i64, i64>> = BTreeMap::new();
    for stream in by_stream.values() {
        for (level, drain) in &stream.by_level {
            for (pattern, samples) in drain.patterns(from_ms, through_ms, step_ms) {
                let series = merged.entry((pattern, level.clone())).or_default();
                for (ts, n) in samples {
                    *series.entry(ts).or_insert(0) += n;
                }
            }
        }
    }
    let mut out: Vec<PatternSeries> = merged
        .into_iter()
        .map(|((pattern, level), samples)| PatternSeries {
            pattern,
            level,
            samples: samples.into_iter().collect(),
        })
        .filter(|s| s.total() >= MIN_PATTERN_LINES)
        .collect();
    out.sort_by(|a, b| {
        b.total()
            .cmp(&a.total())
            .then_with(|| a.pattern.cmp(&b.pattern))
            .then_with(|| a.level.cmp(&b.level))
    });
    out.truncate(MAX_PATTERNS);
    Ok(out)
}

fn series_json(series: &[PatternSeries]) -> Vec<Value> {
    series
        .iter()
        .map(|s| {
            let samples: Vec<Value> =
                s.samples.iter().map(|(ts, n)| json!([ts.div_euclid(1000), n])).collect();
            json!({"pattern": s.pattern, "level": s.level, "samples": samples})
        })
        .collect()
}

fn matchers(query: &str) -> Result<Vec<LabelMatcher>, QuerierError> {
    syntax::parse_matchers(query).map_err(|e| QuerierError::BadRequest(e.to_string()))
}

impl Querier {
    /// `/loki/api/v1/patterns`.
    pub async fn patterns(
        self: &Arc<Self>,
        tenant: &str,
        p: &Params,
    ) -> Result<Value, QuerierError> {
        let (start, end) = params::parse_range(p, HOUR_NS)?;
        let step_ns = params::parse_step(p, start, end)?;
        let matchers = matchers(p.get("query").unwrap_or(""))?;
        let empty = json!({"status": "success", "data": []});
        // Only lines the pattern ingester would still hold are mined.
        let retained_from = params::now_ns().saturating_sub(self.pattern_ingester.retain_for_ns());
        let from = start.max(retained_from);
        if end <= from {
            return Ok(empty);
        }
        if !self.pattern_ingester.enabled {
            return Err(QuerierError::Status {
                status: 404,
                message: "pattern detection is disabled (pattern_ingester.enabled: false)".into(),
            });
        }
        let (from_ms, through_ms) =
            (start.div_euclid(1_000_000), end.saturating_add(999_999).div_euclid(1_000_000));
        let step_ms = (step_ns / 1_000_000).max(MIN_STEP_MS);
        let settings = self.pattern_ingester.drain_settings();
        let selector = LogSelectorExpr { matchers, stages: Vec::new() };
        let series = self
            .on_source(tenant, move |source, cancel| {
                let streams = source.select(&selector, from, end, None)?;
                mine(streams, &settings, from_ms, through_ms, step_ms, cancel)
            })
            .await?;
        Ok(json!({"status": "success", "data": series_json(&series)}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_model::{EntryBatch, Label, StreamBatch};

    fn batch(labels: &str, lines: &[(i64, &str, &str)]) -> Result<StreamBatch, EngineError> {
        let mut entries = EntryBatch::new();
        for (ts, line, level) in lines {
            entries.push(*ts, line, &[Label::new("detected_level", *level)]);
        }
        Ok(StreamBatch { labels: Labels::parse(labels).unwrap(), entries })
    }

    #[test]
    fn patterns_merge_across_streams_and_levels_are_apart() {
        let sec = 1_000_000_000i64;
        let mut a = Vec::new();
        let mut b = Vec::new();
        let lines: Vec<String> =
            (0..40).map(|i| format!("user u{i} logged in from 10.0.0.{i}")).collect();
        for (i, l) in lines.iter().enumerate() {
            let ts = i as i64 * 15 * sec;
            if i % 2 == 0 {
                a.push((ts, l.as_str(), "info"));
            } else {
                b.push((ts, l.as_str(), "info"));
            }
        }
        let errs: Vec<String> =
            (0..35).map(|i| format!("disk {i} failed with code E{i}")).collect();
        let e: Vec<(i64, &str, &str)> =
            errs.iter().enumerate().map(|(i, l)| (i as i64 * sec, l.as_str(), "ERROR")).collect();
        let few: Vec<(i64, &str, &str)> =
            (0..5).map(|i| (i * sec, "rare line of text here", "info")).collect();
        let streams = vec![
            batch(r#"{job="a"}"#, &a),
            batch(r#"{job="b"}"#, &b),
            batch(r#"{job="c"}"#, &e),
            batch(r#"{job="d"}"#, &few),
        ];
        let cancel = AtomicBool::new(false);
        let out = mine(streams, &DrainSettings::default(), 0, 3_600_000, 60_000, &cancel).unwrap();
        assert_eq!(out.len(), 2, "{out:#?}");
        assert_eq!(out[0].pattern, "user <_> logged in from <_>");
        assert_eq!(out[0].level, "info");
        assert_eq!(out[0].total(), 40);
        // 40 lines every 15s: 10 minutes, one sample per minute
        assert_eq!(out[0].samples.len(), 10);
        assert!(out[0].samples.iter().all(|(ts, n)| ts % 60_000 == 0 && *n == 4));
        assert_eq!(out[1].level, "error");
        assert_eq!(out[1].total(), 35);
    }

    #[test]
    fn counts_outside_the_window_are_left_out() {
        let sec = 1_000_000_000i64;
        let lines: Vec<String> =
            (0..60).map(|i| format!("request {i} served in {i}ms ok")).collect();
        let rows: Vec<(i64, &str, &str)> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i as i64 * 10 * sec, l.as_str(), "info"))
            .collect();
        let cancel = AtomicBool::new(false);
        let out = mine(
            vec![batch(r#"{job="a"}"#, &rows)],
            &DrainSettings::default(),
            0,
            300_000,
            10_000,
            &cancel,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].total(), 30);
        assert_eq!(out[0].samples.len(), 30);
    }

    #[test]
    fn config_defaults_and_validation() {
        let c = PatternIngesterConfig::default();
        assert!(c.enabled);
        assert_eq!(c.retain_for, Duration::from_secs(10_800));
        assert!(c.validate().is_ok());
        let bad = PatternIngesterConfig { retain_for: Duration::from_secs(60), ..c.clone() };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "pattern_ingester: retain_for (60s) must be greater than or equal to max_chunk_age (3600s)"
        );
        let bad = PatternIngesterConfig { max_eviction_ratio: 1.5, ..c.clone() };
        assert_eq!(bad.validate(), Err(PatternConfigError::EvictionRatioOutOfRange));
        let parsed: PatternIngesterConfig = serde_json::from_value(
            json!({"enabled": true, "retain_for": "8760h", "concurrent_flushes": 4}),
        )
        .unwrap();
        assert_eq!(parsed.retain_for, Duration::from_secs(8760 * 3600));
        assert!(
            serde_json::from_value::<PatternIngesterConfig>(json!({"retain_four": "1h"})).is_err()
        );
    }

    #[test]
    fn levels_outside_loki_s_list_are_unknown() {
        assert_eq!(level_of(&[Label::new("detected_level", "WARN")]), "warn");
        assert_eq!(level_of(&[Label::new("detected_level", "notice")]), "unknown");
        assert_eq!(level_of(&[]), "unknown");
    }
}
