//! `quiver prep ...`: data preparation recipes on the server's `Prep` service
//! (docs/data-prep.md). `put` stores a recipe file as its name's next version; `preview` shows
//! the first rows after any step on a sample; `report` the data quality report; `run` writes a recipe's output into a file on the
//! server or a feature group and follows it to its end; `list`, `show`, `diff`, `delete`,
//! `runs`, `describe-run` and `stop` do what they say.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use quiver_client::{Client, pb};
use serde_json::{Value, json};

use super::output::{Output, format_iso8601_millis, print_json, print_table};

/// A recipe: a file (its JSON document), or a stored one by name.
#[derive(Debug, Args)]
pub struct RecipeArg {
    /// A recipe file (JSON).
    #[arg(group = "which")]
    file: Option<PathBuf>,
    /// A stored recipe's name.
    #[arg(long, group = "which")]
    recipe: Option<String>,
    /// The stored recipe's version (the latest otherwise).
    #[arg(long, requires = "recipe")]
    version: Option<u32>,
}

impl RecipeArg {
    fn json(&self) -> Result<Option<String>> {
        self.file
            .as_ref()
            .map(|f| {
                std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))
            })
            .transpose()
    }

    fn stored(&self) -> Option<pb::RecipeRef> {
        self.recipe.as_ref().map(|name| pb::RecipeRef {
            name: name.clone(),
            version: self.version,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum PrepCommand {
    /// Store a recipe file as its name's next version.
    Put {
        file: PathBuf,
    },
    /// The stored recipes (latest versions).
    List,
    /// A stored recipe's document.
    Show {
        name: String,
        #[arg(long)]
        version: Option<u32>,
    },
    /// How two versions of a recipe differ, step by step.
    Diff {
        name: String,
        from: u32,
        /// The latest when absent.
        to: Option<u32>,
    },
    /// Delete every version of a recipe.
    Delete {
        name: String,
    },
    /// The first rows after a step (all steps by default), on a sample of each source.
    Preview {
        #[command(flatten)]
        recipe: RecipeArg,
        /// After this many steps.
        #[arg(long)]
        steps: Option<u32>,
        /// Rows to show.
        #[arg(long, default_value_t = 20)]
        rows: u32,
        /// Rows read from each source.
        #[arg(long, default_value_t = 100_000)]
        sample: u32,
        /// Print the recipe as one SQL query instead.
        #[arg(long)]
        sql: bool,
    },
    /// The data quality and insights report on a sample of the recipe's output, as JSON, or
    /// `--html FILE` as a page with charts.
    Report {
        #[command(flatten)]
        recipe: RecipeArg,
        /// The column a model would predict (adds target analysis and a quick model).
        #[arg(long)]
        target: Option<String>,
        #[arg(long, default_value_t = 100_000)]
        sample: u32,
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Run a recipe over its whole sources: into a new file on the server (--out) or a
    /// feature group (--group, created from the output with --create --id COL --time COL).
    /// Running a failed or stopped run's name again resumes it.
    Run {
        name: String,
        #[command(flatten)]
        recipe: RecipeArg,
        /// file:///path.parquet, .csv or .json on the server.
        #[arg(long, group = "output")]
        out: Option<String>,
        #[arg(long, group = "output")]
        group: Option<String>,
        /// Create the group from the output's columns.
        #[arg(long, requires = "group")]
        create: bool,
        /// The record identifier column of a created group.
        #[arg(long, requires = "create")]
        id: Option<String>,
        /// The event time column of a created group.
        #[arg(long, requires = "create")]
        time: Option<String>,
        /// Return once the run has started.
        #[arg(long)]
        no_wait: bool,
    },
    /// Every run, newest first.
    Runs,
    DescribeRun {
        name: String,
    },
    /// Stop a run (start it again under its name to resume).
    Stop {
        name: String,
    },
}

fn run_json(r: &pb::RecipeRun) -> Value {
    json!({
        "name": r.name,
        "arn": r.arn,
        "status": r.status,
        "failure_reason": r.failure_reason,
        "rows_written": r.rows_written,
        "rows_skipped": r.rows_skipped,
        "attempts": r.attempts,
        "recipe": r.recipe_name,
        "recipe_version": r.recipe_version,
        "output": r.output,
        "created": format_iso8601_millis(r.creation_time_ms),
        "ended": r.end_time_ms.map(format_iso8601_millis),
    })
}

fn print_run(out: Output, r: &pb::RecipeRun) {
    match out {
        Output::Json => print_json(&run_json(r)),
        Output::Table => {
            print_table(
                &[
                    "RUN",
                    "STATUS",
                    "ROWS WRITTEN",
                    "SKIPPED",
                    "OUTPUT",
                    "REASON",
                ],
                &[vec![
                    r.name.clone(),
                    r.status.clone(),
                    r.rows_written.to_string(),
                    r.rows_skipped.to_string(),
                    r.output.clone(),
                    r.failure_reason.clone().unwrap_or_else(|| "-".into()),
                ]],
            );
        }
    }
}

pub async fn run(client: &Client, out: Output, command: PrepCommand) -> Result<()> {
    let mut prep = client.prep();
    match command {
        PrepCommand::Put { file } => {
            let recipe_json = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let v = prep
                .put_recipe(pb::PutRecipeRequest { recipe_json })
                .await
                .context("PutRecipe")?
                .into_inner();
            println!(
                "stored {} version {} ({} steps)",
                v.name, v.version, v.steps
            );
        }
        PrepCommand::List => {
            let recipes = prep
                .list_recipes(pb::ListRecipesRequest::default())
                .await
                .context("ListRecipes")?
                .into_inner()
                .recipes;
            let rows: Vec<Vec<String>> = recipes
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.version.to_string(),
                        r.steps.to_string(),
                        format_iso8601_millis(r.saved_time_ms),
                        r.description.clone(),
                    ]
                })
                .collect();
            match out {
                Output::Json => print_json(&Value::Array(
                    recipes
                        .iter()
                        .map(|r| json!({"name": r.name, "version": r.version, "steps": r.steps, "saved": format_iso8601_millis(r.saved_time_ms), "description": r.description}))
                        .collect(),
                )),
                Output::Table => print_table(&["NAME", "VERSION", "STEPS", "SAVED", "DESCRIPTION"], &rows),
            }
        }
        PrepCommand::Show { name, version } => {
            let v = prep
                .describe_recipe(pb::RecipeRef { name, version })
                .await
                .context("DescribeRecipe")?
                .into_inner();
            println!("{}", v.recipe_json);
        }
        PrepCommand::Diff { name, from, to } => {
            let d = prep
                .diff_recipes(pb::DiffRecipesRequest {
                    name,
                    from_version: from,
                    to_version: to,
                })
                .await
                .context("DiffRecipes")?
                .into_inner();
            println!("{}", d.diff);
        }
        PrepCommand::Delete { name } => {
            let v = prep
                .delete_recipe(pb::RecipeRef {
                    name,
                    version: None,
                })
                .await
                .context("DeleteRecipe")?
                .into_inner();
            println!("deleted {} ({} versions)", v.name, v.version);
        }
        PrepCommand::Preview {
            recipe,
            steps,
            rows,
            sample,
            sql,
        } => {
            use pb::preview_request::Recipe as R;
            let which = match (recipe.json()?, recipe.stored()) {
                (Some(j), _) => R::RecipeJson(j),
                (None, Some(s)) => R::Stored(s),
                _ => bail!("name the recipe: a file, or --recipe NAME"),
            };
            let p = prep
                .preview(pb::PreviewRequest {
                    recipe: Some(which),
                    steps,
                    rows,
                    sample_rows: sample,
                })
                .await
                .context("Preview")?
                .into_inner();
            if sql {
                println!("{}", p.sql);
                return Ok(());
            }
            let parsed: Vec<Vec<Value>> = p
                .rows_json
                .iter()
                .map(|r| serde_json::from_str::<Vec<Value>>(r).unwrap_or_default())
                .collect();
            match out {
                Output::Json => {
                    let names: Vec<&str> = p.columns.iter().map(|c| c.name.as_str()).collect();
                    let objects: Vec<Value> = parsed
                        .iter()
                        .map(|row| {
                            Value::Object(
                                names
                                    .iter()
                                    .map(|n| n.to_string())
                                    .zip(row.iter().cloned())
                                    .collect(),
                            )
                        })
                        .collect();
                    print_json(
                        &json!({"columns": p.columns.iter().map(|c| json!({"name": c.name, "type": c.r#type})).collect::<Vec<_>>(), "rows": objects, "seconds": p.seconds}),
                    );
                }
                Output::Table => {
                    let header: Vec<&str> = p.columns.iter().map(|c| c.name.as_str()).collect();
                    let rows: Vec<Vec<String>> = parsed
                        .iter()
                        .map(|row| {
                            row.iter()
                                .map(|v| match v {
                                    Value::Null => "null".to_string(),
                                    Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                })
                                .collect()
                        })
                        .collect();
                    print_table(&header, &rows);
                    eprintln!("{} rows in {:.3} s", rows.len(), p.seconds);
                }
            }
        }
        PrepCommand::Report {
            recipe,
            target,
            sample,
            html,
        } => {
            use pb::report_request::Recipe as R;
            let which = match (recipe.json()?, recipe.stored()) {
                (Some(j), _) => R::RecipeJson(j),
                (None, Some(s)) => R::Stored(s),
                _ => bail!("name the recipe: a file, or --recipe NAME"),
            };
            let report = prep
                .report(pb::ReportRequest {
                    recipe: Some(which),
                    target,
                    sample_rows: sample,
                })
                .await
                .context("Report")?
                .into_inner();
            match html {
                Some(path) => {
                    std::fs::write(&path, &report.html)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    println!("wrote {}", path.display());
                }
                None => {
                    print_json(&serde_json::from_str(&report.report_json).unwrap_or(Value::Null))
                }
            }
        }
        PrepCommand::Run {
            name,
            recipe,
            out: file,
            group,
            create,
            id,
            time,
            no_wait,
        } => {
            use pb::start_run_request::{Output as O, Recipe as R};
            let which = match (recipe.json()?, recipe.stored()) {
                (Some(j), _) => R::RecipeJson(j),
                (None, Some(s)) => R::Stored(s),
                _ => bail!("name the recipe: a file, or --recipe NAME"),
            };
            let output = match (file, group) {
                (Some(f), _) => O::FileUri(f),
                (None, Some(g)) => O::FeatureGroup(pb::RunIntoGroup {
                    name: g,
                    create,
                    record_identifier: id.unwrap_or_default(),
                    event_time: time.unwrap_or_default(),
                }),
                _ => bail!("name the output: --out FILE or --group GROUP"),
            };
            let started = prep
                .start_run(pb::StartRunRequest {
                    name: name.clone(),
                    recipe: Some(which),
                    output: Some(output),
                })
                .await
                .context("StartRun")?
                .into_inner();
            if no_wait {
                print_run(out, &started);
                return Ok(());
            }
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            let ended = loop {
                let r = prep
                    .describe_run(pb::RecipeRunName { name: name.clone() })
                    .await
                    .context("DescribeRun")?
                    .into_inner();
                bar.set_message(format!("{}: {} rows written", r.status, r.rows_written));
                bar.tick();
                if matches!(r.status.as_str(), "Completed" | "Failed" | "Stopped") {
                    break r;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            bar.finish_and_clear();
            print_run(out, &ended);
            if ended.status != "Completed" {
                bail!(
                    "run {name} ended {}: {}",
                    ended.status,
                    ended.failure_reason.as_deref().unwrap_or("-")
                );
            }
        }
        PrepCommand::Runs => {
            let runs = prep
                .list_runs(pb::ListRecipeRunsRequest::default())
                .await
                .context("ListRuns")?
                .into_inner()
                .runs;
            match out {
                Output::Json => print_json(&Value::Array(runs.iter().map(run_json).collect())),
                Output::Table => print_table(
                    &["RUN", "STATUS", "ROWS WRITTEN", "OUTPUT", "CREATED"],
                    &runs
                        .iter()
                        .map(|r| {
                            vec![
                                r.name.clone(),
                                r.status.clone(),
                                r.rows_written.to_string(),
                                r.output.clone(),
                                format_iso8601_millis(r.creation_time_ms),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        PrepCommand::DescribeRun { name } => {
            let r = prep
                .describe_run(pb::RecipeRunName { name })
                .await
                .context("DescribeRun")?
                .into_inner();
            print_run(out, &r);
        }
        PrepCommand::Stop { name } => {
            let r = prep
                .stop_run(pb::RecipeRunName { name })
                .await
                .context("StopRun")?
                .into_inner();
            print_run(out, &r);
        }
    }
    Ok(())
}
