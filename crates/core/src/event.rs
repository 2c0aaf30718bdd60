//! Security events: the structured record of every state change and every
//! refused or suspicious request, for audit and (later) alerting.
//!
//! An event carries ids, hashes and codes, never personal data or secrets, so
//! the event table and the logs can be shipped to a SIEM without becoming a
//! second copy of customer data.

use serde::Serialize;
use std::fmt;

/// How urgent an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What happened. Stable snake_case names: alert rules match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    OrderPlaced,
    OrderStatusChanged,
    OrderExpired,
    PriceChanged,
    StockChanged,
    CatalogSeeded,
    AdminTokenIssued,
    AdminAuthFailed,
    OrderAccessDenied,
    IdempotencyKeyMismatch,
    LedgerCreated,
    LedgerTampered,
    LedgerKeyRotated,
    SignedIn,
    SignInFailed,
    AccountLocked,
    AccountCreated,
    EmailVerified,
    SecondFactorEnrolled,
    SecondFactorReset,
    SecondFactorFailed,
    SessionRevoked,
    SignedOut,
    RoleChanged,
    AccountStatusChanged,
    ApiTokenCreated,
    ApiTokenRevoked,
    PasswordChanged,
    PasswordResetRequested,
    CredentialRejected,
    AccessDenied,
    CsrfRejected,
    SteppedUp,
    PasskeyRegistered,
    PasskeyRemoved,
    RecoveryCodesRegenerated,
    PersonalDataErased,
    ErasureDelayed,
    LegalHoldChanged,
    PersonalDataExported,
    ConsentChanged,
    NewsletterSent,
    RetentionApplied,
    /// The firewall refused a request (score at the threshold, deny list).
    RequestBlocked,
    /// The firewall would have refused a request (detect-only mode).
    RequestFlagged,
    RateLimited,
    /// Repeated blocks earned a client a temporary ban.
    ClientBanned,
    /// Requests refused because the store was overloaded.
    LoadShed,
    /// A hosted payment page (or manual instructions) was opened for an order.
    PaymentStarted,
    /// The gateway proved payment and the order was marked paid.
    PaymentReceived,
    PaymentFailed,
    /// The gateway reported an amount or currency other than the order's.
    PaymentAmountMismatch,
    /// Money arrived for an order that was already closed.
    PaymentForClosedOrder,
    /// A webhook came with a missing, stale or forged signature.
    WebhookSignatureRejected,
    /// A signed gateway event named no order the store knows.
    GatewayEventUnmatched,
    RefundRequested,
    RefundCompleted,
    RefundFailed,
    /// An order's risk verdict (recorded for every order).
    OrderRiskAssessed,
    /// Staff approved or rejected an order held for review.
    OrderReviewed,
    /// An outgoing webhook endpoint was registered or disabled.
    WebhookEndpointChanged,
    /// An outgoing webhook gave up after its last attempt.
    WebhookDeliveryFailed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::OrderPlaced => "order_placed",
            EventKind::OrderStatusChanged => "order_status_changed",
            EventKind::OrderExpired => "order_expired",
            EventKind::PriceChanged => "price_changed",
            EventKind::StockChanged => "stock_changed",
            EventKind::CatalogSeeded => "catalog_seeded",
            EventKind::AdminTokenIssued => "admin_token_issued",
            EventKind::AdminAuthFailed => "admin_auth_failed",
            EventKind::OrderAccessDenied => "order_access_denied",
            EventKind::IdempotencyKeyMismatch => "idempotency_key_mismatch",
            EventKind::LedgerCreated => "ledger_created",
            EventKind::LedgerTampered => "ledger_tampered",
            EventKind::LedgerKeyRotated => "ledger_key_rotated",
            EventKind::SignedIn => "signed_in",
            EventKind::SignInFailed => "sign_in_failed",
            EventKind::AccountLocked => "account_locked",
            EventKind::AccountCreated => "account_created",
            EventKind::EmailVerified => "email_verified",
            EventKind::SecondFactorEnrolled => "second_factor_enrolled",
            EventKind::SecondFactorReset => "second_factor_reset",
            EventKind::SecondFactorFailed => "second_factor_failed",
            EventKind::SessionRevoked => "session_revoked",
            EventKind::SignedOut => "signed_out",
            EventKind::RoleChanged => "role_changed",
            EventKind::AccountStatusChanged => "account_status_changed",
            EventKind::ApiTokenCreated => "api_token_created",
            EventKind::ApiTokenRevoked => "api_token_revoked",
            EventKind::PasswordChanged => "password_changed",
            EventKind::PasswordResetRequested => "password_reset_requested",
            EventKind::CredentialRejected => "credential_rejected",
            EventKind::AccessDenied => "access_denied",
            EventKind::CsrfRejected => "csrf_rejected",
            EventKind::SteppedUp => "stepped_up",
            EventKind::PasskeyRegistered => "passkey_registered",
            EventKind::PasskeyRemoved => "passkey_removed",
            EventKind::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            EventKind::PersonalDataErased => "personal_data_erased",
            EventKind::ErasureDelayed => "erasure_delayed",
            EventKind::LegalHoldChanged => "legal_hold_changed",
            EventKind::PersonalDataExported => "personal_data_exported",
            EventKind::ConsentChanged => "consent_changed",
            EventKind::NewsletterSent => "newsletter_sent",
            EventKind::RetentionApplied => "retention_applied",
            EventKind::RequestBlocked => "request_blocked",
            EventKind::RequestFlagged => "request_flagged",
            EventKind::RateLimited => "rate_limited",
            EventKind::ClientBanned => "client_banned",
            EventKind::LoadShed => "load_shed",
            EventKind::PaymentStarted => "payment_started",
            EventKind::PaymentReceived => "payment_received",
            EventKind::PaymentFailed => "payment_failed",
            EventKind::PaymentAmountMismatch => "payment_amount_mismatch",
            EventKind::PaymentForClosedOrder => "payment_for_closed_order",
            EventKind::WebhookSignatureRejected => "webhook_signature_rejected",
            EventKind::GatewayEventUnmatched => "gateway_event_unmatched",
            EventKind::RefundRequested => "refund_requested",
            EventKind::RefundCompleted => "refund_completed",
            EventKind::RefundFailed => "refund_failed",
            EventKind::OrderRiskAssessed => "order_risk_assessed",
            EventKind::OrderReviewed => "order_reviewed",
            EventKind::WebhookEndpointChanged => "webhook_endpoint_changed",
            EventKind::WebhookDeliveryFailed => "webhook_delivery_failed",
        }
    }

    /// The default severity of this kind.
    pub fn severity(self) -> Severity {
        match self {
            EventKind::AdminAuthFailed
            | EventKind::OrderAccessDenied
            | EventKind::IdempotencyKeyMismatch
            | EventKind::SignInFailed
            | EventKind::SecondFactorFailed
            | EventKind::CredentialRejected
            | EventKind::AccessDenied
            | EventKind::CsrfRejected
            | EventKind::SecondFactorReset
            | EventKind::ApiTokenCreated
            | EventKind::RequestBlocked
            | EventKind::RequestFlagged
            | EventKind::RateLimited
            | EventKind::LoadShed
            | EventKind::PaymentFailed
            | EventKind::WebhookSignatureRejected
            | EventKind::GatewayEventUnmatched
            | EventKind::RefundRequested
            | EventKind::RefundFailed
            | EventKind::WebhookEndpointChanged
            | EventKind::WebhookDeliveryFailed => Severity::Warning,
            EventKind::AdminTokenIssued
            | EventKind::LedgerTampered
            | EventKind::LedgerKeyRotated
            | EventKind::AccountLocked
            | EventKind::ClientBanned
            | EventKind::RoleChanged
            | EventKind::PaymentAmountMismatch
            | EventKind::PaymentForClosedOrder => Severity::Critical,
            EventKind::PersonalDataErased | EventKind::LegalHoldChanged | EventKind::PersonalDataExported => {
                Severity::Warning
            }
            _ => Severity::Info,
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// The store itself: scheduled jobs, seeding.
    System,
    /// A holder of the bootstrap admin token.
    BootstrapAdmin,
    /// A shopper identified only by a cart or order capability.
    Guest,
    /// An unauthenticated caller.
    Anonymous,
    /// A signed-in account (customer or staff), by account id.
    Account(String),
    /// The machine's operator through the command line (`storefort admin …`).
    Operator,
}

impl Actor {
    /// How the ledger and the event table name the actor.
    pub fn label(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Actor::System => "system".into(),
            Actor::BootstrapAdmin => "bootstrap_admin".into(),
            Actor::Guest => "guest".into(),
            Actor::Anonymous => "anonymous".into(),
            Actor::Operator => "operator".into(),
            Actor::Account(id) => format!("account:{id}").into(),
        }
    }
}

