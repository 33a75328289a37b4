//! The lineage graph's entities and associations, as SageMaker's ML Lineage Tracking defines
//! them: artifacts (data, models, images: things), actions (jobs, deployments: things done),
//! contexts (a feature group, a pipeline, an endpoint: groupings), joined by typed, directed
//! associations. Experiments, trials and trial components (SageMaker Experiments: a run's
//! parameters, artifacts and metrics) are entities of the same graph, with their own fields in
//! [`ExperimentFields`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use quiver_types::error::{Error, Result};
use quiver_types::time::EpochMillis;

/// The kinds of entity the graph holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntityKind {
    Artifact,
    Action,
    Context,
    Experiment,
    /// A group of trial components within an experiment (the SDK's "run group").
    Trial,
    /// A run: its status, parameters, input and output artifacts and metrics.
    TrialComponent,
}

impl EntityKind {
    pub const ALL: [EntityKind; 6] = [
        Self::Artifact,
        Self::Action,
        Self::Context,
        Self::Experiment,
        Self::Trial,
        Self::TrialComponent,
    ];

    /// The kinds SageMaker's lineage operations (CreateArtifact, ..., ListContexts) act on.
    pub const LINEAGE: [EntityKind; 3] = [Self::Artifact, Self::Action, Self::Context];

    /// The kinds SageMaker Experiments' operations act on.
    pub const EXPERIMENTS: [EntityKind; 3] = [Self::Experiment, Self::Trial, Self::TrialComponent];

    /// The resource segment of its ARNs: `arn:aws:sagemaker:<region>:<account>:<segment>/<id>`.
    pub fn arn_segment(self) -> &'static str {
        match self {
            Self::Artifact => "artifact",
            Self::Action => "action",
            Self::Context => "context",
            Self::Experiment => "experiment",
            Self::Trial => "experiment-trial",
            Self::TrialComponent => "experiment-trial-component",
        }
    }

    /// Its name in SageMaker's operations and shapes (`CreateArtifact`, `ArtifactArn`) and as a
    /// vertex's `LineageType`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Artifact => "Artifact",
            Self::Action => "Action",
            Self::Context => "Context",
            Self::Experiment => "Experiment",
            Self::Trial => "Trial",
            Self::TrialComponent => "TrialComponent",
        }
    }

    /// Whether an association may end at an entity of this kind (SageMaker's model allows
    /// every kind but trials, which hold trial components through AssociateTrialComponent).
    pub fn is_association_end(self) -> bool {
        self != Self::Trial
    }

    /// Its name in errors: "trial component".
    pub fn noun(self) -> &'static str {
        match self {
            Self::TrialComponent => "trial component",
            Self::Artifact => "artifact",
            Self::Action => "action",
            Self::Context => "context",
            Self::Experiment => "experiment",
            Self::Trial => "trial",
        }
    }

    /// The kind an ARN names, if it names an entity of this graph.
    pub fn of_arn(arn: &str) -> Option<Self> {
        let resource = arn.splitn(6, ':').nth(5)?;
        let (segment, id) = resource.split_once('/')?;
        if id.is_empty() {
            return None;
        }
        Self::ALL.into_iter().find(|k| k.arn_segment() == segment)
    }
}

/// Where an entity comes from. Artifacts name their source's identity (`SourceTypes`: an MD5,
/// S3 ETag or version); actions and contexts its type and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Source {
    pub source_uri: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_types: Vec<SourceIdentity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SourceIdentity {
    /// `MD5Hash`, `S3ETag`, `S3Version` or `Custom`.
    pub source_id_type: String,
    pub value: String,
}

/// Where an entity was made: a commit, a repository, who generated it, a project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetadataProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
}

impl MetadataProperties {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// An action's status, as SageMaker spells it.
pub const ACTION_STATUSES: [&str; 6] = [
    "Unknown",
    "InProgress",
    "Completed",
    "Failed",
    "Stopping",
    "Stopped",
];

/// An entity as stored and described.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub kind: EntityKind,
    pub arn: String,
    /// Required for actions and contexts (their ARN ends in it, lower-cased); optional for
    /// artifacts, whose ARN ends in a generated id.
    pub name: Option<String>,
    pub source: Source,
    /// The `ArtifactType`, `ActionType` or `ContextType`: a vertex's `Type` in QueryLineage.
    pub entity_type: String,
    pub description: Option<String>,
    /// Actions only.
    pub status: Option<String>,
    pub properties: BTreeMap<String, String>,
    /// Artifacts and actions only.
    pub metadata: MetadataProperties,
    pub tags: Vec<Tag>,
    pub created_ms: EpochMillis,
    pub created_by: Option<String>,
    pub modified_ms: EpochMillis,
    pub modified_by: Option<String>,
    /// Experiments, trials and trial components only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentFields>,
}

