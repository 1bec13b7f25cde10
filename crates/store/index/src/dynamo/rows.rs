//! Index rows: hash keys, range keys and the encoding of their payloads (see the row layout in
//! the parent module's docs).

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use skald_model::{Label, Labels};

use super::schema::{HASH_KEY, RANGE_KEY, VALUE};
use crate::chunk_ref::ChunkRef;
use crate::error::{Error, Result};
use crate::varint::{put_uvarint, Reader};

pub(super) type Item = HashMap<String, AttributeValue>;

/// An index row: hash key `h`, range key `r`, payload `v` when there is one.
pub(super) fn row(h: String, r: Vec<u8>, v: Option<Vec<u8>>) -> Item {
    let mut item = Item::with_capacity(3);
    item.insert(HASH_KEY.into(), AttributeValue::S(h));
    item.insert(RANGE_KEY.into(), AttributeValue::B(Blob::new(r)));
    if let Some(v) = v {
        item.insert(VALUE.into(), AttributeValue::B(Blob::new(v)));
    }
    item
}

pub(super) fn series_hash(tenant: &str, day: i64) -> String {
    format!("{tenant}:d{day}:s")
}

pub(super) fn days_hash(tenant: &str) -> String {
    format!("{tenant}:days")
}

pub(super) fn chunk_hash(tenant: &str, day: i64) -> String {
    format!("{tenant}:d{day}:c")
}

pub(super) fn ts_key(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

pub(super) fn ts_from_key(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    (u64::from_be_bytes(a) ^ (1 << 63)) as i64
}

pub(super) fn chunk_range_key(c: &ChunkRef) -> Vec<u8> {
    let mut r = Vec::with_capacity(28);
    r.extend_from_slice(&c.fingerprint.to_be_bytes());
    r.extend_from_slice(&ts_key(c.from));
    r.extend_from_slice(&ts_key(c.through));
    r.extend_from_slice(&c.checksum.to_be_bytes());
    r
}

pub(super) fn chunk_value(c: &ChunkRef) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    put_uvarint(&mut v, u64::from(c.entries));
    put_uvarint(&mut v, c.uncompressed_bytes);
    put_uvarint(&mut v, c.compressed_bytes);
    put_uvarint(&mut v, c.stats_bytes);
    v
}

pub(super) fn decode_chunk(r: &[u8], v: &[u8]) -> Result<ChunkRef> {
    if r.len() != 28 {
        return Err(Error::corrupt(format!("chunk row key of {} bytes", r.len())));
    }
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&r[..8]);
    let mut cs = [0u8; 4];
    cs.copy_from_slice(&r[24..28]);
    let mut rd = Reader::new(v);
    let entries = u32::try_from(rd.uvarint()?).map_err(|_| Error::corrupt("chunk entries"))?;
    let uncompressed_bytes = rd.uvarint()?;
    let compressed_bytes = rd.uvarint()?;
    // rows written before the stats size existed end here: their raw size stands in for it
    let stats_bytes = if rd.remaining() == 0 { uncompressed_bytes } else { rd.uvarint()? };
    Ok(ChunkRef {
        fingerprint: u64::from_be_bytes(fp),
        from: ts_from_key(&r[8..16]),
        through: ts_from_key(&r[16..24]),
        checksum: u32::from_be_bytes(cs),
        entries,
        uncompressed_bytes,
        compressed_bytes,
        stats_bytes,
    })
}

pub(super) fn labels_value(labels: &Labels) -> Vec<u8> {
    let mut v = Vec::new();
    put_uvarint(&mut v, labels.len() as u64);
    for l in labels.iter() {
        put_uvarint(&mut v, l.name.len() as u64);
        v.extend_from_slice(l.name.as_bytes());
        put_uvarint(&mut v, l.value.len() as u64);
        v.extend_from_slice(l.value.as_bytes());
    }
    v
}

pub(super) fn decode_labels(v: &[u8]) -> Result<Labels> {
    let mut rd = Reader::new(v);
    let n = rd.count(2)?;
    let mut out = Vec::with_capacity(n);
    let string = |rd: &mut Reader<'_>| -> Result<String> {
        let len = rd.count(1)?;
        let b = rd.bytes(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| Error::corrupt("label is not UTF-8"))
    };
    for _ in 0..n {
        let name = string(&mut rd)?;
        let value = string(&mut rd)?;
        out.push(Label::new(name, value));
    }
    Ok(Labels::from_vec(out))
}

pub(super) fn blob(item: &Item, name: &str) -> Result<Vec<u8>> {
    match item.get(name) {
        Some(AttributeValue::B(b)) => Ok(b.as_ref().to_vec()),
        _ => Err(Error::corrupt(format!("index row without binary `{name}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_time() {
        let c = ChunkRef {
            fingerprint: 0xdead_beef,
            from: -5,
            through: 1_700_000_000_000_000_000,
            checksum: 7,
            entries: 3,
            uncompressed_bytes: 100,
            compressed_bytes: 40,
            stats_bytes: 90,
        };
        assert_eq!(decode_chunk(&chunk_range_key(&c), &chunk_value(&c)).unwrap(), c);
        // a row from before the stats size: three varints
        let mut old_row = Vec::new();
        for v in [3u64, 100, 40] {
            put_uvarint(&mut old_row, v);
        }
        let old = decode_chunk(&chunk_range_key(&c), &old_row).unwrap();
        assert_eq!(old, ChunkRef { stats_bytes: 100, ..c });
        assert!(ts_key(-5) < ts_key(0) && ts_key(0) < ts_key(5));
        let l = Labels::parse(r#"{app="a", env="é"}"#).unwrap();
        assert_eq!(decode_labels(&labels_value(&l)).unwrap(), l);
        assert!(decode_labels(&[5, 1]).is_err());
    }
}
