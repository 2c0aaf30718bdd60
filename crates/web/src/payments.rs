//! Payments through the spine: opening a payment page, applying verified
//! gateway events, refunds, and the reconciliation of payments the gateway
//! never told us about.
//!
//! An order becomes paid only on proof from the gateway (a verified event,
//! or the gateway's own answer when reconciling) whose amount and currency
//! equal the order snapshot, or, for manual payment, when staff record the
//! money. Every mutating gateway call carries an idempotency key derived
//! from the order and the operation, so a retry is never a second charge
//! or refund.

use crate::error::ApiError;
use crate::state::AppState;
use axum::http::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use storefort_core::{Actor, EventKind, OrderStatus, SecurityEvent};
use storefort_pay::gateway::ParsedEvent;
use storefort_pay::stripe::{Stripe, StripeConfig};
use storefort_pay::{
    CheckoutRequest, CountryDb, GatewayError, GatewayEvent, PaymentGateway, PaymentStatus, RefundRequest, RefundStatus,
    RiskPolicy, RiskReason, RiskVerdict,
};
use storefort_store::{AttemptOrigin, PaymentApplied, RefundClaim, RefundRow, StoreError, WriteTx, hash_secret};
use zeroize::Zeroizing;

/// How the store takes money.
#[derive(Clone)]
pub struct PaymentSettings {
    /// Stripe when set; otherwise manual payment (bank transfer, cash on
    /// delivery), recorded by staff.
    pub stripe: Option<StripeConfig>,
    /// Endpoint secrets for `POST /api/v1/webhooks/stripe` (more than one
    /// while rotating).
    pub stripe_webhook_secrets: Vec<Zeroizing<String>>,
    /// How old a signed webhook may be, either way, in seconds.
    pub webhook_tolerance_secs: i64,
    /// What manual-payment customers are told after checkout.
    pub manual_instructions: String,
    pub risk: RiskPolicy,
    /// Loaded from `risk.geoip_database`, when set.
    pub geoip: Option<Arc<CountryDb>>,
    /// Payment pages still open after this long are checked with the gateway.
    pub reconcile_after: Duration,
}

impl std::fmt::Debug for PaymentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The Stripe config redacts its key; webhook secrets are only counted.
        f.debug_struct("PaymentSettings")
            .field("stripe", &self.stripe)
            .field("stripe_webhook_secrets", &self.stripe_webhook_secrets.len())
            .field("webhook_tolerance_secs", &self.webhook_tolerance_secs)
            .field("risk", &self.risk)
            .field("geoip", &self.geoip)
            .field("reconcile_after", &self.reconcile_after)
            .finish()
    }
}

impl PaymentSettings {
    /// Manual payment, default risk policy.
    pub fn demo() -> Self {
        PaymentSettings {
            stripe: None,
            stripe_webhook_secrets: Vec::new(),
            webhook_tolerance_secs: storefort_pay::signature::DEFAULT_TOLERANCE_SECS,
            // Honest until the owner writes their own: the store knows no
            // bank details to promise.
            manual_instructions: "Please contact the store for its bank details.".into(),
            risk: RiskPolicy::default(),
            geoip: None,
            reconcile_after: Duration::from_secs(10 * 60),
        }
    }
}

/// The store's gateways: the configured one takes new payments; a payment
/// made earlier through another stays with that one for refunds.
#[derive(Clone)]
pub struct Gateways {
    current: Arc<dyn PaymentGateway>,
    manual: Arc<dyn PaymentGateway>,
}

impl Gateways {
    /// Builds the gateways the settings name.
    pub fn from_settings(settings: &PaymentSettings) -> Result<Self, GatewayError> {
        let manual: Arc<dyn PaymentGateway> =
            Arc::new(storefort_pay::manual::Manual { instructions: settings.manual_instructions.clone() });
        let current = match &settings.stripe {
            Some(config) => Arc::new(Stripe::new(config.clone())?) as Arc<dyn PaymentGateway>,
            None => manual.clone(),
        };
        Ok(Gateways { current, manual })
    }

    /// The gateway new payments go through.
    pub fn current(&self) -> &Arc<dyn PaymentGateway> {
        &self.current
    }

