//! What a filesystem store holds, read from its directory: bytes, objects, chunk objects, and
//! the n-gram filters' bytes (in the chunks' ends and in the filter tables).

use std::path::Path;

/// The bytes of the files under `dir`.
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => n += dir_bytes(&p),
                Ok(m) => n += m.len(),
                Err(_) => {}
            }
        }
    }
    n
}

/// Files under `dir` (objects of a filesystem store).
pub(crate) fn file_count(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => file_count(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

/// The bytes of the chunks' n-gram filters (chunk format version 3) under `dir`: every file
/// that parses as a chunk counts its blocks' filters and its own.
/// Chunk objects under `dir` (files in a `chunks` directory at any depth).
pub(crate) fn chunk_file_count(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() && e.file_name() == "chunks" => file_count(&e.path()),
            Ok(m) if m.is_dir() => chunk_file_count(&e.path()),
            _ => 0,
        })
        .sum()
}

/// The bytes of the filter tables under `dir` (`<tenant>/filters/<day>/<id>.flt`).
pub(crate) fn filter_table_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => filter_table_bytes(&e.path()),
            Ok(m) if e.path().extension().is_some_and(|x| x == "flt") => m.len(),
            _ => 0,
        })
        .sum()
}

/// The bytes of the n-gram filters in the ends of the chunks under `dir` (filter tables left
/// out).
pub(crate) fn filter_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => filter_bytes(&e.path()),
            Ok(_) if e.path().extension().is_some_and(|x| x == "flt") => 0,
            Ok(_) => std::fs::read(e.path())
                .ok()
                .and_then(|b| skald_chunk::Chunk::parse(&b).ok())
                .map_or(0, |c| {
                    let blocks = (0..c.blocks().len()).filter_map(|i| c.block_filter(i));
                    let len = |f: skald_chunk::NgramFilter| f.encoded_len() as u64;
                    blocks.map(len).sum::<u64>() + c.chunk_filter().map_or(0, len)
                }),
            Err(_) => 0,
        })
        .sum()
}
