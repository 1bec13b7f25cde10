//! The ingester's write-ahead log.
//!
//! **Files** (in `ingester.wal.dir`): segments `00000001`, `00000002`, ... and checkpoints
//! `checkpoint.00000007`. Both hold the same framed records:
//! `u32 LE payload length | u32 LE CRC-32C of the payload | payload`. A payload is one tenant
//! and the entries accepted for it by one push, as tagged items: `1` tenant, `2` stream label
//! set, `3` entry (timestamp, line, structured metadata) of the last stream.
//!
//! **Durability**: a push is acknowledged only after its record was written to the current
//! segment. `fsync` decides when it reaches the disk: `always` syncs before the
//! acknowledgement (no loss even on power failure), `interval` (the default) syncs every
//! `fsync_interval` (no loss on a process crash; up to one interval on a power failure or
//! kernel crash), `never` leaves it to the operating system (no loss on a process crash).
//!
//! **Checkpoints** bound replay time: every `checkpoint_duration` the writer moves to a new
//! segment, writes everything the ingester holds in memory to `checkpoint.<last segment>`
//! (synced, then renamed into place), and deletes the segments up to it and older
//! checkpoints. A segment's data is therefore deleted only once it is in storage (flushed) or
//! in a complete checkpoint.
//!
//! **Replay** (before the ingester reports ready): the newest complete checkpoint, then every
//! newer segment, in order. A record that is cut short or fails its CRC ends the file: the
//! newest segment is truncated there (a crash during a write), and every such case is counted
//! in `loki_ingester_wal_corruptions_total` and logged; it is never fatal.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use skald_model::{Entry, Label, Labels, Stream};

use crate::error::{IngesterError, Result};

/// When WAL writes are synced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Never explicitly: the operating system writes the page cache back.
    Never,
    /// Every `fsync_interval`.
    Interval,
    /// Before every acknowledgement.
    Always,
}

/// The `ingester.wal` block (Loki's keys, plus Skald's `fsync`, `fsync_interval` and
/// `segment_size`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalConfig {
    /// Whether pushes are logged (Loki: true).
    pub enabled: bool,
    /// Where the segments and checkpoints live; empty means `<common.path_prefix>/wal`.
    pub dir: String,
    /// How often a checkpoint is written (Loki: 5m).
    #[serde(with = "skald_common::units::duration")]
    pub checkpoint_duration: Duration,
    /// Whether a shutdown flushes chunks to storage; otherwise it writes a checkpoint and the
    /// next start replays it (Loki: false).
    pub flush_on_shutdown: bool,
    /// During replay, memory use above which the ingester flushes what it replayed so far
    /// (Loki: 4GB).
    #[serde(with = "skald_common::units::bytesize")]
    pub replay_memory_ceiling: u64,
    /// When writes reach the disk.
    pub fsync: FsyncPolicy,
    /// The `interval` policy's period.
    #[serde(with = "skald_common::units::duration")]
    pub fsync_interval: Duration,
    /// A new segment is started after this many bytes.
    #[serde(with = "skald_common::units::bytesize")]
    pub segment_size: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            enabled: true,
            dir: String::new(),
            checkpoint_duration: Duration::from_secs(300),
            flush_on_shutdown: false,
            replay_memory_ceiling: 4 << 30,
            fsync: FsyncPolicy::Interval,
            fsync_interval: Duration::from_secs(1),
            segment_size: 128 << 20,
        }
    }
}

const TAG_TENANT: u8 = 1;
const TAG_STREAM: u8 = 2;
const TAG_ENTRY: u8 = 3;
const HEADER: usize = 8;
/// Larger length fields are corruption.
const MAX_RECORD: usize = 1 << 30;

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// About the size of the record that logs all of `streams` (exact up to the varints, which
/// are counted at their largest).
pub(crate) fn wal_size(streams: &[Stream]) -> usize {
    const VARINT: usize = 10;
    let bytes = |s: &str| VARINT + s.len();
    let mut n = HEADER + 64;
    for s in streams {
        n += 1 + VARINT + s.labels.iter().map(|l| bytes(&l.name) + bytes(&l.value)).sum::<usize>();
        for e in &s.entries {
            n += 1 + 8 + VARINT + e.line.len() + VARINT;
            n += e
                .structured_metadata
                .iter()
                .map(|l| bytes(&l.name) + bytes(&l.value))
                .sum::<usize>();
        }
    }
    n
}

