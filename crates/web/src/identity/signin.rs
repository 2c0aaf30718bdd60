//! The pieces of signing in that several routes share: throttling, failure
//! records, second-factor checks and finishing a sign-in with a new session.

use super::sessions::{self, Issued};
use super::{Stage, email_key};
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::StatusCode;
use serde_json::json;
use storefort_auth::{AccountRole, ThrottlePolicy};
use storefort_core::{Actor, Email, EventKind, SecurityEvent};
use storefort_store::{AccountRow, StoreError, WriteTx};

/// Requests whose work differs by whether an account exists (sign-up,
/// password reset) answer no sooner than this after they arrive, so their
/// timing says nothing about the account. Well above either path's cost.
pub const SIGN_UP_FLOOR: std::time::Duration = std::time::Duration::from_millis(300);
pub const RESET_FLOOR: std::time::Duration = std::time::Duration::from_millis(100);

/// Waits until `floor` has passed since `started`.
pub async fn no_sooner_than(started: tokio::time::Instant, floor: std::time::Duration) {
    tokio::time::sleep_until(started + floor).await;
}

/// Longest password accepted at all (longer is refused before hashing).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The throttle keys of an attempt: the account (by blind index, whether or
/// not it exists) and the client IP.
pub struct Keys {
    pub account: String,
    pub ip: String,
}

impl Keys {
    pub fn new(state: &AppState, email: &Email, ip: &str) -> Self {
        Keys { account: format!("account:{}", email_index(state, email)), ip: ip_key(state, ip) }
    }
}

/// The throttle key of a client IP (a keyed hash, not the address).
pub fn ip_key(state: &AppState, ip: &str) -> String {
    format!("ip:{}", state.key().ip_index(ip))
}

pub fn email_index(state: &AppState, email: &Email) -> String {
    state.key().email_index(&email_key(email))
}

/// Refuses, unchecked, an attempt on a key still blocked by earlier failures.
pub async fn check_throttle(state: &AppState, keys: &Keys) -> Result<(), ApiError> {
    let now = state.now_ms();
    let mut wait = 0;
    for key in [&keys.account, &keys.ip] {
        let until = state.store().throttle_blocked_until(key).await?;
        if let Some(w) = storefort_auth::throttle::wait_ms(until, now) {
            wait = wait.max(w);
        }
    }
    if wait > 0 {
        return Err(too_many().retry_after_ms(wait));
    }
    Ok(())
}

pub fn too_many() -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", "too many failed attempts; wait and try again")
}

pub fn invalid_credentials() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong email or password")
}

/// Records a failed attempt through the spine: throttle counters, a ledger
/// entry (account id or `unknown_account`, never the email) and an event,
/// plus a critical `account_locked` event when this failure locks the key.
pub async fn record_failure(
    state: &AppState,
    request_id: Option<&str>,
    keys: &Keys,
    account_id: Option<&str>,
    kind: &str,
    reason: &str,
) -> Result<(), ApiError> {
    let target = account_id.unwrap_or("unknown_account").to_owned();
    let mut tx = state.store().begin_write(state.now_ms(), "anonymous", request_id).await?;
    let result = async {
        let account = tx.count_failure(&keys.account, &ThrottlePolicy::ACCOUNT).await?;
        let ip = tx.count_failure(&keys.ip, &ThrottlePolicy::IP).await?;
        tx.append(kind, vec![target.clone()], json!({"reason": reason, "locked": account.locks_now || ip.locks_now}))
            .await?;
        for (locked, scope) in [(account.locks_now, "account"), (ip.locks_now, "ip")] {
            if locked {
                tx.record(
                    SecurityEvent::new(EventKind::AccountLocked, Actor::Anonymous)
                        .target(target.clone())
                        .request(request_id)
                        .with("scope", scope),
                );
            }
        }
        Ok::<_, StoreError>(())
    }
    .await;
    match result {
        Ok(()) => {
            let event_kind =
                if kind == "second_factor_failed" { EventKind::SecondFactorFailed } else { EventKind::SignInFailed };
            let event = SecurityEvent::new(event_kind, Actor::Anonymous)
                .target(target)
                .request(request_id)
                .with("reason", reason);
            tx.commit(event).await?;
            Ok(())
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e.into())
        }
    }
}

