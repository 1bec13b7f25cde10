//! Command-line flags, Loki style: `-config.file=path`, `-config.expand-env=true`,
//! `-target=all`, `-version`, `-help`. One or two leading dashes; `-flag value` or
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
  -target=<name>             all (default), distributor, ingester, querier
  -log.level=<level>         debug, info, warn, error (overrides server.log_level)
  -server.http-listen-port=<port>   HTTP port (overrides server.http_listen_port)
  -server.grpc-listen-port=<port>   gRPC port (overrides server.grpc_listen_port)
  -version                   print the version and exit
  -help                      print this help and exit
";

/// Parses arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Flags, String> {
    let mut f = Flags::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let stripped = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'));
        let Some(body) = stripped else {
            return Err(format!("unexpected argument `{arg}`"));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let is_bool = matches!(name, "config.expand-env" | "version" | "help" | "h");
        let value = if is_bool {
            inline.unwrap_or_else(|| "true".to_string())
        } else if let Some(v) = inline {
            v
        } else {
            i += 1;
            args.get(i).cloned().ok_or_else(|| format!("flag needs an argument: -{name}"))?
        };
        let as_bool = |v: &str| match v {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(format!("invalid boolean value `{v}` for -{name}")),
        };
        match name {
            "config.file" => f.config_file = Some(value),
            "config.expand-env" => f.expand_env = as_bool(&value)?,
            "target" => f.target = Some(value),
            "log.level" => f.log_level = Some(value),
            "server.http-listen-port" => {
                f.http_port = Some(value.parse().map_err(|_| format!("invalid port `{value}`"))?)
            }
            "server.grpc-listen-port" => {
                f.grpc_port = Some(value.parse().map_err(|_| format!("invalid port `{value}`"))?)
            }
            "version" => f.version = as_bool(&value)?,
            "help" | "h" => f.help = as_bool(&value)?,
            other => return Err(format!("flag provided but not defined: -{other}")),
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
        assert!(parse(&s(&["-nope"])).unwrap_err().contains("nope"));
        assert!(parse(&s(&["-version"])).unwrap().version);
    }
}
