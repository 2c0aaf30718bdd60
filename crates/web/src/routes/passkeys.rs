//! Passkey registration (for the signed-in account) and passkey sign-in
//! (passwordless, or as the second factor after a password).

use super::account::in_spine;
use super::auth::{Accepted, signed_in_response};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::identity::passkey::{self, PasskeyError, Passkeys};
use crate::identity::signin::{self, Keys};
use crate::identity::{ClientIp, Principal, Stage, Via, cookie, sessions};
use crate::middleware::ReqId;
use crate::secrets::{is_token_shaped, random_token};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use storefort_auth::AccountRole;
use storefort_core::{Actor, EventKind, SecurityEvent};
use storefort_store::{PasskeyRow, hash_secret};
use utoipa::ToSchema;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

/// How long a ceremony may take.
const CEREMONY_MS: i64 = 5 * 60_000;

/// Options for `navigator.credentials.create()` / `.get()`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ceremony {
    /// Send back with the authenticator's response.
    pub challenge_id: String,
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

/// The authenticator's response.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CeremonyResponse {
    pub challenge_id: String,
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// A registered passkey.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyItem {
    pub id: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// After registration: the new session's CSRF token (the session is
    /// replaced, as at every change of privilege).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyList {
    pub items: Vec<PasskeyItem>,
}

fn relying_party(state: &AppState) -> Result<&Passkeys, ApiError> {
    state.passkeys().ok_or_else(|| ApiError::unavailable("passkeys_unavailable", "passkeys need a valid public_url"))
}

fn rejected(e: PasskeyError) -> ApiError {
    match e {
        PasskeyError::Rejected => {
            ApiError::new(StatusCode::UNAUTHORIZED, "passkey_rejected", "the passkey response did not verify")
        }
        PasskeyError::Corrupt => ApiError::internal(&e),
    }
}

fn bad_challenge() -> ApiError {
    ApiError::bad_request("invalid_challenge", "the challenge is unknown, used or expired").field("challenge_id")
}

async fn save_ceremony(
    state: &AppState,
    account: Option<&str>,
    purpose: &str,
    ceremony: String,
) -> Result<String, ApiError> {
    let id = random_token().map_err(|e| ApiError::internal(&e))?;
    state
        .store()
        .insert_webauthn_challenge(&hash_secret(&id), account, purpose, &ceremony, state.now_ms() + CEREMONY_MS)
        .await?;
    Ok(id)
}

fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(v)
        .map_err(|_| ApiError::unprocessable("invalid_field", "not a WebAuthn credential").field("credential"))
}

async fn stored_keys(
    state: &AppState,
    account_id: &str,
) -> Result<Vec<(PasskeyRow, webauthn_rs::prelude::Passkey)>, ApiError> {
    let mut keys = Vec::new();
    for row in state.store().passkeys_of(account_id).await? {
        let key = passkey::parse(&row.passkey).map_err(|e| ApiError::internal(&e))?;
        keys.push((row, key));
    }
    Ok(keys)
}

/// Start registering a passkey for this account.
#[utoipa::path(post, path = "/account/passkeys/start", tag = "passkeys",
    responses((status = 200, description = "Options for navigator.credentials.create()", body = Ceremony)))]
pub async fn start_registration(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Ceremony>, ApiError> {
    let rp = relying_party(&state)?;
    let account = state.store().account(&principal.account_id).await?.ok_or_else(ApiError::unauthorized)?;
    let existing: Vec<_> = stored_keys(&state, &account.id).await?.into_iter().map(|(_, k)| k).collect();
    let name = state.vault().reveal(&account.id, "email", &account.email).await?.unwrap_or_else(|| account.id.clone());
    let (options, ceremony) = rp.start_registration(&account.id, &name, &existing).map_err(rejected)?;
    let challenge_id = save_ceremony(&state, Some(&account.id), "register", ceremony).await?;
    Ok(Json(Ceremony { challenge_id, options }))
}

/// Finish registering: the passkey is stored and, for staff who were
/// enrolling, the session becomes a full one.
#[utoipa::path(post, path = "/account/passkeys/finish", tag = "passkeys", request_body = CeremonyResponse,
    responses((status = 201, description = "Registered", body = PasskeyItem),
              (status = 400, description = "Unknown or expired challenge", body = ErrorBody),
              (status = 401, description = "The response did not verify", body = ErrorBody)))]
