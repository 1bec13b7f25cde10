//! `/loki/api/v1/drilldown-limits`: the tenant limits Grafana Logs Drilldown reads, filtered
//! by Loki's default allow-list (`tenant_limits_allow_publish`), plus whether patterns are
//! served and the version.

use serde_json::{json, Map, Value};

use skald_common::limits::Limits;

use crate::Querier;

/// Loki's default `tenant_limits_allow_publish`.
pub(crate) const ALLOW_PUBLISH: &[&str] = &[
    "discover_log_levels",
    "discover_service_name",
    "log_level_fields",
    "max_entries_limit_per_query",
    "max_line_size_truncate",
    "max_query_bytes_read",
    "max_query_length",
    "max_query_lookback",
    "max_query_range",
    "max_query_series",
    "metric_aggregation_enabled",
    "otlp_config",
    "pattern_persistence_enabled",
    "query_timeout",
    "retention_period",
    "retention_stream",
    "volume_enabled",
    "volume_max_series",
];

/// Published limits Skald has no setting for, with the value that describes Skald: it
/// neither writes aggregated metrics nor persists patterns.
const FIXED: &[(&str, bool)] =
    &[("metric_aggregation_enabled", false), ("pattern_persistence_enabled", false)];

/// The limits Loki publishes to a tenant (`/loki/api/v1/drilldown-limits` and
/// `/config/tenant/v1/limits`): the allow-listed keys of `limits`, in alphabetical order.
pub fn published_limits(limits: &Limits) -> Map<String, Value> {
    let all = serde_json::to_value(limits).unwrap_or(Value::Null);
    let mut out = Map::new();
    if let Value::Object(all) = all {
        for (k, v) in all {
            if ALLOW_PUBLISH.contains(&k.as_str()) {
                out.insert(k, v);
            }
        }
    }
    for (k, v) in FIXED {
        out.entry(k.to_string()).or_insert(Value::Bool(*v));
    }
    out
}

impl Querier {
    /// The body of `/loki/api/v1/drilldown-limits`: `tenant`'s limits.
    pub fn drilldown_limits(&self, tenant: &str) -> Value {
        let limits = published_limits(&self.limits(tenant));
        json!({
            "limits": limits,
            "pattern_ingester_enabled": self.pattern_ingester.enabled,
            "version": env!("CARGO_PKG_VERSION"),
        })
    }
}
