//! `quiver ingest`: parallel batched writes of a CSV or Parquet file. Each batch is one atomic
//! PutRecords; when the server rejects a batch because of a bad record, that batch is retried
//! record by record so one bad row never stops the others. Every rejected row is reported with
//! its reason. A failure of the server's (unavailable, disk full, internal) is not a bad row:
//! the ingest stops at the first and says how many rows were written, rejected and not sent. And `quiver ingest status`: a stream source's progress ([`source_status`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use quiver_client::{Client, ClientError, pb};

use super::output::{Output, print_json};
use super::rows::read_table;
use super::values;

/// `quiver ingest GROUP FILE`, or `quiver ingest status --source NAME`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct IngestArgs {
    #[command(subcommand)]
    command: Option<IngestCommand>,
    #[arg(required = true)]
    group: Option<String>,
    #[arg(required = true)]
    file: Option<PathBuf>,
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Do not draw a progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, Subcommand)]
pub enum IngestCommand {
    /// A stream source's stored positions per partition (from the server) and, with --worker,
    /// the worker's lag, rate and dead-letter counts (from its /metrics).
    Status {
        /// The source's name, as its quiver-ingest configuration gives it.
        #[arg(long)]
        source: String,
        /// The worker's metrics address (its `metrics_addr`), e.g. http://127.0.0.1:7950.
        #[arg(long)]
        worker: Option<String>,
    },
}

