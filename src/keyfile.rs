//! The server key file: 32 random bytes in `<data_dir>/server.key`, mode 0600,
//! created at first start. `STOREFORT_SERVER_KEY` (64 hex characters) takes
//! its place where instances share a key through the environment.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use storefort_web::ServerKey;

/// Loads the server key, creating it on first start.
pub fn load_or_create(data_dir: &Path) -> Result<ServerKey> {
    if let Ok(hex_key) = std::env::var("STOREFORT_SERVER_KEY") {
        return parse_hex(hex_key.trim()).context("STOREFORT_SERVER_KEY must be 64 hexadecimal characters");
    }
    let path = data_dir.join("server.key");
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
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key; refusing to start", path.display()))?;
            Ok(ServerKey::from_bytes(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            getrandom_fill(&mut key)?;
            // create_new: never overwrite a key another process just wrote.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            file.write_all(&key)?;
            file.sync_all()?;
            Ok(ServerKey::from_bytes(key))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn getrandom_fill(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| anyhow::anyhow!("system random number generator failed: {e}"))
}

fn parse_hex(s: &str) -> Result<ServerKey> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(s, &mut key)?;
    Ok(ServerKey::from_bytes(key))
}
