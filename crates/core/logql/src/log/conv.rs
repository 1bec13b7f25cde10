//! Value conversions with Go's semantics and error messages: `strconv.ParseFloat`,
//! `time.ParseDuration` and go-humanize's `ParseBytes`, as used by label filters and `unwrap`.
//! They live (with their tests) in `skald_gocompat`; this module names them for the log
//! pipeline.

pub(crate) use skald_gocompat::duration::parse_duration;
pub(crate) use skald_gocompat::humanize::parse_bytes;
pub(crate) use skald_gocompat::strconv::parse_float;
