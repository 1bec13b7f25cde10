//! Timestamp formatting in the shapes Loki's messages use (always UTC).

const NS: i64 = 1_000_000_000;

use skald_gocompat::civil::civil_from_days;

fn split(ns: i64) -> (i64, u32, u32, u32, u32, u32, i64) {
    let secs = ns.div_euclid(NS);
    let frac = ns.rem_euclid(NS);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    (y, mo, d, (sod / 3600) as u32, (sod % 3600 / 60) as u32, (sod % 60) as u32, frac)
}

/// Go's `time.RFC3339` layout in UTC: `2006-01-02T15:04:05Z`.
pub(crate) fn rfc3339(ns: i64) -> String {
    let (y, mo, d, h, mi, s, _) = split(ns);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Go's `time.Time.String()` in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub(crate) fn go_time_string(ns: i64) -> String {
    let (y, mo, d, h, mi, s, frac) = split(ns);
    let mut out = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
    if frac > 0 {
        let f = format!("{frac:09}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339(1_793_491_200_000_000_000), "2026-11-01T00:00:00Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(
            go_time_string(1_793_491_200_000_250_000),
            "2026-11-01 00:00:00.00025 +0000 UTC"
        );
        assert_eq!(go_time_string(951_782_400 * NS), "2000-02-29 00:00:00 +0000 UTC");
    }
}
