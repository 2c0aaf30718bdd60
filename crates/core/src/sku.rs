//! Stock-keeping units: the merchant's own identifier for a variant.

use std::fmt;

/// Why a SKU was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to 64 characters of A-Z, 0-9, '-', '_' or '.'")]
pub struct SkuError;

/// A SKU: 1 to 64 ASCII letters, digits, `-`, `_` or `.`, stored upper-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sku(String);

impl Sku {
    /// Parses a SKU.
    pub fn parse(raw: &str) -> Result<Self, SkuError> {
        let ok =
            !raw.is_empty() && raw.len() <= 64 && raw.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if ok { Ok(Sku(raw.to_ascii_uppercase())) } else { Err(SkuError) }
    }

    /// The SKU as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_uppercases() {
        assert_eq!(Sku::parse("tee-blk-m").map(|s| s.to_string()), Ok("TEE-BLK-M".into()));
        assert_eq!(Sku::parse(""), Err(SkuError));
        assert_eq!(Sku::parse("a b"), Err(SkuError));
        assert_eq!(Sku::parse(&"A".repeat(65)), Err(SkuError));
    }
}
