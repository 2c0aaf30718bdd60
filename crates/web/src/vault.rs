//! The store's vault at the HTTP edge: data keys from the key store,
//! unwrapped by the master key, for encrypting and decrypting personal data.
//!
//! Subjects: a customer account by its id, a guest order as `order:<id>`.

use crate::error::ApiError;
use std::sync::Arc;
use storefort_store::{KeyLookup, KeyStore, StoreError, StoredKey};
use storefort_vault::{DataKey, KeySource, MasterKey, VaultError, WrappedKey};

/// How long a data key stays in memory after use.
const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// Most data keys held in memory.
const CACHE_MAX: usize = 4096;

/// Below this many reservoir keys a refill starts.
const RESERVOIR_LOW: usize = 64;
/// Keys made per refill.
const RESERVOIR_BATCH: usize = 256;

/// Key store meta: the id of the master key new data keys are wrapped with.
pub const MASTER_KEY_ID: &str = "master_key_id";
/// Key store meta: the id a rotation in progress moves to.
pub const ROTATING_TO: &str = "rotating_to";

/// The master keys and the key store.
///
/// Normally one master key. During a rotation (`storefort keys rotate`,
/// possibly run while this instance serves) the key store names the new
/// key's id; an instance that sees a new id reloads its key source and keeps
/// the old key only to unwrap what is not re-wrapped yet.
pub struct Vault {
    /// Always true but in the benchmark that measures what encryption costs.
    encrypt: bool,
    /// Guest data keys made ahead of time, already durable in the key
    /// store, so a checkout never waits for a key-store write.
    reservoir: std::sync::Mutex<Vec<(String, DataKey)>>,
    refilling: std::sync::atomic::AtomicBool,
    /// Recently used data keys, briefly, so reading back what was just
    /// written does not go to the key store. Erasure evicts here; other
    /// instances forget within [`CACHE_TTL`].
    cache: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, DataKey)>>,
    masters: std::sync::RwLock<Masters>,
    /// Where to reload the master key from when a rotation moves it.
    source: Option<KeySource>,
    keys: KeyStore,
}

struct Masters {
    current: Arc<MasterKey>,
    /// Keys still needed to unwrap data keys not yet re-wrapped.
    retired: Vec<Arc<MasterKey>>,
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
    order.customer_id.clone().or_else(|| order.data_subject.clone()).unwrap_or_else(|| order_subject(&order.id))
}

fn vault_error(e: VaultError) -> ApiError {
    ApiError::internal(&e)
}

impl Vault {
    /// Opens the vault, refusing a master key other than the one the key
    /// store was first used with (or, after an interrupted rotation, the one
    /// it was rotating to). `retired` holds keys an unfinished rotation still
    /// needs; `source` is where to reload from when another process rotates.
    pub async fn open(
        master: MasterKey,
        retired: Vec<MasterKey>,
        source: Option<KeySource>,
        keys: KeyStore,
    ) -> Result<Self, VaultOpenError> {
        let expected = keys.claim_master_key_id(master.id()).await?;
        if expected != master.id() {
            let rotating_to = keys.meta(ROTATING_TO).await?;
            if rotating_to.as_deref() != Some(master.id()) {
                return Err(VaultOpenError::WrongMasterKey { given: master.id().to_owned(), expected });
            }
            // The key file was swapped but the key store not yet told.
            keys.set_meta(MASTER_KEY_ID, Some(master.id())).await?;
        }
        let masters = Masters { current: Arc::new(master), retired: retired.into_iter().map(Arc::new).collect() };
        Ok(Vault {
            encrypt: true,
            reservoir: std::sync::Mutex::new(Vec::new()),
            refilling: std::sync::atomic::AtomicBool::new(false),
            cache: std::sync::Mutex::new(std::collections::HashMap::new()),
            masters: std::sync::RwLock::new(masters),
            source,
            keys,
        })
    }

    /// A vault that stores personal data **in plaintext**: only for the
    /// benchmark that measures what field encryption costs. Nothing in the
    /// server or its configuration can reach this.
    #[doc(hidden)]
    pub async fn plaintext_for_benchmarks(keys: KeyStore) -> Result<Self, VaultOpenError> {
        let mut vault = Self::open(
            MasterKey::generate().map_err(|_| VaultOpenError::Store(StoreError::Corrupt { what: "random" }))?,
            Vec::new(),
            None,
            keys,
        )
        .await?;
        vault.encrypt = false;
        Ok(vault)
    }

