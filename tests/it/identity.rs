//! Identity and access over HTTP: sign-up, sign-in, second factors,
//! sessions, CSRF, API tokens, step-up, throttling, enumeration and the
//! route-permission walk.

use crate::accounts::{Browser, ORIGIN, PASSWORD, provision};
use crate::support::{TestApp, read, spawn};
use reqwest::Method;
use serde_json::json;

/// The newest mail in the outbox, and the token in it.
async fn last_mail_token(app: &TestApp) -> (String, Option<String>) {
    let dir = app.dir.path().join("outbox");
    for _ in 0..100 {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        if let Some(last) = files.last() {
            let text = std::fs::read_to_string(last).expect("mail");
            let token = text.split("Your code: ").nth(1).map(|t| t.chars().take(43).collect());
            return (text, token);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no mail in the outbox");
}

async fn clear_outbox(app: &TestApp) {
    let _ = std::fs::remove_dir_all(app.dir.path().join("outbox"));
}

async fn events_of(app: &TestApp, kind: &str) -> Vec<serde_json::Value> {
    let r = app.admin(Method::GET, "/api/v1/admin/events?limit=500", None).await;
    r.body["items"].as_array().expect("items").iter().filter(|e| e["kind"] == kind).cloned().collect()
}

#[tokio::test]
async fn customers_sign_up_verify_sign_in_and_out_with_a_host_cookie() {
    let app = spawn().await;
    let mut b = Browser::new(&app);
    let r = b.post("/api/v1/auth/sign-up", json!({"email": "Grace@Example.com", "password": "short"})).await;
    assert_eq!((r.status, r.code()), (422, "weak_password"));
    let r = b.post("/api/v1/auth/sign-up", json!({"email": "grace@example.com", "password": "password123"})).await;
    assert_eq!((r.status, r.code()), (422, "weak_password"), "common passwords are refused");
    let r = b.post("/api/v1/auth/sign-up", json!({"email": "grace@example.com", "password": PASSWORD})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let (_, token) = last_mail_token(&app).await;
    let token = token.expect("verification token");
    // Not verified yet: the right password is not enough.
    let creds = json!({"email": "grace@example.com", "password": PASSWORD});
    let r = b.post("/api/v1/auth/sign-in", creds.clone()).await;
    assert_eq!((r.status, r.code()), (403, "email_not_verified"));
    assert_eq!(b.post("/api/v1/auth/verify-email", json!({"token": token})).await.status, 200);
    let r = b.post("/api/v1/auth/verify-email", json!({"token": token})).await;
    assert_eq!((r.status, r.code()), (400, "invalid_token"), "a link works once");

    // Sign-up again with the same email: the same answer, a different mail.
    clear_outbox(&app).await;
    let r = b.post("/api/v1/auth/sign-up", json!({"email": "GRACE@example.com", "password": PASSWORD})).await;
    assert_eq!(r.status, 202);
    let (mail, token) = last_mail_token(&app).await;
    assert!(token.is_none() && mail.contains("Subject: Your Storefort Demo Store account"), "{mail}");

    let resp = app
        .client
        .post(app.url("/api/v1/auth/sign-in"))
        .header("origin", ORIGIN)
        .json(&creds)
        .send()
        .await
        .expect("send");
    let cookie = resp.headers().get("set-cookie").expect("cookie").to_str().expect("ascii").to_owned();
    assert!(cookie.starts_with("__Host-storefort_session="), "{cookie}");
    for attr in ["; Path=/", "; Secure", "; HttpOnly", "; SameSite=Lax", "; Max-Age="] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    let r = b.post("/api/v1/auth/sign-in", creds).await;
    assert_eq!(r.body["status"], "signed_in", "{}", r.body);
    let r = b.get("/api/v1/auth/session").await;
    assert_eq!((r.status, r.body["role"].as_str()), (200, Some("customer")));
    // A customer session on a staff route: refused and recorded.
    let r = b.get("/api/v1/admin/events").await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let old_cookie = b.cookie.clone();
    assert_eq!(b.post("/api/v1/auth/sign-out", json!({})).await.status, 200);
    b.cookie = old_cookie;
    let r = b.get("/api/v1/auth/session").await;
    assert_eq!((r.status, r.code()), (401, "session_expired"), "a cookie after sign-out is dead");
    assert!(!events_of(&app, "access_denied").await.is_empty());
    assert!(!events_of(&app, "credential_rejected").await.is_empty());
}

#[tokio::test]
async fn staff_without_a_second_factor_may_only_enroll_then_totp_and_recovery_codes_work() {
    let app = spawn().await;
    let mut staff = crate::accounts::provision_without_factor(&app.store, &app.state, "sam@example.com", "staff").await;

    let mut b = Browser::new(&app);
    let r = b.sign_in(&staff).await;
    assert_eq!(r.body["status"], "enrollment_required", "{}", r.body);
    // Every staff route refuses until a factor is enrolled.
    let doc = storefort_web::openapi();
    let mut refused = 0;
    for (path, item) in &doc.paths.paths {
        for (method, op) in [("GET", &item.get), ("POST", &item.post), ("PUT", &item.put), ("DELETE", &item.delete)] {
            let Some(_) = op else { continue };
            let route = path.clone();
            let permission =
                storefort_web::identity::policy::required(&method.parse().expect("method"), &route).expect("declared");
            if matches!(permission, storefort_auth::Permission::Public | storefort_auth::Permission::SignedIn) {
                continue;
            }
            let concrete = route.replace("{id}", "0190a0a0-0000-7000-8000-000000000000");
            let body = (method != "GET").then(|| json!({}));
            let r = b.send(method.parse().expect("method"), &concrete, body).await;
            assert_eq!((r.status, r.code()), (403, "second_factor_enrollment_required"), "{method} {route}");
            refused += 1;
        }
    }
    assert!(refused >= 15, "{refused}");

    let r = b.post("/api/v1/account/totp", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["otpauth_uri"].as_str().expect("uri").starts_with("otpauth://totp/"));
    assert!(r.body["qr_svg"].as_str().expect("svg").contains("<svg"));
    let sealed = app.store.totp(&staff.id).await.expect("read").expect("pending").secret;
    assert!(sealed.starts_with("v1."), "TOTP secrets are sealed at rest: {sealed}");
    let secret = storefort_web::identity::open_totp(&app.state, &staff.id, &sealed).expect("open");
    staff.totp = Some(secret.as_bytes().to_vec());
    let r = b.post("/api/v1/account/totp/confirm", json!({"totp": "000000"})).await;
    assert_eq!((r.status, r.code()), (401, "invalid_second_factor"));
    let now = app.now_s();
    let r = b.post("/api/v1/account/totp/confirm", json!({"totp": staff.code_at(now)})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let codes: Vec<String> = r.body["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    assert!(r.headers.get("set-cookie").expect("rotated").to_str().expect("ascii").contains("SameSite=Strict"));
    let r = b.get("/api/v1/admin/orders/0190a0a0-0000-7000-8000-000000000000").await;
    assert_eq!((r.status, r.code()), (404, "not_found"), "staff routes work after enrollment");

    // Next sign-in: password, then the code; the same code again is a replay.
    app.clock.advance_ms(30_000);
    let mut b = Browser::new(&app);
    let r = b.post("/api/v1/auth/sign-in", json!({"email": staff.email, "password": staff.password})).await;
    assert_eq!(r.body["status"], "second_factor_required", "{}", r.body);
    assert_eq!(b.get("/api/v1/auth/session").await.code(), "second_factor_required");
    let code = staff.code_at(app.now_s());
    let r = b.post("/api/v1/auth/second-factor", json!({"totp": code})).await;
    assert_eq!(r.body["status"], "signed_in", "{}", r.body);
    let mut again = Browser::new(&app);
    again.post("/api/v1/auth/sign-in", json!({"email": staff.email, "password": staff.password})).await;
    let r = again.post("/api/v1/auth/second-factor", json!({"totp": code})).await;
    assert_eq!((r.status, r.code()), (401, "invalid_second_factor"), "replayed code");
    // A recovery code works, once.
    let r = again.post("/api/v1/auth/second-factor", json!({"recovery_code": codes[0]})).await;
    assert_eq!(r.body["status"], "signed_in", "{}", r.body);
    let mut third = Browser::new(&app);
    third.post("/api/v1/auth/sign-in", json!({"email": staff.email, "password": staff.password})).await;
    let r = third.post("/api/v1/auth/second-factor", json!({"recovery_code": codes[0]})).await;
    assert_eq!((r.status, r.code()), (401, "invalid_second_factor"));
    // Staff sessions end after 30 idle minutes.
    app.clock.advance_ms(31 * 60_000);
    assert_eq!(b.get("/api/v1/auth/session").await.code(), "session_expired");
}

#[tokio::test]
async fn clients_without_cookies_finish_a_two_factor_sign_in_with_the_challenge() {
    let app = spawn().await;
    let creds = json!({"email": app.owner.email, "password": app.owner.password});
    let r = app.post("/api/v1/auth/sign-in", creds.clone()).await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["next"].as_str()),
        (Some("second_factor_required"), Some("/api/v1/auth/second-factor"))
    );
    let challenge = r.body["challenge"].as_str().expect("challenge").to_owned();
    let code = app.owner.code_at(app.now_s());
    let r = app.post("/api/v1/auth/second-factor", json!({"totp": "12345", "challenge": challenge})).await;
    assert_eq!((r.status, r.code()), (401, "invalid_second_factor"), "malformed code");
    let r = app.post("/api/v1/auth/second-factor", json!({"totp": code, "challenge": challenge})).await;
    assert_eq!(r.body["status"], "signed_in", "{}", r.body);
    let r = app.post("/api/v1/auth/second-factor", json!({"totp": code, "challenge": challenge})).await;
    assert_eq!((r.status, r.code()), (401, "challenge_expired"), "a challenge is used once");
    // Password and code in one request.
    app.clock.advance_ms(30_000);
    let mut both = creds.clone();
    both["totp"] = json!(app.owner.code_at(app.now_s()));
    assert_eq!(app.post("/api/v1/auth/sign-in", both.clone()).await.body["status"], "signed_in");
    let r = app.post("/api/v1/auth/sign-in", both).await;
    assert_eq!((r.status, r.code()), (401, "invalid_second_factor"), "the same code twice");
}

#[tokio::test]
async fn every_route_declares_a_permission() {
    let doc = storefort_web::openapi();
    let mut checked = 0;
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
            ("PATCH", &item.patch),
        ];
        for (method, op) in ops {
            if op.is_some() {
                let route = path.clone();
                assert!(
                    storefort_web::identity::policy::required(&method.parse().expect("method"), &route).is_some(),
                    "{method} {route} declares no permission"
                );
                checked += 1;
            }
        }
    }
    for route in storefort_web::PLAIN_ROUTES {
        assert!(storefort_web::identity::policy::required(&Method::GET, route).is_some(), "{route}");
    }
    assert!(checked >= 40, "{checked}");
}

#[tokio::test]
async fn cookie_writes_need_the_csrf_token_and_the_stores_origin() {
    let app = spawn().await;
    let mut b = app.owner_browser().await;
    let csrf = b.csrf.take();
    let r = b.post("/api/v1/auth/sign-out", json!({})).await;
    assert_eq!((r.status, r.code()), (403, "csrf_failed"));
    b.csrf = csrf;
    let resp = app
        .client
        .post(app.url("/api/v1/auth/sign-out"))
        .header("origin", "https://evil.example")
        .header("cookie", format!("__Host-storefort_session={}", b.cookie.clone().expect("cookie")))
        .header("x-csrf-token", b.csrf.clone().expect("csrf"))
        .send()
        .await
        .expect("send");
    let r = read(resp).await;
    assert_eq!((r.status, r.code()), (403, "csrf_failed"));
    assert_eq!(b.post("/api/v1/auth/sign-out", json!({})).await.status, 200);
    assert!(events_of(&app, "csrf_rejected").await.len() >= 2);
}

#[tokio::test]
async fn step_up_guards_api_tokens_and_tokens_are_scoped_and_expire() {
    let app = spawn().await;
    let mut owner = app.owner_browser().await;
    app.clock.advance_ms(6 * 60_000);
    let body = json!({"name": "sync", "scopes": ["read_orders"], "expires_in_days": 1});
    let r = owner.post("/api/v1/account/api-tokens", body.clone()).await;
    assert_eq!((r.status, r.code()), (403, "step_up_required"));
    let r = owner.post("/api/v1/auth/step-up", json!({"totp": app.owner.code_at(app.now_s())})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = owner
        .post("/api/v1/account/api-tokens", json!({"name": "x", "scopes": ["manage_staff"], "expires_in_days": 1}))
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid_scope"));
    let r = owner.post("/api/v1/account/api-tokens", body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.body["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("sfa_"));
    let with = |path: &str| app.client.get(app.url(path)).bearer_auth(&token).send();
    let r = read(with("/api/v1/admin/orders/0190a0a0-0000-7000-8000-000000000000").await.expect("send")).await;
    assert_eq!(r.status, 404, "read_orders scope reaches order reads");
    let r = read(with("/api/v1/admin/events").await.expect("send")).await;
    assert_eq!((r.status, r.code()), (403, "insufficient_scope"));
    // No token, however scoped, reaches the account's own security: a leaked
    // token must not enroll its own passkey and become a session.
    for (method, path) in [
        (Method::POST, "/api/v1/account/passkeys/start"),
        (Method::POST, "/api/v1/account/totp"),
        (Method::GET, "/api/v1/account/sessions"),
        (Method::GET, "/api/v1/admin/staff"),
        (Method::POST, "/api/v1/account/api-tokens"),
    ] {
        let mut req = app.client.request(method.clone(), app.url(path)).bearer_auth(&app.admin_token);
        if method != Method::GET {
            req = req.json(&json!({}));
        }
        let r = read(req.send().await.expect("send")).await;
        assert_eq!((r.status, r.code()), (403, "insufficient_scope"), "{method} {path}");
    }
    app.clock.advance_ms(86_400_000 + 1);
    let r = read(with("/api/v1/admin/orders/0190a0a0-0000-7000-8000-000000000000").await.expect("send")).await;
    assert_eq!((r.status, r.code()), (401, "token_expired"));
}

#[tokio::test]
async fn failures_back_off_then_lock_with_an_event_and_the_lock_expires() {
    let app = spawn().await;
    let customer = provision(&app.store, &app.state, "lin@example.com", "customer").await;
    let wrong = json!({"email": customer.email, "password": "not-the-password"});
    let mut b = Browser::new(&app);
    for attempt in 1..=10 {
        let r = b.post("/api/v1/auth/sign-in", wrong.clone()).await;
        assert_eq!((r.status, r.code()), (401, "invalid_credentials"), "attempt {attempt}");
        if (4..10).contains(&attempt) {
            // Backing off: the next try is refused unchecked.
            let r = b.post("/api/v1/auth/sign-in", wrong.clone()).await;
            assert_eq!((r.status, r.code()), (429, "too_many_attempts"), "attempt {attempt}");
            assert!(r.headers.get("retry-after").is_some());
            app.clock.advance_ms(61_000);
        }
    }
    let right = json!({"email": customer.email, "password": customer.password});
    let r = b.post("/api/v1/auth/sign-in", right.clone()).await;
    assert_eq!((r.status, r.code()), (429, "too_many_attempts"), "locked even with the right password");
    let locks = events_of(&app, "account_locked").await;
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0]["severity"], "critical");
    app.clock.advance_ms(15 * 60_000 + 1);
    let r = b.post("/api/v1/auth/sign-in", right).await;
    assert_eq!(r.body["status"], "signed_in", "{}", r.body);
    // Unknown emails are throttled the same way, so throttling reveals nothing.
    let ghost = json!({"email": "nobody@example.com", "password": "not-the-password"});
    for _ in 0..4 {
        b.post("/api/v1/auth/sign-in", ghost.clone()).await;
    }
    assert_eq!(b.post("/api/v1/auth/sign-in", ghost).await.code(), "too_many_attempts");
}

#[tokio::test]
async fn unknown_emails_and_wrong_passwords_look_and_take_the_same() {
    let app = spawn().await;
    // Enough samples that other tests running in parallel even out.
    const N: usize = 40;
    let mut accounts = Vec::new();
    for i in 0..N {
        accounts.push(provision(&app.store, &app.state, &format!("user{i}@example.com"), "customer").await);
    }
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        let mut pair = [(format!("ghost{i}@example.com"), &mut unknown), (account.email.clone(), &mut wrong)];
        // Alternate which goes first, so drift in machine load cancels out.
        if i % 2 == 1 {
            pair.reverse();
        }
        for (email, times) in pair {
            // Past every backoff window, so throttling never answers instead.
            app.clock.advance_ms(61_000);
            let started = std::time::Instant::now();
            let r = app.post("/api/v1/auth/sign-in", json!({"email": email, "password": "Wrong-password-1"})).await;
            times.push(started.elapsed().as_secs_f64());
            assert_eq!((r.status, r.code()), (401, "invalid_credentials"));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (u, w) = (median(&mut unknown), median(&mut wrong));
    let diff = (u - w).abs() / u.min(w);
    assert!(diff < 0.20, "median unknown {u:.4}s vs wrong password {w:.4}s differ by {:.0}%", diff * 100.0);
    // Reset requests answer the same for both, in about the same time.
    let (mut unknown, mut known) = (Vec::new(), Vec::new());
    for (i, account) in accounts.iter().enumerate().take(15) {
        for (email, times) in [(format!("ghost{i}@example.com"), &mut unknown), (account.email.clone(), &mut known)] {
            let started = std::time::Instant::now();
            let r = app.post("/api/v1/auth/password-reset", json!({"email": email})).await;
            times.push(started.elapsed().as_secs_f64());
            assert_eq!((r.status, r.body.clone()), (202, json!({"status": "reset_sent"})));
        }
    }
    let (u, k) = (median(&mut unknown), median(&mut known));
    let diff = (u - k).abs() / u.min(k);
    assert!(diff < 0.20, "reset: median unknown {u:.4}s vs known {k:.4}s differ by {:.0}%", diff * 100.0);
}

#[tokio::test]
async fn password_reset_ends_every_session_and_works_once() {
    let app = spawn().await;
    let customer = provision(&app.store, &app.state, "rita@example.com", "customer").await;
    let mut old = Browser::new(&app);
    assert_eq!(old.sign_in(&customer).await.body["status"], "signed_in");
    clear_outbox(&app).await;
    assert_eq!(app.post("/api/v1/auth/password-reset", json!({"email": customer.email})).await.status, 202);
    let (_, token) = last_mail_token(&app).await;
    let token = token.expect("token");
    let new_password = "saffron-glacier-tuba-meadow";
    let r = app.post("/api/v1/auth/password-reset/confirm", json!({"token": token, "password": new_password})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.post("/api/v1/auth/password-reset/confirm", json!({"token": token, "password": new_password})).await;
    assert_eq!((r.status, r.code()), (400, "invalid_token"));
    assert_eq!(old.get("/api/v1/auth/session").await.code(), "session_expired");
    // A link past its hour, and a malformed one, are refused the same way.
    clear_outbox(&app).await;
    app.post("/api/v1/auth/password-reset", json!({"email": customer.email})).await;
    let (_, late) = last_mail_token(&app).await;
    app.clock.advance_ms(61 * 60_000);
    let r = app
        .post("/api/v1/auth/password-reset/confirm", json!({"token": late, "password": "x-ray-tundra-pillow-43"}))
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_token"));
    let r = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({"token": "AAAA-not-a-token", "password": "x-ray-tundra-pillow-43"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_token"));
    let r = app.post("/api/v1/auth/sign-in", json!({"email": customer.email, "password": new_password})).await;
    assert_eq!(r.body["status"], "signed_in");
}

#[tokio::test]
async fn owners_manage_staff_and_everything_is_in_the_ledger_without_emails() {
    let app = spawn().await;
    let staff = provision(&app.store, &app.state, "sue@example.com", "staff").await;
    let mut sue = Browser::new(&app);
    assert_eq!(sue.sign_in(&staff).await.body["status"], "signed_in");
    let mut owner = app.owner_browser().await;
    let r = owner.get(&format!("/api/v1/admin/staff/{}/sessions", staff.id)).await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(1), "{}", r.body);
    let r = owner
        .send(Method::PUT, &format!("/api/v1/admin/staff/{}/role", staff.id), Some(json!({"role": "support"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(sue.get("/api/v1/auth/session").await.code(), "session_expired", "a role change ends sessions");
    let mut sue = Browser::new(&app);
    app.clock.advance_ms(30_000);
    assert_eq!(sue.sign_in(&staff).await.body["status"], "signed_in");
    let r = sue
        .send(
            Method::PUT,
            "/api/v1/admin/variants/0190a0a0-0000-7000-8000-000000000000/stock",
            Some(json!({"available": 1})),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "support cannot edit the catalog");
    let r = owner.send(Method::DELETE, &format!("/api/v1/admin/staff/{}/sessions", staff.id), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(sue.get("/api/v1/auth/session").await.code(), "session_expired");
    // Staff cannot manage staff.
    let r = sue.get("/api/v1/admin/staff").await;
    assert_eq!(r.status, 401);
    assert_eq!(events_of(&app, "role_changed").await.len(), 1);

    let entries = app.store.ledger_entries(0, app.store.ledger_size().await.expect("size")).await.expect("entries");
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    for kind in ["account_created", "signed_in", "role_changed", "sessions_revoked"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    for e in &entries {
        assert!(!e.entry.contains('@'), "personal data in the ledger: {}", e.entry);
    }
    let report = crate::ledger::audit(&app).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test]
async fn a_hash_with_old_parameters_is_replaced_at_sign_in_through_the_ledger() {
    let app = spawn().await;
    let old = storefort_auth::PasswordHasher::new(19_456, 3, 1).expect("params");
    let customer = crate::accounts::provision_with(&app.store, &app.state, "olga@example.com", "customer", &old).await;
    let before = app.store.account(&customer.id).await.expect("read").expect("account").password_hash;
    assert!(before.contains("m=19456,t=3,p=1"), "{before}");
    assert_eq!(Browser::new(&app).sign_in(&customer).await.body["status"], "signed_in");
    let after = app.store.account(&customer.id).await.expect("read").expect("account").password_hash;
    assert!(after.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{after}");
    let entry = app.store.latest_entry_for(&customer.id).await.expect("read");
    let kinds: Vec<String> = app
        .store
        .ledger_entries(0, app.store.ledger_size().await.expect("size"))
        .await
        .expect("entries")
        .into_iter()
        .filter(|e| e.entry.contains(&customer.id))
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"password_changed".to_owned()), "{kinds:?} {entry:?}");
    assert!(crate::ledger::audit(&app).await.problems.is_empty());
    // Still signs in with the same password.
    assert_eq!(Browser::new(&app).sign_in(&customer).await.body["status"], "signed_in");
}

#[tokio::test]
async fn staff_sessions_end_after_twelve_hours_however_busy() {
    let app = spawn().await;
    let mut b = app.owner_browser().await;
    for _ in 0..35 {
        app.clock.advance_ms(20 * 60_000);
        assert_eq!(b.get("/api/v1/auth/session").await.status, 200);
    }
    app.clock.advance_ms(20 * 60_000 + 1);
    assert_eq!(b.get("/api/v1/auth/session").await.code(), "session_expired");
}

#[tokio::test]
async fn people_list_and_end_their_own_sessions() {
    let app = spawn().await;
    let customer = provision(&app.store, &app.state, "ines@example.com", "customer").await;
    let mut laptop = Browser::new(&app);
    let mut phone = Browser::new(&app);
    laptop.sign_in(&customer).await;
    phone.sign_in(&customer).await;
    let r = laptop.get("/api/v1/account/sessions").await;
    let items = r.body["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 2, "{}", r.body);
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    let other = items.iter().find(|s| s["current"] == false).expect("phone")["id"].as_str().expect("id").to_owned();
    let r = laptop.send(Method::DELETE, &format!("/api/v1/account/sessions/{other}"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(phone.get("/api/v1/auth/session").await.code(), "session_expired");
    assert_eq!(laptop.get("/api/v1/auth/session").await.status, 200);
    let r = laptop.send(Method::DELETE, &format!("/api/v1/account/sessions/{other}"), None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    assert!(!events_of(&app, "session_revoked").await.is_empty());
}

#[tokio::test]
async fn an_invited_staff_member_sets_a_password_then_must_enroll_and_owners_can_reset_factors() {
    let app = spawn().await;
    let mut owner = app.owner_browser().await;
    clear_outbox(&app).await;
    let r = owner.post("/api/v1/admin/staff", json!({"email": "new@example.com", "role": "staff"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let staff_id = r.body["id"].as_str().expect("id").to_owned();
    let r = owner.post("/api/v1/admin/staff", json!({"email": "new@example.com", "role": "staff"})).await;
    assert_eq!((r.status, r.code()), (409, "account_exists"));
    let (_, token) = last_mail_token(&app).await;
    let token = token.expect("invitation token");
    let r = app.post("/api/v1/auth/password-reset/confirm", json!({"token": token, "password": "tulip-orbit"})).await;
    assert_eq!((r.status, r.code()), (422, "weak_password"), "staff need 12 characters");
    let r = app.post("/api/v1/auth/password-reset/confirm", json!({"token": token, "password": PASSWORD})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut staff = Browser::new(&app);
    let r = staff.post("/api/v1/auth/sign-in", json!({"email": "new@example.com", "password": PASSWORD})).await;
    assert_eq!(r.body["status"], "enrollment_required", "{}", r.body);

    // An enrolled staff member loses their factors to an owner's reset.
    let sam = provision(&app.store, &app.state, "sam@example.com", "staff").await;
    let mut sam_browser = Browser::new(&app);
    assert_eq!(sam_browser.sign_in(&sam).await.body["status"], "signed_in");
    app.clock.advance_ms(6 * 60_000);
    let path = format!("/api/v1/admin/staff/{}/reset-second-factor", sam.id);
    assert_eq!(owner.post(&path, json!({})).await.code(), "step_up_required");
    owner.post("/api/v1/auth/step-up", json!({"totp": app.owner.code_at(app.now_s())})).await;
    assert_eq!(owner.post(&path, json!({})).await.status, 200);
    assert_eq!(sam_browser.get("/api/v1/auth/session").await.code(), "session_expired");
    let r = Browser::new(&app).sign_in(&sam).await;
    assert_eq!(r.body["status"], "enrollment_required", "{}", r.body);
    let r = owner.get("/api/v1/admin/staff").await;
    let listed: Vec<&str> =
        r.body["items"].as_array().expect("items").iter().map(|i| i["id"].as_str().expect("id")).collect();
    assert!(listed.contains(&staff_id.as_str()) && listed.contains(&sam.id.as_str()));
    assert!(crate::ledger::audit(&app).await.problems.is_empty());
}
