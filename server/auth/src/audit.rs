//! The audit log: one JSON line per denied request (unauthenticated or not allowed) and per
//! administrative change, in `<data dir>/audit.log`. Administrative changes are synced to disk
//! before they are answered; denials are written at once and synced with the next change or
//! within a second.

use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::Serialize;

use quiver_types::error::{Error, Result};

pub const AUDIT_FILE: &str = "audit.log";

#[derive(Debug, Clone, Serialize)]
pub struct Entry<'a> {
    /// RFC 3339, UTC.
    pub time: String,
    /// The principal, or the access key id offered when authentication failed, or none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<&'a str>,
    pub action: &'a str,
    pub resource: &'a str,
    /// `allowed` (administrative changes), `explicitDeny`, `implicitDeny` or
    /// `unauthenticated`.
    pub decision: &'a str,
    /// The deciding statement (`policy Statement[i] (Sid ...)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// What was wrong (denials) or what changed (administration).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub detail: &'a str,
}

pub struct AuditLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl AuditLog {
    pub fn open(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join(AUDIT_FILE);
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(|e| {
            Error::internal(format!("cannot open audit log {}: {e}", path.display()))
        })?;
        Ok(Self {
            path,
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entry`; with `sync`, durably.
    pub fn write(&self, entry: &Entry, sync: bool) -> Result<()> {
        let mut line = serde_json::to_vec(entry)
            .map_err(|e| Error::internal(format!("encoding an audit entry: {e}")))?;
        line.push(b'\n');
        let mut file = self.file.lock();
        let written = file
            .write_all(&line)
            .and_then(|()| if sync { file.sync_data() } else { Ok(()) });
        written.map_err(|e| {
            tracing::error!(error = %e, path = %self.path.display(), "cannot write the audit log");
            Error::internal(format!("cannot write the audit log: {e}"))
        })
    }

    /// Syncs what was written (called periodically).
    pub fn sync(&self) {
        if let Err(e) = self.file.lock().sync_data() {
            tracing::error!(error = %e, path = %self.path.display(), "cannot sync the audit log");
        }
    }
}

/// An audit entry's time: `ms` since the epoch as RFC 3339 with milliseconds.
pub fn rfc3339_millis(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
