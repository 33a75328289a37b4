//! Translation between the protobuf messages and the domain model. Only shapes change here;
//! every rule lives in `model/`. Unset or unknown enum values become validation errors that name
//! the field.

use quiver_proto::v1 as pb;

use quiver_core::{SourceRecord, SourceRecordResult, SourceValues, SourceWrite};
use quiver_offline::{OfflineStatus, OfflineStore};
use quiver_storage::online::WriteOutcome;
use quiver_storage::online::store::DeletionMode;
use quiver_storage::sources::Position;
use quiver_types::error::{Error, Result};
use quiver_types::listing::{ListQuery, SortBy, SortOrder};
use quiver_types::model::{
    Collection, DataCatalogConfig, Feature, FeatureGroup, FeatureGroupSpec, FeatureSpec,
    FeatureType, OfflineStoreConfig, OnlineStoreConfig, PutRequest, StorageType, TableFormat,
    TargetStore, TtlDuration, TtlUnit, Value,
};

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub fn enum_value<T: TryFrom<i32>>(field: &str, raw: i32) -> Result<T> {
    T::try_from(raw).map_err(|_| Error::validation(format!("{field} has unknown enum value {raw}")))
}

pub fn feature_spec(field: &str, def: pb::FeatureDefinition) -> Result<FeatureSpec> {
    let feature_type = match enum_value(&format!("{field}.FeatureType"), def.feature_type)? {
        pb::FeatureType::Integral => FeatureType::Integral,
        pb::FeatureType::Fractional => FeatureType::Fractional,
        pb::FeatureType::String => FeatureType::String,
        pb::FeatureType::Unspecified => {
            return Err(Error::validation(format!(
                "{field}.FeatureType is required (Integral, Fractional or String) for feature '{}'",
                def.feature_name
            )));
        }
    };
    let collection = match enum_value(&format!("{field}.CollectionType"), def.collection_type)? {
        pb::CollectionType::None => Collection::Scalar,
        pb::CollectionType::List => Collection::List,
        pb::CollectionType::Set => Collection::Set,
        pb::CollectionType::Vector => Collection::Vector {
            dimension: def.vector_dimension,
        },
    };
    if def.vector_dimension != 0 && !matches!(collection, Collection::Vector { .. }) {
        return Err(Error::validation(format!(
            "{field}.VectorDimension is only allowed with CollectionType Vector (feature '{}')",
            def.feature_name
        )));
    }
    Ok(FeatureSpec {
        name: def.feature_name,
        feature_type,
        collection,
    })
}

pub fn feature_specs(field: &str, defs: Vec<pb::FeatureDefinition>) -> Result<Vec<FeatureSpec>> {
    defs.into_iter()
        .enumerate()
        .map(|(i, d)| feature_spec(&format!("{field}[{i}]"), d))
        .collect()
}

pub fn ttl(field: &str, ttl: pb::TtlDuration) -> Result<TtlDuration> {
    let unit = match enum_value(&format!("{field}.Unit"), ttl.unit)? {
        pb::TtlUnit::Seconds => TtlUnit::Seconds,
        pb::TtlUnit::Minutes => TtlUnit::Minutes,
        pb::TtlUnit::Hours => TtlUnit::Hours,
        pb::TtlUnit::Days => TtlUnit::Days,
        pb::TtlUnit::Weeks => TtlUnit::Weeks,
        pb::TtlUnit::Unspecified => {
            return Err(Error::validation(format!(
                "{field}.Unit is required (Seconds, Minutes, Hours, Days or Weeks)"
            )));
        }
    };
    Ok(TtlDuration {
        unit,
        value: ttl.value,
    })
}

