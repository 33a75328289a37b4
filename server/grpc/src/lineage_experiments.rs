//! The experiments' side of `quiver.featurestore.v1.Lineage`: experiments, trials and trial
//! components created, updated and listed through the generic entity calls (their fields in
//! `ExperimentFields`), trial membership and metrics. Translates wire shapes to
//! [`quiver_lineage::experiments`]; authorization is the caller's (`lineage_service.rs`).

use std::collections::BTreeMap;

use quiver_proto::v1 as pb;

use quiver_lineage::Lineage;
use quiver_lineage::entities::EntitySort;
use quiver_lineage::experiments::{
    ExperimentListQuery, ExperimentUpdate, MetricError, NewExperiment, NewTrial, NewTrialComponent,
};
use quiver_lineage::model::{
    Entity, EntityKind, ExperimentFields, MetadataProperties, MetricDatum, Page, ParameterValue,
    RunArtifact, Tag,
};
use quiver_types::error::{Error, Result};

/// CreateEntity for an experiment, trial or trial component.
pub(crate) fn create(
    lineage: &Lineage,
    kind: EntityKind,
    r: pb::CreateLineageEntityRequest,
    metadata: MetadataProperties,
    by: Option<&str>,
) -> Result<Entity> {
    let name = r
        .name
        .ok_or_else(|| Error::validation(format!("name is required for a {}", kind.noun())))?;
    if !r.properties.is_empty() || r.source.is_some() || !r.entity_type.is_empty() {
        return Err(Error::validation(format!(
            "a {} has no properties, source or entity_type (its fields are in `experiment`)",
            kind.noun()
        )));
    }
    let fields = r.experiment.unwrap_or_default();
    let tags: Vec<Tag> = r
        .tags
        .into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect();
    match kind {
        EntityKind::Experiment => lineage.create_experiment(
            NewExperiment {
                name,
                display_name: fields.display_name,
                description: r.description,
                tags,
            },
            by,
        ),
        EntityKind::Trial => lineage.create_trial(
            NewTrial {
                name,
                display_name: fields.display_name,
                experiment_name: fields.experiment_name.ok_or_else(|| {
                    Error::validation("experiment.experiment_name is required for a trial")
                })?,
                metadata,
                tags,
            },
            by,
        ),
        _ => lineage.create_trial_component(
            NewTrialComponent {
                name,
                display_name: fields.display_name,
                status: r.status,
                status_message: fields.status_message,
                start_ms: fields.start_time_ms,
                end_ms: fields.end_time_ms,
                parameters: parameters_of(fields.parameters)?,
                input_artifacts: artifacts_of(fields.input_artifacts),
                output_artifacts: artifacts_of(fields.output_artifacts),
                metadata,
                tags,
                source_arn: None,
                source_type: None,
            },
            by,
        ),
    }
}

/// UpdateEntity for an experiment, trial or trial component.
pub(crate) fn update(
    lineage: &Lineage,
    kind: EntityKind,
    r: pb::UpdateLineageEntityRequest,
    by: Option<&str>,
) -> Result<Entity> {
    if r.new_name.is_some() || !r.properties.is_empty() || !r.properties_to_remove.is_empty() {
        return Err(Error::validation(format!(
            "a {} has no properties and cannot be renamed",
            kind.noun()
        )));
    }
    let fields = r.experiment.unwrap_or_default();
    let update = ExperimentUpdate {
        display_name: fields.display_name,
        description: r.description,
        status: r.status,
        status_message: fields.status_message,
        start_ms: fields.start_time_ms,
        end_ms: fields.end_time_ms,
        parameters: parameters_of(fields.parameters)?,
        parameters_to_remove: r.parameters_to_remove,
        input_artifacts: artifacts_of(fields.input_artifacts),
        input_artifacts_to_remove: r.input_artifacts_to_remove,
        output_artifacts: artifacts_of(fields.output_artifacts),
        output_artifacts_to_remove: r.output_artifacts_to_remove,
    };
    lineage.update_experiment_entity(kind, "name_or_arn", &r.name_or_arn, update, by)
}

