//! Paying for an order, the gateway's webhooks, refunds and risk review.

use super::is_uuid;
use crate::clock::rfc3339;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, RawBody};
use crate::identity::{ClientIp, Principal};
use crate::middleware::ReqId;
use crate::payments::{self, PaymentStart};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use storefort_core::{Actor, EventKind, SecurityEvent};
use storefort_pay::signature;
use storefort_store::RefundRow;
use utoipa::ToSchema;

/// Open the page where the customer pays (or, for manual payment, get the
/// instructions). Calling it again returns the page already open.
#[utoipa::path(post, path = "/orders/{id}/payment", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    security(("order_token" = [])),
    responses(
        (status = 200, description = "Where to pay", body = PaymentStart),
        (status = 401, description = "Missing or wrong access token", body = crate::error::ErrorBody),
        (status = 409, description = "The order is not awaiting payment", body = crate::error::ErrorBody),
        (status = 503, description = "The payment gateway is unavailable", body = crate::error::ErrorBody),
    ))]
pub async fn start_payment(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    req: ReqId,
    ClientIp(ip): ClientIp,
) -> Result<Json<PaymentStart>, ApiError> {
    super::orders::authorize_order(&state, &id, &headers, &req, &ip).await?;
    let device = payments::device_key(&headers, &ip);
    let customer = state.store().order(&id).await?.customer_id;
    let origin = payments::origin(&state, &ip, device.as_deref(), customer.as_deref());
    Ok(Json(payments::start_payment(&state, &id, &origin, req.as_deref()).await?))
}

/// How the store answered an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    pub received: bool,
    /// What the event did: `paid`, `duplicate`, `ignored`…
    pub outcome: String,
}

/// Stripe's webhook. The body is checked against `Stripe-Signature` before
/// anything in it is read; a replayed event is acknowledged and changes
/// nothing.
#[utoipa::path(post, path = "/webhooks/stripe", tag = "payments",
    params(("Stripe-Signature" = String, Header, description = "t=…,v1=… as Stripe signs")),
    request_body(content = Object, content_type = "application/json", description = "A Stripe event object"),
    responses(
        (status = 200, description = "Applied, a duplicate, or a type the store ignores", body = WebhookAck),
        (status = 400, description = "Missing, stale or forged signature, or a malformed event", body = crate::error::ErrorBody),
        (status = 404, description = "Stripe webhooks are not configured", body = crate::error::ErrorBody),
        (status = 422, description = "The event names no order of this store", body = crate::error::ErrorBody),
    ))]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: ReqId,
    ClientIp(ip): ClientIp,
    RawBody(body): RawBody,
) -> Result<Json<WebhookAck>, ApiError> {
    let settings = &state.settings().payments;
    if settings.stripe_webhook_secrets.is_empty() {
        return Err(ApiError::not_found("webhook endpoint"));
    }
    let secrets: Vec<&[u8]> = settings.stripe_webhook_secrets.iter().map(|s| s.as_bytes()).collect();
    let header = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    let now_secs = state.now_ms() / 1000;
    if let Err(e) = signature::verify(&body, header, &secrets, now_secs, settings.webhook_tolerance_secs) {
        // Someone is posting payment events that are not from the gateway:
        // recorded once a minute per client, so a flood costs no writes.
        let event = SecurityEvent::new(EventKind::WebhookSignatureRejected, Actor::Anonymous)
            .request(req.as_deref())
            .with("gateway", "stripe")
            .with("reason", e.code());
        state.record_refusal(&ip, event).await;
        return Err(ApiError::bad_request(e.code(), e.to_string()).field("Stripe-Signature"));
    }
    let parsed = storefort_pay::stripe::event::parse(&body)
        .map_err(|e| ApiError::bad_request("malformed_event", e.to_string()))?;
    let outcome = payments::apply_event(&state, "stripe", &parsed, req.as_deref()).await?;
    Ok(Json(WebhookAck { received: true, outcome: outcome.as_str().to_owned() }))
}

