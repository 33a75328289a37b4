//! Reads and writes of online records, and the atomic write path that also stages offline rows.
//!
//! Keys are `[group id u64 BE][canonical identifier]`, or a keyed hash of the identifier for a
//! group whose records are encrypted (`keys.rs`). Every write (put, soft or hard delete)
//! goes through one RocksDB `WriteBatch` per request, holding the online effect and the staged
//! offline rows together, committed with the configured WAL sync. A write is acknowledged only
//! after that commit returns.
//!
//! Each record's header (event time, expiry, soft-deleted) is also kept under its key in the
//! record-headers column family, written in the same batch as the record. A write reads only
//! that to decide whether it is newer, so with more records than the block cache holds, a put
//! still finds what it compares against in the cache (a header is 18 bytes; a record is often
//! a kilobyte).

use std::collections::HashMap;
use std::sync::Arc;

use rocksdb::{DB, IteratorMode, ReadOptions, WriteBatch, WriteOptions};

use crate::db::{CF_RECORD_HEADERS, CF_RECORDS, CF_SOURCE_POSITIONS, cf};
use crate::kms::DataKeys;
use crate::online::codec::{self, RecordHeader};
pub use crate::online::keys::record_key;
use crate::online::keys::{self, Migrated};
use crate::online::locks::KeyLocks;
use crate::staging::{OfflineStaging, StagedRow};
use quiver_types::error::{Error, Result};
use quiver_types::model::{FeatureGroup, FeatureType, ValidRecord, Value};
use quiver_types::time::{self, Clock, EpochMillis};

/// A record a reader may see (neither soft-deleted nor expired), in its stored form
/// ([`codec`]): readers decode only what they return.
#[derive(Debug, Clone)]
pub struct LiveRecord {
    pub header: RecordHeader,
    pub stored: Vec<u8>,
}

/// Why writes are being refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    /// The data directory's disk is full; writes resume by themselves once space is freed.
    DiskFull = 1,
    /// Writing the data directory failed (EIO, a failed fsync): the storage engine refuses
    /// writes until the server is restarted.
    Io = 2,
}

/// What a put did to the online store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The record is now the online record for its identifier.
    Applied,
    /// The stored record is as new or newer: accepted, offline only.
    Historic,
    /// The write did not target the online store.
    OfflineOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionMode {
    Soft,
    Hard,
}

/// A validated DeleteRecord.
#[derive(Debug, Clone)]
pub struct DeleteRequest {
    pub identifier: String,
    pub event_time_ms: EpochMillis,
    /// The event time as the request spelled it: the offline delete marker keeps that
    /// spelling, as puts keep theirs, so one instant is written one way.
    pub event_time_text: String,
    pub mode: DeletionMode,
    pub online: bool,
    pub offline: bool,
}

pub struct OnlineStore {
    db: Arc<DB>,
    locks: KeyLocks,
    staging: OfflineStaging,
    clock: Arc<dyn Clock>,
    /// fsync the WAL before acknowledging (`wal_sync = "always"`).
    sync_writes: bool,
    /// Encrypt records of groups with a KMS key (and every group with encryption at rest on).
    keys: Arc<DataKeys>,
    /// Why writes are failing, as the last write left it ([`WriteFault`] as a number; 0: they
    /// are not): `/healthz` and the metrics report it.
    write_fault: std::sync::atomic::AtomicU8,
}

/// Marks the record-headers column family as holding every record's header; no record key is
/// this short (keys start with 8 bytes of group id).
const HEADERS_COMPLETE: &[u8] = b"";

impl OnlineStore {
    pub fn open(
        db: Arc<DB>,
        clock: Arc<dyn Clock>,
        sync_writes: bool,
        staging_limit_bytes: u64,
        keys: Arc<DataKeys>,
    ) -> Result<Self> {
        let staging = OfflineStaging::open(&db, staging_limit_bytes, keys.clone())?;
        complete_headers(&db)?;
        Ok(Self {
            db,
            locks: KeyLocks::default(),
            staging,
            clock,
            sync_writes,
            keys,
            write_fault: Default::default(),
        })
    }

