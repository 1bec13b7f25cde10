//! A query's memory accountant: what the engine holds while it evaluates one query, against
//! the tenant's `limits_config.max_query_memory`.
//!
//! The engine charges what it keeps (the batch the source handed it, the best `limit` entries
//! of a log query, the series, label sets and points of a metric query, the vectors and the
//! matrix it builds) and releases what it drops. Sizes are estimates of the heap a structure
//! takes: line and label bytes plus a fixed overhead per entry, label, series and point. A
//! charge that would pass the cap fails the query at once with a 400 naming the limit, before
//! the memory is taken, so no query can make the process run out of memory.

use std::mem::size_of;
use std::sync::atomic::{AtomicU64, Ordering};

use skald_model::{Labels, StreamBatch};

use super::EngineError;

/// Bytes of one `(timestamp, value)` point or [`skald_model::Sample`].
pub(crate) const POINT_BYTES: u64 = 16;

/// Bytes a `Vec` header takes (pointer, capacity, length).
pub(crate) const VEC_BYTES: u64 = size_of::<Vec<u8>>() as u64;

/// Bookkeeping of one series or group beyond its labels: its hash-map slot, its place in the
/// series and points vectors, with the slack those keep as they double (and, while one grows,
/// its old and new buffers at once).
pub(crate) const SERIES_OVERHEAD: u64 = 160;

/// What one heap allocation of `len` bytes takes, as glibc's malloc lays it out: an 8-byte
/// header, the size rounded up to 16 bytes, 32 bytes at the least. The labels of a query
/// with many series are mostly short strings, where this is twice their length or more.
pub(crate) const fn heap_bytes(len: u64) -> u64 {
    let chunk = (len + 8 + 15) & !15;
    if chunk < 32 {
        32
    } else {
        chunk
    }
}

/// Bytes one label takes: its `String` headers and the two allocations of name and value.
fn label_bytes(l: &skald_model::Label) -> u64 {
    size_of::<skald_model::Label>() as u64
        + heap_bytes(l.name.len() as u64)
        + heap_bytes(l.value.len() as u64)
}

/// Bytes one entry of an [`skald_model::EntryBatch`] takes beyond its line: timestamp, end
/// offset and metadata-set index.
const BATCH_ENTRY_OVERHEAD: u64 = 20;

/// The memory one query holds, and its cap (0: no cap). Shared by reference through the
/// evaluation; atomic so that a source reading on other threads may charge it too.
#[derive(Debug, Default)]
pub struct QueryMemory {
    cap: u64,
    used: AtomicU64,
    peak: AtomicU64,
    /// The budget this one's charges count in too (one part of a split query: the whole
    /// query's budget, shared by its parts on one querier).
    parent: Option<std::sync::Arc<QueryMemory>>,
}

impl QueryMemory {
    /// An accountant with `cap` bytes (0: unlimited; charges are still counted).
    pub fn new(cap: u64) -> Self {
        QueryMemory { cap, used: AtomicU64::new(0), peak: AtomicU64::new(0), parent: None }
    }

    /// The accountant of one part of a query whose budget is `parent`: every charge counts in
    /// `parent` too (and fails when `parent` would pass its cap), and what the part still
    /// holds when it ends (its answer, which it hands over) is given back to `parent` then.
    pub fn within(parent: std::sync::Arc<QueryMemory>) -> Self {
        QueryMemory {
            cap: parent.cap,
            used: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            parent: Some(parent),
        }
    }

    /// Counts `bytes` more, or fails with [`memory_limit_error`] when that would pass the cap
    /// (the bytes are then not counted).
    pub fn charge(&self, bytes: u64) -> Result<(), EngineError> {
        if let Some(parent) = &self.parent {
            // the parent holds the cap; this one only counts
            parent.charge(bytes)?;
            let now = self.used.fetch_add(bytes, Ordering::Relaxed).saturating_add(bytes);
            self.peak.fetch_max(now, Ordering::Relaxed);
            return Ok(());
        }
        let before = self.used.fetch_add(bytes, Ordering::Relaxed);
        let now = before.saturating_add(bytes);
        if self.cap > 0 && now > self.cap {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
            return Err(memory_limit_error(self.cap));
        }
        self.peak.fetch_max(now, Ordering::Relaxed);
        Ok(())
    }

    /// Gives back `bytes` charged earlier.
    pub fn release(&self, bytes: u64) {
        // never below zero, whatever a caller's estimate was
        let before = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.saturating_sub(bytes)))
            .unwrap_or(0);
        if let Some(parent) = &self.parent {
            parent.release(bytes.min(before));
        }
    }

    /// Bytes counted now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The most bytes counted at once so far.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// The cap (0: none).
    pub fn cap(&self) -> u64 {
        self.cap
    }
}

impl Drop for QueryMemory {
    fn drop(&mut self) {
        if let Some(parent) = &self.parent {
            parent.release(self.used.load(Ordering::Relaxed));
        }
    }
}

