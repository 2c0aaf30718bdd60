//! Hostile input: every operation in the served OpenAPI document is driven
//! with malformed, oversized, wrong-typed and unknown-field input and odd
//! path values. Nothing may answer 5xx, and every 4xx carries the error shape
//! and a request id.

use crate::support::{Reply, TestApp, checkout_body, read, spawn};
use reqwest::Method;
use serde_json::{Value, json};

fn assert_clean(label: &str, r: &Reply, must_be_4xx: bool) {
    assert!(r.status < 500, "{label}: answered {} {}", r.status, r.body);
    assert!(r.headers.contains_key("x-request-id"), "{label}: no request id");
    if must_be_4xx {
        assert!((400..500).contains(&r.status), "{label}: expected 4xx, got {} {}", r.status, r.body);
    }
    if r.status >= 400 {
        let code = r.body["error"]["code"].as_str().unwrap_or("");
        assert!(
            !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{label}: bad error body {}",
            r.body
        );
        assert!(r.body["error"]["message"].is_string(), "{label}: {}", r.body);
        assert!(r.body["error"].get("field").is_some(), "{label}: {}", r.body);
    }
}

/// Odd values for a path parameter, plus a real id so deeper validation runs.
fn path_values(real: &str) -> Vec<String> {
    vec![
        real.to_owned(),
        "00000000-0000-7000-8000-000000000000".into(),
        "..%2F..%2Fetc%2Fpasswd".into(),
        "%00".into(),
        "%FF%FE".into(),
        "'%20OR%201=1--".into(),
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E".into(),
        "a".repeat(4096),
        "%F0%9F%92%A3".into(),
        "-1".into(),
    ]
}

