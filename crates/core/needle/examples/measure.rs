//! Measures n-gram filters on the loghub sample (tests/data/loghub, 10 systems): filter bytes
//! per raw byte, fill, build time per raw byte, and the false-positive rates of absent
//! needles, per block of 256 KiB and per chunk (the union of the blocks), for n = 3 and 4
//! and several sizes. It measures and prints; it checks nothing.
//!
//! `cargo run --release -p skald-needle --example measure [loghub-dir]`

use std::time::Instant;

use skald_needle::{log2_for, ChunkFilterBuilder, NgramFilter};

#[path = "../tests/support/loghub.rs"]
mod loghub;
use loghub::{blocks, BLOCK};
const CHUNK: usize = 4 << 20;

/// xorshift64*: a fixed seed, so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// This thread's CPU time in ns, so that other processes on a shared machine count less.
fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

fn fold(b: &[u8]) -> Vec<u8> {
    b.iter().map(|c| c | 0x20).collect()
}

fn contains(hay_folded: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay_folded, &fold(needle)).is_some()
}

fn tokens(data: &[u8], min: usize) -> Vec<Vec<u8>> {
    let mut t: Vec<Vec<u8>> = data
        .split(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b':')))
        .filter(|t| t.len() >= min && t.len() <= 40)
        .map(<[u8]>::to_vec)
        .collect();
    t.sort();
    t.dedup();
    t
}

/// Absent needles of three kinds for a haystack: random 10-20 byte strings, tokens of other
/// systems, and real tokens with one or two characters changed (another id, another user).
fn needles(hay: &[u8], own: &[Vec<u8>], others: &[Vec<u8>], rng: &mut Rng) -> [Vec<Vec<u8>>; 3] {
    let folded = fold(hay);
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";
    let mut random = Vec::new();
    while random.len() < 2000 {
        let len = 10 + rng.below(11);
        let s: Vec<u8> = (0..len).map(|_| ALNUM[rng.below(ALNUM.len())]).collect();
        if !contains(&folded, &s) {
            random.push(s);
        }
    }
    let foreign: Vec<Vec<u8>> =
        others.iter().filter(|t| !contains(&folded, t)).take(4000).cloned().collect();
    let mut mutated = Vec::new();
    let long: Vec<&Vec<u8>> = own.iter().filter(|t| t.len() >= 8).collect();
    let mut tries = 0;
    while mutated.len() < 2000 && !long.is_empty() && tries < 100_000 {
        tries += 1;
        let mut t = long[rng.below(long.len())].clone();
        for _ in 0..1 + rng.below(2) {
            let i = rng.below(t.len());
            t[i] = ALNUM[rng.below(36)];
        }
        if !contains(&folded, &t) {
            mutated.push(t);
        }
    }
    [random, foreign, mutated]
}

fn fp_rate(f: &NgramFilter, set: &[Vec<u8>]) -> f64 {
    if set.is_empty() {
        return f64::NAN;
    }
    set.iter().filter(|n| f.may_contain(n)).count() as f64 / set.len() as f64
}

