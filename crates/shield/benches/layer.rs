//! The shield layer's CPU cost per request, without a network or a store:
//! a shopper's product page request (query string, browser headers,
//! analytics cookies, one of 500 product paths) through
//!
//! - the bare service (baseline),
//! - the layer with everything off (the cost of being a layer),
//! - the layer as `storefort serve` runs it (block mode, PL1, limits and
//!   shedding on),
//!
//! on one thread, interleaved over rounds; the median round is reported
//! as µs per request and as a ratio to the baseline.
//!
//! `cargo bench -p storefort-shield --bench layer`

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use storefort_shield::limit::MemoryLimiter;
use storefort_shield::{Mode, Observation, Observer, Refusal, Responder, ShieldConfig, ShieldLayer, ShieldState};
use tower::{Layer, Service, ServiceExt};

const BROWSER_UA: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const COOKIES: &str = "_ga=GA1.2.1234567890.1700000000; _gid=GA1.2.987654321.1700000000; \
     sf_consent=%7B%22analytics%22%3Atrue%7D; recently_viewed=123%2C456%2C789";
const REQUESTS: usize = 20_000;
const ROUNDS: usize = 5;

struct Quiet;
impl Observer for Quiet {
    fn observe(&self, _: &axum::http::request::Parts, _: Observation) {}
}
impl Responder for Quiet {
    fn respond(&self, _: &axum::http::request::Parts, _: &Refusal) -> Response {
        Response::builder().status(403).body(Body::empty()).unwrap_or_default()
    }
}

fn shopper_request(products: &[String], n: usize) -> Request<Body> {
    let uri = format!(
        "/api/v1/products/{}?utm_source=newsletter&utm_medium=email&utm_campaign=black_friday",
        products[n % products.len()]
    );
    let mut req = Request::get(uri)
        .header("host", "shop.example")
        .header("user-agent", BROWSER_UA)
        .header("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
        .header("accept-language", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7")
        .header("accept-encoding", "gzip, deflate, br")
        .header("referer", "https://www.google.com/search?q=bench+product&oq=bench+product")
        .header("cookie", COOKIES)
        .body(Body::empty())
        .unwrap_or_default();
    // Clients spread over a /16 so per-IP limits see many addresses.
    let peer = SocketAddr::from(([10, 1, (n / 256 % 256) as u8, (n % 256) as u8], 40_000));
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

fn layered(config: ShieldConfig) -> impl Service<Request<Body>, Response = Response, Error = Infallible> + Clone {
    let state = ShieldState::new(
        config,
        Arc::new(MemoryLimiter::default()),
        Arc::new(Quiet),
        Arc::new(Quiet),
        vec!["sf_session".into()],
    );
    ShieldLayer::new(state).layer(tower::service_fn(bare))
}

async fn bare(_req: Request<Body>) -> Result<Response, Infallible> {
    Ok(Response::new(Body::from("{}")))
}

async fn run<S>(service: &S, products: &[String]) -> f64
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone,
{
    let start = Instant::now();
    for n in 0..REQUESTS {
        let response = service.clone().oneshot(shopper_request(products, n)).await.unwrap_or_default();
        assert_eq!(response.status(), 200);
    }
    start.elapsed().as_secs_f64() * 1e6 / REQUESTS as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let products: Vec<String> = (0..500).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let mut off = ShieldConfig { mode: Mode::Off, ..ShieldConfig::default() };
    off.limits.enabled = false;
    off.shedding.enabled = false;
    let mut on = ShieldConfig::default();
    on.limits.per_ip = storefort_shield::config::Rate::new(1_000_000, 1_000_000);
    let bare_service = tower::service_fn(bare);
    let (layer_off, layer_on) = (layered(off), layered(on));
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    runtime.block_on(async {
        // One warm-up pass: the first sight of each value is a separate cost.
        run(&layer_on, &products).await;
        for _ in 0..ROUNDS {
            times[0].push(run(&bare_service, &products).await);
            times[1].push(run(&layer_off, &products).await);
            times[2].push(run(&layer_on, &products).await);
        }
    });
    let [bare_us, off_us, on_us] = times.map(median);
    println!("shield layer, µs of CPU per shopper request (median of {ROUNDS} rounds of {REQUESTS}):");
    println!("  bare service             {bare_us:>7.2}");
    println!("  layer, everything off    {off_us:>7.2}  (+{:.2})", off_us - bare_us);
    println!(
        "  layer as served (PL1)    {on_us:>7.2}  (+{:.2}, {:.1}x the bare service)",
        on_us - bare_us,
        on_us / bare_us
    );
}
