//! `quiver automl ...`: AutoML jobs on the server's `AutoML` service (docs/automl.md). `create`
//! starts a job from a feature group, a query, a file or a training set and, unless told not to
//! wait, follows it with a progress bar to its end; `describe` and `list` show jobs and their
//! leaderboards; `report` prints the reports; `predict` applies a job's model to rows (a JSON
//! file) or to records of the online store.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use quiver_client::{Client, pb};
use serde_json::{Value, json};

use super::output::{Output, format_iso8601_millis, print_json, print_table};

#[derive(Debug, Subcommand)]
// Parsed once per run of the CLI: the size of `Create` costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum AutomlCommand {
    /// Build a model: `quiver automl create NAME --group churn --target churned --budget 5m`.
    Create {
        name: String,
        /// A feature group's latest records.
        #[arg(long, group = "source")]
        group: Option<String>,
        /// A feature group's whole offline history.
        #[arg(long, group = "source")]
        history: Option<String>,
        /// An SQL query over the offline store.
        #[arg(long, group = "source")]
        sql: Option<String>,
        /// A CSV or Parquet file on the server (file:///path or a path).
        #[arg(long, group = "source")]
        file: Option<String>,
        /// A training set's manifest.json.
        #[arg(long, group = "source")]
        dataset: Option<String>,
        /// Join a feature group's latest records to the source on the --on columns
        /// (repeatable).
        #[arg(long, requires = "on")]
        join_group: Vec<String>,
        /// Join a CSV or Parquet file on the server to the source on the --on columns
        /// (repeatable).
        #[arg(long, requires = "on")]
        join_file: Vec<String>,
        /// The key columns of a join (comma-separated).
        #[arg(long, value_delimiter = ',')]
        on: Vec<String>,
        /// The column to predict.
        #[arg(long)]
        target: String,
        /// Regression, BinaryClassification or MulticlassClassification (inferred otherwise).
        #[arg(long)]
        problem_type: Option<String>,
        /// The metric to optimise (MSE, F1, Accuracy, AUC, ...).
        #[arg(long)]
        objective: Option<String>,
        /// Training time: 90s, 5m, 1h.
        #[arg(long, default_value = "10m")]
        budget: String,
        /// Only these columns (comma-separated).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// Never these columns (comma-separated).
        #[arg(long, value_delimiter = ',')]
        drop: Vec<String>,
        /// Return once the job is queued.
        #[arg(long)]
        no_wait: bool,
    },
    /// A job, with its leaderboard.
    Describe { name: String },
    /// Every job, newest first.
    List,
    /// Stop a running job (it keeps the candidates it finished).
    Stop { name: String },
    /// A finished job's reports: leaderboard, cleaning steps, data exploration, model quality
    /// and feature importance, as JSON; or `--html FILE`, as a page with charts.
    Report {
        name: String,
        /// Write the reports as one self-contained HTML page to this file.
        #[arg(long)]
        html: Option<std::path::PathBuf>,
    },
    /// Apply a job's model: to rows in a JSON file (an array of objects), or to records of
    /// the online store (`--group G --id ID [--id ID ...]`).
    Predict {
        name: String,
        /// A JSON file: an array of objects, one per row.
        #[arg(long)]
        rows: Option<std::path::PathBuf>,
        #[arg(long)]
        group: Option<String>,
        #[arg(long = "id")]
        ids: Vec<String>,
    },
}

/// `90s`, `5m`, `1h` or a number of seconds.
pub fn parse_budget(text: &str) -> Result<u64> {
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&text[..i], &text[i..]),
        None => (text, "s"),
    };
    let n: u64 = number
        .trim()
        .parse()
        .with_context(|| format!("--budget '{text}': a number of seconds, or 90s, 5m, 1h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("--budget '{text}': the unit is s, m or h"),
    };
    if seconds == 0 {
        bail!("--budget '{text}' must be at least 1 second");
    }
    Ok(seconds)
}

