//! What real shoppers send must pass at the default paranoia level. The
//! requests here are written the way browsers and shop front ends send
//! them: searches full of apostrophes and SQL-ish words, names and
//! addresses from many countries, delivery notes and reviews with
//! punctuation, analytics and consent cookies, and real browser headers.
//! The bar from the issue is at most 1% blocked; this set must pass whole,
//! and every request it blocks is named.
//!
//! Left out on purpose: searches that are attacks in all but intent, such
//! as the slogans on programmer T-shirts (`rm -rf`, `SELECT * FROM`,
//! `sudo make me a sandwich`). Blocking those is the price of blocking the
//! attacks they spell; an exclusion fixes a shop that sells them.

mod common;

use common::form_encode;
use storefort_shield::score::{DEFAULT_THRESHOLD, inspect};
use storefort_shield::{Request, Verdict};

const SEARCHES: &[&str] = &[
    "red shoes",
    "O'Neill jacket",
    "Levi's 501",
    "50% off",
    "t-shirt size xl",
    "men's jacket",
    "rock & roll",
    "café crème",
    "größe 42",
    "日本 茶",
    "iphone 15 pro max case",
    "1/2 inch drill bit",
    "3-pack socks",
    "select comfort mattress",
    "union jack flag",
    "drop earrings",
    "where to buy gift cards",
    "and or nor gate kit",
    "cat toys",
    "ls 400 headlights",
    "& Other Stories dress",
    "Gifts & more",
    "kitchen | shelves",
    "&Tradition lamp",
    "%{brand} template",
    "class action settlement book",
    "java class loader book",
    "echo dot",
    "cd player",
    "curl cream",
    "python book",
    "time capsule",
    "sleep mask",
    "exec chair",
    "order by price",
    "tom & jerry",
    "<3 mug",
    "2+2=4 t-shirt",
    "#1 dad mug",
    "100% cotton",
    "5' table",
    "6'2\" tall jeans",
    "\"quoted phrase\"",
    "null shoes",
    "true religion jeans",
    "script font stencil",
    "javascript book",
    "alert lights",
    "document holder",
    "window cleaner",
    "system of a down shirt",
    "from russia with love dvd",
    "group by size",
    "insert for shoes",
    "delete key keyboard",
    "drop table leaf",
    "select wine glasses",
    "wait for it poster",
    "having fun mug",
    "kids' shoes 1-3 years",
    "women's size 8-10",
    "12\" vinyl",
    "USB-C to USB-A (2m)",
    "M&M's dispenser",
    "AT&T phone",
    "C++ primer",
    "C# in depth",
    "node.js handbook",
    "vue 3 book",
    "php cookbook",
    "sql for dummies",
    "etc.",
    "passwd book",
    "the who t-shirt",
    "id card holder",
    "admin desk",
    "bin bags",
    "cmd key stickers",
    "sh*t happens mug",
    "if you can read this socks",
    "for loop t-shirt",
    "while you were sleeping dvd",
    "function over form",
    "constructor set lego",
    "prototype board",
    "{{ funny }} mug",
    "email@example.com",
    "https://example.com/product/123",
    "www.example.com",
    "~ tilde necklace",
    "a/b testing book",
    "../ dot dot slash shirt",
    "$100 gift card",
    "€50 voucher",
    "smile :)",
    "wink ;)",
    "1' length",
    "it's",
    "men's and women's shoes",
    "rock 'n' roll records",
    "Guns N' Roses tee",
    "2 or 3 seater sofa",
    "1+1=2 math shirt",
    "either/or",
    "not too big",
    "like new",
    "black or white",
    "'80s band shirt",
    "Rock 'n Roll Hall",
    "Ben & Jerry's",
    "Kids' 2-pack",
    "up to 70% off!",
    "free shipping?",
    "size: 10; color: red",
    "shoes -red",
    "\"red shoes\" -kids",
    "lamp (brass)",
    "[sale] jackets",
    "table; chairs",
    "a & b",
    "screen protector",
    "watch strap",
    "tee shirt",
    "cargo pants",
    "ruby ring",
    "jar lids",
    "salt lamp",
    "chef knife",
    "puppet theater",
    "guitar strings",
    "touch lamp",
    "fish tank",
    "wish list",
    "zip hoodie",
    "nano sim",
    "tv mount",
    "head band",
    "patch kit",
    "top hat",
    "route 66 sign",
    "dd cup bra",
    "java coffee beans",
    "yarn ball",
    "gem earrings",
    "wall clock",
    "bash bag",
    "service plan",
    "snap hooks",
    "make up bag",
    "set of 4 mugs",
    "update: new colours",
    "delete me",
    "kill bill poster",
    "sleep 8 hours pillow",
    "time 4 tea",
    "select",
    "union",
    "drop",
    "script",
    "onload",
    "alert",
    "confirm order",
    "prompt delivery",
    "<b>bold</b> mug",
    "I <3 NY",
    "x < 5 and y > 3 shirt",
    "e=mc^2 poster",
    "#hashtag",
    "@home",
    "/etc/ tee",
    "hello world; print",
    "it's 5 o'clock somewhere",
    "100% 'organic'",
];

