//! A fake Stripe on loopback, for the one outside service the tests cannot
//! reach. It speaks Stripe's wire format for the endpoints the adapter
//! uses: bearer-key auth, form-encoded bodies with bracketed keys, JSON
//! objects with `object` fields, `{"error": {...}}` error objects, and
//! idempotency keys (same key and parameters: the first answer again with
//! `Idempotent-Replayed: true`; same key, other parameters: an
//! `idempotency_error`). It also builds events and signs them as Stripe
//! signs webhooks. Faults can be injected: a slow answer (after the work is
//! done, as when a network drops the response) or a 500.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const SECRET_KEY: &str = "sk_test_fake_51Storefort";
pub const WEBHOOK_SECRET: &str = "whsec_fake_storefort_test";

/// A fault for the next matching request.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Do the work, then wait this long before answering.
    SlowAnswer(Duration),
    /// Answer 500 without doing anything.
    ServerError,
}

#[derive(Default)]
struct Inner {
    sessions: BTreeMap<String, Value>,
    intents: BTreeMap<String, Value>,
    charges: BTreeMap<String, Value>,
    refunds: BTreeMap<String, Value>,
    /// Idempotency key → (parameters, status, answer).
    idempotency: HashMap<String, (BTreeMap<String, String>, u16, Value)>,
    /// Path prefix → faults to apply, in order.
    faults: Vec<(String, Fault)>,
    /// Every request: method, path, idempotency key.
    log: Vec<(String, String, Option<String>)>,
    next_id: u64,
}

#[derive(Clone)]
pub struct FakeStripe {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

/// A Stripe error object and its status.
struct StripeError(StatusCode, Value);

impl IntoResponse for StripeError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(self.1)).into_response()
    }
}

fn error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> StripeError {
    let mut e = json!({"type": kind, "message": message});
    if let Some(c) = code {
        e["code"] = json!(c);
    }
    StripeError(status, json!({"error": e}))
}

impl Inner {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_test_{:08}{}", self.next_id, "StoRefort")
    }
}

/// Decodes a form body into its bracketed keys.
fn form(body: &[u8]) -> BTreeMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

impl FakeStripe {
    pub async fn start() -> FakeStripe {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let fake = FakeStripe { base: String::new(), inner };
        let app = Router::new()
            .route("/v1/checkout/sessions", post(create_session))
            .route("/v1/checkout/sessions/{id}", get(get_session))
            .route("/v1/refunds", post(create_refund))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeStripe { base: format!("http://{addr}"), ..fake }
    }

    /// Stripe settings for a store that uses this fake.
    pub fn settings(&self, settings: &mut storefort_web::Settings) {
        let mut config = storefort_pay::stripe::StripeConfig::new(zeroize::Zeroizing::new(SECRET_KEY.to_owned()));
        config.api_base = self.base.clone();
        config.timeout = Duration::from_millis(800);
        config.retry_delay = Duration::from_millis(20);
        settings.payments.stripe = Some(config);
        settings.payments.stripe_webhook_secrets = vec![zeroize::Zeroizing::new(WEBHOOK_SECRET.to_owned())];
    }

    /// Queues a fault for the next request whose path starts with `path`.
    pub fn inject(&self, path: &str, fault: Fault) {
        self.inner.lock().expect("lock").faults.push((path.to_owned(), fault));
    }

    /// Requests received: (method, path, idempotency key).
    pub fn log(&self) -> Vec<(String, String, Option<String>)> {
        self.inner.lock().expect("lock").log.clone()
    }

    pub fn session_count(&self) -> usize {
        self.inner.lock().expect("lock").sessions.len()
    }

    pub fn refund_count(&self) -> usize {
        self.inner.lock().expect("lock").refunds.len()
    }

    pub fn session(&self, id: &str) -> Value {
        self.inner.lock().expect("lock").sessions.get(id).cloned().expect("session")
    }

    /// The customer pays on the hosted page with a card: the session
    /// completes, a PaymentIntent and its charge exist. Returns the events
    /// Stripe would send, in Stripe's usual order.
    pub fn pay(&self, session_id: &str, brand: &str, last4: &str) -> Vec<Value> {
        self.pay_amount(session_id, brand, last4, None)
    }

