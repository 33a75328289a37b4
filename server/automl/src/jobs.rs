//! AutoML jobs: each build runs in the background on a bounded pool of worker threads, with
//! its status and secondary status (Autopilot's), its progress, a stop, and a clear end after
//! a restart (a job that was running when the server stopped is marked Failed, saying so).
//!
//! Records and models live in a directory of the data dir: `jobs/<name>.json` (the job, rewritten
//! as it moves on, through a temporary file and a rename) and `models/<name>.json` (the
//! trained model). The data comes from the host through [`DataLoader`]: this crate reads no
//! store itself.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use quiver_types::error::{Error, ErrorKind, Result, quote};
use quiver_types::model::arn::ArnContext;
use quiver_types::time::{Clock, EpochMillis};

use crate::frame::Frame;
use crate::prepare::ColumnChoice;
use crate::problem::ProblemType;
use crate::search::Candidate;
use crate::training::{Stage, TrainedModel, TrainingSpec, train};

/// Where a job's data comes from; the host's [`DataLoader`] reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataSource {
    /// A feature group's latest records (online), or its offline history.
    FeatureGroup { name: String, history: bool },
    /// A training set built by `quiver dataset create` (its manifest's URI).
    Dataset { uri: String },
    /// An SQL query over the offline store.
    Query { sql: String },
    /// A CSV or Parquet file on the server (`file:///path` or a path).
    File { uri: String },
    /// Sources joined on key columns (an inner join, in order).
    Join {
        sources: Vec<JoinedSource>,
        on: Vec<String>,
    },
}

/// One source of a join, and its columns that identify rows (dropped from the joined table
/// where an earlier source has a column of the same name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinedSource {
    pub source: DataSource,
    pub identifying: Vec<String>,
}

impl DataSource {
    /// A feature group as a source, and the columns of its tables that identify rows rather
    /// than describe them (left out of the features unless named): its record identifier and
    /// event time, the offline tables' own columns, and a history's partition columns.
    pub fn of_group(
        group: &quiver_types::model::FeatureGroup,
        history: bool,
    ) -> (Self, Vec<String>) {
        let mut identifying = vec![
            group.record_identifier_feature_name.clone(),
            group.event_time_feature_name.clone(),
        ];
        let offline: &[&str] = if history {
            &[
                "write_time",
                "api_invocation_time",
                "is_deleted",
                "year",
                "month",
                "day",
                "hour",
            ]
        } else {
            &["write_time", "api_invocation_time", "is_deleted"]
        };
        identifying.extend(offline.iter().map(|c| c.to_string()));
        (
            Self::FeatureGroup {
                name: group.name.clone(),
                history,
            },
            identifying,
        )
    }
}

/// Reads a job's data as Arrow record batches.
pub trait DataLoader: Send + Sync {
    fn load(&self, source: &DataSource) -> Result<(SchemaRef, Vec<RecordBatch>)>;
}

/// Told when a job ends (the host records its lineage).
pub trait JobObserver: Send + Sync {
    /// `model` is where the job's model is stored, when it has one.
    fn ended(&self, job: &JobRecord, arn: &str, model: Option<&Path>);
}

/// What CreateAutoMLJobV2 asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    pub name: String,
    pub source: DataSource,
    pub target: String,
    pub problem: Option<ProblemType>,
    pub objective: Option<String>,
    pub use_columns: Option<Vec<String>>,
    #[serde(default)]
    pub drop_columns: Vec<String>,
    /// Dropped unless in `use_columns` (a group's record identifier and event time).
    #[serde(default)]
    pub identifying: Vec<String>,
    pub budget_seconds: u64,
    /// At most this many candidates (Autopilot's `MaxCandidates`).
    #[serde(default)]
    pub max_candidates: Option<usize>,
    /// The API request as given, echoed back by Describe (input and output configuration,
    /// role, tags).
    #[serde(default)]
    pub request: serde_json::Value,
}

/// Autopilot's job statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    InProgress,
    Completed,
    Failed,
    Stopping,
    Stopped,
}

