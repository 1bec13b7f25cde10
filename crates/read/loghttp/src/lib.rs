//! Loki's HTTP API shapes, without any service state: the request parameters as Loki reads
//! them, with Loki's error texts ([`params`], [`ParamError`]), and Loki's JSON answers
//! (streams, matrix, vector, scalar, the legacy shape and the full `stats` object:
//! [`marshal`], with the store figures a query reports, [`StoreFigures`]), and what every
//! route shares at the HTTP edge: reading a request and writing JSON or plain-text errors
//! ([`reply`], over axum).
//!
//! Any read service that speaks Loki's query API (the querier today, the query-frontend
//! next) uses this crate, so that none of them depends on another. It depends on core crates
//! only.

pub mod error;
pub mod marshal;
pub mod params;
pub mod part;
pub mod query;
pub mod reply;
mod stats;

pub use error::ParamError;
pub use stats::StoreFigures;
