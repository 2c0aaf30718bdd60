//! The shield's phases of the load benchmark (`STOREFORT_BENCH_ONLY=shield`):
//!
//! - inspection cost: a shopper's product page request (query string,
//!   browser headers, analytics cookies) with the shield on and off;
//! - load shedding: checkouts while 192 connections flood the uncached
//!   catalog, with shedding on (a small in-flight bound so the 2-core
//!   machine reaches it) and off;
//! - proxy mode: the bare handler behind `storefort proxy`'s stack.

use super::{Result, bench_settings, checkout_body, drive, drive_with, prepare_carts, serve, store_states};
use axum::routing::get;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use storefort_shield::Mode;

const BROWSER_UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const COOKIES: &str = "_ga=GA1.2.1234567890.1700000000; _gid=GA1.2.987654321.1700000000; \
     sf_consent=%7B%22analytics%22%3Atrue%7D; recently_viewed=123%2C456%2C789";

fn shopper_get(c: &reqwest::Client, url: String) -> reqwest::RequestBuilder {
    c.get(url)
        .header("user-agent", BROWSER_UA)
        .header("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
        .header("accept-language", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7")
        .header("referer", "https://www.google.com/search?q=bench+product&oq=bench+product")
        .header("cookie", COOKIES)
}

fn shield_off() -> storefort_web::Settings {
    let mut settings = bench_settings();
    settings.shield.mode = Mode::Off;
    settings.shield.limits.enabled = false;
    settings.shield.shedding.enabled = false;
    settings
}

async fn inspection(dir: &std::path::Path) -> Vec<Result> {
    let mut results = Vec::new();
    for (name, settings) in [("shield off", shield_off()), ("shield on (block, PL1)", bench_settings())] {
        let url = format!("sqlite://{}?mode=rwc", dir.join(format!("bench-shield-{}.db", results.len())).display());
        let (cached, _, store, products, _) = store_states(url, true, true, settings).await;
        let base = serve(storefort_web::app(cached)).await;
        let products = Arc::new(products);
        results.push(
            drive(&format!("SQLite: shopper GET /products/{{id}}, {name}"), move |c, n| {
                let url = format!(
                    "{base}/api/v1/products/{}?utm_source=newsletter&utm_medium=email&utm_campaign=black_friday",
                    products[n % products.len()]
                );
                async move { Some(shopper_get(&c, url).send().await.map(|r| r.status() == 200).unwrap_or(false)) }
            })
            .await,
        );
        store.close().await;
    }
    results
}

/// Checkouts from 8 connections while 192 connections browse the uncached
/// catalog, with and without load shedding.
async fn flood(dir: &std::path::Path) -> Vec<Result> {
    let mut results = Vec::new();
    for shedding in [false, true] {
        let mut settings = bench_settings();
        settings.shield.shedding.enabled = shedding;
        settings.shield.shedding.max_in_flight = 24;
        settings.shield.shedding.priority_reserve_percent = 34;
        settings.shield.shedding.max_queue = 32;
        settings.shield.shedding.queue_timeout_ms = 200;
        settings.catalog_cache_ttl = Duration::ZERO;
        let label = if shedding { "shedding on" } else { "shedding off" };
        let url = format!("sqlite://{}?mode=rwc", dir.join(format!("bench-flood-{shedding}.db")).display());
        let (_, uncached, store, _, variants) = store_states(url, true, true, settings).await;
        let base = serve(storefort_web::app(uncached)).await;
        let carts = prepare_carts(&base, variants, 6_000, 8).await;
        let (browse_name, buy_name) = (
            format!("SQLite: browsing flood, 192 conns, {label} (ok = 200)"),
            format!("SQLite: POST /checkout during the flood, 8 conns, {label}"),
        );
        let b = base.clone();
        let browse = drive_with(&browse_name, 192, move |c, _| {
            let url = format!("{b}/api/v1/products?limit=20");
            async move { Some(c.get(url).send().await.map(|r| r.status() == 200).unwrap_or(false)) }
        });
        let b = base.clone();
        let buy = drive_with(&buy_name, 8, move |c, n| {
            let cart = carts.get(n).cloned();
            let url = format!("{b}/api/v1/checkout");
            async move {
                let cart = cart?;
                Some(c.post(url).json(&checkout_body(&cart)).send().await.map(|r| r.status() == 201).unwrap_or(false))
            }
        });
        let (browsed, bought) = tokio::join!(browse, buy);
        results.push(browsed);
        results.push(bought);
        store.close().await;
    }
    results
}

/// The bare handler straight, and behind the proxy's full stack (request
/// ids, shield at PL1, forwarding over a pooled upstream connection).
async fn proxy() -> Vec<Result> {
    let bare = axum::Router::new().route(
        "/bare",
        get(|| async { axum::Json(json!({"id": "01", "title": "Bare", "variants": [{"id": "v", "price": 1}]})) }),
    );
    let upstream = serve(bare).await;
    let mut config = bench_settings().shield;
    config.shedding.enabled = false;
    let state = storefort_shield::ShieldState::new(
        config,
        Arc::new(storefort_shield::limit::MemoryLimiter::default()),
        Arc::new(storefort_shield::proxy::LogObserver),
        Arc::new(storefort_shield::proxy::PlainResponder),
        Vec::new(),
    );
    let upstream_client =
        storefort_shield::proxy::Upstream::new(&upstream, Vec::new(), Duration::from_secs(30)).expect("upstream");
    let proxied = serve(storefort_shield::proxy::app(upstream_client, state)).await;
    let mut results = Vec::new();
    for (name, base) in
        [("bare handler, direct (shopper headers)", upstream), ("bare handler behind storefort proxy", proxied)]
    {
        results.push(
            drive(name, move |c, _| {
                let url = format!("{base}/bare?utm_source=newsletter");
                async move { Some(shopper_get(&c, url).send().await.map(|r| r.status() == 200).unwrap_or(false)) }
            })
            .await,
        );
    }
    results
}

pub async fn phases(dir: &std::path::Path) -> Vec<Result> {
    eprintln!("shield: inspection cost, load shedding under a flood, proxy mode");
    let mut results = inspection(dir).await;
    results.extend(flood(dir).await);
    results.extend(proxy().await);
    results
}
