//! OpenLineage run events (and its static job and dataset events), from any producer (Airflow,
//! Spark, dbt, the `openlineage-python` client), mapped onto the same graph:
//!
//! - a job (namespace, name) is an action of type `Job`, a run an action of type `JobRun`
//!   (named `ol-run-<runId>`, its status following the run's events), and the job is
//!   AssociatedWith each of its runs;
//! - a dataset is an artifact of type `DataSet` keyed by its URI (`<namespace>/<name>`); inputs
//!   ContributedTo the run (the job, for a job event), which Produced the outputs; a dataset
//!   that is a feature group's offline table (its catalog name or its location) is SameAs the
//!   group's context;
//! - an output's `columnLineage` facet is kept as column edges (output column <- input
//!   dataset's field), queried by [`Lineage::column_lineage`].
//!
//! Job names become action names `ol-job-<readable part>-<hash>` (action names allow letters,
//! digits and hyphens only); the namespace and name are kept as properties and SourceUri.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use quiver_storage::lineage_records::LineageTable;
use quiver_types::error::{Error, ErrorKind, Result, quote};
use quiver_types::model::FeatureGroup;

use crate::model::{
    AssociationType, EntityKind, EntityUpdate, MetadataProperties, NewEntity, Source,
};
use crate::{Lineage, keys};

/// One event as posted to `/api/v1/lineage`. Facets Quiver does not read are accepted and
/// ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// START, RUNNING, COMPLETE, ABORT, FAIL or OTHER (run events only).
    pub event_type: Option<String>,
    pub event_time: String,
    pub run: Option<Run>,
    pub job: Option<Job>,
    /// Dataset events: a dataset on its own.
    pub dataset: Option<Dataset>,
    #[serde(default)]
    pub inputs: Vec<Dataset>,
    #[serde(default)]
    pub outputs: Vec<Dataset>,
    pub producer: String,
    #[serde(rename = "schemaURL")]
    pub schema_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub run_id: String,
    #[serde(default)]
    pub facets: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub facets: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Dataset {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub facets: serde_json::Map<String, serde_json::Value>,
}

impl Dataset {
    /// The dataset's URI: `<namespace>/<name>`.
    pub fn uri(&self) -> String {
        dataset_uri(&self.namespace, &self.name)
    }
}

/// A dataset's URI from OpenLineage's naming: `<namespace>/<name>` (`s3://bucket` and `key`),
/// `file://<path>` for namespace `file`, and an ARN rejoined with `:` when the namespace is an
/// ARN's prefix (as Quiver names feature groups in the events it sends, `emit.rs`).
pub fn dataset_uri(namespace: &str, name: &str) -> String {
    if namespace == "file" {
        return format!("file://{name}");
    }
    if namespace.starts_with("arn:") && !name.contains(':') {
        return format!("{namespace}:{name}");
    }
    format!(
        "{}/{}",
        namespace.trim_end_matches('/'),
        name.trim_start_matches('/')
    )
}

/// What an event became in the graph.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    pub job: Option<String>,
    pub run: Option<String>,
    pub datasets: Vec<String>,
    pub column_edges: usize,
}

/// One column edge: `output_column` of the output dataset is made from `input_field` of the
/// input dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnEdge {
    pub output_dataset: String,
    pub output_column: String,
    pub input_dataset: String,
    pub input_field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformation: Option<String>,
}

/// The feature group whose offline table a dataset (namespace, name, URI) is, if any.
pub type GroupOfDataset<'a> = dyn Fn(&str, &str, &str) -> Option<std::sync::Arc<FeatureGroup>> + 'a;

const EVENT_TYPES: [&str; 6] = ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"];
const MAX_COLUMN_DEPTH: usize = 10;

