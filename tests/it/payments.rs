//! Payments: a Stripe store against the fake Stripe on loopback (the same
//! adapter code that talks to Stripe), signed webhooks, refunds, risk.

use crate::fake_stripe::{self, FakeStripe, Fault};
use crate::support::{Reply, TestApp, checkout_body, read, spawn, spawn_with, test_settings};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

async fn stripe_shop() -> (TestApp, FakeStripe) {
    let stripe = FakeStripe::start().await;
    let mut settings = test_settings();
    stripe.settings(&mut settings);
    (spawn_with(settings).await, stripe)
}

/// An order of `qty` × a product at `price`; returns (id, access token, total).
async fn place(app: &TestApp, price: i64, qty: i64) -> (String, String, i64) {
    let v = app.product("Kettle", price, 100).await;
    let cart = app.cart_with(&v, qty).await;
    let r = app.post("/api/v1/checkout", checkout_body(&cart)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["order"]["id"].as_str().expect("id").to_owned();
    let token = r.body["access_token"].as_str().expect("token").to_owned();
    let total = r.body["order"]["total"]["amount"].as_i64().expect("total");
    (id, token, total)
}

async fn start_payment(app: &TestApp, id: &str, token: &str) -> Reply {
    read(
        app.client
            .post(app.url(&format!("/api/v1/orders/{id}/payment")))
            .bearer_auth(token)
            .send()
            .await
            .expect("send"),
    )
    .await
}

/// Opens the Stripe page of an order; returns the session id.
async fn open_page(app: &TestApp, id: &str, token: &str) -> String {
    let r = start_payment(app, id, token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = r.body["url"].as_str().expect("url");
    url.strip_prefix("https://checkout.stripe.com/c/pay/").expect("a Stripe page").to_owned()
}

/// Posts an event to the webhook signed as Stripe would, now.
async fn deliver(app: &TestApp, event: &Value) -> Reply {
    deliver_raw(app, event.to_string().as_bytes(), Some(fake_stripe::sign(event.to_string().as_bytes(), app.now_s())))
        .await
}

async fn deliver_raw(app: &TestApp, body: &[u8], signature: Option<String>) -> Reply {
    let mut req = app
        .client
        .post(app.url("/api/v1/webhooks/stripe"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = signature {
        req = req.header("stripe-signature", s);
    }
    read(req.send().await.expect("send")).await
}

async fn status_of(app: &TestApp, id: &str) -> String {
    let r = app.admin(Method::GET, &format!("/api/v1/admin/orders/{id}"), None).await;
    r.body["status"].as_str().expect("status").to_owned()
}

async fn money_of(app: &TestApp, id: &str) -> Value {
    let r = app.admin(Method::GET, &format!("/api/v1/admin/orders/{id}/payment"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn event_kinds(app: &TestApp) -> Vec<String> {
    let r = app.admin(Method::GET, "/api/v1/admin/events?limit=500", None).await;
    r.body["items"].as_array().expect("items").iter().map(|e| e["kind"].as_str().unwrap_or("").to_owned()).collect()
}

/// Kinds of the ledger entries that name `order`.
async fn ledger_kinds(app: &TestApp, order: &str) -> Vec<String> {
    let size = app.store.ledger_size().await.expect("size");
    let entries = app.store.ledger_entries(0, size).await.expect("entries");
    entries.iter().filter(|e| e.entry.contains(order)).map(|e| e.kind.clone()).collect()
}

async fn rejections(app: &TestApp) -> usize {
    events_of_kind(app, "webhook_signature_rejected").await
}

async fn events_of_kind(app: &TestApp, kind: &str) -> usize {
    event_kinds(app).await.iter().filter(|k| *k == kind).count()
}

fn outcome(r: &Reply) -> &str {
    r.body["outcome"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_stripe_order_is_paid_only_on_signed_proof_of_its_total() {
    let (app, stripe) = stripe_shop().await;
    let (id, token, total) = place(&app, 2_500, 2).await;
    let session = open_page(&app, &id, &token).await;
    // Asking again gives the same page: one order, one payment.
    assert_eq!(open_page(&app, &id, &token).await, session);
    assert_eq!(stripe.session_count(), 1);
    let s = stripe.session(&session);
    assert_eq!((s["amount_total"].as_i64(), s["currency"].as_str()), (Some(total), Some("eur")));
    assert_eq!(s["metadata"]["order_id"], id.as_str());
    assert_eq!(status_of(&app, &id).await, "pending_payment");

    let events = stripe.pay(&session, "visa", "4242");
    // charge.succeeded comes first and names only a payment the store has
    // not heard of yet: refused, so Stripe sends it again later.
    let r = deliver(&app, &events[0]).await;
    assert_eq!((r.status, r.code()), (422, "unknown_order"), "{}", r.body);
    let r = deliver(&app, &events[1]).await;
    assert_eq!((r.status, outcome(&r)), (200, "paid"), "{}", r.body);
    let r = deliver(&app, &events[2]).await;
    assert_eq!((r.status, outcome(&r)), (200, "already_paid"), "{}", r.body);
    // Stripe's retry of the charge event now finds its order.
    let r = deliver(&app, &events[0]).await;
    assert_eq!((r.status, outcome(&r)), (200, "card_reported"), "{}", r.body);
    assert_eq!(status_of(&app, &id).await, "paid");
    let money = money_of(&app, &id).await;
    assert_eq!(money["payment"]["amount_received"], total);
    assert_eq!(
        (money["payment"]["card_brand"].as_str(), money["payment"]["card_last4"].as_str()),
        (Some("visa"), Some("4242"))
    );
    assert_eq!(money["risk"]["decision"], "allow");
    let kinds = ledger_kinds(&app, &id).await;
    assert!(kinds.contains(&"payment_received".to_owned()), "{kinds:?}");
    assert!(event_kinds(&app).await.contains(&"payment_received".to_owned()));
    // The store calls Stripe with the pinned version and idempotency keys.
    let log = stripe.log();
    assert!(log.iter().filter(|(m, _, _)| m == "POST").all(|(_, _, key)| key.is_some()), "{log:?}");
}

#[tokio::test]
async fn forged_stale_and_unsigned_events_change_nothing() {
    let (app, stripe) = stripe_shop().await;
    let (id, token, _) = place(&app, 1_000, 1).await;
    let session = open_page(&app, &id, &token).await;
    let events = stripe.pay(&session, "visa", "4242");
    let body = events[1].to_string();
    let now = app.now_s();
    let forged = storefort_pay::signature::sign(body.as_bytes(), b"whsec_attacker_guess", now);
    let cases = [
        (None, "signature_missing"),
        (Some(forged), "signature_mismatch"),
        (Some(fake_stripe::sign(body.as_bytes(), now - 301)), "signature_stale"),
        (Some(fake_stripe::sign(body.as_bytes(), now + 301)), "signature_stale"),
        (Some("t=abc,v1=zz".to_owned()), "signature_malformed"),
    ];
    for (signature, code) in cases {
        let r = deliver_raw(&app, body.as_bytes(), signature).await;
        assert_eq!((r.status, r.code()), (400, code), "{}", r.body);
    }
    // A genuine signature over other bytes: the body was changed in transit.
    let signature = fake_stripe::sign(body.as_bytes(), now);
    let tampered = body.replace("\"amount_received\":1", "\"amount_received\":9");
    let r = deliver_raw(&app, tampered.as_bytes(), Some(signature)).await;
    assert_eq!((r.status, r.code()), (400, "signature_mismatch"));
    assert_eq!(status_of(&app, &id).await, "pending_payment");
    assert!(!ledger_kinds(&app, &id).await.contains(&"payment_received".to_owned()));
    // One event for the burst from this client, not one per request.
    assert_eq!(rejections(&app).await, 1);
    app.clock.advance_ms(61_000);
    let r = deliver_raw(&app, body.as_bytes(), None).await;
    assert_eq!(r.code(), "signature_missing");
    assert_eq!(rejections(&app).await, 2, "a minute later, the next refusal is recorded again");
    // The genuine event still works afterwards.
    assert_eq!(outcome(&deliver(&app, &events[1]).await), "paid");
}

#[tokio::test]
async fn a_replayed_event_has_no_second_effect() {
    let (app, stripe) = stripe_shop().await;
    let (id, token, _) = place(&app, 1_000, 1).await;
    let session = open_page(&app, &id, &token).await;
    let events = stripe.pay(&session, "visa", "4242");
    assert_eq!(outcome(&deliver(&app, &events[1]).await), "paid");
    let before = ledger_kinds(&app, &id).await;
    for _ in 0..3 {
        let r = deliver(&app, &events[1]).await;
        assert_eq!((r.status, outcome(&r)), (200, "duplicate"));
    }
    assert_eq!(ledger_kinds(&app, &id).await, before);
    assert_eq!(status_of(&app, &id).await, "paid");
}

#[tokio::test]
async fn concurrent_duplicate_webhooks_cause_one_state_change() {
    let (app, stripe) = stripe_shop().await;
    let (id, token, _) = place(&app, 1_000, 1).await;
    let session = open_page(&app, &id, &token).await;
    let event = stripe.pay(&session, "visa", "4242").remove(1);
    let replies = futures::future::join_all((0..12).map(|_| deliver(&app, &event))).await;
    let mut outcomes: Vec<String> = replies.iter().map(|r| format!("{} {}", r.status, outcome(r))).collect();
    outcomes.sort();
    outcomes.dedup();
    assert_eq!(outcomes, ["200 duplicate", "200 paid"], "{outcomes:?}");
    let paid = replies.iter().filter(|r| outcome(r) == "paid").count();
    assert_eq!(paid, 1);
    let kinds = ledger_kinds(&app, &id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "payment_received").count(), 1);
    assert_eq!(kinds.iter().filter(|k| *k == "order_status_changed").count(), 1);
}

#[tokio::test]
async fn an_amount_or_currency_mismatch_flags_the_order_and_never_pays_it() {
    let (app, stripe) = stripe_shop().await;
    let (id, token, total) = place(&app, 1_000, 1).await;
    let session = open_page(&app, &id, &token).await;
    let events = stripe.pay_amount(&session, "visa", "4242", Some(total - 1));
    let r = deliver(&app, &events[1]).await;
    assert_eq!((r.status, outcome(&r)), (200, "amount_mismatch"), "{}", r.body);
    assert_eq!(status_of(&app, &id).await, "pending_payment");
    let money = money_of(&app, &id).await;
    assert_eq!(money["risk"]["decision"], "review");
    assert_eq!(money["risk"]["review"], "held");
    let reasons = money["risk"]["reasons"].as_array().expect("reasons");
    assert!(reasons.iter().any(|r| r["rule"] == "amount_mismatch" && r["reported"] == total - 1), "{reasons:?}");
    assert!(event_kinds(&app).await.contains(&"payment_amount_mismatch".to_owned()));

    // The right amount in the wrong currency is no better.
    let (id, token, total) = place(&app, 1_000, 1).await;
    let session = open_page(&app, &id, &token).await;
    let mut event = stripe.pay(&session, "visa", "4242").remove(1);
    event["data"]["object"]["currency"] = json!("usd");
    assert_eq!(event["data"]["object"]["amount_received"], total);
    assert_eq!(outcome(&deliver(&app, &event).await), "amount_mismatch");
    assert_eq!(status_of(&app, &id).await, "pending_payment");
}

#[tokio::test]
async fn events_out_of_order_and_for_unknown_orders() {
    let (app, stripe) = stripe_shop().await;
    let (id, token, _) = place(&app, 1_000, 1).await;
    let session = open_page(&app, &id, &token).await;
    let events = stripe.pay(&session, "visa", "4242");
    // The session's completion first, then the intent's success.
    assert_eq!(outcome(&deliver(&app, &events[2]).await), "paid");
    assert_eq!(outcome(&deliver(&app, &events[1]).await), "already_paid");
    // A failure reported late (an earlier declined attempt) does not unpay.
    let failed = stripe.decline(&session, "insufficient_funds");
    assert_eq!(outcome(&deliver(&app, &failed).await), "payment_failed");
    assert_eq!(status_of(&app, &id).await, "paid");
    // A page expiring after payment changes nothing either.
    let expired = stripe.event(
        "checkout.session.expired",
        json!({"id": session, "object": "checkout.session",
        "status": "expired", "metadata": {"order_id": id}}),
    );
    assert_eq!(outcome(&deliver(&app, &expired).await), "no_change");

    // An event naming no order of this store is refused (Stripe retries it),
    // with an event, and nothing else.
    let stranger = stripe.event(
        "payment_intent.succeeded",
        json!({"id": "pi_unknown", "object": "payment_intent",
        "amount_received": 100, "currency": "eur", "metadata": {"order_id": uuid::Uuid::now_v7().to_string()}}),
    );
    let r = deliver(&app, &stranger).await;
    assert_eq!((r.status, r.code()), (422, "unknown_order"));
    assert!(event_kinds(&app).await.contains(&"gateway_event_unmatched".to_owned()));
    // Still unmatched an hour on, it is someone else's payment on the same
    // account: acknowledged, so Stripe stops retrying and does not disable
    // the endpoint, and still recorded.
    let mut foreign = stripe.event(
        "charge.succeeded",
        json!({"id": "ch_foreign", "object": "charge", "payment_intent": "pi_from_a_payment_link",
        "amount": 100, "currency": "eur", "paid": true, "status": "succeeded",
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}}}),
    );
    foreign["created"] = json!(app.now_s() - 2 * 3600);
    let before = events_of_kind(&app, "gateway_event_unmatched").await;
    let r = deliver(&app, &foreign).await;
    assert_eq!((r.status, outcome(&r)), (200, "not_ours"), "{}", r.body);
    assert_eq!(events_of_kind(&app, "gateway_event_unmatched").await, before + 1);
    foreign["created"] = json!(app.now_s() - 60);
    foreign["id"] = json!("evt_recent_foreign");
    assert_eq!(deliver(&app, &foreign).await.status, 422, "a recent one may still be racing its order");
    // A genuine event of a type the store does not act on is acknowledged.
    let other = stripe.event("customer.created", json!({"id": "cus_1", "object": "customer"}));
    let r = deliver(&app, &other).await;
    assert_eq!((r.status, outcome(&r)), (200, "ignored"));
    // Malformed but signed: a clear 400, nothing stored.
    let r = deliver_raw(&app, b"[1,2]", Some(fake_stripe::sign(b"[1,2]", app.now_s()))).await;
    assert_eq!((r.status, r.code()), (400, "malformed_event"));
}

/// A paid Stripe order; returns (id, total).
async fn paid_order(app: &TestApp, stripe: &FakeStripe, price: i64) -> (String, i64) {
    let (id, token, total) = place(app, price, 1).await;
    let session = open_page(app, &id, &token).await;
    let events = stripe.pay(&session, "mastercard", "4444");
    assert_eq!(outcome(&deliver(app, &events[1]).await), "paid");
    (id, total)
}

#[tokio::test]
async fn a_retried_refund_with_the_same_key_refunds_once_and_never_more_than_captured() {
    let (app, stripe) = stripe_shop().await;
    let (id, total) = paid_order(&app, &stripe, 3_000).await;
    let path = format!("/api/v1/admin/orders/{id}/refunds");
    // An API token may not move money back, whatever its scope.
    let r = app.admin(Method::POST, &path, Some(json!({"amount": 500}))).await;
    assert_eq!(r.status, 400, "no key: {}", r.body);
    let mut owner = app.owner_browser().await;
    let r = owner.send_with(Method::POST, &path, Some(json!({"amount": 500})), &[("idempotency-key", "r-1")]).await;
    assert_eq!((r.status, r.body["status"].as_str()), (201, Some("succeeded")), "{}", r.body);
    let first = r.body["id"].clone();
    for _ in 0..3 {
        let r = owner.send_with(Method::POST, &path, Some(json!({"amount": 500})), &[("idempotency-key", "r-1")]).await;
        assert_eq!((r.status, &r.body["id"]), (201, &first), "{}", r.body);
    }
    assert_eq!(stripe.refund_count(), 1);
    // The same key for another amount is refused.
    let r = owner.send_with(Method::POST, &path, Some(json!({"amount": 600})), &[("idempotency-key", "r-1")]).await;
    assert_eq!((r.status, r.code()), (422, "idempotency_key_reused"));
    // More than is left is refused before the gateway is asked.
    let left = total - 500;
    let r =
        owner.send_with(Method::POST, &path, Some(json!({"amount": left + 1})), &[("idempotency-key", "r-2")]).await;
    assert_eq!((r.status, r.code()), (422, "refund_exceeds_captured"), "{}", r.body);
    for bad in [json!({"amount": 0}), json!({"amount": -5}), json!({"amount": "5"}), json!({"amount": 1, "to": "me"})] {
        let r = owner.send_with(Method::POST, &path, Some(bad.clone()), &[("idempotency-key", "r-3")]).await;
        assert!(r.status == 422 || r.status == 400, "{bad}: {}", r.body);
    }
    assert_eq!(stripe.refund_count(), 1);
    // The rest, and the order is refunded.
    let r = owner.send_with(Method::POST, &path, Some(json!({"amount": left})), &[("idempotency-key", "r-4")]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(status_of(&app, &id).await, "refunded");
    let money = money_of(&app, &id).await;
    assert_eq!(money["payment"]["amount_refunded"], total);
    assert_eq!(money["refunds"].as_array().map(Vec::len), Some(2));
    // Stripe's charge.refunded event reports the same running total: no change.
    let pi = money["payment"]["gateway_payment_id"].as_str().expect("pi").to_owned();
    let refunded = stripe.event("charge.refunded", stripe.charge_of(&pi));
    assert_eq!(outcome(&deliver(&app, &refunded).await), "no_change");
    let report = crate::ledger::audit(&app).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // A refund total edited in the database is named by `ledger verify`.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.db_url).await.expect("connect");
    sqlx::query("UPDATE payments SET amount_refunded = 0 WHERE order_id = $1")
        .bind(&id)
        .execute(&pool)
        .await
        .expect("tamper");
    pool.close().await;
    let report = crate::ledger::audit(&app).await;
    assert!(
        report.problems.iter().any(|p| p.row && p.what.contains(&format!("payment of order {id} shows"))),
        "{:?}",
        report.problems
    );
}

#[tokio::test]
async fn gateway_timeouts_and_errors_are_retried_with_the_same_key() {
    let (app, stripe) = stripe_shop().await;
    let (id, token, _) = place(&app, 1_000, 1).await;
    // The first answer is lost after Stripe did the work (the client gives
    // up at 800 ms); the retry carries the same key and gets the same page.
    stripe.inject("/v1/checkout/sessions", Fault::SlowAnswer(Duration::from_millis(1_500)));
    let session = open_page(&app, &id, &token).await;
    assert_eq!(stripe.session_count(), 1);
    let posts: Vec<_> =
        stripe.log().into_iter().filter(|(m, p, _)| m == "POST" && p == "/v1/checkout/sessions").collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].2, posts[1].2);
    assert_eq!(posts[0].2.as_deref(), Some(format!("storefort:{id}:checkout:1").as_str()));
    let events = stripe.pay(&session, "visa", "4242");
    assert_eq!(outcome(&deliver(&app, &events[1]).await), "paid");

    // A refund whose answer is lost, then a refund after a 500: once each.
    let mut owner = app.owner_browser().await;
    let path = format!("/api/v1/admin/orders/{id}/refunds");
    stripe.inject("/v1/refunds", Fault::SlowAnswer(Duration::from_millis(1_500)));
    let r = owner.send_with(Method::POST, &path, Some(json!({"amount": 100})), &[("idempotency-key", "a")]).await;
    assert_eq!((r.status, r.body["status"].as_str()), (201, Some("succeeded")), "{}", r.body);
    stripe.inject("/v1/refunds", Fault::ServerError);
    let r = owner.send_with(Method::POST, &path, Some(json!({"amount": 200})), &[("idempotency-key", "b")]).await;
    assert_eq!((r.status, r.body["status"].as_str()), (201, Some("succeeded")), "{}", r.body);
    assert_eq!(stripe.refund_count(), 2);
    assert_eq!(money_of(&app, &id).await["payment"]["amount_refunded"], 300);
}

#[tokio::test]
async fn an_unreachable_gateway_leaves_the_refund_pending_and_a_retry_finishes_it() {
    let (app, stripe) = stripe_shop().await;
    let (id, total) = paid_order(&app, &stripe, 2_000).await;
    let mut owner = app.owner_browser().await;
    let path = format!("/api/v1/admin/orders/{id}/refunds");
    // Three 500s: the first try and both retries fail.
    for _ in 0..3 {
        stripe.inject("/v1/refunds", Fault::ServerError);
    }
    let r = owner.send_with(Method::POST, &path, Some(json!({"amount": 700})), &[("idempotency-key", "k")]).await;
    assert_eq!((r.status, r.code()), (503, "gateway_unavailable"), "{}", r.body);
    let money = money_of(&app, &id).await;
    assert_eq!(money["refunds"][0]["status"], "pending");
    // The pending refund counts against what is left.
    let r = owner
        .send_with(Method::POST, &path, Some(json!({"amount": total - 700 + 1})), &[("idempotency-key", "k2")])
        .await;
    assert_eq!(r.code(), "refund_exceeds_captured");
    // The reconciliation job retries it with its key: one refund.
    app.clock.advance_ms(61_000);
    storefort_web::payments::reconcile_once(&app.state).await.expect("reconcile");
    assert_eq!(money_of(&app, &id).await["refunds"][0]["status"], "succeeded");
    let r = owner.send_with(Method::POST, &path, Some(json!({"amount": 700})), &[("idempotency-key", "k")]).await;
    assert_eq!((r.status, r.body["status"].as_str()), (201, Some("succeeded")));
    assert_eq!(stripe.refund_count(), 1);
}

#[tokio::test]
async fn reconciliation_asks_the_gateway_about_orders_stuck_unpaid() {
    let (app, stripe) = stripe_shop().await;
    let (id, token, _) = place(&app, 1_000, 1).await;
    let session = open_page(&app, &id, &token).await;
    // The customer paid, but no webhook ever arrived.
    let _ = stripe.pay(&session, "amex", "0005");
    storefort_web::payments::reconcile_once(&app.state).await.expect("reconcile");
    assert_eq!(status_of(&app, &id).await, "pending_payment", "too early to ask");
    app.clock.advance_ms(11 * 60_000);
    assert_eq!(storefort_web::payments::reconcile_once(&app.state).await.expect("reconcile"), 1);
    assert_eq!(status_of(&app, &id).await, "paid");
    let money = money_of(&app, &id).await;
    assert_eq!(
        (money["payment"]["card_brand"].as_str(), money["payment"]["card_last4"].as_str()),
        (Some("amex"), Some("0005"))
    );
    // The late webhook is then a no-op.
    let events = stripe.event("checkout.session.completed", stripe.session(&session));
    assert_eq!(outcome(&deliver(&app, &events).await), "already_paid");
}

#[tokio::test]
async fn manual_payment_is_recorded_by_staff_and_stripe_orders_cannot_be_marked_paid() {
    let app = spawn().await;
    let (id, token, total) = place(&app, 1_000, 1).await;
    let r = start_payment(&app, &id, &token).await;
    assert_eq!((r.status, r.body["gateway"].as_str(), r.body["url"].as_str()), (200, Some("manual"), None));
    assert!(r.body["instructions"].as_str().expect("instructions").contains("order number"), "{}", r.body);
    let r =
        app.admin(Method::POST, &format!("/api/v1/admin/orders/{id}/status"), Some(json!({"status": "paid"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(money_of(&app, &id).await["payment"]["amount_received"], total);
    let r = start_payment(&app, &id, &token).await;
    assert_eq!((r.status, r.code()), (409, "order_not_payable"));
    // Wrong or missing token: nothing.
    let r = start_payment(&app, &id, "nope").await;
    assert_eq!(r.status, 401);

    let (app, _stripe) = stripe_shop().await;
    let (id, _, _) = place(&app, 1_000, 1).await;
    let r =
        app.admin(Method::POST, &format!("/api/v1/admin/orders/{id}/status"), Some(json!({"status": "paid"}))).await;
    assert_eq!((r.status, r.code()), (409, "paid_by_gateway_only"));
}

/// A manual-payment store with `n` paid orders of about 10 EUR, placed an
/// hour apart so no window counts them together.
async fn shop_with_history(n: usize) -> TestApp {
    let app = spawn().await;
    let v = app.product("Tea", 1_000, 10_000).await;
    for i in 0..n {
        let cart = app.cart_with(&v, 1 + (i % 2) as i64).await;
        let r = app.post("/api/v1/checkout", checkout_body(&cart)).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["order"]["id"].as_str().expect("id");
        let r = app
            .admin(Method::POST, &format!("/api/v1/admin/orders/{id}/status"), Some(json!({"status": "paid"})))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        app.clock.advance_ms(61 * 60_000);
    }
    app
}

fn rules(money: &Value) -> Vec<String> {
    money["risk"]["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r["rule"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn an_order_twenty_times_the_median_is_held_for_review_until_staff_approve() {
    let app = shop_with_history(20).await;
    // The median order is 1 or 2 teas plus shipping; this is far beyond it.
    let big = app.product("Espresso machine", 40_000, 5).await;
    let cart = app.cart_with(&big, 1).await;
    let r = app.post("/api/v1/checkout", checkout_body(&cart)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["order"]["id"].as_str().expect("id").to_owned();
    let money = money_of(&app, &id).await;
    assert_eq!((money["risk"]["decision"].as_str(), money["risk"]["review"].as_str()), (Some("review"), Some("held")));
    let reasons = money["risk"]["reasons"].as_array().expect("reasons");
    let far = reasons.iter().find(|r| r["rule"] == "total_far_above_median").expect("the median rule is listed");
    assert!(far["multiple"].as_i64().expect("multiple") >= 10, "{far}");
    // It may be paid, but it does not ship until someone looks.
    let set = |status: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            app.admin(Method::POST, &format!("/api/v1/admin/orders/{id}/status"), Some(json!({"status": status}))).await
        }
    };
    assert_eq!(set("paid").await.status, 200);
    let r = set("fulfilled").await;
    assert_eq!((r.status, r.code()), (409, "order_held_for_review"));
    let review = format!("/api/v1/admin/orders/{id}/review");
    let r = app.admin(Method::POST, &review, Some(json!({"decision": "approve"}))).await;
    assert_eq!((r.status, r.body["review"].as_str()), (200, Some("approved")), "{}", r.body);
    let r = app.admin(Method::POST, &review, Some(json!({"decision": "approve"}))).await;
    assert_eq!((r.status, r.code()), (409, "order_not_held"));
    let r = app.admin(Method::POST, &review, Some(json!({"decision": "maybe"}))).await;
    assert_eq!(r.status, 422);
    assert_eq!(set("fulfilled").await.status, 200);
    assert!(ledger_kinds(&app, &id).await.contains(&"order_reviewed".to_owned()));

    // An ordinary order in the same store is allowed with no reasons.
    let tea = app.product("More tea", 1_000, 10).await;
    let cart = app.cart_with(&tea, 1).await;
    let r = app.post("/api/v1/checkout", checkout_body(&cart)).await;
    let money = money_of(&app, r.body["order"]["id"].as_str().expect("id")).await;
    assert_eq!((money["risk"]["decision"].as_str(), rules(&money).len()), (Some("allow"), 0), "{money}");
}

#[tokio::test]
async fn throwaway_addresses_and_bursts_from_one_address_are_scored() {
    let app = spawn().await;
    let v = app.product("Mug", 1_200, 100).await;
    let mut last = Value::Null;
    for i in 0..6 {
        let cart = app.cart_with(&v, 1).await;
        let mut body = checkout_body(&cart);
        if i == 0 {
            body["email"] = json!("someone@box.mailinator.com");
        }
        let r = app.post("/api/v1/checkout", body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        last = money_of(&app, r.body["order"]["id"].as_str().expect("id")).await;
        if i == 0 {
            assert_eq!(rules(&last), ["disposable_email"]);
        }
    }
    // The sixth order from one IP address within the hour.
    assert_eq!(rules(&last), ["many_orders_from_ip"], "{last}");
}

#[tokio::test]
async fn signals_that_add_up_decline_the_order_and_release_its_stock() {
    let mut settings = test_settings();
    settings.payments.risk.max_orders_per_ip = 2;
    let app = spawn_with(settings).await;
    let v = app.product("Lamp", 5_000, 10).await;
    for _ in 0..2 {
        let cart = app.cart_with(&v, 1).await;
        assert_eq!(app.post("/api/v1/checkout", checkout_body(&cart)).await.status, 201);
    }
    // Third order from the same address and the same device, from a
    // throwaway address: 40 + 40 + 30 points.
    let device = "Mozilla/5.0 (X11; Linux x86_64) Fraudfox/1.0";
    let cart = app.cart_with(&v, 1).await;
    let mut body = checkout_body(&cart);
    body["email"] = json!("x@yopmail.com");
    let send = |body: Value| {
        let app = &app;
        async move {
            read(
                app.client
                    .post(app.url("/api/v1/checkout"))
                    .header("user-agent", device)
                    .json(&body)
                    .send()
                    .await
                    .expect("send"),
            )
            .await
        }
    };
    // Two earlier orders from this device too.
    for _ in 0..2 {
        let c = app.cart_with(&v, 1).await;
        assert_eq!(send(checkout_body(&c)).await.status, 201);
    }
    let r = send(body).await;
    assert_eq!((r.status, r.code()), (403, "order_declined"), "{}", r.body);
    assert!(!r.body.to_string().contains("yopmail"), "the reasons stay with staff");
    // Recorded, cancelled, and its lamp back on sale: 10 - 4 held.
    assert_eq!(app.store.stock_counts(&v).await.expect("counts"), (6, 4, 0));
    let events = app.admin(Method::GET, "/api/v1/admin/events?limit=100", None).await;
    let declined = events.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["kind"] == "order_risk_assessed" && e["detail"]["decision"] == "block")
        .cloned()
        .expect("the verdict is an event");
    let rules = declined["detail"]["rules"].as_str().expect("rules");
    for rule in ["many_orders_from_ip", "many_orders_from_device", "disposable_email"] {
        assert!(rules.contains(rule), "{rules}");
    }
}

#[tokio::test]
async fn declined_cards_count_against_the_next_order_from_the_same_address() {
    let (app, stripe) = stripe_shop().await;
    let (id, token, _) = place(&app, 1_000, 1).await;
    let session = open_page(&app, &id, &token).await;
    for code in ["insufficient_funds", "stolen_card", "do_not_honor"] {
        let r = deliver(&app, &stripe.decline(&session, code)).await;
        assert_eq!((r.status, outcome(&r)), (200, "payment_failed"), "{}", r.body);
    }
    let money = money_of(&app, &id).await;
    assert_eq!(money["payment"]["failures"], 3);
    assert_eq!(status_of(&app, &id).await, "pending_payment", "a declined card leaves the order payable");
    // The next order from this address is held for review with the reason.
    let (next, _, _) = place(&app, 1_000, 1).await;
    let money = money_of(&app, &next).await;
    assert_eq!(money["risk"]["decision"], "review", "{money}");
    assert!(rules(&money).contains(&"many_failed_payments".to_owned()), "{money}");
}

/// A MaxMind DB country file, as GeoLite2-Country lays it out.
fn country_database(path: &std::path::Path) {
    use mmdb_writer::{Value as Mmdb, Writer, ipnet::IpNet};
    let mut w = Writer::new("GeoLite2-Country");
    for (net, code) in [("81.2.69.0/24", "GB"), ("89.160.20.0/24", "SE"), ("5.9.0.0/16", "DE")] {
        let record = Mmdb::map([("country", Mmdb::map([("iso_code", Mmdb::from(code))]))]);
        w.insert_value(net.parse::<IpNet>().expect("net"), record).expect("insert");
    }
    std::fs::write(path, w.to_bytes().expect("bytes")).expect("write");
}

#[tokio::test]
async fn a_shipping_country_other_than_where_the_order_came_from_is_scored_with_geoip() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("GeoLite2-Country.mmdb");
    country_database(&path);
    let mut settings = test_settings();
    settings.shield.trusted_proxies = vec!["127.0.0.1".parse::<storefort_shield::net::Cidr>().expect("cidr")];
    settings.payments.geoip = Some(std::sync::Arc::new(storefort_pay::CountryDb::open(&path).expect("database")));
    let app = spawn_with(settings).await;
    let v = app.product("Mug", 1_200, 100).await;
    // Every order goes to the German address of `checkout_body`.
    let order_from = |ip: &'static str| {
        let (app, v) = (&app, v.clone());
        async move {
            let cart = app.cart_with(&v, 1).await;
            let r = read(
                (app.client.post(app.url("/api/v1/checkout")))
                    .header("x-forwarded-for", ip)
                    .json(&checkout_body(&cart))
                    .send()
                    .await
                    .expect("send"),
            )
            .await;
            assert_eq!(r.status, 201, "{}", r.body);
            money_of(app, r.body["order"]["id"].as_str().expect("id")).await
        }
    };
    let home = order_from("5.9.10.11").await;
    assert_eq!(rules(&home), Vec::<String>::new(), "from Germany to Germany: {home}");
    let abroad = order_from("89.160.20.128").await;
    assert_eq!(rules(&abroad), ["country_mismatch"], "{abroad}");
    let reason = &abroad["risk"]["reasons"][0];
    assert_eq!((reason["billing"].as_str(), reason["ip"].as_str()), (Some("DE"), Some("SE")), "{reason}");
    // Alone it is a weak signal: listed, not held.
    assert_eq!(abroad["risk"]["decision"], "allow");
    let unknown = order_from("192.0.2.1").await;
    assert_eq!(rules(&unknown), Vec::<String>::new(), "an address the database does not know: {unknown}");
}

#[tokio::test]
async fn erasing_a_guest_order_forgets_its_card_digits() {
    let (app, stripe) = stripe_shop().await;
    let (id, _) = paid_order(&app, &stripe, 1_500).await;
    let pi = money_of(&app, &id).await["payment"]["gateway_payment_id"].as_str().expect("pi").to_owned();
    let card = stripe.event("charge.succeeded", stripe.charge_of(&pi));
    assert_eq!(outcome(&deliver(&app, &card).await), "card_reported");
    assert_eq!(money_of(&app, &id).await["payment"]["card_last4"], "4444");
    let mut owner = app.owner_browser().await;
    let r = owner.post(&format!("/api/v1/admin/orders/{id}/erase-personal-data"), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let money = money_of(&app, &id).await;
    assert_eq!(
        (money["payment"]["card_brand"].clone(), money["payment"]["card_last4"].clone()),
        (Value::Null, Value::Null)
    );
    // The money facts stay: what was received is not personal data.
    assert!(money["payment"]["amount_received"].as_i64().expect("amount") > 0);
}

#[tokio::test]
async fn money_for_an_order_already_cancelled_is_recorded_and_held_for_a_refund() {
    let (app, stripe) = stripe_shop().await;
    let (id, token, total) = place(&app, 1_000, 1).await;
    let session = open_page(&app, &id, &token).await;
    let r = app
        .admin(Method::POST, &format!("/api/v1/admin/orders/{id}/status"), Some(json!({"status": "cancelled"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The customer paid on the page anyway.
    let events = stripe.pay(&session, "visa", "4242");
    let r = deliver(&app, &events[1]).await;
    assert_eq!((r.status, outcome(&r)), (200, "paid_after_close"), "{}", r.body);
    assert_eq!(status_of(&app, &id).await, "cancelled", "a cancelled order is not revived");
    let money = money_of(&app, &id).await;
    assert_eq!(money["payment"]["amount_received"], total, "the money is on the record");
    assert_eq!((money["risk"]["review"].as_str(), money["risk"]["decision"].as_str()), (Some("held"), Some("review")));
    assert!(event_kinds(&app).await.contains(&"payment_for_closed_order".to_owned()));
    // Staff give it back; the order stays cancelled.
    let mut owner = app.owner_browser().await;
    let path = format!("/api/v1/admin/orders/{id}/refunds");
    let r = owner.send_with(Method::POST, &path, Some(json!({"amount": total})), &[("idempotency-key", "back")]).await;
    assert_eq!((r.status, r.body["status"].as_str()), (201, Some("succeeded")), "{}", r.body);
    assert_eq!(stripe.refund_count(), 1);
    assert_eq!(status_of(&app, &id).await, "cancelled");
    assert_eq!(money_of(&app, &id).await["payment"]["amount_refunded"], total);
    let report = crate::ledger::audit(&app).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
