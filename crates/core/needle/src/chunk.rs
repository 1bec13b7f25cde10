//! The filters of a chunk's blocks and of the whole chunk, with every byte hashed once: each
//! block is hashed into a filter of the chunk's size, which is ORed into the chunk's and
//! folded down to the block's size.

use crate::{
    log2_for, NgramFilter, DEFAULT_BITS_PER_BYTE, DEFAULT_N, MAX_LOG2_BITS, MIN_LOG2_BITS,
};

/// The fill a finished filter is folded down to while it stays under it: a block or chunk
/// whose text repeats itself gets a smaller filter. At 0.25, a needle of 10 bytes (8
/// distinct 3-grams) passes an absent block about once in 65 000 by collisions alone.
pub const DEFAULT_MAX_FILL: f64 = 0.25;

/// Builds the filters of one chunk, block by block. Between blocks it holds one filter of
/// the chunk's size (16 KiB for a 4 MiB chunk at the defaults); hashing a block uses another
/// for the time of the call.
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
        // transient: the builder keeps only the chunk's filter between blocks
        let mut work = empty(self.chunk.log2_bits);
        work.add(text);
        for (name, value) in labels {
            work.add_label(name, value);
        }
        self.chunk_len += text.len();
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