impl Event {
    fn check(&self) -> Result<()> {
        if let Some(t) = &self.event_type
            && !EVENT_TYPES.contains(&t.as_str())
        {
            return Err(Error::validation(format!(
                "eventType {} is not one of {}",
                quote(t),
                EVENT_TYPES.join(", ")
            )));
        }
        if self.run.is_some() && self.job.is_none() {
            return Err(Error::validation(
                "a run event needs job (namespace and name)",
            ));
        }
        if self.run.is_none() && self.job.is_none() && self.dataset.is_none() {
            return Err(Error::validation(
                "the event names no run, job or dataset (a RunEvent, JobEvent or DatasetEvent is expected)",
            ));
        }
        if let Some(run) = &self.run {
            let id_ok = !run.run_id.is_empty()
                && run.run_id.len() <= 100
                && run
                    .run_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !id_ok {
                return Err(Error::validation(format!(
                    "run.runId {} is not a UUID",
                    quote(&run.run_id)
                )));
            }
        }
        let mut named: Vec<(String, &str, &str)> = Vec::new();
        if let Some(job) = &self.job {
            named.push(("job".into(), &job.namespace, &job.name));
        }
        if let Some(d) = &self.dataset {
            named.push(("dataset".into(), &d.namespace, &d.name));
        }
        for (list, datasets) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            for (i, d) in datasets.iter().enumerate() {
                named.push((format!("{list}[{i}]"), &d.namespace, &d.name));
            }
        }
        for (field, namespace, name) in named {
            if namespace.is_empty() || name.is_empty() {
                return Err(Error::validation(format!(
                    "{field} needs a namespace and a name"
                )));
            }
            if dataset_uri(namespace, name).len() > 2048
                || namespace.contains('\0')
                || name.contains('\0')
            {
                return Err(Error::validation(format!(
                    "{field}: namespace and name together must be at most 2048 characters, without NUL"
                )));
            }
        }
        Ok(())
    }
}

/// The action name of a job: readable, unique, and within SageMaker's name pattern.
fn job_action_name(job: &Job) -> String {
    let mut readable = String::new();
    for c in job.name.chars() {
        if c.is_ascii_alphanumeric() {
            readable.push(c.to_ascii_lowercase());
        } else if !readable.ends_with('-') && !readable.is_empty() {
            readable.push('-');
        }
        if readable.len() >= 80 {
            break;
        }
    }
    let readable = readable.trim_end_matches('-');
    let hash = crate::datasets::fnv1a(format!("{}\0{}", job.namespace, job.name).as_bytes());
    if readable.is_empty() {
        format!("ol-job-{:08x}", hash as u32)
    } else {
        format!("ol-job-{readable}-{:08x}", hash as u32)
    }
}

fn run_status(event_type: Option<&str>) -> &'static str {
    match event_type {
        Some("START" | "RUNNING") => "InProgress",
        Some("COMPLETE") => "Completed",
        Some("FAIL") => "Failed",
        Some("ABORT") => "Stopped",
        _ => "Unknown",
    }
}

/// A string facet value at `path` (`["sql", "query"]`), at most 2,500 characters.
fn facet_text(
    facets: &serde_json::Map<String, serde_json::Value>,
    path: &[&str],
) -> Option<String> {
    let mut value = facets.get(path[0])?;
    for key in &path[1..] {
        value = value.get(key)?;
    }
    value.as_str().map(clip)
}

impl Lineage {
    /// Records `event`; `group_of` names the feature group whose offline table a dataset
    /// (namespace, name, URI) is, if any.
    pub fn record_openlineage(
        &self,
        event: &Event,
        group_of: &GroupOfDataset<'_>,
        by: Option<&str>,
    ) -> Result<Recorded> {
        event.check()?;
        let mut recorded = Recorded::default();
        let job = match &event.job {
            Some(job) => Some(self.record_job(job, event, by)?),
            None => None,
        };
        recorded.job.clone_from(&job);
        let run = match (&event.run, &event.job) {
            (Some(run), Some(job_event)) => {
                let arn = self.record_run(run, job_event, event, by)?;
                if let Some(job) = &job {
                    self.associate(job, &arn, AssociationType::AssociatedWith, by)?;
                }
                Some(arn)
            }
            _ => None,
        };
        recorded.run.clone_from(&run);
        let actor = run.or(job);
        let mut datasets: Vec<(&Dataset, bool)> = Vec::new();
        datasets.extend(event.inputs.iter().map(|d| (d, true)));
        datasets.extend(event.outputs.iter().map(|d| (d, false)));
        datasets.extend(event.dataset.iter().map(|d| (d, true)));
        for (dataset, input) in datasets {
            let uri = dataset.uri();
            let mut properties = BTreeMap::new();
            properties.insert("Namespace".to_string(), dataset.namespace.clone());
            properties.insert("Name".to_string(), clip(&dataset.name));
            let artifact =
                self.artifact_for(&uri, crate::datasets::DATASET_TYPE, properties, by)?;
            if let Some(group) = group_of(&dataset.namespace, &dataset.name, &uri) {
                self.record_feature_group(&group)?;
                let context = crate::feature_groups::group_context_arn(self, &group);
                self.associate(&artifact, &context, AssociationType::SameAs, by)?;
            }
            if let Some(actor) = &actor {
                if input {
                    self.associate(&artifact, actor, AssociationType::ContributedTo, by)?;
                } else {
                    self.associate(actor, &artifact, AssociationType::Produced, by)?;
                }
            }
            if !input {
                recorded.column_edges += self.record_columns(&uri, dataset)?;
            }
            recorded.datasets.push(artifact);
        }
        Ok(recorded)
    }

