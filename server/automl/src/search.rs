//! Choosing the model, as the AutoML benchmarks' leaders do: every candidate is scored by
//! k-fold cross-validation (stratified for classification; a holdout past
//! [`HOLDOUT_ROWS`] rows) keeping its out-of-fold predictions and its fold models; candidates
//! run cheapest first while the wall-clock budget lasts; then greedy ensemble selection
//! (Caruana et al.) picks a weighted mix of candidates on the out-of-fold predictions. The fold
//! models are kept and averaged at prediction (bagging), so nothing is refitted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use quiver_types::error::{Error, Result};

use crate::learners::{Algorithm, Model, Task};
use crate::metrics::{self, Metric, Predictions};
use crate::prepare::Matrix;
use crate::problem::ProblemType;
use crate::random_trees::Randomness;

/// Above this many rows, one 80/20 holdout replaces k folds.
pub const HOLDOUT_ROWS: usize = 50_000;
/// The ensemble's name on the leaderboard.
pub const ENSEMBLE_NAME: &str = "weighted-ensemble";
/// How many times greedy selection may add a candidate.
const ENSEMBLE_ROUNDS: usize = 25;

/// How the search runs.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// Wall-clock time for all candidates.
    pub budget: Duration,
    pub objective: Metric,
    pub folds: usize,
    pub seed: u64,
    /// At most this many candidates (besides the ensemble).
    pub max_candidates: Option<usize>,
    /// Set to stop early: no further candidate or fold starts; what is done is kept.
    pub stop: Option<Arc<AtomicBool>>,
}

impl SearchOptions {
    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

/// How a candidate ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CandidateStatus {
    Completed,
    /// The budget ran out before its folds were done: it is not used.
    Stopped,
    Failed,
}

/// A row of the leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub name: String,
    pub status: CandidateStatus,
    /// Why it failed or stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every reported metric, on the out-of-fold predictions.
    pub metrics: BTreeMap<Metric, f64>,
    /// The objective metric's value (NaN when not completed).
    pub objective: f64,
    /// Seconds spent fitting its fold models.
    pub fit_seconds: f64,
    /// Seconds per 1,000 rows predicted (by all its fold models).
    pub predict_seconds_per_1000: f64,
    /// For the ensemble: each member's name and weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<(String, f64)>,
}

/// A fitted candidate: its fold models.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bagged {
    pub name: String,
    pub models: Vec<Model>,
}

/// The chosen model: weighted bagged candidates.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ensemble {
    pub problem: ProblemType,
    pub classes: usize,
    pub members: Vec<(f64, Bagged)>,
}

impl Ensemble {
    pub fn predict(&self, x: &Matrix) -> Predictions {
        let mut total: Option<Vec<f64>> = None;
        let weights: f64 = self.members.iter().map(|(w, _)| w).sum();
        for (weight, bagged) in &self.members {
            for model in &bagged.models {
                let p = flat(model.predict(x));
                let share = weight / weights / bagged.models.len() as f64;
                match &mut total {
                    None => {
                        // In place: a batch's predictions are large, and a lone model's
                        // share is 1 (`v * 1.0` is `v`).
                        let mut p = p;
                        if share != 1.0 {
                            p.iter_mut().for_each(|v| *v *= share);
                        }
                        total = Some(p);
                    }
                    Some(t) => t.iter_mut().zip(&p).for_each(|(t, v)| *t += v * share),
                }
            }
        }
        unflat(self.problem, self.classes, total.unwrap_or_default())
    }
}

fn flat(p: Predictions) -> Vec<f64> {
    match p {
        Predictions::Values(v) => v,
        Predictions::Probabilities { p, .. } => p,
    }
}

fn unflat(problem: ProblemType, classes: usize, v: Vec<f64>) -> Predictions {
    if problem == ProblemType::Regression {
        Predictions::Values(v)
    } else {
        Predictions::Probabilities { classes, p: v }
    }
}

