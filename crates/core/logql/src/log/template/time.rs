//! Sprig's time functions over Go's `time.Time` (`skald_gocompat::time`): `unixToTime` and
//! `duration`'s `time.ParseDuration`.

use skald_gocompat::time::Time as GoTime;

use super::functions::CallError;

pub(super) fn unix_to_time(epoch: &str) -> Result<GoTime, CallError> {
    let i = skald_gocompat::strconv::parse_int(epoch)
        .map_err(|e| CallError::from(format!("unable to parse time '{epoch}': {e}")))?;
    Ok(match epoch.len() {
        5 => GoTime::utc(i.wrapping_mul(86_400), 0),
        10 => GoTime::utc(i, 0),
        13 => GoTime::from_unix_nanos(i.wrapping_mul(1_000_000)),
        16 => GoTime::from_unix_nanos(i.wrapping_mul(1000)),
        19 => GoTime::from_unix_nanos(i),
        _ => return Err(format!("unable to parse time '{epoch}': %!w(<nil>)").into()),
    })
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub(super) fn parse_go_duration(orig: &str) -> Result<i64, CallError> {
    skald_gocompat::duration::parse_duration(orig).map_err(|e| e.to_string().into())
}
