//! `sagemaker` control plane (JSON 1.1, `POST /` with `X-Amz-Target: SageMaker.<Operation>`):
//! the feature-group operations and Search, as botocore sends and parses them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::search;
use super::wire::{self, AwsError, CONTROL_CONTENT_TYPE, TtlJson, epoch_seconds, parse_body};
use crate::error::{Error, Result};
use crate::feature_store::{FeatureStore, blocking};
use crate::listing::{ListQuery, SortBy, SortOrder};
use crate::model::{
    Collection, DataCatalogConfig, Feature, FeatureGroup, FeatureGroupSpec, FeatureSpec,
    FeatureType, OfflineStoreConfig, OnlineStoreConfig, StorageType, TableFormat,
};
use crate::offline::{OfflineStatus, OfflineStore};
use crate::registry::TtlUpdate;

type Store = Arc<FeatureStore>;

/// `POST /`: dispatches on `X-Amz-Target`.
pub async fn handle(State(store): State<Store>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let result = match target.strip_prefix("SageMaker.") {
        Some(operation) => dispatch(&store, operation, &body).await,
        None => Err(Error::validation(format!(
            "X-Amz-Target {:?} names no SageMaker operation (SageMaker.<Operation>)",
            target
        ))),
    };
    match result {
        Ok(body) => wire::json_response(StatusCode::OK, CONTROL_CONTENT_TYPE, &body),
        Err(e) => axum::response::IntoResponse::into_response(AwsError::control(e)),
    }
}

async fn dispatch(store: &Store, operation: &str, body: &[u8]) -> Result<serde_json::Value> {
    match operation {
        "CreateFeatureGroup" => {
            let spec = group_spec(parse_body(body)?)?;
            let group = blocking(store, move |s| s.create_feature_group(spec)).await?;
            Ok(serde_json::json!({ "FeatureGroupArn": group.arn }))
        }
        "DescribeFeatureGroup" => {
            let req: NameRequest = parse_body(body)?;
            let group = store.describe_feature_group(&req.feature_group_name)?;
            let mut described = to_json(&feature_group_json(&group, store.offline()))?;
            described["NextToken"] = serde_json::Value::String(String::new());
            Ok(described)
        }
        "ListFeatureGroups" => {
            let query = list_query(parse_body(body)?)?;
            let page = store.list_feature_groups(&query)?;
            let summaries: Vec<serde_json::Value> = page
                .groups
                .iter()
                .map(|g| summary_json(g, store.offline()))
                .collect();
            let mut response = serde_json::json!({ "FeatureGroupSummaries": summaries });
            if let Some(token) = page.next_token {
                response["NextToken"] = token.into();
            }
            Ok(response)
        }
        "UpdateFeatureGroup" => {
            let req: UpdateFeatureGroupRequest = parse_body(body)?;
            let additions = match req.feature_additions {
                Some(defs) if defs.is_empty() => {
                    return Err(Error::validation(
                        "FeatureAdditions must hold at least one feature when given",
                    ));
                }
                Some(defs) => feature_specs("FeatureAdditions", defs)?,
                None => Vec::new(),
            };
            let ttl = match req.online_store_config.and_then(|c| c.ttl_duration) {
                Some(t) => TtlUpdate::Set(t.to_domain("OnlineStoreConfig.TtlDuration")?),
                None => TtlUpdate::Keep,
            };
            let name = req.feature_group_name;
            let group = blocking(store, move |s| {
                s.update_feature_group(&name, additions, ttl)
            })
            .await?;
            Ok(serde_json::json!({ "FeatureGroupArn": group.arn }))
        }
        "DeleteFeatureGroup" => {
            let req: NameRequest = parse_body(body)?;
            blocking(store, move |s| {
                s.delete_feature_group(&req.feature_group_name)
            })
            .await?;
            Ok(serde_json::json!({}))
        }
        "UpdateFeatureMetadata" => {
            let req: UpdateFeatureMetadataRequest = parse_body(body)?;
            let additions = req
                .parameter_additions
                .into_iter()
                .map(|p| (p.key, p.value))
                .collect();
            blocking(store, move |s| {
                s.update_feature_metadata(
                    &req.feature_group_name,
                    &req.feature_name,
                    req.description,
                    additions,
                    req.parameter_removals,
                )
            })
            .await?;
            Ok(serde_json::json!({}))
        }
        "DescribeFeatureMetadata" => {
            let req: FeatureRequest = parse_body(body)?;
            let (group, ordinal) =
                store.describe_feature_metadata(&req.feature_group_name, &req.feature_name)?;
            to_json(&feature_metadata_json(
                &group,
                &group.features[usize::from(ordinal)],
            ))
        }
        "Search" => search::search(store, parse_body(body)?),
        other => Err(Error::validation(format!(
            "operation SageMaker.{other} is not supported by Quiver (feature-group operations and Search are)"
        ))),
    }
}

