//! The feature store's operations, in domain terms: one implementation of the semantics that
//! every API (gRPC, the SageMaker-compatible HTTP API, stream ingest) translates to and from.
//!
//! - [`store`]: the [`FeatureStore`], opened from [`StoreOptions`] over the registry, the online
//!   store and the offline store;
//! - [`groups`]: feature groups and feature metadata;
//! - [`writes`]: PutRecord(s), BatchWriteRecord's record-by-record answers, DeleteRecord;
//! - [`source_writes`]: records from stream sources, written with their positions;
//! - [`reads`]: GetRecord, BatchGetRecord, ListRecords;
//! - [`group_commit`]: one writer applying the puts that arrive together in one write;
//! - [`backup`]: backups of the store to a directory or S3, incremental, and restores.
//!
//! Writes block on RocksDB (and on fsync with `wal_sync = "always"`); async callers run them on
//! the blocking pool ([`blocking`]). No RPC framework belongs here (`tests/run-all.sh` checks it
//! with `cargo tree`): the front doors above translate wire shapes to these calls.

pub mod backup;
pub mod group_commit;
pub mod groups;
pub mod reads;
pub mod source_writes;
pub mod store;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod writes;

pub use reads::{BatchGetEntry, BatchGetItem, MAX_BATCH_GET_IDENTIFIERS, RecordView};
pub use source_writes::{
    SharedFeatures, SourceRecord, SourceRecordResult, SourceValues, SourceWrite,
};
pub use store::{FeatureStore, StoreOptions, blocking};
pub use writes::{MAX_PUT_BATCH_RECORDS, ValidatedPut};

#[cfg(test)]
mod flush_tests;
#[cfg(test)]
mod tests;
