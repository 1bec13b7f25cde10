//! Helpers the unit tests of several modules share.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::PeriodicTableConfig;

/// Seconds in an hour, a day, a week.
pub(crate) const HOUR: i64 = 3600;
pub(crate) const DAY: i64 = 24 * HOUR;
pub(crate) const WEEK: i64 = 7 * DAY;

/// The instant `secs` seconds after the epoch (not negative).
pub(crate) fn at(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).expect("non-negative test time"))
}

/// A schema period from `from_secs` with tables `<prefix><n>` of `period_secs`.
pub(crate) fn period(from_secs: i64, prefix: &str, period_secs: i64) -> PeriodicTableConfig {
    PeriodicTableConfig {
        from_secs,
        prefix: prefix.to_string(),
        period: Duration::from_secs(period_secs as u64),
    }
}
