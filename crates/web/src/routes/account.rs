//! The signed-in account's own security: sessions, TOTP, recovery codes and
//! API tokens. (Passkeys are in `passkeys`.)

use super::auth::{Accepted, RevokeWhat, revoke};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::identity::guard::API_TOKEN_PREFIX;
use crate::identity::sessions;
use crate::identity::{Principal, Stage, Via, cookie};
use crate::middleware::ReqId;
use crate::secrets::random_token;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use storefort_auth::{Permission, TotpSecret, recovery};
use storefort_core::{EventKind, SecurityEvent};
use storefort_store::{NewApiToken, StoreError, WriteTx, hash_secret};
use utoipa::ToSchema;

/// One of the account's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionItem {
    pub id: String,
    pub stage: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub expires_at: String,
    /// This is the session making the request.
    pub current: bool,
}

impl SessionItem {
    pub fn of(s: storefort_store::SessionRow, current: bool) -> Self {
        SessionItem {
            id: s.public_id,
            stage: s.stage,
            created_at: crate::clock::rfc3339(s.created_at),
            last_seen_at: crate::clock::rfc3339(s.last_seen_at),
            expires_at: crate::clock::rfc3339(s.expires_at),
            current,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub items: Vec<SessionItem>,
}

/// A TOTP enrollment to confirm.
#[derive(Serialize, ToSchema)]
pub struct TotpEnrollment {
    /// For authenticator apps: scan the QR code or open this URI.
    pub otpauth_uri: String,
    /// The same URI as an SVG QR code.
    pub qr_svg: String,
    /// Base32, for typing in by hand.
    pub secret: String,
}

// The URI and the QR code carry the secret too.
crate::redact::debug_redacted!(TotpEnrollment {} redacting { otpauth_uri, qr_svg, secret });

/// A code proving the authenticator app works.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirm {
    pub totp: String,
}

/// Recovery codes, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
    /// Send back as `X-CSRF-Token` with the new session cookie.
    pub csrf_token: Option<String>,
}

/// A new API token's name, scopes and lifetime.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[schema(example = "inventory sync")]
    pub name: String,
    /// Permissions such as `read_orders`, `edit_catalog`; at most what the
    /// account itself may do.
    pub scopes: Vec<String>,
    #[schema(minimum = 1, maximum = 365)]
    pub expires_in_days: u32,
}

/// An API token as listed (never the secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenItem {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: String,
}

/// A created API token: `token` is shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: String,
    pub token: String,
    pub scopes: Vec<String>,
    pub expires_at: String,
}

crate::redact::debug_redacted!(CreatedToken { id, scopes, expires_at } redacting { token });

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenItem>,
}

/// Runs `change` in one spine transaction: commit with `event`, or roll
/// back on any error.
pub async fn in_spine<T>(
    mut tx: WriteTx,
    event: SecurityEvent,
    change: impl AsyncFnOnce(&mut WriteTx) -> Result<T, StoreError>,
) -> Result<T, ApiError> {
    match change(&mut tx).await {
        Ok(v) => {
            tx.commit(event).await?;
            Ok(v)
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e.into())
        }
    }
}

async fn begin(state: &AppState, principal: &Principal, req: &ReqId) -> Result<WriteTx, ApiError> {
    Ok(state.store().begin_write(state.now_ms(), &principal.actor().label(), req.as_deref()).await?)
}

fn event(kind: EventKind, principal: &Principal, req: &ReqId) -> SecurityEvent {
    SecurityEvent::new(kind, principal.actor()).target(principal.account_id.clone()).request(req.as_deref())
}

