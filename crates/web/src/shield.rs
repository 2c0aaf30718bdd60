//! The shield in front of the store: its refusals in the API's error
//! shape, its observations as security events, and rate-limit buckets in
//! the database when instances must share them (PostgreSQL).

use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::state::AppState;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use storefort_core::{Actor, EventKind, SecurityEvent};
use storefort_shield::ban::{BanStore, BanStoreError, REFRESH_EVERY};
use storefort_shield::config::Rate;
use storefort_shield::limit::{Limiter, MemoryLimiter, emission_interval_us};
use storefort_shield::{Observation, Observer, Refusal, Responder, ShieldLayer, ShieldState};
use storefort_store::Backend;

/// The shield layer for `state`'s store.
pub fn layer(state: &AppState) -> ShieldLayer {
    let mut config = state.settings().shield.clone();
    // A gateway webhook's body is the gateway's JSON (full of URLs, ids and
    // free text), and the handler checks its HMAC signature before reading
    // a byte of it: inspecting it could only refuse genuine payments.
    // Limits, shedding and framing checks still apply.
    config.exclusions.push(storefort_shield::config::Exclusion {
        path_prefix: "/api/v1/webhooks/stripe".into(),
        field: None,
        families: Vec::new(),
    });
    // A webhook endpoint's URL is a URL by design; the store checks it
    // itself (https, no private or metadata addresses, resolved at every
    // delivery), so remote-file-inclusion and SSRF rules would only refuse
    // the integrations an admin registers. Everything else is inspected.
    config.exclusions.push(storefort_shield::config::Exclusion {
        path_prefix: "/api/v1/admin/webhooks".into(),
        field: Some("body:url".into()),
        families: vec![931, 934],
    });
    let (shared, ban_store): (Arc<dyn Limiter>, Option<Arc<dyn BanStore>>) = match state.store().backend() {
        // Several instances share one PostgreSQL: their budgets and bans
        // must too.
        Backend::Postgres => (
            Arc::new(DbLimiter { state: state.clone(), calls: AtomicU64::new(0) }),
            Some(Arc::new(DbBans { state: state.clone() })),
        ),
        // SQLite means one process; memory is exact and free.
        Backend::Sqlite => (Arc::new(MemoryLimiter::default()), None),
    };
    let observer = Arc::new(EventObserver { state: state.clone() });
    let cookies = vec![crate::identity::cookie::SESSION_COOKIE.to_owned()];
    let sharing_bans = ban_store.is_some();
    let shield = ShieldState::with_ban_store(config, shared, ban_store, observer, Arc::new(ApiResponder), cookies);
    if sharing_bans && let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(refresh_bans(Arc::downgrade(&shield)));
    }
    ShieldLayer::new(shield)
}

/// Reads the bans other instances recorded, every few seconds, for as long
/// as the shield is in use.
async fn refresh_bans(shield: Weak<ShieldState>) {
    let mut every = tokio::time::interval(REFRESH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(shield) = shield.upgrade() else { return };
        if let Err(e) = shield.refresh_bans().await {
            tracing::warn!(error = %e, "could not read the bans of the other instances");
        }
    }
}

/// Bans in the database, read back by every instance.
struct DbBans {
    state: AppState,
}

impl BanStore for DbBans {
    fn key(&self, ip: IpAddr) -> String {
        self.state.key().ip_index(&ip.to_string())
    }

    fn record(
        &self,
        key: String,
        until_ms: i64,
        now_ms: i64,
    ) -> Pin<Box<dyn Future<Output = Result<(), BanStoreError>> + Send + '_>> {
        Box::pin(async move { Ok(self.state.store().record_ban(&key, until_ms, now_ms).await?) })
    }

    fn in_force(
        &self,
        now_ms: i64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<(String, i64)>, BanStoreError>> + Send + '_>> {
        Box::pin(async move { Ok(self.state.store().bans_in_force(now_ms).await?) })
    }
}

/// Refusals as API errors; the message never says what matched.
struct ApiResponder;

impl Responder for ApiResponder {
    fn respond(&self, _parts: &Parts, refusal: &Refusal) -> Response {
        let code = refusal.code();
        let error = match refusal {
            Refusal::Denied | Refusal::Banned { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, code, "requests from this address are not accepted")
            }
            Refusal::Blocked { .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                code,
                "the store's firewall refused this request; quote the request id to the store if this is a mistake",
            ),
            Refusal::RateLimited { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, "too many requests; retry later")
            }
            Refusal::Overloaded => ApiError::unavailable(code, "the store is busy; retry shortly"),
            Refusal::BodyTooLarge => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code, "the request body is too large")
            }
            Refusal::Malformed { .. } => ApiError::bad_request(code, "the request is malformed"),
        };
        let error = match refusal.retry_after_seconds() {
            Some(s) => error.retry_after_ms(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)),
            None => error,
        };
        error.into_response()
    }
}

