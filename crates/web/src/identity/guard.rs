//! The authenticate-and-authorize step of the spine, as one middleware.
//!
//! For every matched route: look up the permission it declares (refuse if
//! none), find the caller (API token or session cookie), refuse staff
//! without a second factor everywhere but enrollment, ask the one policy
//! function, and check CSRF on cookie-authenticated writes. The handler then
//! finds a [`Principal`] in the request.

use super::{Principal, Stage, Via, cookie, policy};
use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::secrets::{is_token_shaped, secrets_equal};
use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, ORIGIN, REFERER};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use storefort_auth::{AccountRole, Permission, allows};
use storefort_core::{Actor, EventKind, SecurityEvent};
use storefort_store::{AccountRow, hash_secret};

/// The header that carries a session's CSRF token on writes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// API tokens start with this, so they are told apart from order tokens.
pub const API_TOKEN_PREFIX: &str = "sfa_";

/// Session last-seen times are written at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;

pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(route) = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()) else {
        return next.run(req).await;
    };
    let Some(permission) = policy::required(req.method(), &route) else {
        tracing::error!(%route, "route declares no permission; refused");
        return forbidden("forbidden", "this route is not available").into_response();
    };
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let check = Check { state: &state, request_id: request_id.as_deref(), route: &route };
    match check.run(req.method(), req.headers(), permission).await {
        Ok(Some(principal)) => {
            req.extensions_mut().insert(principal);
        }
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    next.run(req).await
}

fn forbidden(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

fn unauthorized(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// A method that changes state, for CSRF purposes.
pub fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The request's Origin (or, failing that, its Referer's origin) is the
/// store's own. Requests with neither (scripts, server-to-server) pass this
/// check; for cookie-authenticated writes the CSRF token still applies.
pub fn same_origin(headers: &HeaderMap, public_origin: &str) -> Option<bool> {
    if let Some(origin) = headers.get(ORIGIN) {
        return Some(origin.to_str().is_ok_and(|o| o == public_origin));
    }
    let referer = headers.get(REFERER)?.to_str().ok()?;
    let rest = referer.strip_prefix(public_origin)?;
    Some(rest.is_empty() || rest.starts_with('/'))
}

struct Check<'a> {
    state: &'a AppState,
    request_id: Option<&'a str>,
    route: &'a str,
}

