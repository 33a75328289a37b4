//! Access keys: a principal's key ids and secrets, the secrets sealed at rest under a
//! key-management key (bound to the key id and its principal) and held in memory for the
//! request path.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::store::{AuthStore, MAX_KEYS_PER_PRINCIPAL, not_found};
use quiver_storage::kms;
use quiver_types::error::{Error, Result};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Inactive,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessKey {
    pub key_id: String,
    pub principal: String,
    pub status: KeyStatus,
    pub created_ms: i64,
    /// The secret, sealed; see [`secret_context`].
    #[serde(with = "quiver_storage::hex_bytes")]
    pub sealed_secret: Vec<u8>,
}

/// What authentication needs of a key, held in memory.
#[derive(Clone)]
pub struct KeyEntry {
    pub principal: String,
    pub status: KeyStatus,
    pub secret: Arc<str>,
    /// The secret made ready to verify gRPC signatures (computed once, not per request).
    pub signing_key: quiver_proto::signing::SigningKey,
}

impl KeyEntry {
    pub(crate) fn new(principal: String, status: KeyStatus, secret: &str) -> Self {
        Self {
            principal,
            status,
            secret: secret.into(),
            signing_key: quiver_proto::signing::SigningKey::new(secret),
        }
    }
}

impl AuthStore {
    /// The principal and secret of an access key.
    pub fn key(&self, key_id: &str) -> Option<KeyEntry> {
        self.state.read().secrets.get(key_id).cloned()
    }

    /// `f` of access key `key_id`, without a copy (the signed request path asks this).
    pub fn with_key<T>(&self, key_id: &str, f: impl FnOnce(Option<&KeyEntry>) -> T) -> T {
        f(self.state.read().secrets.get(key_id))
    }

    pub fn list_access_keys(&self, principal: Option<&str>) -> Vec<AccessKey> {
        self.state
            .read()
            .keys
            .values()
            .filter(|k| principal.is_none_or(|p| k.principal == p))
            .cloned()
            .collect()
    }

    /// A new active key for `principal`, and its secret (shown this once).
    pub fn create_access_key(&self, principal: &str) -> Result<(AccessKey, String)> {
        let mut state = self.state.write();
        if !state.principals.contains_key(principal) {
            return Err(not_found("principal", principal));
        }
        let count = state
            .keys
            .values()
            .filter(|k| k.principal == principal)
            .count();
        if count >= MAX_KEYS_PER_PRINCIPAL {
            return Err(Error::limit(format!(
                "principal {principal} already has {count} access keys (at most \
                 {MAX_KEYS_PER_PRINCIPAL}): delete one first"
            )));
        }
        let mut id = [0u8; 10];
        kms::random(&mut id)?;
        let key_id = format!("AKQV{}", base32(&id));
        let mut secret = [0u8; 30];
        kms::random(&mut secret)?;
        let secret = base64(&secret);
        let sealed_secret = kms::seal(
            self.keys.as_ref(),
            &self.secret_key_id,
            secret_context(&key_id, principal).context(),
            secret.as_bytes(),
        )?;
        let key = AccessKey {
            key_id: key_id.clone(),
            principal: principal.to_string(),
            status: KeyStatus::Active,
            created_ms: self.clock.now_ms(),
            sealed_secret,
        };
        let mut batch = self.records.batch();
        batch.put(&key_key(&key_id), &key)?;
        self.commit(batch, "creating an access key")?;
        state.secrets.insert(
            key_id.clone(),
            KeyEntry::new(principal.to_string(), KeyStatus::Active, &secret),
        );
        state.keys.insert(key_id, key.clone());
        Ok((key, secret))
    }

    /// Rotation: a new key for the old key's principal, and the old key made inactive. The
    /// principal must have room for the new key (delete its other key first).
    pub fn rotate_access_key(&self, old: &str) -> Result<(AccessKey, String)> {
        let principal = self
            .state
            .read()
            .keys
            .get(old)
            .map(|k| k.principal.clone())
            .ok_or_else(|| not_found("access key", old))?;
        let created = self.create_access_key(&principal)?;
        self.set_access_key_status(old, KeyStatus::Inactive)?;
        Ok(created)
    }

    /// Activates or deactivates (revokes) a key; a deactivated key authenticates nothing.
    pub fn set_access_key_status(&self, key_id: &str, status: KeyStatus) -> Result<AccessKey> {
        let mut state = self.state.write();
        let mut key = state
            .keys
            .get(key_id)
            .cloned()
            .ok_or_else(|| not_found("access key", key_id))?;
        key.status = status;
        let mut batch = self.records.batch();
        batch.put(&key_key(key_id), &key)?;
        self.commit(batch, "changing an access key")?;
        if let Some(entry) = state.secrets.get_mut(key_id) {
            entry.status = status;
        }
        state.keys.insert(key_id.to_string(), key.clone());
        Ok(key)
    }

    /// Seals new secrets under `key_id` (the server's `kms_key_id`) rather than `local/default`.
    pub fn with_secret_key(mut self, key_id: String) -> Self {
        self.secret_key_id = key_id;
        self
    }

    /// Re-wraps every access key secret sealed under `key_id` with the newest version of that key
    /// (after a rotation); the secrets themselves are not re-encrypted. Returns how many changed.
    pub fn rewrap_secrets(&self, key_id: &str) -> Result<u64> {
        let mut state = self.state.write();
        let mut batch = self.records.batch();
        let mut changed = Vec::new();
        for key in state.keys.values() {
            let context = secret_context(&key.key_id, &key.principal);
            if let Some(sealed) = kms::rewrap(
                self.keys.as_ref(),
                key_id,
                context.context(),
                &key.sealed_secret,
            )? {
                let mut key = key.clone();
                key.sealed_secret = sealed;
                batch.put(&key_key(&key.key_id), &key)?;
                changed.push(key);
            }
        }
        self.commit(batch, "re-wrapping access keys' secrets")?;
        let count = changed.len() as u64;
        for key in changed {
            state.keys.insert(key.key_id.clone(), key);
        }
        Ok(count)
    }

    pub fn delete_access_key(&self, key_id: &str) -> Result<AccessKey> {
        let mut state = self.state.write();
        let key = state
            .keys
            .get(key_id)
            .cloned()
            .ok_or_else(|| not_found("access key", key_id))?;
        let mut batch = self.records.batch();
        batch.delete(&key_key(key_id));
        self.commit(batch, "deleting an access key")?;
        state.keys.remove(key_id);
        state.secrets.remove(key_id);
        Ok(key)
    }
}

/// The encryption context of an access key's secret: its key id and principal.
pub(crate) struct SecretContext(String);

impl SecretContext {
    pub(crate) fn context(&self) -> kms::Context<'_> {
        kms::Context::new("quiver:access-key", &self.0)
    }
}

pub(crate) fn secret_context(key_id: &str, principal: &str) -> SecretContext {
    SecretContext(format!("{key_id}/principal/{principal}"))
}

pub(crate) fn key_key(id: &str) -> String {
    format!("key/{id}")
}

pub(crate) fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    use ::base64::Engine as _;
    ::base64::engine::general_purpose::STANDARD.encode(bytes)
}
