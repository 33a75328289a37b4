//! Staging of offline rows: the durable hand-off between the write path and the flusher.
//!
//! Every accepted write that targets the offline store (applied or historic put, soft or hard
//! delete marker) is added to the same RocksDB `WriteBatch` as its online effect, so it is staged
//! durably if and only if the write is acknowledged.
//!
//! Column family `offline_staging`, key `[sequence u64 BE]`. Value (format 1):
//! `[format u8 = 1][group id u64 LE][api_invocation_time_ms i64 LE]` followed by the row in the
//! online record encoding (`online/codec.rs`), whose deleted flag is the row's `is_deleted`.
//! Format 2 is the same with format = 2 and the row encoding sealed with the group's data key
//! ([`crate::kms::DataKeys`]), bound to the sequence key and the 17 bytes before it.
//!
//! Column family `offline_meta` holds the flusher's bookkeeping: `flushed_upto` (u64 LE, every
//! sequence below it has been written to the offline store, so numbering never goes back and a
//! file name is never reused) and `flush_intent` (JSON [`FlushIntent`], the range a flush is
//! writing, so a flush interrupted by a crash is redone with exactly the same rows and names).
//!
//! Sequence numbers are reserved before a batch commits, so batches may commit out of sequence
//! order. The [`OfflineStaging::watermark`] is the lowest sequence still reserved by a write in
//! flight: every row below it that will ever exist is committed, so the flusher only takes rows
//! below it and a flushed range never gains a row later.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rocksdb::{DB, Direction, IteratorMode, ReadOptions, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::db::{CF_OFFLINE_META, CF_OFFLINE_STAGING, cf};
use crate::kms::{DataKeys, Scope};
use crate::online::codec::{self, RecordHeader, StoredRecord};
use quiver_types::error::{Error, Result};
use quiver_types::model::Value;
use quiver_types::time::EpochMillis;

const FORMAT_V1: u8 = 1;
const FORMAT_SEALED: u8 = 2;
const PREFIX_LEN: usize = 17;
const KEY_FLUSHED_UPTO: &[u8] = b"flushed_upto";
const KEY_FLUSH_INTENT: &[u8] = b"flush_intent";
const HOUR_MS: i64 = 3_600_000;

/// One offline row waiting to be written to the offline store.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedRow {
    pub group_id: u64,
    pub api_invocation_time_ms: EpochMillis,
    pub event_time_ms: EpochMillis,
    pub is_deleted: bool,
    /// (feature ordinal, value); a delete marker holds only the identifier and event time.
    pub values: Vec<(u16, Value)>,
}

/// A staged row as read back, with its staged size.
#[derive(Debug, Clone)]
pub struct Staged {
    pub bytes: u64,
    pub row: StagedRow,
}

/// The range of sequences one flush writes, recorded before any file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushIntent {
    /// First sequence of the range (inclusive).
    pub start: u64,
    /// End of the range (exclusive); every row in `start..end` is committed.
    pub end: u64,
    /// The `write_time` every row of this flush carries; also names the files.
    pub write_time_ms: EpochMillis,
}

#[derive(Debug, Default)]
struct Sequencer {
    next: u64,
    /// First sequence of each reservation whose batch has not finished committing.
    in_flight: BTreeSet<u64>,
}

#[derive(Debug)]
pub struct OfflineStaging {
    sequencer: Mutex<Sequencer>,
    pending_rows: AtomicU64,
    pending_bytes: AtomicU64,
    /// Writes to the offline store are refused (UNAVAILABLE) while this many bytes wait.
    limit_bytes: u64,
    /// Every row below this sequence has been flushed. Reads start here rather than at the
    /// column family's first key: below it lie only the range tombstones of earlier flushes,
    /// which a seek from the start would wade through each time.
    flushed_upto: AtomicU64,
    keys: std::sync::Arc<DataKeys>,
}

