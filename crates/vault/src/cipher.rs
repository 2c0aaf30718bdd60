//! XChaCha20-Poly1305 envelope encryption. Random 192-bit nonces (safe to
//! draw at random for any realistic number of messages), and associated
//! data that binds each ciphertext to its subject and field, so a value
//! copied into another row or column fails to decrypt instead of showing
//! the wrong person's data.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Version prefix of field ciphertexts.
const FIELD_V1: &str = "f1.";
/// Version prefix of wrapped data keys.
const WRAP_V1: &str = "w1.";

/// Why something did not decrypt or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// Wrong key, wrong subject or field, or altered bytes.
    #[error("{what} does not decrypt (wrong key, wrong record, or corrupt)")]
    Undecryptable { what: &'static str },
    #[error("the system random number generator failed")]
    Random,
    #[error("the master key is invalid: {0}")]
    BadMasterKey(String),
}

fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
    let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| VaultError::Random)?;
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(|_| VaultError::Random)?;
    let body = cipher
        .encrypt(&nonce.into(), Payload { msg: plaintext, aad })
        .map_err(|_| VaultError::Undecryptable { what: "plaintext" })?;
    let mut out = nonce.to_vec();
    out.extend(body);
    Ok(out)
}

fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8], what: &'static str) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if sealed.len() < 24 + 16 {
        return Err(VaultError::Undecryptable { what });
    }
    let (nonce, body) = sealed.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().map_err(|_| VaultError::Undecryptable { what })?;
    let cipher = XChaCha20Poly1305::new_from_slice(key).map_err(|_| VaultError::Undecryptable { what })?;
    cipher
        .decrypt(&nonce.into(), Payload { msg: body, aad })
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Undecryptable { what })
}

fn field_aad(subject: &str, field: &str) -> Vec<u8> {
    format!("storefort/field/v1\0{subject}\0{field}").into_bytes()
}

/// A subject's 256-bit data key. Zeroed on drop (every copy); never printed.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, VaultError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|_| VaultError::Random)?;
        Ok(DataKey(key))
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(DataKey(Zeroizing::new(array)))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Encrypts one field of `subject`'s data.
    pub fn encrypt(&self, subject: &str, field: &str, plaintext: &str) -> Result<String, VaultError> {
        let sealed = seal(&self.0, &field_aad(subject, field), plaintext.as_bytes())?;
        Ok(format!("{FIELD_V1}{}", B64.encode(sealed)))
    }

    /// Decrypts one field; fails (never returns garbage) for the wrong
    /// key, subject or field, or altered bytes.
    pub fn decrypt(&self, subject: &str, field: &str, ciphertext: &str) -> Result<Zeroizing<String>, VaultError> {
        let what = "field";
        let raw = ciphertext.strip_prefix(FIELD_V1).ok_or(VaultError::Undecryptable { what })?;
        let sealed = B64.decode(raw).map_err(|_| VaultError::Undecryptable { what })?;
        let plain = open(&self.0, &field_aad(subject, field), &sealed, what)?;
        String::from_utf8(plain.to_vec()).map(Zeroizing::new).map_err(|_| VaultError::Undecryptable { what })
    }

    /// A keyed commitment (HMAC-SHA256) to `message` under this key: proves
    /// later what the data was, and means nothing once the key is gone.
    pub fn commit(&self, message: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(message);
        hex::encode(mac.finalize().into_bytes())
    }
}

/// A data key wrapped (encrypted) by a master key, with that key's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Which master key wrapped it.
    pub key_id: String,
    /// The wrapped bytes, as text for storage.
    pub blob: String,
}

pub(crate) fn wrap(master: &[u8; 32], key_id: &str, subject: &str, key: &DataKey) -> Result<WrappedKey, VaultError> {
    let aad = format!("storefort/data-key/v1\0{subject}\0{key_id}");
    let sealed = seal(master, aad.as_bytes(), key.bytes())?;
    Ok(WrappedKey { key_id: key_id.to_owned(), blob: format!("{WRAP_V1}{}", B64.encode(sealed)) })
}

