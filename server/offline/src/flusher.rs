//! The background flusher: turns staged rows into Parquet files, exactly once, and keeps each
//! group's catalog entry in step with its definition.
//!
//! One flush:
//! 1. Takes the staged rows from the oldest up to the staging watermark (every row below it is
//!    committed), at most `max_file_bytes` of them, and records that range with the write time
//!    as the flush intent (fsynced).
//! 2. Splits the rows by group and event-time hour (and by size), encodes one Parquet file per
//!    part, and writes each under a name derived from the intent (`layout::file_name`).
//! 3. Once every file is written, removes the range from staging and the intent in one write.
//!
//! A crash before 3 leaves the intent: the next start redoes the same range with the same write
//! time, so it rewrites the same objects with the same rows: nothing lost, nothing twice. A
//! failing store keeps the intent too; the flusher retries with backoff and reports the store as
//! blocked until a write succeeds.
//!
//! A flush starts when the oldest staged row has waited `flush_interval_ms`, or at once when
//! `max_file_bytes` of rows wait. Each flush writes one file per (group, hour) it holds, so a
//! partition gets at most one file per interval (more only when the size limit splits them):
//! few, large files for outside readers (Athena, Spark, DuckDB), whose freshness is the
//! interval. Quiver's own queries read the staged rows too (`query/staged.rs`), so they do
//! not wait for a flush.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutPayload};
use tokio::sync::watch;

use crate::OfflineStore;
use crate::encryption;
use crate::glue::GlueCatalog;
use crate::layout;
use crate::parquet;
use crate::stores::Destination;
use quiver_storage::online::OnlineStore;
use quiver_storage::registry::Registry;
use quiver_storage::staging::{FlushIntent, Staged, StagedRow};
use quiver_types::error::{Error, Result};
use quiver_types::model::FeatureGroup;
use quiver_types::time::{Clock, EpochMillis, SystemClock};

/// Seconds from a write's acknowledgement to its row being in an offline file (a histogram).
pub const OFFLINE_FRESHNESS: &str = "quiver_offline_freshness_seconds";

/// How often the flusher looks at staging when idle.
const POLL: Duration = Duration::from_millis(100);
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a stopping server keeps flushing.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);
/// Files written at once.
const UPLOAD_CONCURRENCY: usize = 8;

/// A flush whose files are all written, before its rows leave staging.
pub struct Uploaded {
    row_count: u64,
    staged_bytes: u64,
    file_count: u64,
    bytes: u64,
    /// The base URIs written to.
    bases: Vec<String>,
    /// When each row was accepted, for the freshness metric.
    accepted_at: Vec<EpochMillis>,
}

/// Why a flush failed, and which store (base URI) it was writing to.
#[derive(Debug)]
pub struct FlushError {
    base_uri: Option<String>,
    message: String,
}

impl From<Error> for FlushError {
    fn from(e: Error) -> Self {
        Self {
            base_uri: None,
            message: e.message().to_string(),
        }
    }
}

/// One Parquet file of a flush, before it is written.
struct PendingFile {
    destination: Destination,
    base_uri: String,
    path: String,
    body: Vec<u8>,
}

/// What a flush reads and updates: the registry (groups, and deleted groups whose rows are still
/// staged), the online store's staging area and data keys, and the offline store's settings
/// and status.
#[derive(Clone)]
pub struct FlushSources {
    pub registry: Arc<Registry>,
    pub online: Arc<OnlineStore>,
    pub offline: Arc<OfflineStore>,
}

impl FlushSources {
    fn registry(&self) -> &Registry {
        &self.registry
    }

    fn online(&self) -> &OnlineStore {
        &self.online
    }

    fn offline(&self) -> &OfflineStore {
        &self.offline
    }
}

pub struct Flusher {
    store: FlushSources,
    glue: Option<GlueCatalog>,
    /// Group id -> the `last_modified_time_ms` whose catalog entry was last written.
    catalogued: HashMap<u64, EpochMillis>,
}

impl Flusher {
    pub async fn new(store: FlushSources) -> Self {
        let glue = match &store.offline().config().glue {
            Some(endpoint) => Some(
                GlueCatalog::connect(endpoint.as_deref(), store.registry().arns().region.as_str())
                    .await,
            ),
            None => None,
        };
        Self {
            store,
            glue,
            catalogued: HashMap::new(),
        }
    }

