//! Skald's chunk byte format: the compressed entries of one stream over one time range.
//!
//! A chunk is a header, a run of independently compressed *blocks* (~256 KiB of raw entries
//! each, zstd), a trailer holding the block index (time bounds, entry count, offset, lengths,
//! CRC32C per block) and a fixed footer pointing at the trailer. A reader can therefore skip
//! blocks by time without decompressing them. The layout is documented byte by byte in
//! `FORMAT.md` next to this crate.
//!
//! A decoded block is columnar ([`DecodedBlock`]): timestamps, line end offsets, all line bytes
//! concatenated, then structured metadata, so a line filter can run one `memmem` over the whole
//! block and map matches back to entries.
//!
//! Since version 3 the trailer also holds an n-gram filter of each block's lines and
//! structured metadata and one of the whole chunk ([`skald_needle::NgramFilter`]):
//! [`Chunk::block_filter`] and [`Chunk::chunk_filter`] say which blocks cannot hold a literal,
//! so a search skips them undecompressed (and unfetched, in a ranged read).
//!
//! This crate does no I/O.
//!
//! ```
//! use skald_chunk::{Chunk, ChunkBuilder};
//! use skald_model::Entry;
//!
//! let mut b = ChunkBuilder::new(skald_chunk::DEFAULT_BLOCK_SIZE);
//! b.append(&Entry { ts: 1, line: "hello".into(), structured_metadata: vec![] })?;
//! b.append(&Entry { ts: 2, line: "world".into(), structured_metadata: vec![] })?;
//! let encoded = b.finish()?;
//! let chunk = Chunk::parse(&encoded.bytes)?;
//! let block = chunk.decode_block(0)?;
//! assert_eq!(block.line(1), b"world");
//! # Ok::<(), skald_chunk::Error>(())
//! ```
#![warn(missing_docs)]

mod block;
mod builder;
mod chunk;
mod error;
mod format;
mod stats;
mod varint;

pub use block::DecodedBlock;
pub use builder::{ChunkBuilder, EncodedChunk};
pub use chunk::{decompress_capped, trailer_range, BlockReader, Chunk, ChunkEntries};
pub use error::{Error, Result};
pub use format::{
    BlockMeta, Codec, BLOCK_META_LEN, DEFAULT_BLOCK_SIZE, DEFAULT_ZSTD_LEVEL, FOOTER_LEN,
    FORMAT_VERSION, FORMAT_VERSION_V1, FORMAT_VERSION_V2, HEADER_LEN, MAGIC, MAX_BLOCK_RAW_LEN,
};
pub use skald_needle::NgramFilter;
pub use stats::{
    BlockStats, Bucket, DEFAULT_STATS_BUCKET_NS, MAX_STATS_METADATA_BYTES, MAX_STATS_METADATA_SETS,
};

#[cfg(test)]
mod filter_tests;
#[cfg(test)]
mod tests;
