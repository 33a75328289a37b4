//! How good predictions are: SageMaker Autopilot's objective metrics (regression MSE, binary
//! F1, multiclass accuracy by default) and the others a report shows (AUC, log loss, balanced
//! accuracy, precision, recall, macro F1, RMSE, MAE, R2), and the confusion matrix.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use quiver_types::error::{Error, Result, quote};

use crate::problem::ProblemType;

/// What a model predicts for a set of rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Predictions {
    /// One value per row.
    Values(Vec<f64>),
    /// Each row's class probabilities, row after row (`classes` per row).
    Probabilities { classes: usize, p: Vec<f64> },
}

impl Predictions {
    pub fn rows(&self) -> usize {
        match self {
            Self::Values(v) => v.len(),
            Self::Probabilities { classes, p } => p.len() / (*classes).max(1),
        }
    }

    /// Row `row`'s probabilities.
    pub fn row(&self, row: usize) -> &[f64] {
        match self {
            Self::Values(v) => std::slice::from_ref(&v[row]),
            Self::Probabilities { classes, p } => &p[row * classes..(row + 1) * classes],
        }
    }

    /// The predicted value, or the most probable class's index, per row.
    pub fn labels(&self) -> Vec<f64> {
        match self {
            Self::Values(v) => v.clone(),
            Self::Probabilities { .. } => (0..self.rows())
                .map(|r| argmax(self.row(r)) as f64)
                .collect(),
        }
    }
}

fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// A metric, and whether more is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Metric {
    #[serde(rename = "MSE")]
    Mse,
    #[serde(rename = "RMSE")]
    Rmse,
    #[serde(rename = "MAE")]
    Mae,
    R2,
    Accuracy,
    BalancedAccuracy,
    F1,
    F1macro,
    Precision,
    PrecisionMacro,
    Recall,
    RecallMacro,
    #[serde(rename = "AUC")]
    Auc,
    LogLoss,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Self::Mse => "MSE",
            Self::Rmse => "RMSE",
            Self::Mae => "MAE",
            Self::R2 => "R2",
            Self::Accuracy => "Accuracy",
            Self::BalancedAccuracy => "BalancedAccuracy",
            Self::F1 => "F1",
            Self::F1macro => "F1macro",
            Self::Precision => "Precision",
            Self::PrecisionMacro => "PrecisionMacro",
            Self::Recall => "Recall",
            Self::RecallMacro => "RecallMacro",
            Self::Auc => "AUC",
            Self::LogLoss => "LogLoss",
        }
    }

    pub fn higher_is_better(self) -> bool {
        !matches!(self, Self::Mse | Self::Rmse | Self::Mae | Self::LogLoss)
    }

    /// Autopilot's default objective for a problem type.
    pub fn default_for(problem: ProblemType) -> Self {
        match problem {
            ProblemType::Regression => Self::Mse,
            ProblemType::BinaryClassification => Self::F1,
            ProblemType::MulticlassClassification => Self::Accuracy,
        }
    }

    /// The metrics reported for a problem type, its default objective first.
    pub fn reported_for(problem: ProblemType) -> &'static [Metric] {
        match problem {
            ProblemType::Regression => &[Self::Mse, Self::Rmse, Self::Mae, Self::R2],
            ProblemType::BinaryClassification => &[
                Self::F1,
                Self::Auc,
                Self::Accuracy,
                Self::BalancedAccuracy,
                Self::Precision,
                Self::Recall,
                Self::LogLoss,
            ],
            ProblemType::MulticlassClassification => &[
                Self::Accuracy,
                Self::F1macro,
                Self::BalancedAccuracy,
                Self::PrecisionMacro,
                Self::RecallMacro,
                Self::LogLoss,
            ],
        }
    }

    /// An objective the caller named (`AutoMLJobObjective.MetricName`) for `problem`.
    pub fn parse_objective(field: &str, text: &str, problem: ProblemType) -> Result<Self> {
        let allowed = Self::reported_for(problem);
        allowed
            .iter()
            .copied()
            .find(|m| m.name() == text && *m != Self::LogLoss)
            .ok_or_else(|| {
                let names: Vec<&str> = allowed
                    .iter()
                    .filter(|m| **m != Self::LogLoss)
                    .map(|m| m.name())
                    .collect();
                Error::validation(format!(
                    "{field} {} is not an objective for {}: one of {}",
                    quote(text),
                    problem.name(),
                    names.join(", ")
                ))
            })
    }

    /// Whether `a` is better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        if a.is_nan() {
            return false;
        }
        if b.is_nan() {
            return true;
        }
        if self.higher_is_better() {
            a > b
        } else {
            a < b
        }
    }

    /// This metric of `predicted` against `actual` (values, or class indexes).
    pub fn score(self, actual: &[f64], predicted: &Predictions) -> f64 {
        match (self, predicted) {
            (Self::Mse, Predictions::Values(p)) => {
                mean(actual.iter().zip(p).map(|(a, p)| (a - p).powi(2)))
            }
            (Self::Rmse, _) => Self::Mse.score(actual, predicted).sqrt(),
            (Self::Mae, Predictions::Values(p)) => {
                mean(actual.iter().zip(p).map(|(a, p)| (a - p).abs()))
            }
            (Self::R2, Predictions::Values(p)) => {
                let m = mean(actual.iter().copied());
                let total: f64 = actual.iter().map(|a| (a - m).powi(2)).sum();
                let residual: f64 = actual.iter().zip(p).map(|(a, p)| (a - p).powi(2)).sum();
                if total == 0.0 {
                    0.0
                } else {
                    1.0 - residual / total
                }
            }
            (_, Predictions::Values(_)) => f64::NAN,
            (Self::LogLoss, Predictions::Probabilities { .. }) => mean(
                actual
                    .iter()
                    .enumerate()
                    .map(|(r, a)| -predicted.row(r)[*a as usize].clamp(1e-15, 1.0).ln()),
            ),
            (Self::Auc, Predictions::Probabilities { classes: 2, .. }) => {
                let scores: Vec<f64> = (0..actual.len()).map(|r| predicted.row(r)[1]).collect();
                auc(actual, &scores)
            }
            (Self::Auc, _) => f64::NAN,
            (metric, Predictions::Probabilities { classes, .. }) => {
                let confusion = Confusion::new(*classes, actual, &predicted.labels());
                confusion.metric(metric)
            }
        }
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// The area under the ROC curve of `scores` for the positive class (1), ties counted half.
pub fn auc(actual: &[f64], scores: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..actual.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let positives = actual.iter().filter(|a| **a == 1.0).count() as f64;
    let negatives = actual.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    // Sum of the positives' ranks, average ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &r in &order[i..=j] {
            if actual[r] == 1.0 {
                rank_sum += rank;
            }
        }
        i = j + 1;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Counts of (actual class, predicted class).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub classes: usize,
    /// `counts[actual][predicted]`.
    pub counts: Vec<Vec<u64>>,
}

impl Confusion {
    pub fn new(classes: usize, actual: &[f64], predicted: &[f64]) -> Self {
        let mut counts = vec![vec![0; classes]; classes];
        for (a, p) in actual.iter().zip(predicted) {
            counts[*a as usize][*p as usize] += 1;
        }
        Self { classes, counts }
    }

    fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    fn true_positives(&self, class: usize) -> f64 {
        self.counts[class][class] as f64
    }

    fn predicted(&self, class: usize) -> f64 {
        self.counts.iter().map(|row| row[class]).sum::<u64>() as f64
    }

    fn actual(&self, class: usize) -> f64 {
        self.counts[class].iter().sum::<u64>() as f64
    }

    fn precision(&self, class: usize) -> f64 {
        ratio(self.true_positives(class), self.predicted(class))
    }

    fn recall(&self, class: usize) -> f64 {
        ratio(self.true_positives(class), self.actual(class))
    }

    fn f1(&self, class: usize) -> f64 {
        let (p, r) = (self.precision(class), self.recall(class));
        ratio(2.0 * p * r, p + r)
    }

