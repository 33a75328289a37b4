//! Hosts the AutoML jobs (`quiver-automl`) in the server: their directory in the data dir, and
//! the loader that reads their data through the query engine — a feature group's latest
//! records (`latest.<group>`; for a group without an offline store, its online records) or
//! offline history (`<group>`), an SQL query, a CSV or Parquet file; and the lineage each job records when it ends.

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions};

use quiver_automl::jobs::{
    DataLoader, DataSource, JobObserver, JobRecord, JobStatus, Jobs, JoinedSource, describe_source,
};
use quiver_lineage::Lineage;
use quiver_lineage::automl::{AutoMlInput, AutoMlRun};
use quiver_lineage::datasets::DatasetBase;
use quiver_query::{QueryEngine, query_error};
use quiver_types::error::{Error, Result, quote};
use quiver_types::time::Clock;

use crate::config::Config;

/// Reads jobs' data with the query engine, from the AutoML worker threads.
pub struct QueryLoader {
    queries: Arc<QueryEngine>,
    runtime: tokio::runtime::Handle,
}

impl QueryLoader {
    fn sql(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        self.runtime.block_on(async {
            let (schema, mut batches) = self.queries.execute(sql, Ok).await?;
            let mut all = Vec::new();
            while let Some(batch) = batches.recv().await {
                all.push(batch?);
            }
            Ok((schema, all))
        })
    }

    fn file(&self, uri: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let path = uri.strip_prefix("file://").unwrap_or(uri);
        if !Path::new(path).is_file() {
            return Err(Error::validation(format!(
                "S3Uri {}: no such file on the server (use file:///absolute/path.csv or .parquet)",
                quote(uri)
            )));
        }
        let ctx = self.queries.context().clone();
        let path = path.to_string();
        self.runtime.block_on(async move {
            let frame = if path.ends_with(".parquet") {
                ctx.read_parquet(&path, ParquetReadOptions::default()).await
            } else if path.ends_with(".csv") {
                ctx.read_csv(&path, CsvReadOptions::new()).await
            } else {
                return Err(Error::validation(format!(
                    "{} is neither .csv nor .parquet",
                    quote(&path)
                )));
            }
            .map_err(query_error)?;
            let schema = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await.map_err(query_error)?;
            Ok((schema, batches))
        })
    }
}

impl QueryLoader {
    /// A training set: its manifest's Parquet files.
    fn dataset(&self, uri: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let path = uri.strip_prefix("file://").unwrap_or(uri);
        let path = if path.ends_with("manifest.json") {
            path.to_string()
        } else {
            format!("{}/manifest.json", path.trim_end_matches('/'))
        };
        let manifest: serde_json::Value = std::fs::read(&path)
            .map_err(|e| {
                Error::validation(format!("the training set's manifest {}: {e}", quote(&path)))
            })
            .and_then(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| {
                    Error::validation(format!(
                        "{} is not a training set's manifest: {e}",
                        quote(&path)
                    ))
                })
            })?;
        let files: Vec<String> = manifest["files"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if files.is_empty() {
            return Err(Error::validation(format!(
                "the training set {} has no files",
                quote(uri)
            )));
        }
        let ctx = self.queries.context().clone();
        self.runtime.block_on(async move {
            let frame = ctx
                .read_parquet(files, ParquetReadOptions::default())
                .await
                .map_err(query_error)?;
            let schema = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await.map_err(query_error)?;
            Ok((schema, batches))
        })
    }
}

