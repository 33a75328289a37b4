//! The offline store: the history of every accepted write, as Parquet files laid out as
//! SageMaker lays them, on the local disk or S3.
//!
//! The write path stages rows atomically with their online effect (`quiver-storage`'s
//! `staging`); the [`flusher`] turns staged rows into files ([`parquet`], placed by [`layout`],
//! written through [`stores`], encrypted at rest by [`encryption`]) exactly once, and keeps each
//! group's catalog entry ([`catalog`], registered with Glue by [`glue`]) in step with its
//! definition. [`OfflineStore`] holds the settings and the live state the API reports.
//!
//! The flusher is driven by the registry and the stores ([`flusher::FlushSources`]), not by
//! the feature store's operations above it. No query engine or RPC framework belongs here
//! (`tests/run-all.sh` checks it with `cargo tree`).

pub mod catalog;
pub mod encryption;
pub mod flusher;
pub mod glue;
pub mod layout;
pub mod parquet;
pub mod stores;

use std::collections::HashMap;

use parking_lot::RwLock;

use catalog::CatalogTable;
use quiver_types::error::Result;
use quiver_types::model::FeatureGroup;
use stores::{Destination, ObjectStores};

/// What DescribeFeatureGroup reports as `OfflineStoreStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfflineStatus {
    Active,
    /// Writing to the group's store is failing; rows wait in staging.
    Blocked(String),
    Disabled,
}

impl OfflineStatus {
    /// SageMaker's name for the status.
    pub fn name(&self) -> &'static str {
        match self {
            OfflineStatus::Active => "Active",
            OfflineStatus::Blocked(_) => "Blocked",
            OfflineStatus::Disabled => "Disabled",
        }
    }
}

/// How the offline store is written.
#[derive(Debug, Clone)]
pub struct OfflineConfig {
    pub default_uri: String,
    pub flush_interval_ms: u64,
    pub max_file_bytes: u64,
    pub staging_limit_bytes: u64,
    pub s3_endpoint: Option<String>,
    /// SSE-KMS on S3 objects of groups naming an AWS KMS key.
    pub s3_sse_kms: bool,
    /// Register tables with Glue; `Some(None)` uses AWS's endpoint.
    pub glue: Option<Option<String>>,
}

pub struct OfflineStore {
    config: OfflineConfig,
    account_id: String,
    region: String,
    stores: ObjectStores,
    /// Base URI -> why the last attempt to write there failed; removed once one succeeds.
    blocked: RwLock<HashMap<String, String>>,
}

impl OfflineStore {
    pub fn new(config: OfflineConfig, account_id: String, region: String) -> Self {
        let stores = ObjectStores::new(config.s3_endpoint.clone(), region.clone());
        Self {
            config,
            account_id,
            region,
            stores,
            blocked: RwLock::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &OfflineConfig {
        &self.config
    }

    pub fn base_uri<'a>(&'a self, group: &'a FeatureGroup) -> &'a str {
        layout::base_uri(group, &self.config.default_uri)
    }

    /// `<base>/<account>/sagemaker/<region>/offline-store/<group>-<epoch>`.
    pub fn group_uri(&self, group: &FeatureGroup) -> String {
        format!(
            "{}/{}",
            self.base_uri(group),
            layout::group_dir(&self.account_id, &self.region, group)
        )
    }

    /// Where the group's Parquet files go (DescribeFeatureGroup's `ResolvedOutputS3Uri`).
    pub fn data_uri(&self, group: &FeatureGroup) -> String {
        format!("{}/data", self.group_uri(group))
    }

    /// The object store and prefix of the group's directory.
    pub fn destination(&self, group: &FeatureGroup) -> Result<(Destination, String)> {
        // SSE-KMS, when asked for, under the group's AWS KMS key (S3 stores only).
        let sse_kms = group
            .offline
            .as_ref()
            .and_then(|o| o.kms_key_id.as_deref())
            .filter(|key| self.config.s3_sse_kms && !key.starts_with("local/"));
        let destination = self.stores.resolve_with(self.base_uri(group), sse_kms)?;
        Ok((
            destination,
            layout::group_dir(&self.account_id, &self.region, group),
        ))
    }

    /// The object store and prefix of any `file:///dir` or `s3://bucket/prefix` URI, with the
    /// offline store's S3 settings (datasets are written with them).
    pub fn object_store(&self, uri: &str) -> Result<Destination> {
        self.stores.resolve(uri)
    }

    pub fn catalog_table(&self, group: &FeatureGroup) -> CatalogTable {
        CatalogTable::new(group, &self.data_uri(group))
    }

    pub fn status(&self, group: &FeatureGroup) -> OfflineStatus {
        if !group.has_offline_store() {
            return OfflineStatus::Disabled;
        }
        match self.blocked.read().get(self.base_uri(group)) {
            Some(reason) => OfflineStatus::Blocked(reason.clone()),
            None => OfflineStatus::Active,
        }
    }

    pub(crate) fn set_blocked(&self, base_uri: &str, reason: Option<String>) {
        match reason {
            Some(reason) => {
                self.blocked.write().insert(base_uri.to_string(), reason);
            }
            None => {
                if self.blocked.read().contains_key(base_uri) {
                    self.blocked.write().remove(base_uri);
                }
            }
        }
    }

    pub fn is_blocked(&self) -> bool {
        !self.blocked.read().is_empty()
    }
}
