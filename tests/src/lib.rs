//! Test harness for Skald's integration tests: starts the real `skald` binary on free
//! loopback ports with its own data directory, and speaks HTTP to it over real sockets.
//!
//! One module per concern, everything re-exported here (`skald_integration_tests::Skald`, ...):
//! [`sandbox`] (ports, scratch directories, `skald` processes and clusters), [`http`] (requests,
//! push encodings, raw requests, the reference dataset), [`load`] (numbered pushes and loss
//! accounting), [`proxy`] (a cuttable TCP proxy, a delaying one), [`aws`] (the S3 and DynamoDB test servers and
//! their storage configs), [`ws`] (live tail over WebSocket) and [`tools`] (Grafana's logcli and
//! promtail, and tests that could not run without them); [`replay`] holds the golden queries and
//! the reference requests as requests any server can be asked.

pub mod compare;

pub mod answer;

pub mod differential;

pub mod aws;
pub mod http;
pub mod load;
pub mod proxy;
pub mod replay;
pub mod sandbox;
pub mod tools;
pub mod ws;

pub use aws::*;
pub use http::*;
pub use load::*;
pub use proxy::*;
pub use sandbox::*;
pub use tools::*;
