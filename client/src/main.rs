//! `quiver`: the command-line client for a Quiver server.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use quiver_client::{Client, pb, value};
use serde_json::json;

use cli::ingest::{IngestOptions, ingest};
use cli::output::{Output, cell, print_json, print_table};
use cli::rows::Cell;

#[derive(Debug, Parser)]
#[command(
    name = "quiver",
    version,
    about = "Command-line client for the Quiver feature store"
)]
struct Args {
    /// Server gRPC endpoint.
    #[arg(
        long,
        env = "QUIVER_ENDPOINT",
        default_value = "http://127.0.0.1:7940",
        global = true
    )]
    endpoint: String,
    /// How results are printed.
    #[arg(long, value_enum, default_value = "table", global = true)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, inspect and change feature groups.
    #[command(subcommand, name = "feature-group")]
    FeatureGroup(GroupCommand),
    /// Write one record, given as a JSON object of feature -> value.
    Put { group: String, record: String },
    /// Read the latest record of an identifier.
    Get {
        group: String,
        id: String,
        /// Only these features (comma-separated).
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        /// Also print when the record expires.
        #[arg(long)]
        expires: bool,
    },
    /// Read many records in one round trip: GROUP=ID1,ID2 [GROUP2=ID3 ...].
    BatchGet {
        #[arg(required = true)]
        lookups: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
    },
    /// Delete a record (soft by default).
    Delete {
        group: String,
        id: String,
        /// The delete's event time (ISO-8601 UTC or epoch seconds).
        #[arg(long)]
        event_time: String,
        /// Remove the record instead of hiding it.
        #[arg(long)]
        hard: bool,
    },
    /// Run a SQL statement over the offline store (tables: each group's history, and
    /// latest."GROUP" for its latest records) and print the result, or write it to a file.
    Sql {
        statement: String,
        /// Write the result here instead of printing it: Parquet for *.parquet, CSV for *.csv.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Build training datasets from the offline store.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Principals, access keys, groups and IAM policies; `simulate` explains a decision.
    #[command(subcommand)]
    Auth(cli::auth::AuthCommand),
    /// Write every row of a CSV or Parquet file, in parallel batches (`quiver ingest GROUP
    /// FILE`); or, `quiver ingest status`, show a stream source's progress.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Ingest {
        #[command(subcommand)]
        command: Option<IngestCommand>,
        #[arg(required = true)]
        group: Option<String>,
        #[arg(required = true)]
        file: Option<PathBuf>,
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Do not draw a progress bar.
        #[arg(long)]
        no_progress: bool,
    },
}

