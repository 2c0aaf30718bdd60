//! Privacy rights: export everything held about a customer (JSON and a
//! readable page), and erase it (crypto-shredding), with legal holds.
//!
//! Erasure destroys the customer's data key in the key store first: from
//! that moment every copy of their personal data (this database, exports,
//! old backups of it) is unreadable. The store's own rows are then scrubbed
//! through the spine. If anything fails in between, the start-up
//! reconciliation ([`reconcile_erasures`]) finishes the job.

use super::account::in_spine;
use super::auth::Accepted;
use super::orders::{OrderOut, order_out};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::identity::Principal;
use crate::middleware::ReqId;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use storefort_auth::AccountRole;
use storefort_core::{Actor, EventKind, SecurityEvent};
use storefort_store::{AccountRow, StoreError};
use utoipa::{IntoParams, ToSchema};

/// Everything held about a customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Export {
    pub generated_at: String,
    pub profile: Profile,
    pub orders: Vec<OrderOut>,
    pub sessions: Vec<super::account::SessionItem>,
    pub passkeys: Vec<super::passkeys::PasskeyItem>,
    pub security_events: Vec<super::admin::EventOut>,
    /// The latest choice per purpose.
    #[schema(value_type = Vec<Object>)]
    pub consents: Vec<serde_json::Value>,
}

/// The account itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    pub id: String,
    /// Null once erased.
    pub email: Option<String>,
    pub role: String,
    pub status: String,
    pub email_verified: bool,
    pub second_factor: bool,
    pub created_at: String,
    pub legal_hold: bool,
}

/// Export format.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `json` (default) or `html`.
    pub format: Option<String>,
}

/// The password, to confirm a customer's own erasure.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseConfirm {
    pub password: String,
}

crate::redact::debug_redacted!(EraseConfirm {} redacting { password });

/// Why data is held.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegalHold {
    /// For the record, e.g. "tax audit 2026"; kept in the store, not the ledger.
    pub reason: String,
}

async fn customer(state: &AppState, id: &str) -> Result<AccountRow, ApiError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiError::not_found("customer"));
    }
    state
        .store()
        .account(id)
        .await?
        .filter(|a| a.role == AccountRole::Customer.as_str())
        .ok_or_else(|| ApiError::not_found("customer"))
}

async fn build_export(state: &AppState, account: &AccountRow) -> Result<Export, ApiError> {
    let email = state.vault().reveal(&account.id, "email", &account.email).await?;
    let mut orders = Vec::new();
    for id in state.store().order_ids_of(&account.id).await? {
        orders.push(order_out(state, state.store().order(&id).await?).await?);
    }
    let now = state.now_ms();
    let sessions = state
        .store()
        .sessions_of(&account.id)
        .await?
        .into_iter()
        .filter(|s| s.live_at(now))
        .map(|s| super::account::SessionItem::of(s, false))
        .collect();
    let passkeys = state
        .store()
        .passkeys_of(&account.id)
        .await?
        .into_iter()
        .map(|p| super::passkeys::PasskeyItem {
            id: p.id,
            created_at: crate::clock::rfc3339(p.created_at),
            last_used_at: p.last_used_at.map(crate::clock::rfc3339),
            csrf_token: None,
        })
        .collect();
    let security_events =
        state.store().events_about(&account.id, 500).await?.into_iter().map(super::admin::event_out).collect();
    Ok(Export {
        generated_at: crate::clock::rfc3339(now),
        profile: Profile {
            id: account.id.clone(),
            email,
            role: account.role.clone(),
            status: account.status.clone(),
            email_verified: account.email_verified_at.is_some(),
            second_factor: account.has_second_factor(),
            created_at: crate::clock::rfc3339(account.created_at),
            legal_hold: account.legal_hold.is_some(),
        },
        orders,
        sessions,
        passkeys,
        security_events,
        consents: state
            .store()
            .consents_of(&account.id)
            .await?
            .into_iter()
            .map(|c| {
                serde_json::json!({"purpose": c.purpose, "granted": c.granted, "text_version": c.text_version,
                                   "source": c.source, "at": crate::clock::rfc3339(c.at)})
            })
            .collect(),
    })
}

