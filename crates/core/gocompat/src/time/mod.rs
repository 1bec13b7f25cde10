//! Go's `time` package: a `time.Time` value ([`Time`]: an instant and the zone it is shown
//! in), the fixed UTC layouts Loki prints (`RFC3339`, `RFC3339Nano`, milliseconds,
//! `Time.String`), `Time.Format` and `time.Parse` over Go's reference layouts ([`layout`]), and
//! `time.LoadLocation` over the system zone database ([`zone`]).

use crate::civil::{civil_from_days, days_from_civil};

pub mod layout;
pub mod zone;

const NS: i64 = 1_000_000_000;

/// Go's `time.Time`: an instant plus the zone it is shown in.
#[derive(Debug, Clone, PartialEq)]
pub struct Time {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nsec: u32,
    /// The zone's offset east of UTC, in seconds.
    pub offset: i32,
    /// Zone abbreviation; `None` prints the numeric offset (Go's unnamed fixed zone).
    pub name: Option<String>,
}

impl Time {
    /// The instant `secs`, `nsec` in UTC.
    pub fn utc(secs: i64, nsec: u32) -> Self {
        Time { secs, nsec, offset: 0, name: Some("UTC".to_string()) }
    }

    /// Go's `time.Unix(0, ns).UTC()`.
    pub fn from_unix_nanos(ns: i64) -> Self {
        Self::utc(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32)
    }

    /// Go's zero `time.Time`: January 1, year 1, 00:00:00 UTC.
    pub fn zero() -> Self {
        Self::utc(-62_135_596_800, 0)
    }

    /// Go's `time.Now().UTC()`.
    pub fn now() -> Self {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Self::utc(d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                Self::from_unix_nanos(-(d.as_nanos().min(i64::MAX as u128) as i64))
            }
        }
    }

    /// Go's `Time.UTC()`.
    pub fn to_utc(&self) -> Self {
        Self::utc(self.secs, self.nsec)
    }

    /// Go's `Time.UnixMilli()`.
    pub fn unix_milli(&self) -> i64 {
        self.secs.wrapping_mul(1000).wrapping_add(self.nsec as i64 / 1_000_000)
    }

    /// Go's `Time.UnixMicro()`.
    pub fn unix_micro(&self) -> i64 {
        self.secs.wrapping_mul(1_000_000).wrapping_add(self.nsec as i64 / 1000)
    }

    /// Go's `Time.UnixNano()` (wrapping outside its range, as Go's does).
    pub fn unix_nano(&self) -> i64 {
        self.secs.wrapping_mul(1_000_000_000).wrapping_add(self.nsec as i64)
    }

    /// Civil fields in the time's own zone.
    pub fn civil(&self) -> Civil {
        let local = self.secs.saturating_add(self.offset as i64);
        let days = local.div_euclid(86_400);
        let sod = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (sod / 3600) as u32,
            minute: (sod % 3600 / 60) as u32,
            second: (sod % 60) as u32,
            weekday: (days + 4).rem_euclid(7) as u32,
            yday: (days - days_from_civil(year, 1, 1) + 1) as u32,
        }
    }
}

/// The civil fields of a [`Time`] in its own zone.
pub struct Civil {
    /// The year (proleptic Gregorian; may be negative).
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 59.
    pub second: u32,
    /// 0 (Sunday) to 6.
    pub weekday: u32,
    /// Day of the year, 1 to 366.
    pub yday: u32,
}

/// Go's `Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`.
pub fn time_string(t: &Time) -> String {
    layout::format(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// UTC civil fields of `secs`: (year, month, day, hour, minute, second).
fn utc_fields(secs: i64) -> (i64, u32, u32, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    (y, mo, d, sod / 3600, sod % 3600 / 60, sod % 60)
}

/// `.` and the nanoseconds with trailing zeros dropped (nothing when zero), as Go's `.999999999`
/// layout element prints them.
fn push_trimmed_nanos(out: &mut String, nanos: i64) {
    if nanos > 0 {
        let f = format!("{nanos:09}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
}

/// `ns` since the epoch as Go's `time.Unix(0, ns).UTC().Format(time.RFC3339)`:
/// `2006-01-02T15:04:05Z` (the fraction dropped).
pub fn rfc3339(ns: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(ns.div_euclid(NS));
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `ns` since the epoch as Go's `Format(time.RFC3339Nano)` in UTC:
/// `2006-01-02T15:04:05.999999999Z`, trailing zeros of the fraction dropped (no fraction when
/// it is zero).
pub fn rfc3339_nano(ns: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(ns.div_euclid(NS));
    let mut out = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
    push_trimmed_nanos(&mut out, ns.rem_euclid(NS));
    out.push('Z');
    out
}

/// `ms` milliseconds since the epoch in UTC with exactly three fraction digits, Go's layout
/// `2006-01-02T15:04:05.000Z07:00`: `2026-11-01T00:00:00.000Z` (also JavaScript's
/// `Date.prototype.toISOString()` for years 0 to 9999).
pub fn rfc3339_millis(ms: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(ms.div_euclid(1000));
    let milli = ms.rem_euclid(1000);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// `ns` since the epoch as Go's `Time.String()` of a UTC time:
/// `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub fn utc_string(ns: i64) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(ns.div_euclid(NS));
    let mut out = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
    push_trimmed_nanos(&mut out, ns.rem_euclid(NS));
    out.push_str(" +0000 UTC");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_layouts() {
        assert_eq!(rfc3339(1_793_491_200_000_000_000), "2026-11-01T00:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339_nano(1_793_491_200_500_000_000), "2026-11-01T00:00:00.5Z");
        assert_eq!(rfc3339_nano(1_793_491_200_000_000_001), "2026-11-01T00:00:00.000000001Z");
        assert_eq!(rfc3339_nano(1_793_491_200_000_000_000), "2026-11-01T00:00:00Z");
        assert_eq!(rfc3339_nano(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(rfc3339_millis(1_793_491_200_250), "2026-11-01T00:00:00.250Z");
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(utc_string(1_793_491_200_000_250_000), "2026-11-01 00:00:00.00025 +0000 UTC");
        assert_eq!(utc_string(951_782_400 * NS), "2000-02-29 00:00:00 +0000 UTC");
    }

    /// The fixed UTC formatters print what `Time.Format` prints for Go's layouts.
    #[test]
    fn fixed_layouts_agree_with_format() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ns = x as i64;
            let ns = [ns, ns - ns % 1_000_000, ns - ns % NS];
            for ns in ns {
                let t = Time::from_unix_nanos(ns);
                assert_eq!(rfc3339(ns), layout::format(&t, "2006-01-02T15:04:05Z07:00"));
                assert_eq!(
                    rfc3339_nano(ns),
                    layout::format(&t, "2006-01-02T15:04:05.999999999Z07:00")
                );
                assert_eq!(utc_string(ns), time_string(&t));
                let ms = ns.div_euclid(1_000_000);
                assert_eq!(rfc3339_millis(ms), layout::format(&t, "2006-01-02T15:04:05.000Z07:00"));
            }
        }
    }
}
