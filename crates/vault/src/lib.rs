//! Storefort's keys and encryption: the master key, per-subject data keys
//! wrapped by it (envelope encryption), field encryption bound to its
//! subject and field, and keyed blind indexes for lookups.
//!
//! A *subject* is whoever personal data is about: a customer account, or a
//! guest order. Each has its own random data key; destroying that key
//! (crypto-shredding) makes every copy of the subject's data unreadable, in
//! the database, in exports and in old backups.
//!
//! This crate holds no database code and never logs or prints a key.

mod cipher;
pub mod master;

pub use cipher::{BlindIndex, DataKey, VaultError, WrappedKey};
pub use master::{KeySource, MasterKey, load_existing_file, write_new_file};
