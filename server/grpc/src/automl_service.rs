//! `quiver.featurestore.v1.AutoML` over tonic: AutoML jobs (`quiver-automl`'s [`Jobs`]) and
//! their models' predictions — for rows given as JSON, or for records of the online store read
//! and predicted in the same call. Jobs are authorized as their SageMaker actions on the job's
//! ARN; Predict as `quiver:Predict` on it, and online reads as `sagemaker:GetRecord`. The data
//! a job or a batch reads is authorized as a query of it (`quiver:Query`).

use std::sync::Arc;

use quiver_proto::v1 as pb;
use quiver_proto::v1::auto_ml_server::AutoMl as AutoMlApi;
use tonic::{Request, Response, Status};

use crate::service::caller;
use crate::status::status;
use quiver_auth::{Access, Caller, Features};
use quiver_automl::frame::Frame;
use quiver_automl::jobs::{
    DataSource, JobRecord, JobSpec, JobStatus, Jobs, JoinedSource, check_job_name,
};
use quiver_automl::problem::ProblemType;
use quiver_automl::search::CandidateStatus;
use quiver_automl::training::{Scored, predictions_batch};
use quiver_core::FeatureStore;
use quiver_query::QueryEngine;
use quiver_types::error::{Error, Result};
use quiver_types::model::Value;

/// The training budget when a request gives none.
const DEFAULT_BUDGET_SECONDS: u64 = 600;
/// The most rows or records one Predict call takes.
pub const MAX_PREDICT_ROWS: usize = 10_000;

#[derive(Clone)]
pub struct AutoMlService {
    jobs: Arc<Jobs>,
    store: Arc<FeatureStore>,
    access: Arc<Access>,
    /// For authorizing SQL sources as the Query service does.
    queries: Arc<QueryEngine>,
}

impl AutoMlService {
    pub fn new(
        jobs: Arc<Jobs>,
        store: Arc<FeatureStore>,
        access: Arc<Access>,
        queries: Arc<QueryEngine>,
    ) -> Self {
        Self {
            jobs,
            store,
            access,
            queries,
        }
    }

    /// Reading a source is authorized as a query of it: `quiver:Query` on each group it reads
    /// (all features), or on `*` for a training set; a file as `quiver:ReadFile` on it.
    fn authorize_source(&self, caller: &Caller, source: &DataSource) -> Result<()> {
        match source {
            DataSource::FeatureGroup { name, .. } => self.access.authorize_group(
                caller,
                "quiver:Query",
                Some(name),
                Features::All,
                |g| self.store.feature_names(g),
            ),
            DataSource::Query { sql } => {
                crate::query_service::authorize_sql(&self.access, &self.queries, caller, sql)
            }
            DataSource::File { uri } => self.access.authorize_file(caller, uri),
            DataSource::Dataset { .. } => {
                self.access
                    .authorize_group(caller, "quiver:Query", None, Features::Unnamed, |_| None)
            }
            DataSource::Join { sources, .. } => sources
                .iter()
                .try_for_each(|s| self.authorize_source(caller, &s.source)),
        }
    }

