//! The shield's phases of the load benchmark (`STOREFORT_BENCH_ONLY=shield`):
//!
//! - inspection cost: a shopper's product page request (query string,
//!   browser headers, analytics cookies) with the shield off, with only
//!   its limits and shedding, with only its inspection, and on;
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

/// Rounds of the inspection phases (odd, for a median).
const ROUNDS: usize = 7;

async fn inspection(dir: &std::path::Path) -> Vec<Result> {
    // The stores run side by side and their phases alternate, `ROUNDS`
    // rounds each; each row is the round with the median throughput. On a shared
    // machine, throughput drifts by a third between minutes, and phases run
    // one after the other would measure the drift, not the shield.
    let mut stores = Vec::new();
    // Between off and on, the two halves of the shield alone, to show
    // where its cost lies.
    let guards_only = {
        let mut s = bench_settings();
        s.shield.mode = Mode::Off;
        s
    };
    let inspection_only = {
        let mut s = bench_settings();
        s.shield.limits.enabled = false;
        s.shield.shedding.enabled = false;
        s
    };
    let configurations = [
        ("shield off", shield_off()),
        ("limits and shedding only", guards_only),
        ("inspection only", inspection_only),
        ("shield on (block, PL1)", bench_settings()),
    ];
    for (name, settings) in configurations {
        let url = format!("sqlite://{}?mode=rwc", dir.join(format!("bench-shield-{}.db", stores.len())).display());
        let (cached, _, store, products, _) = store_states(url, true, true, settings).await;
        let base = serve(storefort_web::app(cached)).await;
        stores.push((name, base, store, Arc::new(products)));
    }
    let mut rounds: Vec<Vec<Result>> = stores.iter().map(|_| Vec::new()).collect();
    for _ in 0..ROUNDS {
        for (i, (name, base, _, products)) in stores.iter().enumerate() {
            let (base, products) = (base.clone(), products.clone());
            rounds[i].push(
                drive(&format!("SQLite: shopper GET /products/{{id}}, {name}"), move |c, n| {
                    let url = format!(
                        "{base}/api/v1/products/{}?utm_source=newsletter&utm_medium=email&utm_campaign=black_friday",
                        products[n % products.len()]
                    );
                    async move { Some(shopper_get(&c, url).send().await.map(|r| r.status() == 200).unwrap_or(false)) }
                })
                .await,
            );
        }
    }
    // Each round's ratio to shield off from the same round (phases a few
    // seconds apart), and the median of those: steadier than a ratio of
    // medians when the machine's speed drifts.
    println!("\nPaired ratios to shield off (median over rounds of this round's ratio):");
    for (i, (name, ..)) in stores.iter().enumerate().skip(1) {
        let mut ratios: Vec<f64> = rounds[i].iter().zip(&rounds[0]).map(|(r, off)| r.rps() / off.rps()).collect();
        ratios.sort_by(f64::total_cmp);
        let each: Vec<String> = ratios.iter().map(|r| format!("{:.1}%", r * 100.0)).collect();
        println!("  {name}: {:.1}% (rounds: {})", ratios[ratios.len() / 2] * 100.0, each.join(", "));
    }
    for (_, _, store, _) in stores {
        store.close().await;
    }
    rounds
        .into_iter()
        .map(|mut r| {
            r.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
            r.swap_remove(ROUNDS / 2)
        })
        .collect()
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

/// One client IP floods sign-in as fast as it can while four other
/// clients (behind the same trusted proxy, so told apart by
/// X-Forwarded-For) browse at 10 requests a second each.
async fn one_ip_floods(dir: &std::path::Path) -> Vec<Result> {
    let mut settings = storefort_web::Settings::demo();
    settings.shield.trusted_proxies = vec!["127.0.0.1".parse().expect("cidr")];
    let url = format!("sqlite://{}?mode=rwc", dir.join("bench-one-ip.db").display());
    let (cached, _, store, products, _) = store_states(url, true, true, settings).await;
    let base = serve(storefort_web::app(cached)).await;
    let b = base.clone();
    let flood = drive_with("SQLite: one IP flooding GET /products (ok = 429)", 32, move |c, _| {
        let url = format!("{b}/api/v1/products?limit=5");
        async move {
            let r = c.get(url).header("x-forwarded-for", "198.51.100.1").send().await;
            Some(r.map(|r| r.status() == 429).unwrap_or(false))
        }
    });
    let products = Arc::new(products);
    let others = async move {
        let start = std::time::Instant::now();
        let clients: Vec<_> = (0..4)
            .map(|i| {
                let (base, products) = (base.clone(), products.clone());
                tokio::spawn(async move {
                    let c = reqwest::Client::new();
                    let mut latencies = Vec::new();
                    let mut errors = 0usize;
                    let mut n = 0;
                    while start.elapsed() < Duration::from_secs(6) {
                        let url = format!("{base}/api/v1/products/{}", products[n % products.len()]);
                        n += 1;
                        let sent = std::time::Instant::now();
                        let ok = shopper_get(&c, url)
                            .header("x-forwarded-for", format!("198.51.100.{}", 10 + i))
                            .send()
                            .await
                            .is_ok_and(|r| r.status() == 200);
                        if start.elapsed() > Duration::from_secs(1) {
                            if ok {
                                latencies.push(sent.elapsed().as_micros() as u64);
                            } else {
                                errors += 1;
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(100).saturating_sub(sent.elapsed())).await;
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut errors = 0;
        for c in clients {
            let (l, e) = c.await.expect("client");
            all.extend(l);
            errors += e;
        }
        all.sort_unstable();
        Result {
            name: "SQLite: 4 other IPs browsing at 10 req/s each, during the flood".into(),
            requests: all.len(),
            errors,
            seconds: 5.0,
            p50_ms: super::percentile(&all, 0.5),
            p99_ms: super::percentile(&all, 0.99),
        }
    };
    let (flooded, others) = tokio::join!(flood, others);
    store.close().await;
    vec![flooded, others]
}

/// Inspection alone, per request, for three kinds of request: first sight
/// (every value new) and seen before (values remembered).
fn inspection_cost() {
    use storefort_shield::{Inspector, Request, inspect};
    let headers = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        [
            ("Host", "shop.example"),
            ("User-Agent", BROWSER_UA),
            ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            ("Accept-Language", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7"),
            ("Referer", "https://www.google.com/search?q=bench+product&oq=bench+product"),
            ("Cookie", COOKIES),
        ]
        .iter()
        .chain(extra)
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
    };
    let body = serde_json::to_vec(&super::checkout_body("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")).expect("json");
    let requests = [
        (
            "benign GET (product page with campaign query)",
            Request::from_parts(
                "GET",
                "/api/v1/products/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b?utm_source=newsletter&utm_campaign=black_friday",
                headers(&[]),
                b"",
            ),
        ),
        (
            "benign JSON POST (checkout)",
            Request::from_parts("POST", "/api/v1/checkout", headers(&[("Content-Type", "application/json")]), &body),
        ),
        (
            "attack (SQL injection in the search)",
            Request::from_parts(
                "GET",
                "/api/v1/products?q=%27%20UNION%20SELECT%20password%20FROM%20accounts--",
                headers(&[]),
                b"",
            ),
        ),
    ];
    println!("\nInspection alone, per request (release build, one core):\n");
    println!("| request | first sight µs | seen before µs | blocked |");
    println!("|---|---:|---:|---|");
    for (name, request) in &requests {
        let rounds = 2000u32;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(inspect(request, 1, 5));
        }
        let cold = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        let inspector = Inspector::default();
        let verdict = inspector.inspect(request, 1, 5);
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(inspector.inspect(request, 1, 5));
        }
        let warm = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        println!("| {name} | {cold:.1} | {warm:.1} | {} |", verdict.blocked);
    }
}

pub async fn phases(dir: &std::path::Path) -> Vec<Result> {
    eprintln!("shield: inspection cost, one IP flooding, load shedding under a flood, proxy mode");
    inspection_cost();
    let mut results = inspection(dir).await;
    results.extend(one_ip_floods(dir).await);
    results.extend(flood(dir).await);
    results.extend(proxy().await);
    results
}