/// A group without an offline store: every live record of its online store, its scalar
/// features as columns (collections are not model inputs).
pub(crate) fn online_records(
    queries: &QueryEngine,
    name: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    use arrow::array::{ArrayRef, Float64Builder, Int64Builder, StringBuilder};
    use arrow::datatypes::{DataType, Field, Schema};
    use quiver_types::model::{Collection, FeatureType, Value};

    enum Builder {
        Integral(Int64Builder),
        Fractional(Float64Builder),
        String(StringBuilder),
    }
    let store = queries.store();
    let group = store.describe_feature_group(name)?;
    let features: Vec<_> = group
        .features
        .iter()
        .filter(|f| f.collection == Collection::Scalar)
        .collect();
    let mut builders: Vec<Builder> = features
        .iter()
        .map(|f| match f.feature_type {
            FeatureType::Integral => Builder::Integral(Int64Builder::new()),
            FeatureType::Fractional => Builder::Fractional(Float64Builder::new()),
            FeatureType::String => Builder::String(StringBuilder::new()),
        })
        .collect();
    let mut after: Option<String> = None;
    loop {
        let (ids, more) = store.list_record_identifiers(name, after.as_deref(), 1000, false)?;
        for id in &ids {
            let Some(view) = store.get_record(name, id, &[])? else {
                continue;
            };
            let values: std::collections::HashMap<String, Value> =
                view.values()?.into_iter().collect();
            for (feature, builder) in features.iter().zip(builders.iter_mut()) {
                match (builder, values.get(&feature.name)) {
                    (Builder::Integral(b), Some(Value::Integral(v))) => b.append_value(*v),
                    (Builder::Fractional(b), Some(Value::Fractional(v))) => b.append_value(*v),
                    (Builder::String(b), Some(Value::String(v))) => b.append_value(v),
                    (Builder::Integral(b), _) => b.append_null(),
                    (Builder::Fractional(b), _) => b.append_null(),
                    (Builder::String(b), _) => b.append_null(),
                }
            }
        }
        after = ids.last().cloned();
        if !more || after.is_none() {
            break;
        }
    }
    let fields: Vec<Field> = features
        .iter()
        .map(|f| {
            let data_type = match f.feature_type {
                FeatureType::Integral => DataType::Int64,
                FeatureType::Fractional => DataType::Float64,
                FeatureType::String => DataType::Utf8,
            };
            Field::new(&f.name, data_type, true)
        })
        .collect();
    let columns: Vec<ArrayRef> = builders
        .into_iter()
        .map(|b| match b {
            Builder::Integral(mut b) => Arc::new(b.finish()) as ArrayRef,
            Builder::Fractional(mut b) => Arc::new(b.finish()) as ArrayRef,
            Builder::String(mut b) => Arc::new(b.finish()) as ArrayRef,
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::internal(format!("reading {name}'s online records: {e}")))?;
    Ok((schema, vec![batch]))
}

impl DataLoader for QueryLoader {
    fn load(&self, source: &DataSource) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        match source {
            DataSource::FeatureGroup {
                name,
                history: false,
            } if !self
                .queries
                .store()
                .describe_feature_group(name)?
                .has_offline_store() =>
            {
                online_records(&self.queries, name)
            }
            DataSource::FeatureGroup { name, history } => {
                self.queries.store().describe_feature_group(name)?;
                let table = if *history {
                    format!("\"{name}\"")
                } else {
                    format!("latest.\"{name}\"")
                };
                self.sql(&format!("SELECT * FROM {table}"))
            }
            DataSource::Query { sql } => self.sql(sql),
            DataSource::File { uri } => self.file(uri),
            DataSource::Dataset { uri } => self.dataset(uri),
            DataSource::Join { sources, on } => self.join(sources, on),
        }
    }
}