/// ListEntities for experiments, trials or trial components (`source_uri` filters trial
/// components by the job that made them).
pub(crate) fn list(
    lineage: &Lineage,
    kind: EntityKind,
    r: pb::ListLineageEntitiesRequest,
    sort_by: EntitySort,
) -> Result<Page<Entity>> {
    if r.entity_type.is_some() {
        return Err(Error::validation(format!(
            "entity_type is not a filter of {}s",
            kind.noun()
        )));
    }
    lineage.list_experiment_entities(&ExperimentListQuery {
        kind,
        experiment_name: r.experiment_name,
        trial_name: r.trial_name,
        trial_component_name: r.trial_component_name,
        source_arn: r.source_uri,
        created_after_ms: r.created_after_ms,
        created_before_ms: r.created_before_ms,
        sort_by,
        descending: !r.ascending,
        max_results: r.max_results.map(i64::from),
        next_token: r.next_token,
    })
}

pub(crate) fn put_metrics(
    lineage: &Lineage,
    r: pb::PutMetricsRequest,
) -> Result<pb::PutMetricsResponse> {
    let data: Vec<MetricDatum> = r
        .values
        .into_iter()
        .map(|v| MetricDatum {
            name: v.name,
            timestamp_ms: v.timestamp_ms,
            step: v.step,
            value: v.value,
        })
        .collect();
    let errors = lineage.put_metrics(&r.trial_component, &data)?;
    Ok(pb::PutMetricsResponse {
        errors: errors
            .into_iter()
            .map(|(index, e): (usize, MetricError)| pb::MetricValueError {
                index: index as u32,
                code: e.code().to_string(),
            })
            .collect(),
    })
}

/// An entity's experiment fields on the wire.
pub(crate) fn fields_pb(fields: ExperimentFields) -> pb::ExperimentFields {
    pb::ExperimentFields {
        display_name: fields.display_name,
        experiment_name: fields.experiment_name,
        status_message: fields.status_message,
        start_time_ms: fields.start_ms,
        end_time_ms: fields.end_ms,
        parameters: fields
            .parameters
            .into_iter()
            .map(|(k, v)| {
                let value = match v {
                    ParameterValue::String(s) => pb::run_parameter::Value::StringValue(s),
                    ParameterValue::Number(n) => pb::run_parameter::Value::NumberValue(n),
                };
                (k, pb::RunParameter { value: Some(value) })
            })
            .collect(),
        input_artifacts: artifacts_pb(fields.input_artifacts),
        output_artifacts: artifacts_pb(fields.output_artifacts),
        metrics: fields
            .metrics
            .into_iter()
            .map(|(name, m)| pb::RunMetric {
                name,
                count: m.count,
                min: m.min,
                max: m.max,
                last: m.last,
                avg: m.mean,
                std_dev: m.std_dev(),
                timestamp_ms: m.timestamp_ms,
            })
            .collect(),
    }
}

fn parameters_of(
    map: std::collections::HashMap<String, pb::RunParameter>,
) -> Result<BTreeMap<String, ParameterValue>> {
    map.into_iter()
        .map(|(key, p)| {
            let value = match p.value {
                Some(pb::run_parameter::Value::StringValue(s)) => ParameterValue::String(s),
                Some(pb::run_parameter::Value::NumberValue(n)) => ParameterValue::Number(n),
                None => {
                    return Err(Error::validation(format!(
                        "experiment.parameters['{key}'] has no value (string_value or number_value)"
                    )));
                }
            };
            Ok((key, value))
        })
        .collect()
}

fn artifacts_of(
    map: std::collections::HashMap<String, pb::RunArtifact>,
) -> BTreeMap<String, RunArtifact> {
    map.into_iter()
        .map(|(key, a)| {
            (
                key,
                RunArtifact {
                    media_type: a.media_type,
                    value: a.value,
                },
            )
        })
        .collect()
}

fn artifacts_pb(
    map: BTreeMap<String, RunArtifact>,
) -> std::collections::HashMap<String, pb::RunArtifact> {
    map.into_iter()
        .map(|(key, a)| {
            (
                key,
                pb::RunArtifact {
                    media_type: a.media_type,
                    value: a.value,
                },
            )
        })
        .collect()
}
