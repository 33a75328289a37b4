//! Training datasets: a base table joined with feature groups' histories, point-in-time
//! correct when asked, with the options of the SageMaker SDK's DatasetBuilder plus a maximum
//! feature age (Feast's TTL lookback). Written as Parquet with a manifest.
//!
//! A build ([`plan`], then [`run`]) takes the joined groups in turn: the base rows, sorted by
//! the group's identifier, are merged with the group's history in (identifier, event time)
//! order, in one streaming pass ([`pit_merge`]): the history indexed in memory when it fits,
//! else sorted with spilling within the query memory budget (`query_memory_mb`), so inputs
//! larger than memory complete.
//!
//! The rules are the SageMaker SDK's DatasetBuilder's (its generated SQL, compared row for row
//! in `tests/tests/datasets.rs`). "Ordered" means by event time, then `api_invocation_time`,
//! then `write_time` (rows not yet in a file last). Per joined group, in this order:
//! 1. `as_of`: only rows written (`write_time`) at or before it;
//! 2. the event-time range: only rows whose event time is within it (both ends inclusive);
//!    delete markers outside it still count unless it has both ends; base rows whose time is
//!    outside it are left out;
//! 3. delete markers never match; unless deleted records are included, the identifier's latest
//!    marker hides every row ordered at or before it;
//! 4. unless duplicates are included: one row per (identifier, event time), the latest
//!    `api_invocation_time`, then `write_time`;
//! 5. the join: each base row with the rows of its identifier; point-in-time, only those with
//!    event time at or before the base row's; with a maximum age, only those at most that much
//!    older than the base row;
//! 6. with `most_recent`, per base row only the N latest of those (ordered, descending).
//!
//! Every base row is kept (a left join) unless `inner_join`: one without a match has nulls for
//! the group's features; one with several matches appears once per match (per group). Last,
//! with `most_recent_per_identifier` (the SDK's `number_of_recent_records`), per base
//! identifier only the N rows with the latest base time, then latest matched event times.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::UInt64Array;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::config::{ParquetColumnOptions, TableParquetOptions};
use datafusion::common::{Column, DFSchema, TableReference};
use datafusion::dataframe::{DataFrame, DataFrameWriteOptions};
use datafusion::execution::SessionState;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;

use super::pit_merge::{self, MergeOptions, PointInTimeMerge};
use super::query_error;
use crate::error::{Error, Result, quote};
use crate::feature_store::FeatureStore;
use crate::model::{FeatureGroup, FeatureType};
use crate::offline::parquet::{API_INVOCATION_TIME, IS_DELETED, WRITE_TIME};
use crate::offline::stores::Destination;
use crate::time::{self, EpochMillis};

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

const HOUR_MS: i64 = 3_600_000;

/// Where a build's own tables live: a catalog of the build's session only.
pub const SCRATCH_CATALOG: &str = "dataset";
pub const SCRATCH_SCHEMA: &str = "build";
/// The base table, as the build's SQL names it.
pub const BASE_TABLE: &str = "dataset.build.base";

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `expr` (of type `data_type`) as epoch milliseconds: timestamps and dates, ISO-8601 text, or
/// epoch seconds as numbers. `None` for other types.
fn millis_expr(expr: &str, data_type: &DataType) -> Option<String> {
    Some(match data_type {
        DataType::Timestamp(..)
        | DataType::Date32
        | DataType::Date64
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View => format!("CAST(to_timestamp_millis({expr}) AS BIGINT)"),
        DataType::Float64 | DataType::Float32 => format!("CAST(round({expr} * 1000) AS BIGINT)"),
        DataType::Int64 | DataType::Int32 | DataType::UInt32 | DataType::Int16 => {
            format!("CAST({expr} AS BIGINT) * 1000")
        }
        _ => return None,
    })
}

/// How one joined group is built: its history as the merge reads it, the base's key columns
/// for it, and its output columns.
#[derive(Debug, Clone)]
pub struct GroupPlan {
    /// The group's history (filtered by `as_of` and the event-time range) with the columns of
    /// [`pit_merge`](super::pit_merge) (`__id`, `__et`, `__api`, `__write`, `__deleted`, then
    /// the features).
    pub history_sql: String,
    /// The same sorted by (identifier, event time).
    pub sorted_history_sql: String,
    /// Key columns added to the base: the identifier as the group's identifier type, and the
    /// time in epoch milliseconds.
    pub key_id: String,
    pub key_time: String,
    /// The column the merge adds: the matched row's event time (epoch milliseconds).
    pub match_time: String,
    /// (feature, output column) pairs.
    pub outputs: Vec<(String, String)>,
}

/// A dataset build's plan: the base with every group's key columns added, and per group how
/// to merge it.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    pub keyed_base_sql: String,
    pub groups: Vec<GroupPlan>,
}