/// A second factor presented as text: a TOTP code or a recovery code.
pub enum Factor<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
}

/// Checks and spends a factor inside `tx`. Ok(false) when it is wrong or
/// already used; the caller records the failure after rolling back.
pub async fn spend_factor(
    tx: &mut WriteTx,
    state: &AppState,
    account_id: &str,
    factor: Factor<'_>,
) -> Result<bool, ApiError> {
    match factor {
        Factor::Totp(code) => {
            let Some(totp) = state.store().totp(account_id).await? else { return Ok(false) };
            if !totp.confirmed {
                return Ok(false);
            }
            let secret = super::open_totp(state, account_id, &totp.secret)?;
            let now_s = u64::try_from(state.now_ms() / 1000).unwrap_or(0);
            match secret.check(code, now_s, totp.last_step) {
                // The conditional update refuses a step already used, even
                // by a request racing this one.
                Ok(step) => Ok(tx.use_totp_step(account_id, step).await?),
                Err(_) => Ok(false),
            }
        }
        Factor::RecoveryCode(code) => {
            Ok(tx.use_recovery_code(account_id, &storefort_auth::recovery::hash(code)).await?)
        }
    }
}

/// Checks a second factor for `account_id` through the spine: throttled per
/// account and IP, a failure recorded (ledger entry, event, counters), a
/// success spent in the returned open transaction, which the caller
/// finishes (new session, step-up mark) and commits.
pub async fn pass_second_factor(
    state: &AppState,
    request_id: Option<&str>,
    ip: &str,
    account_id: &str,
    factor: Factor<'_>,
) -> Result<(WriteTx, &'static str), ApiError> {
    let keys = Keys { account: format!("second_factor:{account_id}"), ip: ip_key(state, ip) };
    check_throttle(state, &keys).await?;
    let actor = Actor::Account(account_id.to_owned()).label();
    let mut tx = state.store().begin_write(state.now_ms(), &actor, request_id).await?;
    let method = if matches!(factor, Factor::Totp(_)) { "totp" } else { "recovery_code" };
    if !spend_factor(&mut tx, state, account_id, factor).await? {
        tx.rollback().await?;
        record_failure(state, request_id, &keys, Some(account_id), "second_factor_failed", method).await?;
        return Err(bad_factor());
    }
    if let Err(e) = tx.clear_failures(&keys.account).await {
        tx.rollback().await?;
        return Err(e.into());
    }
    Ok((tx, method))
}

pub fn bad_factor() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_second_factor", "the code is wrong, expired or already used")
}

/// Where a successful password check leads for this account.
pub fn stage_after_password(account: &AccountRow, role: AccountRole) -> Stage {
    if account.has_second_factor() {
        Stage::SecondFactor
    } else if role.is_staff() {
        Stage::Enroll
    } else {
        Stage::Full
    }
}

/// Where a sign-in step ends: the session's stage, how the account proved
/// itself, and the session (challenge) it replaces.
pub struct Step<'a> {
    pub stage: Stage,
    pub method: &'a str,
    pub replaces: Option<&'a str>,
}

/// Issues the session of a finished step in `tx`, records it in the ledger
/// and commits with a `signed_in` event.
pub async fn finish(
    mut tx: WriteTx,
    state: &AppState,
    request_id: Option<&str>,
    (account, role): (&AccountRow, AccountRole),
    step: Step<'_>,
) -> Result<Issued, ApiError> {
    let Step { stage, method, replaces } = step;
    let second_factor_at = (stage == Stage::Full && method != "password").then(|| state.now_ms());
    let result = async {
        let issued = sessions::issue(&mut tx, state, &account.id, role, stage, second_factor_at, replaces).await?;
        let kind = if stage == Stage::SecondFactor { "password_verified" } else { "signed_in" };
        tx.append(
            kind,
            vec![account.id.clone()],
            json!({"method": method, "stage": stage.as_str(), "session": issued.public_id}),
        )
        .await?;
        Ok::<_, StoreError>(issued)
    }
    .await;
    match result {
        Ok(issued) => {
            let event = SecurityEvent::new(EventKind::SignedIn, Actor::Account(account.id.clone()))
                .target(account.id.clone())
                .request(request_id)
                .with("method", method)
                .with("stage", stage.as_str());
            tx.commit(event).await?;
            Ok(issued)
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e.into())
        }
    }
}
