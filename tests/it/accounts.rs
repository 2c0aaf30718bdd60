//! Test accounts and a cookie-carrying "browser" for identity tests.
//!
//! Accounts are provisioned straight through the store (as `storefort admin
//! create` does) so tests of other areas need no sign-in dance; the sign-in
//! flows themselves are tested over HTTP in `identity.rs`.

use crate::support::{Reply, TestApp, read};
use serde_json::{Value, json};
use storefort_auth::{AccountRole, PasswordHasher, Permission, TotpSecret, recovery};
use storefort_core::{Actor, Email, EventKind, SecurityEvent};
use storefort_store::{NewAccount, NewApiToken, Store, hash_secret};
use storefort_web::AppState;
use storefort_web::identity::email_key;

/// The Origin the test store accepts on cookie writes.
pub const ORIGIN: &str = "http://localhost:8080";

/// A password that passes the staff policy.
pub const PASSWORD: &str = "velvet-harbor-quartz-lantern";

pub struct TestAccount {
    pub id: String,
    pub email: String,
    pub password: String,
    /// The confirmed TOTP secret (staff), if any.
    pub totp: Option<Vec<u8>>,
}

impl TestAccount {
    /// The TOTP code at unix time `seconds`.
    pub fn code_at(&self, seconds: i64) -> String {
        let secret = TotpSecret::from_bytes(self.totp.clone().expect("account has TOTP"));
        secret.code_at(u64::try_from(seconds).expect("time")).expect("code")
    }
}

/// An active, verified account; staff roles get a confirmed TOTP secret.
pub async fn provision(store: &Store, state: &AppState, email: &str, role: &str) -> TestAccount {
    provision_with(store, state, email, role, &PasswordHasher::owasp()).await
}

/// As [`provision`], with the password hashed by `hasher`.
pub async fn provision_with(
    store: &Store,
    state: &AppState,
    email: &str,
    role: &str,
    hasher: &PasswordHasher,
) -> TestAccount {
    let id = uuid::Uuid::now_v7().to_string();
    let parsed = Email::parse(email).expect("email");
    let hash = hasher.hash(PASSWORD).expect("hash");
    let sealed = state.vault().encrypt_new(&id, 0, &[("email", email)]).await.expect("encrypt").remove(0);
    let mut tx = store.begin_write(0, "operator", None).await.expect("tx");
    tx.insert_account(&NewAccount {
        id: id.clone(),
        email: sealed,
        email_index: state.key().email_index(&email_key(&parsed)),
        role: role.into(),
        password_hash: hash,
        email_verified: true,
    })
    .await
    .expect("account");
    let totp = if AccountRole::parse(role).expect("role").is_staff() {
        let secret = TotpSecret::generate().expect("secret");
        let sealed = storefort_web::identity::seal_totp(state, &id, &secret).expect("seal");
        tx.begin_totp(&id, &sealed).await.expect("totp");
        tx.confirm_totp(&id, &[recovery::hash("test-recovery-code")]).await.expect("confirm");
        Some(secret.as_bytes().to_vec())
    } else {
        None
    };
    tx.commit(SecurityEvent::new(EventKind::AccountCreated, Actor::Operator)).await.expect("commit");
    TestAccount { id, email: email.into(), password: PASSWORD.into(), totp }
}

/// A staff account whose second factor was reset (as an owner's reset
/// would leave it): it may only enroll one.
pub async fn provision_without_factor(store: &Store, state: &AppState, email: &str, role: &str) -> TestAccount {
    let mut account = provision(store, state, email, role).await;
    let mut tx = store.begin_write(0, "operator", None).await.expect("tx");
    tx.remove_totp(&account.id).await.expect("remove");
    tx.append("second_factor_reset", vec![account.id.clone()], json!({})).await.expect("append");
    tx.commit(SecurityEvent::new(EventKind::SecondFactorReset, Actor::Operator)).await.expect("commit");
    account.totp = None;
    account
}

/// An API token with every scope the role may grant.
pub async fn api_token(store: &Store, account_id: &str, role: &str) -> String {
    let role = AccountRole::parse(role).expect("role");
    let scopes = Permission::ALL
        .into_iter()
        .filter(|p| p.grantable_to_tokens() && storefort_auth::allows(role, *p))
        .map(|p| p.as_str().to_owned())
        .collect();
    let token = format!("sfa_{}", storefort_web::secrets::random_token().expect("rng"));
    let mut tx = store.begin_write(0, "operator", None).await.expect("tx");
    tx.insert_api_token(&NewApiToken {
        id: uuid::Uuid::now_v7().to_string(),
        account_id: account_id.into(),
        name: "tests".into(),
        token_hash: hash_secret(&token),
        scopes,
        expires_at: i64::MAX / 2,
    })
    .await
    .expect("token");
    tx.append("api_token_created", vec![account_id.into()], json!({})).await.expect("append");
    tx.commit(SecurityEvent::new(EventKind::ApiTokenCreated, Actor::Operator)).await.expect("commit");
    token
}

/// A client holding one session cookie, sending the CSRF token and the
/// store's Origin on writes, as the store's own pages would.
pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Browser { app, cookie: None, csrf: None }
    }

    /// Sends a request and keeps any new session cookie and CSRF token.
    pub async fn send(&mut self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        self.send_with(method, path, body, &[]).await
    }

    /// As `send`, with extra headers (an Idempotency-Key, say).
    pub async fn send_with(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.app.client.request(method.clone(), self.app.url(path)).header("origin", ORIGIN);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("__Host-storefort_session={c}"));
        }
        if let Some(t) = &self.csrf {
            req = req.header("x-csrf-token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let reply = read(req.send().await.expect("send")).await;
        if let Some(set) = reply.headers.get("set-cookie").and_then(|v| v.to_str().ok()) {
            let value = set.split(';').next().and_then(|kv| kv.split_once('=')).map(|(_, v)| v.to_owned());
            self.cookie = value.filter(|v| !v.is_empty());
        }
        if let Some(t) = reply.body["csrf_token"].as_str() {
            self.csrf = Some(t.to_owned());
        }
        reply
    }

    pub async fn post(&mut self, path: &str, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// Signs in with password and, if asked, the TOTP code for "now".
    pub async fn sign_in(&mut self, account: &TestAccount) -> Reply {
        let r = self.post("/api/v1/auth/sign-in", json!({"email": account.email, "password": account.password})).await;
        if r.body["status"] == "second_factor_required" {
            let now = self.app.now_s();
            return self.post("/api/v1/auth/second-factor", json!({"totp": account.code_at(now)})).await;
        }
        r
    }
}

impl TestApp {
    /// The test clock in unix seconds.
    pub fn now_s(&self) -> i64 {
        use storefort_web::Clock;
        self.clock.now_ms() / 1000
    }

    /// A signed-in owner session that has just used its second factor.
    pub async fn owner_browser(&self) -> Browser<'_> {
        let mut b = Browser::new(self);
        let r = b.sign_in(&self.owner).await;
        assert_eq!((r.status, r.body["status"].as_str()), (200, Some("signed_in")), "{}", r.body);
        b
    }
}