/// Plans a dataset build over [`BASE_TABLE`] (whose schema is `base`) and the groups' history
/// tables: validates the request against both and writes the SQL of each input.
pub fn plan(
    base: &Schema,
    groups: &[(JoinedGroup, std::sync::Arc<FeatureGroup>)],
    options: &DatasetOptions,
) -> Result<BuildPlan> {
    if groups.is_empty() {
        return Err(Error::validation(
            "FeatureGroups must name at least one feature group",
        ));
    }
    let mut taken: Vec<String> = base.fields().iter().map(|f| f.name().clone()).collect();
    let mut keys = vec!["b.*".to_string()];
    // As in the SageMaker SDK's DatasetBuilder, the event-time range applies to the base rows'
    // times as well (a base row without a time is then left out).
    let mut base_range = vec!["TRUE".to_string()];
    let mut plans = Vec::new();
    for (i, (joined, group)) in groups.iter().enumerate() {
        let at = |e: Error| e.at(format!("FeatureGroups[{i}]"));
        let column_type = |name: &str, what: &str| {
            base.field_with_name(name)
                .map(|f| f.data_type().clone())
                .map_err(|_| {
                    let columns: Vec<&str> =
                        base.fields().iter().map(|f| f.name().as_str()).collect();
                    at(Error::validation(format!(
                        "{what} {} is not a column of the base table (its columns: {})",
                        quote(name),
                        columns.join(", ")
                    )))
                })
        };
        column_type(&joined.base_identifier_column, "BaseIdentifierColumn")?;
        let time_type = column_type(&joined.base_event_time_column, "BaseEventTimeColumn")?;
        let base_time = millis_expr(
            &format!("b.{}", ident(&joined.base_event_time_column)),
            &time_type,
        )
        .ok_or_else(|| {
            at(Error::validation(format!(
                "BaseEventTimeColumn {} is {time_type}; it must be a timestamp, ISO-8601 text or epoch seconds",
                quote(&joined.base_event_time_column)
            )))
        })?;

        let id_feature = &group.record_identifier_feature_name;
        let et_feature = &group.event_time_feature_name;
        let features: Vec<String> = if joined.features.is_empty() {
            group
                .features
                .iter()
                .map(|f| f.name.clone())
                .filter(|n| n != id_feature && n != et_feature)
                .collect()
        } else {
            if let Some(unknown) = joined.features.iter().find(|n| group.feature(n).is_none()) {
                return Err(at(Error::validation(format!(
                    "FeatureNames: {} is not a feature of feature group {}",
                    quote(unknown),
                    quote(&group.name)
                ))));
            }
            joined.features.clone()
        };
        let id_type = match group.feature(id_feature).map(|f| f.feature_type) {
            Some(FeatureType::Integral) => "BIGINT",
            _ => "VARCHAR",
        };
        let et_ms = match group.feature(et_feature).map(|f| f.feature_type) {
            Some(FeatureType::String) => {
                format!("CAST(to_timestamp_millis({}) AS BIGINT)", ident(et_feature))
            }
            _ => format!("CAST(round({} * 1000) AS BIGINT)", ident(et_feature)),
        };

        // Output names: the feature's own, or `<group>.<feature>` when that is taken.
        let mut outputs = Vec::new();
        for f in &features {
            let name = if taken.contains(f) {
                format!("{}.{f}", group.name)
            } else {
                f.clone()
            };
            taken.push(name.clone());
            outputs.push((f.clone(), name));
        }
        let (key_id, key_time, match_time) = (
            format!("__quiver_id_{i}"),
            format!("__quiver_time_{i}"),
            format!("__quiver_match_time_{i}"),
        );
        if let Some(clash) = [&key_id, &key_time, &match_time]
            .into_iter()
            .find(|k| taken.contains(k))
        {
            return Err(Error::validation(format!(
                "the base table has a column named {}, which dataset builds reserve",
                quote(clash)
            )));
        }
        if let Some(ms) = options.event_time_start_ms {
            base_range.push(format!("{} >= {ms}", ident(&key_time)));
        }
        if let Some(ms) = options.event_time_end_ms {
            base_range.push(format!("{} <= {ms}", ident(&key_time)));
        }
        keys.push(format!(
            "CAST(b.{id} AS {id_type}) AS {key_id}, {base_time} AS {key_time}",
            id = ident(&joined.base_identifier_column),
            key_id = ident(&key_id),
            key_time = ident(&key_time),
        ));

        let mut filters = vec!["TRUE".to_string()];
        if let Some(ms) = options.as_of_ms {
            filters.push(format!("__write <= {ms}"));
        }
        let mut range = Vec::new();
        if let Some(ms) = options.event_time_start_ms {
            range.push(format!("__et >= {ms}"));
        }
        if let Some(ms) = options.event_time_end_ms {
            range.push(format!("__et <= {ms}"));
        }
        // As in the SageMaker SDK's DatasetBuilder, delete markers outside the range still
        // hide rows unless the range has both ends. (Markers before its start can hide only
        // rows before it, so only those after an open-started range's end are kept.)
        let both_ends =
            options.event_time_start_ms.is_some() && options.event_time_end_ms.is_some();
        let markers_beyond_end =
            !options.include_deleted_records && !both_ends && options.event_time_end_ms.is_some();
        if !range.is_empty() {
            let range = range.join(" AND ");
            filters.push(if markers_beyond_end {
                format!("(({range}) OR __deleted)")
            } else {
                range
            });
        }
        // The same range on the event-time feature itself, an hour wider, prunes the hour
        // partitions outside it (the exact filter above decides the rows).
        let string_time =
            group.feature(et_feature).map(|f| f.feature_type) == Some(FeatureType::String);
        let prune = |ms: EpochMillis| {
            if string_time {
                format!("'{}'", time::format_iso8601(ms))
            } else {
                format!("{:.3}", ms as f64 / 1000.0)
            }
        };
        let mut pruning = vec!["TRUE".to_string()];
        if let Some(ms) = options.event_time_start_ms {
            pruning.push(format!(
                "{} >= {}",
                ident(et_feature),
                prune(ms.saturating_sub(HOUR_MS))
            ));
        }
        if let Some(ms) = options.event_time_end_ms.filter(|_| !markers_beyond_end) {
            pruning.push(format!(
                "{} <= {}",
                ident(et_feature),
                prune(ms.saturating_add(HOUR_MS))
            ));
        }
        let feature_cols: String = features
            .iter()
            .enumerate()
            .map(|(k, f)| format!(", {} AS __f{k}", ident(f)))
            .collect();
        let history_sql = format!(
            "SELECT * FROM (SELECT {id} AS __id, {et_ms} AS __et, \
             CAST({api} AS BIGINT) AS __api, \
             COALESCE(CAST({write} AS BIGINT), {unwritten}) AS __write, \
             {deleted} AS __deleted{feature_cols} FROM quiver.public.{table} WHERE {pruning}) \
             WHERE {filters}",
            id = ident(id_feature),
            api = ident(API_INVOCATION_TIME),
            write = ident(WRITE_TIME),
            deleted = ident(IS_DELETED),
            // Rows not yet in a file (null `write_time`) are written after every row that
            // is: last among equals, and never within an `as_of`.
            unwritten = i64::MAX,
            table = ident(&group.name),
            filters = filters.join(" AND "),
            pruning = pruning.join(" AND "),
        );
        let sorted_history_sql =
            format!("{history_sql} ORDER BY __id ASC NULLS FIRST, __et ASC NULLS FIRST");
        plans.push(GroupPlan {
            history_sql,
            sorted_history_sql,
            key_id,
            key_time,
            match_time,
            outputs,
        });
    }
    Ok(BuildPlan {
        keyed_base_sql: format!(
            "SELECT * FROM (SELECT {} FROM {BASE_TABLE} b) WHERE {}",
            keys.join(", "),
            base_range.join(" AND ")
        ),
        groups: plans,
    })
}