pub fn group_spec(req: pb::CreateFeatureGroupRequest) -> Result<FeatureGroupSpec> {
    let online = match req.online_store_config {
        Some(c) if c.enable_online_store => Some(OnlineStoreConfig {
            ttl: c
                .ttl_duration
                .map(|t| ttl("OnlineStoreConfig.TtlDuration", t))
                .transpose()?,
            storage_type: match enum_value("OnlineStoreConfig.StorageType", c.storage_type)? {
                pb::StorageType::InMemory => StorageType::InMemory,
                _ => StorageType::Standard,
            },
            kms_key_id: non_empty(c.kms_key_id),
        }),
        _ => None,
    };
    let offline = req
        .offline_store_config
        .map(|c| -> Result<OfflineStoreConfig> {
            Ok(OfflineStoreConfig {
                s3_uri: non_empty(c.s3_uri),
                kms_key_id: non_empty(c.kms_key_id),
                disable_glue_table_creation: c.disable_glue_table_creation,
                data_catalog: c.data_catalog_config.map(|d| DataCatalogConfig {
                    table_name: d.table_name,
                    catalog: d.catalog,
                    database: d.database,
                }),
                table_format: match enum_value("OfflineStoreConfig.TableFormat", c.table_format)? {
                    pb::TableFormat::Iceberg => TableFormat::Iceberg,
                    _ => TableFormat::Glue,
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
        role_arn: non_empty(req.role_arn),
        description: non_empty(req.description),
        tags: req.tags.into_iter().map(|t| (t.key, t.value)).collect(),
    })
}

pub fn feature_definition(f: &Feature) -> pb::FeatureDefinition {
    let (collection_type, vector_dimension) = match f.collection {
        Collection::Scalar => (pb::CollectionType::None, 0),
        Collection::List => (pb::CollectionType::List, 0),
        Collection::Set => (pb::CollectionType::Set, 0),
        Collection::Vector { dimension } => (pb::CollectionType::Vector, dimension),
    };
    pb::FeatureDefinition {
        feature_name: f.name.clone(),
        feature_type: feature_type(f.feature_type) as i32,
        collection_type: collection_type as i32,
        vector_dimension,
    }
}

pub fn feature_type(t: FeatureType) -> pb::FeatureType {
    match t {
        FeatureType::Integral => pb::FeatureType::Integral,
        FeatureType::Fractional => pb::FeatureType::Fractional,
        FeatureType::String => pb::FeatureType::String,
    }
}

pub fn collection_type(c: Collection) -> pb::CollectionType {
    match c {
        Collection::Scalar => pb::CollectionType::None,
        Collection::List => pb::CollectionType::List,
        Collection::Set => pb::CollectionType::Set,
        Collection::Vector { .. } => pb::CollectionType::Vector,
    }
}

fn ttl_to_pb(t: &TtlDuration) -> pb::TtlDuration {
    let unit = match t.unit {
        TtlUnit::Seconds => pb::TtlUnit::Seconds,
        TtlUnit::Minutes => pb::TtlUnit::Minutes,
        TtlUnit::Hours => pb::TtlUnit::Hours,
        TtlUnit::Days => pb::TtlUnit::Days,
        TtlUnit::Weeks => pb::TtlUnit::Weeks,
    };
    pb::TtlDuration {
        unit: unit as i32,
        value: t.value,
    }
}

/// The live status: Blocked (with the reason) while writing to the group's store fails.
fn live_offline_status(group: &FeatureGroup, offline: &OfflineStore) -> pb::OfflineStoreStatus {
    let (status, blocked_reason) = match offline.status(group) {
        OfflineStatus::Active => (pb::OfflineStoreStatusValue::Active, String::new()),
        OfflineStatus::Blocked(reason) => (pb::OfflineStoreStatusValue::Blocked, reason),
        OfflineStatus::Disabled => (pb::OfflineStoreStatusValue::Disabled, String::new()),
    };
    pb::OfflineStoreStatus {
        status: status as i32,
        blocked_reason,
    }
}

pub fn describe(group: &FeatureGroup, offline: &OfflineStore) -> pb::DescribeFeatureGroupResponse {
    pb::DescribeFeatureGroupResponse {
        feature_group_arn: group.arn.clone(),
        feature_group_name: group.name.clone(),
        record_identifier_feature_name: group.record_identifier_feature_name.clone(),
        event_time_feature_name: group.event_time_feature_name.clone(),
        feature_definitions: group.features.iter().map(feature_definition).collect(),
        creation_time_unix_ms: group.creation_time_ms,
        last_modified_time_unix_ms: group.last_modified_time_ms,
        online_store_config: group.online.as_ref().map(|o| pb::OnlineStoreConfig {
            enable_online_store: true,
            ttl_duration: o.ttl.as_ref().map(ttl_to_pb),
            storage_type: match o.storage_type {
                StorageType::Standard => pb::StorageType::Standard,
                StorageType::InMemory => pb::StorageType::InMemory,
            } as i32,
            kms_key_id: o.kms_key_id.clone().unwrap_or_default(),
        }),
        offline_store_config: group.offline.as_ref().map(|o| {
            let table = offline.catalog_table(group);
            pb::OfflineStoreConfig {
                resolved_output_s3_uri: offline.data_uri(group),
                s3_uri: offline.base_uri(group).to_string(),
                kms_key_id: o.kms_key_id.clone().unwrap_or_default(),
                disable_glue_table_creation: o.disable_glue_table_creation,
                data_catalog_config: (!o.disable_glue_table_creation || o.data_catalog.is_some())
                    .then_some(pb::DataCatalogConfig {
                        table_name: table.table,
                        catalog: table.catalog,
                        database: table.database,
                    }),
                table_format: match o.table_format {
                    TableFormat::Glue => pb::TableFormat::Glue,
                    TableFormat::Iceberg => pb::TableFormat::Iceberg,
                } as i32,
            }
        }),
        role_arn: group.role_arn.clone().unwrap_or_default(),
        feature_group_status: pb::FeatureGroupStatus::Created as i32,
        offline_store_status: Some(live_offline_status(group, offline)),
        last_update_status: Some(pb::LastUpdateStatus {
            status: pb::LastUpdateStatusValue::Successful as i32,
            failure_reason: String::new(),
        }),
        failure_reason: String::new(),
        description: group.description.clone().unwrap_or_default(),
        tags: group
            .tags
            .iter()
            .map(|(key, value)| pb::Tag {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}

pub fn summary(group: &FeatureGroup, offline: &OfflineStore) -> pb::FeatureGroupSummary {
    pb::FeatureGroupSummary {
        feature_group_name: group.name.clone(),
        feature_group_arn: group.arn.clone(),
        creation_time_unix_ms: group.creation_time_ms,
        feature_group_status: pb::FeatureGroupStatus::Created as i32,
        offline_store_status: Some(live_offline_status(group, offline)),
    }
}

pub fn list_query(req: pb::ListFeatureGroupsRequest) -> Result<ListQuery> {
    let status_equals =
        match enum_value("FeatureGroupStatusEquals", req.feature_group_status_equals)? {
            pb::FeatureGroupStatus::Unspecified => None,
            pb::FeatureGroupStatus::Creating => Some("Creating"),
            pb::FeatureGroupStatus::Created => Some("Created"),
            pb::FeatureGroupStatus::CreateFailed => Some("CreateFailed"),
            pb::FeatureGroupStatus::Deleting => Some("Deleting"),
            pb::FeatureGroupStatus::DeleteFailed => Some("DeleteFailed"),
        };
    let offline_equals =
        match enum_value("OfflineStoreStatusEquals", req.offline_store_status_equals)? {
            pb::OfflineStoreStatusValue::OfflineStoreStatusUnspecified => None,
            pb::OfflineStoreStatusValue::Active => Some("Active"),
            pb::OfflineStoreStatusValue::Blocked => Some("Blocked"),
            pb::OfflineStoreStatusValue::Disabled => Some("Disabled"),
        };
    Ok(ListQuery {
        name_contains: non_empty(req.name_contains),
        status_equals: status_equals.map(str::to_string),
        offline_store_status_equals: offline_equals.map(str::to_string),
        created_after_ms: req.creation_time_after_unix_ms,
        created_before_ms: req.creation_time_before_unix_ms,
        sort_by: match enum_value("SortBy", req.sort_by)? {
            pb::SortBy::Name => SortBy::Name,
            pb::SortBy::FeatureGroupStatus => SortBy::FeatureGroupStatus,
            pb::SortBy::OfflineStoreStatus => SortBy::OfflineStoreStatus,
            pb::SortBy::CreationTime | pb::SortBy::Unspecified => SortBy::CreationTime,
        },
        sort_order: match enum_value("SortOrder", req.sort_order)? {
            pb::SortOrder::Ascending => SortOrder::Ascending,
            pb::SortOrder::Descending | pb::SortOrder::Unspecified => SortOrder::Descending,
        },
        max_results: (req.max_results != 0).then_some(req.max_results as usize),
        next_token: non_empty(req.next_token),
    })
}

/// `index` is the value's position in the request's `Record`, for the error message; `name`
/// is the feature's name, owned or borrowed from the request.
fn value_from_pb<N: AsRef<str>>(
    index: usize,
    name: N,
    value: Option<pb::feature_value::Value>,
) -> Result<(N, Value)> {
    match value {
        Some(value) => Ok((name, value_of_pb(value))),
        None => Err(Error::validation(format!(
            "Record[{index}]: feature '{}' has no value; omit a feature to leave it null",
            name.as_ref()
        ))),
    }
}

fn value_of_pb(value: pb::feature_value::Value) -> Value {
    use pb::feature_value::Value as V;
    match value {
        V::Integral(n) => Value::Integral(n),
        V::Fractional(f) => Value::Fractional(f),
        V::StringValue(s) => Value::String(s),
        V::IntegralList(l) => Value::IntegralList(l.values),
        V::FractionalList(l) => Value::FractionalList(l.values),
        V::StringList(l) => Value::StringList(l.values),
    }
}

pub fn target_stores(raw: &[i32]) -> Result<Vec<TargetStore>> {
    raw.iter()
        .enumerate()
        .map(
            |(i, v)| match enum_value(&format!("TargetStores[{i}]"), *v)? {
                pb::TargetStore::OnlineStore => Ok(TargetStore::OnlineStore),
                pb::TargetStore::OfflineStore => Ok(TargetStore::OfflineStore),
                pb::TargetStore::Unspecified => Err(Error::validation(format!(
                    "TargetStores[{i}] must be OnlineStore or OfflineStore"
                ))),
            },
        )
        .collect()
}

pub fn put_request(req: pb::PutRecordRequest) -> Result<(String, PutRequest)> {
    let record = req.record.into_iter().map(|v| (v.feature_name, v.value));
    let put = put_parts(record, &req.target_stores, req.ttl_duration)?;
    Ok((req.feature_group_name, put))
}

/// A PutRecordRequest's parts in domain terms, checked in the order the fields are declared:
/// every value present, then TargetStores, then TtlDuration. The names stay as given (owned,
/// or borrowed from the received bytes by [`super::decode`]).
pub fn put_parts<N: AsRef<str>>(
    record: impl Iterator<Item = (N, Option<pb::feature_value::Value>)>,
    target_stores: &[i32],
    ttl_duration: Option<pb::TtlDuration>,
) -> Result<PutRequest<N>> {
    let record = record
        .enumerate()
        .map(|(i, (name, value))| value_from_pb(i, name, value))
        .collect::<Result<Vec<_>>>()?;
    Ok(PutRequest {
        record,
        target_stores: self::target_stores(target_stores)?,
        ttl: ttl_duration.map(|t| ttl("TtlDuration", t)).transpose()?,
    })
}

/// A source record in either form: a `Record` of its own, or `Values` of the request's shared
/// feature names (a value with nothing set is an absent feature).
pub fn source_record(req: pb::SourceRecord) -> Result<SourceRecord> {
    let values = match (req.record, req.values.is_empty()) {
        (Some(_), false) => {
            return Err(Error::validation("give Record or Values, not both"));
        }
        (Some(record), true) => {
            let (group, request) = put_request(record).map_err(|e| e.at("Record"))?;
            SourceValues::Record { group, request }
        }
        (None, true) => return Err(Error::validation("Record or Values is required")),
        (None, false) => SourceValues::Shared(
            req.values
                .into_iter()
                .map(|v| v.value.map(value_of_pb))
                .collect(),
        ),
    };
    Ok(SourceRecord {
        partition: req.partition,
        position: req.position,
        values,
    })
}

pub fn source_position((partition, position): (String, Position)) -> pb::SourcePosition {
    pb::SourcePosition {
        partition,
        position: position.to_string(),
    }
}

pub fn source_write(written: SourceWrite) -> pb::PutSourceRecordsResponse {
    use pb::source_record_result::Result as R;
    let results = written
        .results
        .into_iter()
        .map(|r| pb::SourceRecordResult {
            result: Some(match r {
                SourceRecordResult::Written(o) => R::Outcome(outcome(o) as i32),
                SourceRecordResult::AlreadyApplied => R::AlreadyApplied(true),
                SourceRecordResult::Refused(e) => R::Error(e.message().to_string()),
            }),
        })
        .collect();
    pb::PutSourceRecordsResponse {
        results,
        positions: written.positions.into_iter().map(source_position).collect(),
    }
}

pub fn outcome(o: WriteOutcome) -> pb::WriteOutcome {
    match o {
        WriteOutcome::Applied => pb::WriteOutcome::Applied,
        WriteOutcome::Historic => pb::WriteOutcome::Historic,
        WriteOutcome::OfflineOnly => pb::WriteOutcome::OfflineOnly,
    }
}

pub fn deletion_mode(raw: i32) -> Result<DeletionMode> {
    Ok(match enum_value("DeletionMode", raw)? {
        pb::DeletionMode::SoftDelete => DeletionMode::Soft,
        pb::DeletionMode::HardDelete => DeletionMode::Hard,
    })
}
