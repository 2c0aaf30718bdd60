//! Automatic certificates: `storefort serve` with `[tls] acme_domains`
//! against pebble (Let's Encrypt's ACME test server, Debian package
//! `pebble`, which `.ci/run` installs) on loopback. Pebble really validates
//! the HTTP-01 challenge on the store's challenge port, issues a
//! certificate from its own throwaway root, and the store then serves HTTPS
//! with it.

use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

async fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not start");
}

/// A CA and, signed by it, pebble's own HTTPS certificate for 127.0.0.1.
fn pebble_certificates(dir: &std::path::Path) -> std::path::PathBuf {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("params");
    let cert = params.signed_by(&key, &ca).expect("cert");
    std::fs::write(dir.join("pebble-cert.pem"), cert.pem()).expect("write");
    std::fs::write(dir.join("pebble-key.pem"), key.serialize_pem()).expect("write");
    let ca_file = dir.join("pebble-ca.pem");
    std::fs::write(&ca_file, ca.as_ref().pem()).expect("write");
    ca_file
}

async fn start_pebble(dir: &std::path::Path, api: u16, management: u16, http_challenge: u16) -> Child {
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{api}"),
        "managementListenAddress": format!("127.0.0.1:{management}"),
        "certificate": dir.join("pebble-cert.pem"),
        "privateKey": dir.join("pebble-key.pem"),
        "httpPort": http_challenge,
        "tlsPort": free_port(),
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false
    }});
    let config_file = dir.join("pebble.json");
    std::fs::write(&config_file, config.to_string()).expect("write");
    let child = Command::new("pebble")
        .arg("-config")
        .arg(&config_file)
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .env("PEBBLE_AUTHZREUSE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("pebble is installed (Debian package `pebble`; .ci/run installs it)");
    wait_for_port(api, "pebble").await;
    child
}

#[tokio::test]
async fn the_store_gets_its_certificate_over_acme_and_serves_https_with_it() {
    let dir = tempfile::tempdir().expect("dir");
    let ca_file = pebble_certificates(dir.path());
    let (api, management, challenge, https) = (free_port(), free_port(), free_port(), free_port());
    let _pebble = start_pebble(dir.path(), api, management, challenge).await;

    let _store = Command::new(env!("CARGO_BIN_EXE_storefort"))
        .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{https}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .current_dir(dir.path())
        .env_remove("STOREFORT_CONFIG")
        .env("STOREFORT_TLS__ACME_DOMAINS", "[\"localhost\"]")
        .env("STOREFORT_TLS__ACME_DIRECTORY_URL", format!("https://127.0.0.1:{api}/dir"))
        .env("STOREFORT_TLS__ACME_CA_FILE", &ca_file)
        .env("STOREFORT_TLS__ACME_HTTP_LISTEN", format!("127.0.0.1:{challenge}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start storefort");
    wait_for_port(https, "storefort over https").await;

    // Pebble issues from a root it makes up at start; fetch it to trust it.
    let management_client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca_file).expect("ca")).expect("pem"))
        .build()
        .expect("client");
    let root = management_client
        .get(format!("https://127.0.0.1:{management}/roots/0"))
        .send()
        .await
        .expect("pebble root")
        .bytes()
        .await
        .expect("body");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&root).expect("root pem"))
        .resolve("localhost", format!("127.0.0.1:{https}").parse().expect("addr"))
        .build()
        .expect("client");
    let r =
        client.get(format!("https://localhost:{https}/readyz")).send().await.expect("https with the ACME certificate");
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("strict-transport-security"));

    let saved = dir.path().join("data/acme");
    for file in ["cert.pem", "key.pem", "account.json"] {
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(saved.join(file)).expect(file).permissions());
        assert_eq!(mode & 0o077, 0, "{file} is private");
    }
    // The challenge port redirects the configured name to HTTPS, and only it.
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let r =
        plain.get(format!("http://127.0.0.1:{challenge}/shop")).header("host", "localhost").send().await.expect("send");
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "https://localhost/shop");
    let r = plain
        .get(format!("http://127.0.0.1:{challenge}/shop"))
        .header("host", "evil.example")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404, "no open redirect through the Host header");
}
