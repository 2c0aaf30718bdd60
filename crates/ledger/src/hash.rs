//! The two hashes of RFC 9162 §2.1.1, with domain separation so a leaf can
//! never be passed off as an interior node.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// A SHA-256 output.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Plain SHA-256, for content commitments.
pub fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// Hex HMAC-SHA256 of `data` under `key`: the per-entry authenticator.
pub fn mac_hex(key: &[u8; 32], data: &[u8]) -> String {
    EntryMac::new(key).hex(data)
}

/// The per-entry authenticator with its key schedule done once, for
/// checking many entries.
#[derive(Clone)]
pub struct EntryMac(hmac::Hmac<Sha256>);

impl EntryMac {
    pub fn new(key: &[u8; 32]) -> Self {
        use hmac::KeyInit;
        // A 32-byte key is always a valid HMAC key.
        EntryMac(<hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!()))
    }

    /// Hex HMAC of `data`.
    pub fn hex(&self, data: &[u8]) -> String {
        hex::encode(self.bytes(data))
    }

    /// HMAC of `data`.
    pub fn bytes(&self, data: &[u8]) -> Hash {
        use hmac::Mac;
        let mut mac = self.0.clone();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

/// Standard base64, as used in checkpoints and receipts.
pub fn to_b64(h: &Hash) -> String {
    STANDARD.encode(h)
}

/// Parses a base64 hash.
pub fn from_b64(s: &str) -> Option<Hash> {
    STANDARD.decode(s).ok()?.try_into().ok()
}

/// Parses a hex hash.
pub fn from_hex(s: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}