impl QueryLoader {
    /// Sources joined on `on`, in order (an inner join), in a query context of their own. A
    /// later source's identifying column whose name an earlier source has is left out; any
    /// other column name in two sources is refused, naming it.
    fn join(
        &self,
        sources: &[JoinedSource],
        on: &[String],
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        use datafusion::datasource::MemTable;
        use datafusion::prelude::SessionContext;

        let ctx = SessionContext::new();
        let mut seen: Vec<String> = on.to_vec();
        let mut selected = Vec::new();
        for (i, joined) in sources.iter().enumerate() {
            let (schema, batches) = self.load(&joined.source)?;
            let what = describe_source(&joined.source);
            for key in on {
                if schema.field_with_name(key).is_err() {
                    return Err(Error::validation(format!(
                        "join.on: {} has no column {}",
                        what,
                        quote(key)
                    )));
                }
            }
            for field in schema.fields() {
                let name = field.name();
                if on.contains(name) {
                    continue;
                }
                if seen.contains(name) {
                    if joined.identifying.contains(name) {
                        continue;
                    }
                    return Err(Error::validation(format!(
                        "join: column {} of {} is also in an earlier source; select or rename it with an SQL source",
                        quote(name),
                        what
                    )));
                }
                seen.push(name.clone());
                selected.push(format!("s{i}.\"{}\"", name.replace('"', "\"\"")));
            }
            let table = MemTable::try_new(schema, vec![batches]).map_err(query_error)?;
            ctx.register_table(format!("s{i}"), Arc::new(table))
                .map_err(query_error)?;
        }
        let keys: Vec<String> = on
            .iter()
            .map(|k| format!("\"{}\"", k.replace('"', "\"\"")))
            .collect();
        let mut sql = format!(
            "SELECT {}",
            keys.iter()
                .map(|k| format!("s0.{k}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for column in &selected {
            sql.push_str(", ");
            sql.push_str(column);
        }
        sql.push_str(" FROM s0");
        for i in 1..sources.len() {
            let condition: Vec<String> =
                keys.iter().map(|k| format!("s0.{k} = s{i}.{k}")).collect();
            sql.push_str(&format!(" JOIN s{i} ON {}", condition.join(" AND ")));
        }
        self.runtime.block_on(async move {
            let frame = ctx.sql(&sql).await.map_err(query_error)?;
            let schema = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await.map_err(query_error)?;
            Ok((schema, batches))
        })
    }
}

/// Records each job that ends in the lineage graph: what it read, the job, the model.
struct LineageRecorder {
    lineage: Arc<Lineage>,
    queries: Arc<QueryEngine>,
}

impl JobObserver for LineageRecorder {
    fn ended(&self, job: &JobRecord, arn: &str, model: Option<&Path>) {
        let sources: Vec<&DataSource> = match &job.spec.source {
            DataSource::Join { sources, .. } => sources.iter().map(|s| &s.source).collect(),
            source => vec![source],
        };
        // The groups read, described first so the inputs can borrow them.
        let mut groups = Vec::new();
        for source in &sources {
            if let DataSource::FeatureGroup { name, .. } = source {
                match self.queries.store().describe_feature_group(name) {
                    Ok(found) => groups.push(found),
                    // Deleted since: nothing to join the job to.
                    Err(_) => return,
                }
            }
        }
        let mut groups = groups.iter();
        let inputs: Vec<AutoMlInput> = sources
            .iter()
            .filter_map(|source| match source {
                DataSource::FeatureGroup { .. } => groups.next().map(|g| AutoMlInput::Group(g)),
                DataSource::File { uri } => Some(AutoMlInput::Base(DatasetBase::File(uri.clone()))),
                DataSource::Query { sql } => Some(AutoMlInput::Base(DatasetBase::Sql(sql.clone()))),
                DataSource::Dataset { uri } => Some(AutoMlInput::Dataset(uri.clone())),
                DataSource::Join { .. } => None,
            })
            .collect();
        let mut parameters = std::collections::BTreeMap::from([
            ("TargetAttributeName".to_string(), job.spec.target.clone()),
            (
                "MaxAutoMLJobRuntimeInSeconds".to_string(),
                job.spec.budget_seconds.to_string(),
            ),
        ]);
        if let Some(problem) = job.problem {
            parameters.insert("ProblemType".into(), problem.name().into());
        }
        if let Some(objective) = &job.objective {
            parameters.insert("Objective".into(), objective.clone());
        }
        let best = job.best();
        if let Some(best) = best {
            parameters.insert("BestCandidate".into(), best.name.clone());
        }
        let status = match job.status {
            JobStatus::Completed => "Completed",
            JobStatus::Stopped => "Stopped",
            _ => "Failed",
        };
        let run = AutoMlRun {
            job_name: job.spec.name.clone(),
            job_arn: arn.to_string(),
            inputs,
            status: status.into(),
            failure_reason: job.failure_reason.clone(),
            started_ms: job.created_ms,
            ended_ms: job.ended_ms.unwrap_or(job.modified_ms),
            parameters,
            metrics: best
                .map(|b| {
                    b.metrics
                        .iter()
                        .map(|(m, v)| (m.name().to_string(), *v))
                        .collect()
                })
                .unwrap_or_default(),
            model_uri: model.map(|p| format!("file://{}", p.display())),
        };
        if let Err(e) = self.lineage.record_automl_job(&run) {
            tracing::error!(job = %job.spec.name, error = %e, "recording an AutoML job's lineage failed");
        }
    }
}

/// The AutoML jobs, unless the configuration turns them off.
pub fn open_jobs(
    config: &Config,
    queries: &Arc<QueryEngine>,
    lineage: Option<Arc<Lineage>>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Option<Arc<Jobs>>> {
    if !config.automl {
        return Ok(None);
    }
    let loader = Arc::new(QueryLoader {
        queries: queries.clone(),
        runtime: tokio::runtime::Handle::current(),
    });
    let arns = quiver_types::model::arn::ArnContext {
        region: config.region.clone(),
        account_id: config.account_id.clone(),
    };
    let observer = lineage.map(|lineage| {
        Arc::new(LineageRecorder {
            lineage,
            queries: queries.clone(),
        }) as Arc<dyn JobObserver>
    });
    let jobs = Jobs::open(
        &config.data_dir.join("automl"),
        arns,
        loader,
        observer,
        clock,
        config.automl_workers,
    )?;
    Ok(Some(Arc::new(jobs)))
}
