//! Personal data at rest: encrypted under per-subject data keys that live in
//! a separate key store, so neither the store's database file nor a dump of
//! it holds any plaintext.

use crate::accounts::PASSWORD;
use crate::support::{checkout_body, spawn};
use serde_json::json;

/// Every occurrence of `needle` in `hay`.
fn occurrences(hay: &[u8], needle: &str) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle.as_bytes()).count()
}

#[tokio::test]
async fn no_personal_data_in_plaintext_in_the_database_its_wal_or_a_dump() {
    let app = spawn().await;
    let v = app.product("Kettle", 3900, 50).await;
    let mut needles = Vec::new();
    for i in 0..5 {
        // Distinctive strings that cannot occur by chance.
        let email = format!("zyxwquv{i}@plaintext-probe.example");
        let r = app.post("/api/v1/auth/sign-up", json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(r.status, 202);
        let cart = app.cart_with(&v, 1).await;
        let mut body = checkout_body(&cart);
        let guest = format!("qqguest{i}@plaintext-probe.example");
        body["email"] = json!(guest);
        body["shipping_address"]["name"] = json!(format!("Probename Xylophonist{i}"));
        body["shipping_address"]["line1"] = json!(format!("Probestrasse {i}7 Quuxhof"));
        let r = app.post("/api/v1/checkout", body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        // The customer still reads their own order in plaintext.
        assert_eq!(r.body["order"]["email"], guest.as_str());
        assert_eq!(r.body["order"]["shipping_address"]["name"], format!("Probename Xylophonist{i}"));
        needles.extend([email, guest, format!("Xylophonist{i}"), "Quuxhof".to_string()]);
    }
    needles.push("plaintext-probe".into());

    let mut haystacks: Vec<(String, Vec<u8>)> = Vec::new();
    for name in ["test.db", "test.db-wal", "keys.db", "keys.db-wal"] {
        if let Ok(bytes) = std::fs::read(app.dir.path().join(name)) {
            haystacks.push((name.into(), bytes));
        }
    }
    if let Ok(base) = std::env::var("STOREFORT_TEST_POSTGRES_URL")
        && !base.is_empty()
    {
        haystacks.push(("pg_dump".into(), pg_dump(&base, &app.db_url)));
    }
    // The scan does see plaintext where there is some: the catalog's.
    let main = haystacks.iter().find(|(n, _)| n == "test.db" || n == "pg_dump").expect("database scanned");
    let catalog_hits: usize = haystacks.iter().map(|(_, b)| occurrences(b, "Kettle for tests")).sum();
    assert!(catalog_hits > 0, "the scan of {} finds no catalog text either", main.0);
    for (name, bytes) in &haystacks {
        for needle in &needles {
            assert_eq!(occurrences(bytes, needle), 0, "{needle} in plaintext in {name}");
        }
    }
}

/// `pg_dump` of the test's schema (named in its URL's search_path).
fn pg_dump(base: &str, db_url: &str) -> Vec<u8> {
    let schema = db_url.split("search_path%3D").nth(1).expect("schema in url");
    let base = base.split('?').next().unwrap_or(base);
    let out = std::process::Command::new("pg_dump")
        .args(["--dbname", base, "--schema", schema, "--data-only"])
        .output()
        .expect("pg_dump runs (install postgresql-client)");
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.len() > 1000, "the dump has data");
    out.stdout
}

#[tokio::test]
async fn a_copied_ciphertext_or_a_corrupted_one_never_shows_someone_elses_data() {
    let app = spawn().await;
    let v = app.product("Mug", 1200, 10).await;
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for email in ["first@example.com", "second@example.com"] {
        let cart = app.cart_with(&v, 1).await;
        let mut body = checkout_body(&cart);
        body["email"] = json!(email);
        let r = app.post("/api/v1/checkout", body).await;
        ids.push(r.body["order"]["id"].as_str().expect("id").to_owned());
        tokens.push(r.body["access_token"].as_str().expect("token").to_owned());
    }
    // Copy the second order's email ciphertext into the first order.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db_url).await.expect("connect");
    let statement =
        format!("UPDATE orders SET email = (SELECT email FROM orders WHERE id = '{}') WHERE id = '{}'", ids[1], ids[0]);
    sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&pool).await.expect("tamper");
    let r = crate::support::read(
        app.client
            .get(app.url(&format!("/api/v1/orders/{}", ids[0])))
            .bearer_auth(&tokens[0])
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 500, "refused, not shown: {}", r.body);
    assert!(!r.body.to_string().contains("second@example.com"));
    assert_eq!(r.code(), "internal_error");
    pool.close().await;
}

