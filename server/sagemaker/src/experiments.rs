//! SageMaker Experiments on the control plane, as botocore's service model shapes them:
//! Create / Describe / List / Update / Delete of experiments, trials and trial components,
//! AssociateTrialComponent and DisassociateTrialComponent; and SageMaker Metrics'
//! `PUT /BatchPutMetrics` (the `sagemaker-metrics` service, which the SageMaker SDK's
//! `Run.log_metric` calls), on the same listener. Each is authorized as `sagemaker:<Op>` on
//! the entity's ARN and served by [`quiver_lineage::experiments`].

use std::collections::BTreeMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Api;
use super::auth;
use super::lineage::{Handler, descending, timestamp, user_context};
use super::wire::{AwsError, RUNTIME_CONTENT_TYPE, epoch_seconds, json_response, parse_body};
use quiver_auth::Caller;
use quiver_lineage::Lineage;
use quiver_lineage::entities::EntitySort;
use quiver_lineage::experiments::{
    ExperimentListQuery, ExperimentUpdate, NewExperiment, NewTrial, NewTrialComponent,
};
use quiver_lineage::model::{
    Entity, EntityKind, ExperimentFields, MetadataProperties, MetricDatum, ParameterValue,
    RunArtifact, Tag,
};
use quiver_types::error::{Error, Result};

/// SageMaker Metrics' route.
pub const METRICS_PATH: &str = "/BatchPutMetrics";

const OPERATIONS: [&str; 17] = [
    "CreateExperiment",
    "DescribeExperiment",
    "ListExperiments",
    "UpdateExperiment",
    "DeleteExperiment",
    "CreateTrial",
    "DescribeTrial",
    "ListTrials",
    "UpdateTrial",
    "DeleteTrial",
    "CreateTrialComponent",
    "DescribeTrialComponent",
    "ListTrialComponents",
    "UpdateTrialComponent",
    "DeleteTrialComponent",
    "AssociateTrialComponent",
    "DisassociateTrialComponent",
];

pub(crate) fn is_experiment_operation(operation: &str) -> bool {
    OPERATIONS.contains(&operation)
}

/// An operation's verb and the kind its noun names: `ListTrialComponents` → (List, trial
/// component).
fn verb_and_kind(operation: &str) -> Option<(&'static str, EntityKind)> {
    ["Create", "Describe", "List", "Update", "Delete"]
        .into_iter()
        .find_map(|verb| {
            let noun = operation.strip_prefix(verb)?;
            let noun = noun.strip_suffix('s').unwrap_or(noun);
            let kind = EntityKind::EXPERIMENTS
                .into_iter()
                .find(|k| k.name() == noun)?;
            Some((verb, kind))
        })
}

