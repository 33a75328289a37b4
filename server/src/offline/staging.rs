//! Staging of offline rows. Every accepted write that targets the offline store (applied or
//! historic put, soft or hard delete marker) is added to the same RocksDB `WriteBatch` as its
//! online effect, so it is staged durably if and only if the write is acknowledged.
//!
//! Key: `[sequence u64 BE]`, increasing in the order rows were staged. Value (format 1):
//! `[format u8 = 1][group id u64 LE][api_invocation_time_ms i64 LE]` followed by the row in the
//! online record encoding (`online/codec.rs`), whose deleted flag is the row's `is_deleted`.
//!
//! Sequence numbers are assigned before the batch commits, so two concurrent batches may commit
//! out of sequence order; a reader that drains staging must read from a snapshot and tolerate a
//! gap that fills in later.

use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::{DB, IteratorMode, WriteBatch};

use crate::db::{CF_OFFLINE_STAGING, cf};
use crate::error::{Error, Result};
use crate::model::Value;
use crate::online::codec::{self, RecordHeader, StoredRecord};
use crate::time::EpochMillis;

const FORMAT_V1: u8 = 1;

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

#[derive(Debug)]
pub struct OfflineStaging {
    next_sequence: AtomicU64,
}

impl OfflineStaging {
    /// Continues numbering after the last staged row.
    pub fn open(db: &DB) -> Result<Self> {
        let last = db
            .iterator_cf(cf(db, CF_OFFLINE_STAGING), IteratorMode::End)
            .next()
            .transpose()
            .map_err(|e| Error::storage("reading the last staged offline row", e))?;
        let next = match last {
            Some((key, _)) => decode_key(&key)? + 1,
            None => 0,
        };
        Ok(Self {
            next_sequence: AtomicU64::new(next),
        })
    }

    /// Adds `row` to `batch`; it is staged when (and only when) the batch commits.
    pub fn stage(&self, db: &DB, batch: &mut WriteBatch, row: &StagedRow) {
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        batch.put_cf(
            cf(db, CF_OFFLINE_STAGING),
            sequence.to_be_bytes(),
            encode(row),
        );
    }
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

pub fn decode(bytes: &[u8]) -> Result<StagedRow> {
    let corrupt = || Error::internal("corrupt staged offline row");
    if bytes.len() < 17 || bytes[0] != FORMAT_V1 {
        return Err(corrupt());
    }
    let group_id = u64::from_le_bytes(bytes[1..9].try_into().map_err(|_| corrupt())?);
    let api_invocation_time_ms =
        i64::from_le_bytes(bytes[9..17].try_into().map_err(|_| corrupt())?);
    let StoredRecord { header, values } = codec::decode(&bytes[17..], |_| true)?;
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

/// Every staged row in sequence order (for tests and the flusher).
pub fn read_all(db: &DB) -> Result<Vec<(u64, StagedRow)>> {
    db.iterator_cf(cf(db, CF_OFFLINE_STAGING), IteratorMode::Start)
        .map(|item| {
            let (key, value) =
                item.map_err(|e| Error::storage("reading staged offline rows", e))?;
            Ok((decode_key(&key)?, decode(&value)?))
        })
        .collect()
}
