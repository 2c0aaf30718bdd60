//! Checkout: turns a cart into an order, through the spine.
//!
//! validate → one transaction (claim idempotency key, close cart, price from
//! the catalog, reserve stock, insert the snapshot) → security event →
//! response. The client sends no prices: the body type has no such fields and
//! unknown fields are refused.

use super::orders::{OrderOut, order_out};
use crate::error::ApiError;
use crate::extract::ApiJsonWithBytes;
use crate::identity::Principal;
use crate::middleware::ReqId;
use crate::secrets::is_token_shaped;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use storefort_auth::AccountRole;
use storefort_core::{Actor, Address, AddressInput, Email, EventKind, PricingError, SecurityEvent, compute_totals};
use storefort_store::{CheckoutOutcome, NewOrder, StoreError, WriteTx, hash_secret};
use utoipa::ToSchema;

/// What checkout needs: the cart, where to send the goods, and whom to tell.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// The `id` returned by `POST /api/v1/carts`.
    #[schema(pattern = "^[A-Za-z0-9_-]{43}$")]
    pub cart_id: String,
    #[schema(max_length = 254, example = "ada@example.com")]
    pub email: String,
    pub shipping_address: AddressInput,
}

/// A placed order and the token that lets its buyer read it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutResponse {
    pub order: OrderOut,
    /// Send as `Authorization: Bearer …` to `GET /api/v1/orders/{id}`. Shown
    /// here and to idempotent retries only.
    pub access_token: String,
}

struct Validated {
    cart_hash: String,
    email: Email,
    address: Address,
}

fn validate(body: &CheckoutRequest) -> Result<Validated, ApiError> {
    if !is_token_shaped(&body.cart_id) {
        return Err(ApiError::not_found("cart").field("cart_id"));
    }
    let email = Email::parse(&body.email)
        .map_err(|e| ApiError::unprocessable("invalid_field", format!("email {e}")).field("email"))?;
    let address = Address::parse(&body.shipping_address).map_err(|e| {
        ApiError::unprocessable("invalid_field", e.to_string()).field(format!("shipping_address.{}", e.field))
    })?;
    Ok(Validated { cart_hash: hash_secret(&body.cart_id), email, address })
}

/// The Idempotency-Key header: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw.to_str().ok().filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        ApiError::bad_request("invalid_idempotency_key", "Idempotency-Key must be 1 to 255 visible ASCII characters")
            .field("Idempotency-Key")
    })
}

/// A hash of the request that ignores formatting: the JSON is re-serialized
/// with sorted keys, so a retry with different whitespace still matches.
fn request_hash(body: &[u8]) -> String {
    let canonical = serde_json::from_slice::<serde_json::Value>(body).map(|v| v.to_string()).unwrap_or_default();
    hash_secret(&canonical)
}

fn pricing_error(e: PricingError) -> ApiError {
    match e {
        PricingError::Empty => ApiError::unprocessable("cart_empty", "the cart is empty").field("cart_id"),
        PricingError::NoShipping { country } => {
            ApiError::unprocessable("shipping_unavailable", format!("the store does not ship to {country}"))
                .field("shipping_address.country")
        }
        PricingError::MixedCurrency { .. } => {
            ApiError::unprocessable("currency_mismatch", "the cart holds items not sold in the store currency")
        }
        PricingError::Money(_) => ApiError::unprocessable("amount_too_large", "the order total is out of range"),
    }
}

/// The order's personal data, encrypted under its own data key.
struct SealedPersonal {
    email: String,
    shipping_address: String,
    /// The account the order belongs to, when its key sealed it.
    customer_id: Option<String>,
    /// The guest key that sealed it otherwise.
    data_subject: Option<String>,
}

/// A signed-in customer's order is sealed under their account's key (so
/// erasing the account reaches it); a guest order gets a key of its own,
/// from the vault's reservoir.
async fn seal_personal(state: &AppState, v: &Validated, customer: Option<&str>) -> Result<SealedPersonal, ApiError> {
    let address = serde_json::to_string(&v.address).map_err(|e| ApiError::internal(&e))?;
    let fields = [("email", v.email.as_str()), ("shipping_address", address.as_str())];
    let under_account = match customer {
        Some(account) => state.vault().encrypt_existing(account, &fields).await?.map(|s| (s, account.to_owned())),
        None => None,
    };
    let (mut sealed, customer_id, data_subject) = match under_account {
        Some((sealed, account)) => (sealed, Some(account), None),
        None => {
            let (subject, sealed) = state.vault().encrypt_guest(state.now_ms(), &fields).await?;
            (sealed, None, Some(subject).filter(|s| !s.is_empty()))
        }
    };
    let shipping_address = sealed.pop().unwrap_or_default();
    let email = sealed.pop().unwrap_or_default();
    Ok(SealedPersonal { email, shipping_address, customer_id, data_subject })
}

