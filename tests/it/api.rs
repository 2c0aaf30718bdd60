//! The JSON API end to end: browse, cart, checkout, orders, admin.

use crate::support::{checkout_body, spawn};
use reqwest::Method;
use serde_json::json;
use storefort_web::Clock;

#[tokio::test]
async fn browse_search_and_paginate_the_demo_catalog() {
    let app = spawn().await;
    let added = storefort_web::demo::seed_if_empty(&app.store, "EUR", app.clock.now_ms()).await.expect("seed");
    assert!(added >= 20);
    let r = app.get("/api/v1/products?limit=10").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(10));
    let first = &r.body["items"][0];
    assert!(first["id"].is_string() && first["title"].is_string());
    let v = &first["variants"][0];
    assert!(v["id"].is_string() && v["sku"].is_string() && v["available"].is_i64());
    assert_eq!(v["price"]["currency"], "EUR");
    assert!(v["price"]["amount"].is_i64());

    // Walk every page: ids are unique and the count matches.
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/products?limit=7&cursor={c}"),
            None => "/api/v1/products?limit=7".into(),
        };
        let r = app.get(&path).await;
        for p in r.body["items"].as_array().expect("items") {
            assert!(seen.insert(p["id"].as_str().expect("id").to_owned()));
        }
        match r.body["next"].as_str() {
            Some(n) => cursor = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), added);

    let r = app.get("/api/v1/products?q=ESPRESSO").await;
    let titles: Vec<_> =
        r.body["items"].as_array().expect("items").iter().map(|p| p["title"].as_str().unwrap_or("")).collect();
    assert!(titles.contains(&"House Espresso Blend"), "{titles:?}");
    // LIKE wildcards are literal text.
    let r = app.get("/api/v1/products?q=%25").await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(0));
    let r = app.get("/api/v1/products?collection=apparel").await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(3));
    let id = first["id"].as_str().expect("id");
    let r = app.get(&format!("/api/v1/products/{id}")).await;
    assert_eq!((r.status, r.body["id"].as_str()), (200, Some(id)));
    let r = app.get("/api/v1/collections").await;
    assert!(r.body["items"].as_array().is_some_and(|c| c.len() >= 5));
}

#[tokio::test]
async fn checkout_snapshots_the_order_and_the_token_guards_it() {
    let app = spawn().await;
    let a = app.product("Mug", 1250, 10).await;
    let b = app.product("Beans", 990, 10).await;
    let cart = app.cart_with(&a, 2).await;
    let r = app.post(&format!("/api/v1/carts/{cart}/lines"), json!({"variant_id": b, "quantity": 1})).await;
    assert_eq!(r.status, 200);
    let r = app.post(&format!("/api/v1/carts/{cart}/lines"), json!({"variant_id": b, "quantity": 2})).await;
    assert_eq!(r.body["lines"][1]["quantity"], 3, "adding again merges lines");
    assert_eq!(r.body["subtotal"]["amount"], 2 * 1250 + 3 * 990);

    let r = app.post("/api/v1/checkout", checkout_body(&cart)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let order = &r.body["order"];
    assert_eq!(order["status"], "pending_payment");
    assert!(order["number"].as_i64().is_some_and(|n| n > 1000));
    let subtotal = 2 * 1250 + 3 * 990;
    let shipping = 490; // DE flat rate in the demo settings
    let tax = ((subtotal + shipping) * 1900 + 5000) / 10_000;
    assert_eq!(order["total"]["amount"], subtotal + shipping + tax);
    assert_eq!(order["total"]["currency"], "EUR");
    assert_eq!(order["lines"].as_array().map(Vec::len), Some(2));
    let id = order["id"].as_str().expect("id").to_owned();
    let token = r.body["access_token"].as_str().expect("token").to_owned();

    // Stock is reserved, not yet sold.
    assert_eq!(app.store.stock_counts(&a).await.expect("counts"), (8, 2, 0));

    let ok = app.client.get(app.url(&format!("/api/v1/orders/{id}"))).bearer_auth(&token).send().await.expect("send");
    assert_eq!(ok.status(), 200);
    for bad in [None, Some("wrong"), Some(token.get(..42).unwrap_or(""))] {
        let mut req = app.client.get(app.url(&format!("/api/v1/orders/{id}")));
        if let Some(t) = bad {
            req = req.bearer_auth(t);
        }
        let r = crate::support::read(req.send().await.expect("send")).await;
        assert_eq!((r.status, r.code()), (401, "unauthorized"));
    }
    // A token for one order opens no other.
    let cart2 = app.cart_with(&a, 1).await;
    let other = app.post("/api/v1/checkout", checkout_body(&cart2)).await;
    let other_id = other.body["order"]["id"].as_str().expect("id");
    let r = crate::support::read(
        app.client.get(app.url(&format!("/api/v1/orders/{other_id}"))).bearer_auth(&token).send().await.expect("send"),
    )
    .await;
    assert_eq!(r.status, 401);
    // Four refusals from one client in a minute: one security event, naming
    // the client, so guessing tokens costs the store no write per guess.
    let events = app.admin(Method::GET, "/api/v1/admin/events?limit=100", None).await;
    let denied: Vec<_> =
        events.body["items"].as_array().expect("items").iter().filter(|e| e["kind"] == "order_access_denied").collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["detail"]["client_ip"], "127.0.0.1", "{denied:?}");

    // The same cart cannot be checked out twice.
    let r = app.post("/api/v1/checkout", checkout_body(&cart)).await;
    assert_eq!((r.status, r.code()), (409, "cart_checked_out"));
    let r = app.post(&format!("/api/v1/carts/{cart}/lines"), json!({"variant_id": a, "quantity": 1})).await;
    assert_eq!((r.status, r.code()), (409, "cart_checked_out"));
}

