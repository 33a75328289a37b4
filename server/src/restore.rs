//! `quiver-server restore`: brings a backup (`quiver admin backup`) back into a new data dir,
//! with no server running on it. `quiver admin restore` runs this.

use std::path::PathBuf;

use clap::Parser;

use quiver_offline::stores::ObjectStores;

/// Restore a backup into a new data dir (the server must not be running on it).
#[derive(Debug, Parser)]
#[command(name = "quiver-server restore")]
pub struct RestoreArgs {
    /// Where the backup is: an absolute directory (/path or file:///path) or s3://bucket/prefix.
    #[arg(long)]
    from: String,
    /// The data dir to restore into: new or empty, never one holding a database.
    #[arg(long)]
    data_dir: PathBuf,
    /// The backup to restore (the newest when not given).
    #[arg(long)]
    backup_id: Option<u32>,
    /// S3-compatible endpoint for an s3:// source (as the server's --s3-endpoint).
    #[arg(long, env = "QUIVER_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// AWS region of an s3:// source.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
}

/// Runs `quiver-server restore ARGS` (`args` starts with the program name and `restore`).
pub async fn run(args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let args = RestoreArgs::parse_from(args.enumerate().filter(|(i, _)| *i != 1).map(|(_, a)| a));
    let stores = ObjectStores::new(args.s3_endpoint.clone(), args.region.clone());
    let resolve = |uri: &str| stores.resolve(uri);
    let restored =
        quiver_core::backup::restore(&args.from, args.backup_id, &args.data_dir, &resolve)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    println!(
        "{}",
        serde_json::json!({
            "restored": restored.id,
            "timestamp_unix_s": restored.timestamp,
            "size_bytes": restored.size_bytes,
            "files": restored.files,
            "data_dir": args.data_dir,
        })
    );
    eprintln!(
        "restored backup {} into {}; start quiver-server with --data-dir {} (and the same \
         key files under keys/ for encrypted groups)",
        restored.id,
        args.data_dir.display(),
        args.data_dir.display()
    );
    Ok(())
}
