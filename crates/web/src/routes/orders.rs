//! Reading an order with its access token.

use super::{is_uuid, money};
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::middleware::ReqId;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use storefort_core::{Actor, Address, EventKind, Money, OrderStatus, SecurityEvent};
use storefort_store::OrderView;
use utoipa::ToSchema;

/// One line of an order, as it was priced at checkout.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderLineOut {
    pub variant_id: String,
    pub sku: String,
    pub title: String,
    pub unit_price: Money,
    pub quantity: i64,
    pub line_total: Money,
}

/// An order: an immutable snapshot of what was bought, at what price.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderOut {
    pub id: String,
    /// Human-facing order number.
    pub number: i64,
    pub status: OrderStatus,
    pub subtotal: Money,
    pub shipping: Money,
    pub tax: Money,
    pub total: Money,
    pub email: String,
    pub shipping_address: Address,
    pub lines: Vec<OrderLineOut>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
    /// When an unpaid order is cancelled and its stock released.
    pub payment_due_by: Option<String>,
}

pub(crate) fn order_out(o: OrderView) -> Result<OrderOut, ApiError> {
    let address: Address = serde_json::from_str(&o.shipping_address)
        .map_err(|e| ApiError::internal(&format!("stored address of order {} is invalid: {e}", o.id)))?;
    let c = o.currency.as_str();
    let lines = o
        .lines
        .iter()
        .map(|l| {
            Ok(OrderLineOut {
                variant_id: l.variant_id.clone(),
                sku: l.sku.clone(),
                title: l.title.clone(),
                unit_price: money(l.unit_price, c)?,
                quantity: l.quantity,
                line_total: money(l.line_total, c)?,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(OrderOut {
        subtotal: money(o.subtotal, c)?,
        shipping: money(o.shipping, c)?,
        tax: money(o.tax, c)?,
        total: money(o.total, c)?,
        payment_due_by: (o.status == OrderStatus::PendingPayment).then(|| rfc3339(o.expires_at)),
        id: o.id,
        number: o.number,
        status: o.status,
        email: o.email,
        shipping_address: address,
        lines,
        created_at: rfc3339(o.created_at),
        updated_at: rfc3339(o.updated_at),
    })
}

/// The token after `Bearer ` in the Authorization header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// An order, for the holder of its access token.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    security(("order_token" = [])),
    responses(
        (status = 200, description = "The order", body = OrderOut),
        (status = 401, description = "Missing or wrong access token", body = crate::error::ErrorBody),
    ))]
pub async fn get_order(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    req: ReqId,
) -> Result<Json<OrderOut>, ApiError> {
    // The token is checked before any lookup, so a wrong token learns nothing
    // about whether the order exists.
    let ok = is_uuid(&id) && bearer(&headers).is_some_and(|t| state.key().verify_order_access_token(&id, t));
    if !ok {
        let event = SecurityEvent::new(EventKind::OrderAccessDenied, Actor::Anonymous).request(req.as_deref());
        if let Err(e) = state.store().record_event(&event, state.now_ms()).await {
            tracing::warn!(error = %e, "could not record security event");
        }
        return Err(ApiError::unauthorized());
    }
    Ok(Json(order_out(state.store().order(&id).await?)?))
}
