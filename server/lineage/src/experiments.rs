//! SageMaker Experiments on the lineage graph: experiments hold trials, trials hold trial
//! components (AssociateTrialComponent), and a trial component is a run: its status, start and
//! end, parameters, input and output artifacts, and metrics (SageMaker Metrics'
//! BatchPutMetrics). All three are entities of the graph (named, listed, deleted as the others
//! are, see `entities.rs`); trial components and experiments can also be ends of associations
//! and vertices of QueryLineage. Membership is kept as index keys both ways
//! ([`keys::member`]), so that a trial's components, a component's trials and an experiment's
//! trials are prefix scans.
//!
//! Deletes follow SageMaker: an experiment with trials, a trial with components and a
//! component still in a trial are refused, naming what to remove first.

use std::collections::{BTreeMap, BTreeSet};

use quiver_storage::lineage_records::{LineageBatch, LineageTable};
use quiver_types::error::{Error, Result, quote};
use quiver_types::model::validate::check_len;
use quiver_types::time::EpochMillis;

use crate::entities::{EntityListQuery, EntitySort};
use crate::keys::{self, Relation};
use crate::model::{
    Entity, EntityKind, ExperimentFields, MetadataProperties, MetricDatum, MetricSummary,
    NewEntity, Page, ParameterValue, RunArtifact, Source, Tag,
};
use crate::{Lineage, encode, not_found, validate};

/// CreateExperiment.
#[derive(Debug, Clone, Default)]
pub struct NewExperiment {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
}

/// CreateTrial.
#[derive(Debug, Clone, Default)]
pub struct NewTrial {
    pub name: String,
    pub display_name: Option<String>,
    pub experiment_name: String,
    pub metadata: MetadataProperties,
    pub tags: Vec<Tag>,
}

/// CreateTrialComponent; `source_arn` and `source_type` name the job that made it, when one
/// of the server's own did (`Source` in DescribeTrialComponent).
#[derive(Debug, Clone, Default)]
pub struct NewTrialComponent {
    pub name: String,
    pub display_name: Option<String>,
    pub status: Option<String>,
    pub status_message: Option<String>,
    pub start_ms: Option<EpochMillis>,
    pub end_ms: Option<EpochMillis>,
    pub parameters: BTreeMap<String, ParameterValue>,
    pub input_artifacts: BTreeMap<String, RunArtifact>,
    pub output_artifacts: BTreeMap<String, RunArtifact>,
    pub metadata: MetadataProperties,
    pub tags: Vec<Tag>,
    pub source_arn: Option<String>,
    pub source_type: Option<String>,
}

/// UpdateExperiment (display name, description), UpdateTrial (display name),
/// UpdateTrialComponent (the rest). `None` keeps a value; maps are merged, then the keys to
/// remove removed.
#[derive(Debug, Clone, Default)]
pub struct ExperimentUpdate {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub status_message: Option<String>,
    pub start_ms: Option<EpochMillis>,
    pub end_ms: Option<EpochMillis>,
    pub parameters: BTreeMap<String, ParameterValue>,
    pub parameters_to_remove: Vec<String>,
    pub input_artifacts: BTreeMap<String, RunArtifact>,
    pub input_artifacts_to_remove: Vec<String>,
    pub output_artifacts: BTreeMap<String, RunArtifact>,
    pub output_artifacts_to_remove: Vec<String>,
}

/// ListExperiments, ListTrials, ListTrialComponents.
#[derive(Debug, Clone)]
pub struct ExperimentListQuery {
    pub kind: EntityKind,
    /// Trials of this experiment; trial components in its trials.
    pub experiment_name: Option<String>,
    /// Trial components in this trial.
    pub trial_name: Option<String>,
    /// Trials holding this trial component.
    pub trial_component_name: Option<String>,
    /// Trial components made by this job.
    pub source_arn: Option<String>,
    pub created_after_ms: Option<EpochMillis>,
    pub created_before_ms: Option<EpochMillis>,
    pub sort_by: EntitySort,
    pub descending: bool,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

/// Why BatchPutMetrics refused one value, as SageMaker Metrics reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricError {
    /// `METRIC_LIMIT_EXCEEDED`: a new metric past [`validate::MAX_METRICS`].
    LimitExceeded,
    /// `VALIDATION_ERROR`: a bad name or a value that is not a finite number.
    Validation,
}