    fn authorize(&self, caller: &Caller, action: &str, job: &str) -> Result<()> {
        self.access
            .authorize(caller, action, &self.jobs.arn(job), None)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&AutoMlService) -> Result<T> + Send + 'static,
    ) -> Result<Response<T>, Status> {
        let service = self.clone();
        tokio::task::spawn_blocking(move || op(&service))
            .await
            .map_err(|e| status(Error::internal(format!("AutoML task failed: {e}"))))?
            .map(Response::new)
            .map_err(status)
    }

    /// A request's source, and the columns that identify rows in it.
    fn source(&self, source: Option<pb::AutoMlDataSource>) -> Result<(DataSource, Vec<String>)> {
        use pb::auto_ml_data_source::Source;
        let (source, identifying) = match source.and_then(|s| s.source) {
            Some(Source::FeatureGroup(name)) => {
                DataSource::of_group(&*self.store.describe_feature_group(&name)?, false)
            }
            Some(Source::FeatureGroupHistory(name)) => {
                let group = self.store.describe_feature_group(&name)?;
                if !group.has_offline_store() {
                    return Err(Error::validation(format!(
                        "feature_group_history '{name}': the group has no offline store, so no history; name it as feature_group for its online records"
                    )));
                }
                DataSource::of_group(&group, true)
            }
            Some(Source::Sql(sql)) => (DataSource::Query { sql }, Vec::new()),
            Some(Source::FileUri(uri)) => (DataSource::File { uri }, Vec::new()),
            Some(Source::DatasetUri(uri)) => (DataSource::Dataset { uri }, Vec::new()),
            Some(Source::Join(join)) => {
                if join.sources.len() < 2 {
                    return Err(Error::validation(format!(
                        "join.sources: a join needs two or more sources, not {}",
                        join.sources.len()
                    )));
                }
                if join.on.is_empty() || join.on.iter().any(|k| k.trim().is_empty()) {
                    return Err(Error::validation(
                        "join.on: name the key columns every source has",
                    ));
                }
                let mut sources = Vec::new();
                // The keys identify rows: not features unless named.
                let mut identifying = join.on.clone();
                for (i, s) in join.sources.into_iter().enumerate() {
                    if matches!(s.source, Some(Source::Join(_))) {
                        return Err(Error::validation(format!(
                            "join.sources[{i}]: a join inside a join; list its sources in this one"
                        )));
                    }
                    let (source, ids) = self.source(Some(s))?;
                    let new: Vec<String> = ids
                        .iter()
                        .filter(|c| !identifying.contains(c))
                        .cloned()
                        .collect();
                    identifying.extend(new);
                    sources.push(JoinedSource {
                        source,
                        identifying: ids,
                    });
                }
                (
                    DataSource::Join {
                        sources,
                        on: join.on,
                    },
                    identifying,
                )
            }
            None => {
                return Err(Error::validation(
                    "source is required: feature_group, feature_group_history, sql, file_uri, dataset_uri or join",
                ));
            }
        };
        Ok((source, identifying))
    }

    fn spec(&self, r: pb::CreateAutoMlJobRequest) -> Result<JobSpec> {
        let (source, identifying) = self.source(r.source)?;
        Ok(JobSpec {
            name: r.name,
            source,
            target: r.target,
            problem: r
                .problem_type
                .as_deref()
                .map(|p| ProblemType::parse("problem_type", p))
                .transpose()?,
            objective: r.objective,
            use_columns: (!r.use_columns.is_empty()).then_some(r.use_columns),
            drop_columns: r.drop_columns,
            identifying,
            budget_seconds: if r.budget_seconds == 0 {
                DEFAULT_BUDGET_SECONDS
            } else {
                r.budget_seconds
            },
            max_candidates: r.max_candidates.map(|n| n as usize),
            request: serde_json::Value::Null,
        })
    }

    /// Rows of the online store as a table: each record's features, by name.
    fn online_rows(
        &self,
        caller: &Caller,
        online: &pb::OnlineRecords,
    ) -> Result<(Frame, Vec<bool>)> {
        self.access.authorize_group(
            caller,
            "sagemaker:GetRecord",
            Some(&online.feature_group),
            Features::Named(&[]),
            |g| self.store.feature_names(g),
        )?;
        let mut rows = Vec::with_capacity(online.record_identifiers.len());
        let mut found = Vec::with_capacity(online.record_identifiers.len());
        for id in &online.record_identifiers {
            let view = self.store.get_record(&online.feature_group, id, &[])?;
            let mut row = serde_json::Map::new();
            if let Some(view) = &view {
                for (name, value) in view.values()? {
                    let json = match value {
                        Value::Integral(i) => serde_json::json!(i),
                        Value::Fractional(f) => serde_json::json!(f),
                        Value::String(s) => serde_json::json!(s),
                        // Collections are not model inputs.
                        _ => continue,
                    };
                    row.insert(name, json);
                }
            }
            found.push(view.is_some());
            rows.push(row);
        }
        Ok((Frame::from_json_rows(&rows)?, found))
    }
}

fn status_name(status: JobStatus) -> &'static str {
    match status {
        JobStatus::InProgress => "InProgress",
        JobStatus::Completed => "Completed",
        JobStatus::Failed => "Failed",
        JobStatus::Stopping => "Stopping",
        JobStatus::Stopped => "Stopped",
    }
}

