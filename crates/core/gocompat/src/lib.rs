//! Go standard-library and Loki-dependency behaviour that Skald reproduces byte for byte.
//!
//! Each routine is named after the Go function or library it follows. This crate has no
//! workspace dependencies, so every Skald crate may use it.

pub mod civil;
pub mod duration;
pub mod fmt;
pub mod humanize;
pub mod json;
pub mod logfmt;
pub mod strconv;
pub mod time;
pub mod utf8;
pub mod varint;
