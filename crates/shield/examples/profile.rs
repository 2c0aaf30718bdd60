use std::time::Instant;
use storefort_shield::Request;
fn main() {
    let headers: Vec<(String, String)> = [
        ("Host", "shop.example"),
        ("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
        ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("Accept-Language", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7"),
        ("Referer", "https://www.google.com/search?q=bench+product&oq=bench+product"),
        ("Cookie", "_ga=GA1.2.1234567890.1700000000; _gid=GA1.2.987654321.1700000000; sf_consent=%7B%22analytics%22%3Atrue%7D; recently_viewed=123%2C456%2C789"),
    ].iter().map(|(a,b)| (a.to_string(), b.to_string())).collect();
    let target = "/api/v1/products/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b?utm_source=newsletter&utm_medium=email&utm_campaign=black_friday";
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        let r = Request::from_parts("GET", target, headers.clone(), b"");
        std::hint::black_box(storefort_shield::inspect(&r, 1, 5));
    }
    println!("full inspect: {:?} per request", t.elapsed() / n);
    let r = Request::from_parts("GET", target, headers.clone(), b"");
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(storefort_shield::detect::values(&r));
    }
    println!("normalize: {:?}", t.elapsed() / n);
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(Request::from_parts("GET", target, headers.clone(), b""));
    }
    println!("from_parts: {:?}", t.elapsed() / n);
    for (hn, hv) in &headers {
        let one = vec![(hn.clone(), hv.clone())];
        let r1 = Request::from_parts("GET", "/", one, b"");
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(storefort_shield::inspect(&r1, 1, 5));
        }
        println!("  only {hn}: {:?}", t.elapsed() / n);
    }
    let r1 = Request::from_parts("GET", target, vec![], b"");
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(storefort_shield::inspect(&r1, 1, 5));
    }
    println!("  only target: {:?}", t.elapsed() / n);
    let insp = storefort_shield::Inspector::default();
    let t = Instant::now();
    for _ in 0..n {
        let r = Request::from_parts("GET", target, headers.clone(), b"");
        std::hint::black_box(insp.inspect(&r, 1, 5));
    }
    println!("cached inspect: {:?} per request", t.elapsed() / n);
}
