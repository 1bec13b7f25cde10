//! A bounds-checked byte reader; the LEB128 varints and zigzag are `skald_gocompat::varint`.

use crate::error::{Error, Result};
use skald_gocompat::varint::{read_uvarint, VarintError};

pub(crate) use skald_gocompat::varint::{put_uvarint, unzigzag, uvarint_len, zigzag};

/// A cursor over a byte slice whose every read is bounds-checked.
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

    pub(crate) fn uvarint(&mut self, what: &str) -> Result<u64> {
        match read_uvarint(&self.buf[self.pos..]) {
            Ok((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            Err(VarintError::Truncated) => {
                Err(Error::corrupt(format!("truncated varint in {what}")))
            }
            Err(VarintError::Overflow) => Err(Error::corrupt(format!("varint overflow in {what}"))),
            Err(VarintError::TooLong) => Err(Error::corrupt(format!("varint too long in {what}"))),
        }
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::corrupt(format!("truncated {what}")));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn u32_le(&mut self, what: &str) -> Result<u32> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64_le(&mut self, what: &str) -> Result<u64> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(crate) fn i64_le(&mut self, what: &str) -> Result<i64> {
        Ok(self.u64_le(what)? as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_roundtrip_and_len() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            assert_eq!(b.len(), uvarint_len(v), "{v}");
            let mut r = Reader::new(&b);
            assert_eq!(r.uvarint("t").unwrap(), v);
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn zigzag_roundtrip() {
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, 1_700_000_000_000_000_000] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let b = [0xffu8; 11];
        assert!(Reader::new(&b).uvarint("t").is_err());
        let b = [0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader::new(&b).uvarint("t").is_err());
        assert!(Reader::new(&[0x80]).uvarint("t").is_err());
    }
}