const NAMES: &[&str] = &[
    "Seán O'Brien",
    "María-José García",
    "Zoë Saldaña",
    "D'Angelo Russell",
    "Jean-Luc Picard",
    "Nguyễn Văn An",
    "李小龙",
    "Jürgen Müller",
    "O'Connor & Sons Ltd.",
    "Anne-Marie d'Arc",
    "Dr. Sarah Connor, PhD",
    "Mr. & Mrs. Smith",
    "Null Smith",
    "John Select",
    "Mary Union",
    "Robert'); Tables",
];

const ADDRESSES: &[&str] = &[
    "Apt #4; Floor 2",
    "123 Main St., Suite 100",
    "P.O. Box 12",
    "c/o John Doe",
    "Straße des 17. Juni 1",
    "1/23 George St",
    "Flat 3, 45-47 High Rd",
    "Rue de l'Église 5",
    "Unit 5 - 7 Old Kent Rd",
    "Calle 5 #12-34",
    "Via dell'Orso 8",
    "Building A, Room 101 (back entrance)",
    "100 Select Ave",
    "1 Drop Lane",
];

const NOTES: &[&str] = &[
    "Please leave at the door; ring twice!",
    "Call me at +1 (555) 123-4567",
    "Gift wrap -- it's a surprise :)",
    "No onions & extra cheese",
    "<3 thanks!",
    "If not home, leave with neighbour (no. 12)",
    "Deliver between 9-5 or after 6pm",
    "Code for gate: #1234*",
    "email me: a.b+shop@example.com",
    "5/5 would buy again!!!",
    "Works great -- but the cable's short (1m). 4 stars.",
    "Not as described :( returned",
    "Fits like a glove; size up if in doubt.",
    "Best $20 I've spent",
    "10/10",
    "meh...",
    "50% cheaper elsewhere?!",
    "It's 'okay' I guess",
    "I'd say \"good\" - not \"great\"",
    "Ordered 2, got 1 & a half",
    "Colour: navy/white; size: M",
    "Use code SAVE10 = 10% off",
    "The box said 'fragile', it wasn't handled like it :-(",
    "Worked for 1 year then stopped -- support replaced it, 5 stars for service",
    "Bought as a gift for my dad (he's 70) and he loves it",
    "Compared to the X200 & X300 this one is better; select the blue one",
    "Question: does it fit a 13\" laptop? Or only 12\"?",
    "Perfect for the kids' room, although the glue smells a bit at first",
    "#blessed #happy",
    "Line one\nLine two\nLine three",
];

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; SM-G973F) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];

