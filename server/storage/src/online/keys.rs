//! How online records are keyed, and the migration between the two ways.
//!
//! - A group whose online records are not encrypted keys each record by its identifier:
//!   `[group id u64 BE][identifier]` ([`record_key`]), and ListRecords reads identifiers from
//!   the keys.
//! - A group whose online records are encrypted keys each by a keyed hash of its identifier:
//!   `[group id u64 BE][HMAC-SHA256(identifier key, identifier)]` ([`hashed_key`]), so no
//!   identifier is stored in clear (identifiers are often e-mail addresses or account numbers).
//!   The identifier key is the group's, from the KMS envelope ([`crate::kms::data_keys`]); the
//!   identifier itself is sealed in the record's value (format 3, `codec.rs`), where
//!   ListRecords finds it. Lookups hash the identifier they are asked for; the TTL purge, range
//!   deletes and the write path work on keys alone and do not change.
//!
//! Which way a group is keyed follows whether its records are encrypted, which is fixed for a
//! process. When the server opens, [`migrate`] brings every group to the way it is now keyed:
//! a data dir written before identifiers were hashed, or before encryption was turned on, has
//! its records moved to hashed keys (and sealed); when encryption was turned off, records move
//! back to identifier keys, their values staying sealed as records written before encryption
//! was turned off stay. Each batch of moves is one atomic write, and the group's identifier
//! key records when a move to hashed keys is complete, so a crash part way only means moving
//! the rest at the next start.

use std::sync::Arc;

use rocksdb::{DB, IteratorMode, ReadOptions, WriteBatch, WriteOptions};

use crate::db::{CF_RECORD_HEADERS, CF_RECORDS, cf};
use crate::kms::data_keys::IdentifierKey;
use crate::kms::{DataKeys, Scope};
use crate::online::codec;
use quiver_types::error::{Error, Result};
use quiver_types::model::FeatureGroup;

/// Records moved per atomic write.
const MOVE_BATCH: usize = 1000;

/// The key of `identifier`'s record in a group whose records are not encrypted.
pub fn record_key(group_id: u64, identifier: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + identifier.len());
    key.extend_from_slice(&group_id.to_be_bytes());
    key.extend_from_slice(identifier.as_bytes());
    key
}

/// The key of `identifier`'s record in a group whose records are encrypted.
pub fn hashed_key(group_id: u64, key: &IdentifierKey, identifier: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + IdentifierKey::LEN);
    out.extend_from_slice(&group_id.to_be_bytes());
    out.extend_from_slice(&key.hash(identifier));
    out
}

/// The key `identifier`'s record of `group` is stored under: `None` when the group's records are
/// hashed and it has no identifier key yet, so none is stored (a read finds nothing), unless
/// `create`, which makes the key (a write).
pub fn key_for(
    keys: &DataKeys,
    group: &FeatureGroup,
    identifier: &str,
    create: bool,
) -> Result<Option<Vec<u8>>> {
    match keys.online_scope(group) {
        None => Ok(Some(record_key(group.id, identifier))),
        Some(scope) => Ok(keys
            .identifier_key(&scope, create)?
            .map(|key| hashed_key(group.id, &key, identifier))),
    }
}

/// What [`migrate`] moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Records moved from identifier keys to hashed keys.
    pub hashed: u64,
    /// Records moved from hashed keys back to identifier keys.
    pub unhashed: u64,
}

