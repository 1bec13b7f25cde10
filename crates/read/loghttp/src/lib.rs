//! Loki's HTTP API shapes, without any service state: the request parameters as Loki reads
//! them, with Loki's error texts ([`params`], [`ParamError`]).
//!
//! Any read service that speaks Loki's query API (the querier today, the query-frontend
//! next) uses this crate, so that none of them depends on another. It depends on core crates
//! only.

pub mod error;
pub mod params;

pub use error::ParamError;