    /// Why writes are being refused, if they are (the last one failed so).
    pub fn write_fault(&self) -> Option<WriteFault> {
        match self.write_fault.load(std::sync::atomic::Ordering::Relaxed) {
            1 => Some(WriteFault::DiskFull),
            2 => Some(WriteFault::Io),
            _ => None,
        }
    }

    pub fn data_keys(&self) -> &Arc<DataKeys> {
        &self.keys
    }

    /// Moves every group's records to the keys its encryption calls for (`keys.rs`): once, when
    /// the server opens, before it serves.
    pub fn migrate_record_keys(&self, groups: &[Arc<FeatureGroup>]) -> Result<Migrated> {
        keys::migrate(&self.db, &self.keys, groups)
    }

    /// The key `identifier`'s record of `group` is stored under (see [`keys::key_for`]).
    fn key_for(
        &self,
        group: &FeatureGroup,
        identifier: &str,
        create: bool,
    ) -> Result<Option<Vec<u8>>> {
        keys::key_for(&self.keys, group, identifier, create)
    }

    /// The key of a record being written: made for the group if it has none.
    fn write_key(&self, group: &FeatureGroup, identifier: &str) -> Result<Vec<u8>> {
        self.key_for(group, identifier, true)?
            .ok_or_else(|| Error::internal("no key was made for a record being written"))
    }

    /// A record's stored form: encrypted, holding its identifier, when the group's records are.
    fn encode(
        &self,
        group: &FeatureGroup,
        key: &[u8],
        identifier: &str,
        header: &RecordHeader,
        values: &[(u16, Value)],
    ) -> Result<Vec<u8>> {
        let plain = codec::encode(header, values);
        match self.keys.online_scope(group) {
            Some(scope) => codec::seal(&plain, Some(identifier), key, &self.keys, &scope),
            None => Ok(plain),
        }
    }

    fn commit(&self, batch: WriteBatch, context: &str) -> Result<()> {
        let mut options = WriteOptions::default();
        options.set_sync(self.sync_writes);
        let written = self
            .db
            .write_opt(batch, &options)
            .map_err(|e| Error::storage(context, e));
        let fault = match &written {
            Err(e) if e.kind() == quiver_types::error::ErrorKind::DiskFull => {
                Some(WriteFault::DiskFull)
            }
            Err(e) if e.message().starts_with(quiver_types::error::STORAGE_IO) => {
                Some(WriteFault::Io)
            }
            _ => None,
        };
        let before = self.write_fault();
        if fault != before {
            let code = fault.map_or(0, |f| f as u8);
            self.write_fault
                .store(code, std::sync::atomic::Ordering::Relaxed);
            match fault {
                Some(WriteFault::DiskFull) => tracing::error!(
                    "the data directory's disk is full: writes are refused, reads go on"
                ),
                Some(WriteFault::Io) => tracing::error!(
                    "I/O error writing the data directory: writes are refused until the server \
                     is restarted, reads go on; check the disk"
                ),
                None => tracing::warn!("writes to the data directory succeed again"),
            }
        }
        written
    }

