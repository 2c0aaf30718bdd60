//! The spine's transaction: every state change runs inside a [`WriteTx`].
//!
//! A `WriteTx` can only be committed together with a security event, which is
//! inserted in the same transaction, and only after at least one ledger entry
//! was appended in it; so no change exists without its record.

use crate::Store;
use crate::db::Backend;
use crate::error::StoreError;
use crate::events;
use sqlx::{Any, Transaction};
use storefort_core::SecurityEvent;
use tokio::sync::OwnedMutexGuard;

/// An open write transaction.
pub struct WriteTx {
    pub(crate) tx: Transaction<'static, Any>,
    pub(crate) now_ms: i64,
    /// Who is making the change, as the ledger records it.
    pub(crate) actor: String,
    pub(crate) request_id: Option<String>,
    /// Ledger entries appended so far.
    pub(crate) appended: usize,
    events: Vec<SecurityEvent>,
    /// Held until commit or drop: SQLite's single writer slot.
    writer: Option<OwnedMutexGuard<()>>,
    pub(crate) store: Store,
}

impl Store {
    /// Starts a write transaction at time `now_ms` (unix milliseconds).
    ///
    /// On SQLite the transaction starts with `BEGIN IMMEDIATE`, taking the
    /// write lock up front: a deferred transaction that upgrades later can
    /// fail with SQLITE_BUSY instead of waiting.
    pub async fn begin_write(&self, now_ms: i64, actor: &str, request_id: Option<&str>) -> Result<WriteTx, StoreError> {
        let writer = match &self.sqlite_writer {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let tx = match self.backend() {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx {
            tx,
            now_ms,
            actor: actor.to_owned(),
            request_id: request_id.map(str::to_owned),
            appended: 0,
            events: Vec::new(),
            writer,
            store: self.clone(),
        })
    }
}

impl WriteTx {
    /// The transaction's clock reading, in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Adds an event to be written with this transaction.
    pub fn record(&mut self, event: SecurityEvent) {
        self.events.push(event);
    }

    /// Writes `event` (and any recorded before), commits, and returns once
    /// the commit is on disk. The events reach the structured log only then.
    pub async fn commit(mut self, event: SecurityEvent) -> Result<(), StoreError> {
        if self.appended == 0 {
            // A change without its ledger entry must never exist.
            self.tx.rollback().await?;
            return Err(StoreError::Unrecorded);
        }
        self.events.push(event);
        for e in &self.events {
            events::insert(&mut self.tx, e, self.now_ms).await?;
        }
        self.tx.commit().await?;
        // Let the next writer in while this commit waits for the disk.
        drop(self.writer.take());
        self.store.durable().await?;
        for e in &self.events {
            events::log(e);
        }
        Ok(())
    }

    /// Abandons every change.
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}
