//! Cart rules: how many lines and how many of each a cart may hold.
//!
//! Bounds exist so a single request cannot reserve a store's whole stock or
//! make checkout do unbounded work.

use serde::Serialize;

/// Limits applied to every cart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CartLimits {
    /// Most distinct lines in one cart.
    pub max_lines: usize,
    /// Most units of one variant in one cart.
    pub max_quantity: u32,
}

impl Default for CartLimits {
    fn default() -> Self {
        CartLimits { max_lines: 50, max_quantity: 100 }
    }
}

/// Why a cart change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error("quantity must be between 1 and {max}")]
    QuantityOutOfRange { max: u32 },
    #[error("a cart holds at most {max} lines")]
    TooManyLines { max: usize },
    #[error("the cart is empty")]
    Empty,
}

/// A validated quantity of one variant: 1 to the cart limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Quantity(u32);

impl Quantity {
    /// Checks a requested quantity against the limits.
    pub fn parse(raw: i64, limits: &CartLimits) -> Result<Self, CartError> {
        match u32::try_from(raw) {
            Ok(q) if (1..=limits.max_quantity).contains(&q) => Ok(Quantity(q)),
            _ => Err(CartError::QuantityOutOfRange { max: limits.max_quantity }),
        }
    }

    /// The number of units.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Decides whether a cart that already has `existing_lines` distinct lines may
/// take one more line for a variant it does not yet hold.
pub fn check_new_line(existing_lines: usize, limits: &CartLimits) -> Result<(), CartError> {
    if existing_lines >= limits.max_lines { Err(CartError::TooManyLines { max: limits.max_lines }) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_bounds() {
        let l = CartLimits::default();
        assert_eq!(Quantity::parse(1, &l).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::parse(100, &l).map(Quantity::get), Ok(100));
        for bad in [0, -1, 101, i64::MAX, i64::MIN] {
            assert_eq!(Quantity::parse(bad, &l), Err(CartError::QuantityOutOfRange { max: 100 }));
        }
    }

    #[test]
    fn line_limit() {
        let l = CartLimits { max_lines: 2, max_quantity: 5 };
        assert!(check_new_line(1, &l).is_ok());
        assert_eq!(check_new_line(2, &l), Err(CartError::TooManyLines { max: 2 }));
    }
}
