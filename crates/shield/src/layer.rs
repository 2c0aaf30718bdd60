//! The shield as a tower layer in front of any axum service: client IP,
//! allow and deny lists, bans, rate limits, load shedding, then
//! inspection and scoring, in that order (cheapest refusals first).
//!
//! What the layer refuses, it answers through the embedding application's
//! `Responder` (so refusals share the application's error shape and request
//! id), and it reports through an `Observer` (security events, logs). It
//! never logs a body or a credential.

use crate::ban::{BanStore, Bans};
use crate::config::{Mode, Oversized, RouteClass, ShieldConfig};
use crate::limit::{Limiter, MemoryLimiter, ip_key};
use crate::net::{client_ip, listed};
use crate::request::Request as Inspected;
use crate::score::Finding;
use crate::shed::{Shed, Shedder};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Request};
use axum::response::Response;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tower::{Layer, Service};

/// The client address the shield settled on, for handlers downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Why the shield answered instead of the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The client is on the deny list.
    Denied,
    /// The client is banned until the given unix time (ms).
    Banned { until_ms: i64 },
    /// A rate limit; the client may retry after this long.
    RateLimited { retry_after: Duration, class: Option<RouteClass> },
    /// Too many requests in flight and queued.
    Overloaded,
    /// The anomaly score reached the threshold.
    Blocked { score: u32 },
    /// The body is larger than the shield inspects.
    BodyTooLarge,
    /// The request breaks HTTP framing rules (smuggling signs) or its body
    /// could not be read.
    Malformed { reason: &'static str },
}

impl Refusal {
    /// The Retry-After a client should get, in whole seconds.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        let now = now_ms();
        match self {
            Refusal::RateLimited { retry_after, .. } => {
                Some(u64::try_from(retry_after.as_millis().div_ceil(1000)).unwrap_or(1).max(1))
            }
            Refusal::Overloaded => Some(1),
            Refusal::Banned { until_ms } => Some(u64::try_from((until_ms - now) / 1000 + 1).unwrap_or(1)),
            _ => None,
        }
    }

    /// A stable code for error bodies and events.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Denied => "client_denied",
            Refusal::Banned { .. } => "client_banned",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::Overloaded => "overloaded",
            Refusal::Blocked { .. } => "request_blocked",
            Refusal::BodyTooLarge => "payload_too_large",
            Refusal::Malformed { .. } => "malformed_request",
        }
    }
}

/// What the shield saw, for security events and logs.
#[derive(Debug, Clone)]
pub struct Observation {
    pub client: IpAddr,
    pub method: String,
    /// The path only (no query: queries carry tokens), cut short.
    pub path: String,
    /// `None` when the request was let through in detect mode.
    pub refusal: Option<Refusal>,
    pub findings: Vec<Finding>,
    pub score: u32,
    /// Whether this block earned the client a ban.
    pub banned: bool,
    /// A digest of what was inspected (method, target, body), so a log
    /// line can be matched to a captured request without holding it.
    pub request_hash: String,
}

/// SHA-256 of method, target and body, first 16 bytes in hex.
fn request_hash(parts: &Parts, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(parts.method.as_str().as_bytes());
    h.update(b" ");
    h.update(parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").as_bytes());
    h.update(b"\n");
    h.update(body);
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Receives what the shield saw. Called on the request's task: keep it
/// quick (spawn any I/O).
pub trait Observer: Send + Sync + 'static {
    fn observe(&self, parts: &Parts, observation: Observation);
}

/// Builds the response for a refusal.
pub trait Responder: Send + Sync + 'static {
    fn respond(&self, parts: &Parts, refusal: &Refusal) -> Response;
}

/// Everything the layer shares between requests.
pub struct ShieldState {
    config: ShieldConfig,
    /// The per-IP and per-account limits on all requests (cheap, in this
    /// process: they bound each instance's load).
    local: MemoryLimiter,
    /// The route-class limits and the strikes that lead to bans (shared by
    /// instances on PostgreSQL).
    shared: Arc<dyn Limiter>,
    bans: Bans,
    shedder: Option<Shedder>,
    observer: Arc<dyn Observer>,
    responder: Arc<dyn Responder>,
    inspector: Arc<crate::score::Inspector>,
    /// Cookies that identify a signed-in client, for per-account limits.
    credential_cookies: Vec<String>,
}

