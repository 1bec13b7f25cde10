//! Constants and fixed-size records of the chunk format (see `FORMAT.md`).

use crate::error::{Error, Result};
use crate::varint::Reader;

/// First four bytes of every chunk, and last four bytes of its footer.
pub const MAGIC: [u8; 4] = *b"SKCK";
/// The format version this build writes (and reads, as well as [`FORMAT_VERSION_V2`] and
/// [`FORMAT_VERSION_V1`]). Version 2 added per-block statistics to the trailer, version 3
/// n-gram filters of each block and of the chunk (`skald_needle`).
pub const FORMAT_VERSION: u8 = 3;
/// Version 2: statistics, no filters. Still read, and written on request
/// ([`crate::ChunkBuilder::with_format_version`]).
pub const FORMAT_VERSION_V2: u8 = 2;
/// The first format version: no statistics. Still read, and written on request
/// ([`crate::ChunkBuilder::with_format_version`]).
pub const FORMAT_VERSION_V1: u8 = 1;
/// Size of the header: magic, version, codec, two reserved bytes.
pub const HEADER_LEN: usize = 8;
/// Size of the footer: trailer offset (u64), trailer length (u32), magic.
pub const FOOTER_LEN: usize = 16;
/// Size of one [`BlockMeta`] record in the trailer.
pub const BLOCK_META_LEN: usize = 40;
/// Default raw size at which a builder cuts a block (256 KiB).
pub const DEFAULT_BLOCK_SIZE: usize = 256 * 1024;
/// Largest raw (decompressed) block size a reader accepts and a builder produces (32 MiB).
/// This caps the memory one corrupt or hostile block can make a reader allocate.
pub const MAX_BLOCK_RAW_LEN: usize = 32 * 1024 * 1024;
/// Default zstd level: fast compression, good ratio on log lines.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// How block payloads are compressed. Stored in the header's codec byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Codec {
    /// Blocks are stored raw (codec byte 0). Meant for tests and debugging.
    None,
    /// Each block is one zstd frame (codec byte 1).
    #[default]
    Zstd,
}

impl Codec {
    /// The header byte for this codec.
    pub fn to_byte(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Zstd => 1,
        }
    }

    /// Parses a header codec byte.
    pub fn from_byte(b: u8) -> Result<Self> {
        match b {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Zstd),
            codec => Err(Error::UnsupportedCodec { codec }),
        }
    }
}

/// One entry of the block index: where a block is and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockMeta {
    /// Timestamp of the block's first (oldest) entry, ns.
    pub min_ts: i64,
    /// Timestamp of the block's last (newest) entry, ns.
    pub max_ts: i64,
    /// Number of entries.
    pub entries: u32,
    /// Byte offset of the compressed payload from the start of the chunk.
    pub offset: u64,
    /// Length of the compressed payload.
    pub compressed_len: u32,
    /// Length of the payload once decompressed.
    pub raw_len: u32,
    /// CRC32C (Castagnoli) of the compressed payload.
    pub crc32c: u32,
}

impl BlockMeta {
    /// Returns true when the block may hold entries in the half-open range `[start, end)`.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.min_ts < end && self.max_ts >= start
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.min_ts.to_le_bytes());
        out.extend_from_slice(&self.max_ts.to_le_bytes());
        out.extend_from_slice(&self.entries.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.compressed_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.extend_from_slice(&self.crc32c.to_le_bytes());
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(BlockMeta {
            min_ts: r.i64_le("block meta")?,
            max_ts: r.i64_le("block meta")?,
            entries: r.u32_le("block meta")?,
            offset: r.u64_le("block meta")?,
            compressed_len: r.u32_le("block meta")?,
            raw_len: r.u32_le("block meta")?,
            crc32c: r.u32_le("block meta")?,
        })
    }
}
