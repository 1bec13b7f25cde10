//! Which tables should exist at a given time, and with which throughput: a pure function
//! of the clock, the schema periods and the `table_manager` block.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{PeriodicTableConfig, ProvisionConfig, TableManagerConfig};

/// How long after its period ends a table still receives writes and so stays *active*.
///
/// Loki hardcodes this to 12h for the table manager (`maxChunkAgeForTableManager`): chunks
/// flushed late still carry index entries for the previous table.
pub const MAX_CHUNK_AGE: Duration = Duration::from_secs(12 * 3600);

/// Capacity settings of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Throughput {
    /// On-demand billing (`PAY_PER_REQUEST`): no capacity units.
    OnDemand,
    /// Provisioned billing with fixed capacity units.
    Provisioned {
        /// Read capacity units.
        read: i64,
        /// Write capacity units.
        write: i64,
    },
}

impl std::fmt::Display for Throughput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Throughput::OnDemand => f.write_str("PAY_PER_REQUEST"),
            Throughput::Provisioned { read, write } => {
                write!(f, "PROVISIONED(read={read}, write={write})")
            }
        }
    }
}

/// A table that should exist, with the throughput it should have.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableDesc {
    /// Full table name, `<prefix><period number>`.
    pub name: String,
    /// Desired billing mode and capacity.
    pub throughput: Throughput,
}

/// Converts a time to unix seconds (negative before 1970), rounding down.
pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 {
                -secs - 1
            } else {
                -secs
            }
        }
    }
}

pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The oldest instant whose data is still within retention, or `None` when retention is
/// off (`retention_period: 0s`).
pub(crate) fn retention_cutoff(now: i64, config: &TableManagerConfig) -> Option<i64> {
    if config.retention_period.is_zero() {
        None
    } else {
        Some(now.saturating_sub(secs(config.retention_period)))
    }
}

fn active_throughput(p: &ProvisionConfig) -> Throughput {
    if p.enable_ondemand_throughput_mode {
        Throughput::OnDemand
    } else {
        Throughput::Provisioned {
            read: p.provisioned_read_throughput,
            write: p.provisioned_write_throughput,
        }
    }
}

fn inactive_throughput(p: &ProvisionConfig) -> Throughput {
    if p.enable_inactive_throughput_on_demand_mode {
        Throughput::OnDemand
    } else {
        Throughput::Provisioned {
            read: p.inactive_read_throughput,
            write: p.inactive_write_throughput,
        }
    }
}

/// Computes the index tables that should exist at `now`, sorted by name.
///
/// For each schema period (sorted by `from_secs`; it ends where the next one starts):
/// - every table overlapping `[from, min(next from, now + creation_grace_period))` is
///   expected, so the next table appears `creation_grace_period` before it starts;
/// - with `retention_period > 0`, tables whose whole range ends at or before
///   `now - retention_period` are left out (Loki does the same whether or not
///   `retention_deletes_enabled` is set; only the deletion itself depends on that flag);
/// - a table is *active* while `start - creation_grace_period <= now < end + MAX_CHUNK_AGE`
///   and gets the active throughput (`enable_ondemand_throughput_mode` or
///   `provisioned_read/write_throughput`); otherwise the inactive one
///   (`enable_inactive_throughput_on_demand_mode` or `inactive_read/write_throughput`).
///
/// Two periods with the same prefix and table period share their boundary table; it is
/// listed once, active if either period would make it active. Autoscaling settings and
/// `inactive_*_scale_lastn` are ignored (see the crate README). Only
/// `index_tables_provisioning` is used: Skald has no chunk tables.
pub fn expected_tables(
    now: SystemTime,
    periods: &[PeriodicTableConfig],
    config: &TableManagerConfig,
) -> Vec<TableDesc> {
    let now = unix_secs(now);
    let grace = secs(config.creation_grace_period);
    let horizon = now.saturating_add(grace);
    let cutoff = retention_cutoff(now, config);
    let prov = &config.index_tables_provisioning;
    let (active, inactive) = (active_throughput(prov), inactive_throughput(prov));
    let chunk_age = secs(MAX_CHUNK_AGE);

    let mut sorted: Vec<&PeriodicTableConfig> = periods.iter().collect();
    sorted.sort_by_key(|p| p.from_secs);

    // name -> is active
    let mut tables: BTreeMap<String, bool> = BTreeMap::new();
    for (i, p) in sorted.iter().enumerate() {
        let period = p.period_secs();
        let end = sorted.get(i + 1).map_or(i64::MAX, |next| next.from_secs);
        let upper = end.min(horizon);
        if upper <= p.from_secs {
            continue;
        }
        let mut first = p.table_number(p.from_secs);
        let last = p.table_number(upper - 1);
        if let Some(cutoff) = cutoff {
            // Table n covers [n*period, (n+1)*period); keep it while its end > cutoff.
            first = first.max(cutoff.div_euclid(period));
        }
        for n in first..=last {
            let start = n.saturating_mul(period);
            let table_end = start.saturating_add(period);
            let is_active =
                start.saturating_sub(grace) <= now && now < table_end.saturating_add(chunk_age);
            let entry = tables.entry(p.table_name(n)).or_insert(false);
            *entry |= is_active;
        }
    }
    tables
        .into_iter()
        .map(|(name, is_active)| TableDesc {
            name,
            throughput: if is_active { active } else { inactive },
        })
        .collect()
}

