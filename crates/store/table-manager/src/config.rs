//! The `table_manager` configuration block (Loki's key names and defaults), the periodic
//! table inputs derived from `schema_config`, and their validation.
//!
//! Loki reference: the `table_manager` block of Loki's configuration reference and
//! `docs/sources/operations/storage/table-manager/_index.md`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use skald_common::units::{duration, format_duration};

/// Seconds in a day: periods and retention must be whole multiples of it.
const DAY_SECS: u64 = 86_400;

/// The `table_manager` block: how periodic DynamoDB tables are created ahead of time,
/// provisioned, and deleted after the retention period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TableManagerConfig {
    /// Master off-switch for capacity and billing-mode updates of existing tables (e.g. while
    /// troubleshooting). Missing tables are still created and expired ones still deleted.
    pub throughput_updates_disabled: bool,
    /// Master on-switch for deleting tables past `retention_period`. Off by default because
    /// it destroys data.
    pub retention_deletes_enabled: bool,
    /// How far back tables are kept. `0s` disables retention. Must be a multiple of `24h` and
    /// of the index table `period`.
    #[serde(with = "duration")]
    pub retention_period: Duration,
    /// How often the tables are reconciled.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// How long before its period starts a table is created (and made active).
    #[serde(with = "duration")]
    pub creation_grace_period: Duration,
    /// Throughput of the index tables. These are the tables this crate manages.
    pub index_tables_provisioning: ProvisionConfig,
    /// Throughput of the chunk tables. Accepted for Loki compatibility and otherwise ignored:
    /// Skald keeps chunks in object storage, so it has no chunk tables.
    pub chunk_tables_provisioning: ProvisionConfig,
}

impl Default for TableManagerConfig {
    fn default() -> Self {
        Self {
            throughput_updates_disabled: false,
            retention_deletes_enabled: false,
            retention_period: Duration::ZERO,
            poll_interval: Duration::from_secs(120),
            creation_grace_period: Duration::from_secs(600),
            index_tables_provisioning: ProvisionConfig::default(),
            chunk_tables_provisioning: ProvisionConfig::default(),
        }
    }
}

/// Loki's `provision_config`: capacity of active and inactive tables.
///
/// A table is *active* from `creation_grace_period` before its period starts until
/// [`MAX_CHUNK_AGE`](crate::MAX_CHUNK_AGE) after it ends; otherwise it is *inactive*.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvisionConfig {
    /// Active tables use on-demand billing (`PAY_PER_REQUEST`) instead of provisioned
    /// capacity.
    pub enable_ondemand_throughput_mode: bool,
    /// Write capacity units of active tables in provisioned mode.
    pub provisioned_write_throughput: i64,
    /// Read capacity units of active tables in provisioned mode.
    pub provisioned_read_throughput: i64,
    /// Write autoscaling of active tables. Accepted and ignored: Skald does not register
    /// Application Auto Scaling policies.
    pub write_scale: AutoScalingConfig,
    /// Read autoscaling of active tables. Accepted and ignored.
    pub read_scale: AutoScalingConfig,
    /// Inactive tables use on-demand billing (`PAY_PER_REQUEST`) instead of provisioned
    /// capacity.
    pub enable_inactive_throughput_on_demand_mode: bool,
    /// Write capacity units of inactive tables in provisioned mode.
    pub inactive_write_throughput: i64,
    /// Read capacity units of inactive tables in provisioned mode.
    pub inactive_read_throughput: i64,
    /// Write autoscaling of the last inactive tables. Accepted and ignored.
    pub inactive_write_scale: AutoScalingConfig,
    /// Read autoscaling of the last inactive tables. Accepted and ignored.
    pub inactive_read_scale: AutoScalingConfig,
    /// How many of the newest inactive tables get `inactive_write_scale`. Accepted and
    /// ignored, like the autoscaling it selects for.
    pub inactive_write_scale_lastn: i64,
    /// How many of the newest inactive tables get `inactive_read_scale`. Accepted and ignored.
    pub inactive_read_scale_lastn: i64,
}

