//! Running a build: the merges in turn, the output written as Parquet with its manifest.

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

use crate::pit_merge::{self, MergeOptions, PointInTimeMerge};
use crate::query_error;
use quiver_core::FeatureStore;
use quiver_offline::stores::Destination;
use quiver_types::error::{Error, Result, quote};
use quiver_types::time;

#[allow(unused_imports)]
use super::*;

/// Runs `plan`: per group, the base (as the previous group left it) sorted by the group's
/// identifier, merged with the group's history (indexed in memory when it takes at most
/// `in_memory_limit` bytes, else sorted with spilling). Returns the result without the key
/// columns.
pub(super) async fn run(
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
pub(super) fn most_recent_per_identifier(
    frame: DataFrame,
    groups: &[GroupPlan],
    n: u32,
) -> Result<DataFrame> {
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
pub(super) const RANK_COLUMN: &str = "__quiver_rank";

/// How a dataset's Parquet is written: the session's settings, except that floating-point
/// columns get no dictionary. Continuous values rarely repeat, and the writer interns every
/// value of a row group before it gives a dictionary up: that was half the writer's time.
/// (Options are keyed by column path, which splits names at dots: a column named `g.f` keeps
/// the default.)
pub(super) fn writer_options(ctx: &SessionContext, schema: &DFSchema) -> TableParquetOptions {
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
            ctx.sql_with_options(sql, crate::read_only())
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
pub(super) async fn read_csv_base(
    ctx: &SessionContext,
    uri: &str,
) -> datafusion::common::Result<DataFrame> {
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
pub(super) fn register_store(env: &RuntimeEnv, store: &FeatureStore, uri: &str) -> Result<()> {
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