/// Runs `plan`: per group, the base (as the previous group left it) sorted by the group's
/// identifier, merged with the group's history (indexed in memory when it takes at most
/// `in_memory_limit` bytes, else sorted with spilling). Returns the result without the key
/// columns.
async fn run(
    ctx: &SessionContext,
    plan: &BuildPlan,
    options: &DatasetOptions,
    in_memory_limit: usize,
) -> Result<DataFrame> {
    let mut current = ctx.sql(&plan.keyed_base_sql).await.map_err(query_error)?;
    // Sorts run on one partition: a sort per thread would compete for the budget, and one
    // merging its spill files can find the pool held by the other's unspilled batches.
    let mut sorting = ctx.state();
    sorting
        .config_mut()
        .options_mut()
        .execution
        .target_partitions = 1;
    let frame = async |sql: &str, state: &SessionState| {
        let logical = ctx
            .state()
            .create_logical_plan(sql)
            .await
            .map_err(query_error)?;
        Ok::<_, Error>(DataFrame::new(state.clone(), logical))
    };
    // The histories (read in memory: scanned on every thread) are planned at once, each on a
    // task of its own: planning a scan reads every file's footer.
    let mut planning = Vec::new();
    for group in &plan.groups {
        let history = frame(&group.history_sql, &ctx.state()).await?;
        planning.push(tokio::spawn(async move {
            history.create_physical_plan().await.map_err(query_error)
        }));
    }
    let mut histories = Vec::new();
    for task in planning {
        histories.push(
            task.await
                .map_err(|e| Error::internal(format!("dataset build: planning failed: {e}")))??,
        );
    }
    let mut keys = Vec::new();
    for (group, history) in plan.groups.iter().zip(histories) {
        let unqualified = |name: &str| Expr::Column(Column::new_unqualified(name));
        let base = DataFrame::new(sorting.clone(), current.logical_plan().clone())
            .sort(vec![unqualified(&group.key_id).sort(true, true)])
            .map_err(query_error)?
            .create_physical_plan()
            .await
            .map_err(query_error)?;
        let sorted_history = frame(&group.sorted_history_sql, &sorting).await?;
        let base_schema = base.schema();
        let history_schema = history.schema();
        let mut fields: Vec<Field> = base_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for (k, (_, name)) in group.outputs.iter().enumerate() {
            let feature = history_schema.field(pit_merge::HISTORY_FEATURES + k);
            fields.push(Field::new(name, feature.data_type().clone(), true));
        }
        fields.push(Field::new(&group.match_time, DataType::Int64, true));
        let index = |name: &str| {
            base_schema
                .index_of(name)
                .map_err(|e| Error::internal(format!("dataset build: {e}")))
        };
        let merge = PointInTimeMerge {
            options: MergeOptions {
                base_id: index(&group.key_id)?,
                base_time: index(&group.key_time)?,
                point_in_time: options.point_in_time,
                include_duplicated_records: options.include_duplicated_records,
                include_deleted_records: options.include_deleted_records,
                most_recent: options.most_recent.map(|n| n as usize),
                max_age_ms: options.max_age_ms,
                inner_join: options.inner_join,
                batch_size: ctx.state().config().batch_size(),
                in_memory_limit,
            },
            base,
            history,
            sorted_history,
            schema: Arc::new(Schema::new(fields)),
        };
        let table = StreamingTable::try_new(merge.schema.clone(), vec![Arc::new(merge)])
            .map_err(query_error)?;
        current = ctx.read_table(Arc::new(table)).map_err(query_error)?;
        keys.push(group.key_id.clone());
        keys.push(group.key_time.clone());
        keys.push(group.match_time.clone());
    }
    if let Some(n) = options.most_recent_per_identifier {
        current = most_recent_per_identifier(current, &plan.groups, n)?;
    }
    let keys: Vec<Column> = keys.iter().map(Column::new_unqualified).collect();
    current.drop_columns(&keys).map_err(query_error)
}

