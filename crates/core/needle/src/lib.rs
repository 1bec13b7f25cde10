//! Compact n-gram filters over blocks of log lines.
//!
//! An [`NgramFilter`] is a bitset of `2^k` bits. Building it hashes every byte position of the
//! added text once: the n bytes there (n = 3 or 4), case-folded, multiplied by a 32-bit
//! constant, and the top `k` bits of the product pick the bit to set. A literal of at least n
//! bytes may occur in the text only if the bits of all its n-grams are set, so
//! [`NgramFilter::may_contain`] never answers false for a literal that occurs in an added text
//! (no false negatives); it answers true for literals shorter than n (it cannot decide). The
//! false-positive rate of an absent literal is about `fill^d`, `d` its distinct n-grams, so a
//! needle of 10 bytes or more is rejected by nearly every block that does not hold it even at
//! a fairly high fill.
//!
//! The text is case-folded before hashing (`b | 0x20` per byte, which maps every ASCII
//! uppercase letter to its lowercase letter), and so are the queried literals: one filter
//! answers case-sensitive and ASCII-case-insensitive literals alike (a case-sensitive literal
//! just gets the answer of its case-insensitive form).
//!
//! Filters fold to half their size (bit `j` of the folded one is bits `2j` and `2j+1` ORed),
//! so filters of different sizes union into the smaller size: a chunk's filter is the union of
//! its blocks', a per-stream or per-day summary the union of chunks'. The byte format and the
//! hash are specified in `FILTER.md`; [`NgramFilter::to_bytes`] and
//! [`NgramFilter::from_bytes`] implement version 1.
//!
//! The crate knows literals as byte strings only: a query's clauses (each a disjunction of
//! literals, all of which must hold) are passed to [`NgramFilter::may_match`] as nested
//! iterators, so the querier maps `skald_logql::log::Needles` onto it and this crate depends
//! on nothing of the workspace.

mod chunk;
mod format;
mod table;

pub use chunk::{ChunkFilterBuilder, DEFAULT_MAX_FILL};
pub use format::{FormatError, HEADER_LEN, MAGIC, VERSION};
pub use table::{ChunkId, FilterTable, TableError, TABLE_MAGIC, TABLE_VERSION};

/// The multiplier of the n-gram hash (2^32 / golden ratio, odd). Never change it: stored
/// filters depend on it (`FILTER.md`).
pub const HASH_MULTIPLIER: u32 = 0x9E37_79B1;

/// The smallest filter: one 64-bit word.
pub const MIN_LOG2_BITS: u8 = 6;
/// The largest filter: 2^30 bits (128 MiB).
pub const MAX_LOG2_BITS: u8 = 30;

/// The n-gram length of filters built with [`NgramFilter::for_text_len`].
pub const DEFAULT_N: u8 = 3;
/// The filter bits per raw byte [`NgramFilter::for_text_len`] and [`ChunkFilterBuilder`] aim
/// at: 1/32 bit, so a filter's bytes are at most 0.39% of the raw bytes (sizes are powers of
/// two, rounded down), and a chunk's block filters and its own filter together 0.78%.
pub const DEFAULT_BITS_PER_BYTE: f64 = 1.0 / 32.0;

/// The folding applied to every byte before hashing: ASCII uppercase letters become
/// lowercase (other bytes may pair up too: `@` with `` ` ``, `[` with `{`...; that only adds
/// false positives).
#[inline]
const fn fold_word(w: u32) -> u32 {
    w | 0x2020_2020
}

/// The hash of one n-gram held in the low bytes of `gram` (little-endian, already folded,
/// upper bytes zero): a 32-bit multiplicative hash, whose top bits pick the filter's bit.
#[inline]
const fn hash(gram: u32) -> u32 {
    gram.wrapping_mul(HASH_MULTIPLIER)
}

/// The n-gram of `text` at `i`, folded, as the low bytes of a `u32` (little-endian). `text`
/// must hold `i + n` bytes.
#[inline]
fn gram_at(text: &[u8], i: usize, n: u8) -> u32 {
    let mut b = [0u8; 4];
    b[..n as usize].copy_from_slice(&text[i..i + n as usize]);
    fold_word(u32::from_le_bytes(b)) & mask(n)
}

#[inline]
const fn mask(n: u8) -> u32 {
    if n == 3 {
        0x00FF_FFFF
    } else {
        u32::MAX
    }
}

/// A filter of the n-grams of some texts (see the crate documentation).
#[derive(Clone, PartialEq, Eq)]
pub struct NgramFilter {
    n: u8,
    log2_bits: u8,
    words: Vec<u64>,
}

impl std::fmt::Debug for NgramFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NgramFilter")
            .field("n", &self.n)
            .field("log2_bits", &self.log2_bits)
            .field("fill", &self.fill())
            .finish()
    }
}

