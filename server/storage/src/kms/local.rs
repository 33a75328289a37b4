//! Local key-management keys: the embedded default provider.
//!
//! Each key id (`local/<name>`) has one or more versions, each a 32-byte AES-256 key in its own
//! file (mode 0600) under the keys directory: version 1 is `local_<name>.key`, later ones
//! `local_<name>.v<N>.key`. A key's first version is created on first use; [`LocalKeys::rotate`]
//! adds the next, which wraps every data key from then on. Wrapped data keys name their
//! version, so older versions keep unwrapping what they wrapped until it is re-wrapped.
//!
//! Back these files up with the data dir, and apart from it: without them nothing encrypted can
//! be read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use ring::aead::{LessSafeKey, NONCE_LEN};

use super::{Context, DataKey, KEY_LEN, KeyProvider, aead_key, decrypt, encrypt, random};
use quiver_types::error::{Error, Result};

/// Marks a wrapped key that names its version (`QLK` + version u32 BE + nonce, key, tag).
/// Keys wrapped before versions existed are the bare 60 bytes and are version 1.
const VERSIONED: &[u8; 3] = b"QLK";
const BARE_LEN: usize = NONCE_LEN + KEY_LEN + 16;

pub struct LocalKeys {
    dir: PathBuf,
    keys: Mutex<HashMap<String, Versions>>,
}

#[derive(Default)]
struct Versions {
    newest: u32,
    keys: HashMap<u32, LessSafeKey>,
}

