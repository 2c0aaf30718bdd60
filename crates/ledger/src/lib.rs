//! Storefort's tamper-evident ledger, as pure functions.
//!
//! An append-only Merkle log in the shape of RFC 9162 (Certificate
//! Transparency v2): leaf hash `SHA-256(0x00 || entry)`, node hash
//! `SHA-256(0x01 || left || right)`, inclusion and consistency proofs,
//! checkpoints in the C2SP signed-note format (readable by Go's sumdb
//! tools), and receipts that anyone can verify offline.
//!
//! This crate never touches a database, a file or the network: callers
//! hand it hashes and bytes. That keeps the part that decides "is this
//! history intact?" small, deterministic and exhaustively testable.

pub mod checkpoint;
pub mod entry;
pub mod hash;
pub mod receipt;
pub mod tree;

pub use checkpoint::{Checkpoint, CheckpointError, LedgerKey, VerifierKey};
pub use entry::Entry;
pub use hash::{Hash, leaf_hash, node_hash};
pub use receipt::{Receipt, ReceiptError};
