//! Nothing lost: kill -9 the real server while checkouts run, restart it, and
//! find every order whose 201 reached a client, with stock still adding up.

use crate::support::{checkout_body, fresh_database_url};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storefort_store::{Store, StoreOptions};
use tokio::process::{Child, Command};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// With the store on PostgreSQL the key store must be configured (it may
/// not live in the store's database); the tests keep it in the data dir.
fn key_store_url(data_dir: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("keys.db").display())
}

fn start(data_dir: &std::path::Path, port: u16, db_url: &str) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_storefort"));
    cmd.args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Sixteen shoppers share one loopback address: lift the per-IP
        // limits that would otherwise (rightly) slow them down.
        .env("STOREFORT_SHIELD__LIMITS__CHECKOUT__PER_MINUTE", "100000")
        .env("STOREFORT_SHIELD__LIMITS__CHECKOUT__BURST", "10000")
        .env("STOREFORT_SHIELD__LIMITS__PER_IP__PER_MINUTE", "1000000")
        .env("STOREFORT_SHIELD__LIMITS__PER_IP__BURST", "100000")
        .kill_on_drop(true);
    if !db_url.starts_with("sqlite:") {
        cmd.args(["--database-url", db_url]).env("STOREFORT_VAULT__KEY_STORE_URL", key_store_url(data_dir));
    }
    cmd.spawn().expect("start storefort")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("storefort did not become ready");
}

async fn all_variants(client: &reqwest::Client, base: &str) -> HashMap<String, i64> {
    let mut stock = HashMap::new();
    let mut cursor = String::new();
    loop {
        let url = if cursor.is_empty() {
            format!("{base}/api/v1/products?limit=100")
        } else {
            format!("{base}/api/v1/products?limit=100&cursor={cursor}")
        };
        let page: Value = client.get(url).send().await.expect("list").json().await.expect("json");
        for p in page["items"].as_array().expect("items") {
            for v in p["variants"].as_array().expect("variants") {
                stock.insert(v["id"].as_str().expect("id").to_owned(), v["available"].as_i64().expect("available"));
            }
        }
        match page["next"].as_str() {
            Some(n) => cursor = n.to_owned(),
            None => return stock,
        }
    }
}

/// One shopper: cart, one line, checkout; records every acknowledged order.
async fn shop(
    client: reqwest::Client,
    base: String,
    variants: Arc<Vec<String>>,
    seed: usize,
    acked: Arc<Mutex<Vec<(String, String)>>>,
) {
    let mut i = seed;
    loop {
        i = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let variant = &variants[(i >> 33) % variants.len()];
        let Ok(r) = client.post(format!("{base}/api/v1/carts")).send().await else {
            return;
        };
        let Ok(cart) = r.json::<Value>().await else {
            return;
        };
        let Some(cart) = cart["id"].as_str().map(str::to_owned) else {
            return;
        };
        let line = json!({"variant_id": variant, "quantity": 1});
        if client.post(format!("{base}/api/v1/carts/{cart}/lines")).json(&line).send().await.is_err() {
            return;
        }
        let Ok(r) = client.post(format!("{base}/api/v1/checkout")).json(&checkout_body(&cart)).send().await else {
            return;
        };
        if r.status() != 201 {
            continue;
        }
        // Acknowledged: the 201 reached us. Record it only once the body is read.
        let Ok(body) = r.json::<Value>().await else {
            return;
        };
        let id = body["order"]["id"].as_str().unwrap_or_default().to_owned();
        let token = body["access_token"].as_str().unwrap_or_default().to_owned();
        acked.lock().expect("lock").push((id, token));
    }
}

/// A real `storefort serve --demo` on a fresh database, ready for requests.
struct Launched {
    dir: tempfile::TempDir,
    /// The database the server itself uses (on SQLite, the file in its data dir).
    db_url: String,
    port: u16,
    base: String,
    client: reqwest::Client,
    server: Child,
}

