//! Go's `encoding/json` encoder: how `json.Marshal` writes strings and `float64`s.

use std::fmt::Write as _;

/// Appends `s` as a JSON string the way Go's `json.Marshal` writes it (`encodeState.string`
/// with HTML escaping on, the default): `"` and `\` escaped, `\n \r \t \b \f` by name, other
/// controls as `\u00XX`, and `<`, `>`, `&`, U+2028 and U+2029 as `\u003c`, `\u003e`,
/// `\u0026`, `\u2028`, `\u2029`. (Go also writes invalid UTF-8 as `\ufffd`; a `&str` is always
/// valid UTF-8.)
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Formats a float as Go's `json.Marshal` writes a `float64` (`floatEncoder`, which the
/// OpenTelemetry collector's `pcommon.Value.AsString` copies for doubles): shortest round-trip
/// digits, in `strconv.FormatFloat`'s `'f'` form, or its `'e'` form below 1e-6 and from 1e21 on,
/// with the exponent unpadded (`1e-7`, `1e+21`). Go's marshal refuses NaN and infinities; the
/// caller decides what to do with them (here they print as Rust does: `NaN`, `inf`).
pub fn format_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_html_safe() {
        let mut out = String::new();
        write_string(&mut out, "a<b>&\"\\\n\r\t\u{8}\u{c}\u{1}\u{2028}\u{2029}é\u{7f}");
        assert_eq!(
            out,
            r#""a\u003cb\u003e\u0026\"\\\n\r\t\b\f\u0001\u2028\u2029é"#.to_string() + "\u{7f}\""
        );
    }

    #[test]
    fn floats_use_go_cutoffs() {
        assert_eq!(format_float(1.5), "1.5");
        assert_eq!(format_float(0.0), "0");
        assert_eq!(format_float(-0.0), "-0");
        assert_eq!(format_float(1e20), "100000000000000000000");
        assert_eq!(format_float(1e21), "1e+21");
        assert_eq!(format_float(1.5e300), "1.5e+300");
        assert_eq!(format_float(1e-6), "0.000001");
        assert_eq!(format_float(1e-7), "1e-7");
        assert_eq!(format_float(-2.5e-10), "-2.5e-10");
    }
}
