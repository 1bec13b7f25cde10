//! Time zones: Go's `time.LoadLocation` over the system zone database, and the offsets and
//! abbreviations of a zone at an instant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Time as GoTime;

/// Where Go's `time.LoadLocation` looks for zone files on Unix.
pub const ZONEINFO_DIRS: [&str; 4] =
    ["/usr/share/zoneinfo", "/usr/share/lib/zoneinfo", "/usr/lib/locale/TZ", "/etc/zoneinfo"];

/// Go's `time.LoadLocation` as sprig's `toDateInZone` uses it: `""` and `"UTC"` are UTC,
/// `"Local"` is the process zone (UTC, as in Loki's images), any other name is a TZif file of
/// the system time zone database. Names with `..` or a leading slash, and unknown names, are
/// errors, for which sprig falls back to UTC: all of these return `None`.
pub fn load_zone(name: &str) -> Option<Arc<tz::TimeZone>> {
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
pub fn zone_at(zone: &tz::TimeZone, unix: i64) -> (i64, String) {
    match zone.find_local_time_type(unix) {
        Ok(t) => (t.ut_offset() as i64, t.time_zone_designation().to_string()),
        Err(_) => (0, "UTC".to_string()),
    }
}

/// A time at `secs` shown in `zone`.
pub fn time_in_zone(zone: &tz::TimeZone, secs: i64, nsec: u32) -> GoTime {
    let (offset, name) = zone_at(zone, secs);
    GoTime { secs, nsec, offset: offset as i32, name: Some(name) }
}

/// Go's `time.Date` in `zone` for a wall-clock time given as seconds since the epoch as if
/// it were UTC: the zone's offset at that instant is tried first, then re-read at the
/// corrected instant (this picks Go's side of DST gaps and overlaps).
pub fn date_in_zone(zone: &tz::TimeZone, local: i64, nsec: u32) -> GoTime {
    let (first, _) = zone_at(zone, local);
    let secs = if first == 0 { local } else { local - zone_at(zone, local - first).0 };
    time_in_zone(zone, secs, nsec)
}

/// Go's `Location.lookupName`: the offset of a zone abbreviation, preferring the zone type
/// that was in effect at the time.
pub fn zone_offset_by_name(zone: &tz::TimeZone, name: &str, unix: i64) -> Option<i64> {
    let types = zone.as_ref().local_time_types();
    for t in types.iter().filter(|t| t.time_zone_designation() == name) {
        let (offset, n) = zone_at(zone, unix - t.ut_offset() as i64);
        if n == name {
            return Some(offset);
        }
    }
    types.iter().find(|t| t.time_zone_designation() == name).map(|t| t.ut_offset() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::civil::days_from_civil;
    use crate::time::layout;

    #[test]
    fn dates_in_a_zone_follow_go() {
        // US Eastern as a POSIX rule: no files needed.
        let z = tz::TimeZone::from_posix_tz("EST5EDT,M3.2.0,M11.1.0").unwrap();
        let local = |y: i64, mo: u32, d: u32, h: i64, mi: i64| {
            days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60
        };
        // summer: EDT
        let t = date_in_zone(&z, local(2021, 11, 2, 0, 0), 0);
        assert_eq!((t.secs, t.offset, t.name.as_deref()), (1_635_825_600, -14_400, Some("EDT")));
        // winter: EST
        let t = date_in_zone(&z, local(2021, 12, 2, 0, 0), 0);
        assert_eq!((t.secs - 1_638_403_200, t.offset), (18_000, -18_000));
        // in the spring-forward gap Go lands an hour earlier, in EST
        let t = date_in_zone(&z, local(2021, 3, 14, 2, 30), 0);
        assert_eq!(layout::format(&t, "15:04 MST"), "01:30 EST");
        assert_eq!(zone_offset_by_name(&z, "EDT", local(2021, 7, 1, 0, 0)), Some(-14_400));
        assert_eq!(zone_offset_by_name(&z, "CET", 0), None);
        let t = layout::parse_in_location("2006-01-02 15:04 MST", "2021-07-01 10:00 EDT", Some(&z))
            .unwrap();
        assert_eq!(t.secs, local(2021, 7, 1, 14, 0));
        let t =
            layout::parse_in_location("2006-01-02 -0700", "2021-07-01 -0400", Some(&z)).unwrap();
        assert_eq!(t.name.as_deref(), Some("EDT"));
        let t =
            layout::parse_in_location("2006-01-02 -0700", "2021-07-01 +0100", Some(&z)).unwrap();
        assert_eq!((t.offset, t.name), (3600, None));
    }
}