/// One security event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecurityEvent {
    pub kind: EventKind,
    pub severity: Severity,
    pub actor: Actor,
    /// The id of the thing acted on (order id, variant id), never personal data.
    pub target: Option<String>,
    pub request_id: Option<String>,
    /// Extra facts as a flat JSON-able map of codes and numbers.
    pub detail: Vec<(&'static str, DetailValue)>,
}

/// A value in an event's detail: numbers and short codes only.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DetailValue {
    Int(i64),
    Code(String),
}

impl From<i64> for DetailValue {
    fn from(v: i64) -> Self {
        DetailValue::Int(v)
    }
}

impl From<&str> for DetailValue {
    fn from(v: &str) -> Self {
        DetailValue::Code(v.to_owned())
    }
}

impl From<String> for DetailValue {
    fn from(v: String) -> Self {
        DetailValue::Code(v)
    }
}

impl SecurityEvent {
    /// A new event of `kind` by `actor`, with the kind's default severity.
    pub fn new(kind: EventKind, actor: Actor) -> Self {
        SecurityEvent { kind, severity: kind.severity(), actor, target: None, request_id: None, detail: Vec::new() }
    }

    /// Sets the target id.
    pub fn target(mut self, id: impl Into<String>) -> Self {
        self.target = Some(id.into());
        self
    }

    /// Sets the request id.
    pub fn request(mut self, id: Option<&str>) -> Self {
        self.request_id = id.map(str::to_owned);
        self
    }

    /// Adds a detail.
    pub fn with(mut self, key: &'static str, value: impl Into<DetailValue>) -> Self {
        self.detail.push((key, value.into()));
        self
    }
}
