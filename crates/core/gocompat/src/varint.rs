//! Unsigned LEB128 varints and zigzag, as Go's `encoding/binary` `PutUvarint`/`Uvarint`.

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Number of bytes `put_uvarint(v)` writes.
pub fn uvarint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Maps a signed integer onto an unsigned one so that small magnitudes stay small.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends `v` zigzag-encoded as an unsigned varint (Go's `PutVarint`).
pub fn put_zvarint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, zigzag(v));
}

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended inside the varint.
    Truncated,
    /// The tenth byte carries more than the one bit left in a `u64`.
    Overflow,
    /// More than ten bytes with the continuation bit set.
    TooLong,
}

/// Reads an unsigned varint at the start of `buf`; returns it and the number of bytes used.
pub fn read_uvarint(buf: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut v: u64 = 0;
    let mut pos = 0;
    for shift in (0..64).step_by(7) {
        let Some(&b) = buf.get(pos) else {
            return Err(VarintError::Truncated);
        };
        pos += 1;
        if shift == 63 && b > 1 {
            return Err(VarintError::Overflow);
        }
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok((v, pos));
        }
    }
    Err(VarintError::TooLong)
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
            assert_eq!(read_uvarint(&b), Ok((v, b.len())));
        }
    }

    #[test]
    fn zigzag_roundtrip() {
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, 1_700_000_000_000_000_000] {
            assert_eq!(unzigzag(zigzag(v)), v);
            let mut b = Vec::new();
            put_zvarint(&mut b, v);
            assert_eq!(read_uvarint(&b).map(|(u, _)| unzigzag(u)), Ok(v));
        }
    }

    #[test]
    fn bad_varints() {
        assert_eq!(read_uvarint(&[0xffu8; 11]), Err(VarintError::Overflow));
        let b = [0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(read_uvarint(&b), Err(VarintError::Overflow));
        assert_eq!(read_uvarint(&[0x80]), Err(VarintError::Truncated));
        assert_eq!(read_uvarint(&[]), Err(VarintError::Truncated));
    }
}
