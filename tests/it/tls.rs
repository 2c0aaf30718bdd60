//! `storefort serve` over HTTPS with rustls, from certificate files: the
//! store answers over TLS with HSTS and the security headers, refuses to
//! talk plain HTTP on that port, and a bad key stops the start with a
//! message that names the file.

use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let cert = rcgen::generate_simple_self_signed(names).expect("certificate");
    let cert_pem = cert.cert.pem();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, &cert_pem).expect("write cert");
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).expect("write key");
    (cert_file, key_file, cert_pem)
}

fn storefort(dir: &std::path::Path, port: u16, cert: &std::path::Path, key: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_storefort"));
    cmd.args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .current_dir(dir)
        .env_remove("STOREFORT_CONFIG")
        .env("STOREFORT_TLS__CERT_FILE", cert)
        .env("STOREFORT_TLS__KEY_FILE", key)
        .stdout(Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn the_store_speaks_https_with_hsts_and_only_https() {
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key, pem) = certificate(dir.path());
    let port = free_port();
    let _server = storefort(dir.path(), port, &cert, &key).stderr(Stdio::null()).spawn().expect("start");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("pem"))
        .build()
        .expect("client");
    let url = format!("https://127.0.0.1:{port}/api/v1/products?limit=1");
    let deadline = Instant::now() + Duration::from_secs(60);
    let response = loop {
        match client.get(&url).send().await {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("no HTTPS answer: {e}"),
        }
    };
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["strict-transport-security"], "max-age=63072000; includeSubDomains");
    assert!(response.headers().contains_key("content-security-policy"));
    // The firewall is in front over TLS too.
    let r = client.get(format!("https://127.0.0.1:{port}/api/v1/products?q=%27%20OR%201%3D1--")).send().await;
    assert_eq!(r.expect("send").status(), 403);
    // Plain HTTP on the TLS port gets no store.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() == 400), "plain HTTP must not be served");
}

#[tokio::test]
async fn a_bad_key_stops_the_start_and_names_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key, _) = certificate(dir.path());
    std::fs::write(&key, "not a key").expect("write");
    let out = storefort(dir.path(), free_port(), &cert, &key).stderr(Stdio::piped()).output().await.expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("key.pem"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing was opened before the certificate was checked");
}