/// An order's payment as staff see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentOut {
    pub gateway: String,
    /// `open`, `succeeded` or `expired`.
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub amount_received: i64,
    pub amount_refunded: i64,
    /// As the gateway reported it; never more than brand and last four.
    pub card_brand: Option<String>,
    pub card_last4: Option<String>,
    pub failures: i64,
    /// The gateway's payment id, for looking it up in its dashboard.
    pub gateway_payment_id: Option<String>,
}

/// A refund.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundOut {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub gateway_refund_id: Option<String>,
    pub failure: Option<String>,
    pub requested_by: String,
    pub created_at: String,
}

fn refund_out(r: RefundRow) -> RefundOut {
    RefundOut {
        id: r.id,
        amount: r.amount,
        currency: r.currency,
        status: r.status,
        gateway_refund_id: r.gateway_refund_id,
        failure: r.failure,
        requested_by: r.requested_by,
        created_at: rfc3339(r.created_at),
    }
}

/// An order's risk verdict.
#[derive(Debug, Serialize, ToSchema)]
pub struct RiskOut {
    /// `allow`, `review` or `block`.
    pub decision: String,
    pub score: i64,
    /// Each rule that fired, with what it saw.
    #[schema(value_type = Vec<Object>)]
    pub reasons: serde_json::Value,
    /// `held`, `approved` or `rejected` for orders sent to review.
    pub review: Option<String>,
}

fn risk_out(r: storefort_store::RiskRow) -> RiskOut {
    RiskOut {
        decision: r.decision,
        score: r.score,
        reasons: serde_json::from_str(&r.reasons).unwrap_or_default(),
        review: r.review,
    }
}

/// Payment, refunds and risk of one order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderMoneyOut {
    pub payment: Option<PaymentOut>,
    pub refunds: Vec<RefundOut>,
    pub risk: Option<RiskOut>,
}

/// An order's payment, refunds and risk verdict, for staff.
#[utoipa::path(get, path = "/admin/orders/{id}/payment", tag = "admin",
    params(("id" = String, Path, description = "Order id")),
    security(("session" = []), ("api_token" = [])),
    responses(
        (status = 200, description = "Payment, refunds and risk", body = OrderMoneyOut),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
        (status = 403, description = "Not allowed", body = crate::error::ErrorBody),
        (status = 404, description = "No such order", body = crate::error::ErrorBody),
    ))]
pub async fn order_money(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<OrderMoneyOut>, ApiError> {
    if !is_uuid(&id) {
        return Err(ApiError::not_found("order"));
    }
    state.store().order(&id).await?;
    let payment = state.store().payment(&id).await?.map(|p| PaymentOut {
        gateway: p.gateway,
        status: p.status,
        amount: p.amount,
        currency: p.currency,
        amount_received: p.amount_received,
        amount_refunded: p.amount_refunded,
        card_brand: p.card_brand,
        card_last4: p.card_last4,
        failures: p.failures,
        gateway_payment_id: p.payment_intent,
    });
    let refunds = state.store().refunds_of(&id).await?.into_iter().map(refund_out).collect();
    let risk = state.store().order_risk(&id).await?.map(risk_out);
    Ok(Json(OrderMoneyOut { payment, refunds, risk }))
}

/// A refund to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRefund {
    /// In minor units; at most what was received minus what was refunded.
    #[schema(minimum = 1)]
    pub amount: i64,
}

/// The Idempotency-Key header, required for refunds.
fn required_key(headers: &HeaderMap) -> Result<String, ApiError> {
    super::checkout::idempotency_key(headers)?.ok_or_else(|| {
        ApiError::bad_request(
            "idempotency_key_required",
            "a refund needs an Idempotency-Key header (1 to 255 visible ASCII characters)",
        )
        .field("Idempotency-Key")
    })
}

