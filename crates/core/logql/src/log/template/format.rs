//! Go's `fmt` for template values: `%v` and `Sprintf` are `skald_gocompat::fmt`; this module
//! converts a template [`Value`] into the [`Arg`] it formats.

use std::borrow::Cow;

use skald_gocompat::fmt::{self as gofmt, Arg};
use skald_gocompat::time::time_string;
use skald_model::Labels;

use super::functions::CallError;
use super::value::Value;
use super::MAX_OUTPUT;

/// The `fmt` view of a template value: `Dot` is the label map (`map[string]string`), a time
/// is a `fmt.Stringer`.
fn to_arg<'a>(v: &'a Value, labels: &'a Labels) -> Arg<'a> {
    match v {
        Value::Nil => Arg::Nil,
        Value::Bool(b) => Arg::Bool(*b),
        Value::Int(i) => Arg::Int(*i),
        Value::Int64(i) => Arg::Int64(*i),
        Value::Float(f) => Arg::Float(*f),
        Value::Str(s) => Arg::Str(Cow::Borrowed(s)),
        Value::Time(t) => {
            Arg::Stringer { text: Cow::Owned(time_string(t)), type_name: v.type_name() }
        }
        Value::List(l) => Arg::List(l.iter().map(|e| to_arg(e, labels)).collect()),
        Value::Map(m) => Arg::Map {
            entries: m
                .iter()
                .map(|(k, e)| (Cow::Borrowed(k.as_str()), to_arg(e, labels)))
                .collect(),
            type_name: v.type_name(),
        },
        Value::Dot => Arg::Map {
            entries: labels
                .iter()
                .map(|l| {
                    (Cow::Borrowed(l.name.as_str()), Arg::Str(Cow::Borrowed(l.value.as_str())))
                })
                .collect(),
            type_name: v.type_name(),
        },
    }
}

/// Formats like Go's `%v`.
pub(super) fn fmt_v(v: &Value, labels: &Labels, out: &mut String) {
    match v {
        // the common cases of `{{ .label }}`, without building an `Arg`
        Value::Str(s) => out.push_str(s),
        v => gofmt::write_v(out, &to_arg(v, labels)),
    }
}

/// Go's `fmt.Sprintf`.
pub(super) fn go_sprintf(
    format: &str,
    args: &[Value],
    labels: &Labels,
) -> Result<String, CallError> {
    let args: Vec<Arg<'_>> = args.iter().map(|a| to_arg(a, labels)).collect();
    gofmt::sprintf(format, &args, MAX_OUTPUT).map_err(|e| CallError::from(e.to_string()))
}