#[tokio::test]
async fn price_changes_never_touch_placed_orders_and_clients_cannot_send_prices() {
    let app = spawn().await;
    let v = app.product("Kettle", 5900, 5).await;
    let product = app.state.store().variant(&v).await.expect("variant").product_id;
    let shown = app.get(&format!("/api/v1/products/{product}")).await;
    assert_eq!(shown.body["variants"][0]["price"]["amount"], 5900);
    let cart = app.cart_with(&v, 1).await;
    let placed = app.post("/api/v1/checkout", checkout_body(&cart)).await;
    assert_eq!(placed.status, 201);
    let id = placed.body["order"]["id"].as_str().expect("id");

    // A change this big needs a person who just used a second factor.
    let path = format!("/api/v1/admin/variants/{v}/price");
    let r = app.admin(Method::PUT, &path, Some(json!({"amount": 9900, "currency": "EUR"}))).await;
    assert_eq!((r.status, r.code()), (403, "step_up_required"));
    let mut owner = app.owner_browser().await;
    let r = owner.send(Method::PUT, &path, Some(json!({"amount": 9900, "currency": "EUR"}))).await;
    assert_eq!((r.status, r.body["price"]["amount"].as_i64()), (200, Some(9900)));
    // The catalog shows the new price at once, despite its cache.
    let product = app.state.store().variant(&v).await.expect("variant").product_id;
    let shown = app.get(&format!("/api/v1/products/{product}")).await;
    assert_eq!(shown.body["variants"][0]["price"]["amount"], 9900);
    let after = app.admin(Method::GET, &format!("/api/v1/admin/orders/{id}"), None).await;
    assert_eq!(after.body["lines"], placed.body["order"]["lines"]);
    assert_eq!(after.body["total"], placed.body["order"]["total"]);
    assert_eq!(after.body["lines"][0]["unit_price"]["amount"], 5900);

    // A body with a price or total is refused, whatever its value.
    for (field, value) in
        [("total", json!({"amount": 1, "currency": "EUR"})), ("price", json!(1)), ("unit_price", json!(1))]
    {
        let cart = app.cart_with(&v, 1).await;
        let mut body = checkout_body(&cart);
        body[field] = value;
        let r = app.post("/api/v1/checkout", body).await;
        assert_eq!((r.status, r.code(), r.body["error"]["field"].as_str()), (422, "unknown_field", Some(field)));
    }
    let cart = app.cart();
    let cart = cart.await;
    let r = app.post(&format!("/api/v1/carts/{cart}/lines"), json!({"variant_id": v, "quantity": 1, "price": 1})).await;
    assert_eq!((r.status, r.code()), (422, "unknown_field"));
    // Admin price in another currency or negative.
    let r = app
        .admin(Method::PUT, &format!("/api/v1/admin/variants/{v}/price"), Some(json!({"amount": 1, "currency": "USD"})))
        .await;
    assert_eq!((r.status, r.code()), (422, "currency_mismatch"));
    let r = app
        .admin(
            Method::PUT,
            &format!("/api/v1/admin/variants/{v}/price"),
            Some(json!({"amount": -5, "currency": "EUR"})),
        )
        .await;
    assert_eq!(r.status, 422);
}

