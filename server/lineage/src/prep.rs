//! The lineage Quiver records for its data preparation runs, as for its AutoML jobs: each run
//! is a trial component (`prep-<run>`, its source the run's ARN) with its recipe as parameters;
//! the data it read ContributedTo it; it Produced its output (a feature group's context, or a
//! file's artifact of type `DataSet`).

use std::collections::BTreeMap;

use quiver_types::error::Result;
use quiver_types::model::FeatureGroup;
use quiver_types::time::EpochMillis;

use crate::Lineage;
use crate::automl::{AutoMlInput, string_parameters};
use crate::datasets::DATASET_TYPE;
use crate::experiments::NewTrialComponent;
use crate::model::AssociationType;

/// A trial component's SourceType for Quiver's recipe runs.
pub const RECIPE_RUN_SOURCE_TYPE: &str = "QuiverRecipeRun";

/// Where a run wrote.
#[derive(Debug, Clone)]
pub enum PrepOutput<'a> {
    Group(&'a FeatureGroup),
    File(String),
}

/// A recipe run that ended.
#[derive(Debug, Clone)]
pub struct PrepRun<'a> {
    pub run_name: String,
    pub run_arn: String,
    pub inputs: Vec<AutoMlInput<'a>>,
    pub output: PrepOutput<'a>,
    /// Completed, Failed or Stopped.
    pub status: String,
    pub failure_reason: Option<String>,
    pub started_ms: EpochMillis,
    pub ended_ms: EpochMillis,
    /// The recipe's name and version, steps, rows written.
    pub parameters: BTreeMap<String, String>,
}

impl Lineage {
    /// Records a run that ended (again for each attempt: the associations are kept once);
    /// returns its trial component's ARN.
    pub fn record_prep_run(&self, run: &PrepRun<'_>) -> Result<String> {
        let name = format!("prep-{}", run.run_name);
        let component = self.trial_component_once(NewTrialComponent {
            name,
            status: Some(run.status.clone()),
            status_message: run
                .failure_reason
                .clone()
                .map(|r| r.chars().take(1024).collect()),
            start_ms: Some(run.started_ms),
            end_ms: Some(run.ended_ms.max(run.started_ms)),
            parameters: string_parameters(&run.parameters),
            source_arn: Some(run.run_arn.clone()),
            source_type: Some(RECIPE_RUN_SOURCE_TYPE.to_string()),
            ..NewTrialComponent::default()
        })?;
        for input in &run.inputs {
            let input = self.input_arn(input)?;
            self.associate_once(&input, &component, AssociationType::ContributedTo)?;
        }
        let output = match &run.output {
            PrepOutput::Group(group) => {
                self.record_feature_group(group)?;
                crate::feature_groups::group_context_arn(self, group)
            }
            PrepOutput::File(uri) => {
                let mut properties = BTreeMap::new();
                properties.insert("RecipeRunName".to_string(), run.run_name.clone());
                self.artifact_for(uri, DATASET_TYPE, properties, None)?
            }
        };
        self.associate_once(&component, &output, AssociationType::Produced)?;
        Ok(component)
    }
}