/// What the search found.
#[derive(Debug, Clone)]
pub struct SearchResult {
    /// Best first (by the objective), the ensemble among them; then the others.
    pub leaderboard: Vec<Candidate>,
    pub ensemble: Ensemble,
    /// The ensemble's out-of-fold predictions, row by row as `y`.
    pub oof: Predictions,
    /// The rows the out-of-fold predictions cover (all, or the holdout's).
    pub validated: Vec<usize>,
}

/// The candidates, cheapest first; perpetual's own categorical splits only where there are
/// categories. The random trees come after the default gradient boosting: they seldom win
/// alone, but their errors differ from boosting's, which the ensemble uses.
pub fn schedule(has_categories: bool) -> Vec<Algorithm> {
    let gbm = |budget| Algorithm::Gbm {
        budget,
        native_categories: false,
    };
    let mut candidates = vec![Algorithm::Linear { alpha: 1.0 }, gbm(0.5), gbm(1.0)];
    if has_categories {
        candidates.push(Algorithm::Gbm {
            budget: 1.0,
            native_categories: true,
        });
    }
    candidates.extend([
        Algorithm::Trees {
            randomness: Randomness::ExtraTrees,
        },
        Algorithm::Trees {
            randomness: Randomness::Forest,
        },
        gbm(1.5),
        Algorithm::Linear { alpha: 0.01 },
        gbm(2.0),
    ]);
    candidates
}

/// Each row's fold (`usize::MAX`: training only, in a holdout).
pub fn assign_folds(y: &[f64], task: Task, folds: usize) -> Vec<usize> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(task.seed);
    let rows = y.len();
    let mut fold = vec![usize::MAX; rows];
    if rows > HOLDOUT_ROWS {
        let mut order: Vec<usize> = (0..rows).collect();
        order.shuffle(&mut rng);
        for &r in &order[..rows / 5] {
            fold[r] = 0;
        }
        return fold;
    }
    // Stratified: each class's rows dealt round-robin, continuing where the last class ended.
    let mut groups: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (r, v) in y.iter().enumerate() {
        let key = if task.problem.is_classification() {
            v.to_bits()
        } else {
            0
        };
        groups.entry(key).or_default().push(r);
    }
    let mut next = 0;
    for rows in groups.values_mut() {
        rows.shuffle(&mut rng);
        for &r in rows.iter() {
            fold[r] = next % folds;
            next += 1;
        }
    }
    fold
}

