//! Outgoing webhook endpoints: registering, listing, disabling, and the
//! delivery log.

use super::is_uuid;
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::identity::Principal;
use crate::middleware::ReqId;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use storefort_core::{EventKind, SecurityEvent};
use storefort_store::{EndpointRow, WEBHOOK_EVENTS};
use utoipa::{IntoParams, ToSchema};

/// An endpoint to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// `https://` (plain http only where private targets are allowed).
    #[schema(max_length = 2048, example = "https://erp.example.com/storefort")]
    pub url: String,
    /// Event types, or `["*"]` for all: order.created, order.paid,
    /// order.fulfilled, order.cancelled, order.refunded, refund.succeeded.
    pub events: Vec<String>,
}

/// A registered endpoint (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointOut {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    /// `active` or `disabled`.
    pub status: String,
    pub created_at: String,
}

fn endpoint_out(e: EndpointRow) -> EndpointOut {
    EndpointOut { id: e.id, url: e.url, events: e.events, status: e.status, created_at: rfc3339(e.created_at) }
}

/// A new endpoint and its signing secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedEndpoint {
    pub endpoint: EndpointOut,
    /// Verify `Storefort-Signature` (`t=…,v1=…`, HMAC-SHA256 of `"<t>.<body>"`)
    /// with this. It is not shown again.
    pub secret: String,
}

crate::redact::debug_redacted!(CreatedEndpoint { endpoint } redacting { secret });

/// Register an endpoint for order events. Needs a fresh second factor: it
/// sends order data out of the store and mints a secret.
#[utoipa::path(post, path = "/admin/webhooks", tag = "admin", request_body = NewEndpoint,
    security(("session" = [])),
    responses(
        (status = 201, description = "Registered; the secret is shown once", body = CreatedEndpoint),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
        (status = 403, description = "Not allowed, or step-up required", body = crate::error::ErrorBody),
        (status = 422, description = "A bad URL or event type", body = crate::error::ErrorBody),
    ))]
pub async fn create_endpoint(
    principal: Principal,
    State(state): State<AppState>,
    req: ReqId,
    ApiJson(body): ApiJson<NewEndpoint>,
) -> Result<(StatusCode, Json<CreatedEndpoint>), ApiError> {
    principal.require_step_up(&state)?;
    crate::webhooks::check_url(&body.url, &state.settings().webhooks)
        .map_err(|e| ApiError::unprocessable("invalid_url", format!("the URL {e}")).field("url"))?;
    if body.events.is_empty() || body.events.len() > WEBHOOK_EVENTS.len() {
        return Err(ApiError::unprocessable("invalid_field", "name 1 to 6 event types, or [\"*\"]").field("events"));
    }
    let mut events = Vec::new();
    for (i, e) in body.events.iter().enumerate() {
        if !(e == "*" || WEBHOOK_EVENTS.contains(&e.as_str())) {
            return Err(ApiError::unprocessable("unknown_event_type", format!("unknown event type {e:?}"))
                .field(format!("events[{i}]")));
        }
        if !events.contains(e) {
            events.push(e.clone());
        }
    }
    if events.contains(&"*".to_owned()) {
        events = vec!["*".to_owned()];
    }
    let id = uuid::Uuid::now_v7().to_string();
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(raw.as_mut()).map_err(|e| ApiError::internal(&e))?;
    let secret = format!("whsec_{}", URL_SAFE_NO_PAD.encode(raw.as_ref()));
    let sealed = state.key().seal("webhook-secret", &id, secret.as_bytes()).map_err(|e| ApiError::internal(&e))?;
    let actor = principal.actor();
    let mut tx = state.store().begin_write(state.now_ms(), &actor.label(), req.as_deref()).await?;
    if let Err(e) = tx.insert_webhook_endpoint(&id, &body.url, &sealed, &events).await {
        tx.rollback().await?;
        return Err(e.into());
    }
    tx.commit(
        SecurityEvent::new(EventKind::WebhookEndpointChanged, actor)
            .target(id.clone())
            .request(req.as_deref())
            .with("change", "created"),
    )
    .await?;
    let endpoint = state.store().webhook_endpoint(&id).await?.ok_or(ApiError::not_found("endpoint"))?;
    Ok((StatusCode::CREATED, Json(CreatedEndpoint { endpoint: endpoint_out(endpoint), secret })))
}

