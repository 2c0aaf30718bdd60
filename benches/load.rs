//! Load benchmark: product GET and checkout throughput with p50/p99 latency
//! at 64 connections, on SQLite (and PostgreSQL when
//! STOREFORT_BENCH_POSTGRES_URL is set), each as a ratio to a bare axum
//! handler measured in the same run on the same machine.
//!
//! Run: `cargo bench --bench load` (see BENCHMARKS.md). Loopback only; every
//! phase is bounded in time and stops by itself.

#[path = "load/shield.rs"]
mod shield;

use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use storefort_store::{NewProduct, NewVariant, Store, StoreOptions};
use storefort_web::{AppState, Clock, ServerKey, Settings, SystemClock};

const CONNECTIONS: usize = 64;
const PHASE: Duration = Duration::from_secs(8);
const WARMUP: Duration = Duration::from_secs(1);

struct Result {
    name: String,
    requests: usize,
    errors: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Result {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

/// Runs `CONNECTIONS` loops of `request` for `PHASE` (after a warm-up) or
/// until `request` returns None (out of work). Each loop has its own client
/// so each holds its own keep-alive connection.
async fn drive<F, Fut>(name: &str, request: F) -> Result
where
    F: Fn(reqwest::Client, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<bool>> + Send,
{
    drive_with(name, CONNECTIONS, request).await
}

/// `drive` with `connections` loops instead of `CONNECTIONS`.
async fn drive_with<F, Fut>(name: &str, connections: usize, request: F) -> Result
where
    F: Fn(reqwest::Client, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<bool>> + Send,
{
    let request = Arc::new(request);
    let counter = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let measure_from = start + WARMUP;
    let deadline = measure_from + PHASE;
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let request = request.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                loop {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let Some(ok) = request(client.clone(), n).await else {
                        break;
                    };
                    let done = Instant::now();
                    if now >= measure_from {
                        if ok {
                            latencies.push((done - now).as_micros() as u64);
                        } else {
                            errors += 1;
                        }
                    }
                }
                (latencies, errors, Instant::now())
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    let mut end = measure_from;
    for t in tasks {
        let (l, e, finished) = t.await.expect("task");
        all.extend(l);
        errors += e;
        end = end.max(finished);
    }
    all.sort_unstable();
    let seconds = (end.min(deadline).max(measure_from + Duration::from_millis(1)) - measure_from).as_secs_f64();
    Result {
        name: name.into(),
        requests: all.len(),
        errors,
        seconds,
        p50_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
    }
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // With the peer address, as `storefort serve` runs it: the shield's
    // per-IP limits and trusted proxies depend on it.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// The baseline: a bare axum handler returning a small JSON product.
async fn bare_baseline() -> Result {
    let app = axum::Router::new().route(
        "/bare",
        get(|| async {
            axum::Json(json!({"id": "01", "title": "Bare", "variants": [{"id": "v", "sku": "S", "price": {"amount": 1, "currency": "EUR"}, "available": 1}]}))
        }),
    );
    let base = serve(app).await;
    drive("bare axum handler", move |c, _| {
        let url = format!("{base}/bare");
        async move { Some(c.get(url).send().await.map(|r| r.status() == 200).unwrap_or(false)) }
    })
    .await
}

/// The demo settings, with rate limits lifted: every benchmark client
/// shares one loopback address, and these phases measure the store, not
/// the limiter (the shield phases set their own).
fn bench_settings() -> Settings {
    let mut settings = Settings::demo();
    let plenty = storefort_shield::config::Rate::new(100_000_000, 10_000_000);
    let l = &mut settings.shield.limits;
    (l.per_ip, l.per_account, l.sign_in, l.checkout, l.search, l.coupon, l.api_tokens) =
        (plenty, plenty, plenty, plenty, plenty, plenty, plenty);
    settings.shield.shedding.max_in_flight = 4096;
    settings
}

/// Storefort on a fresh database with 20 products of 3 variants each; serves
/// one app with the catalog cache on and one with it off.
async fn store_app(url: String, record_ledger: bool) -> (String, String, Store, Vec<String>, Vec<String>) {
    store_app_with(url, record_ledger, true).await
}

async fn store_app_with(
    url: String,
    record_ledger: bool,
    encrypt: bool,
) -> (String, String, Store, Vec<String>, Vec<String>) {
    let (cached, uncached, store, products, variants) =
        store_states(url, record_ledger, encrypt, bench_settings()).await;
    (serve(storefort_web::app(cached)).await, serve(storefort_web::app(uncached)).await, store, products, variants)
}

/// The states behind `store_app_with`, under `settings`: one with the
/// catalog cache on, one with it off.
async fn store_states(
    url: String,
    record_ledger: bool,
    encrypt: bool,
    settings: Settings,
) -> (AppState, AppState, Store, Vec<String>, Vec<String>) {
    let store = Store::open(&StoreOptions { url, max_connections: 16, ledger_mac_key: [7; 32], record_ledger })
        .await
        .expect("open store");
    let now = SystemClock.now_ms();
    let mut products = Vec::new();
    let mut variants = Vec::new();
    let mut tx = store.begin_write(now, "system", None).await.expect("tx");
    for i in 0..20 {
        let product = NewProduct {
            id: uuid::Uuid::now_v7().to_string(),
            handle: format!("bench-{i}"),
            title: format!("Bench product {i}"),
            description: "A product for the load benchmark.".into(),
            collections: vec![("bench".into(), "Bench".into())],
            variants: (0..3)
                .map(|v| NewVariant {
                    id: uuid::Uuid::now_v7().to_string(),
                    sku: format!("BENCH-{i}-{v}"),
                    title: format!("Size {v}"),
                    price_amount: 1000 + i * 10 + v,
                    currency: "EUR".into(),
                    stock: 10_000_000,
                })
                .collect(),
        };
        products.push(product.id.clone());
        variants.extend(product.variants.iter().map(|v| v.id.clone()));
        tx.insert_product(&product).await.expect("insert");
    }
    tx.commit(storefort_core::SecurityEvent::new(
        storefort_core::EventKind::CatalogSeeded,
        storefort_core::Actor::System,
    ))
    .await
    .expect("commit");
    let key = ServerKey::generate().expect("rng");
    let signer = storefort_web::ledger::open_signer(&store, &[3; 32], Some("bench.storefort/ledger"), None, now)
        .await
        .expect("ledger");
    let vault = if encrypt { bench_vault().await } else { plaintext_vault().await };
    let uncached_settings = Settings { catalog_cache_ttl: Duration::ZERO, ..settings.clone() };
    let cached =
        AppState::new(store.clone(), settings, Arc::new(SystemClock), key.clone(), signer.clone(), vault.clone());
    let uncached = AppState::new(store.clone(), uncached_settings, Arc::new(SystemClock), key, signer, vault);
    (cached, uncached, store, products, variants)
}

/// A key store of its own (SQLite in a temporary directory that lives as
/// long as the benchmark) under a fresh master key.
async fn bench_vault() -> Arc<storefort_web::vault::Vault> {
    let dir = tempfile::tempdir().expect("dir").keep();
    let url = format!("sqlite://{}?mode=rwc", dir.join("keys.db").display());
    let keys = storefort_store::KeyStore::open(&url).await.expect("key store");
    let master = storefort_vault::MasterKey::generate().expect("master key");
    Arc::new(storefort_web::vault::Vault::open(master, Vec::new(), None, keys).await.expect("vault"))
}

/// The same, storing personal data in plaintext: the baseline for what
/// field encryption costs.
async fn plaintext_vault() -> Arc<storefort_web::vault::Vault> {
    let dir = tempfile::tempdir().expect("dir").keep();
    let url = format!("sqlite://{}?mode=rwc", dir.join("keys.db").display());
    let keys = storefort_store::KeyStore::open(&url).await.expect("key store");
    Arc::new(storefort_web::vault::Vault::plaintext_for_benchmarks(keys).await.expect("vault"))
}

/// Checkout with field encryption (a data key per order, stored durably in
/// the key store; email and address encrypted) and without, in one run.
/// Each twice, alternating, so neither side always runs on a warmer disk.
async fn encryption_phases(backend: &str, dir: &std::path::Path) -> Vec<Result> {
    let mut results = Vec::new();
    for round in 0..2 {
        for encrypt in [round == 1, round == 0] {
            let name = format!("bench-enc-{round}-{encrypt}.db");
            let url = format!("sqlite://{}?mode=rwc", dir.join(name).display());
            let (base, _, store, _, variants) = store_app_with(url, true, encrypt).await;
            let label = if encrypt { "field encryption on" } else { "field encryption off" };
            results.push(checkout_phase(&format!("{backend}, {label} (round {})", round + 1), &base, variants).await);
            store.close().await;
        }
    }
    results
}

/// A new empty schema in the given PostgreSQL database, so runs never collide.
async fn fresh_schema(base: &str) -> String {
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(base).await.expect("connect to STOREFORT_BENCH_POSTGRES_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&pool).await.expect("create schema");
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

fn checkout_body(cart: &str) -> Value {
    json!({"cart_id": cart, "email": "bench@example.com", "shipping_address":
        {"name": "Bench", "line1": "Street 1", "city": "Berlin", "postal_code": "10115", "country": "DE"}})
}

/// STOREFORT_BENCH_ONLY=checkout (or =get) runs just those phases.
fn wanted(phase: &str) -> bool {
    std::env::var("STOREFORT_BENCH_ONLY").map(|only| only == phase).unwrap_or(true)
}

async fn store_phases(backend: &str, url: String) -> Vec<Result> {
    let (base, uncached_base, store, products, variants) = store_app(url, true).await;
    let mut results = Vec::new();
    if wanted("get") {
        results.extend(get_phases(backend, &base, &uncached_base, products).await);
    }
    if wanted("checkout") {
        results.push(checkout_phase(backend, &base, variants).await);
    }
    store.close().await;
    results
}

/// The same checkout phase on a store that writes no ledger entries: the
/// baseline for the ledger's cost.
async fn checkout_without_ledger(backend: &str, url: String) -> Result {
    let (base, _, store, _, variants) = store_app(url, false).await;
    let result = checkout_phase(&format!("{backend}, ledger off"), &base, variants).await;
    store.close().await;
    result
}

async fn get_phases(backend: &str, base: &str, uncached_base: &str, products: Vec<String>) -> Vec<Result> {
    let mut results = Vec::new();
    let products = Arc::new(products);
    let b = uncached_base.to_owned();
    let p = products.clone();
    results.push(
        drive(&format!("{backend}: GET /products/{{id}}, cache off"), move |c, n| {
            let url = format!("{b}/api/v1/products/{}", p[n % p.len()]);
            async move { Some(c.get(url).send().await.map(|r| r.status() == 200).unwrap_or(false)) }
        })
        .await,
    );
    let b = base.to_owned();
    results.push(
        drive(&format!("{backend}: GET /products/{{id}}"), move |c, n| {
            let url = format!("{b}/api/v1/products/{}", products[n % products.len()]);
            async move { Some(c.get(url).send().await.map(|r| r.status() == 200).unwrap_or(false)) }
        })
        .await,
    );
    let b = base.to_owned();
    results.push(
        drive(&format!("{backend}: GET /products?limit=20"), move |c, _| {
            let url = format!("{b}/api/v1/products?limit=20");
            async move { Some(c.get(url).send().await.map(|r| r.status() == 200).unwrap_or(false)) }
        })
        .await,
    );
    results
}

/// Checkout: carts are prepared first so only the checkout is measured.
async fn checkout_phase(backend: &str, base: &str, variants: Vec<String>) -> Result {
    let carts = prepare_carts(base, variants, 12_000, CONNECTIONS).await;
    let b = base.to_owned();
    drive(&format!("{backend}: POST /checkout"), move |c, n| {
        let cart = carts.get(n).cloned();
        let url = format!("{b}/api/v1/checkout");
        async move {
            let cart = cart?;
            Some(c.post(url).json(&checkout_body(&cart)).send().await.map(|r| r.status() == 201).unwrap_or(false))
        }
    })
    .await
}

/// `carts_needed` carts of one line each, made through the API from
/// `connections` clients (few enough for a store with a small in-flight
/// bound to take without shedding).
async fn prepare_carts(base: &str, variants: Vec<String>, carts_needed: usize, connections: usize) -> Arc<Vec<String>> {
    let prepared = Arc::new(std::sync::Mutex::new(Vec::with_capacity(carts_needed)));
    let variants = Arc::new(variants);
    let b = base.to_owned();
    let p = prepared.clone();
    let prep_start = Instant::now();
    let prep: Vec<_> = (0..connections)
        .map(|t| {
            let (b, p, variants) = (b.clone(), p.clone(), variants.clone());
            tokio::spawn(async move {
                let c = reqwest::Client::new();
                for i in 0..carts_needed / connections {
                    let cart: Value =
                        c.post(format!("{b}/api/v1/carts")).send().await.expect("cart").json().await.expect("json");
                    let id = cart["id"].as_str().unwrap_or_else(|| panic!("no cart: {cart}")).to_owned();
                    let v = &variants[(t * 31 + i) % variants.len()];
                    c.post(format!("{b}/api/v1/carts/{id}/lines"))
                        .json(&json!({"variant_id": v, "quantity": 1}))
                        .send()
                        .await
                        .expect("line");
                    p.lock().expect("lock").push(id);
                }
            })
        })
        .collect();
    for t in prep {
        t.await.expect("prep");
    }
    eprintln!(
        "  prepared {} carts in {:.1} s",
        prepared.lock().expect("lock").len(),
        prep_start.elapsed().as_secs_f64()
    );
    Arc::new(prepared.lock().expect("lock").clone())
}

/// Sign-ins per second at the production Argon2id parameters, and catalog
/// GET latency with and without a 64-connection sign-in flood running at
/// the same time (the hashing pool must keep the store responsive).
async fn signin_phases(url: String) -> Vec<Result> {
    let (base, _, store, products, _) = store_app(url, true).await;
    // store_app's state has its own server key; make an app that shares
    // this one so the account's email index matches.
    let key = ServerKey::generate().expect("rng");
    let now = SystemClock.now_ms();
    let signer = storefort_web::ledger::open_signer(&store, &[3; 32], Some("bench.storefort/ledger"), None, now)
        .await
        .expect("ledger");
    let state =
        AppState::new(store.clone(), bench_settings(), Arc::new(SystemClock), key.clone(), signer, bench_vault().await);
    let auth_base = serve(storefort_web::app(state)).await;
    let password = "velvet-harbor-quartz-lantern";
    let email = storefort_core::Email::parse("bench@example.com").expect("email");
    let mut tx = store.begin_write(now, "operator", None).await.expect("tx");
    tx.insert_account(&storefort_store::NewAccount {
        id: uuid::Uuid::now_v7().to_string(),
        email: email.as_str().into(),
        email_index: key.email_index(&storefort_web::identity::email_key(&email)),
        role: "customer".into(),
        password_hash: storefort_auth::PasswordHasher::owasp().hash(password).expect("hash"),
        email_verified: true,
    })
    .await
    .expect("account");
    tx.commit(storefort_core::SecurityEvent::new(
        storefort_core::EventKind::AccountCreated,
        storefort_core::Actor::Operator,
    ))
    .await
    .expect("commit");
    let get = |name: &'static str| {
        let b = base.clone();
        let p = Arc::new(products.clone());
        drive(name, move |c, n| {
            let url = format!("{b}/api/v1/products/{}", p[n % p.len()]);
            async move { Some(c.get(url).send().await.map(|r| r.status() == 200).unwrap_or(false)) }
        })
    };
    let quiet = get("SQLite: GET /products/{id}, no sign-ins").await;
    let body = json!({"email": email.as_str(), "password": password});
    let flood = drive("SQLite: POST /auth/sign-in (flood)", move |c, _| {
        let url = format!("{auth_base}/api/v1/auth/sign-in");
        let body = body.clone();
        async move { Some(c.post(url).json(&body).send().await.map(|r| r.status() == 200).unwrap_or(false)) }
    });
    let (flooded, busy) = tokio::join!(flood, get("SQLite: GET /products/{id}, during sign-in flood"));
    vec![quiet, flooded, busy]
}

fn print(results: &[Result], baseline: &Result) {
    println!();
    println!("| scenario | requests | errors | req/s | p50 ms | p99 ms | ratio to bare |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in results {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.1}% |",
            r.name,
            r.requests,
            r.errors,
            r.rps(),
            r.p50_ms,
            r.p99_ms,
            100.0 * r.rps() / baseline.rps()
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; any other argument filters nothing here.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        eprintln!("baseline: bare axum handler");
        let baseline = bare_baseline().await;
        let mut results = vec![];
        let dir = tempfile::tempdir().expect("dir");
        eprintln!("storefort on SQLite (WAL, group commit: every acknowledged write flushed)");
        let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
        results.extend(store_phases("SQLite", sqlite).await);
        if wanted("encryption") {
            results.extend(encryption_phases("SQLite", dir.path()).await);
        }
        if wanted("signin") {
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench-signin.db").display());
            results.extend(signin_phases(url).await);
        }
        if wanted("shield") {
            results.extend(shield::phases(dir.path()).await);
        }
        if wanted("checkout") {
            let bare = format!("sqlite://{}?mode=rwc", dir.path().join("bench-no-ledger.db").display());
            results.push(checkout_without_ledger("SQLite", bare).await);
        }
        if let Ok(pg) = std::env::var("STOREFORT_BENCH_POSTGRES_URL") {
            eprintln!("storefort on PostgreSQL");
            results.extend(store_phases("PostgreSQL", fresh_schema(&pg).await).await);
            if wanted("checkout") {
                results.push(checkout_without_ledger("PostgreSQL", fresh_schema(&pg).await).await);
            }
        }
        let mut all = vec![baseline];
        all.extend(results);
        let (baseline, rest) = all.split_first().expect("baseline");
        println!(
            "\n{CONNECTIONS} connections, {} s per phase after {} s warm-up, {} cores",
            PHASE.as_secs(),
            WARMUP.as_secs(),
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
        print(std::slice::from_ref(baseline), baseline);
        print(rest, baseline);
    });
}
