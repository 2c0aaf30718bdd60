//! Admin operations: prices, stock, order status, security events.
//! Each route's permission is declared in `identity::policy`; the guard
//! checks it before the handler runs.

use super::catalog::{VariantOut, variant_out};
use super::is_uuid;
use super::orders::{OrderOut, order_out};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::identity::Principal;
use crate::middleware::ReqId;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use storefort_core::{Actor, Currency, EventKind, Money, OrderStatus, SecurityEvent};
use storefort_store::StoreError;
use utoipa::{IntoParams, ToSchema};

/// A new price for a variant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPrice {
    /// Minor units (cents).
    #[schema(minimum = 0, maximum = 10_000_000_000_000_i64)]
    pub amount: i64,
    /// Must be the store currency.
    #[schema(pattern = "^[A-Z]{3}$", example = "EUR")]
    pub currency: String,
}

/// A new count of units on sale.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStock {
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub available: i64,
}

/// A requested order status.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStatus {
    pub status: OrderStatus,
}

/// A stored security event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    pub id: String,
    /// RFC 3339, UTC.
    pub at: String,
    pub kind: String,
    pub severity: String,
    pub actor: String,
    pub target: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// Recent security events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub items: Vec<EventOut>,
}

/// How many events to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// A change of more than `percent` either way (or from a zero price).
pub fn big_price_change(old: i64, new: i64, percent: u32) -> bool {
    if old == 0 {
        return new != 0;
    }
    let diff = i128::from(new - old).abs() * 100;
    diff > i128::from(old) * i128::from(percent)
}

fn variant_id(id: &str) -> Result<(), ApiError> {
    if is_uuid(id) { Ok(()) } else { Err(ApiError::not_found("variant")) }
}

/// Change a variant's price. Orders already placed keep their price.
#[utoipa::path(put, path = "/admin/variants/{id}/price", tag = "admin",
    params(("id" = String, Path, description = "Variant id")),
    request_body = SetPrice, security(("session" = []), ("api_token" = [])),
    responses(
        (status = 200, description = "The variant with its new price", body = VariantOut),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
        (status = 403, description = "Not allowed, or step-up required", body = crate::error::ErrorBody),
        (status = 404, description = "No such variant", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid price", body = crate::error::ErrorBody),
    ))]
pub async fn set_price(
    principal: Principal,
    State(state): State<AppState>,
    req: ReqId,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SetPrice>,
) -> Result<Json<VariantOut>, ApiError> {
    variant_id(&id)?;
    let currency = Currency::parse(&body.currency)
        .map_err(|e| ApiError::unprocessable("invalid_field", e.to_string()).field("currency"))?;
    if currency != state.settings().currency {
        return Err(
            ApiError::unprocessable("currency_mismatch", "prices must be in the store currency").field("currency")
        );
    }
    let price = Money::new(body.amount, currency)
        .map_err(|e| ApiError::unprocessable("invalid_field", format!("amount {e}")).field("amount"))?;
    let current = state.store().variant(&id).await?;
    if big_price_change(current.price_amount, price.amount, state.settings().auth.price_step_up_percent) {
        principal.require_step_up(&state)?;
    }
    let mut tx = state.store().begin_write(state.now_ms(), &principal.actor().label(), req.as_deref()).await?;
    let old = match tx.set_price(&id, price.amount, price.currency.code()).await {
        Ok(old) => old,
        Err(e) => {
            tx.rollback().await?;
            return Err(e.into());
        }
    };
    let event = SecurityEvent::new(EventKind::PriceChanged, principal.actor())
        .target(id.clone())
        .request(req.as_deref())
        .with("old", old)
        .with("new", price.amount)
        .with("currency", price.currency.code());
    tx.commit(event).await?;
    state.catalog_cache().clear();
    Ok(Json(variant_out(&state.store().variant(&id).await?)?))
}

/// Set how many units of a variant are on sale (reserved and sold units are
/// untouched).
#[utoipa::path(put, path = "/admin/variants/{id}/stock", tag = "admin",
    params(("id" = String, Path, description = "Variant id")),
    request_body = SetStock, security(("session" = []), ("api_token" = [])),
    responses(
        (status = 200, description = "The variant with its new stock", body = VariantOut),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
        (status = 403, description = "Not allowed, or step-up required", body = crate::error::ErrorBody),
        (status = 404, description = "No such variant", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid count", body = crate::error::ErrorBody),
    ))]
pub async fn set_stock(
    principal: Principal,
    State(state): State<AppState>,
    req: ReqId,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SetStock>,
) -> Result<Json<VariantOut>, ApiError> {
    variant_id(&id)?;
    if !(0..=1_000_000_000).contains(&body.available) {
        return Err(ApiError::unprocessable("invalid_field", "available must be 0 to 1000000000").field("available"));
    }
    let mut tx = state.store().begin_write(state.now_ms(), &principal.actor().label(), req.as_deref()).await?;
    let old = match tx.set_available(&id, body.available).await {
        Ok(old) => old,
        Err(e) => {
            tx.rollback().await?;
            return Err(e.into());
        }
    };
    let event = SecurityEvent::new(EventKind::StockChanged, principal.actor())
        .target(id.clone())
        .request(req.as_deref())
        .with("old", old)
        .with("new", body.available);
    tx.commit(event).await?;
    state.catalog_cache().clear();
    Ok(Json(variant_out(&state.store().variant(&id).await?)?))
}