impl Handler<'_> {
    /// Runs one of [`OPERATIONS`].
    pub(crate) fn run_experiment_operation(&self, body: &[u8]) -> Result<Value> {
        let operation = self.operation;
        if let Some(associate) = match operation {
            "AssociateTrialComponent" => Some(true),
            "DisassociateTrialComponent" => Some(false),
            _ => None,
        } {
            return self.membership(body, associate);
        }
        let (verb, kind) = verb_and_kind(operation).ok_or_else(|| {
            Error::internal(format!("{operation} is not an experiments operation"))
        })?;
        let arn_field = format!("{}Arn", kind.name());
        match verb {
            "List" => self.list_run_entities(kind, body),
            "Create" => {
                let entity = self.create_run_entity(kind, body)?;
                Ok(json!({ arn_field: entity.arn }))
            }
            "Describe" => {
                let request: NameJson = parse_body(body)?;
                let (field, name) = request.name(kind)?;
                self.authorize(&self.lineage.resource_arn(kind, &name))?;
                let entity = self.lineage.describe(kind, &field, &name)?;
                describe_json(self.lineage, &entity)
            }
            "Update" => {
                let entity = self.update_run_entity(kind, body)?;
                Ok(json!({ arn_field: entity.arn }))
            }
            _ => {
                let request: NameJson = parse_body(body)?;
                let (field, name) = request.name(kind)?;
                self.authorize(&self.lineage.resource_arn(kind, &name))?;
                let entity = self.lineage.delete(kind, &field, &name)?;
                Ok(json!({ arn_field: entity.arn }))
            }
        }
    }

    fn create_run_entity(&self, kind: EntityKind, body: &[u8]) -> Result<Entity> {
        let request: CreateJson = parse_body(body)?;
        let by = self.by.as_deref();
        let (_, name) = request.names.name(kind)?;
        self.authorize(&self.lineage.resource_arn(kind, &name))?;
        let tags = request.tags.unwrap_or_default();
        match kind {
            EntityKind::Experiment => self.lineage.create_experiment(
                NewExperiment {
                    name,
                    display_name: request.display_name,
                    description: request.description,
                    tags,
                },
                by,
            ),
            EntityKind::Trial => {
                let experiment_name = request
                    .names
                    .experiment_name
                    .ok_or_else(|| Error::validation("ExperimentName is required"))?;
                self.lineage.create_trial(
                    NewTrial {
                        name,
                        display_name: request.display_name,
                        experiment_name,
                        metadata: request.metadata_properties.unwrap_or_default(),
                        tags,
                    },
                    by,
                )
            }
            _ => {
                let run = request.run.into_domain()?;
                self.lineage.create_trial_component(
                    NewTrialComponent {
                        name,
                        display_name: request.display_name,
                        status: run.status,
                        status_message: run.status_message,
                        start_ms: run.start_ms,
                        end_ms: run.end_ms,
                        parameters: run.parameters,
                        input_artifacts: run.input_artifacts,
                        output_artifacts: run.output_artifacts,
                        metadata: request.metadata_properties.unwrap_or_default(),
                        tags,
                        source_arn: None,
                        source_type: None,
                    },
                    by,
                )
            }
        }
    }

    fn update_run_entity(&self, kind: EntityKind, body: &[u8]) -> Result<Entity> {
        let request: UpdateJson = parse_body(body)?;
        let (field, name) = request.names.name(kind)?;
        self.authorize(&self.lineage.resource_arn(kind, &name))?;
        let run = request.run.into_domain()?;
        let update = ExperimentUpdate {
            display_name: request.display_name,
            description: request.description,
            status: run.status,
            status_message: run.status_message,
            start_ms: run.start_ms,
            end_ms: run.end_ms,
            parameters: run.parameters,
            parameters_to_remove: request.parameters_to_remove.unwrap_or_default(),
            input_artifacts: run.input_artifacts,
            input_artifacts_to_remove: request.input_artifacts_to_remove.unwrap_or_default(),
            output_artifacts: run.output_artifacts,
            output_artifacts_to_remove: request.output_artifacts_to_remove.unwrap_or_default(),
        };
        self.lineage
            .update_experiment_entity(kind, &field, &name, update, self.by.as_deref())
    }

    fn list_run_entities(&self, kind: EntityKind, body: &[u8]) -> Result<Value> {
        let request: ListJson = parse_body(body)?;
        self.authorize("*")?;
        let sort_by = match request.sort_by.as_deref() {
            None => EntitySort::CreationTime,
            Some(text) => EntitySort::parse("SortBy", kind, text)?,
        };
        let page = self
            .lineage
            .list_experiment_entities(&ExperimentListQuery {
                kind,
                experiment_name: request.experiment_name,
                trial_name: request.trial_name,
                trial_component_name: request.trial_component_name,
                source_arn: request.source_arn,
                created_after_ms: timestamp(&request.created_after, "CreatedAfter")?,
                created_before_ms: timestamp(&request.created_before, "CreatedBefore")?,
                sort_by,
                descending: descending(request.sort_order.as_deref())?,
                max_results: request.max_results,
                next_token: request.next_token,
            })?;
        let summaries: Vec<Value> = page.items.iter().map(summary_json).collect();
        let mut response = json!({ format!("{}Summaries", kind.name()): summaries });
        if let Some(token) = page.next_token {
            response["NextToken"] = json!(token);
        }
        Ok(response)
    }

    fn membership(&self, body: &[u8], associate: bool) -> Result<Value> {
        let request: NameJson = parse_body(body)?;
        let (_, component) = request.name(EntityKind::TrialComponent)?;
        let (_, trial) = request.name(EntityKind::Trial)?;
        self.authorize(
            &self
                .lineage
                .resource_arn(EntityKind::TrialComponent, &component),
        )?;
        self.authorize(&self.lineage.resource_arn(EntityKind::Trial, &trial))?;
        let (component_arn, trial_arn) = if associate {
            self.lineage.associate_trial_component(&component, &trial)?
        } else {
            self.lineage
                .disassociate_trial_component(&component, &trial)?
        };
        Ok(json!({ "TrialComponentArn": component_arn, "TrialArn": trial_arn }))
    }
}