impl MetricError {
    pub fn code(self) -> &'static str {
        match self {
            Self::LimitExceeded => "METRIC_LIMIT_EXCEEDED",
            Self::Validation => "VALIDATION_ERROR",
        }
    }
}

impl Lineage {
    pub fn create_experiment(&self, new: NewExperiment, by: Option<&str>) -> Result<Entity> {
        let kind = EntityKind::Experiment;
        validate::check_entity_name("ExperimentName", kind, &new.name)?;
        validate::check_display_name(new.display_name.as_deref())?;
        validate::check_description(new.description.as_deref())?;
        validate::check_tags(&new.tags)?;
        let fields = ExperimentFields {
            display_name: new.display_name,
            ..ExperimentFields::default()
        };
        let entity = base(kind, new.name, new.description, new.tags);
        self.create_entity(entity, Some(fields), by, |_, _| Ok(()))
    }

    /// Creates a trial in an existing experiment (ResourceNotFound otherwise).
    pub fn create_trial(&self, new: NewTrial, by: Option<&str>) -> Result<Entity> {
        let kind = EntityKind::Trial;
        validate::check_entity_name("TrialName", kind, &new.name)?;
        validate::check_entity_name(
            "ExperimentName",
            EntityKind::Experiment,
            &new.experiment_name,
        )?;
        validate::check_display_name(new.display_name.as_deref())?;
        validate::check_metadata(&new.metadata)?;
        validate::check_tags(&new.tags)?;
        // The experiment's own spelling of its name; it is checked again under the lock.
        let experiment = self.load(
            EntityKind::Experiment,
            "ExperimentName",
            &new.experiment_name,
        )?;
        let experiment_arn = experiment.arn;
        let fields = ExperimentFields {
            display_name: new.display_name,
            experiment_name: experiment.name,
            ..ExperimentFields::default()
        };
        let mut entity = base(kind, new.name, None, new.tags);
        entity.metadata = new.metadata;
        self.create_entity(entity, Some(fields), by, |batch, trial| {
            if self.get(&experiment_arn)?.is_none() {
                return Err(not_found(EntityKind::Experiment, &new.experiment_name));
            }
            batch.put(
                LineageTable::Index,
                &keys::member(Relation::Trials, &experiment_arn, &trial.arn),
                b"",
            );
            Ok(())
        })
    }

    pub fn create_trial_component(
        &self,
        new: NewTrialComponent,
        by: Option<&str>,
    ) -> Result<Entity> {
        let kind = EntityKind::TrialComponent;
        validate::check_entity_name("TrialComponentName", kind, &new.name)?;
        validate::check_display_name(new.display_name.as_deref())?;
        validate::check_trial_component_status(
            new.status.as_deref(),
            new.status_message.as_deref(),
        )?;
        check_times(new.start_ms, new.end_ms)?;
        validate::check_parameters(&new.parameters)?;
        validate::check_run_artifacts("InputArtifacts", &new.input_artifacts)?;
        validate::check_run_artifacts("OutputArtifacts", &new.output_artifacts)?;
        validate::check_metadata(&new.metadata)?;
        validate::check_tags(&new.tags)?;
        if let Some(arn) = &new.source_arn {
            check_len("Source.SourceArn", arn, 1, validate::MAX_ARN_LEN)?;
        }
        let fields = ExperimentFields {
            display_name: new.display_name,
            status_message: new.status_message,
            start_ms: new.start_ms,
            end_ms: new.end_ms,
            parameters: new.parameters,
            input_artifacts: new.input_artifacts,
            output_artifacts: new.output_artifacts,
            ..ExperimentFields::default()
        };
        let mut entity = base(kind, new.name, None, new.tags);
        entity.status = new.status;
        entity.metadata = new.metadata;
        entity.entity_type = new.source_type.clone().unwrap_or_default();
        entity.source = Source {
            source_uri: new.source_arn.unwrap_or_default(),
            source_types: Vec::new(),
            source_type: new.source_type,
            source_id: None,
        };
        self.create_entity(entity, Some(fields), by, |_, _| Ok(()))
    }

