//! Test harness: a store on a fresh database, served on a real loopback
//! socket, with a clock the test moves.
//!
//! SQLite by default; PostgreSQL when `STOREFORT_TEST_POSTGRES_URL` is set,
//! each test in its own schema so tests never see each other's rows.

use serde_json::{Value, json};
use std::sync::Arc;
use storefort_store::{NewProduct, NewVariant, Store, StoreOptions};
use storefort_web::{AppState, ManualClock, ServerKey, Settings};
use tempfile::TempDir;

pub use crate::accounts::TestAccount;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub clock: ManualClock,
    /// An API token of the owner, with every scope an owner may grant.
    pub admin_token: String,
    /// The owner account behind it, with a confirmed TOTP credential.
    pub owner: TestAccount,
    pub store: Store,
    pub db_url: String,
    pub dir: TempDir,
}

/// Where a test's database lives: a SQLite file in `dir`, or a fresh schema
/// in the PostgreSQL database named by STOREFORT_TEST_POSTGRES_URL.
pub async fn fresh_database_url(dir: &TempDir) -> String {
    match std::env::var("STOREFORT_TEST_POSTGRES_URL") {
        Ok(base) if !base.is_empty() => {
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            sqlx_create_schema(&base, &schema).await;
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}options=-c%20search_path%3D{schema}")
        }
        _ => format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
    }
}

async fn sqlx_create_schema(base: &str, schema: &str) {
    // The schema name is generated above, never taken from input.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(base).await.expect("connect to STOREFORT_TEST_POSTGRES_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&pool).await.expect("create schema");
    pool.close().await;
}

pub async fn spawn() -> TestApp {
    spawn_with(test_settings()).await
}

/// The demo settings with rate limits far above what any test sends from
/// its one loopback address; the shield's own tests set their limits.
pub fn test_settings() -> Settings {
    let mut settings = Settings::demo();
    let plenty = storefort_shield::config::Rate::new(1_000_000, 100_000);
    let limits = &mut settings.shield.limits;
    (limits.per_ip, limits.per_account, limits.sign_in, limits.checkout) = (plenty, plenty, plenty, plenty);
    (limits.search, limits.coupon, limits.api_tokens) = (plenty, plenty, plenty);
    settings.shield.shedding.max_in_flight = 4096;
    settings
}

/// Logs stay quiet unless TEST_LOG=1.
fn init_test_logging() {
    if std::env::var("TEST_LOG").is_ok_and(|v| v == "1") {
        let _ = tracing_subscriber::fmt().with_env_filter("info,sqlx=warn").with_test_writer().try_init();
    }
}

pub async fn spawn_with(settings: Settings) -> TestApp {
    spawn_full(settings, None).await
}

/// A store whose mail goes through `mailer` instead of the outbox.
pub async fn spawn_with_mailer(mailer: storefort_web::identity::mailer::Mailer) -> TestApp {
    spawn_full(test_settings(), Some(mailer)).await
}

/// A second store over `db_url` (a restored copy, say) that shares
/// `original`'s key store and master key, as a restore on the same machine
/// would.
pub async fn spawn_over(original: &TestApp, db_url: String) -> TestApp {
    spawn_over_with(original, db_url, test_settings()).await
}

/// `spawn_over` with settings of its own: a second instance of one store.
pub async fn spawn_over_with(original: &TestApp, db_url: String, settings: Settings) -> TestApp {
    let over = (db_url, original.dir.path().to_owned(), original.state.key().clone());
    spawn_inner(settings, None, Some(over)).await
}

async fn spawn_full(settings: Settings, mailer: Option<storefort_web::identity::mailer::Mailer>) -> TestApp {
    spawn_inner(settings, mailer, None).await
}

