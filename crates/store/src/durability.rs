//! Group commit for SQLite: every acknowledged write is on disk, with one
//! fsync shared by all the commits that finished while the previous one ran.
//!
//! With `synchronous = FULL`, SQLite fsyncs its write-ahead log inside every
//! commit, while holding the single write lock, so throughput is capped at
//! one commit per disk flush. Instead the store runs WAL with
//! `synchronous = NORMAL` (commits reach the OS, not yet the disk) and, before
//! any write is acknowledged, waits on [`WalSync::barrier`]: a flush of the
//! WAL file that started after that commit finished. Flushes run outside
//! the write lock, so commits keep flowing while the disk works, and one
//! flush covers every commit before it.
//!
//! Why this is as durable as FULL: fsync flushes a *file* (its inode), not a
//! descriptor, so flushing the `-wal` file from our own descriptor persists
//! the frames SQLite appended. If SQLite checkpointed and restarted or removed
//! the WAL meanwhile, the checkpoint already synced those pages into the
//! database file (checkpoints sync the database at NORMAL), so nothing is
//! pending. The barrier fails closed: if the flush fails, the write is
//! reported as failed and never acknowledged.

use crate::error::StoreError;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Tracks which commits are known to be on disk.
pub(crate) struct WalSync {
    wal: PathBuf,
    /// Commits that have finished (reached the OS).
    committed: AtomicU64,
    /// Every commit numbered up to this is on disk.
    synced: AtomicU64,
    /// One flush at a time; waiters usually find their commit covered.
    flushing: tokio::sync::Mutex<()>,
    /// Flushes performed, for tests and metrics.
    flushes: AtomicU64,
}

impl WalSync {
    /// For the database file at `db_path`.
    pub(crate) fn new(db_path: PathBuf) -> Self {
        let mut wal = db_path.into_os_string();
        wal.push("-wal");
        WalSync {
            wal: PathBuf::from(wal),
            committed: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            flushing: tokio::sync::Mutex::new(()),
            flushes: AtomicU64::new(0),
        }
    }

    /// Call after a commit has returned; returns once that commit is on disk.
    pub(crate) async fn barrier(&self) -> Result<(), StoreError> {
        let mine = self.committed.fetch_add(1, Ordering::SeqCst) + 1;
        let _one_flush = self.flushing.lock().await;
        if self.synced.load(Ordering::SeqCst) >= mine {
            return Ok(());
        }
        // Everything committed before this load is covered by this flush.
        let target = self.committed.load(Ordering::SeqCst);
        let wal = self.wal.clone();
        let flushed = tokio::task::spawn_blocking(move || flush(&wal)).await;
        match flushed {
            Ok(Ok(())) => {
                self.flushes.fetch_add(1, Ordering::Relaxed);
                self.synced.fetch_max(target, Ordering::SeqCst);
                Ok(())
            }
            Ok(Err(e)) => Err(StoreError::Database(sqlx::Error::Io(e))),
            Err(join) => Err(StoreError::Database(sqlx::Error::Io(std::io::Error::other(join)))),
        }
    }

    /// How many flushes ran so far.
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }
}

fn flush(wal: &std::path::Path) -> std::io::Result<()> {
    match std::fs::File::open(wal) {
        Ok(file) => file.sync_data(),
        // No WAL: everything was checkpointed into the (synced) database.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The database file of a `sqlite:` URL, if it names one.
pub(crate) fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_database_file() {
        assert_eq!(sqlite_file("sqlite://data/s.db?mode=rwc"), Some(PathBuf::from("data/s.db")));
        assert_eq!(sqlite_file("sqlite:///tmp/s.db"), Some(PathBuf::from("/tmp/s.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://x/y"), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_barrier_returns_after_a_flush_that_covers_it() {
        let dir = std::env::temp_dir().join(format!("storefort-walsync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("db-wal"), b"frames").expect("wal");
        let sync = std::sync::Arc::new(WalSync::new(dir.join("db")));
        let waits: Vec<_> = (0..64)
            .map(|_| {
                let s = sync.clone();
                tokio::spawn(async move { s.barrier().await })
            })
            .collect();
        for w in waits {
            w.await.expect("join").expect("flushed");
        }
        assert_eq!(sync.synced.load(Ordering::SeqCst), 64, "every commit is covered");
        let flushes = sync.flushes();
        assert!((1..=64).contains(&flushes), "{flushes} flushes");
        // A missing WAL (fully checkpointed) is not an error.
        std::fs::remove_file(dir.join("db-wal")).expect("rm");
        sync.barrier().await.expect("no wal is fine");
    }
}
