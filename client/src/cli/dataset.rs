//! `quiver dataset create`: a training dataset built by the server from a base table and
//! feature groups' histories.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use quiver_client::{Client, pb};

use super::output::Output;

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
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

pub async fn run(client: &Client, out: Output, command: DatasetCommand) -> Result<()> {
    let DatasetCommand::Create {
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
    } = command;
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
    Ok(())
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
