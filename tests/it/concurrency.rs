//! Black Friday: many checkouts at once never oversell, and one idempotency
//! key never makes two orders.

use crate::support::{TestApp, checkout_body, read, spawn};
use futures::future::join_all;

/// Fires one checkout per cart, all at once; returns the statuses and codes.
async fn checkout_all(app: &TestApp, carts: &[String]) -> Vec<(u16, String)> {
    let sends = carts.iter().map(|cart| async move {
        let r =
            read(app.client.post(app.url("/api/v1/checkout")).json(&checkout_body(cart)).send().await.expect("send"))
                .await;
        (r.status, r.code().to_owned())
    });
    join_all(sends).await
}

async fn carts_for(app: &TestApp, variant: &str, n: usize) -> Vec<String> {
    let mut carts = Vec::with_capacity(n);
    for _ in 0..n {
        carts.push(app.cart_with(variant, 1).await);
    }
    carts
}

async fn oversell_check(stock: i64, buyers: usize) {
    let app = spawn().await;
    let v = app.product("Limited edition", 9900, stock).await;
    let carts = carts_for(&app, &v, buyers).await;
    let flushes_before = app.store.wal_flushes();
    let results = checkout_all(&app, &carts).await;
    let placed = results.iter().filter(|(s, _)| *s == 201).count();
    let refused = results.iter().filter(|(s, c)| *s == 409 && c == "out_of_stock").count();
    assert_eq!(placed as i64, stock, "{results:?}");
    assert_eq!(placed + refused, buyers, "every other answer is a clean out_of_stock: {results:?}");
    assert_eq!(app.store.stock_counts(&v).await.expect("counts"), (0, stock, 0));
    assert_eq!(app.store.order_count().await.expect("count"), stock);
    if app.store.backend() == storefort_store::Backend::Sqlite {
        // Every placed order waited for a disk flush; refused ones wrote nothing.
        let flushes = app.store.wal_flushes() - flushes_before;
        assert!((1..=stock as u64).contains(&flushes), "{flushes} flushes for {stock} orders");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stock_one_and_64_concurrent_checkouts_make_exactly_one_order() {
    oversell_check(1, 64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stock_ten_and_200_concurrent_checkouts_make_exactly_ten_orders() {
    oversell_check(10, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_checkout_sent_ten_times_at_once_with_one_key_makes_one_order() {
    let app = spawn().await;
    let v = app.product("Gift box", 2590, 100).await;
    let cart = app.cart_with(&v, 2).await;
    let body = checkout_body(&cart);
    let sends = (0..10).map(|_| {
        let body = body.clone();
        let app = &app;
        async move {
            read(
                app.client
                    .post(app.url("/api/v1/checkout"))
                    .header("Idempotency-Key", "black-friday-1")
                    .json(&body)
                    .send()
                    .await
                    .expect("send"),
            )
            .await
        }
    });
    let replies = join_all(sends).await;
    let ids: std::collections::HashSet<_> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201, "{}", r.body);
            r.body["order"]["id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(app.store.order_count().await.expect("count"), 1);
    assert_eq!(app.store.stock_counts(&v).await.expect("counts"), (98, 2, 0));
}

/// Checkouts, admin stock and price changes and order cancellations on the
/// same variant at once: no deadlock, no 5xx, and the ledger still matches
/// every row afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkouts_racing_admin_changes_never_deadlock_and_the_ledger_still_verifies() {
    let app = spawn().await;
    let v = app.product("Hot item", 1000, 10_000).await;
    let mut placed = Vec::new();
    for _ in 0..10 {
        let r = app.post("/api/v1/checkout", checkout_body(&app.cart_with(&v, 1).await)).await;
        placed.push(r.body["order"]["id"].as_str().expect("id").to_owned());
    }
    let carts = carts_for(&app, &v, 32).await;
    let checkouts = async { checkout_all(&app, &carts).await };
    let admin = async {
        let mut statuses = Vec::new();
        for (i, order) in placed.iter().enumerate() {
            let stock = app
                .admin(
                    reqwest::Method::PUT,
                    &format!("/api/v1/admin/variants/{v}/stock"),
                    Some(serde_json::json!({"available": 5_000 + i})),
                )
                .await;
            let price = app
                .admin(
                    reqwest::Method::PUT,
                    &format!("/api/v1/admin/variants/{v}/price"),
                    Some(serde_json::json!({"amount": 1000 + i, "currency": "EUR"})),
                )
                .await;
            let status = app
                .admin(
                    reqwest::Method::POST,
                    &format!("/api/v1/admin/orders/{order}/status"),
                    Some(serde_json::json!({"status": "cancelled"})),
                )
                .await;
            statuses.extend([stock.status, price.status, status.status]);
        }
        statuses
    };
    let (results, statuses) = tokio::join!(checkouts, admin);
    assert!(results.iter().all(|(s, _)| *s == 201), "{results:?}");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let (key, witnessed) = storefort_web::ledger::witness_read(&app.dir.path().join("witness")).expect("witness");
    let input = storefort_store::audit::AuditInput {
        mac_key: &[7; 32],
        witness_key: key.and_then(|k| storefort_ledger::VerifierKey::parse(&k).ok()),
        witness: witnessed
            .into_iter()
            .map(|w| storefort_store::audit::WitnessCheckpoint { size: w.size, note: w.note })
            .collect(),
    };
    let report = app.store.audit(&input, &|_, _| {}).await.expect("audit");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
