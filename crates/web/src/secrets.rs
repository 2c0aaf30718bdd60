//! Random tokens and the server key.
//!
//! Tokens are 256 bits from the OS RNG, base64url encoded. Secrets that must
//! be checked later are stored hashed (SHA-256 suffices for 256-bit random
//! tokens) or not at all: order access tokens are an HMAC of the order id
//! under the server key, so the database holds nothing that grants access.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// 32 random bytes as base64url (43 characters).
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut())?;
    Ok(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

/// True when `s` has the shape of a [`random_token`]. Checked before any
/// lookup so junk never reaches the database.
pub fn is_token_shaped(s: &str) -> bool {
    s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Compares two secrets in constant time.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Marks the sealing format, so a later one can be told apart.
const SEAL_VERSION: &str = "v1.";

/// A sealed value did not open: wrong key, wrong binding, or corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a sealed secret could not be opened (wrong key, wrong record, or corrupt)")]
pub struct SealError;

/// The store's 256-bit server key, from which purpose-bound subkeys are
/// derived with HMAC. Zeroed on drop; never printed.
#[derive(Clone)]
pub struct ServerKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(<redacted>)")
    }
}

impl ServerKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut())?;
        Ok(ServerKey(key))
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ServerKey(Zeroizing::new(bytes))
    }

    fn mac(&self, purpose: &str, message: &str) -> [u8; 32] {
        // Key length is always valid for HMAC; new_from_slice cannot fail here.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_ref()).unwrap_or_else(|_| unreachable!());
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(message.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A 256-bit key for one purpose, derived from the server key, so one
    /// secret file serves several uses without reusing a key across them.
    pub fn subkey(&self, purpose: &str) -> [u8; 32] {
        self.mac(purpose, "subkey")
    }

    /// The bearer token that lets a guest read one order.
    pub fn order_access_token(&self, order_id: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac("storefort/order-access/v1", order_id))
    }

    /// The keyed blind index of a normalized email address: how accounts are
    /// found by email without a plaintext column to search.
    pub fn email_index(&self, normalized_email: &str) -> String {
        hex::encode(self.mac("storefort/email-index/v1", normalized_email))
    }

    /// A keyed hash of a client IP address, for throttle counters: the
    /// table never holds the address itself.
    pub fn ip_index(&self, ip: &str) -> String {
        hex::encode(&self.mac("storefort/ip-index/v1", ip)[..16])
    }

    /// A keyed hash of a device cookie, for the risk windows.
    pub fn device_index(&self, device: &str) -> String {
        hex::encode(&self.mac("storefort/device-index/v1", device)[..16])
    }

    /// The CSRF token of a session: bound to its secret, so it needs no
    /// storage and dies with the session.
    pub fn csrf_token(&self, session_token: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac("storefort/csrf/v1", session_token))
    }

    /// Encrypts a small secret for storage (AES-256-GCM under a subkey for
    /// `purpose`, a random nonce, `bound_to` as associated data), so a copy
    /// of the database alone does not hold it, and a sealed value moved to
    /// another row (another `bound_to`) does not open.
    pub fn seal(&self, purpose: &str, bound_to: &str, plaintext: &[u8]) -> Result<String, SealError> {
        use aes_gcm::aead::{Aead, Payload};
        let cipher = self.cipher(purpose)?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|_| SealError)?;
        let sealed = cipher
            .encrypt(&nonce.into(), Payload { msg: plaintext, aad: bound_to.as_bytes() })
            .map_err(|_| SealError)?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(format!("{SEAL_VERSION}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// Opens what [`ServerKey::seal`] made for the same purpose and binding.
    pub fn open(&self, purpose: &str, bound_to: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        use aes_gcm::aead::{Aead, Payload};
        let raw = sealed.strip_prefix(SEAL_VERSION).ok_or(SealError)?;
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| SealError)?;
        if bytes.len() < 12 + 16 {
            return Err(SealError);
        }
        let (nonce, body) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| SealError)?;
        let plain = self
            .cipher(purpose)?
            .decrypt(&nonce.into(), Payload { msg: body, aad: bound_to.as_bytes() })
            .map_err(|_| SealError)?;
        Ok(Zeroizing::new(plain))
    }

    fn cipher(&self, purpose: &str) -> Result<aes_gcm::Aes256Gcm, SealError> {
        use aes_gcm::KeyInit;
        let key = Zeroizing::new(self.subkey(purpose));
        aes_gcm::Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| SealError)
    }

    /// Checks a presented order token in constant time.
    pub fn verify_order_access_token(&self, order_id: &str, presented: &str) -> bool {
        secrets_equal(&self.order_access_token(order_id), presented)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_well_shaped() {
        let a = random_token().expect("rng");
        let b = random_token().expect("rng");
        assert_ne!(a, b);
        assert!(is_token_shaped(&a));
        assert!(!is_token_shaped("short"));
        assert!(!is_token_shaped(&format!("{}!", &a[..42])));
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_purpose_and_record() {
        let k = ServerKey::from_bytes([7; 32]);
        let sealed = k.seal("p", "account-1", b"secret").expect("seal");
        assert_eq!(k.open("p", "account-1", &sealed).expect("open").as_slice(), b"secret");
        assert_ne!(sealed, k.seal("p", "account-1", b"secret").expect("seal"), "fresh nonce");
        assert_eq!(k.open("p", "account-2", &sealed), Err(SealError));
        assert_eq!(k.open("q", "account-1", &sealed), Err(SealError));
        assert_eq!(ServerKey::from_bytes([8; 32]).open("p", "account-1", &sealed), Err(SealError));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(k.open("p", "account-1", &tampered), Err(SealError));
        assert_eq!(k.open("p", "account-1", "junk"), Err(SealError));
    }

    #[test]
    fn order_tokens_bind_order_and_key() {
        let k = ServerKey::from_bytes([7; 32]);
        let t = k.order_access_token("order-1");
        assert!(k.verify_order_access_token("order-1", &t));
        assert!(!k.verify_order_access_token("order-2", &t));
        assert!(!ServerKey::from_bytes([8; 32]).verify_order_access_token("order-1", &t));
        assert_eq!(format!("{k:?}"), "ServerKey(<redacted>)");
    }
}