/// Refund part or all of a paid order through its gateway. Needs the
/// refund permission and a second factor used in the last few minutes. A
/// retry with the same Idempotency-Key refunds once.
#[utoipa::path(post, path = "/admin/orders/{id}/refunds", tag = "admin",
    params(("id" = String, Path, description = "Order id"),
           ("Idempotency-Key" = String, Header, description = "The same key always means the same refund")),
    request_body = NewRefund, security(("session" = []), ("api_token" = [])),
    responses(
        (status = 201, description = "Refunded", body = RefundOut),
        (status = 202, description = "Accepted by the gateway, settles later", body = RefundOut),
        (status = 400, description = "No Idempotency-Key", body = crate::error::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
        (status = 403, description = "Not allowed, or step-up required", body = crate::error::ErrorBody),
        (status = 404, description = "No such order", body = crate::error::ErrorBody),
        (status = 409, description = "The order is not paid", body = crate::error::ErrorBody),
        (status = 422, description = "More than is left to refund, or the key was used for another refund", body = crate::error::ErrorBody),
        (status = 503, description = "The gateway is unavailable; retry with the same key", body = crate::error::ErrorBody),
    ))]
pub async fn create_refund(
    principal: Principal,
    State(state): State<AppState>,
    req: ReqId,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<NewRefund>,
) -> Result<Response, ApiError> {
    let key = required_key(&headers)?;
    if !is_uuid(&id) {
        return Err(ApiError::not_found("order"));
    }
    // Money leaves the store: a fresh second factor, always.
    principal.require_step_up(&state)?;
    if body.amount <= 0 {
        return Err(ApiError::unprocessable("invalid_field", "amount must be at least 1").field("amount"));
    }
    let row = payments::refund(&state, &id, body.amount, &key, principal.actor(), req.as_deref()).await?;
    let status = if row.status == "pending" { StatusCode::ACCEPTED } else { StatusCode::CREATED };
    Ok((status, Json(refund_out(row))).into_response())
}

/// A decision on an order held for review.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewDecision {
    /// `approve` lets it be fulfilled; `reject` keeps it from shipping
    /// (cancel or refund it next).
    pub decision: ReviewChoice,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewChoice {
    Approve,
    Reject,
}

/// Approve or reject an order that risk checks held for review.
#[utoipa::path(post, path = "/admin/orders/{id}/review", tag = "admin",
    params(("id" = String, Path, description = "Order id")),
    request_body = ReviewDecision, security(("session" = []), ("api_token" = [])),
    responses(
        (status = 200, description = "The decision was recorded", body = RiskOut),
        (status = 401, description = "Not signed in", body = crate::error::ErrorBody),
        (status = 403, description = "Not allowed", body = crate::error::ErrorBody),
        (status = 404, description = "No such order", body = crate::error::ErrorBody),
        (status = 409, description = "The order is not held for review", body = crate::error::ErrorBody),
    ))]
pub async fn review_order(
    principal: Principal,
    State(state): State<AppState>,
    req: ReqId,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ReviewDecision>,
) -> Result<Json<RiskOut>, ApiError> {
    if !is_uuid(&id) {
        return Err(ApiError::not_found("order"));
    }
    state.store().order(&id).await?;
    let approve = matches!(body.decision, ReviewChoice::Approve);
    let actor = principal.actor();
    let mut tx = state.store().begin_write(state.now_ms(), &actor.label(), req.as_deref()).await?;
    if let Err(e) = tx.review_order(&id, approve, &actor.label()).await {
        tx.rollback().await?;
        return Err(match e {
            storefort_store::StoreError::Conflict { .. } => {
                ApiError::conflict("order_not_held", "the order is not held for review")
            }
            other => other.into(),
        });
    }
    let event = SecurityEvent::new(EventKind::OrderReviewed, actor)
        .target(id.clone())
        .request(req.as_deref())
        .with("review", if approve { "approved" } else { "rejected" });
    tx.commit(event).await?;
    let r = state.store().order_risk(&id).await?.ok_or(ApiError::not_found("risk verdict"))?;
    Ok(Json(risk_out(r)))
}