    /// Runs until `stop` says so, then makes one last attempt to write what is staged.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_START;
        let mut next_catalog_attempt = Instant::now();
        loop {
            if Instant::now() >= next_catalog_attempt {
                next_catalog_attempt = Instant::now()
                    + match self.sync_catalogs().await {
                        Ok(()) => POLL,
                        Err(()) => BACKOFF_MAX,
                    };
            }
            let pause = match self.flush(false).await {
                Ok(Some(_)) => {
                    backoff = BACKOFF_START;
                    Duration::ZERO
                }
                Ok(None) => POLL,
                Err(()) => {
                    let pause = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    pause
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        // Shutting down: write what is staged, for a few seconds at most; whatever is left (or
        // fails) stays staged for the next start.
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        while Instant::now() < deadline {
            if !matches!(self.flush(true).await, Ok(Some(_))) {
                break;
            }
        }
    }

    /// Writes one flush if one is due (or `force`): `Ok(Some(rows written))`, or `Ok(None)` when
    /// there was nothing to do.
    pub async fn flush(&mut self, force: bool) -> std::result::Result<Option<u64>, ()> {
        match self.try_flush(force).await {
            Ok(report) => Ok(report),
            Err(e) => {
                metrics::counter!("quiver_offline_flush_failures_total").increment(1);
                tracing::warn!(error = %e.message, "offline flush failed; rows stay staged and the flush is retried");
                if let Some(base) = &e.base_uri {
                    self.store.offline().set_blocked(base, Some(e.message));
                }
                metrics::gauge!("quiver_offline_blocked").set(1.0);
                Err(())
            }
        }
    }

    async fn try_flush(&mut self, force: bool) -> std::result::Result<Option<u64>, FlushError> {
        let store = self.store.clone();
        let intent = tokio::task::spawn_blocking(move || next_intent(&store, force))
            .await
            .map_err(|e| Error::internal(format!("offline flush task failed: {e}")))??;
        let Some((intent, rows)) = intent else {
            return Ok(None);
        };
        let report = self.write(&intent, rows).await?;
        Ok(Some(report))
    }

    async fn write(
        &self,
        intent: &FlushIntent,
        rows: Vec<Staged>,
    ) -> std::result::Result<u64, FlushError> {
        let uploaded = self.upload(intent, rows).await?;
        self.complete(intent, uploaded).await
    }

    /// Encodes the flush's files and writes every one of them (steps 2 of the module doc).
    /// Step 2 of a flush: writes every file of `intent`. Public, with [`next_intent`], so that
    /// tests can stop a flush between its steps as a crash would.
    pub async fn upload(
        &self,
        intent: &FlushIntent,
        rows: Vec<Staged>,
    ) -> std::result::Result<Uploaded, FlushError> {
        let row_count = rows.len() as u64;
        let staged_bytes: u64 = rows.iter().map(|r| r.bytes).sum();
        let store = self.store.clone();
        let intent_copy = *intent;
        let (files, accepted_at) = tokio::task::spawn_blocking(move || {
            let accepted_at: Vec<EpochMillis> =
                rows.iter().map(|r| r.row.api_invocation_time_ms).collect();
            encode_files(&store, &intent_copy, &rows).map(|files| (files, accepted_at))
        })
        .await
        .map_err(|e| Error::internal(format!("offline encode task failed: {e}")))??;

        let file_count = files.len() as u64;
        let bytes: u64 = files.iter().map(|f| f.body.len() as u64).sum();
        let mut bases: Vec<String> = files.iter().map(|f| f.base_uri.clone()).collect();
        bases.sort();
        bases.dedup();
        futures::stream::iter(files.into_iter().map(|file| async move {
            let path = file.destination.path(&file.path);
            file.destination
                .store
                .put(&path, PutPayload::from(Bytes::from(file.body)))
                .await
                .map(|_| ())
                .map_err(|e| FlushError {
                    message: format!("writing {}/{}: {e}", file.base_uri, file.path),
                    base_uri: Some(file.base_uri),
                })
        }))
        .buffer_unordered(UPLOAD_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(Uploaded {
            row_count,
            staged_bytes,
            file_count,
            bytes,
            bases,
            accepted_at,
        })
    }

    /// Removes the written range from staging (step 3) and accounts for it.
    async fn complete(
        &self,
        intent: &FlushIntent,
        uploaded: Uploaded,
    ) -> std::result::Result<u64, FlushError> {
        let (row_count, file_count, bytes) =
            (uploaded.row_count, uploaded.file_count, uploaded.bytes);
        let staged_bytes = uploaded.staged_bytes;
        let store = self.store.clone();
        let intent_copy = *intent;
        tokio::task::spawn_blocking(move || -> Result<()> {
            let online = store.online();
            online
                .staging()
                .finish_flush(online.db(), &intent_copy, row_count, staged_bytes)?;
            store.registry().release_retired(intent_copy.end)
        })
        .await
        .map_err(|e| Error::internal(format!("offline flush task failed: {e}")))??;

        let now = SystemClock.now_ms();
        let freshness = metrics::histogram!(OFFLINE_FRESHNESS);
        for accepted in uploaded.accepted_at {
            freshness.record((now - accepted).max(0) as f64 / 1000.0);
        }
        metrics::counter!("quiver_offline_rows_written_total").increment(row_count);
        metrics::counter!("quiver_offline_files_written_total").increment(file_count);
        metrics::counter!("quiver_offline_bytes_written_total").increment(bytes);
        for base in &uploaded.bases {
            self.store.offline().set_blocked(base, None);
        }
        if !self.store.offline().is_blocked() {
            metrics::gauge!("quiver_offline_blocked").set(0.0);
        }
        tracing::debug!(
            rows = row_count,
            files = file_count,
            bytes,
            start = intent.start,
            end = intent.end,
            "offline flush written"
        );
        Ok(row_count)
    }

    /// Writes the catalog files (and registers with Glue) of every group whose definition
    /// changed since it was last catalogued. `Err` when any failed; they are retried later.
    async fn sync_catalogs(&mut self) -> std::result::Result<(), ()> {
        let mut failed = false;
        let groups = self.store.registry().all();
        for group in groups.iter().filter(|g| g.has_offline_store()) {
            if self.catalogued.get(&group.id) == Some(&group.last_modified_time_ms) {
                continue;
            }
            match self.catalog(group).await {
                Ok(()) => {
                    self.catalogued
                        .insert(group.id, group.last_modified_time_ms);
                }
                Err(message) => {
                    failed = true;
                    tracing::warn!(group = %group.name, error = %message, "offline catalog update failed; retrying later");
                }
            }
        }
        self.catalogued
            .retain(|id, _| groups.iter().any(|g| g.id == *id));
        if failed { Err(()) } else { Ok(()) }
    }

    async fn catalog(&self, group: &FeatureGroup) -> std::result::Result<(), String> {
        let offline = self.store.offline();
        let table = offline.catalog_table(group);
        let (destination, dir) = offline
            .destination(group)
            .map_err(|e| e.message().to_string())?;
        let glue_json = serde_json::to_vec_pretty(&table.glue_create_table_input())
            .expect("JSON values always serialise");
        for (name, body) in [
            (CATALOG_GLUE_FILE, glue_json),
            (CATALOG_ATHENA_FILE, table.athena_ddl().into_bytes()),
        ] {
            let path = destination.path(&format!("{dir}/catalog/{name}"));
            destination
                .store
                .put(&path, PutPayload::from(Bytes::from(body)))
                .await
                .map_err(|e| format!("writing {path}: {e}"))?;
        }
        let register = group
            .offline
            .as_ref()
            .is_some_and(|o| !o.disable_glue_table_creation);
        if let (Some(glue), true) = (&self.glue, register) {
            glue.register(&table).await?;
            tracing::info!(group = %group.name, database = %table.database, table = %table.table, "Glue table registered");
        }
        Ok(())
    }
}

/// The catalog files written beside each group's `data/` directory.
pub const CATALOG_GLUE_FILE: &str = "glue-create-table.json";
pub const CATALOG_ATHENA_FILE: &str = "athena-create-table.sql";

/// The flush to do now: a pending intent (redone exactly), or a new one when due.
/// Step 1 of a flush: the next range of staged rows to write, recorded as the flush intent.
pub fn next_intent(
    store: &FlushSources,
    force: bool,
) -> Result<Option<(FlushIntent, Vec<Staged>)>> {
    let online = store.online();
    let (db, staging) = (online.db(), online.staging());
    if let Some(intent) = staging.intent(db)? {
        let (rows, _) = staging.read(db, intent.start, intent.end, u64::MAX)?;
        tracing::info!(
            start = intent.start,
            end = intent.end,
            rows = rows.len(),
            "redoing an interrupted offline flush"
        );
        return Ok(Some((intent, rows)));
    }
    let watermark = staging.watermark();
    let Some((start, oldest_accepted)) = staging.oldest(db, watermark)? else {
        metrics::gauge!("quiver_offline_oldest_staged_age_seconds").set(0.0);
        // Nothing below the watermark waits: deleted groups staged before it can be forgotten.
        store.registry().release_retired(watermark)?;
        return Ok(None);
    };
    let config = store.offline().config();
    let now = SystemClock.now_ms();
    let waited = now - oldest_accepted;
    metrics::gauge!("quiver_offline_oldest_staged_age_seconds").set(waited.max(0) as f64 / 1000.0);
    let due = force
        || staging.pending_bytes() >= config.max_file_bytes
        || waited >= config.flush_interval_ms as i64;
    if !due {
        return Ok(None);
    }
    let (rows, end) = staging.read(db, start, watermark, config.max_file_bytes)?;
    let intent = FlushIntent {
        start,
        end,
        write_time_ms: now,
    };
    staging.begin_flush(db, &intent)?;
    Ok(Some((intent, rows)))
}

/// Splits the flush's rows by group, hour partition and size, and encodes each part. The order
/// of parts, and so every file's name, depends only on the rows: a redone flush names its files
/// as the first attempt did.
fn encode_files(
    store: &FlushSources,
    intent: &FlushIntent,
    rows: &[Staged],
) -> std::result::Result<Vec<PendingFile>, FlushError> {
    let mut parts: BTreeMap<(u64, String), Vec<&Staged>> = BTreeMap::new();
    for staged in rows {
        parts
            .entry((
                staged.row.group_id,
                layout::partition(staged.row.event_time_ms),
            ))
            .or_default()
            .push(staged);
    }
    let offline = store.offline();
    let max_bytes = offline.config().max_file_bytes;
    let mut files = Vec::new();
    let mut index = 0usize;
    let mut groups: HashMap<u64, Option<Arc<FeatureGroup>>> = HashMap::new();
    for ((group_id, partition), part) in parts {
        let group = groups
            .entry(group_id)
            .or_insert_with(|| store.registry().by_id(group_id))
            .clone();
        let Some(group) = group.filter(|g| g.has_offline_store()) else {
            // Only possible if a definition was lost; the rows cannot be typed.
            tracing::error!(
                group_id,
                rows = part.len(),
                "staged offline rows of an unknown feature group skipped"
            );
            metrics::counter!("quiver_offline_rows_skipped_total").increment(part.len() as u64);
            continue;
        };
        let (destination, dir) = offline.destination(&group)?;
        let base_uri = offline.base_uri(&group).to_string();
        let mut chunk: Vec<&StagedRow> = Vec::new();
        let mut chunk_bytes = 0u64;
        let data_keys = store.online().data_keys();
        let scope = data_keys.offline_scope(&group);
        let mut emit = |chunk: &mut Vec<&StagedRow>, index: &mut usize| -> Result<()> {
            // Each file has a key of its own, wrapped by the group's key.
            let encryption = scope
                .map(|scope| encryption::file_encryption(data_keys.provider().as_ref(), &scope))
                .transpose()?;
            let body = parquet::encode_file(&group, chunk, intent.write_time_ms, encryption)?;
            files.push(PendingFile {
                destination: destination.clone(),
                base_uri: base_uri.clone(),
                path: format!(
                    "{dir}/data/{partition}/{}",
                    layout::file_name(intent.write_time_ms, intent.start, *index)
                ),
                body,
            });
            *index += 1;
            chunk.clear();
            Ok(())
        };
        for staged in part {
            if !chunk.is_empty() && chunk_bytes + staged.bytes > max_bytes {
                emit(&mut chunk, &mut index)?;
                chunk_bytes = 0;
            }
            chunk.push(&staged.row);
            chunk_bytes += staged.bytes;
        }
        if !chunk.is_empty() {
            emit(&mut chunk, &mut index)?;
        }
    }
    Ok(files)
}
