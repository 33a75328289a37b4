//! Online-store backups (`quiver admin backup`) to a directory on the server or to S3, and
//! restores from them (`quiver-server restore`, which `quiver admin restore` runs).
//!
//! A backup is of the whole database ([`quiver_storage::backup`]): online records, offline rows
//! not yet flushed, the registry, principals and policies, wrapped data keys and lineage. It
//! holds every write acknowledged before it began. Backups to one destination are incremental.
//!
//! - A directory (`/abs/path` or `file:///abs/path`, on the server's machine) is RocksDB's
//!   backup directory itself: every backup is kept there.
//! - `s3://bucket/prefix` holds the same layout. The backup is taken into a local backup
//!   directory first (`<data dir>/backup-staging/<bucket>/<prefix>`, which keeps only the newest
//!   backup, so each next one copies only new table files), then its files are uploaded: table
//!   files only when the bucket does not have them yet (their names are unique), then
//!   `meta/<id>` and a `quiver-backups/<id>.json` summary, last, so a backup listed there is
//!   whole.
//!
//! Master key files of local keys (`<data dir>/keys/`) are not in backups: they are backed up
//! apart from the data they unlock (docs/operations.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use quiver_offline::stores::Destination;
use quiver_storage::backup::{self, BackupInfo};
use quiver_types::error::{Error, Result};

use crate::FeatureStore;

/// One backup at a time per server.
static RUNNING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where backups go or come from.
#[derive(Debug)]
enum Location {
    Dir(PathBuf),
    S3(String),
}

fn location(uri: &str, field: &str) -> Result<Location> {
    if uri.starts_with("s3://") {
        return Ok(Location::S3(uri.trim_end_matches('/').to_string()));
    }
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    if path.is_empty() {
        return Err(Error::validation(format!(
            "{field} is required: a directory on the server (/abs/path) or s3://bucket/prefix"
        )));
    }
    if !Path::new(path).is_absolute() {
        return Err(Error::validation(format!(
            "{field} {path:?} is not absolute: give a directory on the server (/abs/path or \
             file:///abs/path) or s3://bucket/prefix"
        )));
    }
    Ok(Location::Dir(PathBuf::from(path)))
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct Report {
    pub backup: BackupInfo,
    /// Table files copied into the (local) backup directory, not shared with an earlier backup.
    pub copied_files: u64,
    pub copied_bytes: u64,
    /// Files uploaded to S3 (0 for a directory).
    pub uploaded_files: u64,
    pub uploaded_bytes: u64,
}

impl FeatureStore {
    /// Takes a backup into `to` (see the module documentation).
    pub async fn backup(self: &Arc<Self>, to: &str) -> Result<Report> {
        let location = location(to, "destination")?;
        let _one_at_a_time = RUNNING.try_lock().map_err(|_| {
            Error::conflict("a backup is already running on this server; try again when it ends")
        })?;
        let store = self.clone();
        match location {
            Location::Dir(dir) => {
                let taken =
                    tokio::task::spawn_blocking(move || backup::create(store.online.db(), &dir, 0))
                        .await
                        .map_err(|e| Error::internal(format!("backup task failed: {e}")))??;
                Ok(Report {
                    backup: taken.info,
                    copied_files: taken.copied_files,
                    copied_bytes: taken.copied_bytes,
                    uploaded_files: 0,
                    uploaded_bytes: 0,
                })
            }
            Location::S3(uri) => {
                let destination = self.offline.object_store(&uri)?;
                let staging = staging_dir(self.online.db().path(), &uri);
                let local = staging.clone();
                let taken = tokio::task::spawn_blocking(move || {
                    backup::create(store.online.db(), &local, 1)
                })
                .await
                .map_err(|e| Error::internal(format!("backup task failed: {e}")))??;
                let (uploaded_files, uploaded_bytes) =
                    upload(&staging, &taken.info, &destination).await?;
                Ok(Report {
                    backup: taken.info,
                    copied_files: taken.copied_files,
                    copied_bytes: taken.copied_bytes,
                    uploaded_files,
                    uploaded_bytes,
                })
            }
        }
    }
}

/// The local backup directory that S3 backups to `uri` are taken into.
fn staging_dir(data_dir: &Path, uri: &str) -> PathBuf {
    let mut dir = data_dir.join("backup-staging");
    for part in uri.trim_start_matches("s3://").split('/') {
        if !part.is_empty() && part != "." && part != ".." {
            dir.push(part);
        }
    }
    dir
}

fn s3_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::unavailable(format!("backup storage: {what}: {e}"))
}