/// This account's sessions.
#[utoipa::path(get, path = "/account/sessions", tag = "account",
    responses((status = 200, description = "Sessions, newest first", body = SessionList),
              (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn list_sessions(State(state): State<AppState>, principal: Principal) -> Result<Json<SessionList>, ApiError> {
    let current = principal.session_hash().map(str::to_owned);
    let now = state.now_ms();
    let mut items = Vec::new();
    for s in state.store().sessions_of(&principal.account_id).await? {
        if !s.live_at(now) || s.stage == Stage::SecondFactor.as_str() {
            continue;
        }
        let is_current = match &current {
            Some(h) => state.store().session(h).await?.is_some_and(|c| c.public_id == s.public_id),
            None => false,
        };
        items.push(SessionItem::of(s, is_current));
    }
    Ok(Json(SessionList { items }))
}

/// End one of this account's sessions.
#[utoipa::path(delete, path = "/account/sessions/{id}", tag = "account",
    params(("id" = String, Path, description = "Session id from the list")),
    responses((status = 200, description = "Revoked", body = Accepted),
              (status = 404, description = "No such session", body = ErrorBody)))]
pub async fn revoke_session(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Accepted>, ApiError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::not_found("session"));
    }
    let account_id = principal.account_id.clone();
    if revoke(&state, &req, &principal, &account_id, RevokeWhat::ByPublicId(&id), "revoked_by_owner").await? == 0 {
        return Err(ApiError::not_found("session"));
    }
    Ok(Json(Accepted { status: "revoked" }))
}

/// Start TOTP enrollment: a new secret, as a URI and a QR code. Confirm it
/// with a first code at `/account/totp/confirm`.
#[utoipa::path(post, path = "/account/totp", tag = "account",
    responses((status = 200, description = "Scan this, then confirm with a code", body = TotpEnrollment),
              (status = 409, description = "TOTP is already set up (reset it first)", body = ErrorBody)))]
pub async fn start_totp(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
) -> Result<Json<TotpEnrollment>, ApiError> {
    let account = state.store().account(&principal.account_id).await?.ok_or_else(ApiError::unauthorized)?;
    let label = state.vault().reveal(&account.id, "email", &account.email).await?.unwrap_or_else(|| account.id.clone());
    let secret = TotpSecret::generate().map_err(|e| ApiError::internal(&e))?;
    let issuer = state.settings().store_name.clone();
    let uri = secret.provisioning_uri(&issuer, &label).map_err(|e| ApiError::internal(&e))?;
    let qr_svg = secret.qr_svg(&issuer, &label).map_err(|e| ApiError::internal(&e))?;
    let sealed = crate::identity::seal_totp(&state, &principal.account_id, &secret)?;
    let tx = begin(&state, &principal, &req).await?;
    let id = principal.account_id.clone();
    in_spine(tx, event(EventKind::SecondFactorEnrolled, &principal, &req).with("step", "started"), async |tx| {
        tx.begin_totp(&id, &sealed).await?;
        tx.append("totp_enrollment_started", vec![id.clone()], json!({})).await
    })
    .await
    .map_err(|e| {
        if e.code == "conflict" {
            ApiError::conflict("already_enrolled", "TOTP is already set up; reset it first")
        } else {
            e
        }
    })?;
    let secret_b32 = uri.split("secret=").nth(1).and_then(|s| s.split('&').next()).unwrap_or_default().to_owned();
    Ok(Json(TotpEnrollment { otpauth_uri: uri, qr_svg, secret: secret_b32 }))
}