    /// As `pay`, but the gateway reports `amount` received (a tampered or
    /// buggy integration): to test that the store does not believe it.
    pub fn pay_amount(&self, session_id: &str, brand: &str, last4: &str, amount: Option<i64>) -> Vec<Value> {
        let mut s = self.inner.lock().expect("lock");
        let pi = s.id("pi");
        let ch = s.id("ch");
        let session = s.sessions.get_mut(session_id).expect("session");
        let amount = amount.unwrap_or_else(|| session["amount_total"].as_i64().expect("amount"));
        session["status"] = json!("complete");
        session["payment_status"] = json!("paid");
        session["payment_intent"] = json!(pi);
        session["amount_total"] = json!(amount);
        let currency = session["currency"].clone();
        let metadata = session["metadata"].clone();
        let session = session.clone();
        let charge = json!({
            "id": ch, "object": "charge", "amount": amount, "amount_captured": amount, "amount_refunded": 0,
            "currency": currency, "payment_intent": pi, "paid": true, "refunded": false, "status": "succeeded",
            "payment_method_details": {"type": "card", "card": {"brand": brand, "last4": last4, "exp_month": 12,
                "exp_year": 2030, "funding": "credit", "country": "DE"}},
            "metadata": {}
        });
        let intent = json!({
            "id": pi, "object": "payment_intent", "amount": amount, "amount_received": amount,
            "currency": currency, "status": "succeeded", "latest_charge": ch, "metadata": metadata,
            "capture_method": "automatic_async"
        });
        s.charges.insert(ch.clone(), charge.clone());
        s.intents.insert(pi.clone(), intent.clone());
        drop(s);
        vec![
            self.event("charge.succeeded", charge),
            self.event("payment_intent.succeeded", intent),
            self.event("checkout.session.completed", session),
        ]
    }

    /// A failed card attempt on the page: Stripe's payment_failed event.
    pub fn decline(&self, session_id: &str, decline_code: &str) -> Value {
        let mut s = self.inner.lock().expect("lock");
        let pi = s.id("pi");
        let session = s.sessions.get(session_id).expect("session").clone();
        let intent = json!({
            "id": pi, "object": "payment_intent", "amount": session["amount_total"], "amount_received": 0,
            "currency": session["currency"], "status": "requires_payment_method", "metadata": session["metadata"],
            "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": decline_code}
        });
        s.intents.insert(pi, intent.clone());
        drop(s);
        self.event("payment_intent.payment_failed", intent)
    }

    /// The charge of a payment, as it stands now.
    pub fn charge_of(&self, payment_intent: &str) -> Value {
        let s = self.inner.lock().expect("lock");
        s.charges.values().find(|c| c["payment_intent"] == payment_intent).cloned().expect("charge")
    }

    /// An event object as Stripe sends it.
    pub fn event(&self, kind: &str, object: Value) -> Value {
        let id = self.inner.lock().expect("lock").id("evt");
        json!({
            "id": id, "object": "event", "api_version": storefort_pay::stripe::API_VERSION,
            "created": chrono_now(), "livemode": false, "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null},
            "type": kind, "data": {"object": object}
        })
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The `Stripe-Signature` header for `body` at `t`, as Stripe computes it.
pub fn sign(body: &[u8], t: i64) -> String {
    storefort_pay::signature::sign(body, WEBHOOK_SECRET.as_bytes(), t)
}

/// Checks the key and logs the request; applies a queued fault. `Err` is
/// the answer to give instead.
fn admit(fake: &FakeStripe, method: &str, path: &str, headers: &HeaderMap) -> Result<Option<Duration>, StripeError> {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut s = fake.inner.lock().expect("lock");
    s.log.push((method.to_owned(), path.to_owned(), key));
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    if auth != format!("Bearer {SECRET_KEY}") {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            None,
            "Invalid API Key provided: sk_test_****",
        ));
    }
    if headers.get("stripe-version").and_then(|v| v.to_str().ok()) != Some(storefort_pay::stripe::API_VERSION) {
        return Err(error(StatusCode::BAD_REQUEST, "invalid_request_error", None, "Invalid Stripe API version"));
    }
    if let Some(pos) = s.faults.iter().position(|(p, _)| path.starts_with(p.as_str())) {
        let (_, fault) = s.faults.remove(pos);
        return match fault {
            Fault::ServerError => {
                Err(error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", None, "An unknown error occurred"))
            }
            Fault::SlowAnswer(d) => Ok(Some(d)),
        };
    }
    Ok(None)
}

