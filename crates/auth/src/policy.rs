//! Password rules after NIST SP 800-63B: length, not composition.
//!
//! At least 12 characters for staff and 8 for customers, at most 128 (64 or
//! more must be allowed), and anything zxcvbn rates as guessable (score
//! below 3, which covers common, breached-list and keyboard-pattern
//! passwords, and ones built from the user's own email or the store's name)
//! is refused. No rules about digits or symbols.

use zxcvbn::{Score, zxcvbn};

/// Who a password is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Customer,
    Staff,
}

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("must be at least {min} characters")]
    TooShort { min: usize },
    #[error("must be at most 128 characters")]
    TooLong,
    #[error("is too easy to guess (a common or breached password, a pattern, or built from your details)")]
    Guessable,
}

/// Checks a new password. `context` holds words an attacker would try first:
/// the email, the name, the store's name.
pub fn check(password: &str, role: Role, context: &[&str]) -> Result<(), PolicyError> {
    let min = match role {
        Role::Customer => 8,
        Role::Staff => 12,
    };
    let length = password.chars().count();
    if length < min {
        return Err(PolicyError::TooShort { min });
    }
    if length > 128 {
        return Err(PolicyError::TooLong);
    }
    // zxcvbn's cost grows with length; 128 characters is bounded.
    if zxcvbn(password, context).score() < Score::Three {
        return Err(PolicyError::Guessable);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_rules_by_role() {
        assert_eq!(check("short", Role::Customer, &[]), Err(PolicyError::TooShort { min: 8 }));
        assert_eq!(check("tulip-orbit-kettle", Role::Staff, &[]), Ok(()));
        assert_eq!(check("tulip-orb", Role::Staff, &[]), Err(PolicyError::TooShort { min: 12 }));
        assert_eq!(check(&"Zq9!".repeat(33), Role::Customer, &[]), Err(PolicyError::TooLong));
        // 64 characters must be allowed.
        assert_eq!(check(&"velvet-harbor-quartz-lantern-".repeat(3)[..64], Role::Staff, &[]), Ok(()));
    }

    #[test]
    fn common_and_personal_passwords_are_refused_without_composition_rules() {
        for weak in ["password1", "12345678", "qwertyuiop", "iloveyou", "Password123!"] {
            assert_eq!(check(weak, Role::Customer, &[]), Err(PolicyError::Guessable), "{weak}");
        }
        assert_eq!(
            check("adalovelace1815", Role::Customer, &["ada.lovelace@example.com", "adalovelace"]),
            Err(PolicyError::Guessable)
        );
        // A long lowercase passphrase needs no digits or symbols.
        assert_eq!(check("purple monkey dishwasher orbit", Role::Staff, &[]), Ok(()));
    }
}
