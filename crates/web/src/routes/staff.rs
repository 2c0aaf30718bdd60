//! Owners managing staff: invitations, roles, sessions and 2FA resets.
//! Every change here needs step-up and is a critical security event.

use super::account::in_spine;
use super::auth::{Accepted, RevokeWhat, revoke};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::identity::mailer::Mail;
use crate::identity::{Principal, email_key, millis};
use crate::middleware::ReqId;
use crate::secrets::random_token;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use storefort_auth::AccountRole;
use storefort_core::{Email, EventKind, SecurityEvent};
use storefort_store::{NewAccount, StoreError, hash_secret};
use utoipa::ToSchema;

/// A staff account.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffItem {
    pub id: String,
    pub email: String,
    pub role: String,
    pub status: String,
    pub second_factor: bool,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StaffList {
    pub items: Vec<StaffItem>,
}

/// Someone to invite.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    pub email: String,
    /// `admin`, `staff` or `support` (`owner` too, for another owner).
    pub role: String,
}

/// A new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub role: String,
}

fn staff_role(raw: &str) -> Result<AccountRole, ApiError> {
    AccountRole::parse(raw).filter(|r| r.is_staff()).ok_or_else(|| {
        ApiError::unprocessable("invalid_field", "role must be owner, admin, staff or support").field("role")
    })
}

async fn staff_account(state: &AppState, id: &str) -> Result<storefort_store::AccountRow, ApiError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::not_found("staff account"));
    }
    state
        .store()
        .account(id)
        .await?
        .filter(|a| AccountRole::parse(&a.role).is_some_and(AccountRole::is_staff))
        .ok_or_else(|| ApiError::not_found("staff account"))
}

/// Every staff account.
#[utoipa::path(get, path = "/admin/staff", tag = "staff",
    responses((status = 200, description = "Staff accounts", body = StaffList),
              (status = 403, description = "Owners only", body = ErrorBody)))]
pub async fn list_staff(State(state): State<AppState>) -> Result<Json<StaffList>, ApiError> {
    let mut items = Vec::new();
    for a in state.store().staff_accounts().await? {
        items.push(staff_item(&state, a).await?);
    }
    Ok(Json(StaffList { items }))
}

async fn staff_item(state: &AppState, a: storefort_store::AccountRow) -> Result<StaffItem, ApiError> {
    let email = state.vault().reveal(&a.id, "email", &a.email).await?.unwrap_or_default();
    Ok(StaffItem {
        second_factor: a.has_second_factor(),
        id: a.id,
        email,
        role: a.role,
        status: a.status,
        created_at: crate::clock::rfc3339(a.created_at),
    })
}

/// Invite a staff member (needs step-up): the account is created with no
/// usable password and a set-password link goes to the email.
#[utoipa::path(post, path = "/admin/staff", tag = "staff", request_body = Invite,
    responses((status = 201, description = "Invited", body = StaffItem),
              (status = 403, description = "Owners only, with step-up", body = ErrorBody),
              (status = 409, description = "The email already has an account", body = ErrorBody)))]
pub async fn invite_staff(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiJson(body): ApiJson<Invite>,
) -> Result<(StatusCode, Json<StaffItem>), ApiError> {
    principal.require_step_up(&state)?;
    let role = staff_role(&body.role)?;
    let email = Email::parse(&body.email)
        .map_err(|e| ApiError::unprocessable("invalid_field", format!("email {e}")).field("email"))?;
    let index = state.key().email_index(&email_key(&email));
    if state.store().account_by_email_index(&index).await?.is_some() {
        return Err(ApiError::conflict("account_exists", "this email already has an account"));
    }
    // A random password nobody knows: the invitee sets theirs by the link.
    let unusable = state
        .hashing()
        .hash(random_token().map_err(|e| ApiError::internal(&e))?)
        .await
        .map_err(|_| ApiError::unavailable("busy", "the store is busy; retry shortly"))?;
    let (id, token) = (uuid::Uuid::now_v7().to_string(), random_token().map_err(|e| ApiError::internal(&e))?);
    let sealed_email = state.vault().encrypt_new(&id, state.now_ms(), &[("email", email.as_str())]).await?.remove(0);
    let tx = state.store().begin_write(state.now_ms(), &principal.actor().label(), req.as_deref()).await?;
    let account = NewAccount {
        id: id.clone(),
        email: sealed_email,
        email_index: index,
        role: role.as_str().to_owned(),
        password_hash: unusable,
        email_verified: true,
    };
    let ttl = millis(state.settings().auth.email_token_ttl) * 24;
    let event = SecurityEvent::new(EventKind::RoleChanged, principal.actor())
        .target(id.clone())
        .request(req.as_deref())
        .with("new", role.as_str())
        .with("invited", 1);
    in_spine(tx, event, async |tx| {
        tx.insert_account(&account).await?;
        let expires = tx.now_ms() + ttl;
        tx.insert_email_token(&hash_secret(&token), &id, "reset_password", expires).await
    })
    .await
    .map_err(|e| {
        if e.code == "conflict" { ApiError::conflict("account_exists", "this email already has an account") } else { e }
    })?;
    let link = format!("{}/account/reset-password#token={token}", state.settings().auth.public_origin);
    state.mailer().send_later(Mail {
        to: email.as_str().to_owned(),
        subject: format!("You are invited to {}", state.settings().store_name),
        body: format!("Set your password with this link (valid 24 hours, once), then set up two-factor sign-in:\n\n{link}\n\nYour code: {token}\n"),
    });
    let created = staff_account(&state, &id).await?;
    Ok((StatusCode::CREATED, Json(staff_item(&state, created).await?)))
}

