//! Column-wise entries: what the query engine reads. One batch holds a stream's entries as a
//! timestamp column, one byte buffer for all lines and an interned list of structured-metadata
//! sets, so building, reading and dropping a batch costs a handful of allocations, not several
//! per entry.

use crate::{Entry, Label, Labels, Line, Stream, Timestamp};

/// How many distinct metadata sets are searched when interning a new entry's set. Beyond this,
/// sets are stored without sharing (correct, only less compact).
const INTERN_SEARCH: usize = 64;

/// Entries stored column-wise. Metadata sets are interned: entries with equal structured
/// metadata share one set and one [`EntryRef::metadata_id`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryBatch {
    ts: Vec<Timestamp>,
    text: Vec<u8>,
    /// End offset of each line in `text`.
    ends: Vec<usize>,
    /// Distinct metadata sets; set 0 is the empty set.
    sets: Vec<Vec<Label>>,
    set_of: Vec<u32>,
}

impl Default for EntryBatch {
    fn default() -> Self {
        EntryBatch::new()
    }
}

/// One entry of an [`EntryBatch`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// Nanoseconds since the Unix epoch.
    pub ts: Timestamp,
    /// The log line's bytes (not necessarily UTF-8).
    pub line: &'a [u8],
    /// The entry's structured metadata.
    pub structured_metadata: &'a [Label],
    /// Equal for entries of this batch with equal structured metadata (0 = none), below
    /// [`EntryBatch::metadata_sets`].
    pub metadata_id: u32,
}

impl EntryRef<'_> {
    /// An owned copy.
    pub fn to_entry(&self) -> Entry {
        Entry {
            ts: self.ts,
            line: Line::from(self.line),
            structured_metadata: self.structured_metadata.to_vec(),
        }
    }
}

impl EntryBatch {
    /// An empty batch.
    pub fn new() -> Self {
        EntryBatch {
            ts: Vec::new(),
            text: Vec::new(),
            ends: Vec::new(),
            sets: vec![Vec::new()],
            set_of: Vec::new(),
        }
    }

    /// An empty batch with room for `entries` entries of `bytes` line bytes in all.
    pub fn with_capacity(entries: usize, bytes: usize) -> Self {
        EntryBatch {
            ts: Vec::with_capacity(entries),
            text: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(entries),
            sets: vec![Vec::new()],
            set_of: Vec::with_capacity(entries),
        }
    }

    /// Removes every entry, keeping the buffers' capacity.
    pub fn clear(&mut self) {
        self.ts.clear();
        self.text.clear();
        self.ends.clear();
        self.sets.truncate(1);
        self.set_of.clear();
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Number of distinct metadata sets (ids of [`EntryRef::metadata_id`] are below it).
    pub fn metadata_sets(&self) -> usize {
        self.sets.len()
    }

    /// Total bytes of all lines.
    pub fn line_bytes(&self) -> usize {
        self.text.len()
    }

    fn intern(&mut self, metadata: &[Label]) -> u32 {
        if metadata.is_empty() {
            return 0;
        }
        if let Some(&last) = self.set_of.last() {
            if self.sets[last as usize] == metadata {
                return last;
            }
        }
        let found = self.sets.iter().take(INTERN_SEARCH).position(|s| s == metadata);
        match found {
            Some(i) => i as u32,
            None => {
                self.sets.push(metadata.to_vec());
                (self.sets.len() - 1) as u32
            }
        }
    }

    /// Appends one entry.
    pub fn push(&mut self, ts: Timestamp, line: impl AsRef<[u8]>, structured_metadata: &[Label]) {
        let line = line.as_ref();
        let set = self.intern(structured_metadata);
        self.ts.push(ts);
        self.text.extend_from_slice(line);
        self.ends.push(self.text.len());
        self.set_of.push(set);
    }

    /// Appends a copy of `e`.
    pub fn push_ref(&mut self, e: EntryRef<'_>) {
        self.push(e.ts, e.line, e.structured_metadata);
    }

    /// The entry at `i`. Panics when `i >= len()`.
    #[inline]
    pub fn get(&self, i: usize) -> EntryRef<'_> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let set = self.set_of[i];
        EntryRef {
            ts: self.ts[i],
            line: &self.text[start..self.ends[i]],
            structured_metadata: &self.sets[set as usize],
            metadata_id: set,
        }
    }