/// Observations become security events: at most one per client and kind a
/// minute (the state's [`crate::sampler::EventSampler`]), bans always.
struct EventObserver {
    state: AppState,
}

impl EventObserver {
    fn first_in_a_while(&self, client: IpAddr, kind: EventKind, now: i64) -> bool {
        self.state.event_sampler().first_in_a_while(client, kind, now)
    }
}

impl Observer for EventObserver {
    fn observe(&self, parts: &Parts, o: Observation) {
        let kind = match &o.refusal {
            None => EventKind::RequestFlagged,
            Some(Refusal::Blocked { .. } | Refusal::Denied | Refusal::Malformed { .. }) => EventKind::RequestBlocked,
            Some(Refusal::Banned { .. }) => EventKind::RequestBlocked,
            Some(Refusal::RateLimited { .. }) => EventKind::RateLimited,
            Some(Refusal::Overloaded) => EventKind::LoadShed,
            Some(Refusal::BodyTooLarge) => return,
        };
        let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
        let checks: Vec<String> =
            o.findings.iter().map(|f| format!("{}/{}@{}", f.family, f.check, f.location.label())).collect();
        // The log may hold the matched fragments (cut short) for tuning;
        // the event holds only which checks matched where.
        let fragments: Vec<String> = o.findings.iter().map(|f| format!("{:?}", f.fragment)).collect();
        tracing::warn!(
            request_id = request_id.as_deref().unwrap_or(""),
            client = %o.client,
            refusal = o.refusal.as_ref().map(Refusal::code).unwrap_or("flagged"),
            score = o.score,
            request_hash = %o.request_hash,
            checks = %checks.join(" "),
            fragments = %fragments.join(" "),
            "shield"
        );
        let now = self.state.now_ms();
        let mut events = Vec::new();
        if self.first_in_a_while(o.client, kind, now) {
            let mut event = SecurityEvent::new(kind, Actor::Anonymous)
                .request(request_id.as_deref())
                .with("client_ip", o.client.to_string())
                .with("method", o.method.chars().take(16).collect::<String>())
                // The route's first segments only: deeper ones can be
                // secrets (cart ids).
                .with("path", o.path.split('/').take(4).collect::<Vec<_>>().join("/"))
                .with("score", i64::from(o.score.min(1_000_000)));
            if let Some(r) = &o.refusal {
                event = event.with("reason", r.code());
            }
            if !checks.is_empty() {
                event = event.with("checks", checks.join(" ").chars().take(400).collect::<String>());
            }
            events.push(event);
        }
        if o.banned {
            events.push(
                SecurityEvent::new(EventKind::ClientBanned, Actor::Anonymous)
                    .request(request_id.as_deref())
                    .with("client_ip", o.client.to_string())
                    .with("ban_seconds", i64::try_from(self.state.settings().shield.ban.ban_seconds).unwrap_or(0)),
            );
        }
        if events.is_empty() {
            return;
        }
        let state = self.state.clone();
        tokio::spawn(async move {
            for event in events {
                if let Err(e) = state.store().record_event(&event, state.now_ms()).await {
                    tracing::warn!(error = %e, "could not record a shield event");
                }
            }
        });
    }
}

/// GCRA buckets in the database, under keyed hashes of their keys (which
/// hold client addresses and credential digests).
struct DbLimiter {
    state: AppState,
    calls: AtomicU64,
}

/// Every this many calls, buckets that have recovered are deleted.
const PRUNE_EVERY: u64 = 4096;

impl Limiter for DbLimiter {
    fn acquire<'a>(
        &'a self,
        key: &'a str,
        rate: Rate,
        now_us: i64,
    ) -> Pin<Box<dyn Future<Output = Result<(), Duration>> + Send + 'a>> {
        Box::pin(async move {
            let store = self.state.store();
            if self.calls.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1
                && let Err(e) = store.prune_rate_buckets(now_us).await
            {
                tracing::warn!(error = %e, "could not prune rate buckets");
            }
            let interval = emission_interval_us(rate);
            let tolerance = interval.saturating_mul(i64::from(rate.burst.max(1)));
            let hashed = self.state.key().ip_index(key);
            match store.take_rate_token(&hashed, now_us, interval, tolerance).await {
                Ok(None) => Ok(()),
                Ok(Some(wait_us)) => Err(Duration::from_micros(u64::try_from(wait_us).unwrap_or(0))),
                Err(e) => {
                    // A limiter outage must not close the store.
                    tracing::warn!(error = %e, "rate limit check failed; request let through");
                    Ok(())
                }
            }
        })
    }
}