pub async fn finish_registration(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiJson(body): ApiJson<CeremonyResponse>,
) -> Result<Response, ApiError> {
    let rp = relying_party(&state)?;
    let response: RegisterPublicKeyCredential = parse(body.credential)?;
    if !is_token_shaped(&body.challenge_id) {
        return Err(bad_challenge());
    }
    let mut tx = state.store().begin_write(state.now_ms(), &principal.actor().label(), req.as_deref()).await?;
    let ceremony = tx.take_webauthn_challenge(&hash_secret(&body.challenge_id), "register").await?;
    let Some((Some(owner), ceremony)) = ceremony.filter(|(a, _)| a.as_deref() == Some(principal.account_id.as_str()))
    else {
        tx.rollback().await?;
        return Err(bad_challenge());
    };
    let key = match rp.finish_registration(&response, &ceremony) {
        Ok(k) => k,
        Err(e) => {
            tx.rollback().await?;
            return Err(rejected(e));
        }
    };
    let row = PasskeyRow {
        id: uuid::Uuid::now_v7().to_string(),
        account_id: owner.clone(),
        credential_id: passkey::credential_id(key.cred_id()),
        passkey: passkey::to_text(&key).map_err(|e| ApiError::internal(&e))?,
        created_at: state.now_ms(),
        last_used_at: None,
    };
    let old_session = match &principal.via {
        Via::Session { id_hash, .. } => Some(id_hash.clone()),
        Via::ApiToken { .. } => None,
    };
    let role = principal.role;
    let event = SecurityEvent::new(EventKind::PasskeyRegistered, principal.actor())
        .target(owner.clone())
        .request(req.as_deref());
    let issued = in_spine(tx, event, async |tx| {
        tx.insert_passkey(&row).await?;
        tx.append("second_factor_enrolled", vec![owner.clone(), row.id.clone()], json!({"method": "passkey"})).await?;
        match &old_session {
            Some(old) => {
                let now = tx.now_ms();
                Ok(Some(sessions::issue(tx, &state, &owner, role, Stage::Full, Some(now), Some(old)).await?))
            }
            None => Ok(None),
        }
    })
    .await
    .map_err(|e| {
        if e.code == "conflict" {
            ApiError::conflict("passkey_exists", "this passkey is already registered")
        } else {
            e
        }
    })?;
    let item = PasskeyItem {
        id: row.id,
        created_at: crate::clock::rfc3339(row.created_at),
        last_used_at: None,
        csrf_token: issued.as_ref().map(|i| state.key().csrf_token(&i.token)),
    };
    let mut response = (StatusCode::CREATED, Json(item)).into_response();
    if let Some(i) = issued {
        cookie::set(response.headers_mut(), i.cookie(state.now_ms()));
    }
    Ok(response)
}

/// This account's passkeys.
#[utoipa::path(get, path = "/account/passkeys", tag = "passkeys",
    responses((status = 200, description = "Passkeys", body = PasskeyList)))]
pub async fn list(State(state): State<AppState>, principal: Principal) -> Result<Json<PasskeyList>, ApiError> {
    let items = state
        .store()
        .passkeys_of(&principal.account_id)
        .await?
        .into_iter()
        .map(|p| PasskeyItem {
            id: p.id,
            created_at: crate::clock::rfc3339(p.created_at),
            last_used_at: p.last_used_at.map(crate::clock::rfc3339),
            csrf_token: None,
        })
        .collect();
    Ok(Json(PasskeyList { items }))
}

/// Remove a passkey (needs step-up).
#[utoipa::path(delete, path = "/account/passkeys/{id}", tag = "passkeys",
    params(("id" = String, Path, description = "Passkey id")),
    responses((status = 200, description = "Removed", body = Accepted),
              (status = 403, description = "Step-up required", body = ErrorBody),
              (status = 404, description = "No such passkey", body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Accepted>, ApiError> {
    principal.require_step_up(&state)?;
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::not_found("passkey"));
    }
    let tx = state.store().begin_write(state.now_ms(), &principal.actor().label(), req.as_deref()).await?;
    let account_id = principal.account_id.clone();
    let event = SecurityEvent::new(EventKind::PasskeyRemoved, principal.actor())
        .target(account_id.clone())
        .request(req.as_deref());
    let removed = in_spine(tx, event, async |tx| {
        let removed = tx.delete_passkey(&account_id, &id).await?;
        tx.append(
            "second_factor_reset",
            vec![account_id.clone(), id.clone()],
            json!({"method": "passkey", "by": "self"}),
        )
        .await?;
        Ok(removed)
    })
    .await?;
    if !removed {
        return Err(ApiError::not_found("passkey"));
    }
    Ok(Json(Accepted { status: "removed" }))
}

/// Start a passkey sign-in. After a password (challenge cookie), for that
/// account's passkeys; otherwise passwordless (discoverable credentials).
#[utoipa::path(post, path = "/auth/passkey/start", tag = "passkeys",
    responses((status = 200, description = "Options for navigator.credentials.get()", body = Ceremony)))]
