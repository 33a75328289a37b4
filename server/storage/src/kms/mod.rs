//! Envelope encryption at rest. Data is encrypted (AES-256-GCM) with a data key; the data key is
//! stored next to it wrapped by a key-management key, which never leaves its provider. Rotating
//! a key-management key re-wraps data keys without touching the data.
//!
//! - [`KeyProvider`]: wraps and unwraps data keys. [`LocalKeys`] keeps master keys in files
//!   under the data dir (the embedded default; key ids `local/<name>`); [`AwsKms`] calls AWS
//!   KMS (any other key id: a key id, key ARN, alias name or alias ARN). [`Keys`] routes each key
//!   id to its provider.
//! - [`DataKeys`]: the data keys that encrypt feature groups' online records, offline staging
//!   and offline files, one chain per group and key, cached within an age and use bound.
//! - [`seal`] / [`open`]: one value under its own data key (stored secrets).
//!
//! Every data key is bound to an encryption context (for a feature group, its ARN): unwrapping
//! with another context, another key or altered bytes fails with an error, never garbage.

mod aws;
pub mod data_keys;
mod local;

use std::path::Path;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

pub use aws::AwsKms;
pub use data_keys::{DataKeyPolicy, DataKeys, Scope};
pub use local::LocalKeys;

use quiver_types::error::{Error, Result};

const MAGIC: &[u8; 4] = b"QVE1";
pub const KEY_LEN: usize = 32;

/// A plaintext data key.
pub type DataKey = [u8; KEY_LEN];

/// The key id used when none is configured.
pub const DEFAULT_KEY_ID: &str = "local/default";

/// What a data key is bound to: AWS KMS's encryption context, one name and value (for a
/// feature group's keys, `aws:sagemaker:feature-group-arn` and the group's ARN).
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

impl<'a> Context<'a> {
    pub fn new(name: &'a str, value: &'a str) -> Self {
        Self { name, value }
    }

    /// The context of a feature group's data keys.
    pub fn group(arn: &'a str) -> Self {
        Self::new("aws:sagemaker:feature-group-arn", arn)
    }

    /// The additional authenticated data local wrapping binds: `name/value`.
    fn aad(&self) -> Vec<u8> {
        format!("{}/{}", self.name, self.value).into_bytes()
    }
}

