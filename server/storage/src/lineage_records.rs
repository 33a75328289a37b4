//! The lineage graph's column families: entities, edges (indexed both ways) and the name and
//! SourceUri indexes. What the keys and values mean belongs to the `quiver-lineage` crate; this
//! is how they are kept: point reads, ordered prefix scans, and atomic batches whose WAL sync
//! is shared by concurrent writers and happens after the writer's own lock is released.

use std::sync::Arc;

use parking_lot::Mutex;
use rocksdb::{DB, DBRawIterator, Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions};

use crate::db::{CF_LINEAGE_EDGES, CF_LINEAGE_ENTITIES, CF_LINEAGE_INDEX, cf};
use quiver_types::error::{Error, Result};

/// One of the lineage column families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineageTable {
    /// Each entity's JSON under its ARN.
    Entities,
    /// Each association twice: by source then destination, and by destination then source.
    Edges,
    /// Names and SourceUris to ARNs.
    Index,
}

impl LineageTable {
    fn cf_name(self) -> &'static str {
        match self {
            Self::Entities => CF_LINEAGE_ENTITIES,
            Self::Edges => CF_LINEAGE_EDGES,
            Self::Index => CF_LINEAGE_INDEX,
        }
    }
}

pub struct LineageRecords {
    db: Arc<DB>,
    /// fsync each change before it is answered (the server's `wal_sync = always`).
    sync_writes: bool,
    /// The highest sequence number known to be synced to the WAL.
    synced: Mutex<u64>,
}

impl LineageRecords {
    pub fn new(db: Arc<DB>, sync_writes: bool) -> Self {
        Self {
            db,
            sync_writes,
            synced: Mutex::new(0),
        }
    }

    pub fn get(&self, table: LineageTable, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db
            .get_cf(cf(&self.db, table.cf_name()), key)
            .map_err(|e| Error::storage("reading the lineage graph", e))
    }

    /// Several keys of one table in one call, in the order given.
    pub fn multi_get(&self, table: LineageTable, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let handle = cf(&self.db, table.cf_name());
        self.db
            .batched_multi_get_cf(handle, keys, false)
            .into_iter()
            .map(|value| {
                value
                    .map(|v| v.map(|slice| slice.to_vec()))
                    .map_err(|e| Error::storage("reading the lineage graph", e))
            })
            .collect()
    }

    /// Visits the entries of `table` whose keys start with `prefix` (every entry for an empty
    /// prefix), in key order, until `visit` returns false.
    pub fn scan(
        &self,
        table: LineageTable,
        prefix: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(prefix.to_vec());
        if let Some(upper) = prefix_successor(prefix) {
            options.set_iterate_upper_bound(upper);
        }
        let iterator = self.db.iterator_cf_opt(
            cf(&self.db, table.cf_name()),
            options,
            IteratorMode::From(prefix, Direction::Forward),
        );
        for item in iterator {
            let (key, value) = item.map_err(|e| Error::storage("reading the lineage graph", e))?;
            if !visit(&key, &value)? {
                break;
            }
        }
        Ok(())
    }

    /// A reader of many prefixes of one table: one iterator, positioned again for each prefix
    /// (cheaper than an iterator per prefix when a walk reads thousands).
    pub fn scanner(&self, table: LineageTable) -> Scanner<'_> {
        Scanner {
            iterator: self.db.raw_iterator_cf(cf(&self.db, table.cf_name())),
        }
    }

    /// An empty change, applied by [`LineageBatch::write`].
    pub fn batch(&self) -> LineageBatch<'_> {
        LineageBatch {
            records: self,
            batch: WriteBatch::default(),
        }
    }

    /// Makes every write up to `sequence` durable. Concurrent callers share one fsync: whoever
    /// syncs covers everything written before it started.
    fn sync_through(&self, sequence: u64) -> Result<()> {
        let mut synced = self.synced.lock();
        if *synced >= sequence {
            return Ok(());
        }
        let covered = self.db.latest_sequence_number();
        self.db
            .flush_wal(true)
            .map_err(|e| Error::storage("syncing the lineage graph", e))?;
        *synced = covered;
        Ok(())
    }
}

/// See [`LineageRecords::scanner`].
pub struct Scanner<'a> {
    iterator: DBRawIterator<'a>,
}

