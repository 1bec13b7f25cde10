//! DynamoDB credentials from a web identity (EKS's IRSA) against real servers: the token file
//! and role from `AWS_WEB_IDENTITY_TOKEN_FILE` / `AWS_ROLE_ARN` are exchanged with a real STS
//! (moto's server, `scripts/test-servers/start.sh`) for temporary credentials, and DynamoDB
//! Local's requests are then signed with them, session token included. Recording proxies in
//! front of both servers show what travelled. Then credentials close to expiry are fetched
//! again (a stand-in STS that grants 2 minutes, since moto grants an hour). One test in its
//! own binary: it sets the process's environment.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};

use skald_index::DynamoClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to `upstream` that keeps what each side sent (requests, answers).
async fn recording_proxy(upstream: String) -> (String, Arc<Mutex<(Vec<u8>, Vec<u8>)>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let kept = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let server = TcpStream::connect(&upstream).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let up = kept.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                // recorded before it is passed on: the answer cannot overtake the record
                while let Ok(n) = cr.read(&mut buf).await {
                    up.lock().unwrap().0.extend_from_slice(&buf[..n]);
                    if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            let down = kept.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                while let Ok(n) = sr.read(&mut buf).await {
                    down.lock().unwrap().1.extend_from_slice(&buf[..n]);
                    if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).unwrap_or_else(|| panic!("no {open} in {text}")) + open.len();
    let len = text[start..].find(close).unwrap();
    &text[start..start + len]
}

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| {
        panic!(
            "{k} is not set: run scripts/test-servers/start.sh and source the env file it writes"
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_requests_are_signed_with_credentials_from_sts() {
    let host = |url: String| url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let (sts_url, sts_seen) = recording_proxy(host(env("SKALD_TEST_STS_ENDPOINT"))).await;
    let (ddb_url, ddb_seen) = recording_proxy(host(env("SKALD_TEST_DYNAMODB_ENDPOINT"))).await;
    let dir = std::env::temp_dir().join(format!("skald-irsa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.pod-token.sig\n").unwrap();
    // what EKS's pod identity webhook puts in a pod's environment (and no static keys)
    std::env::remove_var("AWS_ACCESS_KEY_ID");
    std::env::remove_var("AWS_SECRET_ACCESS_KEY");
    std::env::set_var("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file);
    std::env::set_var("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/skald-index");
    std::env::set_var("AWS_ROLE_SESSION_NAME", "skald-test");
    std::env::set_var("AWS_ENDPOINT_URL_STS", &sts_url);

    let config = DynamoClientConfig {
        region: "us-east-1".to_string(),
        endpoint: Some(ddb_url),
        credentials: None,
    };
    let client = config.connect().unwrap();
    client.list_tables().send().await.unwrap();
    client.list_tables().send().await.unwrap();

    let (sts_req, sts_resp) = sts_seen.lock().unwrap().clone();
    let sts_req = String::from_utf8_lossy(&sts_req).to_string();
    let sts_resp = String::from_utf8_lossy(&sts_resp).to_string();
    // one exchange for both calls (the credentials are cached until shortly before expiry)
    assert_eq!(sts_req.matches("Action=AssumeRoleWithWebIdentity").count(), 1, "{sts_req}");
    assert!(
        sts_req.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fskald%2Dindex"),
        "{sts_req}"
    );
    assert!(
        sts_req.contains("WebIdentityToken=eyJhbGciOiJSUzI1NiJ9%2Epod%2Dtoken%2Esig"),
        "{sts_req}"
    );
    assert!(sts_req.contains("RoleSessionName=skald%2Dtest"), "{sts_req}");
    let key = between(&sts_resp, "<AccessKeyId>", "</AccessKeyId>");
    let token = between(&sts_resp, "<SessionToken>", "</SessionToken>");
    assert!(key.starts_with("ASIA"), "temporary keys start with ASIA: {key}");

    let ddb = String::from_utf8_lossy(&ddb_seen.lock().unwrap().0).to_string();
    let requests = ddb.matches("x-amz-target: DynamoDB_20120810.ListTables").count();
    assert_eq!(requests, 2, "{ddb}");
    assert_eq!(ddb.matches(&format!("Credential={key}/")).count(), 2, "{ddb}");
    assert_eq!(ddb.matches(&format!("x-amz-security-token: {token}\r\n")).count(), 2, "{ddb}");

    // Credentials that expire within 2.5 minutes are fetched again before the next call, with
    // the token file read anew (the kubelet rotates it). moto always grants an hour, so a
    // stand-in STS grants 2 minutes here.
    let (sts_url, exchanges) = short_lived_sts().await;
    std::env::set_var("AWS_ENDPOINT_URL_STS", &sts_url);
    let (ddb_url, ddb_seen) = recording_proxy(host(env("SKALD_TEST_DYNAMODB_ENDPOINT"))).await;
    let client = DynamoClientConfig { endpoint: Some(ddb_url), ..config }.connect().unwrap();
    client.list_tables().send().await.unwrap();
    std::fs::write(&token_file, "rotated-token\n").unwrap();
    client.list_tables().send().await.unwrap();
    let bodies = exchanges.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(bodies[0].contains("WebIdentityToken=eyJhbGciOiJSUzI1NiJ9%2Epod%2Dtoken%2Esig"));
    assert!(bodies[1].contains("WebIdentityToken=rotated%2Dtoken"), "{}", bodies[1]);
    let ddb = String::from_utf8_lossy(&ddb_seen.lock().unwrap().0).to_string();
    for n in 1..=2 {
        assert_eq!(ddb.matches(&format!("Credential=ASIASTANDIN{n}/")).count(), 1, "{ddb}");
        assert_eq!(ddb.matches(&format!("x-amz-security-token: token-{n}\r\n")).count(), 1);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An STS stand-in whose credentials expire 2 minutes after they are granted; keeps each
/// request's body.
async fn short_lived_sts() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 4096];
                let body = loop {
                    let n = conn.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "connection closed mid-request");
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            break body.to_string();
                        }
                    }
                };
                let n = {
                    let mut k = kept.lock().unwrap();
                    k.push(body);
                    k.len()
                };
                let expires = std::time::SystemTime::now() + std::time::Duration::from_secs(120);
                let secs = expires.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                let xml = format!(
                    "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIASTANDIN{n}</AccessKeyId><SecretAccessKey>secret-{n}</SecretAccessKey><SessionToken>token-{n}</SessionToken><Expiration>{}</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
                    rfc3339(secs)
                );
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                    xml.len()
                );
                conn.write_all(resp.as_bytes()).await.unwrap();
            });
        }
    });
    (format!("http://{addr}"), bodies)
}

/// `2026-12-05T07:10:00Z` for Unix seconds (days to civil date, Howard Hinnant's algorithm).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}
