//! The push load: loghub lines, their numbers varied, sent as protobuf+snappy push requests
//! from two client threads.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Result};
use skald_common::splitmix::SplitMix64 as Rng;
use skald_integration_tests::http::encode_push_streams;

use crate::{NEEDLE, SYSTEMS};

/// Varies the numbers and ids in a line: each run of 2+ digits is replaced, with probability
/// 1/2, by random digits of the same length (so ids, ports, pids and block numbers change
/// while the shape of the line stays).
pub(crate) fn vary(line: &str, rng: &mut Rng) -> String {
    let b = line.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let run = &b[start..i];
            if run.len() >= 2 && rng.next_u64() & 1 == 0 {
                for _ in 0..run.len() {
                    out.push(b'0' + (rng.next_u64() % 10) as u8);
                }
            } else {
                out.extend_from_slice(run);
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| line.to_string())
}

/// How many lines with the needle the load sent: [`NEEDLES_PER_CLIENT`] per client thread,
/// whatever the volume, so a needle search has 10 lines to find (as in logbench).
pub(crate) static NEEDLES_SENT: AtomicUsize = AtomicUsize::new(0);

/// Needle lines each of the two client threads sends, spread evenly over its bytes.
pub(crate) const NEEDLES_PER_CLIENT: usize = 5;

/// Stream `s`'s labels, as `../shared/tools/logbench.py` labels its streams (so its queries run
/// unchanged): `{job="<system>", env="bench", pod="<system>-<s, 3 digits>"}`, plus the
/// instance of the system.
pub(crate) fn stream_labels(s: usize, inst: usize) -> String {
    let job = SYSTEMS[s % SYSTEMS.len()].to_lowercase();
    format!("{{job=\"{job}\", env=\"bench\", pod=\"{job}-{s:03}\", instance=\"i-{inst}\"}}")
}

/// The push body of `streams`: protobuf + raw snappy, the harness encoder the integration
/// tests use.
pub(crate) fn push_body(streams: Vec<(String, Vec<(i64, String)>)>) -> Result<Vec<u8>> {
    Ok(encode_push_streams(streams)?)
}

pub(crate) fn post(url: &str, body: &[u8]) -> Result<()> {
    match ureq::post(url).set("Content-Type", "application/x-protobuf").send_bytes(body) {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(code, r)) => {
            let mut t = String::new();
            let _ = r.into_reader().take(2000).read_to_string(&mut t);
            bail!("push failed with {code}: {t}")
        }
        Err(e) => bail!("push failed: {e}"),
    }
}

/// The push load: `per_stream` raw bytes to each of `streams` streams (loghub lines, varied),
/// their timestamps spread over `[t0, t0 + span)`, from two client threads that each own half
/// of the streams and send requests of about `batch_bytes`.
#[derive(Clone)]
pub(crate) struct PushLoad {
    pub(crate) lines: Arc<Vec<Vec<String>>>,
    pub(crate) url: String,
    pub(crate) streams: usize,
    pub(crate) per_stream: usize,
    pub(crate) batch_bytes: usize,
    pub(crate) t0: i64,
    pub(crate) span: i64,
    pub(crate) seed: u64,
}

impl PushLoad {
    /// Starts the two client threads; they add what they sent to the counters.
    pub(crate) fn spawn(
        &self,
        raw_total: &Arc<AtomicUsize>,
        lines_total: &Arc<AtomicUsize>,
    ) -> Vec<std::thread::JoinHandle<Result<()>>> {
        (0..2usize)
            .map(|w| {
                let (load, raw_total, lines_total) =
                    (self.clone(), raw_total.clone(), lines_total.clone());
                std::thread::spawn(move || load.run(w, &raw_total, &lines_total))
            })
            .collect()
    }

    fn run(&self, w: usize, raw_total: &AtomicUsize, lines_total: &AtomicUsize) -> Result<()> {
        let PushLoad { lines, url, streams, per_stream, batch_bytes, t0, span, seed } = self;
        let (streams, per_stream, batch_bytes, t0, span) =
            (*streams, *per_stream, *batch_bytes, *t0, *span);
        // each worker owns half of the streams
        let mine: Vec<usize> = (0..streams).filter(|s| s % 2 == w).collect();
        let mut rng = Rng::new(seed ^ w as u64);
        let mut cursor = vec![0usize; streams];
        let mut sent = vec![0usize; streams];
        let mut done = false;
        // the needle goes into the line crossing each (k + 1/2) / NEEDLES_PER_CLIENT of this
        // client's bytes
        let my_bytes = per_stream * mine.len();
        let mark = |k: usize| (2 * k + 1) * my_bytes / (2 * NEEDLES_PER_CLIENT);
        let (mut my_sent, mut needles) = (0usize, 0usize);
        while !done {
            done = true;
            let mut batch: Vec<(String, Vec<(i64, String)>)> = Vec::new();
            let mut batch_size = 0;
            for &s in &mine {
                if sent[s] >= per_stream {
                    continue;
                }
                done = false;
                let sys = s % SYSTEMS.len();
                let inst = s / SYSTEMS.len();
                let src = &lines[sys];
                let share = batch_bytes / mine.len() + 1;
                let mut entries = Vec::new();
                let mut got = 0;
                while got < share && sent[s] < per_stream {
                    let i = cursor[s];
                    cursor[s] += 1;
                    let mut line = vary(&src[i % src.len()], &mut rng);
                    if needles < NEEDLES_PER_CLIENT && my_sent + line.len() > mark(needles) {
                        line.push(' ');
                        line.push_str(NEEDLE);
                        needles += 1;
                        NEEDLES_SENT.fetch_add(1, Ordering::Relaxed);
                    }
                    my_sent += line.len();
                    // stream-local time: spread per_stream bytes over the span
                    let ts = t0
                        + (sent[s] as i128 * span as i128 / per_stream as i128) as i64
                        + (i % 1000) as i64;
                    got += line.len();
                    sent[s] += line.len();
                    entries.push((ts, line));
                }
                raw_total.fetch_add(got, Ordering::Relaxed);
                lines_total.fetch_add(entries.len(), Ordering::Relaxed);
                batch_size += got;
                batch.push((stream_labels(s, inst), entries));
            }
            if batch_size > 0 {
                post(url, &push_body(batch)?)?;
            }
        }
        Ok(())
    }
}
