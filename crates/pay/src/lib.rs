//! Payments without card data.
//!
//! The customer pays on the gateway's hosted page; this crate only ever
//! handles gateway ids, amounts, statuses and the card brand and last four
//! digits the gateway reports. It owns:
//! - [`signature`]: the Stripe-style `t=…,v1=…` webhook signature, verified
//!   for incoming gateway events and made for outgoing store webhooks;
//! - [`gateway`]: the [`PaymentGateway`] trait the store talks through;
//! - [`stripe`]: the Stripe adapter (Checkout Sessions, PaymentIntents,
//!   refunds) and its event parser;
//! - [`manual`]: bank transfer or cash on delivery, for stores without a
//!   gateway;
//! - [`risk`]: the order risk score and its reasons;
//! - [`geoip`]: the country an IP address is in, for the risk score.
//!
//! It has no database code and must never accept or log a card number, a
//! secret key or a webhook secret.

pub mod gateway;
pub mod geoip;
pub mod manual;
pub mod risk;
pub mod signature;
pub mod stripe;

pub use gateway::{
    Card, CheckoutRequest, GatewayError, GatewayEvent, HostedCheckout, ParsedEvent, PaymentGateway, PaymentState,
    PaymentStatus, RefundRequest, RefundResult, RefundStatus,
};
pub use geoip::CountryDb;
pub use risk::{Decision, RiskInput, RiskPolicy, RiskReason, RiskVerdict};