/// A job as Describe shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub spec: JobSpec,
    pub status: JobStatus,
    /// `Starting`, then the stages (`AnalyzingData`, ...), then `Completed`, `Failed`,
    /// `Stopped` or `MaxAutoMLJobRuntimeReached`.
    pub secondary_status: String,
    pub failure_reason: Option<String>,
    pub created_ms: EpochMillis,
    pub modified_ms: EpochMillis,
    pub ended_ms: Option<EpochMillis>,
    /// Filled in when the job completes.
    pub problem: Option<ProblemType>,
    pub objective: Option<String>,
    pub leaderboard: Vec<Candidate>,
}

impl JobRecord {
    pub fn best(&self) -> Option<&Candidate> {
        self.leaderboard.first()
    }
}

/// The jobs of one server.
pub struct Jobs {
    inner: Arc<Inner>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

struct Inner {
    dir: PathBuf,
    arns: ArnContext,
    observer: Option<Arc<dyn JobObserver>>,
    loader: Arc<dyn DataLoader>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    records: BTreeMap<String, JobRecord>,
    queue: VecDeque<String>,
    stops: BTreeMap<String, Arc<AtomicBool>>,
    models: BTreeMap<String, Arc<TrainedModel>>,
    closing: bool,
}

/// Job names: SageMaker's AutoMLJobName, 1 to 32 characters.
pub fn check_job_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !ok {
        return Err(Error::validation(format!(
            "AutoMLJobName {} must be 1 to 32 letters, digits and hyphens, starting with a letter or digit",
            quote(name)
        )));
    }
    Ok(())
}

impl Jobs {
    /// Opens the jobs kept in `dir` and starts `workers` threads. Jobs that were running when
    /// the server stopped are marked Failed.
    pub fn open(
        dir: &Path,
        arns: ArnContext,
        loader: Arc<dyn DataLoader>,
        observer: Option<Arc<dyn JobObserver>>,
        clock: Arc<dyn Clock>,
        workers: usize,
    ) -> Result<Self> {
        let io = |e: std::io::Error| {
            Error::internal(format!("AutoML's directory {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir.join("jobs")).map_err(io)?;
        std::fs::create_dir_all(dir.join("models")).map_err(io)?;
        let mut records = BTreeMap::new();
        for entry in std::fs::read_dir(dir.join("jobs")).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(io)?;
            let mut record: JobRecord = serde_json::from_slice(&bytes).map_err(|e| {
                Error::internal(format!(
                    "the AutoML job record {} is corrupt: {e}",
                    path.display()
                ))
            })?;
            if matches!(record.status, JobStatus::InProgress | JobStatus::Stopping) {
                record.status = JobStatus::Failed;
                record.secondary_status = "Failed".into();
                record.failure_reason = Some(
                    "the server stopped while the job ran; create the job again under a new name"
                        .into(),
                );
                record.ended_ms = Some(clock.now_ms());
                write_record(dir, &record)?;
            }
            records.insert(record.spec.name.clone(), record);
        }
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            arns,
            observer,
            loader,
            clock,
            state: Mutex::new(State {
                records,
                queue: VecDeque::new(),
                stops: BTreeMap::new(),
                models: BTreeMap::new(),
                closing: false,
            }),
            wake: Condvar::new(),
        });
        let workers = (0..workers.max(1))
            .map(|i| {
                let inner = inner.clone();
                std::thread::Builder::new()
                    .name(format!("automl-{i}"))
                    .spawn(move || inner.work())
                    .expect("an AutoML worker thread")
            })
            .collect();
        Ok(Self { inner, workers })
    }