    /// UpdateExperiment, UpdateTrial, UpdateTrialComponent.
    pub fn update_experiment_entity(
        &self,
        kind: EntityKind,
        field: &str,
        name_or_arn: &str,
        update: ExperimentUpdate,
        by: Option<&str>,
    ) -> Result<Entity> {
        check_update(kind, &update)?;
        self.modify(kind, field, name_or_arn, by, |entity| {
            let fields = entity
                .experiment
                .get_or_insert_with(ExperimentFields::default);
            if let Some(display_name) = update.display_name {
                fields.display_name = Some(display_name);
            }
            if let Some(status) = update.status {
                entity.status = Some(status);
                fields.status_message = update.status_message;
            } else if update.status_message.is_some() {
                fields.status_message = update.status_message;
            }
            if let Some(start) = update.start_ms {
                fields.start_ms = Some(start);
            }
            if let Some(end) = update.end_ms {
                fields.end_ms = Some(end);
            }
            check_times(fields.start_ms, fields.end_ms)?;
            merge(
                &mut fields.parameters,
                update.parameters,
                &update.parameters_to_remove,
            );
            merge(
                &mut fields.input_artifacts,
                update.input_artifacts,
                &update.input_artifacts_to_remove,
            );
            merge(
                &mut fields.output_artifacts,
                update.output_artifacts,
                &update.output_artifacts_to_remove,
            );
            validate::check_map_count(
                "Parameters (after the update)",
                fields.parameters.len(),
                validate::MAX_PARAMETERS,
            )?;
            for (name, artifacts) in [
                ("InputArtifacts", &fields.input_artifacts),
                ("OutputArtifacts", &fields.output_artifacts),
            ] {
                validate::check_map_count(
                    &format!("{name} (after the update)"),
                    artifacts.len(),
                    validate::MAX_RUN_ARTIFACTS,
                )?;
            }
            if let Some(description) = update.description {
                entity.description = Some(description);
            }
            Ok(())
        })
    }

    /// AssociateTrialComponent: puts a trial component in a trial (again is not an error).
    /// Returns the two ARNs.
    pub fn associate_trial_component(
        &self,
        trial_component: &str,
        trial: &str,
    ) -> Result<(String, String)> {
        self.change_membership(trial_component, trial, true)
    }

    /// DisassociateTrialComponent: ResourceNotFound when the component is not in the trial.
    pub fn disassociate_trial_component(
        &self,
        trial_component: &str,
        trial: &str,
    ) -> Result<(String, String)> {
        self.change_membership(trial_component, trial, false)
    }

