//! Reverse-proxy mode: the shield in front of a store that is not
//! Storefort. Requests that pass are forwarded to the upstream with their
//! headers and body; responses stream back untouched except for
//! hop-by-hop headers. X-Forwarded-For gets the client's address appended
//! (and any earlier entries are kept only when our peer is a trusted proxy,
//! so the upstream never sees a client-forged chain as ours).

use crate::layer::{ClientIp, Observation, Observer, Refusal, Responder, ShieldState};
use crate::net::listed;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::{HeaderMap, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The store behind the proxy.
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Body>,
    scheme: axum::http::uri::Scheme,
    authority: axum::http::uri::Authority,
    trusted_proxies: Vec<crate::net::Cidr>,
    timeout: Duration,
}

impl Upstream {
    /// `base` is `http://host:port`; TLS to the upstream is not supported
    /// (run the proxy next to the store, on loopback or a private network).
    pub fn new(base: &str, trusted_proxies: Vec<crate::net::Cidr>, timeout: Duration) -> Result<Upstream, String> {
        let uri: Uri = base.parse().map_err(|_| format!("not a URL: {base:?}"))?;
        let scheme = uri.scheme().cloned().ok_or("the upstream URL needs a scheme")?;
        if scheme != axum::http::uri::Scheme::HTTP {
            return Err("the upstream must be http:// (keep it on loopback or a private network)".into());
        }
        let authority = uri.authority().cloned().ok_or("the upstream URL needs a host")?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Upstream { client, scheme, authority, trusted_proxies, timeout })
    }

    /// Forwards one request and answers with the upstream's response.
    pub async fn forward(&self, req: Request<Body>) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let Ok(uri) =
            Uri::builder().scheme(self.scheme.clone()).authority(self.authority.clone()).path_and_query(path).build()
        else {
            return plain(StatusCode::BAD_REQUEST, "bad request target");
        };
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let client = parts.extensions.get::<ClientIp>().map(|c| c.0).or(peer);
        strip_hop_by_hop(&mut parts.headers);
        let earlier = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ");
        let keep_earlier = peer.is_some_and(|p| listed(&self.trusted_proxies, p)) && !earlier.is_empty();
        let appended = peer.or(client).map(|ip| ip.to_string()).unwrap_or_default();
        let chain = if keep_earlier { format!("{earlier}, {appended}") } else { appended };
        parts.headers.remove("x-forwarded-for");
        if let Ok(v) = HeaderValue::from_str(&chain) {
            parts.headers.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
        if !parts.headers.contains_key("x-forwarded-proto") {
            parts.headers.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static("http"));
        }
        parts.uri = uri;
        let outgoing = Request::from_parts(parts, body);
        match tokio::time::timeout(self.timeout, self.client.request(outgoing)).await {
            Ok(Ok(response)) => {
                let (mut parts, incoming) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Body::new(incoming))
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "upstream request failed");
                plain(StatusCode::BAD_GATEWAY, "the store behind this proxy did not answer")
            }
            Err(_) => plain(StatusCode::GATEWAY_TIMEOUT, "the store behind this proxy took too long"),
        }
    }
}

/// Removes hop-by-hop headers and any header the Connection header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The id of a request through the proxy, sent to the upstream and back
/// to the client as `x-request-id` (a client's own is replaced).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The proxy as an application: request ids, the shield, then forwarding.
pub fn app(upstream: Upstream, shield: std::sync::Arc<ShieldState>) -> axum::Router {
    let forward = move |req: Request<Body>| {
        let upstream = upstream.clone();
        async move { upstream.forward(req).await }
    };
    axum::Router::new()
        .fallback(forward)
        .layer(crate::layer::ShieldLayer::new(shield))
        .layer(axum::middleware::from_fn(request_id))
}

async fn request_id(mut req: Request<Body>, next: axum::middleware::Next) -> Response<Body> {
    let id = uuid::Uuid::now_v7().to_string();
    let value = HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("-"));
    req.headers_mut().insert("x-request-id", value.clone());
    req.extensions_mut().insert(RequestId(id));
    let mut response = next.run(req).await;
    response.headers_mut().insert("x-request-id", value);
    response
}

/// Refusals in proxy mode: a short plain-text page with the request id,
/// and nothing about what matched.
pub struct PlainResponder;

impl Responder for PlainResponder {
    fn respond(&self, parts: &axum::http::request::Parts, refusal: &Refusal) -> Response<Body> {
        let id = parts.extensions.get::<RequestId>().map(|r| r.0.as_str()).unwrap_or("-");
        let (status, text) = match refusal {
            Refusal::Denied | Refusal::Banned { .. } | Refusal::Blocked { .. } => {
                (StatusCode::FORBIDDEN, "This request was blocked by the store's firewall.")
            }
            Refusal::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "Too many requests; please retry shortly."),
            Refusal::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "The store is busy; please retry shortly."),
            Refusal::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "The request body is too large."),
            Refusal::Malformed { .. } => (StatusCode::BAD_REQUEST, "The request is malformed."),
        };
        let mut r = Response::new(Body::from(format!("{text}\nRequest id: {id}\n")));
        *r.status_mut() = status;
        r.headers_mut().insert("content-type", HeaderValue::from_static("text/plain; charset=utf-8"));
        r.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
        if let Some(secs) = refusal.retry_after_seconds() {
            r.headers_mut().insert("retry-after", HeaderValue::from(secs));
        }
        r
    }
}

/// Observations in proxy mode go to the log (there is no database).
pub struct LogObserver;

impl Observer for LogObserver {
    fn observe(&self, parts: &axum::http::request::Parts, o: Observation) {
        let id = parts.extensions.get::<RequestId>().map(|r| r.0.as_str()).unwrap_or("-");
        let checks: Vec<String> =
            o.findings.iter().map(|f| format!("{}/{}@{}", f.family, f.check, f.location.label())).collect();
        tracing::warn!(
            request_id = id,
            client = %o.client,
            method = %o.method,
            path = %o.path,
            refusal = ?o.refusal,
            score = o.score,
            banned = o.banned,
            request_hash = %o.request_hash,
            checks = %checks.join(" "),
            "shield"
        );
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive, x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("cookie", HeaderValue::from_static("a=b"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("cookie"));
    }

    #[test]
    fn only_plain_http_upstreams_with_a_host() {
        assert!(Upstream::new("http://127.0.0.1:8080", vec![], Duration::from_secs(1)).is_ok());
        assert!(Upstream::new("https://127.0.0.1:8080", vec![], Duration::from_secs(1)).is_err());
        assert!(Upstream::new("/relative", vec![], Duration::from_secs(1)).is_err());
    }
}
