//! The Stripe adapter: Checkout Sessions for the hosted payment page,
//! PaymentIntents for what was received, Refunds to give money back.
//!
//! It speaks Stripe's real HTTP API: form-encoded requests with bracketed
//! keys, JSON answers, `{"error": {…}}` error objects, a pinned
//! `Stripe-Version`, and an `Idempotency-Key` on every POST. Transient
//! failures (connection errors, timeouts, 5xx, and answers marked
//! `Stripe-Should-Retry: true`) are retried with backoff and the same key,
//! so a retry is never a second charge or refund. The base URL is
//! configurable so tests can point it at a fake that speaks the same wire
//! format.

pub mod event;

use crate::gateway::{
    Card, CheckoutRequest, GatewayError, GatewayFuture, HostedCheckout, PaymentGateway, PaymentState, PaymentStatus,
    RefundRequest, RefundResult, RefundStatus,
};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;
use zeroize::Zeroizing;

/// The API version every request pins, so an account upgrade on Stripe's
/// side cannot change the shapes this adapter parses.
pub const API_VERSION: &str = "2024-06-20";

/// Stripe's API.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// How the adapter reaches Stripe.
#[derive(Clone)]
pub struct StripeConfig {
    pub secret_key: Zeroizing<String>,
    pub api_base: String,
    /// Per attempt.
    pub timeout: Duration,
    /// Retries after the first attempt, for transient failures only.
    pub max_retries: u32,
    /// The first retry waits this long; each next one twice as long.
    pub retry_delay: Duration,
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("secret_key", &"[redacted]")
            .field("api_base", &self.api_base)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

impl StripeConfig {
    /// Production settings for a secret key.
    pub fn new(secret_key: Zeroizing<String>) -> Self {
        StripeConfig {
            secret_key,
            api_base: DEFAULT_API_BASE.to_owned(),
            timeout: Duration::from_secs(20),
            max_retries: 2,
            retry_delay: Duration::from_millis(500),
        }
    }
}

/// The Stripe gateway.
pub struct Stripe {
    config: StripeConfig,
    http: reqwest::Client,
}

/// Ids go into URL paths, so only Stripe's id alphabet is accepted.
fn is_stripe_id(id: &str) -> bool {
    (1..=255).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorObject,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
}

impl Stripe {
    /// An adapter with its own HTTPS client (rustls, no cookies, no
    /// redirects: Stripe's API never redirects, and following one would
    /// send the key elsewhere).
    pub fn new(config: StripeConfig) -> Result<Self, GatewayError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GatewayError::Protocol(format!("cannot build the HTTP client: {e}")))?;
        Ok(Stripe { config, http })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_base.trim_end_matches('/'))
    }

    /// One call with retries. `form` is `None` for a GET.
    async fn call(
        &self,
        path: &str,
        form: Option<&[(String, String)]>,
        idempotency_key: Option<&str>,
    ) -> Result<serde_json::Value, GatewayError> {
        let body = form.map(|pairs| {
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .finish()
        });
        let mut attempt = 0;
        loop {
            let mut request = match &body {
                Some(body) => self
                    .http
                    .post(self.url(path))
                    .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body.clone()),
                None => self.http.get(self.url(path)),
            };
            request = request.bearer_auth(self.config.secret_key.as_str()).header("Stripe-Version", API_VERSION);
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            let result = match request.send().await {
                Ok(response) => read_response(response).await,
                Err(e) => Err((GatewayError::Unavailable(transport_error(&e)), true)),
            };
            match result {
                Ok(value) => return Ok(value),
                // A GET is safe to repeat; a POST only with its key.
                Err((err, retry))
                    if retry && attempt < self.config.max_retries && (body.is_none() || idempotency_key.is_some()) =>
                {
                    let delay = self.config.retry_delay.saturating_mul(1 << attempt.min(16));
                    tracing::warn!(path, attempt, error = %err, "payment gateway call failed; retrying with the same idempotency key");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err((err, _)) => return Err(err),
            }
        }
    }
}

/// A transport error, described without its URL (which is ours, but the
/// habit keeps query strings out of logs).
fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "the connection failed".to_owned()
    }
}

