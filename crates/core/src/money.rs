//! Money as integer minor units plus an ISO 4217 currency.
//!
//! No floats: every amount is an `i64` count of the currency's minor unit
//! (cents for EUR), and arithmetic is checked so an overflow is an error, never
//! a wrapped price.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// Errors from parsing or combining money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown ISO 4217 currency code")]
    UnknownCurrency,
    #[error("amounts in different currencies cannot be combined")]
    CurrencyMismatch,
    #[error("amount is out of range")]
    Overflow,
    #[error("amount must not be negative")]
    Negative,
}

/// ISO 4217 codes Storefort accepts, with their minor-unit exponent.
/// Kept to currencies in common e-commerce use; extend as stores need them.
#[rustfmt::skip]
const CURRENCIES: &[(&str, u8)] = &[
    ("AUD", 2), ("BRL", 2), ("CAD", 2), ("CHF", 2), ("CNY", 2), ("CZK", 2),
    ("DKK", 2), ("EUR", 2), ("GBP", 2), ("HKD", 2), ("HUF", 2), ("INR", 2),
    ("ISK", 0), ("JPY", 0), ("KRW", 0), ("MXN", 2), ("NOK", 2), ("NZD", 2),
    ("PLN", 2), ("RON", 2), ("SEK", 2), ("SGD", 2), ("USD", 2), ("ZAR", 2),
];

/// An ISO 4217 currency code known to Storefort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "EUR")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses an upper-case ISO 4217 code such as `EUR`.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(c, _)| {
                let b = c.as_bytes();
                Currency([b[0], b[1], b[2]])
            })
            .ok_or(MoneyError::UnknownCurrency)
    }

    /// The code as text.
    pub fn code(&self) -> &str {
        // The bytes always come from the CURRENCIES table, which is ASCII.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Number of decimal places of the minor unit (2 for EUR, 0 for JPY).
    pub fn exponent(&self) -> u8 {
        CURRENCIES.iter().find(|(c, _)| c.as_bytes() == self.0).map(|(_, e)| *e).unwrap_or(2)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Currency::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.code().to_owned()
    }
}

/// The largest amount Storefort stores: ten trillion minor units. Far above any
/// real order, and far enough below `i64::MAX` that sums of bounded lines
/// cannot overflow.
pub const MAX_AMOUNT: i64 = 10_000_000_000_000;

/// A non-negative amount of money in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Amount in the currency's minor unit (cents for EUR, yen for JPY).
    #[schema(minimum = 0, maximum = 10_000_000_000_000_i64, example = 1999)]
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    /// Builds money, refusing negative or absurdly large amounts.
    pub fn new(amount: i64, currency: Currency) -> Result<Self, MoneyError> {
        if amount < 0 {
            return Err(MoneyError::Negative);
        }
        if amount > MAX_AMOUNT {
            return Err(MoneyError::Overflow);
        }
        Ok(Money { amount, currency })
    }

    /// Zero in the given currency.
    pub fn zero(currency: Currency) -> Self {
        Money { amount: 0, currency }
    }

    /// Adds two amounts of the same currency.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch);
        }
        let sum = self.amount.checked_add(other.amount).ok_or(MoneyError::Overflow)?;
        Money::new(sum, self.currency)
    }

    /// Multiplies by a quantity.
    pub fn checked_mul(self, quantity: u32) -> Result<Money, MoneyError> {
        let product = self.amount.checked_mul(i64::from(quantity)).ok_or(MoneyError::Overflow)?;
        Money::new(product, self.currency)
    }

    /// Applies a rate in basis points (1/100 of a percent), rounding half up.
    /// Integer arithmetic in i128 keeps it exact.
    pub fn apply_basis_points(self, basis_points: u32) -> Result<Money, MoneyError> {
        let scaled = i128::from(self.amount) * i128::from(basis_points);
        let rounded = (scaled + 5_000) / 10_000;
        let amount = i64::try_from(rounded).map_err(|_| MoneyError::Overflow)?;
        Money::new(amount, self.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = u32::from(self.currency.exponent());
        if exp == 0 {
            return write!(f, "{} {}", self.amount, self.currency);
        }
        let div = 10_i64.pow(exp);
        write!(f, "{}.{:0width$} {}", self.amount / div, self.amount % div, self.currency, width = exp as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur() -> Currency {
        Currency::parse("EUR").expect("EUR is known")
    }

    #[test]
    fn parses_known_and_refuses_unknown_currencies() {
        assert_eq!(eur().code(), "EUR");
        assert_eq!(Currency::parse("JPY").map(|c| c.exponent()), Ok(0));
        assert_eq!(Currency::parse("eur"), Err(MoneyError::UnknownCurrency));
        assert_eq!(Currency::parse("XXX"), Err(MoneyError::UnknownCurrency));
        assert_eq!(Currency::parse("EURO"), Err(MoneyError::UnknownCurrency));
    }

    #[test]
    fn refuses_negative_and_huge_amounts() {
        assert_eq!(Money::new(-1, eur()), Err(MoneyError::Negative));
        assert_eq!(Money::new(MAX_AMOUNT + 1, eur()), Err(MoneyError::Overflow));
    }

    #[test]
    fn refuses_mixed_currencies() {
        let usd = Currency::parse("USD").expect("USD");
        let a = Money::new(1, eur()).expect("valid");
        let b = Money::new(1, usd).expect("valid");
        assert_eq!(a.checked_add(b), Err(MoneyError::CurrencyMismatch));
    }

    #[test]
    fn basis_points_round_half_up() {
        let m = Money::new(1050, eur()).expect("valid");
        // 19% of 10.50 = 1.995 -> 2.00
        assert_eq!(m.apply_basis_points(1900).map(|m| m.amount), Ok(200));
        let m = Money::new(1000, eur()).expect("valid");
        assert_eq!(m.apply_basis_points(0).map(|m| m.amount), Ok(0));
    }

    #[test]
    fn displays_with_minor_units() {
        assert_eq!(Money::new(1999, eur()).expect("valid").to_string(), "19.99 EUR");
        let jpy = Currency::parse("JPY").expect("JPY");
        assert_eq!(Money::new(500, jpy).expect("valid").to_string(), "500 JPY");
    }

    proptest! {
        #[test]
        fn addition_is_exact_or_an_error(a in 0..=MAX_AMOUNT, b in 0..=MAX_AMOUNT) {
            let sum = Money::new(a, eur()).and_then(|x| x.checked_add(Money::new(b, eur())?));
            if a + b <= MAX_AMOUNT {
                prop_assert_eq!(sum.map(|m| m.amount), Ok(a + b));
            } else {
                prop_assert_eq!(sum, Err(MoneyError::Overflow));
            }
        }

        #[test]
        fn basis_points_never_exceed_the_exact_value_by_more_than_half_a_unit(
            a in 0..=MAX_AMOUNT / 10, bp in 0u32..=10_000
        ) {
            let got = Money::new(a, eur()).and_then(|m| m.apply_basis_points(bp)).map(|m| m.amount);
            let exact_times_10000 = i128::from(a) * i128::from(bp);
            let got = i128::from(got.expect("in range"));
            prop_assert!((got * 10_000 - exact_times_10000).abs() <= 5_000);
        }
    }
}
