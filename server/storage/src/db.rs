//! Opens the server's one RocksDB database and owns its layout: which column families exist and
//! how each is tuned. Nothing else in the server creates column families or sets RocksDB options.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DataBlockIndexType, Options,
    SliceTransform,
};

use quiver_types::error::{Error, Result};

/// Feature-group definitions and registry metadata (see `registry.rs`).
pub const CF_REGISTRY: &str = "registry";
/// Online records: `[group id u64 BE][identifier]` -> encoded record (see `online/codec.rs`).
pub const CF_RECORDS: &str = "records";
/// Each online record's header under the same key (event time, expiry, soft-deleted; the 18
/// bytes a record keeps in clear): what a write reads to decide whether it is newer, and what
/// the TTL purge scans, kept small enough to stay in the block cache (see `online/store.rs`).
pub const CF_RECORD_HEADERS: &str = "record_headers";
/// Accepted writes waiting for the offline store (see `staging.rs`).
pub const CF_OFFLINE_STAGING: &str = "offline_staging";
/// The offline flusher's bookkeeping: flushed position and the flush in progress.
pub const CF_OFFLINE_META: &str = "offline_meta";
/// Principals, groups, policies and access keys (see `auth_records.rs`).
pub const CF_AUTH: &str = "auth";
/// Ingest sources' positions, written with the records they produced (see `sources.rs`).
pub const CF_SOURCE_POSITIONS: &str = "source_positions";
/// Feature groups' wrapped data keys (see `kms/data_keys.rs`).
pub const CF_DATA_KEYS: &str = "data_keys";
/// The lineage graph (see `lineage_records.rs`): entities by ARN, ...
pub const CF_LINEAGE_ENTITIES: &str = "lineage_entities";
/// ... its associations, by source and by destination, ...
pub const CF_LINEAGE_EDGES: &str = "lineage_edges";
/// ... and its name and SourceUri indexes.
pub const CF_LINEAGE_INDEX: &str = "lineage_index";

/// The storage settings that come from configuration.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    pub block_cache_bytes: usize,
}

pub fn open(path: &Path, options: &StorageOptions) -> Result<Arc<DB>> {
    std::fs::create_dir_all(path)
        .map_err(|e| Error::internal(format!("cannot create data dir {}: {e}", path.display())))?;
    let mut db_options = Options::default();
    db_options.create_if_missing(true);
    db_options.create_missing_column_families(true);
    db_options.set_keep_log_file_num(5);
    db_options.increase_parallelism(2);
    // The small column families (registry, offline staging metadata) rarely fill a memtable, and
    // a WAL file is kept until every column family with data in it has flushed: without a cap,
    // a write-heavy server kept gigabytes of WAL for a few kilobytes of registry writes. Past
    // this size, RocksDB flushes whichever column families hold the oldest WAL.
    db_options.set_max_total_wal_size(256 * 1024 * 1024);

    // HyperClockCache: lock-free lookups, where LRU takes a shard mutex on every hit; the
    // entry size is estimated automatically (0).
    let cache = Cache::new_hyper_clock_cache(options.block_cache_bytes, 0);
    let descriptors = vec![
        ColumnFamilyDescriptor::new(CF_REGISTRY, Options::default()),
        ColumnFamilyDescriptor::new(CF_RECORDS, records_options(&cache)),
        ColumnFamilyDescriptor::new(CF_RECORD_HEADERS, headers_options(&cache)),
        ColumnFamilyDescriptor::new(CF_OFFLINE_STAGING, staging_options()),
        ColumnFamilyDescriptor::new(CF_OFFLINE_META, Options::default()),
        ColumnFamilyDescriptor::new(CF_SOURCE_POSITIONS, Options::default()),
        ColumnFamilyDescriptor::new(CF_AUTH, Options::default()),
        ColumnFamilyDescriptor::new(CF_DATA_KEYS, Options::default()),
        ColumnFamilyDescriptor::new(CF_LINEAGE_ENTITIES, lineage_options(&cache)),
        ColumnFamilyDescriptor::new(CF_LINEAGE_EDGES, lineage_options(&cache)),
        ColumnFamilyDescriptor::new(CF_LINEAGE_INDEX, lineage_options(&cache)),
    ];
    let db = DB::open_cf_descriptors(&db_options, path, descriptors).map_err(|e| {
        Error::internal(format!(
            "cannot open RocksDB at {} (is another quiver-server using it?): {e}",
            path.display()
        ))
    })?;
    Ok(Arc::new(db))
}

