//! A deterministic stand-in for the cargo-fuzz target (`fuzz/`), which needs nightly: mutates
//! valid bodies and random bytes and checks that decoding, label parsing and level detection
//! never panic.
#![allow(clippy::unwrap_used)]

use std::io::Write;

use prost::Message;
use skald_common::splitmix::SplitMix64 as Rng;
use skald_distributor::{decode_push_body, parse_push_labels, DecodeLimits, LevelDetector};
use skald_proto::logproto::{EntryAdapter, PushRequest, StreamAdapter};

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(4) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next_u64() as u8;
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.truncate(i);
            }
            2 => {
                let i = rng.below(v.len() + 1);
                let b = b"{}[]\",:\\0-e\xff"[rng.below(12)];
                v.insert(i, b);
            }
            _ => {
                let i = rng.below(v.len() + 1);
                let j = rng.below(v.len() + 1);
                let (a, b) = (i.min(j), i.max(j));
                let dup = v[a..b].to_vec();
                v.splice(a..a, dup);
            }
        }
    }
    v
}

#[test]
fn decoding_never_panics() {
    let json = br#"{"streams":[{"stream":{"job":"a","x":"y"},"values":[["1","level=info a=\"b\"",{"k":"v"}],["2","{\"level\":\"warn\",\"a\":{\"lvl\":\"x\"}}"]]}]}"#;
    let proto = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{job="a", "b"="c"}"#.into(),
            entries: vec![EntryAdapter { timestamp: None, line: "x".into(), ..Default::default() }],
            hash: 0,
        }],
        format: String::new(),
    }
    .encode_to_vec();
    let snappy = snap::raw::Encoder::new().compress_vec(&proto).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(json).unwrap();
    let gz = gz.finish().unwrap();
    let seeds: [(&[u8], Option<&str>, Option<&str>); 3] = [
        (json, Some("application/json"), None),
        (&snappy, Some("application/x-protobuf"), None),
        (&gz, Some("application/json"), Some("gzip")),
    ];
    let limits = DecodeLimits { max_recv_msg_size: 1 << 16, max_decompressed_size: 1 << 18 };
    let detector = LevelDetector::new(&[], 2);
    let mut rng = Rng::new(7);
    for i in 0..30_000 {
        let (seed, ct, ce) = seeds[i % seeds.len()];
        let body = if i % 10 == 0 {
            (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect()
        } else {
            mutate(&mut rng, seed)
        };
        if let Ok(streams) = decode_push_body(&body, ct, ce, &limits) {
            for s in streams {
                let _ = parse_push_labels(&s.labels);
                for e in &s.entries {
                    let _ = detector.detect_from_line(&e.line.to_str_lossy());
                }
            }
        }
        let text = String::from_utf8_lossy(&body);
        let _ = parse_push_labels(&text);
        let _ = detector.detect_from_line(&text);
    }
}