    fn record_job(&self, job: &Job, event: &Event, by: Option<&str>) -> Result<String> {
        let name = job_action_name(job);
        let arn = self.arn(EntityKind::Action, &name);
        if self.get(&arn)?.is_some() {
            return Ok(arn);
        }
        let mut properties = BTreeMap::new();
        properties.insert("Namespace".into(), clip(&job.namespace));
        properties.insert("Name".into(), clip(&job.name));
        properties.insert("Producer".into(), clip(&event.producer));
        if let Some(sql) = facet_text(&job.facets, &["sql", "query"]) {
            properties.insert("Sql".into(), sql);
        }
        let created = self.create(
            NewEntity {
                kind: EntityKind::Action,
                name: Some(name),
                source: Source {
                    source_uri: dataset_uri(&job.namespace, &job.name),
                    source_types: Vec::new(),
                    source_type: Some("OpenLineageJob".into()),
                    source_id: None,
                },
                entity_type: "Job".into(),
                description: None,
                status: Some("Unknown".into()),
                properties,
                metadata: MetadataProperties::default(),
                tags: Vec::new(),
            },
            by,
        );
        match created {
            Ok(entity) => Ok(entity.arn),
            // Made by a concurrent event for the same job.
            Err(e) if e.kind() == ErrorKind::Validation && self.get(&arn)?.is_some() => Ok(arn),
            Err(e) => Err(e),
        }
    }

    /// The run's action, made on its first event and given each later event's status.
    fn record_run(&self, run: &Run, job: &Job, event: &Event, by: Option<&str>) -> Result<String> {
        let name = format!("ol-run-{}", run.run_id.to_ascii_lowercase());
        let arn = self.arn(EntityKind::Action, &name);
        let status = run_status(event.event_type.as_deref()).to_string();
        let mut properties = BTreeMap::new();
        properties.insert(
            "EventTime".to_string(),
            event.event_time.chars().take(100).collect(),
        );
        if let Some(message) = facet_text(&run.facets, &["errorMessage", "message"]) {
            properties.insert("ErrorMessage".to_string(), message);
        }
        if self.get(&arn)?.is_some() {
            self.update(
                EntityKind::Action,
                "run.runId",
                &arn,
                EntityUpdate {
                    status: Some(status),
                    properties,
                    ..Default::default()
                },
                by,
            )?;
            return Ok(arn);
        }
        properties.insert("JobNamespace".into(), clip(&job.namespace));
        properties.insert("JobName".into(), clip(&job.name));
        properties.insert("Producer".into(), clip(&event.producer));
        self.create(
            NewEntity {
                kind: EntityKind::Action,
                name: Some(name),
                source: Source {
                    source_uri: dataset_uri(&job.namespace, &job.name),
                    source_types: Vec::new(),
                    source_type: Some("OpenLineageRun".into()),
                    source_id: Some(run.run_id.clone()),
                },
                entity_type: "JobRun".into(),
                description: None,
                status: Some(status),
                properties,
                metadata: MetadataProperties::default(),
                tags: Vec::new(),
            },
            by,
        )
        .map(|e| e.arn)
    }

