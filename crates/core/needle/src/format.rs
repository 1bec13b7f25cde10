//! The byte format of a filter, version 1 (`FILTER.md`): an 8-byte header (magic `SKNG`,
//! version, n, log2 of the bits, flags) and the bitset as little-endian 64-bit words.

use crate::{NgramFilter, MAX_LOG2_BITS, MIN_LOG2_BITS};

/// The first four bytes of a serialized filter.
pub const MAGIC: [u8; 4] = *b"SKNG";
/// The format version [`NgramFilter::to_bytes`] writes.
pub const VERSION: u8 = 1;
/// The header's length.
pub const HEADER_LEN: usize = 8;

/// Why bytes are not a filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Shorter than the header.
    #[error("filter too short: {0} bytes")]
    TooShort(usize),
    /// The magic is not `SKNG`.
    #[error("not an n-gram filter (bad magic)")]
    BadMagic,
    /// A version this build does not read.
    #[error("unsupported filter version {0}")]
    UnsupportedVersion(u8),
    /// n is not 3 or 4.
    #[error("unsupported n-gram length {0}")]
    UnsupportedN(u8),
    /// The size is out of range.
    #[error("unsupported filter size 2^{0} bits")]
    UnsupportedSize(u8),
    /// Reserved flags are set.
    #[error("unknown filter flags {0:#04x}")]
    UnknownFlags(u8),
    /// The bitset's length does not match the header.
    #[error("filter bitset is {actual} bytes, the header says {expected}")]
    BadLength {
        /// From the header.
        expected: usize,
        /// After the header.
        actual: usize,
    },
}

impl NgramFilter {
    /// The serialized length of this filter.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.bitset_bytes()
    }

    /// Appends the version-1 bytes of this filter to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[VERSION, self.n, self.log2_bits, 0]);
        for w in &self.words {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// The version-1 bytes of this filter.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    /// Reads a filter written by [`NgramFilter::to_bytes`]; the whole of `bytes` must be the
    /// filter. Never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<NgramFilter, FormatError> {
        let Some((header, bits)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(FormatError::TooShort(bytes.len()));
        };
        let [m0, m1, m2, m3, version, n, log2_bits, flags] = *header;
        if [m0, m1, m2, m3] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion(version));
        }
        if n != 3 && n != 4 {
            return Err(FormatError::UnsupportedN(n));
        }
        if !(MIN_LOG2_BITS..=MAX_LOG2_BITS).contains(&log2_bits) {
            return Err(FormatError::UnsupportedSize(log2_bits));
        }
        if flags != 0 {
            return Err(FormatError::UnknownFlags(flags));
        }
        let expected = (1usize << log2_bits) / 8;
        if bits.len() != expected {
            return Err(FormatError::BadLength { expected, actual: bits.len() });
        }
        let words = bits
            .chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                u64::from_le_bytes(w)
            })
            .collect();
        Ok(NgramFilter { n, log2_bits, words })
    }
}
