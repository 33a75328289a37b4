//! Which features a model relies on: each feature's mean absolute SHAP value, as Canvas and
//! Autopilot's explainability report show it.
//!
//! A SHAP value is a feature's part in moving one prediction away from the average one; its
//! mean absolute value over rows ranks the features. They are computed in each member model's
//! margin: the value for regression; for classification, log-odds for gradient boosting
//! (perpetual's exact tree SHAP) and linear models (exact for a linear model), probabilities
//! for random trees (exact tree SHAP), whose output they are. As units may differ, a
//! feature's share is its members' shares weighted as the ensemble weighs them, and features
//! rank by share; its `mean_abs_shap` is its members' values so weighted. One fold model
//! stands for each bagged member (its folds are fitted on 80% alike samples of the same rows),
//! on a sample of [`SAMPLE_ROWS`] rows: exact tree SHAP costs a tree's leaves times its depth
//! squared per row.

use serde::{Deserialize, Serialize};

use crate::prepare::{Matrix, Recipe};
use crate::search::Ensemble;

/// Rows SHAP values are computed on, evenly spread over the data.
pub const SAMPLE_ROWS: usize = 256;

/// One feature's importance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Importance {
    /// The feature as the model takes it (a date part is its own feature).
    pub feature: String,
    /// The input column it is made from.
    pub source: String,
    /// In the members' margins, weighted (see the module's documentation).
    pub mean_abs_shap: f64,
    /// Its part of all features' mean |SHAP|, 0 to 1.
    pub share: f64,
}

/// The features of `recipe` (the columns of `x`) by their share of mean |SHAP| under
/// `ensemble`, largest first.
pub fn importance(ensemble: &Ensemble, recipe: &Recipe, x: &Matrix) -> Vec<Importance> {
    let step = x.rows.div_ceil(SAMPLE_ROWS).max(1);
    let sample: Vec<usize> = (0..x.rows).step_by(step).collect();
    let sample = x.take(&sample);
    let total_weight: f64 = ensemble.members.iter().map(|(w, _)| w).sum();
    let mut values = vec![0.0; x.columns.len()];
    let mut shares = vec![0.0; x.columns.len()];
    for (weight, bagged) in &ensemble.members {
        let Some(model) = bagged.models.first() else {
            continue;
        };
        let weight = weight / total_weight;
        let shap = model.mean_abs_shap(&sample);
        let sum: f64 = shap.iter().sum();
        for ((value, share), shap) in values.iter_mut().zip(&mut shares).zip(shap) {
            *value += weight * shap;
            if sum > 0.0 {
                *share += weight * shap / sum;
            }
        }
    }
    // Members whose features all had no effect leave the shares summing below 1.
    let share_sum: f64 = shares.iter().sum();
    let mut importance: Vec<Importance> = recipe
        .features
        .iter()
        .zip(values)
        .zip(shares)
        .map(|((feature, value), share)| Importance {
            feature: feature.name.clone(),
            source: feature.source.clone(),
            mean_abs_shap: value,
            share: if share_sum > 0.0 {
                share / share_sum
            } else {
                0.0
            },
        })
        .collect();
    importance.sort_by(|a, b| {
        b.share
            .total_cmp(&a.share)
            .then_with(|| a.feature.cmp(&b.feature))
    });
    importance
}