    /// Keeps only the entries at the indices for which `keep` is true, in their order, and
    /// drops the metadata sets no kept entry uses. Works in place: the columns keep their
    /// buffers (freeing and allocating a large text buffer per call showed in ingest
    /// profiles); metadata ids may change.
    pub fn retain_indices(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let n = self.len();
        let text = &mut self.text;
        let (mut kept, mut start, mut at) = (0, 0, 0);
        for i in 0..n {
            let end = self.ends[i];
            if keep(i) {
                text.copy_within(start..end, at);
                at += end - start;
                self.ts[kept] = self.ts[i];
                self.ends[kept] = at;
                self.set_of[kept] = self.set_of[i];
                kept += 1;
            }
            start = end;
        }
        text.truncate(at);
        self.ts.truncate(kept);
        self.ends.truncate(kept);
        self.set_of.truncate(kept);
        // renumber the sets still used, in their order (set 0, the empty set, stays)
        let mut new_id = vec![u32::MAX; self.sets.len()];
        new_id[0] = 0;
        for &s in &self.set_of {
            new_id[s as usize] = 0;
        }
        if new_id.iter().all(|&id| id == 0) {
            return;
        }
        let mut next = 0u32;
        let mut k = 0;
        self.sets.retain(|_| {
            let used = new_id[k] == 0;
            if used {
                new_id[k] = next;
                next += 1;
            }
            k += 1;
            used
        });
        for s in &mut self.set_of {
            *s = new_id[*s as usize];
        }
    }

    /// The entries in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = EntryRef<'_>> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// The timestamp column.
    pub fn timestamps(&self) -> &[Timestamp] {
        &self.ts
    }

    /// Owned copies of the entries.
    pub fn to_entries(&self) -> Vec<Entry> {
        self.iter().map(|e| e.to_entry()).collect()
    }

    /// Appends every entry of `other`.
    pub fn extend_from(&mut self, other: &EntryBatch) {
        self.ts.reserve(other.len());
        self.text.reserve(other.text.len());
        for e in other.iter() {
            self.push_ref(e);
        }
    }

    /// The entries of every part, in order, as one batch (a single non-empty part is moved).
    pub fn concat(mut parts: Vec<EntryBatch>) -> EntryBatch {
        parts.retain(|p| !p.is_empty());
        if parts.len() <= 1 {
            return parts.pop().unwrap_or_default();
        }
        let n = parts.iter().map(EntryBatch::len).sum();
        let bytes = parts.iter().map(EntryBatch::line_bytes).sum();
        let mut all = EntryBatch::with_capacity(n, bytes);
        for p in &parts {
            all.extend_from(p);
        }
        all
    }

