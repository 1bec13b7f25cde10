//! Time zones: Go's `time.LoadLocation` over the system zone database, and the offsets and
//! abbreviations of a zone at an instant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::time::GoTime;

/// Where Go's `time.LoadLocation` looks for zone files on Unix.
pub(super) const ZONEINFO_DIRS: [&str; 4] =
    ["/usr/share/zoneinfo", "/usr/share/lib/zoneinfo", "/usr/lib/locale/TZ", "/etc/zoneinfo"];

/// Go's `time.LoadLocation` as sprig's `toDateInZone` uses it: `""` and `"UTC"` are UTC,
/// `"Local"` is the process zone (UTC, as in Loki's images), any other name is a TZif file of
/// the system time zone database. Names with `..` or a leading slash, and unknown names, are
/// errors, for which sprig falls back to UTC: all of these return `None`.
pub(super) fn load_zone(name: &str) -> Option<Arc<tz::TimeZone>> {
    type Cache = Mutex<HashMap<String, Option<Arc<tz::TimeZone>>>>;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    if name.is_empty() || name == "UTC" || name == "Local" {
        return None;
    }
    if name.contains("..") || name.starts_with('/') || name.starts_with('\\') {
        return None;
    }
    let cache = CACHE.get_or_init(Cache::default);
    if let Some(z) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
        return z.clone();
    }
    let zone = ZONEINFO_DIRS
        .iter()
        .find_map(|d| std::fs::read(std::path::Path::new(d).join(name)).ok())
        .and_then(|b| tz::TimeZone::from_tz_data(&b).ok())
        .map(Arc::new);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if c.len() < 256 {
        c.insert(name.to_string(), zone.clone());
    }
    zone
}

/// The offset and abbreviation of `zone` at `unix` seconds.
pub(super) fn zone_at(zone: &tz::TimeZone, unix: i64) -> (i64, String) {
    match zone.find_local_time_type(unix) {
        Ok(t) => (t.ut_offset() as i64, t.time_zone_designation().to_string()),
        Err(_) => (0, "UTC".to_string()),
    }
}

/// A time at `secs` shown in `zone`.
pub(super) fn time_in_zone(zone: &tz::TimeZone, secs: i64, nsec: u32) -> GoTime {
    let (offset, name) = zone_at(zone, secs);
    GoTime { secs, nsec, offset: offset as i32, name: Some(name) }
}

/// Go's `time.Date` in `zone` for a wall-clock time given as seconds since the epoch as if
/// it were UTC: the zone's offset at that instant is tried first, then re-read at the
/// corrected instant (this picks Go's side of DST gaps and overlaps).
pub(super) fn date_in_zone(zone: &tz::TimeZone, local: i64, nsec: u32) -> GoTime {
    let (first, _) = zone_at(zone, local);
    let secs = if first == 0 { local } else { local - zone_at(zone, local - first).0 };
    time_in_zone(zone, secs, nsec)
}

/// Go's `Location.lookupName`: the offset of a zone abbreviation, preferring the zone type
/// that was in effect at the time.
pub(super) fn zone_offset_by_name(zone: &tz::TimeZone, name: &str, unix: i64) -> Option<i64> {
    let types = zone.as_ref().local_time_types();
    for t in types.iter().filter(|t| t.time_zone_designation() == name) {
        let (offset, n) = zone_at(zone, unix - t.ut_offset() as i64);
        if n == name {
            return Some(offset);
        }
    }
    types.iter().find(|t| t.time_zone_designation() == name).map(|t| t.ut_offset() as i64)
}