fn export_response(export: Export, format: Option<&str>) -> Result<Response, ApiError> {
    match format.unwrap_or("json") {
        "json" => Ok(Json(export).into_response()),
        "html" => {
            let html = super::export_page::render(&export);
            Ok(([(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
        }
        _ => Err(ApiError::bad_request("invalid_query", "format must be json or html").field("format")),
    }
}

async fn record_export(state: &AppState, principal: &Principal, req: &ReqId, account_id: &str) -> Result<(), ApiError> {
    let tx = state.store().begin_write(state.now_ms(), &principal.actor().label(), req.as_deref()).await?;
    let event = SecurityEvent::new(EventKind::PersonalDataExported, principal.actor())
        .target(account_id.to_owned())
        .request(req.as_deref());
    let id = account_id.to_owned();
    in_spine(tx, event, async |tx| tx.append("personal_data_exported", vec![id.clone()], serde_json::json!({})).await)
        .await?;
    Ok(())
}

/// Everything the store holds about you (right of access and portability).
#[utoipa::path(get, path = "/account/export", tag = "privacy", params(ExportQuery),
    responses((status = 200, description = "JSON, or an HTML page with `format=html`", body = Export),
              (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn export_own(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    crate::extract::ApiQuery(query): crate::extract::ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let account = state.store().account(&principal.account_id).await?.ok_or_else(ApiError::unauthorized)?;
    let export = build_export(&state, &account).await?;
    record_export(&state, &principal, &req, &account.id).await?;
    export_response(export, query.format.as_deref())
}

/// A customer's data, exported by staff on their behalf (needs step-up).
#[utoipa::path(get, path = "/admin/customers/{id}/export", tag = "privacy", params(("id" = String, Path, description = "Customer account id"), ExportQuery),
    responses((status = 200, description = "JSON, or an HTML page with `format=html`", body = Export),
              (status = 403, description = "Not allowed, or step-up required", body = ErrorBody),
              (status = 404, description = "No such customer", body = ErrorBody)))]
pub async fn export_customer(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    crate::extract::ApiQuery(query): crate::extract::ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    principal.require_step_up(&state)?;
    let account = customer(&state, &id).await?;
    let export = build_export(&state, &account).await?;
    record_export(&state, &principal, &req, &account.id).await?;
    export_response(export, query.format.as_deref())
}

/// Erase your account's personal data (right to be forgotten). Orders stay
/// for accounting, with amounts and SKUs but nothing personal.
#[utoipa::path(post, path = "/account/erase", tag = "privacy", request_body = EraseConfirm,
    responses((status = 200, description = "Erased (or delayed by a legal hold)", body = Accepted),
              (status = 401, description = "Wrong password", body = ErrorBody),
              (status = 403, description = "Only customer accounts erase themselves", body = ErrorBody)))]
pub async fn erase_own(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiJson(body): ApiJson<EraseConfirm>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    if principal.role != AccountRole::Customer {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_customer",
            "staff accounts are removed by an owner, not erased by themselves",
        ));
    }
    let account = state.store().account(&principal.account_id).await?.ok_or_else(ApiError::unauthorized)?;
    // Erasure cannot be undone: confirm it is really the account holder.
    let verdict = state
        .hashing()
        .verify(body.password, Some(account.password_hash.clone()))
        .await
        .map_err(|_| ApiError::unavailable("busy", "the store is busy; retry shortly"))?;
    if verdict == storefort_auth::Verification::Mismatch {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong password"));
    }
    erase_account(&state, &req, &principal.actor(), &account).await
}

/// Erase a customer's personal data on their behalf (needs step-up).
#[utoipa::path(post, path = "/admin/customers/{id}/erase", tag = "privacy",
    params(("id" = String, Path, description = "Customer account id")),
    responses((status = 200, description = "Erased", body = Accepted),
              (status = 202, description = "Delayed by a legal hold", body = Accepted),
              (status = 403, description = "Not allowed, or step-up required", body = ErrorBody),
              (status = 404, description = "No such customer", body = ErrorBody),
              (status = 409, description = "Already erased", body = ErrorBody)))]
pub async fn erase_customer(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    principal.require_step_up(&state)?;
    let account = customer(&state, &id).await?;
    erase_account(&state, &req, &principal.actor(), &account).await
}

async fn erase_account(
    state: &AppState,
    req: &ReqId,
    actor: &Actor,
    account: &AccountRow,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    if account.status == "erased" {
        return Err(ApiError::conflict("already_erased", "this customer's data was already erased"));
    }
    let id = account.id.clone();
    if account.legal_hold.is_some() {
        let tx = state.store().begin_write(state.now_ms(), &actor.label(), req.as_deref()).await?;
        let event =
            SecurityEvent::new(EventKind::ErasureDelayed, actor.clone()).target(id.clone()).request(req.as_deref());
        in_spine(tx, event, async |tx| tx.request_erasure(&id).await).await?;
        return Ok((StatusCode::ACCEPTED, Json(Accepted { status: "delayed_by_legal_hold" })));
    }
    // The key first: once it is gone, no copy anywhere can be read.
    state.vault().erase(&id, state.now_ms()).await?;
    let tx = state.store().begin_write(state.now_ms(), &actor.label(), req.as_deref()).await?;
    let event =
        SecurityEvent::new(EventKind::PersonalDataErased, actor.clone()).target(id.clone()).request(req.as_deref());
    in_spine(tx, event, async |tx| tx.erase_account(&id).await.map(|_| ())).await?;
    Ok((StatusCode::OK, Json(Accepted { status: "erased" })))
}

/// Erase a guest order's personal data (needs step-up).
#[utoipa::path(post, path = "/admin/orders/{id}/erase-personal-data", tag = "privacy",
    params(("id" = String, Path, description = "Order id")),
    responses((status = 200, description = "Erased", body = Accepted),
              (status = 404, description = "No such order", body = ErrorBody),
              (status = 409, description = "Already erased, or the order belongs to an account", body = ErrorBody)))]
