//! One AutoML build, end to end: a table and its target in; the model (its cleaning recipe,
//! its ensemble of bagged candidates), the leaderboard and the cleaning steps out. And the
//! model's predictions for new tables, the same for a batch, one record or the online store's.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use quiver_types::error::{Error, Result};

use crate::frame::Frame;
use crate::learners::Task;
use crate::metrics::{Metric, Predictions};
use crate::prepare::{ColumnChoice, Recipe, Step, prepare};
use crate::problem::{ProblemType, Target};
use crate::report::{DataReport, ModelReport, explore, model_quality};
use crate::search::{Candidate, Ensemble, SearchOptions, search};

/// The version of [`TrainedModel`]'s stored form.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// What to build.
#[derive(Debug, Clone)]
pub struct TrainingSpec {
    pub target: String,
    /// Inferred from the target when not given.
    pub problem: Option<ProblemType>,
    /// Autopilot's default for the problem type when not given.
    pub objective: Option<String>,
    pub columns: ColumnChoice,
    /// Wall-clock time for training the candidates.
    pub budget: Duration,
    pub folds: usize,
    pub seed: u64,
    pub max_candidates: Option<usize>,
    /// Set to stop the build early (StopAutoMLJob): what is trained by then is kept.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl TrainingSpec {
    pub fn new(target: &str, budget: Duration) -> Self {
        Self {
            target: target.to_string(),
            problem: None,
            objective: None,
            columns: ColumnChoice::default(),
            budget,
            folds: 5,
            seed: 42,
            max_candidates: None,
            stop: None,
        }
    }
}

/// Where a build is, as Autopilot's secondary statuses say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    AnalyzingData,
    FeatureEngineering,
    TrainingModels,
    GeneratingReports,
}

/// The share of a build's budget kept for its reports (feature importance, mostly: about half
/// a second for an ensemble of random trees and gradient boosting on 5,000 rows).
pub const REPORT_SHARE: f64 = 0.05;

/// A trained model with what is needed to use and explain it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainedModel {
    pub format_version: u32,
    pub target: String,
    pub problem: ProblemType,
    /// Classification's classes, by index; the positive class second for binary.
    pub classes: Vec<String>,
    pub objective: Metric,
    pub recipe: Recipe,
    pub ensemble: Ensemble,
    /// Best first.
    pub leaderboard: Vec<Candidate>,
    pub steps: Vec<Step>,
    /// Rows trained on, after cleaning.
    pub rows: usize,
    pub data_report: DataReport,
    /// The chosen model's quality on out-of-fold predictions.
    pub model_report: ModelReport,
}

/// Builds a model of `spec.target` from `frame`; `stage` is told as the build moves on.
///
/// The budget is the whole build's: the candidates get what is left of it after the data is
/// analysed and prepared, less [`REPORT_SHARE`] of it kept for the reports.
pub fn train(frame: &Frame, spec: &TrainingSpec, stage: &dyn Fn(Stage)) -> Result<TrainedModel> {
    let started = std::time::Instant::now();
    stage(Stage::AnalyzingData);
    if frame.rows == 0 {
        return Err(Error::validation("the data has no rows"));
    }
    let target = Target::from_frame(frame, &spec.target, spec.problem)?;
    let objective = match &spec.objective {
        Some(name) => {
            Metric::parse_objective("AutoMLJobObjective.MetricName", name, target.problem)?
        }
        None => Metric::default_for(target.problem),
    };
    let data_report = explore(frame, &target);
    stage(Stage::FeatureEngineering);
    let prepared = prepare(frame, &target, &spec.columns)?;
    if prepared.y.len() < 2 * spec.folds.max(2) {
        return Err(Error::validation(format!(
            "{} rows are left after cleaning; at least {} are needed to train and validate",
            prepared.y.len(),
            2 * spec.folds.max(2)
        )));
    }
    stage(Stage::TrainingModels);
    let task = Task {
        problem: target.problem,
        classes: target.classes.len(),
        seed: spec.seed,
    };
    let found = search(
        &prepared.matrix,
        &prepared.y,
        task,
        &SearchOptions {
            budget: spec
                .budget
                .saturating_sub(started.elapsed())
                .saturating_sub(spec.budget.mul_f64(REPORT_SHARE)),
            objective,
            folds: spec.folds,
            seed: spec.seed,
            max_candidates: spec.max_candidates,
            stop: spec.stop.clone(),
        },
    )?;
    stage(Stage::GeneratingReports);
    let actual: Vec<f64> = found.validated.iter().map(|&r| prepared.y[r]).collect();
    let ensemble_metrics = found
        .leaderboard
        .iter()
        .find(|c| c.name == crate::search::ENSEMBLE_NAME)
        .map(|c| c.metrics.clone())
        .unwrap_or_default();
    let mut model_report = model_quality(
        target.problem,
        objective,
        ensemble_metrics,
        &actual,
        &found.oof,
        target.classes.len(),
    );
    model_report.feature_importance =
        crate::explain::importance(&found.ensemble, &prepared.recipe, &prepared.matrix);
    Ok(TrainedModel {
        format_version: MODEL_FORMAT_VERSION,
        target: target.name,
        problem: target.problem,
        classes: target.classes,
        objective,
        recipe: prepared.recipe,
        ensemble: found.ensemble,
        leaderboard: found.leaderboard,
        steps: prepared.steps,
        rows: prepared.y.len(),
        data_report,
        model_report,
    })
}

