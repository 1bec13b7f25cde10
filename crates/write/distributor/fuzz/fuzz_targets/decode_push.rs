//! Decodes arbitrary push bodies under every content type / encoding pair, then runs label
//! parsing and level detection over what came out. Run with
//! `cargo +nightly fuzz run decode_push` from `crates/write/distributor`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skald_distributor::{decode_push_body, parse_push_labels, DecodeLimits, LevelDetector};

const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    Some("application/x-protobuf"),
    None,
    Some("application/json; charset=utf-8"),
];
const ENCODINGS: [Option<&str>; 4] = [None, Some("gzip"), Some("deflate"), Some("snappy")];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let ct = CONTENT_TYPES[usize::from(selector & 3)];
    let ce = ENCODINGS[usize::from((selector >> 2) & 3)];
    // small caps so bombs are cut short quickly
    let limits = DecodeLimits { max_recv_msg_size: 1 << 20, max_decompressed_size: 4 << 20 };
    let detector = LevelDetector::new(&[], 2);
    if let Ok(streams) = decode_push_body(body, ct, ce, &limits) {
        for s in streams {
            let _ = parse_push_labels(&s.labels);
            for e in &s.entries {
                let _ = detector.detect_from_line(&e.line.to_str_lossy());
            }
        }
    }
    // the raw bytes as a label string and as a log line
    let text = String::from_utf8_lossy(body);
    let _ = parse_push_labels(&text);
    let _ = detector.detect_from_line(&text);
});