    /// Queues a job. A name in use is refused (ResourceInUse in SageMaker's terms).
    pub fn create(&self, spec: JobSpec) -> Result<JobRecord> {
        check_job_name(&spec.name)?;
        if spec.target.is_empty() {
            return Err(Error::validation("TargetAttributeName is required"));
        }
        if spec.budget_seconds == 0 {
            return Err(Error::validation(
                "MaxAutoMLJobRuntimeInSeconds must be at least 1",
            ));
        }
        let now = self.inner.clock.now_ms();
        let record = JobRecord {
            spec: spec.clone(),
            status: JobStatus::InProgress,
            secondary_status: "Starting".into(),
            failure_reason: None,
            created_ms: now,
            modified_ms: now,
            ended_ms: None,
            problem: spec.problem,
            objective: spec.objective.clone(),
            leaderboard: Vec::new(),
        };
        let mut state = self.inner.state.lock().expect("the jobs' lock");
        if state.records.contains_key(&spec.name) {
            return Err(Error::already_exists(format!(
                "an AutoML job named {} already exists",
                quote(&spec.name)
            )));
        }
        write_record(&self.inner.dir, &record)?;
        state.records.insert(spec.name.clone(), record.clone());
        state
            .stops
            .insert(spec.name.clone(), Arc::new(AtomicBool::new(false)));
        state.queue.push_back(spec.name.clone());
        drop(state);
        self.inner.wake.notify_one();
        Ok(record)
    }

    /// A job's ARN: `arn:aws:sagemaker:<region>:<account>:automl-job/<name, lower-case>`.
    pub fn arn(&self, name: &str) -> String {
        self.inner.arn(name)
    }

    pub fn describe(&self, name: &str) -> Result<JobRecord> {
        let state = self.inner.state.lock().expect("the jobs' lock");
        state
            .records
            .get(name)
            .cloned()
            .ok_or_else(|| not_found(name))
    }

    /// Every job, newest first.
    pub fn list(&self) -> Vec<JobRecord> {
        let state = self.inner.state.lock().expect("the jobs' lock");
        let mut all: Vec<JobRecord> = state.records.values().cloned().collect();
        all.sort_by(|a, b| {
            b.created_ms
                .cmp(&a.created_ms)
                .then(a.spec.name.cmp(&b.spec.name))
        });
        all
    }

