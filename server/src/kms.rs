//! Envelope encryption at rest. Data is encrypted (AES-256-GCM) with a data key; the data key is
//! stored next to it wrapped by a key-management key, which never leaves its provider. Rotating
//! a key-management key re-wraps data keys without touching the data.
//!
//! Providers: [`LocalKeys`], master keys in files under the data dir (the embedded default);
//! AWS KMS arrives with the rest of the encryption-at-rest work.
//!
//! A sealed value ([`seal`]) is self-describing: `b"QVE1"`, the key id, the wrapped data key, the
//! nonce, then the ciphertext and its tag. The caller's encryption context (for instance the
//! principal an access key belongs to) is bound into both the data key's wrapping and the data:
//! opening with another context, another key or altered bytes fails with an error, never returns
//! garbage.

use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"QVE1";
const KEY_LEN: usize = 32;

/// The key id used when none is configured.
pub const DEFAULT_KEY_ID: &str = "local/default";

/// Wraps and unwraps data keys with key-management keys.
pub trait KeyProvider: Send + Sync {
    /// Wraps `data_key` under `key_id`, bound to `context`.
    fn wrap(&self, key_id: &str, data_key: &[u8; KEY_LEN], context: &[u8]) -> Result<Vec<u8>>;
    /// Unwraps a data key wrapped by [`KeyProvider::wrap`] with the same key and context.
    fn unwrap(&self, key_id: &str, wrapped: &[u8], context: &[u8]) -> Result<[u8; KEY_LEN]>;
}

/// Local key-management keys: one 32-byte key per key id, each in its own file (mode 0600)
/// under `dir`, created on first use. Back these files up with the data dir, and apart from it:
/// without them nothing sealed can be read.
pub struct LocalKeys {
    dir: PathBuf,
    keys: parking_lot::Mutex<std::collections::HashMap<String, LessSafeKey>>,
}

impl LocalKeys {
    pub fn open(dir: &Path) -> Result<Self> {
        create_private_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            keys: Default::default(),
        })
    }

    /// The key for `key_id`, from its file, created when there is none.
    fn with_key<T>(&self, key_id: &str, f: impl FnOnce(&LessSafeKey) -> Result<T>) -> Result<T> {
        let mut keys = self.keys.lock();
        if !keys.contains_key(key_id) {
            let bytes = self.load_or_create(key_id)?;
            keys.insert(key_id.to_string(), aead_key(&bytes));
        }
        f(&keys[key_id])
    }

    fn load_or_create(&self, key_id: &str) -> Result<[u8; KEY_LEN]> {
        if key_id.is_empty()
            || !key_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | ':'))
        {
            return Err(Error::validation(format!(
                "KmsKeyId: {key_id:?} is not a local key id (letters, digits, / - _ . :)"
            )));
        }
        let path = self
            .dir
            .join(format!("{}.key", key_id.replace(['/', ':'], "_")));
        match std::fs::read(&path) {
            Ok(bytes) => bytes.try_into().map_err(|_| {
                Error::internal(format!(
                    "master key file {} is not {KEY_LEN} bytes: refusing to use it",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; KEY_LEN];
                random(&mut key)?;
                write_private(&path, &key)?;
                tracing::info!(key_id, path = %path.display(), "created a local master key");
                Ok(key)
            }
            Err(e) => Err(Error::internal(format!(
                "cannot read master key file {}: {e}",
                path.display()
            ))),
        }
    }
}

impl KeyProvider for LocalKeys {
    fn wrap(&self, key_id: &str, data_key: &[u8; KEY_LEN], context: &[u8]) -> Result<Vec<u8>> {
        self.with_key(key_id, |key| encrypt(key, data_key, context))
    }

    fn unwrap(&self, key_id: &str, wrapped: &[u8], context: &[u8]) -> Result<[u8; KEY_LEN]> {
        self.with_key(key_id, |key| {
            decrypt(key, wrapped, context)?.try_into().map_err(|_| {
                Error::internal(format!(
                    "a data key wrapped by {key_id} has the wrong length"
                ))
            })
        })
    }
}