/// The SageMaker SDK's `number_of_recent_records`: per base identifier (the first group's),
/// the `n` rows with the latest base time, then the latest matched event time of each group in
/// turn (rows without a match last).
fn most_recent_per_identifier(frame: DataFrame, groups: &[GroupPlan], n: u32) -> Result<DataFrame> {
    use datafusion::functions_window::expr_fn::row_number;
    use datafusion::logical_expr::ExprFunctionExt;
    let Some(first) = groups.first() else {
        return Ok(frame);
    };
    let unqualified = |name: &str| Expr::Column(Column::new_unqualified(name));
    let mut order = vec![unqualified(&first.key_time).sort(false, false)];
    order.extend(
        groups
            .iter()
            .map(|g| unqualified(&g.match_time).sort(false, false)),
    );
    let rank = row_number()
        .partition_by(vec![unqualified(&first.key_id)])
        .order_by(order)
        .build()
        .map_err(query_error)?
        .alias(RANK_COLUMN);
    frame
        .window(vec![rank])
        .and_then(|f| {
            f.filter(unqualified(RANK_COLUMN).lt_eq(datafusion::prelude::lit(u64::from(n))))
        })
        .and_then(|f| f.drop_columns(&[RANK_COLUMN]))
        .map_err(query_error)
}

/// The rank [`most_recent_per_identifier`] filters on.
const RANK_COLUMN: &str = "__quiver_rank";

/// How a dataset's Parquet is written: the session's settings, except that floating-point
/// columns get no dictionary. Continuous values rarely repeat, and the writer interns every
/// value of a row group before it gives a dictionary up: that was half the writer's time.
/// (Options are keyed by column path, which splits names at dots: a column named `g.f` keeps
/// the default.)
fn writer_options(ctx: &SessionContext, schema: &DFSchema) -> TableParquetOptions {
    let mut options = TableParquetOptions {
        global: ctx.state().config_options().execution.parquet.clone(),
        ..Default::default()
    };
    for field in schema.fields() {
        if field.data_type().is_floating() && !field.name().contains('.') {
            options.column_specific_options.insert(
                field.name().clone(),
                ParquetColumnOptions {
                    dictionary_enabled: Some(false),
                    ..Default::default()
                },
            );
        }
    }
    options
}

/// What a dataset holds and how it was made, written beside its files as `manifest.json`; the
/// lineage service reads it.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub output_uri: String,
    pub files: Vec<String>,
    pub row_count: u64,
    pub created_at: String,
    pub base: BTreeMap<String, String>,
    pub feature_groups: Vec<ManifestGroup>,
    pub options: DatasetOptions,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestGroup {
    pub name: String,
    pub arn: String,
    /// Output column per feature: (feature, column).
    pub features: Vec<(String, String)>,
    pub base_identifier_column: String,
    pub base_event_time_column: String,
    /// The offline files the group's rows came from.
    pub source_files: Vec<String>,
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

/// Builds the dataset `request` asks for, in `ctx` (a session over the store's tables whose
/// runtime is `env`), and writes it with its manifest.
pub async fn build(
    ctx: &SessionContext,
    env: &RuntimeEnv,
    store: &FeatureStore,
    request: DatasetRequest,
    in_memory_limit: usize,
) -> Result<Manifest> {
    tracing::debug!("dataset build: started");
    let output = normalize_uri("OutputUri", &request.output_uri)?;
    let output = output.trim_end_matches('/').to_string();
    let groups = request
        .groups
        .iter()
        .enumerate()
        .map(|(i, joined)| {
            let at = |e: Error| e.at(format!("FeatureGroups[{i}]"));
            let group = store.registry().get(&joined.name).map_err(at)?;
            if !group.has_offline_store() {
                return Err(at(Error::validation(format!(
                    "feature group {} has no offline store, so no history to build from",
                    quote(&group.name)
                ))));
            }
            Ok((joined.clone(), group))
        })
        .collect::<Result<Vec<_>>>()?;

    let mut base_manifest = BTreeMap::new();
    let base = match &request.base {
        BaseSource::Sql(sql) => {
            base_manifest.insert("sql".to_string(), sql.clone());
            ctx.sql_with_options(sql, super::read_only())
                .await
                .map_err(|e| query_error(e).at("Base.Sql"))?
        }
        BaseSource::File(uri) => {
            let uri = normalize_uri("Base.FileUri", uri)?;
            base_manifest.insert("file_uri".to_string(), uri.clone());
            register_store(env, store, &uri)?;
            let read = if uri.ends_with(".parquet") {
                ctx.read_parquet(uri.as_str(), ParquetReadOptions::default())
                    .await
            } else if uri.ends_with(".csv") {
                read_csv_base(ctx, &uri).await
            } else {
                return Err(Error::validation(format!(
                    "Base.FileUri {} must name a .parquet or .csv file",
                    quote(&uri)
                )));
            };
            read.map_err(|e| query_error(e).at("Base.FileUri"))?
        }
    };
    let base_schema = base.schema().as_arrow().clone();
    ctx.register_table(
        TableReference::full(SCRATCH_CATALOG, SCRATCH_SCHEMA, "base"),
        base.into_view(),
    )
    .map_err(query_error)?;
    let plan = plan(&base_schema, &groups, &request.options)?;

    let destination = store.offline().object_store(&output)?;
    register_store(env, store, &output)?;
    let manifest_path = destination.path("manifest.json");
    if destination.store.head(&manifest_path).await.is_ok() {
        return Err(Error::already_exists(format!(
            "OutputUri {} already holds a dataset (manifest.json); choose a new directory",
            quote(&output)
        )));
    }
    tracing::debug!("dataset build: base registered");
    let frame = run(ctx, &plan, &request.options, in_memory_limit).await?;
    tracing::debug!("dataset build: planned");
    let parquet = writer_options(ctx, frame.schema());
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let written = frame
        .write_parquet(
            &format!("{output}/"),
            DataFrameWriteOptions::new(),
            Some(parquet),
        )
        .await
        .map_err(query_error)?;
    let row_count = written
        .iter()
        .filter_map(|b| b.column(0).as_any().downcast_ref::<UInt64Array>())
        .flat_map(|counts| counts.iter().flatten())
        .sum();
    if row_count == 0 {
        // An empty dataset still shows its columns: one file without rows.
        let mut body = Vec::new();
        let empty = parquet::arrow::ArrowWriter::try_new(&mut body, schema, None)
            .and_then(|writer| writer.close());
        empty.map_err(|e| Error::internal(format!("encoding an empty dataset file: {e}")))?;
        destination
            .store
            .put(&destination.path("part-0.parquet"), body.into())
            .await
            .map_err(|e| Error::internal(format!("writing {output}/part-0.parquet: {e}")))?;
    }
    let files = list_files(&destination, "", &uri_root(&output)).await?;

    let mut feature_groups = Vec::new();
    for ((joined, group), planned) in groups.iter().zip(plan.groups) {
        let (source, dir) = store.offline().destination(group)?;
        let root = uri_root(store.offline().base_uri(group));
        feature_groups.push(ManifestGroup {
            name: group.name.clone(),
            arn: store.registry().arns().feature_group_arn(&group.name),
            features: planned.outputs,
            base_identifier_column: joined.base_identifier_column.clone(),
            base_event_time_column: joined.base_event_time_column.clone(),
            source_files: list_files(&source, &format!("{dir}/data"), &root).await?,
        });
    }
    let manifest = Manifest {
        output_uri: output,
        files,
        row_count,
        created_at: time::format_iso8601(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        ),
        base: base_manifest,
        feature_groups,
        options: request.options,
    };
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::internal(format!("encoding the manifest: {e}")))?;
    destination
        .store
        .put(&manifest_path, json.into())
        .await
        .map_err(|e| {
            Error::internal(format!(
                "writing {}/manifest.json: {e}",
                manifest.output_uri
            ))
        })?;
    Ok(manifest)
}

