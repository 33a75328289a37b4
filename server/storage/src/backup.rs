//! Backups of the whole database (online records, record headers, offline staging, the
//! registry, access keys and policies, data keys, lineage: every column family) with RocksDB's
//! BackupEngine, into a backup directory.
//!
//! A backup flushes the memtables and copies a consistent set of live files (with the WAL
//! files that keep column families consistent with each other), so it holds every write
//! acknowledged before it began, and no write half. Backups in one directory share their table
//! files: each copies only the files the one before did not have (incremental), and each file's
//! name holds the database session that wrote it and its size, so files never collide. Each
//! backup is verified after it is written (every file there, at its size); a restore checks
//! each file's checksum, recorded when it was copied, as it copies it back.
//!
//! Layout of a backup directory (RocksDB's): `meta/<id>` lists the backup's files, which are
//! under `shared_checksum/` (table files, shared) and `private/<id>/` (MANIFEST, WAL, OPTIONS).
//! [`files_of`] reads that list, so a copy of the directory elsewhere (S3, `quiver-core`'s
//! `backup`) can hold and bring back exactly what one backup needs.

use std::path::Path;

use rocksdb::backup::{BackupEngine, BackupEngineOptions, RestoreOptions};
use rocksdb::{DB, Env};

use quiver_types::error::{Error, Result};

/// One backup in a backup directory (also the summary kept beside a backup copied elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupInfo {
    pub id: u32,
    /// When it was taken, in seconds since the epoch.
    pub timestamp: i64,
    pub size_bytes: u64,
    pub files: u32,
}

/// A backup just taken, and how much of it had to be copied.
#[derive(Debug, Clone)]
pub struct Taken {
    pub info: BackupInfo,
    /// Table files copied (those not shared with earlier backups) and their bytes.
    pub copied_files: u64,
    pub copied_bytes: u64,
}

fn engine(dir: &Path) -> Result<BackupEngine> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::validation(format!(
            "backup directory {}: cannot create it: {e}",
            dir.display()
        ))
    })?;
    let mut options = BackupEngineOptions::new(dir).map_err(|e| backup_error(dir, e))?;
    options.set_sync(true);
    options.set_max_background_operations(2);
    let env = Env::new().map_err(|e| backup_error(dir, e))?;
    BackupEngine::open(&options, &env).map_err(|e| backup_error(dir, e))
}

fn backup_error(dir: &Path, e: impl std::fmt::Display) -> Error {
    Error::storage(&format!("using backup directory {}", dir.display()), e)
}

/// The table files under `dir/shared_checksum`, as (name, bytes).
fn shared_files(dir: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(dir.join("shared_checksum")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            Some((
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().ok()?.len(),
            ))
        })
        .collect()
}

/// Takes a backup of `db` into `dir`, verifies it, and keeps the newest `keep` backups there
/// (all when `keep` is 0).
pub fn create(db: &DB, dir: &Path, keep: usize) -> Result<Taken> {
    let before: std::collections::HashSet<String> = shared_files(dir)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let mut engine = engine(dir)?;
    engine
        .create_new_backup_flush(db, true)
        .map_err(|e| backup_error(dir, e))?;
    let info = list_of(&engine)
        .into_iter()
        .max_by_key(|b| b.id)
        .ok_or_else(|| Error::internal("a backup was taken but is not listed"))?;
    engine
        .verify_backup(info.id)
        .map_err(|e| backup_error(dir, format!("backup {} does not verify: {e}", info.id)))?;
    if keep > 0 {
        engine
            .purge_old_backups(keep)
            .map_err(|e| backup_error(dir, e))?;
    }
    let (copied_files, copied_bytes) = shared_files(dir)
        .into_iter()
        .filter(|(name, _)| !before.contains(name))
        .fold((0, 0), |(n, bytes), (_, size)| (n + 1, bytes + size));
    Ok(Taken {
        info,
        copied_files,
        copied_bytes,
    })
}

fn list_of(engine: &BackupEngine) -> Vec<BackupInfo> {
    let mut backups: Vec<BackupInfo> = engine
        .get_backup_info()
        .into_iter()
        .map(|b| BackupInfo {
            id: b.backup_id,
            timestamp: b.timestamp,
            size_bytes: b.size,
            files: b.num_files,
        })
        .collect();
    backups.sort_by_key(|b| b.id);
    backups
}

/// The backups in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<BackupInfo>> {
    if !dir.join("meta").is_dir() {
        return Err(Error::not_found(format!(
            "{} holds no backups (no meta directory)",
            dir.display()
        )));
    }
    Ok(list_of(&engine(dir)?))
}

