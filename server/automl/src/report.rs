//! The reports Canvas shows after a build, as data (served as JSON, drawn as HTML elsewhere):
//!
//! - data exploration: rows and columns, each column's type, missing values, distinct values,
//!   statistics and histogram, the target's distribution, correlations between numbers, each
//!   feature's prediction power alone, and warnings (skew, possible leakage, imbalance, many
//!   missing values);
//! - model quality: the metrics, the confusion matrix, ROC and precision-recall curves
//!   (classification), predicted against actual and the residuals (regression), all on the
//!   out-of-fold predictions, which no model saw in training.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::frame::{ColumnKind, Frame};
use crate::metrics::{Confusion, Metric, Predictions};
use crate::problem::{ProblemType, Target};

const HISTOGRAM_BINS: usize = 10;
/// How many levels of a category a report lists.
const TOP_LEVELS: usize = 10;
/// A feature that predicts the target alone this well may leak it.
const LEAKAGE_POWER: f64 = 0.95;
/// At most this many points are kept for a curve or a scatter plot.
const MAX_POINTS: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataReport {
    pub rows: usize,
    pub columns: usize,
    pub column_summaries: Vec<ColumnSummary>,
    /// The target, when the data is explored for one (always, for AutoML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetSummary>,
    /// The most correlated pairs of numeric columns (Pearson), strongest first.
    pub correlations: Vec<Correlation>,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSummary {
    pub name: String,
    pub kind: ColumnKind,
    pub missing: usize,
    pub distinct: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistics: Option<Statistics>,
    /// Numbers: equal-width bins over [min, max].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub histogram: Vec<Bin>,
    /// Categories: the commonest levels and their counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_levels: Vec<(String, usize)>,
    /// How well this column alone predicts the target (0 to 1): the share of the target's
    /// variance its values (binned) explain. `None` for the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prediction_power: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statistics {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub std_dev: f64,
    pub median: f64,
    pub skewness: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub low: f64,
    pub high: f64,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSummary {
    pub name: String,
    pub problem: ProblemType,
    /// Classification: each class and its count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<(String, usize)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistics: Option<Statistics>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correlation {
    pub a: String,
    pub b: String,
    pub pearson: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    /// `Skewed`, `PossibleLeakage`, `Imbalanced`, `ManyMissing`, `SkewedTarget`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub detail: String,
}

/// Explores `frame` for predicting `target`.
pub fn explore(frame: &Frame, target: &Target) -> DataReport {
    profile(frame, Some(target))
}

/// Explores `frame`, for predicting `target` if one is named (data preparation's quality
/// report has none unless asked).
pub fn profile(frame: &Frame, target: Option<&Target>) -> DataReport {
    let y: Vec<f64> = target.map(|t| t.y.clone()).unwrap_or_default();
    let mut warnings = Vec::new();
    let mut summaries = Vec::new();
    for column in &frame.columns {
        let present: Vec<f64> = column
            .values
            .iter()
            .copied()
            .filter(|v| !v.is_nan())
            .collect();
        let mut distinct: Vec<u64> = present.iter().map(|v| v.to_bits()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let numeric = matches!(column.kind, ColumnKind::Number | ColumnKind::Integer);
        let statistics = numeric.then(|| statistics(&present)).flatten();
        let histogram = if numeric {
            histogram(&present)
        } else {
            Vec::new()
        };
        let top_levels = if column.kind == ColumnKind::Category {
            top_levels(&column.levels, &present)
        } else {
            Vec::new()
        };
        let is_target = target.is_some_and(|t| column.name == t.name);
        let power = target.filter(|_| !is_target).map(|target| {
            let x: Vec<f64> = target.rows.iter().map(|&r| column.values[r]).collect();
            prediction_power(&x, column.kind == ColumnKind::Category, &y, target)
        });
        let missing = column.values.len() - present.len();
        if missing * 2 > column.values.len() {
            warnings.push(Warning {
                kind: "ManyMissing".into(),
                column: Some(column.name.clone()),
                detail: format!("{missing} of {} values are missing", column.values.len()),
            });
        }
        if let Some(s) = &statistics
            && s.skewness.abs() > 2.0
        {
            warnings.push(Warning {
                kind: if is_target { "SkewedTarget" } else { "Skewed" }.into(),
                column: Some(column.name.clone()),
                detail: format!("skewness {:.2}: a few large values dominate", s.skewness),
            });
        }
        if let (Some(p), Some(target)) = (power, target)
            && p >= LEAKAGE_POWER
        {
            warnings.push(Warning {
                kind: "PossibleLeakage".into(),
                column: Some(column.name.clone()),
                detail: format!(
                    "alone it predicts {} almost perfectly (power {p:.3}): check it is known before the target is",
                    target.name
                ),
            });
        }
        summaries.push(ColumnSummary {
            name: column.name.clone(),
            kind: column.kind,
            missing,
            distinct: distinct.len(),
            statistics,
            histogram,
            top_levels,
            prediction_power: power,
        });
    }
    let target_summary = target.map(|target| {
        let mut classes = Vec::new();
        if target.problem.is_classification() {
            let mut counts = vec![0usize; target.classes.len()];
            for c in &y {
                counts[*c as usize] += 1;
            }
            let smallest = counts.iter().copied().min().unwrap_or(0);
            if (smallest as f64) < 0.1 * y.len() as f64 {
                warnings.push(Warning {
                    kind: "Imbalanced".into(),
                    column: Some(target.name.clone()),
                    detail: format!(
                        "the rarest class has {smallest} of {} rows: accuracy flatters; read F1, recall and AUC",
                        y.len()
                    ),
                });
            }
            classes = target.classes.iter().cloned().zip(counts).collect();
        }
        TargetSummary {
            name: target.name.clone(),
            problem: target.problem,
            classes,
            statistics: (target.problem == ProblemType::Regression)
                .then(|| statistics(&y))
                .flatten(),
        }
    });
    DataReport {
        rows: frame.rows,
        columns: frame.columns.len(),
        column_summaries: summaries,
        target: target_summary,
        correlations: correlations(frame, target.map_or("", |t| t.name.as_str())),
        warnings,
    }
}

fn statistics(values: &[f64]) -> Option<Statistics> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let std_dev = var.sqrt();
    let skewness = if std_dev > 0.0 {
        values
            .iter()
            .map(|v| ((v - mean) / std_dev).powi(3))
            .sum::<f64>()
            / n
    } else {
        0.0
    };
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(Statistics {
        min: sorted[0],
        max: sorted[sorted.len() - 1],
        mean,
        std_dev,
        median: sorted[sorted.len() / 2],
        skewness,
    })
}

fn histogram(values: &[f64]) -> Vec<Bin> {
    let Some(s) = statistics(values) else {
        return Vec::new();
    };
    let width = (s.max - s.min) / HISTOGRAM_BINS as f64;
    if width <= 0.0 {
        return vec![Bin {
            low: s.min,
            high: s.max,
            count: values.len(),
        }];
    }
    let mut counts = vec![0usize; HISTOGRAM_BINS];
    for v in values {
        counts[(((v - s.min) / width) as usize).min(HISTOGRAM_BINS - 1)] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| Bin {
            low: s.min + i as f64 * width,
            high: s.min + (i + 1) as f64 * width,
            count,
        })
        .collect()
}

fn top_levels(levels: &[String], codes: &[f64]) -> Vec<(String, usize)> {
    let mut counts: HashMap<usize, usize> = HashMap::new();
    for c in codes {
        *counts.entry(*c as usize).or_default() += 1;
    }
    let mut sorted: Vec<(usize, usize)> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    sorted
        .into_iter()
        .take(TOP_LEVELS)
        .map(|(code, count)| (levels[code].clone(), count))
        .collect()
}

/// The share of the target's variance (per class, averaged, for classification) explained by
/// the column's bins (deciles for numbers, levels for categories; missing values a bin).
fn prediction_power(x: &[f64], categorical: bool, y: &[f64], target: &Target) -> f64 {
    let bins: Vec<u64> = if categorical {
        x.iter()
            .map(|v| if v.is_nan() { u64::MAX } else { *v as u64 })
            .collect()
    } else {
        let mut sorted: Vec<f64> = x.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return 0.0;
        }
        // Deciles, distinct: a value's bin is how many cuts lie below it.
        let mut cuts: Vec<f64> = (1..10).map(|i| sorted[sorted.len() * i / 10]).collect();
        cuts.dedup();
        x.iter()
            .map(|v| {
                if v.is_nan() {
                    u64::MAX
                } else {
                    cuts.iter().filter(|c| **c < *v).count() as u64
                }
            })
            .collect()
    };
    let outputs: Vec<Vec<f64>> = match target.problem {
        ProblemType::Regression => vec![y.to_vec()],
        _ => (0..target.classes.len())
            .map(|k| {
                y.iter()
                    .map(|c| if *c as usize == k { 1.0 } else { 0.0 })
                    .collect()
            })
            .collect(),
    };
    let explained: Vec<f64> = outputs
        .iter()
        .map(|out| {
            let n = out.len() as f64;
            let mean = out.iter().sum::<f64>() / n;
            let total: f64 = out.iter().map(|v| (v - mean).powi(2)).sum();
            if total == 0.0 {
                return 0.0;
            }
            let mut groups: HashMap<u64, (f64, f64)> = HashMap::new();
            for (b, v) in bins.iter().zip(out) {
                let g = groups.entry(*b).or_default();
                g.0 += v;
                g.1 += 1.0;
            }
            let between: f64 = groups
                .values()
                .map(|(sum, count)| count * (sum / count - mean).powi(2))
                .sum();
            (between / total).clamp(0.0, 1.0)
        })
        .collect();
    explained.iter().sum::<f64>() / explained.len().max(1) as f64
}

fn correlations(frame: &Frame, target: &str) -> Vec<Correlation> {
    let numeric: Vec<_> = frame
        .columns
        .iter()
        .filter(|c| c.name != target && matches!(c.kind, ColumnKind::Number | ColumnKind::Integer))
        .take(50)
        .collect();
    let mut pairs = Vec::new();
    for (i, a) in numeric.iter().enumerate() {
        for b in &numeric[i + 1..] {
            let both: Vec<(f64, f64)> = a
                .values
                .iter()
                .zip(&b.values)
                .filter(|(x, y)| !x.is_nan() && !y.is_nan())
                .map(|(x, y)| (*x, *y))
                .collect();
            let r = pearson(&both);
            if r.is_finite() {
                pairs.push(Correlation {
                    a: a.name.clone(),
                    b: b.name.clone(),
                    pearson: r,
                });
            }
        }
    }
    pairs.sort_by(|x, y| y.pearson.abs().total_cmp(&x.pearson.abs()));
    pairs.truncate(20);
    pairs
}

fn pearson(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 3.0 {
        return f64::NAN;
    }
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in points {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    sxy / (sxx * syy).sqrt()
}

/// How good the chosen model is, on out-of-fold predictions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    pub problem: ProblemType,
    pub objective: Metric,
    pub metrics: BTreeMap<Metric, f64>,
    /// Rows the figures are computed on.
    pub validated_rows: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confusion: Option<Confusion>,
    /// Binary: (false positive rate, true positive rate), threshold descending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roc: Vec<(f64, f64)>,
    /// Binary: (recall, precision), threshold descending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub precision_recall: Vec<(f64, f64)>,
    /// Regression: (actual, predicted), a sample.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predicted_vs_actual: Vec<(f64, f64)>,
    /// Regression: the residuals' (actual - predicted) histogram.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub residuals: Vec<Bin>,
    /// Each feature's mean |SHAP| under the model, largest first (`explain`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feature_importance: Vec<crate::explain::Importance>,
}

pub fn model_quality(
    problem: ProblemType,
    objective: Metric,
    metrics: BTreeMap<Metric, f64>,
    actual: &[f64],
    oof: &Predictions,
    classes: usize,
) -> ModelReport {
    let mut report = ModelReport {
        problem,
        objective,
        metrics,
        validated_rows: actual.len(),
        confusion: None,
        roc: Vec::new(),
        precision_recall: Vec::new(),
        predicted_vs_actual: Vec::new(),
        residuals: Vec::new(),
        feature_importance: Vec::new(),
    };
    match oof {
        Predictions::Values(p) => {
            let step = (actual.len() / MAX_POINTS).max(1);
            report.predicted_vs_actual = actual
                .iter()
                .zip(p)
                .step_by(step)
                .map(|(a, p)| (*a, *p))
                .collect();
            let residuals: Vec<f64> = actual.iter().zip(p).map(|(a, p)| a - p).collect();
            report.residuals = histogram(&residuals);
        }
        Predictions::Probabilities { .. } => {
            report.confusion = Some(Confusion::new(classes, actual, &oof.labels()));
            if classes == 2 {
                let scores: Vec<f64> = (0..actual.len()).map(|r| oof.row(r)[1]).collect();
                let (roc, pr) = curves(actual, &scores);
                report.roc = roc;
                report.precision_recall = pr;
            }
        }
    }
    report
}

/// Points of a curve: (x, y).
type Curve = Vec<(f64, f64)>;

/// ROC and precision-recall points, thresholds from the highest score down.
fn curves(actual: &[f64], scores: &[f64]) -> (Curve, Curve) {
    let mut order: Vec<usize> = (0..actual.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let positives = actual.iter().filter(|a| **a == 1.0).count() as f64;
    let negatives = actual.len() as f64 - positives;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut roc = vec![(0.0, 0.0)];
    let mut pr = Vec::new();
    let step = (order.len() / MAX_POINTS).max(1);
    for (i, &r) in order.iter().enumerate() {
        if actual[r] == 1.0 {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_score = i + 1 == order.len() || scores[order[i + 1]] != scores[r];
        if last_of_score && (i % step == 0 || i + 1 == order.len()) {
            roc.push((
                if negatives > 0.0 { fp / negatives } else { 0.0 },
                if positives > 0.0 { tp / positives } else { 0.0 },
            ));
            pr.push((
                if positives > 0.0 { tp / positives } else { 0.0 },
                tp / (tp + fp),
            ));
        }
    }
    (roc, pr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Column;

    #[test]
    fn exploration_flags_leakage_imbalance_and_skew() {
        let n = 200;
        let label: Vec<f64> = (0..n)
            .map(|i| if i % 12 == 0 { 1.0 } else { 0.0 })
            .collect();
        let mut skewed: Vec<f64> = (0..n).map(|i| (i % 5) as f64).collect();
        skewed[3] = 10_000.0;
        let frame = Frame::new(vec![
            Column::number("leak", label.iter().map(|v| v * 100.0).collect()),
            Column::number("skewed", skewed),
            Column::number("noise", (0..n).map(|i| ((i * 7919) % 13) as f64).collect()),
            Column::number("label", label),
        ])
        .unwrap();
        let target = Target::from_frame(&frame, "label", None).unwrap();
        let report = explore(&frame, &target);
        let kinds: Vec<(&str, Option<&str>)> = report
            .warnings
            .iter()
            .map(|w| (w.kind.as_str(), w.column.as_deref()))
            .collect();
        assert!(
            kinds.contains(&("PossibleLeakage", Some("leak"))),
            "{kinds:?}"
        );
        assert!(kinds.contains(&("Imbalanced", Some("label"))), "{kinds:?}");
        assert!(kinds.contains(&("Skewed", Some("skewed"))), "{kinds:?}");
        assert!(!kinds.iter().any(|(_, c)| *c == Some("noise")), "{kinds:?}");
        let noise = report
            .column_summaries
            .iter()
            .find(|c| c.name == "noise")
            .unwrap();
        assert!(noise.prediction_power.unwrap() < 0.2);
        assert_eq!(noise.histogram.iter().map(|b| b.count).sum::<usize>(), n);
        assert_eq!(
            report.target.unwrap().classes,
            [("0".to_string(), 183), ("1".to_string(), 17)]
        );
    }

    #[test]
    fn model_quality_draws_curves_and_counts() {
        let actual = [0.0, 0.0, 1.0, 1.0];
        let oof = Predictions::Probabilities {
            classes: 2,
            p: vec![0.9, 0.1, 0.6, 0.4, 0.35, 0.65, 0.2, 0.8],
        };
        let report = model_quality(
            ProblemType::BinaryClassification,
            Metric::F1,
            BTreeMap::new(),
            &actual,
            &oof,
            2,
        );
        assert_eq!(report.confusion.unwrap().counts, [[2, 0], [0, 2]]);
        assert_eq!(report.roc.first(), Some(&(0.0, 0.0)));
        assert_eq!(report.roc.last(), Some(&(1.0, 1.0)));
        assert!(
            report.roc.contains(&(0.0, 1.0)),
            "a perfect ranking passes through (0, 1)"
        );
        let values = Predictions::Values(vec![1.0, 2.0, 3.5]);
        let report = model_quality(
            ProblemType::Regression,
            Metric::Mse,
            BTreeMap::new(),
            &[1.0, 2.0, 3.0],
            &values,
            0,
        );
        assert_eq!(report.predicted_vs_actual.len(), 3);
        assert_eq!(report.residuals.iter().map(|b| b.count).sum::<usize>(), 3);
    }
}
