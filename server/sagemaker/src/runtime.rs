//! `sagemaker-featurestore-runtime` (REST-JSON): PutRecord, GetRecord, DeleteRecord,
//! BatchGetRecord, BatchWriteRecord and ListRecords, as botocore sends and parses them. Values
//! travel as strings and are parsed per feature type against the group's definitions.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Extension, Router};
use serde::{Deserialize, Serialize};

use super::wire::{self, AwsError, RUNTIME_CONTENT_TYPE, TtlJson, parse_body};
use super::{Api, auth};
use quiver_auth::{Caller, Features};
use quiver_core::{BatchGetEntry, BatchGetItem, FeatureStore, RecordView, blocking};
use quiver_storage::online::store::DeletionMode;
use quiver_types::error::{AwsApi, Error, Result};
use quiver_types::model::record::{TextValue, parse_text_record, value_as_text};
use quiver_types::model::{PutRequest, TargetStore};
use quiver_types::time;

/// Most entries one BatchWriteRecord may carry, as in SageMaker.
const MAX_BATCH_WRITE_ENTRIES: usize = 25;
/// ListRecords page size bounds.
const MAX_LIST_RECORDS: usize = 100;

type Reply = std::result::Result<Response, AwsError>;

/// The runtime API's routes.
pub fn routes() -> Router<Api> {
    Router::new()
        .route(
            "/FeatureGroup/{name}",
            put(put_record).get(get_record).delete(delete_record),
        )
        .route("/FeatureGroup/{name}/ListRecords", post(list_records))
        .route("/BatchGetRecord", post(batch_get_record))
        .route("/BatchWriteRecord", post(batch_write_record))
}