    fn change_membership(
        &self,
        trial_component: &str,
        trial: &str,
        associate: bool,
    ) -> Result<(String, String)> {
        let (component, trial, written) = {
            let _writer = self.writer.lock();
            let component = self.load(
                EntityKind::TrialComponent,
                "TrialComponentName",
                trial_component,
            )?;
            let trial_entity = self.load(EntityKind::Trial, "TrialName", trial)?;
            let member = keys::member(Relation::Components, &trial_entity.arn, &component.arn);
            let parent = keys::member(Relation::Parents, &component.arn, &trial_entity.arn);
            let present = self.records.get(LineageTable::Index, &member)?.is_some();
            let mut batch = self.records.batch();
            let written = match (associate, present) {
                (true, true) => None,
                (true, false) => {
                    batch.put(LineageTable::Index, &member, b"");
                    batch.put(LineageTable::Index, &parent, b"");
                    Some(batch.write("associating a trial component")?)
                }
                (false, true) => {
                    batch.delete(LineageTable::Index, &member);
                    batch.delete(LineageTable::Index, &parent);
                    Some(batch.write("disassociating a trial component")?)
                }
                (false, false) => {
                    return Err(Error::not_found(format!(
                        "trial component {} is not in trial {}",
                        quote(trial_component),
                        quote(trial)
                    )));
                }
            };
            (component.arn, trial_entity.arn, written)
        };
        if let Some(written) = written {
            written.sync()?;
        }
        Ok((component, trial))
    }

    /// The trials a trial component is in.
    pub fn trials_of(&self, trial_component_arn: &str) -> Result<Vec<Entity>> {
        self.members(Relation::Parents, trial_component_arn)
    }

    /// The trial components in a trial.
    pub fn components_of(&self, trial_arn: &str) -> Result<Vec<Entity>> {
        self.members(Relation::Components, trial_arn)
    }

    fn members(&self, relation: Relation, owner: &str) -> Result<Vec<Entity>> {
        let mut found = Vec::new();
        for arn in self.member_arns(relation, owner)? {
            if let Some(entity) = self.get(&arn)? {
                found.push(entity);
            }
        }
        Ok(found)
    }

    fn member_arns(&self, relation: Relation, owner: &str) -> Result<Vec<String>> {
        let prefix = keys::members_of(relation, owner);
        let mut arns = Vec::new();
        self.records.scan(LineageTable::Index, &prefix, |key, _| {
            arns.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
            Ok(true)
        })?;
        Ok(arns)
    }

    /// ListExperiments, ListTrials, ListTrialComponents. A filter naming an experiment,
    /// trial or trial component that does not exist is ResourceNotFound.
    pub fn list_experiment_entities(&self, query: &ExperimentListQuery) -> Result<Page<Entity>> {
        let kind = query.kind;
        let mut within: Option<BTreeSet<String>> = None;
        let mut narrow = |arns: Vec<String>| {
            let arns: BTreeSet<String> = arns.into_iter().collect();
            within = Some(match within.take() {
                None => arns,
                Some(before) => before.intersection(&arns).cloned().collect(),
            });
        };
        if let Some(name) = &query.experiment_name {
            let experiment = self.load(EntityKind::Experiment, "ExperimentName", name)?;
            let trials = self.member_arns(Relation::Trials, &experiment.arn)?;
            match kind {
                EntityKind::Trial => narrow(trials),
                EntityKind::TrialComponent => {
                    let mut components = Vec::new();
                    for trial in trials {
                        components.extend(self.member_arns(Relation::Components, &trial)?);
                    }
                    narrow(components);
                }
                _ => return Err(filter_not_allowed("ExperimentName", kind)),
            }
        }
        if let Some(name) = &query.trial_name {
            if kind != EntityKind::TrialComponent {
                return Err(filter_not_allowed("TrialName", kind));
            }
            let trial = self.load(EntityKind::Trial, "TrialName", name)?;
            narrow(self.member_arns(Relation::Components, &trial.arn)?);
        }
        if let Some(name) = &query.trial_component_name {
            if kind != EntityKind::Trial {
                return Err(filter_not_allowed("TrialComponentName", kind));
            }
            let component = self.load(EntityKind::TrialComponent, "TrialComponentName", name)?;
            narrow(self.member_arns(Relation::Parents, &component.arn)?);
        }
        if query.source_arn.is_some() && kind != EntityKind::TrialComponent {
            return Err(filter_not_allowed("SourceArn", kind));
        }
        self.list(&EntityListQuery {
            kind,
            source_uri: query.source_arn.clone(),
            entity_type: None,
            created_after_ms: query.created_after_ms,
            created_before_ms: query.created_before_ms,
            sort_by: query.sort_by,
            descending: query.descending,
            max_results: query.max_results,
            next_token: query.next_token.clone(),
            within: within.map(|arns| arns.into_iter().collect()),
        })
    }

