//! Fetching a query's chunks ahead of the engine, across streams at once.
//!
//! The engine takes a query's streams one at a time; on object storage, fetching a stream's
//! chunks only when the engine reaches it would pay a round trip per stream. Instead, once the
//! query is planned, one task walks every chunk the query will read, in the order the engine
//! will take them, and fetches them concurrently (at most [`FETCHES_IN_FLIGHT`] requests), and
//! decodes them on blocking threads (at most one per core) when the whole chunk is needed.
//! What is fetched or decoded and not yet taken by the engine is bounded by
//! [`WINDOW_BYTES`] (weighed by the index's chunk sizes): the task stays a bounded window
//! ahead of the engine, never holding a big query's data all at once.
//!
//! Chunks are issued in the order they are taken and a chunk's share of the window is
//! given back as soon as it is taken, so the chunk the engine waits for is always issued.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use skald_chunk::{BlockReader, Chunk};
use skald_index::ChunkRef;
use skald_logql::engine::EngineError;
use skald_model::EntryBatch;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::decode::{decode_chunk, BlockScan};
use super::fetch::{fetch, Need};
use super::needle::NeedleQuery;
use super::{check_cancel, source_err, StoreSource};
use crate::store_stats::StoreStats;

/// Bytes of chunks fetched (compressed size) and decoded (raw size) ahead of the engine,
/// in flight or waiting to be taken.
pub(super) const WINDOW_BYTES: usize = 32 << 20;

/// The sizes assumed for a chunk whose index entry has none (compressed, raw): a full chunk.
const UNKNOWN_CHUNK_BYTES: (u64, u64) = (2 << 20, 8 << 20);

/// Chunk requests in flight at once.
const FETCHES_IN_FLIGHT: usize = 32;

/// A fetched chunk.
pub(super) enum Fetched {
    /// The chunk, parsed: whole, or the parts of it the read needs ([`Need`]).
    Chunk(Chunk),
    /// Its entries in the query's range that contain the literals.
    Decoded(EntryBatch),
}

/// A fetched chunk and its share of the window.
pub(super) struct Ready {
    data: Fetched,
    _window: OwnedSemaphorePermit,
}

/// Where a prefetched chunk arrives.
pub(super) type Slot = oneshot::Receiver<Result<Ready, EngineError>>;

/// How prefetched chunks are decoded: the range and literals of the query.
#[derive(Clone)]
pub(super) struct Decode {
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) scan: Arc<BlockScan>,
    pub(super) cancel: Arc<AtomicBool>,
    /// Where the blocks decompressed are counted.
    pub(super) stats: Arc<StoreStats>,
}

impl Decode {
    fn run(&self, chunk: &Chunk) -> Result<EntryBatch, EngineError> {
        check_cancel(&self.cancel)?;
        let mut reader = take_reader();
        // A copy per chunk: its regexes get their own cache pools, owned by this thread, so
        // decodes on several threads do not queue on one pool's lock for every line.
        let scan = BlockScan::clone(&self.scan);
        let out = decode_chunk(chunk, self.start, self.end, &scan, &mut reader, &self.stats);
        give_reader(reader);
        out
    }
}

/// Block readers (a block-sized buffer and a zstd context each) kept between decodes.
/// Shared, not one per thread: decodes run on the blocking pool, which grows to dozens of
/// threads when the store's reads use it too, and a reader per thread kept a block buffer
/// for each (44 MB after one logbench query, 78 threads).
static READERS: std::sync::Mutex<Vec<BlockReader>> = std::sync::Mutex::new(Vec::new());

/// Readers kept at most: decodes run at most one per core.
const READERS_KEPT: usize = 8;

fn take_reader() -> BlockReader {
    let mut kept = READERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    kept.pop().unwrap_or_default()
}

fn give_reader(reader: BlockReader) {
    let mut kept = READERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if kept.len() < READERS_KEPT {
        kept.push(reader);
    }
}

