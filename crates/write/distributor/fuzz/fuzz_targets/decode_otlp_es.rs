//! OTLP/HTTP log bodies (protobuf and JSON, every Content-Encoding) through decoding and
//! Loki's attribute mapping, and Elasticsearch bulk bodies through NDJSON parsing and the
//! document mapping. Run with `cargo +nightly fuzz run decode_otlp_es` from
//! `crates/write/distributor`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skald_distributor::elastic::{bulk_documents, ElasticConfig};
use skald_distributor::otlp::{decode_otlp_body, otlp_to_streams, OtlpRules};
use skald_distributor::{DecodeLimits, DEFAULT_OTLP_INDEX_LABEL_ATTRIBUTES};

const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/x-protobuf"),
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    None,
];
const ENCODINGS: [Option<&str>; 4] = [None, Some("gzip"), Some("zstd"), Some("lz4")];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    // small caps so bombs are cut short quickly
    let limits = DecodeLimits { max_recv_msg_size: 1 << 20, max_decompressed_size: 4 << 20 };
    if selector & 0x80 == 0 {
        let ct = CONTENT_TYPES[usize::from(selector & 3)];
        let ce = ENCODINGS[usize::from((selector >> 2) & 3)];
        if let Ok((req, _)) = decode_otlp_body(body, ct, ce, &limits) {
            let defaults: Vec<String> =
                DEFAULT_OTLP_INDEX_LABEL_ATTRIBUTES.iter().map(|s| s.to_string()).collect();
            if let Ok(rules) = OtlpRules::new(&defaults, &Default::default()) {
                let _ = otlp_to_streams(req, &rules, &["service".to_string()], 1);
            }
        }
    } else {
        let index = (selector & 1 == 1).then_some("fuzz");
        let _ = bulk_documents(&ElasticConfig::default(), index, body, 1);
    }
});