/// Restores backup `id` (the newest when `None`) from `dir` into `data_dir`, which must not
/// hold a database: restoring never overwrites one. Verifies the backup first.
pub fn restore(dir: &Path, id: Option<u32>, data_dir: &Path) -> Result<BackupInfo> {
    let occupied = std::fs::read_dir(data_dir)
        .map(|mut entries| entries.any(|e| e.is_ok_and(|e| e.file_name() == "CURRENT")))
        .unwrap_or(false);
    if occupied {
        return Err(Error::validation(format!(
            "data dir {} already holds a database: restore into an empty or new directory",
            data_dir.display()
        )));
    }
    let mut engine = engine(dir)?;
    let backups = list_of(&engine);
    let info = match id {
        Some(id) => backups
            .iter()
            .find(|b| b.id == id)
            .cloned()
            .ok_or_else(|| {
                let ids: Vec<String> = backups.iter().map(|b| b.id.to_string()).collect();
                Error::not_found(format!(
                    "backup {id} is not in {} (it holds: {})",
                    dir.display(),
                    if ids.is_empty() {
                        "none".to_string()
                    } else {
                        ids.join(", ")
                    }
                ))
            })?,
        None => backups
            .last()
            .cloned()
            .ok_or_else(|| Error::not_found(format!("{} holds no backups", dir.display())))?,
    };
    engine
        .verify_backup(info.id)
        .map_err(|e| backup_error(dir, format!("backup {} does not verify: {e}", info.id)))?;
    std::fs::create_dir_all(data_dir).map_err(|e| {
        Error::validation(format!(
            "data dir {}: cannot create it: {e}",
            data_dir.display()
        ))
    })?;
    engine
        .restore_from_backup(data_dir, data_dir, &RestoreOptions::default(), info.id)
        .map_err(|e| backup_error(dir, e))?;
    Ok(info)
}

/// The files backup `id` in `dir` consists of, relative to `dir` (from `meta/<id>`), its meta
/// file not included.
pub fn files_of(dir: &Path, id: u32) -> Result<Vec<String>> {
    let meta = dir.join("meta").join(id.to_string());
    let text = std::fs::read_to_string(&meta)
        .map_err(|e| Error::not_found(format!("{}: {e}", meta.display())))?;
    Ok(files_in_meta(&text))
}

/// The file paths a backup's meta file lists: the first word of each line that names a file
/// under `shared/`, `shared_checksum/` or `private/`.
pub fn files_in_meta(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| {
            ["shared/", "shared_checksum/", "private/"]
                .iter()
                .any(|dir| word.starts_with(dir))
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{CF_RECORDS, StorageOptions, cf};

    fn open(dir: &Path) -> std::sync::Arc<DB> {
        crate::db::open(
            dir,
            &StorageOptions {
                block_cache_bytes: 1 << 20,
            },
        )
        .unwrap()
    }

    #[test]
    fn backups_are_incremental_and_restore_what_was_written_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir.path().join("db"));
        let backups = dir.path().join("backups");
        let records = cf(&db, CF_RECORDS);
        for i in 0..1000u32 {
            db.put_cf(records, i.to_be_bytes(), vec![7u8; 100]).unwrap();
        }
        let first = create(&db, &backups, 0).unwrap();
        assert_eq!(first.info.id, 1);
        assert!(first.copied_files >= 1);
        // After the backup: an overwrite, a delete and a new key, none of which it holds.
        db.put_cf(records, 1u32.to_be_bytes(), b"later").unwrap();
        db.delete_cf(records, 2u32.to_be_bytes()).unwrap();
        db.put_cf(records, 5000u32.to_be_bytes(), b"new").unwrap();
        let second = create(&db, &backups, 0).unwrap();
        assert_eq!(second.info.id, 2);
        assert!(
            second.copied_bytes < first.copied_bytes,
            "only the new table file is copied: {second:?} after {first:?}"
        );
        let ids: Vec<u32> = list(&backups).unwrap().iter().map(|b| b.id).collect();
        assert_eq!(ids, vec![1, 2]);
        let listed = files_of(&backups, 1).unwrap();
        assert!(
            listed.iter().any(|f| f.starts_with("shared_checksum/")),
            "{listed:?}"
        );
        assert!(
            listed.iter().all(|f| backups.join(f).is_file()),
            "{listed:?}"
        );

        let restored = dir.path().join("restored");
        assert_eq!(restore(&backups, Some(1), &restored).unwrap().id, 1);
        let db1 = open(&restored);
        let records1 = cf(&db1, CF_RECORDS);
        assert_eq!(
            db1.get_cf(records1, 1u32.to_be_bytes()).unwrap(),
            Some(vec![7u8; 100])
        );
        assert!(db1.get_cf(records1, 2u32.to_be_bytes()).unwrap().is_some());
        assert!(
            db1.get_cf(records1, 5000u32.to_be_bytes())
                .unwrap()
                .is_none()
        );
        drop(db1);
        // Never over a database; an unknown backup is named.
        let err = restore(&backups, None, &restored).unwrap_err();
        assert!(err.message().contains("already holds a database"), "{err}");
        let err = restore(&backups, Some(9), &dir.path().join("other")).unwrap_err();
        assert!(err.message().contains("backup 9 is not in"), "{err}");

        let latest = dir.path().join("latest");
        assert_eq!(restore(&backups, None, &latest).unwrap().id, 2);
        let db2 = open(&latest);
        let records2 = cf(&db2, CF_RECORDS);
        assert_eq!(
            db2.get_cf(records2, 1u32.to_be_bytes()).unwrap(),
            Some(b"later".to_vec())
        );
        assert!(db2.get_cf(records2, 2u32.to_be_bytes()).unwrap().is_none());
        assert!(
            db2.get_cf(records2, 5000u32.to_be_bytes())
                .unwrap()
                .is_some()
        );
    }
}