// --- wire shapes ----------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct FeatureValueJson {
    feature_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_as_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_as_string_list: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordBody {
    record: Vec<FeatureValueJson>,
    #[serde(default)]
    target_stores: Vec<String>,
    ttl_duration: Option<TtlJson>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchWriteEntry {
    feature_group_name: String,
    record: Vec<FeatureValueJson>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    target_stores: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl_duration: Option<TtlJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchWriteBody {
    entries: Vec<BatchWriteEntry>,
    ttl_duration: Option<TtlJson>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchWriteError {
    entry: BatchWriteEntry,
    error_code: &'static str,
    error_message: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchGetIdentifier {
    feature_group_name: String,
    record_identifiers_value_as_string: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    feature_names: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchGetBody {
    identifiers: Vec<BatchGetIdentifier>,
    expiration_time_response: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRecordsBody {
    max_results: Option<i64>,
    next_token: Option<String>,
    #[serde(default)]
    include_soft_deleted_records: bool,
}

// --- handlers -------------------------------------------------------------------------------

fn ok_empty() -> Response {
    (
        StatusCode::OK,
        [("content-type", RUNTIME_CONTENT_TYPE)],
        "{}",
    )
        .into_response()
}

fn ok_json(body: &impl Serialize) -> Response {
    wire::json_response(StatusCode::OK, RUNTIME_CONTENT_TYPE, body)
}

async fn put_record(
    State(api): State<Api>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let body: PutRecordBody = parse_body(&body).map_err(AwsError::runtime)?;
    let names = body.record.iter().map(|v| v.feature_name.as_str());
    let caller = auth::caller(caller);
    api.authorize_writes(&caller, std::iter::once((name.as_str(), names)))
        .map_err(AwsError::runtime)?;
    let request = put_request(
        &api.store,
        &name,
        body.record,
        &body.target_stores,
        body.ttl_duration.as_ref(),
        None,
    )
    .map_err(AwsError::runtime)?;
    api.puts
        .put_record(&name, request)
        .await
        .map_err(AwsError::runtime)?;
    observe_ingest(&api, &caller, &headers, [(name.as_str(), 1)]);
    Ok(ok_empty())
}

/// Counts the rows a request wrote, per group, into the caller's ingest sessions
/// (docs/lineage.md).
fn observe_ingest<'a>(
    api: &Api,
    caller: &Caller,
    headers: &HeaderMap,
    rows: impl IntoIterator<Item = (&'a str, u64)>,
) {
    let Some(ingests) = &api.ingests else {
        return;
    };
    let client = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for (group, rows) in rows {
        ingests.observe(group, caller.principal.as_deref(), client, rows);
    }
}

/// Translates a text record into a domain put: values parsed per the group's feature types.
fn put_request(
    store: &FeatureStore,
    group_name: &str,
    record: Vec<FeatureValueJson>,
    target_stores: &[String],
    ttl: Option<&TtlJson>,
    default_ttl: Option<&TtlJson>,
) -> Result<PutRequest> {
    if record.is_empty() {
        return Err(Error::validation(
            "Record must hold at least one feature value",
        ));
    }
    let group = store.describe_feature_group(group_name)?;
    let text = record
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let value = match (v.value_as_string, v.value_as_string_list) {
                (Some(s), None) => TextValue::Scalar(s),
                (None, Some(list)) => TextValue::List(list),
                (Some(_), Some(_)) => {
                    return Err(Error::validation(format!(
                        "Record[{i}] (feature '{}') gives both ValueAsString and ValueAsStringList; give one",
                        v.feature_name
                    )));
                }
                (None, None) => {
                    return Err(Error::validation(format!(
                        "Record[{i}] (feature '{}') gives neither ValueAsString nor ValueAsStringList",
                        v.feature_name
                    )));
                }
            };
            Ok((v.feature_name, value))
        })
        .collect::<Result<Vec<_>>>()?;
    let record = parse_text_record(&group, text)?;
    let ttl = match (ttl, default_ttl) {
        (Some(t), _) => Some(t.to_domain("TtlDuration")?),
        (None, Some(t)) => Some(t.to_domain("TtlDuration")?),
        (None, None) => None,
    };
    Ok(PutRequest {
        record,
        target_stores: wire::target_stores("TargetStores", target_stores)?,
        ttl,
    })
}

fn record_json(view: &RecordView) -> Result<Vec<FeatureValueJson>> {
    let mut record = Vec::new();
    view.for_each(|name, value| {
        let feature_name = name.to_string();
        record.push(match value_as_text(&value.to_value()) {
            TextValue::Scalar(s) => FeatureValueJson {
                feature_name,
                value_as_string: Some(s),
                value_as_string_list: None,
            },
            TextValue::List(list) => FeatureValueJson {
                feature_name,
                value_as_string: None,
                value_as_string_list: Some(list),
            },
        });
    })?;
    Ok(record)
}

/// `ExpirationTimeResponse`: Enabled or Disabled (the default).
fn expiration_wanted(value: Option<&str>) -> Result<bool> {
    match value {
        None | Some("Disabled") => Ok(false),
        Some("Enabled") => Ok(true),
        Some(other) => Err(Error::validation(format!(
            "ExpirationTimeResponse '{other}' is not Enabled or Disabled"
        ))),
    }
}

/// The query string's parameters, in order, repeated names kept.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>> {
    let mut values = pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(Error::validation(format!("{name} is given more than once")));
    }
    Ok(first)
}

fn required<'a>(pairs: &'a [(String, String)], name: &str) -> Result<&'a str> {
    single(pairs, name)?.ok_or_else(|| Error::validation(format!("{name} is required")))
}

