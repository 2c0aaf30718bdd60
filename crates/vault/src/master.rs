//! The master key: the one key that wraps every data key.
//!
//! It comes from a 0600 file generated at first start, from an environment
//! variable, or from a command (so a KMS or a password manager can hold it
//! and the store only ever sees it in memory). Its id is derived from the
//! key itself, so a wrong key is recognised before anything is decrypted.

use crate::cipher::{self, DataKey, VaultError, WrappedKey};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The master key with its id. Zeroed on drop; never printed.
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({}, <redacted>)", self.id)
    }
}

/// Where the master key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file of 64 hex characters, created (0600) if missing.
    File(PathBuf),
    /// The value of an environment variable (64 hex characters).
    Env(String),
    /// A shell command whose standard output is the key (64 hex characters).
    Command(String),
}

impl KeySource {
    /// Where a file-held key waits while a rotation re-wraps data keys
    /// (`master.key.old`), so a crash mid-rotation loses nothing.
    pub fn retired_file(&self) -> Option<PathBuf> {
        match self {
            KeySource::File(path) => {
                let mut name = path.file_name()?.to_owned();
                name.push(".old");
                Some(path.with_file_name(name))
            }
            _ => None,
        }
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, VaultError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|_| VaultError::Random)?;
        Ok(Self::from_bytes(key))
    }

    fn from_bytes(key: Zeroizing<[u8; 32]>) -> Self {
        let digest = Sha256::new().chain_update(b"storefort/master-key-id/v1\0").chain_update(key.as_ref()).finalize();
        MasterKey { id: hex::encode(&digest[..8]), key }
    }

    /// Parses 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, VaultError> {
        let bytes =
            Zeroizing::new(hex::decode(text.trim()).map_err(|_| VaultError::BadMasterKey("not hexadecimal".into()))?);
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::BadMasterKey("must be 32 bytes (64 hex characters)".into()))?;
        Ok(Self::from_bytes(Zeroizing::new(array)))
    }

    /// The key as 64 hex characters, to write to its file.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.key.as_ref()))
    }

    /// A short id naming this key (not secret).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Loads the key from `source`; a missing file is created with a new
    /// key (mode 0600) and reported as `true`.
    pub fn load(source: &KeySource) -> Result<(Self, bool), VaultError> {
        match source {
            KeySource::File(path) => load_or_create_file(path),
            KeySource::Env(name) => {
                let value = Zeroizing::new(
                    std::env::var(name).map_err(|_| VaultError::BadMasterKey(format!("{name} is not set")))?,
                );
                Ok((Self::from_hex(&value).map_err(|e| VaultError::BadMasterKey(format!("{name}: {e}")))?, false))
            }
            KeySource::Command(command) => {
                let output = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(command)
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .map_err(|e| VaultError::BadMasterKey(format!("the key command did not run: {e}")))?;
                if !output.status.success() {
                    return Err(VaultError::BadMasterKey(format!("the key command failed ({})", output.status)));
                }
                let text = Zeroizing::new(String::from_utf8_lossy(&output.stdout).into_owned());
                Ok((
                    Self::from_hex(&text).map_err(|e| VaultError::BadMasterKey(format!("key command output: {e}")))?,
                    false,
                ))
            }
        }
    }

    /// Wraps a subject's data key.
    pub fn wrap(&self, subject: &str, key: &DataKey) -> Result<WrappedKey, VaultError> {
        cipher::wrap(&self.key, &self.id, subject, key)
    }

    /// Unwraps a subject's data key wrapped by this master key.
    pub fn unwrap(&self, subject: &str, wrapped: &WrappedKey) -> Result<DataKey, VaultError> {
        if wrapped.key_id != self.id {
            return Err(VaultError::Undecryptable { what: "data key (wrapped by another master key)" });
        }
        cipher::unwrap(&self.key, subject, wrapped)
    }
}

/// Reads a key file that must exist (the retired key during a rotation).
pub fn load_existing_file(path: &Path) -> Result<Option<MasterKey>, VaultError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            MasterKey::from_hex(&text)
                .map(Some)
                .map_err(|e| VaultError::BadMasterKey(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(VaultError::BadMasterKey(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Writes a key file (0600) durably, replacing nothing: `path` must not exist.
pub fn write_new_file(path: &Path, key: &MasterKey) -> Result<(), VaultError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| VaultError::BadMasterKey(format!("cannot write {}: {e}", path.display()));
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
    file.write_all(key.to_hex().as_bytes()).and_then(|()| file.sync_all()).map_err(io)
}

fn load_or_create_file(path: &Path) -> Result<(MasterKey, bool), VaultError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            if mode & 0o077 != 0 {
                return Err(VaultError::BadMasterKey(format!(
                    "{} is readable by others (mode {mode:o}); run chmod 600 on it",
                    path.display()
                )));
            }
            Ok((
                MasterKey::from_hex(&text).map_err(|e| VaultError::BadMasterKey(format!("{}: {e}", path.display())))?,
                false,
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate()?;
            let io = |e: std::io::Error| VaultError::BadMasterKey(format!("cannot write {}: {e}", path.display()));
            // create_new: two processes starting at once cannot both write one.
            let mut file =
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
            file.write_all(key.to_hex().as_bytes()).and_then(|()| file.sync_all()).map_err(io)?;
            Ok((key, true))
        }
        Err(e) => Err(VaultError::BadMasterKey(format!("cannot read {}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_created_once_private_and_loaded_after() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("master.key");
        let (first, created) = MasterKey::load(&KeySource::File(path.clone())).expect("create");
        assert!(created);
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        let (again, created) = MasterKey::load(&KeySource::File(path.clone())).expect("load");
        assert!(!created);
        assert_eq!(first.id(), again.id());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(MasterKey::load(&KeySource::File(path)).is_err(), "a world-readable key is refused");
    }

    #[test]
    fn keys_come_from_commands_and_bad_ones_are_named() {
        let hex = "ab".repeat(32);
        let (k, _) = MasterKey::load(&KeySource::Command(format!("echo {hex}"))).expect("command");
        assert_eq!(k.id(), MasterKey::from_hex(&hex).expect("hex").id());
        assert!(MasterKey::load(&KeySource::Command("exit 3".into())).is_err());
        assert!(MasterKey::from_hex("abcd").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(!format!("{k:?}").contains(&hex));
    }

    #[test]
    fn data_keys_unwrap_only_under_the_master_that_wrapped_them() {
        let (a, b) = (MasterKey::generate().expect("a"), MasterKey::generate().expect("b"));
        let key = DataKey::generate().expect("key");
        let wrapped = a.wrap("cust-1", &key).expect("wrap");
        assert_eq!(wrapped.key_id, a.id());
        let unwrapped = a.unwrap("cust-1", &wrapped).expect("unwrap");
        let c = key.encrypt("cust-1", "email", "x@y.z").expect("enc");
        assert_eq!(unwrapped.decrypt("cust-1", "email", &c).expect("dec").as_str(), "x@y.z");
        assert!(b.unwrap("cust-1", &wrapped).is_err());
    }
}