    /// Asks a running or queued job to stop; it keeps what it trained.
    pub fn stop(&self, name: &str) -> Result<()> {
        let mut state = self.inner.state.lock().expect("the jobs' lock");
        let record = state.records.get_mut(name).ok_or_else(|| not_found(name))?;
        if record.status != JobStatus::InProgress {
            return Ok(());
        }
        record.status = JobStatus::Stopping;
        record.secondary_status = "Stopping".into();
        let record = record.clone();
        write_record(&self.inner.dir, &record)?;
        if let Some(stop) = state.stops.get(name) {
            stop.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Reads a source through the host's loader (batch prediction reads its input so).
    pub fn load(&self, source: &DataSource) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        self.inner.loader.load(source)
    }

    /// The model a completed (or stopped) job trained.
    pub fn model(&self, name: &str) -> Result<Arc<TrainedModel>> {
        let mut state = self.inner.state.lock().expect("the jobs' lock");
        if let Some(model) = state.models.get(name) {
            return Ok(model.clone());
        }
        let record = state.records.get(name).ok_or_else(|| not_found(name))?;
        if !matches!(record.status, JobStatus::Completed | JobStatus::Stopped)
            || record.leaderboard.is_empty()
        {
            return Err(Error::validation(format!(
                "AutoML job {} has no model (its status is {:?})",
                quote(name),
                record.status
            )));
        }
        let path = model_path(&self.inner.dir, name);
        let bytes = std::fs::read(&path)
            .map_err(|e| Error::internal(format!("reading the model {}: {e}", path.display())))?;
        let model: TrainedModel = serde_json::from_slice(&bytes).map_err(|e| {
            Error::internal(format!("the model {} is corrupt: {e}", path.display()))
        })?;
        let model = Arc::new(model);
        state.models.insert(name.to_string(), model.clone());
        Ok(model)
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        if let Ok(mut state) = self.inner.state.lock() {
            state.closing = true;
            for stop in state.stops.values() {
                stop.store(true, Ordering::Relaxed);
            }
        }
        self.inner.wake.notify_all();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Inner {
    fn arn(&self, name: &str) -> String {
        format!(
            "arn:aws:sagemaker:{}:{}:automl-job/{}",
            self.arns.region,
            self.arns.account_id,
            name.to_ascii_lowercase()
        )
    }

    /// Tells the observer, if any, that `name` ended.
    fn observe_end(&self, name: &str) {
        let Some(observer) = &self.observer else {
            return;
        };
        let Some(record) = self
            .state
            .lock()
            .expect("the jobs' lock")
            .records
            .get(name)
            .cloned()
        else {
            return;
        };
        let model = model_path(&self.dir, name);
        let has_model = matches!(record.status, JobStatus::Completed | JobStatus::Stopped)
            && !record.leaderboard.is_empty();
        observer.ended(
            &record,
            &self.arn(name),
            has_model.then_some(model.as_path()),
        );
    }

    fn work(&self) {
        loop {
            let (name, stop) = {
                let mut state = self.state.lock().expect("the jobs' lock");
                loop {
                    if state.closing {
                        return;
                    }
                    if let Some(name) = state.queue.pop_front() {
                        let stop = state.stops.get(&name).cloned().unwrap_or_default();
                        break (name, stop);
                    }
                    state = self.wake.wait(state).expect("the jobs' lock");
                }
            };
            self.run(&name, stop);
            self.observe_end(&name);
        }
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut JobRecord)) {
        let mut state = self.state.lock().expect("the jobs' lock");
        if let Some(record) = state.records.get_mut(name) {
            change(record);
            record.modified_ms = self.clock.now_ms();
            if let Err(e) = write_record(&self.dir, record) {
                tracing::error!(job = name, error = %e, "recording an AutoML job's progress failed");
            }
        }
    }

    fn run(&self, name: &str, stop: Arc<AtomicBool>) {
        let Some(record) = self
            .state
            .lock()
            .expect("the jobs' lock")
            .records
            .get(name)
            .cloned()
        else {
            return;
        };
        let spec = record.spec;
        let outcome = self.build(&spec, stop.clone());
        let now = self.clock.now_ms();
        if self.state.lock().expect("the jobs' lock").closing {
            // Shutting down stopped it: that is not the user's stop.
            self.update(name, |r| {
                r.status = JobStatus::Failed;
                r.secondary_status = "Failed".into();
                r.failure_reason = Some(
                    "the server stopped while the job ran; create the job again under a new name"
                        .into(),
                );
                r.ended_ms = Some(now);
            });
            return;
        }
        let stopped = stop.load(Ordering::Relaxed);
        match outcome {
            Ok(model) => {
                let saved = write_model(&self.dir, name, &model);
                let model = Arc::new(model);
                self.update(name, |r| match saved {
                    Ok(()) => {
                        r.status = if stopped {
                            JobStatus::Stopped
                        } else {
                            JobStatus::Completed
                        };
                        r.secondary_status = if stopped { "Stopped" } else { "Completed" }.into();
                        r.problem = Some(model.problem);
                        r.objective = Some(model.objective.name().to_string());
                        r.leaderboard = model.leaderboard.clone();
                        r.ended_ms = Some(now);
                    }
                    Err(e) => {
                        r.status = JobStatus::Failed;
                        r.secondary_status = "Failed".into();
                        r.failure_reason = Some(e.message().to_string());
                        r.ended_ms = Some(now);
                    }
                });
                self.state
                    .lock()
                    .expect("the jobs' lock")
                    .models
                    .insert(name.to_string(), model);
            }
            Err(e) => self.update(name, |r| {
                r.status = if stopped {
                    JobStatus::Stopped
                } else {
                    JobStatus::Failed
                };
                r.secondary_status = if stopped { "Stopped" } else { "Failed" }.into();
                r.failure_reason = Some(match e.kind() {
                    ErrorKind::Internal => format!("internal error: {}", e.message()),
                    _ => e.message().to_string(),
                });
                r.ended_ms = Some(now);
            }),
        }
    }

    fn build(&self, spec: &JobSpec, stop: Arc<AtomicBool>) -> Result<TrainedModel> {
        let (schema, batches) = self.loader.load(&spec.source)?;
        let frame = Frame::from_batches(&schema, &batches)?;
        if frame.rows == 0 {
            return Err(Error::validation(format!(
                "the data source ({}) has no rows",
                describe_source(&spec.source)
            )));
        }
        let mut training =
            TrainingSpec::new(&spec.target, Duration::from_secs(spec.budget_seconds));
        training.problem = spec.problem;
        training.objective = spec.objective.clone();
        training.columns = ColumnChoice {
            use_columns: spec.use_columns.clone(),
            drop_columns: spec.drop_columns.clone(),
            identifying: spec.identifying.clone(),
        };
        training.stop = Some(stop);
        training.max_candidates = spec.max_candidates;
        let name = spec.name.clone();
        train(&frame, &training, &|stage: Stage| {
            self.update(&name, |r| {
                if r.status == JobStatus::InProgress {
                    r.secondary_status = secondary_status(stage).into();
                }
            });
        })
    }
}

/// Autopilot's secondary status for a stage.
pub fn secondary_status(stage: Stage) -> &'static str {
    match stage {
        Stage::AnalyzingData => "AnalyzingData",
        Stage::FeatureEngineering => "FeatureEngineering",
        Stage::TrainingModels => "TrainingModels",
        Stage::GeneratingReports => "GeneratingModelInsightsReport",
    }
}

/// A source as a user would name it.
pub fn describe_source(source: &DataSource) -> String {
    match source {
        DataSource::FeatureGroup {
            name,
            history: false,
        } => format!("feature group {}", quote(name)),
        DataSource::FeatureGroup {
            name,
            history: true,
        } => {
            format!("feature group {}'s offline history", quote(name))
        }
        DataSource::Dataset { uri } => format!("training set {uri}"),
        DataSource::Query { sql } => format!("query {}", quote(sql)),
        DataSource::File { uri } => format!("file {uri}"),
        DataSource::Join { sources, on } => format!(
            "join of {} on {}",
            sources
                .iter()
                .map(|s| describe_source(&s.source))
                .collect::<Vec<_>>()
                .join(" and "),
            on.join(", ")
        ),
    }
}

fn not_found(name: &str) -> Error {
    Error::not_found(format!("AutoML job {} does not exist", quote(name)))
}

fn model_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("models").join(format!("{name}.json"))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |e: std::io::Error| Error::internal(format!("writing {}: {e}", path.display()));
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn write_record(dir: &Path, record: &JobRecord) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(record)
        .map_err(|e| Error::internal(format!("encoding an AutoML job: {e}")))?;
    write_atomically(
        &dir.join("jobs").join(format!("{}.json", record.spec.name)),
        &bytes,
    )
}

