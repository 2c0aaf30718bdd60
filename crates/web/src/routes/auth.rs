//! Signing up, in and out, email verification, password reset and step-up.
//!
//! Answers never tell whether an email has an account: sign-up and reset
//! requests always say "sent", and a wrong password and an unknown email get
//! the same answer after the same work (a full Argon2id verification and a
//! ledger write either way).

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::identity::signin::{self, Factor, Keys, MAX_PASSWORD_BYTES};
use crate::identity::{ClientIp, Principal, Stage, Via, cookie, mailer::Mail, millis};
use crate::middleware::ReqId;
use crate::secrets::{is_token_shaped, random_token};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use storefort_auth::{AccountRole, Verification, policy};
use storefort_core::{Actor, Email, EventKind, SecurityEvent};
use storefort_store::{AccountRow, NewAccount, StoreError, hash_secret};
use utoipa::ToSchema;

/// Email and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[schema(example = "ada@example.com")]
    pub email: String,
    pub password: String,
    /// A current TOTP code, to finish a two-factor sign-in in one request.
    #[serde(default)]
    pub totp: Option<String>,
}

crate::redact::debug_redacted!(Credentials { email } redacting { password, totp });

/// A second factor finishing a sign-in, or stepping up.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondFactor {
    /// A six-digit code from the authenticator app.
    #[serde(default)]
    pub totp: Option<String>,
    /// One of the recovery codes shown at enrollment.
    #[serde(default)]
    pub recovery_code: Option<String>,
    /// The sign-in's `challenge`, for clients that do not keep cookies.
    #[serde(default)]
    pub challenge: Option<String>,
}

crate::redact::debug_redacted!(SecondFactor {} redacting { totp, recovery_code, challenge });

/// A one-time token from a mail.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailToken {
    pub token: String,
}

crate::redact::debug_redacted!(EmailToken {} redacting { token });

/// Who wants a reset link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub email: String,
}

/// A reset link's token and the new password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    pub token: String,
    pub password: String,
}

crate::redact::debug_redacted!(ResetConfirm {} redacting { token, password });

/// Where a sign-in stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignInOut {
    /// `signed_in`, `second_factor_required` or `enrollment_required`.
    pub status: &'static str,
    pub account_id: String,
    pub role: String,
    /// Second factors the account can finish with.
    pub methods: Vec<&'static str>,
    /// Send back as `X-CSRF-Token` on writes made with the session cookie.
    pub csrf_token: Option<String>,
    /// RFC 3339; when the session (or challenge) ends at the latest.
    pub expires_at: String,
    /// With `second_factor_required`: where to send `{"totp"}` (the
    /// challenge cookie identifies the sign-in; clients without cookies send
    /// `challenge` back in the body instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
}

/// An accepted request whose outcome is told by mail.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub status: &'static str,
}

/// The current session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub account_id: String,
    pub role: String,
    pub stage: String,
    pub csrf_token: Option<String>,
    pub second_factor: bool,
}

fn parse_email(raw: &str) -> Result<Email, ApiError> {
    Email::parse(raw).map_err(|e| ApiError::unprocessable("invalid_field", format!("email {e}")).field("email"))
}

fn check_password_size(p: &str) -> Result<(), ApiError> {
    if p.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::unprocessable("invalid_field", "password is too long").field("password"));
    }
    Ok(())
}

fn policy_error(e: policy::PolicyError) -> ApiError {
    ApiError::unprocessable("weak_password", format!("password {e}")).field("password")
}

fn hashing_error(_: storefort_auth::PasswordError) -> ApiError {
    ApiError::unavailable("busy", "the store is busy; retry shortly")
}

fn methods(account: &AccountRow) -> Vec<&'static str> {
    let mut m = Vec::new();
    if account.has_totp {
        m.extend(["totp", "recovery_code"]);
    }
    if account.passkeys > 0 {
        m.push("passkey");
    }
    m
}

