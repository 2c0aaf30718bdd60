//! Outgoing webhooks: order events reach registered endpoints, signed,
//! retried with backoff, logged; private addresses are refused.

use crate::support::{checkout_body, spawn, spawn_with, test_settings};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A receiver on loopback that answers 500 to its first `failures`
/// requests, then 200, and keeps what it got.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    failures: Arc<Mutex<usize>>,
}

impl Receiver {
    async fn start(failures: usize) -> (Receiver, String) {
        let receiver = Receiver { got: Arc::default(), failures: Arc::new(Mutex::new(failures)) };
        let r = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let r = r.clone();
                async move {
                    r.got.lock().expect("lock").push((headers, body));
                    let mut left = r.failures.lock().expect("lock");
                    if *left > 0 {
                        *left -= 1;
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (receiver, url)
    }

    fn got(&self) -> Vec<(HeaderMap, Bytes)> {
        self.got.lock().expect("lock").clone()
    }
}

fn local_settings() -> storefort_web::Settings {
    let mut settings = test_settings();
    settings.webhooks.allow_private_targets = true;
    settings
}

#[tokio::test]
async fn order_events_reach_endpoints_signed_retried_and_logged() {
    let app = spawn_with(local_settings()).await;
    let (receiver, url) = Receiver::start(2).await;
    let mut owner = app.owner_browser().await;
    let r = owner.post("/api/v1/admin/webhooks", json!({"url": url, "events": ["order.created", "order.paid"]})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.body["secret"].as_str().expect("secret").to_owned();
    let endpoint = r.body["endpoint"]["id"].as_str().expect("id").to_owned();
    assert!(secret.starts_with("whsec_"));
    // The list never shows the secret.
    let list = owner.get("/api/v1/admin/webhooks").await;
    assert!(!list.body.to_string().contains(&secret));
    // An API token may not register endpoints, whatever its scope.
    let r = app.admin(Method::POST, "/api/v1/admin/webhooks", Some(json!({"url": url, "events": ["*"]}))).await;
    assert_eq!(r.status, 403, "{}", r.body);

    let v = app.product("Kettle", 3_000, 5).await;
    let cart = app.cart_with(&v, 1).await;
    let placed = app.post("/api/v1/checkout", checkout_body(&cart)).await;
    let order = placed.body["order"]["id"].as_str().expect("id").to_owned();
    let r =
        app.admin(Method::POST, &format!("/api/v1/admin/orders/{order}/status"), Some(json!({"status": "paid"}))).await;
    assert_eq!(r.status, 200);
    // Fulfilment is not subscribed to: not queued.
    app.admin(Method::POST, &format!("/api/v1/admin/orders/{order}/status"), Some(json!({"status": "fulfilled"})))
        .await;

    // First round: both answered 500; then nothing is due until the backoff.
    assert_eq!(storefort_web::webhooks::deliver_once(&app.state).await.expect("deliver"), 2);
    assert_eq!(storefort_web::webhooks::deliver_once(&app.state).await.expect("deliver"), 0);
    app.clock.advance_ms(61_000);
    assert_eq!(storefort_web::webhooks::deliver_once(&app.state).await.expect("deliver"), 2);
    let got = receiver.got();
    assert_eq!(got.len(), 4);
    let mut types = Vec::new();
    for (headers, body) in &got {
        let signature = headers.get("storefort-signature").and_then(|v| v.to_str().ok());
        storefort_pay::signature::verify(body, signature, &[secret.as_bytes()], app.now_s(), 300)
            .expect("signed with the endpoint's secret");
        let event: Value = serde_json::from_slice(body).expect("json");
        assert_eq!(headers.get("storefort-event-id").and_then(|v| v.to_str().ok()), event["id"].as_str());
        assert_eq!(event["data"]["order"]["id"], order.as_str());
        assert!(!body.contains(&b'@'), "no personal data in webhooks");
        types.push(event["type"].as_str().expect("type").to_owned());
    }
    types.sort();
    assert_eq!(types, ["order.created", "order.created", "order.paid", "order.paid"]);

    let log = owner.get(&format!("/api/v1/admin/webhooks/{endpoint}/deliveries")).await;
    let items = log.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    for d in items {
        assert_eq!(
            (d["status"].as_str(), d["attempts"].as_i64(), d["last_status"].as_i64()),
            (Some("delivered"), Some(2), Some(200))
        );
    }
    // Disabled: later events are not queued.
    let r = owner.send(Method::DELETE, &format!("/api/v1/admin/webhooks/{endpoint}"), None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("disabled")), "{}", r.body);
    let cart = app.cart_with(&v, 1).await;
    app.post("/api/v1/checkout", checkout_body(&cart)).await;
    assert_eq!(storefort_web::webhooks::deliver_once(&app.state).await.expect("deliver"), 0);
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_gives_up_with_an_event() {
    let mut settings = local_settings();
    settings.webhooks.backoff = vec![Duration::from_secs(1)];
    let app = spawn_with(settings).await;
    let (_receiver, url) = Receiver::start(usize::MAX).await;
    let mut owner = app.owner_browser().await;
    let r = owner.post("/api/v1/admin/webhooks", json!({"url": url, "events": ["*"]})).await;
    let endpoint = r.body["endpoint"]["id"].as_str().expect("id").to_owned();
    let v = app.product("Kettle", 3_000, 5).await;
    let cart = app.cart_with(&v, 1).await;
    app.post("/api/v1/checkout", checkout_body(&cart)).await;
    storefort_web::webhooks::deliver_once(&app.state).await.expect("deliver");
    app.clock.advance_ms(1_001);
    storefort_web::webhooks::deliver_once(&app.state).await.expect("deliver");
    let log = owner.get(&format!("/api/v1/admin/webhooks/{endpoint}/deliveries")).await;
    assert_eq!(log.body["items"][0]["status"], "failed", "{}", log.body);
    assert_eq!(log.body["items"][0]["last_status"], 500);
    let events = app.admin(Method::GET, "/api/v1/admin/events", None).await;
    assert!(events.body["items"].as_array().expect("items").iter().any(|e| e["kind"] == "webhook_delivery_failed"));
}

#[tokio::test]
async fn endpoints_must_be_public_https_with_known_event_types() {
    let app = spawn().await;
    let mut owner = app.owner_browser().await;
    for (url, events, code) in [
        ("http://127.0.0.1:9/hook", json!(["*"]), "invalid_url"),
        ("https://169.254.169.254/latest/meta-data", json!(["*"]), "invalid_url"),
        ("https://10.1.2.3/hook", json!(["*"]), "invalid_url"),
        ("https://u:p@hooks.example.com/", json!(["*"]), "invalid_url"),
        ("https://hooks.example.com/", json!(["order.stolen"]), "unknown_event_type"),
        ("https://hooks.example.com/", json!([]), "invalid_field"),
    ] {
        let r = owner.post("/api/v1/admin/webhooks", json!({"url": url, "events": events})).await;
        assert_eq!((r.status, r.code()), (422, code), "{url}: {}", r.body);
    }
    let r = owner
        .post("/api/v1/admin/webhooks", json!({"url": "https://hooks.example.com/", "events": ["*"], "x": 1}))
        .await;
    assert_eq!((r.status, r.code()), (422, "unknown_field"));
}
