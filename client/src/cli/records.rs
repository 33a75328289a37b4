//! `quiver put`, `get`, `batch-get` and `delete`: one record at a time, or a few in one round
//! trip, printed as a table or JSON.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use quiver_client::{Client, pb, value};
use serde_json::json;

use super::group::describe;
use super::output::{Output, cell, print_json, print_table};
use super::rows::Cell;

/// Writes one record, given as a JSON object of feature -> value.
pub async fn put(client: &Client, out: Output, group: String, record: String) -> Result<()> {
    let definitions = describe(client, &group).await?.feature_definitions;
    let object: serde_json::Value =
        serde_json::from_str(&record).context("the record must be a JSON object")?;
    let object = object
        .as_object()
        .ok_or_else(|| anyhow!("the record must be a JSON object"))?;
    let columns: Vec<String> = object.keys().cloned().collect();
    let cells = object
        .values()
        .map(super::values::json_cell)
        .collect::<Result<Vec<Cell>, String>>()
        .map_err(|e| anyhow!(e))?;
    let record = super::values::record(&definitions, &columns, &cells).map_err(|e| anyhow!(e))?;
    let response = client
        .put_record(pb::PutRecordRequest {
            feature_group_name: group,
            record,
            ..Default::default()
        })
        .await?;
    let outcome = pb::WriteOutcome::try_from(response.outcome)
        .map(|o| o.as_str_name())
        .unwrap_or("UNKNOWN");
    match out {
        Output::Json => print_json(&json!({ "outcome": outcome })),
        Output::Table => println!("{outcome}"),
    }
    Ok(())
}

/// Prints the latest record of an identifier; exit code 3 when there is none.
pub async fn get(
    client: &Client,
    out: Output,
    group: String,
    id: String,
    features: Vec<String>,
    expires: bool,
) -> Result<ExitCode> {
    let response = client
        .get_record(pb::GetRecordRequest {
            feature_group_name: group,
            record_identifier_value_as_string: id.clone(),
            feature_names: features,
            expiration_time_response: expires,
        })
        .await?;
    if response.record.is_empty() {
        match out {
            Output::Json => print_json(&json!(null)),
            Output::Table => eprintln!("no record for identifier '{id}'"),
        }
        return Ok(ExitCode::from(3));
    }
    print_record(out, &response.record, &response.expires_at);
    Ok(ExitCode::SUCCESS)
}

/// Reads many records in one round trip: GROUP=ID1,ID2 lookups.
pub async fn batch_get(
    client: &Client,
    out: Output,
    lookups: Vec<String>,
    features: Vec<String>,
) -> Result<()> {
    let identifiers = lookups
        .iter()
        .map(|l| {
            let (group, ids) = l
                .split_once('=')
                .ok_or_else(|| anyhow!("'{l}' must look like GROUP=ID1,ID2"))?;
            Ok(pb::BatchGetRecordIdentifier {
                feature_group_name: group.to_string(),
                record_identifiers_value_as_string: ids.split(',').map(str::to_string).collect(),
                feature_names: features.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let response = client
        .batch_get_record(pb::BatchGetRecordRequest {
            identifiers,
            expiration_time_response: false,
        })
        .await?;
    print_batch(out, &response);
    Ok(())
}

/// Deletes a record (soft unless `hard`).
pub async fn delete(
    client: &Client,
    out: Output,
    group: String,
    id: String,
    event_time: String,
    hard: bool,
) -> Result<()> {
    client
        .delete_record(pb::DeleteRecordRequest {
            feature_group_name: group,
            record_identifier_value_as_string: id,
            event_time,
            target_stores: vec![],
            deletion_mode: if hard {
                pb::DeletionMode::HardDelete
            } else {
                pb::DeletionMode::SoftDelete
            } as i32,
        })
        .await?;
    if out == Output::Json {
        print_json(&json!({ "deleted": true }));
    }
    Ok(())
}

fn print_record(out: Output, record: &[pb::FeatureValue], expires_at: &str) {
    match out {
        Output::Json => {
            let mut object = value::record_to_json(record);
            if !expires_at.is_empty() {
                object["ExpiresAt"] = json!(expires_at);
            }
            print_json(&object)
        }
        Output::Table => {
            let mut rows: Vec<Vec<String>> = record
                .iter()
                .map(|v| vec![v.feature_name.clone(), cell(&value::to_json(v))])
                .collect();
            if !expires_at.is_empty() {
                rows.push(vec!["(expires at)".into(), expires_at.to_string()]);
            }
            print_table(&["feature", "value"], &rows);
        }
    }
}

fn print_batch(out: Output, response: &pb::BatchGetRecordResponse) {
    let records: Vec<serde_json::Value> = response
        .records
        .iter()
        .map(|r| {
            json!({
                "FeatureGroupName": r.feature_group_name,
                "RecordIdentifierValueAsString": r.record_identifier_value_as_string,
                "Record": value::record_to_json(&r.record),
            })
        })
        .collect();
    let errors: Vec<serde_json::Value> = response
        .errors
        .iter()
        .map(|e| {
            json!({
                "FeatureGroupName": e.feature_group_name,
                "RecordIdentifierValueAsString": e.record_identifier_value_as_string,
                "ErrorCode": e.error_code,
                "ErrorMessage": e.error_message,
            })
        })
        .collect();
    match out {
        Output::Json => print_json(&json!({ "Records": records, "Errors": errors })),
        Output::Table => {
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    vec![
                        cell(&r["FeatureGroupName"]),
                        cell(&r["RecordIdentifierValueAsString"]),
                        r["Record"].to_string(),
                    ]
                })
                .collect();
            print_table(&["group", "identifier", "record"], &rows);
            for e in &errors {
                eprintln!(
                    "{} {}: {} {}",
                    cell(&e["FeatureGroupName"]),
                    cell(&e["RecordIdentifierValueAsString"]),
                    cell(&e["ErrorCode"]),
                    cell(&e["ErrorMessage"])
                );
            }
        }
    }
}