/// The JSON answer and cookie of a sign-in step.
pub fn signed_in_response(
    state: &AppState,
    account: &AccountRow,
    issued: &crate::identity::sessions::Issued,
) -> Response {
    let status = match issued.stage {
        Stage::Full => "signed_in",
        Stage::SecondFactor => "second_factor_required",
        Stage::Enroll => "enrollment_required",
    };
    let body = SignInOut {
        status,
        account_id: account.id.clone(),
        role: account.role.clone(),
        methods: methods(account),
        csrf_token: (issued.stage != Stage::SecondFactor).then(|| state.key().csrf_token(&issued.token)),
        expires_at: crate::clock::rfc3339(issued.expires_at),
        next: (issued.stage == Stage::SecondFactor).then_some("/api/v1/auth/second-factor"),
        challenge: (issued.stage == Stage::SecondFactor).then(|| issued.token.clone()),
    };
    let mut response = Json(body).into_response();
    cookie::set(response.headers_mut(), issued.cookie(state.now_ms()));
    response
}

/// Create a customer account. The answer is the same whether or not the
/// email already has one; the mail says which.
#[utoipa::path(post, path = "/auth/sign-up", tag = "auth", request_body = Credentials,
    responses(
        (status = 202, description = "A verification mail is on its way", body = Accepted),
        (status = 422, description = "Invalid email or a weak password", body = ErrorBody),
    ))]
pub async fn sign_up(
    State(state): State<AppState>,
    req: ReqId,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let started = tokio::time::Instant::now();
    let email = parse_email(&body.email)?;
    check_password_size(&body.password)?;
    policy::check(&body.password, policy::Role::Customer, &[email.as_str(), &state.settings().store_name])
        .map_err(policy_error)?;
    // Hash whether or not the account exists, so both take as long.
    let hash = state.hashing().hash(body.password).await.map_err(hashing_error)?;
    let index = signin::email_index(&state, &email);
    let existing = state.store().account_by_email_index(&index).await?;
    let account_id = uuid::Uuid::now_v7().to_string();
    let token = random_token().map_err(|e| ApiError::internal(&e))?;
    // Only new accounts get a data key; the branch costs one key-store write,
    // which the response floor below hides.
    let sealed_email = match &existing {
        None => state.vault().encrypt_new(&account_id, state.now_ms(), &[("email", email.as_str())]).await?.remove(0),
        Some(_) => String::new(),
    };
    let mut tx = state.store().begin_write(state.now_ms(), "anonymous", req.as_deref()).await?;
    let result = async {
        match &existing {
            Some(a) => {
                tx.append("sign_up_repeated", vec![a.id.clone()], json!({})).await?;
            }
            None => {
                tx.insert_account(&NewAccount {
                    id: account_id.clone(),
                    email: sealed_email.clone(),
                    email_index: index.clone(),
                    role: AccountRole::Customer.as_str().to_owned(),
                    password_hash: hash,
                    email_verified: false,
                })
                .await?;
                let ttl = millis(state.settings().auth.email_token_ttl);
                tx.insert_email_token(&hash_secret(&token), &account_id, "verify_email", tx.now_ms() + ttl).await?;
            }
        }
        Ok::<_, StoreError>(())
    }
    .await;
    if let Err(e) = result {
        tx.rollback().await?;
        return Err(e.into());
    }
    let target = existing.as_ref().map_or(account_id.clone(), |a| a.id.clone());
    tx.commit(SecurityEvent::new(EventKind::AccountCreated, Actor::Anonymous).target(target).request(req.as_deref()))
        .await?;
    let link = format!("{}/account/verify-email#token={token}", state.settings().auth.public_origin);
    let mail = match existing {
        None => Mail {
            to: email.as_str().to_owned(),
            subject: format!("Confirm your email for {}", state.settings().store_name),
            body: format!(
                "Confirm your email address to finish creating your account:\n\n{link}\n\nYour code: {token}\n"
            ),
        },
        Some(_) => Mail {
            to: email.as_str().to_owned(),
            subject: format!("Your {} account", state.settings().store_name),
            body: "Someone tried to create an account with this email address, which already has one. \
                   If it was you, sign in or reset your password. If not, you can ignore this mail.\n"
                .into(),
        },
    };
    state.mailer().send_later(mail);
    signin::no_sooner_than(started, signin::SIGN_UP_FLOOR).await;
    Ok((StatusCode::ACCEPTED, Json(Accepted { status: "verification_sent" })))
}