fn build(n: u8, log2: u8, text: &[u8]) -> NgramFilter {
    let mut f = NgramFilter::new(n, log2).expect("size");
    f.add(text);
    f
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "tests/data/loghub".to_string());
    let blocks = blocks(&dir);
    let raw: usize = blocks.iter().map(|(_, b)| b.len()).sum();
    println!("{} blocks, {} raw bytes, from {dir}", blocks.len(), raw);
    let mut rng = Rng(0x5EED_0F5A_1D00_0001);
    let all: Vec<u8> = blocks.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    let per_block_tokens: Vec<Vec<Vec<u8>>> = blocks.iter().map(|(_, b)| tokens(b, 6)).collect();
    let block_needles: Vec<[Vec<Vec<u8>>; 3]> = blocks
        .iter()
        .enumerate()
        .map(|(i, (_, b))| {
            let others: Vec<Vec<u8>> = per_block_tokens
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .flat_map(|(_, t)| t.iter().cloned())
                .collect();
            needles(b, &per_block_tokens[i], &others, &mut rng)
        })
        .collect();
    // the chunk: every block (all systems: a pessimistic, mixed chunk)
    let all_tokens = tokens(&all, 6);
    let chunk_needles = needles(&all, &all_tokens, &[], &mut rng);

    println!(
        "\nper block (256 KiB of lines): filter/raw, mean fill, FP of absent needles: random \
         10-20 B | tokens of other systems (>= 6 B) | own tokens >= 8 B with 1-2 chars changed"
    );
    for n in [3u8, 4] {
        for bpb in [1.0 / 32.0, 1.0 / 16.0, 1.0 / 8.0] {
            let mut bytes = 0usize;
            let (mut fill, mut fp) = (0.0, [0.0f64; 3]);
            let mut filters = Vec::new();
            for ((_, b), nd) in blocks.iter().zip(&block_needles) {
                // the size a full block gets (most blocks of a chunk are full; these samples
                // are one system each, 150-385 KB, cut at 256 KiB)
                let f = build(n, log2_for(BLOCK, bpb), b);
                bytes += f.encoded_len();
                fill += f.fill();
                for k in 0..3 {
                    fp[k] += fp_rate(&f, &nd[k]);
                }
                filters.push(f);
            }
            let nb = blocks.len() as f64;
            println!(
                "  n={n} bits/byte=1/{:<3} filter/256KiB={:.4} fill={:.3} fp={:.5} | {:.5} | {:.4}",
                (1.0 / bpb) as u32,
                (bytes / blocks.len()) as f64 / BLOCK as f64,
                fill / nb,
                fp[0] / nb,
                fp[1] / nb,
                fp[2] / nb
            );
            // the chunk as the union of its blocks, and built at the chunk's own size class
            let union =
                filters.iter().skip(1).fold(filters[0].clone(), |u, f| u.union(f).expect("same n"));
            let chunk = build(n, log2_for(CHUNK, bpb), &all);
            for (what, f) in [("union of blocks", &union), ("built per chunk", &chunk)] {
                println!(
                    "      chunk {what:<15}: filter/4MiB={:.4} fill={:.3} fp={:.5} | - | {:.4}",
                    f.encoded_len() as f64 / CHUNK as f64,
                    f.fill(),
                    fp_rate(f, &chunk_needles[0]),
                    fp_rate(f, &chunk_needles[2]),
                );
            }
        }
    }

    println!(
        "\nthe defaults: ChunkFilterBuilder::new(256 KiB, 4 MiB): n=3, 1/32 bit per target raw \
         byte, folded while fill <= 0.25, every byte hashed once"
    );
    let mut b = ChunkFilterBuilder::new(BLOCK, CHUNK);
    let mut bytes = 0usize;
    let (mut fill, mut fp) = (0.0, [0.0f64; 3]);
    for ((_, blk), nd) in blocks.iter().zip(&block_needles) {
        let f = b.add_block(blk);
        bytes += f.encoded_len();
        fill += f.fill();
        for k in 0..3 {
            fp[k] += fp_rate(&f, &nd[k]);
        }
    }
    let chunk = b.finish_chunk();
    let nb = blocks.len() as f64;
    println!(
        "  blocks: filter/raw={:.4} fill={:.3} fp={:.5} | {:.5} | {:.4}",
        bytes as f64 / raw as f64,
        fill / nb,
        fp[0] / nb,
        fp[1] / nb,
        fp[2] / nb
    );
    println!(
        "  chunk (all {nb} blocks, {raw} bytes): 2^{} bits, filter/raw={:.4} fill={:.3} fp={:.5} | - | {:.4}",
        chunk.log2_bits(),
        chunk.encoded_len() as f64 / raw as f64,
        chunk.fill(),
        fp_rate(&chunk, &chunk_needles[0]),
        fp_rate(&chunk, &chunk_needles[2]),
    );
    println!(
        "  blocks + chunk filters = {:.4} of these raw bytes; at 16 full blocks per 4 MiB chunk: {:.4}",
        (bytes + chunk.encoded_len()) as f64 / raw as f64,
        (16 * (8 + 1024) + 8 + 16384) as f64 / CHUNK as f64
    );

    // a bigger chunk: the reference push lines (3.5 MB, 22 streams of loghub systems and
    // synthetic web and worker logs), cut into 256 KiB blocks
    let push = std::path::Path::new(&dir).join("../reference/push");
    if let Ok(rd) = std::fs::read_dir(&push) {
        let mut files: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        let mut text = Vec::new();
        for f in files {
            let Ok(bytes) = std::fs::read(&f) else { continue };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else { continue };
            for st in v["streams"].as_array().into_iter().flatten() {
                for e in st["values"].as_array().into_iter().flatten() {
                    text.extend_from_slice(e[1].as_str().unwrap_or_default().as_bytes());
                    text.push(b'\n');
                }
            }
        }
        let toks = tokens(&text, 6);
        let nd = needles(&text, &toks, &[], &mut rng);
        let mut b = ChunkFilterBuilder::new(BLOCK, CHUNK);
        let mut block_bytes = 0;
        for blk in text.chunks(BLOCK) {
            block_bytes += b.add_block(blk).encoded_len();
        }
        let chunk = b.finish_chunk();
        println!(
            "  chunk of the reference push lines ({} bytes, {} blocks): 2^{} bits, filter/raw={:.4} \
             fill={:.3} fp={:.5} | - | {:.4}; blocks + chunk = {:.4} of raw",
            text.len(),
            text.len().div_ceil(BLOCK),
            chunk.log2_bits(),
            chunk.encoded_len() as f64 / text.len() as f64,
            chunk.fill(),
            fp_rate(&chunk, &nd[0]),
            fp_rate(&chunk, &nd[2]),
            (block_bytes + chunk.encoded_len()) as f64 / text.len() as f64
        );
    }

    println!(
        "\nbuild time (release; this thread's CPU time, the fastest of 9 runs over the {raw} bytes, ns per raw byte):"
    );
    let time = |f: &mut dyn FnMut()| {
        (0..9)
            .map(|_| {
                let (start, cpu) = (Instant::now(), thread_cpu_ns());
                f();
                let ns = match (cpu, thread_cpu_ns()) {
                    (Some(a), Some(b)) => (b - a) as f64,
                    _ => start.elapsed().as_nanos() as f64,
                };
                ns / raw as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    for n in [3u8, 4] {
        for log2 in [13u8, 17] {
            let mut f = NgramFilter::new(n, log2).expect("size");
            let ns = time(&mut || {
                for (_, b) in &blocks {
                    f.add(b);
                }
            });
            println!("  add, n={n}, 2^{log2} bits: {ns:.3}");
        }
    }
    let ns = time(&mut || {
        let mut b = ChunkFilterBuilder::new(BLOCK, CHUNK);
        for (_, blk) in &blocks {
            let _ = b.add_block(blk);
        }
        let _ = b.finish_chunk();
    });
    println!("  ChunkFilterBuilder (blocks and chunk, folds included): {ns:.3}");
    let scan = time(&mut || {
        for (_, b) in &blocks {
            std::hint::black_box(memchr::memmem::find(b, b"needle-5kald-7f3a9c"));
        }
    });
    println!("  for scale: one memmem search of the raw bytes: {scan:.3}");
}
