//! RFC 6238 one-time codes (SHA-1, 30-second steps, 6 digits), with one step
//! of clock skew and each code accepted at most once.
//!
//! The code arithmetic is totp-rs's; what this module adds is the policy: a
//! fresh 160-bit secret per enrollment, the `otpauth://` URI for
//! authenticator apps, and replay refusal by remembering the last accepted
//! step.

use totp_rs::{Algorithm, Builder, Secret, Totp};
use zeroize::Zeroizing;

/// Why a code or secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("the code is not valid now")]
    Invalid,
    #[error("this code was already used")]
    Replayed,
    #[error("the one-time-code secret is unusable")]
    BadSecret,
    #[error("the system random number generator failed")]
    Random,
}

/// A TOTP shared secret. Zeroed on drop; never printed.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// Seconds per step, as RFC 6238 recommends and authenticator apps assume.
pub const STEP_SECONDS: u64 = 30;

impl TotpSecret {
    /// 160 random bits (the RFC 4226 recommendation).
    pub fn generate() -> Result<Self, TotpError> {
        let mut bytes = Zeroizing::new(vec![0u8; 20]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|_| TotpError::Random)?;
        Ok(TotpSecret(bytes))
    }

    /// A secret from stored bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        TotpSecret(Zeroizing::new(bytes))
    }

    /// The raw bytes, to store (encrypted) by the caller.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn totp(&self, digits: u8, issuer: Option<&str>, account: &str) -> Result<Totp, TotpError> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(digits)
            .with_skew(1)
            .with_step_duration(STEP_SECONDS)
            .with_secret(Secret::from(self.0.to_vec()))
            .with_issuer(issuer)
            .with_account_name(account)
            .build()
            .map_err(|_| TotpError::BadSecret)
    }

    /// The `otpauth://totp/…` URI an authenticator app scans.
    pub fn provisioning_uri(&self, issuer: &str, account: &str) -> Result<String, TotpError> {
        self.totp(6, Some(issuer), account)?.to_url().map_err(|_| TotpError::BadSecret)
    }

    /// The provisioning URI as an inline SVG QR code: no image crate, and no
    /// `data:` URL for the page's Content-Security-Policy to allow.
    pub fn qr_svg(&self, issuer: &str, account: &str) -> Result<String, TotpError> {
        let uri = self.provisioning_uri(issuer, account)?;
        let code = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
            .map_err(|_| TotpError::BadSecret)?;
        Ok(code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build())
    }

    /// The code for a moment (unix seconds); for tests and enrollment checks.
    pub fn code_at(&self, unix_seconds: u64) -> Result<String, TotpError> {
        Ok(self.totp(6, None, "")?.generate(unix_seconds).to_string())
    }

    /// Checks `code` at `unix_seconds`, allowing one step either side. A
    /// code at or before `last_used_step` is a replay. Returns the step to
    /// remember as the new last used one.
    pub fn check(&self, code: &str, unix_seconds: u64, last_used_step: Option<u64>) -> Result<u64, TotpError> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TotpError::Invalid);
        }
        let step = self.totp(6, None, "")?.check(code, unix_seconds).ok_or(TotpError::Invalid)?;
        if last_used_step.is_some_and(|last| step <= last) {
            return Err(TotpError::Replayed);
        }
        Ok(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (8 digits, seed "12345678901234567890").
    #[test]
    fn rfc_6238_sha1_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        let totp = secret.totp(8, None, "").expect("totp");
        for (time, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(totp.generate(time).to_string(), code, "T = {time}");
        }
        // The six-digit code is the low six digits of the same value.
        assert_eq!(secret.code_at(59).expect("code"), "287082");
    }

    #[test]
    fn one_step_of_skew_and_no_replay() {
        let secret = TotpSecret::generate().expect("rng");
        let now = 1_800_000_015;
        let code = secret.code_at(now).expect("code");
        let step = secret.check(&code, now, None).expect("valid");
        assert_eq!(step, now / STEP_SECONDS);
        assert_eq!(secret.check(&code, now, Some(step)), Err(TotpError::Replayed));
        // A code from the previous step still works (clock skew)...
        let previous = secret.code_at(now - STEP_SECONDS).expect("code");
        assert!(secret.check(&previous, now, None).is_ok());
        // ...but not one from two steps ago, nor garbage.
        let old = secret.code_at(now - 3 * STEP_SECONDS).expect("code");
        assert_eq!(secret.check(&old, now, None), Err(TotpError::Invalid));
        for junk in ["", "12345", "1234567", "abcdef", "12 456"] {
            assert_eq!(secret.check(junk, now, None), Err(TotpError::Invalid), "{junk:?}");
        }
    }

    #[test]
    fn provisioning_uri_names_the_store_and_account() {
        let secret = TotpSecret::generate().expect("rng");
        let uri = secret.provisioning_uri("Storefort Demo", "owner@example.com").expect("uri");
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains("secret=") && uri.contains("issuer=Storefort"), "{uri}");
        assert_eq!(format!("{secret:?}"), "TotpSecret(<redacted>)");
        let svg = secret.qr_svg("Storefort Demo", "owner@example.com").expect("svg");
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg") && svg.contains("<path"),
            "{}",
            &svg[..80.min(svg.len())]
        );
        assert!(!svg.contains("script"));
    }
}