/// The chunks of a query's streams being fetched ahead; dropping it stops the fetching.
pub(super) struct Prefetch {
    /// By stream, then by chunk.
    slots: Vec<Vec<Option<Slot>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Prefetch {
    /// Starts fetching `wanted` — `(stream, chunk)` positions into `streams` — in that order,
    /// what `need` says of each, at most `window` bytes ahead ([`WINDOW_BYTES`]), with the
    /// blocks `needles` may match only ([`fetch`]). With `decode`, each chunk is decoded once
    /// fetched.
    pub(super) fn start(
        source: &StoreSource,
        streams: &[&[ChunkRef]],
        wanted: Vec<(usize, usize)>,
        (need, needles): (Need, Option<Arc<NeedleQuery>>),
        decode: Option<Decode>,
        window: usize,
    ) -> Prefetch {
        let window = window.clamp(1, u32::MAX as usize);
        let mut slots: Vec<Vec<Option<Slot>>> =
            streams.iter().map(|c| (0..c.len()).map(|_| None).collect()).collect();
        if wanted.is_empty() {
            return Prefetch { slots, task: None };
        }
        let mut jobs = Vec::with_capacity(wanted.len());
        for (s, c) in wanted {
            let (tx, rx) = oneshot::channel();
            slots[s][c] = Some(rx);
            let chunk = &streams[s][c];
            let (compressed, raw) = match (chunk.compressed_bytes, chunk.uncompressed_bytes) {
                (0, _) | (_, 0) => UNKNOWN_CHUNK_BYTES,
                sizes => sizes,
            };
            let weight = if decode.is_some() { compressed.saturating_add(raw) } else { compressed };
            let weight = weight.clamp(1, window as u64) as u32;
            jobs.push((chunk.key(&source.tenant), *chunk, weight, tx));
        }
        let store = source.querier.chunks.clone();
        let stats = source.stats.clone();
        let window = Arc::new(Semaphore::new(window));
        let requests = Arc::new(Semaphore::new(FETCHES_IN_FLIGHT));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let decoders = Arc::new(Semaphore::new(cores));
        let task = source.handle.spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for (key, chunk, weight, tx) in jobs {
                let (Ok(share), Ok(request)) = (
                    window.clone().acquire_many_owned(weight).await,
                    requests.clone().acquire_owned().await,
                ) else {
                    return;
                };
                let (store, decode, decoders) = (store.clone(), decode.clone(), decoders.clone());
                let (stats, needles) = (stats.clone(), needles.clone());
                tasks.spawn(async move {
                    let fetched =
                        fetch(&*store, &key, &chunk, need, needles.as_deref(), &stats).await;
                    drop(request);
                    let out = match (fetched, decode) {
                        (Err(e), _) => Err(e),
                        (Ok(chunk), None) => Ok(Fetched::Chunk(chunk)),
                        (Ok(chunk), Some(decode)) => {
                            let Ok(_core) = decoders.acquire_owned().await else { return };
                            match tokio::task::spawn_blocking(move || decode.run(&chunk)).await {
                                Ok(r) => r.map(Fetched::Decoded),
                                Err(_) => Err(source_err("chunk decoder panicked")),
                            }
                        }
                    };
                    // the engine may have moved on; then the chunk is simply dropped
                    let _ = tx.send(out.map(|data| Ready { data, _window: share }));
                });
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        });
        Prefetch { slots, task: Some(task) }
    }

    /// The slots of stream `s` (dropping them gives their share of the window back).
    pub(super) fn take_stream(&mut self, s: usize) -> Vec<Option<Slot>> {
        self.slots.get_mut(s).map(std::mem::take).unwrap_or_default()
    }
}

type ChunkFuture = Pin<Box<dyn Future<Output = Result<Fetched, EngineError>> + Send>>;

impl StoreSource {
    /// Chunks `which` of `chunks`, in that order: from their slots when they were fetched
    /// ahead, else fetched now (concurrently), what `need` says of each.
    pub(super) fn take_chunks(
        &self,
        chunks: &[ChunkRef],
        slots: &mut [Option<Slot>],
        which: &[usize],
        need: Need,
        needles: Option<&Arc<NeedleQuery>>,
    ) -> Result<Vec<Fetched>, EngineError> {
        self.stats.add_chunks(which.iter().filter(|&&j| j < chunks.len()).count());
        let store = self.querier.chunks.clone();
        let futures: Vec<ChunkFuture> = which
            .iter()
            .map(|&j| -> ChunkFuture {
                match slots.get_mut(j).and_then(Option::take) {
                    // the window share is dropped as soon as the chunk is here
                    Some(rx) => Box::pin(async move {
                        match rx.await {
                            Ok(ready) => ready.map(|r| r.data),
                            Err(_) => Err(source_err("chunk prefetch stopped")),
                        }
                    }),
                    None => {
                        let (store, key) = (store.clone(), chunks[j].key(&self.tenant));
                        let (chunk, stats) = (chunks[j], self.stats.clone());
                        let needles = needles.cloned();
                        Box::pin(async move {
                            fetch(&*store, &key, &chunk, need, needles.as_deref(), &stats)
                                .await
                                .map(Fetched::Chunk)
                        })
                    }
                }
            })
            .collect();
        self.wait(async move {
            use futures::StreamExt;
            futures::stream::iter(futures)
                .buffered(FETCHES_IN_FLIGHT)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
        })?
    }
}
