//! Vocabulary shared by every Skald service: tenant ids, per-tenant limits, config units, the
//! SplitMix64 generator the deterministic tests and the benchmark harness share, and
//! [`memory::give_back`] (returning the allocator's free memory after large releases).

pub mod limits;
pub mod memory;
pub mod otlp;
pub mod overrides;
pub mod splitmix;
pub mod tenant;
pub mod units;