/// Wraps and unwraps data keys with key-management keys. Calls may block (a network round trip
/// to AWS KMS); callers cache what they unwrap ([`DataKeys`]).
pub trait KeyProvider: Send + Sync {
    /// A new data key, and the same wrapped under `key_id` for `context`.
    fn generate(&self, key_id: &str, context: Context<'_>) -> Result<(DataKey, Vec<u8>)> {
        let mut data_key = [0u8; KEY_LEN];
        random(&mut data_key)?;
        let wrapped = self.wrap(key_id, &data_key, context)?;
        Ok((data_key, wrapped))
    }
    /// Wraps `data_key` under `key_id`, bound to `context`.
    fn wrap(&self, key_id: &str, data_key: &DataKey, context: Context<'_>) -> Result<Vec<u8>>;
    /// Unwraps a data key wrapped by [`KeyProvider::wrap`] with the same key and context.
    fn unwrap(&self, key_id: &str, wrapped: &[u8], context: Context<'_>) -> Result<DataKey>;
    /// Whether `wrapped` is wrapped by the newest version of `key_id`, so re-wrapping it would
    /// change nothing. AWS KMS rotates key material behind the same key id and re-wraps on
    /// request, so its answer is always no.
    fn is_current(&self, key_id: &str, wrapped: &[u8]) -> Result<bool>;
    /// Starts wrapping with a new version of `key_id` and returns it; `None` for keys whose
    /// provider rotates key material itself (AWS KMS).
    fn rotate(&self, key_id: &str) -> Result<Option<u32>> {
        let _ = key_id;
        Ok(None)
    }
    /// Checks that `key_id` names a key this provider can use; the error names `field`.
    fn check_key_id(&self, field: &str, key_id: &str) -> Result<()> {
        let _ = (field, key_id);
        Ok(())
    }
}

/// Routes each key id to its provider: `local/...` to the local master keys, any other (an AWS
/// KMS key id, key ARN or alias) to AWS KMS when it is configured.
pub struct Keys {
    local: LocalKeys,
    aws: Option<AwsKms>,
}

impl Keys {
    pub fn new(local: LocalKeys, aws: Option<AwsKms>) -> Self {
        Self { local, aws }
    }

    fn provider(&self, key_id: &str) -> Result<&dyn KeyProvider> {
        if key_id.starts_with("local/") {
            return Ok(&self.local);
        }
        match &self.aws {
            Some(aws) => Ok(aws),
            None => Err(Error::validation(format!(
                "KmsKeyId {key_id:?} names an AWS KMS key, and this server has no AWS KMS \
                 configured (kms_endpoint, or kms = true for AWS's); local keys are named \
                 local/<name>"
            ))),
        }
    }
}

impl KeyProvider for Keys {
    fn generate(&self, key_id: &str, context: Context<'_>) -> Result<(DataKey, Vec<u8>)> {
        self.provider(key_id)?.generate(key_id, context)
    }

    fn wrap(&self, key_id: &str, data_key: &DataKey, context: Context<'_>) -> Result<Vec<u8>> {
        self.provider(key_id)?.wrap(key_id, data_key, context)
    }

    fn unwrap(&self, key_id: &str, wrapped: &[u8], context: Context<'_>) -> Result<DataKey> {
        self.provider(key_id)?.unwrap(key_id, wrapped, context)
    }

    fn is_current(&self, key_id: &str, wrapped: &[u8]) -> Result<bool> {
        self.provider(key_id)?.is_current(key_id, wrapped)
    }

    fn rotate(&self, key_id: &str) -> Result<Option<u32>> {
        self.provider(key_id)?.rotate(key_id)
    }

    fn check_key_id(&self, field: &str, key_id: &str) -> Result<()> {
        let checked = match self.provider(key_id) {
            Ok(_) if key_id.starts_with("local/") => LocalKeys::check_key_id(key_id),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        checked.map_err(|e| Error::validation(format!("{field}: {}", e.message())))
    }
}

/// Encrypts `plaintext` under a fresh data key wrapped by `key_id`, bound to `context`.
pub fn seal(
    provider: &dyn KeyProvider,
    key_id: &str,
    context: Context<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let (data_key, wrapped) = provider.generate(key_id, context)?;
    let body = encrypt(&aead_key(&data_key), plaintext, &context.aad())?;
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
pub fn open(provider: &dyn KeyProvider, context: Context<'_>, sealed: &[u8]) -> Result<Vec<u8>> {
    let parsed = parse(sealed).ok_or_else(|| {
        Error::internal("encrypted value is malformed (not written by this server, or damaged)")
    })?;
    let data_key = provider.unwrap(parsed.key_id, parsed.wrapped, context)?;
    decrypt(&aead_key(&data_key), parsed.body, &context.aad()).map_err(|_| {
        Error::internal(format!(
            "cannot decrypt a value sealed under {}",
            parsed.key_id
        ))
    })
}

/// `sealed` with its data key re-wrapped under the newest version of `key_id` (the value itself
/// is not re-encrypted); `None` when it is sealed under another key, or already current.
pub fn rewrap(
    provider: &dyn KeyProvider,
    key_id: &str,
    context: Context<'_>,
    sealed: &[u8],
) -> Result<Option<Vec<u8>>> {
    let parsed = parse(sealed).ok_or_else(|| {
        Error::internal("encrypted value is malformed (not written by this server, or damaged)")
    })?;
    if parsed.key_id != key_id || provider.is_current(parsed.key_id, parsed.wrapped)? {
        return Ok(None);
    }
    let data_key = provider.unwrap(parsed.key_id, parsed.wrapped, context)?;
    let wrapped = provider.wrap(parsed.key_id, &data_key, context)?;
    let mut out = Vec::with_capacity(sealed.len() + 8);
    out.extend_from_slice(MAGIC);
    for part in [parsed.key_id.as_bytes(), &wrapped] {
        out.extend_from_slice(&(part.len() as u16).to_be_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(parsed.body);
    Ok(Some(out))
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
        let alice = Context::new("principal", "alice");
        let sealed = seal(&keys, DEFAULT_KEY_ID, alice, b"s3cr3t-value").unwrap();
        assert!(!sealed.windows(12).any(|w| w == b"s3cr3t-value"));
        assert_eq!(open(&keys, alice, &sealed).unwrap(), b"s3cr3t-value");
        assert!(open(&keys, Context::new("principal", "bob"), &sealed).is_err());
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(open(&keys, alice, &damaged).is_err());
        assert!(open(&keys, alice, b"QVE1\x00").is_err());
        // The key survives a restart: it is read back from its file, mode 0600.
        let again = LocalKeys::open(dir.path()).unwrap();
        assert_eq!(open(&again, alice, &sealed).unwrap(), b"s3cr3t-value");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("local_default.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // After a rotation the value is re-wrapped, not re-encrypted, and still opens.
        again.rotate_version(DEFAULT_KEY_ID).unwrap();
        assert!(
            rewrap(&again, "local/other", alice, &sealed)
                .unwrap()
                .is_none()
        );
        let rewrapped = rewrap(&again, DEFAULT_KEY_ID, alice, &sealed)
            .unwrap()
            .expect("re-wrapped");
        assert!(
            rewrap(&again, DEFAULT_KEY_ID, alice, &rewrapped)
                .unwrap()
                .is_none()
        );
        assert!(
            rewrapped.ends_with(&sealed[sealed.len() - 40..]),
            "same ciphertext"
        );
        assert_eq!(open(&again, alice, &rewrapped).unwrap(), b"s3cr3t-value");
        // Another directory has other keys, and a missing key is an error, not a new key.
        let other = tempfile::tempdir().unwrap();
        let other = LocalKeys::open(other.path()).unwrap();
        let err = open(&other, alice, &sealed).unwrap_err();
        assert!(err.message().contains("no file"), "{}", err.message());
        assert!(keys.wrap("bad key id!", &[0; 32], alice).is_err());
    }
}
