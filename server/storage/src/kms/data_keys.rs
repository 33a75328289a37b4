//! The data keys that encrypt feature groups' data at rest: online records, offline staging
//! rows and offline Parquet files.
//!
//! Each group has a numbered chain of data keys, stored wrapped in the `data_keys` column family
//! (key `[group id u64 BE][index u32 BE]`) with the key id that wraps them and the group's ARN
//! (their encryption context). Encryption uses the newest data key of the group and key id;
//! once it is older than [`DataKeyPolicy::max_age`] or has sealed [`DataKeyPolicy::max_uses`]
//! values, a new one is generated (one KMS call) and stored durably before it seals anything.
//! A server start begins a new data key too: a data key encrypts only in the process that made
//! it, so its nonces (a counter) never repeat.
//!
//! Decryption finds the data key by the index in the sealed value, unwrapping it through its
//! provider at most once per `max_age` (the cache is bounded by age: a disabled or revoked KMS
//! key stops decryption within that time).
//!
//! Sealed form: `[index u32 LE][nonce 12 bytes][ciphertext][tag 16 bytes]`, with the caller's
//! additional authenticated data (the record's key, say) bound in, so a value cannot be moved
//! to another record or group undetected.
//!
//! A group whose online records are encrypted also has one **identifier key**, stored wrapped
//! as the entry numbered [`IDENTIFIER_KEY_INDEX`]: the HMAC-SHA256 key its record identifiers
//! are hashed with to make online keys (`online/keys.rs`). Unlike data keys it never changes,
//! since every lookup must find the key its record was written under; rotating the key
//! management key re-wraps it with the data keys. Its entry also records whether the group's
//! records have all been moved to hashed keys (`migrated`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use ring::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};
use rocksdb::{DB, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use super::{Context, KeyProvider, aead_key};
use crate::db::{CF_DATA_KEYS, cf};
use quiver_types::error::{Error, Result};
use quiver_types::model::FeatureGroup;
use quiver_types::time::Clock;

const TAG_LEN: usize = 16;
/// Unwrapped data keys cached before expired ones are dropped.
const OPENED_ENTRIES: usize = 4096;

/// Bytes a sealed value adds to its plaintext.
pub const OVERHEAD: usize = 4 + NONCE_LEN + TAG_LEN;

/// The entry number of a group's identifier key: never a data key's.
pub const IDENTIFIER_KEY_INDEX: u32 = u32::MAX;

/// How long and how much a data key may be used.
#[derive(Debug, Clone, Copy)]
pub struct DataKeyPolicy {
    /// A data key encrypts for at most this long, and an unwrapped key is kept this long.
    pub max_age: Duration,
    /// A data key seals at most this many values (far below the 2^32 AES-GCM allows).
    pub max_uses: u64,
}

impl Default for DataKeyPolicy {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(300),
            max_uses: 1 << 24,
        }
    }
}

/// Whose data is sealed, and under which key: a group's ARN binds its data keys.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub group_id: u64,
    pub key_id: &'a str,
    pub arn: &'a str,
}

/// A data key as stored (wrapped).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    key_id: String,
    arn: String,
    #[serde(with = "crate::hex_bytes")]
    wrapped: Vec<u8>,
    created_ms: i64,
    /// Of an identifier key: every online record of the group is under a hashed key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    migrated: bool,
}

/// What is stored of a group's identifier key, besides the key.
#[derive(Debug, Clone)]
pub struct StoredIdentifierKey {
    /// The key that wraps it, and the group ARN it is bound to: the scope the group's records
    /// were sealed for, to re-seal them with once identifiers are no longer hashed.
    pub key_id: String,
    pub arn: String,
    /// Every online record of the group is under a hashed key.
    pub migrated: bool,
}

/// A group's identifier key, unwrapped: hashes record identifiers into online keys.
pub struct IdentifierKey {
    key: ring::hmac::Key,
    loaded: Instant,
}

impl IdentifierKey {
    /// Bytes of [`IdentifierKey::hash`].
    pub const LEN: usize = 32;

    /// HMAC-SHA256 of `identifier`.
    pub fn hash(&self, identifier: &str) -> [u8; Self::LEN] {
        let tag = ring::hmac::sign(&self.key, identifier.as_bytes());
        tag.as_ref().try_into().expect("HMAC-SHA256 is 32 bytes")
    }
}

