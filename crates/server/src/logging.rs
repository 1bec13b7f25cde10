//! The process's log lines, as Loki writes them.
//!
//! - `logfmt` (the default): `level=info ts=2026-12-05T06:01:15.123456789Z caller=app.rs:41
//!   msg="Skald stopped" key=value ...`, one line per event (Loki's context keys, `orgID`,
//!   `traceID`, `type` and `component`, before `msg` as Loki writes them), values quoted as go-logfmt quotes
//!   them (only when they hold a space, `=`, `"` or a control character), `ts` in UTC with Go's
//!   RFC 3339 nanosecond form (trailing zeros dropped), `caller` the source file's base name and
//!   line.
//! - `json`: one JSON object per line with the same keys, sorted as go-kit's JSON logger sorts
//!   them; numbers and booleans stay JSON numbers and booleans.
//!
//! The level is coloured only when stderr is a terminal: a log file or a pipe never gets ANSI
//! escapes. The filter (`server.log_level`, `-log.level`, or `RUST_LOG` when set) can be
//! changed at run time through `/log_level` (`crate::ops`).

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{reload, EnvFilter};

/// How log lines are written (`server.log_format`, `-log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `key=value` pairs (Loki's default).
    Logfmt,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Parses `logfmt` or `json`, Loki's two values.
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s {
            "logfmt" => Some(LogFormat::Logfmt),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// The handle through which `/log_level` replaces the filter.
pub type LevelHandle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// Installs the process's subscriber: `level` (or `RUST_LOG`) as a reloadable filter and
/// lines in `format` on stderr.
pub fn init(level: &str, format: LogFormat) -> LevelHandle {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // `RUST_LOG`, when set and not empty, overrides the level
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(v.trim()).unwrap_or_else(|_| EnvFilter::new(level))
        }
        _ => EnvFilter::new(level),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let colour = format == LogFormat::Logfmt && std::io::stderr().is_terminal();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .event_format(LokiFormat { format, colour });
    tracing_subscriber::registry().with(filter).with(layer).init();
    handle
}

/// Fields written before `msg`, where Loki's loggers have them (its `log.With` context: the
/// tenant and trace of a request, `type=config`, a component's name).
const CONTEXT: &[&str] = &["orgID", "traceID", "type", "component"];

/// The event formatter behind both formats.
struct LokiFormat {
    format: LogFormat,
    colour: bool,
}