/// A CSV base: numbers and booleans as inferred, text as text. (Inference would turn ISO-8601
/// text into timestamps of whole seconds, which Parquet readers then see as integers; the base
/// columns are the user's and come out as they went in.)
async fn read_csv_base(ctx: &SessionContext, uri: &str) -> datafusion::common::Result<DataFrame> {
    let inferred = ctx.read_csv(uri, CsvReadOptions::new()).await?;
    let schema = inferred.schema().as_arrow();
    if !schema.fields().iter().any(|f| f.data_type().is_temporal()) {
        return Ok(inferred);
    }
    let text = Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| match f.data_type().is_temporal() {
                true => Field::new(f.name(), DataType::Utf8, true),
                false => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    );
    ctx.read_csv(uri, CsvReadOptions::new().schema(&text)).await
}

/// S3 URIs are read and written with the offline store's S3 client (endpoint, credentials);
/// local files need nothing.
fn register_store(env: &RuntimeEnv, store: &FeatureStore, uri: &str) -> Result<()> {
    if let Some(rest) = uri.strip_prefix("s3://") {
        let bucket = rest.split('/').next().unwrap_or_default();
        let destination = store.offline().object_store(uri)?;
        let url = ObjectStoreUrl::parse(format!("s3://{bucket}"))
            .map_err(|e| Error::validation(format!("{} is not a valid S3 URI: {e}", quote(uri))))?;
        env.register_object_store(url.as_ref(), destination.store);
    }
    Ok(())
}

/// What object locations of a URI's store are relative to: the URI itself for a local
/// directory (its store is rooted there), the bucket for S3.
fn uri_root(uri: &str) -> String {
    match uri.strip_prefix("s3://") {
        Some(rest) => format!("s3://{}", rest.split('/').next().unwrap_or_default()),
        None => uri.trim_end_matches('/').to_string(),
    }
}

