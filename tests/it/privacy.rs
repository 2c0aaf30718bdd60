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
