//! Quiver's random trees against smartcore's: `cargo bench -p quiver-automl --bench forests
//! [-- ROWS]`. The same generated data (20 numeric features, no missing values, which
//! smartcore cannot take), the same 100 trees, fitted on 80% and scored on the rest: the time
//! to fit and the held-out quality (accuracy for smartcore's classifier, which only votes; AUC
//! and accuracy for ours, whose trees keep class frequencies; R2 for values).

use std::time::Instant;

use quiver_automl::learners::Task;
use quiver_automl::metrics::{Metric, Predictions};
use quiver_automl::prepare::Matrix;
use quiver_automl::problem::ProblemType;
use quiver_automl::random_trees::{self, Randomness};
use smartcore::ensemble::extra_trees_regressor::{
    ExtraTreesRegressor, ExtraTreesRegressorParameters,
};
use smartcore::ensemble::random_forest_classifier::{
    RandomForestClassifier, RandomForestClassifierParameters,
};
use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;

const FEATURES: usize = 20;
const TREES: usize = 100;

/// Columns of uniform values; a value with interactions and noise.
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
            let c = |f: usize| columns[f][r];
            4.0 * c(0) + 3.0 * c(1) * c(2) * 4.0 + (6.0 * c(3)).sin() + 2.0 * c(4).abs()
                - c(5) * c(6) * 4.0
                + next() * 0.8
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

fn dense(x: &Matrix) -> DenseMatrix<f64> {
    let rows: Vec<Vec<f64>> = (0..x.rows)
        .map(|r| x.columns.iter().map(|c| c[r]).collect())
        .collect();
    DenseMatrix::from_2d_vec(&rows).expect("a matrix")
}

fn main() {
    let rows: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5_000);
    let (x, y) = data(rows, 1);
    let train: Vec<usize> = (0..rows).filter(|r| r % 5 != 0).collect();
    let test: Vec<usize> = (0..rows).filter(|r| r % 5 == 0).collect();
    let (train_x, test_x) = (x.take(&train), x.take(&test));
    let train_y: Vec<f64> = train.iter().map(|r| y[*r]).collect();
    let test_y: Vec<f64> = test.iter().map(|r| y[*r]).collect();
    let median = {
        let mut sorted = y.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[rows / 2]
    };
    let class = |v: &f64| f64::from(*v > median);
    let train_c: Vec<f64> = train_y.iter().map(class).collect();
    let test_c: Vec<f64> = test_y.iter().map(class).collect();
    println!(
        "{rows} rows x {FEATURES} features, {TREES} trees, {} training rows, {} cores",
        train.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("{:<44} {:>9} {:>9} {:>9}", "", "fit s", "quality", "AUC");

    let (dense_train, dense_test) = (dense(&train_x), dense(&test_x));
    let regression = Task {
        problem: ProblemType::Regression,
        classes: 0,
        seed: 1,
    };
    let binary = Task {
        problem: ProblemType::BinaryClassification,
        classes: 2,
        seed: 1,
    };
    let show = |name: &str, seconds: f64, quality: String, auc: String| {
        println!("{name:<44} {seconds:>9.2} {quality:>9} {auc:>9}");
    };

    // Values.
    for randomness in [Randomness::Forest, Randomness::ExtraTrees] {
        let started = Instant::now();
        let model =
            random_trees::fit(&train_x, &train_y, regression, randomness, None).expect("fit");
        let seconds = started.elapsed().as_secs_f64();
        let r2 = Metric::R2.score(&test_y, &model.predict(&test_x));
        show(
            &format!("quiver {} regressor (R2)", randomness.name()),
            seconds,
            format!("{r2:.4}"),
            "-".into(),
        );
    }
    let started = Instant::now();
    let model = RandomForestRegressor::fit(
        &dense_train,
        &train_y,
        RandomForestRegressorParameters::default()
            .with_n_trees(TREES)
            .with_m(FEATURES / 3),
    )
    .expect("smartcore");
    let seconds = started.elapsed().as_secs_f64();
    let predicted = model.predict(&dense_test).expect("predict");
    let r2 = Metric::R2.score(&test_y, &Predictions::Values(predicted));
    show(
        "smartcore random forest regressor (R2)",
        seconds,
        format!("{r2:.4}"),
        "-".into(),
    );
    let started = Instant::now();
    let model = ExtraTreesRegressor::fit(
        &dense_train,
        &train_y,
        ExtraTreesRegressorParameters::default()
            .with_n_trees(TREES)
            .with_m(FEATURES),
    )
    .expect("smartcore");
    let seconds = started.elapsed().as_secs_f64();
    let predicted = model.predict(&dense_test).expect("predict");
    let r2 = Metric::R2.score(&test_y, &Predictions::Values(predicted));
    show(
        "smartcore extra trees regressor (R2)",
        seconds,
        format!("{r2:.4}"),
        "-".into(),
    );

    // Classes.
    for randomness in [Randomness::Forest, Randomness::ExtraTrees] {
        let started = Instant::now();
        let model = random_trees::fit(&train_x, &train_c, binary, randomness, None).expect("fit");
        let seconds = started.elapsed().as_secs_f64();
        let predicted = model.predict(&test_x);
        show(
            &format!("quiver {} classifier (accuracy)", randomness.name()),
            seconds,
            format!("{:.4}", Metric::Accuracy.score(&test_c, &predicted)),
            format!("{:.4}", Metric::Auc.score(&test_c, &predicted)),
        );
    }
    let labels: Vec<i32> = train_c.iter().map(|c| *c as i32).collect();
    let started = Instant::now();
    let model = RandomForestClassifier::fit(
        &dense_train,
        &labels,
        RandomForestClassifierParameters::default().with_n_trees(TREES as u16),
    )
    .expect("smartcore");
    let seconds = started.elapsed().as_secs_f64();
    let voted: Vec<i32> = model.predict(&dense_test).expect("predict");
    let correct = voted
        .iter()
        .zip(&test_c)
        .filter(|(v, c)| **v as f64 == **c)
        .count();
    show(
        "smartcore random forest classifier (accuracy)",
        seconds,
        format!("{:.4}", correct as f64 / test_c.len() as f64),
        "(votes)".into(),
    );
}