    /// The stored headers for `keys` (one batched multi-get of the record-headers column family),
    /// treating an expired record as
    /// absent: once a record's TTL has passed it is gone for readers, so it must not make a
    /// newer-looking write historic.
    fn live_headers(
        &self,
        keys: &[&[u8]],
        now_ms: EpochMillis,
    ) -> Result<Vec<Option<RecordHeader>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.db
            .batched_multi_get_cf(cf(&self.db, CF_RECORD_HEADERS), keys, false)
            .into_iter()
            .map(|stored| match stored {
                Err(e) => Err(Error::storage("reading the stored record's header", e)),
                Ok(None) => Ok(None),
                Ok(Some(bytes)) => {
                    let header = codec::decode_header(&bytes)?;
                    Ok(header
                        .expires_at_ms
                        .is_none_or(|t| t > now_ms)
                        .then_some(header))
                }
            })
            .collect()
    }

    /// Applies a batch of validated puts in one atomic write, with `source_positions` (keys and
    /// values of [`crate::sources`]) in the same write. Within the batch, later records see the
    /// effect of earlier ones on the same identifier.
    pub fn put_records(
        &self,
        writes: Vec<(Arc<FeatureGroup>, ValidRecord)>,
        source_positions: &[(Vec<u8>, String)],
    ) -> Result<Vec<WriteOutcome>> {
        let offline_rows = writes.iter().filter(|(_, r)| r.targets.offline).count();
        if offline_rows > 0 {
            self.staging.admit()?;
        }
        let keys: Vec<Vec<u8>> = writes
            .iter()
            .map(|(group, record)| self.write_key(group, &record.identifier))
            .collect::<Result<_>>()?;
        let _guards = self.locks.lock_all(&keys);
        let mut reservation = self.staging.reserve(offline_rows);
        let now_ms = self.clock.now_ms();
        let records_cf = cf(&self.db, CF_RECORDS);
        let headers_cf = cf(&self.db, CF_RECORD_HEADERS);
        let mut batch = WriteBatch::default();
        // The newest header per key as this batch has left it so far.
        let mut batch_headers: HashMap<&[u8], Option<RecordHeader>> = HashMap::new();
        // What is stored now for each online write's key, read at once.
        let online_keys: Vec<&[u8]> = writes
            .iter()
            .zip(&keys)
            .filter(|((_, record), _)| record.targets.online)
            .map(|(_, key)| key.as_slice())
            .collect();
        let mut stored = self.live_headers(&online_keys, now_ms)?.into_iter();
        let mut outcomes = Vec::with_capacity(writes.len());
        for ((group, record), key) in writes.into_iter().zip(&keys) {
            let outcome = if record.targets.online {
                let before = stored.next().flatten();
                let current = match batch_headers.get(key.as_slice()) {
                    Some(header) => *header,
                    None => before,
                };
                if current.is_none_or(|h| record.event_time_ms > h.event_time_ms) {
                    let header = RecordHeader {
                        event_time_ms: record.event_time_ms,
                        expires_at_ms: record.expires_at_ms,
                        deleted: false,
                    };
                    let stored =
                        self.encode(&group, key, &record.identifier, &header, &record.values)?;
                    batch.put_cf(headers_cf, key, codec::header_bytes(&stored)?);
                    batch.put_cf(records_cf, key, stored);
                    batch_headers.insert(key.as_slice(), Some(header));
                    WriteOutcome::Applied
                } else {
                    batch_headers.insert(key.as_slice(), current);
                    WriteOutcome::Historic
                }
            } else {
                WriteOutcome::OfflineOnly
            };
            if record.targets.offline {
                let row = StagedRow {
                    group_id: group.id,
                    api_invocation_time_ms: now_ms,
                    event_time_ms: record.event_time_ms,
                    is_deleted: false,
                    values: record.values,
                };
                reservation.stage(&self.db, &mut batch, &row, self.keys.offline_scope(&group))?;
            }
            outcomes.push(outcome);
        }
        let positions_cf = cf(&self.db, CF_SOURCE_POSITIONS);
        for (key, position) in source_positions {
            batch.put_cf(positions_cf, key, position.as_bytes());
        }
        self.commit(batch, "writing records")?;
        reservation.committed();
        Ok(outcomes)
    }

    /// The live record for `identifier`, as stored; `None` when there is none, it is
    /// soft-deleted, or it has expired.
    pub fn get_record(&self, group: &FeatureGroup, identifier: &str) -> Result<Option<LiveRecord>> {
        let Some(key) = self.key_for(group, identifier, false)? else {
            return Ok(None);
        };
        let stored = self
            .db
            .get_pinned_cf(cf(&self.db, CF_RECORDS), &key)
            .map_err(|e| Error::storage("reading a record", e))?;
        match stored {
            None => Ok(None),
            Some(bytes) => self.live(group.id, &key, identifier, &bytes),
        }
    }

    /// The record of `identifier` stored under `key` as readers see it: `None` when hidden,
    /// decrypted when encrypted.
    fn live(
        &self,
        group_id: u64,
        key: &[u8],
        identifier: &str,
        bytes: &[u8],
    ) -> Result<Option<LiveRecord>> {
        let header = codec::decode_header(bytes)?;
        if header.is_hidden_at(self.clock.now_ms()) {
            return Ok(None);
        }
        let stored = if codec::is_sealed(bytes) {
            let opened = codec::unseal(bytes, key, &self.keys, group_id)?;
            if opened
                .identifier
                .as_deref()
                .is_some_and(|held| held != identifier)
            {
                return Err(Error::internal(format!(
                    "feature group {group_id}: the record under the hashed key of the identifier \
                     asked for holds another identifier"
                )));
            }
            opened.plain
        } else {
            bytes.to_vec()
        };
        Ok(Some(LiveRecord { header, stored }))
    }

    /// Looks up many (group, identifier) pairs with one RocksDB multi-get; results are in the
    /// order of `wanted`.
    pub fn multi_get(&self, wanted: &[(&FeatureGroup, &str)]) -> Vec<Result<Option<LiveRecord>>> {
        // A pair without a key (a hashed group with no identifier key) has no record.
        let encoded: Vec<Result<Option<Vec<u8>>>> = wanted
            .iter()
            .map(|(group, identifier)| self.key_for(group, identifier, false))
            .collect();
        let lookups: Vec<&[u8]> = encoded
            .iter()
            .filter_map(|key| key.as_ref().ok()?.as_deref())
            .collect();
        let mut found = self
            .db
            .batched_multi_get_cf(cf(&self.db, CF_RECORDS), &lookups, false)
            .into_iter();
        wanted
            .iter()
            .zip(encoded)
            .map(|((group, identifier), key)| {
                let Some(key) = key? else {
                    return Ok(None);
                };
                match found.next().expect("one result per key looked up") {
                    Err(e) => Err(Error::storage("reading records", e)),
                    Ok(None) => Ok(None),
                    Ok(Some(bytes)) => self.live(group.id, &key, identifier, &bytes),
                }
            })
            .collect()
    }

    /// The group's record identifiers in key order (identifier order, or their hashes' order in
    /// a group whose records are encrypted), starting after `after`: at most `limit`, and
    /// whether more follow. Expired records are never listed; soft-deleted ones only when
    /// `include_deleted`.
    pub fn list_identifiers(
        &self,
        group: &FeatureGroup,
        after: Option<&str>,
        limit: usize,
        include_deleted: bool,
    ) -> Result<(Vec<String>, bool)> {
        let prefix = group.id.to_be_bytes();
        let start = match after {
            None => prefix.to_vec(),
            Some(after) => match self.key_for(group, after, false)? {
                Some(key) => key,
                None => return Ok((Vec::new(), false)),
            },
        };
        let mut scan = ReadOptions::default();
        scan.set_prefix_same_as_start(true);
        if let Some(next) = group.id.checked_add(1) {
            scan.set_iterate_upper_bound(next.to_be_bytes().to_vec());
        }
        let now_ms = self.clock.now_ms();
        let mut identifiers = Vec::new();
        let iter = self.db.iterator_cf_opt(
            cf(&self.db, CF_RECORDS),
            scan,
            IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(|e| Error::storage("listing records", e))?;
            if !key.starts_with(&prefix) {
                break;
            }
            if after.is_some() && *key == *start {
                continue;
            }
            let header = codec::decode_header(&value)?;
            if header.expires_at_ms.is_some_and(|t| t <= now_ms)
                || (header.deleted && !include_deleted)
            {
                continue;
            }
            if identifiers.len() == limit {
                return Ok((identifiers, true));
            }
            let identifier = if codec::holds_identifier(&value) {
                codec::unseal(&value, &key, &self.keys, group.id)?
                    .identifier
                    .unwrap_or_default()
            } else {
                String::from_utf8_lossy(&key[prefix.len()..]).into_owned()
            };
            identifiers.push(identifier);
        }
        Ok((identifiers, false))
    }

    /// Soft or hard delete, as SageMaker: a hard delete not newer than the stored record fails
    /// and writes nothing; a soft delete not newer leaves the online record. Both stage an offline
    /// delete marker.
    pub fn delete_record(&self, group: &FeatureGroup, request: &DeleteRequest) -> Result<()> {
        if request.offline {
            self.staging.admit()?;
        }
        let key = self.write_key(group, &request.identifier)?;
        let _guard = self.locks.lock_all([&key]);
        let mut reservation = self.staging.reserve(usize::from(request.offline));
        let now_ms = self.clock.now_ms();
        let records_cf = cf(&self.db, CF_RECORDS);
        let headers_cf = cf(&self.db, CF_RECORD_HEADERS);
        let mut batch = WriteBatch::default();
        if request.online {
            let current = self.live_headers(&[&key], now_ms)?.pop().flatten();
            let newer = current.is_none_or(|h| request.event_time_ms > h.event_time_ms);
            match request.mode {
                DeletionMode::Hard if !newer => {
                    let stored = current.map_or(0, |h| h.event_time_ms);
                    return Err(Error::conflict(format!(
                        "HardDelete EventTime {} is not newer than the stored record's event time {}; nothing was deleted",
                        time::format_iso8601(request.event_time_ms),
                        time::format_iso8601(stored)
                    )));
                }
                DeletionMode::Hard => {
                    batch.delete_cf(records_cf, &key);
                    batch.delete_cf(headers_cf, &key);
                }
                DeletionMode::Soft if newer => {
                    // The tombstone keeps the delete's event time so older writes stay historic;
                    // it expires like the record it replaces would have.
                    let header = RecordHeader {
                        event_time_ms: request.event_time_ms,
                        expires_at_ms: current.and_then(|h| h.expires_at_ms),
                        deleted: true,
                    };
                    let stored = self.encode(group, &key, &request.identifier, &header, &[])?;
                    batch.put_cf(headers_cf, &key, codec::header_bytes(&stored)?);
                    batch.put_cf(records_cf, &key, stored);
                }
                DeletionMode::Soft => {}
            }
        }
        if request.offline {
            let row = StagedRow {
                group_id: group.id,
                api_invocation_time_ms: now_ms,
                event_time_ms: request.event_time_ms,
                is_deleted: true,
                values: delete_marker_values(group, &request.identifier, request),
            };
            reservation.stage(&self.db, &mut batch, &row, self.keys.offline_scope(group))?;
        }
        self.commit(batch, "deleting a record")?;
        reservation.committed();
        Ok(())
    }

    /// Adds the removal of every online record of `group_id` to `batch`.
    pub fn delete_group_records(&self, batch: &mut WriteBatch, group_id: u64) {
        let from = group_id.to_be_bytes();
        let to = (group_id + 1).to_be_bytes();
        batch.delete_range_cf(cf(&self.db, CF_RECORDS), from, to);
        batch.delete_range_cf(cf(&self.db, CF_RECORD_HEADERS), from, to);
    }

    /// Removes records whose TTL has passed; returns how many. The scan reads the headers, not
    /// the records. Each removal re-checks the header under its key lock, so a newer write that
    /// raced the scan is never removed.
    pub fn purge_expired(&self) -> Result<u64> {
        let now_ms = self.clock.now_ms();
        let records_cf = cf(&self.db, CF_RECORDS);
        let headers_cf = cf(&self.db, CF_RECORD_HEADERS);
        let mut expired = Vec::new();
        // The column family has a prefix extractor; a full scan must not be limited to one prefix.
        let mut scan = ReadOptions::default();
        scan.set_total_order_seek(true);
        for item in self
            .db
            .iterator_cf_opt(headers_cf, scan, IteratorMode::Start)
        {
            let (key, value) =
                item.map_err(|e| Error::storage("scanning for expired records", e))?;
            if *key == *HEADERS_COMPLETE {
                continue;
            }
            if codec::decode_header(&value)?
                .expires_at_ms
                .is_some_and(|t| t <= now_ms)
            {
                expired.push(key);
            }
        }
        let mut purged = 0;
        for chunk in expired.chunks(1000) {
            let _guards = self.locks.lock_all(chunk);
            let mut batch = WriteBatch::default();
            for key in chunk {
                let stored = self
                    .db
                    .get_pinned_cf(headers_cf, key)
                    .map_err(|e| Error::storage("re-reading an expired record", e))?;
                let still_expired = match stored {
                    Some(bytes) => codec::decode_header(&bytes)?
                        .expires_at_ms
                        .is_some_and(|t| t <= now_ms),
                    None => false,
                };
                if still_expired {
                    batch.delete_cf(records_cf, key);
                    batch.delete_cf(headers_cf, key);
                    purged += 1;
                }
            }
            self.commit(batch, "purging expired records")?;
        }
        Ok(purged)
    }

    /// Syncs the WAL to disk (periodic sync mode and shutdown).
    pub fn sync_wal(&self) -> Result<()> {
        self.db
            .flush_wal(true)
            .map_err(|e| Error::storage("syncing the write-ahead log", e))
    }

    pub fn staging(&self) -> &OfflineStaging {
        &self.staging
    }

    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }
}

