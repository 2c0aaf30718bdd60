//! Receipts: proof, checkable by anyone offline, that an order is in the
//! store's ledger exactly as the customer holds it.
//!
//! A receipt carries the order snapshot, the ledger entry that records it,
//! an inclusion proof of that entry and a signed checkpoint. Verification
//! needs only the store's public key: it recomputes the snapshot hash the
//! entry commits to, walks the proof up to the signed root, and checks the
//! signature. Personal data (email, address) sits beside the snapshot with
//! the key of its commitment, so the customer can check it too, while the
//! ledger itself holds only the commitment.

use crate::checkpoint::VerifierKey;
use crate::entry::{Entry, canonical_json};
use crate::hash::{from_b64, leaf_hash, sha256};
use crate::tree::verify_inclusion;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

/// The receipt format written today.
pub const FORMAT: &str = "storefort-receipt/v1";

/// Personal data with the key of its keyed commitment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalPart {
    pub data: Value,
    /// Hex HMAC-SHA256 key; destroyed in the store on erasure.
    pub key: String,
}

/// A verifiable receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub format: String,
    /// The order snapshot (amounts, lines, ids; no personal data).
    pub order: Value,
    pub personal: Option<PersonalPart>,
    /// The canonical ledger entry, byte for byte.
    pub entry: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Base64 hashes, leaf to root.
    pub inclusion_proof: Vec<String>,
    /// The signed checkpoint (C2SP signed note).
    pub checkpoint: String,
}

/// What a valid receipt proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub origin: String,
    pub kind: String,
    pub leaf_index: u64,
    pub tree_size: u64,
}

/// Why a receipt does not verify; each names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("not a {FORMAT} receipt")]
    Format,
    #[error("the ledger entry is malformed: {0}")]
    Entry(String),
    #[error("the order does not match its ledger entry: the snapshot hash differs (was the order edited?)")]
    SnapshotMismatch,
    #[error("the personal data does not match the commitment in the ledger entry")]
    PersonalMismatch,
    #[error("the entry is at index {entry} but the receipt says {receipt}")]
    IndexMismatch { entry: u64, receipt: u64 },
    #[error("the checkpoint is not validly signed by the given key: {0}")]
    Checkpoint(String),
    #[error("the checkpoint covers {checkpoint} entries but the proof is for a tree of {receipt}")]
    SizeMismatch { checkpoint: u64, receipt: u64 },
    #[error("the inclusion proof does not lead from the entry to the signed root (was it cut or altered?)")]
    Proof,
}

/// Hex SHA-256 of a value's canonical JSON: what entries commit to.
pub fn snapshot_hash(value: &Value) -> Result<String, crate::entry::EntryError> {
    Ok(hex::encode(sha256(canonical_json(value)?.as_bytes())))
}