    /// SageMaker Metrics' BatchPutMetrics: each value updates its metric's summary on the
    /// trial component. Values refused (a bad name, a non-finite value, a metric past the
    /// limit) are returned by their index; the others are kept.
    pub fn put_metrics(
        &self,
        trial_component: &str,
        data: &[MetricDatum],
    ) -> Result<Vec<(usize, MetricError)>> {
        if data.is_empty() || data.len() > validate::MAX_METRIC_DATA {
            return Err(Error::validation(format!(
                "MetricData has {} values; it holds 1 to {}",
                data.len(),
                validate::MAX_METRIC_DATA
            )));
        }
        let (errors, written) = {
            let _writer = self.writer.lock();
            let mut entity = self.load(
                EntityKind::TrialComponent,
                "TrialComponentName",
                trial_component,
            )?;
            let metrics = &mut entity
                .experiment
                .get_or_insert_with(ExperimentFields::default)
                .metrics;
            let mut errors = Vec::new();
            for (i, datum) in data.iter().enumerate() {
                let name_ok = !datum.name.is_empty()
                    && datum.name.chars().count() <= validate::MAX_METRIC_NAME_LEN;
                if !name_ok || !datum.value.is_finite() {
                    errors.push((i, MetricError::Validation));
                    continue;
                }
                let full = metrics.len() >= validate::MAX_METRICS;
                match metrics.get_mut(&datum.name) {
                    Some(summary) => summary.add(datum.value, datum.timestamp_ms),
                    None if full => errors.push((i, MetricError::LimitExceeded)),
                    None => {
                        metrics.insert(
                            datum.name.clone(),
                            MetricSummary::first(datum.value, datum.timestamp_ms),
                        );
                    }
                }
            }
            if errors.len() == data.len() {
                return Ok(errors);
            }
            let mut batch = self.records.batch();
            batch.put(
                LineageTable::Entities,
                &keys::entity(entity.kind, &entity.arn),
                &encode(&entity)?,
            );
            (errors, batch.write("recording metrics")?)
        };
        written.sync()?;
        Ok(errors)
    }

    /// Refuses deleting what others still hold or are held by (called under the write lock).
    pub(crate) fn check_unreferenced(&self, entity: &Entity) -> Result<()> {
        let (relation, what) = match entity.kind {
            EntityKind::Experiment => (Relation::Trials, "trials; delete them first"),
            EntityKind::Trial => (
                Relation::Components,
                "trial components; disassociate them first (DisassociateTrialComponent)",
            ),
            EntityKind::TrialComponent => (
                Relation::Parents,
                "trials it is in; disassociate it from them first (DisassociateTrialComponent)",
            ),
            _ => return Ok(()),
        };
        let held = self.member_arns(relation, &entity.arn)?;
        if let Some(first) = held.first() {
            return Err(Error::validation(format!(
                "{} {} cannot be deleted: it has {} {what} (the first: {first})",
                entity.kind.noun(),
                quote(entity.name.as_deref().unwrap_or(&entity.arn)),
                held.len(),
            )));
        }
        Ok(())
    }

    /// Removes a trial from its experiment's index (the other memberships are empty by
    /// [`Self::check_unreferenced`]).
    pub(crate) fn unlink(&self, batch: &mut LineageBatch<'_>, entity: &Entity) {
        if entity.kind == EntityKind::Trial
            && let Some(experiment) = entity
                .experiment
                .as_ref()
                .and_then(|f| f.experiment_name.as_deref())
        {
            let experiment_arn = self.arn_of_name(EntityKind::Experiment, experiment);
            batch.delete(
                LineageTable::Index,
                &keys::member(Relation::Trials, &experiment_arn, &entity.arn),
            );
        }
    }

