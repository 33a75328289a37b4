//! The learners AutoML tries, each fitted on a [`Matrix`] and kept as a [`Model`] that
//! predicts values or class probabilities and serializes with the job's result.
//!
//! - gradient boosting: `perpetual`, its one `budget` knob as the candidate's size, with its
//!   own handling of missing values and categories;
//! - linear: ridge regression or (multinomial) logistic regression from `smartcore`, on
//!   features this module encodes itself: numbers imputed with their median (plus an indicator
//!   where values were missing) and standardized; categories one-hot on their commonest levels.
//!   The fitted coefficients are kept, not smartcore's model, so prediction is plain arithmetic.
//! - random forests and extra trees: grown here ([`crate::random_trees`]), on the values as
//!   they are (missing values and category codes included).

use std::collections::HashSet;
use std::time::Duration;

use perpetual::ContributionsMethod;
use perpetual::objective::Objective;
use perpetual::{ColumnarMatrix, Matrix as PerpetualMatrix, MultiOutputBooster, PerpetualBooster};
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};
use smartcore::linear::ridge_regression::{RidgeRegression, RidgeRegressionParameters};

use quiver_types::error::{Error, Result};

use crate::forest::Forest;
use crate::metrics::Predictions;
use crate::prepare::Matrix;
use crate::problem::ProblemType;
use crate::random_trees::{self, RandomTrees, Randomness};

/// What is learned: the problem type and, for classification, how many classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    pub problem: ProblemType,
    pub classes: usize,
    pub seed: u64,
}

/// A candidate's algorithm and settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Algorithm {
    /// Gradient boosting with this budget (0.5 small and fast, 1.0 the default, 1.5+ larger).
    /// Categories are split on as ordered codes (most frequent level first), or with
    /// perpetual's own categorical splits when `native_categories`: which works better
    /// depends on the data (on a plan-and-tenure churn rule, ordered codes reached AUC 1.0
    /// where native splits reached 0.90), so both are candidates.
    Gbm {
        budget: f32,
        native_categories: bool,
    },
    /// Ridge or logistic regression with this L2 penalty.
    Linear { alpha: f64 },
    /// A random forest or extra trees.
    Trees { randomness: Randomness },
}

impl Algorithm {
    pub fn name(&self) -> String {
        match self {
            Self::Gbm {
                budget,
                native_categories: false,
            } => format!("perpetual-gbm-budget-{budget:.1}"),
            Self::Gbm { budget, .. } => {
                format!("perpetual-gbm-budget-{budget:.1}-native-categories")
            }
            Self::Linear { alpha } => format!("linear-l2-{alpha}"),
            Self::Trees { randomness } => randomness.name().to_string(),
        }
    }

    /// Fits on `x` and `y` (values, or class indexes); `timeout` bounds gradient boosting.
    pub fn fit(
        &self,
        x: &Matrix,
        y: &[f64],
        task: Task,
        timeout: Option<Duration>,
    ) -> Result<Model> {
        match *self {
            Self::Gbm {
                budget,
                native_categories,
            } => fit_gbm(x, y, task, budget, native_categories, timeout).map(Model::Gbm),
            Self::Linear { alpha } => fit_linear(x, y, task, alpha).map(Model::Linear),
            Self::Trees { randomness } => {
                random_trees::fit(x, y, task, randomness, timeout).map(Model::Trees)
            }
        }
    }
}

/// A fitted model.
#[derive(Clone, Serialize, Deserialize)]
pub enum Model {
    Gbm(Gbm),
    Linear(Linear),
    Trees(RandomTrees),
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gbm(_) => f.write_str("Model::Gbm"),
            Self::Linear(l) => write!(
                f,
                "Model::Linear({} inputs)",
                l.weights.first().map_or(0, Vec::len)
            ),
            Self::Trees(t) => write!(f, "Model::Trees({t:?})"),
        }
    }
}

impl Model {
    pub fn predict(&self, x: &Matrix) -> Predictions {
        match self {
            Self::Gbm(g) => g.predict(x),
            Self::Linear(l) => l.predict(x),
            Self::Trees(t) => t.predict(x),
        }
    }

