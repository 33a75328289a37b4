//! The lineage Quiver records for its AutoML jobs, as SageMaker records its jobs: each job is a
//! trial component (`automl-<job>`, its source the job's ARN) with its settings as parameters
//! and its best model's validation metrics; the data it read ContributedTo it (a feature
//! group's context, a file's or query's artifact, a training set's artifact); it Produced the
//! model, an artifact of type `Model` whose SourceUri is the stored model.

use std::collections::BTreeMap;

use quiver_types::error::{ErrorKind, Result};
use quiver_types::model::FeatureGroup;
use quiver_types::time::EpochMillis;

use crate::Lineage;
use crate::datasets::{DATASET_TYPE, DatasetBase};
use crate::experiments::NewTrialComponent;
use crate::model::{AssociationType, EntityKind, MetricDatum, ParameterValue};

pub const MODEL_TYPE: &str = "Model";
/// A trial component's SourceType for Quiver's AutoML jobs.
pub const AUTOML_JOB_SOURCE_TYPE: &str = "QuiverAutoMLJob";

/// Where a job's data came from.
#[derive(Debug, Clone)]
pub enum AutoMlInput<'a> {
    Group(&'a FeatureGroup),
    /// A file or an SQL statement.
    Base(DatasetBase),
    /// A training set, by its manifest's URI.
    Dataset(String),
}

/// An AutoML job that ended.
#[derive(Debug, Clone)]
pub struct AutoMlRun<'a> {
    pub job_name: String,
    pub job_arn: String,
    /// What it read: one source, or each source of a join.
    pub inputs: Vec<AutoMlInput<'a>>,
    /// Completed, Failed or Stopped.
    pub status: String,
    pub failure_reason: Option<String>,
    pub started_ms: EpochMillis,
    pub ended_ms: EpochMillis,
    /// Target, problem type, objective, best candidate.
    pub parameters: BTreeMap<String, String>,
    /// The best model's validation metrics.
    pub metrics: BTreeMap<String, f64>,
    /// Where the model is stored, when there is one.
    pub model_uri: Option<String>,
}

impl Lineage {
    /// Records a job that ended; returns its trial component's ARN.
    pub fn record_automl_job(&self, run: &AutoMlRun<'_>) -> Result<String> {
        let name = format!("automl-{}", run.job_name);
        let component = self.trial_component_once(NewTrialComponent {
            name: name.clone(),
            status: Some(run.status.clone()),
            status_message: run
                .failure_reason
                .clone()
                .map(|r| r.chars().take(1024).collect()),
            start_ms: Some(run.started_ms),
            end_ms: Some(run.ended_ms.max(run.started_ms)),
            parameters: string_parameters(&run.parameters),
            source_arn: Some(run.job_arn.clone()),
            source_type: Some(AUTOML_JOB_SOURCE_TYPE.to_string()),
            ..NewTrialComponent::default()
        })?;
        let data: Vec<MetricDatum> = run
            .metrics
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(name, value)| MetricDatum {
                name: name.clone(),
                timestamp_ms: run.ended_ms,
                step: None,
                value: *value,
            })
            .collect();
        for chunk in data.chunks(crate::validate::MAX_METRIC_DATA) {
            self.put_metrics(&component, chunk)?;
        }
        for input in &run.inputs {
            let input = self.input_arn(input)?;
            self.associate_once(&input, &component, AssociationType::ContributedTo)?;
        }
        if let Some(uri) = &run.model_uri {
            let mut properties = BTreeMap::new();
            properties.insert("AutoMLJobName".to_string(), run.job_name.clone());
            let model = self.artifact_for(uri, MODEL_TYPE, properties, None)?;
            self.associate_once(&component, &model, AssociationType::Produced)?;
        }
        if let Some(emitter) = &self.emitter {
            emitter.run_completed(
                &format!("automl.{}", run.job_name),
                &[],
                run.model_uri.as_slice(),
                &self.now_iso(),
            );
        }
        Ok(component)
    }

    /// Creates a job's trial component, or finds the one an earlier attempt created (whose
    /// associations may have failed); its ARN.
    pub(crate) fn trial_component_once(&self, component: NewTrialComponent) -> Result<String> {
        let name = component.name.clone();
        match self.create_trial_component(component, None) {
            Ok(entity) => Ok(entity.arn),
            Err(e)
                if e.kind() == ErrorKind::Validation && e.message().contains("already exists") =>
            {
                Ok(self.arn(EntityKind::TrialComponent, &name.to_ascii_lowercase()))
            }
            Err(e) => Err(e),
        }
    }

    /// The entity a job's input is: a group's context, a file's or query's artifact, a
    /// training set's artifact (recorded if new).
    pub(crate) fn input_arn(&self, input: &AutoMlInput<'_>) -> Result<String> {
        Ok(match input {
            AutoMlInput::Group(group) => {
                self.record_feature_group(group)?;
                crate::feature_groups::group_context_arn(self, group)
            }
            AutoMlInput::Base(base) => self.base_artifact(base, None)?.0,
            AutoMlInput::Dataset(uri) => {
                self.artifact_for(uri, DATASET_TYPE, BTreeMap::new(), None)?
            }
        })
    }

    /// Adds an association unless it exists.
    pub(crate) fn associate_once(&self, from: &str, to: &str, kind: AssociationType) -> Result<()> {
        match self.add_association(from, to, Some(kind), None) {
            Err(e)
                if e.kind() == ErrorKind::Validation && e.message().contains("already exists") =>
            {
                Ok(())
            }
            other => other,
        }
    }
}

/// Parameters as trial component parameters (text, at most 2,500 characters each).
pub(crate) fn string_parameters(
    parameters: &BTreeMap<String, String>,
) -> BTreeMap<String, ParameterValue> {
    parameters
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                ParameterValue::String(v.chars().take(2500).collect()),
            )
        })
        .collect()
}