impl ShieldState {
    pub fn new(
        config: ShieldConfig,
        shared: Arc<dyn Limiter>,
        observer: Arc<dyn Observer>,
        responder: Arc<dyn Responder>,
        credential_cookies: Vec<String>,
    ) -> Arc<ShieldState> {
        Self::with_ban_store(config, shared, None, observer, responder, credential_cookies)
    }

    /// `new`, with bans shared through `ban_store` (several instances);
    /// call [`ShieldState::refresh_bans`] every [`crate::ban::REFRESH_EVERY`].
    pub fn with_ban_store(
        config: ShieldConfig,
        shared: Arc<dyn Limiter>,
        ban_store: Option<Arc<dyn BanStore>>,
        observer: Arc<dyn Observer>,
        responder: Arc<dyn Responder>,
        credential_cookies: Vec<String>,
    ) -> Arc<ShieldState> {
        let shedder = config.shedding.enabled.then(|| Shedder::new(&config.shedding));
        let bans = Bans::new(config.ban.clone(), ban_store);
        Arc::new(ShieldState {
            config,
            local: MemoryLimiter::default(),
            shared,
            bans,
            shedder,
            observer,
            responder,
            inspector: Arc::new(crate::score::Inspector::default()),
            credential_cookies,
        })
    }

    pub fn config(&self) -> &ShieldConfig {
        &self.config
    }

    /// Reads the bans other instances recorded (with a ban store).
    pub async fn refresh_bans(&self) -> Result<(), crate::ban::BanStoreError> {
        self.bans.refresh(now_ms()).await
    }
}

/// The tower layer.
#[derive(Clone)]
pub struct ShieldLayer {
    state: Arc<ShieldState>,
}

impl ShieldLayer {
    pub fn new(state: Arc<ShieldState>) -> ShieldLayer {
        ShieldLayer { state }
    }
}

impl<S> Layer<S> for ShieldLayer {
    type Service = ShieldService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ShieldService { inner, state: self.state.clone() }
    }
}

#[derive(Clone)]
pub struct ShieldService<S> {
    inner: S,
    state: Arc<ShieldState>,
}

impl<S> Service<Request<Body>> for ShieldService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move { Ok(guard(state, inner, req).await) })
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(0)).unwrap_or(0)
}

async fn guard<S>(state: Arc<ShieldState>, mut inner: S, req: Request<Body>) -> Response
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    let cfg = &state.config;
    let (mut parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let forwarded = parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
    let client = client_ip(peer, forwarded, &cfg.trusted_proxies);
    parts.extensions.insert(ClientIp(client));
    let now = now_ms();
    let observe = |parts: &Parts, refusal: Option<Refusal>, findings: Vec<Finding>, score: u32, body: &[u8], banned| {
        let observation = Observation {
            client,
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().chars().take(200).collect(),
            refusal,
            findings,
            score,
            banned,
            request_hash: request_hash(parts, body),
        };
        state.observer.observe(parts, observation);
    };
    let refuse = |parts: &Parts, refusal: Refusal| {
        let response = state.responder.respond(parts, &refusal);
        observe(parts, Some(refusal), Vec::new(), 0, b"", false);
        response
    };

    if let Some(reason) = framing_violation(&parts.headers) {
        return refuse(&parts, Refusal::Malformed { reason });
    }
    let allowed = listed(&cfg.allow, client);
    if !allowed {
        if listed(&cfg.deny, client) {
            return refuse(&parts, Refusal::Denied);
        }
        if let Some(until_ms) = state.bans.banned_until(client, now) {
            return refuse(&parts, Refusal::Banned { until_ms });
        }
        if cfg.limits.enabled
            && let Err(refusal) = check_limits(&state, &parts, client, now).await
        {
            return refuse(&parts, refusal);
        }
    }
    let priority = cfg.shedding.priority_paths.iter().any(|p| parts.uri.path().starts_with(p.as_str()));
    let _slot = match &state.shedder {
        Some(shedder) => match shedder.admit(priority).await {
            Ok(slot) => Some(slot),
            Err(Shed::QueueFull | Shed::TimedOut) => {
                return refuse(&parts, Refusal::Overloaded);
            }
        },
        None => None,
    };
    if cfg.mode == Mode::Off || allowed {
        return call(&mut inner, Request::from_parts(parts, body)).await;
    }
    let (inspected, body) =
        match read_body(&parts.headers, body, cfg.max_inspected_body_bytes, cfg.oversized_bodies).await {
            Ok(read) => read,
            Err(refusal) => return refuse(&parts, refusal),
        };
    let (score, findings) = inspect_request(cfg, &state.inspector, &parts, &inspected).await;
    if score >= cfg.threshold {
        if cfg.mode == Mode::Block {
            let refusal = Refusal::Blocked { score };
            let response = state.responder.respond(&parts, &refusal);
            let banned = state.bans.strike(state.shared.as_ref(), client, now).await;
            observe(&parts, Some(refusal), findings, score, &inspected, banned);
            return response;
        }
        observe(&parts, None, findings, score, &inspected, false);
    }
    call(&mut inner, Request::from_parts(parts, body)).await
}

