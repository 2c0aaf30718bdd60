//! Webhook signatures in Stripe's scheme.
//!
//! The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`, where each `v1` is
//! HMAC-SHA256 under an endpoint secret of `"<t>.<raw body>"`. A gateway
//! rotating its secret sends one `v1` per live secret, and a store may hold
//! more than one secret while it rotates, so any pair that matches is
//! enough. Signatures are compared in constant time (`Mac::verify_slice`),
//! and a timestamp outside the tolerance is refused so a captured request
//! cannot be replayed later. The same scheme signs the store's own outgoing
//! webhooks, so one receiver library checks both.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Stripe's default tolerance: five minutes either way.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// The most signatures one header may carry; more is refused rather than
/// tried, so a header cannot make the store compute thousands of MACs.
const MAX_SIGNATURES: usize = 8;

/// Why a signed request was refused. The messages name the fault, never a
/// secret or an expected signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing")]
    Missing,
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature header has no v1 signature")]
    NoSignature,
    #[error("the signature timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

impl SignatureError {
    /// A stable machine code for API errors and events.
    pub fn code(self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Malformed => "signature_malformed",
            SignatureError::NoSignature => "signature_missing",
            SignatureError::Stale => "signature_stale",
            SignatureError::Mismatch => "signature_mismatch",
        }
    }
}

/// A parsed signature header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    /// Decoded `v1` signatures (32 bytes each); others are ignored, as Stripe
    /// says `v0` is for test mode and must not be trusted.
    pub v1: Vec<[u8; 32]>,
}

impl SignatureHeader {
    /// Parses `t=…,v1=…`. Unknown schemes are skipped; a `v1` that is not 64
    /// hex digits makes the header malformed.
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        let mut timestamp = None;
        let mut v1 = Vec::new();
        for part in header.split(',') {
            let (key, value) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
            match key {
                "t" => {
                    if timestamp.is_some() || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(SignatureError::Malformed);
                    }
                    timestamp = Some(value.parse::<i64>().map_err(|_| SignatureError::Malformed)?);
                }
                "v1" => {
                    if v1.len() == MAX_SIGNATURES {
                        return Err(SignatureError::Malformed);
                    }
                    let mut sig = [0u8; 32];
                    hex::decode_to_slice(value, &mut sig).map_err(|_| SignatureError::Malformed)?;
                    v1.push(sig);
                }
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
        if v1.is_empty() {
            return Err(SignatureError::NoSignature);
        }
        Ok(SignatureHeader { timestamp, v1 })
    }
}