    /// Adds an association unless the pair is associated already.
    fn associate(&self, from: &str, to: &str, t: AssociationType, by: Option<&str>) -> Result<()> {
        match self.add_association(from, to, Some(t), by) {
            Err(e)
                if e.kind() == ErrorKind::Validation && e.message().contains("already exists") =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Keeps an output's `columnLineage` facet: for each output column, the input fields it is
    /// made from (replacing what an earlier event said of that column).
    fn record_columns(&self, output_uri: &str, dataset: &Dataset) -> Result<usize> {
        let Some(fields) = dataset
            .facets
            .get("columnLineage")
            .and_then(|f| f.get("fields"))
            .and_then(|f| f.as_object())
        else {
            return Ok(0);
        };
        let mut count = 0;
        let mut batch = self.records.batch();
        for (column, lineage) in fields {
            let inputs = lineage
                .get("inputFields")
                .and_then(|i| i.as_array())
                .cloned()
                .unwrap_or_default();
            let mut edges = Vec::new();
            for (i, input) in inputs.iter().enumerate() {
                let text = |key: &str| input.get(key).and_then(|v| v.as_str()).unwrap_or("");
                let (namespace, name, field) = (text("namespace"), text("name"), text("field"));
                if namespace.is_empty() || name.is_empty() || field.is_empty() {
                    return Err(Error::validation(format!(
                        "columnLineage.fields[{}].inputFields[{i}] needs namespace, name and field",
                        quote(column)
                    )));
                }
                let transformation = input
                    .get("transformations")
                    .and_then(|t| t.as_array())
                    .and_then(|t| t.first())
                    .and_then(|t| t.get("type"))
                    .and_then(|t| t.as_str())
                    .map(str::to_string)
                    .or_else(|| {
                        lineage
                            .get("transformationType")
                            .and_then(|t| t.as_str())
                            .map(str::to_string)
                    });
                edges.push(ColumnEdge {
                    output_dataset: output_uri.to_string(),
                    output_column: column.clone(),
                    input_dataset: dataset_uri(namespace, name),
                    input_field: field.to_string(),
                    transformation,
                });
            }
            count += edges.len();
            batch.put(
                LineageTable::Index,
                &keys::column(output_uri, column),
                &crate::encode(&edges)?,
            );
        }
        batch.write("recording column lineage")?.sync()?;
        Ok(count)
    }

    /// The column edges into `dataset` (its URI), of one column or of all, and, `depth` levels
    /// further up (at most 10), the edges into the fields they read.
    pub fn column_lineage(
        &self,
        dataset: &str,
        column: Option<&str>,
        depth: usize,
    ) -> Result<Vec<ColumnEdge>> {
        let mut found = Vec::new();
        let mut frontier: Vec<(String, Option<String>)> =
            vec![(dataset.to_string(), column.map(str::to_string))];
        let mut seen = std::collections::HashSet::new();
        for _ in 0..depth.clamp(1, MAX_COLUMN_DEPTH) {
            let mut next = Vec::new();
            for (uri, column) in frontier {
                let mut edges: Vec<ColumnEdge> = Vec::new();
                match &column {
                    Some(column) => {
                        if let Some(bytes) = self
                            .records
                            .get(LineageTable::Index, &keys::column(&uri, column))?
                        {
                            edges.extend(decode_edges(&bytes)?);
                        }
                    }
                    None => {
                        self.records.scan(
                            LineageTable::Index,
                            &keys::columns_of(&uri),
                            |_, value| {
                                edges.extend(decode_edges(value)?);
                                Ok(true)
                            },
                        )?;
                    }
                }
                for edge in edges {
                    if seen.insert((
                        edge.output_dataset.clone(),
                        edge.output_column.clone(),
                        edge.input_dataset.clone(),
                        edge.input_field.clone(),
                    )) {
                        next.push((edge.input_dataset.clone(), Some(edge.input_field.clone())));
                        found.push(edge);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        Ok(found)
    }
}

/// A property value within the limit of actions' properties (longer text is cut).
fn clip(text: &str) -> String {
    text.chars()
        .take(crate::validate::MAX_PROPERTY_KEY_LEN)
        .collect()
}

fn decode_edges(bytes: &[u8]) -> Result<Vec<ColumnEdge>> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::internal(format!("stored column lineage is corrupt: {e}")))
}
