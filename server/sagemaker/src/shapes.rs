//! The JSON shapes of feature groups and features that several operations share: the
//! definitions CreateFeatureGroup reads and DescribeFeatureGroup writes, and the renderings of
//! groups and features that DescribeFeatureGroup, ListFeatureGroups, DescribeFeatureMetadata
//! and Search return.

use serde::{Deserialize, Serialize};

use super::wire::{TtlJson, epoch_seconds};
use quiver_offline::{OfflineStatus, OfflineStore};
use quiver_types::model::{Collection, Feature, FeatureGroup, StorageType, TableFormat};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FeatureDefinitionJson {
    pub feature_name: String,
    pub feature_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_config: Option<CollectionConfigJson>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CollectionConfigJson {
    pub vector_config: Option<VectorConfigJson>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VectorConfigJson {
    pub dimension: i64,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityConfigJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OnlineStoreConfigJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_config: Option<SecurityConfigJson>,
    #[serde(default)]
    pub enable_online_store: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_duration: Option<TtlJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3StorageConfigJson {
    #[serde(rename = "S3Uri")]
    pub s3_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "ResolvedOutputS3Uri")]
    pub resolved_output_s3_uri: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DataCatalogConfigJson {
    pub table_name: String,
    pub catalog: String,
    pub database: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OfflineStoreConfigJson {
    #[serde(rename = "S3StorageConfig")]
    pub s3_storage_config: S3StorageConfigJson,
    #[serde(default)]
    pub disable_glue_table_creation: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_catalog_config: Option<DataCatalogConfigJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_format: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagJson {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterJson {
    pub key: String,
    pub value: String,
}

pub fn feature_definition_json(f: &Feature) -> FeatureDefinitionJson {
    let (collection_type, collection_config) = match f.collection {
        Collection::Scalar => (None, None),
        Collection::List => (Some("List"), None),
        Collection::Set => (Some("Set"), None),
        Collection::Vector { dimension } => (
            Some("Vector"),
            Some(CollectionConfigJson {
                vector_config: Some(VectorConfigJson {
                    dimension: i64::from(dimension),
                }),
            }),
        ),
    };
    FeatureDefinitionJson {
        feature_name: f.name.clone(),
        feature_type: format!("{:?}", f.feature_type),
        collection_type: collection_type.map(str::to_string),
        collection_config,
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OfflineStoreStatusJson {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_reason: Option<String>,
}

fn offline_status_json(
    group: &FeatureGroup,
    offline: &OfflineStore,
) -> Option<OfflineStoreStatusJson> {
    group.offline.as_ref()?;
    let status = offline.status(group);
    let name = status.name();
    Some(OfflineStoreStatusJson {
        status: name,
        blocked_reason: match status {
            OfflineStatus::Blocked(reason) => Some(reason),
            _ => None,
        },
    })
}

/// A feature group as DescribeFeatureGroup and Search show it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FeatureGroupJson {
    pub feature_group_arn: String,
    pub feature_group_name: String,
    pub record_identifier_feature_name: String,
    pub event_time_feature_name: String,
    pub feature_definitions: Vec<FeatureDefinitionJson>,
    pub creation_time: f64,
    pub last_modified_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online_store_config: Option<OnlineStoreConfigJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_store_config: Option<OfflineStoreConfigJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    pub feature_group_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_store_status: Option<OfflineStoreStatusJson>,
    pub last_update_status: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub tags: Vec<TagJson>,
    pub throughput_config: serde_json::Value,
}

pub fn feature_group_json(group: &FeatureGroup, offline: &OfflineStore) -> FeatureGroupJson {
    FeatureGroupJson {
        feature_group_arn: group.arn.clone(),
        feature_group_name: group.name.clone(),
        record_identifier_feature_name: group.record_identifier_feature_name.clone(),
        event_time_feature_name: group.event_time_feature_name.clone(),
        feature_definitions: group.features.iter().map(feature_definition_json).collect(),
        creation_time: epoch_seconds(group.creation_time_ms),
        last_modified_time: epoch_seconds(group.last_modified_time_ms),
        online_store_config: group.online.as_ref().map(|o| OnlineStoreConfigJson {
            security_config: o.kms_key_id.clone().map(|k| SecurityConfigJson {
                kms_key_id: Some(k),
            }),
            enable_online_store: true,
            ttl_duration: o.ttl.as_ref().map(TtlJson::from_domain),
            storage_type: Some(
                match o.storage_type {
                    StorageType::Standard => "Standard",
                    StorageType::InMemory => "InMemory",
                }
                .to_string(),
            ),
        }),
        offline_store_config: group.offline.as_ref().map(|o| {
            let table = offline.catalog_table(group);
            OfflineStoreConfigJson {
                s3_storage_config: S3StorageConfigJson {
                    s3_uri: offline.base_uri(group).to_string(),
                    kms_key_id: o.kms_key_id.clone(),
                    resolved_output_s3_uri: Some(offline.data_uri(group)),
                },
                disable_glue_table_creation: o.disable_glue_table_creation,
                data_catalog_config: (!o.disable_glue_table_creation || o.data_catalog.is_some())
                    .then_some(DataCatalogConfigJson {
                        table_name: table.table,
                        catalog: table.catalog,
                        database: table.database,
                    }),
                table_format: Some(
                    match o.table_format {
                        TableFormat::Glue => "Glue",
                        TableFormat::Iceberg => "Iceberg",
                    }
                    .to_string(),
                ),
            }
        }),
        role_arn: group.role_arn.clone(),
        feature_group_status: quiver_types::listing::FEATURE_GROUP_STATUS,
        offline_store_status: offline_status_json(group, offline),
        last_update_status: serde_json::json!({ "Status": "Successful" }),
        description: group.description.clone(),
        tags: group
            .tags
            .iter()
            .map(|(key, value)| TagJson {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        throughput_config: serde_json::json!({ "ThroughputMode": "OnDemand" }),
    }
}

/// A group as ListFeatureGroups summarises it.
pub fn summary_json(group: &FeatureGroup, offline: &OfflineStore) -> serde_json::Value {
    let mut summary = serde_json::json!({
        "FeatureGroupName": group.name,
        "FeatureGroupArn": group.arn,
        "CreationTime": epoch_seconds(group.creation_time_ms),
        "FeatureGroupStatus": quiver_types::listing::FEATURE_GROUP_STATUS,
    });
    if let Some(status) = offline_status_json(group, offline) {
        summary["OfflineStoreStatus"] = serde_json::to_value(status).unwrap_or_default();
    }
    summary
}

/// A feature as DescribeFeatureMetadata and Search show it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FeatureMetadataJson {
    pub feature_group_arn: String,
    pub feature_group_name: String,
    pub feature_name: String,
    pub feature_type: String,
    pub creation_time: f64,
    pub last_modified_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub parameters: Vec<ParameterJson>,
}

pub fn feature_metadata_json(group: &FeatureGroup, feature: &Feature) -> FeatureMetadataJson {
    FeatureMetadataJson {
        feature_group_arn: group.arn.clone(),
        feature_group_name: group.name.clone(),
        feature_name: feature.name.clone(),
        feature_type: format!("{:?}", feature.feature_type),
        creation_time: epoch_seconds(feature.creation_time_ms),
        last_modified_time: epoch_seconds(feature.last_modified_time_ms),
        description: Some(feature.description.clone()).filter(|d| !d.is_empty()),
        parameters: feature
            .parameters
            .iter()
            .map(|(key, value)| ParameterJson {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}
