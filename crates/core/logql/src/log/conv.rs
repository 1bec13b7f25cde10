//! Value conversions with Go's semantics and error messages: `strconv.ParseFloat`,
//! `time.ParseDuration` and go-humanize's `ParseBytes`, as used by label filters and `unwrap`.
//! They live in `skald_gocompat`; this module names them for the log pipeline.

pub(crate) use skald_gocompat::duration::parse_duration;
pub(crate) use skald_gocompat::humanize::parse_bytes;
pub(crate) use skald_gocompat::strconv::parse_float;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats() {
        assert_eq!(parse_float("154.085"), Ok(154.085));
        assert_eq!(parse_float("-1e3"), Ok(-1000.0));
        assert_eq!(parse_float(".5"), Ok(0.5));
        assert_eq!(parse_float("0x1p4"), Ok(16.0));
        assert!(parse_float("+Inf").unwrap().is_infinite());
        assert_eq!(
            parse_float("83ms").unwrap_err(),
            r#"strconv.ParseFloat: parsing "83ms": invalid syntax"#
        );
        assert!(parse_float("").is_err());
        assert!(parse_float("1_0").is_err());
        assert!(parse_float("1e400").unwrap_err().ends_with("value out of range"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("2m3s"), Ok(123_000_000_000));
        assert_eq!(parse_duration("750us"), Ok(750_000));
        assert_eq!(parse_duration("750µs"), Ok(750_000));
        assert_eq!(parse_duration("-1h"), Ok(-3_600_000_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("1").unwrap_err(), r#"time: missing unit in duration "1""#);
        assert_eq!(parse_duration("abc").unwrap_err(), r#"time: invalid duration "abc""#);
        assert_eq!(parse_duration("1x").unwrap_err(), r#"time: unknown unit "x" in duration "1x""#);
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("12KB"), Ok(12_000));
        assert_eq!(parse_bytes("1.5MB"), Ok(1_500_000));
        assert_eq!(parse_bytes("512B"), Ok(512));
        assert_eq!(parse_bytes("3KiB"), Ok(3072));
        assert_eq!(parse_bytes("42"), Ok(42));
        assert_eq!(parse_bytes("1,024 kb"), Ok(1_024_000));
        assert_eq!(parse_bytes("5 xb").unwrap_err(), "unhandled size name: xb");
        assert!(parse_bytes("abc").is_err());
    }
}
