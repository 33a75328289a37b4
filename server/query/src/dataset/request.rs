//! What a dataset build is asked for: the base, the joined groups and the options, as the
//! front doors hand them over.

use serde::Serialize;

use quiver_types::error::{Error, Result, quote};
use quiver_types::time::EpochMillis;

#[allow(unused_imports)]
use super::*;

/// One joined feature group.
#[derive(Debug, Clone, Serialize)]
pub struct JoinedGroup {
    pub name: String,
    /// The features to include; empty for all but the identifier and event time.
    pub features: Vec<String>,
    /// The base column holding this group's record identifier.
    pub base_identifier_column: String,
    /// The base column holding the time each base row is "as of" (its event time).
    pub base_event_time_column: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DatasetOptions {
    pub point_in_time: bool,
    pub include_duplicated_records: bool,
    pub include_deleted_records: bool,
    /// Per base row and group, at most this many rows (the latest); `None` for all.
    pub most_recent: Option<u32>,
    /// Per base record identifier (the first group's base identifier column), at most this
    /// many output rows: the latest base event time first, then the latest matched event
    /// times, group by group (the SageMaker SDK's `number_of_recent_records`).
    pub most_recent_per_identifier: Option<u32>,
    /// Base rows a group has no match for are left out (an inner join, the SDK's default),
    /// rather than kept with null features.
    pub inner_join: bool,
    pub event_time_start_ms: Option<EpochMillis>,
    pub event_time_end_ms: Option<EpochMillis>,
    /// Only rows written at or before this time.
    pub as_of_ms: Option<EpochMillis>,
    /// Only feature rows at most this much older than their base row.
    pub max_age_ms: Option<i64>,
}

/// Where a dataset's base rows come from.
#[derive(Debug, Clone)]
pub enum BaseSource {
    /// A SQL statement over the store's tables.
    Sql(String),
    /// A Parquet or CSV file (by extension), local (`file:///...` or an absolute path) or on S3.
    File(String),
}

/// A dataset build, as asked.
#[derive(Debug, Clone)]
pub struct DatasetRequest {
    pub base: BaseSource,
    pub groups: Vec<JoinedGroup>,
    pub options: DatasetOptions,
    /// A directory: `file:///abs/dir`, an absolute path, or `s3://bucket/prefix`.
    pub output_uri: String,
}

/// `uri` as a URL DataFusion and object_store take: absolute paths become `file://` URLs.
pub fn normalize_uri(field: &str, uri: &str) -> Result<String> {
    let uri = uri.trim();
    if uri.starts_with('/') {
        return Ok(format!("file://{uri}"));
    }
    if uri.starts_with("file:///") || uri.starts_with("s3://") {
        return Ok(uri.to_string());
    }
    Err(Error::validation(format!(
        "{field} {} must be an absolute path, file:///abs/path or s3://bucket/prefix",
        quote(uri)
    )))
}