    /// Each column's mean absolute SHAP value over the rows of `x`, in the model's margin
    /// (the value for regression, log-odds for classification, a forest's probabilities),
    /// summed over the outputs of a multiclass model. Gradient boosting: perpetual's exact
    /// tree SHAP. Linear: exact for a linear model, `weight * (encoded value - its mean over
    /// x)`, summed over the encoded inputs a column makes (one-hot levels, a missing
    /// indicator). Random trees: exact tree SHAP ([`crate::random_trees`]).
    pub fn mean_abs_shap(&self, x: &Matrix) -> Vec<f64> {
        match self {
            Self::Gbm(g) => g.mean_abs_shap(x),
            Self::Linear(l) => l.mean_abs_shap(x),
            Self::Trees(t) => t.mean_abs_shap(x),
        }
    }
}

fn columnar(x: &Matrix) -> ColumnarMatrix<'_, f64> {
    ColumnarMatrix::new(x.columns.iter().map(Vec::as_slice).collect(), None, x.rows)
}

// --- gradient boosting ----------------------------------------------------------------------

/// The memory one gradient boosting fit may use, in GB (perpetual's `memory_limit`: its binned
/// copy of the data, its histograms and its trees). Without a limit perpetual sizes its
/// histogram arena at 70% of the machine's free memory: a build on 1M rows x 100 features
/// then peaked at 12.7 GiB, beside the online store. Fold models are fitted one at a time, so
/// a job's gradient boosting uses about this much on top of the job's data (perpetual's
/// limit is its own estimate: with it, that build peaked at 3.8 GiB, data included).
pub const GBM_MEMORY_LIMIT_GB: f32 = 1.5;

/// A fitted gradient boosting model: perpetual's booster, which is what is stored, and the
/// same model flattened for prediction ([`Forest`]), built again when a model is loaded.
#[derive(Clone, Serialize, Deserialize)]
#[serde(from = "Booster", into = "Booster")]
pub struct Gbm {
    booster: Booster,
    forest: Forest,
}

/// perpetual's boosters (the stored form of [`Gbm`]).
#[derive(Clone, Serialize, Deserialize)]
pub enum Booster {
    /// Regression or binary classification.
    Single(Box<PerpetualBooster>),
    /// Multiclass: one output per class.
    Multi(Box<MultiOutputBooster>),
}

impl From<Booster> for Gbm {
    fn from(booster: Booster) -> Self {
        let forest = match &booster {
            Booster::Single(b) => Forest::single(b),
            Booster::Multi(b) => Forest::multi(b),
        };
        Gbm { booster, forest }
    }
}

impl From<Gbm> for Booster {
    fn from(gbm: Gbm) -> Self {
        gbm.booster
    }
}

impl Gbm {
    pub fn booster(&self) -> &Booster {
        &self.booster
    }

    pub fn forest(&self) -> &Forest {
        &self.forest
    }
}

fn fit_gbm(
    x: &Matrix,
    y: &[f64],
    task: Task,
    budget: f32,
    native_categories: bool,
    timeout: Option<Duration>,
) -> Result<Gbm> {
    let categorical: HashSet<usize> = x
        .categorical
        .iter()
        .enumerate()
        .filter_map(|(i, c)| (*c && native_categories).then_some(i))
        .collect();
    let categorical = (!categorical.is_empty()).then_some(categorical);
    let timeout = timeout.map(|t| t.as_secs_f32().max(0.1));
    let data = columnar(x);
    let failed = |e: perpetual::errors::PerpetualError| {
        Error::internal(format!("gradient boosting failed: {e}"))
    };
    match task.problem {
        ProblemType::Regression | ProblemType::BinaryClassification => {
            let objective = if task.problem == ProblemType::Regression {
                Objective::SquaredLoss
            } else {
                Objective::LogLoss
            };
            let mut booster = PerpetualBooster::default()
                .set_objective(objective)
                .set_budget(budget)
                .set_seed(task.seed)
                .set_categorical_features(categorical)
                .set_timeout(timeout)
                .set_memory_limit(Some(GBM_MEMORY_LIMIT_GB))
                .set_log_iterations(0);
            booster.fit_columnar(&data, y, None, None).map_err(failed)?;
            Ok(Booster::Single(Box::new(booster)).into())
        }
        ProblemType::MulticlassClassification => {
            let classes = task.classes;
            let mut one_hot = vec![0.0; x.rows * classes];
            for (r, c) in y.iter().enumerate() {
                one_hot[(*c as usize) * x.rows + r] = 1.0;
            }
            let targets = PerpetualMatrix::new(&one_hot, x.rows, classes);
            let mut booster = MultiOutputBooster::default()
                .set_n_boosters(classes)
                .set_objective(Objective::LogLoss)
                .set_budget(budget)
                .set_seed(task.seed)
                .set_categorical_features(categorical)
                .set_timeout(timeout)
                // One booster per class, fitted one after another.
                .set_memory_limit(Some(GBM_MEMORY_LIMIT_GB))
                .set_log_iterations(0);
            booster
                .fit_columnar(&data, &targets, None, None)
                .map_err(failed)?;
            Ok(Booster::Multi(Box::new(booster)).into())
        }
    }
}

