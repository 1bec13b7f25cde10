//! Feeds arbitrary bytes to the WAL reader as a segment file: framing, CRCs and record
//! decoding must end in a clean end or a damage report, never a panic or a huge allocation.
//! Run with `bash scripts/fuzz.sh 600 ingester:wal_records`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skald_ingester::wal::{decode_record, read_records};

fuzz_target!(|data: &[u8]| {
    let _ = read_records(data, data.len() as u64, |payload| decode_record(payload).map(|_| ()));
    // The payload decoder alone, on bytes that did not pass a CRC.
    let _ = decode_record(data);
});
