//! Consent purposes and the texts people agree to.
//!
//! Every purpose but `necessary` needs an explicit, recorded grant before
//! the store acts on it; the default answer is no. A text's version is
//! derived from the text itself (by the caller), so changing the wording
//! can never silently carry old grants over to a new text.

use serde::{Deserialize, Serialize};

/// What personal data may be used for, beyond running the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Needed to sell at all (orders, sign-in, fraud checks): no choice.
    Necessary,
    /// Aggregated page statistics.
    Analytics,
    /// Newsletters and offers by email.
    MarketingEmail,
    /// Recommendations based on what you looked at and bought.
    Personalization,
}

impl Purpose {
    pub const ALL: [Purpose; 4] =
        [Purpose::Necessary, Purpose::Analytics, Purpose::MarketingEmail, Purpose::Personalization];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Necessary => "necessary",
            Purpose::Analytics => "analytics",
            Purpose::MarketingEmail => "marketing_email",
            Purpose::Personalization => "personalization",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether a person can say no (everything but `necessary`).
    pub fn optional(self) -> bool {
        self != Purpose::Necessary
    }

    /// The default text shown with the choice.
    pub fn default_text(self) -> &'static str {
        match self {
            Purpose::Necessary => {
                "We use your details to take, deliver and account for your orders, to keep your account \
                 secure and to prevent fraud. This is needed to sell to you and cannot be switched off."
            }
            Purpose::Analytics => {
                "We count which pages are visited, without linking the counts to you, to improve the shop."
            }
            Purpose::MarketingEmail => "We send you our newsletter and offers by email. You can withdraw at any time.",
            Purpose::Personalization => "We suggest products based on what you viewed and bought here.",
        }
    }
}

/// Where a choice was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    CookieBanner,
    AccountSettings,
    Checkout,
    Api,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::CookieBanner => "cookie_banner",
            Source::AccountSettings => "account_settings",
            Source::Checkout => "checkout",
            Source::Api => "api",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_round_trip_and_only_necessary_is_compulsory() {
        for p in Purpose::ALL {
            assert_eq!(Purpose::parse(p.as_str()), Some(p));
            assert!(!p.default_text().is_empty());
        }
        assert!(!Purpose::Necessary.optional());
        assert!(Purpose::MarketingEmail.optional());
    }
}