/// Registered endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub items: Vec<EndpointOut>,
}

/// Every registered endpoint.
#[utoipa::path(get, path = "/admin/webhooks", tag = "admin",
    security(("session" = [])),
    responses(
        (status = 200, description = "Endpoints", body = EndpointList),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
        (status = 403, description = "Not allowed", body = crate::error::ErrorBody),
    ))]
pub async fn list_endpoints(State(state): State<AppState>) -> Result<Json<EndpointList>, ApiError> {
    let items = state.store().webhook_endpoints().await?.into_iter().map(endpoint_out).collect();
    Ok(Json(EndpointList { items }))
}

/// Disable an endpoint; its undelivered events are dropped.
#[utoipa::path(delete, path = "/admin/webhooks/{id}", tag = "admin",
    params(("id" = String, Path, description = "Endpoint id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "Disabled", body = EndpointOut),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
        (status = 403, description = "Not allowed", body = crate::error::ErrorBody),
        (status = 404, description = "No such endpoint", body = crate::error::ErrorBody),
        (status = 409, description = "Already disabled", body = crate::error::ErrorBody),
    ))]
pub async fn disable_endpoint(
    principal: Principal,
    State(state): State<AppState>,
    req: ReqId,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EndpointOut>, ApiError> {
    if !is_uuid(&id) || state.store().webhook_endpoint(&id).await?.is_none() {
        return Err(ApiError::not_found("endpoint"));
    }
    let actor = principal.actor();
    let mut tx = state.store().begin_write(state.now_ms(), &actor.label(), req.as_deref()).await?;
    match tx.disable_webhook_endpoint(&id).await {
        Ok(true) => {
            let event = SecurityEvent::new(EventKind::WebhookEndpointChanged, actor)
                .target(id.clone())
                .request(req.as_deref())
                .with("change", "disabled");
            tx.commit(event).await?;
        }
        Ok(false) => {
            tx.rollback().await?;
            return Err(ApiError::conflict("already_disabled", "the endpoint is already disabled"));
        }
        Err(e) => {
            tx.rollback().await?;
            return Err(e.into());
        }
    }
    let endpoint = state.store().webhook_endpoint(&id).await?.ok_or(ApiError::not_found("endpoint"))?;
    Ok(Json(endpoint_out(endpoint)))
}

/// One delivery in the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<String>,
}

/// The delivery log of one endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryOut>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// 1 to 500 (default 100).
    pub limit: Option<i64>,
}

/// An endpoint's deliveries, newest first.
#[utoipa::path(get, path = "/admin/webhooks/{id}/deliveries", tag = "admin",
    params(("id" = String, Path, description = "Endpoint id"), DeliveryQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "Deliveries", body = DeliveryList),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
        (status = 403, description = "Not allowed", body = crate::error::ErrorBody),
        (status = 404, description = "No such endpoint", body = crate::error::ErrorBody),
    ))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 500").field("limit"));
    }
    if !is_uuid(&id) || state.store().webhook_endpoint(&id).await?.is_none() {
        return Err(ApiError::not_found("endpoint"));
    }
    let items = state
        .store()
        .webhook_deliveries(&id, limit)
        .await?
        .into_iter()
        .map(|d| DeliveryOut {
            next_attempt_at: (d.status == "pending").then(|| rfc3339(d.next_attempt_at)),
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: rfc3339(d.created_at),
            delivered_at: d.delivered_at.map(rfc3339),
        })
        .collect();
    Ok(Json(DeliveryList { items }))
}