async fn launch() -> Launched {
    let dir = tempfile::tempdir().expect("dir");
    let db_url = fresh_database_url(&dir).await;
    let db_url = if db_url.starts_with("sqlite:") {
        format!("sqlite://{}?mode=rwc", dir.path().join("storefort.db").display())
    } else {
        db_url
    };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let server = start(dir.path(), port, &db_url);
    wait_ready(&client, &base).await;
    Launched { dir, db_url, port, base, client, server }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_orders_survive_kill_9_and_stock_adds_up() {
    let Launched { dir, db_url, port, base, client, mut server } = launch().await;
    let initial = all_variants(&client, &base).await;
    assert!(initial.len() >= 20);
    let variants: Arc<Vec<String>> = Arc::new(initial.keys().cloned().collect());

    let acked = Arc::new(Mutex::new(Vec::new()));
    let shoppers: Vec<_> =
        (0..16).map(|s| tokio::spawn(shop(client.clone(), base.clone(), variants.clone(), s, acked.clone()))).collect();
    // Let orders flow, then pull the plug mid-stream.
    let start_time = Instant::now();
    while acked.lock().expect("lock").len() < 30 && start_time.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.start_kill().expect("SIGKILL");
    let _ = server.wait().await;
    for s in shoppers {
        let _ = s.await;
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= 30, "only {} orders before the kill", acked.len());

    let mut server = start(dir.path(), port, &db_url);
    wait_ready(&client, &base).await;
    for (id, token) in &acked {
        let r = client.get(format!("{base}/api/v1/orders/{id}")).bearer_auth(token).send().await.expect("get order");
        assert_eq!(r.status(), 200, "acknowledged order {id} was lost");
    }
    server.start_kill().expect("stop");
    let _ = server.wait().await;

    // Only reads here: the ledger MAC key is not needed.
    let store = Store::open(&StoreOptions {
        url: db_url.clone(),
        max_connections: 2,
        ledger_mac_key: [0; 32],
        record_ledger: true,
    })
    .await
    .expect("open");
    let mut units_out = 0;
    for (variant, start_stock) in &initial {
        let (available, reserved, sold) = store.stock_counts(variant).await.expect("counts");
        assert!(available >= 0 && reserved >= 0 && sold >= 0);
        assert_eq!(available + reserved + sold, *start_stock, "stock of {variant} does not add up");
        units_out += reserved + sold;
    }
    // Every order holds exactly one unit, so units out equals orders stored.
    assert_eq!(units_out, store.order_count().await.expect("count"));
    assert!(units_out >= acked.len() as i64);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_in_flight_checkouts_finish_and_exits_cleanly() {
    let Launched { dir, db_url, port, base, client, mut server } = launch().await;
    let variants: Arc<Vec<String>> = Arc::new(all_variants(&client, &base).await.into_keys().collect());
    let acked = Arc::new(Mutex::new(Vec::new()));
    let shoppers: Vec<_> =
        (0..8).map(|s| tokio::spawn(shop(client.clone(), base.clone(), variants.clone(), s, acked.clone()))).collect();
    while acked.lock().expect("lock").len() < 10 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = server.id().expect("pid");
    let term = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(term.success());
    let status =
        tokio::time::timeout(Duration::from_secs(40), server.wait()).await.expect("exits in time").expect("wait");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    for s in shoppers {
        let _ = s.await;
    }
    let acked = acked.lock().expect("lock").clone();
    let mut server = start(dir.path(), port, &db_url);
    wait_ready(&client, &base).await;
    for (id, token) in &acked {
        let r = client.get(format!("{base}/api/v1/orders/{id}")).bearer_auth(token).send().await.expect("get order");
        assert_eq!(r.status(), 200, "acknowledged order {id} was lost");
    }
    server.start_kill().expect("stop");
    let _ = server.wait().await;
}

/// The README's ledger tour, on the real binary: a receipt verifies offline,
/// `ledger verify` passes on an untouched store and names the entry after a
/// direct database edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_and_receipt_commands_work_on_the_real_binary() {
    let Launched { dir, db_url, base, client, mut server, .. } = launch().await;
    let variants: Vec<String> = all_variants(&client, &base).await.into_keys().collect();
    let cart: Value =
        client.post(format!("{base}/api/v1/carts")).send().await.expect("cart").json().await.expect("json");
    let cart = cart["id"].as_str().expect("id").to_owned();
    let line = json!({"variant_id": variants[0], "quantity": 1});
    client.post(format!("{base}/api/v1/carts/{cart}/lines")).json(&line).send().await.expect("line");
    let placed: Value = client
        .post(format!("{base}/api/v1/checkout"))
        .json(&checkout_body(&cart))
        .send()
        .await
        .expect("co")
        .json()
        .await
        .expect("json");
    let (order, token) = (placed["order"]["id"].as_str().expect("id"), placed["access_token"].as_str().expect("token"));
    let receipt =
        client.get(format!("{base}/api/v1/orders/{order}/receipt")).bearer_auth(token).send().await.expect("receipt");
    assert_eq!(receipt.status(), 200);
    let receipt_file = dir.path().join("receipt.json");
    std::fs::write(&receipt_file, receipt.bytes().await.expect("body")).expect("write");
    let key = client
        .get(format!("{base}/.well-known/storefort/ledger-key"))
        .send()
        .await
        .expect("key")
        .text()
        .await
        .expect("text");
    server.start_kill().expect("stop");
    let _ = server.wait().await;

    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_storefort"));
        cmd.args(args).arg("--data-dir").arg(dir.path()).env_remove("RUST_BACKTRACE");
        if !db_url.starts_with("sqlite:") {
            cmd.args(["--database-url", &db_url]).env("STOREFORT_VAULT__KEY_STORE_URL", key_store_url(dir.path()));
        }
        cmd.output().expect("run storefort")
    };
    let printed = run(&["ledger", "key"]);
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), key.trim(), "CLI and well-known key agree");
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_storefort"))
        .args(["receipt", "verify"])
        .arg(&receipt_file)
        .args(["--key", key.trim()])
        .output()
        .expect("run");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let clean = run(&["ledger", "verify"]);
    assert!(
        clean.status.success(),
        "{}{}",
        String::from_utf8_lossy(&clean.stdout),
        String::from_utf8_lossy(&clean.stderr)
    );

    // A direct edit of the order's total, as someone with database access would.
    let url = db_url.clone();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.expect("connect");
    sqlx::query("UPDATE orders SET total = 1 WHERE id = $1").bind(order).execute(&pool).await.expect("tamper");
    pool.close().await;
    let bad = run(&["ledger", "verify"]);
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success(), "{out}");
    assert!(out.contains("(order_placed)") && out.contains("total"), "{out}");

    // An edited entry after the last checkpoint stops the store at start.
    let pool = sqlx::AnyPool::connect(&url).await.expect("connect");
    sqlx::query("UPDATE ledger_entries SET entry = REPLACE(entry, '\"quantity\":1', '\"quantity\":9') WHERE kind = 'order_placed'")
        .execute(&pool)
        .await
        .expect("tamper");
    sqlx::query("DELETE FROM ledger_checkpoints").execute(&pool).await.expect("tamper");
    pool.close().await;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_storefort"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())]).arg("--data-dir").arg(dir.path());
    if !db_url.starts_with("sqlite:") {
        cmd.args(["--database-url", &db_url]).env("STOREFORT_VAULT__KEY_STORE_URL", key_store_url(dir.path()));
    }
    let refused = cmd.output().expect("run");
    assert!(!refused.status.success(), "a tampered ledger must stop the store");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("ledger check at start failed"), "{err}");
}