#[tokio::test]
async fn order_state_machine_moves_stock_and_refuses_illegal_transitions() {
    let app = spawn().await;
    let v = app.product("Grinder", 8900, 10).await;
    let place = |qty| {
        let app = &app;
        let v = v.clone();
        async move {
            let cart = app.cart_with(&v, qty).await;
            let r = app.post("/api/v1/checkout", checkout_body(&cart)).await;
            assert_eq!(r.status, 201);
            r.body["order"]["id"].as_str().expect("id").to_owned()
        }
    };
    let set = |id: String, status: &'static str| {
        let app = &app;
        async move {
            app.admin(Method::POST, &format!("/api/v1/admin/orders/{id}/status"), Some(json!({"status": status}))).await
        }
    };
    let paid = place(2).await;
    assert_eq!(set(paid.clone(), "paid").await.body["status"], "paid");
    assert_eq!(app.store.stock_counts(&v).await.expect("counts"), (8, 0, 2));
    let r = set(paid.clone(), "pending_payment").await;
    assert_eq!((r.status, r.code()), (409, "invalid_transition"));
    let r = set(paid.clone(), "cancelled").await;
    assert_eq!((r.status, r.code()), (409, "invalid_transition"));
    assert_eq!(set(paid.clone(), "fulfilled").await.status, 200);
    // A refund needs a person who used a second factor just now, never a token.
    let r = set(paid.clone(), "refunded").await;
    assert_eq!((r.status, r.code()), (403, "step_up_required"));
    let mut owner = app.owner_browser().await;
    let r = owner.post(&format!("/api/v1/admin/orders/{paid}/status"), json!({"status": "refunded"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = set(paid.clone(), "paid").await;
    assert_eq!((r.status, r.code()), (409, "invalid_transition"));
    let r = set(paid.clone(), "shipped").await;
    assert_eq!((r.status, r.code()), (422, "invalid_field"));

    let cancelled = place(3).await;
    assert_eq!(app.store.stock_counts(&v).await.expect("counts"), (5, 3, 2));
    assert_eq!(set(cancelled.clone(), "cancelled").await.status, 200);
    assert_eq!(app.store.stock_counts(&v).await.expect("counts"), (8, 0, 2));
    let r = set(cancelled, "paid").await;
    assert_eq!((r.status, r.code()), (409, "invalid_transition"));
}

#[tokio::test]
async fn unpaid_orders_expire_and_release_their_stock() {
    let app = spawn().await;
    let v = app.product("Scale", 4490, 4).await;
    let cart = app.cart_with(&v, 3).await;
    let r = app.post("/api/v1/checkout", checkout_body(&cart)).await;
    let id = r.body["order"]["id"].as_str().expect("id").to_owned();
    assert_eq!(app.store.stock_counts(&v).await.expect("counts"), (1, 3, 0));
    // Not yet due.
    app.clock.advance_ms(29 * 60 * 1000);
    assert_eq!(storefort_web::jobs::expire_orders_once(&app.state).await.expect("sweep"), 0);
    app.clock.advance_ms(60 * 1000 + 1);
    assert_eq!(storefort_web::jobs::expire_orders_once(&app.state).await.expect("sweep"), 1);
    assert_eq!(app.store.stock_counts(&v).await.expect("counts"), (4, 0, 0));
    let r = app.admin(Method::GET, &format!("/api/v1/admin/orders/{id}"), None).await;
    assert_eq!(r.body["status"], "cancelled");
    // Paying an expired order is refused.
    let r =
        app.admin(Method::POST, &format!("/api/v1/admin/orders/{id}/status"), Some(json!({"status": "paid"}))).await;
    assert_eq!((r.status, r.code()), (409, "invalid_transition"));
    let events = app.admin(Method::GET, "/api/v1/admin/events", None).await;
    let kinds: Vec<_> =
        events.body["items"].as_array().expect("items").iter().map(|e| e["kind"].as_str().unwrap_or("")).collect();
    assert!(kinds.contains(&"order_expired") && kinds.contains(&"order_placed"), "{kinds:?}");
}

#[tokio::test]
async fn idempotency_key_replays_the_same_order_and_refuses_a_different_body() {
    let app = spawn().await;
    let v = app.product("Filters", 590, 50).await;
    let cart = app.cart_with(&v, 1).await;
    let send = |body: serde_json::Value, key: &'static str| {
        let app = &app;
        async move {
            crate::support::read(
                app.client
                    .post(app.url("/api/v1/checkout"))
                    .header("Idempotency-Key", key)
                    .json(&body)
                    .send()
                    .await
                    .expect("send"),
            )
            .await
        }
    };
    let first = send(checkout_body(&cart), "key-1").await;
    assert_eq!(first.status, 201);
    let again = send(checkout_body(&cart), "key-1").await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body["order"]["id"], first.body["order"]["id"]);
    assert_eq!(again.body["access_token"], first.body["access_token"]);
    assert_eq!(again.headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    let mut changed = checkout_body(&cart);
    changed["email"] = json!("someone-else@example.com");
    let r = send(changed, "key-1").await;
    assert_eq!((r.status, r.code()), (422, "idempotency_key_reused"));
    assert_eq!(app.store.order_count().await.expect("count"), 1);
    let r = crate::support::read(
        app.client
            .post(app.url("/api/v1/checkout"))
            .header("Idempotency-Key", "")
            .json(&checkout_body(&cart))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_idempotency_key"));

    // After a day the key is forgotten: the same key is a new request.
    app.clock.advance_ms(storefort_web::jobs::IDEMPOTENCY_RETENTION_MS + 1);
    let removed =
        app.store.purge_idempotency_keys(app.clock.now_ms() - storefort_web::jobs::IDEMPOTENCY_RETENTION_MS).await;
    assert_eq!(removed.expect("purge"), 1);
    let mut changed = checkout_body(&cart);
    changed["email"] = json!("someone-else@example.com");
    let r = send(changed, "key-1").await;
    assert_eq!((r.status, r.code()), (409, "cart_checked_out"));
}

#[tokio::test]
async fn admin_routes_need_a_credential_and_bad_tokens_are_recorded() {
    let app = spawn().await;
    let v = app.product("Apron", 5490, 3).await;
    let path = format!("/api/v1/admin/variants/{v}/stock");
    for (token, code) in [
        (None, "unauthorized"),
        (Some("not-a-token"), "unauthorized"),
        (Some("sfa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "invalid_token"),
    ] {
        let mut req = app.client.put(app.url(&path)).json(&json!({"available": 100}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = crate::support::read(req.send().await.expect("send")).await;
        assert_eq!((r.status, r.code()), (401, code));
    }
    assert_eq!(app.store.stock_counts(&v).await.expect("counts"), (3, 0, 0));
    let r = app.admin(Method::PUT, &path, Some(json!({"available": 100}))).await;
    assert_eq!((r.status, r.body["available"].as_i64()), (200, Some(100)));
    let r = app.admin(Method::PUT, &path, Some(json!({"available": -1}))).await;
    assert_eq!((r.status, r.code()), (422, "invalid_field"));
    let events = app.admin(Method::GET, "/api/v1/admin/events?limit=50", None).await;
    let items = events.body["items"].as_array().expect("items");
    assert_eq!(items.iter().filter(|e| e["kind"] == "credential_rejected").count(), 1);
    let stock = items.iter().find(|e| e["kind"] == "stock_changed").expect("stock event");
    assert_eq!((stock["detail"]["old"].as_i64(), stock["detail"]["new"].as_i64()), (Some(3), Some(100)));
    assert_eq!(stock["target"].as_str(), Some(v.as_str()));
    assert!(stock["request_id"].is_string());
}

#[tokio::test]
async fn validation_names_the_field_and_every_response_has_a_request_id() {
    let app = spawn().await;
    let v = app.product("Tee", 2490, 5).await;
    let cart = app.cart_with(&v, 1).await;
    let cases = [
        ("email", json!("not an email"), "email"),
        (
            "shipping_address",
            json!({"name": "A", "line1": "B", "city": "C", "postal_code": "1", "country": "ZZ"}),
            "shipping_address.country",
        ),
        (
            "shipping_address",
            json!({"name": "", "line1": "B", "city": "C", "postal_code": "1", "country": "DE"}),
            "shipping_address.name",
        ),
        (
            "shipping_address",
            json!({"name": "A\u{202e}B", "line1": "B", "city": "C", "postal_code": "1", "country": "DE"}),
            "shipping_address.name",
        ),
    ];
    for (key, value, field) in cases {
        let mut body = checkout_body(&cart);
        body[key] = value;
        let r = app.post("/api/v1/checkout", body).await;
        assert_eq!((r.status, r.body["error"]["field"].as_str()), (422, Some(field)), "{}", r.body);
        assert!(r.headers.contains_key("x-request-id"));
    }
    let r = app.post(&format!("/api/v1/carts/{cart}/lines"), json!({"variant_id": v, "quantity": 0})).await;
    assert_eq!((r.status, r.code()), (422, "quantity_out_of_range"));
    let r = app.post(&format!("/api/v1/carts/{cart}/lines"), json!({"variant_id": v, "quantity": 10})).await;
    assert_eq!((r.status, r.code()), (409, "out_of_stock"));
    let empty = app.cart().await;
    let r = app.post("/api/v1/checkout", checkout_body(&empty)).await;
    assert_eq!((r.status, r.code()), (422, "cart_empty"));
    let r = app.get("/healthz").await;
    assert!(r.headers.contains_key("x-request-id"));
    let r = app.get("/readyz").await;
    assert_eq!(r.status, 200);
}