/// Encrypts `plaintext` under a fresh data key wrapped by `key_id`, bound to `context`.
pub fn seal(
    provider: &dyn KeyProvider,
    key_id: &str,
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let mut data_key = [0u8; KEY_LEN];
    random(&mut data_key)?;
    let wrapped = provider.wrap(key_id, &data_key, context)?;
    let body = encrypt(&aead_key(&data_key), plaintext, context)?;
    let mut out = Vec::with_capacity(4 + 4 + key_id.len() + wrapped.len() + body.len());
    out.extend_from_slice(MAGIC);
    for part in [key_id.as_bytes(), &wrapped] {
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decrypts a value from [`seal`]; a wrong key, context or altered bytes is an error.
pub fn open(provider: &dyn KeyProvider, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    let parsed = parse(sealed).ok_or_else(|| {
        Error::internal("encrypted value is malformed (not written by this server, or damaged)")
    })?;
    let data_key = provider.unwrap(parsed.key_id, parsed.wrapped, context)?;
    decrypt(&aead_key(&data_key), parsed.body, context).map_err(|_| {
        Error::internal(format!(
            "cannot decrypt a value sealed under {}",
            parsed.key_id
        ))
    })
}

struct Parsed<'a> {
    key_id: &'a str,
    wrapped: &'a [u8],
    body: &'a [u8],
}

fn parse(sealed: &[u8]) -> Option<Parsed<'_>> {
    let rest = sealed.strip_prefix(MAGIC.as_slice())?;
    let (key_id, rest) = take_part(rest)?;
    let (wrapped, body) = take_part(rest)?;
    Some(Parsed {
        key_id: std::str::from_utf8(key_id).ok()?,
        wrapped,
        body,
    })
}

fn take_part(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?) as usize;
    let part = bytes.get(2..2 + len)?;
    Some((part, &bytes[2 + len..]))
}

fn aead_key(bytes: &[u8; KEY_LEN]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("a 32-byte AES-256 key"))
}

/// `nonce || ciphertext || tag`, with a random 96-bit nonce (each data key seals one value,
/// each master key wraps data keys: far from the 2^32 messages a random nonce allows).
fn encrypt(key: &LessSafeKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    random(&mut nonce)?;
    let mut buf = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| Error::internal("encryption failed"))?;
    let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    Ok(out)
}

fn decrypt(key: &LessSafeKey, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let fail = || Error::internal("decryption failed: wrong key or context, or damaged data");
    if sealed.len() < NONCE_LEN {
        return Err(fail());
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
    let mut buf = body.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| fail())?;
    let n = plain.len();
    buf.truncate(n);
    Ok(buf)
}

pub fn random(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| Error::internal("the system random number generator failed"))
}

/// Creates `dir` readable by the owner only.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::internal(format!("cannot restrict {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// Writes `bytes` to a new file readable by the owner only (mode 0600), durably.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let fail = |e: std::io::Error| Error::internal(format!("cannot write {}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let dir = tempfile::tempdir().unwrap();
        let keys = LocalKeys::open(dir.path()).unwrap();
        let sealed = seal(&keys, DEFAULT_KEY_ID, b"principal/alice", b"s3cr3t-value").unwrap();
        assert!(!sealed.windows(12).any(|w| w == b"s3cr3t-value"));
        assert_eq!(
            open(&keys, b"principal/alice", &sealed).unwrap(),
            b"s3cr3t-value"
        );
        assert!(open(&keys, b"principal/bob", &sealed).is_err());
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(open(&keys, b"principal/alice", &damaged).is_err());
        assert!(open(&keys, b"principal/alice", b"QVE1\x00").is_err());
        // The key survives a restart: it is read back from its file, mode 0600.
        let again = LocalKeys::open(dir.path()).unwrap();
        assert_eq!(
            open(&again, b"principal/alice", &sealed).unwrap(),
            b"s3cr3t-value"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("local_default.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Another directory has other keys.
        let other = tempfile::tempdir().unwrap();
        let other = LocalKeys::open(other.path()).unwrap();
        assert!(open(&other, b"principal/alice", &sealed).is_err());
        assert!(keys.wrap("bad key id!", &[0; 32], b"").is_err());
    }
}