    fn arn_of_name(&self, kind: EntityKind, name: &str) -> String {
        self.arn(kind, &name.to_ascii_lowercase())
    }
}

fn base(kind: EntityKind, name: String, description: Option<String>, tags: Vec<Tag>) -> NewEntity {
    NewEntity {
        kind,
        name: Some(name),
        source: Source {
            source_uri: String::new(),
            source_types: Vec::new(),
            source_type: None,
            source_id: None,
        },
        entity_type: String::new(),
        description,
        status: None,
        properties: BTreeMap::new(),
        metadata: MetadataProperties::default(),
        tags,
    }
}

fn filter_not_allowed(field: &str, kind: EntityKind) -> Error {
    Error::validation(format!("{field} is not a filter of List{}s", kind.name()))
}

fn check_times(start: Option<EpochMillis>, end: Option<EpochMillis>) -> Result<()> {
    if let (Some(start), Some(end)) = (start, end)
        && end < start
    {
        return Err(Error::validation(format!(
            "EndTime ({}) is before StartTime ({})",
            quiver_types::time::format_iso8601(end),
            quiver_types::time::format_iso8601(start)
        )));
    }
    Ok(())
}

fn merge<V>(map: &mut BTreeMap<String, V>, add: BTreeMap<String, V>, remove: &[String]) {
    map.extend(add);
    for key in remove {
        map.remove(key);
    }
}

/// Which fields each kind's update takes, and their limits.
fn check_update(kind: EntityKind, update: &ExperimentUpdate) -> Result<()> {
    if !EntityKind::EXPERIMENTS.contains(&kind) {
        return Err(Error::validation(format!(
            "a {} is not an experiment, trial or trial component",
            kind.noun()
        )));
    }
    validate::check_display_name(update.display_name.as_deref())?;
    if update.description.is_some() && kind != EntityKind::Experiment {
        return Err(Error::validation(format!(
            "Description is an experiment's; a {} has none",
            kind.noun()
        )));
    }
    validate::check_description(update.description.as_deref())?;
    let run_fields = update.status.is_some()
        || update.status_message.is_some()
        || update.start_ms.is_some()
        || update.end_ms.is_some()
        || !update.parameters.is_empty()
        || !update.parameters_to_remove.is_empty()
        || !update.input_artifacts.is_empty()
        || !update.input_artifacts_to_remove.is_empty()
        || !update.output_artifacts.is_empty()
        || !update.output_artifacts_to_remove.is_empty();
    if run_fields && kind != EntityKind::TrialComponent {
        return Err(Error::validation(format!(
            "Status, StartTime, EndTime, Parameters and artifacts are a trial component's; a {} has none",
            kind.noun()
        )));
    }
    validate::check_trial_component_status(
        update.status.as_deref(),
        update.status_message.as_deref(),
    )?;
    validate::check_parameters(&update.parameters)?;
    validate::check_run_artifacts("InputArtifacts", &update.input_artifacts)?;
    validate::check_run_artifacts("OutputArtifacts", &update.output_artifacts)?;
    for (field, keys, set) in [
        (
            "ParametersToRemove",
            &update.parameters_to_remove,
            update.parameters.keys().collect::<Vec<_>>(),
        ),
        (
            "InputArtifactsToRemove",
            &update.input_artifacts_to_remove,
            update.input_artifacts.keys().collect(),
        ),
        (
            "OutputArtifactsToRemove",
            &update.output_artifacts_to_remove,
            update.output_artifacts.keys().collect(),
        ),
    ] {
        validate::check_keys_to_remove(field, keys)?;
        if let Some(key) = keys.iter().find(|k| set.contains(k)) {
            return Err(Error::validation(format!(
                "{field} holds {}, which the update also sets",
                quote(key)
            )));
        }
    }
    Ok(())
}
