//! Argon2id password hashes in PHC string form.
//!
//! Parameters default to OWASP's minimum for Argon2id (m = 19 MiB, t = 2,
//! p = 1) and can only be raised. A hash made with other parameters still
//! verifies, and the caller is told to rehash it while it holds the
//! plaintext, so raising the parameters upgrades every account on its next
//! sign-in.

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};

/// Why hashing or verifying failed (never "wrong password": that is
/// `Verification::Mismatch`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("Argon2 parameters below the OWASP minimum (m >= 19456 KiB, t >= 2, p >= 1)")]
    WeakParameters,
    #[error("the stored password hash is malformed")]
    MalformedHash,
    #[error("the system random number generator failed")]
    Random,
    #[error("password hashing failed")]
    Hashing,
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Right password, hash up to date.
    Match,
    /// Right password; store a fresh hash with the current parameters.
    MatchNeedsRehash,
    /// Wrong password.
    Mismatch,
}

/// Hashes and verifies passwords with fixed Argon2id parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
}

impl PasswordHasher {
    /// OWASP's minimum: 19 MiB, two passes, one lane.
    pub fn owasp() -> Self {
        PasswordHasher { params: Params::DEFAULT }
    }

    /// Stronger parameters; refuses anything below OWASP's minimum.
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self, PasswordError> {
        if m_cost_kib < Params::DEFAULT_M_COST || t_cost < Params::DEFAULT_T_COST || p_cost < 1 {
            return Err(PasswordError::WeakParameters);
        }
        let params = Params::new(m_cost_kib, t_cost, p_cost, None).map_err(|_| PasswordError::WeakParameters)?;
        Ok(PasswordHasher { params })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// `m=…,t=…,p=…` as it appears in PHC strings made with these parameters.
    fn params_text(&self) -> String {
        format!("m={},t={},p={}", self.params.m_cost(), self.params.t_cost(), self.params.p_cost())
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) with a fresh salt.
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|_| PasswordError::Random)?;
        let hash =
            self.argon2().hash_password_with_salt(password.as_bytes(), &salt).map_err(|_| PasswordError::Hashing)?;
        Ok(hash.to_string())
    }

    /// Checks a password against a stored PHC string (whatever its
    /// parameters), in the constant time Argon2 verification takes.
    pub fn verify(&self, password: &str, stored: &str) -> Result<Verification, PasswordError> {
        let fields: Vec<&str> = stored.split('$').collect();
        // ["", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash]
        let [_, alg, version, params, _, _] = fields.as_slice() else { return Err(PasswordError::MalformedHash) };
        match self.argon2().verify_password(password.as_bytes(), stored) {
            Ok(()) => {
                let current = *alg == "argon2id" && *version == "v=19" && *params == self.params_text();
                Ok(if current { Verification::Match } else { Verification::MatchNeedsRehash })
            }
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(Verification::Mismatch),
            Err(_) => Err(PasswordError::MalformedHash),
        }
    }

    /// Does the work of a verification for an account that does not exist,
    /// so "unknown email" and "wrong password" take the same time.
    pub fn verify_nothing(&self, password: &str) {
        let mut out = [0u8; 32];
        let _ = self.argon2().hash_password_into(password.as_bytes(), b"storefort-no-account-salt", &mut out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let h = PasswordHasher::owasp();
        let a = h.hash("correct horse battery staple").expect("hash");
        let b = h.hash("correct horse battery staple").expect("hash");
        assert_ne!(a, b, "fresh salt each time");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_eq!(h.verify("correct horse battery staple", &a), Ok(Verification::Match));
        assert_eq!(h.verify("correct horse battery stapler", &a), Ok(Verification::Mismatch));
        assert_eq!(h.verify("x", "not a hash"), Err(PasswordError::MalformedHash));
    }

    #[test]
    fn raised_parameters_ask_for_a_rehash_and_weak_ones_are_refused() {
        let old = PasswordHasher::owasp().hash("s3cret-passphrase").expect("hash");
        let stronger = PasswordHasher::new(32 * 1024, 3, 1).expect("params");
        assert_eq!(stronger.verify("s3cret-passphrase", &old), Ok(Verification::MatchNeedsRehash));
        let new = stronger.hash("s3cret-passphrase").expect("hash");
        assert_eq!(stronger.verify("s3cret-passphrase", &new), Ok(Verification::Match));
        assert!(matches!(PasswordHasher::new(4096, 2, 1), Err(PasswordError::WeakParameters)));
        assert!(matches!(PasswordHasher::new(19456, 1, 1), Err(PasswordError::WeakParameters)));
    }
}