impl OfflineStaging {
    /// Continues numbering after the last staged or flushed row, and counts the backlog.
    pub fn open(db: &DB, limit_bytes: u64, keys: std::sync::Arc<DataKeys>) -> Result<Self> {
        let staging_cf = cf(db, CF_OFFLINE_STAGING);
        let (mut rows, mut bytes, mut last) = (0u64, 0u64, None);
        for item in db.iterator_cf(staging_cf, IteratorMode::Start) {
            let (key, value) = item.map_err(|e| Error::storage("counting staged rows", e))?;
            rows += 1;
            bytes += value.len() as u64;
            last = Some(decode_key(&key)?);
        }
        let flushed_upto = read_flushed_upto(db)?.unwrap_or(0);
        let next = last.map_or(0, |s| s + 1).max(flushed_upto);
        Ok(Self {
            sequencer: Mutex::new(Sequencer {
                next,
                in_flight: BTreeSet::new(),
            }),
            pending_rows: AtomicU64::new(rows),
            pending_bytes: AtomicU64::new(bytes),
            limit_bytes,
            flushed_upto: AtomicU64::new(flushed_upto),
            keys,
        })
    }

    /// Back-pressure: refuses a write to the offline store while the backlog is at its limit,
    /// so nothing is ever dropped; the caller answers UNAVAILABLE and the client retries.
    pub fn admit(&self) -> Result<()> {
        let pending = self.pending_bytes.load(Ordering::Relaxed);
        if pending >= self.limit_bytes {
            return Err(Error::unavailable(format!(
                "the offline store is behind: {} MB of accepted rows are waiting to be written (limit {} MB, --offline-staging-limit-mb); retry later",
                pending / (1024 * 1024),
                self.limit_bytes / (1024 * 1024)
            )));
        }
        Ok(())
    }