/// The data key a (group, key id) seals with now.
struct Current {
    key_id: String,
    index: u32,
    key: LessSafeKey,
    created: Instant,
    /// Values sealed so far: also the nonce counter.
    uses: AtomicU64,
}

struct Opened {
    key: LessSafeKey,
    loaded: Instant,
}

pub struct DataKeys {
    db: Arc<DB>,
    provider: Arc<dyn KeyProvider>,
    policy: DataKeyPolicy,
    /// The key id of groups that name none, when encryption at rest is on for every group.
    default_key_id: Option<String>,
    /// By group: the current data key of each key id the group uses (one or two).
    current: Mutex<HashMap<u64, Vec<Arc<Current>>>>,
    /// Held while a new data key is made.
    generating: Mutex<()>,
    opened: RwLock<HashMap<(u64, u32), Arc<Opened>>>,
    /// Unwrapped identifier keys by group, kept for `max_age` as data keys are.
    identifier_keys: RwLock<HashMap<u64, Arc<IdentifierKey>>>,
    generated: AtomicU64,
    unwrapped: AtomicU64,
    /// Stamps each data key's creation time.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeys")
            .field("policy", &self.policy)
            .field("default_key_id", &self.default_key_id)
            .finish_non_exhaustive()
    }
}

fn entry_key(group_id: u64, index: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&group_id.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

impl DataKeys {
    pub fn new(
        db: Arc<DB>,
        provider: Arc<dyn KeyProvider>,
        policy: DataKeyPolicy,
        default_key_id: Option<String>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            db,
            provider,
            policy,
            default_key_id,
            current: Mutex::default(),
            generating: Mutex::default(),
            opened: RwLock::default(),
            identifier_keys: RwLock::default(),
            generated: AtomicU64::new(0),
            unwrapped: AtomicU64::new(0),
            clock,
        }
    }

    pub fn provider(&self) -> &Arc<dyn KeyProvider> {
        &self.provider
    }

    pub fn policy(&self) -> &DataKeyPolicy {
        &self.policy
    }

    /// The scope of `group`'s online records: its `OnlineStoreConfig.SecurityConfig.KmsKeyId`,
    /// else the server's default key when encryption at rest is on; `None`: not encrypted.
    pub fn online_scope<'a>(&'a self, group: &'a FeatureGroup) -> Option<Scope<'a>> {
        let named = group.online.as_ref().and_then(|o| o.kms_key_id.as_deref());
        self.scope(group, named)
    }

    /// The scope of `group`'s offline data (staging and Parquet files): its
    /// `OfflineStoreConfig.S3StorageConfig.KmsKeyId`, else as [`DataKeys::online_scope`].
    pub fn offline_scope<'a>(&'a self, group: &'a FeatureGroup) -> Option<Scope<'a>> {
        match group.offline.as_ref().and_then(|o| o.kms_key_id.as_deref()) {
            Some(named) => self.scope(group, Some(named)),
            None => self.online_scope(group),
        }
    }

    fn scope<'a>(&'a self, group: &'a FeatureGroup, named: Option<&'a str>) -> Option<Scope<'a>> {
        let key_id = named.or(self.default_key_id.as_deref())?;
        Some(Scope {
            group_id: group.id,
            key_id,
            arn: &group.arn,
        })
    }

    /// Appends `plaintext` sealed for `scope`, binding `aad`, to `out`.
    pub fn seal(
        &self,
        scope: &Scope<'_>,
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let current = self.current(scope)?;
        let counter = current.uses.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[NONCE_LEN - 8..].copy_from_slice(&counter.to_be_bytes());
        out.reserve(OVERHEAD + plaintext.len());
        out.extend_from_slice(&current.index.to_le_bytes());
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = current
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[start..],
            )
            .map_err(|_| Error::internal("encryption failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// The plaintext of a value [`DataKeys::seal`] sealed for `group_id` with `aad`.
    pub fn open(&self, group_id: u64, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < OVERHEAD {
            return Err(Error::internal(format!(
                "an encrypted value of feature group {group_id} is truncated"
            )));
        }
        let index = u32::from_le_bytes(sealed[..4].try_into().expect("4 bytes"));
        if index == IDENTIFIER_KEY_INDEX {
            return Err(Error::internal(format!(
                "an encrypted value of feature group {group_id} names no data key: it is damaged"
            )));
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[4..4 + NONCE_LEN])
            .map_err(|_| Error::internal("bad nonce"))?;
        let key = self.opened(group_id, index)?;
        let mut buf = sealed[4 + NONCE_LEN..].to_vec();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| {
                Error::internal(format!(
                    "cannot decrypt a value of feature group {group_id} with its data key \
                     {index}: the value is damaged or was moved from elsewhere"
                ))
            })?
            .len();
        buf.truncate(plain);
        Ok(buf)
    }

    /// The fresh data key `scope` seals with, if there is one.
    fn fresh(&self, scope: &Scope<'_>) -> Option<Arc<Current>> {
        let current = self.current.lock();
        current
            .get(&scope.group_id)?
            .iter()
            .find(|k| k.key_id == scope.key_id)
            .filter(|k| {
                k.created.elapsed() < self.policy.max_age
                    && k.uses.load(Ordering::Relaxed) < self.policy.max_uses
            })
            .cloned()
    }

    fn current(&self, scope: &Scope<'_>) -> Result<Arc<Current>> {
        if let Some(key) = self.fresh(scope) {
            return Ok(key);
        }
        // One new data key at a time (numbering is per group, in order); sealing with other
        // fresh keys goes on meanwhile. A writer that waited here may find one made already.
        let _generating = self.generating.lock();
        if let Some(key) = self.fresh(scope) {
            return Ok(key);
        }
        // Stored (synced) before it seals anything: one provider call per max_age or max_uses.
        let (plain, wrapped) = self
            .provider
            .generate(scope.key_id, Context::group(scope.arn))?;
        let index = self.next_index(scope.group_id)?;
        let entry = Entry {
            key_id: scope.key_id.to_string(),
            arn: scope.arn.to_string(),
            wrapped,
            created_ms: self.clock.now_ms(),
            migrated: false,
        };
        self.store(scope.group_id, index, &entry)?;
        self.generated.fetch_add(1, Ordering::Relaxed);
        let key = Arc::new(Current {
            key_id: scope.key_id.to_string(),
            index,
            key: aead_key(&plain),
            created: Instant::now(),
            uses: AtomicU64::new(0),
        });
        self.remember(scope.group_id, index, aead_key(&plain));
        let mut current = self.current.lock();
        let keys = current.entry(scope.group_id).or_default();
        keys.retain(|k| k.key_id != scope.key_id);
        keys.push(key.clone());
        Ok(key)
    }

    /// Caches an unwrapped data key; past [`OPENED_ENTRIES`], expired ones are dropped.
    fn remember(&self, group_id: u64, index: u32, key: LessSafeKey) -> Arc<Opened> {
        let opened = Arc::new(Opened {
            key,
            loaded: Instant::now(),
        });
        let mut cache = self.opened.write();
        if cache.len() >= OPENED_ENTRIES {
            let max_age = self.policy.max_age;
            cache.retain(|_, k| k.loaded.elapsed() < max_age);
        }
        cache.insert((group_id, index), opened.clone());
        opened
    }

    fn opened(&self, group_id: u64, index: u32) -> Result<Arc<Opened>> {
        if let Some(key) = self.opened.read().get(&(group_id, index))
            && key.loaded.elapsed() < self.policy.max_age
        {
            return Ok(key.clone());
        }
        let entry = self.entry(group_id, index)?.ok_or_else(|| {
            Error::internal(format!(
                "feature group {group_id} has data encrypted with data key {index}, which is not \
                 stored: the data dir is incomplete"
            ))
        })?;
        let plain =
            self.provider
                .unwrap(&entry.key_id, &entry.wrapped, Context::group(&entry.arn))?;
        self.unwrapped.fetch_add(1, Ordering::Relaxed);
        let key = Arc::new(Opened {
            key: aead_key(&plain),
            loaded: Instant::now(),
        });
        self.opened.write().insert((group_id, index), key.clone());
        Ok(key)
    }

    /// (data keys generated, data keys unwrapped) since the start: how often the providers
    /// were called.
    pub fn provider_calls(&self) -> (u64, u64) {
        (
            self.generated.load(Ordering::Relaxed),
            self.unwrapped.load(Ordering::Relaxed),
        )
    }

    /// The identifier key of `scope`'s group: `None` when it has none and `create` is false
    /// (then no record of the group is stored under a hashed key). One is made, wrapped by
    /// `scope`'s key and stored synced, when `create` is true, as `migrated`: a group without
    /// one when the server opened has records only under hashed keys (the opening migration
    /// gave every encrypted group one).
    pub fn identifier_key(
        &self,
        scope: &Scope<'_>,
        create: bool,
    ) -> Result<Option<Arc<IdentifierKey>>> {
        if let Some(key) = self.identifier_keys.read().get(&scope.group_id)
            && key.loaded.elapsed() < self.policy.max_age
        {
            return Ok(Some(key.clone()));
        }
        if let Some(entry) = self.entry(scope.group_id, IDENTIFIER_KEY_INDEX)? {
            return self.open_identifier_key(scope.group_id, &entry).map(Some);
        }
        if !create {
            return Ok(None);
        }
        self.new_identifier_key(scope, true).map(Some)
    }

    /// What is stored of `group_id`'s identifier key, if it has one.
    pub fn identifier_key_stored(&self, group_id: u64) -> Result<Option<StoredIdentifierKey>> {
        Ok(self
            .entry(group_id, IDENTIFIER_KEY_INDEX)?
            .map(|entry| StoredIdentifierKey {
                key_id: entry.key_id,
                arn: entry.arn,
                migrated: entry.migrated,
            }))
    }

    /// The identifier key of `scope`'s group for moving its records to hashed keys: the stored
    /// one, else a new one stored as not yet `migrated`.
    pub fn identifier_key_for_migration(&self, scope: &Scope<'_>) -> Result<Arc<IdentifierKey>> {
        match self.entry(scope.group_id, IDENTIFIER_KEY_INDEX)? {
            Some(entry) => self.open_identifier_key(scope.group_id, &entry),
            None => self.new_identifier_key(scope, false),
        }
    }

    /// Records that every online record of `group_id` is under a hashed key.
    pub fn identifier_keys_migrated(&self, group_id: u64) -> Result<()> {
        let mut entry = self
            .entry(group_id, IDENTIFIER_KEY_INDEX)?
            .ok_or_else(|| Error::internal("the identifier key being migrated to is gone"))?;
        entry.migrated = true;
        self.store(group_id, IDENTIFIER_KEY_INDEX, &entry)
    }

    /// Forgets `group_id`'s identifier key, once no record is under a hashed key.
    pub fn drop_identifier_key(&self, group_id: u64) -> Result<()> {
        self.identifier_keys.write().remove(&group_id);
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(true);
        self.db
            .delete_cf_opt(
                cf(&self.db, CF_DATA_KEYS),
                entry_key(group_id, IDENTIFIER_KEY_INDEX),
                &options,
            )
            .map_err(|e| Error::storage("removing an identifier key", e))
    }

    fn open_identifier_key(&self, group_id: u64, entry: &Entry) -> Result<Arc<IdentifierKey>> {
        let plain =
            self.provider
                .unwrap(&entry.key_id, &entry.wrapped, Context::group(&entry.arn))?;
        self.unwrapped.fetch_add(1, Ordering::Relaxed);
        Ok(self.remember_identifier_key(group_id, &plain))
    }

    fn new_identifier_key(&self, scope: &Scope<'_>, migrated: bool) -> Result<Arc<IdentifierKey>> {
        let _generating = self.generating.lock();
        if let Some(entry) = self.entry(scope.group_id, IDENTIFIER_KEY_INDEX)? {
            return self.open_identifier_key(scope.group_id, &entry);
        }
        let (plain, wrapped) = self
            .provider
            .generate(scope.key_id, Context::group(scope.arn))?;
        let entry = Entry {
            key_id: scope.key_id.to_string(),
            arn: scope.arn.to_string(),
            wrapped,
            created_ms: self.clock.now_ms(),
            migrated,
        };
        self.store(scope.group_id, IDENTIFIER_KEY_INDEX, &entry)?;
        self.generated.fetch_add(1, Ordering::Relaxed);
        Ok(self.remember_identifier_key(scope.group_id, &plain))
    }

    fn remember_identifier_key(&self, group_id: u64, plain: &super::DataKey) -> Arc<IdentifierKey> {
        let key = Arc::new(IdentifierKey {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, plain),
            loaded: Instant::now(),
        });
        self.identifier_keys.write().insert(group_id, key.clone());
        key
    }

    fn next_index(&self, group_id: u64) -> Result<u32> {
        let mut iter = self.db.iterator_cf(
            cf(&self.db, CF_DATA_KEYS),
            IteratorMode::From(
                &entry_key(group_id, IDENTIFIER_KEY_INDEX - 1),
                rocksdb::Direction::Reverse,
            ),
        );
        match iter.next() {
            Some(Ok((key, _))) if key.starts_with(&group_id.to_be_bytes()) => {
                let last = u32::from_be_bytes(
                    key[8..12]
                        .try_into()
                        .map_err(|_| Error::internal("corrupt data key entry"))?,
                );
                last.checked_add(1)
                    .filter(|next| *next < IDENTIFIER_KEY_INDEX)
                    .ok_or_else(|| {
                        Error::internal(format!(
                            "feature group {group_id} ran out of data key numbers"
                        ))
                    })
            }
            Some(Err(e)) => Err(Error::storage("reading data keys", e)),
            _ => Ok(0),
        }
    }

    fn entry(&self, group_id: u64, index: u32) -> Result<Option<Entry>> {
        self.db
            .get_cf(cf(&self.db, CF_DATA_KEYS), entry_key(group_id, index))
            .map_err(|e| Error::storage("reading a data key", e))?
            .map(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| Error::internal(format!("corrupt data key entry: {e}")))
            })
            .transpose()
    }

    fn store(&self, group_id: u64, index: u32, entry: &Entry) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf(&self.db, CF_DATA_KEYS),
            entry_key(group_id, index),
            serde_json::to_vec(entry).map_err(|e| Error::internal(e.to_string()))?,
        );
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(batch, &options)
            .map_err(|e| Error::storage("storing a data key", e))
    }

    /// Re-wraps every stored data key wrapped by `key_id` under its newest version (after a
    /// local key's rotation; for an AWS KMS key, under its current key material). The data
    /// they encrypt is not touched. Returns how many were re-wrapped.
    pub fn rewrap(&self, key_id: &str) -> Result<u64> {
        let mut rewrapped = 0;
        let mut batch = WriteBatch::default();
        let data_keys = cf(&self.db, CF_DATA_KEYS);
        for item in self.db.iterator_cf(data_keys, IteratorMode::Start) {
            let (key, value) = item.map_err(|e| Error::storage("reading data keys", e))?;
            let mut entry: Entry = serde_json::from_slice(&value)
                .map_err(|e| Error::internal(format!("corrupt data key entry: {e}")))?;
            if entry.key_id != key_id || self.provider.is_current(key_id, &entry.wrapped)? {
                continue;
            }
            let context = Context::group(&entry.arn);
            let plain = self.provider.unwrap(key_id, &entry.wrapped, context)?;
            entry.wrapped = self.provider.wrap(key_id, &plain, context)?;
            batch.put_cf(
                data_keys,
                &key,
                serde_json::to_vec(&entry).map_err(|e| Error::internal(e.to_string()))?,
            );
            rewrapped += 1;
        }
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(batch, &options)
            .map_err(|e| Error::storage("storing re-wrapped data keys", e))?;
        // Sealing moves on to data keys wrapped by the new version.
        for keys in self.current.lock().values_mut() {
            keys.retain(|k| k.key_id != key_id);
        }
        Ok(rewrapped)
    }
}

