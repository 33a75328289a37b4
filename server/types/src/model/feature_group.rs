//! A feature group as the registry persists it. The serde form of [`FeatureGroup`] is the
//! registry's on-disk format (see `registry.rs` for its version).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::time::EpochMillis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeatureType {
    Integral,
    Fractional,
    String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Collection {
    /// A single value.
    Scalar,
    List,
    /// A list whose elements are unique.
    Set,
    /// A list of exactly `dimension` Fractional values.
    Vector {
        dimension: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TtlUnit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtlDuration {
    pub unit: TtlUnit,
    pub value: u64,
}

impl TtlDuration {
    /// The duration in milliseconds; `None` if it does not fit (validation rejects such TTLs).
    pub fn as_millis(&self) -> Option<i64> {
        let unit_ms: i64 = match self.unit {
            TtlUnit::Seconds => 1_000,
            TtlUnit::Minutes => 60_000,
            TtlUnit::Hours => 3_600_000,
            TtlUnit::Days => 86_400_000,
            TtlUnit::Weeks => 604_800_000,
        };
        i64::try_from(self.value).ok()?.checked_mul(unit_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageType {
    Standard,
    InMemory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TableFormat {
    Glue,
    Iceberg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetStore {
    OnlineStore,
    OfflineStore,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineStoreConfig {
    /// Default TTL of records; a record's own TTL overrides it. `None`: records never expire.
    pub ttl: Option<TtlDuration>,
    pub storage_type: StorageType,
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCatalogConfig {
    pub table_name: String,
    pub catalog: String,
    pub database: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineStoreConfig {
    /// `s3://bucket/prefix`; `None` uses the server's default offline location.
    pub s3_uri: Option<String>,
    pub kms_key_id: Option<String>,
    pub disable_glue_table_creation: bool,
    pub data_catalog: Option<DataCatalogConfig>,
    pub table_format: TableFormat,
}

/// A feature's definition and its metadata (UpdateFeatureMetadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    pub feature_type: FeatureType,
    pub collection: Collection,
    pub description: String,
    pub parameters: BTreeMap<String, String>,
    pub creation_time_ms: EpochMillis,
    pub last_modified_time_ms: EpochMillis,
}

/// What a client asks for when it defines a feature (create, or add-features).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureSpec {
    pub name: String,
    pub feature_type: FeatureType,
    pub collection: Collection,
}

/// A CreateFeatureGroup request in domain terms.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureGroupSpec {
    pub name: String,
    pub record_identifier_feature_name: String,
    pub event_time_feature_name: String,
    pub features: Vec<FeatureSpec>,
    pub online: Option<OnlineStoreConfig>,
    pub offline: Option<OfflineStoreConfig>,
    pub role_arn: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureGroup {
    /// Internal id, never reused: it prefixes the group's online keys, so a group deleted and
    /// created again under the same name never sees the old group's records.
    pub id: u64,
    pub name: String,
    pub arn: String,
    pub record_identifier_feature_name: String,
    pub event_time_feature_name: String,
    /// In definition order. Features are only ever appended, so a feature's position (its
    /// ordinal) is stable and is what stored records refer to.
    pub features: Vec<Feature>,
    pub online: Option<OnlineStoreConfig>,
    pub offline: Option<OfflineStoreConfig>,
    pub role_arn: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<(String, String)>,
    pub creation_time_ms: EpochMillis,
    pub last_modified_time_ms: EpochMillis,
    /// Feature name -> ordinal; derived from `features`, rebuilt by [`FeatureGroup::index`].
    #[serde(skip)]
    ordinals: HashMap<String, u16, foldhash::fast::FixedState>,
}

impl FeatureGroup {
    pub fn from_spec(spec: FeatureGroupSpec, id: u64, arn: String, now_ms: EpochMillis) -> Self {
        let features = spec
            .features
            .into_iter()
            .map(|f| Feature::new(f, now_ms))
            .collect();
        Self {
            id,
            name: spec.name,
            arn,
            record_identifier_feature_name: spec.record_identifier_feature_name,
            event_time_feature_name: spec.event_time_feature_name,
            features,
            online: spec.online,
            offline: spec.offline,
            role_arn: spec.role_arn,
            description: spec.description,
            tags: spec.tags,
            creation_time_ms: now_ms,
            last_modified_time_ms: now_ms,
            ordinals: HashMap::default(),
        }
        .index()
    }

    /// Rebuilds the derived name index; call after deserializing or changing `features`.
    pub fn index(mut self) -> Self {
        self.ordinals = self
            .features
            .iter()
            .enumerate()
            // At most 2,500 features (validated), so the ordinal fits in u16.
            .map(|(i, f)| (f.name.clone(), i as u16))
            .collect();
        self
    }

    pub fn ordinal(&self, feature_name: &str) -> Option<u16> {
        self.ordinals.get(feature_name).copied()
    }

    pub fn feature(&self, feature_name: &str) -> Option<&Feature> {
        self.ordinal(feature_name)
            .map(|i| &self.features[usize::from(i)])
    }

    pub fn record_identifier(&self) -> &Feature {
        self.feature(&self.record_identifier_feature_name)
            .expect("validated at creation: the identifier feature is defined")
    }

    pub fn event_time(&self) -> &Feature {
        self.feature(&self.event_time_feature_name)
            .expect("validated at creation: the event-time feature is defined")
    }

    pub fn has_online_store(&self) -> bool {
        self.online.is_some()
    }

    pub fn has_offline_store(&self) -> bool {
        self.offline.is_some()
    }
}

impl Feature {
    pub fn new(spec: FeatureSpec, now_ms: EpochMillis) -> Self {
        Self {
            name: spec.name,
            feature_type: spec.feature_type,
            collection: spec.collection,
            description: String::new(),
            parameters: BTreeMap::new(),
            creation_time_ms: now_ms,
            last_modified_time_ms: now_ms,
        }
    }
}

/// A change to the default TTL (UpdateFeatureGroup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlUpdate {
    Keep,
    Set(TtlDuration),
    Clear,
}