    pub fn key_store(&self) -> &KeyStore {
        &self.keys
    }

    /// The id of the master key new data keys are wrapped with.
    pub fn master_id(&self) -> String {
        self.current().id().to_owned()
    }

    fn current(&self) -> Arc<MasterKey> {
        self.masters.read().unwrap_or_else(std::sync::PoisonError::into_inner).current.clone()
    }

    fn master_with_id(&self, id: &str) -> Option<Arc<MasterKey>> {
        let m = self.masters.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        std::iter::once(&m.current).chain(m.retired.iter()).find(|k| k.id() == id).cloned()
    }

    /// Reloads the master key from its source (another process rotated it);
    /// the previous one is kept for unwrapping.
    pub fn reload(&self) -> Result<(), ApiError> {
        let Some(source) = &self.source else {
            return Err(ApiError::internal(&"the master key was rotated, and this vault has no source to reload"));
        };
        // Never create a key here: a missing file is an error, not a reason
        // to start afresh.
        let fresh = match source {
            KeySource::File(path) => storefort_vault::load_existing_file(path)
                .map_err(|e| ApiError::internal(&e))?
                .ok_or_else(|| ApiError::internal(&"the master key file is missing"))?,
            other => MasterKey::load(other).map_err(|e| ApiError::internal(&e))?.0,
        };
        let mut m = self.masters.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if fresh.id() != m.current.id() {
            let old = std::mem::replace(&mut m.current, Arc::new(fresh));
            m.retired.push(old);
            tracing::info!(key = m.current.id(), "picked up a rotated master key");
        }
        Ok(())
    }

    /// The key to wrap with now: the key store says which; if it names
    /// another than ours, a rotation happened elsewhere, so reload.
    async fn wrapping_key(&self) -> Result<Arc<MasterKey>, ApiError> {
        let wanted = self.keys.meta(MASTER_KEY_ID).await?;
        let current = self.current();
        match wanted {
            Some(id) if id != current.id() => {
                self.reload()?;
                let current = self.current();
                if current.id() != id {
                    return Err(ApiError::unavailable("key_rotation", "the master key is being rotated; retry"));
                }
                Ok(current)
            }
            _ => Ok(current),
        }
    }

    fn unwrap(&self, subject: &str, wrapped: &WrappedKey) -> Result<DataKey, ApiError> {
        let master = match self.master_with_id(&wrapped.key_id) {
            Some(m) => m,
            None => {
                self.reload()?;
                self.master_with_id(&wrapped.key_id).ok_or_else(|| {
                    ApiError::internal(&format!("the data key of {subject} is wrapped by an unknown master key"))
                })?
            }
        };
        master
            .unwrap(subject, wrapped)
            .map_err(|e| ApiError::internal(&format!("the data key of {subject} does not unwrap: {e}")))
    }

    /// Re-wraps every data key under the current master key;
    /// `progress(done, in_batch)` after each batch. Keys wrapped meanwhile by
    /// instances that had not yet noticed the rotation are caught by looping
    /// until passes find none.
    pub async fn rewrap_all(&self, mut progress: impl FnMut(u64, u64)) -> Result<u64, ApiError> {
        let new = self.current();
        let mut done = 0u64;
        let mut quiet_passes = 0;
        while quiet_passes < 2 {
            let batch = self.keys.keys_not_wrapped_by(new.id(), 500).await?;
            if batch.is_empty() {
                quiet_passes += 1;
                // Give instances a moment to notice the new key.
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                continue;
            }
            quiet_passes = 0;
            let remaining = batch.len() as u64;
            for (subject, stored) in batch {
                let wrapped = WrappedKey { key_id: stored.key_id.clone(), blob: stored.wrapped.clone() };
                let key = self.unwrap(&subject, &wrapped)?;
                let fresh = new.wrap(&subject, &key).map_err(vault_error)?;
                let replacement = StoredKey { key_id: fresh.key_id, wrapped: fresh.blob };
                // Conditional: a key erased meanwhile stays erased.
                if self.keys.rewrap(&subject, &stored, &replacement).await? {
                    done += 1;
                }
            }
            progress(done, remaining);
        }
        Ok(done)
    }

