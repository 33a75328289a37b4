//! What applying a model costs: `cargo bench -p quiver-automl --bench predict`. A gradient
//! boosting model of 200 trees on 50 features (the reference model) predicts one row at
//! a time (the online path's added cost, against GetRecord's own p99 of milliseconds) and in
//! batches of 1,000,000 rows (against the target of 1M rows per second).

use std::time::Instant;

use perpetual::objective::Objective;
use perpetual::{ColumnarMatrix, PerpetualBooster};
use quiver_automl::learners::{Booster, Gbm, Model};
use quiver_automl::prepare::Matrix;
use quiver_automl::problem::ProblemType;
use quiver_automl::search::{Bagged, Ensemble};

const FEATURES: usize = 50;
const TRAIN_ROWS: usize = 20_000;
const BATCH_ROWS: usize = 1_000_000;

fn data(rows: usize, seed: u64) -> (Matrix, Vec<f64>) {
    let mut state = seed;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f64) / (1u64 << 31) as f64 - 0.5
    };
    let columns: Vec<Vec<f64>> = (0..FEATURES)
        .map(|_| (0..rows).map(|_| next()).collect())
        .collect();
    let y = (0..rows)
        .map(|r| {
            let s: f64 = (0..10)
                .map(|f| columns[f][r] * (f as f64 + 1.0))
                .sum::<f64>()
                + columns[10][r] * columns[11][r] * 8.0;
            if s > 0.0 { 1.0 } else { 0.0 }
        })
        .collect();
    (
        Matrix {
            rows,
            columns,
            categorical: vec![false; FEATURES],
        },
        y,
    )
}

fn main() {
    let (x, y) = data(TRAIN_ROWS, 1);
    let mut booster = PerpetualBooster::default()
        .set_objective(Objective::LogLoss)
        .set_budget(2.0)
        .set_iteration_limit(Some(200))
        .set_log_iterations(0);
    let columns: Vec<&[f64]> = x.columns.iter().map(Vec::as_slice).collect();
    booster
        .fit_columnar(&ColumnarMatrix::new(columns, None, x.rows), &y, None, None)
        .expect("training");
    let trees = booster.get_prediction_trees().len();
    let ensemble = Ensemble {
        problem: ProblemType::BinaryClassification,
        classes: 2,
        members: vec![(
            1.0,
            Bagged {
                name: "gbm".into(),
                models: vec![Model::Gbm(Gbm::from(Booster::Single(Box::new(booster))))],
            },
        )],
    };
    println!("model: {trees} trees on {FEATURES} features");
    if let Model::Gbm(gbm) = &ensemble.members[0].1.models[0] {
        println!("flattened: {:?}", gbm.forest());
    }

    // `-- batch`: the batch measures alone.
    let batch_only = std::env::args().any(|a| a == "batch");

    // One row at a time.
    let (rows, _) = data(2_000, 2);
    let mut latencies: Vec<f64> = (0..if batch_only { 1 } else { rows.rows })
        .map(|r| {
            let one = rows.take(&[r]);
            let started = Instant::now();
            let p = ensemble.predict(&one);
            let elapsed = started.elapsed().as_secs_f64() * 1e6;
            std::hint::black_box(p);
            elapsed
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "one row: p50 {:.0} us, p99 {:.0} us, max {:.0} us",
        at(0.5),
        at(0.99),
        latencies[latencies.len() - 1]
    );

    // perpetual's own prediction, without this crate around it: raw scores and probabilities.
    if let Model::Gbm(gbm) = &ensemble.members[0].1.models[0]
        && let Booster::Single(b) = gbm.booster()
    {
        let (probe, _) = data(100_000, 4);
        let columns: Vec<&[f64]> = probe.columns.iter().map(Vec::as_slice).collect();
        let m = ColumnarMatrix::new(columns, None, probe.rows);
        let started = Instant::now();
        std::hint::black_box(b.predict_columnar(&m, true));
        println!(
            "perpetual alone, raw scores: {:.0} rows/s",
            100_000.0 / started.elapsed().as_secs_f64()
        );
        let started = Instant::now();
        std::hint::black_box(b.predict_proba_columnar(&m, true, false));
        println!(
            "perpetual alone, probabilities: {:.0} rows/s",
            100_000.0 / started.elapsed().as_secs_f64()
        );
    }

    // A model as AutoML builds it (bagged fold models of several candidates, ensembled), on
    // the same data: what an online prediction applies.
    if !batch_only {
        use quiver_automl::frame::{Column, Frame};
        use quiver_automl::training::{TrainingSpec, train};
        let (x, y) = data(TRAIN_ROWS, 5);
        let mut columns: Vec<Column> = x
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| Column::number(&format!("f{i}"), c.clone()))
            .collect();
        columns.push(Column::number("label", y));
        let frame = Frame::new(columns).expect("frame");
        let model = train(
            &frame,
            &TrainingSpec::new("label", std::time::Duration::from_secs(60)),
            &|_| {},
        )
        .expect("training");
        let members: Vec<String> = model
            .ensemble
            .members
            .iter()
            .map(|(w, b)| format!("{} x{} folds ({w:.2})", b.name, b.models.len()))
            .collect();
        println!("AutoML model: {}", members.join(", "));
        let mut latencies: Vec<f64> = (0..1_000)
            .map(|r| {
                let one = frame.take(&[r]);
                let started = Instant::now();
                std::hint::black_box(model.predict(&one).expect("prediction"));
                started.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!(
            "AutoML model, one row (recipe and ensemble): p50 {:.0} us, p99 {:.0} us",
            at(0.5),
            at(0.99)
        );
    }

    // A batch, five times over: the median and the best run (the machine is shared).
    let (batch, _) = data(BATCH_ROWS, 3);
    let runs = |predict: &dyn Fn()| {
        let mut seconds: Vec<f64> = (0..5)
            .map(|_| {
                let started = Instant::now();
                predict();
                started.elapsed().as_secs_f64()
            })
            .collect();
        seconds.sort_by(f64::total_cmp);
        (seconds[2], seconds[0])
    };
    if let Model::Gbm(gbm) = &ensemble.members[0].1.models[0] {
        let (median, best) = runs(&|| {
            std::hint::black_box(gbm.forest().predict(&batch));
        });
        println!(
            "batch of {BATCH_ROWS} rows, the flattened trees alone: median {median:.2} s, {:.0} rows/s (best {:.0})",
            BATCH_ROWS as f64 / median,
            BATCH_ROWS as f64 / best
        );
    }
    let (median, best) = runs(&|| {
        std::hint::black_box(ensemble.predict(&batch));
    });
    println!(
        "batch of {BATCH_ROWS} rows: median {median:.2} s, {:.0} rows/s ({:.2}x the 1M rows/s target; best {:.0})",
        BATCH_ROWS as f64 / median,
        BATCH_ROWS as f64 / median / 1e6,
        BATCH_ROWS as f64 / best
    );
}
