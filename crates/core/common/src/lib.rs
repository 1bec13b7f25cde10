//! Vocabulary shared by every Skald service: tenant ids, per-tenant limits, config units, and
//! the SplitMix64 generator the deterministic tests and the benchmark harness share.

pub mod limits;
pub mod otlp;
pub mod splitmix;
pub mod tenant;
pub mod units;