    /// A data key for a new guest order, with its subject id. Taken from the
    /// reservoir (refilled in the background below a low-water mark), or
    /// made and stored on the spot when it is empty.
    pub async fn guest_key(self: &Arc<Self>, now_ms: i64) -> Result<(String, DataKey), ApiError> {
        let taken = self.reservoir.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let left = self.reservoir.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len();
        if left < RESERVOIR_LOW && !self.refilling.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let vault = self.clone();
            tokio::spawn(async move {
                if let Err(e) = vault.refill(now_ms).await {
                    tracing::warn!(error = %e.message, "could not refill the data key reservoir");
                }
                vault.refilling.store(false, std::sync::atomic::Ordering::SeqCst);
            });
        }
        match taken {
            Some(k) => Ok(k),
            None => {
                let subject = format!("guest:{}", uuid::Uuid::new_v4());
                let key = self.new_subject(&subject, now_ms).await?;
                Ok((subject, key))
            }
        }
    }

    /// Makes a batch of guest keys, stores them durably in one transaction,
    /// and only then offers them.
    async fn refill(&self, now_ms: i64) -> Result<(), ApiError> {
        let master = self.wrapping_key().await?;
        let mut fresh = Vec::with_capacity(RESERVOIR_BATCH);
        let mut stored = Vec::with_capacity(RESERVOIR_BATCH);
        for _ in 0..RESERVOIR_BATCH {
            let subject = format!("guest:{}", uuid::Uuid::new_v4());
            let key = DataKey::generate().map_err(vault_error)?;
            let wrapped = master.wrap(&subject, &key).map_err(vault_error)?;
            stored.push((subject.clone(), StoredKey { key_id: wrapped.key_id, wrapped: wrapped.blob }));
            fresh.push((subject, key));
        }
        self.keys.insert_many(&stored, now_ms).await?;
        self.reservoir.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(fresh);
        Ok(())
    }

    /// Creates, wraps and durably stores a new subject's data key.
    pub async fn new_subject(&self, subject: &str, now_ms: i64) -> Result<DataKey, ApiError> {
        let key = DataKey::generate().map_err(vault_error)?;
        let wrapped = self.wrapping_key().await?.wrap(subject, &key).map_err(vault_error)?;
        self.keys.insert(subject, &StoredKey { key_id: wrapped.key_id, wrapped: wrapped.blob }, now_ms).await?;
        Ok(key)
    }

    /// Encrypts `fields` for a new guest order under a reservoir key;
    /// returns the key's subject and the ciphertexts in order.
    pub async fn encrypt_guest(
        self: &Arc<Self>,
        now_ms: i64,
        fields: &[(&str, &str)],
    ) -> Result<(String, Vec<String>), ApiError> {
        if !self.encrypt {
            return Ok((String::new(), fields.iter().map(|(_, v)| (*v).to_owned()).collect()));
        }
        let (subject, key) = self.guest_key(now_ms).await?;
        self.remember(&subject, &key);
        let sealed = fields.iter().map(|(name, value)| key.encrypt(&subject, name, value).map_err(vault_error));
        Ok((subject.clone(), sealed.collect::<Result<_, _>>()?))
    }

    /// Creates a subject's data key and encrypts `fields` (name, value)
    /// under it, returning the ciphertexts in order.
    pub async fn encrypt_new(
        &self,
        subject: &str,
        now_ms: i64,
        fields: &[(&str, &str)],
    ) -> Result<Vec<String>, ApiError> {
        if !self.encrypt {
            return Ok(fields.iter().map(|(_, v)| (*v).to_owned()).collect());
        }
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
        if let Some(key) = self.cached(subject) {
            return Ok(Some(key));
        }
        match self.keys.get(subject).await? {
            KeyLookup::Found(stored) => {
                let wrapped = WrappedKey { key_id: stored.key_id, blob: stored.wrapped };
                let key = self.unwrap(subject, &wrapped)?;
                self.remember(subject, &key);
                Ok(Some(key))
            }
            KeyLookup::Erased | KeyLookup::Missing => Ok(None),
        }
    }

    fn cached(&self, subject: &str) -> Option<DataKey> {
        let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(subject).filter(|(at, _)| at.elapsed() < CACHE_TTL).map(|(_, k)| k.clone())
    }

    fn remember(&self, subject: &str, key: &DataKey) {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(subject.to_owned(), (std::time::Instant::now(), key.clone()));
    }

    /// Destroys a subject's data key (crypto-shredding) and forgets any
    /// copy held here. True if a key was destroyed.
    pub async fn erase(&self, subject: &str, now_ms: i64) -> Result<bool, ApiError> {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(subject);
        Ok(self.keys.erase(subject, now_ms).await?)
    }

    /// Decrypts one field of a subject, or `None` when the subject was
    /// erased. A ciphertext that does not decrypt is an error naming the
    /// record, never garbage.
    pub async fn reveal(&self, subject: &str, field: &str, ciphertext: &str) -> Result<Option<String>, ApiError> {
        if !self.encrypt {
            return Ok(Some(ciphertext.to_owned()));
        }
        // Scrubbed by an erasure (possibly seen through another instance's
        // still-cached key): nothing to reveal.
        if ciphertext.is_empty() {
            return Ok(None);
        }
        let Some(key) = self.key(subject).await? else { return Ok(None) };
        let plain = key
            .decrypt(subject, field, ciphertext)
            .map_err(|e| ApiError::internal(&format!("field {field} of {subject} does not decrypt: {e}")))?;
        Ok(Some(plain.to_string()))
    }
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub old_id: String,
    pub new_id: String,
    pub rewrapped: u64,
}