/// `pg_dump` of the test's schema, restored with `psql` into a new schema;
/// returns the URL of the restored copy.
fn pg_backup_and_restore(base: &str, db_url: &str) -> String {
    let schema = db_url.split("search_path%3D").nth(1).expect("schema in url");
    let plain = base.split('?').next().unwrap_or(base);
    let dump = std::process::Command::new("pg_dump")
        .args(["--dbname", plain, "--schema", schema, "--no-owner", "--no-privileges"])
        .output()
        .expect("pg_dump runs");
    assert!(dump.status.success(), "pg_dump: {}", String::from_utf8_lossy(&dump.stderr));
    let restored = format!("r_{}", uuid::Uuid::new_v4().simple());
    // Schema names are random, so renaming them in the dump text is exact.
    let script = String::from_utf8(dump.stdout).expect("utf-8 dump").replace(schema, &restored);
    let mut psql = std::process::Command::new("psql")
        .args(["--dbname", plain, "-v", "ON_ERROR_STOP=1", "-q"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("psql runs");
    use std::io::Write;
    psql.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("restore");
    assert!(psql.wait().expect("psql").success(), "psql restore failed");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{restored}")
}

/// A consistent copy of a SQLite database, as a backup would take.
async fn snapshot(db_url: &str, to: &std::path::Path) -> String {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db_url).await.expect("connect");
    let statement = format!("VACUUM INTO '{}'", to.display());
    sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&pool).await.expect("vacuum into");
    pool.close().await;
    format!("sqlite://{}?mode=rwc", to.display())
}