/// Fills the record-headers column family from the records once, for a database written before
/// it existed, and marks it complete; a crash before the mark only means filling it again.
fn complete_headers(db: &DB) -> Result<()> {
    let headers_cf = cf(db, CF_RECORD_HEADERS);
    let storage = |e| Error::storage("filling the record-headers column family", e);
    if db
        .get_pinned_cf(headers_cf, HEADERS_COMPLETE)
        .map_err(storage)?
        .is_some()
    {
        return Ok(());
    }
    let mut scan = ReadOptions::default();
    scan.set_total_order_seek(true);
    let mut batch = WriteBatch::default();
    let mut filled = 0u64;
    for item in db.iterator_cf_opt(cf(db, CF_RECORDS), scan, IteratorMode::Start) {
        let (key, value) = item.map_err(storage)?;
        match codec::header_bytes(&value) {
            Ok(header) => batch.put_cf(headers_cf, &key, header),
            // Left without a header, the record reads as absent to writes, and the next put
            // of its identifier replaces it.
            Err(e) => tracing::warn!(key = ?key, "record without a readable header: {e}"),
        }
        filled += 1;
        if batch.len() >= 10_000 {
            db.write(std::mem::take(&mut batch)).map_err(storage)?;
        }
    }
    batch.put_cf(headers_cf, HEADERS_COMPLETE, b"1");
    db.write(batch).map_err(storage)?;
    if filled > 0 {
        tracing::info!(records = filled, "filled the record-headers column family");
    }
    Ok(())
}