    /// The gateway a stored payment was made with.
    pub fn named(&self, name: &str) -> Result<&Arc<dyn PaymentGateway>, ApiError> {
        if self.current.name() == name {
            Ok(&self.current)
        } else if name == "manual" {
            Ok(&self.manual)
        } else {
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "gateway_not_configured",
                format!("this payment was made with {name}, which is no longer configured"),
            ))
        }
    }
}

/// A gateway failure as an API error: the gateway's code, never a key.
pub fn gateway_error(e: &GatewayError) -> ApiError {
    match e {
        GatewayError::Unavailable(_) => {
            ApiError::unavailable("gateway_unavailable", "the payment gateway is unavailable; retry shortly")
        }
        GatewayError::Declined { code } => ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "payment_declined",
            format!("the payment was declined ({code})"),
        ),
        GatewayError::Unsupported(what) => {
            ApiError::conflict("not_supported_by_gateway", format!("the payment gateway cannot {what}"))
        }
        other => {
            tracing::error!(error = %other, "payment gateway call failed");
            ApiError::new(StatusCode::BAD_GATEWAY, "gateway_error", "the payment gateway refused the request")
        }
    }
}

/// What tells one browser from another without a cookie: its user agent
/// and languages on its network (a /24 or /48), so one person trying card
/// after card from a few addresses of one provider still counts as one.
/// Only its keyed hash is stored, for the risk windows; no cookie is set,
/// so shoppers are not tracked across visits.
pub fn device_key(headers: &axum::http::HeaderMap, ip: &str) -> Option<String> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").trim();
    let agent = header("user-agent");
    if agent.is_empty() {
        return None;
    }
    let network = match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        Err(_) => String::new(),
    };
    Some(format!("{agent}\n{}\n{network}", header("accept-language")))
}

/// The hashed origin of a request, for the risk windows. IPv6 addresses
/// count by their /64, which one subscriber usually holds whole.
pub fn origin(state: &AppState, ip: &str, device: Option<&str>, customer: Option<&str>) -> AttemptOrigin {
    let ip_key = match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(v4) => v4.to_string(),
        Err(_) => String::new(),
    };
    AttemptOrigin {
        ip_hash: (!ip_key.is_empty()).then(|| state.key().ip_index(&ip_key)),
        device_hash: device.map(|d| state.key().device_index(d)),
        customer_id: customer.map(str::to_owned),
    }
}

/// Where the customer goes to pay.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PaymentStart {
    /// `stripe` or `manual`.
    pub gateway: String,
    /// The gateway's hosted payment page; null for manual payment.
    pub url: Option<String>,
    /// What to do, for manual payment.
    pub instructions: Option<String>,
}

/// Opens (or reopens) the payment page of an unpaid order.
pub async fn start_payment(
    state: &AppState,
    order_id: &str,
    origin: &AttemptOrigin,
    request_id: Option<&str>,
) -> Result<PaymentStart, ApiError> {
    let order = state.store().order(order_id).await?;
    if order.status != OrderStatus::PendingPayment {
        return Err(ApiError::conflict(
            "order_not_payable",
            format!("the order is {}, so there is nothing to pay", order.status),
        ));
    }
    let gateway = state.gateways().current().clone();
    let existing = state.store().payment(order_id).await?;
    if let Some(p) = &existing
        && p.status == "open"
        && p.gateway == gateway.name()
        && p.session_id.is_some()
        && gateway.name() != "manual"
    {
        // The page already open is the one to use: one order, one page.
        return Ok(PaymentStart { gateway: p.gateway.clone(), url: p.session_url.clone(), instructions: None });
    }
    let attempt = existing.as_ref().map_or(0, |p| p.attempts) + 1;
    let now = state.now_ms();
    // Stripe keeps a page open 30 minutes to 24 hours; the order's stock is
    // held at least as long (see record_payment_session).
    let page_expires_ms = order.expires_at.clamp(now + 31 * 60_000, now + 23 * 3_600_000);
    let request = CheckoutRequest {
        order_id: order_id.to_owned(),
        order_number: order.number,
        amount: order.total,
        currency: order.currency.clone(),
        success_url: format!("{}/orders/{order_id}?payment=done", state.settings().auth.public_origin),
        cancel_url: format!("{}/orders/{order_id}?payment=cancelled", state.settings().auth.public_origin),
        expires_at: page_expires_ms / 1000,
        idempotency_key: format!("storefort:{order_id}:checkout:{attempt}"),
    };
    let hosted = gateway.create_checkout(&request).await.map_err(|e| gateway_error(&e))?;
    let start = PaymentStart {
        gateway: gateway.name().to_owned(),
        url: hosted.url.clone(),
        instructions: hosted.instructions.clone(),
    };
    if gateway.name() == "manual" && existing.is_some() {
        // Manual instructions are the same every time; recorded once.
        return Ok(start);
    }
    let mut tx = state.store().begin_write(now, "guest", request_id).await?;
    let recorded = tx
        .record_payment_session(
            order_id,
            gateway.name(),
            attempt,
            &hosted.session_id,
            hosted.url.as_deref(),
            order.total,
            &order.currency,
            page_expires_ms,
            origin,
        )
        .await;
    match recorded {
        Ok(true) => {
            let event = SecurityEvent::new(EventKind::PaymentStarted, Actor::Guest)
                .target(order_id)
                .request(request_id)
                .with("gateway", gateway.name())
                .with("attempt", attempt);
            tx.commit(event).await?;
            Ok(start)
        }
        Ok(false) => {
            // Another request opened this attempt first (the idempotency key
            // made it the same page at the gateway): answer with it.
            tx.rollback().await?;
            let p = state.store().payment(order_id).await?.ok_or(ApiError::not_found("payment"))?;
            Ok(PaymentStart { gateway: p.gateway, url: p.session_url, instructions: hosted.instructions })
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e.into())
        }
    }
}

