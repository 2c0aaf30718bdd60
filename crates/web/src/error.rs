//! The one error type of the HTTP edge.
//!
//! Every failure leaves the server as `{"error": {"code", "message", "field"}}`
//! with a stable machine-readable `code`. A 5xx says nothing about its cause:
//! the cause goes to the log, tied to the response by its request id.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use storefort_store::StoreError;
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds for a `Retry-After` header (429 and 503).
    pub retry_after: Option<u64>,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for machines (`code`, `field`) and people (`message`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case; clients may branch on it.
    #[schema(example = "out_of_stock")]
    pub code: &'static str,
    /// Human-readable explanation; may change between versions.
    pub message: String,
    /// The offending input field, as a path such as `lines[0].quantity`.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None, retry_after: None }
    }

    /// Names the offending input field.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Adds a `Retry-After` of `ms` milliseconds, rounded up to seconds.
    pub fn retry_after_ms(mut self, ms: i64) -> Self {
        self.retry_after = Some(u64::try_from(ms.max(0)).unwrap_or(0).div_ceil(1000).max(1));
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid credentials")
    }

    /// A server-side failure. `cause` is logged, never sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "the server failed to handle the request")
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message, field: self.field } };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { what } => ApiError::not_found(what),
            StoreError::OutOfStock { sku, line } => {
                ApiError::conflict("out_of_stock", format!("not enough stock for {sku}"))
                    .field(format!("lines[{line}].quantity"))
            }
            StoreError::CartCheckedOut => {
                ApiError::conflict("cart_checked_out", "the cart has already been checked out")
            }
            StoreError::IdempotencyMismatch => ApiError::unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request",
            ),
            StoreError::Cart(c) => {
                let code = match c {
                    storefort_core::CartError::QuantityOutOfRange { .. } => "quantity_out_of_range",
                    storefort_core::CartError::TooManyLines { .. } => "too_many_lines",
                    storefort_core::CartError::Empty => "cart_empty",
                };
                let field = if code == "quantity_out_of_range" { "quantity" } else { "lines" };
                ApiError::unprocessable(code, c.to_string()).field(field)
            }
            StoreError::Transition(t) => ApiError::conflict("invalid_transition", t.to_string()).field("status"),
            StoreError::RefundExceedsCaptured { available } => ApiError::unprocessable(
                "refund_exceeds_captured",
                format!("at most {available} (minor units) is left to refund"),
            )
            .field("amount"),
            StoreError::HeldForReview => ApiError::conflict(
                "order_held_for_review",
                "the order is held for risk review; approve it before fulfilling",
            )
            .field("status"),
            StoreError::Conflict { .. } => {
                ApiError::conflict("conflict", "the request conflicts with the current state; retry")
            }
            e @ (StoreError::Corrupt { .. } | StoreError::Database(_) | StoreError::Unrecorded) => {
                if e.is_transient() {
                    tracing::warn!(error = ?e, "database busy");
                    return ApiError::unavailable("busy", "the store is busy; retry shortly");
                }
                ApiError::internal(&format!("{e}: {:?}", std::error::Error::source(&e)))
            }
        }
    }
}
