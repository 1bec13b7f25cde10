//! The loghub sample (`tests/data/loghub`) cut into blocks, as the tests and the measurement
//! example read it.

/// A block's size limit: a chunk's block, 256 KiB of raw lines.
pub const BLOCK: usize = 256 * 1024;

/// The `.log` files of `dir`, in name order, cut into blocks of whole lines of at most
/// [`BLOCK`] bytes: `(system, block)`.
pub fn blocks(dir: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("loghub dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let data = std::fs::read(&f).expect("read");
        let mut cur = Vec::new();
        for line in data.split_inclusive(|&b| b == b'\n') {
            if cur.len() + line.len() > BLOCK && !cur.is_empty() {
                out.push((name.clone(), std::mem::take(&mut cur)));
            }
            cur.extend_from_slice(line);
        }
        if !cur.is_empty() {
            out.push((name, cur));
        }
    }
    out
}