impl Scanner<'_> {
    /// Visits the entries whose keys start with `prefix`, in key order, until `visit` returns
    /// false.
    pub fn scan(
        &mut self,
        prefix: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.iterator.seek(prefix);
        while let (Some(key), Some(value)) = (self.iterator.key(), self.iterator.value()) {
            if !key.starts_with(prefix) || !visit(key, value)? {
                break;
            }
            self.iterator.next();
        }
        self.iterator
            .status()
            .map_err(|e| Error::storage("reading the lineage graph", e))
    }
}

/// Puts and deletes across the lineage tables, applied together or not at all.
pub struct LineageBatch<'a> {
    records: &'a LineageRecords,
    batch: WriteBatch,
}

impl<'a> LineageBatch<'a> {
    pub fn put(&mut self, table: LineageTable, key: &[u8], value: &[u8]) {
        let db = &self.records.db;
        self.batch.put_cf(cf(db, table.cf_name()), key, value);
    }

    pub fn delete(&mut self, table: LineageTable, key: &[u8]) {
        let db = &self.records.db;
        self.batch.delete_cf(cf(db, table.cf_name()), key);
    }

    /// Applies the change: readers see it at once. It is durable once the returned
    /// [`Written::sync`] returns, which the caller does after releasing its own locks, so that
    /// concurrent writers share one fsync. `context` says what the change was, for the error.
    pub fn write(self, context: &str) -> Result<Written<'a>> {
        let db = &self.records.db;
        let mut options = WriteOptions::default();
        options.set_sync(false);
        db.write_opt(self.batch, &options)
            .map_err(|e| Error::storage(context, e))?;
        Ok(Written {
            records: self.records,
            sequence: db.latest_sequence_number(),
        })
    }
}

/// A change that readers see but that may not be on disk yet.
#[must_use = "a lineage change is acknowledged only after Written::sync"]
pub struct Written<'a> {
    records: &'a LineageRecords,
    sequence: u64,
}

impl Written<'_> {
    /// Returns once the change survives a crash of the machine (with `sync_writes`; otherwise
    /// at once, as the online store does with `wal_sync = periodic`).
    pub fn sync(self) -> Result<()> {
        if self.records.sync_writes {
            self.records.sync_through(self.sequence)
        } else {
            Ok(())
        }
    }
}

/// The smallest key greater than every key starting with `prefix`; `None` when there is none
/// (an empty prefix or all 0xff).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut upper = prefix.to_vec();
    while let Some(last) = upper.pop() {
        if last < 0xff {
            upper.push(last + 1);
            return Some(upper);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{StorageOptions, open};

    #[test]
    fn scans_stay_inside_the_prefix_and_stop_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(
            dir.path(),
            &StorageOptions {
                block_cache_bytes: 1 << 20,
            },
        )
        .unwrap();
        let records = LineageRecords::new(db, true);
        let mut batch = records.batch();
        for key in ["a/1", "a/2", "a/3", "b/1", "a", "a0"] {
            batch.put(LineageTable::Edges, key.as_bytes(), b"v");
        }
        batch.write("test").unwrap().sync().unwrap();
        let mut seen = Vec::new();
        records
            .scan(LineageTable::Edges, b"a/", |k, _| {
                seen.push(String::from_utf8(k.to_vec()).unwrap());
                Ok(true)
            })
            .unwrap();
        assert_eq!(seen, ["a/1", "a/2", "a/3"]);
        seen.clear();
        records
            .scan(LineageTable::Edges, b"a/", |k, _| {
                seen.push(String::from_utf8(k.to_vec()).unwrap());
                Ok(seen.is_empty())
            })
            .unwrap();
        assert_eq!(seen, ["a/1"]);
        assert_eq!(records.get(LineageTable::Entities, b"a/1").unwrap(), None);
        assert_eq!(
            records
                .multi_get(LineageTable::Edges, &[b"b/1".to_vec(), b"x".to_vec()])
                .unwrap(),
            [Some(b"v".to_vec()), None]
        );
        let mut scanner = records.scanner(LineageTable::Edges);
        for (prefix, expected) in [(&b"b/"[..], 1), (b"a/", 3), (b"c/", 0), (b"a", 5)] {
            let mut n = 0;
            scanner
                .scan(prefix, |k, _| {
                    assert!(k.starts_with(prefix));
                    n += 1;
                    Ok(true)
                })
                .unwrap();
            assert_eq!(n, expected, "{prefix:?}");
        }
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff"), None);
    }
}
