//! Go's `time.Parse` and `time.ParseInLocation`.

use super::{next_std, Std, LONG_DAYS, LONG_MONTHS};
use crate::civil::{civil_from_days, days_from_civil};
use crate::time::zone::{date_in_zone, time_in_zone, zone_at, zone_offset_by_name};
use crate::time::Time as GoTime;

fn getnum(v: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = v.as_bytes();
    if !b.first()?.is_ascii_digit() {
        return None;
    }
    if !b.get(1).is_some_and(|c| c.is_ascii_digit()) {
        if fixed {
            return None;
        }
        return Some(((b[0] - b'0') as i64, &v[1..]));
    }
    Some((((b[0] - b'0') * 10 + (b[1] - b'0')) as i64, &v[2..]))
}

fn getnum3(v: &str, fixed: bool) -> Option<(i64, &str)> {
    let n = v.bytes().take(3).take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || (fixed && n != 3) {
        return None;
    }
    Some((v[..n].parse().ok()?, &v[n..]))
}

fn lookup_name<'a>(names: &[&str], v: &'a str, len: Option<usize>) -> Option<(usize, &'a str)> {
    for (k, name) in names.iter().enumerate() {
        let name = match len {
            Some(n) => &name[..n],
            None => name,
        };
        if v.len() >= name.len() && v.as_bytes()[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        {
            return Some((k, &v[name.len()..]));
        }
    }
    None
}

/// Go's `time.Parse` (`ParseInLocation` with the UTC location); `None` when the value does not match.
pub fn parse(layout: &str, value: &str) -> Option<GoTime> {
    parse_in_location(layout, value, None)
}

/// Go's `time.ParseInLocation` in `zone` (`None` = UTC); `None` when the value does not
/// match.
pub fn parse_in_location(layout: &str, value: &str, zone: Option<&tz::TimeZone>) -> Option<GoTime> {
    let (mut year, mut month, mut day, mut yday) = (1i64, -1i64, -1i64, -1i64);
    let (mut hour, mut min, mut sec, mut nsec) = (0i64, 0i64, 0i64, 0i64);
    let (mut pm_set, mut am_set) = (false, false);
    let mut utc = false;
    let mut zone_offset: Option<i64> = None;
    let mut zone_name: Option<String> = None;
    let mut layout = layout;
    let mut v = value;
    loop {
        let (plen, std) = next_std(layout);
        let prefix = &layout[..plen];
        v = skip_prefix(v, prefix)?;
        let Some((std, slen)) = std else {
            if !v.is_empty() {
                return None;
            }
            break;
        };
        layout = &layout[plen + slen..];
        match std {
            Std::Year => {
                let (n, r) = getnum(v, true)?;
                year = if n >= 69 { n + 1900 } else { n + 2000 };
                v = r;
            }
            Std::LongYear => {
                if v.len() < 4 || !v.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
                    return None;
                }
                year = v[..4].parse().ok()?;
                v = &v[4..];
            }
            Std::Month | Std::LongMonth => {
                let (m, r) =
                    lookup_name(&LONG_MONTHS, v, if std == Std::Month { Some(3) } else { None })?;
                month = m as i64 + 1;
                v = r;
            }
            Std::NumMonth | Std::ZeroMonth => {
                let (n, r) = getnum(v, std == Std::ZeroMonth)?;
                if !(1..=12).contains(&n) {
                    return None;
                }
                month = n;
                v = r;
            }
            Std::WeekDay | Std::LongWeekDay => {
                let (_, r) =
                    lookup_name(&LONG_DAYS, v, if std == Std::WeekDay { Some(3) } else { None })?;
                v = r;
            }
            Std::Day | Std::UnderDay | Std::ZeroDay => {
                if std == Std::UnderDay && v.starts_with(' ') {
                    v = &v[1..];
                }
                let (n, r) = getnum(v, std == Std::ZeroDay)?;
                day = n;
                v = r;
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                let mut w = v;
                if std == Std::UnderYearDay {
                    w = w.trim_start_matches(' ');
                }
                let (n, r) = getnum3(w, std == Std::ZeroYearDay)?;
                yday = n;
                v = r;
            }
            Std::Hour => {
                let (n, r) = getnum(v, false)?;
                if !(0..24).contains(&n) {
                    return None;
                }
                hour = n;
                v = r;
            }
            Std::Hour12 | Std::ZeroHour12 => {
                let (n, r) = getnum(v, std == Std::ZeroHour12)?;
                if !(0..=12).contains(&n) {
                    return None;
                }
                hour = n;
                v = r;
            }
            Std::Minute | Std::ZeroMinute => {
                let (n, r) = getnum(v, std == Std::ZeroMinute)?;
                if !(0..60).contains(&n) {
                    return None;
                }
                min = n;
                v = r;
            }
            Std::Second | Std::ZeroSecond => {
                let (n, r) = getnum(v, std == Std::ZeroSecond)?;
                if !(0..60).contains(&n) {
                    return None;
                }
                sec = n;
                v = r;
                // a fractional second the layout does not spell out
                let b = v.as_bytes();
                let next_is_frac = matches!(next_std(layout), (0, Some((Std::Frac { .. }, _))));
                if b.len() >= 2
                    && (b[0] == b'.' || b[0] == b',')
                    && b[1].is_ascii_digit()
                    && !next_is_frac
                {
                    let n = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    nsec = parse_nanos(&v[1..n])?;
                    v = &v[n..];
                }
            }
            Std::PM | Std::Pm => {
                let p = v.get(..2)?;
                match p {
                    "PM" | "pm" => pm_set = true,
                    "AM" | "am" => am_set = true,
                    _ => return None,
                }
                v = &v[2..];
            }
            Std::NumTZ { iso, colon, minutes, seconds } => {
                if iso && v.starts_with('Z') {
                    v = &v[1..];
                    utc = true;
                    continue;
                }
                let sign = match v.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let mut w = &v[1..];
                let (hh, r) = getnum(w, true)?;
                w = r;
                let mut mm = 0;
                let mut ss = 0;
                if minutes {
                    if colon {
                        w = w.strip_prefix(':')?;
                    }
                    let (m, r) = getnum(w, true)?;
                    mm = m;
                    w = r;
                }
                if seconds {
                    if colon {
                        w = w.strip_prefix(':')?;
                    }
                    let (s2, r) = getnum(w, true)?;
                    ss = s2;
                    w = r;
                }
                if hh > 24 || mm > 59 || ss > 59 {
                    return None;
                }
                zone_offset = Some(sign * (hh * 3600 + mm * 60 + ss));
                v = w;
            }
            Std::TZ => {
                if v.starts_with("UTC") {
                    v = &v[3..];
                    utc = true;
                    continue;
                }
                let n = v.bytes().take_while(|c| c.is_ascii_uppercase()).count();
                if n < 3 {
                    return None;
                }
                zone_name = Some(v[..n].to_string());
                v = &v[n..];
            }
            Std::Frac { n, trim, .. } => {
                let b = v.as_bytes();
                if trim {
                    if b.len() < 2 || !(b[0] == b'.' || b[0] == b',') || !b[1].is_ascii_digit() {
                        continue;
                    }
                    let k = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    nsec = parse_nanos(&v[1..k])?;
                    v = &v[k..];
                } else {
                    if b.len() < n + 1 || !(b[0] == b'.' || b[0] == b',') {
                        return None;
                    }
                    nsec = parse_nanos(v.get(1..n + 1)?)?;
                    v = &v[n + 1..];
                }
            }
        }
    }
    if pm_set && hour < 12 {
        hour += 12;
    } else if am_set && hour == 12 {
        hour = 0;
    }
    if yday >= 0 {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        if yday < 1 || yday > if leap { 366 } else { 365 } {
            return None;
        }
        let (y2, m2, d2) = civil_from_days(days_from_civil(year, 1, 1) + yday - 1);
        if (month >= 0 && month != m2 as i64) || (day >= 0 && day != d2 as i64) || y2 != year {
            return None;
        }
        month = m2 as i64;
        day = d2 as i64;
    }
    if month < 0 {
        month = 1;
    }
    if day < 0 {
        day = 1;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let dim = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if day < 1 || day > dim[(month - 1) as usize] {
        return None;
    }
    let days = days_from_civil(year, month as u32, day as u32);
    let local = days * 86_400 + hour * 3600 + min * 60 + sec;
    if utc {
        return Some(GoTime::utc(local, nsec as u32));
    }
    if let Some(zone) = zone {
        let nsec = nsec as u32;
        if let Some(off) = zone_offset {
            let secs = local - off;
            let (at, name) = zone_at(zone, secs);
            if at == off && zone_name.as_deref().is_none_or(|n| n == name) {
                return Some(time_in_zone(zone, secs, nsec));
            }
            return Some(GoTime { secs, nsec, offset: off as i32, name: zone_name });
        }
        if let Some(name) = zone_name {
            if let Some(off) = zone_offset_by_name(zone, &name, local) {
                return Some(time_in_zone(zone, local - off, nsec));
            }
            let off = match name.strip_prefix("GMT") {
                Some(h) if !h.is_empty() => h.parse::<i64>().unwrap_or(0) * 3600,
                _ => 0,
            };
            return Some(GoTime { secs: local - off, nsec, offset: off as i32, name: Some(name) });
        }
        return Some(date_in_zone(zone, local, nsec));
    }
    if let Some(off) = zone_offset {
        if off == 0 {
            return Some(GoTime::utc(local, nsec as u32));
        }
        return Some(GoTime {
            secs: local - off,
            nsec: nsec as u32,
            offset: off as i32,
            name: None,
        });
    }
    if let Some(name) = zone_name {
        if name == "GMT" {
            return Some(GoTime::utc(local, nsec as u32));
        }
        return Some(GoTime { secs: local, nsec: nsec as u32, offset: 0, name: Some(name) });
    }
    Some(GoTime::utc(local, nsec as u32))
}

fn parse_nanos(digits: &str) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut d = digits.to_string();
    d.truncate(9);
    while d.len() < 9 {
        d.push('0');
    }
    d.parse().ok()
}

/// Removes `prefix` from `v`, treating runs of spaces as equivalent (Go's `skip`).
fn skip_prefix<'a>(mut v: &'a str, prefix: &str) -> Option<&'a str> {
    let mut p = prefix;
    while !p.is_empty() {
        if p.starts_with(' ') {
            if !v.is_empty() && !v.starts_with(' ') {
                return None;
            }
            p = p.trim_start_matches(' ');
            v = v.trim_start_matches(' ');
            continue;
        }
        let c = p.chars().next()?;
        v = v.strip_prefix(c)?;
        p = &p[c.len_utf8()..];
    }
    Some(v)
}