/// Builds one framed record while a push is applied: entries that memory rejects are rolled
/// back, streams left without entries are dropped.
pub(crate) struct RecordBuilder {
    buf: Vec<u8>,
    stream_start: usize,
    stream_entries: usize,
    entries: usize,
}

impl RecordBuilder {
    pub(crate) fn new(tenant: &str) -> Self {
        Self::with_capacity(tenant, 4096)
    }

    /// A builder whose buffer first holds `capacity` bytes (see [`wal_size`]).
    pub(crate) fn with_capacity(tenant: &str, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity.max(HEADER + 16 + tenant.len()));
        buf.extend_from_slice(&[0u8; HEADER]);
        buf.push(TAG_TENANT);
        put_bytes(&mut buf, tenant.as_bytes());
        RecordBuilder { buf, stream_start: 0, stream_entries: 0, entries: 0 }
    }

    /// Starts the entries of `labels`.
    pub(crate) fn begin_stream(&mut self, labels: &Labels) {
        self.end_stream();
        self.stream_start = self.buf.len();
        self.stream_entries = 0;
        self.buf.push(TAG_STREAM);
        put_varint(&mut self.buf, labels.len() as u64);
        for l in labels.iter() {
            put_bytes(&mut self.buf, l.name.as_bytes());
            put_bytes(&mut self.buf, l.value.as_bytes());
        }
    }

    /// Adds an entry; returns a mark for [`RecordBuilder::rollback`].
    pub(crate) fn entry(&mut self, e: &Entry) -> usize {
        let mark = self.buf.len();
        self.buf.push(TAG_ENTRY);
        self.buf.extend_from_slice(&e.ts.to_le_bytes());
        put_bytes(&mut self.buf, e.line.as_bytes());
        put_varint(&mut self.buf, e.structured_metadata.len() as u64);
        for l in &e.structured_metadata {
            put_bytes(&mut self.buf, l.name.as_bytes());
            put_bytes(&mut self.buf, l.value.as_bytes());
        }
        self.stream_entries += 1;
        self.entries += 1;
        mark
    }

    /// Removes the entry added at `mark` (the last one).
    pub(crate) fn rollback(&mut self, mark: usize) {
        self.buf.truncate(mark);
        self.stream_entries -= 1;
        self.entries -= 1;
    }

    fn end_stream(&mut self) {
        if self.stream_start > 0 && self.stream_entries == 0 {
            self.buf.truncate(self.stream_start);
        }
        self.stream_start = 0;
    }

    /// Bytes encoded so far.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// The framed record, or `None` when no entry was added.
    pub(crate) fn finish(mut self) -> Option<Vec<u8>> {
        self.end_stream();
        if self.entries == 0 {
            return None;
        }
        let len = (self.buf.len() - HEADER) as u32;
        let crc = crc32c::crc32c(&self.buf[HEADER..]);
        self.buf[0..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        Some(self.buf)
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let c = *self.b.get(self.pos).ok_or_else(|| bad("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(c & 0x7f) << shift;
            if c < 0x80 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = usize::try_from(self.varint()?).map_err(|_| bad("length too large"))?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| bad("truncated"))?;
        let out = &self.b[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn string(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| bad("invalid UTF-8"))
    }

    fn labels(&mut self) -> Result<Vec<Label>> {
        let n = self.varint()?;
        let mut out = Vec::new();
        for _ in 0..n {
            let name = self.string()?;
            let value = self.string()?;
            out.push(Label::new(name, value));
        }
        Ok(out)
    }
}

fn bad(reason: &str) -> IngesterError {
    IngesterError::bad_record(reason)
}

/// Decodes a record payload into its tenant and streams.
pub fn decode_record(payload: &[u8]) -> Result<(String, Vec<Stream>)> {
    let mut c = Cursor { b: payload, pos: 0 };
    if payload.first() != Some(&TAG_TENANT) {
        return Err(bad("record does not start with a tenant"));
    }
    c.pos = 1;
    let tenant = c.string()?;
    let mut streams: Vec<Stream> = Vec::new();
    while c.pos < payload.len() {
        let tag = payload[c.pos];
        c.pos += 1;
        match tag {
            TAG_STREAM => {
                streams.push(Stream { labels: Labels::from_vec(c.labels()?), entries: Vec::new() })
            }
            TAG_ENTRY => {
                let ts_end = c.pos + 8;
                let ts_bytes: [u8; 8] = payload
                    .get(c.pos..ts_end)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| bad("truncated timestamp"))?;
                c.pos = ts_end;
                // a line's bytes, which need not be UTF-8
                let line = c.bytes()?.into();
                let structured_metadata = c.labels()?;
                let s = streams.last_mut().ok_or_else(|| bad("entry before any stream"))?;
                s.entries.push(Entry {
                    ts: i64::from_le_bytes(ts_bytes),
                    line,
                    structured_metadata,
                });
            }
            t => return Err(IngesterError::bad_record(format!("unknown item tag {t}"))),
        }
    }
    Ok((tenant, streams))
}

/// How a WAL file ended.
#[derive(Debug, PartialEq, Eq)]
pub enum FileEnd {
    /// At a record boundary.
    Clean,
    /// At a damaged record starting at `offset`.
    Corrupt { offset: u64, reason: String },
}

/// Reads the framed records of `path` in order, giving each verified payload to `f`.
pub(crate) fn read_file(path: &Path, f: impl FnMut(&[u8]) -> Result<()>) -> io::Result<FileEnd> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    read_records(BufReader::with_capacity(1 << 20, file), len, f)
}