/// Everything checkout does inside its transaction.
async fn place_order(
    state: &AppState,
    tx: &mut WriteTx,
    v: &Validated,
    order_id: &str,
    sealed: &SealedPersonal,
) -> Result<(NewOrder, i64), ApiError> {
    tx.close_cart(&v.cart_hash).await.map_err(|e| match e {
        StoreError::NotFound { .. } => ApiError::not_found("cart").field("cart_id"),
        other => other.into(),
    })?;
    let priced = tx.price_cart(&v.cart_hash).await?;
    let lines: Vec<_> = priced.into_iter().map(|(l, _)| l).collect();
    let settings = state.settings();
    let totals = compute_totals(&lines, settings.currency, v.address.country, &settings.shipping, &settings.tax)
        .map_err(pricing_error)?;
    tx.reserve_stock(&lines).await?;
    let expiry = i64::try_from(settings.order_expiry.as_millis()).unwrap_or(i64::MAX);
    let order = NewOrder {
        id: order_id.to_owned(),
        customer_id: sealed.customer_id.clone(),
        data_subject: sealed.data_subject.clone(),
        cart_id_hash: v.cart_hash.clone(),
        currency: settings.currency.code().to_owned(),
        totals,
        email: sealed.email.clone(),
        shipping_address: sealed.shipping_address.clone(),
        lines,
        expires_at: tx.now_ms().saturating_add(expiry),
    };
    let number = tx.insert_order(&order).await?;
    Ok((order, number))
}

/// Place an order from a cart.
#[utoipa::path(post, path = "/checkout", tag = "checkout",
    request_body = CheckoutRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes retries safe: the same key and body return the same order")),
    responses(
        (status = 201, description = "The order was placed (or an idempotent retry)", body = CheckoutResponse),
        (status = 400, description = "Malformed JSON or header", body = crate::error::ErrorBody),
        (status = 404, description = "No such cart", body = crate::error::ErrorBody),
        (status = 409, description = "Out of stock, or the cart was already checked out", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid input, or the key was used with another body", body = crate::error::ErrorBody),
    ))]
pub async fn checkout(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: ReqId,
    principal: Option<Principal>,
    ApiJsonWithBytes(body, raw): ApiJsonWithBytes<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let v = validate(&body)?;
    let order_id = uuid::Uuid::now_v7().to_string();
    // The order's data key is stored (durably, in the key store) before the
    // order exists, so no acknowledged order is ever encrypted under a key a
    // crash could lose. A retry that turns out to be a replay leaves an
    // unused key behind, which holds nothing.
    let customer = principal.filter(|p| p.role == AccountRole::Customer).map(|p| p.account_id);
    let sealed = seal_personal(&state, &v, customer.as_deref()).await?;
    let mut tx = state.store().begin_write(state.now_ms(), "guest", req.as_deref()).await?;
    if let Some(key) = &key {
        let claim =
            tx.claim_idempotency_key(&hash_secret(&format!("checkout:{key}")), &request_hash(&raw), &order_id).await;
        match claim {
            Ok(CheckoutOutcome::Claimed) => {}
            Ok(CheckoutOutcome::Replay { order_id }) => {
                tx.rollback().await?;
                return respond(&state, &order_id, true).await;
            }
            Err(e) => {
                tx.rollback().await?;
                if matches!(e, StoreError::IdempotencyMismatch) {
                    let event =
                        SecurityEvent::new(EventKind::IdempotencyKeyMismatch, Actor::Guest).request(req.as_deref());
                    if let Err(err) = state.store().record_event(&event, state.now_ms()).await {
                        tracing::warn!(error = %err, "could not record security event");
                    }
                }
                return Err(e.into());
            }
        }
    }
    match place_order(&state, &mut tx, &v, &order_id, &sealed).await {
        Ok((order, number)) => {
            let event = SecurityEvent::new(EventKind::OrderPlaced, Actor::Guest)
                .target(order_id.clone())
                .request(req.as_deref())
                .with("number", number)
                .with("total", order.totals.total.amount)
                .with("currency", order.currency.clone())
                .with("lines", order.lines.len() as i64);
            tx.commit(event).await?;
            respond(&state, &order_id, false).await
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e)
        }
    }
}

async fn respond(state: &AppState, order_id: &str, replayed: bool) -> Result<Response, ApiError> {
    let order = order_out(state, state.store().order(order_id).await?).await?;
    let body = CheckoutResponse { access_token: state.key().order_access_token(order_id), order };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}