/// What experiments, trials and trial components hold beyond an entity's common fields. Their
/// `Source` (set when a job of the server's own made them) is the entity's `source`, with the
/// job's ARN as its `source_uri` and its type as `source_type`; a trial component's
/// `PrimaryStatus` is the entity's `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExperimentFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// A trial's experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_name: Option<String>,
    /// A trial component's status message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<EpochMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<EpochMillis>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, ParameterValue>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub input_artifacts: BTreeMap<String, RunArtifact>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub output_artifacts: BTreeMap<String, RunArtifact>,
    /// Each metric's summary, by name (kept up to date by [`crate::experiments`]'s
    /// `put_metrics`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, MetricSummary>,
}

/// A trial component's parameter: a string or a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ParameterValue {
    String(String),
    Number(f64),
}

/// A trial component's input or output: a URI or a value, and its media type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunArtifact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub value: String,
}

/// One value of a metric, as SageMaker Metrics' BatchPutMetrics sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDatum {
    pub name: String,
    pub timestamp_ms: EpochMillis,
    pub step: Option<u64>,
    pub value: f64,
}

/// What DescribeTrialComponent reports of a metric: its count, minimum, maximum, last value
/// (the one with the latest timestamp), mean and standard deviation, updated with each value
/// without keeping the values (Welford's method).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub last: f64,
    /// The latest timestamp seen, and `last`'s.
    pub timestamp_ms: EpochMillis,
    pub mean: f64,
    /// The sum of squared differences from the mean.
    pub m2: f64,
}

impl MetricSummary {
    pub fn first(value: f64, timestamp_ms: EpochMillis) -> Self {
        Self {
            count: 1,
            min: value,
            max: value,
            last: value,
            timestamp_ms,
            mean: value,
            m2: 0.0,
        }
    }

    pub fn add(&mut self, value: f64, timestamp_ms: EpochMillis) {
        self.count += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if timestamp_ms >= self.timestamp_ms {
            self.last = value;
            self.timestamp_ms = timestamp_ms;
        }
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
    }

    /// The sample standard deviation; 0 for one value.
    pub fn std_dev(&self) -> f64 {
        if self.count < 2 {
            0.0
        } else {
            (self.m2 / (self.count - 1) as f64).sqrt()
        }
    }
}

/// What CreateArtifact, CreateAction and CreateContext carry.
#[derive(Debug, Clone)]
pub struct NewEntity {
    pub kind: EntityKind,
    pub name: Option<String>,
    pub source: Source,
    pub entity_type: String,
    pub description: Option<String>,
    pub status: Option<String>,
    pub properties: BTreeMap<String, String>,
    pub metadata: MetadataProperties,
    pub tags: Vec<Tag>,
}

/// What the Update operations may change; `None` keeps the value.
#[derive(Debug, Clone, Default)]
pub struct EntityUpdate {
    /// Artifacts only.
    pub name: Option<String>,
    /// Actions and contexts.
    pub description: Option<String>,
    /// Actions only.
    pub status: Option<String>,
    /// Added or replaced.
    pub properties: BTreeMap<String, String>,
    pub properties_to_remove: Vec<String>,
}

/// What an association says about its two ends. The graph records it; it never enforces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AssociationType {
    /// Data into a job.
    ContributedTo,
    /// A loose link (an approval and a deployment).
    AssociatedWith,
    /// The destination is made from the source.
    DerivedFrom,
    /// A job's output.
    Produced,
    /// One entity seen from two places.
    SameAs,
}

impl AssociationType {
    pub const ALL: [AssociationType; 5] = [
        Self::ContributedTo,
        Self::AssociatedWith,
        Self::DerivedFrom,
        Self::Produced,
        Self::SameAs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::ContributedTo => "ContributedTo",
            Self::AssociatedWith => "AssociatedWith",
            Self::DerivedFrom => "DerivedFrom",
            Self::Produced => "Produced",
            Self::SameAs => "SameAs",
        }
    }

    pub fn parse(field: &str, text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == text)
            .ok_or_else(|| {
                Error::validation(format!(
                    "{field} '{text}' is not one of ContributedTo, AssociatedWith, DerivedFrom, Produced, SameAs"
                ))
            })
    }
}

/// An association with its two ends described, as ListAssociations returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Association {
    pub source_arn: String,
    pub destination_arn: String,
    /// `None` when it was added without a type.
    pub association_type: Option<AssociationType>,
    pub source_type: String,
    pub destination_type: String,
    pub source_name: Option<String>,
    pub destination_name: Option<String>,
    pub created_ms: EpochMillis,
    pub created_by: Option<String>,
}

/// One page of a listing, and the token of the next page, if there is one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}