#[derive(Debug, Subcommand)]
enum IngestCommand {
    /// A stream source's stored positions per partition (from the server) and, with --worker,
    /// the worker's lag, rate and dead-letter counts (from its /metrics).
    Status {
        /// The source's name, as its quiver-ingest configuration gives it.
        #[arg(long)]
        source: String,
        /// The worker's metrics address (its `metrics_addr`), e.g. http://127.0.0.1:7950.
        #[arg(long)]
        worker: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum DatasetCommand {
    /// Join a base table (a file or a SQL query) with feature groups' histories and write the
    /// result as Parquet, with a manifest.json, to --out.
    Create {
        /// The base table: a Parquet or CSV file (absolute path, file:// or s3:// URI).
        #[arg(
            long,
            conflicts_with = "base_sql",
            required_unless_present = "base_sql"
        )]
        base_file: Option<String>,
        /// The base table: a SQL statement over the store's tables.
        #[arg(long)]
        base_sql: Option<String>,
        /// Base column holding the record identifier.
        #[arg(long)]
        record_id: String,
        /// Base column holding each row's event time (timestamp, ISO-8601 or epoch seconds).
        #[arg(long)]
        event_time: String,
        /// A feature group to join: NAME, or NAME:feature1,feature2 for some of its features.
        #[arg(long = "group", required = true)]
        groups: Vec<String>,
        /// Each base row sees only feature rows at or before its event time.
        #[arg(long)]
        point_in_time: bool,
        /// Keep every row of an (identifier, event time), not only the last written.
        #[arg(long)]
        include_duplicates: bool,
        /// Keep the rows delete markers hide (the markers themselves never match).
        #[arg(long)]
        include_deleted: bool,
        /// Per base row and group, only the N latest matching rows.
        #[arg(long)]
        most_recent: Option<u32>,
        /// Per base record identifier, only the N rows with the latest base event time, then
        /// the latest feature event times (the SageMaker SDK's number_of_recent_records).
        #[arg(long)]
        most_recent_per_identifier: Option<u32>,
        /// Leave out base rows a group has no match for (the SageMaker SDK's default inner
        /// join); by default they are kept with null features.
        #[arg(long)]
        inner_join: bool,
        /// Only feature rows with event time at or after this (ISO-8601 or epoch seconds).
        #[arg(long)]
        start: Option<String>,
        /// Only feature rows with event time at or before this.
        #[arg(long)]
        end: Option<String>,
        /// Only feature rows written at or before this time.
        #[arg(long)]
        as_of: Option<String>,
        /// Only feature rows at most this many seconds older than their base row.
        #[arg(long)]
        max_age_seconds: Option<u64>,
        /// Output directory: absolute path, file:// or s3:// URI.
        #[arg(long)]
        out: String,
    },
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
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
enum CatalogFormat {
    Glue,
    Athena,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode> {
    let client = Client::connect(args.endpoint.clone()).await?;
    let out = args.output;
    match args.command {
        Command::FeatureGroup(command) => group_command(&client, out, command).await?,
        Command::Auth(command) => cli::auth::run(&client, out, command).await?,
        Command::Put { group, record } => {
            let definitions = describe(&client, &group).await?.feature_definitions;
            let object: serde_json::Value =
                serde_json::from_str(&record).context("the record must be a JSON object")?;
            let object = object
                .as_object()
                .ok_or_else(|| anyhow!("the record must be a JSON object"))?;
            let columns: Vec<String> = object.keys().cloned().collect();
            let cells = object
                .values()
                .map(cli::values::json_cell)
                .collect::<Result<Vec<Cell>, String>>()
                .map_err(|e| anyhow!(e))?;
            let record =
                cli::values::record(&definitions, &columns, &cells).map_err(|e| anyhow!(e))?;
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
        }
        Command::Get {
            group,
            id,
            features,
            expires,
        } => {
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
        }
        Command::BatchGet { lookups, features } => {
            let identifiers = lookups
                .iter()
                .map(|l| {
                    let (group, ids) = l
                        .split_once('=')
                        .ok_or_else(|| anyhow!("'{l}' must look like GROUP=ID1,ID2"))?;
                    Ok(pb::BatchGetRecordIdentifier {
                        feature_group_name: group.to_string(),
                        record_identifiers_value_as_string: ids
                            .split(',')
                            .map(str::to_string)
                            .collect(),
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
        }
        Command::Delete {
            group,
            id,
            event_time,
            hard,
        } => {
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
        }
        Command::Dataset(DatasetCommand::Create {
            base_file,
            base_sql,
            record_id,
            event_time,
            groups,
            point_in_time,
            include_duplicates,
            include_deleted,
            most_recent,
            most_recent_per_identifier,
            inner_join,
            start,
            end,
            as_of,
            max_age_seconds,
            out: output_uri,
        }) => {
            let source = match (base_file, base_sql) {
                (Some(file), _) => pb::dataset_base::Source::FileUri(absolute_uri(&file)?),
                (None, Some(sql)) => pb::dataset_base::Source::Sql(sql),
                (None, None) => bail!("--base-file or --base-sql is required"),
            };
            let feature_groups = groups
                .iter()
                .map(|g| {
                    let (name, features) = g.split_once(':').unwrap_or((g.as_str(), ""));
                    pb::DatasetFeatureGroup {
                        feature_group_name: name.to_string(),
                        feature_names: features
                            .split(',')
                            .filter(|f| !f.is_empty())
                            .map(str::to_string)
                            .collect(),
                        ..Default::default()
                    }
                })
                .collect();
            let response = client
                .create_dataset(pb::CreateDatasetRequest {
                    base: Some(pb::DatasetBase {
                        source: Some(source),
                        record_identifier_column: record_id,
                        event_time_column: event_time,
                    }),
                    feature_groups,
                    options: Some(pb::DatasetOptions {
                        point_in_time_accurate_join: point_in_time,
                        include_duplicated_records: include_duplicates,
                        include_deleted_records: include_deleted,
                        most_recent_records: most_recent.unwrap_or(0),
                        event_time_start: start.unwrap_or_default(),
                        event_time_end: end.unwrap_or_default(),
                        as_of: as_of.unwrap_or_default(),
                        max_feature_age_seconds: max_age_seconds.unwrap_or(0),
                        most_recent_records_per_identifier: most_recent_per_identifier.unwrap_or(0),
                        inner_join,
                    }),
                    output_uri: absolute_uri(&output_uri)?,
                })
                .await?;
            match out {
                Output::Json => println!("{}", response.manifest_json),
                Output::Table => {
                    println!(
                        "{} rows written to {} ({} files); manifest: {}/manifest.json",
                        response.row_count,
                        response.output_uri,
                        response.files.len(),
                        response.output_uri
                    );
                }
            }
        }
        Command::Sql {
            statement,
            out: file,
        } => {
            let (schema, batches) = client.query(&statement).await?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            match file {
                Some(path) => {
                    write_result(&path, &schema, &batches)?;
                    eprintln!("{rows} rows written to {}", path.display());
                }
                None => match out {
                    Output::Json => print_json_rows(&batches)?,
                    Output::Table => {
                        println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);
                        eprintln!("{rows} rows");
                    }
                },
            }
        }
        Command::Ingest {
            command: Some(IngestCommand::Status { source, worker }),
            ..
        } => {
            let status = cli::ingest::source_status(&client, &source, worker.as_deref()).await?;
            match out {
                Output::Json => print_json(&serde_json::to_value(&status)?),
                Output::Table => status.print(),
            }
        }
        Command::Ingest {
            command: None,
            group,
            file,
            batch_size,
            concurrency,
            no_progress,
        } => {
            let (Some(group), Some(file)) = (group, file) else {
                bail!(
                    "quiver ingest needs GROUP and FILE (or: quiver ingest status --source NAME)"
                );
            };
            let options = IngestOptions {
                batch_size,
                concurrency,
                progress: !no_progress,
            };
            let summary = ingest(&client, &group, &file, options).await?;
            match out {
                Output::Json => print_json(&serde_json::to_value(&summary)?),
                Output::Table => {
                    println!(
                        "{} rows: {} written, {} rejected in {:.2}s ({:.0} rows/s)",
                        summary.rows,
                        summary.written,
                        summary.rejected.len(),
                        summary.elapsed.as_secs_f64(),
                        summary.rows_per_second()
                    );
                    for r in &summary.rejected {
                        println!("row {}: {}", r.row, r.reason);
                    }
                }
            }
            if !summary.rejected.is_empty() {
                return Ok(ExitCode::from(2));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A local path made absolute (the server resolves paths on its own machine, from its own
/// working directory); URIs pass unchanged.
fn absolute_uri(text: &str) -> Result<String> {
    if text.contains("://") {
        return Ok(text.to_string());
    }
    let path = std::path::absolute(text).with_context(|| format!("resolving {text}"))?;
    Ok(path.display().to_string())
}

/// A query result to a file, in the format its extension names.
fn write_result(
    path: &std::path::Path,
    schema: &arrow::datatypes::SchemaRef,
    batches: &[arrow::record_batch::RecordBatch],
) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => {
            let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None)?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.close()?;
        }
        Some("csv") => {
            let mut writer = arrow::csv::Writer::new(file);
            for batch in batches {
                writer.write(batch)?;
            }
        }
        _ => bail!(
            "--out {}: the file name must end in .parquet or .csv",
            path.display()
        ),
    }
    Ok(())
}

/// Rows as a JSON array of objects.
fn print_json_rows(batches: &[arrow::record_batch::RecordBatch]) -> Result<()> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    let text = writer.into_inner();
    if text.is_empty() {
        println!("[]");
    } else {
        println!("{}", String::from_utf8(text)?);
    }
    Ok(())
}

async fn describe(client: &Client, group: &str) -> Result<pb::DescribeFeatureGroupResponse> {
    Ok(client
        .describe_feature_group(pb::DescribeFeatureGroupRequest {
            feature_group_name: group.to_string(),
        })
        .await?)
}

async fn group_command(client: &Client, out: Output, command: GroupCommand) -> Result<()> {
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
                    cli::spec::parse(&text)?
                }
                (None, Some(from)) => {
                    let (name, record_id, event_time) = match (name, record_id, event_time) {
                        (Some(n), Some(r), Some(e)) => (n, r, e),
                        _ => bail!("--from needs NAME, --record-id and --event-time"),
                    };
                    let table = cli::rows::read_table(&from)?;
                    pb::CreateFeatureGroupRequest {
                        feature_group_name: name,
                        feature_definitions: cli::infer::definitions(&table, &event_time)?,
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
                "CreationTime": cli::values::format_iso8601_millis(d.creation_time_unix_ms),
                "LastModifiedTime": cli::values::format_iso8601_millis(d.last_modified_time_unix_ms),
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
                        "CreationTime": cli::values::format_iso8601_millis(g.creation_time_unix_ms),
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
            cli::spec::feature_type("--feature type", feature_type)?,
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
