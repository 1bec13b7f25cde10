//! Command-line flags, Loki style: `-config.file=path`, `-config.expand-env=true`,
//! `-target=all`, `-log.level`, `-log.format`, `-print-config-stderr`,
//! `-log-config-reverse-order`, `-version`, `-help`. One or two leading dashes; `-flag value` or
//! `-flag=value`.

/// Parsed process flags.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Flags {
    /// `-config.file`
    pub config_file: Option<String>,
    /// `-config.expand-env`
    pub expand_env: bool,
    /// `-target`
    pub target: Option<String>,
    /// `-log.level`
    pub log_level: Option<String>,
    /// `-log.format`
    pub log_format: Option<String>,
    /// `-print-config-stderr`
    pub print_config_stderr: bool,
    /// `-log-config-reverse-order`
    pub log_config_reverse_order: bool,
    /// `-server.http-listen-port`
    pub http_port: Option<u16>,
    /// `-server.grpc-listen-port`
    pub grpc_port: Option<u16>,
    /// `-version`
    pub version: bool,
    /// `-help`
    pub help: bool,
}

/// The `-help` text.
pub const USAGE: &str = "Usage: skald [flags]

Skald is a Loki-compatible log store. With no flags it runs every service in one process,
listening on 127.0.0.1:3100 (HTTP) and 127.0.0.1:9095 (gRPC), keeping data under ./skald-data.

Flags:
  -config.file=<path>        YAML config file with Loki's key names
  -config.expand-env=true    expand ${VAR} and ${VAR:-default} in the config file
  -target=<name>             all (default), distributor, ingester, querier, query-frontend,
                             table-manager
  -log.level=<level>         debug, info, warn, error (overrides server.log_level)
  -log.format=<format>       logfmt (default) or json (overrides server.log_format)
  -print-config-stderr       print the effective config (YAML) to stderr at start-up
  -log-config-reverse-order  log the effective config at start-up, one line per entry,
                             last line first
  -server.http-listen-port=<port>   HTTP port (overrides server.http_listen_port)
  -server.grpc-listen-port=<port>   gRPC port (overrides server.grpc_listen_port)
  -version                   print the version and exit
  -help                      print this help and exit
";

/// Why the command line cannot be used (Go's `flag` package messages).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// An argument that is not a flag.
    #[error("unexpected argument `{arg}`")]
    Unexpected {
        /// The argument.
        arg: String,
    },
    /// A flag that needs a value is last.
    #[error("flag needs an argument: -{name}")]
    NeedsArgument {
        /// The flag, without its dash.
        name: String,
    },
    /// A boolean flag with another value than `true`, `1`, `false` or `0`.
    #[error("invalid boolean value `{value}` for -{name}")]
    InvalidBool {
        /// The value given.
        value: String,
        /// The flag, without its dash.
        name: String,
    },
    /// A port that is not a number from 0 to 65535.
    #[error("invalid port `{value}`")]
    InvalidPort {
        /// The value given.
        value: String,
    },
    /// A flag this binary does not know.
    #[error("flag provided but not defined: -{name}")]
    Undefined {
        /// The flag, without its dash.
        name: String,
    },
}

/// Parses arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Flags, FlagError> {
    let mut f = Flags::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let stripped = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'));
        let Some(body) = stripped else {
            return Err(FlagError::Unexpected { arg: arg.clone() });
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let is_bool = matches!(
            name,
            "config.expand-env"
                | "version"
                | "help"
                | "h"
                | "print-config-stderr"
                | "log-config-reverse-order"
        );
        let value = if is_bool {
            inline.unwrap_or_else(|| "true".to_string())
        } else if let Some(v) = inline {
            v
        } else {
            i += 1;
            args.get(i)
                .cloned()
                .ok_or_else(|| FlagError::NeedsArgument { name: name.to_string() })?
        };
        let as_bool = |v: &str| match v {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(FlagError::InvalidBool { value: v.to_string(), name: name.to_string() }),
        };
        match name {
            "config.file" => f.config_file = Some(value),
            "config.expand-env" => f.expand_env = as_bool(&value)?,
            "target" => f.target = Some(value),
            "log.level" => f.log_level = Some(value),
            "log.format" => f.log_format = Some(value),
            "print-config-stderr" => f.print_config_stderr = as_bool(&value)?,
            "log-config-reverse-order" => f.log_config_reverse_order = as_bool(&value)?,
            "server.http-listen-port" => {
                f.http_port = Some(
                    value.parse().map_err(|_| FlagError::InvalidPort { value: value.clone() })?,
                )
            }
            "server.grpc-listen-port" => {
                f.grpc_port = Some(
                    value.parse().map_err(|_| FlagError::InvalidPort { value: value.clone() })?,
                )
            }
            "version" => f.version = as_bool(&value)?,
            "help" | "h" => f.help = as_bool(&value)?,
            other => return Err(FlagError::Undefined { name: other.to_string() }),
        }
        i += 1;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn loki_style() {
        let f = parse(&s(&["-config.file=a.yaml", "-target", "querier", "--config.expand-env"]))
            .unwrap();
        assert_eq!(f.config_file.as_deref(), Some("a.yaml"));
        assert_eq!(f.target.as_deref(), Some("querier"));
        assert!(f.expand_env);
        // an unknown flag takes a value first, as the known non-boolean ones do
        assert_eq!(parse(&s(&["-nope"])).unwrap_err().to_string(), "flag needs an argument: -nope");
        assert_eq!(
            parse(&s(&["-nope", "1"])).unwrap_err().to_string(),
            "flag provided but not defined: -nope"
        );
        assert_eq!(
            parse(&s(&["-target"])).unwrap_err().to_string(),
            "flag needs an argument: -target"
        );
        assert_eq!(
            parse(&s(&["-version=maybe"])).unwrap_err().to_string(),
            "invalid boolean value `maybe` for -version"
        );
        assert_eq!(
            parse(&s(&["-server.http-listen-port", "70000"])).unwrap_err().to_string(),
            "invalid port `70000`"
        );
        assert_eq!(parse(&s(&["x"])).unwrap_err().to_string(), "unexpected argument `x`");
        assert!(parse(&s(&["-version"])).unwrap().version);
        let f =
            parse(&s(&["-print-config-stderr", "-log-config-reverse-order", "-log.format=json"]))
                .unwrap();
        assert!(f.print_config_stderr && f.log_config_reverse_order);
        assert_eq!(f.log_format.as_deref(), Some("json"));
    }
}
