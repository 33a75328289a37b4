//! `sagemaker` control plane (JSON 1.1, `POST /` with `X-Amz-Target: SageMaker.<Operation>`):
//! the feature-group operations and Search, as botocore sends and parses them.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::shapes::*;
use super::wire::{self, AwsError, CONTROL_CONTENT_TYPE, TtlJson, parse_body, to_json};
use super::{Api, auth, lineage, search};
use quiver_auth::{Caller, Features};
use quiver_core::blocking;
use quiver_types::error::{Error, Result};
use quiver_types::listing::{ListQuery, SortBy, SortOrder};
use quiver_types::model::TtlUpdate;
use quiver_types::model::{
    Collection, DataCatalogConfig, FeatureGroupSpec, FeatureSpec, FeatureType, OfflineStoreConfig,
    OnlineStoreConfig, StorageType, TableFormat,
};

/// `POST /`: dispatches on `X-Amz-Target`.
pub async fn handle(
    State(api): State<Api>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = auth::caller(caller);
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let result = match target.strip_prefix("SageMaker.") {
        Some(operation) => dispatch(&api, &caller, operation, &body).await,
        None => api
            .authorize(
                &caller,
                &format!("sagemaker:{target}"),
                None,
                Features::Unnamed,
            )
            .and_then(|()| {
                Err(Error::validation(format!(
                    "X-Amz-Target {target:?} names no SageMaker operation (SageMaker.<Operation>)"
                )))
            }),
    };
    match result {
        Ok(body) => wire::json_response(StatusCode::OK, CONTROL_CONTENT_TYPE, &body),
        Err(e) => axum::response::IntoResponse::into_response(AwsError::control(e)),
    }
}

/// Runs `operation` (`SageMaker.<operation>`'s JSON body): its request parsed, then authorized
/// as `sagemaker:<operation>` on the group it names, then done. The web console calls it in
/// process, so that its actions are the API's, under the same policies.
pub async fn dispatch(
    api: &Api,
    caller: &Caller,
    operation: &str,
    body: &[u8],
) -> Result<serde_json::Value> {
    let store = &api.store;
    let action = format!("sagemaker:{operation}");
    let authorize =
        |group: Option<&str>, features: Features| api.authorize(caller, &action, group, features);
    match operation {
        "CreateFeatureGroup" => {
            let request: CreateFeatureGroupRequest = parse_body(body)?;
            authorize(Some(&request.feature_group_name), Features::Unnamed)?;
            let spec = group_spec(request)?;
            let group = blocking(store, move |s| s.create_feature_group(spec)).await?;
            Ok(serde_json::json!({ "FeatureGroupArn": group.arn }))
        }
        "DescribeFeatureGroup" => {
            let req: NameRequest = parse_body(body)?;
            authorize(Some(&req.feature_group_name), Features::Unnamed)?;
            let group = store.describe_feature_group(&req.feature_group_name)?;
            let mut described = to_json(&feature_group_json(&group, store.offline()))?;
            described["NextToken"] = serde_json::Value::String(String::new());
            Ok(described)
        }
        "ListFeatureGroups" => {
            let request = parse_body(body)?;
            authorize(None, Features::Unnamed)?;
            let query = list_query(request)?;
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
            authorize(Some(&req.feature_group_name), Features::Unnamed)?;
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
            authorize(Some(&req.feature_group_name), Features::Unnamed)?;
            blocking(store, move |s| {
                s.delete_feature_group(&req.feature_group_name)
            })
            .await?;
            Ok(serde_json::json!({}))
        }
        "UpdateFeatureMetadata" => {
            let req: UpdateFeatureMetadataRequest = parse_body(body)?;
            let feature = [req.feature_name.clone()];
            authorize(Some(&req.feature_group_name), Features::Named(&feature))?;
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
            let feature = [req.feature_name.clone()];
            authorize(Some(&req.feature_group_name), Features::Named(&feature))?;
            let (group, ordinal) =
                store.describe_feature_metadata(&req.feature_group_name, &req.feature_name)?;
            to_json(&feature_metadata_json(
                &group,
                &group.features[usize::from(ordinal)],
            ))
        }
        "Search" => {
            let request = parse_body(body)?;
            authorize(None, Features::Unnamed)?;
            let (store, lineage) = (api.store.clone(), api.lineage.clone());
            tokio::task::spawn_blocking(move || search::search(&store, lineage.as_deref(), request))
                .await
                .map_err(|e| Error::internal(format!("search task failed: {e}")))?
        }
        automl_operation if crate::automl::is_automl_operation(automl_operation) => {
            crate::automl::dispatch(api, caller, automl_operation, body).await
        }
        lineage_operation if lineage::is_lineage_operation(lineage_operation) => {
            lineage::dispatch(api, caller, lineage_operation, body).await
        }
        other => {
            authorize(None, Features::Unnamed)?;
            Err(Error::validation(format!(
                "operation SageMaker.{other} is not supported by Quiver (feature-group, lineage and Search operations are)"
            )))
        }
    }
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
            .and_then(|secs| quiver_types::time::epoch_seconds_to_millis(secs).ok()),
        serde_json::Value::String(s) => quiver_types::time::parse_any(s).ok(),
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
