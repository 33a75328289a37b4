//! Hosts data preparation (`quiver-prep`) in the server: recipes and runs in the data dir
//! (`prep/recipes`, `prep/runs`), sources read through the query engine (a feature group's
//! latest records or offline history, an SQL query, a file), runs into feature groups through
//! the store's exactly-once source writes, and the lineage each run records when it ends.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, Schema};
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use quiver_core::FeatureStore;
use quiver_core::source_writes::{SharedFeatures, SourceRecord, SourceRecordResult, SourceValues};
use quiver_lineage::Lineage;
use quiver_lineage::automl::AutoMlInput;
use quiver_lineage::datasets::DatasetBase;
use quiver_lineage::prep::{PrepOutput, PrepRun};
use quiver_prep::Sources;
use quiver_prep::recipe::Source;
use quiver_prep::runs::{GroupWriter, NewGroup, Output, RunHost, RunRecord, Runs};
use quiver_prep::store::RecipeStore;
use quiver_query::{QueryEngine, query_error};
use quiver_types::error::{Error, Result, quote};
use quiver_types::model::arn::ArnContext;
use quiver_types::model::{
    Collection, FeatureGroupSpec, FeatureSpec, FeatureType, OfflineStoreConfig, OnlineStoreConfig,
    StorageType, TableFormat, Value,
};
use quiver_types::time::{Clock, EpochMillis};

use crate::config::Config;

/// A recipe's sources, read through the query engine (authorized by the Prep service first).
pub struct ServerSources {
    queries: Arc<QueryEngine>,
}

#[async_trait]
impl Sources for ServerSources {
    async fn table(&self, ctx: &SessionContext, source: &Source) -> Result<Arc<dyn TableProvider>> {
        let sql = match source {
            Source::File { uri, format } => {
                if let Some(rest) = uri.strip_prefix("s3://") {
                    // Read with the offline store's S3 client (its endpoint, region and
                    // credentials), as datasets are.
                    let bucket = rest.split('/').next().unwrap_or_default();
                    let destination = self.queries.store().offline().object_store(uri)?;
                    let url = datafusion::execution::object_store::ObjectStoreUrl::parse(format!(
                        "s3://{bucket}"
                    ))
                    .map_err(|e| {
                        Error::validation(format!("uri {}: not an S3 URI: {e}", quote(uri)))
                    })?;
                    let key = rest.split_once('/').map_or("", |(_, key)| key);
                    // An object, or a folder of them (listing treats the key as a folder).
                    let path = object_store::path::Path::from(key);
                    use object_store::ObjectStoreExt;
                    let found = destination.store.head(&path).await.is_ok() || {
                        use futures::StreamExt;
                        let mut listed = destination.store.list(Some(&path));
                        listed
                            .next()
                            .await
                            .transpose()
                            .map_err(|e| Error::validation(format!("uri {}: {e}", quote(uri))))?
                            .is_some()
                    };
                    if !found {
                        return Err(Error::validation(format!(
                            "uri {}: no such object or folder in the bucket",
                            quote(uri)
                        )));
                    }
                    ctx.runtime_env()
                        .register_object_store(url.as_ref(), destination.store);
                }
                return quiver_prep::run::read_file(ctx, uri, *format).await;
            }
            Source::FeatureGroup { name, history } => {
                let group = self.queries.store().describe_feature_group(name)?;
                match (history, group.has_offline_store()) {
                    (false, false) => {
                        let queries = self.queries.clone();
                        let name = name.clone();
                        let (schema, batches) = tokio::task::spawn_blocking(move || {
                            crate::automl::online_records(&queries, &name)
                        })
                        .await
                        .map_err(|e| Error::internal(format!("reading online records: {e}")))??;
                        let table =
                            MemTable::try_new(schema, vec![batches]).map_err(query_error)?;
                        return Ok(Arc::new(table));
                    }
                    (true, false) => {
                        return Err(Error::validation(format!(
                            "feature group {}: no offline store, so no history (read its latest records)",
                            quote(name)
                        )));
                    }
                    (false, true) => format!(
                        "SELECT * FROM latest.\"{}\"",
                        group.name.replace('"', "\"\"")
                    ),
                    (true, true) => {
                        format!("SELECT * FROM \"{}\"", group.name.replace('"', "\"\""))
                    }
                }
            }
            Source::Query { sql } => {
                quiver_prep::compile::check_query("sql", sql)?;
                sql.clone()
            }
        };
        let frame = self
            .queries
            .context()
            .sql_with_options(&sql, quiver_prep::compile::query_only())
            .await
            .map_err(query_error)?;
        Ok(frame.into_view())
    }
}

/// What runs need of the server.
struct Host {
    queries: Arc<QueryEngine>,
    store: Arc<FeatureStore>,
    sources: Arc<ServerSources>,
    lineage: Option<Arc<Lineage>>,
    clock: Arc<dyn Clock>,
    arns: ArnContext,
}

/// The stream source name under which a run's rows are written (its position: rows written).
fn source_name(run: &str) -> String {
    format!("prep-run-{run}")
}