thread_local! {
    static PLAINTEXT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A store whose vault keeps personal data in plaintext, as the encryption
/// benchmark's baseline does: to prove that baseline really checks out.
pub async fn spawn_plaintext() -> TestApp {
    PLAINTEXT.with(|p| p.set(true));
    let app = spawn().await;
    PLAINTEXT.with(|p| p.set(false));
    app
}

async fn spawn_inner(
    mut settings: Settings,
    mailer: Option<storefort_web::identity::mailer::Mailer>,
    over: Option<(String, std::path::PathBuf, ServerKey)>,
) -> TestApp {
    init_test_logging();
    let dir = tempfile::tempdir().expect("temp dir");
    settings.outbox_dir = dir.path().join("outbox");
    let (db_url, vault_dir, key) = match over {
        Some((url, vault_dir, key)) => (url, vault_dir, key),
        None => (fresh_database_url(&dir).await, dir.path().to_owned(), ServerKey::generate().expect("rng")),
    };
    let store = Store::open(&StoreOptions {
        url: db_url.clone(),
        max_connections: 16,
        ledger_mac_key: [7; 32],
        record_ledger: true,
    })
    .await
    .expect("open store");
    let clock = ManualClock::new();
    let signer = storefort_web::ledger::open_signer(
        &store,
        &[3; 32],
        Some("test.storefort/ledger"),
        Some(dir.path().join("witness")),
        0,
    )
    .await
    .expect("ledger");
    let vault = if PLAINTEXT.with(std::cell::Cell::get) {
        let url = format!("sqlite://{}?mode=rwc", vault_dir.join("keys.db").display());
        let keys = storefort_store::KeyStore::open(&url).await.expect("key store");
        Arc::new(storefort_web::vault::Vault::plaintext_for_benchmarks(keys).await.expect("vault"))
    } else {
        test_vault(&vault_dir).await
    };
    let state = match mailer {
        Some(m) => AppState::with_mailer(store.clone(), settings, Arc::new(clock.clone()), key, signer, vault, m),
        None => AppState::new(store.clone(), settings, Arc::new(clock.clone()), key, signer, vault),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = storefort_web::app(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // A restored copy already holds the first store's owner.
    let owner_email = if vault_dir == dir.path() { "owner@example.com" } else { "owner-restored@example.com" };
    let owner = crate::accounts::provision(&store, &state, owner_email, "owner").await;
    let admin_token = crate::accounts::api_token(&store, &owner.id, "owner").await;
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("client"),
        state,
        clock,
        admin_token,
        owner,
        store,
        db_url,
        dir,
    }
}

/// A key store in `dir/keys.db` (its own database, as in production) under
/// a fresh master key.
pub async fn test_vault(dir: &std::path::Path) -> Arc<storefort_web::vault::Vault> {
    let url = format!("sqlite://{}?mode=rwc", dir.join("keys.db").display());
    let keys = storefort_store::KeyStore::open(&url).await.expect("key store");
    let source = storefort_vault::KeySource::File(dir.join("master.key"));
    let (master, _) = storefort_vault::MasterKey::load(&source).expect("master key");
    Arc::new(storefort_web::vault::Vault::open(master, Vec::new(), Some(source), keys).await.expect("vault"))
}

/// A response read fully: status, headers and JSON body (Null if not JSON).
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

pub async fn read(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply { status, headers, body }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Reply {
        read(self.client.get(self.url(path)).send().await.expect("send")).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        read(self.client.post(self.url(path)).json(&body).send().await.expect("send")).await
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self.client.request(method, self.url(path)).bearer_auth(&self.admin_token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.expect("send")).await
    }

    /// Adds a one-variant product with `stock` units at `price` cents; returns
    /// the variant id.
    pub async fn product(&self, title: &str, price: i64, stock: i64) -> String {
        let variant_id = uuid::Uuid::now_v7().to_string();
        let product = NewProduct {
            id: uuid::Uuid::now_v7().to_string(),
            handle: format!("p-{}", uuid::Uuid::new_v4().simple()),
            title: title.into(),
            description: format!("{title} for tests"),
            collections: vec![("tests".into(), "Tests".into())],
            variants: vec![NewVariant {
                id: variant_id.clone(),
                sku: format!("SKU-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
                title: "Default".into(),
                price_amount: price,
                currency: "EUR".into(),
                stock,
            }],
        };
        let mut tx = self.store.begin_write(self.clock_now(), "system", None).await.expect("tx");
        tx.insert_product(&product).await.expect("insert");
        tx.commit(storefort_core::SecurityEvent::new(
            storefort_core::EventKind::CatalogSeeded,
            storefort_core::Actor::System,
        ))
        .await
        .expect("commit");
        variant_id
    }

    fn clock_now(&self) -> i64 {
        use storefort_web::Clock;
        self.clock.now_ms()
    }

    /// A new cart id.
    pub async fn cart(&self) -> String {
        let r = self.post("/api/v1/carts", json!({})).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().expect("cart id").to_owned()
    }

    /// A new cart holding `quantity` of `variant`.
    pub async fn cart_with(&self, variant: &str, quantity: i64) -> String {
        let cart = self.cart().await;
        let r = self
            .post(&format!("/api/v1/carts/{cart}/lines"), json!({"variant_id": variant, "quantity": quantity}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        cart
    }
}

/// A valid checkout body for a cart.
pub fn checkout_body(cart: &str) -> Value {
    json!({
        "cart_id": cart,
        "email": "ada@example.com",
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "Unter den Linden 1",
            "city": "Berlin",
            "postal_code": "10117",
            "country": "DE"
        }
    })
}