async fn call<S>(inner: &mut S, req: Request<Body>) -> Response
where
    S: Service<Request<Body>, Response = Response, Error = Infallible>,
{
    match inner.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// The per-IP limit, then the route class's limits per IP and per
/// credential, then the per-credential limit.
async fn check_limits(state: &ShieldState, parts: &Parts, client: IpAddr, now_ms: i64) -> Result<(), Refusal> {
    let limits = &state.config.limits;
    let now_us = now_ms * 1000;
    let ip = ip_key(client);
    state
        .local
        .check(&format!("ip:{ip}"), limits.per_ip, now_us)
        .map_err(|retry_after| Refusal::RateLimited { retry_after, class: None })?;
    let class = limits.classify(parts.method.as_str(), parts.uri.path(), parts.uri.query().unwrap_or(""));
    let credential = credential_key(&parts.headers, &state.credential_cookies);
    if let Some(class) = class {
        let rate = limits.rate(class);
        let limited = |retry_after| Refusal::RateLimited { retry_after, class: Some(class) };
        state.shared.acquire(&format!("{}:ip:{ip}", class.as_str()), rate, now_us).await.map_err(limited)?;
        if let Some(cred) = &credential {
            state.shared.acquire(&format!("{}:cred:{cred}", class.as_str()), rate, now_us).await.map_err(limited)?;
        }
    }
    if let Some(cred) = &credential {
        state
            .local
            .check(&format!("cred:{cred}"), limits.per_account, now_us)
            .map_err(|retry_after| Refusal::RateLimited { retry_after, class: None })?;
    }
    Ok(())
}

/// A short digest of the credential the request presents (bearer token or
/// session cookie), so per-account limits never store the secret itself.
fn credential_key(headers: &HeaderMap, cookies: &[String]) -> Option<String> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "))
        .map(|v| v[7..].trim());
    let cookie = || {
        headers.get_all("cookie").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            cookies.iter().any(|c| c == name).then_some(value)
        })
    };
    let secret = bearer.or_else(cookie).filter(|s| !s.is_empty())?;
    let digest = Sha256::digest(secret.as_bytes());
    Some(digest[..12].iter().map(|b| format!("{b:02x}")).collect())
}

/// Signs of request smuggling: a body length given twice in ways that
/// disagree, or framing a front end and a back end could read differently.
fn framing_violation(headers: &HeaderMap) -> Option<&'static str> {
    let lengths: Vec<&[u8]> = headers.get_all("content-length").iter().map(|v| v.as_bytes()).collect();
    let encodings = headers.get_all("transfer-encoding").iter().count();
    if encodings > 0 && !lengths.is_empty() {
        return Some("content_length_with_transfer_encoding");
    }
    if lengths.windows(2).any(|w| w[0] != w[1]) {
        return Some("conflicting_content_length");
    }
    if lengths.iter().any(|l| l.is_empty() || !l.iter().all(u8::is_ascii_digit)) {
        return Some("bad_content_length");
    }
    let chunked_only = headers
        .get_all("transfer-encoding")
        .iter()
        .all(|v| v.to_str().is_ok_and(|s| s.trim().eq_ignore_ascii_case("chunked")));
    if encodings > 1 || !chunked_only {
        return Some("unsupported_transfer_encoding");
    }
    None
}