impl LocalKeys {
    pub fn open(dir: &Path) -> Result<Self> {
        super::create_private_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            keys: Default::default(),
        })
    }

    /// Checks that `key_id` can name a local key.
    pub fn check_key_id(key_id: &str) -> Result<()> {
        let name = key_id.strip_prefix("local/").unwrap_or("");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(Error::validation(format!(
                "{key_id:?} is not a local key id (local/ then letters, digits, - _ .)"
            )));
        }
        Ok(())
    }

    fn path(&self, key_id: &str, version: u32) -> PathBuf {
        let stem = key_id.replace('/', "_");
        match version {
            1 => self.dir.join(format!("{stem}.key")),
            n => self.dir.join(format!("{stem}.v{n}.key")),
        }
    }

    /// The versions of `key_id` (loading them from their files on first use; creating version
    /// 1 when there is none and `create`), for `f`.
    fn with_versions<T>(
        &self,
        key_id: &str,
        create: bool,
        f: impl FnOnce(&mut Versions) -> Result<T>,
    ) -> Result<T> {
        Self::check_key_id(key_id)?;
        let mut keys = self.keys.lock();
        if !keys.contains_key(key_id) {
            let mut versions = Versions::default();
            for version in self.stored_versions(key_id)? {
                if let Some(key) = self.read(key_id, version)? {
                    versions.keys.insert(version, aead_key(&key));
                    versions.newest = versions.newest.max(version);
                }
            }
            if versions.newest == 0 {
                if !create {
                    return Err(Error::internal(format!(
                        "master key {key_id} has no file ({}): restore the keys directory from \
                         a backup; without it nothing encrypted under {key_id} can be read",
                        self.path(key_id, 1).display()
                    )));
                }
                let key = self.create(key_id, 1)?;
                versions.keys.insert(1, aead_key(&key));
                versions.newest = 1;
            }
            keys.insert(key_id.to_string(), versions);
        }
        f(keys.get_mut(key_id).expect("inserted above"))
    }

    /// The versions of `key_id` that have a file (older ones may have been removed).
    fn stored_versions(&self, key_id: &str) -> Result<Vec<u32>> {
        let stem = key_id.replace('/', "_");
        let entries = std::fs::read_dir(&self.dir).map_err(|e| {
            Error::internal(format!(
                "cannot list master keys in {}: {e}",
                self.dir.display()
            ))
        })?;
        let mut versions = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(stem.as_str())) else {
                continue;
            };
            if rest == ".key" {
                versions.push(1);
            } else if let Some(n) = rest.strip_prefix(".v").and_then(|r| r.strip_suffix(".key"))
                && let Ok(n) = n.parse::<u32>()
            {
                versions.push(n);
            }
        }
        Ok(versions)
    }

    fn read(&self, key_id: &str, version: u32) -> Result<Option<DataKey>> {
        let path = self.path(key_id, version);
        match std::fs::read(&path) {
            Ok(bytes) => bytes.try_into().map(Some).map_err(|_| {
                Error::internal(format!(
                    "master key file {} is not {KEY_LEN} bytes: refusing to use it",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::internal(format!(
                "cannot read master key file {}: {e}",
                path.display()
            ))),
        }
    }

    fn create(&self, key_id: &str, version: u32) -> Result<DataKey> {
        let mut key = [0u8; KEY_LEN];
        random(&mut key)?;
        let path = self.path(key_id, version);
        super::write_private(&path, &key)?;
        tracing::info!(key_id, version, path = %path.display(), "created a local master key");
        Ok(key)
    }

    /// Adds the next version of `key_id`, which wraps every data key from now on; returns it.
    pub fn rotate_version(&self, key_id: &str) -> Result<u32> {
        self.with_versions(key_id, true, |versions| {
            let next = versions.newest + 1;
            let key = self.create(key_id, next)?;
            versions.keys.insert(next, aead_key(&key));
            versions.newest = next;
            Ok(next)
        })
    }

    /// The version a wrapped key was wrapped with, and its sealed bytes.
    fn version_of(wrapped: &[u8]) -> Option<(u32, &[u8])> {
        if wrapped.len() == BARE_LEN {
            return Some((1, wrapped));
        }
        let rest = wrapped.strip_prefix(VERSIONED.as_slice())?;
        let (version, sealed) = rest.split_at_checked(4)?;
        (sealed.len() == BARE_LEN)
            .then(|| (u32::from_be_bytes(version.try_into().unwrap()), sealed))
    }
}

impl KeyProvider for LocalKeys {
    fn wrap(&self, key_id: &str, data_key: &DataKey, context: Context<'_>) -> Result<Vec<u8>> {
        self.with_versions(key_id, true, |versions| {
            let key = &versions.keys[&versions.newest];
            let sealed = encrypt(key, data_key, &context.aad())?;
            let mut out = Vec::with_capacity(VERSIONED.len() + 4 + sealed.len());
            out.extend_from_slice(VERSIONED);
            out.extend_from_slice(&versions.newest.to_be_bytes());
            out.extend_from_slice(&sealed);
            Ok(out)
        })
    }

    fn unwrap(&self, key_id: &str, wrapped: &[u8], context: Context<'_>) -> Result<DataKey> {
        let (version, sealed) = Self::version_of(wrapped).ok_or_else(|| {
            Error::internal(format!("a data key wrapped by {key_id} is malformed"))
        })?;
        self.with_versions(key_id, false, |versions| {
            let key = versions.keys.get(&version).ok_or_else(|| {
                Error::internal(format!(
                    "a data key was wrapped by version {version} of {key_id}, whose file {} is \
                     missing: restore it from a backup",
                    self.path(key_id, version).display()
                ))
            })?;
            decrypt(key, sealed, &context.aad())
                .map_err(|_| {
                    Error::internal(format!(
                        "cannot unwrap a data key with version {version} of {key_id}: the key \
                         file is not the one it was wrapped with, or the data is damaged"
                    ))
                })?
                .try_into()
                .map_err(|_| {
                    Error::internal(format!(
                        "a data key wrapped by {key_id} has the wrong length"
                    ))
                })
        })
    }

    fn rotate(&self, key_id: &str) -> Result<Option<u32>> {
        self.rotate_version(key_id).map(Some)
    }

    fn is_current(&self, key_id: &str, wrapped: &[u8]) -> Result<bool> {
        let version = Self::version_of(wrapped).map(|(v, _)| v);
        self.with_versions(key_id, false, |versions| {
            Ok(version == Some(versions.newest))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_adds_a_version_and_old_versions_still_unwrap() {
        let dir = tempfile::tempdir().unwrap();
        let keys = LocalKeys::open(dir.path()).unwrap();
        let context = Context::new("quiver:test", "g");
        let data_key = [7u8; KEY_LEN];
        let old = keys.wrap("local/default", &data_key, context).unwrap();
        assert!(keys.is_current("local/default", &old).unwrap());
        assert_eq!(keys.rotate("local/default").unwrap(), Some(2));
        assert!(!keys.is_current("local/default", &old).unwrap());
        let new = keys.wrap("local/default", &data_key, context).unwrap();
        assert!(keys.is_current("local/default", &new).unwrap());
        // A restart finds both versions.
        let keys = LocalKeys::open(dir.path()).unwrap();
        assert_eq!(
            keys.unwrap("local/default", &old, context).unwrap(),
            data_key
        );
        assert_eq!(
            keys.unwrap("local/default", &new, context).unwrap(),
            data_key
        );
        // Without version 2's file, what it wrapped fails clearly.
        std::fs::remove_file(dir.path().join("local_default.v2.key")).unwrap();
        let keys = LocalKeys::open(dir.path()).unwrap();
        let err = keys.unwrap("local/default", &new, context).unwrap_err();
        assert!(err.message().contains("missing"), "{}", err.message());
        assert!(LocalKeys::check_key_id("local/bad name").is_err());
        assert!(LocalKeys::check_key_id("arn:aws:kms:x").is_err());
    }
}
