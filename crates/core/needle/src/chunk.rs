//! The filters of a chunk's blocks and of the whole chunk, with every byte hashed once: each
//! block is hashed into the bits of a filter of the chunk's size, which are ORed into the
//! chunk's and folded down to the block's size.
//!
//! The block's bits are first gathered one byte per bit, in a per-thread table of
//! `2^chunk_log2` bytes (128 KiB for a 4 MiB chunk), then packed into words: a plain byte
//! store per position, where setting a bit in place is a read-modify-write of a word that
//! the next positions often hit again, and the hashes of 32 positions at a time, which the
//! compiler vectorizes (with AVX2 where the CPU has it). Same hash, same bits as
//! [`NgramFilter::add`] (`FILTER.md`); about 40% less time per byte.

use std::cell::RefCell;

use crate::{
    hash, label_text_into, log2_for, squeeze, NgramFilter, DEFAULT_BITS_PER_BYTE, DEFAULT_N,
    MAX_LOG2_BITS, MIN_LOG2_BITS,
};

/// The largest chunk filter whose block bits are gathered in a byte table (2^18 bytes, 256
/// KiB per thread); a larger one (blocks of more than 512 KiB) sets bits in place.
const TABLE_MAX_LOG2: u8 = 18;

/// Positions hashed per round of [`mark_grams`].
const ROUND: usize = 32;

