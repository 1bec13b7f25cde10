//! Feeds arbitrary bytes to `Chunk::parse` and decodes every block (and its statistics) of
//! whatever parses.
//! Run with `cargo fuzz run parse_chunk` from `crates/store/chunk`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skald_chunk::Chunk;

fuzz_target!(|data: &[u8]| {
    if let Ok(chunk) = Chunk::parse(data) {
        let _ = chunk.verify();
        for i in 0..chunk.blocks().len() {
            let _ = chunk.block_stats(i);
            if let Ok(block) = chunk.decode_block(i) {
                for j in 0..block.len() {
                    let _ = block.entry(j);
                }
                let _ = block.entry_index_at_offset(block.lines_bytes().len() / 2);
            }
        }
        for entry in chunk.iter_entries(i64::MIN, i64::MAX) {
            if entry.is_err() {
                break;
            }
        }
    }
});