/// Confirm TOTP with a first code. Returns ten recovery codes (shown once)
/// and, for a staff account that was enrolling, a new full session.
#[utoipa::path(post, path = "/account/totp/confirm", tag = "account", request_body = TotpConfirm,
    responses((status = 200, description = "Enrolled", body = RecoveryCodes),
              (status = 401, description = "Wrong code", body = ErrorBody),
              (status = 404, description = "No enrollment started", body = ErrorBody)))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiJson(body): ApiJson<TotpConfirm>,
) -> Result<Response, ApiError> {
    let pending = state.store().totp(&principal.account_id).await?;
    let Some(pending) = pending.filter(|t| !t.confirmed) else {
        return Err(ApiError::not_found("pending TOTP enrollment"));
    };
    let secret = crate::identity::open_totp(&state, &principal.account_id, &pending.secret)?;
    let now_s = u64::try_from(state.now_ms() / 1000).unwrap_or(0);
    let step = secret.check(&body.totp, now_s, pending.last_step).map_err(|_| {
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_second_factor", "the code is wrong or expired").field("totp")
    })?;
    let codes = recovery::generate().map_err(|e| ApiError::internal(&e))?;
    let hashes: Vec<String> = codes.iter().map(|c| recovery::hash(c)).collect();
    let tx = begin(&state, &principal, &req).await?;
    let id = principal.account_id.clone();
    let (old_session, rotate) = match &principal.via {
        Via::Session { id_hash, .. } => (Some(id_hash.clone()), true),
        Via::ApiToken { .. } => (None, false),
    };
    let role = principal.role;
    let issued =
        in_spine(tx, event(EventKind::SecondFactorEnrolled, &principal, &req).with("method", "totp"), async |tx| {
            if !tx.use_totp_step(&id, step).await? {
                return Err(StoreError::Conflict { constraint: "totp_replayed".into() });
            }
            tx.confirm_totp(&id, &hashes).await?;
            tx.append(
                "second_factor_enrolled",
                vec![id.clone()],
                json!({"method": "totp", "recovery_codes": hashes.len()}),
            )
            .await?;
            // A privilege change: the session is replaced by a full one that
            // has just used its second factor.
            if rotate {
                let now = tx.now_ms();
                Ok(Some(sessions::issue(tx, &state, &id, role, Stage::Full, Some(now), old_session.as_deref()).await?))
            } else {
                Ok(None)
            }
        })
        .await?;
    let csrf_token = issued.as_ref().map(|i| state.key().csrf_token(&i.token));
    let mut response = Json(RecoveryCodes { recovery_codes: codes, csrf_token }).into_response();
    if let Some(i) = issued {
        cookie::set(response.headers_mut(), i.cookie(state.now_ms()));
    }
    Ok(response)
}

/// Remove TOTP (needs step-up). A staff account without another second
/// factor can then only enroll again.
#[utoipa::path(delete, path = "/account/totp", tag = "account",
    responses((status = 200, description = "Removed", body = Accepted),
              (status = 403, description = "Step-up required", body = ErrorBody),
              (status = 404, description = "No TOTP set up", body = ErrorBody)))]
pub async fn remove_totp(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
) -> Result<Json<Accepted>, ApiError> {
    principal.require_step_up(&state)?;
    let tx = begin(&state, &principal, &req).await?;
    let id = principal.account_id.clone();
    let removed = in_spine(tx, event(EventKind::SecondFactorReset, &principal, &req).with("by", "self"), async |tx| {
        let removed = tx.remove_totp(&id).await?;
        tx.append("second_factor_reset", vec![id.clone()], json!({"method": "totp", "by": "self"})).await?;
        Ok(removed)
    })
    .await?;
    if !removed {
        return Err(ApiError::not_found("TOTP credential"));
    }
    Ok(Json(Accepted { status: "removed" }))
}

/// Replace the recovery codes (needs step-up); the old ones stop working.
#[utoipa::path(post, path = "/account/recovery-codes", tag = "account",
    responses((status = 200, description = "New codes, shown once", body = RecoveryCodes),
              (status = 403, description = "Step-up required", body = ErrorBody)))]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
) -> Result<Json<RecoveryCodes>, ApiError> {
    principal.require_step_up(&state)?;
    let codes = recovery::generate().map_err(|e| ApiError::internal(&e))?;
    let hashes: Vec<String> = codes.iter().map(|c| recovery::hash(c)).collect();
    let tx = begin(&state, &principal, &req).await?;
    let id = principal.account_id.clone();
    in_spine(tx, event(EventKind::RecoveryCodesRegenerated, &principal, &req), async |tx| {
        tx.replace_recovery_codes(&id, &hashes).await?;
        tx.append("recovery_codes_regenerated", vec![id.clone()], json!({"count": hashes.len()})).await
    })
    .await?;
    Ok(Json(RecoveryCodes { recovery_codes: codes, csrf_token: None }))
}

/// This account's API tokens.
#[utoipa::path(get, path = "/account/api-tokens", tag = "account",
    responses((status = 200, description = "Tokens (never their secrets)", body = TokenList)))]