pub(crate) fn unwrap(master: &[u8; 32], subject: &str, wrapped: &WrappedKey) -> Result<DataKey, VaultError> {
    let what = "data key";
    let aad = format!("storefort/data-key/v1\0{subject}\0{}", wrapped.key_id);
    let raw = wrapped.blob.strip_prefix(WRAP_V1).ok_or(VaultError::Undecryptable { what })?;
    let sealed = B64.decode(raw).map_err(|_| VaultError::Undecryptable { what })?;
    let plain = open(master, aad.as_bytes(), &sealed, what)?;
    DataKey::from_bytes(&plain).ok_or(VaultError::Undecryptable { what })
}

/// Keyed blind index (HMAC-SHA256 under its own key): equal inputs give
/// equal indexes, so lookups work, but the index reveals nothing without
/// the key, and the key is not the one that encrypts.
pub struct BlindIndex(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndex(<redacted>)")
    }
}

impl BlindIndex {
    pub fn new(key: [u8; 32]) -> Self {
        BlindIndex(Zeroizing::new(key))
    }

    /// The index of `value` in `field` (domain-separated per field).
    pub fn index(&self, field: &str, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(field.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fields_decrypt_only_for_their_subject_field_and_key() {
        let key = DataKey::generate().expect("key");
        let c = key.encrypt("cust-1", "email", "ada@example.com").expect("encrypt");
        assert!(c.starts_with("f1.") && !c.contains("ada"));
        assert_eq!(key.decrypt("cust-1", "email", &c).expect("decrypt").as_str(), "ada@example.com");
        let wrong = Err(VaultError::Undecryptable { what: "field" });
        assert_eq!(key.decrypt("cust-2", "email", &c).map(|s| s.to_string()), wrong);
        assert_eq!(key.decrypt("cust-1", "name", &c).map(|s| s.to_string()), wrong);
        let other = DataKey::generate().expect("key");
        assert_eq!(other.decrypt("cust-1", "email", &c).map(|s| s.to_string()), wrong);
        assert_ne!(c, key.encrypt("cust-1", "email", "ada@example.com").expect("encrypt"), "fresh nonce");
        assert_eq!(format!("{key:?}"), "DataKey(<redacted>)");
    }

    #[test]
    fn wrapped_keys_unwrap_only_under_their_master_and_subject() {
        let (m1, m2) = ([1u8; 32], [2u8; 32]);
        let key = DataKey::generate().expect("key");
        let w = wrap(&m1, "k1", "cust-1", &key).expect("wrap");
        assert_eq!(unwrap(&m1, "cust-1", &w).expect("unwrap").bytes(), key.bytes());
        assert!(unwrap(&m2, "cust-1", &w).is_err());
        assert!(unwrap(&m1, "cust-2", &w).is_err(), "a key moved to another subject does not open");
        let relabelled = WrappedKey { key_id: "k2".into(), ..w.clone() };
        assert!(unwrap(&m1, "cust-1", &relabelled).is_err());
    }

    #[test]
    fn blind_indexes_are_stable_keyed_and_per_field() {
        let a = BlindIndex::new([5; 32]);
        assert_eq!(a.index("email", "x@y.z"), a.index("email", "x@y.z"));
        assert_ne!(a.index("email", "x@y.z"), a.index("phone", "x@y.z"));
        assert_ne!(a.index("email", "x@y.z"), BlindIndex::new([6; 32]).index("email", "x@y.z"));
    }

    proptest! {
        #[test]
        fn any_text_round_trips_and_any_bit_flip_is_caught(text in ".{0,200}", flip in 0usize..400) {
            let key = DataKey::generate().expect("key");
            let c = key.encrypt("s", "f", &text).expect("encrypt");
            let back = key.decrypt("s", "f", &c).expect("decrypt");
            prop_assert_eq!(back.as_str(), text.as_str());
            let mut raw = B64.decode(&c[3..]).expect("b64");
            let i = flip % raw.len();
            raw[i] ^= 1;
            let altered = format!("f1.{}", B64.encode(raw));
            prop_assert!(key.decrypt("s", "f", &altered).is_err());
        }
    }
}