impl Check<'_> {
    async fn run(
        &self,
        method: &Method,
        headers: &HeaderMap,
        permission: Permission,
    ) -> Result<Option<Principal>, ApiError> {
        let origin = &self.state.settings().auth.public_origin;
        let has_cookie = cookie::session_token(headers).is_some();
        // Cross-site writes riding on a cookie, and login CSRF on the
        // sign-in routes, stop here whatever the route.
        if is_write(method)
            && (has_cookie || self.route.starts_with("/api/v1/auth/"))
            && same_origin(headers, origin) == Some(false)
        {
            self.event(EventKind::CsrfRejected, Actor::Anonymous, "cross_origin").await;
            return Err(forbidden("csrf_failed", "cross-site request refused"));
        }
        if permission == Permission::Public {
            // A signed-in shopper stays signed in on public routes (their
            // checkout belongs to their account), but quietly: a stale or
            // foreign cookie just means browsing as a guest, and a write
            // without its CSRF token is treated as a guest's.
            return Ok(match cookie::session_token(headers) {
                Some(token) => self.quiet_session(token, method, headers).await,
                None => None,
            });
        }
        let principal = match bearer_api_token(headers) {
            Some(token) => self.api_token(&token, permission).await?,
            None => match cookie::session_token(headers) {
                Some(token) => self.session(token, method, headers, permission).await?,
                None => return Err(ApiError::unauthorized()),
            },
        };
        Ok(Some(principal))
    }

    /// The session behind a cookie on a public route, or `None` for
    /// anything less than a live, full, CSRF-proven (on writes) session.
    async fn quiet_session(&self, token: String, method: &Method, headers: &HeaderMap) -> Option<Principal> {
        let state = self.state;
        if !is_token_shaped(&token) {
            return None;
        }
        let id_hash = hash_secret(&token);
        let session = state.store().session(&id_hash).await.ok().flatten()?;
        if !session.live_at(state.now_ms()) || session.stage != Stage::Full.as_str() {
            return None;
        }
        if is_write(method) {
            let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !secrets_equal(presented, &state.key().csrf_token(&token)) {
                return None;
            }
        }
        let account = state.store().account(&session.account_id).await.ok().flatten()?;
        let role = AccountRole::parse(&account.role).filter(|_| account.status == "active")?;
        let via = Via::Session { id_hash, token, stage: Stage::Full, second_factor_at: session.second_factor_at };
        Some(Principal { account_id: account.id, role, via })
    }

    async fn event(&self, kind: EventKind, actor: Actor, reason: &str) {
        let event =
            SecurityEvent::new(kind, actor).request(self.request_id).with("reason", reason).with("route", self.route);
        if let Err(e) = self.state.store().record_event(&event, self.state.now_ms()).await {
            tracing::warn!(error = %e, "could not record security event");
        }
    }

    async fn account(&self, id: &str) -> Result<(AccountRow, AccountRole), ApiError> {
        let account = self.state.store().account(id).await?.ok_or_else(ApiError::unauthorized)?;
        let role = AccountRole::parse(&account.role).ok_or_else(ApiError::unauthorized)?;
        if account.status != "active" {
            self.event(EventKind::CredentialRejected, Actor::Account(id.to_owned()), "account_disabled").await;
            return Err(unauthorized("account_disabled", "this account is disabled"));
        }
        Ok((account, role))
    }

    /// Staff must have a second factor for anything but enrolling one; then
    /// the one policy function decides.
    async fn authorize(
        &self,
        account: &AccountRow,
        role: AccountRole,
        stage: Stage,
        permission: Permission,
    ) -> Result<(), ApiError> {
        let enrolling = stage == Stage::Enroll || (role.is_staff() && !account.has_second_factor());
        if enrolling && permission != Permission::SignedIn {
            return Err(forbidden(
                "second_factor_enrollment_required",
                "staff accounts must set up a second factor (TOTP or passkey) before anything else",
            ));
        }
        if !allows(role, permission) {
            self.event(EventKind::AccessDenied, Actor::Account(account.id.clone()), permission.as_str()).await;
            return Err(forbidden("forbidden", "your account may not do this"));
        }
        Ok(())
    }

    async fn api_token(&self, token: &str, permission: Permission) -> Result<Principal, ApiError> {
        let Some(row) = self.state.store().api_token(&hash_secret(token)).await? else {
            self.event(EventKind::CredentialRejected, Actor::Anonymous, "unknown_api_token").await;
            return Err(unauthorized("invalid_token", "the API token is not valid"));
        };
        if row.expires_at <= self.state.now_ms() {
            self.event(EventKind::CredentialRejected, Actor::Account(row.account_id.clone()), "expired_api_token")
                .await;
            return Err(unauthorized("token_expired", "the API token has expired"));
        }
        let (account, role) = self.account(&row.account_id).await?;
        // Routes no token may reach (account security, staff, tokens) are
        // never among a token's scopes, so this refuses them too.
        if !permission.grantable_to_tokens() || !row.scopes.iter().any(|s| s == permission.as_str()) {
            self.event(EventKind::AccessDenied, Actor::Account(account.id.clone()), "insufficient_scope").await;
            return Err(forbidden("insufficient_scope", "the API token's scopes do not cover this route"));
        }
        self.authorize(&account, role, Stage::Full, permission).await?;
        Ok(Principal { account_id: account.id, role, via: Via::ApiToken { id: row.id } })
    }

    async fn session(
        &self,
        token: String,
        method: &Method,
        headers: &HeaderMap,
        permission: Permission,
    ) -> Result<Principal, ApiError> {
        let state = self.state;
        let now = state.now_ms();
        let id_hash = hash_secret(&token);
        let found = if is_token_shaped(&token) { state.store().session(&id_hash).await? } else { None };
        let session = match found {
            Some(s) => s,
            None => {
                // Signed out, revoked, purged or forged.
                self.event(EventKind::CredentialRejected, Actor::Anonymous, "unknown_session").await;
                return Err(unauthorized("session_expired", "the session has ended; sign in again"));
            }
        };
        if !session.live_at(now) {
            return Err(unauthorized("session_expired", "the session has ended; sign in again"));
        }
        let stage = Stage::parse(&session.stage).ok_or_else(ApiError::unauthorized)?;
        if stage == Stage::SecondFactor {
            return Err(unauthorized("second_factor_required", "finish signing in with your second factor"));
        }
        let (account, role) = self.account(&session.account_id).await?;
        if is_write(method) {
            let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !secrets_equal(presented, &state.key().csrf_token(&token)) {
                self.event(EventKind::CsrfRejected, Actor::Account(account.id.clone()), "bad_token").await;
                return Err(forbidden("csrf_failed", "missing or wrong X-CSRF-Token"));
            }
        }
        self.authorize(&account, role, stage, permission).await?;
        if now - session.last_seen_at >= TOUCH_EVERY_MS
            && let Err(e) = state.store().touch_session(&id_hash, now, TOUCH_EVERY_MS).await
        {
            tracing::warn!(error = %e, "could not record session activity");
        }
        let via = Via::Session { id_hash, token, stage, second_factor_at: session.second_factor_at };
        Ok(Principal { account_id: account.id, role, via })
    }
}

/// An `Authorization: Bearer sfa_…` API token, if the request has one.
/// Other bearer tokens (order access tokens) are not identity and pass.
fn bearer_api_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    // A malformed token is still an API token attempt: it fails lookup.
    token.starts_with(API_TOKEN_PREFIX).then(|| token.to_owned())
}