impl Gbm {
    fn mean_abs_shap(&self, x: &Matrix) -> Vec<f64> {
        let data = columnar(x);
        let width = x.columns.len() + 1;
        let contributions = match &self.booster {
            Booster::Single(b) => {
                b.predict_contributions_columnar(&data, ContributionsMethod::Shapley, true)
            }
            Booster::Multi(b) => {
                b.predict_contributions_columnar(&data, ContributionsMethod::Shapley, true)
            }
        };
        let mut sums = vec![0.0; x.columns.len()];
        // Rows of `width` values (the last is the bias), one block of rows per output.
        for row in contributions.chunks(width) {
            for (sum, value) in sums.iter_mut().zip(row) {
                *sum += value.abs();
            }
        }
        sums.iter().map(|s| s / x.rows.max(1) as f64).collect()
    }

    fn predict(&self, x: &Matrix) -> Predictions {
        let out = self.forest.predict(x);
        match self.forest.outputs() {
            1 if matches!(&self.booster, Booster::Single(b) if matches!(b.cfg.objective, Objective::LogLoss)) => {
                Predictions::Probabilities {
                    classes: 2,
                    p: out.iter().flat_map(|p| [1.0 - p, *p]).collect(),
                }
            }
            1 => Predictions::Values(out),
            classes => Predictions::Probabilities { classes, p: out },
        }
    }
}

// --- linear ---------------------------------------------------------------------------------

/// The most levels of a category one-hot encoded for linear models.
const MAX_ONE_HOT: usize = 20;

/// How a linear model reads one feature.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Encoding {
    /// (value or median - mean) / scale, and 1 where the value was missing (with `indicator`).
    Number {
        median: f64,
        mean: f64,
        scale: f64,
        indicator: bool,
    },
    /// 1 for the code's column among these codes.
    OneHot { codes: Vec<f64> },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Linear {
    encodings: Vec<Encoding>,
    /// Per output (one for regression and binary, one per class for multiclass).
    weights: Vec<Vec<f64>>,
    intercepts: Vec<f64>,
    problem: ProblemType,
    /// Multiclass: the class index of each output.
    outputs: Vec<usize>,
    classes: usize,
}

fn encode_plan(x: &Matrix) -> Vec<Encoding> {
    x.columns
        .iter()
        .zip(&x.categorical)
        .map(|(column, categorical)| {
            let present: Vec<f64> = column.iter().copied().filter(|v| !v.is_nan()).collect();
            if *categorical {
                let mut counts = std::collections::HashMap::new();
                for v in &present {
                    *counts.entry(v.to_bits()).or_insert(0usize) += 1;
                }
                let mut by_count: Vec<(u64, usize)> = counts.into_iter().collect();
                by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                Encoding::OneHot {
                    codes: by_count
                        .iter()
                        .take(MAX_ONE_HOT)
                        .map(|(b, _)| f64::from_bits(*b))
                        .collect(),
                }
            } else {
                let mut sorted = present.clone();
                sorted.sort_by(f64::total_cmp);
                let median = if sorted.is_empty() {
                    0.0
                } else {
                    sorted[sorted.len() / 2]
                };
                let n = present.len().max(1) as f64;
                let mean = present.iter().sum::<f64>() / n;
                let var = present.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                Encoding::Number {
                    median,
                    mean,
                    scale: if var > 0.0 { var.sqrt() } else { 1.0 },
                    indicator: present.len() < column.len(),
                }
            }
        })
        .collect()
}

/// Row-major encoded inputs.
fn encode(plan: &[Encoding], x: &Matrix) -> Vec<Vec<f64>> {
    (0..x.rows)
        .map(|r| {
            let mut row = Vec::new();
            for (encoding, column) in plan.iter().zip(&x.columns) {
                let v = column[r];
                match encoding {
                    Encoding::Number {
                        median,
                        mean,
                        scale,
                        indicator,
                    } => {
                        let value = if v.is_nan() { *median } else { v };
                        row.push((value - mean) / scale);
                        if *indicator {
                            row.push(if v.is_nan() { 1.0 } else { 0.0 });
                        }
                    }
                    Encoding::OneHot { codes } => {
                        row.extend(codes.iter().map(|c| if *c == v { 1.0 } else { 0.0 }));
                    }
                }
            }
            row
        })
        .collect()
}