pub async fn list_tokens(State(state): State<AppState>, principal: Principal) -> Result<Json<TokenList>, ApiError> {
    let items = state
        .store()
        .api_tokens_of(&principal.account_id)
        .await?
        .into_iter()
        .map(|t| TokenItem {
            id: t.id,
            name: t.name,
            scopes: t.scopes,
            created_at: crate::clock::rfc3339(t.created_at),
            expires_at: crate::clock::rfc3339(t.expires_at),
        })
        .collect();
    Ok(Json(TokenList { items }))
}

/// Create an API token for integrations (needs step-up). The token is
/// shown once; only its hash is kept.
#[utoipa::path(post, path = "/account/api-tokens", tag = "account", request_body = NewToken,
    responses((status = 201, description = "Created; copy the token now", body = CreatedToken),
              (status = 403, description = "Step-up required", body = ErrorBody),
              (status = 422, description = "Unknown or ungrantable scope, bad lifetime", body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    principal.require_step_up(&state)?;
    let name = storefort_core::text::clean(&body.name, 80)
        .map_err(|e| ApiError::unprocessable("invalid_field", format!("name {e}")).field("name"))?;
    if body.expires_in_days == 0 || body.expires_in_days > state.settings().auth.api_token_max_days {
        return Err(
            ApiError::unprocessable("invalid_field", "expires_in_days is out of range").field("expires_in_days")
        );
    }
    let scopes = parse_scopes(&body.scopes, principal.role)?;
    let (token, id) = (new_api_token()?, uuid::Uuid::now_v7().to_string());
    let expires_at = state.now_ms() + i64::from(body.expires_in_days) * 86_400_000;
    let tx = begin(&state, &principal, &req).await?;
    let account_id = principal.account_id.clone();
    let row = NewApiToken {
        id: id.clone(),
        account_id: account_id.clone(),
        name,
        token_hash: hash_secret(&token),
        scopes: scopes.clone(),
        expires_at,
    };
    in_spine(tx, event(EventKind::ApiTokenCreated, &principal, &req).with("token", id.clone()), async |tx| {
        tx.insert_api_token(&row).await?;
        tx.append(
            "api_token_created",
            vec![account_id.clone(), id.clone()],
            json!({"scopes": scopes, "expires_at": expires_at}),
        )
        .await
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken { id, token, scopes: row.scopes, expires_at: crate::clock::rfc3339(expires_at) }),
    ))
}

/// A new API token secret.
pub fn new_api_token() -> Result<String, ApiError> {
    Ok(format!("{API_TOKEN_PREFIX}{}", random_token().map_err(|e| ApiError::internal(&e))?))
}

/// Scopes as permissions the role holds and tokens may carry.
pub fn parse_scopes(raw: &[String], role: storefort_auth::AccountRole) -> Result<Vec<String>, ApiError> {
    if raw.is_empty() || raw.len() > 16 {
        return Err(ApiError::unprocessable("invalid_field", "give 1 to 16 scopes").field("scopes"));
    }
    let mut scopes = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let p = Permission::parse(s)
            .filter(|p| p.grantable_to_tokens() && storefort_auth::allows(role, *p))
            .ok_or_else(|| {
                ApiError::unprocessable("invalid_scope", "not a scope this account can grant")
                    .field(format!("scopes[{i}]"))
            })?;
        if !scopes.contains(&p.as_str().to_owned()) {
            scopes.push(p.as_str().to_owned());
        }
    }
    Ok(scopes)
}

/// Revoke an API token.
#[utoipa::path(delete, path = "/account/api-tokens/{id}", tag = "account",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, description = "Revoked", body = Accepted),
              (status = 404, description = "No such token", body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Accepted>, ApiError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::not_found("API token"));
    }
    let tx = begin(&state, &principal, &req).await?;
    let account_id = principal.account_id.clone();
    let removed =
        in_spine(tx, event(EventKind::ApiTokenRevoked, &principal, &req).with("token", id.clone()), async |tx| {
            let removed = tx.delete_api_token(&account_id, &id).await?;
            tx.append("api_token_revoked", vec![account_id.clone(), id.clone()], json!({"found": removed})).await?;
            Ok(removed)
        })
        .await?;
    if !removed {
        return Err(ApiError::not_found("API token"));
    }
    Ok(Json(Accepted { status: "revoked" }))
}
