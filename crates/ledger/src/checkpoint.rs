//! Signed tree heads in the C2SP tlog-checkpoint format, wrapped in a C2SP
//! signed note with an Ed25519 signature: the format of Go's sumdb
//! (`golang.org/x/mod/sumdb/note`), so existing tools can read and verify
//! Storefort's checkpoints.
//!
//! ```text
//! <origin>
//! <tree size>
//! <base64 root hash>
//!
//! — <key name> <base64(key id || signature)>
//! ```
//!
//! The key id is the first four bytes of SHA-256(name || "\n" || 0x01 ||
//! public key); a verifier key is written `name+<hex id>+<base64(0x01 ||
//! public key)>`.

use crate::hash::{Hash, from_b64, to_b64};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;

/// The algorithm byte for Ed25519 in signed-note keys.
const ALG_ED25519: u8 = 0x01;

/// A tree head: which log, how many entries, which root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// Why a checkpoint or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    #[error("malformed verifier key")]
    BadKey,
    #[error("no signature by key {0} on the checkpoint")]
    NoSignature(String),
    #[error("the checkpoint signature does not verify")]
    BadSignature,
}

impl Checkpoint {
    /// The note text that gets signed.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, to_b64(&self.root))
    }

    /// Parses a note text (without signatures).
    pub fn parse_body(text: &str) -> Result<Self, CheckpointError> {
        let lines: Vec<&str> =
            text.strip_suffix('\n').ok_or(CheckpointError::Malformed("no final newline"))?.split('\n').collect();
        let [origin, size, root, ..] = lines.as_slice() else {
            return Err(CheckpointError::Malformed("fewer than three lines"));
        };
        if origin.is_empty() {
            return Err(CheckpointError::Malformed("empty origin"));
        }
        // Decimal without leading zeros, as the spec requires.
        if size.is_empty() || (size.len() > 1 && size.starts_with('0')) || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CheckpointError::Malformed("bad tree size"));
        }
        let size = size.parse().map_err(|_| CheckpointError::Malformed("bad tree size"))?;
        let root = from_b64(root).ok_or(CheckpointError::Malformed("bad root hash"))?;
        Ok(Checkpoint { origin: (*origin).to_owned(), size, root })
    }
}

fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public);
    let sum = h.finalize();
    u32::from_be_bytes([sum[0], sum[1], sum[2], sum[3]])
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c == '+' || c.is_whitespace() || c.is_control())
}

/// The store's signing key. Never printed.
pub struct LedgerKey {
    name: String,
    signing: SigningKey,
}

impl fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LedgerKey({}, <secret>)", self.name)
    }
}

impl LedgerKey {
    /// A key from its 32-byte seed, named for the log it signs.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, CheckpointError> {
        if !valid_name(name) {
            return Err(CheckpointError::BadKey);
        }
        Ok(LedgerKey { name: name.to_owned(), signing: SigningKey::from_bytes(seed) })
    }

    /// The public half, for verifiers.
    pub fn verifier(&self) -> VerifierKey {
        let public = self.signing.verifying_key();
        VerifierKey { name: self.name.clone(), id: key_id(&self.name, public.as_bytes()), key: public }
    }

    /// Signs a checkpoint into a signed note.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        self.sign_text(&body)
    }

    /// Signs any note text (which must end in a newline).
    pub fn sign_text(&self, body: &str) -> String {
        let signature = self.signing.sign(body.as_bytes());
        let id = self.verifier().id;
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&id.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        format!("{body}\n\u{2014} {} {}\n", self.name, STANDARD.encode(blob))
    }
}

/// A public key that verifies signed notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: String,
    pub id: u32,
    key: VerifyingKey,
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut blob = vec![ALG_ED25519];
        blob.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, STANDARD.encode(blob))
    }
}

