//! A memcached client written on tokio's `TcpStream` with the text protocol (`get k1 k2 ...`,
//! `set k 0 exptime n`): keys go to servers by a jump consistent hash of their hashed form,
//! each server keeps up to `max_idle_conns` idle connections, and every operation is bounded
//! by `timeout` (connecting included). Any failure is a miss or a skipped store, logged at
//! `warn` at most once every [`WARN_EVERY`].
//!
//! Keys are sent hashed ([`crate::hash_key`]); the stored value is the full key (length
//! first) followed by the value, and a fetched value whose key differs is a miss.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::{fnv64a, hash_key, Cache, CacheConfig};

/// Failures are logged at most this often (with how many were not logged).
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// memcached takes an expiration above 30 days as a Unix time.
const MAX_RELATIVE_EXPIRATION: u64 = 30 * 24 * 3600;

/// Longest reply line read (a `VALUE` header is far shorter).
const MAX_LINE: usize = 1024;

/// Largest value accepted in a reply (memcached's own item limit is at most 1 GiB).
const MAX_VALUE: usize = 1 << 30;

type Conn = BufReader<TcpStream>;

/// A memcached cache over the servers of a [`CacheConfig`]'s `memcached_client`.
pub struct MemcachedCache {
    servers: Vec<Server>,
    timeout: Duration,
    max_item_size: usize,
    /// Seconds, as sent in `set` (0 = never expires).
    expiration: u64,
    batch_size: usize,
    parallelism: usize,
    warned_at: Mutex<Option<std::time::Instant>>,
    unlogged: AtomicU64,
    /// The `name` of its `loki_memcache_request_duration_seconds` series.
    name: String,
}

struct Server {
    addr: String,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
}

#[derive(Debug)]
enum OpError {
    Io(std::io::Error),
    Reply(String),
    Timeout,
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Io(e) => write!(f, "{e}"),
            OpError::Reply(r) => write!(f, "unexpected reply: {r}"),
            OpError::Timeout => f.write_str("timed out"),
        }
    }
}

impl From<std::io::Error> for OpError {
    fn from(e: std::io::Error) -> Self {
        OpError::Io(e)
    }
}

impl MemcachedCache {
    /// A client for `config.memcached_client.servers()` (none connected yet: connections are
    /// made on first use, and again whenever one broke).
    pub fn new(config: &CacheConfig) -> Self {
        let client = &config.memcached_client;
        let expiration = if config.memcached.expiration.is_zero() {
            config.default_validity
        } else {
            config.memcached.expiration
        };
        MemcachedCache {
            servers: client
                .servers()
                .into_iter()
                .map(|addr| Server {
                    addr,
                    idle: Mutex::new(Vec::new()),
                    max_idle: client.max_idle_conns,
                })
                .collect(),
            timeout: client.timeout,
            max_item_size: usize::try_from(client.max_item_size).unwrap_or(usize::MAX),
            expiration: expiration.as_secs(),
            batch_size: config.memcached.batch_size,
            parallelism: config.memcached.parallelism.max(1),
            warned_at: Mutex::new(None),
            unlogged: AtomicU64::new(0),
            name: String::new(),
        }
    }

    /// The same cache, its requests timed under `name` (empty by default).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    fn server_of(&self, hashed: &str) -> usize {
        jump_hash(fnv64a(hashed.as_bytes()), self.servers.len())
    }

    fn warn(&self, op: &str, addr: &str, err: &OpError) {
        let now = std::time::Instant::now();
        let mut at = self.warned_at.lock();
        if at.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *at = Some(now);
        drop(at);
        let unlogged = self.unlogged.swap(0, Ordering::Relaxed);
        tracing::warn!(server = %addr, error = %err, unlogged_failures = unlogged, "memcached {op} failed; treated as a cache miss");
    }

    fn exptime(&self) -> u64 {
        if self.expiration > MAX_RELATIVE_EXPIRATION {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs());
            now.unwrap_or(0).saturating_add(self.expiration)
        } else {
            self.expiration
        }
    }

    /// Runs `op` on a connection to `server` within the timeout. A pooled connection that
    /// fails (the server may have restarted since it was opened) is dropped and the
    /// operation tried once more on a new one; a connection is pooled again only after a
    /// whole, well-formed exchange.
    async fn run(&self, server: &Server, op: &Op) -> Result<Reply, OpError> {
        let start = std::time::Instant::now();
        let result = self.run_untimed(server, op).await;
        let method = match op {
            Op::Get(_) => "Memcache.GetMulti",
            Op::Set(..) => "Memcache.Put",
        };
        crate::metrics::observe(method, result.is_ok(), &self.name, start);
        result
    }

    async fn run_untimed(&self, server: &Server, op: &Op) -> Result<Reply, OpError> {
        let attempt = async {
            loop {
                let pooled = server.idle.lock().pop();
                let reused = pooled.is_some();
                let mut conn = match pooled {
                    Some(c) => c,
                    None => {
                        let s = TcpStream::connect(&server.addr).await?;
                        s.set_nodelay(true)?;
                        BufReader::new(s)
                    }
                };
                let result = match op {
                    Op::Get(hashed) => get_many(&mut conn, hashed).await.map(Reply::Got),
                    Op::Set(items, exptime) => set_many(&mut conn, items, *exptime)
                        .await
                        .map(|(n, first)| Reply::Set(n, first)),
                };
                match result {
                    Ok(v) => {
                        let mut idle = server.idle.lock();
                        if idle.len() < server.max_idle {
                            idle.push(conn);
                        }
                        return Ok(v);
                    }
                    Err(OpError::Io(_)) if reused => continue,
                    Err(e) => return Err(e),
                }
            }
        };
        tokio::time::timeout(self.timeout, attempt).await.unwrap_or(Err(OpError::Timeout))
    }
}

