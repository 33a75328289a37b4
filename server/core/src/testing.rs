//! Helpers for tests of the crates above (feature `test-util`) and of this one: a store opened
//! in a temporary directory with the server's defaults, a small group `g` and its records.

use std::path::Path;
use std::sync::Arc;

use quiver_offline::OfflineConfig;
use quiver_storage::kms::{DataKeyPolicy, Keys, LocalKeys};
use quiver_types::model::TtlUpdate;
use quiver_types::model::arn::ArnContext;
use quiver_types::model::{
    Collection, FeatureGroupSpec, FeatureSpec, FeatureType, OfflineStoreConfig, OnlineStoreConfig,
    PutRequest, StorageType, TableFormat, TtlDuration, TtlUnit, Value,
};
use quiver_types::time::Clock;

use crate::{FeatureStore, StoreOptions};

/// The server's defaults for a store in `dir` (writes not fsynced one by one, as
/// `wal_sync = "periodic"`; the offline store under `dir/offline-store`).
pub fn options(dir: &Path) -> StoreOptions {
    let mb = 1024 * 1024;
    StoreOptions {
        data_dir: dir.to_path_buf(),
        block_cache_bytes: 8 * mb,
        arns: ArnContext {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
        },
        sync_writes: false,
        data_key_policy: DataKeyPolicy::default(),
        default_key_id: None,
        offline: OfflineConfig {
            default_uri: format!("file://{}/offline-store", dir.display()),
            flush_interval_ms: 300_000,
            max_file_bytes: 128 * mb as u64,
            staging_limit_bytes: 4096 * mb as u64,
            s3_endpoint: None,
            s3_sse_kms: false,
            glue: None,
        },
    }
}

/// The local master keys under `dir/keys`.
pub fn local_keys(dir: &Path) -> Arc<Keys> {
    Arc::new(Keys::new(LocalKeys::open(&dir.join("keys")).unwrap(), None))
}

/// A store in `dir` (an absolute path) with [`options`].
pub fn open(dir: &Path, clock: Arc<dyn Clock>) -> FeatureStore {
    open_with(clock, options(dir))
}

/// A store with `options` and the local keys of its data dir.
pub fn open_with(clock: Arc<dyn Clock>, options: StoreOptions) -> FeatureStore {
    let keys = local_keys(&options.data_dir);
    FeatureStore::open(&options, clock, keys).unwrap()
}

/// Group `g`: Integral `id`, Fractional `ts`, String `v`.
pub fn spec(ttl_seconds: Option<u64>, offline: bool) -> FeatureGroupSpec {
    let f = |name: &str, feature_type| FeatureSpec {
        name: name.into(),
        feature_type,
        collection: Collection::Scalar,
    };
    FeatureGroupSpec {
        name: "g".into(),
        record_identifier_feature_name: "id".into(),
        event_time_feature_name: "ts".into(),
        features: vec![
            f("id", FeatureType::Integral),
            f("ts", FeatureType::Fractional),
            f("v", FeatureType::String),
        ],
        online: Some(OnlineStoreConfig {
            ttl: ttl_seconds.map(|value| TtlDuration {
                unit: TtlUnit::Seconds,
                value,
            }),
            storage_type: StorageType::Standard,
            kms_key_id: None,
        }),
        offline: offline.then_some(OfflineStoreConfig {
            s3_uri: None,
            kms_key_id: None,
            disable_glue_table_creation: false,
            data_catalog: None,
            table_format: TableFormat::Glue,
        }),
        role_arn: None,
        description: None,
        tags: vec![],
    }
}

/// Adds an Integral feature to group `g`.
pub fn add_integral_feature(store: &FeatureStore, name: &str) {
    let feature = FeatureSpec {
        name: name.into(),
        feature_type: FeatureType::Integral,
        collection: Collection::Scalar,
    };
    store
        .update_feature_group("g", vec![feature], TtlUpdate::Keep)
        .unwrap();
}

/// A put of record `id` of group `g` at `event_time_ms`.
pub fn put(id: i64, event_time_ms: i64) -> (String, PutRequest) {
    (
        "g".into(),
        PutRequest {
            record: vec![
                ("id".into(), Value::Integral(id)),
                (
                    "ts".into(),
                    Value::Fractional(event_time_ms as f64 / 1000.0),
                ),
                ("v".into(), Value::String(format!("v{id}"))),
            ],
            target_stores: vec![],
            ttl: None,
        },
    )
}