fn mac(secret: &[u8], timestamp: i64, payload: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// Checks a signed payload against the header and any of `secrets`, at
/// `now` (unix seconds). Returns the signed timestamp.
pub fn verify(
    payload: &[u8],
    header: Option<&str>,
    secrets: &[&[u8]],
    now: i64,
    tolerance_secs: i64,
) -> Result<i64, SignatureError> {
    let header = SignatureHeader::parse(header.ok_or(SignatureError::Missing)?)?;
    // Checked before the MAC so a stale replay costs nothing, and both ways:
    // a timestamp from the future is as suspicious as an old one.
    if now.abs_diff(header.timestamp) > tolerance_secs.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    // Every pair is tried (no early exit on the first match) so the time
    // taken does not say which secret or position matched.
    let mut matched = false;
    for secret in secrets {
        for sig in &header.v1 {
            matched |= mac(secret, header.timestamp, payload).verify_slice(sig).is_ok();
        }
    }
    if matched { Ok(header.timestamp) } else { Err(SignatureError::Mismatch) }
}

/// The header value that signs `payload` at `timestamp` with `secret`.
pub fn sign(payload: &[u8], secret: &[u8], timestamp: i64) -> String {
    let sig = mac(secret, timestamp, payload).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed outside this code with Python's hmac module:
    // hmac.new(secret, f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    const SECRET: &[u8] = b"whsec_test_secret";
    const PAYLOAD: &[u8] = br#"{"id":"evt_test","object":"event"}"#;
    const T: i64 = 1_492_774_577;
    const EXPECTED: &str = "691252e266ce41cb94d709c84e9580d4172b117a510bbc81723f657d2cd5d215";

    #[test]
    fn signing_matches_the_documented_scheme() {
        assert_eq!(sign(PAYLOAD, SECRET, T), format!("t={T},v1={EXPECTED}"));
        assert_eq!(
            sign(b"{}", b"whsec_rotated", 1_700_000_000),
            "t=1700000000,v1=48610aa59d323d6617b7c65b24b57096a38600510d69a1a2e9a400789dcef847"
        );
    }

    #[test]
    fn a_valid_signature_verifies_within_the_tolerance_either_way() {
        let header = format!("t={T},v1={EXPECTED}");
        for now in [T, T + 300, T - 300] {
            assert_eq!(verify(PAYLOAD, Some(&header), &[SECRET], now, 300), Ok(T));
        }
        assert_eq!(verify(PAYLOAD, Some(&header), &[SECRET], T + 301, 300), Err(SignatureError::Stale));
        assert_eq!(verify(PAYLOAD, Some(&header), &[SECRET], T - 301, 300), Err(SignatureError::Stale));
    }

    #[test]
    fn any_of_several_signatures_and_secrets_is_enough() {
        let other = "0".repeat(64);
        let header = format!("t={T},v0={other},v1={other},v1={EXPECTED}");
        assert_eq!(verify(PAYLOAD, Some(&header), &[b"whsec_old", SECRET], T, 300), Ok(T));
        // A v0 signature is never trusted, even when it would match.
        let v0_only = format!("t={T},v0={EXPECTED}");
        assert_eq!(verify(PAYLOAD, Some(&v0_only), &[SECRET], T, 300), Err(SignatureError::NoSignature));
    }

    #[test]
    fn forgeries_are_refused() {
        let header = format!("t={T},v1={EXPECTED}");
        // Another body, another secret, another timestamp.
        assert_eq!(verify(b"{}", Some(&header), &[SECRET], T, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify(PAYLOAD, Some(&header), &[b"whsec_wrong"], T, 300), Err(SignatureError::Mismatch));
        let moved = format!("t={},v1={EXPECTED}", T + 1);
        assert_eq!(verify(PAYLOAD, Some(&moved), &[SECRET], T, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify(PAYLOAD, None, &[SECRET], T, 300), Err(SignatureError::Missing));
        assert_eq!(verify(PAYLOAD, Some(&header), &[], T, 300), Err(SignatureError::Mismatch));
    }

    #[test]
    fn malformed_headers_are_named() {
        for bad in ["", "t=", "v1=abc", "t=12,v1=zz", "t=-5,v1=00", "t=1,t=2,v1=00", "nonsense", "t=1"] {
            let got = SignatureHeader::parse(bad);
            assert!(
                matches!(got, Err(SignatureError::Malformed | SignatureError::NoSignature)),
                "{bad:?} gave {got:?}"
            );
        }
        let many = format!("t=1{}", format!(",v1={}", "0".repeat(64)).repeat(MAX_SIGNATURES + 1));
        assert_eq!(SignatureHeader::parse(&many), Err(SignatureError::Malformed));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(header in ".{0,200}") {
            let _ = SignatureHeader::parse(&header);
        }

        #[test]
        fn what_is_signed_verifies_and_a_flipped_byte_does_not(
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            secret in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64),
            t in 0i64..4_000_000_000,
            flip in 0usize..256,
        ) {
            let header = sign(&payload, &secret, t);
            proptest::prop_assert_eq!(verify(&payload, Some(&header), &[&secret], t, 300), Ok(t));
            if !payload.is_empty() {
                let mut changed = payload.clone();
                changed[flip % payload.len()] ^= 1;
                proptest::prop_assert_eq!(verify(&changed, Some(&header), &[&secret], t, 300), Err(SignatureError::Mismatch));
            }
        }
    }
}