/// What a gateway event did, as answered to the gateway and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    Paid,
    AlreadyPaid,
    AmountMismatch,
    PaidAfterClose,
    AwaitingPayment,
    Failed,
    CardReported,
    RefundsUpdated,
    SessionExpired,
    NoChange,
    Duplicate,
    Ignored,
    /// Matched no order for longer than a race could explain: someone
    /// else's payment on the same account (a payment link, another app).
    NotOurs,
}

/// How long an event that matches no order is refused (so the gateway
/// retries it) before it is taken as not this store's. Events overtake
/// each other by seconds; Stripe retries for three days and warns, then
/// disables, an endpoint that keeps failing.
const UNMATCHED_RETRY_SECS: i64 = 3600;

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Paid => "paid",
            EventOutcome::AlreadyPaid => "already_paid",
            EventOutcome::AmountMismatch => "amount_mismatch",
            EventOutcome::PaidAfterClose => "paid_after_close",
            EventOutcome::AwaitingPayment => "awaiting_payment",
            EventOutcome::Failed => "payment_failed",
            EventOutcome::CardReported => "card_reported",
            EventOutcome::RefundsUpdated => "refunds_updated",
            EventOutcome::SessionExpired => "session_expired",
            EventOutcome::NotOurs => "not_ours",
            EventOutcome::NoChange => "no_change",
            EventOutcome::Duplicate => "duplicate",
            EventOutcome::Ignored => "ignored",
        }
    }
}

