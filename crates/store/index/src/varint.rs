//! A bounds-checked byte reader for segment decoding; the LEB128 varints and zigzag are
//! `skald_gocompat::varint`.

use crate::error::{Error, Result};
use skald_gocompat::varint::{read_uvarint, unzigzag, VarintError};

pub(crate) use skald_gocompat::varint::{put_uvarint, put_zvarint};

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn uvarint(&mut self) -> Result<u64> {
        match read_uvarint(&self.buf[self.pos..]) {
            Ok((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            Err(VarintError::Truncated) => Err(Error::corrupt("truncated varint")),
            Err(VarintError::Overflow) => Err(Error::corrupt("varint overflow")),
            Err(VarintError::TooLong) => Err(Error::corrupt("varint too long")),
        }
    }

    pub(crate) fn zvarint(&mut self) -> Result<i64> {
        Ok(unzigzag(self.uvarint()?))
    }

    /// Reads a count of items that each take at least `min_item_len` bytes, refusing counts
    /// the remaining input cannot hold (this also bounds allocations).
    pub(crate) fn count(&mut self, min_item_len: usize) -> Result<usize> {
        let n = self.uvarint()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n.saturating_mul(min_item_len) <= self.remaining())
            .ok_or_else(|| Error::corrupt("count exceeds the remaining bytes"))
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::corrupt("truncated field"));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn u32_le(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64_le(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.bytes(8)?);
        Ok(u64::from_le_bytes(a))
    }
}