#[tokio::test]
async fn a_wrong_master_key_stops_the_store_before_it_writes_anything() {
    let Launched { dir, db_url, base, client, mut server, .. } = launch().await;
    let variant = all_variants(&client, &base).await.into_keys().next().expect("a variant");
    let cart: Value = client
        .post(format!("{base}/api/v1/carts"))
        .json(&json!({}))
        .send()
        .await
        .expect("cart")
        .json()
        .await
        .expect("json");
    let cart = cart["id"].as_str().expect("cart id");
    let line = json!({"variant_id": variant, "quantity": 1});
    client.post(format!("{base}/api/v1/carts/{cart}/lines")).json(&line).send().await.expect("line");
    let placed =
        client.post(format!("{base}/api/v1/checkout")).json(&checkout_body(cart)).send().await.expect("checkout");
    assert_eq!(placed.status(), 201);
    server.start_kill().expect("stop");
    let _ = server.wait().await;
    let key_store = || async {
        let url = format!("sqlite://{}?mode=rw", dir.path().join("keys.db").display());
        let keys = storefort_store::KeyStore::open(&url).await.expect("key store");
        let counts = keys.key_counts().await.expect("counts");
        keys.close().await;
        counts
    };
    let keys_before = key_store().await;
    assert!(!keys_before.is_empty(), "the demo store made data keys");
    // Someone restores the wrong master key file.
    let path = dir.path().join("master.key");
    let right = std::fs::read_to_string(&path).expect("master key");
    std::fs::write(&path, "cd".repeat(32)).expect("write");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_storefort"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())]).arg("--data-dir").arg(dir.path());
    if !db_url.starts_with("sqlite:") {
        cmd.args(["--database-url", &db_url]).env("STOREFORT_VAULT__KEY_STORE_URL", key_store_url(dir.path()));
    }
    let refused = cmd.output().expect("run");
    assert!(!refused.status.success(), "a wrong master key must stop the store");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("master key") && err.contains("refusing to start"), "{err}");
    assert!(!err.contains(&"cd".repeat(32)) && !err.contains(right.trim()), "no key in the message: {err}");
    assert_eq!(key_store().await, keys_before, "no key written under the wrong master key");
    assert_eq!(std::fs::read_to_string(&path).expect("key"), "cd".repeat(32), "the key file is left as found");
}