/// Cross-validates each scheduled candidate within the budget and ensembles them.
pub fn search(x: &Matrix, y: &[f64], task: Task, options: &SearchOptions) -> Result<SearchResult> {
    let started = Instant::now();
    let deadline = started + options.budget;
    let folds = options.folds.clamp(2, 10);
    let fold = assign_folds(y, task, folds);
    let fold_count = fold
        .iter()
        .filter(|f| **f != usize::MAX)
        .map(|f| f + 1)
        .max()
        .unwrap_or(1);
    let validated: Vec<usize> = (0..y.len()).filter(|&r| fold[r] != usize::MAX).collect();
    let actual: Vec<f64> = validated.iter().map(|&r| y[r]).collect();
    let mut leaderboard = Vec::new();
    let mut fitted: Vec<(Bagged, Predictions)> = Vec::new();
    let mut candidates = schedule(x.categorical.iter().any(|c| *c));
    if let Some(most) = options.max_candidates {
        candidates.truncate(most.max(1));
    }
    for algorithm in candidates {
        let now = Instant::now();
        if (now >= deadline || options.stopped()) && !fitted.is_empty() {
            break;
        }
        if options.stopped() {
            return Err(Error::validation(
                "stopped before any candidate was trained",
            ));
        }
        // Each fold may take its share of what is left; the first candidate always runs.
        let left = deadline
            .saturating_duration_since(now)
            .max(Duration::from_millis(200));
        let per_fold = left / fold_count as u32;
        let outcome = cross_validate(
            algorithm,
            x,
            y,
            task,
            &fold,
            fold_count,
            per_fold,
            deadline,
            fitted.is_empty(),
            options.stop.as_deref(),
        );
        let mut candidate = Candidate {
            name: algorithm.name(),
            status: CandidateStatus::Completed,
            reason: None,
            metrics: BTreeMap::new(),
            objective: f64::NAN,
            fit_seconds: 0.0,
            predict_seconds_per_1000: 0.0,
            members: Vec::new(),
        };
        match outcome {
            Ok(Folded::Done {
                models,
                oof,
                fit_seconds,
                predict_seconds,
            }) => {
                candidate.metrics = metrics::report(task.problem, &actual, &oof);
                candidate.objective = options.objective.score(&actual, &oof);
                candidate.fit_seconds = fit_seconds;
                candidate.predict_seconds_per_1000 =
                    predict_seconds * 1000.0 / validated.len().max(1) as f64;
                fitted.push((
                    Bagged {
                        name: algorithm.name(),
                        models,
                    },
                    oof,
                ));
            }
            Ok(Folded::OutOfTime { fit_seconds }) => {
                candidate.status = CandidateStatus::Stopped;
                candidate.reason =
                    Some("the time budget ran out before its folds were done".into());
                candidate.fit_seconds = fit_seconds;
            }
            Err(e) => {
                candidate.status = CandidateStatus::Failed;
                candidate.reason = Some(e.message().to_string());
            }
        }
        leaderboard.push(candidate);
    }
    if fitted.is_empty() {
        let reasons: Vec<String> = leaderboard
            .iter()
            .map(|c| format!("{}: {}", c.name, c.reason.as_deref().unwrap_or("-")))
            .collect();
        return Err(Error::validation(format!(
            "no candidate model could be trained ({})",
            reasons.join("; ")
        )));
    }
    let (weights, oof) = select(&fitted, &actual, task, options.objective);
    let members: Vec<(f64, Bagged)> = weights
        .iter()
        .enumerate()
        .filter(|(_, w)| **w > 0.0)
        .map(|(i, w)| (*w, fitted[i].0.clone()))
        .collect();
    let ensemble_row = Candidate {
        name: ENSEMBLE_NAME.into(),
        status: CandidateStatus::Completed,
        reason: None,
        metrics: metrics::report(task.problem, &actual, &oof),
        objective: options.objective.score(&actual, &oof),
        fit_seconds: leaderboard
            .iter()
            .filter(|c| members.iter().any(|(_, b)| b.name == c.name))
            .map(|c| c.fit_seconds)
            .sum(),
        predict_seconds_per_1000: leaderboard
            .iter()
            .filter(|c| members.iter().any(|(_, b)| b.name == c.name))
            .map(|c| c.predict_seconds_per_1000)
            .sum(),
        members: members.iter().map(|(w, b)| (b.name.clone(), *w)).collect(),
    };
    leaderboard.push(ensemble_row);
    let rank = Rank::new(options.objective, task.problem);
    leaderboard.sort_by(|a, b| {
        let done = |c: &Candidate| c.status != CandidateStatus::Completed;
        let scores = |c: &Candidate| {
            let tiebreak = c.metrics.get(&rank.tiebreak).copied();
            (c.objective, tiebreak.unwrap_or(f64::NAN))
        };
        done(a).cmp(&done(b)).then_with(|| {
            if rank.better(scores(a), scores(b)) {
                std::cmp::Ordering::Less
            } else if rank.better(scores(b), scores(a)) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
    });
    Ok(SearchResult {
        leaderboard,
        ensemble: Ensemble {
            problem: task.problem,
            classes: task.classes,
            members,
        },
        oof,
        validated,
    })
}

enum Folded {
    Done {
        models: Vec<Model>,
        /// Over the validated rows, in their order.
        oof: Predictions,
        fit_seconds: f64,
        predict_seconds: f64,
    },
    OutOfTime {
        fit_seconds: f64,
    },
}

#[allow(clippy::too_many_arguments)]
fn cross_validate(
    algorithm: Algorithm,
    x: &Matrix,
    y: &[f64],
    task: Task,
    fold: &[usize],
    folds: usize,
    per_fold: Duration,
    deadline: Instant,
    must_finish: bool,
    stop: Option<&AtomicBool>,
) -> Result<Folded> {
    let width = match task.problem {
        ProblemType::Regression => 1,
        _ => task.classes,
    };
    let validated: Vec<usize> = (0..y.len()).filter(|&r| fold[r] != usize::MAX).collect();
    let position: BTreeMap<usize, usize> =
        validated.iter().enumerate().map(|(i, r)| (*r, i)).collect();
    let mut oof = vec![0.0; validated.len() * width];
    let mut models = Vec::with_capacity(folds);
    let (mut fit_seconds, mut predict_seconds) = (0.0, 0.0);
    for k in 0..folds {
        let stopped = stop.is_some_and(|s| s.load(Ordering::Relaxed));
        if (Instant::now() >= deadline && !must_finish) || stopped {
            return Ok(Folded::OutOfTime { fit_seconds });
        }
        let train: Vec<usize> = (0..y.len()).filter(|&r| fold[r] != k).collect();
        let test: Vec<usize> = (0..y.len()).filter(|&r| fold[r] == k).collect();
        let train_y: Vec<f64> = train.iter().map(|&r| y[r]).collect();
        let started = Instant::now();
        let model = algorithm.fit(&x.take(&train), &train_y, task, Some(per_fold))?;
        fit_seconds += started.elapsed().as_secs_f64();
        let started = Instant::now();
        let predicted = flat(model.predict(&x.take(&test)));
        predict_seconds += started.elapsed().as_secs_f64();
        for (i, r) in test.iter().enumerate() {
            let at = position[r] * width;
            oof[at..at + width].copy_from_slice(&predicted[i * width..(i + 1) * width]);
        }
        models.push(model);
    }
    Ok(Folded::Done {
        models,
        oof: unflat(task.problem, task.classes, oof),
        fit_seconds,
        predict_seconds,
    })
}

/// How predictions are ranked: by the objective, then, where it ties, by log loss for
/// classes or squared error for values. Ties are common when the objective counts (accuracy
/// or F1 on a few hundred rows, where several candidates are all right); the second metric
/// then prefers the candidate whose probabilities are better calibrated.
#[derive(Debug, Clone, Copy)]
struct Rank {
    objective: Metric,
    tiebreak: Metric,
}

impl Rank {
    fn new(objective: Metric, problem: ProblemType) -> Self {
        let tiebreak = if problem.is_classification() {
            Metric::LogLoss
        } else {
            Metric::Mse
        };
        Rank {
            objective,
            tiebreak,
        }
    }

    fn score(&self, actual: &[f64], predicted: &Predictions) -> (f64, f64) {
        (
            self.objective.score(actual, predicted),
            self.tiebreak.score(actual, predicted),
        )
    }

    /// Whether scores `a` are better than `b`.
    fn better(&self, a: (f64, f64), b: (f64, f64)) -> bool {
        if self.objective.better(a.0, b.0) {
            true
        } else if self.objective.better(b.0, a.0) || a.0.is_nan() != b.0.is_nan() {
            false
        } else {
            self.tiebreak.better(a.1, b.1)
        }
    }
}

/// Greedy ensemble selection with replacement: each round adds the candidate that makes the
/// average of the chosen out-of-fold predictions score best ([`Rank`]); the best round's
/// counts are the weights. Returns the weights and the ensemble's out-of-fold predictions.
fn select(
    fitted: &[(Bagged, Predictions)],
    actual: &[f64],
    task: Task,
    objective: Metric,
) -> (Vec<f64>, Predictions) {
    let rank = Rank::new(objective, task.problem);
    let flats: Vec<Vec<f64>> = fitted.iter().map(|(_, p)| flat(p.clone())).collect();
    let len = flats[0].len();
    let mut counts = vec![0usize; fitted.len()];
    let mut sum = vec![0.0; len];
    let mut best: Option<((f64, f64), Vec<usize>)> = None;
    for round in 1..=ENSEMBLE_ROUNDS {
        let mut pick: Option<(usize, (f64, f64))> = None;
        for (i, f) in flats.iter().enumerate() {
            let mixed: Vec<f64> = sum
                .iter()
                .zip(f)
                .map(|(s, v)| (s + v) / round as f64)
                .collect();
            let score = rank.score(actual, &unflat(task.problem, task.classes, mixed));
            if pick.is_none_or(|(_, s)| rank.better(score, s)) {
                pick = Some((i, score));
            }
        }
        let Some((i, score)) = pick else { break };
        counts[i] += 1;
        sum.iter_mut().zip(&flats[i]).for_each(|(s, v)| *s += v);
        if best.as_ref().is_none_or(|(s, _)| rank.better(score, *s)) {
            best = Some((score, counts.clone()));
        }
    }
    let counts = best.map(|(_, c)| c).unwrap_or_else(|| {
        let mut c = vec![0; fitted.len()];
        c[0] = 1;
        c
    });
    let total: usize = counts.iter().sum();
    let weights: Vec<f64> = counts.iter().map(|c| *c as f64 / total as f64).collect();
    let mut mixed = vec![0.0; len];
    for (w, f) in weights.iter().zip(&flats) {
        mixed.iter_mut().zip(f).for_each(|(m, v)| *m += w * v);
    }
    (weights, unflat(task.problem, task.classes, mixed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_stratified_and_a_holdout_past_the_threshold() {
        let y: Vec<f64> = (0..100).map(|i| if i < 20 { 1.0 } else { 0.0 }).collect();
        let task = Task {
            problem: ProblemType::BinaryClassification,
            classes: 2,
            seed: 3,
        };
        let fold = assign_folds(&y, task, 5);
        for k in 0..5 {
            let positives = (0..100).filter(|&r| fold[r] == k && y[r] == 1.0).count();
            assert_eq!(positives, 4, "fold {k} has its share of the rare class");
        }
        let big = vec![0.0; HOLDOUT_ROWS + 10];
        let fold = assign_folds(
            &big,
            Task {
                problem: ProblemType::Regression,
                classes: 0,
                seed: 3,
            },
            5,
        );
        let validated = fold.iter().filter(|f| **f == 0).count();
        assert_eq!(validated, (HOLDOUT_ROWS + 10) / 5);
    }

    #[test]
    fn the_search_ranks_candidates_and_ensembles_them() {
        let rows = 400;
        let a: Vec<f64> = (0..rows)
            .map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0)
            .collect();
        let b: Vec<f64> = (0..rows)
            .map(|i| ((i * 53) % 97) as f64 / 48.0 - 1.0)
            .collect();
        // Not linear: a classifier must find the interaction.
        let y: Vec<f64> = (0..rows)
            .map(|i| if a[i] * b[i] > 0.0 { 1.0 } else { 0.0 })
            .collect();
        let x = Matrix {
            rows,
            columns: vec![a, b],
            categorical: vec![false, false],
        };
        let task = Task {
            problem: ProblemType::BinaryClassification,
            classes: 2,
            seed: 1,
        };
        let result = search(
            &x,
            &y,
            task,
            &SearchOptions {
                budget: Duration::from_secs(300),
                objective: Metric::F1,
                folds: 5,
                seed: 1,
                max_candidates: Some(3),
                stop: None,
            },
        )
        .unwrap();
        let names: Vec<&str> = result.leaderboard.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(result.leaderboard.len(), 4, "{names:?}");
        let best = &result.leaderboard[0];
        assert!(best.objective > 0.85, "{best:?}");
        let linear = result
            .leaderboard
            .iter()
            .find(|c| c.name.starts_with("linear"))
            .unwrap();
        assert!(
            best.objective > linear.objective,
            "boosting beats a line on an interaction"
        );
        for c in &result.leaderboard {
            assert!(c.metrics.contains_key(&Metric::Auc), "{c:?}");
        }
        let predicted = result.ensemble.predict(&x);
        assert!(Metric::Accuracy.score(&y, &predicted) > 0.9);
    }
}
