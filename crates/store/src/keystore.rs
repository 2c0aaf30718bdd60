//! The key store: wrapped per-subject data keys and erasure tombstones, in
//! a database separate from the store's (its own SQLite file, or its own
//! PostgreSQL database).
//!
//! Why separate: erasing a customer destroys their data key here. A backup
//! of the store's database taken before the erasure, restored later, still
//! holds their ciphertext but no key for it. The key store is backed up on
//! its own (it is small); if an older copy of it is restored, the tombstones
//! (and the ledger's erasure entries) say which keys must stay destroyed.

use crate::db::{Backend, Connected, connect};
use crate::error::StoreError;
use sqlx::{AnyPool, Row};
use std::sync::Arc;
use tokio::sync::Mutex;

/// A wrapped data key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub key_id: String,
    pub wrapped: String,
}

/// What looking up a subject's key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    Found(StoredKey),
    /// The subject was erased: its key is gone for good.
    Erased,
    Missing,
}

/// The key store's handle. Cheap to clone.
#[derive(Clone)]
pub struct KeyStore {
    pool: AnyPool,
    backend: Backend,
    writer: Option<Arc<Mutex<()>>>,
    wal_sync: Option<Arc<crate::durability::WalSync>>,
}

impl KeyStore {
    /// Opens (and migrates) the key store at `url`.
    pub async fn open(url: &str) -> Result<KeyStore, StoreError> {
        let Connected { pool, backend, sqlite_writer, wal_sync } = connect(url, 8).await?;
        sqlx::migrate!("./keystore_migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(sqlx::Error::Migrate(Box::new(e))))?;
        Ok(KeyStore { pool, backend, writer: sqlite_writer, wal_sync })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn durable(&self) -> Result<(), StoreError> {
        match &self.wal_sync {
            Some(sync) => sync.barrier().await,
            None => Ok(()),
        }
    }

    /// Records the master key id at first use and returns the one recorded:
    /// a store started with another master key can then refuse to run.
    pub async fn claim_master_key_id(&self, id: &str) -> Result<String, StoreError> {
        let writer = self.lock().await;
        sqlx::query(
            "INSERT INTO key_store_meta (name, value) VALUES ('master_key_id', $1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        drop(writer);
        self.durable().await?;
        let row =
            sqlx::query("SELECT value FROM key_store_meta WHERE name = 'master_key_id'").fetch_one(&self.pool).await?;
        Ok(row.try_get("value")?)
    }

    /// Sets a meta value (`master_key_id`, `rotating_to`); `None` removes it.
    pub async fn set_meta(&self, name: &str, value: Option<&str>) -> Result<(), StoreError> {
        let writer = self.lock().await;
        match value {
            Some(v) => {
                sqlx::query(
                    "INSERT INTO key_store_meta (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .bind(name)
                .bind(v)
                .execute(&self.pool)
                .await?
            }
            None => sqlx::query("DELETE FROM key_store_meta WHERE name = $1").bind(name).execute(&self.pool).await?,
        };
        drop(writer);
        self.durable().await
    }

    /// A meta value.
    pub async fn meta(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM key_store_meta WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    async fn lock(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.writer {
            Some(w) => Some(w.lock().await),
            None => None,
        }
    }

    /// Stores a new subject's wrapped key; returns once it is on disk, so
    /// nothing is ever encrypted under a key that a crash could lose.
    /// Refused for an erased subject.
    pub async fn insert(&self, subject: &str, key: &StoredKey, now_ms: i64) -> Result<(), StoreError> {
        let writer = self.lock().await;
        let erased = sqlx::query("SELECT 1 AS x FROM erasures WHERE subject_id = $1")
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        if erased {
            return Err(StoreError::Conflict { constraint: "subject_erased".into() });
        }
        sqlx::query("INSERT INTO data_keys (subject_id, key_id, wrapped, created_at) VALUES ($1, $2, $3, $4)")
            .bind(subject)
            .bind(&key.key_id)
            .bind(&key.wrapped)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        drop(writer);
        self.durable().await
    }

    /// Stores many new keys in one durable transaction (a reservoir refill).
    pub async fn insert_many(&self, keys: &[(String, StoredKey)], now_ms: i64) -> Result<(), StoreError> {
        let writer = self.lock().await;
        let mut tx = self.pool.begin().await?;
        for (subject, key) in keys {
            sqlx::query("INSERT INTO data_keys (subject_id, key_id, wrapped, created_at) VALUES ($1, $2, $3, $4)")
                .bind(subject)
                .bind(&key.key_id)
                .bind(&key.wrapped)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        drop(writer);
        self.durable().await
    }

    pub async fn get(&self, subject: &str) -> Result<KeyLookup, StoreError> {
        let row = sqlx::query("SELECT key_id, wrapped FROM data_keys WHERE subject_id = $1")
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(r) = row {
            return Ok(KeyLookup::Found(StoredKey { key_id: r.try_get("key_id")?, wrapped: r.try_get("wrapped")? }));
        }
        let erased = sqlx::query("SELECT 1 AS x FROM erasures WHERE subject_id = $1")
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        Ok(if erased { KeyLookup::Erased } else { KeyLookup::Missing })
    }

    /// Destroys a subject's key and leaves a tombstone, in one transaction.
    /// True if a key was destroyed (false: already erased or never had one).
    pub async fn erase(&self, subject: &str, now_ms: i64) -> Result<bool, StoreError> {
        let writer = self.lock().await;
        let mut tx = self.pool.begin().await?;
        let deleted =
            sqlx::query("DELETE FROM data_keys WHERE subject_id = $1").bind(subject).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO erasures (subject_id, erased_at) VALUES ($1, $2) ON CONFLICT (subject_id) DO NOTHING")
            .bind(subject)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        drop(writer);
        self.durable().await?;
        Ok(deleted.rows_affected() == 1)
    }

    /// Up to `limit` keys not wrapped by `key_id` (what a rotation still
    /// has to re-wrap).
    pub async fn keys_not_wrapped_by(&self, key_id: &str, limit: i64) -> Result<Vec<(String, StoredKey)>, StoreError> {
        let rows = sqlx::query(
            "SELECT subject_id, key_id, wrapped FROM data_keys WHERE key_id <> $1 ORDER BY subject_id LIMIT $2",
        )
        .bind(key_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("subject_id")?,
                    StoredKey { key_id: r.try_get("key_id")?, wrapped: r.try_get("wrapped")? },
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Replaces a wrapped key if it is still the one read (a conditional
    /// update, so a concurrent erasure is never undone). True if replaced.
    pub async fn rewrap(&self, subject: &str, old: &StoredKey, new: &StoredKey) -> Result<bool, StoreError> {
        let writer = self.lock().await;
        let done = sqlx::query(
            "UPDATE data_keys SET key_id = $1, wrapped = $2 WHERE subject_id = $3 AND key_id = $4 AND wrapped = $5",
        )
        .bind(&new.key_id)
        .bind(&new.wrapped)
        .bind(subject)
        .bind(&old.key_id)
        .bind(&old.wrapped)
        .execute(&self.pool)
        .await?;
        drop(writer);
        self.durable().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every erased subject.
    pub async fn tombstones(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT subject_id FROM erasures ORDER BY subject_id").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| r.try_get("subject_id")).collect::<Result<_, _>>()?)
    }

    /// How many keys each master key id wraps.
    pub async fn key_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT key_id, COUNT(*) AS n FROM data_keys GROUP BY key_id ORDER BY key_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key_id")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