/// Data keys under local master keys in `dir`, sealing every group when `encrypt_all`: for
/// tests of the stores.
#[cfg(test)]
pub fn local_for_tests(db: Arc<DB>, dir: &std::path::Path, encrypt_all: bool) -> Arc<DataKeys> {
    let provider = Arc::new(super::LocalKeys::open(dir).unwrap());
    let default = encrypt_all.then(|| super::DEFAULT_KEY_ID.to_string());
    Arc::new(DataKeys::new(
        db,
        provider,
        DataKeyPolicy::default(),
        default,
        Arc::new(quiver_types::time::SystemClock),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::LocalKeys;
    use quiver_types::time::SystemClock;

    fn open(dir: &std::path::Path, policy: DataKeyPolicy) -> (Arc<DB>, DataKeys) {
        let db = crate::db::open(
            &dir.join("db"),
            &crate::db::StorageOptions {
                block_cache_bytes: 1 << 20,
            },
        )
        .unwrap();
        let keys = Arc::new(LocalKeys::open(&dir.join("keys")).unwrap());
        let data_keys = DataKeys::new(
            db.clone(),
            keys,
            policy,
            Some("local/default".into()),
            Arc::new(SystemClock),
        );
        (db, data_keys)
    }

    const ARN: &str = "arn:aws:sagemaker:us-east-1:000000000000:feature-group/g";

    fn scope(group_id: u64) -> Scope<'static> {
        Scope {
            group_id,
            key_id: "local/default",
            arn: ARN,
        }
    }

    #[test]
    fn sealed_values_open_with_their_aad_and_keys_roll_over_by_uses() {
        let dir = tempfile::tempdir().unwrap();
        let policy = DataKeyPolicy {
            max_age: Duration::from_secs(3600),
            max_uses: 3,
        };
        let (db, keys) = open(dir.path(), policy);
        let mut sealed = Vec::new();
        for i in 0..7u8 {
            let mut out = Vec::new();
            keys.seal(&scope(1), b"record-key", &[i; 40], &mut out)
                .unwrap();
            assert_eq!(out.len(), 40 + OVERHEAD);
            sealed.push(out);
        }
        // 7 values, at most 3 per data key: keys 0, 1 and 2.
        assert_eq!(keys.provider_calls().0, 3);
        for (i, value) in sealed.iter().enumerate() {
            assert_eq!(
                keys.open(1, b"record-key", value).unwrap(),
                vec![i as u8; 40]
            );
            assert!(keys.open(1, b"other-key", value).is_err(), "AAD is bound");
            assert!(
                keys.open(2, b"record-key", value).is_err(),
                "the group is bound"
            );
        }
        let mut damaged = sealed[0].clone();
        damaged[20] ^= 1;
        assert!(keys.open(1, b"record-key", &damaged).is_err());
        // After a restart the stored data keys still open everything, through the provider.
        drop(keys);
        let provider = Arc::new(LocalKeys::open(&dir.path().join("keys")).unwrap());
        let keys = DataKeys::new(
            db.clone(),
            provider.clone(),
            policy,
            None,
            Arc::new(SystemClock),
        );
        for (i, value) in sealed.iter().enumerate() {
            assert_eq!(
                keys.open(1, b"record-key", value).unwrap(),
                vec![i as u8; 40]
            );
        }
        assert_eq!(keys.provider_calls().1, 3, "each data key unwrapped once");

        // Rotation re-wraps the stored keys without touching the sealed values.
        provider.rotate_version("local/default").unwrap();
        assert_eq!(keys.rewrap("local/default").unwrap(), 3);
        assert_eq!(keys.rewrap("local/default").unwrap(), 0, "already current");
        std::fs::remove_file(dir.path().join("keys/local_default.key")).unwrap();
        let provider = Arc::new(LocalKeys::open(&dir.path().join("keys")).unwrap());
        let keys = DataKeys::new(db, provider, policy, None, Arc::new(SystemClock));
        for (i, value) in sealed.iter().enumerate() {
            assert_eq!(
                keys.open(1, b"record-key", value).unwrap(),
                vec![i as u8; 40],
                "readable with version 2 alone"
            );
        }
    }

    #[test]
    fn a_data_key_expires_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let policy = DataKeyPolicy {
            max_age: Duration::from_millis(50),
            max_uses: u64::MAX,
        };
        let (_db, keys) = open(dir.path(), policy);
        let mut out = Vec::new();
        keys.seal(&scope(1), b"k", b"v", &mut out).unwrap();
        keys.seal(&scope(1), b"k", b"v", &mut out).unwrap();
        assert_eq!(keys.provider_calls().0, 1);
        std::thread::sleep(Duration::from_millis(60));
        keys.seal(&scope(1), b"k", b"v", &mut out).unwrap();
        assert_eq!(keys.provider_calls().0, 2);
    }
}
