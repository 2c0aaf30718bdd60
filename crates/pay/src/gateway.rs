//! The gateway trait the store talks through, and the plain types that
//! cross it. Amounts are integer minor units; currencies are ISO 4217 codes
//! in upper case on our side (adapters convert to what their API wants).

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so gateways can sit behind `Arc<dyn PaymentGateway>`.
pub type GatewayFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, GatewayError>> + Send + 'a>>;

/// What the store asks a gateway for when a customer goes to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    pub order_id: String,
    /// The human-facing order number, shown on the gateway's page.
    pub order_number: i64,
    /// The order snapshot's total, the only amount ever charged.
    pub amount: i64,
    pub currency: String,
    pub success_url: String,
    pub cancel_url: String,
    /// When the hosted page stops accepting payment (unix seconds).
    pub expires_at: i64,
    /// Derived from the order id and the attempt number, so a retried call
    /// never opens a second page for the same attempt.
    pub idempotency_key: String,
}

/// Where the customer goes to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedCheckout {
    /// The gateway's id for this attempt (a Checkout Session id for Stripe).
    pub session_id: String,
    /// The hosted payment page; `None` for manual payment.
    pub url: Option<String>,
    /// What to tell the customer when there is no page (bank details…).
    pub instructions: Option<String>,
}

/// The card details a gateway reports after payment: never more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub brand: String,
    pub last4: String,
}

impl Card {
    /// Keeps only a well-formed brand and exactly four digits, so nothing
    /// else a gateway sends can end up stored as "card data".
    pub fn reported(brand: &str, last4: &str) -> Option<Card> {
        let brand_ok = (1..=32).contains(&brand.len()) && brand.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let last4_ok = last4.len() == 4 && last4.bytes().all(|b| b.is_ascii_digit());
        (brand_ok && last4_ok).then(|| Card { brand: brand.to_ascii_lowercase(), last4: last4.to_owned() })
    }
}

/// Where a payment stands at the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Not paid yet (page open, or the customer still owes a bank transfer).
    Open,
    /// The money was taken.
    Succeeded,
    /// The page expired or was cancelled without payment.
    Expired,
}

/// The gateway's own view of one payment attempt, for reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentState {
    pub session_id: String,
    pub status: PaymentStatus,
    pub payment_intent: Option<String>,
    /// Amount actually received (0 until paid).
    pub amount_received: i64,
    pub currency: String,
    /// Refunded so far, in total.
    pub amount_refunded: i64,
    pub card: Option<Card>,
}

/// A refund the store asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub order_id: String,
    pub payment_intent: String,
    pub amount: i64,
    pub currency: String,
    /// The same for every retry of this refund, so it happens once.
    pub idempotency_key: String,
}

/// Where a refund stands at the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    Succeeded,
    /// Accepted but not final (some methods settle later).
    Pending,
    Failed,
}

/// The gateway's answer to a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundResult {
    pub refund_id: String,
    pub status: RefundStatus,
    pub amount: i64,
    pub currency: String,
}

/// A verified gateway event, reduced to what the store acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    /// The hosted page was completed. `paid` is false for methods that
    /// settle later; their success arrives as another event.
    CheckoutCompleted {
        order_id: Option<String>,
        session_id: String,
        payment_intent: Option<String>,
        amount: i64,
        currency: String,
        paid: bool,
    },
    /// Money was received.
    PaymentSucceeded { order_id: Option<String>, payment_intent: String, amount: i64, currency: String },
    /// A payment attempt failed (declined card…).
    PaymentFailed { order_id: Option<String>, payment_intent: Option<String>, reason: Option<String> },
    /// The card used, reported by a charge.
    CardReported { payment_intent: String, card: Card },
    /// Refunds so far on a payment, in total (cumulative, so events that
    /// arrive out of order can be merged by taking the largest).
    Refunded { payment_intent: String, amount_refunded: i64, currency: String },
    /// The hosted page expired unpaid.
    CheckoutExpired { order_id: Option<String>, session_id: String },
    /// A genuine event of a type the store does not act on.
    Ignored,
}

/// One verified, parsed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    /// The gateway's event id: the deduplication key.
    pub id: String,
    pub kind: String,
    /// When the gateway created it (unix seconds).
    pub created: i64,
    pub event: GatewayEvent,
}

/// Why a gateway call failed. Messages carry the gateway's code and
/// message, never a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("the payment gateway refused the store's credentials")]
    Authentication,
    #[error("the payment gateway refused the request ({code}): {message}")]
    InvalidRequest { code: String, message: String },
    #[error("the card was declined ({code})")]
    Declined { code: String },
    #[error("the payment gateway saw this idempotency key with other parameters")]
    IdempotencyConflict,
    #[error("the payment gateway is unavailable: {0}")]
    Unavailable(String),
    #[error("the payment gateway answered something unexpected: {0}")]
    Protocol(String),
    #[error("this gateway cannot {0}")]
    Unsupported(&'static str),
}

impl GatewayError {
    /// True when the same call, with the same idempotency key, may succeed
    /// later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, GatewayError::Unavailable(_))
    }
}

/// A payment gateway. Every mutating call carries an idempotency key, so a
/// retry after a timeout never charges or refunds twice.
pub trait PaymentGateway: Send + Sync {
    /// `stripe`, `manual`…, as stored with each payment.
    fn name(&self) -> &'static str;

    /// Opens the page (or instructions) where the customer pays.
    fn create_checkout<'a>(&'a self, req: &'a CheckoutRequest) -> GatewayFuture<'a, HostedCheckout>;

    /// The gateway's current view of a payment attempt.
    fn payment_state<'a>(&'a self, session_id: &'a str) -> GatewayFuture<'a, PaymentState>;

    /// Gives money back, at most once per idempotency key.
    fn refund<'a>(&'a self, req: &'a RefundRequest) -> GatewayFuture<'a, RefundResult>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_brand_and_four_digits_are_kept() {
        assert_eq!(Card::reported("Visa", "4242"), Some(Card { brand: "visa".into(), last4: "4242".into() }));
        assert_eq!(Card::reported("visa", "4242424242424242"), None);
        assert_eq!(Card::reported("visa", "42a2"), None);
        assert_eq!(Card::reported("<script>", "4242"), None);
        assert_eq!(Card::reported("", "4242"), None);
    }
}
