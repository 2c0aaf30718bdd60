//! The store's vault at the HTTP edge: data keys from the key store,
//! unwrapped by the master key, for encrypting and decrypting personal data.
//!
//! Subjects: a customer account by its id, a guest order as `order:<id>`.

use crate::error::ApiError;
use storefort_store::{KeyLookup, KeyStore, StoreError, StoredKey};
use storefort_vault::{DataKey, MasterKey, VaultError, WrappedKey};

/// The master key and the key store.
pub struct Vault {
    master: MasterKey,
    keys: KeyStore,
}

/// Why the vault would not open.
#[derive(Debug, thiserror::Error)]
pub enum VaultOpenError {
    #[error(
        "the master key (id {given}) is not the one this store's key store was set up with (id {expected}); \
         refusing to start so no data is written under the wrong key. Restore the right master key file \
         (or STOREFORT_MASTER_KEY / the key command)"
    )]
    WrongMasterKey { given: String, expected: String },
    #[error("the key store could not be read: {0}")]
    Store(#[from] StoreError),
}

/// The subject id of a guest order's personal data.
pub fn order_subject(order_id: &str) -> String {
    format!("order:{order_id}")
}

/// Whose data key an order's personal data is under: its customer's, or,
/// for a guest order, the order's own.
pub fn data_subject(order: &storefort_store::OrderView) -> String {
    order.customer_id.clone().unwrap_or_else(|| order_subject(&order.id))
}

fn vault_error(e: VaultError) -> ApiError {
    ApiError::internal(&e)
}

impl Vault {
    /// Opens the vault, refusing a master key other than the one the key
    /// store was first used with.
    pub async fn open(master: MasterKey, keys: KeyStore) -> Result<Self, VaultOpenError> {
        let expected = keys.claim_master_key_id(master.id()).await?;
        if expected != master.id() {
            return Err(VaultOpenError::WrongMasterKey { given: master.id().to_owned(), expected });
        }
        Ok(Vault { master, keys })
    }

    pub fn key_store(&self) -> &KeyStore {
        &self.keys
    }

    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// Creates, wraps and durably stores a new subject's data key.
    pub async fn new_subject(&self, subject: &str, now_ms: i64) -> Result<DataKey, ApiError> {
        let key = DataKey::generate().map_err(vault_error)?;
        let wrapped = self.master.wrap(subject, &key).map_err(vault_error)?;
        self.keys.insert(subject, &StoredKey { key_id: wrapped.key_id, wrapped: wrapped.blob }, now_ms).await?;
        Ok(key)
    }

    /// Creates a subject's data key and encrypts `fields` (name, value)
    /// under it, returning the ciphertexts in order.
    pub async fn encrypt_new(
        &self,
        subject: &str,
        now_ms: i64,
        fields: &[(&str, &str)],
    ) -> Result<Vec<String>, ApiError> {
        let key = self.new_subject(subject, now_ms).await?;
        fields.iter().map(|(name, value)| key.encrypt(subject, name, value).map_err(vault_error)).collect()
    }

    /// Encrypts `fields` under an existing subject's key; `None` when the
    /// subject has no key (erased).
    pub async fn encrypt_existing(
        &self,
        subject: &str,
        fields: &[(&str, &str)],
    ) -> Result<Option<Vec<String>>, ApiError> {
        let Some(key) = self.key(subject).await? else { return Ok(None) };
        let sealed = fields.iter().map(|(name, value)| key.encrypt(subject, name, value).map_err(vault_error));
        Ok(Some(sealed.collect::<Result<_, _>>()?))
    }

    /// The subject's data key; `None` once erased (or never created).
    pub async fn key(&self, subject: &str) -> Result<Option<DataKey>, ApiError> {
        match self.keys.get(subject).await? {
            KeyLookup::Found(stored) => {
                let wrapped = WrappedKey { key_id: stored.key_id, blob: stored.wrapped };
                let key = self
                    .master
                    .unwrap(subject, &wrapped)
                    .map_err(|e| ApiError::internal(&format!("the data key of {subject} does not unwrap: {e}")))?;
                Ok(Some(key))
            }
            KeyLookup::Erased | KeyLookup::Missing => Ok(None),
        }
    }

    /// Decrypts one field of a subject, or `None` when the subject was
    /// erased. A ciphertext that does not decrypt is an error naming the
    /// record, never garbage.
    pub async fn reveal(&self, subject: &str, field: &str, ciphertext: &str) -> Result<Option<String>, ApiError> {
        let Some(key) = self.key(subject).await? else { return Ok(None) };
        let plain = key
            .decrypt(subject, field, ciphertext)
            .map_err(|e| ApiError::internal(&format!("field {field} of {subject} does not decrypt: {e}")))?;
        Ok(Some(plain.to_string()))
    }
}
