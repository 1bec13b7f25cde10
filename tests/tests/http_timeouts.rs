//! Slow and idle HTTP clients (Loki's `server.http_server_*_timeout` keys) against the real
//! process: idle, slowloris and slow-body connections are closed, and under a flood of idle
//! connections larger than the descriptor limit `/ready` and pushes still answer.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use skald_integration_tests::{free_port_pair, get, now_ns, post, skald_bin, temp_dir};

/// `skald` started through `sh -c 'ulimit -n <fds>; exec skald ...'`.
struct Limited {
    child: Child,
    url: String,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_limited(dir: &Path, fds: u32, extra: &str) -> Limited {
    let (http, grpc) = free_port_pair();
    let config = format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {http}\n  grpc_listen_address: 127.0.0.1\n  grpc_listen_port: {grpc}\n{extra}common:\n  path_prefix: {}\n",
        dir.join("data").display()
    );
    let path = dir.join("skald.yaml");
    std::fs::write(&path, config).unwrap();
    let log = dir.join("skald.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n {fds} && exec '{}' -config.file='{}'",
            skald_bin().display(),
            path.display()
        ))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    let s = Limited { child, url: format!("http://127.0.0.1:{http}"), port: http, log };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let ready = ureq::get(&format!("{}/ready", s.url)).timeout(Duration::from_secs(1)).call();
        if ready.is_ok_and(|r| r.status() == 200) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("skald did not start: {}", std::fs::read_to_string(&s.log).unwrap_or_default());
}

/// Waits until the server closes `conn` (EOF or reset) while `tick` runs every 200 ms;
/// returns how long it took, or panics after `within`.
fn closed_within(conn: &mut TcpStream, within: Duration, mut tick: impl FnMut(&mut TcpStream)) {
    let started = Instant::now();
    conn.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {} // a response (e.g. 408/400) before the close
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return, // reset
        }
        assert!(started.elapsed() < within, "the server kept the connection open");
        tick(conn);
    }
}

const TIMEOUTS: &str = "  http_server_read_timeout: 2s\n  http_server_write_timeout: 2s\n  http_server_idle_timeout: 2s\n";

#[test]
fn idle_slowloris_and_slow_body_connections_are_closed() {
    let dir = temp_dir("http-timeouts");
    let s = start_limited(&dir, 4096, TIMEOUTS);
    let addr = ("127.0.0.1", s.port);

    // idle: connected, never sends
    let mut idle = TcpStream::connect(addr).unwrap();
    closed_within(&mut idle, Duration::from_secs(10), |_| {});

    // idle after a request: keep-alive ends after the idle timeout
    let mut kept = TcpStream::connect(addr).unwrap();
    kept.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    closed_within(&mut kept, Duration::from_secs(10), |_| {});

    // slowloris: headers trickle in forever, one byte at a time
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\n").unwrap();
    closed_within(&mut slow, Duration::from_secs(10), |c| {
        let _ = c.write_all(b"X");
    });

    // slow body: complete headers, then a body that stalls, then trickles
    let mut body = TcpStream::connect(addr).unwrap();
    body.write_all(
        b"POST /loki/api/v1/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"streams\":",
    )
    .unwrap();
    closed_within(&mut body, Duration::from_secs(10), |c| {
        let _ = c.write_all(b" ");
    });

    // a normal client is unaffected
    assert_eq!(get(&format!("{}/ready", s.url), &[], &[]).status, 200);
}

#[test]
fn ready_and_push_answer_under_an_idle_flood_beyond_the_fd_limit() {
    let dir = temp_dir("http-flood");
    let s = start_limited(&dir, 256, TIMEOUTS);
    let addr = ("127.0.0.1", s.port);
    let mut flood = Vec::new();
    for _ in 0..1000 {
        match TcpStream::connect_timeout(&addr.into_socket_addr(), Duration::from_secs(2)) {
            Ok(c) => flood.push(c),
            Err(_) => break, // the listen queue is full: the flood is as large as it gets
        }
    }
    assert!(flood.len() > 300, "only {} connections opened", flood.len());

    let started = Instant::now();
    let r = get(&format!("{}/ready", s.url), &[], &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let body = json!({"streams": [{"stream": {"job": "flood"}, "values": [[now_ns().to_string(), "still here"]]}]});
    let p = post(
        &format!("{}/loki/api/v1/push", s.url),
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(p.status, 204, "{}", p.body);
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());

    // the idle connections are closed by the server, not left to pile up
    for c in flood.iter_mut().take(20) {
        closed_within(c, Duration::from_secs(20), |_| {});
    }
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(log.contains("file descriptor limit"), "{log}");
    assert!(log.contains("out of file descriptors"), "{log}");
}

trait IntoSocketAddr {
    fn into_socket_addr(self) -> std::net::SocketAddr;
}

impl IntoSocketAddr for (&str, u16) {
    fn into_socket_addr(self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.0.parse().unwrap(), self.1)
    }
}

#[test]
fn a_loki_config_with_the_server_keys_starts() {
    let dir = temp_dir("http-keys");
    let s = start_limited(
        &dir,
        4096,
        "  http_server_read_timeout: 30s
  http_server_read_header_timeout: 0s
  http_server_write_timeout: 30s
  http_server_idle_timeout: 2m0s
  grpc_server_max_recv_msg_size: 67108864
  grpc_server_max_send_msg_size: 67108864
  grpc_server_max_concurrent_streams: 100
  grpc_server_max_connection_idle: 2562047h47m16.854775807s
  grpc_server_max_connection_age: 2562047h47m16.854775807s
  grpc_server_max_connection_age_grace: 2562047h47m16.854775807s
  grpc_server_keepalive_time: 2h0m0s
  grpc_server_keepalive_timeout: 20s
  grpc_server_min_time_between_pings: 10s
  grpc_server_ping_without_stream_allowed: true
",
    );
    let c = get(&format!("{}/config", s.url), &[], &[]);
    assert!(c.body.contains("http_server_idle_timeout: 2m"), "{}", c.body);
    assert!(c.body.contains("grpc_server_keepalive_timeout: 20s"), "{}", c.body);
}