/// Reads framed records from `r` (`len` bytes in all), giving each verified payload to `f`.
/// A length field larger than what is left is damage, found before anything is allocated.
pub fn read_records(
    mut r: impl Read,
    len: u64,
    mut f: impl FnMut(&[u8]) -> Result<()>,
) -> io::Result<FileEnd> {
    let total = len;
    let mut offset = 0u64;
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; HEADER];
        let mut got = 0;
        while got < HEADER {
            let n = r.read(&mut header[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got == 0 {
            return Ok(FileEnd::Clean);
        }
        let corrupt = |reason: &str| Ok(FileEnd::Corrupt { offset, reason: reason.to_string() });
        if got < HEADER {
            return corrupt("record header cut short");
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD || (HEADER + len) as u64 > total.saturating_sub(offset) {
            return corrupt("record length out of range");
        }
        payload.resize(len, 0);
        if let Err(e) = r.read_exact(&mut payload) {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                return corrupt("record cut short");
            }
            return Err(e);
        }
        if crc32c::crc32c(&payload) != crc {
            return corrupt("checksum mismatch");
        }
        if let Err(e) = f(&payload) {
            return corrupt(&e.to_string());
        }
        offset += (HEADER + len) as u64;
    }
}

fn segment_name(seq: u64) -> String {
    format!("{seq:08}")
}

fn checkpoint_name(seq: u64) -> String {
    format!("checkpoint.{seq:08}")
}

/// The segments and complete checkpoints in `dir`, each sorted by number. Leftover
/// temporary checkpoints are deleted.
fn list(dir: &Path) -> io::Result<(Vec<u64>, Vec<u64>)> {
    let mut segments = Vec::new();
    let mut checkpoints = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            let _ = fs::remove_file(e.path());
        } else if let Some(n) = name.strip_prefix("checkpoint.") {
            if let Ok(n) = n.parse::<u64>() {
                checkpoints.push(n);
            }
        } else if let Ok(n) = name.parse::<u64>() {
            segments.push(n);
        }
    }
    segments.sort_unstable();
    checkpoints.sort_unstable();
    Ok((segments, checkpoints))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What a replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    /// Records applied.
    pub records: u64,
    /// Entries in them.
    pub entries: u64,
    /// Damaged records met (each ends its file).
    pub corruptions: u64,
    /// The checkpoint replayed, if any.
    pub checkpoint: Option<u64>,
    /// Segments replayed.
    pub segments: u64,
    /// The number the next segment gets.
    pub next_segment: u64,
    /// Records skipped because their tenant id is not valid (see `Ingester::open_wal`); not
    /// counted in `records`.
    pub skipped_records: u64,
}