pub async fn start_sign_in(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Ceremony>, ApiError> {
    let rp = relying_party(&state)?;
    let pending = pending_account(&state, &headers).await?;
    let (options, ceremony) = match &pending {
        Some(account_id) => {
            let keys: Vec<_> = stored_keys(&state, account_id).await?.into_iter().map(|(_, k)| k).collect();
            if keys.is_empty() {
                return Err(ApiError::unprocessable("no_passkey", "this account has no passkey"));
            }
            rp.start_sign_in(Some(&keys)).map_err(rejected)?
        }
        None => rp.start_sign_in(None).map_err(rejected)?,
    };
    let challenge_id = save_ceremony(&state, pending.as_deref(), "sign_in", ceremony).await?;
    Ok(Json(Ceremony { challenge_id, options }))
}

/// The account a live second-factor challenge cookie is for.
async fn pending_account(state: &AppState, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(token) = cookie::session_token(headers).filter(|t| is_token_shaped(t)) else { return Ok(None) };
    Ok(state
        .store()
        .session(&hash_secret(&token))
        .await?
        .filter(|s| s.stage == Stage::SecondFactor.as_str() && s.live_at(state.now_ms()))
        .map(|s| s.account_id))
}

/// Finish a passkey sign-in: a full session.
#[utoipa::path(post, path = "/auth/passkey/finish", tag = "passkeys", request_body = CeremonyResponse,
    responses((status = 200, description = "Signed in", body = super::auth::SignInOut),
              (status = 400, description = "Unknown or expired challenge", body = ErrorBody),
              (status = 401, description = "The response did not verify", body = ErrorBody)))]
pub async fn finish_sign_in(
    State(state): State<AppState>,
    req: ReqId,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CeremonyResponse>,
) -> Result<Response, ApiError> {
    let rp = relying_party(&state)?;
    let response: PublicKeyCredential = parse(body.credential)?;
    if !is_token_shaped(&body.challenge_id) {
        return Err(bad_challenge());
    }
    let credential_id = passkey::credential_id(response.get_credential_id());
    let row = state.store().passkey_by_credential(&credential_id).await?;
    let keys = Keys { account: format!("passkey:{credential_id}"), ip: signin::ip_key(&state, &ip) };
    signin::check_throttle(&state, &keys).await?;
    let actor = row.as_ref().map_or("anonymous".into(), |r| Actor::Account(r.account_id.clone()).label().into_owned());
    let mut tx = state.store().begin_write(state.now_ms(), &actor, req.as_deref()).await?;
    let ceremony = tx.take_webauthn_challenge(&hash_secret(&body.challenge_id), "sign_in").await?;
    let Some((bound_to, ceremony)) = ceremony else {
        tx.rollback().await?;
        return Err(bad_challenge());
    };
    let verified = match &row {
        // A ceremony started after a password only accepts that account's keys.
        Some(r) if bound_to.as_deref().is_none_or(|a| a == r.account_id) => {
            let claimed_ok =
                bound_to.is_some() || rp.claimed_account(&response).as_deref() == Some(r.account_id.as_str());
            passkey::parse(&r.passkey)
                .ok()
                .filter(|_| claimed_ok)
                .and_then(|key| rp.finish_sign_in(&response, &ceremony, key).ok())
        }
        _ => None,
    };
    let (Some(row), Some(updated)) = (row, verified) else {
        // The spent challenge is committed away with the failure record.
        tx.rollback().await?;
        signin::record_failure(&state, req.as_deref(), &keys, None, "sign_in_failed", "passkey").await?;
        return Err(rejected(PasskeyError::Rejected));
    };
    let account = state.store().account(&row.account_id).await?.filter(|a| a.status == "active");
    let Some(account) = account else {
        tx.rollback().await?;
        return Err(rejected(PasskeyError::Rejected));
    };
    let role = AccountRole::parse(&account.role).ok_or_else(|| ApiError::internal(&"unknown role"))?;
    if let Err(e) = tx.update_passkey(&row.id, &passkey::to_text(&updated).map_err(|e| ApiError::internal(&e))?).await {
        tx.rollback().await?;
        return Err(e.into());
    }
    let replaces = cookie::session_token(&headers).map(|t| hash_secret(&t));
    let issued = signin::finish(
        tx,
        &state,
        req.as_deref(),
        (&account, role),
        signin::Step { stage: Stage::Full, method: "passkey", replaces: replaces.as_deref() },
    )
    .await?;
    Ok(signed_in_response(&state, &account, &issued))
}