/// Runs the command; exit code 2 when some rows were rejected, 1 when the server failed.
pub async fn run(client: &Client, out: Output, args: IngestArgs) -> Result<ExitCode> {
    if let Some(IngestCommand::Status { source, worker }) = args.command {
        let status = source_status(client, &source, worker.as_deref()).await?;
        match out {
            Output::Json => print_json(&serde_json::to_value(&status)?),
            Output::Table => status.print(),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(group), Some(file)) = (args.group, args.file) else {
        bail!("quiver ingest needs GROUP and FILE (or: quiver ingest status --source NAME)");
    };
    let options = IngestOptions {
        batch_size: args.batch_size,
        concurrency: args.concurrency,
        progress: !args.no_progress,
    };
    let summary = ingest(client, &group, &file, options).await?;
    if let Err(e) = record_lineage(client, &group, &file, &summary).await {
        eprintln!("warning: the ingest was not recorded in the lineage graph: {e:#}");
    }
    match out {
        Output::Json => print_json(&serde_json::to_value(&summary)?),
        Output::Table => {
            println!(
                "{} rows: {} written, {} rejected in {:.2}s ({:.0} rows/s)",
                summary.rows,
                summary.written,
                summary.rejected.len(),
                summary.elapsed.as_secs_f64(),
                summary.rows_per_second()
            );
            for r in &summary.rejected {
                println!("row {}: {}", r.row, r.reason);
            }
        }
    }
    if let Some(failure) = &summary.server_failure {
        eprintln!(
            "error: the server failed, so the ingest stopped: {failure}\n\
             {} rows were not written (the batches in flight may have been); \
             run the ingest again once the server is back: a record written again with the same \
             event time leaves the online store as it was",
            summary.not_written
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(if summary.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Records the ingest in the server's lineage graph (docs/lineage.md): an action of type
/// `BatchIngest` (the file as its SourceUri, the row counts as properties) that ContributedTo
/// the group's context. Nothing is recorded by a server without the lineage service.
async fn record_lineage(
    client: &Client,
    group: &str,
    file: &Path,
    summary: &IngestSummary,
) -> Result<()> {
    let described = client
        .describe_feature_group(pb::DescribeFeatureGroupRequest {
            feature_group_name: group.to_string(),
        })
        .await?;
    let mut lineage = client.lineage();
    let contexts = match lineage
        .list_entities(pb::ListLineageEntitiesRequest {
            kind: pb::LineageEntityKind::Context.into(),
            source_uri: Some(described.feature_group_arn.clone()),
            entity_type: Some("FeatureGroup".into()),
            ..Default::default()
        })
        .await
    {
        Ok(response) => response.into_inner().entities,
        Err(status) if status.code() == tonic::Code::Unimplemented => return Ok(()),
        Err(status) => return Err(status.into()),
    };
    let Some(context) = contexts.first() else {
        return Ok(());
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let name = format!(
        "ingest-{}-{now_ms}",
        described.feature_group_name.replace('_', "-")
    );
    let path = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let properties = [
        ("FeatureGroupName", described.feature_group_name.clone()),
        ("rows", summary.rows.to_string()),
        ("written", summary.written.to_string()),
        ("rejected", summary.rejected.len().to_string()),
        ("elapsed_ms", summary.elapsed.as_millis().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let action = lineage
        .create_entity(pb::CreateLineageEntityRequest {
            kind: pb::LineageEntityKind::Action.into(),
            name: Some(name),
            source: Some(pb::LineageSource {
                source_uri: format!("file://{}", path.display()),
                ..Default::default()
            }),
            entity_type: "BatchIngest".into(),
            status: Some("Completed".into()),
            properties,
            ..Default::default()
        })
        .await?
        .into_inner();
    lineage
        .add_association(pb::LineageAssociationRequest {
            source_arn: action.arn,
            destination_arn: context.arn.clone(),
            association_type: Some("ContributedTo".into()),
        })
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    pub batch_size: usize,
    pub concurrency: usize,
    pub progress: bool,
}

/// A row that was not written, numbered from 1 (the first data row).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejected {
    pub row: usize,
    pub reason: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestSummary {
    pub rows: usize,
    pub written: usize,
    pub rejected: Vec<Rejected>,
    /// The server's failure that stopped the ingest, if one did.
    pub server_failure: Option<String>,
    /// Rows neither written nor rejected (after a server failure).
    pub not_written: usize,
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl IngestSummary {
    pub fn rows_per_second(&self) -> f64 {
        self.written as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

pub async fn ingest(
    client: &Client,
    group: &str,
    path: &Path,
    options: IngestOptions,
) -> Result<IngestSummary> {
    let started = Instant::now();
    let description = client
        .describe_feature_group(pb::DescribeFeatureGroupRequest {
            feature_group_name: group.to_string(),
        })
        .await?;
    let table = read_table(path)?;
    let rows = table.rows.len();
    let mut rejected = Vec::new();
    let mut records: Vec<(usize, Vec<pb::FeatureValue>)> = Vec::with_capacity(rows);
    for (index, row) in table.rows.into_iter().enumerate() {
        let number = index + 1;
        match row.and_then(|cells| {
            values::record(&description.feature_definitions, &table.columns, &cells)
        }) {
            Ok(record) => records.push((number, record)),
            Err(reason) => rejected.push(Rejected {
                row: number,
                reason,
            }),
        }
    }

    let bar = if options.progress {
        let bar = ProgressBar::new(rows as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.inc(rejected.len() as u64);
        bar
    } else {
        ProgressBar::hidden()
    };
    let batches: Vec<Vec<(usize, Vec<pb::FeatureValue>)>> = records
        .chunks(options.batch_size.max(1))
        .map(<[_]>::to_vec)
        .collect();
    let mut results = futures::stream::iter(batches)
        .map(|batch| write_batch(client, group, batch))
        .buffer_unordered(options.concurrency.max(1));
    let mut written = 0;
    let mut server_failure = None;
    while let Some(result) = results.next().await {
        match result {
            Ok((ok, failed)) => {
                written += ok;
                bar.inc((ok + failed.len()) as u64);
                rejected.extend(failed);
            }
            Err(failure) => {
                // No more batches are sent; those in flight are dropped with the stream.
                server_failure = Some(failure);
                break;
            }
        }
    }
    drop(results);
    bar.finish_and_clear();
    rejected.sort_by_key(|r| r.row);
    Ok(IngestSummary {
        rows,
        written,
        not_written: rows - written - rejected.len(),
        rejected,
        server_failure,
        elapsed: started.elapsed(),
    })
}

/// Writes one batch; returns how many rows were written and which were rejected, or the
/// server's failure.
async fn write_batch(
    client: &Client,
    group: &str,
    batch: Vec<(usize, Vec<pb::FeatureValue>)>,
) -> Result<(usize, Vec<Rejected>), String> {
    let request = |record: Vec<pb::FeatureValue>| pb::PutRecordRequest {
        feature_group_name: group.to_string(),
        record,
        ..Default::default()
    };
    let all = pb::PutRecordsRequest {
        records: batch.iter().map(|(_, r)| request(r.clone())).collect(),
    };
    match client.put_records(all).await {
        Ok(_) => Ok((batch.len(), Vec::new())),
        Err(e) if is_record_error(&e) => {
            // Some record in the batch is bad: find it (and any others) one by one.
            let mut ok = 0;
            let mut failed = Vec::new();
            for (row, record) in batch {
                match client.put_record(request(record)).await {
                    Ok(_) => ok += 1,
                    Err(e) if is_record_error(&e) => failed.push(Rejected {
                        row,
                        reason: reason(&e),
                    }),
                    Err(e) => return Err(reason(&e)),
                }
            }
            Ok((ok, failed))
        }
        Err(e) => Err(reason(&e)),
    }
}

/// Whether the server refused a record for what it holds (a bad value, a record too large),
/// rather than failing itself (unavailable, disk full, an internal error).
fn is_record_error(e: &ClientError) -> bool {
    match e.code() {
        Some(tonic::Code::InvalidArgument) => true,
        // RESOURCE_EXHAUSTED is a request too large, or the server's disk full (docs/api.md).
        Some(tonic::Code::ResourceExhausted) => !reason(e).starts_with(DISK_FULL),
        _ => false,
    }
}

/// How the server's message for a full disk starts (quiver_types::error::DISK_FULL).
const DISK_FULL: &str = "disk full";

fn reason(e: &ClientError) -> String {
    match e.status() {
        Some(status) => status.message().to_string(),
        None => e.to_string(),
    }
}

/// A stream source's progress: stored positions from the server, and what its worker's
/// `/metrics` says (`quiver ingest status`).
#[derive(Debug, serde::Serialize)]
pub struct SourceStatus {
    pub source: String,
    pub partitions: Vec<PartitionStatus>,
    /// From the worker, when asked.
    pub records_written: Option<f64>,
    pub records_already_applied: Option<f64>,
    pub records_per_second: Option<f64>,
    pub dead_letters: Option<f64>,
}

#[derive(Debug, serde::Serialize)]
pub struct PartitionStatus {
    pub partition: String,
    /// The last position applied (stored with the records).
    pub position: String,
    /// Kafka: messages after it, from the worker's last look at the partition's high
    /// watermark.
    pub lag: Option<f64>,
    /// Kinesis: how far the shard's last read is behind its tip, in milliseconds.
    pub lag_millis: Option<f64>,
}

impl SourceStatus {
    pub fn print(&self) {
        let rows: Vec<Vec<String>> = self
            .partitions
            .iter()
            .map(|p| {
                vec![
                    p.partition.clone(),
                    p.position.clone(),
                    p.lag.map_or("-".into(), |l| format!("{l:.0}")),
                    p.lag_millis.map_or("-".into(), |l| format!("{l:.0}")),
                ]
            })
            .collect();
        println!("source {}", self.source);
        crate::cli::output::print_table(
            &["partition", "position", "lag (messages)", "lag (ms)"],
            &rows,
        );
        let n = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
        if self.records_written.is_some() {
            println!(
                "records written {} ({} per second), already applied {}, dead letters {}",
                n(self.records_written),
                n(self.records_per_second),
                n(self.records_already_applied),
                n(self.dead_letters)
            );
        }
    }
}

/// Reads `source`'s positions from the server and, with `worker`, the worker's metrics.
pub async fn source_status(
    client: &Client,
    source: &str,
    worker: Option<&str>,
) -> Result<SourceStatus> {
    let positions = client
        .get_source_positions(pb::GetSourcePositionsRequest {
            source: source.to_string(),
        })
        .await?
        .positions;
    let metrics = match worker {
        Some(worker) => Some(fetch_metrics(worker).await?),
        None => None,
    };
    let sample = |name: &str, labels: &str| {
        let series = format!("{name}{{{labels}}}");
        metrics.as_ref().and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(&series))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
        })
    };
    let source_label = format!("source=\"{source}\"");
    let mut partitions: Vec<PartitionStatus> = positions
        .into_iter()
        .map(|p| PartitionStatus {
            lag: sample(
                "quiver_ingest_lag_messages",
                &format!("{source_label},partition=\"{}\"", p.partition),
            ),
            lag_millis: sample(
                "quiver_ingest_lag_millis",
                &format!("{source_label},partition=\"{}\"", p.partition),
            ),
            partition: p.partition,
            position: p.position,
        })
        .collect();
    partitions.sort_by(|a, b| a.partition.cmp(&b.partition));
    Ok(SourceStatus {
        source: source.to_string(),
        partitions,
        records_written: sample("quiver_ingest_records_written_total", &source_label),
        records_already_applied: sample(
            "quiver_ingest_records_already_applied_total",
            &source_label,
        ),
        records_per_second: sample("quiver_ingest_records_per_second", &source_label),
        dead_letters: sample("quiver_ingest_dead_letters_total", &source_label),
    })
}

/// GET `<worker>/metrics` (plain HTTP/1.1).
async fn fetch_metrics(worker: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = worker
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .trim_end_matches("/metrics")
        .to_string();
    let mut stream = tokio::net::TcpStream::connect(&host)
        .await
        .with_context(|| format!("worker {worker}"))?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("worker {worker}: not an HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") {
        anyhow::bail!(
            "worker {worker}: {}",
            head.lines().next().unwrap_or_default()
        );
    }
    Ok(body.to_string())
}