/// If `name` is `<prefix><n>` for a managed prefix, with `n` a canonical non-negative
/// decimal number (no sign, no leading zeros), returns every `(period, n)` reading of it
/// (more than one when prefixes overlap, e.g. `loki` and `loki1`).
pub(crate) fn managed_readings<'a>(
    name: &str,
    periods: &'a [PeriodicTableConfig],
) -> Vec<(&'a PeriodicTableConfig, i64)> {
    periods
        .iter()
        .filter_map(|p| {
            let suffix = name.strip_prefix(p.prefix.as_str())?;
            let canonical = !suffix.is_empty()
                && suffix.bytes().all(|b| b.is_ascii_digit())
                && (suffix == "0" || !suffix.starts_with('0'));
            if !canonical {
                return None;
            }
            suffix.parse::<i64>().ok().map(|n| (p, n))
        })
        .collect()
}

/// Returns true when `name` is a managed periodic table whose whole time range ends at or
/// before `cutoff`, under every reading of its name.
pub(crate) fn is_expired(name: &str, periods: &[PeriodicTableConfig], cutoff: i64) -> bool {
    let readings = managed_readings(name, periods);
    !readings.is_empty()
        && readings
            .iter()
            .all(|(p, n)| n.saturating_add(1).saturating_mul(p.period_secs()) <= cutoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::{at, period, DAY, HOUR, WEEK};

    const ACTIVE: Throughput = Throughput::Provisioned { read: 300, write: 1000 };
    const INACTIVE: Throughput = Throughput::Provisioned { read: 300, write: 1 };

    fn config(grace: i64) -> TableManagerConfig {
        TableManagerConfig {
            creation_grace_period: Duration::from_secs(grace as u64),
            ..Default::default()
        }
    }

    fn names(tables: &[TableDesc]) -> Vec<&str> {
        tables.iter().map(|t| t.name.as_str()).collect()
    }

    fn table(name: &str, throughput: Throughput) -> TableDesc {
        TableDesc { name: name.to_string(), throughput }
    }

    #[test]
    fn loki_naming_for_weekly_tables() {
        // 2025-05-29T00:00:00Z is a Thursday: week 2891 since the epoch (which was a Thursday).
        let from = 2891 * WEEK;
        let periods = [period(from, "loki_", WEEK)];
        let got = expected_tables(at(from + HOUR), &periods, &config(600));
        assert_eq!(got, vec![table("loki_2891", ACTIVE)]);
    }

    #[test]
    fn first_table_is_the_one_containing_from() {
        // `from` in the middle of table 10: table 10 is still expected.
        let periods = [period(10 * DAY + 5 * HOUR, "t_", DAY)];
        let got = expected_tables(at(11 * DAY + 13 * HOUR), &periods, &config(0));
        assert_eq!(got, vec![table("t_10", INACTIVE), table("t_11", ACTIVE)]);
        // Before `from` (minus grace) nothing is expected.
        assert!(expected_tables(at(10 * DAY), &periods, &config(5 * HOUR)).is_empty());
        assert_eq!(
            names(&expected_tables(at(10 * DAY), &periods, &config(5 * HOUR + 1))),
            ["t_10"]
        );
    }

    #[test]
    fn period_boundaries_and_grace() {
        let periods = [period(0, "t_", DAY)];
        let cfg = config(3 * HOUR);
        // Just before the grace window of table 6: only 0..=5.
        let got = expected_tables(at(6 * DAY - 3 * HOUR), &periods, &cfg);
        assert_eq!(got.len(), 6);
        assert_eq!(got.last().unwrap(), &table("t_5", ACTIVE));
        // One second later the grace window reaches table 6, which is created and active.
        let got = expected_tables(at(6 * DAY - 3 * HOUR + 1), &periods, &cfg);
        assert_eq!(got.len(), 7);
        assert_eq!(got.last().unwrap(), &table("t_6", ACTIVE));
        // Sorted by name (string order, like Loki), all present.
        let mut sorted = names(&got);
        sorted.sort_unstable();
        assert_eq!(names(&got), sorted);
        // Exactly on the boundary, still 0..=6; table 5 stays active for MAX_CHUNK_AGE.
        let got = expected_tables(at(6 * DAY), &periods, &cfg);
        assert_eq!(got.len(), 7);
        assert!(got.contains(&table("t_5", ACTIVE)));
        assert!(got.contains(&table("t_4", INACTIVE)));
        let got = expected_tables(at(6 * DAY + 12 * HOUR - 1), &periods, &cfg);
        assert!(got.contains(&table("t_5", ACTIVE)));
        let got = expected_tables(at(6 * DAY + 12 * HOUR), &periods, &cfg);
        assert!(got.contains(&table("t_5", INACTIVE)));
        assert!(got.contains(&table("t_6", ACTIVE)));
    }

    #[test]
    fn grace_period_crossing_a_boundary_activates_the_next_table_early() {
        let periods = [period(0, "t_", WEEK)];
        let cfg = config(10 * 60);
        let now = 3 * WEEK - 5 * 60;
        let got = expected_tables(at(now), &periods, &cfg);
        assert_eq!(
            got,
            vec![
                table("t_0", INACTIVE),
                table("t_1", INACTIVE),
                table("t_2", ACTIVE),
                table("t_3", ACTIVE),
            ]
        );
    }

    #[test]
    fn two_schema_periods_with_different_prefixes_and_periods() {
        // Daily `a_` tables until day 10, weekly `b_` tables from then on (day 10 is inside
        // week 1, which covers days 7..14).
        let periods = [period(0, "a_", DAY), period(10 * DAY, "b_", WEEK)];
        let cfg = config(HOUR);

        // Day 8: `a_0..=a_8`, `b_` not yet.
        let got = expected_tables(at(8 * DAY + HOUR), &periods, &cfg);
        assert_eq!(got.len(), 9);
        assert!(got.iter().all(|t| t.name.starts_with("a_")));

        // One hour before day 10: a_9 is the last `a_` table ever, b_1 appears (grace).
        let got = expected_tables(at(10 * DAY - HOUR + 1), &periods, &cfg);
        assert_eq!(got.len(), 11);
        assert!(got.contains(&table("a_9", ACTIVE)));
        assert!(got.contains(&table("b_1", ACTIVE)));
        assert!(!got.iter().any(|t| t.name == "a_10"));

        // Day 12: a_9 became inactive 12h after day 10; still no a_10; b_1 active.
        let got = expected_tables(at(12 * DAY), &periods, &cfg);
        assert_eq!(got.len(), 11);
        assert!(got.contains(&table("a_9", INACTIVE)));
        assert!(got.contains(&table("b_1", ACTIVE)));

        // Just before week 2 minus grace: b_2 not yet; then it appears.
        assert_eq!(expected_tables(at(2 * WEEK - HOUR), &periods, &cfg).len(), 11);
        let got = expected_tables(at(2 * WEEK - HOUR + 1), &periods, &cfg);
        assert_eq!(got.len(), 12);
        assert!(got.contains(&table("b_2", ACTIVE)));
    }

    #[test]
    fn a_future_schema_period_appears_only_within_grace() {
        let periods = [period(0, "a_", DAY), period(5 * DAY, "b_", DAY)];
        let cfg = config(2 * HOUR);
        let got = expected_tables(at(5 * DAY - 2 * HOUR), &periods, &cfg);
        assert_eq!(names(&got), ["a_0", "a_1", "a_2", "a_3", "a_4"]);
        let got = expected_tables(at(5 * DAY - 2 * HOUR + 1), &periods, &cfg);
        assert_eq!(names(&got), ["a_0", "a_1", "a_2", "a_3", "a_4", "b_5"]);
        // Unsorted input gives the same answer.
        let reversed = [periods[1].clone(), periods[0].clone()];
        assert_eq!(expected_tables(at(5 * DAY - 2 * HOUR + 1), &reversed, &cfg), got);
    }

    #[test]
    fn same_prefix_and_period_share_the_boundary_table_once() {
        // Loki's v10 -> v11 upgrade pattern: same prefix, same period, new `from` mid-week.
        let periods = [period(0, "loki_", WEEK), period(WEEK + 3 * DAY, "loki_", WEEK)];
        let got = expected_tables(at(2 * WEEK + DAY), &periods, &config(600));
        assert_eq!(
            got,
            vec![table("loki_0", INACTIVE), table("loki_1", INACTIVE), table("loki_2", ACTIVE)]
        );
    }

    #[test]
    fn retention_keeps_tables_overlapping_the_retention_window() {
        let periods = [period(0, "t_", DAY)];
        let mut cfg = config(3 * HOUR);
        cfg.retention_period = Duration::from_secs(3 * DAY as u64);
        cfg.retention_deletes_enabled = true;

        // now = day 10 + 1h: cutoff = day 7 + 1h; table 6 (ends day 7) is gone, 7..=10 kept:
        // floor(retention / period) + 1 = 4 tables, Loki's documented count.
        let got = expected_tables(at(10 * DAY + HOUR), &periods, &cfg);
        assert_eq!(names(&got), ["t_10", "t_7", "t_8", "t_9"]);
        // Exactly on day 10, table 7 (ends day 8) is kept and table 6 ends exactly at the
        // cutoff, so it is gone.
        let got = expected_tables(at(10 * DAY), &periods, &cfg);
        assert_eq!(names(&got), ["t_10", "t_7", "t_8", "t_9"]);
        // In the grace window the upcoming table is added without dropping the oldest early.
        let got = expected_tables(at(11 * DAY - HOUR), &periods, &cfg);
        assert_eq!(names(&got), ["t_10", "t_11", "t_7", "t_8", "t_9"]);
        // Retention applies (to the expected set) with deletes disabled too, as in Loki.
        cfg.retention_deletes_enabled = false;
        assert_eq!(names(&expected_tables(at(10 * DAY), &periods, &cfg)).len(), 4);
        // Retention 0 keeps everything.
        cfg.retention_period = Duration::ZERO;
        assert_eq!(expected_tables(at(10 * DAY), &periods, &cfg).len(), 11);
    }

    #[test]
    fn retention_removes_whole_old_schema_periods() {
        let periods = [period(0, "a_", DAY), period(10 * DAY, "b_", WEEK)];
        let mut cfg = config(HOUR);
        cfg.retention_period = Duration::from_secs(WEEK as u64);
        cfg.retention_deletes_enabled = true;
        // now = day 17: cutoff = day 10 -> every `a_` table (the last ends on day 10) is gone.
        let got = expected_tables(at(17 * DAY), &periods, &cfg);
        assert_eq!(names(&got), ["b_1", "b_2"]);
        // One second earlier, a_9 is still in.
        let got = expected_tables(at(17 * DAY - 1), &periods, &cfg);
        assert_eq!(names(&got), ["a_9", "b_1", "b_2"]);
    }

    #[test]
    fn on_demand_flags() {
        let periods = [period(0, "t_", DAY)];
        let mut cfg = config(0);
        cfg.index_tables_provisioning.enable_ondemand_throughput_mode = true;
        let now = at(3 * DAY + HOUR);
        let got = expected_tables(now, &periods, &cfg);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], table("t_0", INACTIVE));
        assert_eq!(got[2], table("t_2", Throughput::OnDemand));
        assert_eq!(got[3], table("t_3", Throughput::OnDemand));

        cfg.index_tables_provisioning.enable_ondemand_throughput_mode = false;
        cfg.index_tables_provisioning.enable_inactive_throughput_on_demand_mode = true;
        cfg.index_tables_provisioning.provisioned_read_throughput = 7;
        cfg.index_tables_provisioning.provisioned_write_throughput = 8;
        let got = expected_tables(now, &periods, &cfg);
        assert_eq!(got[0], table("t_0", Throughput::OnDemand));
        assert_eq!(got[3], table("t_3", Throughput::Provisioned { read: 7, write: 8 }));

        // Chunk table settings never matter.
        cfg.chunk_tables_provisioning.enable_ondemand_throughput_mode = true;
        assert_eq!(expected_tables(now, &periods, &cfg), got);
    }

    #[test]
    fn autoscaling_settings_are_ignored() {
        let periods = [period(0, "t_", DAY)];
        let plain = config(0);
        let mut scaled = plain.clone();
        scaled.index_tables_provisioning.write_scale.enabled = true;
        scaled.index_tables_provisioning.inactive_read_scale.enabled = true;
        scaled.index_tables_provisioning.inactive_read_scale_lastn = 1;
        assert_eq!(
            expected_tables(at(9 * DAY), &periods, &scaled),
            expected_tables(at(9 * DAY), &periods, &plain)
        );
    }

    #[test]
    fn managed_names_and_expiry() {
        let periods = [period(0, "loki", DAY), period(100 * DAY, "loki1", WEEK)];
        assert_eq!(managed_readings("loki5", &periods).len(), 1);
        assert_eq!(managed_readings("loki12", &periods).len(), 2);
        for unmanaged in
            ["loki", "lokiabc", "loki_5", "loki05", "loki-1", "loki+1", "other5", "loki1a"]
        {
            assert!(managed_readings(unmanaged, &periods).is_empty(), "{unmanaged}");
        }
        assert_eq!(managed_readings("loki0", &periods).len(), 1);
        assert!(managed_readings("loki99999999999999999999", &periods).is_empty());

        assert!(is_expired("loki5", &periods, 6 * DAY));
        assert!(!is_expired("loki5", &periods, 6 * DAY - 1));
        // `loki12` is daily table 12 (ends day 13) or weekly `loki1` table 2 (ends day 21):
        // only expired when both readings are.
        assert!(!is_expired("loki12", &periods, 13 * DAY));
        assert!(is_expired("loki12", &periods, 21 * DAY));
        assert!(!is_expired("lokiabc", &periods, i64::MAX));
    }

    #[test]
    fn unix_secs_rounds_down() {
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_millis(1500)), 1);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_millis(1500)), -2);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(2)), -2);
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        /// Brute-force restatement of the rules, table by table.
        fn oracle(
            now: i64,
            periods: &[PeriodicTableConfig],
            cfg: &TableManagerConfig,
        ) -> Vec<TableDesc> {
            let grace = secs(cfg.creation_grace_period);
            let retention = secs(cfg.retention_period);
            let mut out: BTreeMap<String, bool> = BTreeMap::new();
            for (i, p) in periods.iter().enumerate() {
                let until = periods.get(i + 1).map_or(i64::MAX, |q| q.from_secs);
                let len = p.period_secs();
                let mut n = 0;
                loop {
                    let (start, end) = (n * len, (n + 1) * len);
                    let needed_from = start.max(p.from_secs);
                    if needed_from >= until || needed_from >= now + grace {
                        break;
                    }
                    let overlaps = end > p.from_secs;
                    let retained = retention == 0 || end > now - retention;
                    if overlaps && retained {
                        let active = start - grace <= now && now < end + secs(MAX_CHUNK_AGE);
                        *out.entry(p.table_name(n)).or_default() |= active;
                    }
                    n += 1;
                }
            }
            let prov = &cfg.index_tables_provisioning;
            out.into_iter()
                .map(|(name, active)| TableDesc {
                    name,
                    throughput: if active {
                        active_throughput(prov)
                    } else {
                        inactive_throughput(prov)
                    },
                })
                .collect()
        }

        fn periods() -> impl Strategy<Value = Vec<PeriodicTableConfig>> {
            prop::collection::vec((0i64..200 * DAY, 0usize..3, 1i64..15), 1..4).prop_map(|raw| {
                let mut from = 0;
                raw.into_iter()
                    .map(|(gap, prefix, days)| {
                        from += gap + 1;
                        period(from, ["a_", "b_", "a_"][prefix], days * DAY)
                    })
                    .collect()
            })
        }

        proptest! {
            #[test]
            fn matches_the_brute_force_oracle(
                periods in periods(),
                now in 0i64..800 * DAY,
                grace in 0i64..3 * DAY,
                retention_days in prop::sample::select(vec![0i64, 1, 3, 7, 14, 30]),
                on_demand in any::<bool>(),
            ) {
                let mut cfg = config(grace);
                cfg.retention_period = Duration::from_secs((retention_days * DAY) as u64);
                cfg.index_tables_provisioning.enable_ondemand_throughput_mode = on_demand;
                let got = expected_tables(at(now), &periods, &cfg);
                prop_assert_eq!(&got, &oracle(now, &periods, &cfg));
                // Sorted and unique by name.
                prop_assert!(got.windows(2).all(|w| w[0].name < w[1].name));
                // No expected table is ever a deletion candidate.
                if let Some(cutoff) = retention_cutoff(now, &cfg) {
                    for t in &got {
                        prop_assert!(!is_expired(&t.name, &periods, cutoff), "{} expected and expired", t.name);
                    }
                }
            }

            #[test]
            fn without_retention_tables_only_accumulate(
                periods in periods(),
                t1 in 0i64..800 * DAY,
                dt in 0i64..30 * DAY,
                grace in 0i64..3 * DAY,
            ) {
                let cfg = config(grace);
                let before = expected_tables(at(t1), &periods, &cfg);
                let after = expected_tables(at(t1 + dt), &periods, &cfg);
                for t in &before {
                    prop_assert!(after.iter().any(|a| a.name == t.name), "{} vanished", t.name);
                }
            }
        }
    }
}