/// Confirm an email address with the token from the verification mail.
#[utoipa::path(post, path = "/auth/verify-email", tag = "auth", request_body = EmailToken,
    responses(
        (status = 200, description = "Verified; the account can sign in", body = Accepted),
        (status = 400, description = "The token is invalid, used or expired", body = ErrorBody),
    ))]
pub async fn verify_email(
    State(state): State<AppState>,
    req: ReqId,
    ApiJson(body): ApiJson<EmailToken>,
) -> Result<Json<Accepted>, ApiError> {
    let bad = || ApiError::bad_request("invalid_token", "the link is invalid, already used or expired").field("token");
    if !is_token_shaped(&body.token) {
        return Err(bad());
    }
    let mut tx = state.store().begin_write(state.now_ms(), "anonymous", req.as_deref()).await?;
    let Some(account_id) = tx.use_email_token(&hash_secret(&body.token), "verify_email").await? else {
        tx.rollback().await?;
        return Err(bad());
    };
    let result = async {
        tx.mark_email_verified(&account_id).await?;
        tx.append("email_verified", vec![account_id.clone()], json!({})).await
    }
    .await;
    if let Err(e) = result {
        tx.rollback().await?;
        return Err(e.into());
    }
    let event = SecurityEvent::new(EventKind::EmailVerified, Actor::Account(account_id.clone()))
        .target(account_id)
        .request(req.as_deref());
    tx.commit(event).await?;
    Ok(Json(Accepted { status: "verified" }))
}

/// Sign in with email and password. Answers with a session cookie, or, for
/// an account with a second factor, a challenge (also a cookie) to finish at
/// `POST /auth/second-factor` with `{"totp"}` or at `/auth/passkey/*`.
#[utoipa::path(post, path = "/auth/sign-in", tag = "auth", request_body = Credentials,
    responses(
        (status = 200, description = "Signed in, or a second factor is required", body = SignInOut),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
        (status = 403, description = "The email is not verified yet", body = ErrorBody),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = ErrorBody),
    ))]
pub async fn sign_in(
    State(state): State<AppState>,
    req: ReqId,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let email = parse_email(&body.email)?;
    check_password_size(&body.password)?;
    let keys = Keys::new(&state, &email, &ip);
    signin::check_throttle(&state, &keys).await?;
    let account = state.store().account_by_email_index(&signin::email_index(&state, &email)).await?;
    let stored = account.as_ref().map(|a| a.password_hash.clone());
    let verdict = state.hashing().verify(body.password.clone(), stored).await.map_err(hashing_error)?;
    let (account, role) = match (account, verdict) {
        (Some(a), Verification::Match | Verification::MatchNeedsRehash) if a.status == "active" => {
            let role = AccountRole::parse(&a.role).ok_or_else(|| ApiError::internal(&"unknown role"))?;
            (a, role)
        }
        (account, _) => {
            let reason = if account.is_some() { "bad_password" } else { "unknown_account" };
            let id = account.as_ref().map(|a| a.id.as_str());
            signin::record_failure(&state, req.as_deref(), &keys, id, "sign_in_failed", reason).await?;
            return Err(signin::invalid_credentials());
        }
    };
    if role == AccountRole::Customer && account.email_verified_at.is_none() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "email_not_verified", "confirm your email address first"));
    }
    let rehash = if verdict == Verification::MatchNeedsRehash {
        Some(state.hashing().hash(body.password).await.map_err(hashing_error)?)
    } else {
        None
    };
    let mut tx =
        state.store().begin_write(state.now_ms(), &Actor::Account(account.id.clone()).label(), req.as_deref()).await?;
    let mut stage = signin::stage_after_password(&account, role);
    let mut method = "password";
    let prepared = async {
        tx.clear_failures(&keys.account).await?;
        if let Some(hash) = &rehash {
            tx.set_password_hash(&account.id, hash, "rehashed").await?;
        }
        Ok::<_, StoreError>(())
    }
    .await;
    if let Err(e) = prepared {
        tx.rollback().await?;
        return Err(e.into());
    }
    // A TOTP code sent along finishes a two-factor sign-in in one step.
    if let (Stage::SecondFactor, Some(code)) = (stage, body.totp.as_deref()) {
        if signin::spend_factor(&mut tx, &state, &account.id, Factor::Totp(code)).await? {
            stage = Stage::Full;
            method = "password+totp";
        } else {
            tx.rollback().await?;
            signin::record_failure(&state, req.as_deref(), &keys, Some(&account.id), "second_factor_failed", "totp")
                .await?;
            return Err(signin::bad_factor());
        }
    }
    let replaces = cookie::session_token(&headers).map(|t| hash_secret(&t));
    let issued = signin::finish(
        tx,
        &state,
        req.as_deref(),
        (&account, role),
        signin::Step { stage, method, replaces: replaces.as_deref() },
    )
    .await?;
    Ok(signed_in_response(&state, &account, &issued))
}