/// A delete marker row holds the identifier and the delete's event time, typed as the group
/// defines them; every other feature is null.
fn delete_marker_values(
    group: &FeatureGroup,
    identifier: &str,
    request: &DeleteRequest,
) -> Vec<(u16, Value)> {
    let (text, event_time_ms) = (request.event_time_text.as_str(), request.event_time_ms);
    let mut values = Vec::with_capacity(2);
    if let Some(ordinal) = group.ordinal(&group.record_identifier_feature_name) {
        let value = match group.record_identifier().feature_type {
            // The identifier was canonicalised from an integer, so it parses.
            FeatureType::Integral => identifier
                .parse()
                .map(Value::Integral)
                .unwrap_or_else(|_| Value::String(identifier.to_string())),
            _ => Value::String(identifier.to_string()),
        };
        values.push((ordinal, value));
    }
    if let Some(ordinal) = group.ordinal(&group.event_time_feature_name) {
        // As sent when it is in the feature's own form (ISO-8601 text for a String, epoch
        // seconds for a Fractional); otherwise converted to that form.
        let value = match group.event_time().feature_type {
            FeatureType::Fractional => Value::Fractional(
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite())
                    .unwrap_or_else(|| time::format_epoch_seconds(event_time_ms)),
            ),
            _ if time::parse_iso8601(text).is_ok() => Value::String(text.to_string()),
            _ => Value::String(time::format_iso8601(event_time_ms)),
        };
        values.push((ordinal, value));
    }
    values.sort_by_key(|(ordinal, _)| *ordinal);
    values
}