fn job_pb(jobs: &Jobs, r: JobRecord) -> pb::AutoMlJob {
    pb::AutoMlJob {
        arn: jobs.arn(&r.spec.name),
        name: r.spec.name,
        status: status_name(r.status).into(),
        secondary_status: r.secondary_status,
        failure_reason: r.failure_reason,
        creation_time_ms: r.created_ms,
        last_modified_time_ms: r.modified_ms,
        end_time_ms: r.ended_ms,
        problem_type: r.problem.map(|p| p.name().to_string()),
        objective: r.objective,
        target: r.spec.target,
        budget_seconds: r.spec.budget_seconds,
        candidates: r
            .leaderboard
            .into_iter()
            .map(|c| pb::AutoMlCandidate {
                name: c.name,
                status: match c.status {
                    CandidateStatus::Completed => "Completed",
                    CandidateStatus::Stopped => "Stopped",
                    CandidateStatus::Failed => "Failed",
                }
                .into(),
                reason: c.reason,
                objective: c.objective,
                metrics: c
                    .metrics
                    .into_iter()
                    .map(|(m, v)| (m.name().to_string(), v))
                    .collect(),
                fit_seconds: c.fit_seconds,
                predict_seconds_per_1000: c.predict_seconds_per_1000,
            })
            .collect(),
    }
}

fn predictions_pb(
    scored: Scored,
    classes: &[String],
    found: Option<&[bool]>,
) -> Vec<pb::Prediction> {
    (0..scored.predicted.len())
        .map(|r| {
            if found.is_some_and(|f| !f[r]) {
                return pb::Prediction {
                    missing: true,
                    ..Default::default()
                };
            }
            pb::Prediction {
                predicted: scored.predicted[r].clone(),
                value: scored.values.as_ref().map(|v| v[r]),
                probabilities: scored
                    .probabilities
                    .as_ref()
                    .map(|p| classes.iter().cloned().zip(p[r].iter().copied()).collect())
                    .unwrap_or_default(),
                confidence: scored.confidence.as_ref().map(|c| c[r]),
                missing: false,
            }
        })
        .collect()
}

