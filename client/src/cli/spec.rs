//! The SageMaker CreateFeatureGroup JSON shape (what `aws sagemaker create-feature-group
//! --cli-input-json` takes), parsed into Quiver's request.

use anyhow::{Result, anyhow, bail};
use quiver_client::pb;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateFeatureGroupSpec {
    pub feature_group_name: String,
    pub record_identifier_feature_name: String,
    pub event_time_feature_name: String,
    pub feature_definitions: Vec<FeatureDefinitionSpec>,
    pub online_store_config: Option<OnlineStoreConfigSpec>,
    pub offline_store_config: Option<OfflineStoreConfigSpec>,
    pub role_arn: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<TagSpec>>,
    /// Accepted for compatibility; Quiver has no provisioned throughput.
    pub throughput_config: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct FeatureDefinitionSpec {
    pub feature_name: String,
    pub feature_type: String,
    pub collection_type: Option<String>,
    pub collection_config: Option<CollectionConfigSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CollectionConfigSpec {
    pub vector_config: Option<VectorConfigSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct VectorConfigSpec {
    pub dimension: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TtlSpec {
    pub unit: String,
    pub value: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct OnlineStoreConfigSpec {
    pub enable_online_store: Option<bool>,
    pub ttl_duration: Option<TtlSpec>,
    pub storage_type: Option<String>,
    pub security_config: Option<KmsSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct KmsSpec {
    pub kms_key_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct OfflineStoreConfigSpec {
    pub s3_storage_config: Option<S3StorageSpec>,
    pub disable_glue_table_creation: Option<bool>,
    pub data_catalog_config: Option<DataCatalogSpec>,
    pub table_format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct S3StorageSpec {
    pub s3_uri: String,
    pub kms_key_id: Option<String>,
    pub resolved_output_s3_uri: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DataCatalogSpec {
    pub table_name: String,
    pub catalog: String,
    pub database: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TagSpec {
    pub key: String,
    pub value: String,
}

pub fn feature_type(field: &str, text: &str) -> Result<pb::FeatureType> {
    Ok(match text {
        "Integral" => pb::FeatureType::Integral,
        "Fractional" => pb::FeatureType::Fractional,
        "String" => pb::FeatureType::String,
        other => bail!("{field} '{other}' must be Integral, Fractional or String"),
    })
}

pub fn ttl_unit(field: &str, text: &str) -> Result<pb::TtlUnit> {
    Ok(match text {
        "Seconds" => pb::TtlUnit::Seconds,
        "Minutes" => pb::TtlUnit::Minutes,
        "Hours" => pb::TtlUnit::Hours,
        "Days" => pb::TtlUnit::Days,
        "Weeks" => pb::TtlUnit::Weeks,
        other => bail!("{field} '{other}' must be Seconds, Minutes, Hours, Days or Weeks"),
    })
}

pub fn definition(field: &str, spec: FeatureDefinitionSpec) -> Result<pb::FeatureDefinition> {
    let collection_type = match spec.collection_type.as_deref() {
        None => pb::CollectionType::None,
        Some("List") => pb::CollectionType::List,
        Some("Set") => pb::CollectionType::Set,
        Some("Vector") => pb::CollectionType::Vector,
        Some(other) => bail!("{field}.CollectionType '{other}' must be List, Set or Vector"),
    };
    let vector_dimension = spec
        .collection_config
        .and_then(|c| c.vector_config)
        .map(|v| v.dimension)
        .unwrap_or(0);
    if collection_type == pb::CollectionType::Vector && vector_dimension == 0 {
        bail!("{field}: a Vector feature needs CollectionConfig.VectorConfig.Dimension");
    }
    Ok(pb::FeatureDefinition {
        feature_type: feature_type(&format!("{field}.FeatureType"), &spec.feature_type)? as i32,
        feature_name: spec.feature_name,
        collection_type: collection_type as i32,
        vector_dimension,
    })
}

pub fn to_request(spec: CreateFeatureGroupSpec) -> Result<pb::CreateFeatureGroupRequest> {
    if spec.throughput_config.is_some() {
        eprintln!("note: ThroughputConfig is ignored; Quiver has no provisioned throughput modes");
    }
    let feature_definitions = spec
        .feature_definitions
        .into_iter()
        .enumerate()
        .map(|(i, d)| definition(&format!("FeatureDefinitions[{i}]"), d))
        .collect::<Result<Vec<_>>>()?;
    let online_store_config = spec
        .online_store_config
        .map(|o| -> Result<pb::OnlineStoreConfig> {
            Ok(pb::OnlineStoreConfig {
                enable_online_store: o.enable_online_store.unwrap_or(false),
                ttl_duration: o
                    .ttl_duration
                    .map(|t| -> Result<pb::TtlDuration> {
                        Ok(pb::TtlDuration {
                            unit: ttl_unit("OnlineStoreConfig.TtlDuration.Unit", &t.unit)? as i32,
                            value: t.value,
                        })
                    })
                    .transpose()?,
                storage_type: match o.storage_type.as_deref() {
                    None | Some("Standard") => pb::StorageType::Standard,
                    Some("InMemory") => pb::StorageType::InMemory,
                    Some(other) => bail!(
                        "OnlineStoreConfig.StorageType '{other}' must be Standard or InMemory"
                    ),
                } as i32,
                kms_key_id: o
                    .security_config
                    .and_then(|s| s.kms_key_id)
                    .unwrap_or_default(),
            })
        })
        .transpose()?;
    let offline_store_config = spec
        .offline_store_config
        .map(|o| -> Result<pb::OfflineStoreConfig> {
            let s3 = o
                .s3_storage_config
                .ok_or_else(|| anyhow!("OfflineStoreConfig.S3StorageConfig is required"))?;
            Ok(pb::OfflineStoreConfig {
                s3_uri: s3.s3_uri,
                kms_key_id: s3.kms_key_id.unwrap_or_default(),
                resolved_output_s3_uri: s3.resolved_output_s3_uri.unwrap_or_default(),
                disable_glue_table_creation: o.disable_glue_table_creation.unwrap_or(false),
                data_catalog_config: o.data_catalog_config.map(|d| pb::DataCatalogConfig {
                    table_name: d.table_name,
                    catalog: d.catalog,
                    database: d.database,
                }),
                table_format: match o.table_format.as_deref() {
                    None | Some("Glue") => pb::TableFormat::Glue,
                    Some("Iceberg") => pb::TableFormat::Iceberg,
                    Some(other) => {
                        bail!("OfflineStoreConfig.TableFormat '{other}' must be Glue or Iceberg")
                    }
                } as i32,
            })
        })
        .transpose()?;
    Ok(pb::CreateFeatureGroupRequest {
        feature_group_name: spec.feature_group_name,
        record_identifier_feature_name: spec.record_identifier_feature_name,
        event_time_feature_name: spec.event_time_feature_name,
        feature_definitions,
        online_store_config,
        offline_store_config,
        role_arn: spec.role_arn.unwrap_or_default(),
        description: spec.description.unwrap_or_default(),
        tags: spec
            .tags
            .unwrap_or_default()
            .into_iter()
            .map(|t| pb::Tag {
                key: t.key,
                value: t.value,
            })
            .collect(),
    })
}

pub fn parse(json: &str) -> Result<pb::CreateFeatureGroupRequest> {
    let spec: CreateFeatureGroupSpec = serde_json::from_str(json)
        .map_err(|e| anyhow!("not a CreateFeatureGroup JSON spec: {e}"))?;
    to_request(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sagemaker_shape() {
        let request = parse(
            r#"{
              "FeatureGroupName": "customers",
              "RecordIdentifierFeatureName": "customer_id",
              "EventTimeFeatureName": "event_time",
              "FeatureDefinitions": [
                {"FeatureName": "customer_id", "FeatureType": "String"},
                {"FeatureName": "event_time", "FeatureType": "Fractional"},
                {"FeatureName": "emb", "FeatureType": "Fractional", "CollectionType": "Vector",
                 "CollectionConfig": {"VectorConfig": {"Dimension": 4}}}
              ],
              "OnlineStoreConfig": {"EnableOnlineStore": true, "TtlDuration": {"Unit": "Days", "Value": 3}},
              "OfflineStoreConfig": {"S3StorageConfig": {"S3Uri": "s3://bucket/prefix"}},
              "Tags": [{"Key": "team", "Value": "risk"}]
            }"#,
        )
        .unwrap();
        assert_eq!(request.feature_definitions[2].vector_dimension, 4);
        assert_eq!(
            request
                .online_store_config
                .unwrap()
                .ttl_duration
                .unwrap()
                .value,
            3
        );
        assert_eq!(
            request.offline_store_config.unwrap().s3_uri,
            "s3://bucket/prefix"
        );
        assert!(parse(r#"{"FeatureGroupName": "x", "Bogus": 1}"#).is_err());
    }
}