/// Reads the body for inspection. Up to `max` bytes it is read whole and
/// handed on as read. A larger body is refused, or, under
/// `Oversized::InspectPrefix` (proxy mode, for uploads), its first `max`
/// bytes are inspected and the whole body streams on without ever being
/// held in memory at once.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    oversized: Option<Oversized>,
) -> Result<(bytes::Bytes, Body), Refusal> {
    use axum::body::HttpBody;
    use http_body_util::BodyExt;
    // Most requests (GET, HEAD) end with their headers: nothing to read,
    // and the body goes on as it came.
    if body.is_end_stream() {
        return Ok((bytes::Bytes::new(), body));
    }
    let declared = headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let stream_large = oversized == Some(Oversized::InspectPrefix);
    if declared.is_some_and(|n| n > max as u64) && !stream_large {
        return Err(Refusal::BodyTooLarge);
    }
    let mut body = body;
    let mut prefix = bytes::BytesMut::new();
    while prefix.len() <= max {
        match body.frame().await {
            None => return Ok((prefix.clone().freeze(), Body::from(prefix.freeze()))),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    prefix.extend_from_slice(&data);
                }
            }
            Some(Err(_)) => return Err(Refusal::Malformed { reason: "unreadable_body" }),
        }
    }
    if !stream_large {
        return Err(Refusal::BodyTooLarge);
    }
    let prefix = prefix.freeze();
    let head = futures_util::stream::once(std::future::ready(Ok::<_, axum::Error>(prefix.clone())));
    let rest = body.into_data_stream();
    let inspected = prefix.slice(..max);
    Ok((inspected, Body::from_stream(futures_util::StreamExt::chain(head, rest))))
}

/// A header's value as text, borrowed when it is plain ASCII (nearly
/// always: the quick check comes first), with any other bytes replaced.
fn header_text(value: &axum::http::HeaderValue) -> std::borrow::Cow<'_, str> {
    match value.to_str() {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(value.as_bytes()),
    }
}

fn owned_pairs<'a>(pairs: impl Iterator<Item = (&'a str, std::borrow::Cow<'a, str>)>) -> Vec<(String, String)> {
    pairs.map(|(n, v)| (n.to_owned(), v.into_owned())).collect()
}

/// Large bodies are inspected off the async workers.
const INLINE_INSPECTION_BYTES: usize = 64 * 1024;

async fn inspect_request(
    cfg: &ShieldConfig,
    inspector: &Arc<crate::score::Inspector>,
    parts: &Parts,
    body: &bytes::Bytes,
) -> (u32, Vec<Finding>) {
    let target = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let headers = parts.headers.iter().map(|(n, v)| (n.as_str(), header_text(v)));
    // HTTP/2 carries the host as the :authority pseudo-header, which ends up
    // in the URI rather than among the headers.
    let authority = match parts.headers.contains_key("host") {
        true => None,
        false => parts.uri.authority().map(|a| ("host", std::borrow::Cow::Borrowed(a.as_str()))),
    };
    let headers = headers.chain(authority);
    let (paranoia, threshold) = (cfg.paranoia, cfg.threshold);
    let verdict = if body.len() > INLINE_INSPECTION_BYTES {
        // Taking a large body apart is as costly as inspecting it.
        let request = (parts.method.as_str().to_owned(), target.to_owned(), owned_pairs(headers), body.clone());
        let inspector = inspector.clone();
        let run = move || {
            let (method, target, headers, body) = request;
            inspector.inspect(&Inspected::from_parts(&method, &target, headers, &body), paranoia, threshold)
        };
        match tokio::task::spawn_blocking(run).await {
            Ok(v) => v,
            // A panic in a detector must not let the request through
            // uninspected, nor take the server down: treat it as a block.
            Err(_) => return (u32::MAX, Vec::new()),
        }
    } else {
        inspector.inspect(&Inspected::from_parts(parts.method.as_str(), target, headers, body), paranoia, threshold)
    };
    let path = parts.uri.path();
    let findings: Vec<Finding> = verdict
        .findings
        .into_iter()
        .filter(|f| !cfg.exclusions.iter().any(|e| e.covers(path, &f.location.label(), f.family)))
        .collect();
    let score = findings.iter().map(|f| f.severity.points()).sum();
    (score, findings)
}