/// The pending sign-in challenge behind the request's cookie.
async fn challenge(
    state: &AppState,
    headers: &HeaderMap,
    in_body: Option<&str>,
) -> Result<(String, AccountRow, AccountRole), ApiError> {
    let expired = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "challenge_expired",
            "no sign-in is waiting for a second factor; sign in again",
        )
    };
    let token = in_body
        .map(str::to_owned)
        .or_else(|| cookie::session_token(headers))
        .filter(|t| is_token_shaped(t))
        .ok_or_else(expired)?;
    let id_hash = hash_secret(&token);
    let session = state.store().session(&id_hash).await?.ok_or_else(expired)?;
    if session.stage != Stage::SecondFactor.as_str() || !session.live_at(state.now_ms()) {
        return Err(expired());
    }
    let account = state.store().account(&session.account_id).await?.ok_or_else(expired)?;
    let role = AccountRole::parse(&account.role).ok_or_else(expired)?;
    Ok((id_hash, account, role))
}

/// Finish a sign-in with a TOTP code or a recovery code.
#[utoipa::path(post, path = "/auth/second-factor", tag = "auth", request_body = SecondFactor,
    responses(
        (status = 200, description = "Signed in", body = SignInOut),
        (status = 401, description = "Wrong, reused or expired code, or no sign-in waiting", body = ErrorBody),
        (status = 429, description = "Too many failed attempts", body = ErrorBody),
    ))]
pub async fn second_factor(
    State(state): State<AppState>,
    req: ReqId,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SecondFactor>,
) -> Result<Response, ApiError> {
    let (challenge_hash, account, role) = challenge(&state, &headers, body.challenge.as_deref()).await?;
    let factor = factor_of(&body)?;
    let (tx, method) = signin::pass_second_factor(&state, req.as_deref(), &ip, &account.id, factor).await?;
    let issued = signin::finish(
        tx,
        &state,
        req.as_deref(),
        (&account, role),
        signin::Step { stage: Stage::Full, method, replaces: Some(&challenge_hash) },
    )
    .await?;
    Ok(signed_in_response(&state, &account, &issued))
}

fn factor_of(body: &SecondFactor) -> Result<Factor<'_>, ApiError> {
    match (&body.totp, &body.recovery_code) {
        (Some(code), None) => Ok(Factor::Totp(code)),
        (None, Some(code)) => Ok(Factor::RecoveryCode(code)),
        _ => Err(ApiError::unprocessable("invalid_field", "send exactly one of totp or recovery_code")),
    }
}

/// Confirm with a second factor before a sensitive action (refunds, role
/// changes, API tokens, 2FA resets, big price changes): valid 5 minutes.
#[utoipa::path(post, path = "/auth/step-up", tag = "auth", request_body = SecondFactor,
    responses(
        (status = 200, description = "Stepped up", body = Accepted),
        (status = 401, description = "Wrong or reused code", body = ErrorBody),
        (status = 403, description = "Not a session (API tokens cannot step up)", body = ErrorBody),
    ))]
pub async fn step_up(
    State(state): State<AppState>,
    req: ReqId,
    ClientIp(ip): ClientIp,
    principal: Principal,
    ApiJson(body): ApiJson<SecondFactor>,
) -> Result<Json<Accepted>, ApiError> {
    let Some(session) = principal.session_hash().map(str::to_owned) else {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "session_required", "step-up needs a signed-in session"));
    };
    if body.challenge.is_some() {
        return Err(ApiError::unprocessable("invalid_field", "step-up takes no challenge").field("challenge"));
    }
    let factor = factor_of(&body)?;
    let (mut tx, method) =
        signin::pass_second_factor(&state, req.as_deref(), &ip, &principal.account_id, factor).await?;
    let result = async {
        tx.mark_second_factor(&session).await?;
        tx.append("stepped_up", vec![principal.account_id.clone()], json!({"method": method})).await
    }
    .await;
    if let Err(e) = result {
        tx.rollback().await?;
        return Err(e.into());
    }
    tx.commit(
        SecurityEvent::new(EventKind::SteppedUp, principal.actor())
            .target(principal.account_id.clone())
            .request(req.as_deref())
            .with("method", method),
    )
    .await?;
    Ok(Json(Accepted { status: "stepped_up" }))
}

