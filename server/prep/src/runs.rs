//! Recipe runs: a recipe over its whole sources, in the background, into a file or a feature
//! group, with its status, rows written, a stop, and a clear end after a restart.
//!
//! A run fits its recipe first and stores the fitted recipe in its record before it writes a
//! row, so that a run started again under the same name (after a crash, a restart or a stop)
//! applies exactly what the first attempt did. Into a feature group, the output is written in a
//! repeatable order (by record identifier, event time, then a hash of the row) with each batch's
//! last row number as the run's source position, atomically with the rows (the ingest workers'
//! exactly-once path): an attempt skips the rows an earlier one wrote, so none is written
//! twice. Into a file, the output goes to a temporary file renamed into place at the end.
//!
//! Records: `runs/<name>.json`, rewritten through a temporary file and a rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use quiver_types::error::{Error, Result, quote};
use quiver_types::time::EpochMillis;

use crate::compile::{compile, ident, query_only, run_error, sql_error};
use crate::recipe::{FileFormat, Recipe, check_name};
use crate::run::{Sources, prepare};

/// Runs at once; more wait their turn.
const CONCURRENT_RUNS: usize = 2;
/// A running record is saved at least this often (rows written, for Describe after a crash).
const SAVE_EVERY: Duration = Duration::from_secs(2);
/// Rows per write into a feature group (the store's most per call).
const WRITE_ROWS: usize = 10_000;

/// Where a run writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// A new file on the server (a path or `file:///path`); it must not exist.
    File { uri: String, format: FileFormat },
    /// A feature group, created from the output's columns if `create` says how.
    FeatureGroup {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        create: Option<NewGroup>,
    },
}

/// A group to create from a run's output: which columns identify records and their time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewGroup {
    pub record_identifier: String,
    pub event_time: String,
    #[serde(default = "yes")]
    pub online: bool,
    #[serde(default = "yes")]
    pub offline: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub name: String,
    /// The stored recipe it runs, if it runs one (else the recipe was given whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe_version: Option<u32>,
    pub recipe: Recipe,
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunStatus {
    InProgress,
    Completed,
    Failed,
    Stopping,
    Stopped,
}

impl RunStatus {
    pub fn ended(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Stopped)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub spec: RunSpec,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    pub created_ms: EpochMillis,
    pub modified_ms: EpochMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<EpochMillis>,
    /// Rows this run has written (all its attempts).
    pub rows_written: u64,
    /// Rows an attempt found already written by an earlier one, and skipped.
    #[serde(default)]
    pub rows_skipped: u64,
    /// The recipe as fitted by the first attempt; every attempt applies it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitted: Option<Recipe>,
    /// The query the run executes (the fitted recipe as SQL).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sql: String,
    pub attempts: u32,
}

/// What a run needs of its host: data, the store, lineage.
#[async_trait]
pub trait RunHost: Send + Sync {
    /// The base context recipes run in (runtime, object stores), if any.
    fn context(&self) -> Option<SessionContext>;
    /// Resolves sources without authorizing them again (they were when the run started).
    fn sources(&self) -> Arc<dyn Sources>;
    /// Opens a feature group output for `run`, creating the group if asked; fails when the
    /// output's columns do not fit it.
    async fn open_group(
        &self,
        run: &str,
        name: &str,
        create: Option<&NewGroup>,
        schema: &Schema,
    ) -> Result<Box<dyn GroupWriter>>;
    /// Told when a run ends (the host records lineage).
    fn ended(&self, record: &RunRecord);
    fn now_ms(&self) -> EpochMillis;
}

/// Writes a run's rows into a feature group, exactly once.
pub trait GroupWriter: Send {
    /// How many of the run's rows are written already (by earlier attempts).
    fn written(&self) -> Result<u64>;
    /// The columns the output is ordered by, so that every attempt sees the same order.
    fn order_by(&self) -> Vec<String>;
    /// Writes `batch`, rows `first ..` of the output, with the position atomically.
    fn write(&mut self, first: u64, batch: &RecordBatch) -> Result<()>;
}

struct Running {
    record: RunRecord,
    stop: Arc<AtomicBool>,
}

pub struct Runs {
    dir: PathBuf,
    host: Arc<dyn RunHost>,
    runs: Mutex<BTreeMap<String, Running>>,
    slots: Arc<Semaphore>,
    /// Where runs execute: the runtime that opened the runs (a request's thread may be a
    /// single-threaded one serving connections).
    runtime: tokio::runtime::Handle,
}

fn io(context: &str, e: std::io::Error) -> Error {
    Error::internal(format!("{context}: {e}"))
}