/// What ListExperiments, ListTrials and ListTrialComponents return of each.
fn summary_json(entity: &Entity) -> Value {
    let kind = entity.kind.name();
    let fields = fields(entity);
    let mut json = json!({
        format!("{kind}Arn"): entity.arn,
        format!("{kind}Name"): entity.name,
        "DisplayName": display_name(entity),
        "CreationTime": epoch_seconds(entity.created_ms),
        "LastModifiedTime": epoch_seconds(entity.modified_ms),
    });
    if let Some(source) = source_json(entity) {
        json[format!("{kind}Source")] = source;
    }
    if entity.kind == EntityKind::TrialComponent {
        if let Some(status) = status_json(entity) {
            json["Status"] = status;
        }
        times_json(&mut json, &fields);
        json["CreatedBy"] = user_context(&entity.created_by);
        json["LastModifiedBy"] = user_context(&entity.modified_by);
    }
    json
}

/// DescribeExperiment, DescribeTrial, DescribeTrialComponent (with the component's metrics and
/// the trials it is in, for Search's `Parents`).
fn describe_json(lineage: &Lineage, entity: &Entity) -> Result<Value> {
    let kind = entity.kind.name();
    let fields = fields(entity);
    let mut json = json!({
        format!("{kind}Name"): entity.name,
        format!("{kind}Arn"): entity.arn,
        "DisplayName": display_name(entity),
        "CreationTime": epoch_seconds(entity.created_ms),
        "CreatedBy": user_context(&entity.created_by),
        "LastModifiedTime": epoch_seconds(entity.modified_ms),
        "LastModifiedBy": user_context(&entity.modified_by),
    });
    if let Some(source) = source_json(entity) {
        json["Source"] = source;
    }
    if let Some(description) = &entity.description {
        json["Description"] = json!(description);
    }
    if let Some(experiment) = &fields.experiment_name {
        json["ExperimentName"] = json!(experiment);
    }
    if entity.kind != EntityKind::Experiment && !entity.metadata.is_empty() {
        json["MetadataProperties"] = json!(entity.metadata);
    }
    if entity.kind == EntityKind::TrialComponent {
        if let Some(status) = status_json(entity) {
            json["Status"] = status;
        }
        times_json(&mut json, &fields);
        json["Parameters"] = fields
            .parameters
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    ParameterValue::String(s) => json!({ "StringValue": s }),
                    ParameterValue::Number(n) => json!({ "NumberValue": n }),
                };
                (k.clone(), value)
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        json["InputArtifacts"] = artifacts_json(&fields.input_artifacts);
        json["OutputArtifacts"] = artifacts_json(&fields.output_artifacts);
        json["Metrics"] = fields
            .metrics
            .iter()
            .map(|(name, m)| {
                json!({
                    "MetricName": name,
                    "SourceArn": entity.arn,
                    "TimeStamp": epoch_seconds(m.timestamp_ms),
                    "Max": m.max,
                    "Min": m.min,
                    "Last": m.last,
                    "Count": m.count,
                    "Avg": m.mean,
                    "StdDev": m.std_dev(),
                })
            })
            .collect::<Vec<_>>()
            .into();
        if let Some(source) = source_json(entity) {
            json["Sources"] = json!([source]);
        }
        let parents: Vec<Value> = lineage
            .trials_of(&entity.arn)?
            .iter()
            .map(|trial| {
                json!({
                    "TrialName": trial.name,
                    "ExperimentName": trial.experiment.as_ref().and_then(|f| f.experiment_name.clone()),
                })
            })
            .collect();
        json["Parents"] = parents.into();
    }
    if entity.kind == EntityKind::Trial {
        let components: Vec<Value> = lineage
            .components_of(&entity.arn)?
            .iter()
            .map(|c| json!({ "TrialComponentName": c.name, "TrialComponentArn": c.arn }))
            .collect();
        json["TrialComponentSummaries"] = components.into();
    }
    Ok(json)
}