/// End this session, server-side.
#[utoipa::path(post, path = "/auth/sign-out", tag = "auth",
    responses(
        (status = 200, description = "Signed out; the cookie is cleared", body = Accepted),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub async fn sign_out(State(state): State<AppState>, req: ReqId, principal: Principal) -> Result<Response, ApiError> {
    let Some(session) = principal.session_hash().map(str::to_owned) else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "not_a_session", "API tokens are revoked, not signed out"));
    };
    revoke(&state, &req, &principal, &principal.account_id, RevokeWhat::ByHash(&session), "sign_out").await?;
    let mut response = Json(Accepted { status: "signed_out" }).into_response();
    cookie::set(response.headers_mut(), cookie::cleared_cookie());
    Ok(response)
}

/// Which sessions a revocation ends.
pub enum RevokeWhat<'a> {
    ByHash(&'a str),
    ByPublicId(&'a str),
    All,
}

/// Ends sessions of `account_id` through the spine. Returns how many ended.
pub async fn revoke(
    state: &AppState,
    req: &ReqId,
    by: &Principal,
    account_id: &str,
    what: RevokeWhat<'_>,
    reason: &str,
) -> Result<u64, ApiError> {
    let mut tx = state.store().begin_write(state.now_ms(), &by.actor().label(), req.as_deref()).await?;
    let result = async {
        let n = match what {
            RevokeWhat::ByHash(h) => u64::from(tx.delete_session(h).await?),
            RevokeWhat::ByPublicId(id) => u64::from(tx.delete_session_by_public_id(account_id, id).await?),
            RevokeWhat::All => tx.delete_sessions_of(account_id, None).await?,
        };
        tx.append("sessions_revoked", vec![account_id.to_owned()], json!({"count": n, "reason": reason})).await?;
        Ok::<_, StoreError>(n)
    }
    .await;
    let n = match result {
        Ok(n) => n,
        Err(e) => {
            tx.rollback().await?;
            return Err(e.into());
        }
    };
    let kind = if reason == "sign_out" { EventKind::SignedOut } else { EventKind::SessionRevoked };
    tx.commit(
        SecurityEvent::new(kind, by.actor())
            .target(account_id.to_owned())
            .request(req.as_deref())
            .with("count", i64::try_from(n).unwrap_or(i64::MAX))
            .with("reason", reason),
    )
    .await?;
    Ok(n)
}

/// Who is signed in here.
#[utoipa::path(get, path = "/auth/session", tag = "auth",
    responses(
        (status = 200, description = "The current session", body = SessionOut),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub async fn session(State(state): State<AppState>, principal: Principal) -> Result<Json<SessionOut>, ApiError> {
    let account = state.store().account(&principal.account_id).await?.ok_or_else(ApiError::unauthorized)?;
    let (stage, csrf) = match &principal.via {
        Via::Session { stage, token, .. } => (stage.as_str(), Some(state.key().csrf_token(token))),
        Via::ApiToken { .. } => ("api_token", None),
    };
    let stage = if principal.role.is_staff() && !account.has_second_factor() { "enroll" } else { stage };
    Ok(Json(SessionOut {
        account_id: account.id.clone(),
        role: account.role.clone(),
        stage: stage.to_owned(),
        csrf_token: csrf,
        second_factor: account.has_second_factor(),
    }))
}

/// Ask for a password reset link. Always answers the same.
#[utoipa::path(post, path = "/auth/password-reset", tag = "auth", request_body = ResetRequest,
    responses(
        (status = 202, description = "If the account exists, a mail is on its way", body = Accepted),
        (status = 422, description = "Not an email address", body = ErrorBody),
    ))]