impl Runs {
    /// Opens the runs' folder; a run that was in progress when the server stopped is marked
    /// failed, saying so (starting it again resumes it). Runs execute on the calling runtime,
    /// which must be a multi-threaded one.
    pub fn open(dir: &Path, host: Arc<dyn RunHost>) -> Result<Arc<Self>> {
        std::fs::create_dir_all(dir).map_err(|e| io("creating the runs folder", e))?;
        let mut runs = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io("listing runs", e))? {
            let path = entry.map_err(|e| io("listing runs", e))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read(&path).map_err(|e| io("reading a run", e))?;
            let mut record: RunRecord = match serde_json::from_slice(&text) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("skipping the unreadable run record {}: {e}", path.display());
                    continue;
                }
            };
            if !record.status.ended() {
                record.status = RunStatus::Failed;
                record.failure_reason = Some(
                    "the server stopped while the run was in progress; start it again under the same name to resume it (rows already written are skipped)".into(),
                );
                record.ended_ms = Some(host.now_ms());
                save(dir, &record)?;
            }
            runs.insert(
                record.spec.name.clone(),
                Running {
                    record,
                    stop: Arc::new(AtomicBool::new(false)),
                },
            );
        }
        Ok(Arc::new(Self {
            dir: dir.to_path_buf(),
            host,
            runs: Mutex::new(runs),
            slots: Arc::new(Semaphore::new(CONCURRENT_RUNS)),
            runtime: tokio::runtime::Handle::current(),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Running>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a run, or resumes a failed or stopped one of the same name (its spec must be
    /// the same).
    pub fn start(self: &Arc<Self>, spec: RunSpec) -> Result<RunRecord> {
        check_name(&spec.name)
            .map_err(|e| Error::validation(e.message().replace("name", "run name")))?;
        spec.recipe.check()?;
        if let Output::File { uri, .. } = &spec.output {
            let path = local_path(uri)?;
            if path.exists() {
                return Err(Error::already_exists(format!(
                    "output {}: the file exists; name a new one",
                    quote(uri)
                )));
            }
        }
        let now = self.host.now_ms();
        let stop = Arc::new(AtomicBool::new(false));
        let record = {
            let mut runs = self.lock();
            let record = match runs.get(&spec.name) {
                Some(r) if r.record.status == RunStatus::Completed => {
                    return Err(Error::already_exists(format!(
                        "run {} completed already; name a new run",
                        quote(&spec.name)
                    )));
                }
                Some(r) if !r.record.status.ended() => {
                    return Err(Error::conflict(format!(
                        "run {} is in progress",
                        quote(&spec.name)
                    )));
                }
                Some(r) => {
                    if r.record.spec.output != spec.output || r.record.spec.recipe != spec.recipe {
                        return Err(Error::conflict(format!(
                            "run {} ran another recipe or output; resume it with the same ones, or name a new run",
                            quote(&spec.name)
                        )));
                    }
                    let mut record = r.record.clone();
                    record.status = RunStatus::InProgress;
                    record.failure_reason = None;
                    record.ended_ms = None;
                    record.modified_ms = now;
                    record.attempts += 1;
                    record
                }
                None => RunRecord {
                    spec,
                    status: RunStatus::InProgress,
                    failure_reason: None,
                    created_ms: now,
                    modified_ms: now,
                    ended_ms: None,
                    rows_written: 0,
                    rows_skipped: 0,
                    fitted: None,
                    sql: String::new(),
                    attempts: 1,
                },
            };
            save(&self.dir, &record)?;
            runs.insert(
                record.spec.name.clone(),
                Running {
                    record: record.clone(),
                    stop: stop.clone(),
                },
            );
            record
        };
        let runs = self.clone();
        let name = record.spec.name.clone();
        self.runtime.spawn(async move {
            let _slot = runs.slots.clone().acquire_owned().await;
            let outcome = runs.execute(&name, &stop).await;
            runs.finish(&name, outcome);
        });
        Ok(record)
    }

    pub fn describe(&self, name: &str) -> Result<RunRecord> {
        self.lock()
            .get(name)
            .map(|r| r.record.clone())
            .ok_or_else(|| Error::not_found(format!("no run named {}", quote(name))))
    }

    /// Newest first.
    pub fn list(&self) -> Vec<RunRecord> {
        let mut all: Vec<RunRecord> = self.lock().values().map(|r| r.record.clone()).collect();
        all.sort_by(|a, b| {
            b.created_ms
                .cmp(&a.created_ms)
                .then(a.spec.name.cmp(&b.spec.name))
        });
        all
    }

    pub fn stop(&self, name: &str) -> Result<RunRecord> {
        let mut runs = self.lock();
        let running = runs
            .get_mut(name)
            .ok_or_else(|| Error::not_found(format!("no run named {}", quote(name))))?;
        if running.record.status == RunStatus::InProgress {
            running.stop.store(true, Ordering::SeqCst);
            running.record.status = RunStatus::Stopping;
            running.record.modified_ms = self.host.now_ms();
            save(&self.dir, &running.record)?;
        }
        Ok(running.record.clone())
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut RunRecord)) -> Result<RunRecord> {
        let mut runs = self.lock();
        let running = runs
            .get_mut(name)
            .ok_or_else(|| Error::internal(format!("run {name} vanished")))?;
        change(&mut running.record);
        running.record.modified_ms = self.host.now_ms();
        Ok(running.record.clone())
    }

    fn finish(&self, name: &str, outcome: Result<bool>) {
        let now = self.host.now_ms();
        let record = self.update(name, |r| {
            r.ended_ms = Some(now);
            match outcome {
                Ok(true) => r.status = RunStatus::Completed,
                Ok(false) => r.status = RunStatus::Stopped,
                Err(e) => {
                    r.status = RunStatus::Failed;
                    r.failure_reason = Some(e.message().to_string());
                }
            }
        });
        match record {
            Ok(record) => {
                if let Err(e) = save(&self.dir, &record) {
                    tracing::error!("saving run {name}: {e}");
                }
                self.host.ended(&record);
            }
            Err(e) => tracing::error!("{e}"),
        }
    }

    /// The run's work: `Ok(true)` when it completed, `Ok(false)` when it was stopped.
    async fn execute(&self, name: &str, stop: &AtomicBool) -> Result<bool> {
        let record = self.describe(name)?;
        let recipe = record
            .fitted
            .clone()
            .unwrap_or_else(|| record.spec.recipe.clone());
        let base = self.host.context();
        let sources = self.host.sources();
        let ctx = prepare(base.as_ref(), sources.as_ref(), &recipe, None).await?;
        let compiled = compile(&ctx, &recipe, None).await?;
        if record.fitted.is_none() {
            let saved = self.update(name, |r| {
                r.fitted = Some(compiled.recipe.clone());
                r.sql = compiled.sql.clone();
            })?;
            save(&self.dir, &saved)?;
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        match &record.spec.output {
            Output::File { uri, format } => {
                // A file is written whole by each attempt.
                self.update(name, |r| r.rows_written = 0)?;
                let df = ctx
                    .sql_with_options(&compiled.run_sql, query_only())
                    .await
                    .map_err(sql_error)?;
                let stream = df.execute_stream().await.map_err(run_error)?;
                let path = local_path(uri)?;
                let temporary = path.with_file_name(format!(
                    ".{}.quiver-run-{}",
                    path.file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or("output"),
                    record.spec.name
                ));
                let written = self
                    .write_file(name, stream, &temporary, *format, &compiled.schema, stop)
                    .await;
                match written {
                    Ok(true) => {
                        std::fs::rename(&temporary, &path)
                            .map_err(|e| io("moving the output into place", e))?;
                        Ok(true)
                    }
                    other => {
                        let _ = std::fs::remove_file(&temporary);
                        other
                    }
                }
            }
            Output::FeatureGroup {
                name: group,
                create,
            } => {
                let mut writer = self
                    .host
                    .open_group(name, group, create.as_ref(), &compiled.schema)
                    .await?;
                let mut order: Vec<String> = writer.order_by().iter().map(|c| ident(c)).collect();
                let visible: Vec<String> = compiled
                    .schema
                    .fields()
                    .iter()
                    .map(|f| ident(f.name()))
                    .collect();
                order.push(format!("quiver_hash(0, {})", visible.join(", ")));
                let sql = format!(
                    "SELECT * FROM ({}) AS output ORDER BY {}",
                    compiled.run_sql,
                    order.join(", ")
                );
                let df = ctx
                    .sql_with_options(&sql, query_only())
                    .await
                    .map_err(sql_error)?;
                let mut stream = df.execute_stream().await.map_err(run_error)?;
                // What the store holds is the truth (an attempt killed before it saved its
                // record wrote more than the record says).
                let done = writer.written()?;
                self.update(name, |r| r.rows_written = done)?;
                let mut row: u64 = 0;
                let mut last_save = Instant::now();
                while let Some(batch) = stream.next().await {
                    if stop.load(Ordering::SeqCst) {
                        return Ok(false);
                    }
                    let batch = batch.map_err(run_error)?;
                    let rows = batch.num_rows() as u64;
                    // Rows an earlier attempt wrote come first, in the same order: skipped.
                    let skip = done.saturating_sub(row).min(rows);
                    if skip > 0 {
                        self.update(name, |r| r.rows_skipped += skip)?;
                    }
                    if skip < rows {
                        let fresh = batch.slice(skip as usize, (rows - skip) as usize);
                        let mut first = row + skip;
                        for chunk in chunks(&fresh, WRITE_ROWS) {
                            writer.write(first, &chunk)?;
                            let n = chunk.num_rows() as u64;
                            self.update(name, |r| r.rows_written += n)?;
                            first += n;
                        }
                    }
                    row += rows;
                    if last_save.elapsed() >= SAVE_EVERY {
                        save(&self.dir, &self.describe(name)?)?;
                        last_save = Instant::now();
                    }
                }
                Ok(true)
            }
        }
    }

    async fn write_file(
        &self,
        name: &str,
        mut stream: datafusion::physical_plan::SendableRecordBatchStream,
        path: &Path,
        format: FileFormat,
        schema: &Schema,
        stop: &AtomicBool,
    ) -> Result<bool> {
        let file = std::fs::File::create(path).map_err(|e| io("creating the output", e))?;
        let schema = Arc::new(schema.clone());
        let write_error =
            |e: &dyn std::fmt::Display| Error::internal(format!("writing the output: {e}"));
        enum Writer {
            Parquet(parquet::arrow::ArrowWriter<std::fs::File>),
            Csv(arrow::csv::Writer<std::fs::File>),
            Json(arrow::json::LineDelimitedWriter<std::fs::File>),
        }
        let mut writer = match format {
            FileFormat::Parquet => Writer::Parquet(
                parquet::arrow::ArrowWriter::try_new(
                    file,
                    schema.clone(),
                    Some(crate::run::parquet_properties()),
                )
                .map_err(|e| write_error(&e))?,
            ),
            FileFormat::Csv => Writer::Csv(arrow::csv::Writer::new(file)),
            FileFormat::Json => Writer::Json(arrow::json::LineDelimitedWriter::new(file)),
        };
        let mut last_save = Instant::now();
        while let Some(batch) = stream.next().await {
            if stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            let batch = batch.map_err(run_error)?;
            let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                .map_err(|e| write_error(&e))?;
            match &mut writer {
                Writer::Parquet(w) => w.write(&batch).map_err(|e| write_error(&e))?,
                Writer::Csv(w) => w.write(&batch).map_err(|e| write_error(&e))?,
                Writer::Json(w) => w.write(&batch).map_err(|e| write_error(&e))?,
            }
            let n = batch.num_rows() as u64;
            self.update(name, |r| r.rows_written += n)?;
            if last_save.elapsed() >= SAVE_EVERY {
                save(&self.dir, &self.describe(name)?)?;
                last_save = Instant::now();
            }
        }
        match writer {
            Writer::Parquet(w) => {
                w.close().map_err(|e| write_error(&e))?;
            }
            Writer::Csv(w) => {
                w.into_inner().sync_all().map_err(|e| write_error(&e))?;
            }
            Writer::Json(mut w) => {
                w.finish().map_err(|e| write_error(&e))?;
                w.into_inner().sync_all().map_err(|e| write_error(&e))?;
            }
        }
        Ok(true)
    }
}

/// `batch` in slices of at most `rows` rows.
fn chunks(batch: &RecordBatch, rows: usize) -> Vec<RecordBatch> {
    (0..batch.num_rows())
        .step_by(rows)
        .map(|start| batch.slice(start, rows.min(batch.num_rows() - start)))
        .collect()
}

/// A run's output path on the server.
fn local_path(uri: &str) -> Result<PathBuf> {
    if uri.contains("://") && !uri.starts_with("file://") {
        return Err(Error::validation(format!(
            "output {}: runs write files on the server (file:///path or a path); write into a feature group for the offline store",
            quote(uri)
        )));
    }
    let path = PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri));
    if !path.is_absolute() {
        return Err(Error::validation(format!(
            "output {}: an absolute path on the server",
            quote(uri)
        )));
    }
    match path.parent() {
        Some(parent) if parent.is_dir() => Ok(path),
        _ => Err(Error::validation(format!(
            "output {}: its folder does not exist on the server",
            quote(uri)
        ))),
    }
}

fn save(dir: &Path, record: &RunRecord) -> Result<()> {
    let path = dir.join(format!("{}.json", record.spec.name));
    let temporary = dir.join(format!(".{}.json.tmp", record.spec.name));
    let text = serde_json::to_vec_pretty(record)
        .map_err(|e| Error::internal(format!("writing run {}: {e}", record.spec.name)))?;
    std::fs::write(&temporary, text).map_err(|e| io("writing a run record", e))?;
    std::fs::rename(&temporary, &path).map_err(|e| io("writing a run record", e))
}