/// Why a filter could not be made or combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The n-gram length is not 3 or 4.
    #[error("unsupported n-gram length {0}: 3 or 4")]
    UnsupportedN(u8),
    /// The size is outside [`MIN_LOG2_BITS`]..=[`MAX_LOG2_BITS`].
    #[error("unsupported filter size 2^{0} bits")]
    UnsupportedSize(u8),
    /// Two filters of different n-gram lengths cannot be combined.
    #[error("cannot combine filters of {0}-grams and {1}-grams")]
    MismatchedN(u8, u8),
}

impl NgramFilter {
    /// An empty filter of `2^log2_bits` bits over `n`-grams.
    pub fn new(n: u8, log2_bits: u8) -> Result<NgramFilter, FilterError> {
        if n != 3 && n != 4 {
            return Err(FilterError::UnsupportedN(n));
        }
        if !(MIN_LOG2_BITS..=MAX_LOG2_BITS).contains(&log2_bits) {
            return Err(FilterError::UnsupportedSize(log2_bits));
        }
        Ok(NgramFilter { n, log2_bits, words: vec![0; 1usize << (log2_bits - 6)] })
    }

    /// An empty filter sized for `text_len` raw bytes with the defaults ([`DEFAULT_N`],
    /// [`DEFAULT_BITS_PER_BYTE`], rounded down to a power of two).
    pub fn for_text_len(text_len: usize) -> NgramFilter {
        let log2 = log2_for(text_len, DEFAULT_BITS_PER_BYTE);
        NgramFilter { n: DEFAULT_N, log2_bits: log2, words: vec![0; 1usize << (log2 - 6)] }
    }

    /// The n-gram length.
    pub fn n(&self) -> u8 {
        self.n
    }

    /// log2 of the number of bits.
    pub fn log2_bits(&self) -> u8 {
        self.log2_bits
    }

    /// The size of the bitset in bytes.
    pub fn bitset_bytes(&self) -> usize {
        self.words.len() * 8
    }

    /// The share of bits set, 0 to 1.
    pub fn fill(&self) -> f64 {
        let ones: u64 = self.words.iter().map(|w| u64::from(w.count_ones())).sum();
        ones as f64 / (self.words.len() * 64) as f64
    }

    #[inline]
    fn set(&mut self, h: u32) {
        let idx = (h >> (32 - u32::from(self.log2_bits))) as usize;
        // idx < 2^log2_bits = words.len() * 64
        if let Some(w) = self.words.get_mut(idx >> 6) {
            *w |= 1u64 << (idx & 63);
        }
    }

    #[inline]
    fn test(&self, h: u32) -> bool {
        let idx = (h >> (32 - u32::from(self.log2_bits))) as usize;
        self.words.get(idx >> 6).is_some_and(|w| w & (1u64 << (idx & 63)) != 0)
    }

    /// Adds every n-gram of `text` (n-grams spanning two calls are not added: add a line, or
    /// a block of concatenated lines, at once).
    pub fn add(&mut self, text: &[u8]) {
        let done = if self.n == 3 { self.add_words::<3>(text) } else { self.add_words::<4>(text) };
        // the positions left, one at a time
        let n = usize::from(self.n);
        let mut i = done;
        while i + n <= text.len() {
            let h = hash(gram_at(text, i, self.n));
            self.set(h);
            i += 1;
        }
    }

    /// The n-grams of `text` starting at the positions the 8-byte words cover (9 - N per
    /// load); returns the first position not done.
    #[inline]
    fn add_words<const N: usize>(&mut self, text: &[u8]) -> usize {
        let shift = 32 - u32::from(self.log2_bits);
        let m = mask(N as u8);
        let words = &mut self.words[..];
        let len = words.len();
        let mut i = 0;
        while let Some(b) = text.get(i..).and_then(<[u8]>::first_chunk::<8>) {
            let w = u64::from_le_bytes(*b) | 0x2020_2020_2020_2020;
            for p in 0..=8 - N {
                let idx = (hash((w >> (8 * p)) as u32 & m) >> shift) as usize;
                // idx < 2^log2_bits = len * 64: the mask only spares the bounds check
                words[(idx >> 6) & (len - 1)] |= 1u64 << (idx & 63);
            }
            i += 9 - N;
        }
        i
    }

    /// Adds a label or structured-metadata pair, queried with [`NgramFilter::may_have_label`].
    /// It is added as `name`, byte 0xFF, `value` (0xFF never occurs in UTF-8 lines; once
    /// folded, only the rare lead byte 0xDF shares it, which can only add false positives).
    pub fn add_label(&mut self, name: &str, value: &str) {
        self.add(&label_text(name, value));
    }