/// The records column family is read by point lookups (docs/benchmarks.md has the measurements):
/// whole-key bloom filters (in the memtable too); index and filter blocks kept in table-reader
/// memory rather than the block cache, so a lookup takes one cache probe (the data block) instead
/// of three; a hash index inside each data block, so finding a key there is one probe rather
/// than a binary search; 4 KB blocks, so a lookup that misses the cache reads and decompresses
/// 4 KB rather than 16 (GetRecord 9-11% faster with 1M records); and a prefix extractor on the
/// 8-byte group id so deleting a group's range stays cheap.
fn records_options(cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_bloom_filter(10.0, false);
    table.set_whole_key_filtering(true);
    table.set_cache_index_and_filter_blocks(false);
    table.set_data_block_index_type(DataBlockIndexType::BinaryAndHash);
    table.set_data_block_hash_ratio(0.75);
    table.set_block_size(4 * 1024);
    table.set_format_version(5);
    let mut options = Options::default();
    options.set_block_based_table_factory(&table);
    options.set_prefix_extractor(SliceTransform::create_fixed_prefix(8));
    options.set_memtable_prefix_bloom_ratio(0.1);
    options.set_memtable_whole_key_filtering(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options.set_level_compaction_dynamic_level_bytes(true);
    options
}

/// Record headers are read by every write's point lookups: the records' read settings, with
/// small blocks (a header is 18 bytes) and no compression, since the whole column family is
/// about 40 bytes per record (40 MB per million), meant to be held by the block cache. A small
/// memtable: with the default 64 MB, one memtable held a million headers, and inserting into
/// its skip list (a cache miss per level) took 9% of the server's CPU per put
/// (docs/benchmarks.md).
fn headers_options(cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_bloom_filter(10.0, false);
    table.set_whole_key_filtering(true);
    table.set_cache_index_and_filter_blocks(false);
    table.set_data_block_index_type(DataBlockIndexType::BinaryAndHash);
    table.set_data_block_hash_ratio(0.75);
    table.set_block_size(4 * 1024);
    table.set_format_version(5);
    let mut options = Options::default();
    options.set_block_based_table_factory(&table);
    options.set_prefix_extractor(SliceTransform::create_fixed_prefix(8));
    options.set_memtable_prefix_bloom_ratio(0.1);
    options.set_memtable_whole_key_filtering(true);
    options.set_compression_type(rocksdb::DBCompressionType::None);
    options.set_level_compaction_dynamic_level_bytes(true);
    options.set_write_buffer_size(4 * 1024 * 1024);
    options.set_target_file_size_base(8 * 1024 * 1024);
    options.set_max_bytes_for_level_base(32 * 1024 * 1024);
    options
}

/// Staged rows live until the offline flusher has written them to Parquet (seconds, usually
/// read back from the memtable) and are then deleted: compressing the SST files they reach
/// would cost CPU on every memtable flush and compaction for nothing kept.
fn staging_options() -> Options {
    let mut options = Options::default();
    options.set_compression_type(rocksdb::DBCompressionType::None);
    options
}

/// The lineage graph is walked by QueryLineage: a point read per vertex and a short prefix scan
/// of its edges, so its blocks share the records' cache and have bloom filters for the reads
/// of entities that do not exist. Small memtables: the graph is written at control-plane rates.
fn lineage_options(cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_bloom_filter(10.0, false);
    table.set_format_version(5);
    let mut options = Options::default();
    options.set_block_based_table_factory(&table);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options.set_level_compaction_dynamic_level_bytes(true);
    options.set_write_buffer_size(16 * 1024 * 1024);
    options
}

/// One of RocksDB's integer properties (`rocksdb.estimate-num-keys`, ...), of a column family
/// or of the whole database; 0 when RocksDB does not know it.
pub fn int_property(db: &DB, column_family: Option<&str>, name: &str) -> u64 {
    match column_family {
        Some(name_of_cf) => db.property_int_value_cf(cf(db, name_of_cf), name),
        None => db.property_int_value(name),
    }
    .ok()
    .flatten()
    .unwrap_or(0)
}

pub fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .expect("every column family is created by db::open")
}