fn fit_linear(x: &Matrix, y: &[f64], task: Task, alpha: f64) -> Result<Linear> {
    let encodings = encode_plan(x);
    let rows = encode(&encodings, x);
    let width = rows.first().map_or(0, Vec::len);
    if width == 0 {
        return Err(Error::validation(
            "a linear model needs at least one feature",
        ));
    }
    let failed =
        |e: smartcore::error::Failed| Error::internal(format!("the linear model failed: {e}"));
    let matrix = DenseMatrix::from_2d_vec(&rows).map_err(failed)?;
    let (weights, intercepts, outputs) = match task.problem {
        ProblemType::Regression => {
            let model = RidgeRegression::fit(
                &matrix,
                &y.to_vec(),
                RidgeRegressionParameters::default().with_alpha(alpha),
            )
            .map_err(failed)?;
            let coefficients = model.coefficients();
            let w: Vec<f64> = (0..width).map(|j| *coefficients.get((j, 0))).collect();
            (vec![w], vec![*model.intercept()], vec![0])
        }
        _ => {
            let labels: Vec<i32> = y.iter().map(|c| *c as i32).collect();
            let model = LogisticRegression::fit(
                &matrix,
                &labels,
                LogisticRegressionParameters::default().with_alpha(alpha),
            )
            .map_err(failed)?;
            let coefficients = model.coefficients();
            let intercept = model.intercept();
            let (outputs_n, _) = coefficients.shape();
            let weights = (0..outputs_n)
                .map(|k| (0..width).map(|j| *coefficients.get((k, j))).collect())
                .collect();
            let intercepts = (0..outputs_n).map(|k| *intercept.get((k, 0))).collect();
            let outputs = model.classes().iter().map(|c| *c as usize).collect();
            (weights, intercepts, outputs)
        }
    };
    Ok(Linear {
        encodings,
        weights,
        intercepts,
        problem: task.problem,
        outputs,
        classes: task.classes,
    })
}

impl Linear {
    fn mean_abs_shap(&self, x: &Matrix) -> Vec<f64> {
        let rows = encode(&self.encodings, x);
        // Which column each encoded input comes from.
        let mut owner = Vec::new();
        for (column, encoding) in self.encodings.iter().enumerate() {
            let inputs = match encoding {
                Encoding::Number { indicator, .. } => 1 + usize::from(*indicator),
                Encoding::OneHot { codes } => codes.len(),
            };
            owner.extend(std::iter::repeat_n(column, inputs));
        }
        let n = rows.len().max(1) as f64;
        let means: Vec<f64> = (0..owner.len())
            .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
            .collect();
        let mut sums = vec![0.0; x.columns.len()];
        let mut per_column = vec![0.0; x.columns.len()];
        for weights in &self.weights {
            for row in &rows {
                per_column.iter_mut().for_each(|v| *v = 0.0);
                for (j, value) in row.iter().enumerate() {
                    per_column[owner[j]] += weights[j] * (value - means[j]);
                }
                for (sum, v) in sums.iter_mut().zip(&per_column) {
                    *sum += v.abs();
                }
            }
        }
        sums.iter().map(|s| s / n).collect()
    }

