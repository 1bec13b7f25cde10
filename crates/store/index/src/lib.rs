//! Skald's label index, kept in object storage.
//!
//! Ingesters record every flushed chunk with [`IndexStore::write_chunks`]; queriers resolve
//! stream selectors to series and chunk refs with [`IndexStore::series`] and answer the label
//! APIs with [`IndexStore::label_names`] / [`IndexStore::label_values`].
//!
//! [`ObjectIndexStore`] writes immutable per-(tenant, day) [`Segment`] files
//! (`<tenant>/index/<day>/<id>.seg`: symbol table, series with chunk refs, roaring postings)
//! through a `skald_chunk_store::ChunkStore` and caches decoded segments. [`MemIndexStore`] is a
//! brute-force in-memory reference for tests. Both pass the `testsuite` (feature
//! `testsuite`).
#![warn(missing_docs)]

mod chunk_ref;
pub mod dynamo;
mod error;
mod filters;
mod mem;
mod object;
mod periods;
mod segment;
mod store;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;
pub mod timed;
mod varint;

pub use chunk_ref::{stats_kib, ChunkRef};
pub use dynamo::{
    DynamoClientConfig, DynamoConfigError, DynamoIndexConfig, DynamoIndexStore, DynamoMetrics,
};
pub use error::{Error, Result};
pub use filters::{
    filter_table, filter_table_path, ChunkFilters, FilterIndex, MAX_FILTER_DAYS, TABLE_MAX_FILL,
};
pub use mem::MemIndexStore;
pub use object::{segment_path, ObjectIndexStore, ObjectIndexStoreConfig};
pub use periods::PeriodIndexStore;
pub use segment::{
    Segment, SegmentBuilder, SegmentSeries, MAX_SEGMENT_RAW_LEN, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
    SEGMENT_VERSION,
};
pub use store::{day_of, days_spanned, IndexStore, SeriesChunks, MAX_CHUNK_DAYS, NANOS_PER_DAY};
pub use timed::TimedIndexStore;