thread_local! {
    /// The byte table (all zero between calls), the packed words of the block at the
    /// chunk's size and a label's text: reused, so that a block allocates only its filter.
    static SCRATCH: RefCell<(Vec<u8>, Vec<u64>, Vec<u8>)> =
        const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// Sets `table[hash(g) >> (32 - log2)]` to 1 for every folded 3-gram `g` of `text`;
/// `table` holds `2^log2` bytes.
#[inline(always)]
fn mark_grams_body(table: &mut [u8], log2: u8, text: &[u8]) {
    let shift = 32 - u32::from(log2);
    // idx < 2^log2 = table.len(): the mask only spares the bounds check
    let mask = table.len() - 1;
    let gram = |b: &[u8], j: usize| {
        u32::from(b[j]) | u32::from(b[j + 1]) << 8 | u32::from(b[j + 2]) << 16 | 0x20_2020
    };
    let mut h = [0u32; ROUND];
    let mut i = 0;
    while let Some(b) = text.get(i..).and_then(<[u8]>::first_chunk::<{ ROUND + 2 }>) {
        for (j, h) in h.iter_mut().enumerate() {
            *h = hash(gram(b, j)) >> shift;
        }
        for &idx in &h {
            table[idx as usize & mask] = 1;
        }
        i += ROUND;
    }
    while let Some(b) = text.get(i..).and_then(<[u8]>::first_chunk::<3>) {
        table[(hash(gram(b, 0)) >> shift) as usize & mask] = 1;
        i += 1;
    }
}

/// ORs the table's bytes (0 or 1) into `words` as bits, byte `j` bit `j`, and zeroes the
/// table again. Plain indexed loops: compiled for AVX2 (`#[target_feature]`) this loop lost
/// its inlining and ran seven times slower.
fn pack(table: &mut [u8], words: &mut [u64]) {
    for (i, w) in words.iter_mut().enumerate() {
        let Some(bytes) = table.get(i * 64..i * 64 + 64) else { break };
        let mut bits = 0u64;
        for k in 0..8 {
            let b = &bytes[k * 8..k * 8 + 8];
            let x = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            // byte i (0 or 1) lands on bit 56 + i, and no two products overlap
            bits |= (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * k);
        }
        *w |= bits;
    }
    table.fill(0);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn mark_grams_avx2(table: &mut [u8], log2: u8, text: &[u8]) {
    mark_grams_body(table, log2, text);
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

fn mark_grams(table: &mut [u8], log2: u8, text: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { mark_grams_avx2(table, log2, text) };
        return;
    }
    mark_grams_body(table, log2, text);
}

/// Folds the filter held in `words` in place to half its size (as [`NgramFilter::fold`]);
/// returns the new length.
fn fold_in_place(words: &mut [u64]) -> usize {
    let half = words.len() / 2;
    for j in 0..half {
        words[j] = squeeze(words[2 * j]) | (squeeze(words[2 * j + 1]) << 32);
    }
    half
}

/// The fill a finished filter is folded down to while it stays under it: a block or chunk
/// whose text repeats itself gets a smaller filter. At 0.25, a needle of 10 bytes (8
/// distinct 3-grams) passes an absent block about once in 65 000 by collisions alone.
pub const DEFAULT_MAX_FILL: f64 = 0.25;

/// Builds the filters of one chunk, block by block. Between blocks it holds one filter of
/// the chunk's size (16 KiB for a 4 MiB chunk at the defaults); hashing a block uses a
/// per-thread table of one byte per bit of it (128 KiB) and a filter of its size.
#[derive(Debug, Clone)]
pub struct ChunkFilterBuilder {
    block_log2: u8,
    max_fill: f64,
    chunk: NgramFilter,
    chunk_len: usize,
}

fn empty(log2: u8) -> NgramFilter {
    let log2 = log2.clamp(MIN_LOG2_BITS, MAX_LOG2_BITS);
    NgramFilter { n: DEFAULT_N, log2_bits: log2, words: vec![0; 1usize << (log2 - 6)] }
}

impl ChunkFilterBuilder {
    /// A builder for chunks of about `chunk_target_len` raw bytes cut into blocks of about
    /// `block_target_len`: each filter gets [`DEFAULT_BITS_PER_BYTE`] bits per target byte
    /// (a power of two, rounded down), then is folded while its fill stays under
    /// [`DEFAULT_MAX_FILL`]. Every full block's filter has the same size, so they union
    /// without folding.
    pub fn new(block_target_len: usize, chunk_target_len: usize) -> Self {
        let block_log2 = log2_for(block_target_len, DEFAULT_BITS_PER_BYTE);
        let chunk_log2 = log2_for(chunk_target_len, DEFAULT_BITS_PER_BYTE).max(block_log2);
        ChunkFilterBuilder {
            block_log2,
            max_fill: DEFAULT_MAX_FILL,
            chunk: empty(chunk_log2),
            chunk_len: 0,
        }
    }

    /// Hashes one block's text (its lines concatenated: n-grams spanning two lines are
    /// added too, which only adds false positives) into the chunk's filter, and returns the
    /// block's filter (the same hashes, folded to the block's size).
    pub fn add_block(&mut self, text: &[u8]) -> NgramFilter {
        self.add_block_with_labels(text, [])
    }

    /// [`ChunkFilterBuilder::add_block`], plus label pairs the block's entries carry
    /// (structured metadata), queried with [`NgramFilter::may_have_label`].
    pub fn add_block_with_labels<'a>(
        &mut self,
        text: &[u8],
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> NgramFilter {
        self.chunk_len += text.len();
        let chunk_log2 = self.chunk.log2_bits;
        if chunk_log2 > TABLE_MAX_LOG2 {
            return self.add_block_in_place(text, labels);
        }
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let (table, work, label) = &mut *scratch;
            table.resize(1usize << chunk_log2, 0);
            mark_grams(table, chunk_log2, text);
            for (name, value) in labels {
                label_text_into(label, name, value);
                mark_grams(table, chunk_log2, label);
            }
            work.clear();
            work.resize(self.chunk.words.len(), 0);
            pack(table, work);
            for (c, w) in self.chunk.words.iter_mut().zip(work.iter()) {
                *c |= w;
            }
            let mut len = work.len();
            let mut log2 = chunk_log2;
            while log2 > self.block_log2 {
                len = fold_in_place(&mut work[..len]);
                log2 -= 1;
            }
            let block = NgramFilter { n: DEFAULT_N, log2_bits: log2, words: work[..len].to_vec() };
            block.shrink(self.max_fill, MIN_LOG2_BITS)
        })
    }

    /// [`ChunkFilterBuilder::add_block_with_labels`] for a chunk filter too large for the
    /// byte table: the block's bits are set in place in a filter of the chunk's size.
    fn add_block_in_place<'a>(
        &mut self,
        text: &[u8],
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> NgramFilter {
        let mut work = empty(self.chunk.log2_bits);
        work.add(text);
        for (name, value) in labels {
            work.add_label(name, value);
        }
        for (c, w) in self.chunk.words.iter_mut().zip(&work.words) {
            *c |= w;
        }
        let block = work.folded_to(self.block_log2).unwrap_or(work);
        block.shrink(self.max_fill, MIN_LOG2_BITS)
    }

    /// The raw bytes added so far.
    pub fn chunk_len(&self) -> usize {
        self.chunk_len
    }

    /// The whole chunk's filter: the union of its blocks' hashes, folded as a block's is.
    pub fn finish_chunk(self) -> NgramFilter {
        self.chunk.shrink(self.max_fill, MIN_LOG2_BITS)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A block's text and its label pairs.
    type Block = (Vec<u8>, Vec<(String, String)>);

    /// The filters the builder gave before the byte table: every block hashed with
    /// [`NgramFilter::add`] into a filter of the chunk's size, ORed and folded.
    fn reference(block: usize, chunk: usize, blocks: &[Block]) -> (Vec<NgramFilter>, NgramFilter) {
        let mut b = ChunkFilterBuilder::new(block, chunk);
        let filters = blocks
            .iter()
            .map(|(text, labels)| {
                b.chunk_len += text.len();
                b.add_block_in_place(text, labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            })
            .collect();
        (filters, b.finish_chunk())
    }

    fn text() -> impl Strategy<Value = Vec<u8>> {
        // few distinct bytes, both cases and any byte: repeated and folded n-grams
        proptest::collection::vec(
            prop_oneof![
                3 => proptest::sample::select(b"aAbBzZ09 -=\n".to_vec()),
                1 => any::<u8>(),
            ],
            0..300,
        )
    }

    proptest! {
        #[test]
        fn byte_table_gives_the_bits_of_add(
            blocks in proptest::collection::vec(
                (text(), proptest::collection::vec(("[a-z_]{0,6}", "[a-zA-Z0-9-]{0,12}"), 0..3)),
                1..6,
            ),
            block_log2 in 6u8..10,
            extra in 0u8..5,
        ) {
            let block = 32usize << block_log2;
            let chunk = block << extra;
            let (want_blocks, want_chunk) = reference(block, chunk, &blocks);
            let mut b = ChunkFilterBuilder::new(block, chunk);
            for ((text, labels), want) in blocks.iter().zip(&want_blocks) {
                let got =
                    b.add_block_with_labels(text, labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
                prop_assert_eq!(got.to_bytes(), want.to_bytes());
            }
            prop_assert_eq!(b.finish_chunk().to_bytes(), want_chunk.to_bytes());
        }

        #[test]
        fn portable_and_vector_bodies_agree(text in text(), log2 in 6u8..12) {
            let mut f = NgramFilter::new(3, log2).unwrap();
            f.add(&text);
            let mut table = vec![0u8; 1 << log2];
            mark_grams_body(&mut table, log2, &text);
            let mut words = vec![0u64; f.words.len()];
            pack(&mut table, &mut words);
            prop_assert_eq!(&words, &f.words);
            prop_assert!(table.iter().all(|&b| b == 0));
            let mut words = vec![0u64; f.words.len()];
            mark_grams(&mut table, log2, &text);
            pack(&mut table, &mut words);
            prop_assert_eq!(&words, &f.words);
        }
    }

    #[test]
    fn large_chunks_set_bits_in_place() {
        // a chunk filter above the table's size takes the in-place path, with the same bits
        let block = 1 << 20;
        let mut b = ChunkFilterBuilder::new(block, 64 * block);
        assert!(b.chunk.log2_bits > TABLE_MAX_LOG2);
        let text = b"GET /api/v1/push 204 needle-5kald-7f3a9c\n".repeat(50);
        let f = b.add_block_with_labels(&text, [("trace_id", "t-1")]);
        assert!(f.may_contain(b"needle-5kald") && f.may_have_label("trace_id", "t-1"));
        let mut direct = NgramFilter::new(3, b.chunk.log2_bits).unwrap();
        direct.add(&text);
        direct.add_label("trace_id", "t-1");
        assert_eq!(b.finish_chunk(), direct.shrink(DEFAULT_MAX_FILL, MIN_LOG2_BITS));
    }
}