#[tokio::test]
async fn erasure_reaches_every_copy_and_leaves_orders_and_the_ledger_whole() {
    let app = spawn().await;
    let v = app.product("Teapot", 4500, 10).await;
    let customer = crate::accounts::provision(&app.store, &app.state, "erin@example.com", "customer").await;
    let mut erin = crate::accounts::Browser::new(&app);
    assert_eq!(erin.sign_in(&customer).await.body["status"], "signed_in");
    // A signed-in checkout belongs to the account.
    let cart = app.cart_with(&v, 2).await;
    let mut body = checkout_body(&cart);
    body["email"] = json!("erin@example.com");
    body["shipping_address"]["name"] = json!("Erin Erasable");
    let placed = erin.post("/api/v1/checkout", body).await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    let order = placed.body["order"]["id"].as_str().expect("id").to_owned();
    let token = placed.body["access_token"].as_str().expect("token").to_owned();
    let total = placed.body["order"]["total"].clone();
    let export = erin.get("/api/v1/account/export").await;
    assert_eq!(export.body["profile"]["email"], "erin@example.com", "{}", export.body);
    assert_eq!(export.body["orders"][0]["shipping_address"]["name"], "Erin Erasable");
    let page = erin.send(reqwest::Method::GET, "/api/v1/account/export?format=html", None).await;
    assert_eq!(page.status, 200);

    // A backup taken before the erasure: a file copy on SQLite, a pg_dump
    // restored into a new schema on PostgreSQL.
    let backup = if app.db_url.starts_with("sqlite:") {
        Some(snapshot(&app.db_url, &app.dir.path().join("backup.db")).await)
    } else {
        std::env::var("STOREFORT_TEST_POSTGRES_URL").ok().map(|base| pg_backup_and_restore(&base, &app.db_url))
    };

    let r = erin.post("/api/v1/account/erase", json!({"password": "wrong"})).await;
    assert_eq!((r.status, r.code()), (401, "invalid_credentials"));
    let r = erin.post("/api/v1/account/erase", json!({"password": customer.password})).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("erased")), "{}", r.body);
    // Signed out everywhere, and can never sign in again.
    assert_eq!(erin.get("/api/v1/auth/session").await.status, 401);
    let r = app.post("/api/v1/auth/sign-in", json!({"email": "erin@example.com", "password": customer.password})).await;
    assert_eq!((r.status, r.code()), (401, "invalid_credentials"));

    // Their export holds nothing personal; their order keeps its totals.
    let mut owner = app.owner_browser().await;
    let export = owner.get(&format!("/api/v1/admin/customers/{}/export", customer.id)).await;
    assert_eq!(export.status, 200, "{}", export.body);
    assert_eq!(export.body["profile"]["email"], serde_json::Value::Null);
    assert_eq!(export.body["profile"]["status"], "erased");
    let text = export.body.to_string();
    assert!(!text.contains("erin@example.com") && !text.contains("Erasable"), "{text}");
    assert_eq!(export.body["orders"][0]["total"], total);
    assert_eq!(export.body["orders"][0]["email"], serde_json::Value::Null);
    // A replayed erasure is refused.
    let r = owner.post(&format!("/api/v1/admin/customers/{}/erase", customer.id), json!({})).await;
    assert_eq!((r.status, r.code()), (409, "already_erased"));
    // The ledger still verifies, the erasure itself recorded in it.
    let report = crate::ledger::audit(&app).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let kinds: Vec<String> = app
        .store
        .ledger_entries(0, app.store.ledger_size().await.expect("size"))
        .await
        .expect("entries")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"customer_erased".to_owned()));

    // The old backup, restored and served with today's keys, yields nothing.
    if let Some(backup) = backup {
        let restored = crate::support::spawn_over(&app, backup).await;
        let r = crate::support::read(
            restored
                .client
                .get(restored.url(&format!("/api/v1/orders/{order}")))
                .bearer_auth(&token)
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            (r.body["email"].clone(), r.body["shipping_address"].clone()),
            (serde_json::Value::Null, serde_json::Value::Null)
        );
        assert_eq!(r.body["total"], total);
        let row = restored.store.order(&order).await.expect("order in the backup");
        assert!(!row.email.is_empty(), "the backup still holds the ciphertext");
        assert_eq!(restored.state.vault().reveal(&customer.id, "email", &row.email).await.expect("reveal"), None);
        let account = restored.store.account(&customer.id).await.expect("read").expect("account in the backup");
        assert_eq!(account.status, "active", "the backup predates the erasure");
        assert_eq!(restored.state.vault().reveal(&customer.id, "email", &account.email).await.expect("reveal"), None);
        // At start the store re-applies the erasure to the restored rows.
        let applied = storefort_web::routes::privacy::reconcile_erasures(&restored.state).await.expect("reconcile");
        assert_eq!(applied, 1);
        let account = restored.store.account(&customer.id).await.expect("read").expect("account");
        assert_eq!(account.status, "erased");
        let r = restored
            .post("/api/v1/auth/sign-in", json!({"email": "erin@example.com", "password": customer.password}))
            .await;
        assert_eq!(r.code(), "invalid_credentials");
        assert!(crate::ledger::audit(&restored).await.problems.is_empty());
    }
}

