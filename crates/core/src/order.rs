//! The order state machine.
//!
//! `pending_payment → paid → fulfilled`, with `cancelled` reachable before
//! payment and `refunded` after it. Every status change in the store is
//! checked here first; anything not listed is refused.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Fulfilled,
    Cancelled,
    Refunded,
}

/// A refused status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order cannot go from {from} to {to}")]
pub struct TransitionError {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

/// What a legal transition does to the stock the order holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockEffect {
    /// Reserved units become sold.
    Sell,
    /// Reserved units go back on sale.
    Release,
    /// Stock is untouched (shipping, or a refund of goods already sold).
    None,
}

impl OrderStatus {
    /// Every status, for exhaustive tests and documentation.
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::PendingPayment,
        OrderStatus::Paid,
        OrderStatus::Fulfilled,
        OrderStatus::Cancelled,
        OrderStatus::Refunded,
    ];

    /// The status as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::Paid => "paid",
            OrderStatus::Fulfilled => "fulfilled",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
        }
    }

    /// Parses a stored status.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Checks a transition and says what it does to stock.
    pub fn transition(self, to: OrderStatus) -> Result<StockEffect, TransitionError> {
        use OrderStatus::*;
        match (self, to) {
            (PendingPayment, Paid) => Ok(StockEffect::Sell),
            (PendingPayment, Cancelled) => Ok(StockEffect::Release),
            (Paid, Fulfilled) => Ok(StockEffect::None),
            (Paid | Fulfilled, Refunded) => Ok(StockEffect::None),
            _ => Err(TransitionError { from: self, to }),
        }
    }

    /// True when no further transition is possible.
    pub fn is_final(self) -> bool {
        Self::ALL.iter().all(|to| self.transition(*to).is_err())
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    #[test]
    fn only_the_documented_transitions_are_legal() {
        let legal = [
            (PendingPayment, Paid),
            (PendingPayment, Cancelled),
            (Paid, Fulfilled),
            (Paid, Refunded),
            (Fulfilled, Refunded),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                assert_eq!(from.transition(to).is_ok(), legal.contains(&(from, to)), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn stock_effects() {
        assert_eq!(PendingPayment.transition(Paid), Ok(StockEffect::Sell));
        assert_eq!(PendingPayment.transition(Cancelled), Ok(StockEffect::Release));
        assert_eq!(Paid.transition(Refunded), Ok(StockEffect::None));
    }

    #[test]
    fn final_states_and_round_trip() {
        assert!(Cancelled.is_final() && Refunded.is_final());
        assert!(!Paid.is_final());
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderStatus::parse("shipped"), None);
    }
}