impl Default for ProvisionConfig {
    fn default() -> Self {
        Self {
            enable_ondemand_throughput_mode: false,
            provisioned_write_throughput: 1000,
            provisioned_read_throughput: 300,
            write_scale: AutoScalingConfig::default(),
            read_scale: AutoScalingConfig::default(),
            enable_inactive_throughput_on_demand_mode: false,
            inactive_write_throughput: 1,
            inactive_read_throughput: 300,
            inactive_write_scale: AutoScalingConfig::default(),
            inactive_read_scale: AutoScalingConfig::default(),
            inactive_write_scale_lastn: 4,
            inactive_read_scale_lastn: 4,
        }
    }
}

impl ProvisionConfig {
    /// Returns true when any of the (ignored) autoscaling blocks is enabled.
    pub fn autoscaling_enabled(&self) -> bool {
        [&self.write_scale, &self.read_scale, &self.inactive_write_scale, &self.inactive_read_scale]
            .iter()
            .any(|scale| scale.enabled)
    }
}

/// Loki's `auto_scaling_config` (DynamoDB Application Auto Scaling). Parsed so that Loki
/// configs load unchanged; Skald never applies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoScalingConfig {
    /// Whether autoscaling is enabled for the table.
    pub enabled: bool,
    /// AWS AutoScaling role ARN.
    pub role_arn: String,
    /// Minimum provisioned capacity.
    pub min_capacity: i64,
    /// Maximum provisioned capacity.
    pub max_capacity: i64,
    /// Minimum seconds between each scale-out.
    pub out_cooldown: i64,
    /// Minimum seconds between each scale-in.
    pub in_cooldown: i64,
    /// Target ratio (percent) of consumed to provisioned capacity.
    pub target: f64,
}

impl Default for AutoScalingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            role_arn: String::new(),
            min_capacity: 3000,
            max_capacity: 6000,
            out_cooldown: 1800,
            in_cooldown: 1800,
            target: 80.0,
        }
    }
}

/// One `schema_config` period whose index lives in DynamoDB periodic tables.
///
/// The period starts at `from_secs` and runs until the next period's `from_secs` (the last
/// one runs forever). Its tables are named `<prefix><n>` with
/// `n = floor(unix seconds / period seconds)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodicTableConfig {
    /// Start of the schema period (`from`), in unix seconds.
    pub from_secs: i64,
    /// Table name prefix (`index.prefix`), e.g. `loki_`.
    pub prefix: String,
    /// Time range covered by one table (`index.period`), e.g. 168h.
    pub period: Duration,
}

impl PeriodicTableConfig {
    /// Returns the period length in whole seconds (at least 1, so that it can divide).
    pub(crate) fn period_secs(&self) -> i64 {
        i64::try_from(self.period.as_secs()).unwrap_or(i64::MAX).max(1)
    }

    /// Returns the table name for table number `n`.
    pub fn table_name(&self, n: i64) -> String {
        skald_index::dynamo::table_name(&self.prefix, n)
    }

    /// Returns the number of the table holding data at `unix_secs`.
    pub fn table_number(&self, unix_secs: i64) -> i64 {
        unix_secs.div_euclid(self.period_secs())
    }