    /// False only when no added text contains `literal` (compared case-folded). Literals
    /// shorter than n are always possible.
    pub fn may_contain(&self, literal: &[u8]) -> bool {
        let n = usize::from(self.n);
        if literal.len() < n {
            return true;
        }
        (0..=literal.len() - n).all(|i| self.test(hash(gram_at(literal, i, self.n))))
    }

    /// False only when no added text contains any of `literals` (an empty disjunction
    /// cannot be decided: true).
    pub fn may_contain_any<'a>(&self, literals: impl IntoIterator<Item = &'a [u8]>) -> bool {
        let mut any = false;
        for l in literals {
            if self.may_contain(l) {
                return true;
            }
            any = true;
        }
        !any
    }

    /// False only when some clause (a disjunction of literals) has no literal that an added
    /// text may contain: then no line added here satisfies the conjunction of `clauses`.
    pub fn may_match<'a, C>(&self, clauses: impl IntoIterator<Item = C>) -> bool
    where
        C: IntoIterator<Item = &'a [u8]>,
    {
        clauses.into_iter().all(|c| self.may_contain_any(c))
    }

    /// False only when no [`NgramFilter::add_label`] added `name`=`value`.
    pub fn may_have_label(&self, name: &str, value: &str) -> bool {
        self.may_contain(&label_text(name, value))
    }

    /// This filter at half its size: bit `j` is bits `2j` and `2j+1` of this one ORed, which is
    /// the filter the same texts would give at that size. `None` at [`MIN_LOG2_BITS`].
    pub fn fold(&self) -> Option<NgramFilter> {
        if self.log2_bits <= MIN_LOG2_BITS {
            return None;
        }
        let words = self
            .words
            .chunks_exact(2)
            .map(|pair| squeeze(pair[0]) | (squeeze(pair[1]) << 32))
            .collect();
        Some(NgramFilter { n: self.n, log2_bits: self.log2_bits - 1, words })
    }

    /// This filter folded down to `2^log2_bits` bits (a copy when it is that size already).
    pub fn folded_to(&self, log2_bits: u8) -> Result<NgramFilter, FilterError> {
        if !(MIN_LOG2_BITS..=self.log2_bits).contains(&log2_bits) {
            return Err(FilterError::UnsupportedSize(log2_bits));
        }
        if log2_bits == self.log2_bits {
            return Ok(self.clone());
        }
        let mut f = self.fold().ok_or(FilterError::UnsupportedSize(log2_bits))?;
        while f.log2_bits > log2_bits {
            f = f.fold().ok_or(FilterError::UnsupportedSize(log2_bits))?;
        }
        Ok(f)
    }

    /// Folds while the result's fill stays at most `max_fill` (never below `min_log2_bits`):
    /// a block whose text repeats itself gets a smaller filter.
    pub fn shrink(self, max_fill: f64, min_log2_bits: u8) -> NgramFilter {
        let mut f = self;
        while f.log2_bits > min_log2_bits.max(MIN_LOG2_BITS) {
            match f.fold() {
                Some(smaller) if smaller.fill() <= max_fill => f = smaller,
                _ => break,
            }
        }
        f
    }

    /// The union: a filter that may contain whatever either may contain, at the smaller of
    /// the two sizes (the larger is folded first). Both must have the same n.
    pub fn union(&self, other: &NgramFilter) -> Result<NgramFilter, FilterError> {
        if self.n != other.n {
            return Err(FilterError::MismatchedN(self.n, other.n));
        }
        let log2 = self.log2_bits.min(other.log2_bits);
        let mut a = self.folded_to(log2)?;
        let b = other.folded_to(log2)?;
        for (x, y) in a.words.iter_mut().zip(&b.words) {
            *x |= y;
        }
        Ok(a)
    }
}

/// The size for `text_len` bytes at `bits_per_byte`, rounded down to a power of two and
/// clamped to the supported sizes.
pub fn log2_for(text_len: usize, bits_per_byte: f64) -> u8 {
    let bits = (text_len as f64 * bits_per_byte).max(1.0);
    (bits.log2().floor() as i64).clamp(i64::from(MIN_LOG2_BITS), i64::from(MAX_LOG2_BITS)) as u8
}

fn label_text(name: &str, value: &str) -> Vec<u8> {
    let mut t = Vec::with_capacity(name.len() + 1 + value.len());
    label_text_into(&mut t, name, value);
    t
}

/// The text a label pair is added as (`name`, 0xFF, `value`), replacing `out`'s contents.
fn label_text_into(out: &mut Vec<u8>, name: &str, value: &str) {
    out.clear();
    out.extend_from_slice(name.as_bytes());
    out.push(0xFF);
    out.extend_from_slice(value.as_bytes());
}

/// The 32 bits `b0|b1, b2|b3, ...` of a word's 64, in order.
#[inline]
fn squeeze(w: u64) -> u64 {
    let mut x = (w | (w >> 1)) & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF
}

#[cfg(test)]
mod tests;