/// Maps an answer to a value, or to an error and whether to retry it.
async fn read_response(response: reqwest::Response) -> Result<serde_json::Value, (GatewayError, bool)> {
    let status = response.status();
    let should_retry = response.headers().get("stripe-should-retry").and_then(|v| v.to_str().ok()).map(|v| v == "true");
    let bytes = response.bytes().await.map_err(|e| (GatewayError::Unavailable(transport_error(&e)), true))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes)
            .map_err(|_| (GatewayError::Protocol(format!("a {status} answer that is not JSON")), false));
    }
    let error = serde_json::from_slice::<ErrorBody>(&bytes).ok().map(|b| b.error);
    let code = error.as_ref().and_then(|e| e.code.clone()).unwrap_or_default();
    let kind = error.as_ref().and_then(|e| e.kind.clone()).unwrap_or_default();
    let message = error.as_ref().and_then(|e| e.message.clone()).unwrap_or_default();
    let retry = should_retry.unwrap_or(status.is_server_error() || status.as_u16() == 409 || status.as_u16() == 429);
    let err = match status.as_u16() {
        401 => GatewayError::Authentication,
        402 if kind == "card_error" => {
            GatewayError::Declined { code: error.and_then(|e| e.decline_code).unwrap_or(code) }
        }
        400 if kind == "idempotency_error" => GatewayError::IdempotencyConflict,
        _ if retry => GatewayError::Unavailable(format!("{status} {code}")),
        _ => GatewayError::InvalidRequest { code, message: message.chars().take(300).collect() },
    };
    Err((err, retry))
}

fn field<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(|x| x.as_str())
}

fn amount(v: &serde_json::Value, key: &str) -> i64 {
    v.get(key).and_then(serde_json::Value::as_i64).unwrap_or(0)
}

/// An expandable field: either an id or the object itself.
fn expandable_id(v: &serde_json::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_json::Value::String(id) => Some(id.clone()),
        obj @ serde_json::Value::Object(_) => field(obj, "id").map(str::to_owned),
        _ => None,
    }
}

fn card_of_charge(charge: &serde_json::Value) -> Option<Card> {
    let card = charge.get("payment_method_details")?.get("card")?;
    Card::reported(field(card, "brand")?, field(card, "last4")?)
}

/// Reads a Checkout Session expanded with `payment_intent.latest_charge`.
fn payment_state(session: &serde_json::Value) -> Result<PaymentState, GatewayError> {
    let session_id = field(session, "id").ok_or_else(|| GatewayError::Protocol("a session without an id".into()))?;
    let intent = session.get("payment_intent").filter(|v| v.is_object());
    let charge = intent.and_then(|i| i.get("latest_charge")).filter(|v| v.is_object());
    let status = match (field(session, "status"), field(session, "payment_status")) {
        (_, Some("paid")) => PaymentStatus::Succeeded,
        (Some("expired"), _) => PaymentStatus::Expired,
        _ => PaymentStatus::Open,
    };
    Ok(PaymentState {
        session_id: session_id.to_owned(),
        status,
        payment_intent: expandable_id(session, "payment_intent"),
        amount_received: intent.map(|i| amount(i, "amount_received")).unwrap_or(0),
        currency: field(session, "currency").unwrap_or_default().to_ascii_uppercase(),
        amount_refunded: charge.map(|c| amount(c, "amount_refunded")).unwrap_or(0),
        card: charge.and_then(card_of_charge),
    })
}