/// The error of a query that needs more memory than `cap` bytes: a 400 that names
/// `limits_config.max_query_memory` and the amount (go-humanize's binary units, as Loki's
/// query-size errors print them).
pub fn memory_limit_error(cap: u64) -> EngineError {
    EngineError::Limit(format!(
        "the query needs more than {} of memory (limits_config.max_query_memory); narrow it (more specific stream selectors, fewer series, a shorter time range or a larger step) or raise the limit",
        skald_gocompat::humanize::ibytes(cap)
    ))
}

/// The estimated heap size of a label set.
pub(crate) fn labels_bytes(labels: &Labels) -> u64 {
    let items = labels.iter().map(label_bytes).sum::<u64>();
    // the vector's header, and its buffer of label headers (counted in `label_bytes`)
    VEC_BYTES + heap_bytes(0) + items
}

/// The estimated heap size of a batch a source handed over.
pub(crate) fn batch_bytes(batch: &StreamBatch) -> u64 {
    labels_bytes(&batch.labels)
        + batch.entries.line_bytes() as u64
        + batch.entries.len() as u64 * BATCH_ENTRY_OVERHEAD
}

/// Pushes `p` onto `v`, charging the vector's growth (its new capacity, not its length, is
/// what the allocator hands out). Returns the bytes charged.
pub(crate) fn push_point<T>(mem: &QueryMemory, v: &mut Vec<T>, p: T) -> Result<u64, EngineError> {
    let mut grown = 0;
    if v.len() == v.capacity() {
        let before = v.capacity();
        v.reserve(1);
        grown = ((v.capacity() - before) * size_of::<T>()) as u64;
        mem.charge(grown)?;
    }
    v.push(p);
    Ok(grown)
}

/// Extends `v` with `items`, charging the vector's growth. Returns the bytes charged.
pub(crate) fn extend_points<T>(
    mem: &QueryMemory,
    v: &mut Vec<T>,
    items: impl IntoIterator<Item = T>,
) -> Result<u64, EngineError> {
    let mut charged = 0;
    for p in items {
        charged += push_point(mem, v, p)?;
    }
    Ok(charged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_share_their_query_budget_and_give_back_what_they_held() {
        let whole = std::sync::Arc::new(QueryMemory::new(100));
        let a = QueryMemory::within(whole.clone());
        let b = QueryMemory::within(whole.clone());
        a.charge(60).unwrap();
        // the whole query's cap binds the parts together
        assert!(b.charge(50).is_err());
        assert_eq!(b.used(), 0);
        b.charge(40).unwrap();
        assert_eq!(whole.used(), 100);
        b.release(100); // more than it held: only its own 40 go back
        assert_eq!((b.used(), whole.used()), (0, 60));
        drop(a); // a part that ends gives back what it still held
        assert_eq!(whole.used(), 0);
        b.charge(100).unwrap();
        assert_eq!(b.peak(), 100);
    }

    #[test]
    fn charges_up_to_the_cap_and_gives_back() {
        let m = QueryMemory::new(100);
        m.charge(60).unwrap();
        m.charge(40).unwrap();
        assert_eq!(m.used(), 100);
        let err = m.charge(1).unwrap_err();
        assert_eq!(err.status_code(), 400);
        assert!(err.to_string().starts_with(
            "the query needs more than 100 B of memory (limits_config.max_query_memory)"
        ));
        // a refused charge is not counted
        assert_eq!(m.used(), 100);
        m.release(70);
        assert_eq!(m.used(), 30);
        m.charge(50).unwrap();
        assert_eq!(m.peak(), 100);
        m.release(1000);
        assert_eq!(m.used(), 0);
    }

    #[test]
    fn no_cap_counts_only() {
        let m = QueryMemory::new(0);
        m.charge(u64::MAX / 2).unwrap();
        m.charge(u64::MAX / 2).unwrap();
        assert_eq!(m.peak(), u64::MAX - 1);
    }

    #[test]
    fn the_message_names_the_limit_and_amount() {
        assert_eq!(
            memory_limit_error(512 << 20).to_string(),
            "the query needs more than 512 MiB of memory (limits_config.max_query_memory); narrow it (more specific stream selectors, fewer series, a shorter time range or a larger step) or raise the limit"
        );
    }

    #[test]
    fn vector_growth_is_charged_by_capacity() {
        let m = QueryMemory::new(0);
        let mut v: Vec<(i64, f64)> = Vec::new();
        for i in 0..5 {
            push_point(&m, &mut v, (i, 0.0)).unwrap();
        }
        assert_eq!(m.used(), v.capacity() as u64 * POINT_BYTES);
        let tight = QueryMemory::new(64);
        let mut v: Vec<(i64, f64)> = Vec::new();
        let pushed = (0..100).take_while(|&i| push_point(&tight, &mut v, (i, 0.0)).is_ok()).count();
        assert!(pushed <= 4, "{pushed}");
    }
}