/// Change a staff member's role (needs step-up). Their sessions end, so the
/// new role applies at once.
#[utoipa::path(put, path = "/admin/staff/{id}/role", tag = "staff", request_body = RoleChange,
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "Changed", body = Accepted),
              (status = 403, description = "Owners only, with step-up", body = ErrorBody),
              (status = 404, description = "No such staff account", body = ErrorBody),
              (status = 409, description = "Would leave the store without an owner", body = ErrorBody)))]
pub async fn change_role(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<RoleChange>,
) -> Result<Json<Accepted>, ApiError> {
    principal.require_step_up(&state)?;
    let role = staff_role(&body.role)?;
    staff_account(&state, &id).await?;
    if id == principal.account_id && role != AccountRole::Owner {
        return Err(ApiError::conflict("last_owner", "an owner cannot demote themselves; another owner can"));
    }
    let tx = state.store().begin_write(state.now_ms(), &principal.actor().label(), req.as_deref()).await?;
    let event = SecurityEvent::new(EventKind::RoleChanged, principal.actor())
        .target(id.clone())
        .request(req.as_deref())
        .with("new", role.as_str());
    in_spine(tx, event, async |tx| {
        tx.set_account_role(&id, role.as_str()).await?;
        let ended = tx.delete_sessions_of(&id, None).await?;
        tx.append("sessions_revoked", vec![id.clone()], json!({"count": ended, "reason": "role_changed"})).await?;
        Ok::<_, StoreError>(())
    })
    .await?;
    Ok(Json(Accepted { status: "changed" }))
}

/// A staff member's live sessions.
#[utoipa::path(get, path = "/admin/staff/{id}/sessions", tag = "staff",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "Sessions", body = super::account::SessionList),
              (status = 404, description = "No such staff account", body = ErrorBody)))]
pub async fn staff_sessions(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<super::account::SessionList>, ApiError> {
    staff_account(&state, &id).await?;
    let now = state.now_ms();
    let items = state
        .store()
        .sessions_of(&id)
        .await?
        .into_iter()
        .filter(|s| s.live_at(now))
        .map(|s| super::account::SessionItem::of(s, false))
        .collect();
    Ok(Json(super::account::SessionList { items }))
}

/// End every session of a staff member.
#[utoipa::path(delete, path = "/admin/staff/{id}/sessions", tag = "staff",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "Revoked", body = Accepted),
              (status = 404, description = "No such staff account", body = ErrorBody)))]
pub async fn revoke_staff_sessions(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Accepted>, ApiError> {
    staff_account(&state, &id).await?;
    revoke(&state, &req, &principal, &id, RevokeWhat::All, "revoked_by_owner").await?;
    Ok(Json(Accepted { status: "revoked" }))
}

/// Reset a staff member's second factors (needs step-up): TOTP, recovery
/// codes and passkeys go, sessions end, and they must enroll again.
#[utoipa::path(post, path = "/admin/staff/{id}/reset-second-factor", tag = "staff",
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "Reset", body = Accepted),
              (status = 403, description = "Owners only, with step-up", body = ErrorBody),
              (status = 404, description = "No such staff account", body = ErrorBody)))]
pub async fn reset_second_factor(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Accepted>, ApiError> {
    principal.require_step_up(&state)?;
    staff_account(&state, &id).await?;
    let passkeys = state.store().passkeys_of(&id).await?;
    let tx = state.store().begin_write(state.now_ms(), &principal.actor().label(), req.as_deref()).await?;
    let event = SecurityEvent::new(EventKind::SecondFactorReset, principal.actor())
        .target(id.clone())
        .request(req.as_deref())
        .with("by", "owner");
    in_spine(tx, event, async |tx| {
        tx.remove_totp(&id).await?;
        for p in &passkeys {
            tx.delete_passkey(&id, &p.id).await?;
        }
        let ended = tx.delete_sessions_of(&id, None).await?;
        tx.append(
            "second_factor_reset",
            vec![id.clone()],
            json!({"by": "owner", "passkeys": passkeys.len(), "sessions": ended}),
        )
        .await
    })
    .await?;
    Ok(Json(Accepted { status: "reset" }))
}
