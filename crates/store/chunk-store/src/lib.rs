//! Skald's storage for chunks and other immutable objects.
//!
//! [`ChunkStore`] is the contract: chunks addressed by [`ChunkKey`]
//! (`<tenant>/chunks/<fingerprint>/<from>-<through>-<checksum>`) plus generic objects by path
//! (used by `skald-index` for its segment files). [`ObjectChunkStore`] implements it over any
//! `object_store::ObjectStore` with bounded concurrency, retries with backoff on transient
//! errors, and a bytes-bounded LRU chunk cache ([`cache::ByteLru`]). A chunk whose own object
//! is gone is read from a pack holding it ([`packs`]: the compactor's packs of a tenant-day's
//! chunks, `<tenant>/packs/<day>/<id>.pack` with its directory `<id>.idx`), so a chunk's key
//! stays its identity wherever its bytes are.
//!
//! [`S3Config::from_loki`] reads Loki's `storage_config.aws` keys ([`LokiS3Settings`]) into the
//! [`S3Config`] that [`ObjectChunkStore::s3`] opens a bucket with.
//!
//! This is the only crate that imports `object_store`. The conformance suite for
//! implementations is `testsuite` (feature `testsuite`).
#![warn(missing_docs)]

pub mod cache;
mod error;
mod key;
mod loki_s3;
pub mod metrics;
pub mod packs;
mod store;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

pub use error::{Error, Result};
pub use key::{validate_tenant, ChunkKey};
pub use loki_s3::{redact_url, LokiS3Settings, S3SettingsError, URL_PASSWORD_MASK};
pub use store::{ChunkStore, ObjectChunkStore, ObjectChunkStoreConfig, S3Config, S3Credentials};

/// Re-export of the `object_store` crate, so callers can build backends without depending on
/// it themselves.
pub use object_store;