    /// Sorts by timestamp, keeping entries with the same timestamp in their current order (the
    /// order they arrived in, as Loki returns them), and keeps one entry of each equal
    /// (timestamp, line) pair: the first in the current order.
    pub fn sort_dedup(&mut self) {
        let n = self.len();
        // entries with one timestamp are few: a pairwise look within the run is cheapest
        let run_has_dup = |run: &[usize]| {
            run.iter()
                .enumerate()
                .any(|(k, &i)| run[..k].iter().any(|&j| self.get(j).line == self.get(i).line))
        };
        let in_order = (1..n).all(|i| self.ts[i - 1] <= self.ts[i]);
        if in_order && (1..n).all(|i| self.ts[i - 1] < self.ts[i]) {
            return;
        }
        let mut order: Vec<usize> = (0..n).collect();
        if !in_order {
            // stable: equal timestamps keep their order
            order.sort_by_key(|&i| self.ts[i]);
        }
        let mut out = EntryBatch::with_capacity(n, self.text.len());
        let mut run_start = 0;
        while run_start < n {
            let ts = self.ts[order[run_start]];
            let run_end =
                run_start + order[run_start..].iter().take_while(|&&i| self.ts[i] == ts).count();
            let run = &order[run_start..run_end];
            if run.len() == 1 || !run_has_dup(run) {
                run.iter().for_each(|&i| out.push_ref(self.get(i)));
            } else {
                let mut seen: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
                for &i in run {
                    let e = self.get(i);
                    if seen.insert(e.line) {
                        out.push_ref(e);
                    }
                }
            }
            run_start = run_end;
        }
        *self = out;
    }
}

impl<'a> FromIterator<&'a Entry> for EntryBatch {
    fn from_iter<I: IntoIterator<Item = &'a Entry>>(iter: I) -> Self {
        let mut b = EntryBatch::new();
        for e in iter {
            b.push(e.ts, &e.line, &e.structured_metadata);
        }
        b
    }
}

impl From<&[Entry]> for EntryBatch {
    fn from(entries: &[Entry]) -> Self {
        let bytes = entries.iter().map(|e| e.line.len()).sum();
        let mut b = EntryBatch::with_capacity(entries.len(), bytes);
        for e in entries {
            b.push(e.ts, &e.line, &e.structured_metadata);
        }
        b
    }
}

/// A stream's label set with a batch of its entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamBatch {
    /// The stream's label set.
    pub labels: Labels,
    /// Entries, in the order they were produced.
    pub entries: EntryBatch,
}

