//! `quiver admin ...`: operating the server. `backup` has the server take a backup of its whole
//! store into a directory on its machine or S3 (incremental), `backups` lists them, and
//! `restore` brings one back into a new data dir, with no server running on it, by running
//! `quiver-server restore` (the binary beside this one, else the one on PATH), which holds the
//! storage engine this tool does not.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use quiver_client::{Client, pb};
use serde_json::json;

use super::output::{Output, format_iso8601_millis, print_json, print_table};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Take a backup of the server's store (online records, offline rows not yet flushed, the
    /// registry, principals, policies, wrapped data keys, lineage) into DESTINATION: an
    /// absolute directory on the server's machine, or s3://bucket/prefix. Incremental: only
    /// table files the destination lacks are copied.
    Backup { destination: String },
    /// List the backups in SOURCE (as `backup`'s DESTINATION).
    Backups { source: String },
    /// Restore a backup into a new data dir; run it where the data dir is, with no server on
    /// it, then start quiver-server with --data-dir DATA_DIR.
    Restore {
        /// Where the backup is: an absolute directory or s3://bucket/prefix.
        #[arg(long)]
        from: String,
        /// A new or empty directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// The backup to restore (the newest when not given).
        #[arg(long)]
        backup_id: Option<u32>,
        /// S3-compatible endpoint for an s3:// source.
        #[arg(long)]
        s3_endpoint: Option<String>,
    },
}

fn summary_row(b: &pb::BackupSummary) -> Vec<String> {
    vec![
        b.id.to_string(),
        format_iso8601_millis(b.timestamp_unix_s * 1000),
        b.size_bytes.to_string(),
        b.files.to_string(),
    ]
}

fn summary_json(b: &pb::BackupSummary) -> serde_json::Value {
    json!({
        "id": b.id,
        "timestamp_unix_s": b.timestamp_unix_s,
        "size_bytes": b.size_bytes,
        "files": b.files,
    })
}

pub async fn run(client: &Client, out: Output, command: AdminCommand) -> Result<()> {
    match command {
        AdminCommand::Backup { destination } => {
            let taken = client
                .admin()
                .backup(pb::BackupRequest { destination })
                .await
                .context("backup")?
                .into_inner();
            let backup = taken.backup.unwrap_or_default();
            match out {
                Output::Json => print_json(&json!({
                    "backup": summary_json(&backup),
                    "copied_files": taken.copied_files,
                    "copied_bytes": taken.copied_bytes,
                    "uploaded_files": taken.uploaded_files,
                    "uploaded_bytes": taken.uploaded_bytes,
                })),
                Output::Table => println!(
                    "backup {}: {} bytes in {} files; {} table files ({} bytes) copied, {} files \
                     ({} bytes) uploaded",
                    backup.id,
                    backup.size_bytes,
                    backup.files,
                    taken.copied_files,
                    taken.copied_bytes,
                    taken.uploaded_files,
                    taken.uploaded_bytes
                ),
            }
        }
        AdminCommand::Backups { source } => {
            let listed = client
                .admin()
                .list_backups(pb::ListBackupsRequest { source })
                .await
                .context("listing backups")?
                .into_inner();
            match out {
                Output::Json => print_json(&json!({
                    "backups": listed.backups.iter().map(summary_json).collect::<Vec<_>>(),
                })),
                Output::Table => print_table(
                    &["ID", "TAKEN", "BYTES", "FILES"],
                    &listed.backups.iter().map(summary_row).collect::<Vec<_>>(),
                ),
            }
        }
        AdminCommand::Restore { .. } => bail!("restore runs without a server: see restore()"),
    }
    Ok(())
}

/// `quiver admin restore`: runs `quiver-server restore` with the same arguments.
pub fn restore(command: AdminCommand) -> Result<ExitCode> {
    let AdminCommand::Restore {
        from,
        data_dir,
        backup_id,
        s3_endpoint,
    } = command
    else {
        bail!("not a restore");
    };
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("quiver-server")))
        .filter(|path| path.is_file());
    let server = beside.unwrap_or_else(|| PathBuf::from("quiver-server"));
    let mut restore = std::process::Command::new(&server);
    restore
        .arg("restore")
        .arg("--from")
        .arg(&from)
        .arg("--data-dir")
        .arg(&data_dir);
    if let Some(id) = backup_id {
        restore.arg("--backup-id").arg(id.to_string());
    }
    if let Some(endpoint) = s3_endpoint {
        restore.arg("--s3-endpoint").arg(endpoint);
    }
    let status = restore.status().with_context(|| {
        format!(
            "running {} restore (quiver-server is needed beside quiver or on PATH)",
            server.display()
        )
    })?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}