/// Bodies that are wrong in every way a client can be wrong.
fn hostile_bodies(properties: &[String]) -> Vec<(String, Option<&'static str>, Vec<u8>)> {
    let mut bodies: Vec<(String, Option<&'static str>, Vec<u8>)> = vec![
        ("truncated".into(), Some("application/json"), b"{\"a\": ".to_vec()),
        ("not json".into(), Some("application/json"), b"hello".to_vec()),
        ("empty".into(), Some("application/json"), Vec::new()),
        ("array".into(), Some("application/json"), b"[]".to_vec()),
        ("null".into(), Some("application/json"), b"null".to_vec()),
        ("string".into(), Some("application/json"), b"\"x\"".to_vec()),
        ("unknown field".into(), Some("application/json"), br#"{"definitely_not_a_field": 1}"#.to_vec()),
        (
            "deep nesting".into(),
            Some("application/json"),
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        ),
        (
            "oversized".into(),
            Some("application/json"),
            format!("{{\"a\": \"{}\"}}", "x".repeat(2 * 1024 * 1024)).into_bytes(),
        ),
        ("invalid utf-8".into(), Some("application/json"), b"{\"a\": \"\xff\xfe\"}".to_vec()),
        ("no content type".into(), None, b"{}".to_vec()),
        ("form encoded".into(), Some("application/x-www-form-urlencoded"), b"a=1".to_vec()),
        ("huge number".into(), Some("application/json"), b"{\"quantity\": 1e400}".to_vec()),
    ];
    let wrong: [(&str, Value); 7] = [
        ("array", json!([])),
        ("object", json!({"x": 1})),
        ("huge int", json!(u64::MAX)),
        ("negative", json!(-9_223_372_036_854_775_807_i64)),
        ("float", json!(1.5)),
        ("long string", json!("x".repeat(100_000))),
        ("null", Value::Null),
    ];
    for p in properties {
        for (name, value) in &wrong {
            let body = json!({ p.as_str(): value });
            bodies.push((format!("{p} as {name}"), Some("application/json"), body.to_string().into_bytes()));
        }
    }
    bodies
}

fn properties_of(doc: &Value, op: &Value) -> Vec<String> {
    let schema = &op["requestBody"]["content"]["application/json"]["schema"];
    let resolved = match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    };
    resolved["properties"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

struct Fixture {
    product: String,
    variant: String,
    cart: String,
    order: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let variant = app.product("Fixture", 1000, 1000).await;
    let product = app.state.store().variant(&variant).await.expect("variant").product_id;
    let cart = app.cart_with(&variant, 1).await;
    let placed = app.post("/api/v1/checkout", checkout_body(&app.cart_with(&variant, 1).await)).await;
    let order = placed.body["order"]["id"].as_str().expect("order").to_owned();
    Fixture { product, variant, cart, order }
}

fn real_value(path: &str, param: &str, f: &Fixture) -> String {
    match param {
        "variant_id" => f.variant.clone(),
        _ if path.starts_with("/api/v1/carts") => f.cart.clone(),
        _ if path.contains("/variants/") => f.variant.clone(),
        _ if path.contains("/orders/") => f.order.clone(),
        _ => f.product.clone(),
    }
}

/// Every concrete path for a templated one: each parameter takes each odd value.
fn expand(path: &str, f: &Fixture) -> Vec<String> {
    let params: Vec<&str> = path.split('{').skip(1).filter_map(|s| s.split('}').next()).collect();
    let mut paths = Vec::new();
    for (i, p) in params.iter().enumerate() {
        for value in path_values(&real_value(path, p, f)) {
            let mut concrete = path.to_owned();
            for (j, q) in params.iter().enumerate() {
                let v = if i == j { value.clone() } else { real_value(path, q, f) };
                concrete = concrete.replace(&format!("{{{q}}}"), &v);
            }
            paths.push(concrete);
        }
    }
    if params.is_empty() {
        paths.push(path.to_owned());
    }
    paths
}

async fn send(
    app: &TestApp,
    method: &Method,
    path: &str,
    ct: Option<&str>,
    body: Option<Vec<u8>>,
    admin: bool,
) -> Reply {
    let mut req = app.client.request(method.clone(), app.url(path));
    if admin {
        req = req.bearer_auth(&app.admin_token);
    }
    if let Some(ct) = ct {
        req = req.header("content-type", ct);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    read(req.send().await.expect("send")).await
}

#[tokio::test]
async fn every_documented_operation_survives_hostile_input() {
    let app = spawn().await;
    let f = fixture(&app).await;
    let doc = app.get("/api/v1/openapi.json").await.body;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "OpenAPI 3.1");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 10);
    let mut requests = 0;
    for (template, item) in paths {
        for (method_name, op) in item.as_object().expect("item") {
            let method = Method::from_bytes(method_name.to_uppercase().as_bytes()).expect("method");
            let has_body = op.get("requestBody").is_some();
            let properties = properties_of(&doc, op);
            for path in expand(template, &f) {
                for admin in [false, true] {
                    if has_body {
                        for (label, ct, body) in hostile_bodies(&properties) {
                            let r = send(&app, &method, &path, ct, Some(body), admin).await;
                            assert_clean(&format!("{method} {template} [{label}]"), &r, true);
                            requests += 1;
                        }
                    } else {
                        let r = send(&app, &method, &path, None, None, admin).await;
                        assert_clean(&format!("{method} {template}"), &r, false);
                        requests += 1;
                    }
                }
            }
            // Query parameters: junk values and unknown names.
            for q in [
                "?limit=0",
                "?limit=-1",
                "?limit=abc",
                "?limit=99999999999999999999",
                "?cursor=../../x",
                "?q=%00",
                "?collection=%3Cx%3E",
                "?unknown=1",
                "?q=",
                "?limit=1&limit=2",
                &format!("?q={}", "a".repeat(5000)),
            ] {
                let path = format!("{}{q}", expand(template, &f)[0]);
                let r = send(&app, &method, &path, None, None, true).await;
                assert_clean(&format!("{method} {template}{q}"), &r, false);
                requests += 1;
            }
        }
    }
    assert!(requests > 500, "only {requests} requests");
    // The fixture order and stock survived the barrage untouched.
    assert_eq!(app.store.order_count().await.expect("count"), 1);
}

#[tokio::test]
async fn odd_paths_and_methods_get_clean_errors() {
    let app = spawn().await;
    let long = format!("/api/v1/{}", "a".repeat(8000));
    let paths = [
        "/",
        "/api",
        "/api/v1",
        "/api/v1/",
        "/api/v1/products/",
        "//api/v1/products",
        "/api/v1/%2e%2e/%2e%2e/etc/passwd",
        "/api/v1/products/%00",
        "/api/v1/carts//lines",
        "/.env",
        "/.git/config",
        "/api/v1/admin",
        "/api/v1/orders",
        long.as_str(),
        "/api/v1/products?%zz",
        "/api/v1/products/%E0%A4%A",
    ];
    for path in paths {
        for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS] {
            let r = send(&app, &method, path, Some("application/json"), Some(b"{}".to_vec()), false).await;
            assert_clean(&format!("{method} {path}"), &r, true);
        }
    }
}