/// Any order, for staff.
#[utoipa::path(get, path = "/admin/orders/{id}", tag = "admin",
    params(("id" = String, Path, description = "Order id")),
    security(("session" = []), ("api_token" = [])),
    responses(
        (status = 200, description = "The order", body = OrderOut),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
        (status = 403, description = "Not allowed, or step-up required", body = crate::error::ErrorBody),
        (status = 404, description = "No such order", body = crate::error::ErrorBody),
    ))]
pub async fn get_order(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OrderOut>, ApiError> {
    if !is_uuid(&id) {
        return Err(ApiError::not_found("order"));
    }
    Ok(Json(order_out(&state, state.store().order(&id).await?).await?))
}

/// Change an order's status along the state machine:
/// pending_payment → paid → fulfilled, pending_payment → cancelled,
/// paid/fulfilled → refunded. `paid` records a manual payment of the full
/// total (refused when a gateway takes payment: its proof marks orders
/// paid); `refunded` refunds what is left through the order's gateway.
#[utoipa::path(post, path = "/admin/orders/{id}/status", tag = "admin",
    params(("id" = String, Path, description = "Order id")),
    request_body = SetStatus, security(("session" = []), ("api_token" = [])),
    responses(
        (status = 200, description = "The order in its new status", body = OrderOut),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
        (status = 403, description = "Not allowed, or step-up required", body = crate::error::ErrorBody),
        (status = 404, description = "No such order", body = crate::error::ErrorBody),
        (status = 409, description = "The transition is not allowed", body = crate::error::ErrorBody),
    ))]
pub async fn set_order_status(
    principal: Principal,
    State(state): State<AppState>,
    req: ReqId,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<SetStatus>,
) -> Result<Json<OrderOut>, ApiError> {
    if !is_uuid(&id) {
        return Err(ApiError::not_found("order"));
    }
    match body.status {
        OrderStatus::Refunded => {
            // Money leaves the store: a refund needs its own permission and
            // a fresh second factor, and goes through the gateway.
            if !storefort_auth::allows(principal.role, storefort_auth::Permission::Refund) {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "forbidden",
                    "your account may not refund",
                ));
            }
            principal.require_step_up(&state)?;
            refund_everything(&state, &id, principal.actor(), req.as_deref()).await?;
        }
        // Paid means money arrived: through the gateway's proof, or, for
        // manual payment, recorded here by staff.
        OrderStatus::Paid => {
            crate::payments::record_manual_payment(&state, &id, principal.actor(), req.as_deref()).await?
        }
        other => change_order_status(&state, &id, other, principal.actor(), req.as_deref()).await?,
    }
    Ok(Json(order_out(&state, state.store().order(&id).await?).await?))
}

/// Refunds what is left of an order's payment, as one refund: asking
/// twice refunds once.
async fn refund_everything(state: &AppState, id: &str, actor: Actor, request_id: Option<&str>) -> Result<(), ApiError> {
    let order = state.store().order(id).await?;
    // The state machine speaks first, so an unpaid order gets the same
    // answer as before payments existed.
    order.status.transition(OrderStatus::Refunded).map_err(StoreError::from)?;
    let payment = state.store().payment(id).await?.ok_or(ApiError::not_found("payment"))?;
    let left = payment.amount_received - payment.amount_refunded;
    if left <= 0 {
        return Err(StoreError::Conflict { constraint: "nothing_to_refund".into() }.into());
    }
    crate::payments::refund(state, id, left, "status:refunded", actor, request_id).await?;
    Ok(())
}

/// The one way an order's status changes, for staff and for jobs.
pub async fn change_order_status(
    state: &AppState,
    order_id: &str,
    to: OrderStatus,
    actor: Actor,
    request_id: Option<&str>,
) -> Result<(), StoreError> {
    let mut tx = state.store().begin_write(state.now_ms(), &actor.label(), request_id).await?;
    let change = match tx.transition_order(order_id, to).await {
        Ok(c) => c,
        Err(e) => {
            tx.rollback().await?;
            return Err(e);
        }
    };
    let kind = if actor == Actor::System && to == OrderStatus::Cancelled {
        EventKind::OrderExpired
    } else {
        EventKind::OrderStatusChanged
    };
    let event = SecurityEvent::new(kind, actor)
        .target(order_id)
        .request(request_id)
        .with("from", change.from.as_str())
        .with("to", change.to.as_str());
    tx.commit(event).await
}

/// Recent security events, newest first.
#[utoipa::path(get, path = "/admin/events", tag = "admin", params(EventQuery),
    security(("session" = []), ("api_token" = [])),
    responses(
        (status = 200, description = "Events", body = EventList),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
        (status = 403, description = "Not allowed, or step-up required", body = crate::error::ErrorBody),
    ))]
pub async fn list_events(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> Result<Json<EventList>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 500").field("limit"));
    }
    let items = state.store().recent_events(limit).await?.into_iter().map(event_out).collect();
    Ok(Json(EventList { items }))
}

/// The API view of a stored event.
pub fn event_out(e: storefort_store::StoredEvent) -> EventOut {
    EventOut {
        id: e.id,
        at: crate::clock::rfc3339(e.at),
        kind: e.kind,
        severity: e.severity,
        actor: e.actor,
        target: e.target,
        request_id: e.request_id,
        detail: e.detail,
    }
}