enum Op {
    /// Hashed keys.
    Get(Vec<String>),
    /// Hashed keys with framed values, and the expiration.
    Set(Vec<(String, Bytes)>, u64),
}

enum Reply {
    Got(HashMap<String, Bytes>),
    /// How many were refused, and the first refusal.
    Set(usize, Option<String>),
}

/// Lamping and Veach's jump consistent hash: a bucket in `0..buckets` that moves for only
/// `1/buckets` of the keys when a bucket is added.
fn jump_hash(mut key: u64, buckets: usize) -> usize {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    let n = i64::try_from(buckets).unwrap_or(i64::MAX);
    while j < n {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    usize::try_from(b).unwrap_or(0)
}

fn frame(key: &str, value: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + key.len() + value.len());
    b.put_u32(u32::try_from(key.len()).unwrap_or(u32::MAX));
    b.put_slice(key.as_bytes());
    b.put_slice(value);
    b.freeze()
}

fn unframe(key: &str, data: Bytes) -> Option<Bytes> {
    let len = usize::try_from(u32::from_be_bytes(data.get(..4)?.try_into().ok()?)).ok()?;
    let stored = data.get(4..4 + len)?;
    (stored == key.as_bytes()).then(|| data.slice(4 + len..))
}

async fn read_line(conn: &mut Conn) -> Result<String, OpError> {
    let mut line = Vec::new();
    let n = (&mut *conn).take(MAX_LINE as u64).read_until(b'\n', &mut line).await?;
    if n == 0 {
        return Err(OpError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    if !line.ends_with(b"\r\n") {
        return Err(OpError::Reply("a reply line without CRLF".into()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| OpError::Reply("a reply line that is not UTF-8".into()))
}

/// `get k1 k2 ...` on one connection: the values by hashed key.
async fn get_many(conn: &mut Conn, hashed: &[String]) -> Result<HashMap<String, Bytes>, OpError> {
    let mut cmd = String::with_capacity(4 + hashed.len() * 33 + 2);
    cmd.push_str("get");
    for k in hashed {
        cmd.push(' ');
        cmd.push_str(k);
    }
    cmd.push_str("\r\n");
    conn.get_mut().write_all(cmd.as_bytes()).await?;
    let mut found = HashMap::new();
    loop {
        let line = read_line(conn).await?;
        if line == "END" {
            return Ok(found);
        }
        let mut parts = line.split(' ');
        let (Some("VALUE"), Some(key), Some(_flags), Some(len)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OpError::Reply(line));
        };
        let len: usize = len.parse().map_err(|_| OpError::Reply(line.clone()))?;
        if len > MAX_VALUE {
            return Err(OpError::Reply(line));
        }
        let mut data = vec![0u8; len + 2];
        conn.read_exact(&mut data).await?;
        if !data.ends_with(b"\r\n") {
            return Err(OpError::Reply("a value without its CRLF".into()));
        }
        data.truncate(len);
        found.insert(key.to_string(), Bytes::from(data));
    }
}

/// `set` of every item on one connection (pipelined): how many were refused (memcached's
/// `SERVER_ERROR object too large for cache`, ...) and the first refusal.
async fn set_many(
    conn: &mut Conn,
    items: &[(String, Bytes)],
    exptime: u64,
) -> Result<(usize, Option<String>), OpError> {
    let mut buf = BytesMut::new();
    for (k, v) in items {
        buf.put_slice(format!("set {k} 0 {exptime} {}\r\n", v.len()).as_bytes());
        buf.put_slice(v);
        buf.put_slice(b"\r\n");
    }
    conn.get_mut().write_all(&buf).await?;
    let mut refused = 0;
    let mut first = None;
    for _ in items {
        let line = read_line(conn).await?;
        if line != "STORED" {
            if line == "ERROR" {
                // The server lost track of the command stream: the connection is unusable.
                return Err(OpError::Reply(line));
            }
            refused += 1;
            first.get_or_insert(line);
        }
    }
    Ok((refused, first))
}

impl Cache for MemcachedCache {
    fn fetch<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, HashMap<String, Bytes>> {
        Box::pin(async move {
            if self.servers.is_empty() || keys.is_empty() {
                return HashMap::new();
            }
            // hashed key -> original key, and the hashed keys of each server.
            let mut original: HashMap<String, &String> = HashMap::with_capacity(keys.len());
            let mut per_server: Vec<Vec<String>> = vec![Vec::new(); self.servers.len()];
            for k in keys {
                let h = hash_key(k);
                if original.insert(h.clone(), k).is_none() {
                    per_server[self.server_of(&h)].push(h);
                }
            }
            let batch = if self.batch_size == 0 { usize::MAX } else { self.batch_size };
            let batches = per_server
                .into_iter()
                .enumerate()
                .flat_map(|(i, ks)| ks.chunks(batch).map(|c| (i, c.to_vec())).collect::<Vec<_>>());
            let results: Vec<HashMap<String, Bytes>> = stream::iter(batches)
                .map(|(i, hashed)| async move {
                    let server = &self.servers[i];
                    match self.run(server, &Op::Get(hashed)).await {
                        Ok(Reply::Got(found)) => found,
                        Ok(Reply::Set(..)) => HashMap::new(),
                        Err(e) => {
                            self.warn("get", &server.addr, &e);
                            HashMap::new()
                        }
                    }
                })
                .buffer_unordered(self.parallelism)
                .collect()
                .await;
            let mut found = HashMap::new();
            for (h, data) in results.into_iter().flatten() {
                if let Some(key) = original.get(&h) {
                    if let Some(v) = unframe(key, data) {
                        found.insert((*key).clone(), v);
                    }
                }
            }
            found
        })
    }

    fn store(&self, items: Vec<(String, Bytes)>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.servers.is_empty() {
                return;
            }
            let mut per_server: Vec<Vec<(String, Bytes)>> = vec![Vec::new(); self.servers.len()];
            for (k, v) in items {
                let framed = frame(&k, &v);
                if self.max_item_size > 0 && framed.len() > self.max_item_size {
                    tracing::debug!(
                        size = framed.len(),
                        max = self.max_item_size,
                        "item larger than memcached_client.max_item_size, not stored"
                    );
                    continue;
                }
                let h = hash_key(&k);
                per_server[self.server_of(&h)].push((h, framed));
            }
            let exptime = self.exptime();
            let writes = per_server.into_iter().enumerate().filter(|(_, it)| !it.is_empty()).map(
                |(i, items)| async move {
                    let server = &self.servers[i];
                    match self.run(server, &Op::Set(items, exptime)).await {
                        Ok(Reply::Set(0, _)) | Ok(Reply::Got(_)) => {}
                        Ok(Reply::Set(_, refusal)) => self.warn(
                            "set",
                            &server.addr,
                            &OpError::Reply(refusal.unwrap_or_default()),
                        ),
                        Err(e) => self.warn("set", &server.addr, &e),
                    }
                },
            );
            futures::future::join_all(writes).await;
        })
    }

    fn name(&self) -> &str {
        "memcached"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hash_is_stable_and_spreads() {
        let mut counts = [0usize; 4];
        for i in 0..4000u64 {
            let b = jump_hash(fnv64a(&i.to_le_bytes()), 4);
            assert_eq!(b, jump_hash(fnv64a(&i.to_le_bytes()), 4));
            counts[b] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        // Growing from 4 to 5 servers moves about a fifth of the keys, and only to the new one.
        let mut moved = 0;
        for i in 0..4000u64 {
            let (a, b) =
                (jump_hash(fnv64a(&i.to_le_bytes()), 4), jump_hash(fnv64a(&i.to_le_bytes()), 5));
            if a != b {
                assert_eq!(b, 4);
                moved += 1;
            }
        }
        assert!((600..1000).contains(&moved), "{moved}");
        assert_eq!(jump_hash(7, 1), 0);
    }

    #[test]
    fn a_value_stored_under_another_key_is_a_miss() {
        let f = frame("a", b"xyz");
        assert_eq!(unframe("a", f.clone()).as_deref(), Some(&b"xyz"[..]));
        assert_eq!(unframe("b", f), None);
        assert_eq!(unframe("a", Bytes::from_static(b"\0\0")), None);
    }
}
