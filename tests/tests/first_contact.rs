//! What a new user meets first: `skald -help` names every target, and `-target=table-manager`
//! on the embedded default config says in plain words what it needs instead of running.

use std::process::Command;
use std::time::Duration;

use skald_integration_tests::{free_port_pair, skald_bin, temp_dir};

#[test]
fn help_lists_every_target() {
    let out = Command::new(skald_bin()).arg("-help").output().expect("run skald -help");
    assert!(out.status.success(), "skald -help: {}", out.status);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for target in ["all", "distributor", "ingester", "querier", "query-frontend", "table-manager"] {
        assert!(text.contains(target), "-help does not name {target}:\n{text}");
    }
}

#[test]
fn table_manager_on_the_default_config_says_what_it_needs() {
    let dir = temp_dir("first-contact-table-manager");
    let (http, grpc) = free_port_pair();
    let mut child = Command::new(skald_bin())
        .arg("-target=table-manager")
        .arg(format!("-server.http-listen-port={http}"))
        .arg(format!("-server.grpc-listen-port={grpc}"))
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn skald");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("-target=table-manager kept running on the default config");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success(), "-target=table-manager succeeded on the default config");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for words in ["DynamoDB", "store: aws", "dynamodb_url", "deploy/aws/skald-aws.yaml"] {
        assert!(text.contains(words), "the message does not say `{words}`:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
