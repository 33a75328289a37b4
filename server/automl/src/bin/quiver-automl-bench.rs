//! Quiver's side of `bench/automl.sh`: for each dataset (a CSV with a `target` column and an
//! outer `fold` column, as `bench/automl/datasets.py` writes them), trains on all folds but
//! one within the budget and scores the held-out fold, for every fold. Prints one JSON line
//! per (dataset, fold): the task's metric (AUC for binary, log loss for multiclass, RMSE for
//! regression), the seconds training took and batch prediction's rows per second.
//!
//!     quiver-automl-bench --data DIR --budget SECONDS [--only NAME]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::csv::ReaderBuilder;
use arrow::csv::reader::Format;
use arrow::record_batch::RecordBatch;

use quiver_automl::frame::Frame;
use quiver_automl::metrics::{Metric, Predictions};
use quiver_automl::problem::ProblemType;
use quiver_automl::training::{TrainingSpec, train};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let data = PathBuf::from(value("--data").expect("--data DIR"));
    let budget: f64 = value("--budget").map_or(30.0, |b| b.parse().expect("--budget SECONDS"));
    let only = value("--only");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&data)
        .expect("the data directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    for file in files {
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        let frame = read_csv(&file);
        let folds = frame.column("fold").expect("a fold column").values.clone();
        let fold_count = folds.iter().fold(0.0f64, |m, f| m.max(*f)) as usize + 1;
        for k in 0..fold_count {
            let train_rows: Vec<usize> =
                (0..frame.rows).filter(|&r| folds[r] != k as f64).collect();
            let test_rows: Vec<usize> = (0..frame.rows).filter(|&r| folds[r] == k as f64).collect();
            let mut spec = TrainingSpec::new("target", Duration::from_secs_f64(budget));
            spec.columns.drop_columns = vec!["fold".into()];
            let started = Instant::now();
            let model = match train(&frame.take(&train_rows), &spec, &|_| {}) {
                Ok(model) => model,
                Err(e) => {
                    println!(
                        "{}",
                        serde_json::json!({"system": "quiver", "dataset": name, "fold": k, "error": e.message()})
                    );
                    continue;
                }
            };
            let train_seconds = started.elapsed().as_secs_f64();
            let test = frame.take(&test_rows);
            let started = Instant::now();
            let matrix = model.recipe.apply(&test).expect("the test rows");
            let predicted = model.ensemble.predict(&matrix);
            let predict_seconds = started.elapsed().as_secs_f64();
            // The test rows' targets, as the model numbers them.
            let target = test.column("target").unwrap();
            let actual: Vec<f64> = (0..test.rows)
                .map(|r| match model.problem {
                    ProblemType::Regression => target.values[r],
                    _ => {
                        let text = target.display(r);
                        model
                            .classes
                            .iter()
                            .position(|c| *c == text)
                            .map_or(f64::NAN, |i| i as f64)
                    }
                })
                .collect();
            let keep: Vec<usize> = (0..actual.len()).filter(|&r| !actual[r].is_nan()).collect();
            let actual: Vec<f64> = keep.iter().map(|&r| actual[r]).collect();
            let predicted = match predicted {
                Predictions::Values(v) => Predictions::Values(keep.iter().map(|&r| v[r]).collect()),
                p @ Predictions::Probabilities { classes, .. } => Predictions::Probabilities {
                    classes,
                    p: keep.iter().flat_map(|&r| p.row(r).to_vec()).collect(),
                },
            };
            let (metric, score) = match model.problem {
                ProblemType::Regression => ("rmse", Metric::Rmse.score(&actual, &predicted)),
                ProblemType::BinaryClassification => {
                    ("auc", Metric::Auc.score(&actual, &predicted))
                }
                ProblemType::MulticlassClassification => {
                    ("logloss", Metric::LogLoss.score(&actual, &predicted))
                }
            };
            println!(
                "{}",
                serde_json::json!({
                    "system": "quiver",
                    "dataset": name,
                    "fold": k,
                    "metric": metric,
                    "score": score,
                    "train_seconds": train_seconds,
                    "budget_seconds": budget,
                    "predict_rows_per_second": test.rows as f64 / predict_seconds.max(1e-9),
                    "best": model.leaderboard[0].name,
                })
            );
        }
    }
}

fn read_csv(path: &Path) -> Frame {
    let format = Format::default().with_header(true);
    let mut file = std::fs::File::open(path).expect("the CSV file");
    let (schema, _) = format
        .infer_schema(&mut file, Some(10_000))
        .expect("a CSV schema");
    let schema = Arc::new(schema);
    let file = std::fs::File::open(path).expect("the CSV file");
    let reader = ReaderBuilder::new(schema.clone())
        .with_format(format)
        .build(file)
        .expect("a CSV reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("a CSV batch")).collect();
    Frame::from_batches(&schema, &batches).expect("the table")
}