    fn predict(&self, x: &Matrix) -> Predictions {
        let rows = encode(&self.encodings, x);
        let score = |k: usize, row: &[f64]| {
            self.intercepts[k]
                + self.weights[k]
                    .iter()
                    .zip(row)
                    .map(|(w, v)| w * v)
                    .sum::<f64>()
        };
        match self.problem {
            ProblemType::Regression => {
                Predictions::Values(rows.iter().map(|r| score(0, r)).collect())
            }
            _ if self.weights.len() == 1 => {
                // Binary: one output, the logit of the larger class index present.
                let positive = *self.outputs.last().unwrap_or(&1);
                let mut p = vec![0.0; rows.len() * self.classes];
                for (r, row) in rows.iter().enumerate() {
                    let q = 1.0 / (1.0 + (-score(0, row)).exp());
                    let negative = self.outputs.first().copied().unwrap_or(0);
                    p[r * self.classes + positive] = q;
                    p[r * self.classes + negative] += 1.0 - q;
                }
                Predictions::Probabilities {
                    classes: self.classes,
                    p,
                }
            }
            _ => {
                let mut p = vec![0.0; rows.len() * self.classes];
                for (r, row) in rows.iter().enumerate() {
                    let scores: Vec<f64> = (0..self.weights.len()).map(|k| score(k, row)).collect();
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f64 = exps.iter().sum();
                    for (k, e) in exps.iter().enumerate() {
                        p[r * self.classes + self.outputs[k]] = e / total;
                    }
                }
                Predictions::Probabilities {
                    classes: self.classes,
                    p,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metric;

    /// y = 3 a - 2 b (+ a category's effect), with a missing value or two.
    fn data(rows: usize) -> (Matrix, Vec<f64>, Vec<f64>) {
        let mut rng_state = 7u64;
        let mut next = || {
            rng_state = rng_state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((rng_state >> 33) as f64) / (1u64 << 31) as f64
        };
        let a: Vec<f64> = (0..rows).map(|_| next() * 4.0 - 2.0).collect();
        let b: Vec<f64> = (0..rows).map(|_| next() * 4.0 - 2.0).collect();
        let c: Vec<f64> = (0..rows).map(|i| (i % 3) as f64).collect();
        let value: Vec<f64> = (0..rows).map(|i| 3.0 * a[i] - 2.0 * b[i] + c[i]).collect();
        let class: Vec<f64> = value
            .iter()
            .map(|v| if *v > 0.5 { 1.0 } else { 0.0 })
            .collect();
        let mut a_missing = a.clone();
        a_missing[3] = f64::NAN;
        (
            Matrix {
                rows,
                columns: vec![a_missing, b, c],
                categorical: vec![false, false, true],
            },
            value,
            class,
        )
    }

    #[test]
    fn every_learner_learns_a_simple_relation() {
        let (x, value, class) = data(600);
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
        for algorithm in [
            Algorithm::Gbm {
                budget: 0.5,
                native_categories: false,
            },
            Algorithm::Gbm {
                budget: 0.5,
                native_categories: true,
            },
            Algorithm::Linear { alpha: 0.1 },
            Algorithm::Trees {
                randomness: Randomness::Forest,
            },
            Algorithm::Trees {
                randomness: Randomness::ExtraTrees,
            },
        ] {
            let model = algorithm.fit(&x, &value, regression, None).unwrap();
            let r2 = Metric::R2.score(&value, &model.predict(&x));
            assert!(r2 > 0.9, "{}: R2 {r2}", algorithm.name());
            let model = algorithm.fit(&x, &class, binary, None).unwrap();
            let auc = Metric::Auc.score(&class, &model.predict(&x));
            assert!(auc > 0.95, "{}: AUC {auc}", algorithm.name());
        }
        // Three classes by the value's tercile.
        let multi = Task {
            problem: ProblemType::MulticlassClassification,
            classes: 3,
            seed: 1,
        };
        let classes: Vec<f64> = value
            .iter()
            .map(|v| {
                if *v < -1.0 {
                    0.0
                } else if *v < 2.0 {
                    1.0
                } else {
                    2.0
                }
            })
            .collect();
        for algorithm in [
            Algorithm::Gbm {
                budget: 0.5,
                native_categories: false,
            },
            Algorithm::Gbm {
                budget: 0.5,
                native_categories: true,
            },
            Algorithm::Linear { alpha: 0.1 },
            Algorithm::Trees {
                randomness: Randomness::Forest,
            },
            Algorithm::Trees {
                randomness: Randomness::ExtraTrees,
            },
        ] {
            let model = algorithm.fit(&x, &classes, multi, None).unwrap();
            let predicted = model.predict(&x);
            let accuracy = Metric::Accuracy.score(&classes, &predicted);
            assert!(accuracy > 0.8, "{}: accuracy {accuracy}", algorithm.name());
            let sums: Vec<f64> = (0..x.rows).map(|r| predicted.row(r).iter().sum()).collect();
            assert!(
                sums.iter().all(|s| (s - 1.0).abs() < 1e-6),
                "probabilities sum to 1"
            );
            // The model survives serialization.
            let json = serde_json::to_vec(&model).unwrap();
            let back: Model = serde_json::from_slice(&json).unwrap();
            assert_eq!(back.predict(&x), predicted);
        }
    }
}
