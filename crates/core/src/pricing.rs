//! Server-side totals: the only place an order's amounts are computed.
//!
//! Clients never send prices or totals; the store prices each line from its
//! own catalog, adds flat-rate shipping for the destination country and tax at
//! that country's rate. Prices are tax-exclusive and tax applies to goods and
//! shipping, rounded once per order (half up).

use crate::address::CountryCode;
use crate::money::{Currency, Money, MoneyError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One priced line, as the catalog prices it at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLine {
    pub variant_id: String,
    pub sku: String,
    /// Product and variant title at the time of purchase.
    pub title: String,
    pub unit_price: Money,
    pub quantity: u32,
}

/// The amounts of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub subtotal: Money,
    pub shipping: Money,
    pub tax: Money,
    pub total: Money,
}

/// Flat shipping rates by destination country, with an optional rate for the
/// rest of the world. A country with no rate and no fallback is not shipped to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShippingTable {
    pub by_country: BTreeMap<String, i64>,
    pub rest_of_world: Option<i64>,
    /// Orders whose subtotal reaches this amount ship free.
    pub free_from: Option<i64>,
}

/// Tax rates in basis points (1900 = 19%) by destination country; countries
/// not listed use `default_bp`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaxTable {
    pub by_country: BTreeMap<String, u32>,
    pub default_bp: u32,
}

/// Why an order could not be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("the cart is empty")]
    Empty,
    #[error("the store does not ship to {country}")]
    NoShipping { country: String },
    #[error("every line must be in the store currency {expected}")]
    MixedCurrency { expected: Currency },
    #[error(transparent)]
    Money(#[from] MoneyError),
}

impl ShippingTable {
    /// The flat rate for a destination, before any free-shipping threshold.
    pub fn rate_for(&self, country: CountryCode) -> Option<i64> {
        self.by_country.get(country.as_str()).copied().or(self.rest_of_world)
    }
}

impl TaxTable {
    /// The rate for a destination in basis points.
    pub fn rate_for(&self, country: CountryCode) -> u32 {
        self.by_country.get(country.as_str()).copied().unwrap_or(self.default_bp)
    }
}

/// Prices a set of lines for a destination.
pub fn compute_totals(
    lines: &[PricedLine],
    currency: Currency,
    country: CountryCode,
    shipping: &ShippingTable,
    tax: &TaxTable,
) -> Result<Totals, PricingError> {
    if lines.is_empty() {
        return Err(PricingError::Empty);
    }
    let mut subtotal = Money::zero(currency);
    for line in lines {
        if line.unit_price.currency != currency {
            return Err(PricingError::MixedCurrency { expected: currency });
        }
        subtotal = subtotal.checked_add(line.unit_price.checked_mul(line.quantity)?)?;
    }
    let rate = shipping.rate_for(country).ok_or_else(|| PricingError::NoShipping { country: country.to_string() })?;
    let free = shipping.free_from.is_some_and(|t| subtotal.amount >= t);
    let shipping = Money::new(if free { 0 } else { rate }, currency)?;
    let taxable = subtotal.checked_add(shipping)?;
    let tax = taxable.apply_basis_points(tax.rate_for(country))?;
    let total = taxable.checked_add(tax)?;
    Ok(Totals { subtotal, shipping, tax, total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur() -> Currency {
        Currency::parse("EUR").expect("EUR")
    }

    fn line(price: i64, qty: u32) -> PricedLine {
        PricedLine {
            variant_id: "v".into(),
            sku: "SKU".into(),
            title: "Thing".into(),
            unit_price: Money::new(price, eur()).expect("valid"),
            quantity: qty,
        }
    }

    fn tables() -> (ShippingTable, TaxTable) {
        let shipping = ShippingTable {
            by_country: [("DE".to_owned(), 490)].into(),
            rest_of_world: Some(1500),
            free_from: Some(10_000),
        };
        let tax = TaxTable { by_country: [("DE".to_owned(), 1900)].into(), default_bp: 0 };
        (shipping, tax)
    }

    fn de() -> CountryCode {
        CountryCode::parse("DE").expect("DE")
    }

    #[test]
    fn prices_shipping_and_tax() {
        let (s, t) = tables();
        let totals = compute_totals(&[line(1999, 2), line(500, 1)], eur(), de(), &s, &t).expect("priced");
        assert_eq!(totals.subtotal.amount, 4498);
        assert_eq!(totals.shipping.amount, 490);
        // 19% of 49.88 = 9.4772 -> 9.48
        assert_eq!(totals.tax.amount, 948);
        assert_eq!(totals.total.amount, 4498 + 490 + 948);
    }

    #[test]
    fn free_shipping_threshold_and_rest_of_world() {
        let (s, t) = tables();
        let totals = compute_totals(&[line(10_000, 1)], eur(), de(), &s, &t).expect("priced");
        assert_eq!(totals.shipping.amount, 0);
        let us = CountryCode::parse("US").expect("US");
        let totals = compute_totals(&[line(100, 1)], eur(), us, &s, &t).expect("priced");
        assert_eq!((totals.shipping.amount, totals.tax.amount), (1500, 0));
    }

    #[test]
    fn refuses_empty_unshippable_and_mixed() {
        let (mut s, t) = tables();
        assert_eq!(compute_totals(&[], eur(), de(), &s, &t), Err(PricingError::Empty));
        s.rest_of_world = None;
        let us = CountryCode::parse("US").expect("US");
        assert!(matches!(compute_totals(&[line(1, 1)], eur(), us, &s, &t), Err(PricingError::NoShipping { .. })));
        let mut l = line(1, 1);
        l.unit_price.currency = Currency::parse("USD").expect("USD");
        assert!(matches!(compute_totals(&[l], eur(), de(), &s, &t), Err(PricingError::MixedCurrency { .. })));
    }

    proptest! {
        #[test]
        fn total_is_the_sum_of_its_parts(
            prices in proptest::collection::vec((0i64..=1_000_000, 1u32..=100), 1..20)
        ) {
            let (s, t) = tables();
            let lines: Vec<_> = prices.iter().map(|(p, q)| line(*p, *q)).collect();
            let totals = compute_totals(&lines, eur(), de(), &s, &t).expect("priced");
            let subtotal: i64 = prices.iter().map(|(p, q)| p * i64::from(*q)).sum();
            prop_assert_eq!(totals.subtotal.amount, subtotal);
            prop_assert_eq!(totals.total.amount, totals.subtotal.amount + totals.shipping.amount + totals.tax.amount);
            prop_assert!(totals.tax.amount >= 0);
        }
    }
}