/// A feature type for an output column.
fn feature_type(data_type: &DataType) -> Result<FeatureType> {
    Ok(match data_type {
        t if t.is_integer() => FeatureType::Integral,
        t if t.is_floating() => FeatureType::Fractional,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean => {
            FeatureType::String
        }
        t if t.is_temporal() => FeatureType::String,
        other => {
            return Err(Error::validation(format!(
                "the output's type {other} has no feature type (cast it to string, integer or double)"
            )));
        }
    })
}

#[async_trait]
impl RunHost for Host {
    fn context(&self) -> Option<SessionContext> {
        Some(self.queries.context().clone())
    }

    fn sources(&self) -> Arc<dyn Sources> {
        self.sources.clone()
    }

    async fn open_group(
        &self,
        run: &str,
        name: &str,
        create: Option<&NewGroup>,
        schema: &Schema,
    ) -> Result<Box<dyn GroupWriter>> {
        let store = self.store.clone();
        let exists = store.describe_feature_group(name).is_ok();
        if let (Some(new), false) = (create, exists) {
            let features = schema
                .fields()
                .iter()
                .map(|f| {
                    Ok(FeatureSpec {
                        name: f.name().clone(),
                        feature_type: feature_type(f.data_type()).map_err(|e| {
                            Error::validation(format!(
                                "column {}: {}",
                                quote(f.name()),
                                e.message()
                            ))
                        })?,
                        collection: Collection::Scalar,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let spec = FeatureGroupSpec {
                name: name.to_string(),
                record_identifier_feature_name: new.record_identifier.clone(),
                event_time_feature_name: new.event_time.clone(),
                features,
                online: new.online.then_some(OnlineStoreConfig {
                    ttl: None,
                    storage_type: StorageType::Standard,
                    kms_key_id: None,
                }),
                offline: new.offline.then_some(OfflineStoreConfig {
                    s3_uri: None,
                    kms_key_id: None,
                    disable_glue_table_creation: false,
                    data_catalog: None,
                    table_format: TableFormat::Glue,
                }),
                role_arn: None,
                description: Some(format!("Written by recipe run {run}")),
                tags: vec![],
            };
            store.create_feature_group(spec)?;
        }
        let group = store.describe_feature_group(name)?;
        let features: Vec<String> = group.features.iter().map(|f| f.name.clone()).collect();
        let unknown: Vec<&str> = schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| !features.iter().any(|f| f == n))
            .collect();
        if !unknown.is_empty() {
            return Err(Error::validation(format!(
                "output: group {} has no feature {} (drop or rename the column, or add the feature)",
                quote(name),
                unknown
                    .iter()
                    .map(|n| quote(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for key in [
            &group.record_identifier_feature_name,
            &group.event_time_feature_name,
        ] {
            if schema.field_with_name(key).is_err() {
                return Err(Error::validation(format!(
                    "output: no column {} (the group's record identifier and event time must be in the output)",
                    quote(key)
                )));
            }
        }
        Ok(Box::new(GroupRows {
            store,
            group: group.name.clone(),
            source: source_name(run),
            order: vec![
                group.record_identifier_feature_name.clone(),
                group.event_time_feature_name.clone(),
            ],
        }))
    }

    fn ended(&self, record: &RunRecord) {
        let Some(lineage) = &self.lineage else {
            return;
        };
        let store = self.queries.store();
        let recipe = record.fitted.as_ref().unwrap_or(&record.spec.recipe);
        let groups: Vec<_> = std::iter::once(&recipe.source)
            .chain(recipe.steps.iter().filter_map(|s| s.other_source()))
            .filter_map(|s| match s {
                Source::FeatureGroup { name, .. } => store.describe_feature_group(name).ok(),
                _ => None,
            })
            .collect();
        let mut group_inputs = groups.iter();
        let inputs: Vec<AutoMlInput<'_>> = std::iter::once(&recipe.source)
            .chain(recipe.steps.iter().filter_map(|s| s.other_source()))
            .filter_map(|s| match s {
                Source::FeatureGroup { .. } => group_inputs.next().map(|g| AutoMlInput::Group(g)),
                Source::File { uri, .. } => Some(AutoMlInput::Base(DatasetBase::File(uri.clone()))),
                Source::Query { sql } => Some(AutoMlInput::Base(DatasetBase::Sql(sql.clone()))),
            })
            .collect();
        let output_group = match &record.spec.output {
            Output::FeatureGroup { name, .. } => store.describe_feature_group(name).ok(),
            Output::File { .. } => None,
        };
        let output = match (&record.spec.output, &output_group) {
            (_, Some(group)) => PrepOutput::Group(group),
            (Output::File { uri, .. }, _) => PrepOutput::File(uri.clone()),
            (Output::FeatureGroup { .. }, None) => return,
        };
        let mut parameters = BTreeMap::new();
        parameters.insert("Recipe".to_string(), recipe.name.clone());
        if let Some(v) = record.spec.recipe_version {
            parameters.insert("RecipeVersion".to_string(), v.to_string());
        }
        parameters.insert("Steps".to_string(), recipe.steps.len().to_string());
        parameters.insert("RowsWritten".to_string(), record.rows_written.to_string());
        let run = PrepRun {
            run_name: record.spec.name.clone(),
            run_arn: format!(
                "arn:aws:sagemaker:{}:{}:quiver-recipe-run/{}",
                self.arns.region,
                self.arns.account_id,
                record.spec.name.to_ascii_lowercase()
            ),
            inputs,
            output,
            status: format!("{:?}", record.status),
            failure_reason: record.failure_reason.clone(),
            started_ms: record.created_ms,
            ended_ms: record.ended_ms.unwrap_or(record.modified_ms),
            parameters,
        };
        if let Err(e) = lineage.record_prep_run(&run) {
            tracing::warn!("recording run {}'s lineage: {e}", record.spec.name);
        }
    }

    fn now_ms(&self) -> EpochMillis {
        self.clock.now_ms()
    }
}

/// A run's rows into a group, each batch with its position, atomically.
struct GroupRows {
    store: Arc<FeatureStore>,
    group: String,
    source: String,
    order: Vec<String>,
}

/// One column's values as feature values (null: absent).
fn values(column: &ArrayRef) -> Result<Vec<Option<Value>>> {
    let fail = |e: arrow::error::ArrowError| Error::internal(format!("reading the output: {e}"));
    let data_type = column.data_type();
    let n = column.len();
    Ok(if data_type.is_integer() {
        let c = cast(column, &DataType::Int64).map_err(fail)?;
        let c = c.as_primitive::<Int64Type>();
        (0..n)
            .map(|i| (!c.is_null(i)).then(|| Value::Integral(c.value(i))))
            .collect()
    } else if data_type.is_floating() {
        let c = cast(column, &DataType::Float64).map_err(fail)?;
        let c = c.as_primitive::<Float64Type>();
        (0..n)
            .map(|i| (!c.is_null(i) && !c.value(i).is_nan()).then(|| Value::Fractional(c.value(i))))
            .collect()
    } else {
        // Timestamps as ISO 8601 in UTC (as event times are written), the rest as text.
        let timestamp = matches!(data_type, DataType::Timestamp(..));
        let c = cast(column, &DataType::Utf8).map_err(fail)?;
        let c = c.as_string::<i32>();
        (0..n)
            .map(|i| {
                (!c.is_null(i)).then(|| {
                    let v = c.value(i);
                    Value::String(if timestamp && !v.ends_with('Z') {
                        format!("{v}Z")
                    } else {
                        v.to_string()
                    })
                })
            })
            .collect()
    })
}

impl GroupWriter for GroupRows {
    fn written(&self) -> Result<u64> {
        let positions = self.store.source_positions(&self.source)?;
        Ok(positions
            .iter()
            .find(|(p, _)| p == "0")
            .and_then(|(_, at)| at.as_str().parse().ok())
            .unwrap_or(0))
    }

    fn order_by(&self) -> Vec<String> {
        self.order.clone()
    }

    fn write(&mut self, first: u64, batch: &RecordBatch) -> Result<()> {
        let features: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let columns = batch
            .columns()
            .iter()
            .map(values)
            .collect::<Result<Vec<_>>>()?;
        let records: Vec<SourceRecord> = (0..batch.num_rows())
            .map(|row| SourceRecord {
                partition: "0".to_string(),
                // A row's position is the count of rows written through it.
                position: (first + row as u64 + 1).to_string(),
                values: SourceValues::Shared(columns.iter().map(|c| c[row].clone()).collect()),
            })
            .collect();
        let shared = SharedFeatures {
            group: self.group.clone(),
            features,
        };
        let written = tokio::task::block_in_place(|| {
            self.store
                .put_source_records(&self.source, records, Vec::new(), Some(shared))
        })?;
        for (i, result) in written.results.iter().enumerate() {
            if let SourceRecordResult::Refused(e) = result {
                return Err(Error::validation(format!(
                    "output row {}: {} refused it: {}",
                    first + i as u64,
                    quote(&self.group),
                    e.message()
                )));
            }
        }
        Ok(())
    }
}

/// The recipe store and the runs, when the server has a data dir for them.
pub fn open(
    config: &Config,
    store: &Arc<FeatureStore>,
    queries: &Arc<QueryEngine>,
    lineage: Option<Arc<Lineage>>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(Arc<RecipeStore>, Arc<Runs>, Arc<ServerSources>)> {
    let dir = config.data_dir.join("prep");
    let recipes = Arc::new(RecipeStore::open(&dir.join("recipes"))?);
    let sources = Arc::new(ServerSources {
        queries: queries.clone(),
    });
    let host = Arc::new(Host {
        queries: queries.clone(),
        store: store.clone(),
        sources: sources.clone(),
        lineage,
        clock,
        arns: ArnContext {
            region: config.region.clone(),
            account_id: config.account_id.clone(),
        },
    });
    let runs = Runs::open(&dir.join("runs"), host)?;
    Ok((recipes, runs, sources))
}
