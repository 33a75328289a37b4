//! The `auth` column family: principals, groups, managed policies and access keys, as JSON
//! values under `<kind>/<name>` keys. What they mean belongs to the `quiver-auth` crate; this
//! is how they are kept: read whole at start, changed in atomic batches that are synced before
//! they are answered.

use std::sync::Arc;

use rocksdb::{DB, IteratorMode, WriteBatch, WriteOptions};
use serde::Serialize;

use crate::db::{CF_AUTH, cf};
use quiver_types::error::{Error, Result};

pub struct AuthRecords {
    db: Arc<DB>,
}

impl AuthRecords {
    pub fn new(db: Arc<DB>) -> Self {
        Self { db }
    }

    /// Every record, in key order: its key and its JSON value.
    pub fn all(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.db
            .iterator_cf(cf(&self.db, CF_AUTH), IteratorMode::Start)
            .map(|item| {
                let (key, value) = item.map_err(|e| Error::storage("reading principals", e))?;
                Ok((String::from_utf8_lossy(&key).into_owned(), value.into_vec()))
            })
            .collect()
    }

    /// An empty change, applied by [`AuthBatch::commit`].
    pub fn batch(&self) -> AuthBatch<'_> {
        AuthBatch {
            db: &self.db,
            batch: WriteBatch::default(),
        }
    }
}

/// Puts and deletes of records, applied together or not at all.
pub struct AuthBatch<'a> {
    db: &'a DB,
    batch: WriteBatch,
}

impl AuthBatch<'_> {
    pub fn put(&mut self, key: &str, value: &impl Serialize) -> Result<()> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| Error::internal(format!("encoding {key}: {e}")))?;
        self.batch.put_cf(cf(self.db, CF_AUTH), key, bytes);
        Ok(())
    }

    pub fn delete(&mut self, key: &str) {
        self.batch.delete_cf(cf(self.db, CF_AUTH), key);
    }

    /// Writes durably (synced WAL): an administrative change is never lost once answered.
    /// `context` says what the change was, for the error.
    pub fn commit(self, context: &str) -> Result<()> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(self.batch, &options)
            .map_err(|e| Error::storage(context, e))
    }
}