#[tokio::test]
async fn keys_rotate_from_the_command_line_and_the_store_reads_everything_after() {
    let Launched { dir, db_url, port, base, client, mut server } = launch().await;
    let variant = all_variants(&client, &base).await.into_keys().next().expect("a variant");
    let cart: Value = client
        .post(format!("{base}/api/v1/carts"))
        .json(&json!({}))
        .send()
        .await
        .expect("cart")
        .json()
        .await
        .expect("json");
    let cart = cart["id"].as_str().expect("cart id");
    client
        .post(format!("{base}/api/v1/carts/{cart}/lines"))
        .json(&json!({"variant_id": variant, "quantity": 1}))
        .send()
        .await
        .expect("line");
    let placed: Value = client
        .post(format!("{base}/api/v1/checkout"))
        .json(&checkout_body(cart))
        .send()
        .await
        .expect("checkout")
        .json()
        .await
        .expect("json");
    let (order, token) = (placed["order"]["id"].as_str().expect("id"), placed["access_token"].as_str().expect("token"));
    let old_key = std::fs::read_to_string(dir.path().join("master.key")).expect("key");
    // Rotated while the server runs.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_storefort"));
    cmd.args(["keys", "rotate"]).arg("--data-dir").arg(dir.path());
    if !db_url.starts_with("sqlite:") {
        cmd.args(["--database-url", &db_url]).env("STOREFORT_VAULT__KEY_STORE_URL", key_store_url(dir.path()));
    }
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("master key rotated"));
    assert_ne!(std::fs::read_to_string(dir.path().join("master.key")).expect("key"), old_key);
    assert!(!dir.path().join("master.key.old").exists());
    let read = |client: reqwest::Client, base: String| async move {
        let r = client.get(format!("{base}/api/v1/orders/{order}")).bearer_auth(token).send().await.expect("get");
        r.json::<Value>().await.expect("json")
    };
    assert_eq!(
        read(client.clone(), base.clone()).await["email"],
        "ada@example.com",
        "the running store picked up the new key"
    );
    server.start_kill().expect("stop");
    let _ = server.wait().await;
    let mut server = start(dir.path(), port, &db_url);
    wait_ready(&client, &base).await;
    assert_eq!(read(client.clone(), base.clone()).await["email"], "ada@example.com", "after a restart too");
    server.start_kill().expect("stop");
    let _ = server.wait().await;
}