/// Rotates a file-held master key, safe to run while stores serve and to
/// re-run after a crash: the new key is written beside the old one, the
/// key store told, the files swapped (the old kept as `<file>.old`), every
/// data key re-wrapped, and only then the old key deleted. Data is never
/// re-encrypted: only the small wrapped keys change.
pub async fn rotate_file_key(
    vault: &Vault,
    source: &KeySource,
    progress: impl FnMut(u64, u64),
) -> Result<Rotation, String> {
    let KeySource::File(path) = source else {
        return Err("rotation needs a file-held master key (not STOREFORT_MASTER_KEY or a key command): \
                    install the new key in your key manager and point master_key_file at it"
            .into());
    };
    let retired = source.retired_file().ok_or("the master key file has no name")?;
    let old_id = vault.master_id();
    if !retired.exists() {
        let new = MasterKey::generate().map_err(|e| e.to_string())?;
        let mut staged_name = path.file_name().ok_or("the master key file has no name")?.to_owned();
        staged_name.push(".new");
        let staged = path.with_file_name(staged_name);
        let _ = std::fs::remove_file(&staged);
        storefort_vault::write_new_file(&staged, &new).map_err(|e| e.to_string())?;
        vault.keys.set_meta(ROTATING_TO, Some(new.id())).await.map_err(|e| e.to_string())?;
        // Keep the old key beside it first, then replace the key file in one
        // atomic rename: the file always holds a whole key.
        let _ = std::fs::remove_file(&retired);
        let old = storefort_vault::load_existing_file(path)
            .map_err(|e| e.to_string())?
            .ok_or("the master key file vanished")?;
        storefort_vault::write_new_file(&retired, &old).map_err(|e| format!("cannot keep the old key: {e}"))?;
        std::fs::rename(&staged, path).map_err(|e| format!("cannot install the new key: {e}"))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| e.to_string())?;
        }
        vault.keys.set_meta(MASTER_KEY_ID, Some(new.id())).await.map_err(|e| e.to_string())?;
    }
    vault.reload().map_err(|e| e.message)?;
    let rewrapped = vault.rewrap_all(progress).await.map_err(|e| e.message)?;
    vault.keys.set_meta(ROTATING_TO, None).await.map_err(|e| e.to_string())?;
    std::fs::remove_file(&retired).map_err(|e| format!("cannot remove the old key {}: {e}", retired.display()))?;
    Ok(Rotation { old_id, new_id: vault.master_id(), rewrapped })
}