const COOKIES: &[&str] = &[
    "_ga=GA1.2.1234567890.1700000000; _gid=GA1.2.987654321.1700000000",
    "_fbp=fb.1.1700000000000.1234567890; cookieconsent_status=dismiss",
    "woocommerce_items_in_cart=1; wp_woocommerce_session_0a1b2c=1%7C%7C1700000000%7C%7C1699990000%7C%7Cabcdef0123456789",
    "__stripe_mid=3c7d1d2e-7d5a-4b8e-9a1f-0a4c6b8e2f10a1b2c3; __stripe_sid=8d3f0a1b-2c3d-4e5f-6a7b-8c9d0e1f2a3b4c5d6e",
    "sf_consent=%7B%22analytics%22%3Atrue%2C%22marketing%22%3Afalse%7D; theme=dark",
    "PHPSESSID=8f2k3j4h5g6f7d8s9a0p1o2i3u; lang=de-DE",
    "__Host-storefort_session=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A",
    "recently_viewed=123%2C456%2C789; currency=EUR",
    "_gcl_au=1.1.1234567890.1700000000; _uetsid=abc123def456; _uetvid=789ghi012jkl",
];

const PAGES: &[&str] = &[
    "/api/v1/products?limit=24&cursor=eyJpZCI6IjAxOTAifQ",
    "/api/v1/products/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    "/api/v1/collections",
    "/shop/page/2/?orderby=price-desc",
    "/product/mens-t-shirt-xl/",
    "/?add-to-cart=123&quantity=2",
    "/?utm_source=newsletter&utm_medium=email&utm_campaign=black_friday_2026&fbclid=IwAR2xYz_ABC-123",
    "/product/lamp/?gclid=Cj0KCQiA2eKtBhDcARIsAEGTG41XnZ_abc-def&gad_source=1",
    "/wp-json/wc/store/v1/cart",
    "/?wc-ajax=get_refreshed_fragments",
    "/checkout/?step=2&payment_method=stripe",
    "/my-account/orders/",
    "/category/shoes/?filter_size=42,43&filter_color=black|white",
    "/search?q=shoes&sort=relevance&page=3",
    "/cart/?remove_item=abc123&_wpnonce=0a1b2c3d4e",
    "/favicon.ico",
    "/robots.txt",
    "/sitemap.xml",
    "/assets/app.9f8e7d6c.js",
    "/images/products/lamp%20large.jpg",
    "/de/produkte/größe-42",
    "/api/v1/orders/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/receipt",
    "/.well-known/storefort/ledger-key",
];