#[tonic::async_trait]
impl AutoMlApi for AutoMlService {
    async fn create_job(
        &self,
        request: Request<pb::CreateAutoMlJobRequest>,
    ) -> Result<Response<pb::AutoMlJob>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            // Authorized first, even on a bad name: a caller without the right learns nothing.
            s.authorize(&caller, "sagemaker:CreateAutoMLJobV2", &r.name)?;
            check_job_name(&r.name)?;
            let spec = s.spec(r)?;
            s.authorize_source(&caller, &spec.source)?;
            s.jobs.create(spec).map(|record| job_pb(&s.jobs, record))
        })
        .await
    }

    async fn describe_job(
        &self,
        request: Request<pb::AutoMlJobName>,
    ) -> Result<Response<pb::AutoMlJob>, Status> {
        let caller = caller(&request).clone();
        let name = request.into_inner().name;
        self.blocking(move |s| {
            s.authorize(&caller, "sagemaker:DescribeAutoMLJobV2", &name)?;
            s.jobs.describe(&name).map(|record| job_pb(&s.jobs, record))
        })
        .await
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListAutoMlJobsRequest>,
    ) -> Result<Response<pb::ListAutoMlJobsResponse>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            s.access
                .authorize(&caller, "sagemaker:ListAutoMLJobs", "*", None)?;
            let jobs = s
                .jobs
                .list()
                .into_iter()
                .filter(|j| {
                    r.name_contains
                        .as_ref()
                        .is_none_or(|n| j.spec.name.contains(n.as_str()))
                        && r.status
                            .as_ref()
                            .is_none_or(|st| status_name(j.status) == st)
                })
                .map(|j| job_pb(&s.jobs, j))
                .collect();
            Ok(pb::ListAutoMlJobsResponse { jobs })
        })
        .await
    }

    async fn stop_job(
        &self,
        request: Request<pb::AutoMlJobName>,
    ) -> Result<Response<pb::AutoMlJob>, Status> {
        let caller = caller(&request).clone();
        let name = request.into_inner().name;
        self.blocking(move |s| {
            s.authorize(&caller, "sagemaker:StopAutoMLJob", &name)?;
            s.jobs.stop(&name)?;
            s.jobs.describe(&name).map(|record| job_pb(&s.jobs, record))
        })
        .await
    }

    async fn report(
        &self,
        request: Request<pb::AutoMlJobName>,
    ) -> Result<Response<pb::AutoMlReport>, Status> {
        let caller = caller(&request).clone();
        let name = request.into_inner().name;
        self.blocking(move |s| {
            s.authorize(&caller, "sagemaker:DescribeAutoMLJobV2", &name)?;
            let model = s.jobs.model(&name)?;
            Ok(pb::AutoMlReport {
                leaderboard_json: to_json(&model.leaderboard)?,
                cleaning_steps_json: to_json(&model.steps)?,
                data_report_json: to_json(&model.data_report)?,
                model_report_json: to_json(&model.model_report)?,
                html: quiver_automl::html::page(&name, &model),
            })
        })
        .await
    }

    async fn predict(
        &self,
        request: Request<pb::PredictRequest>,
    ) -> Result<Response<pb::PredictResponse>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            s.authorize(&caller, "quiver:Predict", &r.job)?;
            let model = s.jobs.model(&r.job)?;
            let (frame, found) = match r.input {
                Some(pb::predict_request::Input::RowsJson(json)) => {
                    let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(&json)
                        .map_err(|e| Error::validation(format!("rows_json is not a JSON array of objects: {e}")))?;
                    if rows.len() > MAX_PREDICT_ROWS {
                        return Err(Error::validation(format!(
                            "rows_json has {} rows; at most {MAX_PREDICT_ROWS} per call",
                            rows.len()
                        )));
                    }
                    (Frame::from_json_rows(&rows)?, None)
                }
                Some(pb::predict_request::Input::Online(online)) => {
                    if online.record_identifiers.len() > MAX_PREDICT_ROWS {
                        return Err(Error::validation(format!(
                            "online.record_identifiers has {} identifiers; at most {MAX_PREDICT_ROWS} per call",
                            online.record_identifiers.len()
                        )));
                    }
                    let (frame, found) = s.online_rows(&caller, &online)?;
                    (frame, Some(found))
                }
                None => return Err(Error::validation("input is required: rows_json or online")),
            };
            if frame.rows == 0 {
                return Ok(pb::PredictResponse { predictions: Vec::new() });
            }
            let scored = model.predict(&frame)?;
            Ok(pb::PredictResponse {
                predictions: predictions_pb(scored, &model.classes, found.as_deref()),
            })
        })
        .await
    }

    async fn predict_batch(
        &self,
        request: Request<pb::PredictBatchRequest>,
    ) -> Result<Response<pb::PredictBatchResponse>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            let started = std::time::Instant::now();
            s.authorize(&caller, "quiver:Predict", &r.job)?;
            let model = s.jobs.model(&r.job)?;
            let path = r
                .output_uri
                .strip_prefix("file://")
                .unwrap_or(&r.output_uri)
                .to_string();
            let parquet = path.ends_with(".parquet");
            if !parquet && !path.ends_with(".csv") {
                return Err(Error::validation(format!(
                    "output_uri '{}' must end in .parquet or .csv",
                    r.output_uri
                )));
            }
            if std::path::Path::new(&path).exists() {
                return Err(Error::validation(format!(
                    "output_uri '{}' exists already; name a new file",
                    r.output_uri
                )));
            }
            let (source, _) = s.source(r.source)?;
            s.authorize_source(&caller, &source)?;
            let (schema, batches) = s.jobs.load(&source)?;
            let frame = Frame::from_batches(&schema, &batches)?;
            let scored = model.predict(&frame)?;
            let out = predictions_batch(&schema, &batches, &scored, &model.classes)?;
            write_file(&path, parquet, &out)?;
            Ok(pb::PredictBatchResponse {
                rows: out.num_rows() as u64,
                output_uri: format!("file://{path}"),
                seconds: started.elapsed().as_secs_f64(),
            })
        })
        .await
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::internal(format!("encoding a report: {e}")))
}

/// Writes `batch` to a new file at `path`, as Parquet or CSV.
fn write_file(path: &str, parquet: bool, batch: &arrow::record_batch::RecordBatch) -> Result<()> {
    let io = |e: String| Error::validation(format!("writing {path}: {e}"));
    let file = std::fs::File::create_new(path).map_err(|e| io(e.to_string()))?;
    if parquet {
        let mut writer =
            datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)
                .map_err(|e| io(e.to_string()))?;
        writer.write(batch).map_err(|e| io(e.to_string()))?;
        writer.close().map_err(|e| io(e.to_string()))?;
    } else {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(file);
        writer.write(batch).map_err(|e| io(e.to_string()))?;
    }
    Ok(())
}
