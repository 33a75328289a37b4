//! `quiver feature-group`: create (from a SageMaker spec or inferred from a file), describe,
//! list, delete, add features, and print the offline store's catalog entry.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use quiver_client::{Client, pb};
use serde_json::json;

use super::output::{Output, cell, print_json, print_table};

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// From a SageMaker CreateFeatureGroup JSON spec (--spec), or inferred from a file (--from).
    Create {
        /// Group name (with --from).
        name: Option<String>,
        #[arg(long, conflicts_with_all = ["from", "name"])]
        spec: Option<PathBuf>,
        /// CSV or Parquet file to infer feature definitions from.
        #[arg(long, requires_all = ["record_id", "event_time", "name"])]
        from: Option<PathBuf>,
        #[arg(long)]
        record_id: Option<String>,
        #[arg(long)]
        event_time: Option<String>,
        /// Also enable the offline store (at this S3 URI, or "default").
        #[arg(long)]
        offline_store: Option<String>,
    },
    Describe {
        name: String,
    },
    List {
        #[arg(long)]
        name_contains: Option<String>,
    },
    Delete {
        name: String,
    },
    /// Add features: --feature NAME:TYPE[:List|:Set|:Vector:DIM] (repeatable).
    AddFeatures {
        name: String,
        #[arg(long = "feature", required = true)]
        features: Vec<String>,
    },
    /// Print the catalog entry of the group's offline store: the Glue CreateTable input (JSON)
    /// or Athena CREATE EXTERNAL TABLE DDL, to register the Parquet files with a query engine.
    Catalog {
        name: String,
        #[arg(long, value_enum, default_value = "glue")]
        format: CatalogFormat,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum CatalogFormat {
    Glue,
    Athena,
}

pub async fn describe(client: &Client, group: &str) -> Result<pb::DescribeFeatureGroupResponse> {
    Ok(client
        .describe_feature_group(pb::DescribeFeatureGroupRequest {
            feature_group_name: group.to_string(),
        })
        .await?)
}

pub async fn run(client: &Client, out: Output, command: GroupCommand) -> Result<()> {
    match command {
        GroupCommand::Create {
            name,
            spec,
            from,
            record_id,
            event_time,
            offline_store,
        } => {
            let mut request = match (spec, from) {
                (Some(spec), _) => {
                    let text = std::fs::read_to_string(&spec)
                        .with_context(|| format!("cannot read {}", spec.display()))?;
                    super::spec::parse(&text)?
                }
                (None, Some(from)) => {
                    let (name, record_id, event_time) = match (name, record_id, event_time) {
                        (Some(n), Some(r), Some(e)) => (n, r, e),
                        _ => bail!("--from needs NAME, --record-id and --event-time"),
                    };
                    let table = super::rows::read_table(&from)?;
                    pb::CreateFeatureGroupRequest {
                        feature_group_name: name,
                        feature_definitions: super::infer::definitions(&table, &event_time)?,
                        record_identifier_feature_name: record_id,
                        event_time_feature_name: event_time,
                        online_store_config: Some(pb::OnlineStoreConfig {
                            enable_online_store: true,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }
                }
                (None, None) => bail!(
                    "give --spec FILE.json, or NAME --from FILE --record-id COL --event-time COL"
                ),
            };
            if let Some(uri) = offline_store {
                request.offline_store_config = Some(pb::OfflineStoreConfig {
                    s3_uri: if uri == "default" { String::new() } else { uri },
                    ..Default::default()
                });
            }
            let definitions = request.feature_definitions.clone();
            let response = client.create_feature_group(request).await?;
            match out {
                Output::Json => print_json(&json!({
                    "FeatureGroupArn": response.feature_group_arn,
                    "FeatureDefinitions": definitions.iter().map(definition_json).collect::<Vec<_>>(),
                })),
                Output::Table => {
                    println!("created {}", response.feature_group_arn);
                    print_definitions(&definitions);
                }
            }
        }
        GroupCommand::Describe { name } => {
            let d = describe(client, &name).await?;
            let summary = json!({
                "FeatureGroupName": d.feature_group_name,
                "FeatureGroupArn": d.feature_group_arn,
                "RecordIdentifierFeatureName": d.record_identifier_feature_name,
                "EventTimeFeatureName": d.event_time_feature_name,
                "CreationTime": super::output::format_iso8601_millis(d.creation_time_unix_ms),
                "LastModifiedTime": super::output::format_iso8601_millis(d.last_modified_time_unix_ms),
                "OnlineStore": d.online_store_config.as_ref().map(|o| json!({
                    "TtlDuration": o.ttl_duration.as_ref().map(|t| format!("{} {}", t.value,
                        pb::TtlUnit::try_from(t.unit).map(|u| u.as_str_name()).unwrap_or("?"))),
                })),
                "OfflineStore": d.offline_store_config.as_ref().map(|o| o.resolved_output_s3_uri.clone()),
                "Description": d.description,
                "FeatureDefinitions": d.feature_definitions.iter().map(definition_json).collect::<Vec<_>>(),
            });
            match out {
                Output::Json => print_json(&summary),
                Output::Table => {
                    let rows: Vec<Vec<String>> = summary
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(k, _)| *k != "FeatureDefinitions")
                        .map(|(k, v)| vec![k.clone(), cell(v)])
                        .collect();
                    print_table(&["field", "value"], &rows);
                    println!();
                    print_definitions(&d.feature_definitions);
                }
            }
        }
        GroupCommand::List { name_contains } => {
            let groups = client
                .list_all_feature_groups(pb::ListFeatureGroupsRequest {
                    name_contains: name_contains.unwrap_or_default(),
                    max_results: 100,
                    ..Default::default()
                })
                .await?;
            let rows: Vec<serde_json::Value> = groups
                .iter()
                .map(|g| {
                    json!({
                        "FeatureGroupName": g.feature_group_name,
                        "FeatureGroupArn": g.feature_group_arn,
                        "CreationTime": super::output::format_iso8601_millis(g.creation_time_unix_ms),
                    })
                })
                .collect();
            match out {
                Output::Json => print_json(&json!(rows)),
                Output::Table => print_table(
                    &["name", "created", "arn"],
                    &rows
                        .iter()
                        .map(|r| {
                            vec![
                                cell(&r["FeatureGroupName"]),
                                cell(&r["CreationTime"]),
                                cell(&r["FeatureGroupArn"]),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        GroupCommand::Delete { name } => {
            client
                .delete_feature_group(pb::DeleteFeatureGroupRequest {
                    feature_group_name: name.clone(),
                })
                .await?;
            match out {
                Output::Json => print_json(&json!({ "deleted": name })),
                Output::Table => println!("deleted {name}"),
            }
        }
        GroupCommand::AddFeatures { name, features } => {
            let feature_additions = features
                .iter()
                .map(|f| parse_feature(f))
                .collect::<Result<Vec<_>>>()?;
            let response = client
                .update_feature_group(pb::UpdateFeatureGroupRequest {
                    feature_group_name: name,
                    feature_additions,
                    online_store_config: None,
                })
                .await?;
            match out {
                Output::Json => {
                    print_json(&json!({ "FeatureGroupArn": response.feature_group_arn }))
                }
                Output::Table => println!("updated {}", response.feature_group_arn),
            }
        }
        GroupCommand::Catalog { name, format } => {
            let response = client
                .get_offline_store_catalog(pb::GetOfflineStoreCatalogRequest {
                    feature_group_name: name,
                    format: match format {
                        CatalogFormat::Glue => pb::CatalogFormat::Glue,
                        CatalogFormat::Athena => pb::CatalogFormat::Athena,
                    } as i32,
                })
                .await?;
            // The definition is the output in either mode: it is meant to be piped on.
            print!("{}", response.definition);
            if !response.definition.ends_with('\n') {
                println!();
            }
        }
    }
    Ok(())
}

/// `NAME:TYPE[:List|:Set|:Vector:DIM]`.
fn parse_feature(text: &str) -> Result<pb::FeatureDefinition> {
    let parts: Vec<&str> = text.split(':').collect();
    let (name, feature_type) = match parts.as_slice() {
        [name, feature_type, ..] => (
            *name,
            super::spec::feature_type("--feature type", feature_type)?,
        ),
        _ => bail!("--feature '{text}' must look like NAME:TYPE[:List|:Set|:Vector:DIM]"),
    };
    let (collection_type, vector_dimension) = match parts.get(2..).unwrap_or_default() {
        [] => (pb::CollectionType::None, 0),
        ["List"] => (pb::CollectionType::List, 0),
        ["Set"] => (pb::CollectionType::Set, 0),
        ["Vector", dim] => (
            pb::CollectionType::Vector,
            dim.parse()
                .map_err(|_| anyhow!("--feature '{text}': '{dim}' is not a dimension"))?,
        ),
        _ => bail!("--feature '{text}' must look like NAME:TYPE[:List|:Set|:Vector:DIM]"),
    };
    Ok(pb::FeatureDefinition {
        feature_name: name.to_string(),
        feature_type: feature_type as i32,
        collection_type: collection_type as i32,
        vector_dimension,
    })
}

fn definition_json(d: &pb::FeatureDefinition) -> serde_json::Value {
    let feature_type = pb::FeatureType::try_from(d.feature_type)
        .map(|t| t.as_str_name())
        .unwrap_or("?");
    let collection = pb::CollectionType::try_from(d.collection_type)
        .map(|t| t.as_str_name())
        .unwrap_or("?");
    json!({
        "FeatureName": d.feature_name,
        "FeatureType": feature_type,
        "CollectionType": collection,
        "Dimension": (d.vector_dimension > 0).then_some(d.vector_dimension),
    })
}

fn print_definitions(definitions: &[pb::FeatureDefinition]) {
    let rows: Vec<Vec<String>> = definitions
        .iter()
        .map(definition_json)
        .map(|d| {
            let mut collection = cell(&d["CollectionType"]);
            if collection == "COLLECTION_TYPE_NONE" {
                collection.clear();
            }
            if !d["Dimension"].is_null() {
                collection = format!("{collection}({})", d["Dimension"]);
            }
            vec![cell(&d["FeatureName"]), cell(&d["FeatureType"]), collection]
        })
        .collect();
    print_table(&["feature", "type", "collection"], &rows);
}