    fn describe(&self) -> String {
        let day = chrono::DateTime::from_timestamp(self.from_secs, 0)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| self.from_secs.to_string());
        format!("schema_config period from {day} (prefix `{}`)", self.prefix)
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{key}`: {reason}")]
pub struct ConfigError {
    /// The offending key, e.g. `table_manager.retention_period`.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { key: key.into(), reason: reason.into() }
    }
}

fn is_multiple(d: Duration, of_secs: u64) -> bool {
    d.subsec_nanos() == 0 && of_secs > 0 && d.as_secs().is_multiple_of(of_secs)
}

/// Checks the `table_manager` block together with the DynamoDB schema periods.
///
/// Rules (Loki's, plus what keeps table names unambiguous):
/// - every period has a non-empty prefix of DynamoDB table-name characters (`a-z A-Z 0-9 _ - .`),
///   a `period` that is a positive multiple of `24h`, and a `from` not before 1970; periods are
///   sorted by strictly increasing `from`;
/// - `retention_period` is `0s` or a multiple of `24h` and of the newest period's `period`
///   (Loki's check); with `retention_deletes_enabled` it must also be a multiple of every
///   period, so that whole tables expire;
/// - `poll_interval` is positive;
/// - capacities that index tables can be given in provisioned mode are at least 1.
pub fn validate(
    config: &TableManagerConfig,
    periods: &[PeriodicTableConfig],
) -> Result<(), ConfigError> {
    if config.poll_interval.is_zero() {
        return Err(ConfigError::new("table_manager.poll_interval", "must be greater than 0s"));
    }
    for (i, p) in periods.iter().enumerate() {
        let what = p.describe();
        if p.prefix.is_empty() {
            return Err(ConfigError::new(
                "index.prefix",
                format!("{what}: a DynamoDB periodic table prefix must not be empty"),
            ));
        }
        if let Some(c) =
            p.prefix.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(ConfigError::new(
                "index.prefix",
                format!("{what}: character {c:?} is not allowed in a DynamoDB table name"),
            ));
        }
        if p.period.is_zero() || !is_multiple(p.period, DAY_SECS) {
            return Err(ConfigError::new(
                "index.period",
                format!(
                    "{what}: must be a positive multiple of 24h, got {}",
                    format_duration(p.period)
                ),
            ));
        }
        if p.from_secs < 0 {
            return Err(ConfigError::new("from", format!("{what}: must not be before 1970-01-01")));
        }
        if i > 0 && periods[i - 1].from_secs >= p.from_secs {
            return Err(ConfigError::new(
                "from",
                format!("{what}: periods must be sorted by strictly increasing `from`"),
            ));
        }
    }

    let retention = config.retention_period;
    if !retention.is_zero() {
        if !is_multiple(retention, DAY_SECS) {
            return Err(ConfigError::new(
                "table_manager.retention_period",
                format!("must be 0s or a multiple of 24h, got {}", format_duration(retention)),
            ));
        }
        let must_divide: &[PeriodicTableConfig] = if config.retention_deletes_enabled {
            periods
        } else {
            periods.last().map(std::slice::from_ref).unwrap_or_default()
        };
        for p in must_divide {
            if !is_multiple(retention, p.period.as_secs()) {
                return Err(ConfigError::new(
                    "table_manager.retention_period",
                    format!(
                        "must be a multiple of the table period {} of the {}, got {}",
                        format_duration(p.period),
                        p.describe(),
                        format_duration(retention)
                    ),
                ));
            }
        }
    }

    let prov = &config.index_tables_provisioning;
    let mut capacities = Vec::new();
    if !prov.enable_ondemand_throughput_mode {
        capacities.push(("provisioned_write_throughput", prov.provisioned_write_throughput));
        capacities.push(("provisioned_read_throughput", prov.provisioned_read_throughput));
    }
    if !prov.enable_inactive_throughput_on_demand_mode {
        capacities.push(("inactive_write_throughput", prov.inactive_write_throughput));
        capacities.push(("inactive_read_throughput", prov.inactive_read_throughput));
    }
    for (key, value) in capacities {
        if value < 1 {
            return Err(ConfigError::new(
                format!("table_manager.index_tables_provisioning.{key}"),
                format!("DynamoDB needs at least 1 capacity unit in provisioned mode, got {value}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Root {
        table_manager: TableManagerConfig,
    }

    const DAY: u64 = 86_400;

    fn period(from_secs: i64, prefix: &str, days: u64) -> PeriodicTableConfig {
        PeriodicTableConfig {
            from_secs,
            prefix: prefix.to_string(),
            period: Duration::from_secs(days * DAY),
        }
    }

    #[test]
    fn parses_the_loki_example_block_unchanged() {
        let yaml = r#"
table_manager:
  creation_grace_period: 3h
  retention_deletes_enabled: false
  retention_period: 0s
  chunk_tables_provisioning:
    enable_ondemand_throughput_mode: true
    enable_inactive_throughput_on_demand_mode: true
  index_tables_provisioning:
    enable_ondemand_throughput_mode: true
    enable_inactive_throughput_on_demand_mode: true
"#;
        let cfg = serde_yaml::from_str::<Root>(yaml).unwrap().table_manager;
        assert_eq!(cfg.creation_grace_period, Duration::from_secs(3 * 3600));
        assert!(!cfg.retention_deletes_enabled);
        assert_eq!(cfg.retention_period, Duration::ZERO);
        assert_eq!(cfg.poll_interval, Duration::from_secs(120));
        assert!(cfg.index_tables_provisioning.enable_ondemand_throughput_mode);
        assert!(cfg.index_tables_provisioning.enable_inactive_throughput_on_demand_mode);
        assert!(cfg.chunk_tables_provisioning.enable_ondemand_throughput_mode);
        assert_eq!(cfg.index_tables_provisioning.provisioned_write_throughput, 1000);
        validate(&cfg, &[period(0, "loki_", 7)]).unwrap();
    }

    #[test]
    fn defaults_match_loki() {
        let cfg: TableManagerConfig = serde_yaml::from_str("{}").unwrap();
        assert_eq!(cfg, TableManagerConfig::default());
        assert!(!cfg.throughput_updates_disabled);
        assert!(!cfg.retention_deletes_enabled);
        assert_eq!(cfg.retention_period, Duration::ZERO);
        assert_eq!(cfg.poll_interval, Duration::from_secs(120));
        assert_eq!(cfg.creation_grace_period, Duration::from_secs(600));
        let p = &cfg.index_tables_provisioning;
        assert!(!p.enable_ondemand_throughput_mode);
        assert!(!p.enable_inactive_throughput_on_demand_mode);
        assert_eq!((p.provisioned_write_throughput, p.provisioned_read_throughput), (1000, 300));
        assert_eq!((p.inactive_write_throughput, p.inactive_read_throughput), (1, 300));
        assert_eq!((p.inactive_write_scale_lastn, p.inactive_read_scale_lastn), (4, 4));
        assert!(!p.autoscaling_enabled());
        assert_eq!(p.write_scale.min_capacity, 3000);
        assert_eq!(p.write_scale.max_capacity, 6000);
        assert_eq!(p.write_scale.target, 80.0);
    }

    #[test]
    fn parses_every_key_and_round_trips() {
        let yaml = r#"
throughput_updates_disabled: true
retention_deletes_enabled: true
retention_period: 4w
poll_interval: 30s
creation_grace_period: 1h
index_tables_provisioning:
  enable_ondemand_throughput_mode: false
  provisioned_write_throughput: 50
  provisioned_read_throughput: 60
  write_scale:
    enabled: true
    role_arn: arn:aws:iam::123:role/scale
    min_capacity: 10
    max_capacity: 20
    out_cooldown: 100
    in_cooldown: 200
    target: 75.5
  read_scale: {enabled: false}
  enable_inactive_throughput_on_demand_mode: true
  inactive_write_throughput: 2
  inactive_read_throughput: 3
  inactive_write_scale: {enabled: true}
  inactive_read_scale: {}
  inactive_write_scale_lastn: 2
  inactive_read_scale_lastn: 1
chunk_tables_provisioning: {}
"#;
        let cfg: TableManagerConfig = serde_yaml::from_str(yaml).unwrap();
        assert!(cfg.throughput_updates_disabled);
        assert_eq!(cfg.retention_period, Duration::from_secs(28 * DAY));
        assert_eq!(cfg.poll_interval, Duration::from_secs(30));
        let p = &cfg.index_tables_provisioning;
        assert_eq!(p.provisioned_write_throughput, 50);
        assert_eq!(p.write_scale.role_arn, "arn:aws:iam::123:role/scale");
        assert_eq!(p.write_scale.target, 75.5);
        assert_eq!(p.inactive_read_scale_lastn, 1);
        assert!(p.autoscaling_enabled());
        let printed = serde_yaml::to_string(&cfg).unwrap();
        assert_eq!(serde_yaml::from_str::<TableManagerConfig>(&printed).unwrap(), cfg);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_yaml::from_str::<TableManagerConfig>("retention_perod: 1d").unwrap_err();
        assert!(err.to_string().contains("retention_perod"), "{err}");
        let err = serde_yaml::from_str::<TableManagerConfig>(
            "index_tables_provisioning: {write_throughput: 1}",
        )
        .unwrap_err();
        assert!(err.to_string().contains("write_throughput"), "{err}");
    }

    fn invalid(config: &TableManagerConfig, periods: &[PeriodicTableConfig]) -> ConfigError {
        validate(config, periods).unwrap_err()
    }

    #[test]
    fn periods_must_be_whole_days_with_usable_prefixes() {
        let cfg = TableManagerConfig::default();
        let mut p = period(0, "loki_", 1);
        p.period = Duration::from_secs(25 * 3600);
        let err = invalid(&cfg, &[p]);
        assert_eq!(err.key, "index.period");
        assert!(err.to_string().contains("multiple of 24h, got 1d1h"), "{err}");
        assert!(err.to_string().contains("from 1970-01-01"), "{err}");

        let mut p = period(0, "loki_", 1);
        p.period = Duration::ZERO;
        assert_eq!(invalid(&cfg, &[p]).key, "index.period");
        assert_eq!(invalid(&cfg, &[period(0, "", 1)]).key, "index.prefix");
        assert_eq!(invalid(&cfg, &[period(0, "lo ki", 1)]).key, "index.prefix");
        assert_eq!(invalid(&cfg, &[period(-(DAY as i64), "a_", 1)]).key, "from");
        let err = invalid(&cfg, &[period(DAY as i64, "a_", 1), period(DAY as i64, "b_", 1)]);
        assert_eq!(err.key, "from");
        validate(&cfg, &[period(0, "a_", 1), period(DAY as i64, "b.-_", 7)]).unwrap();
        validate(&cfg, &[]).unwrap();
    }

    #[test]
    fn retention_rules() {
        let weekly = [period(0, "a_", 1), period(10 * DAY as i64, "b_", 7)];
        let mut cfg = TableManagerConfig {
            retention_period: Duration::from_secs(36 * 3600),
            ..Default::default()
        };
        let err = invalid(&cfg, &weekly);
        assert_eq!(err.key, "table_manager.retention_period");
        assert_eq!(
            err.to_string(),
            "invalid `table_manager.retention_period`: must be 0s or a multiple of 24h, got 1d12h"
        );

        // Loki's rule: a multiple of the newest period, even with deletes disabled.
        cfg.retention_period = Duration::from_secs(10 * DAY);
        let err = invalid(&cfg, &weekly);
        assert!(err.to_string().contains("multiple of the table period 1w"), "{err}");
        cfg.retention_period = Duration::from_secs(14 * DAY);
        validate(&cfg, &weekly).unwrap();

        // With deletes enabled, every period must divide it.
        cfg.retention_deletes_enabled = true;
        let periods = [period(0, "a_", 3), period(10 * DAY as i64, "b_", 7)];
        let err = invalid(&cfg, &periods);
        assert!(err.to_string().contains("1970-01-01 (prefix `a_`)"), "{err}");
        assert!(err.to_string().contains("table period 3d"), "{err}");
        validate(&cfg, &weekly).unwrap();
        cfg.retention_deletes_enabled = false;
        validate(&cfg, &periods).unwrap();
    }

    #[test]
    fn poll_interval_and_capacities() {
        let periods = [period(0, "a_", 1)];
        let cfg = TableManagerConfig { poll_interval: Duration::ZERO, ..Default::default() };
        assert_eq!(invalid(&cfg, &periods).key, "table_manager.poll_interval");

        let mut cfg = TableManagerConfig::default();
        cfg.index_tables_provisioning.inactive_write_throughput = 0;
        let err = invalid(&cfg, &periods);
        assert_eq!(err.key, "table_manager.index_tables_provisioning.inactive_write_throughput");
        cfg.index_tables_provisioning.enable_inactive_throughput_on_demand_mode = true;
        validate(&cfg, &periods).unwrap();
        // Chunk tables are never created, so their numbers do not matter.
        cfg.chunk_tables_provisioning.provisioned_read_throughput = 0;
        validate(&cfg, &periods).unwrap();
    }
}
