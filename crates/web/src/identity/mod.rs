//! Identity at the HTTP edge: who is calling, and may they do this?
//!
//! [`guard`] authenticates every request (session cookie or API token) and
//! authorizes it against the route's declared [`policy`], before any handler
//! runs. Handlers receive a [`Principal`] and never re-decide access, except
//! step-up, which depends on what the request asks for.

pub mod cookie;
pub mod guard;
pub mod mailer;
pub mod passkey;
pub mod policy;
pub mod sessions;
pub mod signin;

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use std::time::Duration;
use storefort_auth::AccountRole;
use storefort_core::Actor;

/// Identity settings, validated at start.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The store's public origin (`https://shop.example`): the only Origin
    /// accepted on cookie-authenticated writes, and the WebAuthn origin.
    pub public_origin: String,
    pub staff_idle: Duration,
    pub staff_absolute: Duration,
    pub customer_idle: Duration,
    pub customer_absolute: Duration,
    /// How recently a second factor must have been used for sensitive
    /// actions (refunds, role changes, API tokens, 2FA resets …).
    pub step_up_window: Duration,
    /// A price change by more than this percentage needs step-up.
    pub price_step_up_percent: u32,
    /// Lifetime of email verification and password reset links.
    pub email_token_ttl: Duration,
    /// Longest lifetime an API token may be given.
    pub api_token_max_days: u32,
}

impl AuthSettings {
    /// Defaults for a first run on this machine.
    pub fn demo() -> Self {
        AuthSettings {
            public_origin: "http://localhost:8080".into(),
            staff_idle: Duration::from_secs(30 * 60),
            staff_absolute: Duration::from_secs(12 * 3600),
            customer_idle: Duration::from_secs(7 * 24 * 3600),
            customer_absolute: Duration::from_secs(30 * 24 * 3600),
            step_up_window: Duration::from_secs(5 * 60),
            price_step_up_percent: 20,
            email_token_ttl: Duration::from_secs(3600),
            api_token_max_days: 365,
        }
    }

    /// Idle and absolute session lifetimes for a role, in ms.
    pub fn lifetimes_ms(&self, role: AccountRole) -> (i64, i64) {
        let (idle, absolute) = if role.is_staff() {
            (self.staff_idle, self.staff_absolute)
        } else {
            (self.customer_idle, self.customer_absolute)
        };
        (millis(idle), millis(absolute))
    }
}

/// A duration in whole milliseconds, saturating.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// How far a session has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Password checked; a second factor is still owed. Not signed in.
    SecondFactor,
    /// Staff without any second factor: may only enroll one.
    Enroll,
    /// Signed in.
    Full,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::SecondFactor => "second_factor",
            Stage::Enroll => "enroll",
            Stage::Full => "full",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Stage::SecondFactor, Stage::Enroll, Stage::Full].into_iter().find(|x| x.as_str() == s)
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Via {
    Session {
        /// SHA-256 of the cookie's secret.
        id_hash: String,
        /// The secret itself, to derive the CSRF token and rotate.
        token: String,
        stage: Stage,
        second_factor_at: Option<i64>,
    },
    ApiToken {
        id: String,
    },
}

/// The authenticated caller, placed in the request by the guard.
#[derive(Debug, Clone)]
pub struct Principal {
    pub account_id: String,
    pub role: AccountRole,
    pub via: Via,
}

impl Principal {
    /// The actor the ledger and events name.
    pub fn actor(&self) -> Actor {
        Actor::Account(self.account_id.clone())
    }

    /// The session's secret hash, for cookie-authenticated callers.
    pub fn session_hash(&self) -> Option<&str> {
        match &self.via {
            Via::Session { id_hash, .. } => Some(id_hash),
            Via::ApiToken { .. } => None,
        }
    }

    /// Refuses unless a second factor was used in this session within the
    /// step-up window. API tokens never pass: sensitive actions need a
    /// person at a keyboard.
    pub fn require_step_up(&self, state: &AppState) -> Result<(), ApiError> {
        let window = millis(state.settings().auth.step_up_window);
        match &self.via {
            Via::Session { second_factor_at: Some(at), .. } if state.now_ms() - at <= window => Ok(()),
            _ => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "step_up_required",
                "confirm with your second factor first (POST /api/v1/auth/step-up)",
            )),
        }
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Principal {
    type Rejection = std::convert::Infallible;

    /// On public routes: the signed-in caller, if the guard found one.
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(ApiError::unauthorized)
    }
}

/// Purpose of the server subkey that seals TOTP secrets at rest.
const TOTP_SEAL: &str = "storefort/totp-secret/v1";

/// Seals a TOTP secret for the account's row.
pub fn seal_totp(state: &AppState, account_id: &str, secret: &storefort_auth::TotpSecret) -> Result<String, ApiError> {
    state.key().seal(TOTP_SEAL, account_id, secret.as_bytes()).map_err(|e| ApiError::internal(&e))
}

/// Opens the account's stored TOTP secret. A secret that does not open (a
/// row copied from another account, another store's key) is an error naming
/// the account, never a guess.
pub fn open_totp(state: &AppState, account_id: &str, sealed: &str) -> Result<storefort_auth::TotpSecret, ApiError> {
    match state.key().open(TOTP_SEAL, account_id, sealed) {
        Ok(bytes) => Ok(storefort_auth::TotpSecret::from_bytes(bytes.to_vec())),
        Err(e) => Err(ApiError::internal(&format!("TOTP secret of account {account_id}: {e}"))),
    }
}

/// The email as accounts are keyed: the normalized address, lower-cased
/// whole (mail providers treat the local part case-insensitively in
/// practice, and two accounts differing only by case would be a trap).
pub fn email_key(email: &storefort_core::Email) -> String {
    email.as_str().to_lowercase()
}

/// The client's IP address as the shield settled it (the socket peer, or
/// the client behind a configured trusted proxy); "unknown" in-process.
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let shielded = parts.extensions.get::<storefort_shield::ClientIp>().map(|c| c.0.to_string());
        let ip = shielded
            .or_else(|| {
                parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Ok(ClientIp(ip))
    }
}
