//! `MemcachedCache` against a real memcached: the test server `scripts/test-servers/start.sh`
//! started (`SKALD_TEST_MEMCACHED`), and private memcached processes that a test kills and
//! restarts.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use skald_cache::metrics::requests;
use skald_cache::{memcached_from_test_env, Cache, CacheConfig, MemcachedCache};

fn config(addresses: &str) -> CacheConfig {
    let mut c = CacheConfig::default();
    c.memcached_client.addresses = addresses.to_string();
    // Generous for a loaded CI machine; the kill test checks the bound itself.
    c.memcached_client.timeout = Duration::from_millis(500);
    c
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{tag} {} {nanos} ", std::process::id())
}

#[tokio::test]
async fn stores_and_fetches_many_keys() {
    let cache = MemcachedCache::new(&config(&memcached_from_test_env()));
    let p = unique("many");
    // Long keys with spaces, newlines and non-ASCII: memcached sees only their hashes.
    let items: Vec<(String, Bytes)> = (0..300)
        .map(|i| {
            let key = format!("{p}{{job=\"x\"}}\n{i} é {}", "k".repeat(i));
            (key, Bytes::from(vec![(i % 251) as u8; i * 37]))
        })
        .collect();
    cache.store(items.clone()).await;
    let mut keys: Vec<String> = items.iter().map(|(k, _)| k.clone()).collect();
    keys.push(format!("{p}never stored"));
    let got = cache.fetch(&keys).await;
    assert_eq!(got.len(), items.len());
    for (k, v) in &items {
        assert_eq!(got.get(k), Some(v), "{k}");
    }
}

#[tokio::test]
async fn items_over_max_item_size_are_not_stored() {
    let mut c = config(&memcached_from_test_env());
    c.memcached_client.max_item_size = 1000;
    let cache = MemcachedCache::new(&c);
    let p = unique("size");
    let (small, large) = (format!("{p}small"), format!("{p}large"));
    cache
        .store(vec![
            (small.clone(), Bytes::from(vec![1u8; 100])),
            (large.clone(), Bytes::from(vec![2u8; 5000])),
        ])
        .await;
    let got = cache.fetch(&[small.clone(), large.clone()]).await;
    assert!(got.contains_key(&small));
    assert!(!got.contains_key(&large));
    // Past memcached's own item limit (1 MB): the server refuses it, the store still returns.
    let huge = format!("{p}huge");
    let cache = MemcachedCache::new(&config(&memcached_from_test_env()));
    cache.store(vec![(huge.clone(), Bytes::from(vec![3u8; 2 << 20]))]).await;
    assert!(
        cache.fetch(&[huge, small.clone()]).await.contains_key(&small),
        "connection still usable"
    );
}

/// A memcached of the test's own on `port`, to kill and restart.
struct Private {
    child: Child,
}

impl Private {
    fn start(port: u16) -> Private {
        let mut cmd = Command::new("memcached");
        cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0", "-m", "16"]);
        let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n");
        if root.unwrap_or(false) {
            cmd.args(["-u", "root"]);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run memcached ({e}): run scripts/test-servers/start.sh, which installs it"
            )
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "memcached did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Private { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test]
async fn a_dead_server_is_a_miss_and_a_restarted_one_works_again() {
    let port = free_port();
    let mut server = Private::start(port);
    let mut c = config(&format!("127.0.0.1:{port}"));
    c.memcached_client.timeout = Duration::from_millis(200);
    let cache = MemcachedCache::new(&c);
    let keys: Vec<String> = (0..20).map(|i| format!("key {i}")).collect();
    let items: Vec<(String, Bytes)> =
        keys.iter().map(|k| (k.clone(), Bytes::from(k.clone().into_bytes()))).collect();
    cache.store(items.clone()).await;
    assert_eq!(cache.fetch(&keys).await.len(), keys.len());

    server.kill();
    let t = Instant::now();
    assert!(cache.fetch(&keys).await.is_empty(), "a dead server is a miss");
    cache.store(items.clone()).await;
    // Each operation gives up within its timeout (batches of 4 keys, 5 at a time: a few
    // timeouts at most; refused connections fail at once).
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());

    let _server = Private::start(port);
    cache.store(items.clone()).await;
    let got = cache.fetch(&keys).await;
    assert_eq!(got.len(), keys.len(), "works again after the restart");
}

#[tokio::test]
async fn keys_spread_over_servers_and_one_dead_server_loses_only_its_share() {
    let (p1, p2) = (free_port(), free_port());
    let _s1 = Private::start(p1);
    let mut s2 = Private::start(p2);
    let cache = MemcachedCache::new(&config(&format!("127.0.0.1:{p1},127.0.0.1:{p2}")));
    let keys: Vec<String> = (0..200).map(|i| format!("spread {i}")).collect();
    cache.store(keys.iter().map(|k| (k.clone(), Bytes::from_static(b"v"))).collect()).await;
    assert_eq!(cache.fetch(&keys).await.len(), keys.len());
    s2.kill();
    let left = cache.fetch(&keys).await.len();
    assert!((50..150).contains(&left), "about half stay: {left}");
}

#[tokio::test]
async fn a_server_that_never_answers_costs_one_timeout() {
    // Accepts connections and reads nothing back.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut c = config(&addr.to_string());
    c.memcached_client.timeout = Duration::from_millis(100);
    c.memcached.batch_size = 0;
    let cache = MemcachedCache::new(&c).named("test.silent.");
    let t = Instant::now();
    assert!(cache.fetch(&["a".to_string(), "b".to_string()]).await.is_empty());
    cache.store(vec![("a".to_string(), Bytes::from_static(b"1"))]).await;
    assert!(t.elapsed() < Duration::from_millis(1000), "took {:?}", t.elapsed());
    // both timed out: failed exchanges, timed as such
    assert_eq!(requests("Memcache.GetMulti", "500", "test.silent."), 1);
    assert_eq!(requests("Memcache.Put", "500", "test.silent."), 1);
    hold.abort();
}

/// Each exchange with memcached is timed in `loki_memcache_request_duration_seconds` under
/// Loki's methods and the cache's name.
#[tokio::test]
async fn exchanges_are_timed_under_lokis_methods_and_the_caches_name() {
    let registry = prometheus::Registry::new();
    skald_cache::metrics::register(&registry).expect("registered");
    let cache = skald_cache::build(&config(&memcached_from_test_env()), "test.timed.")
        .expect("memcached configured");
    let p = unique("timed");
    cache.store(vec![(format!("{p}k"), Bytes::from_static(b"v"))]).await;
    let got = cache.fetch(&[format!("{p}k"), format!("{p}missing")]).await;
    assert_eq!(got.len(), 1);
    assert_eq!(requests("Memcache.Put", "200", "test.timed."), 1);
    assert_eq!(requests("Memcache.GetMulti", "200", "test.timed."), 1);
    let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).expect("text");
    let line = r#"loki_memcache_request_duration_seconds_bucket{method="Memcache.GetMulti",name="test.timed.",status_code="200",le="0.000016"}"#;
    assert!(text.contains(line), "Loki's buckets and labels: {text}");
    assert!(text.contains(r#"le="0.15"}"#) && text.contains(r#"le="1"}"#), "{text}");
}
