//! Feature groups: create, describe, list, update, delete, and feature metadata.

use std::sync::Arc;

use quiver_offline::catalog::CatalogTable;
use quiver_storage::registry::feature_ordinal;
use quiver_types::error::{Error, Result};
use quiver_types::listing::{self, ListQuery, Page};
use quiver_types::model::TtlUpdate;
use quiver_types::model::{FeatureGroup, FeatureGroupSpec, FeatureSpec};

use crate::FeatureStore;

impl FeatureStore {
    pub fn create_feature_group(&self, spec: FeatureGroupSpec) -> Result<Arc<FeatureGroup>> {
        // A key the server cannot use would make every write to the group fail: refuse it now.
        let provider = self.online.data_keys().provider();
        if let Some(key_id) = spec.online.as_ref().and_then(|o| o.kms_key_id.as_deref()) {
            provider.check_key_id("OnlineStoreConfig.SecurityConfig.KmsKeyId", key_id)?;
        }
        if let Some(key_id) = spec.offline.as_ref().and_then(|o| o.kms_key_id.as_deref()) {
            provider.check_key_id("OfflineStoreConfig.S3StorageConfig.KmsKeyId", key_id)?;
        }
        let group = self.registry.create(spec)?;
        for observer in self.observers.read().iter() {
            observer.group_created(&group);
        }
        Ok(group)
    }

    pub fn describe_feature_group(&self, name: &str) -> Result<Arc<FeatureGroup>> {
        self.registry.get(name)
    }

    /// The names of the group's features (`name`: a name or an ARN), if it exists.
    pub fn feature_names(&self, name: &str) -> Option<Vec<String>> {
        let group = self.registry.get(name).ok()?;
        Some(group.features.iter().map(|f| f.name.clone()).collect())
    }

    /// The catalog entry of the group's offline store.
    pub fn offline_catalog(&self, name: &str) -> Result<CatalogTable> {
        let group = self.registry.get(name)?;
        if !group.has_offline_store() {
            return Err(Error::validation(format!(
                "feature group '{}' has no offline store (OfflineStoreConfig was not given at creation)",
                group.name
            )));
        }
        Ok(self.offline.catalog_table(&group))
    }

    pub fn list_feature_groups(&self, query: &ListQuery) -> Result<Page> {
        listing::list(self.registry.all(), query, |g| {
            self.offline.status(g).name()
        })
    }

    pub fn update_feature_group(
        &self,
        name: &str,
        additions: Vec<FeatureSpec>,
        ttl: TtlUpdate,
    ) -> Result<Arc<FeatureGroup>> {
        self.registry.update(name, additions, ttl)
    }

    /// Deletes the group's definition and online records in one atomic write.
    pub fn delete_feature_group(&self, name: &str) -> Result<()> {
        let group = self.registry.get(name)?;
        self.registry.delete(name, |batch, group_id| {
            self.online.delete_group_records(batch, group_id);
            self.online.staging().watermark()
        })?;
        for observer in self.observers.read().iter() {
            observer.group_deleted(&group);
        }
        Ok(())
    }

    pub fn update_feature_metadata(
        &self,
        group_name: &str,
        feature_name: &str,
        description: Option<String>,
        additions: Vec<(String, String)>,
        removals: Vec<String>,
    ) -> Result<()> {
        self.registry.update_feature_metadata(
            group_name,
            feature_name,
            description,
            additions,
            removals,
        )
    }

    /// The group and the ordinal of the named feature.
    pub fn describe_feature_metadata(
        &self,
        group_name: &str,
        feature_name: &str,
    ) -> Result<(Arc<FeatureGroup>, u16)> {
        let group = self.registry.get(group_name)?;
        let ordinal = feature_ordinal(&group, feature_name)?;
        Ok((group, ordinal))
    }
}