/// A model's predictions for a table's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Per row: the predicted value (regression) or class.
    pub predicted: Vec<String>,
    /// Regression's values, as numbers.
    pub values: Option<Vec<f64>>,
    /// Classification: each row's probability of each class (in `TrainedModel::classes`
    /// order), and of the predicted one.
    pub probabilities: Option<Vec<Vec<f64>>>,
    pub confidence: Option<Vec<f64>>,
}

/// The input rows with their predictions appended: `predicted` (text), and `value`
/// (regression) or `confidence` and `probability_<class>` per class (classification).
pub fn predictions_batch(
    schema: &arrow::datatypes::SchemaRef,
    batches: &[arrow::record_batch::RecordBatch],
    scored: &Scored,
    classes: &[String],
) -> Result<arrow::record_batch::RecordBatch> {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    let input = arrow::compute::concat_batches(schema, batches)
        .map_err(|e| Error::internal(format!("joining the input rows: {e}")))?;
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns: Vec<ArrayRef> = input.columns().to_vec();
    let taken: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
    let mut add = |name: String, data_type: DataType, column: ArrayRef| -> Result<()> {
        if taken.contains(&name) {
            return Err(Error::validation(format!(
                "the input already has a column named '{name}', which the predictions would add"
            )));
        }
        fields.push(Field::new(name, data_type, true));
        columns.push(column);
        Ok(())
    };
    add(
        "predicted".into(),
        DataType::Utf8,
        Arc::new(StringArray::from(scored.predicted.clone())),
    )?;
    if let Some(values) = &scored.values {
        add(
            "value".into(),
            DataType::Float64,
            Arc::new(Float64Array::from(values.clone())),
        )?;
    }
    if let (Some(confidence), Some(probabilities)) = (&scored.confidence, &scored.probabilities) {
        add(
            "confidence".into(),
            DataType::Float64,
            Arc::new(Float64Array::from(confidence.clone())),
        )?;
        for (k, class) in classes.iter().enumerate() {
            let p: Vec<f64> = probabilities.iter().map(|row| row[k]).collect();
            add(
                format!("probability_{class}"),
                DataType::Float64,
                Arc::new(Float64Array::from(p)),
            )?;
        }
    }
    arrow::record_batch::RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::internal(format!("building the predictions: {e}")))
}