impl VerifierKey {
    /// Parses `name+hexid+base64key`, checking the id matches the key.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        // The base64 key may itself contain '+': split at the first two only.
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(CheckpointError::BadKey);
        };
        if id.len() != 8 {
            return Err(CheckpointError::BadKey);
        }
        let id = u32::from_str_radix(id, 16).map_err(|_| CheckpointError::BadKey)?;
        let blob = STANDARD.decode(key).map_err(|_| CheckpointError::BadKey)?;
        let [alg, public @ ..]: [u8; 33] = blob.try_into().map_err(|_| CheckpointError::BadKey)?;
        if alg != ALG_ED25519 || !valid_name(name) || key_id(name, &public) != id {
            return Err(CheckpointError::BadKey);
        }
        let key = VerifyingKey::from_bytes(&public).map_err(|_| CheckpointError::BadKey)?;
        Ok(VerifierKey { name: name.to_owned(), id, key })
    }

    /// Verifies a signed note and returns its text.
    pub fn verify_note<'a>(&self, note: &'a str) -> Result<&'a str, CheckpointError> {
        let split = note.find("\n\n").ok_or(CheckpointError::Malformed("no signature block"))?;
        let (text, signatures) = note.split_at(split + 1);
        let prefix = format!("\u{2014} {} ", self.name);
        for line in signatures[1..].lines() {
            let Some(b64) = line.strip_prefix(&prefix) else { continue };
            let Ok(blob) = STANDARD.decode(b64) else { continue };
            if blob.len() != 68 || blob[..4] != self.id.to_be_bytes() {
                continue;
            }
            let sig: [u8; 64] = blob[4..].try_into().map_err(|_| CheckpointError::BadSignature)?;
            return self
                .key
                .verify_strict(text.as_bytes(), &Signature::from_bytes(&sig))
                .map(|()| text)
                .map_err(|_| CheckpointError::BadSignature);
        }
        Err(CheckpointError::NoSignature(self.name.clone()))
    }

    /// Verifies a signed checkpoint and parses it.
    pub fn verify_checkpoint(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        Checkpoint::parse_body(self.verify_note(note)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LedgerKey {
        LedgerKey::from_seed("storefort.example/ledger", &[42; 32]).expect("key")
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint { origin: "storefort.example/ledger".into(), size: 1234, root: crate::hash::sha256(b"root") }
    }

    #[test]
    fn signs_and_verifies_in_signed_note_form() {
        let note = key().sign(&checkpoint());
        let lines: Vec<&str> = note.lines().collect();
        assert_eq!(lines[0], "storefort.example/ledger");
        assert_eq!(lines[1], "1234");
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with("\u{2014} storefort.example/ledger "));
        let verifier = VerifierKey::parse(&key().verifier().to_string()).expect("round trip");
        assert_eq!(verifier.verify_checkpoint(&note), Ok(checkpoint()));
    }

    #[test]
    fn refuses_edits_other_keys_and_bad_key_strings() {
        let note = key().sign(&checkpoint());
        let verifier = key().verifier();
        let edited = note.replacen("1234", "1235", 1);
        assert_eq!(verifier.verify_checkpoint(&edited), Err(CheckpointError::BadSignature));
        let other = LedgerKey::from_seed("storefort.example/ledger", &[7; 32]).expect("key").verifier();
        assert!(matches!(other.verify_checkpoint(&note), Err(CheckpointError::NoSignature(_))));
        let text = verifier.to_string();
        assert_eq!(VerifierKey::parse(&text.replacen('+', "+0", 1)), Err(CheckpointError::BadKey));
        assert_eq!(VerifierKey::parse("nonsense"), Err(CheckpointError::BadKey));
        let renamed = text.replacen("storefort.example/ledger", "evil", 1);
        assert_eq!(VerifierKey::parse(&renamed), Err(CheckpointError::BadKey), "the id binds the name");
    }

    /// The example key and signed message of Go's `golang.org/x/mod/sumdb/note`
    /// tests: our parser and verifier agree with Go's implementation.
    #[test]
    fn verifies_go_sumdb_note_test_vector() {
        let verifier = VerifierKey::parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
            .expect("Go's example key parses and its id matches");
        let msg = "If you think cryptography is the answer to your problem,\n\
                   then you don't know what your problem is.\n\
                   \n\
                   \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        assert_eq!(
            verifier.verify_note(msg),
            Ok("If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n")
        );
    }

    #[test]
    fn parses_only_well_formed_bodies() {
        assert!(Checkpoint::parse_body("o\n01\nAAAA\n").is_err());
        assert!(Checkpoint::parse_body("o\n1\n").is_err());
        assert!(Checkpoint::parse_body("o\n1\nnot-base64!\n").is_err());
        let body = checkpoint().body();
        assert_eq!(Checkpoint::parse_body(&body), Ok(checkpoint()));
    }
}