pub async fn password_reset(
    State(state): State<AppState>,
    req: ReqId,
    ApiJson(body): ApiJson<ResetRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let started = tokio::time::Instant::now();
    let email = parse_email(&body.email)?;
    let account = state.store().account_by_email_index(&signin::email_index(&state, &email)).await?;
    let token = random_token().map_err(|e| ApiError::internal(&e))?;
    // Both branches write one ledger entry, so both take one commit.
    let mut tx = state.store().begin_write(state.now_ms(), "anonymous", req.as_deref()).await?;
    let target = account.as_ref().map_or("unknown_account".to_owned(), |a| a.id.clone());
    let result = async {
        if let Some(a) = &account {
            let ttl = millis(state.settings().auth.email_token_ttl);
            tx.insert_email_token(&hash_secret(&token), &a.id, "reset_password", tx.now_ms() + ttl).await?;
        }
        tx.append("password_reset_requested", vec![target.clone()], json!({})).await
    }
    .await;
    if let Err(e) = result {
        tx.rollback().await?;
        return Err(e.into());
    }
    tx.commit(
        SecurityEvent::new(EventKind::PasswordResetRequested, Actor::Anonymous).target(target).request(req.as_deref()),
    )
    .await?;
    if account.is_some() {
        let link = format!("{}/account/reset-password#token={token}", state.settings().auth.public_origin);
        state.mailer().send_later(Mail {
            to: email.as_str().to_owned(),
            subject: format!("Reset your {} password", state.settings().store_name),
            body: format!("Set a new password with this link (valid one hour, once):\n\n{link}\n\nYour code: {token}\n\nIf you did not ask for this, ignore this mail.\n"),
        });
    }
    signin::no_sooner_than(started, signin::RESET_FLOOR).await;
    Ok((StatusCode::ACCEPTED, Json(Accepted { status: "reset_sent" })))
}

/// Set a new password with a reset link's token. Every session ends.
#[utoipa::path(post, path = "/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirm,
    responses(
        (status = 200, description = "Password changed; sign in again", body = Accepted),
        (status = 400, description = "The token is invalid, used or expired", body = ErrorBody),
        (status = 422, description = "A weak password", body = ErrorBody),
    ))]
pub async fn password_reset_confirm(
    State(state): State<AppState>,
    req: ReqId,
    ApiJson(body): ApiJson<ResetConfirm>,
) -> Result<Json<Accepted>, ApiError> {
    check_password_size(&body.password)?;
    policy::check(&body.password, policy::Role::Customer, &[&state.settings().store_name]).map_err(policy_error)?;
    let bad = || ApiError::bad_request("invalid_token", "the link is invalid, already used or expired").field("token");
    if !is_token_shaped(&body.token) {
        return Err(bad());
    }
    let long_enough_for_staff = body.password.chars().count() >= 12;
    let hash = state.hashing().hash(body.password).await.map_err(hashing_error)?;
    let mut tx = state.store().begin_write(state.now_ms(), "anonymous", req.as_deref()).await?;
    let Some(account_id) = tx.use_email_token(&hash_secret(&body.token), "reset_password").await? else {
        tx.rollback().await?;
        return Err(bad());
    };
    let account = match state.store().account(&account_id).await? {
        Some(a) => a,
        None => {
            tx.rollback().await?;
            return Err(bad());
        }
    };
    // Staff passwords need 12 characters; refusing here leaves the link usable.
    if AccountRole::parse(&account.role).is_some_and(AccountRole::is_staff) && !long_enough_for_staff {
        tx.rollback().await?;
        return Err(policy_error(policy::PolicyError::TooShort { min: 12 }));
    }
    let result = async {
        tx.set_password_hash(&account_id, &hash, "reset").await?;
        // Whoever knew the old password is signed out everywhere.
        tx.delete_sessions_of(&account_id, None).await
    }
    .await;
    if let Err(e) = result {
        tx.rollback().await?;
        return Err(e.into());
    }
    let event = SecurityEvent::new(EventKind::PasswordChanged, Actor::Account(account_id.clone()))
        .target(account_id)
        .request(req.as_deref())
        .with("reason", "reset");
    tx.commit(event).await?;
    Ok(Json(Accepted { status: "password_changed" }))
}