    /// Reserves `count` sequence numbers for one batch. Keep the reservation until the batch
    /// has committed (or failed), then call [`Reservation::committed`] or drop it.
    pub fn reserve(&self, count: usize) -> Reservation<'_> {
        if count == 0 {
            // Nothing to stage (an online-only write): no sequence numbers, no lock.
            return Reservation {
                staging: self,
                start: 0,
                next: 0,
                end: 0,
                bytes: 0,
            };
        }
        let mut sequencer = self.sequencer.lock();
        let start = sequencer.next;
        sequencer.next += count as u64;
        sequencer.in_flight.insert(start);
        Reservation {
            staging: self,
            start,
            next: start,
            end: start + count as u64,
            bytes: 0,
        }
    }

    /// Every row below this sequence that will ever be staged has been committed.
    pub fn watermark(&self) -> u64 {
        let sequencer = self.sequencer.lock();
        sequencer
            .in_flight
            .first()
            .copied()
            .unwrap_or(sequencer.next)
    }

    pub fn pending_rows(&self) -> u64 {
        self.pending_rows.load(Ordering::Relaxed)
    }

    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes.load(Ordering::Relaxed)
    }

    /// The first staged row below `end`: its sequence and when it was accepted.
    pub fn oldest(&self, db: &DB, end: u64) -> Result<Option<(u64, EpochMillis)>> {
        let mut options = ReadOptions::default();
        let floor = self.flushed_upto.load(Ordering::Relaxed).to_be_bytes();
        options.set_iterate_lower_bound(floor);
        options.set_iterate_upper_bound(end.to_be_bytes());
        let first = db
            .iterator_cf_opt(
                cf(db, CF_OFFLINE_STAGING),
                options,
                IteratorMode::From(&floor, Direction::Forward),
            )
            .next()
            .transpose()
            .map_err(|e| Error::storage("reading the oldest staged row", e))?;
        first
            .map(|(key, value)| Ok((decode_key(&key)?, api_invocation_time(&value)?)))
            .transpose()
    }

    /// Staged rows from `start` up to (not including) `end`, at most `max_bytes` of them (at
    /// least one row); returns the rows and where the range read actually ends.
    pub fn read(
        &self,
        db: &DB,
        start: u64,
        end: u64,
        max_bytes: u64,
    ) -> Result<(Vec<Staged>, u64)> {
        let mut options = ReadOptions::default();
        let from = start.to_be_bytes();
        options.set_iterate_lower_bound(from);
        options.set_iterate_upper_bound(end.to_be_bytes());
        let mut rows = Vec::new();
        let mut total = 0u64;
        for item in db.iterator_cf_opt(
            cf(db, CF_OFFLINE_STAGING),
            options,
            IteratorMode::From(&from, Direction::Forward),
        ) {
            let (key, value) = item.map_err(|e| Error::storage("reading staged rows", e))?;
            let sequence = decode_key(&key)?;
            let bytes = value.len() as u64;
            // Never past the limit: a flush splits its files at the same limit, so one row over
            // it would become a file of its own.
            if !rows.is_empty() && total.saturating_add(bytes) > max_bytes {
                return Ok((rows, sequence));
            }
            total += bytes;
            rows.push(Staged {
                bytes: value.len() as u64,
                row: decode(&value, &key, &self.keys)?,
            });
        }
        Ok((rows, end))
    }

    /// What a query sees of staging: from one RocksDB snapshot, the flush position (every row
    /// below it is in a file, every file of a later flush holds only rows at or above it) and
    /// each staged row of `group_id` whose event time is within `hours` (epoch milliseconds,
    /// whole hours, both ends inclusive), passed to `visit` in sequence order.
    ///
    /// With the two from one snapshot, a reader that takes the files of flushes starting below
    /// the position and these rows sees every committed row once, whatever flush completes
    /// while it reads.
    pub fn snapshot_group(
        &self,
        db: &DB,
        group_id: u64,
        hours: (Option<EpochMillis>, Option<EpochMillis>),
        mut visit: impl FnMut(StagedRow) -> Result<()>,
    ) -> Result<u64> {
        let snapshot = db.snapshot();
        let flushed_upto = decode_flushed_upto(
            snapshot
                .get_cf(cf(db, CF_OFFLINE_META), KEY_FLUSHED_UPTO)
                .map_err(|e| Error::storage("reading the offline flush position", e))?,
        )?
        .unwrap_or(0);
        let hour = |ms: EpochMillis| ms.div_euclid(HOUR_MS);
        let (from_hour, to_hour) = (hours.0.map(hour), hours.1.map(hour));
        let from = flushed_upto.to_be_bytes();
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(from);
        for item in snapshot.iterator_cf_opt(
            cf(db, CF_OFFLINE_STAGING),
            options,
            IteratorMode::From(&from, Direction::Forward),
        ) {
            let (key, value) = item.map_err(|e| Error::storage("reading staged rows", e))?;
            // The group is in the clear prefix: other groups' rows are never decoded.
            if value
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                != Some(group_id)
            {
                continue;
            }
            let row = decode(&value, &key, &self.keys)?;
            let h = hour(row.event_time_ms);
            if from_hour.is_some_and(|f| h < f) || to_hour.is_some_and(|t| h > t) {
                continue;
            }
            visit(row)?;
        }
        Ok(flushed_upto)
    }

    pub fn intent(&self, db: &DB) -> Result<Option<FlushIntent>> {
        let bytes = db
            .get_cf(cf(db, CF_OFFLINE_META), KEY_FLUSH_INTENT)
            .map_err(|e| Error::storage("reading the offline flush intent", e))?;
        bytes
            .map(|b| {
                serde_json::from_slice(&b).map_err(|e| {
                    Error::internal(format!("offline flush intent is unreadable: {e}"))
                })
            })
            .transpose()
    }

    /// Records the range a flush is about to write; fsynced, so a crash redoes the same flush.
    pub fn begin_flush(&self, db: &DB, intent: &FlushIntent) -> Result<()> {
        let json = serde_json::to_vec(intent).expect("a FlushIntent always serialises");
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(db, CF_OFFLINE_META), KEY_FLUSH_INTENT, json);
        commit_synced(db, batch, "recording an offline flush intent")
    }

    /// The flush's files are all written: removes its rows from staging and the intent, in one
    /// fsynced write. `rows` and `bytes` are what the range held.
    pub fn finish_flush(&self, db: &DB, intent: &FlushIntent, rows: u64, bytes: u64) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            cf(db, CF_OFFLINE_STAGING),
            intent.start.to_be_bytes(),
            intent.end.to_be_bytes(),
        );
        let meta = cf(db, CF_OFFLINE_META);
        batch.put_cf(meta, KEY_FLUSHED_UPTO, intent.end.to_le_bytes());
        batch.delete_cf(meta, KEY_FLUSH_INTENT);
        commit_synced(db, batch, "removing flushed rows from offline staging")?;
        self.flushed_upto.fetch_max(intent.end, Ordering::Relaxed);
        self.pending_rows.fetch_sub(rows, Ordering::Relaxed);
        self.pending_bytes.fetch_sub(bytes, Ordering::Relaxed);
        Ok(())
    }
}

/// Sequence numbers for one batch's staged rows.
pub struct Reservation<'a> {
    staging: &'a OfflineStaging,
    start: u64,
    next: u64,
    end: u64,
    bytes: u64,
}

