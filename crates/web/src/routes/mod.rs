//! The JSON API under `/api/v1`, one module per area.

pub mod account;
pub mod admin;
pub mod auth;
pub mod carts;
pub mod catalog;
pub mod checkout;
pub mod consent;
pub mod export_page;
pub mod health;
pub mod orders;
pub mod passkeys;
pub mod payments;
pub mod privacy;
pub mod privacy_page;
pub mod staff;
pub mod webhooks;

use crate::error::ApiError;
use storefort_core::{Currency, Money};

/// Builds API money from stored columns; a bad stored value is a server fault.
pub(crate) fn money(amount: i64, currency: &str) -> Result<Money, ApiError> {
    Currency::parse(currency)
        .and_then(|c| Money::new(amount, c))
        .map_err(|e| ApiError::internal(&format!("stored money is invalid: {e}")))
}

/// True for a canonical hyphenated UUID; other path ids are simply not found.
pub(crate) fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}
