//! Secret key files in the data directory: 32 random bytes, mode 0600,
//! created at first start and never overwritten.
//!
//! - `server.key`: order access tokens and derived subkeys (the ledger MAC).
//!   `STOREFORT_SERVER_KEY` (64 hex characters) takes its place where
//!   instances share a key through the environment.
//! - `ledger.key`: the Ed25519 seed that signs ledger checkpoints.
//!   `STOREFORT_LEDGER_KEY` (64 hex characters) likewise.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use storefort_web::ServerKey;
use zeroize::Zeroizing;

/// Loads the server key, creating it on first start.
pub fn load_or_create(data_dir: &Path) -> Result<ServerKey> {
    let bytes = secret(data_dir, "server.key", "STOREFORT_SERVER_KEY", true)?;
    Ok(ServerKey::from_bytes(*bytes))
}

/// Loads the ledger signing seed, creating it on first start.
pub fn ledger_seed(data_dir: &Path) -> Result<Zeroizing<[u8; 32]>> {
    secret(data_dir, "ledger.key", "STOREFORT_LEDGER_KEY", true)
}

/// Reads the ledger signing seed without creating one (for offline tools).
pub fn existing_ledger_seed(data_dir: &Path) -> Result<Zeroizing<[u8; 32]>> {
    secret(data_dir, "ledger.key", "STOREFORT_LEDGER_KEY", false)
}

/// Reads the server key without creating one (for offline tools).
pub fn existing_server_key(data_dir: &Path) -> Result<ServerKey> {
    let bytes = secret(data_dir, "server.key", "STOREFORT_SERVER_KEY", false)?;
    Ok(ServerKey::from_bytes(*bytes))
}

fn secret(data_dir: &Path, file: &str, env: &str, create: bool) -> Result<Zeroizing<[u8; 32]>> {
    if let Ok(hex_key) = std::env::var(env) {
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_key.trim(), key.as_mut())
            .with_context(|| format!("{env} must be 64 hexadecimal characters"))?;
        return Ok(key);
    }
    let path = data_dir.join(file);
    match std::fs::metadata(&path) {
        Ok(meta) => {
            // A key others can read is a key others may have copied.
            if meta.permissions().mode() & 0o077 != 0 {
                bail!(
                    "{} is readable by other users; run `chmod 600 {}` and start again",
                    path.display(),
                    path.display()
                );
            }
            let bytes =
                Zeroizing::new(std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?);
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key; refusing to start", path.display()))?;
            Ok(Zeroizing::new(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let mut key = Zeroizing::new([0u8; 32]);
            getrandom::fill(key.as_mut()).map_err(|e| anyhow::anyhow!("system random number generator failed: {e}"))?;
            // create_new: never overwrite a key another process just wrote.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            f.write_all(key.as_ref())?;
            f.sync_all()?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{} does not exist (has this store ever been started with this data directory?)", path.display())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes a new secret file (0600), refusing to overwrite one.
pub fn write_new_secret(path: &Path, contents: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

/// Replaces a secret file atomically: written 0600 beside it, flushed,
/// then renamed over it, so a crash leaves the old file or the new one.
pub fn replace_secret(path: &Path, contents: &[u8]) -> Result<()> {
    let staging = path.with_extension("new");
    let _ = std::fs::remove_file(&staging);
    write_new_secret(&staging, contents)?;
    std::fs::rename(&staging, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}