/// Uploads backup `info` from the local backup directory `dir`: its files the destination does
/// not have, then its meta file and summary. Returns (files, bytes) uploaded.
async fn upload(dir: &Path, info: &BackupInfo, to: &Destination) -> Result<(u64, u64)> {
    let mut files = backup::files_of(dir, info.id)?;
    files.push(format!("meta/{}", info.id));
    let (mut uploaded, mut bytes) = (0u64, 0u64);
    for file in &files {
        let path = to.path(file);
        // Table files are named uniquely and never change: one already there is this one.
        let shared = file.starts_with("shared");
        if shared && to.store.head(&path).await.is_ok() {
            continue;
        }
        let body = tokio::fs::read(dir.join(file))
            .await
            .map_err(|e| Error::internal(format!("reading {}: {e}", dir.join(file).display())))?;
        bytes += body.len() as u64;
        to.store
            .put(&path, PutPayload::from(Bytes::from(body)))
            .await
            .map_err(|e| s3_error(&format!("uploading {path}"), e))?;
        uploaded += 1;
    }
    let summary = serde_json::to_vec(info).map_err(|e| Error::internal(e.to_string()))?;
    to.store
        .put(
            &summary_path(to, info.id),
            PutPayload::from(Bytes::from(summary)),
        )
        .await
        .map_err(|e| s3_error("uploading the backup's summary", e))?;
    Ok((uploaded + 1, bytes))
}

fn summary_path(to: &Destination, id: u32) -> object_store::path::Path {
    to.path(&format!("quiver-backups/{id}.json"))
}

/// Resolves an `s3://` URI to its store and prefix (the offline store's S3 settings).
pub type Resolve<'a> = &'a (dyn Fn(&str) -> Result<Destination> + Sync);

/// The backups at `from`, oldest first.
pub async fn list(from: &str, resolve: Resolve<'_>) -> Result<Vec<BackupInfo>> {
    match location(from, "source")? {
        Location::Dir(dir) => Ok(tokio::task::spawn_blocking(move || backup::list(&dir))
            .await
            .map_err(|e| Error::internal(e.to_string()))??),
        Location::S3(uri) => {
            let at = resolve(&uri)?;
            let prefix = at.path("quiver-backups");
            let objects: Vec<_> = at
                .store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|e| s3_error(&format!("listing {uri}"), e))?;
            let mut backups = Vec::new();
            for object in objects {
                let body = get(at.store.as_ref(), &object.location).await?;
                backups.push(serde_json::from_slice::<BackupInfo>(&body).map_err(|e| {
                    Error::internal(format!("{}: not a backup summary: {e}", object.location))
                })?);
            }
            backups.sort_by_key(|b| b.id);
            Ok(backups)
        }
    }
}

async fn get(store: &dyn ObjectStore, path: &object_store::path::Path) -> Result<Bytes> {
    store
        .get(path)
        .await
        .map_err(|e| s3_error(&format!("reading {path}"), e))?
        .bytes()
        .await
        .map_err(|e| s3_error(&format!("reading {path}"), e))
}

/// Restores backup `id` (the newest when `None`) from `from` into `data_dir`, which must not
/// hold a database. From S3, the backup's files are downloaded into a directory beside
/// `data_dir` first, and removed after.
pub async fn restore(
    from: &str,
    id: Option<u32>,
    data_dir: &Path,
    resolve: Resolve<'_>,
) -> Result<BackupInfo> {
    let data_dir = data_dir.to_path_buf();
    match location(from, "source")? {
        Location::Dir(dir) => {
            tokio::task::spawn_blocking(move || backup::restore(&dir, id, &data_dir))
                .await
                .map_err(|e| Error::internal(e.to_string()))?
        }
        Location::S3(uri) => {
            let backups = list(&uri, resolve).await?;
            let chosen = match id {
                Some(id) => backups.iter().find(|b| b.id == id),
                None => backups.last(),
            }
            .cloned()
            .ok_or_else(|| {
                let ids: Vec<String> = backups.iter().map(|b| b.id.to_string()).collect();
                Error::not_found(format!(
                    "{} is not in {uri} (it holds: {})",
                    id.map_or("a backup".to_string(), |id| format!("backup {id}")),
                    if ids.is_empty() {
                        "none".to_string()
                    } else {
                        ids.join(", ")
                    }
                ))
            })?;
            let at = resolve(&uri)?;
            let name = data_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "data".into());
            let download =
                data_dir.with_file_name(format!(".{name}.restore-{}", std::process::id()));
            let result = async {
                let meta = format!("meta/{}", chosen.id);
                let body = get(at.store.as_ref(), &at.path(&meta)).await?;
                let text = String::from_utf8_lossy(&body).into_owned();
                write(&download.join(&meta), &body).await?;
                for file in backup::files_in_meta(&text) {
                    let body = get(at.store.as_ref(), &at.path(&file)).await?;
                    write(&download.join(&file), &body).await?;
                }
                let (dir, target, id) = (download.clone(), data_dir.clone(), chosen.id);
                tokio::task::spawn_blocking(move || backup::restore(&dir, Some(id), &target))
                    .await
                    .map_err(|e| Error::internal(e.to_string()))?
            }
            .await;
            let _ = tokio::fs::remove_dir_all(&download).await;
            result
        }
    }
}

async fn write(path: &Path, body: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| Error::internal(format!("creating {}: {e}", parent.display())))?;
    }
    tokio::fs::write(path, body)
        .await
        .map_err(|e| Error::internal(format!("writing {}: {e}", path.display())))
}
