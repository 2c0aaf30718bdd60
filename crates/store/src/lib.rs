//! Storefort's persistence: every SQL statement lives here.
//!
//! One code path for both backends: sqlx's `Any` driver with portable SQL and
//! one migrations directory, so SQLite (embedded, the default) and PostgreSQL
//! (for scale) run the same statements. Every state change goes through a
//! [`WriteTx`], the database half of the spine: it cannot commit without a
//! security event, and the event is written in the same transaction.
//!
//! This crate must never build SQL from client text; every value is bound.

mod accounts;
pub mod audit;
mod bans;
mod carts;
mod catalog;
mod consent;
mod db;
mod durability;
mod error;
mod events;
mod keystore;
pub mod ledger;
mod orders;
mod passkeys;
mod payments;
pub mod processing;
mod rate;
pub mod retention;
mod sessions;
mod settings;
mod throttle;
mod tx;
mod webhooks;

pub use accounts::{AccountRow, NewAccount, TotpRow, credential_commitment};
pub use carts::{CartLineView, CartView};
pub use catalog::{CollectionView, NewProduct, NewVariant, ProductFilter, ProductPage, ProductView, VariantView};
pub use consent::{ConsentChange, ConsentState};
pub use db::{Backend, Store, StoreOptions};
pub use error::StoreError;
pub use events::StoredEvent;
pub use keystore::{KeyLookup, KeyStore, StoredKey};
pub use orders::{CheckoutOutcome, NewOrder, OrderLineView, OrderView, StatusChange};
pub use passkeys::PasskeyRow;
pub use payments::{AttemptOrigin, PaymentApplied, PaymentRow, RefundClaim, RefundRow, RiskCounts, RiskRow};
pub use sessions::{ApiTokenRow, NewApiToken, NewSession, SessionRow};
pub use tx::WriteTx;
pub use webhooks::{AttemptOutcome, DeliveryRow, EndpointRow, WEBHOOK_EVENTS};

/// SHA-256 of a secret, hex encoded: how secrets are looked up at rest.
pub fn hash_secret(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(secret.as_bytes()))
}
