//! Checkout: turns a cart into an order, through the spine.
//!
//! validate → one transaction (claim idempotency key, close cart, price from
//! the catalog, reserve stock, insert the snapshot) → security event →
//! response. The client sends no prices: the body type has no such fields and
//! unknown fields are refused.

use super::orders::{OrderOut, order_out};
use crate::error::ApiError;
use crate::extract::ApiJsonWithBytes;
use crate::identity::{ClientIp, Principal};
use crate::middleware::ReqId;
use crate::payments;
use crate::secrets::is_token_shaped;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use storefort_auth::AccountRole;
use storefort_core::{Actor, Address, AddressInput, Email, EventKind, PricingError, SecurityEvent, compute_totals};
use storefort_pay::risk::History;
use storefort_pay::{Decision, RiskInput, RiskVerdict};
use storefort_store::AttemptOrigin;
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
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
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

/// What risk scoring knows before the order is priced.
struct RiskContext {
    origin: AttemptOrigin,
    history: History,
    counts: storefort_store::RiskCounts,
    account_age_hours: Option<i64>,
    /// Where the request came from, when a GeoIP database is configured.
    ip_country: Option<String>,
}

async fn risk_context(state: &AppState, origin: AttemptOrigin, ip: &str) -> Result<RiskContext, ApiError> {
    let policy = &state.settings().payments.risk;
    let now = state.now_ms();
    let since = now - i64::from(policy.window_minutes) * 60_000;
    let totals = state.store().paid_order_totals(state.settings().currency.code(), 1_000).await?;
    let counts = state.store().risk_counts(&origin, since).await?;
    let account_age_hours = match &origin.customer_id {
        Some(id) => state.store().account(id).await?.map(|a| (now - a.created_at) / 3_600_000),
        None => None,
    };
    let ip_country =
        (state.settings().payments.geoip.as_ref()).zip(ip.parse().ok()).and_then(|(db, ip)| db.country(ip));
    Ok(RiskContext { origin, history: History::of(totals), counts, account_age_hours, ip_country })
}

/// Scores the order about to be placed.
fn assess(state: &AppState, ctx: &RiskContext, v: &Validated, total: i64) -> RiskVerdict {
    let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    let input = RiskInput {
        total,
        history: ctx.history,
        orders_from_ip: count(ctx.counts.orders_from_ip),
        orders_from_device: count(ctx.counts.orders_from_device),
        payment_attempts_from_ip: count(ctx.counts.attempts_from_ip),
        failed_payments: count(ctx.counts.failed_payments),
        account_age_hours: ctx.account_age_hours,
        email_domain: v.email.as_str().rsplit_once('@').map(|(_, d)| d.to_owned()).unwrap_or_default(),
        // The store asks for no billing address; the country goods ship to
        // stands in for it.
        billing_country: Some(v.address.country.to_string()),
        ip_country: ctx.ip_country.clone(),
    };
    state.settings().payments.risk.assess(&input)
}

/// Everything checkout does inside its transaction.
async fn place_order(
    state: &AppState,
    tx: &mut WriteTx,
    v: &Validated,
    order_id: &str,
    sealed: &SealedPersonal,
    risk: &RiskContext,
) -> Result<(NewOrder, i64, RiskVerdict), ApiError> {
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
    let verdict = assess(state, risk, v, order.totals.total.amount);
    let reasons = serde_json::to_string(&verdict.reasons).map_err(|e| ApiError::internal(&e))?;
    tx.insert_order_risk(order_id, verdict.decision.as_str(), i64::from(verdict.score), &reasons, &risk.origin).await?;
    if verdict.decision == Decision::Block {
        // Recorded, then refused: the stock goes straight back on sale.
        tx.transition_order(order_id, storefort_core::OrderStatus::Cancelled).await?;
    }
    Ok((order, number, verdict))
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
        (status = 403, description = "The order was declined by risk checks (`order_declined`)", body = crate::error::ErrorBody),
        (status = 409, description = "Out of stock, or the cart was already checked out", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid input, or the key was used with another body", body = crate::error::ErrorBody),
    ))]
pub async fn checkout(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: ReqId,
    principal: Option<Principal>,
    ClientIp(ip): ClientIp,
    ApiJsonWithBytes(body, raw): ApiJsonWithBytes<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let v = validate(&body)?;
    let device = payments::device_key(&headers, &ip);
    let customer_id = principal.as_ref().filter(|p| p.role == AccountRole::Customer).map(|p| p.account_id.clone());
    let origin = payments::origin(&state, &ip, device.as_deref(), customer_id.as_deref());
    let risk = risk_context(&state, origin, &ip).await?;
    let order_id = uuid::Uuid::now_v7().to_string();
    // The order's data key is stored (durably, in the key store) before the
    // order exists, so no acknowledged order is ever encrypted under a key a
    // crash could lose. A retry that turns out to be a replay leaves an
    // unused key behind, which holds nothing.
    let sealed = seal_personal(&state, &v, customer_id.as_deref()).await?;
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
    match place_order(&state, &mut tx, &v, &order_id, &sealed, &risk).await {
        Ok((order, number, verdict)) => {
            let rules: Vec<&str> = verdict.reasons.iter().map(|r| r.rule()).collect();
            tx.record(
                SecurityEvent::new(EventKind::OrderRiskAssessed, Actor::System)
                    .target(order_id.clone())
                    .request(req.as_deref())
                    .with("decision", verdict.decision.as_str())
                    .with("score", i64::from(verdict.score))
                    .with("rules", rules.join(",")),
            );
            let event = SecurityEvent::new(EventKind::OrderPlaced, Actor::Guest)
                .target(order_id.clone())
                .request(req.as_deref())
                .with("number", number)
                .with("total", order.totals.total.amount)
                .with("currency", order.currency.clone())
                .with("lines", order.lines.len() as i64);
            tx.commit(event).await?;
            if verdict.decision == Decision::Block {
                // The reasons stay with staff: telling them to a fraudster
                // teaches them what to change.
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "order_declined",
                    "the store could not accept this order; please contact the store",
                ));
            }
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
