//! Everything Quiver keeps in its one RocksDB database, and the keys that encrypt it.
//!
//! - [`db`]: opens the database and owns its layout (column families and their tuning);
//! - [`auth_records`]: the stored principals, groups, policies and access keys;
//! - [`lineage_records`]: the lineage graph's entities, edges and indexes;
//! - [`registry`]: the durable feature-group definitions, names and ARNs;
//! - [`online`]: the latest record per identifier ([`online::OnlineStore`]), whose writes commit
//!   the online effect, the row staged for the offline store ([`staging`]) and the ingest
//!   sources' positions ([`sources`]) in one atomic RocksDB write;
//! - [`staging`]: accepted writes waiting for the offline store, and the flusher's bookkeeping;
//! - [`kms`]: envelope encryption at rest: key providers (local files, AWS KMS) and the data
//!   keys that seal records, staged rows and offline files;
//! - [`backup`]: backups of the whole database (RocksDB's BackupEngine), incremental, and
//!   restores;
//! - [`hex_bytes`]: byte strings stored as hex in JSON values.
//!
//! No query engine, RPC framework or AWS SDK other than KMS belongs here (`tests/run-all.sh`
//! checks it with `cargo tree`).

pub mod auth_records;
pub mod backup;
pub mod db;
pub mod hex_bytes;
pub mod kms;
pub mod lineage_records;
pub mod online;
pub mod registry;
pub mod sources;
pub mod staging;
