//! TCP proxies in front of the shared servers: a cuttable one (a storage outage) and a delaying
//! one (a store a round trip away).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A TCP forwarder on loopback that a test can cut (refusing new connections and closing open
/// ones) and restore: a storage outage, without touching the shared servers.
pub struct CuttableProxy {
    /// `127.0.0.1:<port>` to point clients at.
    pub addr: String,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl CuttableProxy {
    /// Forwards a free loopback port to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> CuttableProxy {
        use std::sync::Mutex;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (up2, open2, upstream) = (up.clone(), open.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&upstream) else { continue };
                let pump = |mut from: std::net::TcpStream, mut to: std::net::TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                };
                if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                    let mut o = open2.lock().unwrap_or_else(|e| e.into_inner());
                    if let (Ok(c3), Ok(s3)) = (client.try_clone(), server.try_clone()) {
                        o.push(c3);
                        o.push(s3);
                    }
                    drop(o);
                    pump(client, s2);
                    pump(server, c2);
                }
            }
        });
        CuttableProxy { addr, up, open }
    }

    /// Refuses new connections and closes the open ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut o = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for s in o.drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A TCP forwarder on loopback that holds back each write toward the upstream by a fixed
/// delay: every request on a connection (and every new connection's first bytes) pays it, as
/// if the server were a round trip away. Answers flow back at once.
pub struct DelayingProxy {
    /// `127.0.0.1:<port>` to point clients at.
    pub addr: String,
    /// Requests (client writes) forwarded so far.
    pub writes: Arc<std::sync::atomic::AtomicU64>,
}

impl DelayingProxy {
    /// Forwards a free loopback port to `upstream` (`host:port`), delaying each client write.
    pub fn start(upstream: &str, delay: std::time::Duration) -> DelayingProxy {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let writes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (upstream, writes2) = (upstream.to_string(), writes.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let Ok(mut server) = std::net::TcpStream::connect(&upstream) else { continue };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                let writes = writes2.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match client.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        std::thread::sleep(delay);
                        writes.fetch_add(1, Ordering::Relaxed);
                        if s2.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s2.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        DelayingProxy { addr, writes }
    }
}