/// Replays `dir` (see the module docs), giving every record's tenant and streams to `apply`.
pub(crate) fn replay(
    dir: &Path,
    mut apply: impl FnMut(String, Vec<Stream>),
) -> io::Result<ReplayStats> {
    fs::create_dir_all(dir)?;
    let (segments, checkpoints) = list(dir)?;
    let mut stats = ReplayStats::default();
    let mut on_record = |payload: &[u8], stats: &mut ReplayStats| -> Result<()> {
        let (tenant, streams) = decode_record(payload)?;
        stats.records += 1;
        stats.entries += streams.iter().map(|s| s.entries.len() as u64).sum::<u64>();
        apply(tenant, streams);
        Ok(())
    };
    let mut after = 0u64;
    if let Some(&cp) = checkpoints.last() {
        let path = dir.join(checkpoint_name(cp));
        let end = read_file(&path, |p| on_record(p, &mut stats))?;
        if let FileEnd::Corrupt { offset, reason } = end {
            stats.corruptions += 1;
            tracing::error!(file = %path.display(), offset, %reason, "WAL checkpoint damaged; replayed up to the damage");
        }
        stats.checkpoint = Some(cp);
        after = cp;
    }
    let newest = segments.last().copied();
    for &seq in segments.iter().filter(|&&s| s > after) {
        let path = dir.join(segment_name(seq));
        let end = read_file(&path, |p| on_record(p, &mut stats))?;
        stats.segments += 1;
        if let FileEnd::Corrupt { offset, reason } = end {
            stats.corruptions += 1;
            if Some(seq) == newest {
                tracing::warn!(file = %path.display(), offset, %reason, "WAL segment ends in a damaged record (a crash during a write?); truncating it there");
                OpenOptions::new().write(true).open(&path)?.set_len(offset)?;
            } else {
                tracing::error!(file = %path.display(), offset, %reason, "WAL segment damaged; replayed up to the damage");
            }
        }
    }
    stats.next_segment = segments.last().copied().unwrap_or(0).max(after) + 1;
    Ok(stats)
}

struct Writer {
    seq: u64,
    file: File,
    size: u64,
    unsynced: bool,
}

/// The append side of the WAL.
pub(crate) struct Wal {
    dir: PathBuf,
    config: WalConfig,
    writer: Mutex<Writer>,
    /// Appends still to fail as a full disk fails them (unit tests; the integration test
    /// fills a real tmpfs).
    #[cfg(test)]
    pub(crate) fail_appends: std::sync::atomic::AtomicU32,
}

fn open_segment(dir: &Path, seq: u64) -> io::Result<File> {
    let f = OpenOptions::new().create(true).append(true).open(dir.join(segment_name(seq)))?;
    sync_dir(dir)?;
    Ok(f)
}

impl Wal {
    /// Starts writing segment `next_segment` in `dir`.
    pub(crate) fn open(dir: &Path, config: WalConfig, next_segment: u64) -> io::Result<Wal> {
        fs::create_dir_all(dir)?;
        let file = open_segment(dir, next_segment)?;
        let size = file.metadata()?.len();
        Ok(Wal {
            dir: dir.to_path_buf(),
            config,
            writer: Mutex::new(Writer { seq: next_segment, file, size, unsynced: false }),
            #[cfg(test)]
            fail_appends: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// Appends one framed record; returns once it is written (and synced, with `always`).
    pub(crate) fn append(&self, record: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering::Relaxed;
            if self.fail_appends.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1)).is_ok() {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on device"));
            }
        }
        let mut w = self.writer.lock();
        if w.size > 0 && w.size + record.len() as u64 > self.config.segment_size {
            self.rotate_locked(&mut w)?;
        }
        if let Err(e) = w.file.write_all(record) {
            // Do not leave a partial record in front of later ones.
            let _ = w.file.set_len(w.size);
            return Err(e);
        }
        w.size += record.len() as u64;
        if self.config.fsync == FsyncPolicy::Always {
            w.file.sync_data()?;
        } else {
            w.unsynced = true;
        }
        Ok(())
    }