pub fn to_json(value: &impl Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(value)
        .map_err(|e| Error::internal(format!("cannot serialize the response: {e}")))
}

// --- request shapes ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NameRequest {
    feature_group_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FeatureRequest {
    feature_group_name: String,
    feature_name: String,
}

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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateFeatureGroupRequest {
    feature_group_name: String,
    record_identifier_feature_name: String,
    event_time_feature_name: String,
    feature_definitions: Vec<FeatureDefinitionJson>,
    online_store_config: Option<OnlineStoreConfigJson>,
    offline_store_config: Option<OfflineStoreConfigJson>,
    role_arn: Option<String>,
    description: Option<String>,
    #[serde(default)]
    tags: Vec<TagJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OnlineStoreConfigUpdateJson {
    ttl_duration: Option<TtlJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateFeatureGroupRequest {
    feature_group_name: String,
    feature_additions: Option<Vec<FeatureDefinitionJson>>,
    online_store_config: Option<OnlineStoreConfigUpdateJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateFeatureMetadataRequest {
    feature_group_name: String,
    feature_name: String,
    description: Option<String>,
    #[serde(default)]
    parameter_additions: Vec<ParameterJson>,
    #[serde(default)]
    parameter_removals: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListFeatureGroupsRequest {
    name_contains: Option<String>,
    feature_group_status_equals: Option<String>,
    offline_store_status_equals: Option<String>,
    creation_time_after: Option<serde_json::Value>,
    creation_time_before: Option<serde_json::Value>,
    sort_order: Option<String>,
    sort_by: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

// --- translation into the domain ------------------------------------------------------------

fn feature_spec(field: &str, def: FeatureDefinitionJson) -> Result<FeatureSpec> {
    let feature_type = match def.feature_type.as_str() {
        "Integral" => FeatureType::Integral,
        "Fractional" => FeatureType::Fractional,
        "String" => FeatureType::String,
        other => {
            return Err(Error::validation(format!(
                "{field}.FeatureType '{other}' of feature '{}' is not Integral, Fractional or String",
                def.feature_name
            )));
        }
    };
    let dimension = def
        .collection_config
        .as_ref()
        .and_then(|c| c.vector_config.as_ref())
        .map(|v| v.dimension);
    let collection = match def.collection_type.as_deref() {
        None => Collection::Scalar,
        Some("List") => Collection::List,
        Some("Set") => Collection::Set,
        Some("Vector") => {
            let d = dimension.ok_or_else(|| {
                Error::validation(format!(
                    "{field}: feature '{}' is a Vector and needs CollectionConfig.VectorConfig.Dimension",
                    def.feature_name
                ))
            })?;
            Collection::Vector {
                dimension: u32::try_from(d).map_err(|_| {
                    Error::validation(format!(
                        "{field}.CollectionConfig.VectorConfig.Dimension {d} of feature '{}' must be between 1 and 8192",
                        def.feature_name
                    ))
                })?,
            }
        }
        Some(other) => {
            return Err(Error::validation(format!(
                "{field}.CollectionType '{other}' of feature '{}' is not List, Set or Vector",
                def.feature_name
            )));
        }
    };
    if dimension.is_some() && !matches!(collection, Collection::Vector { .. }) {
        return Err(Error::validation(format!(
            "{field}.CollectionConfig is only allowed with CollectionType Vector (feature '{}')",
            def.feature_name
        )));
    }
    Ok(FeatureSpec {
        name: def.feature_name,
        feature_type,
        collection,
    })
}

fn feature_specs(field: &str, defs: Vec<FeatureDefinitionJson>) -> Result<Vec<FeatureSpec>> {
    defs.into_iter()
        .enumerate()
        .map(|(i, d)| feature_spec(&format!("{field}[{i}]"), d))
        .collect()
}

fn group_spec(req: CreateFeatureGroupRequest) -> Result<FeatureGroupSpec> {
    let online = match req.online_store_config {
        Some(c) if c.enable_online_store => Some(OnlineStoreConfig {
            ttl: c
                .ttl_duration
                .map(|t| t.to_domain("OnlineStoreConfig.TtlDuration"))
                .transpose()?,
            storage_type: match c.storage_type.as_deref() {
                None | Some("Standard") | Some("Standard_V2") => StorageType::Standard,
                Some("InMemory") => StorageType::InMemory,
                Some(other) => {
                    return Err(Error::validation(format!(
                        "OnlineStoreConfig.StorageType '{other}' is not Standard, Standard_V2 or InMemory"
                    )));
                }
            },
            kms_key_id: c.security_config.and_then(|s| s.kms_key_id),
        }),
        _ => None,
    };
    let offline = req
        .offline_store_config
        .map(|c| -> Result<OfflineStoreConfig> {
            Ok(OfflineStoreConfig {
                s3_uri: Some(c.s3_storage_config.s3_uri).filter(|s| !s.is_empty()),
                kms_key_id: c.s3_storage_config.kms_key_id,
                disable_glue_table_creation: c.disable_glue_table_creation,
                data_catalog: c.data_catalog_config.map(|d| DataCatalogConfig {
                    table_name: d.table_name,
                    catalog: d.catalog,
                    database: d.database,
                }),
                table_format: match c.table_format.as_deref() {
                    None | Some("Default") | Some("Glue") => TableFormat::Glue,
                    Some("Iceberg") => TableFormat::Iceberg,
                    Some(other) => {
                        return Err(Error::validation(format!(
                            "OfflineStoreConfig.TableFormat '{other}' is not Default, Glue or Iceberg"
                        )));
                    }
                },
            })
        })
        .transpose()?;
    Ok(FeatureGroupSpec {
        name: req.feature_group_name,
        record_identifier_feature_name: req.record_identifier_feature_name,
        event_time_feature_name: req.event_time_feature_name,
        features: feature_specs("FeatureDefinitions", req.feature_definitions)?,
        online,
        offline,
        role_arn: req.role_arn,
        description: req.description,
        tags: req.tags.into_iter().map(|t| (t.key, t.value)).collect(),
    })
}

/// A control-plane timestamp: epoch seconds (botocore's default) or ISO-8601 text.
pub fn timestamp_ms(field: &str, value: &serde_json::Value) -> Result<i64> {
    let parsed = match value {
        serde_json::Value::Number(n) => n
            .as_f64()
            .and_then(|secs| crate::time::epoch_seconds_to_millis(secs).ok()),
        serde_json::Value::String(s) => crate::time::parse_any(s).ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        Error::validation(format!(
            "{field} {value} is not a timestamp (epoch seconds or ISO-8601)"
        ))
    })
}

fn list_query(req: ListFeatureGroupsRequest) -> Result<ListQuery> {
    let one_of = |field: &str, value: Option<String>, allowed: &[&str]| -> Result<Option<String>> {
        match value {
            Some(v) if !allowed.contains(&v.as_str()) => Err(Error::validation(format!(
                "{field} '{v}' is not one of {}",
                allowed.join(", ")
            ))),
            v => Ok(v),
        }
    };
    Ok(ListQuery {
        name_contains: req.name_contains,
        status_equals: one_of(
            "FeatureGroupStatusEquals",
            req.feature_group_status_equals,
            &[
                "Creating",
                "Created",
                "CreateFailed",
                "Deleting",
                "DeleteFailed",
            ],
        )?,
        offline_store_status_equals: one_of(
            "OfflineStoreStatusEquals",
            req.offline_store_status_equals,
            &["Active", "Blocked", "Disabled"],
        )?,
        created_after_ms: req
            .creation_time_after
            .as_ref()
            .map(|v| timestamp_ms("CreationTimeAfter", v))
            .transpose()?,
        created_before_ms: req
            .creation_time_before
            .as_ref()
            .map(|v| timestamp_ms("CreationTimeBefore", v))
            .transpose()?,
        sort_by: match req.sort_by.as_deref() {
            None | Some("CreationTime") => SortBy::CreationTime,
            Some("Name") => SortBy::Name,
            Some("FeatureGroupStatus") => SortBy::FeatureGroupStatus,
            Some("OfflineStoreStatus") => SortBy::OfflineStoreStatus,
            Some(other) => {
                return Err(Error::validation(format!(
                    "SortBy '{other}' is not one of Name, FeatureGroupStatus, OfflineStoreStatus, CreationTime"
                )));
            }
        },
        sort_order: match req.sort_order.as_deref() {
            None | Some("Descending") => SortOrder::Descending,
            Some("Ascending") => SortOrder::Ascending,
            Some(other) => {
                return Err(Error::validation(format!(
                    "SortOrder '{other}' is not Ascending or Descending"
                )));
            }
        },
        max_results: req
            .max_results
            .map(|n| {
                usize::try_from(n).map_err(|_| {
                    Error::validation(format!("MaxResults {n} must be between 1 and 100"))
                })
            })
            .transpose()?,
        next_token: req.next_token.filter(|t| !t.is_empty()),
    })
}

// --- rendering --------------------------------------------------------------------------------

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
        feature_group_status: crate::listing::FEATURE_GROUP_STATUS,
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

fn summary_json(group: &FeatureGroup, offline: &OfflineStore) -> serde_json::Value {
    let mut summary = serde_json::json!({
        "FeatureGroupName": group.name,
        "FeatureGroupArn": group.arn,
        "CreationTime": epoch_seconds(group.creation_time_ms),
        "FeatureGroupStatus": crate::listing::FEATURE_GROUP_STATUS,
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