impl From<&Stream> for StreamBatch {
    fn from(s: &Stream) -> Self {
        StreamBatch { labels: s.labels.clone(), entries: EntryBatch::from(s.entries.as_slice()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ts: i64, line: &str, meta: &[(&str, &str)]) -> Entry {
        Entry {
            ts,
            line: line.into(),
            structured_metadata: meta.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
        }
    }

    #[test]
    fn round_trip_and_interning() {
        let entries = vec![
            e(1, "a", &[]),
            e(2, "bb", &[("level", "info")]),
            e(3, "", &[("level", "error")]),
            e(4, "ccc", &[("level", "info")]),
        ];
        let b = EntryBatch::from(entries.as_slice());
        assert_eq!(b.len(), 4);
        assert_eq!(b.line_bytes(), 6);
        assert_eq!(b.to_entries(), entries);
        assert_eq!(b.metadata_sets(), 3);
        let ids: Vec<u32> = b.iter().map(|e| e.metadata_id).collect();
        assert_eq!(ids, vec![0, 1, 2, 1]);
        assert_eq!(b.get(2).line, b"");
    }

    #[test]
    fn sort_dedup_orders_by_ts_keeps_arrival_order_and_the_first_duplicate() {
        let mut b = EntryBatch::from(
            [
                e(5, "x", &[]),
                e(1, "b", &[("k", "first")]),
                e(1, "a", &[]),
                e(1, "b", &[("k", "second")]),
                e(3, "y", &[]),
            ]
            .as_slice(),
        );
        b.sort_dedup();
        let got: Vec<(i64, String, usize)> = b
            .iter()
            .map(|e| {
                (e.ts, String::from_utf8_lossy(e.line).into_owned(), e.structured_metadata.len())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "b".to_string(), 1),
                (1, "a".to_string(), 0),
                (3, "y".to_string(), 0),
                (5, "x".to_string(), 0)
            ]
        );
        assert_eq!(b.get(0).structured_metadata[0].value, "first");
        // already in order with a duplicate in a run: it still goes
        let mut b = EntryBatch::from(
            [e(1, "z", &[]), e(1, "a", &[]), e(1, "z", &[]), e(2, "q", &[])].as_slice(),
        );
        b.sort_dedup();
        let got: Vec<(i64, &[u8])> = b.iter().map(|e| (e.ts, e.line)).collect();
        assert_eq!(got, vec![(1, &b"z"[..]), (1, b"a"), (2, b"q")]);
    }

    #[test]
    fn concat_keeps_order_and_skips_empty_parts() {
        let a = EntryBatch::from([e(1, "a", &[("k", "v")])].as_slice());
        let b = EntryBatch::from([e(2, "b", &[]), e(3, "c", &[("k", "w")])].as_slice());
        let all = EntryBatch::concat(vec![EntryBatch::new(), a.clone(), EntryBatch::new(), b]);
        let got: Vec<(i64, &str, usize)> = all
            .iter()
            .map(|e| (e.ts, std::str::from_utf8(e.line).unwrap(), e.structured_metadata.len()))
            .collect();
        assert_eq!(got, vec![(1, "a", 1), (2, "b", 0), (3, "c", 1)]);
        assert_eq!(
            EntryBatch::concat(vec![EntryBatch::new(), a.clone()]).to_entries(),
            a.to_entries()
        );
        assert!(EntryBatch::concat(Vec::new()).is_empty());
    }

    #[test]
    fn clear_empties_and_the_batch_is_reusable() {
        let mut b = EntryBatch::from([e(1, "a", &[("k", "v")]), e(2, "b", &[])].as_slice());
        b.clear();
        assert!(b.is_empty());
        assert_eq!((b.line_bytes(), b.metadata_sets()), (0, 1));
        let again = [e(3, "c", &[("k", "w")]), e(4, "", &[])];
        for x in &again {
            b.push(x.ts, &x.line, &x.structured_metadata);
        }
        assert_eq!(b.to_entries(), again);
        assert_eq!(b.get(1).metadata_id, 0);
    }

    #[test]
    fn retain_indices_keeps_the_chosen_entries_and_the_sets_they_use() {
        let entries = [
            e(1, "a", &[("k", "v")]),
            e(2, "bb", &[("k", "w")]),
            e(3, "", &[]),
            e(4, "ccc", &[("k", "x")]),
            e(5, "d", &[("k", "v")]),
        ];
        let mut b = EntryBatch::from(entries.as_slice());
        assert_eq!(b.metadata_sets(), 4);
        b.retain_indices(|i| i != 1 && i != 3);
        assert_eq!(b.to_entries(), [entries[0].clone(), entries[2].clone(), entries[4].clone()]);
        // the sets of the dropped entries go; the kept ones still share theirs
        assert_eq!(b.metadata_sets(), 2);
        let ids: Vec<u32> = b.iter().map(|e| e.metadata_id).collect();
        assert_eq!(ids, vec![1, 0, 1]);
        // the batch goes on interning as before
        b.push(6, "e", &[Label::new("k", "v")]);
        b.push(7, "f", &[Label::new("k", "y")]);
        assert_eq!(b.get(3).metadata_id, 1);
        assert_eq!(b.get(4).metadata_id, 2);
        assert_eq!(b.get(4).structured_metadata, [Label::new("k", "y")]);
        b.retain_indices(|_| true);
        assert_eq!(b.len(), 5);
        b.retain_indices(|_| false);
        assert!(b.is_empty());
        assert_eq!((b.line_bytes(), b.metadata_sets()), (0, 1));
    }

    #[test]
    fn extend_keeps_metadata() {
        let mut a = EntryBatch::from([e(1, "a", &[("k", "v")])].as_slice());
        let b = EntryBatch::from([e(2, "b", &[("k", "w")]), e(3, "c", &[("k", "v")])].as_slice());
        a.extend_from(&b);
        assert_eq!(a.len(), 3);
        assert_eq!(a.get(2).metadata_id, a.get(0).metadata_id);
        assert_eq!(a.get(1).structured_metadata[0].value, "w");
    }
}