pub async fn erase_guest_order(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Accepted>, ApiError> {
    principal.require_step_up(&state)?;
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::not_found("order"));
    }
    let order = state.store().order(&id).await?;
    if order.customer_id.is_some() {
        return Err(ApiError::conflict("account_order", "this order belongs to an account: erase the customer"));
    }
    let subject = crate::vault::data_subject(&order);
    state.vault().erase(&subject, state.now_ms()).await?;
    let tx = state.store().begin_write(state.now_ms(), &principal.actor().label(), req.as_deref()).await?;
    let event =
        SecurityEvent::new(EventKind::PersonalDataErased, principal.actor()).target(id.clone()).request(req.as_deref());
    let erased = in_spine(tx, event, async |tx| {
        let erased = tx.erase_order_personal_data(&id, &subject).await?;
        if !erased {
            // Nothing to change: still record the (repeated) request.
            tx.append("order_personal_data_erased", vec![id.clone()], serde_json::json!({"repeated": true})).await?;
        }
        Ok(erased)
    })
    .await?;
    if !erased {
        return Err(ApiError::conflict("already_erased", "this order's personal data was already erased"));
    }
    Ok(Json(Accepted { status: "erased" }))
}

/// Put a customer's data under legal hold (needs step-up): erasure
/// requests wait until it is lifted.
#[utoipa::path(put, path = "/admin/customers/{id}/legal-hold", tag = "privacy", request_body = LegalHold,
    params(("id" = String, Path, description = "Customer account id")),
    responses((status = 200, description = "Held", body = Accepted),
              (status = 404, description = "No such customer", body = ErrorBody)))]
pub async fn set_legal_hold(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<LegalHold>,
) -> Result<Json<Accepted>, ApiError> {
    principal.require_step_up(&state)?;
    let reason = storefort_core::text::clean(&body.reason, 200)
        .map_err(|e| ApiError::unprocessable("invalid_field", format!("reason {e}")).field("reason"))?;
    let account = customer(&state, &id).await?;
    if account.status == "erased" {
        return Err(ApiError::conflict("already_erased", "this customer's data was already erased"));
    }
    let tx = state.store().begin_write(state.now_ms(), &principal.actor().label(), req.as_deref()).await?;
    let event = SecurityEvent::new(EventKind::LegalHoldChanged, principal.actor())
        .target(id.clone())
        .request(req.as_deref())
        .with("hold", 1);
    in_spine(tx, event, async |tx| tx.set_legal_hold(&id, Some(&reason)).await).await?;
    Ok(Json(Accepted { status: "held" }))
}

/// Lift a legal hold (needs step-up); a waiting erasure then runs.
#[utoipa::path(delete, path = "/admin/customers/{id}/legal-hold", tag = "privacy",
    params(("id" = String, Path, description = "Customer account id")),
    responses((status = 200, description = "Lifted (and any waiting erasure done)", body = Accepted),
              (status = 404, description = "No such customer", body = ErrorBody)))]
pub async fn lift_legal_hold(
    State(state): State<AppState>,
    req: ReqId,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Accepted>, ApiError> {
    principal.require_step_up(&state)?;
    let account = customer(&state, &id).await?;
    if account.legal_hold.is_none() {
        return Err(ApiError::conflict("no_legal_hold", "this customer's data is not under legal hold"));
    }
    let tx = state.store().begin_write(state.now_ms(), &principal.actor().label(), req.as_deref()).await?;
    let event = SecurityEvent::new(EventKind::LegalHoldChanged, principal.actor())
        .target(id.clone())
        .request(req.as_deref())
        .with("hold", 0);
    in_spine(tx, event, async |tx| tx.set_legal_hold(&id, None).await).await?;
    if account.erasure_requested_at.is_some() {
        let account = customer(&state, &id).await?;
        let _erased = erase_account(&state, &req, &principal.actor(), &account).await?;
        return Ok(Json(Accepted { status: "lifted_and_erased" }));
    }
    Ok(Json(Accepted { status: "lifted" }))
}

/// Finishes erasures interrupted by a crash, or undone by restoring an old
/// backup of either database: every tombstone in the key store scrubs its
/// account here, and every erasure in the ledger destroys its key there.
/// Returns how many it (re)applied.
pub async fn reconcile_erasures(state: &AppState) -> Result<usize, StoreError> {
    let mut applied = 0;
    for id in state.store().erased_subjects_in_ledger().await? {
        if state.vault().key_store().erase(&id, state.now_ms()).await? {
            applied += 1;
        }
    }
    for id in state.vault().key_store().tombstones().await? {
        let Some(account) = state.store().account(&id).await? else { continue };
        if account.status != "erased" {
            let mut tx = state.store().begin_write(state.now_ms(), "system", None).await?;
            tx.erase_account(&id).await?;
            tx.commit(
                SecurityEvent::new(EventKind::PersonalDataErased, Actor::System)
                    .target(id.clone())
                    .with("reapplied", 1),
            )
            .await?;
            applied += 1;
        }
    }
    Ok(applied)
}
