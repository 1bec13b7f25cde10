//! Vocabulary shared by every Skald service: tenant ids, per-tenant limits, config units.

pub mod limits;
pub mod otlp;
pub mod tenant;
pub mod units;
