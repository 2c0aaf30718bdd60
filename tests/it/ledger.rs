//! Tamper tests: every way of rewriting history through the database is
//! detected by `ledger verify`, naming the right entry; receipts verify
//! offline and fail when edited.

use crate::support::{TestApp, checkout_body, read, spawn};
use reqwest::Method;
use serde_json::json;
use sqlx::AssertSqlSafe;
use storefort_ledger::{Checkpoint, LedgerKey, Receipt, VerifierKey};
use storefort_store::audit::{AuditInput, AuditReport, WitnessCheckpoint};
use storefort_web::Clock;
use storefort_web::ledger::witness_read;

/// A store with a little history: products, orders, a payment, a price and
/// a stock change, and a checkpoint copied to the witness.
struct History {
    app: TestApp,
    variant: String,
    order: String,
    order_token: String,
}

async fn history() -> History {
    let app = spawn().await;
    let variant = app.product("Grinder", 8900, 20).await;
    let other = app.product("Filters", 590, 50).await;
    let cart = app.cart_with(&variant, 2).await;
    let placed = app.post("/api/v1/checkout", checkout_body(&cart)).await;
    assert_eq!(placed.status, 201);
    let order = placed.body["order"]["id"].as_str().expect("id").to_owned();
    let order_token = placed.body["access_token"].as_str().expect("token").to_owned();
    let paid =
        app.admin(Method::POST, &format!("/api/v1/admin/orders/{order}/status"), Some(json!({"status": "paid"}))).await;
    assert_eq!(paid.status, 200);
    let second = app.post("/api/v1/checkout", checkout_body(&app.cart_with(&other, 3).await)).await;
    assert_eq!(second.status, 201);
    let r = app
        .admin(
            Method::PUT,
            &format!("/api/v1/admin/variants/{other}/price"),
            Some(json!({"amount": 650, "currency": "EUR"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .admin(Method::PUT, &format!("/api/v1/admin/variants/{variant}/stock"), Some(json!({"available": 30})))
        .await;
    assert_eq!(r.status, 200);
    app.state.ledger().checkpoint_now(&app.store, app.clock.now_ms()).await.expect("checkpoint");
    History { app, variant, order, order_token }
}

pub async fn audit(app: &TestApp) -> AuditReport {
    let (key, witnessed) = witness_read(&app.dir.path().join("witness")).expect("witness");
    let input = AuditInput {
        mac_key: &[7; 32],
        witness_key: key.map(|k| VerifierKey::parse(&k).expect("witness key")),
        witness: witnessed.into_iter().map(|w| WitnessCheckpoint { size: w.size, note: w.note }).collect(),
    };
    app.store.audit(&input, &|_, _| {}).await.expect("audit runs")
}

async fn sql(app: &TestApp, statement: String) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db_url).await.expect("connect");
    sqlx::query(AssertSqlSafe(statement)).execute(&pool).await.expect("tamper");
    pool.close().await;
}

async fn entry_index(app: &TestApp, kind: &str, target: &str) -> u64 {
    let size = app.store.ledger_size().await.expect("size");
    let entries = app.store.ledger_entries(0, size).await.expect("entries");
    let e = entries.iter().find(|e| e.kind == kind && e.entry.contains(target)).expect("entry");
    u64::try_from(e.idx).expect("index")
}

fn first(report: &AuditReport) -> (Option<u64>, Option<String>, String) {
    let p = report.first_problem().expect("tampering was detected");
    (p.index, p.kind.clone(), p.what.clone())
}

#[tokio::test]
async fn an_untouched_store_verifies_clean() {
    let h = history().await;
    let report = audit(&h.app).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.entries >= 8 && report.checkpoints == 1 && report.witnessed == 1);
    assert_eq!((report.orders, report.variants), (2, 2));
}

#[tokio::test]
async fn a_modified_entry_is_named() {
    let h = history().await;
    let i = entry_index(&h.app, "order_placed", &h.order).await;
    sql(
        &h.app,
        format!("UPDATE ledger_entries SET entry = REPLACE(entry, '\"quantity\":2', '\"quantity\":1') WHERE idx = {i}"),
    )
    .await;
    let (index, kind, what) = first(&audit(&h.app).await);
    assert_eq!((index, kind.as_deref()), (Some(i), Some("order_placed")), "{what}");
}

#[tokio::test]
async fn a_deleted_entry_is_named() {
    let h = history().await;
    let i = entry_index(&h.app, "order_status_changed", &h.order).await;
    sql(&h.app, format!("DELETE FROM ledger_entries WHERE idx = {i}")).await;
    let (index, _, what) = first(&audit(&h.app).await);
    assert_eq!(index, Some(i), "{what}");
    assert!(what.contains("missing"), "{what}");
}

#[tokio::test]
async fn reordered_entries_are_named() {
    let h = history().await;
    let a = entry_index(&h.app, "order_placed", &h.order).await;
    let b = a + 1;
    // Swap the two rows' contents, keeping positions.
    sql(&h.app, format!("UPDATE ledger_entries SET idx = -1 WHERE idx = {a}")).await;
    sql(&h.app, format!("UPDATE ledger_entries SET idx = {a} WHERE idx = {b}")).await;
    sql(&h.app, format!("UPDATE ledger_entries SET idx = {b} WHERE idx = -1")).await;
    let (index, _, what) = first(&audit(&h.app).await);
    assert_eq!(index, Some(a), "{what}");
    assert!(what.contains("reordered"), "{what}");
}

#[tokio::test]
async fn a_truncated_tail_is_named() {
    let h = history().await;
    let size = h.app.store.ledger_size().await.expect("size");
    let cut = size - 2;
    sql(&h.app, format!("DELETE FROM ledger_entries WHERE idx >= {cut}")).await;
    sql(&h.app, format!("UPDATE ledger_head SET size = {cut}")).await;
    let report = audit(&h.app).await;
    let (index, _, what) = first(&report);
    assert_eq!(index, Some(cut), "{what}");
    assert!(report.problems.iter().any(|p| p.what.contains("truncated")), "{:?}", report.problems);
}

#[tokio::test]
async fn a_forged_entry_is_named() {
    let h = history().await;
    let size = h.app.store.ledger_size().await.expect("size");
    let forged = storefort_ledger::Entry {
        v: 1,
        index: size,
        kind: "stock_changed".into(),
        actor: "bootstrap_admin".into(),
        targets: vec![h.variant.clone()],
        change: json!({"variant": h.variant, "old": 30, "new": 1000}),
        at: 1,
        request_id: None,
    };
    let text = forged.to_canonical().expect("canonical");
    let leaf = hex::encode(storefort_ledger::leaf_hash(text.as_bytes()));
    // Whoever can write the database lacks the MAC key: any MAC is wrong.
    sql(&h.app, format!(
        "INSERT INTO ledger_entries (idx, leaf_hash, mac, kind, target, entry) VALUES ({size}, '{leaf}', '{}', 'stock_changed', '{}', '{}')",
        "0".repeat(64), h.variant, text.replace('\'', "''")
    ))
    .await;
    sql(&h.app, format!("UPDATE ledger_head SET size = {}", size + 1)).await;
    sql(&h.app, format!("UPDATE variants SET available = 1000, ledger_hash = '{leaf}' WHERE id = '{}'", h.variant))
        .await;
    let (index, kind, what) = first(&audit(&h.app).await);
    assert_eq!((index, kind.as_deref()), (Some(size), Some("stock_changed")), "{what}");
    assert!(what.contains("MAC"), "{what}");
}

#[tokio::test]
async fn a_directly_edited_order_total_is_named() {
    let h = history().await;
    sql(&h.app, format!("UPDATE orders SET total = 1 WHERE id = '{}'", h.order)).await;
    let i = entry_index(&h.app, "order_placed", &h.order).await;
    let (index, kind, what) = first(&audit(&h.app).await);
    assert_eq!((index, kind.as_deref()), (Some(i), Some("order_placed")), "{what}");
    assert!(what.contains("total"), "{what}");
}

#[tokio::test]
async fn a_directly_edited_price_is_named() {
    let h = history().await;
    sql(&h.app, format!("UPDATE variants SET price_amount = 1 WHERE id = '{}'", h.variant)).await;
    let i = entry_index(&h.app, "stock_changed", &h.variant).await;
    let (index, kind, what) = first(&audit(&h.app).await);
    assert_eq!((index, kind.as_deref()), (Some(i), Some("stock_changed")), "{what}");
    assert!(what.contains("price"), "{what}");
}

#[tokio::test]
async fn a_replaced_checkpoint_is_detected() {
    let h = history().await;
    let cp = h.app.store.latest_checkpoint().await.expect("read").expect("one");
    let forger = LedgerKey::from_seed("test.storefort/ledger", &[99; 32]).expect("key");
    let root = storefort_ledger::hash::from_hex(&cp.root).expect("root");
    let note = forger.sign(&Checkpoint { origin: "test.storefort/ledger".into(), size: cp.size as u64, root });
    sql(
        &h.app,
        format!("UPDATE ledger_checkpoints SET note = '{}' WHERE size = {}", note.replace('\'', "''"), cp.size),
    )
    .await;
    let report = audit(&h.app).await;
    assert!(report.problems.iter().any(|p| p.what.contains("not validly signed")), "{:?}", report.problems);
}

#[tokio::test]
async fn history_rewritten_and_re_signed_with_a_new_key_is_caught_by_the_witness() {
    let h = history().await;
    // The attacker holds the database and both key files: they rewrite an
    // entry with a valid MAC, re-key the log and re-sign a checkpoint.
    let i = entry_index(&h.app, "order_placed", &h.order).await;
    let entries = h.app.store.ledger_entries(0, h.app.store.ledger_size().await.expect("size")).await.expect("entries");
    let rewrite = |idx: u64, text: String| {
        let leaf = storefort_ledger::leaf_hash(text.as_bytes());
        let mac = storefort_ledger::hash::mac_hex(&[7; 32], &leaf);
        format!(
            "UPDATE ledger_entries SET entry = '{}', leaf_hash = '{}', mac = '{mac}' WHERE idx = {idx}",
            text.replace('\'', "''"),
            hex::encode(leaf)
        )
    };
    let new_key = LedgerKey::from_seed("test.storefort/ledger", &[66; 32]).expect("key");
    let created = entries.iter().find(|e| e.kind == "ledger_created").expect("created");
    let mut first_entry = storefort_ledger::Entry::from_canonical(&created.entry).expect("entry");
    first_entry.change["key"] = json!(new_key.verifier().to_string());
    sql(&h.app, rewrite(created.idx as u64, first_entry.to_canonical().expect("canonical"))).await;
    let placed = entries.iter().find(|e| e.idx as u64 == i).expect("placed");
    sql(&h.app, rewrite(i, placed.entry.replace("\"quantity\":2", "\"quantity\":1"))).await;
    sql(&h.app, "DELETE FROM ledger_checkpoints".into()).await;
    let leaves: Vec<_> = h
        .app
        .store
        .ledger_entries(0, 1000)
        .await
        .expect("entries")
        .iter()
        .map(|e| storefort_ledger::leaf_hash(e.entry.as_bytes()))
        .collect();
    let size = leaves.len() as u64;
    let root = storefort_ledger::tree::FullTree::new(leaves).root(size);
    let note = new_key.sign(&Checkpoint { origin: "test.storefort/ledger".into(), size, root });
    h.app.store.insert_checkpoint(size, &root, &note, 0).await.expect("insert");
    let report = audit(&h.app).await;
    let problems: Vec<_> = report.problems.iter().map(|p| p.what.clone()).collect();
    assert!(problems.iter().any(|p| p.contains("witness") && p.contains("rewritten")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("re-keyed")), "{problems:?}");
    let (index, kind, what) = first(&report);
    assert_eq!((index, kind.as_deref()), (Some(created.idx as u64), Some("ledger_created")), "{what}");
}

#[tokio::test]
async fn receipts_verify_offline_and_fail_when_edited_or_cut() {
    let h = history().await;
    let key_text =
        read(h.app.client.get(h.app.url("/.well-known/storefort/ledger-key")).send().await.expect("key")).await;
    assert_eq!(key_text.status, 200);
    let key = VerifierKey::parse(&h.app.state.ledger().verifier().to_string()).expect("key");
    let r = read(
        h.app
            .client
            .get(h.app.url(&format!("/api/v1/orders/{}/receipt", h.order)))
            .bearer_auth(&h.order_token)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let receipt: Receipt = serde_json::from_value(r.body.clone()).expect("receipt");
    let v = receipt.verify(&key).expect("verifies");
    assert_eq!(v.kind, "order_status_changed", "the paid order's receipt proves the payment entry");
    let mut edited = receipt.clone();
    edited.order["total"] = json!(1);
    assert!(edited.verify(&key).expect_err("edited").to_string().contains("snapshot hash differs"));
    let mut cut = receipt.clone();
    cut.inclusion_proof.pop();
    assert!(cut.verify(&key).expect_err("cut").to_string().contains("inclusion proof"));
    // Without the token there is no receipt.
    let r = h.app.get(&format!("/api/v1/orders/{}/receipt", h.order)).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn a_rotated_key_keeps_old_receipts_valid_and_signs_new_checkpoints() {
    let h = history().await;
    let old_key = h.app.state.ledger().verifier();
    let receipt_before = read(
        h.app
            .client
            .get(h.app.url(&format!("/api/v1/orders/{}/receipt", h.order)))
            .bearer_auth(&h.order_token)
            .send()
            .await
            .expect("send"),
    )
    .await;
    let receipt_before: Receipt = serde_json::from_value(receipt_before.body).expect("receipt");
    let (old, new) = storefort_web::ledger::record_rotation(&h.app.store, &[3; 32], &[4; 32], h.app.clock.now_ms())
        .await
        .expect("rotate");
    assert_eq!(old, old_key);
    // The store restarted with the new key: more orders, a new checkpoint.
    let signer =
        storefort_web::ledger::open_signer(&h.app.store, &[4; 32], None, Some(h.app.dir.path().join("witness")), 0)
            .await
            .expect("signer");
    assert_eq!(signer.verifier(), new);
    let placed = h.app.post("/api/v1/checkout", checkout_body(&h.app.cart_with(&h.variant, 1).await)).await;
    assert_eq!(placed.status, 201);
    let cp = signer.checkpoint_now(&h.app.store, h.app.clock.now_ms()).await.expect("checkpoint").expect("one");
    assert!(new.verify_checkpoint(&cp.note).is_ok() && old.verify_checkpoint(&cp.note).is_err());
    storefort_web::ledger::fast_check(&signer, &h.app.store, &[7; 32]).await.expect("fast check passes after rotation");
    let report = audit(&h.app).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(receipt_before.verify(&old).is_ok(), "a receipt signed before the rotation still verifies");
    // A rotation not signed by the previous key is caught.
    sql(
        &h.app,
        "UPDATE ledger_entries SET entry = REPLACE(entry, 'transition', 'transitio') WHERE kind = 'key_rotated'".into(),
    )
    .await;
    let report = audit(&h.app).await;
    assert!(report.problems.iter().any(|p| p.kind.as_deref() == Some("key_rotated")), "{:?}", report.problems);
}

#[tokio::test]
async fn deleted_orders_edited_addresses_and_forged_accounts_are_named() {
    let h = history().await;
    let placed = entry_index(&h.app, "order_placed", &h.order).await;
    sql(
        &h.app,
        // Addresses are encrypted: an attacker can only move ciphertext
        // around, here another field's into the address.
        format!("UPDATE orders SET shipping_address = email WHERE id = '{}'", h.order),
    )
    .await;
    let (index, kind, what) = first(&audit(&h.app).await);
    assert_eq!((index, kind.as_deref()), (Some(placed), Some("order_placed")), "{what}");
    assert!(what.contains("personal data"), "{what}");

    let h = history().await;
    // An attacker removes what points at the order too.
    sql(&h.app, format!("DELETE FROM order_risk WHERE order_id = '{}'", h.order)).await;
    sql(&h.app, format!("DELETE FROM payments WHERE order_id = '{}'", h.order)).await;
    sql(&h.app, format!("DELETE FROM order_lines WHERE order_id = '{}'", h.order)).await;
    sql(&h.app, format!("DELETE FROM orders WHERE id = '{}'", h.order)).await;
    let report = audit(&h.app).await;
    assert!(report.problems.iter().any(|p| p.what.contains("deleted from the database")), "{:?}", report.problems);

    // A customer raised to owner in the database, a password hash swapped
    // for one the attacker knows, an account inserted directly: all named.
    let h = history().await;
    let customer = crate::accounts::provision(&h.app.store, &h.app.state, "c@example.com", "customer").await;
    sql(&h.app, format!("UPDATE accounts SET role = 'owner' WHERE id = '{}'", customer.id)).await;
    let (_, kind, what) = first(&audit(&h.app).await);
    assert_eq!(kind.as_deref(), Some("account_created"), "{what}");
    assert!(what.contains("role owner in the database but customer"), "{what}");
    let h = history().await;
    sql(&h.app, format!("UPDATE accounts SET password_hash = 'x' WHERE id = '{}'", h.app.owner.id)).await;
    let (_, _, what) = first(&audit(&h.app).await);
    assert!(what.contains("password hash is not the one the ledger recorded"), "{what}");
    let h = history().await;
    sql(
        &h.app,
        "INSERT INTO accounts (id, email_index, email, role, status, password_hash, created_at, updated_at, ledger_hash) \
         VALUES ('evil', 'i', 'e@example.com', 'owner', 'active', 'x', 0, 0, '')"
            .to_owned(),
    )
    .await;
    let (_, _, what) = first(&audit(&h.app).await);
    assert!(what.contains("account evil has no ledger entry"), "{what}");

    // A separator character planted in an entry is named, not fatal.
    let h = history().await;
    let i = entry_index(&h.app, "order_placed", &h.order).await;
    sql(&h.app, format!("UPDATE ledger_entries SET kind = kind || '{}' WHERE idx = {i}", '\u{1e}')).await;
    let (index, _, what) = first(&audit(&h.app).await);
    assert_eq!(index, Some(i), "{what}");
}

#[tokio::test]
async fn the_store_refuses_to_sign_over_planted_tree_nodes() {
    let h = history().await;
    let size = h.app.store.ledger_size().await.expect("size");
    for j in (size / 2)..(size / 2 + 8) {
        sql(&h.app, format!("INSERT INTO ledger_nodes (level, idx, hash) VALUES (1, {j}, '{}')", "cd".repeat(32)))
            .await;
    }
    let mut owner = h.app.owner_browser().await;
    for amount in [700, 710, 720, 730] {
        let path = format!("/api/v1/admin/variants/{}/price", h.variant);
        let r = owner.send(Method::PUT, &path, Some(json!({"amount": amount, "currency": "EUR"}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let signed = h.app.state.ledger().checkpoint_now(&h.app.store, h.app.clock.now_ms()).await;
    assert!(signed.is_err(), "signed a checkpoint over planted nodes: {signed:?}");
}

#[tokio::test]
async fn an_http_witness_keeps_checkpoints_and_refuses_a_rewritten_history() {
    let h = history().await;
    let witness_dir = tempfile::tempdir().expect("dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let app = storefort_web::witness::router(storefort_web::witness::Witness::new(witness_dir.path().to_owned()));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let http = storefort_web::ledger::HttpWitness::new(&url).expect("witness");
    let signer = storefort_web::ledger::open_signer_with(&h.app.store, &[3; 32], None, None, Some(http), 0)
        .await
        .expect("signer");
    let held = |dir: &std::path::Path| witness_read(dir).expect("read").1.last().map(|w| w.size);

    // A new entry, a checkpoint: the witness keeps it; then another, with a
    // consistency proof from the one it holds.
    let placed = h.app.post("/api/v1/checkout", checkout_body(&h.app.cart_with(&h.variant, 1).await)).await;
    assert_eq!(placed.status, 201);
    signer.checkpoint_now(&h.app.store, 1).await.expect("checkpoint");
    let first = held(witness_dir.path()).expect("kept");
    let placed = h.app.post("/api/v1/checkout", checkout_body(&h.app.cart_with(&h.variant, 1).await)).await;
    assert_eq!(placed.status, 201);
    signer.checkpoint_now(&h.app.store, 2).await.expect("checkpoint");
    let second = held(witness_dir.path()).expect("kept");
    assert!(second > first, "{first} then {second}");

    // Someone with the database and the keys rewrites an old entry (with a
    // valid MAC), drops the checkpoints and nodes, and lets the store sign
    // again: the witness refuses, keeping the honest history.
    let i = entry_index(&h.app, "order_placed", &h.order).await;
    let entries = h.app.store.ledger_entries(i, i + 1).await.expect("entry");
    let text = entries[0].entry.replace("\"quantity\":2", "\"quantity\":1");
    let leaf = storefort_ledger::leaf_hash(text.as_bytes());
    let mac = storefort_ledger::hash::mac_hex(&[7; 32], &leaf);
    sql(
        &h.app,
        format!(
            "UPDATE ledger_entries SET entry = '{}', leaf_hash = '{}', mac = '{mac}' WHERE idx = {i}",
            text.replace('\'', "''"),
            hex::encode(leaf)
        ),
    )
    .await;
    sql(&h.app, "DELETE FROM ledger_checkpoints".into()).await;
    sql(&h.app, "DELETE FROM ledger_nodes".into()).await;
    let placed = h.app.post("/api/v1/checkout", checkout_body(&h.app.cart_with(&h.variant, 1).await)).await;
    assert_eq!(placed.status, 201);
    signer.checkpoint_now(&h.app.store, 3).await.expect("the store signs; the witness is what refuses");
    assert_eq!(held(witness_dir.path()), Some(second), "the witness kept the honest checkpoint");

    // Junk and strangers are refused too.
    let client = reqwest::Client::new();
    let junk = client.post(&url).body("not json").send().await.expect("send");
    assert_eq!(junk.status(), 400);
    let stranger = LedgerKey::from_seed("test.storefort/ledger", &[8; 32]).expect("key");
    let note = stranger.sign(&Checkpoint { origin: "test.storefort/ledger".into(), size: 1_000, root: [0; 32] });
    let r = client
        .post(&url)
        .header(storefort_web::ledger::WITNESS_KEY_HEADER, stranger.verifier().to_string())
        .body(json!({"checkpoint": note, "consistency_proof": []}).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 409);
}