impl TrainedModel {
    /// Predicts `frame`'s rows (which need the columns the model reads, not the target).
    pub fn predict(&self, frame: &Frame) -> Result<Scored> {
        let matrix = self.recipe.apply(frame)?;
        Ok(match self.ensemble.predict(&matrix) {
            Predictions::Values(values) => Scored {
                predicted: values.iter().map(|v| v.to_string()).collect(),
                values: Some(values),
                probabilities: None,
                confidence: None,
            },
            predictions @ Predictions::Probabilities { .. } => {
                let rows = predictions.rows();
                let labels = predictions.labels();
                Scored {
                    predicted: labels
                        .iter()
                        .map(|c| self.classes[*c as usize].clone())
                        .collect(),
                    values: None,
                    confidence: Some(
                        (0..rows)
                            .map(|r| predictions.row(r)[labels[r] as usize])
                            .collect(),
                    ),
                    probabilities: Some((0..rows).map(|r| predictions.row(r).to_vec()).collect()),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::frame::{Column, ColumnKind};

    /// Customers: tenure, spend (with gaps), a plan, an id; churn when short tenure and the
    /// basic plan, or spend is low.
    fn customers(rows: usize) -> Frame {
        let tenure: Vec<f64> = (0..rows).map(|i| ((i * 7) % 60) as f64).collect();
        let spend: Vec<f64> = (0..rows)
            .map(|i| {
                if i % 17 == 0 {
                    f64::NAN
                } else {
                    ((i * 13) % 200) as f64
                }
            })
            .collect();
        let plan: Vec<&str> = (0..rows).map(|i| ["basic", "plus", "pro"][i % 3]).collect();
        let churn: Vec<Option<&str>> = (0..rows)
            .map(|i| {
                let churned = (tenure[i] < 20.0 && plan[i] == "basic") || spend[i] < 30.0;
                Some(if churned { "yes" } else { "no" })
            })
            .collect();
        let mut tenure_column = Column::number("tenure", tenure);
        tenure_column.kind = ColumnKind::Integer;
        let ids: Vec<String> = (0..rows).map(|i| format!("c{i}")).collect();
        Frame::new(vec![
            Column::category("customer_id", ids.iter().map(|s| Some(s.as_str()))),
            tenure_column,
            Column::number("spend", spend),
            Column::category("plan", plan.iter().map(|p| Some(*p))),
            Column::category("churned", churn),
        ])
        .unwrap()
    }

    #[test]
    fn a_binary_model_is_built_reported_and_predicts_new_rows() {
        let frame = customers(500);
        let mut spec = TrainingSpec::new("churned", Duration::from_secs(300));
        spec.columns.identifying = vec!["customer_id".into()];
        spec.max_candidates = Some(3);
        let stages = RefCell::new(Vec::new());
        let model = train(&frame, &spec, &|s| stages.borrow_mut().push(s)).unwrap();
        assert_eq!(
            *stages.borrow(),
            [
                Stage::AnalyzingData,
                Stage::FeatureEngineering,
                Stage::TrainingModels,
                Stage::GeneratingReports
            ]
        );
        assert_eq!(model.problem, ProblemType::BinaryClassification);
        assert_eq!(model.objective, Metric::F1);
        let best = &model.leaderboard[0];
        assert!(best.objective > 0.9, "{:#?}", model.leaderboard);
        let confusion = model
            .model_report
            .confusion
            .as_ref()
            .expect("a confusion matrix");
        let counted: u64 = confusion.counts.iter().flatten().sum();
        assert_eq!(counted as usize, model.rows, "every row validated once");
        assert!(model.model_report.metrics[&Metric::F1] > 0.9);
        assert!(model.data_report.target.as_ref().unwrap().classes.len() == 2);
        // A stored model predicts as the one in memory.
        let stored: TrainedModel =
            serde_json::from_slice(&serde_json::to_vec(&model).unwrap()).unwrap();
        let new = frame.take(&[1, 2, 3]);
        let scored = stored.predict(&new).unwrap();
        assert_eq!(scored, model.predict(&new).unwrap());
        let probabilities = scored.probabilities.unwrap();
        assert_eq!(probabilities[0].len(), 2);
        assert!(scored.confidence.unwrap().iter().all(|c| *c >= 0.5));
    }

    #[test]
    fn regression_and_multiclass_are_built_from_the_same_data() {
        let frame = customers(400);
        let mut spec = TrainingSpec::new("tenure", Duration::from_secs(300));
        spec.problem = Some(ProblemType::Regression);
        spec.max_candidates = Some(2);
        let model = train(&frame, &spec, &|_| {}).unwrap();
        assert_eq!(model.objective, Metric::Mse);
        assert!(model.predict(&frame.take(&[0])).unwrap().values.is_some());

        let spec = TrainingSpec {
            max_candidates: Some(2),
            ..TrainingSpec::new("plan", Duration::from_secs(300))
        };
        let model = train(&frame, &spec, &|_| {}).unwrap();
        assert_eq!(model.problem, ProblemType::MulticlassClassification);
        assert_eq!(model.classes, ["basic", "plus", "pro"]);
    }

    #[test]
    fn bad_input_fails_naming_the_problem() {
        let frame = customers(100);
        let err = train(
            &frame,
            &TrainingSpec::new("nope", Duration::from_secs(1)),
            &|_| {},
        )
        .unwrap_err();
        assert!(
            err.message().starts_with("TargetAttributeName 'nope'"),
            "{}",
            err.message()
        );
        let mut spec = TrainingSpec::new("churned", Duration::from_secs(1));
        spec.objective = Some("MSE".into());
        let err = train(&frame, &spec, &|_| {}).unwrap_err();
        assert!(
            err.message().contains("MetricName 'MSE'"),
            "{}",
            err.message()
        );
        let empty = frame.take(&[]);
        let err = train(
            &empty,
            &TrainingSpec::new("churned", Duration::from_secs(1)),
            &|_| {},
        )
        .unwrap_err();
        assert!(err.message().contains("no rows"), "{}", err.message());
    }
}
