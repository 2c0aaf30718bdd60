//! Consent: recorded with time, text version and source through the spine;
//! analytics and the newsletter act only on consent; no non-essential
//! cookie is ever set.

use crate::accounts::{Browser, provision};
use crate::support::{checkout_body, read, spawn};
use serde_json::json;

#[tokio::test]
async fn nothing_but_necessary_cookies_are_set_while_shopping() {
    let app = spawn().await;
    let v = app.product("Filter", 500, 10).await;
    let mut responses = vec![app.get("/api/v1/products").await, app.get("/api/v1/consent").await];
    let cart = app.cart_with(&v, 1).await;
    responses.push(app.get(&format!("/api/v1/carts/{cart}")).await);
    responses.push(app.post("/api/v1/checkout", checkout_body(&cart)).await);
    responses.push(app.post("/api/v1/analytics/events", json!({"path": "/"})).await);
    for r in &responses {
        assert!(r.headers.get("set-cookie").is_none(), "a cookie was set: {:?}", r.headers.get("set-cookie"));
    }
    // Without consent nothing is counted.
    let r = app.post("/api/v1/analytics/events", json!({"path": "/products/filter"})).await;
    assert_eq!(r.body["counted"], false);
}

#[tokio::test]
async fn visitors_choices_are_remembered_versioned_and_drive_analytics() {
    let app = spawn().await;
    let r = app.get("/api/v1/consent").await;
    let purposes = r.body["purposes"].as_array().expect("purposes");
    assert_eq!(purposes.len(), 4);
    assert!(purposes.iter().all(|p| p["version"].as_str().is_some_and(|v| v.len() == 16)));
    assert_eq!(r.body["choices"], json!({"necessary": true}), "no choice means no");

    let r = app
        .client
        .put(app.url("/api/v1/consent"))
        .json(&json!({"choices": {"analytics": true, "marketing_email": false}, "source": "cookie_banner"}))
        .send()
        .await
        .expect("send");
    let r = read(r).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.headers.get("set-cookie").expect("consent cookie").to_str().expect("ascii").to_owned();
    assert!(
        cookie.starts_with("__Host-storefort_consent=") && cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );
    let visitor = cookie.split(';').next().expect("pair").to_owned();
    assert_eq!(r.body["choices"]["analytics"], true);
    assert_eq!(r.body["choices"]["marketing_email"], false);

    let view = |path: &'static str| {
        let (app, visitor) = (&app, visitor.clone());
        async move {
            read(
                app.client
                    .post(app.url("/api/v1/analytics/events"))
                    .header("cookie", visitor)
                    .json(&json!({"path": path}))
                    .send()
                    .await
                    .expect("send"),
            )
            .await
        }
    };
    assert_eq!(view("/products/filter?email=someone@example.com").await.body["counted"], true);
    use storefort_web::Clock;
    let day = storefort_web::clock::rfc3339(app.clock.now_ms())[..10].to_owned();
    assert_eq!(
        app.store.page_views(&day, "/products/filter").await.expect("views"),
        1,
        "counted without its query string"
    );

    // Withdrawal stops it at once.
    let r = read(
        app.client
            .put(app.url("/api/v1/consent"))
            .header("cookie", visitor.clone())
            .json(&json!({"choices": {"analytics": false}, "source": "cookie_banner"}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert!(r.headers.get("set-cookie").is_none(), "the existing choice cookie is kept");
    assert_eq!(view("/products/filter").await.body["counted"], false);
    // Necessary cannot be switched, and unknown purposes are refused.
    for bad in [json!({"necessary": false}), json!({"telepathy": true}), json!({})] {
        let r = app
            .client
            .put(app.url("/api/v1/consent"))
            .json(&json!({"choices": bad, "source": "api"}))
            .send()
            .await
            .expect("send");
        assert_eq!(read(r).await.status, 422);
    }
    // Every grant and withdrawal is in the ledger, with version and source.
    let entries = app.store.ledger_entries(0, app.store.ledger_size().await.expect("size")).await.expect("entries");
    let consent: Vec<_> = entries.iter().filter(|e| e.kind.starts_with("consent_")).collect();
    assert_eq!(consent.len(), 3, "grant analytics, refuse marketing, withdraw analytics");
    assert!(consent.iter().all(|e| e.entry.contains("text_version") && e.entry.contains("cookie_banner")));
    assert!(crate::ledger::audit(&app).await.problems.is_empty());
}

#[tokio::test]
async fn the_newsletter_reaches_only_customers_who_consented() {
    let app = spawn().await;
    let yes = provision(&app.store, &app.state, "yes@example.com", "customer").await;
    let no = provision(&app.store, &app.state, "no@example.com", "customer").await;
    let _silent = provision(&app.store, &app.state, "silent@example.com", "customer").await;
    for (account, granted) in [(&yes, true), (&no, false)] {
        let mut b = Browser::new(&app);
        b.sign_in(account).await;
        let r = b
            .send(
                reqwest::Method::PUT,
                "/api/v1/consent",
                Some(json!({"choices": {"marketing_email": granted}, "source": "account_settings"})),
            )
            .await;
        assert_eq!(r.body["choices"]["marketing_email"], granted, "{}", r.body);
    }
    let _ = std::fs::remove_dir_all(app.dir.path().join("outbox"));
    let mut owner = app.owner_browser().await;
    let r =
        owner.post("/api/v1/admin/newsletter", json!({"subject": "New beans", "body": "Fresh from Ethiopia."})).await;
    assert_eq!((r.status, r.body["sent"].as_u64()), (200, Some(1)), "{}", r.body);
    let mut mails = Vec::new();
    for _ in 0..100 {
        mails = std::fs::read_dir(app.dir.path().join("outbox"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .map(|e| std::fs::read_to_string(e.path()).expect("mail"))
                    .collect()
            })
            .unwrap_or_default();
        if !mails.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("To: yes@example.com"), "{}", mails[0]);
    // A customer may not send it.
    let mut b = Browser::new(&app);
    b.sign_in(&yes).await;
    let r = b.post("/api/v1/admin/newsletter", json!({"subject": "x", "body": "y"})).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    // The export lists the consents.
    let export = b.get("/api/v1/account/export").await;
    assert!(export.body["consents"].as_array().is_some_and(|c| !c.is_empty()), "{}", export.body);
}