impl PaymentGateway for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn create_checkout<'a>(&'a self, req: &'a CheckoutRequest) -> GatewayFuture<'a, HostedCheckout> {
        Box::pin(async move {
            let currency = req.currency.to_ascii_lowercase();
            // One line for the snapshot's total: Stripe charges exactly what
            // the order says, shipping and tax included, computed by the store.
            let form: Vec<(String, String)> = [
                ("mode", "payment".to_owned()),
                ("client_reference_id", req.order_id.clone()),
                ("metadata[order_id]", req.order_id.clone()),
                ("payment_intent_data[metadata][order_id]", req.order_id.clone()),
                ("line_items[0][quantity]", "1".to_owned()),
                ("line_items[0][price_data][currency]", currency),
                ("line_items[0][price_data][unit_amount]", req.amount.to_string()),
                ("line_items[0][price_data][product_data][name]", format!("Order #{}", req.order_number)),
                ("success_url", req.success_url.clone()),
                ("cancel_url", req.cancel_url.clone()),
                ("expires_at", req.expires_at.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            let session = self.call("/v1/checkout/sessions", Some(&form), Some(&req.idempotency_key)).await?;
            let session_id = field(&session, "id")
                .filter(|id| is_stripe_id(id))
                .ok_or_else(|| GatewayError::Protocol("a session without a valid id".into()))?;
            let url = field(&session, "url").ok_or_else(|| GatewayError::Protocol("a session without a url".into()))?;
            if amount(&session, "amount_total") != req.amount {
                return Err(GatewayError::Protocol("the session's total differs from the order's".into()));
            }
            Ok(HostedCheckout { session_id: session_id.to_owned(), url: Some(url.to_owned()), instructions: None })
        })
    }

    fn payment_state<'a>(&'a self, session_id: &'a str) -> GatewayFuture<'a, PaymentState> {
        Box::pin(async move {
            if !is_stripe_id(session_id) {
                return Err(GatewayError::Protocol("not a Stripe id".into()));
            }
            let path = format!("/v1/checkout/sessions/{session_id}?expand[]=payment_intent.latest_charge");
            payment_state(&self.call(&path, None, None).await?)
        })
    }

    fn refund<'a>(&'a self, req: &'a RefundRequest) -> GatewayFuture<'a, RefundResult> {
        Box::pin(async move {
            let form: Vec<(String, String)> = vec![
                ("payment_intent".into(), req.payment_intent.clone()),
                ("amount".into(), req.amount.to_string()),
                ("metadata[order_id]".into(), req.order_id.clone()),
            ];
            let refund = self.call("/v1/refunds", Some(&form), Some(&req.idempotency_key)).await?;
            let status = match field(&refund, "status") {
                Some("succeeded") => RefundStatus::Succeeded,
                Some("failed" | "canceled") => RefundStatus::Failed,
                _ => RefundStatus::Pending,
            };
            Ok(RefundResult {
                refund_id: field(&refund, "id")
                    .ok_or_else(|| GatewayError::Protocol("a refund without an id".into()))?
                    .to_owned(),
                status,
                amount: amount(&refund, "amount"),
                currency: field(&refund, "currency").unwrap_or_default().to_ascii_uppercase(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_expanded_session_reads_as_a_payment_state() {
        let session = json!({
            "id": "cs_test_1", "object": "checkout.session", "status": "complete", "payment_status": "paid",
            "currency": "eur", "amount_total": 1500,
            "payment_intent": {"id": "pi_1", "object": "payment_intent", "amount_received": 1500,
                "latest_charge": {"id": "ch_1", "amount_refunded": 200,
                    "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242", "exp_month": 4}}}}
        });
        let state = payment_state(&session).expect("state");
        assert_eq!(state.status, PaymentStatus::Succeeded);
        assert_eq!(state.payment_intent.as_deref(), Some("pi_1"));
        assert_eq!((state.amount_received, state.amount_refunded), (1500, 200));
        assert_eq!(state.currency, "EUR");
        assert_eq!(state.card, Some(Card { brand: "visa".into(), last4: "4242".into() }));
        let open = json!({"id": "cs_2", "status": "open", "payment_status": "unpaid", "currency": "eur", "payment_intent": null});
        assert_eq!(payment_state(&open).expect("state").status, PaymentStatus::Open);
        let expired = json!({"id": "cs_3", "status": "expired", "payment_status": "unpaid", "currency": "eur"});
        assert_eq!(payment_state(&expired).expect("state").status, PaymentStatus::Expired);
    }

    #[test]
    fn ids_in_paths_are_stripe_shaped() {
        assert!(is_stripe_id("cs_test_a1B2"));
        for bad in ["", "../v1/refunds", "cs_1?expand=x", "cs 1", &"a".repeat(256)] {
            assert!(!is_stripe_id(bad), "{bad}");
        }
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let config = StripeConfig::new(Zeroizing::new("sk_test_secret".to_owned()));
        assert!(!format!("{config:?}").contains("sk_test_secret"));
    }
}