    /// Syncs what was written since the last sync (the `interval` policy's tick).
    pub(crate) fn sync(&self) -> io::Result<()> {
        let file = {
            let mut w = self.writer.lock();
            if !w.unsynced {
                return Ok(());
            }
            w.unsynced = false;
            w.file.try_clone()?
        };
        file.sync_data()
    }

    fn rotate_locked(&self, w: &mut Writer) -> io::Result<u64> {
        w.file.sync_data()?;
        let old = w.seq;
        w.file = open_segment(&self.dir, old + 1)?;
        w.seq = old + 1;
        w.size = 0;
        w.unsynced = false;
        Ok(old)
    }

    /// Closes the current segment and starts the next; returns the closed segment's number.
    pub(crate) fn rotate(&self) -> io::Result<u64> {
        let mut w = self.writer.lock();
        self.rotate_locked(&mut w)
    }

    /// Writes `checkpoint.<seq>` with the records `write` produces, then deletes segments up
    /// to `seq` and older checkpoints. `seq` must come from [`Wal::rotate`], called before the
    /// in-memory state was read.
    pub(crate) fn checkpoint(
        &self,
        seq: u64,
        write: impl FnOnce(&mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()>,
    ) -> io::Result<u64> {
        let tmp = self.dir.join(format!("{}.tmp", checkpoint_name(seq)));
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        let mut bytes = 0u64;
        write(&mut |record: &[u8]| {
            bytes += record.len() as u64;
            out.write_all(record)
        })?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, self.dir.join(checkpoint_name(seq)))?;
        sync_dir(&self.dir)?;
        let (segments, checkpoints) = list(&self.dir)?;
        for s in segments.into_iter().filter(|&s| s <= seq) {
            fs::remove_file(self.dir.join(segment_name(s)))?;
        }
        for c in checkpoints.into_iter().filter(|&c| c < seq) {
            fs::remove_file(self.dir.join(checkpoint_name(c)))?;
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ts: i64, line: &str, meta: &[(&str, &str)]) -> Entry {
        Entry {
            ts,
            line: line.into(),
            structured_metadata: meta.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
        }
    }

    fn record(tenant: &str, streams: &[(&str, Vec<Entry>)]) -> Vec<u8> {
        let mut b = RecordBuilder::new(tenant);
        for (labels, entries) in streams {
            b.begin_stream(&Labels::parse(labels).unwrap());
            for e in entries {
                b.entry(e);
            }
        }
        b.finish().unwrap()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("skald-wal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn replay_all(dir: &Path) -> (ReplayStats, Vec<(String, Vec<Stream>)>) {
        let mut got = Vec::new();
        let stats = replay(dir, |t, s| got.push((t, s))).unwrap();
        (stats, got)
    }

    #[test]
    fn records_round_trip_and_roll_back() {
        let mut b = RecordBuilder::new("tenant-a");
        b.begin_stream(&Labels::parse(r#"{job="x"}"#).unwrap());
        b.entry(&entry(1, "one", &[("trace_id", "t")]));
        let mark = b.entry(&entry(2, "rejected", &[]));
        b.rollback(mark);
        b.begin_stream(&Labels::parse(r#"{job="empty"}"#).unwrap());
        let m = b.entry(&entry(3, "also rejected", &[]));
        b.rollback(m);
        b.begin_stream(&Labels::parse(r#"{job="y", a="b"}"#).unwrap());
        b.entry(&entry(-5, "", &[]));
        let rec = b.finish().unwrap();
        let (tenant, streams) = decode_record(&rec[HEADER..]).unwrap();
        assert_eq!(tenant, "tenant-a");
        assert_eq!(streams.len(), 2);
        assert_eq!(streams[0].labels.to_string(), r#"{job="x"}"#);
        assert_eq!(streams[0].entries, vec![entry(1, "one", &[("trace_id", "t")])]);
        assert_eq!(streams[1].labels.to_string(), r#"{a="b", job="y"}"#);
        assert_eq!(streams[1].entries, vec![entry(-5, "", &[])]);
        assert!(RecordBuilder::new("t").finish().is_none());
        assert!(decode_record(b"\x01\x05ab").is_err());
        // the size estimate covers the record, within its slack
        let long = "x".repeat(300);
        let sm = [("trace_id", "abc"), ("detected_level", "info")];
        let streams = vec![
            Stream {
                labels: Labels::parse(r#"{job="x"}"#).unwrap(),
                entries: (0..200).map(|i| entry(i, &long, &sm)).collect(),
            },
            Stream {
                labels: Labels::parse(r#"{job="y"}"#).unwrap(),
                entries: vec![entry(1, "", &[])],
            },
        ];
        let mut b = RecordBuilder::with_capacity("tenant-a", wal_size(&streams));
        for s in &streams {
            b.begin_stream(&s.labels);
            for e in &s.entries {
                b.entry(e);
            }
        }
        let (len, estimate) = (b.finish().unwrap().len(), wal_size(&streams));
        assert!(len <= estimate && estimate < len + len / 4, "{len} bytes, {estimate} estimated");
    }

    #[test]
    fn damaged_tail_is_truncated_and_counted() {
        let dir = temp_dir("tail");
        let wal = Wal::open(&dir, WalConfig::default(), 1).unwrap();
        let r1 = record("t", &[(r#"{job="x"}"#, vec![entry(1, "a", &[])])]);
        let r2 = record("t", &[(r#"{job="x"}"#, vec![entry(2, "b", &[])])]);
        wal.append(&r1).unwrap();
        wal.append(&r2).unwrap();
        drop(wal);
        // a crash in the middle of the third write
        let r3 = record("t", &[(r#"{job="x"}"#, vec![entry(3, "c", &[])])]);
        let seg = dir.join(segment_name(1));
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&r3[..r3.len() - 2]).unwrap();
        drop(f);
        let (stats, got) = replay_all(&dir);
        assert_eq!((stats.records, stats.entries, stats.corruptions), (2, 2, 1));
        assert_eq!(got.len(), 2);
        assert_eq!(fs::metadata(&seg).unwrap().len(), (r1.len() + r2.len()) as u64);
        assert_eq!(stats.next_segment, 2);
        // a flipped byte: the record fails its checksum
        let mut bytes = fs::read(&seg).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&seg, &bytes).unwrap();
        let (stats, got) = replay_all(&dir);
        assert_eq!((stats.records, stats.corruptions, got.len()), (1, 1, 1));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn checkpoint_replaces_older_segments() {
        let dir = temp_dir("checkpoint");
        let config = WalConfig { segment_size: 64, ..WalConfig::default() };
        let wal = Wal::open(&dir, config, 1).unwrap();
        for i in 0..5 {
            wal.append(&record("t", &[(r#"{job="x"}"#, vec![entry(i, "old", &[])])])).unwrap();
        }
        let seq = wal.rotate().unwrap();
        wal.append(&record("t", &[(r#"{job="x"}"#, vec![entry(10, "new", &[])])])).unwrap();
        let snapshot = record("t", &[(r#"{job="x"}"#, vec![entry(4, "old", &[])])]);
        wal.checkpoint(seq, |out| out(&snapshot)).unwrap();
        let (segments, checkpoints) = list(&dir).unwrap();
        assert_eq!(checkpoints, vec![seq]);
        assert!(segments.iter().all(|&s| s > seq), "{segments:?}");
        drop(wal);
        let (stats, got) = replay_all(&dir);
        assert_eq!(stats.checkpoint, Some(seq));
        let lines: Vec<(i64, String)> = got
            .iter()
            .flat_map(|(_, s)| s.iter().flat_map(|s| s.entries.iter()))
            .map(|e| (e.ts, e.line.to_string()))
            .collect();
        assert_eq!(lines, vec![(4, "old".to_string()), (10, "new".to_string())]);
        assert_eq!(stats.next_segment, seq + 2);
        let _ = fs::remove_dir_all(&dir);
    }
}