pub async fn run(client: &Client, out: Output, command: AutomlCommand) -> Result<()> {
    let mut automl = client.automl();
    match command {
        AutomlCommand::Create {
            name,
            group,
            history,
            sql,
            file,
            dataset,
            join_group,
            join_file,
            on,
            target,
            problem_type,
            objective,
            budget,
            columns,
            drop,
            no_wait,
        } => {
            use pb::auto_ml_data_source::Source;
            let source = match (group, history, sql, file, dataset) {
                (Some(g), ..) => Source::FeatureGroup(g),
                (_, Some(g), ..) => Source::FeatureGroupHistory(g),
                (_, _, Some(s), ..) => Source::Sql(s),
                (_, _, _, Some(f), _) => Source::FileUri(f),
                (.., Some(d)) => Source::DatasetUri(d),
                _ => bail!("name the data: --group, --history, --sql, --file or --dataset"),
            };
            let source = if join_group.is_empty() && join_file.is_empty() {
                source
            } else {
                let joined = join_group
                    .into_iter()
                    .map(Source::FeatureGroup)
                    .chain(join_file.into_iter().map(Source::FileUri));
                Source::Join(pb::JoinedSources {
                    sources: std::iter::once(source)
                        .chain(joined)
                        .map(|s| pb::AutoMlDataSource { source: Some(s) })
                        .collect(),
                    on,
                })
            };
            let budget = parse_budget(&budget)?;
            automl
                .create_job(pb::CreateAutoMlJobRequest {
                    name: name.clone(),
                    source: Some(pb::AutoMlDataSource {
                        source: Some(source),
                    }),
                    target,
                    problem_type,
                    objective,
                    use_columns: columns,
                    drop_columns: drop,
                    budget_seconds: budget,
                    max_candidates: None,
                })
                .await
                .context("CreateJob")?;
            if no_wait {
                let job = describe(client, &name).await?;
                print_job(out, &job);
                return Ok(());
            }
            let job = follow(client, &name, budget).await?;
            print_job(out, &job);
            if job.status != "Completed" {
                bail!(
                    "job {name} ended {}: {}",
                    job.status,
                    job.failure_reason.as_deref().unwrap_or("-")
                );
            }
        }
        AutomlCommand::Describe { name } => print_job(out, &describe(client, &name).await?),
        AutomlCommand::Stop { name } => {
            let job = automl
                .stop_job(pb::AutoMlJobName { name })
                .await
                .context("StopJob")?
                .into_inner();
            print_job(out, &job);
        }
        AutomlCommand::List => {
            let jobs = automl
                .list_jobs(pb::ListAutoMlJobsRequest::default())
                .await
                .context("ListJobs")?
                .into_inner()
                .jobs;
            match out {
                Output::Json => print_json(&Value::Array(jobs.iter().map(job_json).collect())),
                Output::Table => print_table(
                    &["NAME", "STATUS", "PROBLEM", "BEST", "OBJECTIVE", "CREATED"],
                    &jobs
                        .iter()
                        .map(|j| {
                            let best = j.candidates.first();
                            vec![
                                j.name.clone(),
                                j.status.clone(),
                                j.problem_type.clone().unwrap_or_else(|| "-".into()),
                                best.map_or("-".into(), |c| c.name.clone()),
                                best.map_or("-".into(), |c| {
                                    format!(
                                        "{} {:.4}",
                                        j.objective.as_deref().unwrap_or(""),
                                        c.objective
                                    )
                                }),
                                format_iso8601_millis(j.creation_time_ms),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        AutomlCommand::Report { name, html } => {
            let report = automl
                .report(pb::AutoMlJobName { name })
                .await
                .context("Report")?
                .into_inner();
            if let Some(path) = html {
                std::fs::write(&path, &report.html)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("wrote {}", path.display());
                return Ok(());
            }
            let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
            print_json(&json!({
                "leaderboard": parse(&report.leaderboard_json),
                "cleaning_steps": parse(&report.cleaning_steps_json),
                "data_report": parse(&report.data_report_json),
                "model_report": parse(&report.model_report_json),
            }));
        }
        AutomlCommand::Predict {
            name,
            rows,
            group,
            ids,
        } => {
            let input = match (rows, group) {
                (Some(path), None) => pb::predict_request::Input::RowsJson(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?,
                ),
                (None, Some(group)) if !ids.is_empty() => {
                    pb::predict_request::Input::Online(pb::OnlineRecords {
                        feature_group: group,
                        record_identifiers: ids.clone(),
                    })
                }
                _ => bail!("give --rows FILE.json, or --group GROUP with one --id or more"),
            };
            let predictions = automl
                .predict(pb::PredictRequest {
                    job: name,
                    input: Some(input),
                })
                .await
                .context("Predict")?
                .into_inner()
                .predictions;
            match out {
                Output::Json => print_json(&Value::Array(
                    predictions
                        .iter()
                        .map(|p| {
                            json!({
                                "predicted": p.predicted,
                                "value": p.value,
                                "confidence": p.confidence,
                                "probabilities": p.probabilities,
                                "missing": p.missing,
                            })
                        })
                        .collect(),
                )),
                Output::Table => print_table(
                    &["ROW", "PREDICTED", "CONFIDENCE"],
                    &predictions
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let row = ids.get(i).cloned().unwrap_or_else(|| i.to_string());
                            if p.missing {
                                vec![row, "(no such record)".into(), "-".into()]
                            } else {
                                vec![
                                    row,
                                    p.predicted.clone(),
                                    p.confidence.map_or("-".into(), |c| format!("{c:.3}")),
                                ]
                            }
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
    }
    Ok(())
}

async fn describe(client: &Client, name: &str) -> Result<pb::AutoMlJob> {
    Ok(client
        .automl()
        .describe_job(pb::AutoMlJobName { name: name.into() })
        .await
        .context("DescribeJob")?
        .into_inner())
}

/// Follows a job to its end, drawing its stage and the time spent against the budget.
async fn follow(client: &Client, name: &str, budget: u64) -> Result<pb::AutoMlJob> {
    let bar = ProgressBar::new(budget);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    loop {
        let job = describe(client, name).await?;
        bar.set_position(started.elapsed().as_secs().min(budget));
        bar.set_message(job.secondary_status.clone());
        if job.status != "InProgress" && job.status != "Stopping" {
            bar.finish_and_clear();
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn job_json(j: &pb::AutoMlJob) -> Value {
    json!({
        "name": j.name,
        "arn": j.arn,
        "status": j.status,
        "secondary_status": j.secondary_status,
        "failure_reason": j.failure_reason,
        "problem_type": j.problem_type,
        "objective": j.objective,
        "target": j.target,
        "budget_seconds": j.budget_seconds,
        "created": format_iso8601_millis(j.creation_time_ms),
        "ended": j.end_time_ms.map(format_iso8601_millis),
        "candidates": j.candidates.iter().map(|c| json!({
            "name": c.name,
            "status": c.status,
            "objective": if c.objective.is_finite() { json!(c.objective) } else { Value::Null },
            "metrics": c.metrics,
            "fit_seconds": c.fit_seconds,
        })).collect::<Vec<_>>(),
    })
}

fn print_job(out: Output, job: &pb::AutoMlJob) {
    match out {
        Output::Json => print_json(&job_json(job)),
        Output::Table => {
            println!(
                "{} {} ({}){}",
                job.name,
                job.status,
                job.secondary_status,
                job.failure_reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            if !job.candidates.is_empty() {
                print_table(
                    &["CANDIDATE", "STATUS", "OBJECTIVE", "FIT S"],
                    &job.candidates
                        .iter()
                        .map(|c| {
                            vec![
                                c.name.clone(),
                                c.status.clone(),
                                if c.objective.is_finite() {
                                    format!(
                                        "{} {:.4}",
                                        job.objective.as_deref().unwrap_or(""),
                                        c.objective
                                    )
                                } else {
                                    "-".into()
                                },
                                format!("{:.1}", c.fit_seconds),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_budget;

    #[test]
    fn budgets_read_as_people_write_them() {
        assert_eq!(parse_budget("90").unwrap(), 90);
        assert_eq!(parse_budget("90s").unwrap(), 90);
        assert_eq!(parse_budget("5m").unwrap(), 300);
        assert_eq!(parse_budget("1h").unwrap(), 3600);
        assert!(parse_budget("0s").is_err());
        assert!(parse_budget("5d").unwrap_err().to_string().contains("unit"));
        assert!(parse_budget("soon").is_err());
    }
}