/// Search's `Experiment`, `ExperimentTrial` and `ExperimentTrialComponent` resources: each
/// entity of the kind as it is described (trial components with their `Parents`, trials with
/// their `TrialComponentSummaries`), with its `Tags` (the SDK tells a `Run`'s trial components
/// by theirs). `None` for other resources.
pub(crate) fn search_documents(
    lineage: Option<&Lineage>,
    resource: &str,
) -> Option<Result<(&'static str, Vec<Value>)>> {
    let (wrapper, kind) = match resource {
        "Experiment" => ("Experiment", EntityKind::Experiment),
        "ExperimentTrial" => ("Trial", EntityKind::Trial),
        "ExperimentTrialComponent" => ("TrialComponent", EntityKind::TrialComponent),
        _ => return None,
    };
    let Some(lineage) = lineage else {
        return Some(Err(Error::validation(format!(
            "Resource '{resource}' needs the lineage service, which this server runs without (--lineage false)"
        ))));
    };
    Some(
        lineage
            .all_of(kind)
            .and_then(|all| {
                all.iter()
                    .map(|e| {
                        let mut doc = describe_json(lineage, e)?;
                        doc["Tags"] = json!(e.tags);
                        Ok(doc)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .map(|docs| (wrapper, docs)),
    )
}

fn fields(entity: &Entity) -> ExperimentFields {
    entity.experiment.clone().unwrap_or_default()
}

/// SageMaker shows the name where no display name was given.
fn display_name(entity: &Entity) -> Option<String> {
    entity
        .experiment
        .as_ref()
        .and_then(|f| f.display_name.clone())
        .or_else(|| entity.name.clone())
}

fn source_json(entity: &Entity) -> Option<Value> {
    if entity.source.source_uri.is_empty() {
        return None;
    }
    let mut json = json!({ "SourceArn": entity.source.source_uri });
    if let Some(t) = &entity.source.source_type {
        json["SourceType"] = json!(t);
    }
    Some(json)
}

fn status_json(entity: &Entity) -> Option<Value> {
    let message = entity
        .experiment
        .as_ref()
        .and_then(|f| f.status_message.as_ref());
    if entity.status.is_none() && message.is_none() {
        return None;
    }
    let mut json = json!({});
    if let Some(status) = &entity.status {
        json["PrimaryStatus"] = json!(status);
    }
    if let Some(message) = message {
        json["Message"] = json!(message);
    }
    Some(json)
}

fn times_json(json: &mut Value, fields: &ExperimentFields) {
    if let Some(start) = fields.start_ms {
        json["StartTime"] = json!(epoch_seconds(start));
    }
    if let Some(end) = fields.end_ms {
        json["EndTime"] = json!(epoch_seconds(end));
    }
}

fn artifacts_json(artifacts: &BTreeMap<String, RunArtifact>) -> Value {
    artifacts
        .iter()
        .map(|(k, a)| {
            let mut value = json!({ "Value": a.value });
            if let Some(media_type) = &a.media_type {
                value["MediaType"] = json!(media_type);
            }
            (k.clone(), value)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

// --- SageMaker Metrics --------------------------------------------------------------------------

/// `PUT /BatchPutMetrics`: `{TrialComponentName, MetricData: [{MetricName, Timestamp, Step,
/// Value}]}` → `{Errors: [{Code, MetricIndex}]}`; authorized as `sagemaker:BatchPutMetrics`
/// on the trial component.
pub async fn batch_put_metrics(
    State(api): State<Api>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Response {
    let caller = auth::caller(caller);
    match put_metrics(&api, &caller, &body).await {
        Ok(response) => json_response(StatusCode::OK, RUNTIME_CONTENT_TYPE, &response),
        Err(e) => AwsError::runtime(e).into_response(),
    }
}

async fn put_metrics(api: &Api, caller: &Caller, body: &[u8]) -> Result<Value> {
    let request: BatchPutMetricsJson = parse_body(body)?;
    let Some(lineage) = api.lineage.clone() else {
        api.authorize_resource(caller, "BatchPutMetrics", "*")?;
        return Err(Error::validation(
            "BatchPutMetrics needs the lineage service, which this server runs without (--lineage false)",
        ));
    };
    let name = request
        .trial_component_name
        .ok_or_else(|| Error::validation("TrialComponentName is required"))?;
    api.authorize_resource(
        caller,
        "BatchPutMetrics",
        &lineage.resource_arn(EntityKind::TrialComponent, &name),
    )?;
    let data = request
        .metric_data
        .ok_or_else(|| Error::validation("MetricData is required"))?
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let step = d
                .step
                .map(|s| {
                    u64::try_from(s).map_err(|_| {
                        Error::validation(format!("MetricData[{i}].Step {s} is negative"))
                    })
                })
                .transpose()?;
            Ok(MetricDatum {
                name: d.metric_name.ok_or_else(|| {
                    Error::validation(format!("MetricData[{i}].MetricName is required"))
                })?,
                timestamp_ms: super::control::timestamp_ms(
                    &format!("MetricData[{i}].Timestamp"),
                    d.timestamp.as_ref().ok_or_else(|| {
                        Error::validation(format!("MetricData[{i}].Timestamp is required"))
                    })?,
                )?,
                step,
                value: d.value.ok_or_else(|| {
                    Error::validation(format!("MetricData[{i}].Value is required"))
                })?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let errors = tokio::task::spawn_blocking(move || lineage.put_metrics(&name, &data))
        .await
        .map_err(|e| Error::internal(format!("lineage task failed: {e}")))??;
    Ok(json!({
        "Errors": errors
            .iter()
            .map(|(i, e)| json!({ "Code": e.code(), "MetricIndex": i }))
            .collect::<Vec<_>>()
    }))
}

// --- request shapes ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NameJson {
    experiment_name: Option<String>,
    trial_name: Option<String>,
    trial_component_name: Option<String>,
}

impl NameJson {
    /// The field naming an entity of `kind`, and its value.
    fn name(&self, kind: EntityKind) -> Result<(String, String)> {
        let value = match kind {
            EntityKind::Experiment => &self.experiment_name,
            EntityKind::Trial => &self.trial_name,
            _ => &self.trial_component_name,
        };
        let field = format!("{}Name", kind.name());
        let value = value
            .clone()
            .ok_or_else(|| Error::validation(format!("{field} is required")))?;
        Ok((field, value))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StatusJson {
    primary_status: Option<String>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ParameterJson {
    string_value: Option<String>,
    number_value: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArtifactJson {
    media_type: Option<String>,
    value: Option<String>,
}

/// A trial component's run fields, in CreateTrialComponent and UpdateTrialComponent.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RunJson {
    status: Option<StatusJson>,
    start_time: Option<Value>,
    end_time: Option<Value>,
    parameters: Option<BTreeMap<String, ParameterJson>>,
    input_artifacts: Option<BTreeMap<String, ArtifactJson>>,
    output_artifacts: Option<BTreeMap<String, ArtifactJson>>,
}

struct Run {
    status: Option<String>,
    status_message: Option<String>,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    parameters: BTreeMap<String, ParameterValue>,
    input_artifacts: BTreeMap<String, RunArtifact>,
    output_artifacts: BTreeMap<String, RunArtifact>,
}

impl RunJson {
    fn into_domain(self) -> Result<Run> {
        let (status, status_message) = match self.status {
            Some(s) => (s.primary_status, s.message),
            None => (None, None),
        };
        let parameters = self
            .parameters
            .unwrap_or_default()
            .into_iter()
            .map(|(key, p)| {
                let value = match (p.string_value, p.number_value) {
                    (Some(s), None) => ParameterValue::String(s),
                    (None, Some(n)) => ParameterValue::Number(n),
                    _ => {
                        return Err(Error::validation(format!(
                            "Parameters['{key}'] takes one of StringValue and NumberValue"
                        )));
                    }
                };
                Ok((key, value))
            })
            .collect::<Result<_>>()?;
        let artifacts = |field: &str, map: Option<BTreeMap<String, ArtifactJson>>| {
            map.unwrap_or_default()
                .into_iter()
                .map(|(key, a)| {
                    let value = a.value.ok_or_else(|| {
                        Error::validation(format!("{field}['{key}'].Value is required"))
                    })?;
                    Ok((
                        key,
                        RunArtifact {
                            media_type: a.media_type,
                            value,
                        },
                    ))
                })
                .collect::<Result<BTreeMap<_, _>>>()
        };
        Ok(Run {
            status,
            status_message,
            start_ms: timestamp(&self.start_time, "StartTime")?,
            end_ms: timestamp(&self.end_time, "EndTime")?,
            parameters,
            input_artifacts: artifacts("InputArtifacts", self.input_artifacts)?,
            output_artifacts: artifacts("OutputArtifacts", self.output_artifacts)?,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateJson {
    #[serde(flatten)]
    names: NameJson,
    display_name: Option<String>,
    description: Option<String>,
    metadata_properties: Option<MetadataProperties>,
    tags: Option<Vec<Tag>>,
    #[serde(flatten)]
    run: RunJson,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateJson {
    #[serde(flatten)]
    names: NameJson,
    display_name: Option<String>,
    description: Option<String>,
    #[serde(flatten)]
    run: RunJson,
    parameters_to_remove: Option<Vec<String>>,
    input_artifacts_to_remove: Option<Vec<String>>,
    output_artifacts_to_remove: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListJson {
    experiment_name: Option<String>,
    trial_name: Option<String>,
    trial_component_name: Option<String>,
    source_arn: Option<String>,
    created_after: Option<Value>,
    created_before: Option<Value>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchPutMetricsJson {
    trial_component_name: Option<String>,
    metric_data: Option<Vec<MetricDatumJson>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDatumJson {
    metric_name: Option<String>,
    timestamp: Option<Value>,
    step: Option<i64>,
    value: Option<f64>,
}