/// Hex HMAC-SHA256 of a value's canonical JSON under `key`.
pub fn personal_commitment(key: &[u8], value: &Value) -> Result<String, crate::entry::EntryError> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .map_err(|e| crate::entry::EntryError::Malformed(e.to_string()))?;
    mac.update(canonical_json(value)?.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

impl Receipt {
    /// Verifies everything the receipt claims, with only the public key.
    pub fn verify(&self, key: &VerifierKey) -> Result<Verified, ReceiptError> {
        if self.format != FORMAT {
            return Err(ReceiptError::Format);
        }
        let entry = Entry::from_canonical(&self.entry).map_err(|e| ReceiptError::Entry(e.to_string()))?;
        let committed = entry.change.get("snapshot_sha256").and_then(Value::as_str);
        let actual = snapshot_hash(&self.order).map_err(|e| ReceiptError::Entry(e.to_string()))?;
        if committed != Some(actual.as_str()) {
            return Err(ReceiptError::SnapshotMismatch);
        }
        if let Some(personal) = &self.personal {
            let committed = entry.change.get("personal_commitment").and_then(Value::as_str);
            let key = hex::decode(&personal.key).map_err(|_| ReceiptError::PersonalMismatch)?;
            let actual = personal_commitment(&key, &personal.data).map_err(|_| ReceiptError::PersonalMismatch)?;
            if committed != Some(actual.as_str()) {
                return Err(ReceiptError::PersonalMismatch);
            }
        }
        if entry.index != self.leaf_index {
            return Err(ReceiptError::IndexMismatch { entry: entry.index, receipt: self.leaf_index });
        }
        let checkpoint =
            key.verify_checkpoint(&self.checkpoint).map_err(|e| ReceiptError::Checkpoint(e.to_string()))?;
        if checkpoint.size != self.tree_size {
            return Err(ReceiptError::SizeMismatch { checkpoint: checkpoint.size, receipt: self.tree_size });
        }
        let proof =
            self.inclusion_proof.iter().map(|h| from_b64(h)).collect::<Option<Vec<_>>>().ok_or(ReceiptError::Proof)?;
        let leaf = leaf_hash(self.entry.as_bytes());
        if !verify_inclusion(&leaf, self.leaf_index, self.tree_size, &proof, &checkpoint.root) {
            return Err(ReceiptError::Proof);
        }
        Ok(Verified {
            origin: checkpoint.origin,
            kind: entry.kind,
            leaf_index: entry.index,
            tree_size: checkpoint.size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Checkpoint, LedgerKey};
    use crate::entry::VERSION;
    use crate::hash::to_b64;
    use crate::tree::{FullTree, inclusion_proof};
    use serde_json::json;

    fn receipt() -> (Receipt, VerifierKey) {
        let key = LedgerKey::from_seed("shop.example/ledger", &[9; 32]).expect("key");
        let order = json!({"id": "o1", "number": 1001, "total": 2939, "currency": "EUR", "lines": [{"sku": "A", "quantity": 2}]});
        let personal = json!({"email": "ada@example.com"});
        let entry = Entry {
            v: VERSION,
            index: 3,
            kind: "order_placed".into(),
            actor: "guest".into(),
            targets: vec!["o1".into()],
            change: json!({"snapshot_sha256": snapshot_hash(&order).expect("hash"),
                           "personal_commitment": personal_commitment(&[1; 32], &personal).expect("mac")}),
            at: 1,
            request_id: None,
        };
        let text = entry.to_canonical().expect("canonical");
        let mut leaves: Vec<_> = (0..7).map(|i| leaf_hash(format!("other {i}").as_bytes())).collect();
        leaves[3] = leaf_hash(text.as_bytes());
        let tree = FullTree::new(leaves);
        let proof = inclusion_proof(3, 7, &mut |a, b| tree.node(a, b));
        let checkpoint = key.sign(&Checkpoint { origin: "shop.example/ledger".into(), size: 7, root: tree.root(7) });
        let receipt = Receipt {
            format: FORMAT.into(),
            order,
            personal: Some(PersonalPart { data: personal, key: hex::encode([1; 32]) }),
            entry: text,
            leaf_index: 3,
            tree_size: 7,
            inclusion_proof: proof.iter().map(to_b64).collect(),
            checkpoint,
        };
        (receipt, key.verifier())
    }

    #[test]
    fn a_true_receipt_verifies() {
        let (r, key) = receipt();
        let v = r.verify(&key).expect("verifies");
        assert_eq!((v.kind.as_str(), v.leaf_index, v.tree_size), ("order_placed", 3, 7));
    }

    #[test]
    fn every_kind_of_tampering_fails_with_its_reason() {
        let (r, key) = receipt();
        let mut edited = r.clone();
        edited.order["total"] = json!(1);
        assert_eq!(edited.verify(&key), Err(ReceiptError::SnapshotMismatch));
        let mut cut = r.clone();
        cut.inclusion_proof.pop();
        assert_eq!(cut.verify(&key), Err(ReceiptError::Proof));
        let mut moved = r.clone();
        moved.leaf_index = 4;
        assert!(matches!(moved.verify(&key), Err(ReceiptError::IndexMismatch { .. })));
        let mut email = r.clone();
        if let Some(p) = email.personal.as_mut() {
            p.data["email"] = json!("mallory@example.com");
        }
        assert_eq!(email.verify(&key), Err(ReceiptError::PersonalMismatch));
        let other = LedgerKey::from_seed("shop.example/ledger", &[10; 32]).expect("key").verifier();
        assert!(matches!(r.verify(&other), Err(ReceiptError::Checkpoint(_))));
        let mut grown = r.clone();
        grown.tree_size = 8;
        assert!(matches!(grown.verify(&key), Err(ReceiptError::SizeMismatch { .. })));
    }
}
