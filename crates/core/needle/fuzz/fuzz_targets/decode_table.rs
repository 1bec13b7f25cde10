//! Feeds arbitrary bytes to `FilterTable::decode` (the filter tables beside the index), as they
//! are and with a valid CRC32C appended (so that mutations reach the entries past the
//! checksum), and to `NgramFilter::from_bytes` (the filters in a chunk's end); asks whatever
//! decodes a few literals and re-encodes it, which must give the same bytes back.
//! Run with `bash scripts/fuzz.sh 600 needle:decode_table`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skald_needle::{FilterTable, NgramFilter};

fn table(bytes: &[u8]) {
    if let Ok(table) = FilterTable::decode(bytes) {
        assert_eq!(table.encode(), bytes);
        for (id, f) in table.entries() {
            let _ = f.may_contain(b"needle-7f3a9c");
            let _ = f.may_have_label("trace_id", "abc");
            assert!(table.get(id).is_some());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    table(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&crc32c::crc32c(data).to_le_bytes());
    table(&sealed);
    if let Ok(f) = NgramFilter::from_bytes(data) {
        assert_eq!(f.to_bytes(), data);
        let _ = f.may_contain(data);
        let _ = f.fill();
        let _ = f.fold();
    }
});