#[tokio::test]
async fn a_legal_hold_delays_erasure_until_lifted_and_guest_orders_are_erased_by_staff() {
    let app = spawn().await;
    let customer = crate::accounts::provision(&app.store, &app.state, "hal@example.com", "customer").await;
    let mut owner = app.owner_browser().await;
    let hold = format!("/api/v1/admin/customers/{}/legal-hold", customer.id);
    let r = owner.send(reqwest::Method::PUT, &hold, Some(json!({"reason": "tax audit 2026"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = owner.post(&format!("/api/v1/admin/customers/{}/erase", customer.id), json!({})).await;
    assert_eq!((r.status, r.body["status"].as_str()), (202, Some("delayed_by_legal_hold")), "{}", r.body);
    let account = app.store.account(&customer.id).await.expect("read").expect("account");
    assert_eq!(account.status, "active");
    assert!(app.state.vault().reveal(&customer.id, "email", &account.email).await.expect("reveal").is_some());
    let r = owner.send(reqwest::Method::DELETE, &hold, None).await;
    assert_eq!(r.body["status"], "lifted_and_erased", "{}", r.body);
    assert_eq!(app.store.account(&customer.id).await.expect("read").expect("account").status, "erased");

    // A guest order's data, erased by staff; its totals stay.
    let v = app.product("Spoon", 300, 10).await;
    let cart = app.cart_with(&v, 1).await;
    let placed = app.post("/api/v1/checkout", checkout_body(&cart)).await;
    let order = placed.body["order"]["id"].as_str().expect("id").to_owned();
    let token = placed.body["access_token"].as_str().expect("token").to_owned();
    let r = owner.post(&format!("/api/v1/admin/orders/{order}/erase-personal-data"), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = owner.post(&format!("/api/v1/admin/orders/{order}/erase-personal-data"), json!({})).await;
    assert_eq!((r.status, r.code()), (409, "already_erased"));
    let r = crate::support::read(
        app.client.get(app.url(&format!("/api/v1/orders/{order}"))).bearer_auth(&token).send().await.expect("send"),
    )
    .await;
    assert_eq!(
        (r.body["email"].clone(), r.body["shipping_address"].clone()),
        (serde_json::Value::Null, serde_json::Value::Null)
    );
    assert_eq!(r.body["total"], placed.body["order"]["total"]);
    assert!(crate::ledger::audit(&app).await.problems.is_empty());
    // A customer cannot export or erase someone else.
    let other = crate::accounts::provision(&app.store, &app.state, "oz@example.com", "customer").await;
    let mut oz = crate::accounts::Browser::new(&app);
    oz.sign_in(&other).await;
    let r = oz.get(&format!("/api/v1/admin/customers/{}/export", customer.id)).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = oz.post(&format!("/api/v1/admin/customers/{}/erase", customer.id), json!({})).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_master_key_rotates_while_checkouts_run_and_the_old_key_is_then_useless() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let app = Arc::new(spawn().await);
    let v = app.product("Grinder", 2000, 100_000).await;
    let old_id = app.state.vault().master_id();
    let stop = Arc::new(AtomicBool::new(false));
    let placed = Arc::new(Mutex::new(Vec::new()));
    let shoppers: Vec<_> = (0..4)
        .map(|s| {
            let (app, v, stop, placed) = (app.clone(), v.clone(), stop.clone(), placed.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) && n < 200 {
                    let cart = app.cart_with(&v, 1).await;
                    let mut body = checkout_body(&cart);
                    let email = format!("rot{s}-{n}@example.com");
                    body["email"] = json!(email);
                    let r = app.post("/api/v1/checkout", body).await;
                    assert_eq!(r.status, 201, "{}", r.body);
                    let id = r.body["order"]["id"].as_str().expect("id").to_owned();
                    let token = r.body["access_token"].as_str().expect("token").to_owned();
                    placed.lock().expect("lock").push((id, token, email));
                    n += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The operator's `storefort keys rotate`: another process, its own vault.
    let source = storefort_vault::KeySource::File(app.dir.path().join("master.key"));
    let operator = crate::support::test_vault(app.dir.path()).await;
    let rotation = storefort_web::vault::rotate_file_key(&operator, &source, |_, _| {}).await.expect("rotate");
    assert_eq!(rotation.old_id, old_id);
    assert_ne!(rotation.new_id, old_id);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    for s in shoppers {
        s.await.expect("shopper");
    }
    let placed = placed.lock().expect("lock").clone();
    assert!(placed.len() > 8, "checkouts ran during the rotation: {}", placed.len());
    // Everything decrypts through the serving store...
    for (id, token, email) in &placed {
        let r = crate::support::read(
            app.client.get(app.url(&format!("/api/v1/orders/{id}"))).bearer_auth(token).send().await.expect("send"),
        )
        .await;
        assert_eq!(r.body["email"], email.as_str(), "{}", r.body);
    }
    // ...every key is wrapped by the new master key, the old key file is gone,
    // and a store holding only the new key reads everything.
    assert!(!app.dir.path().join("master.key.old").exists());
    let keys = operator.key_store().key_counts().await.expect("counts");
    assert_eq!(keys.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), vec![rotation.new_id.as_str()], "{keys:?}");
    let fresh = crate::support::test_vault(app.dir.path()).await;
    assert_eq!(fresh.master_id(), rotation.new_id);
    for (id, _, email) in &placed {
        let order = app.store.order(id).await.expect("order");
        let subject = storefort_web::vault::data_subject(&order);
        assert_eq!(
            fresh.reveal(&subject, "email", &order.email).await.expect("reveal").as_deref(),
            Some(email.as_str())
        );
    }
}

#[tokio::test]
async fn the_benchmarks_plaintext_baseline_really_checks_out() {
    let app = crate::support::spawn_plaintext().await;
    let v = app.product("Cup", 900, 5).await;
    let cart = app.cart_with(&v, 1).await;
    let r = app.post("/api/v1/checkout", checkout_body(&cart)).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn every_table_is_in_the_record_of_processing_and_the_policy_says_what_is_kept() {
    let app = spawn().await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db_url).await.expect("connect");
    let sql = if app.db_url.starts_with("sqlite:") {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    } else {
        "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables WHERE table_schema = current_schema()"
    };
    let tables: Vec<String> = sqlx::query(sql)
        .fetch_all(&pool)
        .await
        .expect("tables")
        .iter()
        .map(|r| sqlx::Row::try_get::<String, _>(r, "name").expect("name"))
        .collect();
    pool.close().await;
    use storefort_store::processing::{NOT_STORE_DATA, SCHEMA};
    for t in &tables {
        assert!(
            SCHEMA.iter().any(|n| n.table == t) || NOT_STORE_DATA.contains(&t.as_str()),
            "table {t} is not in the record of processing (crates/store/src/processing.rs)"
        );
    }
    for n in SCHEMA {
        assert!(tables.iter().any(|t| t == n.table), "the record names {}, which does not exist", n.table);
        assert!(!n.personal || !n.legal_basis.is_empty(), "{} holds personal data without a legal basis", n.table);
    }
    let record = app.get("/privacy/processing.json").await;
    assert_eq!(record.status, 200);
    let orders = record.body["activities"]
        .as_array()
        .expect("activities")
        .iter()
        .find(|a| a["table"] == "orders")
        .expect("orders")
        .clone();
    assert_eq!(orders["retention"], "365 days ([privacy] guest_data_days)");
    assert_eq!(orders["encrypted_at_rest"], true);
    let page = app.client.get(app.url("/privacy")).send().await.expect("send");
    assert!(page.headers()["content-type"].to_str().expect("ascii").starts_with("text/html"));
    let html = page.text().await.expect("html");
    assert!(html.contains("Storefort Demo Store") && html.contains("strictly necessary"), "{html}");
}

#[tokio::test]
async fn retention_removes_what_is_due_and_records_only_counts() {
    let app = spawn().await;
    let v = app.product("Scale", 3000, 10).await;
    let abandoned = app.cart_with(&v, 1).await;
    let cart = app.cart_with(&v, 1).await;
    let placed = app.post("/api/v1/checkout", checkout_body(&cart)).await;
    let order = placed.body["order"]["id"].as_str().expect("id").to_owned();
    let token = placed.body["access_token"].as_str().expect("token").to_owned();
    for status in ["paid", "fulfilled"] {
        let r = app
            .admin(
                reqwest::Method::POST,
                &format!("/api/v1/admin/orders/{order}/status"),
                Some(json!({"status": status})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // (The test harness made its owner at time 0: those events are old.)
    storefort_web::retention::apply(&app.state).await.expect("retention");
    // Nothing is due now: no entry, nothing removed.
    let before = app.store.ledger_size().await.expect("size");
    assert!(!storefort_web::retention::apply(&app.state).await.expect("retention").any());
    assert_eq!(app.store.ledger_size().await.expect("size"), before);
    assert_eq!(app.get(&format!("/api/v1/carts/{abandoned}")).await.status, 200);

    app.clock.advance_ms(366 * 86_400_000);
    let removed = storefort_web::retention::apply(&app.state).await.expect("retention");
    assert_eq!((removed.carts, removed.guest_orders), (1, 1), "{removed:?}");
    assert!(removed.security_events > 0, "the year-old checkout events go");
    assert_eq!(app.get(&format!("/api/v1/carts/{abandoned}")).await.status, 404);
    let r = read_order(&app, &order, &token).await;
    assert_eq!(
        (r["email"].clone(), r["total"].clone()),
        (serde_json::Value::Null, placed.body["order"]["total"].clone())
    );
    let entries = app.store.ledger_entries(0, app.store.ledger_size().await.expect("size")).await.expect("entries");
    let record = entries.iter().rev().find(|e| e.kind == "retention_applied").expect("recorded");
    assert!(record.entry.contains("\"carts\":1") && !record.entry.contains('@'), "{}", record.entry);
    assert!(crate::ledger::audit(&app).await.problems.is_empty());
}

async fn read_order(app: &crate::support::TestApp, order: &str, token: &str) -> serde_json::Value {
    let r = app.client.get(app.url(&format!("/api/v1/orders/{order}"))).bearer_auth(token).send().await.expect("send");
    crate::support::read(r).await.body
}

#[tokio::test]
async fn the_key_store_runs_on_either_backend() {
    use storefort_store::{KeyLookup, KeyStore, StoredKey};
    let dir = tempfile::tempdir().expect("dir");
    // Its own database: a fresh schema on PostgreSQL when configured.
    let keys = KeyStore::open(&crate::support::fresh_database_url(&dir).await).await.expect("open");
    assert_eq!(keys.claim_master_key_id("m1").await.expect("claim"), "m1");
    assert_eq!(keys.claim_master_key_id("m2").await.expect("claim"), "m1", "the first master key is kept");
    let k = |id: &str, w: &str| StoredKey { key_id: id.into(), wrapped: w.into() };
    keys.insert("a", &k("m1", "wa"), 1).await.expect("insert");
    keys.insert_many(&[("b".into(), k("m1", "wb")), ("c".into(), k("m1", "wc"))], 2).await.expect("batch");
    assert_eq!(keys.get("b").await.expect("get"), KeyLookup::Found(k("m1", "wb")));
    assert!(keys.erase("b", 3).await.expect("erase"));
    assert!(!keys.erase("b", 4).await.expect("erase again"), "already gone");
    assert_eq!(keys.get("b").await.expect("get"), KeyLookup::Erased);
    assert_eq!(keys.get("zzz").await.expect("get"), KeyLookup::Missing);
    assert!(keys.insert("b", &k("m1", "again"), 5).await.is_err(), "an erased subject gets no new key");
    assert_eq!(keys.tombstones().await.expect("tombstones"), vec!["b".to_owned()]);
    let todo = keys.keys_not_wrapped_by("m2", 10).await.expect("todo");
    assert_eq!(todo.len(), 2);
    assert!(keys.rewrap("a", &k("m1", "wa"), &k("m2", "wa2")).await.expect("rewrap"));
    assert!(!keys.rewrap("a", &k("m1", "wa"), &k("m2", "wa3")).await.expect("stale rewrap"), "conditional");
    keys.set_meta("rotating_to", Some("m2")).await.expect("meta");
    assert_eq!(keys.meta("rotating_to").await.expect("meta").as_deref(), Some("m2"));
    keys.set_meta("rotating_to", None).await.expect("meta");
    assert_eq!(keys.meta("rotating_to").await.expect("meta"), None);
    assert_eq!(keys.key_counts().await.expect("counts"), vec![("m1".to_owned(), 1), ("m2".to_owned(), 1)]);
    keys.close().await;
}