impl Reservation<'_> {
    /// Adds `row` to `batch`, encrypted for `scope` when given; it is staged when (and only
    /// when) the batch commits.
    pub fn stage(
        &mut self,
        db: &DB,
        batch: &mut WriteBatch,
        row: &StagedRow,
        scope: Option<Scope<'_>>,
    ) -> Result<()> {
        assert!(self.next < self.end, "more rows staged than reserved");
        let key = self.next.to_be_bytes();
        let value = match scope {
            Some(scope) => seal(row, &key, &self.staging.keys, &scope)?,
            None => encode(row),
        };
        self.bytes += value.len() as u64;
        batch.put_cf(cf(db, CF_OFFLINE_STAGING), key, value);
        self.next += 1;
        Ok(())
    }

    /// The batch committed: its rows count towards the backlog.
    pub fn committed(self) {
        let staged = self.next - self.start;
        self.staging
            .pending_rows
            .fetch_add(staged, Ordering::Relaxed);
        self.staging
            .pending_bytes
            .fetch_add(self.bytes, Ordering::Relaxed);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.end > self.start {
            self.staging.sequencer.lock().in_flight.remove(&self.start);
        }
    }
}

fn commit_synced(db: &DB, batch: WriteBatch, context: &str) -> Result<()> {
    let mut options = rocksdb::WriteOptions::default();
    options.set_sync(true);
    db.write_opt(batch, &options)
        .map_err(|e| Error::storage(context, e))
}

fn read_flushed_upto(db: &DB) -> Result<Option<u64>> {
    let bytes = db
        .get_cf(cf(db, CF_OFFLINE_META), KEY_FLUSHED_UPTO)
        .map_err(|e| Error::storage("reading the offline flush position", e))?;
    decode_flushed_upto(bytes)
}

fn decode_flushed_upto(bytes: Option<Vec<u8>>) -> Result<Option<u64>> {
    bytes
        .map(|b| {
            b.as_slice()
                .try_into()
                .map(u64::from_le_bytes)
                .map_err(|_| Error::internal("offline flush position is corrupt"))
        })
        .transpose()
}

pub fn encode(row: &StagedRow) -> Vec<u8> {
    let header = RecordHeader {
        event_time_ms: row.event_time_ms,
        expires_at_ms: None,
        deleted: row.is_deleted,
    };
    let body = codec::encode(&header, &row.values);
    let mut out = Vec::with_capacity(17 + body.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&row.group_id.to_le_bytes());
    out.extend_from_slice(&row.api_invocation_time_ms.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// `row` encoded and encrypted for `scope` (format 2), bound to its sequence `key`.
fn seal(row: &StagedRow, key: &[u8], keys: &DataKeys, scope: &Scope<'_>) -> Result<Vec<u8>> {
    let plain = encode(row);
    let mut out = Vec::with_capacity(plain.len() + crate::kms::data_keys::OVERHEAD);
    out.extend_from_slice(&plain[..PREFIX_LEN]);
    out[0] = FORMAT_SEALED;
    let aad = [key, &out[..PREFIX_LEN]].concat();
    keys.seal(scope, &aad, &plain[PREFIX_LEN..], &mut out)?;
    Ok(out)
}

/// When the row staged as `bytes` was accepted (no decryption needed).
fn api_invocation_time(bytes: &[u8]) -> Result<EpochMillis> {
    bytes
        .get(9..PREFIX_LEN)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_le_bytes)
        .ok_or_else(|| Error::internal("corrupt staged offline row"))
}

/// Decodes a staged row stored under `key`, decrypting it when it is encrypted.
pub fn decode(bytes: &[u8], key: &[u8], keys: &DataKeys) -> Result<StagedRow> {
    let corrupt = || Error::internal("corrupt staged offline row");
    if bytes.len() < PREFIX_LEN || !matches!(bytes[0], FORMAT_V1 | FORMAT_SEALED) {
        return Err(corrupt());
    }
    let group_id = u64::from_le_bytes(bytes[1..9].try_into().map_err(|_| corrupt())?);
    let api_invocation_time_ms = api_invocation_time(bytes)?;
    let opened;
    let body = if bytes[0] == FORMAT_SEALED {
        let aad = [key, &bytes[..PREFIX_LEN]].concat();
        opened = keys.open(group_id, &aad, &bytes[PREFIX_LEN..])?;
        &opened[..]
    } else {
        &bytes[PREFIX_LEN..]
    };
    let StoredRecord { header, values } = codec::decode(body)?;
    Ok(StagedRow {
        group_id,
        api_invocation_time_ms,
        event_time_ms: header.event_time_ms,
        is_deleted: header.deleted,
        values,
    })
}

fn decode_key(key: &[u8]) -> Result<u64> {
    key.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| Error::internal("corrupt staged offline row key"))
}

