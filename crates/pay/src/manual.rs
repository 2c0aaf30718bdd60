//! Manual payment: bank transfer or cash on delivery, for stores without a
//! gateway. The customer is shown instructions and the order number as the
//! payment reference; staff record the money when it arrives, and any
//! refund is paid back outside the store and recorded. Nothing here talks
//! to anyone.

use crate::gateway::{
    CheckoutRequest, GatewayError, GatewayFuture, HostedCheckout, PaymentGateway, PaymentState, RefundRequest,
    RefundResult, RefundStatus,
};

/// The manual gateway and what it tells customers.
#[derive(Debug, Clone)]
pub struct Manual {
    /// Shown after checkout, e.g. the store's bank details.
    pub instructions: String,
}

impl PaymentGateway for Manual {
    fn name(&self) -> &'static str {
        "manual"
    }

    fn create_checkout<'a>(&'a self, req: &'a CheckoutRequest) -> GatewayFuture<'a, HostedCheckout> {
        Box::pin(async move {
            Ok(HostedCheckout {
                // One "session" per order: the reference the customer quotes.
                session_id: format!("manual_{}", req.order_number),
                url: None,
                instructions: Some(format!(
                    "{} Please quote order number {} as the payment reference.",
                    self.instructions.trim(),
                    req.order_number
                )),
            })
        })
    }

    fn payment_state<'a>(&'a self, _session_id: &'a str) -> GatewayFuture<'a, PaymentState> {
        // Only staff know whether a transfer arrived.
        Box::pin(async { Err(GatewayError::Unsupported("report a manual payment's state")) })
    }

    /// Staff pay the money back themselves; this records that they did.
    fn refund<'a>(&'a self, req: &'a RefundRequest) -> GatewayFuture<'a, RefundResult> {
        Box::pin(async move {
            Ok(RefundResult {
                refund_id: format!("manual_{}", req.idempotency_key),
                status: RefundStatus::Succeeded,
                amount: req.amount,
                currency: req.currency.clone(),
            })
        })
    }
}