/// The Parquet files under `relative` in `destination`, as URIs under `root`, sorted.
async fn list_files(destination: &Destination, relative: &str, root: &str) -> Result<Vec<String>> {
    let prefix = if relative.is_empty() {
        (!destination.prefix.is_empty())
            .then(|| object_store::path::Path::from(destination.prefix.as_str()))
    } else {
        Some(destination.path(relative))
    };
    let mut files: Vec<String> = destination
        .store
        .list(prefix.as_ref())
        .try_filter_map(|meta| async move {
            Ok(meta
                .location
                .as_ref()
                .ends_with(".parquet")
                .then(|| format!("{root}/{}", meta.location)))
        })
        .try_collect()
        .await
        .map_err(|e| Error::internal(format!("listing {root}: {e}")))?;
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    //! Randomized: histories with duplicate event times, deletes, late writes, missing
    //! identifiers, ties and null values, built into datasets with every combination of options, compared
    //! with a plain reference implementation of the rules in the module docs.

    use std::sync::Arc;

    use arrow::array::{
        Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray,
        TimestampMillisecondArray,
    };
    use arrow::record_batch::RecordBatch;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::feature_store::tests::{open, put, spec};
    use crate::model::Value;
    use crate::offline::flusher::Flusher;
    use crate::online::store::DeletionMode;
    use crate::query::{QueryEngine, QueryOptions};
    use crate::time::ManualClock;

    const T: i64 = 1_700_000_000_000;
    const STEP: i64 = 1_800_000; // half an hour

    #[derive(Debug, Clone)]
    struct Row {
        id: i64,
        et: i64,
        api: i64,
        write: i64,
        deleted: bool,
        v: Option<String>,
    }

    fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
        b.column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"))
            .as_any()
            .downcast_ref::<T>()
            .unwrap_or_else(|| panic!("column {name} type"))
    }

    async fn collect(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
        ctx.sql(sql).await.unwrap().collect().await.unwrap()
    }

    /// The group's history as the store holds it.
    async fn history(engine: &QueryEngine) -> Vec<Row> {
        let batches = collect(
            engine.context(),
            "SELECT id, ts, api_invocation_time, write_time, is_deleted, v FROM g",
        )
        .await;
        let mut rows = Vec::new();
        for b in &batches {
            let (id, ts) = (
                column::<Int64Array>(b, "id"),
                column::<Float64Array>(b, "ts"),
            );
            let api = column::<TimestampMillisecondArray>(b, "api_invocation_time");
            let write = column::<TimestampMillisecondArray>(b, "write_time");
            let deleted = column::<BooleanArray>(b, "is_deleted");
            let v = column::<StringArray>(b, "v");
            for i in 0..b.num_rows() {
                rows.push(Row {
                    id: id.value(i),
                    et: (ts.value(i) * 1000.0).round() as i64,
                    api: api.value(i),
                    // Not yet written: after every written row.
                    write: if write.is_valid(i) {
                        write.value(i)
                    } else {
                        i64::MAX
                    },
                    deleted: deleted.value(i),
                    v: v.is_valid(i).then(|| v.value(i).to_string()),
                });
            }
        }
        rows
    }

    /// The rules of the module docs, plainly.
    fn reference(
        history: &[Row],
        base: &[(i64, i64)],
        o: &DatasetOptions,
    ) -> Vec<(i64, i64, Option<String>)> {
        // As the SageMaker SDK's DatasetBuilder query has it: delete markers count outside the
        // event-time range unless it has both ends; the latest one per identifier (by event
        // time, api_invocation_time, write_time) hides every row ordered at or before it.
        let in_range = |r: &Row| {
            o.event_time_start_ms.is_none_or(|t| r.et >= t)
                && o.event_time_end_ms.is_none_or(|t| r.et <= t)
        };
        let both_ends = o.event_time_start_ms.is_some() && o.event_time_end_ms.is_some();
        let rows: Vec<Row> = history
            .iter()
            .filter(|r| o.as_of_ms.is_none_or(|t| r.write <= t))
            .filter(|r| in_range(r) || (r.deleted && !both_ends))
            .cloned()
            .collect();
        let order = |r: &Row| (r.et, r.api, r.write);
        let latest_delete = |id: i64| {
            rows.iter()
                .filter(|r| r.id == id && r.deleted)
                .map(order)
                .max()
        };
        let mut rows: Vec<Row> = rows
            .iter()
            .filter(|r| !r.deleted)
            .filter(|r| {
                o.include_deleted_records || latest_delete(r.id).is_none_or(|d| order(r) > d)
            })
            .cloned()
            .collect();
        if !o.include_duplicated_records {
            let mut kept: Vec<Row> = Vec::new();
            for r in rows {
                match kept.iter_mut().find(|k| k.id == r.id && k.et == r.et) {
                    Some(k) if (r.api, r.write) > (k.api, k.write) => *k = r,
                    Some(_) => {}
                    None => kept.push(r),
                }
            }
            rows = kept;
        }
        let mut out = Vec::new();
        // The range leaves out base rows whose time is outside it, too.
        for &(id, t) in base.iter().filter(|(_, t)| {
            o.event_time_start_ms.is_none_or(|s| *t >= s)
                && o.event_time_end_ms.is_none_or(|e| *t <= e)
        }) {
            let mut matches: Vec<&Row> = rows
                .iter()
                .filter(|r| r.id == id)
                .filter(|r| !o.point_in_time || r.et <= t)
                .filter(|r| o.max_age_ms.is_none_or(|age| r.et >= t - age))
                .collect();
            matches.sort_by_key(|r| std::cmp::Reverse((r.et, r.api, r.write)));
            if let Some(n) = o.most_recent {
                matches.truncate(n as usize);
            }
            if matches.is_empty() && !o.inner_join {
                out.push((id, t, None));
            }
            out.extend(matches.into_iter().map(|r| (id, t, r.v.clone())));
        }
        out.sort();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn datasets_match_the_reference_for_every_option_combination() {
        let mut matched = 0;
        for seed in 0..6_u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let dir = tempfile::tempdir().unwrap();
            let clock = ManualClock::new(T + 100 * STEP);
            let store = Arc::new(open(dir.path(), clock.clone()));
            store.create_feature_group(spec(None, true)).unwrap();
            let mut flusher = Flusher::new(store.clone()).await;
            // Identifiers 0..7 (6 only in the history, 8 and 9 only in the base: missing),
            // dense or, for odd seeds, far apart (the two ways a build skips the history of
            // identifiers the base lacks); event times on a coarse grid so they repeat, in
            // random order (late writes), some deletes.
            let scale = if seed % 2 == 1 { 1_i64 << 40 } else { 1 };
            for n in 0..60 {
                let id = rng.random_range(0..7_i64) * scale;
                let et = T + rng.random_range(0..12_i64) * STEP;
                if rng.random_bool(0.12) {
                    let secs = format!("{}", et as f64 / 1000.0);
                    store
                        .delete_record("g", &id.to_string(), &secs, &[], DeletionMode::Soft)
                        .unwrap();
                } else {
                    let (g, mut p) = put(id, et);
                    if rng.random_bool(0.1) {
                        p.record.truncate(2); // `v` left out: null
                    } else {
                        p.record[2].1 = Value::String(format!("s{seed}-{n}"));
                    }
                    store.put_record(&g, p).unwrap();
                }
                clock.advance_ms(1);
                // For odd seeds the last rows stay staged: acknowledged, not yet in a file.
                if n % 20 == 19 && !(seed % 2 == 1 && n == 59) {
                    flusher.flush(true).await.unwrap();
                    // Distinct write times per flush, for as_of.
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
            drop(flusher);
            let mut engine = QueryEngine::new(
                store.clone(),
                &QueryOptions {
                    memory_bytes: 256 << 20,
                    // The base is merged in as many ranges as threads.
                    threads: 2 + seed as usize % 2,
                    spill_dir: dir.path().join("tmp"),
                },
            )
            .unwrap();
            let history = history(&engine).await;
            assert_eq!(
                history.len(),
                60,
                "every write and delete marker is in the history"
            );
            let mut writes: Vec<i64> = history
                .iter()
                .map(|r| r.write)
                .filter(|w| *w < i64::MAX)
                .collect();
            writes.sort();
            writes.dedup();

            // The base: identifiers 0..6, 8 and 9, times on a finer grid (some equal to feature
            // times). Two times per row: the group is joined twice, on `t` and on `t2`.
            let base: Vec<(i64, i64, i64)> = (0..25)
                .map(|_| {
                    let time = |rng: &mut StdRng| T + rng.random_range(-2..26_i64) * STEP / 2;
                    let id = [0, 1, 2, 3, 4, 5, 8, 9][rng.random_range(0..8)] * scale;
                    (id, time(&mut rng), time(&mut rng))
                })
                .collect();
            let base_file = dir.path().join("base.csv");
            let mut csv = String::from("id,t,t2,label\n");
            for (i, (id, t, t2)) in base.iter().enumerate() {
                csv.push_str(&format!(
                    "{id},{:.3},{:.3},{i}\n",
                    *t as f64 / 1000.0,
                    *t2 as f64 / 1000.0
                ));
            }
            std::fs::write(&base_file, csv).unwrap();

            let mut build = 0;
            for pit in [false, true] {
                for dup in [false, true] {
                    for del in [false, true] {
                        for most_recent in [None, Some(1), Some(2)] {
                            let options = DatasetOptions {
                                point_in_time: pit,
                                include_duplicated_records: dup,
                                include_deleted_records: del,
                                most_recent,
                                event_time_start_ms: rng
                                    .random_bool(0.3)
                                    .then(|| T + rng.random_range(0..6) * STEP),
                                event_time_end_ms: rng
                                    .random_bool(0.3)
                                    .then(|| T + rng.random_range(6..12) * STEP),
                                as_of_ms: rng
                                    .random_bool(0.3)
                                    .then(|| writes[rng.random_range(0..writes.len())]),
                                max_age_ms: rng
                                    .random_bool(0.3)
                                    .then(|| rng.random_range(0..6) * STEP),
                                inner_join: rng.random_bool(0.3),
                                most_recent_per_identifier: None,
                            };
                            build += 1;
                            // Both ways of reading the history: indexed in memory, and
                            // sorted by DataFusion (for histories above the limit).
                            engine.set_dataset_in_memory_limit(if (build + seed) % 2 == 0 {
                                0
                            } else {
                                usize::MAX
                            });
                            let out = dir.path().join(format!("out{build}"));
                            let manifest = engine
                                .create_dataset(DatasetRequest {
                                    base: BaseSource::File(base_file.display().to_string()),
                                    groups: ["t", "t2"]
                                        .map(|time| JoinedGroup {
                                            name: "g".into(),
                                            features: vec!["v".into()],
                                            base_identifier_column: "id".into(),
                                            base_event_time_column: time.into(),
                                        })
                                        .to_vec(),
                                    options: options.clone(),
                                    output_uri: out.display().to_string(),
                                })
                                .await
                                .unwrap_or_else(|e| panic!("seed {seed} {options:?}: {e}"));

                            let ctx = SessionContext::new_with_config(
                                crate::query::tables::session_config(),
                            );
                            let frame = ctx
                                .read_parquet(
                                    format!("{}/", out.display()),
                                    ParquetReadOptions::default(),
                                )
                                .await
                                .unwrap();
                            let batches = frame.collect().await.unwrap();
                            let mut got = Vec::new();
                            for b in &batches {
                                let (id, label) = (
                                    column::<Int64Array>(b, "id"),
                                    column::<Int64Array>(b, "label"),
                                );
                                let (v, v2) = (
                                    column::<StringArray>(b, "v"),
                                    column::<StringArray>(b, "g.v"),
                                );
                                let text = |a: &StringArray, i| {
                                    a.is_valid(i).then(|| a.value(i).to_string())
                                };
                                for i in 0..b.num_rows() {
                                    got.push((
                                        id.value(i),
                                        label.value(i),
                                        text(v, i),
                                        text(v2, i),
                                    ));
                                }
                            }
                            got.sort();
                            matched += got.iter().filter(|g| g.2.is_some()).count();
                            // Per base row, every pair of its matches in the two joins.
                            let mut want = Vec::new();
                            for (label, &(id, t, t2)) in base.iter().enumerate() {
                                let first = reference(&history, &[(id, t)], &options);
                                let second = reference(&history, &[(id, t2)], &options);
                                for (_, _, v) in &first {
                                    for (_, _, v2) in &second {
                                        want.push((id, label as i64, v.clone(), v2.clone()));
                                    }
                                }
                            }
                            want.sort();
                            assert_eq!(got, want, "seed {seed}, {options:?}");
                            assert_eq!(manifest.row_count, want.len() as u64);
                            assert!(!manifest.feature_groups[0].source_files.is_empty());
                        }
                    }
                }
            }
        }
        // Not vacuous: most base rows found features in most builds.
        assert!(matched > 1000, "only {matched} matched rows in all builds");
    }

    /// Inputs (~100 MB of history, ~30 MB of base rows as Arrow) about eight times the query
    /// memory budget (16 MiB): the build spills rather than fails, and is right. The history
    /// is written straight into the group's offline layout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn builds_larger_than_the_memory_budget_complete() {
        use parquet::arrow::ArrowWriter;

        const IDS: i64 = 20_000;
        const ROWS: i64 = 1_000_000;
        const BASE_ROWS: usize = 400_000;
        const HOUR: i64 = 3_600_000;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(dir.path(), ManualClock::new(T)));
        store.create_feature_group(spec(None, true)).unwrap();
        let group = store.registry().get("g").unwrap();
        let data = store.offline().data_uri(&group);
        let data = std::path::PathBuf::from(data.strip_prefix("file://").unwrap());
        let schema = crate::offline::parquet::schema(&group);
        let padding = "x".repeat(40);
        let mut rng = StdRng::seed_from_u64(11);
        // Row k: a random identifier, event time T + 250 ms * k (unique), so each hour
        // partition gets 14,400 rows.
        let mut by_id: Vec<Vec<i64>> = vec![Vec::new(); IDS as usize];
        let mut k = 0;
        while k < ROWS {
            let hour_rows = (HOUR / 250).min(ROWS - k);
            let (mut ids, mut ts, mut vs, mut times) = (vec![], vec![], vec![], vec![]);
            for j in k..k + hour_rows {
                let (id, et) = (rng.random_range(0..IDS), T + 250 * j);
                by_id[id as usize].push(et);
                ids.push(id);
                ts.push(et as f64 / 1000.0);
                vs.push(format!("{id}-{et}-{padding}"));
                times.push(et + 1);
            }
            let n = ids.len();
            let stamp = |v: Vec<i64>| {
                Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC")) as ArrayRef
            };
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(Float64Array::from(ts)),
                    Arc::new(StringArray::from(vs)),
                    stamp(vec![T + 100 * HOUR; n]),
                    stamp(times),
                    Arc::new(BooleanArray::from(vec![false; n])),
                ],
            )
            .unwrap();
            let partition = data.join(crate::offline::layout::partition(T + 250 * k));
            std::fs::create_dir_all(&partition).unwrap();
            let file = std::fs::File::create(partition.join("part.parquet")).unwrap();
            let mut writer = ArrowWriter::try_new(file, schema.clone(), None).unwrap();
            writer.write(&batch).unwrap();
            writer.close().unwrap();
            k += hour_rows;
        }
        // The base: some identifiers with no history, times from before the first row to
        // after the last.
        let span = 250 * ROWS;
        let base: Vec<(i64, i64)> = (0..BASE_ROWS)
            .map(|_| {
                (
                    rng.random_range(0..IDS + 1_000),
                    T + rng.random_range(-HOUR..span + HOUR),
                )
            })
            .collect();
        let label = "y".repeat(48);
        let base_batch = RecordBatch::try_from_iter(vec![
            (
                "id",
                Arc::new(Int64Array::from_iter_values(base.iter().map(|b| b.0))) as ArrayRef,
            ),
            (
                "t",
                Arc::new(Float64Array::from_iter_values(
                    base.iter().map(|b| b.1 as f64 / 1000.0),
                )),
            ),
            (
                "label",
                Arc::new(StringArray::from_iter_values(
                    (0..BASE_ROWS).map(|i| format!("{i}-{label}")),
                )),
            ),
        ])
        .unwrap();
        let base_file = dir.path().join("base.parquet");
        let mut writer = ArrowWriter::try_new(
            std::fs::File::create(&base_file).unwrap(),
            base_batch.schema(),
            None,
        )
        .unwrap();
        writer.write(&base_batch).unwrap();
        writer.close().unwrap();

        let engine = QueryEngine::new(
            store.clone(),
            &QueryOptions {
                memory_bytes: 16 << 20,
                threads: 2,
                spill_dir: dir.path().join("tmp"),
            },
        )
        .unwrap();
        let out = dir.path().join("out");
        let manifest = engine
            .create_dataset(DatasetRequest {
                base: BaseSource::File(base_file.display().to_string()),
                groups: vec![JoinedGroup {
                    name: "g".into(),
                    features: vec!["v".into()],
                    base_identifier_column: "id".into(),
                    base_event_time_column: "t".into(),
                }],
                options: DatasetOptions {
                    point_in_time: true,
                    most_recent: Some(1),
                    ..Default::default()
                },
                output_uri: out.display().to_string(),
            })
            .await
            .unwrap();
        assert_eq!(manifest.row_count, BASE_ROWS as u64);

        let ctx = SessionContext::new_with_config(crate::query::tables::session_config());
        let batches = ctx
            .read_parquet(format!("{}/", out.display()), ParquetReadOptions::default())
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let (mut rows, mut matched) = (0, 0);
        for b in &batches {
            let (id, t) = (
                column::<Int64Array>(b, "id"),
                column::<Float64Array>(b, "t"),
            );
            let v = column::<StringArray>(b, "v");
            for i in 0..b.num_rows() {
                let (id, t) = (id.value(i), (t.value(i) * 1000.0).round() as i64);
                let ets = by_id
                    .get(id as usize)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let latest = ets.partition_point(|&et| et <= t).checked_sub(1);
                let want = latest.map(|p| format!("{id}-{}-{padding}", ets[p]));
                let got = v.is_valid(i).then(|| v.value(i).to_string());
                assert_eq!(got, want, "base row ({id}, {t})");
                matched += usize::from(want.is_some());
                rows += 1;
            }
        }
        assert_eq!(rows, BASE_ROWS);
        assert!(matched > BASE_ROWS / 2, "only {matched} rows matched");

        // Floating-point columns are written without a dictionary; others with one.
        let file = manifest
            .files
            .iter()
            .find(|f| f.ends_with(".parquet"))
            .unwrap();
        let path = file.strip_prefix("file://").unwrap_or(file);
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(
            std::fs::File::open(path).unwrap(),
        )
        .unwrap();
        use parquet::file::reader::FileReader;
        let row_group = reader.metadata().row_group(0);
        let dictionary = |name: &str| {
            let chunk = row_group
                .columns()
                .iter()
                .find(|c| c.column_path().string() == name)
                .unwrap();
            chunk.dictionary_page_offset().is_some()
        };
        assert!(!dictionary("t"), "float column t written with a dictionary");
        assert!(
            dictionary("id"),
            "integer column id written without a dictionary"
        );
    }
}