/// Brings every group's online records to the keys its encryption calls for (see the module
/// documentation). Runs before the store serves.
pub fn migrate(db: &DB, keys: &DataKeys, groups: &[Arc<FeatureGroup>]) -> Result<Migrated> {
    let mut migrated = Migrated::default();
    for group in groups {
        let group_id = group.id;
        match keys.online_scope(group) {
            Some(scope) => {
                let stored = keys.identifier_key_stored(group_id)?;
                if stored.as_ref().is_some_and(|k| k.migrated) {
                    continue;
                }
                // Made when the first record to move is met: a group with none needs no key
                // until its first write (and no call to a key provider now).
                let mut key = None;
                let moved = move_records(db, group_id, |old_key, stored| {
                    if codec::holds_identifier(stored) {
                        return Ok(None);
                    }
                    let identifier = std::str::from_utf8(&old_key[8..]).map_err(|_| {
                        Error::internal(format!(
                            "feature group {} has a record whose key is not an identifier",
                            group.name
                        ))
                    })?;
                    let plain = if codec::is_sealed(stored) {
                        codec::unseal(stored, old_key, keys, group_id)?.plain
                    } else {
                        stored.to_vec()
                    };
                    if key.is_none() {
                        key = Some(keys.identifier_key_for_migration(&scope).map_err(|e| {
                            e.at(format!(
                                "moving feature group {}'s online records to hashed identifiers \
                                 (encryption at rest)",
                                group.name
                            ))
                        })?);
                    }
                    let key = key.as_ref().expect("made above");
                    let new_key = hashed_key(group_id, key, identifier);
                    let sealed = codec::seal(&plain, Some(identifier), &new_key, keys, &scope)?;
                    Ok(Some((new_key, sealed)))
                })?;
                if moved > 0 || stored.is_some() {
                    keys.identifier_keys_migrated(group_id)?;
                }
                if moved > 0 {
                    tracing::info!(
                        group = %group.name,
                        records = moved,
                        "online records moved to hashed identifiers (encryption at rest)"
                    );
                }
                migrated.hashed += moved;
            }
            None => {
                let Some(stored) = keys.identifier_key_stored(group_id)? else {
                    continue;
                };
                // Values stay sealed, under the key they were sealed for.
                let scope = Scope {
                    group_id,
                    key_id: &stored.key_id,
                    arn: &stored.arn,
                };
                let moved = move_records(db, group_id, |old_key, stored| {
                    if !codec::holds_identifier(stored) {
                        return Ok(None);
                    }
                    let opened = codec::unseal(stored, old_key, keys, group_id)?;
                    let identifier = opened
                        .identifier
                        .ok_or_else(|| Error::internal("a keyed record without its identifier"))?;
                    let new_key = record_key(group_id, &identifier);
                    let sealed = codec::seal(&opened.plain, None, &new_key, keys, &scope)?;
                    Ok(Some((new_key, sealed)))
                })?;
                keys.drop_identifier_key(group_id)?;
                tracing::warn!(
                    group = %group.name,
                    records = moved,
                    "encryption at rest is off for this group now: its online records are keyed \
                     by their identifiers again (their values stay encrypted)"
                );
                migrated.unhashed += moved;
            }
        }
    }
    Ok(migrated)
}

/// Moves each record of `group_id` that `to` gives a new key and value for, in atomic batches
/// (the record and its header together); returns how many moved.
fn move_records(
    db: &DB,
    group_id: u64,
    mut to: impl FnMut(&[u8], &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>>,
) -> Result<u64> {
    let records_cf = cf(db, CF_RECORDS);
    let headers_cf = cf(db, CF_RECORD_HEADERS);
    let storage = |e| Error::storage("moving online records to new keys", e);
    let mut scan = ReadOptions::default();
    scan.set_prefix_same_as_start(true);
    if let Some(next) = group_id.checked_add(1) {
        scan.set_iterate_upper_bound(next.to_be_bytes().to_vec());
    }
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    let mut batch = WriteBatch::default();
    let mut moved = 0u64;
    // The iterator reads the records as they were when it began: moved ones are not met again.
    let prefix = group_id.to_be_bytes();
    for item in db.iterator_cf_opt(
        records_cf,
        scan,
        IteratorMode::From(&prefix, rocksdb::Direction::Forward),
    ) {
        let (old_key, stored) = item.map_err(storage)?;
        if !old_key.starts_with(&prefix) {
            break;
        }
        let Some((new_key, value)) = to(&old_key, &stored)? else {
            continue;
        };
        batch.delete_cf(records_cf, &old_key);
        batch.delete_cf(headers_cf, &old_key);
        batch.put_cf(headers_cf, &new_key, codec::header_bytes(&value)?);
        batch.put_cf(records_cf, &new_key, value);
        moved += 1;
        if batch.len() >= 4 * MOVE_BATCH {
            db.write_opt(std::mem::take(&mut batch), &sync)
                .map_err(storage)?;
        }
    }
    db.write_opt(batch, &sync).map_err(storage)?;
    Ok(moved)
}