fn write_model(dir: &Path, name: &str, model: &TrainedModel) -> Result<()> {
    let bytes =
        serde_json::to_vec(model).map_err(|e| Error::internal(format!("encoding a model: {e}")))?;
    write_atomically(&model_path(dir, name), &bytes)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use quiver_types::time::SystemClock;

    use super::*;

    /// A loader over one in-memory table per source name; an unknown source fails.
    struct Tables;

    impl DataLoader for Tables {
        fn load(&self, source: &DataSource) -> Result<(SchemaRef, Vec<RecordBatch>)> {
            let DataSource::FeatureGroup { name, .. } = source else {
                return Err(Error::validation("only feature groups here"));
            };
            if name == "slow" {
                std::thread::sleep(Duration::from_millis(500));
            }
            let rows = if name == "empty" { 0 } else { 300 };
            let x: Vec<f64> = (0..rows).map(|i| (i % 50) as f64).collect();
            let y: Vec<&str> = x
                .iter()
                .map(|v| if *v > 20.0 { "high" } else { "low" })
                .collect();
            let schema = Arc::new(Schema::new(vec![
                Field::new("x", DataType::Float64, true),
                Field::new("label", DataType::Utf8, true),
            ]));
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Float64Array::from(x)),
                    Arc::new(StringArray::from(y)),
                ],
            )
            .unwrap();
            Ok((schema, vec![batch]))
        }
    }

    fn open(dir: &Path) -> Jobs {
        Jobs::open(
            dir,
            arns(),
            Arc::new(Tables),
            None,
            Arc::new(SystemClock),
            1,
        )
        .unwrap()
    }

    /// The job once it has ended (or as it is after `timeout`).
    fn wait(jobs: &Jobs, name: &str, timeout: Duration) -> JobRecord {
        let started = std::time::Instant::now();
        loop {
            let record = jobs.describe(name).unwrap();
            let running = matches!(record.status, JobStatus::InProgress | JobStatus::Stopping);
            if !running || started.elapsed() > timeout {
                return record;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn arns() -> ArnContext {
        ArnContext {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
        }
    }

    fn spec(name: &str, group: &str, target: &str) -> JobSpec {
        JobSpec {
            name: name.into(),
            source: DataSource::FeatureGroup {
                name: group.into(),
                history: false,
            },
            target: target.into(),
            problem: None,
            objective: None,
            use_columns: None,
            drop_columns: Vec::new(),
            identifying: Vec::new(),
            budget_seconds: 5,
            max_candidates: None,
            request: serde_json::Value::Null,
        }
    }

    #[test]
    fn jobs_run_fail_with_reasons_and_end_clearly_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = open(dir.path());
        jobs.create(spec("good", "g", "label")).unwrap();
        jobs.create(spec("bad-target", "g", "nope")).unwrap();
        jobs.create(spec("empty", "empty", "label")).unwrap();
        let err = jobs.create(spec("good", "g", "label")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert!(jobs.create(spec("bad name!", "g", "label")).is_err());

        let good = wait(&jobs, "good", Duration::from_secs(60));
        assert_eq!(
            good.status,
            JobStatus::Completed,
            "{:?}",
            good.failure_reason
        );
        assert_eq!(good.problem, Some(ProblemType::BinaryClassification));
        assert!(good.best().unwrap().objective > 0.9);
        let bad = wait(&jobs, "bad-target", Duration::from_secs(60));
        assert_eq!(bad.status, JobStatus::Failed);
        assert!(bad.failure_reason.unwrap().contains("'nope'"));
        let empty = wait(&jobs, "empty", Duration::from_secs(60));
        assert!(empty.failure_reason.unwrap().contains("no rows"));
        let model = jobs.model("good").unwrap();
        assert_eq!(
            model.classes,
            ["high", "low"],
            "the rarer class is positive"
        );
        drop(jobs);

        // A job left running (as if the server died) ends Failed at the next start.
        let mut running = good.clone();
        running.spec.name = "interrupted".into();
        running.status = JobStatus::InProgress;
        write_record(dir.path(), &running).unwrap();
        let jobs = open(dir.path());
        let interrupted = jobs.describe("interrupted").unwrap();
        assert_eq!(interrupted.status, JobStatus::Failed);
        assert!(
            interrupted
                .failure_reason
                .unwrap()
                .contains("server stopped")
        );
        // The completed job's model is read back from disk.
        assert_eq!(jobs.model("good").unwrap().classes, ["high", "low"]);
        assert_eq!(jobs.list().len(), 4);
    }

    #[test]
    fn a_job_stopped_while_it_runs_ends_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = open(dir.path());
        // Its data takes half a second to load: the stop arrives while it runs.
        jobs.create(spec("long", "slow", "label")).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        jobs.stop("long").unwrap();
        assert_eq!(jobs.describe("long").unwrap().status, JobStatus::Stopping);
        let record = wait(&jobs, "long", Duration::from_secs(120));
        assert_eq!(
            record.status,
            JobStatus::Stopped,
            "{:?}",
            record.failure_reason
        );
        assert_eq!(record.secondary_status, "Stopped");
    }
}
