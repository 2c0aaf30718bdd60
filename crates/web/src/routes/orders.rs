//! Reading an order with its access token.

use super::{is_uuid, money};
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::identity::ClientIp;
use crate::middleware::ReqId;
use crate::state::AppState;
use crate::vault::data_subject;
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
    /// Null once the customer's personal data was erased.
    pub email: Option<String>,
    /// Null once the customer's personal data was erased.
    pub shipping_address: Option<Address>,
    pub lines: Vec<OrderLineOut>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
    /// When an unpaid order is cancelled and its stock released.
    pub payment_due_by: Option<String>,
}

/// The API view of an order, its personal data decrypted (or null when
/// erased).
pub(crate) async fn order_out(state: &AppState, o: OrderView) -> Result<OrderOut, ApiError> {
    let subject = data_subject(&o);
    let email = state.vault().reveal(&subject, "email", &o.email).await?;
    let address = match state.vault().reveal(&subject, "shipping_address", &o.shipping_address).await? {
        Some(text) => Some(
            serde_json::from_str::<Address>(&text)
                .map_err(|e| ApiError::internal(&format!("stored address of order {} is invalid: {e}", o.id)))?,
        ),
        None => None,
    };
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
        email,
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

/// Checks the order access token before anything else is looked up, so a
/// wrong token learns nothing about whether the order exists. Refusals are
/// security events, at most one per client a minute: someone guessing
/// tokens must not get a database write per guess.
pub(crate) async fn authorize_order(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    req: &ReqId,
    client: &str,
) -> Result<(), ApiError> {
    let ok = is_uuid(id) && bearer(headers).is_some_and(|t| state.key().verify_order_access_token(id, t));
    if ok {
        return Ok(());
    }
    let event = SecurityEvent::new(EventKind::OrderAccessDenied, Actor::Anonymous).request(req.as_deref());
    state.record_refusal(client, event).await;
    Err(ApiError::unauthorized())
}

/// A receipt anyone can verify offline with the store's public key.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptDoc {
    #[schema(example = "storefort-receipt/v1")]
    pub format: String,
    /// The order snapshot the ledger entry commits to (no personal data).
    #[schema(value_type = Object)]
    pub order: serde_json::Value,
    /// Personal data and the key of its keyed commitment; null after erasure.
    #[schema(value_type = Option<Object>)]
    pub personal: Option<serde_json::Value>,
    /// The canonical ledger entry, byte for byte.
    pub entry: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Base64 SHA-256 hashes from the leaf up to the root.
    pub inclusion_proof: Vec<String>,
    /// The signed checkpoint (C2SP signed note).
    pub checkpoint: String,
}

/// The ledger receipt of an order: its snapshot, its latest ledger entry,
/// an inclusion proof and a signed checkpoint. Verify it offline with
/// `storefort receipt verify receipt.json --key <key>`.
#[utoipa::path(get, path = "/orders/{id}/receipt", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    security(("order_token" = [])),
    responses(
        (status = 200, description = "The receipt", body = ReceiptDoc),
        (status = 401, description = "Missing or wrong access token", body = crate::error::ErrorBody),
    ))]
pub async fn get_receipt(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    req: ReqId,
    ClientIp(ip): ClientIp,
) -> Result<Json<storefort_ledger::Receipt>, ApiError> {
    authorize_order(&state, &id, &headers, &req, &ip).await?;
    Ok(Json(state.ledger().receipt(state.store(), &id, state.now_ms()).await?))
}

/// The public key that verifies the ledger's checkpoints and receipts, in
/// signed-note verifier key form.
pub async fn ledger_key(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let key = state.ledger().verifier().to_string();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{key}\n"))
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
    ClientIp(ip): ClientIp,
) -> Result<Json<OrderOut>, ApiError> {
    authorize_order(&state, &id, &headers, &req, &ip).await?;
    Ok(Json(order_out(&state, state.store().order(&id).await?).await?))
}
