//! Go's reference-time layouts (`2006-01-02T15:04:05Z07:00`, `Jan _2 15:04:05.000 MST`, ...):
//! `Time.Format` ([`format`]) and `time.Parse` / `time.ParseInLocation` ([`parse`],
//! [`parse_in_location`]).

use std::fmt::Write as _;

use super::Time;

mod parse;

pub use parse::{parse, parse_in_location};

/// One element of a layout, as Go's `nextStdChunk` finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TZ,
    /// Numeric zone: (`Z` for UTC?, colons?, minutes?, seconds?)
    NumTZ {
        iso: bool,
        colon: bool,
        minutes: bool,
        seconds: bool,
    },
    /// Fractional seconds: (digits, trim trailing zeros?, separator)
    Frac {
        n: usize,
        trim: bool,
        sep: u8,
    },
}

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const LONG_DAYS: [&str; 7] =
    ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// Splits `layout` into (literal prefix, std chunk and its length).
fn next_std(layout: &str) -> (usize, Option<(Std, usize)>) {
    let l = layout.as_bytes();
    let has = |i: usize, s: &str| layout.get(i..).is_some_and(|r| r.starts_with(s));
    let lower_at = |i: usize| l.get(i).is_some_and(|c| c.is_ascii_lowercase());
    let digit_at = |i: usize| l.get(i).is_some_and(|c| c.is_ascii_digit());
    for i in 0..l.len() {
        let found = match l[i] {
            b'J' if has(i, "January") => Some((Std::LongMonth, 7)),
            b'J' if has(i, "Jan") && !lower_at(i + 3) => Some((Std::Month, 3)),
            b'M' if has(i, "Monday") => Some((Std::LongWeekDay, 6)),
            b'M' if has(i, "Mon") && !lower_at(i + 3) => Some((Std::WeekDay, 3)),
            b'M' if has(i, "MST") => Some((Std::TZ, 3)),
            b'0' if has(i, "002") => Some((Std::ZeroYearDay, 3)),
            b'0' if l.get(i + 1).is_some_and(|c| (b'1'..=b'6').contains(c)) => Some((
                [
                    Std::ZeroMonth,
                    Std::ZeroDay,
                    Std::ZeroHour12,
                    Std::ZeroMinute,
                    Std::ZeroSecond,
                    Std::Year,
                ][(l[i + 1] - b'1') as usize],
                2,
            )),
            b'1' if has(i, "15") => Some((Std::Hour, 2)),
            b'1' => Some((Std::NumMonth, 1)),
            b'2' if has(i, "2006") => Some((Std::LongYear, 4)),
            b'2' => Some((Std::Day, 1)),
            b'_' if has(i, "_2006") => return (i + 1, Some((Std::LongYear, 4))),
            b'_' if has(i, "__2") => Some((Std::UnderYearDay, 3)),
            b'_' if has(i, "_2") => Some((Std::UnderDay, 2)),
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if has(i, "PM") => Some((Std::PM, 2)),
            b'p' if has(i, "pm") => Some((Std::Pm, 2)),
            b'-' | b'Z' => {
                let iso = l[i] == b'Z';
                let tz = |colon, minutes, seconds| Std::NumTZ { iso, colon, minutes, seconds };
                let p = if iso { "Z" } else { "-" };
                if has(i, &format!("{p}070000")) {
                    Some((tz(false, true, true), 7))
                } else if has(i, &format!("{p}07:00:00")) {
                    Some((tz(true, true, true), 9))
                } else if has(i, &format!("{p}0700")) {
                    Some((tz(false, true, false), 5))
                } else if has(i, &format!("{p}07:00")) {
                    Some((tz(true, true, false), 6))
                } else if has(i, &format!("{p}07")) {
                    Some((tz(false, false, false), 3))
                } else {
                    None
                }
            }
            b'.' | b',' if l.get(i + 1).is_some_and(|&c| c == b'0' || c == b'9') => {
                let ch = l[i + 1];
                let mut j = i + 1;
                while j < l.len() && l[j] == ch {
                    j += 1;
                }
                if !digit_at(j) {
                    Some((Std::Frac { n: j - i - 1, trim: ch == b'9', sep: l[i] }, j - i))
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(f) = found {
            return (i, Some(f));
        }
    }
    (l.len(), None)
}

/// Go's `Time.Format`.
pub fn format(t: &Time, layout: &str) -> String {
    let c = t.civil();
    let mut out = String::with_capacity(layout.len() + 10);
    let mut rest = layout;
    loop {
        let (plen, std) = next_std(rest);
        out.push_str(&rest[..plen]);
        let Some((std, slen)) = std else { break };
        rest = &rest[plen + slen..];
        let hour12 = if c.hour.is_multiple_of(12) { 12 } else { c.hour % 12 };
        let _ = match std {
            Std::LongMonth => write!(out, "{}", LONG_MONTHS[(c.month - 1) as usize]),
            Std::Month => write!(out, "{}", &LONG_MONTHS[(c.month - 1) as usize][..3]),
            Std::NumMonth => write!(out, "{}", c.month),
            Std::ZeroMonth => write!(out, "{:02}", c.month),
            Std::LongWeekDay => write!(out, "{}", LONG_DAYS[c.weekday as usize]),
            Std::WeekDay => write!(out, "{}", &LONG_DAYS[c.weekday as usize][..3]),
            Std::Day => write!(out, "{}", c.day),
            Std::UnderDay => write!(out, "{:>2}", c.day),
            Std::ZeroDay => write!(out, "{:02}", c.day),
            Std::UnderYearDay => write!(out, "{:>3}", c.yday),
            Std::ZeroYearDay => write!(out, "{:03}", c.yday),
            Std::Hour => write!(out, "{:02}", c.hour),
            Std::Hour12 => write!(out, "{hour12}"),
            Std::ZeroHour12 => write!(out, "{hour12:02}"),
            Std::Minute => write!(out, "{}", c.minute),
            Std::ZeroMinute => write!(out, "{:02}", c.minute),
            Std::Second => write!(out, "{}", c.second),
            Std::ZeroSecond => write!(out, "{:02}", c.second),
            Std::LongYear => {
                if c.year < 0 {
                    write!(out, "-{:04}", -c.year)
                } else {
                    write!(out, "{:04}", c.year)
                }
            }
            Std::Year => write!(out, "{:02}", c.year.abs() % 100),
            Std::PM => write!(out, "{}", if c.hour >= 12 { "PM" } else { "AM" }),
            Std::Pm => write!(out, "{}", if c.hour >= 12 { "pm" } else { "am" }),
            Std::TZ => match &t.name {
                Some(n) => write!(out, "{n}"),
                None => {
                    let z = t.offset / 60;
                    write!(
                        out,
                        "{}{:02}{:02}",
                        if z < 0 { '-' } else { '+' },
                        z.abs() / 60,
                        z.abs() % 60
                    )
                }
            },
            Std::NumTZ { iso, colon, minutes, seconds } => {
                if iso && t.offset == 0 {
                    out.push('Z');
                } else {
                    let z = t.offset / 60;
                    let abs = t.offset.abs();
                    out.push(if z < 0 { '-' } else { '+' });
                    let _ = write!(out, "{:02}", z.abs() / 60);
                    if minutes {
                        if colon {
                            out.push(':');
                        }
                        let _ = write!(out, "{:02}", z.abs() % 60);
                    }
                    if seconds {
                        if colon {
                            out.push(':');
                        }
                        let _ = write!(out, "{:02}", abs % 60);
                    }
                }
                Ok(())
            }
            Std::Frac { n, trim, sep } => {
                if !(trim && (n == 0 || t.nsec == 0)) {
                    let mut frac = format!("{:09}", t.nsec);
                    frac.truncate(n.min(9));
                    if trim {
                        while frac.ends_with('0') {
                            frac.pop();
                        }
                    }
                    if !frac.is_empty() || !trim {
                        out.push(sep as char);
                        out.push_str(&frac);
                    }
                }
                Ok(())
            }
        };
    }
    out
}