/// A field's value as the event recorded it.
enum Value {
    Str(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

/// The message and the other fields of one event, in the order they were given.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    pairs: Vec<(&'static str, Value)>,
}

impl Fields {
    fn push(&mut self, field: &Field, v: Value) {
        if field.name() == "message" {
            self.message = Some(match v {
                Value::Str(s) => s,
                other => text_of(&other),
            });
        } else {
            // `log` records carry their origin in `log.*` fields; `caller` says it already
            if !field.name().starts_with("log.") {
                self.pairs.push((field.name(), v));
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::Str(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::U64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, Value::Str(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Value::Str(format!("{value:?}")));
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::I64(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F64(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// `file.rs:12`, the base name as Go's `log.Caller` gives it; the target when the event has
/// no location.
fn caller(meta: &tracing::Metadata<'_>) -> String {
    match (meta.file(), meta.line()) {
        (Some(file), Some(line)) => {
            let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
            format!("{base}:{line}")
        }
        _ => meta.target().to_string(),
    }
}

fn now_rfc3339_nano() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    skald_gocompat::time::rfc3339_nano(ns)
}

use skald_gocompat::logfmt::encode::{needs_quotes, write_string_value as logfmt_value};

/// A logfmt key: characters logfmt cannot carry in a key become `_`.
fn logfmt_key(out: &mut String, key: &str) {
    out.extend(key.chars().map(|c| if needs_quotes(c) { '_' } else { c }));
}

impl LokiFormat {
    fn logfmt(&self, level: &Level, caller: &str, fields: &Fields, spans: &[String]) -> String {
        let mut out = String::with_capacity(128);
        let name = level_name(level);
        if self.colour {
            let code = match *level {
                Level::ERROR => "31",
                Level::WARN => "33",
                Level::INFO => "32",
                _ => "34",
            };
            let _ = write!(out, "level=\x1b[{code}m{name}\x1b[0m");
        } else {
            let _ = write!(out, "level={name}");
        }
        out.push_str(" ts=");
        out.push_str(&now_rfc3339_nano());
        out.push_str(" caller=");
        logfmt_value(&mut out, caller);
        let pair = |out: &mut String, k: &str, v: &Value| {
            out.push(' ');
            logfmt_key(out, k);
            out.push('=');
            logfmt_value(out, &text_of(v));
        };
        // the context Loki's loggers carry comes before `msg`, as go-kit's `log.With` puts it
        for (k, v) in fields.pairs.iter().filter(|(k, _)| CONTEXT.contains(k)) {
            pair(&mut out, k, v);
        }
        if let Some(m) = &fields.message {
            out.push_str(" msg=");
            logfmt_value(&mut out, m);
        }
        for (k, v) in fields.pairs.iter().filter(|(k, _)| !CONTEXT.contains(k)) {
            pair(&mut out, k, v);
        }
        // the fields of the spans the event ran in (already `key=value`)
        for s in spans.iter().filter(|s| !s.is_empty()) {
            out.push(' ');
            out.push_str(s);
        }
        out
    }

    fn json(level: &Level, caller: &str, fields: &Fields, spans: &[String]) -> String {
        let mut m = serde_json::Map::new();
        m.insert("level".into(), level_name(level).into());
        m.insert("ts".into(), now_rfc3339_nano().into());
        m.insert("caller".into(), caller.into());
        if let Some(msg) = &fields.message {
            m.insert("msg".into(), msg.clone().into());
        }
        for (k, v) in &fields.pairs {
            let v = match v {
                Value::Str(s) => serde_json::Value::from(s.as_str()),
                Value::I64(n) => (*n).into(),
                Value::U64(n) => (*n).into(),
                Value::F64(n) => (*n).into(),
                Value::Bool(b) => (*b).into(),
            };
            m.insert((*k).to_string(), v);
        }
        let spans: Vec<&str> = spans.iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
        if !spans.is_empty() {
            m.insert("spans".into(), spans.join(" ").into());
        }
        serde_json::Value::Object(m).to_string()
    }
}

impl<S, N> FormatEvent<S, N> for LokiFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<FormattedFields<N>>() {
                    spans.push(f.fields.clone());
                }
            }
        }
        let caller = caller(meta);
        let line = match self.format {
            LogFormat::Logfmt => self.logfmt(meta.level(), &caller, &fields, &spans),
            LogFormat::Json => Self::json(meta.level(), &caller, &fields, &spans),
        };
        writeln!(writer, "{line}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_is_coloured_only_when_asked_and_context_comes_before_msg() {
        let fields = Fields {
            message: Some("GET / (500) 1ms".into()),
            pairs: vec![("status", Value::U64(500)), ("orgID", Value::Str("t".into()))],
        };
        let plain = LokiFormat { format: LogFormat::Logfmt, colour: false };
        let line = plain.logfmt(&Level::WARN, "a.rs:1", &fields, &[]);
        let (head, tail) = line.split_once(" ts=").unwrap_or_default();
        assert_eq!(head, "level=warn");
        assert!(
            tail.ends_with(" caller=a.rs:1 orgID=t msg=\"GET / (500) 1ms\" status=500"),
            "{line}"
        );
        let coloured = LokiFormat { format: LogFormat::Logfmt, colour: true };
        let line = coloured.logfmt(&Level::WARN, "a.rs:1", &fields, &[]);
        assert!(line.starts_with("level=\x1b[33mwarn\x1b[0m ts="), "{line}");
        let json: serde_json::Value =
            serde_json::from_str(&LokiFormat::json(&Level::WARN, "a.rs:1", &fields, &[]))
                .unwrap_or_default();
        assert_eq!(json["status"], 500);
        assert_eq!(json["orgID"], "t");
        assert_eq!(json["level"], "warn");
    }

    #[test]
    fn formats_are_named_as_in_loki() {
        assert_eq!(LogFormat::parse("logfmt"), Some(LogFormat::Logfmt));
        assert_eq!(LogFormat::parse("json"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("text"), None);
    }
}