/// Runs a POST under Stripe's idempotency rules.
async fn idempotent(
    fake: &FakeStripe,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    work: impl FnOnce(&mut Inner, &BTreeMap<String, String>) -> Result<Value, StripeError>,
) -> Response {
    let delay = match admit(fake, "POST", path, headers) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let params = form(body);
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let answer = {
        let mut s = fake.inner.lock().expect("lock");
        match key.as_ref().and_then(|k| s.idempotency.get(k).cloned()) {
            Some((stored, status, value)) if stored == params => {
                let mut r = (StatusCode::from_u16(status).expect("status"), axum::Json(value)).into_response();
                r.headers_mut().insert("idempotent-replayed", "true".parse().expect("header"));
                r
            }
            Some(_) => error(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                None,
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            )
            .into_response(),
            None => match work(&mut s, &params) {
                Ok(value) => {
                    if let Some(k) = key {
                        s.idempotency.insert(k, (params, 200, value.clone()));
                    }
                    (StatusCode::OK, axum::Json(value)).into_response()
                }
                Err(r) => r.into_response(),
            },
        }
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    answer
}

async fn create_session(State(fake): State<FakeStripe>, headers: HeaderMap, body: Bytes) -> Response {
    idempotent(&fake, "/v1/checkout/sessions", &headers, &body, |s, p| {
        let required = |k: &str| {
            p.get(k).cloned().ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("parameter_missing"),
                    &format!("Missing required param: {k}."),
                )
            })
        };
        if required("mode")? != "payment" {
            return Err(error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("parameter_invalid"), "mode"));
        }
        let amount: i64 = required("line_items[0][price_data][unit_amount]")?.parse().map_err(|_| {
            error(StatusCode::BAD_REQUEST, "invalid_request_error", Some("parameter_invalid_integer"), "unit_amount")
        })?;
        let quantity: i64 = required("line_items[0][quantity]")?.parse().unwrap_or(0);
        let currency = required("line_items[0][price_data][currency]")?;
        required("line_items[0][price_data][product_data][name]")?;
        required("success_url")?;
        required("cancel_url")?;
        let id = s.id("cs");
        let session = json!({
            "id": id, "object": "checkout.session", "mode": "payment", "status": "open", "payment_status": "unpaid",
            "amount_total": amount * quantity, "currency": currency,
            "url": format!("https://checkout.stripe.com/c/pay/{id}"),
            "client_reference_id": p.get("client_reference_id"),
            "metadata": {"order_id": p.get("metadata[order_id]")},
            "payment_intent": null, "expires_at": p.get("expires_at").and_then(|e| e.parse::<i64>().ok()),
            "success_url": p.get("success_url"), "cancel_url": p.get("cancel_url")
        });
        s.sessions.insert(id, session.clone());
        Ok(session)
    })
    .await
}

async fn get_session(State(fake): State<FakeStripe>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let delay = match admit(&fake, "GET", &format!("/v1/checkout/sessions/{id}"), &headers) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let answer = {
        let s = fake.inner.lock().expect("lock");
        match s.sessions.get(&id) {
            None => error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("resource_missing"),
                "No such checkout.session",
            )
            .into_response(),
            Some(session) => {
                // expand[]=payment_intent.latest_charge
                let mut session = session.clone();
                if let Some(pi) = session["payment_intent"].as_str().and_then(|pi| s.intents.get(pi)) {
                    let mut pi = pi.clone();
                    if let Some(ch) = pi["latest_charge"].as_str().and_then(|c| s.charges.get(c)) {
                        pi["latest_charge"] = ch.clone();
                    }
                    session["payment_intent"] = pi;
                }
                (StatusCode::OK, axum::Json(session)).into_response()
            }
        }
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    answer
}

async fn create_refund(State(fake): State<FakeStripe>, headers: HeaderMap, body: Bytes) -> Response {
    idempotent(&fake, "/v1/refunds", &headers, &body, |s, p| {
        let pi = p.get("payment_intent").cloned().unwrap_or_default();
        let Some(intent) = s.intents.get(&pi).cloned() else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("resource_missing"),
                "No such payment_intent",
            ));
        };
        let ch = intent["latest_charge"].as_str().unwrap_or_default().to_owned();
        let charge = s.charges.get_mut(&ch).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("charge_not_found"),
                "The payment has no charge",
            )
        })?;
        let captured = charge["amount_captured"].as_i64().unwrap_or(0);
        let refunded = charge["amount_refunded"].as_i64().unwrap_or(0);
        let amount = p.get("amount").and_then(|a| a.parse::<i64>().ok()).unwrap_or(captured - refunded);
        if amount <= 0 || amount > captured - refunded {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("amount_too_large"),
                &format!(
                    "Refund amount ({amount}) is greater than unrefunded amount on charge ({})",
                    captured - refunded
                ),
            ));
        }
        charge["amount_refunded"] = json!(refunded + amount);
        charge["refunded"] = json!(refunded + amount == captured);
        let currency = charge["currency"].clone();
        let id = s.id("re");
        let refund = json!({
            "id": id, "object": "refund", "amount": amount, "currency": currency, "status": "succeeded",
            "payment_intent": pi, "charge": ch, "metadata": {"order_id": p.get("metadata[order_id]")}
        });
        s.refunds.insert(id, refund.clone());
        Ok(refund)
    })
    .await
}
