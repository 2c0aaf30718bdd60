//! Connecting, configuring and migrating the database.

use crate::durability::WalSync;
use crate::error::StoreError;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How to open the store. Not `Debug`: the URL may hold a password and
/// the options hold a key.
#[derive(Clone)]
pub struct StoreOptions {
    /// `sqlite://path?mode=rwc` or `postgres://…`.
    pub url: String,
    pub max_connections: u32,
    /// Key of the per-entry ledger MAC; kept outside the database.
    pub ledger_mac_key: [u8; 32],
    /// Always true in a real store. False only in the benchmark that
    /// measures what the ledger costs: entries are then not written at all.
    pub record_ledger: bool,
}

/// The store's handle on its database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer at a time. Queueing writers here, instead of
    /// letting them spin in SQLite's busy handler, keeps checkout latency flat
    /// under load. PostgreSQL needs no such lock: row locks do the work.
    pub(crate) sqlite_writer: Option<Arc<Mutex<()>>>,
    /// SQLite's group commit (see [`crate::durability`]).
    pub(crate) wal_sync: Option<Arc<WalSync>>,
    ledger_mac_key: Arc<zeroize::Zeroizing<[u8; 32]>>,
    pub(crate) record_ledger: bool,
}

/// The database file SQLite really opened (the URL's path may be
/// percent-encoded or relative), after checking it runs in WAL mode: the
/// group commit flushes that file's `-wal`, so both must be right.
async fn sqlite_wal_target(pool: &AnyPool) -> Result<std::path::PathBuf, StoreError> {
    use sqlx::Row;
    let mode: String = sqlx::query("PRAGMA journal_mode").fetch_one(pool).await?.try_get(0)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Database(sqlx::Error::Configuration(
            format!("SQLite is in {mode} mode, not WAL; the file system may not support it").into(),
        )));
    }
    let file: String = sqlx::query("SELECT file FROM pragma_database_list WHERE name = 'main'")
        .fetch_one(pool)
        .await?
        .try_get("file")?;
    if file.is_empty() {
        return Err(StoreError::Database(sqlx::Error::Configuration("the SQLite database has no file".into())));
    }
    Ok(std::path::PathBuf::from(file))
}

/// A configured pool and what goes with it, before migrations.
pub(crate) struct Connected {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) sqlite_writer: Option<Arc<Mutex<()>>>,
    pub(crate) wal_sync: Option<Arc<WalSync>>,
}

/// Connects to `url` with the durability and locking settings every
/// Storefort database uses (the store's and the key store's).
pub(crate) async fn connect(url: &str, max_connections: u32) -> Result<Connected, StoreError> {
    sqlx::any::install_default_drivers();
    let backend = if url.starts_with("sqlite:") {
        Backend::Sqlite
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Backend::Postgres
    } else {
        return Err(StoreError::Database(sqlx::Error::Configuration(
            "database url must start with sqlite: or postgres://".into(),
        )));
    };
    let wal_sync = crate::durability::sqlite_file(url).map(|f| Arc::new(WalSync::new(f)));
    // Without a file to flush (an in-memory database) SQLite must sync
    // every commit itself.
    let synchronous = if wal_sync.is_some() { "PRAGMA synchronous = NORMAL" } else { "PRAGMA synchronous = FULL" };
    let connect = AnyConnectOptions::from_str(url).map_err(StoreError::Database)?;
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the writer. Durability of
                    // each acknowledged commit comes from the group commit
                    // barrier (NORMAL) or from SQLite itself (FULL).
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute(synchronous).await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                }
                Ok(())
            })
        })
        .connect_with(connect)
        .await
        .map_err(StoreError::Database)?;
    let sqlite_writer = (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(())));
    let wal_sync = match (backend, wal_sync) {
        (Backend::Sqlite, Some(_)) => Some(Arc::new(WalSync::new(sqlite_wal_target(&pool).await?))),
        _ => None,
    };
    Ok(Connected { pool, backend, sqlite_writer, wal_sync })
}

impl Store {
    /// Connects, applies the connection settings and runs pending migrations.
    pub async fn open(options: &StoreOptions) -> Result<Store, StoreError> {
        let Connected { pool, backend, sqlite_writer, wal_sync } =
            connect(&options.url, options.max_connections).await?;
        let ledger_mac_key = Arc::new(zeroize::Zeroizing::new(options.ledger_mac_key));
        let record_ledger = options.record_ledger;
        let store = Store { pool, backend, sqlite_writer, wal_sync, ledger_mac_key, record_ledger };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Database(sqlx::Error::Migrate(Box::new(e))))
    }

    /// Housekeeping outside the ledger (forgetting what retention says to
    /// forget): runs each statement, which binds the cut-off as `$1`,
    /// under SQLite's writer slot, and returns once it is on disk. Returns
    /// how many rows changed in all.
    pub(crate) async fn purge_before(&self, statements: &[&'static str], before_ms: i64) -> Result<u64, StoreError> {
        let writer = self.lock_writer().await;
        let mut changed = 0;
        for &sql in statements {
            changed += sqlx::query(sql).bind(before_ms).execute(&self.pool).await?.rows_affected();
        }
        drop(writer);
        self.durable().await?;
        Ok(changed)
    }

    /// Returns once every commit made before the call is on disk. PostgreSQL
    /// already flushes (and group-commits) inside COMMIT.
    pub(crate) async fn durable(&self) -> Result<(), StoreError> {
        match &self.wal_sync {
            Some(sync) => sync.barrier().await,
            None => Ok(()),
        }
    }

    /// Disk flushes performed by SQLite's group commit so far.
    pub fn wal_flushes(&self) -> u64 {
        self.wal_sync.as_ref().map(|s| s.flushes()).unwrap_or(0)
    }

    /// The ledger MAC key.
    pub(crate) fn ledger_mac_key(&self) -> &[u8; 32] {
        &self.ledger_mac_key
    }

    /// Which backend this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Closes every connection, waiting for running queries.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