fn repeated(pairs: &[(String, String)], name: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetRecordResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<Vec<FeatureValueJson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

async fn get_record(
    State(api): State<Api>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let run = || -> Result<GetRecordResponse> {
        let pairs = query_pairs(query.as_deref());
        let identifier = required(&pairs, "RecordIdentifierValueAsString")?;
        let feature_names = repeated(&pairs, "FeatureName");
        let with_expiry = expiration_wanted(single(&pairs, "ExpirationTimeResponse")?)?;
        api.authorize(
            &auth::caller(caller),
            "sagemaker:GetRecord",
            Some(&name),
            Features::Named(&feature_names),
        )?;
        let view = api.store.get_record(&name, identifier, &feature_names)?;
        Ok(match view {
            None => GetRecordResponse {
                record: None,
                expires_at: None,
            },
            Some(view) => {
                let expires_at = view
                    .expires_at_ms
                    .filter(|_| with_expiry)
                    .map(time::format_iso8601);
                GetRecordResponse {
                    record: Some(record_json(&view)?),
                    expires_at,
                }
            }
        })
    };
    run().map(|r| ok_json(&r)).map_err(AwsError::runtime)
}

async fn delete_record(
    State(api): State<Api>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let pairs = query_pairs(query.as_deref());
    let parse = || -> Result<(String, String, Vec<TargetStore>, DeletionMode)> {
        let identifier = required(&pairs, "RecordIdentifierValueAsString")?.to_string();
        let event_time = required(&pairs, "EventTime")?.to_string();
        let targets = wire::target_stores("TargetStores", &repeated(&pairs, "TargetStores"))?;
        let mode = match single(&pairs, "DeletionMode")? {
            None | Some("SoftDelete") => DeletionMode::Soft,
            Some("HardDelete") => DeletionMode::Hard,
            Some(other) => {
                return Err(Error::validation(format!(
                    "DeletionMode '{other}' is not SoftDelete or HardDelete"
                )));
            }
        };
        Ok((identifier, event_time, targets, mode))
    };
    let (identifier, event_time, targets, mode) = parse().map_err(AwsError::runtime)?;
    api.authorize(
        &auth::caller(caller),
        "sagemaker:DeleteRecord",
        Some(&name),
        Features::Unnamed,
    )
    .map_err(AwsError::runtime)?;
    blocking(&api.store, move |s| {
        s.delete_record(&name, &identifier, &event_time, &targets, mode)
    })
    .await
    .map_err(AwsError::runtime)?;
    Ok(ok_empty())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchGetRecordDetail {
    feature_group_name: String,
    record_identifier_value_as_string: String,
    record: Vec<FeatureValueJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchGetRecordError {
    feature_group_name: String,
    record_identifier_value_as_string: String,
    error_code: String,
    error_message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchGetRecordResponse {
    records: Vec<BatchGetRecordDetail>,
    errors: Vec<BatchGetRecordError>,
    unprocessed_identifiers: Vec<BatchGetIdentifier>,
}

async fn batch_get_record(
    State(api): State<Api>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Reply {
    let caller = auth::caller(caller);
    let run = || -> Result<BatchGetRecordResponse> {
        let body: BatchGetBody = parse_body(&body)?;
        let with_expiry = expiration_wanted(body.expiration_time_response.as_deref())?;
        if body.identifiers.is_empty() {
            return Err(Error::validation(
                "Identifiers must hold at least one entry",
            ));
        }
        let entries: Vec<BatchGetEntry> = body
            .identifiers
            .into_iter()
            .enumerate()
            .map(|(i, id)| {
                if id.feature_names.as_ref().is_some_and(Vec::is_empty) {
                    return Err(Error::validation(format!(
                        "Identifiers[{i}].FeatureNames must name at least one feature when given"
                    )));
                }
                Ok(BatchGetEntry {
                    group_name: id.feature_group_name,
                    identifiers: id.record_identifiers_value_as_string,
                    feature_names: id.feature_names.unwrap_or_default(),
                })
            })
            .collect::<Result<_>>()?;
        for entry in &entries {
            api.authorize(
                &caller,
                "sagemaker:BatchGetRecord",
                Some(&entry.group_name),
                Features::Named(&entry.feature_names),
            )?;
        }
        let mut response = BatchGetRecordResponse {
            records: Vec::new(),
            errors: Vec::new(),
            unprocessed_identifiers: Vec::new(),
        };
        for item in api.store.batch_get_record(&entries)? {
            match item {
                BatchGetItem::Found {
                    group_name,
                    identifier,
                    record,
                } => {
                    let expires_at = record
                        .expires_at_ms
                        .filter(|_| with_expiry)
                        .map(time::format_iso8601);
                    response.records.push(BatchGetRecordDetail {
                        feature_group_name: group_name,
                        record_identifier_value_as_string: identifier,
                        record: record_json(&record)?,
                        expires_at,
                    });
                }
                BatchGetItem::Missing => {}
                BatchGetItem::Failed {
                    group_name,
                    identifier,
                    code,
                    message,
                } => response.errors.push(BatchGetRecordError {
                    feature_group_name: group_name,
                    record_identifier_value_as_string: identifier,
                    error_code: code.to_string(),
                    error_message: message,
                }),
            }
        }
        Ok(response)
    };
    run().map(|r| ok_json(&r)).map_err(AwsError::runtime)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchWriteResponse {
    errors: Vec<BatchWriteError>,
    unprocessed_entries: Vec<BatchWriteEntry>,
}

async fn batch_write_record(
    State(api): State<Api>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let body: BatchWriteBody = parse_body(&body).map_err(AwsError::runtime)?;
    if body.entries.is_empty() || body.entries.len() > MAX_BATCH_WRITE_ENTRIES {
        return Err(AwsError::runtime(Error::validation(format!(
            "Entries holds {} entries; it must hold 1 to {MAX_BATCH_WRITE_ENTRIES}",
            body.entries.len()
        ))));
    }
    let writes = body.entries.iter().map(|entry| {
        let names = entry.record.iter().map(|v| v.feature_name.as_str());
        (entry.feature_group_name.as_str(), names)
    });
    let caller = auth::caller(caller);
    api.authorize_writes(&caller, writes)
        .map_err(AwsError::runtime)?;
    let store = &api.store;
    // Each entry is translated on its own: a bad one becomes its error, not the call's.
    let mut errors = Vec::new();
    let mut requests = Vec::with_capacity(body.entries.len());
    let mut accepted = Vec::with_capacity(body.entries.len());
    for (i, entry) in body.entries.into_iter().enumerate() {
        let translated = put_request(
            store,
            &entry.feature_group_name,
            entry.record.clone(),
            &entry.target_stores,
            entry.ttl_duration.as_ref(),
            body.ttl_duration.as_ref(),
        );
        match translated {
            Ok(request) => {
                requests.push((entry.feature_group_name.clone(), request));
                accepted.push(entry);
            }
            Err(e) => errors.push(batch_write_error(entry, &e.at(format!("Entries[{i}]")))),
        }
    }
    let results = blocking(store, move |s| s.put_records_each(requests))
        .await
        .map_err(AwsError::runtime)?;
    let mut written: Vec<(String, u64)> = Vec::new();
    for (entry, result) in accepted.into_iter().zip(results) {
        match result {
            Err(e) => errors.push(batch_write_error(entry, &e)),
            Ok(_) => match written
                .iter_mut()
                .find(|(g, _)| *g == entry.feature_group_name)
            {
                Some((_, rows)) => *rows += 1,
                None => written.push((entry.feature_group_name, 1)),
            },
        }
    }
    observe_ingest(
        &api,
        &caller,
        &headers,
        written.iter().map(|(g, rows)| (g.as_str(), *rows)),
    );
    Ok(ok_json(&BatchWriteResponse {
        errors,
        unprocessed_entries: Vec::new(),
    }))
}

fn batch_write_error(entry: BatchWriteEntry, error: &Error) -> BatchWriteError {
    BatchWriteError {
        entry,
        error_code: error.to_aws(AwsApi::Runtime).1,
        error_message: error.message().to_string(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListRecordsResponse {
    record_identifiers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

async fn list_records(
    State(api): State<Api>,
    caller: Option<Extension<Caller>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Reply {
    let run = || -> Result<ListRecordsResponse> {
        let body: ListRecordsBody = parse_body(&body)?;
        let limit = match body.max_results {
            None => MAX_LIST_RECORDS,
            Some(n) if (1..=MAX_LIST_RECORDS as i64).contains(&n) => n as usize,
            Some(n) => {
                return Err(Error::validation(format!(
                    "MaxResults {n} must be between 1 and {MAX_LIST_RECORDS}"
                )));
            }
        };
        let after = body.next_token.as_deref().map(decode_token).transpose()?;
        api.authorize(
            &auth::caller(caller),
            "quiver:ListRecords",
            Some(&name),
            Features::All,
        )?;
        let (identifiers, more) = api.store.list_record_identifiers(
            &name,
            after.as_deref(),
            limit,
            body.include_soft_deleted_records,
        )?;
        let next_token = match (more, identifiers.last()) {
            (true, Some(last)) => Some(hex::encode(last.as_bytes())),
            _ => None,
        };
        Ok(ListRecordsResponse {
            record_identifiers: identifiers,
            next_token,
        })
    };
    run().map(|r| ok_json(&r)).map_err(AwsError::runtime)
}

/// A ListRecords NextToken is the hex of the last identifier returned.
fn decode_token(token: &str) -> Result<String> {
    hex::decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            Error::validation("NextToken is not a token returned by ListRecords".to_string())
        })
}