/// The order an event is about: its metadata when that names a real order,
/// else the payment or session id the store recorded.
async fn order_of_event(state: &AppState, event: &GatewayEvent) -> Result<Option<String>, ApiError> {
    let (named, references): (Option<&String>, Vec<&String>) = match event {
        GatewayEvent::CheckoutCompleted { order_id, session_id, payment_intent, .. } => {
            (order_id.as_ref(), [Some(session_id), payment_intent.as_ref()].into_iter().flatten().collect())
        }
        GatewayEvent::PaymentSucceeded { order_id, payment_intent, .. } => (order_id.as_ref(), vec![payment_intent]),
        GatewayEvent::PaymentFailed { order_id, payment_intent, .. } => {
            (order_id.as_ref(), payment_intent.iter().collect())
        }
        GatewayEvent::CardReported { payment_intent, .. } | GatewayEvent::Refunded { payment_intent, .. } => {
            (None, vec![payment_intent])
        }
        GatewayEvent::CheckoutExpired { order_id, session_id } => (order_id.as_ref(), vec![session_id]),
        GatewayEvent::Ignored => (None, vec![]),
    };
    if let Some(id) = named.filter(|id| crate::routes::is_uuid(id)) {
        match state.store().order(id).await {
            Ok(_) => return Ok(Some(id.clone())),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for reference in references {
        if let Some(id) = state.store().order_of_gateway_ref(reference).await? {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Holds an order for review with one more reason.
async fn flag_for_review(
    state: &AppState,
    tx: &mut WriteTx,
    order_id: &str,
    reason: RiskReason,
) -> Result<(), ApiError> {
    let policy = &state.settings().payments.risk;
    let mut verdict = match state.store().order_risk(order_id).await? {
        Some(row) => RiskVerdict {
            decision: storefort_pay::Decision::parse(&row.decision).unwrap_or(storefort_pay::Decision::Review),
            score: u32::try_from(row.score).unwrap_or(0),
            reasons: serde_json::from_str(&row.reasons).unwrap_or_default(),
        },
        None => RiskVerdict { decision: storefort_pay::Decision::Allow, score: 0, reasons: Vec::new() },
    };
    verdict.add(policy, reason);
    // A late finding holds the order for a person; it never cancels one
    // (money may already have been taken).
    let decision = storefort_pay::Decision::Review;
    let reasons = serde_json::to_string(&verdict.reasons).map_err(|e| ApiError::internal(&e))?;
    tx.update_order_risk(order_id, decision.as_str(), i64::from(verdict.score), &reasons).await?;
    Ok(())
}

/// Applies one verified gateway event through the spine, once.
pub async fn apply_event(
    state: &AppState,
    gateway: &str,
    parsed: &ParsedEvent,
    request_id: Option<&str>,
) -> Result<EventOutcome, ApiError> {
    if parsed.event == GatewayEvent::Ignored {
        tracing::info!(gateway, kind = %parsed.kind, event = %parsed.id, "gateway event of a type the store does not act on");
        return Ok(EventOutcome::Ignored);
    }
    let Some(order_id) = order_of_event(state, &parsed.event).await? else {
        let event = SecurityEvent::new(EventKind::GatewayEventUnmatched, Actor::System)
            .request(request_id)
            .with("gateway", gateway)
            .with("kind", parsed.kind.clone())
            .with("event", parsed.id.clone());
        let age_secs = state.now_ms() / 1000 - parsed.created;
        let event = event.with("age_seconds", age_secs.to_string());
        state.store().record_event(&event, state.now_ms()).await?;
        if age_secs > UNMATCHED_RETRY_SECS {
            tracing::warn!(gateway, kind = %parsed.kind, event = %parsed.id, "gateway event for no order of this store, acknowledged");
            return Ok(EventOutcome::NotOurs);
        }
        // Not acknowledged, so the gateway sends it again: an event can
        // arrive before the one that tells the store its payment id.
        return Err(ApiError::unprocessable("unknown_order", "the event names no order of this store"));
    };
    let mut tx = state.store().begin_write(state.now_ms(), &format!("gateway:{gateway}"), request_id).await?;
    let result = apply_in(state, &mut tx, gateway, parsed, &order_id).await;
    let (outcome, event) = match result {
        Ok(Some(x)) => x,
        Ok(None) => {
            tx.rollback().await?;
            return Ok(EventOutcome::Duplicate);
        }
        Err(e) => {
            tx.rollback().await?;
            return Err(e);
        }
    };
    tx.set_gateway_event_outcome(&parsed.id, outcome.as_str()).await?;
    tx.append(
        "gateway_event",
        vec![order_id.clone()],
        serde_json::json!({"gateway": gateway, "event": parsed.id, "kind": parsed.kind, "outcome": outcome.as_str()}),
    )
    .await?;
    let event = event
        .target(order_id)
        .request(request_id)
        .with("gateway", gateway)
        .with("event", parsed.id.clone())
        .with("outcome", outcome.as_str());
    tx.commit(event).await?;
    Ok(outcome)
}

/// The event's effect inside the transaction; `None` for a replay.
async fn apply_in(
    state: &AppState,
    tx: &mut WriteTx,
    gateway: &str,
    parsed: &ParsedEvent,
    order_id: &str,
) -> Result<Option<(EventOutcome, SecurityEvent)>, ApiError> {
    if !tx.claim_gateway_event(&parsed.id, gateway, &parsed.kind, Some(order_id)).await? {
        return Ok(None);
    }
    let system = |kind| SecurityEvent::new(kind, Actor::System);
    let done = match &parsed.event {
        GatewayEvent::CheckoutCompleted { payment_intent, amount, currency, paid: true, .. } => {
            proof(state, tx, gateway, order_id, payment_intent.as_deref(), *amount, currency).await?
        }
        GatewayEvent::PaymentSucceeded { payment_intent, amount, currency, .. } => {
            proof(state, tx, gateway, order_id, Some(payment_intent), *amount, currency).await?
        }
        GatewayEvent::CheckoutCompleted { payment_intent, .. } => {
            if let Some(intent) = payment_intent {
                tx.record_payment_intent(order_id, intent).await?;
            }
            (EventOutcome::AwaitingPayment, system(EventKind::PaymentStarted))
        }
        GatewayEvent::PaymentFailed { payment_intent, reason, .. } => {
            if let Some(intent) = payment_intent {
                tx.record_payment_intent(order_id, intent).await?;
            }
            tx.record_payment_failure(order_id, reason.as_deref()).await?;
            let reason = reason.clone().unwrap_or_else(|| "unknown".into());
            (EventOutcome::Failed, system(EventKind::PaymentFailed).with("reason", reason))
        }
        GatewayEvent::CardReported { card, .. } => {
            let changed = tx.record_card(order_id, &card.brand, &card.last4).await?;
            let outcome = if changed { EventOutcome::CardReported } else { EventOutcome::NoChange };
            (outcome, system(EventKind::PaymentReceived))
        }
        GatewayEvent::Refunded { amount_refunded, currency, .. } => {
            let order = state.store().order(order_id).await?;
            if !currency.eq_ignore_ascii_case(&order.currency) {
                let reason = RiskReason::AmountMismatch {
                    expected: order.total,
                    reported: *amount_refunded,
                    currency: currency.clone(),
                };
                flag_for_review(state, tx, order_id, reason).await?;
                (EventOutcome::AmountMismatch, system(EventKind::PaymentAmountMismatch))
            } else {
                let grew = tx.record_gateway_refunds(order_id, *amount_refunded).await?;
                let outcome = if grew { EventOutcome::RefundsUpdated } else { EventOutcome::NoChange };
                (outcome, system(EventKind::RefundCompleted).with("refunded_total", *amount_refunded))
            }
        }
        GatewayEvent::CheckoutExpired { session_id, .. } => {
            let changed = tx.record_session_expired(order_id, session_id).await?;
            let outcome = if changed { EventOutcome::SessionExpired } else { EventOutcome::NoChange };
            (outcome, system(EventKind::PaymentFailed).with("reason", "page_expired"))
        }
        GatewayEvent::Ignored => (EventOutcome::Ignored, system(EventKind::PaymentStarted)),
    };
    Ok(Some(done))
}

/// Proof of payment: paid only when amount and currency match.
async fn proof(
    state: &AppState,
    tx: &mut WriteTx,
    gateway: &str,
    order_id: &str,
    payment_intent: Option<&str>,
    amount: i64,
    currency: &str,
) -> Result<(EventOutcome, SecurityEvent), ApiError> {
    let system = |kind| SecurityEvent::new(kind, Actor::System);
    Ok(match tx.record_payment_proof(order_id, gateway, payment_intent, amount, currency).await? {
        PaymentApplied::Paid => (EventOutcome::Paid, system(EventKind::PaymentReceived).with("amount", amount)),
        PaymentApplied::AlreadyPaid => (EventOutcome::AlreadyPaid, system(EventKind::PaymentReceived)),
        PaymentApplied::Mismatch { expected } => {
            let reason = RiskReason::AmountMismatch { expected, reported: amount, currency: currency.to_owned() };
            flag_for_review(state, tx, order_id, reason).await?;
            let event = system(EventKind::PaymentAmountMismatch)
                .with("expected", expected)
                .with("reported", amount)
                .with("reported_currency", currency.to_owned());
            (EventOutcome::AmountMismatch, event)
        }
        PaymentApplied::OrderClosed => {
            let reason = RiskReason::AmountMismatch { expected: 0, reported: amount, currency: currency.to_owned() };
            flag_for_review(state, tx, order_id, reason).await?;
            // The money is the store's to give back: on the record.
            tx.append(
                "payment_received",
                vec![order_id.to_owned()],
                serde_json::json!({"gateway": gateway, "payment": payment_intent, "amount": amount,
                                   "currency": currency, "order_closed": true}),
            )
            .await?;
            (EventOutcome::PaidAfterClose, system(EventKind::PaymentForClosedOrder).with("amount", amount))
        }
    })
}

/// Staff record a manual payment of the order's full total.
pub async fn record_manual_payment(
    state: &AppState,
    order_id: &str,
    actor: Actor,
    request_id: Option<&str>,
) -> Result<(), ApiError> {
    if state.gateways().current().name() != "manual" {
        return Err(ApiError::conflict(
            "paid_by_gateway_only",
            "this store takes payment through its gateway; an order becomes paid when the gateway proves it",
        )
        .field("status"));
    }
    let order = state.store().order(order_id).await?;
    let mut tx = state.store().begin_write(state.now_ms(), &actor.label(), request_id).await?;
    match tx.record_payment_proof(order_id, "manual", None, order.total, &order.currency).await {
        Ok(PaymentApplied::Paid) => {
            let event = SecurityEvent::new(EventKind::PaymentReceived, actor)
                .target(order_id)
                .request(request_id)
                .with("gateway", "manual")
                .with("amount", order.total);
            tx.commit(event).await?;
            Ok(())
        }
        Ok(_) => {
            tx.rollback().await?;
            Err(StoreError::Transition(storefort_core::TransitionError { from: order.status, to: OrderStatus::Paid })
                .into())
        }
        Err(e) => {
            tx.rollback().await?;
            Err(e.into())
        }
    }
}

/// Refunds `amount` of an order, once per `key`. A retry with the same key
/// answers with the same refund; a pending one is asked of the gateway
/// again with the same idempotency key.
pub async fn refund(
    state: &AppState,
    order_id: &str,
    amount: i64,
    key: &str,
    actor: Actor,
    request_id: Option<&str>,
) -> Result<RefundRow, ApiError> {
    let key_hash = hash_secret(&format!("refund:{order_id}:{key}"));
    let mut tx = state.store().begin_write(state.now_ms(), &actor.label(), request_id).await?;
    let row = match tx.claim_refund(order_id, &key_hash, amount, &actor.label()).await {
        Ok(RefundClaim::New(row)) => {
            let event = SecurityEvent::new(EventKind::RefundRequested, actor.clone())
                .target(order_id)
                .request(request_id)
                .with("amount", amount);
            tx.commit(event).await?;
            row
        }
        Ok(RefundClaim::Existing(row)) => {
            tx.rollback().await?;
            if row.status != "pending" {
                return Ok(row);
            }
            row
        }
        Err(e) => {
            tx.rollback().await?;
            return Err(e.into());
        }
    };
    settle_refund(state, row, request_id).await
}

/// Asks the gateway for a pending refund and records its answer.
pub async fn settle_refund(state: &AppState, row: RefundRow, request_id: Option<&str>) -> Result<RefundRow, ApiError> {
    let payment = state.store().payment(&row.order_id).await?.ok_or(ApiError::not_found("payment"))?;
    let gateway = state.gateways().named(&payment.gateway)?.clone();
    let request = RefundRequest {
        order_id: row.order_id.clone(),
        payment_intent: payment.payment_intent.clone().unwrap_or_default(),
        amount: row.amount,
        currency: row.currency.clone(),
        // Stable for this refund: every retry is the same refund.
        idempotency_key: format!("storefort:{}:refund:{}", row.order_id, &row.key_hash[..32]),
    };
    if gateway.name() != "manual" && request.payment_intent.is_empty() {
        return Err(ApiError::conflict("payment_not_captured", "the gateway has not reported this payment yet"));
    }
    let (succeeded, gateway_id, failure, error) = match gateway.refund(&request).await {
        Ok(r) if r.status == RefundStatus::Succeeded => (true, Some(r.refund_id), None, None),
        // Accepted, settles later: the reconciliation job asks again.
        Ok(r) if r.status == RefundStatus::Pending => {
            return Ok(RefundRow { gateway_refund_id: Some(r.refund_id), ..row });
        }
        Ok(r) => (false, Some(r.refund_id), Some("failed_at_gateway".to_owned()), None),
        // Still pending; the same key makes the next try safe.
        Err(e) if e.is_retryable() => return Err(gateway_error(&e)),
        Err(e) => (false, None, Some(error_code(&e)), Some(e)),
    };
    let mut tx = state.store().begin_write(state.now_ms(), "system", request_id).await?;
    match tx.finish_refund(&row.id, succeeded, gateway_id.as_deref(), failure.as_deref()).await {
        Ok(true) => {
            let kind = if succeeded { EventKind::RefundCompleted } else { EventKind::RefundFailed };
            let event = SecurityEvent::new(kind, Actor::System)
                .target(row.order_id.clone())
                .request(request_id)
                .with("amount", row.amount)
                .with("gateway", gateway.name());
            tx.commit(event).await?;
        }
        Ok(false) => tx.rollback().await?,
        Err(e) => {
            tx.rollback().await?;
            return Err(e.into());
        }
    }
    if let Some(e) = error {
        return Err(gateway_error(&e));
    }
    let refunds = state.store().refunds_of(&row.order_id).await?;
    refunds.into_iter().find(|r| r.id == row.id).ok_or(ApiError::not_found("refund"))
}

fn error_code(e: &GatewayError) -> String {
    match e {
        GatewayError::InvalidRequest { code, .. } if !code.is_empty() => code.chars().take(64).collect(),
        GatewayError::Declined { code } => code.chars().take(64).collect(),
        GatewayError::Authentication => "authentication".into(),
        GatewayError::IdempotencyConflict => "idempotency_conflict".into(),
        _ => "gateway_error".into(),
    }
}

/// One pass of reconciliation: payment pages open too long are checked with
/// the gateway, and refunds left pending are asked for again. Returns how
/// many payments and refunds changed.
pub async fn reconcile_once(state: &AppState) -> Result<usize, ApiError> {
    let before = state.now_ms() - crate::identity::millis(state.settings().payments.reconcile_after);
    let mut changed = 0;
    for p in state.store().stale_open_payments(before, 50).await? {
        let Ok(gateway) = state.gateways().named(&p.gateway) else { continue };
        let Some(session) = p.session_id.as_deref() else { continue };
        let gateway_state = match gateway.payment_state(session).await {
            Ok(s) => s,
            Err(GatewayError::Unsupported(_)) => continue,
            Err(e) => {
                tracing::warn!(order = %p.order_id, error = %e, "reconciliation could not reach the gateway");
                continue;
            }
        };
        // The gateway's answer goes through the same path as its events,
        // under an id of its own so it applies once.
        let event = match gateway_state.status {
            PaymentStatus::Succeeded => GatewayEvent::CheckoutCompleted {
                order_id: Some(p.order_id.clone()),
                session_id: session.to_owned(),
                payment_intent: gateway_state.payment_intent.clone(),
                amount: gateway_state.amount_received,
                currency: gateway_state.currency.clone(),
                paid: true,
            },
            PaymentStatus::Expired => {
                GatewayEvent::CheckoutExpired { order_id: Some(p.order_id.clone()), session_id: session.to_owned() }
            }
            PaymentStatus::Open => continue,
        };
        let parsed = ParsedEvent {
            id: format!("reconcile_{session}"),
            kind: "reconciliation".into(),
            created: state.now_ms() / 1000,
            event,
        };
        match apply_event(state, gateway.name(), &parsed, None).await {
            Ok(EventOutcome::Duplicate) => {}
            Ok(outcome) => {
                tracing::info!(order = %p.order_id, outcome = outcome.as_str(), "reconciled a payment with the gateway");
                changed += 1;
                if let Some(card) = gateway_state.card.clone()
                    && let Some(intent) = gateway_state.payment_intent.clone()
                {
                    let card_event = ParsedEvent {
                        id: format!("reconcile_card_{session}"),
                        kind: "reconciliation".into(),
                        created: parsed.created,
                        event: GatewayEvent::CardReported { payment_intent: intent, card },
                    };
                    let _ = apply_event(state, gateway.name(), &card_event, None).await;
                }
            }
            Err(e) => {
                tracing::warn!(order = %p.order_id, error = ?e, "reconciliation could not apply the gateway's answer")
            }
        }
    }
    let stale_refund = state.now_ms() - 60_000;
    for row in state.store().stale_pending_refunds(stale_refund, 50).await? {
        let id = row.id.clone();
        match settle_refund(state, row, None).await {
            Ok(r) if r.status != "pending" => changed += 1,
            Ok(_) => {}
            Err(e) => tracing::warn!(refund = %id, error = ?e, "a pending refund is still not settled; will retry"),
        }
    }
    Ok(changed)
}
