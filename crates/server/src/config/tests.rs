use super::*;

#[test]
fn unknown_key_is_named() {
    let err = parse("server:\n  http_listen_prot: 3100\n").unwrap_err().to_string();
    assert!(err.contains("http_listen_prot"), "{err}");
    let err = parse("nonsense: 1\n").unwrap_err().to_string();
    assert!(err.contains("nonsense"), "{err}");
}

#[test]
fn lokis_server_timeouts_load() {
    let cfg = parse(
        "server:
  http_server_read_timeout: 31s
  http_server_read_header_timeout: 0s
  http_server_write_timeout: 1m
  http_server_idle_timeout: 2m1s
  grpc_server_max_connection_idle: 2562047h47m16.854775807s
  grpc_server_max_connection_age: 2562047h47m16.854775807s
  grpc_server_max_connection_age_grace: 2562047h47m16.854775807s
  grpc_server_keepalive_time: 2h0m0s
  grpc_server_keepalive_timeout: 20s
  grpc_server_min_time_between_pings: 10s
  grpc_server_ping_without_stream_allowed: true
  grpc_server_max_concurrent_streams: 100
",
    )
    .unwrap();
    let s = &cfg.server;
    assert_eq!(s.http_server_read_timeout.as_secs(), 31);
    assert_eq!(s.http_server_write_timeout.as_secs(), 60);
    assert_eq!(s.http_server_idle_timeout.as_secs(), 121);
    assert_eq!(s.grpc_server_keepalive_timeout.as_secs(), 20);
    assert_eq!(s.grpc_server_max_concurrent_streams, 100);
    let d = ServerConfig::default();
    assert_eq!(d.http_server_read_timeout.as_secs(), 30);
    assert_eq!(d.http_server_idle_timeout.as_secs(), 120);
}

#[test]
fn env_expansion() {
    std::env::set_var("SKALD_TEST_PORT", "3999");
    assert_eq!(expand_env("port: ${SKALD_TEST_PORT}"), "port: 3999");
    assert_eq!(expand_env("x: ${SKALD_NOPE_VAR:-7}"), "x: 7");
}

#[test]
fn common_ring_fills_the_lifecycler() {
    let cfg = parse(
            "common:\n  replication_factor: 3\n  ring:\n    kvstore:\n      store: memberlist\n    heartbeat_period: 2s\n    heartbeat_timeout: 20s\n    tokens_file_path: /t/tokens\n",
        )
        .unwrap();
    let l = &cfg.ingester.lifecycler;
    assert_eq!(l.heartbeat_period, std::time::Duration::from_secs(2));
    assert_eq!(l.ring.heartbeat_timeout, std::time::Duration::from_secs(20));
    assert_eq!(l.tokens_file_path, "/t/tokens");
    assert_eq!(cfg.common.replication_factor, 3);
    // the lifecycler's own keys win, and its replication factor too
    let cfg = parse(
            "common:\n  replication_factor: 3\n  ring:\n    heartbeat_timeout: 20s\ningester:\n  lifecycler:\n    ring:\n      heartbeat_timeout: 9s\n      replication_factor: 2\n      kvstore:\n        store: inmemory\n",
        )
        .unwrap();
    assert_eq!(cfg.ingester.lifecycler.ring.heartbeat_timeout, std::time::Duration::from_secs(9));
    assert_eq!(cfg.common.replication_factor, 2);
    let err =
        parse("common:\n  ring:\n    kvstore:\n      store: consul\n").unwrap_err().to_string();
    assert!(err.contains("common.ring.kvstore.store `consul` is not supported"), "{err}");
    let err = parse("ingester:\n  lifecycler:\n    ring:\n      kvstore:\n        store: etcd\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("ingester.lifecycler.ring.kvstore.store `etcd`"), "{err}");
}

#[test]
fn shipped_configs_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let mut files = vec![
        root.join("skald-local.yaml"),
        root.join("loki-reference.yaml"),
        root.join("aws/skald-aws.yaml"),
    ];
    for dir in ["microservices", "microservices/gossip"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 13, "{files:?}");
    for name in &files {
        let text = std::fs::read_to_string(name).unwrap();
        let cfg = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", name.display()));
        cfg.validate().unwrap_or_else(|e| panic!("{}: {e}", name.display()));
        // the query-frontend is in no ring: its queriers find it by address
        let path = name.to_string_lossy();
        if path.contains("gossip") && !path.ends_with("query-frontend.yaml") {
            assert!(cfg.memberlist().unwrap().is_some(), "{}", name.display());
            assert_eq!(cfg.common.replication_factor, 3);
            assert_eq!(cfg.ingester.lifecycler.heartbeat_period.as_secs(), 5);
        }
    }
}