fn browser_headers(ua: &str, cookie: &str, referer: &str) -> Vec<(String, String)> {
    [
        ("Host", "shop.example"),
        ("User-Agent", ua),
        ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
        ("Accept-Language", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7"),
        ("Accept-Encoding", "gzip, deflate, br, zstd"),
        ("Referer", referer),
        ("Cookie", cookie),
        ("sec-ch-ua", "\"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\""),
        ("sec-ch-ua-mobile", "?0"),
        ("sec-ch-ua-platform", "\"Windows\""),
        ("Sec-Fetch-Dest", "document"),
        ("Sec-Fetch-Mode", "navigate"),
        ("Sec-Fetch-Site", "same-origin"),
        ("Upgrade-Insecure-Requests", "1"),
        ("If-None-Match", "W/\"5f3a-18c9b2\""),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .collect()
}

/// Every request of the set, with a label for failure messages.
fn shopper_requests() -> Vec<(String, Request<'static>)> {
    let mut out = Vec::new();
    let ua = |i: usize| USER_AGENTS[i % USER_AGENTS.len()];
    let cookie = |i: usize| COOKIES[i % COOKIES.len()];
    for (i, q) in SEARCHES.iter().enumerate() {
        let target = format!("/api/v1/products?q={}", form_encode(q));
        let referer = format!("https://www.google.com/search?q={}&oq={}", form_encode(q), form_encode(q));
        let headers = browser_headers(ua(i), cookie(i), &referer);
        out.push((format!("search {q:?}"), Request::from_parts("GET", &target, headers.clone(), b"").into_owned()));
        let woo = format!("/?s={}&post_type=product", form_encode(q));
        out.push((format!("woo search {q:?}"), Request::from_parts("GET", &woo, headers, b"").into_owned()));
    }
    for (i, page) in PAGES.iter().enumerate() {
        let headers = browser_headers(ua(i), cookie(i), "https://shop.example/");
        out.push((format!("page {page}"), Request::from_parts("GET", page, headers, b"")));
    }
    for (i, name) in NAMES.iter().enumerate() {
        for (j, line1) in ADDRESSES.iter().enumerate().filter(|(j, _)| (i + j) % 3 == 0) {
            let note = NOTES[(i + j) % NOTES.len()];
            let body = serde_json::json!({
                "cart_id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                "email": "shopper+orders@example.com",
                "shipping_address": {
                    "name": name, "line1": line1, "line2": note, "city": "Köln",
                    "postal_code": "50667", "country": "DE", "phone": "+49 (0)221 123-456"
                },
                "note": note,
            });
            let mut headers = browser_headers(ua(i + j), cookie(i + j), "https://shop.example/checkout");
            headers.push(("Content-Type".into(), "application/json".into()));
            headers.push(("Idempotency-Key".into(), "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaaa".into()));
            let bytes = serde_json::to_vec(&body).expect("json");
            out.push((
                format!("checkout {name:?} {line1:?}"),
                Request::from_parts("POST", "/api/v1/checkout", headers, &bytes),
            ));
            let form = format!(
                "billing_first_name={}&billing_address_1={}&order_comments={}&payment_method=stripe&terms=on&woocommerce-process-checkout-nonce=0a1b2c3d4e&_wp_http_referer=%2F%3Fwc-ajax%3Dupdate_order_review",
                form_encode(name),
                form_encode(line1),
                form_encode(note)
            );
            let mut headers = browser_headers(ua(i + j), cookie(i + j), "https://shop.example/checkout/");
            headers.push(("Content-Type".into(), "application/x-www-form-urlencoded; charset=UTF-8".into()));
            out.push((
                format!("woo checkout {name:?} {line1:?}"),
                Request::from_parts("POST", "/?wc-ajax=checkout", headers, form.as_bytes()),
            ));
        }
    }
    for (i, note) in NOTES.iter().enumerate() {
        let form = format!(
            "rating=5&comment={}&author={}&email=reviewer%40example.com&submit=Submit&comment_post_ID=123&comment_parent=0",
            form_encode(note),
            form_encode(NAMES[i % NAMES.len()])
        );
        let mut headers = browser_headers(ua(i), cookie(i), "https://shop.example/product/lamp/");
        headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
        out.push((
            format!("review {note:?}"),
            Request::from_parts("POST", "/wp-comments-post.php", headers, form.as_bytes()),
        ));
    }
    for (i, email) in
        ["ada@example.com", "o'brien@example.ie", "first.last+tag@sub.example.co.uk", "x@x.io"].iter().enumerate()
    {
        let body = serde_json::json!({"email": email, "password": "correct horse battery staple 9"});
        let mut headers = browser_headers(ua(i), cookie(i), "https://shop.example/sign-in");
        headers.push(("Content-Type".into(), "application/json".into()));
        headers.push(("X-CSRF-Token".into(), "q1w2e3r4t5y6u7i8o9p0_-AbCdEf".into()));
        let bytes = serde_json::to_vec(&body).expect("json");
        out.push((format!("sign-in {email}"), Request::from_parts("POST", "/api/v1/auth/sign-in", headers, &bytes)));
    }
    out
}

fn blocked(verdict: &Verdict) -> String {
    verdict
        .findings
        .iter()
        .map(|f| format!("{}/{}@{}: {}", f.family, f.check, f.location.label(), f.fragment))
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn shoppers_requests_pass_at_paranoia_one() {
    let requests = shopper_requests();
    assert!(requests.len() >= 300, "the set has {} requests", requests.len());
    let failures: Vec<String> = requests
        .iter()
        .filter_map(|(label, request)| {
            let verdict = inspect(request, 1, DEFAULT_THRESHOLD);
            verdict.blocked.then(|| format!("{label}: {}", blocked(&verdict)))
        })
        .collect();
    println!("{} of {} shopper requests blocked", failures.len(), requests.len());
    assert!(
        failures.is_empty(),
        "{} of {} shopper requests blocked:\n{}",
        failures.len(),
        requests.len(),
        failures.join("\n")
    );
}