/// Every staged row in sequence order (for tests).
pub fn read_all(db: &DB, keys: &DataKeys) -> Result<Vec<(u64, StagedRow)>> {
    db.iterator_cf(cf(db, CF_OFFLINE_STAGING), IteratorMode::Start)
        .map(|item| {
            let (key, value) =
                item.map_err(|e| Error::storage("reading staged offline rows", e))?;
            Ok((decode_key(&key)?, decode(&value, &key, keys)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_waits_for_the_oldest_batch_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::open(
            dir.path(),
            &crate::db::StorageOptions {
                block_cache_bytes: 1 << 20,
            },
        )
        .unwrap();
        let keys = crate::kms::data_keys::local_for_tests(db.clone(), &dir.path().join("k"), false);
        let staging = OfflineStaging::open(&db, u64::MAX, keys).unwrap();
        let first = staging.reserve(2);
        let second = staging.reserve(3);
        assert_eq!(staging.watermark(), 0);
        drop(second);
        assert_eq!(staging.watermark(), 0, "an older batch is still in flight");
        drop(first);
        assert_eq!(staging.watermark(), 5);
    }

    #[test]
    fn numbering_never_goes_back_after_a_flush_empties_staging() {
        let dir = tempfile::tempdir().unwrap();
        let options = crate::db::StorageOptions {
            block_cache_bytes: 1 << 20,
        };
        let db = crate::db::open(dir.path(), &options).unwrap();
        // Encrypted rows: they read back through their data keys.
        let keys = crate::kms::data_keys::local_for_tests(db.clone(), &dir.path().join("k"), true);
        let staging = OfflineStaging::open(&db, u64::MAX, keys.clone()).unwrap();
        let arn = "arn:aws:sagemaker:us-east-1:000000000000:feature-group/g";
        let scope = || {
            Some(Scope {
                group_id: 1,
                key_id: crate::kms::DEFAULT_KEY_ID,
                arn,
            })
        };
        let row = StagedRow {
            group_id: 1,
            api_invocation_time_ms: 5,
            event_time_ms: 5,
            is_deleted: false,
            values: vec![(0, Value::Integral(7))],
        };
        let mut batch = WriteBatch::default();
        let mut reservation = staging.reserve(2);
        reservation.stage(&db, &mut batch, &row, scope()).unwrap();
        reservation.stage(&db, &mut batch, &row, None).unwrap();
        db.write(batch).unwrap();
        reservation.committed();
        assert_eq!(staging.pending_rows(), 2);
        let (rows, end) = staging.read(&db, 0, staging.watermark(), u64::MAX).unwrap();
        assert_eq!((rows.len(), end), (2, 2));
        // A limit below two rows' bytes reads one row, never more than the limit (and at least
        // one row, however large).
        let (first, end_of_first) = staging.read(&db, 0, 2, rows[0].bytes + 1).unwrap();
        assert_eq!((first.len(), end_of_first), (1, 1));
        let (one, _) = staging.read(&db, 0, 2, 1).unwrap();
        assert_eq!(one.len(), 1);
        assert!(
            rows.iter().all(|r| r.row == row),
            "sealed and plain rows read back alike"
        );
        let intent = FlushIntent {
            start: 0,
            end,
            write_time_ms: 9,
        };
        staging.begin_flush(&db, &intent).unwrap();
        assert_eq!(staging.intent(&db).unwrap(), Some(intent));
        let bytes = rows.iter().map(|r| r.bytes).sum();
        staging.finish_flush(&db, &intent, 2, bytes).unwrap();
        assert_eq!((staging.pending_rows(), staging.pending_bytes()), (0, 0));
        assert_eq!(staging.intent(&db).unwrap(), None);
        drop(staging);
        drop(keys);
        drop(db);
        let db = crate::db::open(dir.path(), &options).unwrap();
        let keys = crate::kms::data_keys::local_for_tests(db.clone(), &dir.path().join("k"), true);
        let staging = OfflineStaging::open(&db, u64::MAX, keys).unwrap();
        assert_eq!(staging.watermark(), 2, "sequence numbers are never reused");
    }
}