    fn macro_of(&self, per_class: impl Fn(usize) -> f64) -> f64 {
        let present: Vec<usize> = (0..self.classes)
            .filter(|&c| self.actual(c) > 0.0)
            .collect();
        mean(present.into_iter().map(per_class))
    }

    /// A classification metric; for binary ones, of the positive class (1).
    pub fn metric(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Accuracy => ratio(
                (0..self.classes).map(|c| self.true_positives(c)).sum(),
                self.total() as f64,
            ),
            Metric::BalancedAccuracy | Metric::RecallMacro => self.macro_of(|c| self.recall(c)),
            Metric::F1 => self.f1(1),
            Metric::F1macro => self.macro_of(|c| self.f1(c)),
            Metric::Precision => self.precision(1),
            Metric::PrecisionMacro => self.macro_of(|c| self.precision(c)),
            Metric::Recall => self.recall(1),
            _ => f64::NAN,
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

/// Every metric reported for `problem`, by name.
pub fn report(
    problem: ProblemType,
    actual: &[f64],
    predicted: &Predictions,
) -> BTreeMap<Metric, f64> {
    Metric::reported_for(problem)
        .iter()
        .map(|m| (*m, m.score(actual, predicted)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn regression_metrics() {
        let actual = [1.0, 2.0, 3.0, 4.0];
        let p = Predictions::Values(vec![1.0, 2.0, 3.0, 6.0]);
        close(Metric::Mse.score(&actual, &p), 1.0);
        close(Metric::Rmse.score(&actual, &p), 1.0);
        close(Metric::Mae.score(&actual, &p), 0.5);
        close(Metric::R2.score(&actual, &p), 1.0 - 4.0 / 5.0);
    }

    #[test]
    fn binary_metrics_as_scikit_learn_computes_them() {
        // scikit-learn gives: f1 0.667, precision 0.5, recall 1.0, accuracy 0.75, balanced
        // accuracy 0.833, roc_auc 1.0 (the one positive outscores every negative).
        let actual = [0.0, 0.0, 1.0, 0.0];
        let positive = [0.1, 0.6, 0.8, 0.3];
        let p = Predictions::Probabilities {
            classes: 2,
            p: positive.iter().flat_map(|q| [1.0 - q, *q]).collect(),
        };
        close(Metric::F1.score(&actual, &p), 2.0 / 3.0);
        close(Metric::Precision.score(&actual, &p), 0.5);
        close(Metric::Recall.score(&actual, &p), 1.0);
        close(Metric::Accuracy.score(&actual, &p), 0.75);
        close(
            Metric::BalancedAccuracy.score(&actual, &p),
            (2.0 / 3.0 + 1.0) / 2.0,
        );
        close(Metric::Auc.score(&actual, &p), 1.0);
        let expected_log_loss = -(0.9f64.ln() + 0.4f64.ln() + 0.8f64.ln() + 0.7f64.ln()) / 4.0;
        close(Metric::LogLoss.score(&actual, &p), expected_log_loss);
        close(auc(&[0.0, 1.0, 0.0, 1.0], &[0.5, 0.5, 0.2, 0.9]), 0.875);
    }

    #[test]
    fn multiclass_metrics_and_objectives() {
        let actual = [0.0, 1.0, 2.0, 2.0];
        let p = Predictions::Probabilities {
            classes: 3,
            p: vec![0.8, 0.1, 0.1, 0.2, 0.3, 0.5, 0.1, 0.1, 0.8, 0.3, 0.3, 0.4],
        };
        close(Metric::Accuracy.score(&actual, &p), 0.75);
        // Per class F1: 1, 0, 0.8 -> macro 0.6.
        close(Metric::F1macro.score(&actual, &p), 0.6);
        assert_eq!(
            Metric::default_for(ProblemType::BinaryClassification),
            Metric::F1
        );
        assert!(Metric::Mse.better(1.0, 2.0) && Metric::F1.better(0.9, 0.8));
        let err = Metric::parse_objective(
            "AutoMLJobObjective.MetricName",
            "MSE",
            ProblemType::BinaryClassification,
        )
        .unwrap_err();
        assert!(err.message().contains("F1, AUC"), "{}", err.message());
    }
}
