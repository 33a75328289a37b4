//! SageMaker Autopilot's V2 operations on the control plane, as botocore shapes them:
//! CreateAutoMLJobV2 (tabular jobs), DescribeAutoMLJobV2, ListAutoMLJobs,
//! ListCandidatesForAutoMLJob and StopAutoMLJob, served by [`quiver_automl::jobs`]. Each is
//! authorized as `sagemaker:<Op>` on the job's ARN (`*` for ListAutoMLJobs).
//!
//! The training channel's `S3Uri` names the data: a feature group's ARN (its latest records,
//! read through its offline store, or its online store when it has no offline one),
//! its offline store location (`s3://...`, as DescribeFeatureGroup's `ResolvedOutputS3Uri`
//! says; its history), a training set's `manifest.json`, or a CSV or Parquet file
//! (`file:///...`; Quiver's extension: botocore does not check the pattern).

use serde::Deserialize;
use serde_json::{Value, json};

use super::Api;
use super::control::timestamp_ms;
use super::wire::{epoch_seconds, parse_body};
use quiver_auth::Caller;
use quiver_automl::jobs::{DataSource, JobRecord, JobSpec, JobStatus, Jobs, check_job_name};
use quiver_automl::problem::ProblemType;
use quiver_automl::search::{Candidate, CandidateStatus};
use quiver_types::error::{Error, Result, quote};

const OPERATIONS: [&str; 5] = [
    "CreateAutoMLJobV2",
    "DescribeAutoMLJobV2",
    "ListAutoMLJobs",
    "ListCandidatesForAutoMLJob",
    "StopAutoMLJob",
];

/// How long a job may train when `MaxAutoMLJobRuntimeInSeconds` is not given.
pub const DEFAULT_RUNTIME_SECONDS: u64 = 600;

pub(crate) fn is_automl_operation(operation: &str) -> bool {
    OPERATIONS.contains(&operation)
}

pub(crate) async fn dispatch(
    api: &Api,
    caller: &Caller,
    operation: &str,
    body: &[u8],
) -> Result<Value> {
    super::run_service_operation(
        api,
        caller,
        operation,
        body,
        api.automl.clone(),
        "AutoML, which this server runs without (--automl false)",
        run,
    )
    .await
}

fn run(api: &Api, caller: &Caller, jobs: &Jobs, operation: &str, body: &[u8]) -> Result<Value> {
    let authorize_job = |name: &str| api.authorize_resource(caller, operation, &jobs.arn(name));
    match operation {
        "CreateAutoMLJobV2" => {
            let request: CreateJson = parse_body(body)?;
            let raw: Value = parse_body(body)?;
            let name = request
                .auto_ml_job_name
                .clone()
                .ok_or_else(|| Error::validation("AutoMLJobName is required"))?;
            authorize_job(&name)?;
            check_job_name(&name)?;
            let spec = job_spec(api, caller, name.clone(), request, raw)?;
            jobs.create(spec)?;
            Ok(json!({ "AutoMLJobArn": jobs.arn(&name) }))
        }
        "DescribeAutoMLJobV2" => {
            let name = job_name(body)?;
            authorize_job(&name)?;
            Ok(describe_json(jobs, &jobs.describe(&name)?))
        }
        "StopAutoMLJob" => {
            let name = job_name(body)?;
            authorize_job(&name)?;
            jobs.stop(&name)?;
            Ok(json!({}))
        }
        "ListCandidatesForAutoMLJob" => {
            let request: ListCandidatesJson = parse_body(body)?;
            let name = request
                .auto_ml_job_name
                .clone()
                .ok_or_else(|| Error::validation("AutoMLJobName is required"))?;
            authorize_job(&name)?;
            list_candidates(&jobs.describe(&name)?, request)
        }
        _ => {
            api.authorize_resource(caller, operation, "*")?;
            list_jobs(jobs, parse_body(body)?)
        }
    }
}

fn job_name(body: &[u8]) -> Result<String> {
    let request: NameJson = parse_body(body)?;
    request
        .auto_ml_job_name
        .ok_or_else(|| Error::validation("AutoMLJobName is required"))
}

/// The job a CreateAutoMLJobV2 request describes, its data source resolved.
fn job_spec(
    api: &Api,
    caller: &Caller,
    name: String,
    request: CreateJson,
    raw: Value,
) -> Result<JobSpec> {
    let channels = request
        .auto_ml_job_input_data_config
        .ok_or_else(|| Error::validation("AutoMLJobInputDataConfig is required"))?;
    let mut training = None;
    for (i, channel) in channels.into_iter().enumerate() {
        match channel.channel_type.as_deref() {
            None | Some("training") if training.is_none() => training = Some(channel),
            Some("validation") => {
                return Err(Error::validation(format!(
                    "AutoMLJobInputDataConfig[{i}]: a validation channel is not supported; Quiver cross-validates on the training data"
                )));
            }
            _ => {
                return Err(Error::validation(format!(
                    "AutoMLJobInputDataConfig[{i}]: one training channel is taken"
                )));
            }
        }
    }
    let channel = training
        .ok_or_else(|| Error::validation("AutoMLJobInputDataConfig needs a training channel"))?;
    let uri = channel
        .data_source
        .and_then(|d| d.s3_data_source)
        .and_then(|s| s.s3_uri)
        .ok_or_else(|| {
            Error::validation(
                "AutoMLJobInputDataConfig[0].DataSource.S3DataSource.S3Uri is required",
            )
        })?;
    let (source, identifying) = resolve_source(api, caller, &uri)?;
    let config = request.auto_ml_problem_type_config.unwrap_or_default();
    let tabular = config.tabular_job_config.ok_or_else(|| {
        Error::validation(
            "AutoMLProblemTypeConfig.TabularJobConfig is required (time series, text and image jobs are not supported)",
        )
    })?;
    if tabular.feature_specification_s3_uri.is_some() {
        return Err(Error::validation(
            "TabularJobConfig.FeatureSpecificationS3Uri is not supported; drop columns from the source instead",
        ));
    }
    if tabular.sample_weight_attribute_name.is_some() {
        return Err(Error::validation(
            "TabularJobConfig.SampleWeightAttributeName is not supported",
        ));
    }
    let target = tabular
        .target_attribute_name
        .ok_or_else(|| Error::validation("TabularJobConfig.TargetAttributeName is required"))?;
    let problem = tabular
        .problem_type
        .as_deref()
        .map(|p| ProblemType::parse("TabularJobConfig.ProblemType", p))
        .transpose()?;
    let criteria = tabular.completion_criteria.unwrap_or_default();
    let budget = match criteria.max_auto_ml_job_runtime_in_seconds {
        None => DEFAULT_RUNTIME_SECONDS,
        Some(s) if s >= 1 => s as u64,
        Some(s) => {
            return Err(Error::validation(format!(
                "CompletionCriteria.MaxAutoMLJobRuntimeInSeconds {s} must be at least 1"
            )));
        }
    };
    let max_candidates = match criteria.max_candidates {
        None => None,
        Some(n) if n >= 1 => Some(n as usize),
        Some(n) => {
            return Err(Error::validation(format!(
                "CompletionCriteria.MaxCandidates {n} must be at least 1"
            )));
        }
    };
    Ok(JobSpec {
        name,
        source,
        target,
        problem,
        objective: request.auto_ml_job_objective.and_then(|o| o.metric_name),
        use_columns: None,
        drop_columns: Vec::new(),
        identifying,
        budget_seconds: budget,
        max_candidates,
        request: raw,
    })
}

/// A training channel's URI as a data source, and the columns that identify rows in it.
/// Reading the data is authorized as a query of it: `quiver:Query` on the group (all its
/// features), or on `*` for a file.
fn resolve_source(api: &Api, caller: &Caller, uri: &str) -> Result<(DataSource, Vec<String>)> {
    let store = &api.store;
    let may_read = |group: Option<&str>| {
        api.access.authorize_group(
            caller,
            "quiver:Query",
            group,
            match group {
                Some(_) => quiver_auth::Features::All,
                None => quiver_auth::Features::Unnamed,
            },
            |g| store.feature_names(g),
        )
    };
    if uri.starts_with("arn:") && uri.contains(":feature-group/") {
        let group = store.describe_feature_group(uri)?;
        may_read(Some(&group.name))?;
        return Ok(DataSource::of_group(&group, false));
    }
    if let Some(path) = uri.strip_prefix("file://") {
        may_read(None)?;
        if path.ends_with("manifest.json") {
            return Ok((
                DataSource::Dataset {
                    uri: uri.to_string(),
                },
                Vec::new(),
            ));
        }
        return Ok((
            DataSource::File {
                uri: uri.to_string(),
            },
            Vec::new(),
        ));
    }
    if uri.starts_with("s3://") {
        let trimmed = uri.trim_end_matches('/');
        for group in store.registry().all() {
            if !group.has_offline_store() {
                continue;
            }
            let location = store.offline().catalog_table(&group).location;
            if location.trim_end_matches('/') == trimmed {
                may_read(Some(&group.name))?;
                return Ok(DataSource::of_group(&group, true));
            }
        }
        return Err(Error::validation(format!(
            "S3Uri {}: Quiver reads s3:// only at a feature group's offline store location \
             (DescribeFeatureGroup's ResolvedOutputS3Uri); name a feature group's ARN, a \
             training set's file:///.../manifest.json, or a file:///...csv or .parquet file",
            quote(uri)
        )));
    }
    Err(Error::validation(format!(
        "S3Uri {} is not a feature group's ARN, its offline s3:// location or a file:// URI",
        quote(uri)
    )))
}

fn status_name(status: JobStatus) -> &'static str {
    match status {
        JobStatus::InProgress => "InProgress",
        JobStatus::Completed => "Completed",
        JobStatus::Failed => "Failed",
        JobStatus::Stopping => "Stopping",
        JobStatus::Stopped => "Stopped",
    }
}

fn candidate_json(record: &JobRecord, candidate: &Candidate) -> Value {
    let objective = record.objective.clone().unwrap_or_default();
    let higher = !matches!(objective.as_str(), "MSE" | "RMSE" | "MAE");
    let status = match candidate.status {
        CandidateStatus::Completed => "Completed",
        CandidateStatus::Stopped => "Stopped",
        CandidateStatus::Failed => "Failed",
    };
    let time = epoch_seconds(record.ended_ms.unwrap_or(record.modified_ms));
    let mut json = json!({
        "CandidateName": candidate.name,
        "ObjectiveStatus": if candidate.status == CandidateStatus::Completed { "Succeeded" } else { "Failed" },
        "CandidateSteps": [],
        "CandidateStatus": status,
        "CreationTime": epoch_seconds(record.created_ms),
        "EndTime": time,
        "LastModifiedTime": time,
        "CandidateProperties": {
            "CandidateMetrics": candidate.metrics.iter().filter(|(_, v)| v.is_finite()).map(|(m, v)| json!({
                "MetricName": m.name(),
                "StandardMetricName": m.name(),
                "Value": v,
                "Set": "Validation",
            })).collect::<Vec<_>>(),
        },
    });
    if candidate.objective.is_finite() {
        json["FinalAutoMLJobObjectiveMetric"] = json!({
            "Type": if higher { "Maximize" } else { "Minimize" },
            "MetricName": objective,
            "StandardMetricName": objective,
            "Value": candidate.objective,
        });
    }
    if let Some(reason) = &candidate.reason {
        json["FailureReason"] = json!(reason);
    }
    json
}

fn describe_json(jobs: &Jobs, record: &JobRecord) -> Value {
    let request = &record.spec.request;
    let mut problem_config = request
        .get("AutoMLProblemTypeConfig")
        .cloned()
        .unwrap_or_else(
            || json!({ "TabularJobConfig": { "TargetAttributeName": record.spec.target } }),
        );
    if let Some(problem) = record.problem {
        problem_config["TabularJobConfig"]["ProblemType"] = json!(problem.name());
    }
    let mut json = json!({
        "AutoMLJobName": record.spec.name,
        "AutoMLJobArn": jobs.arn(&record.spec.name),
        "AutoMLJobInputDataConfig": request.get("AutoMLJobInputDataConfig").cloned().unwrap_or(json!([])),
        "OutputDataConfig": request.get("OutputDataConfig").cloned().unwrap_or(json!({ "S3OutputPath": "" })),
        "RoleArn": request.get("RoleArn").cloned().unwrap_or(json!("")),
        "AutoMLProblemTypeConfig": problem_config,
        "AutoMLProblemTypeConfigName": "Tabular",
        "CreationTime": epoch_seconds(record.created_ms),
        "LastModifiedTime": epoch_seconds(record.modified_ms),
        "AutoMLJobStatus": status_name(record.status),
        "AutoMLJobSecondaryStatus": record.secondary_status,
    });
    if let Some(objective) = &record.objective {
        json["AutoMLJobObjective"] = json!({ "MetricName": objective });
    }
    if let Some(end) = record.ended_ms {
        json["EndTime"] = json!(epoch_seconds(end));
    }
    if let Some(reason) = &record.failure_reason {
        json["FailureReason"] = json!(reason);
    }
    if let Some(best) = record.best() {
        json["BestCandidate"] = candidate_json(record, best);
    }
    if let (Some(problem), Some(objective)) = (record.problem, &record.objective) {
        json["ResolvedAttributes"] = json!({
            "AutoMLJobObjective": { "MetricName": objective },
            "CompletionCriteria": {
                "MaxAutoMLJobRuntimeInSeconds": record.spec.budget_seconds,
            },
            "AutoMLProblemTypeResolvedAttributes": {
                "TabularResolvedAttributes": { "ProblemType": problem.name() },
            },
        });
    }
    json
}

/// A page of `items` after `token` (an offset).
fn page<T>(
    items: Vec<T>,
    token: Option<&str>,
    max: Option<i64>,
    field: &str,
) -> Result<(Vec<T>, Option<String>)> {
    let max = match max {
        None => 10,
        Some(n @ 1..=100) => n as usize,
        Some(n) => {
            return Err(Error::validation(format!(
                "MaxResults {n} must be 1 to 100"
            )));
        }
    };
    let offset = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t
            .strip_prefix(field)
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| Error::validation("NextToken is not a token this listing returned"))?,
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(max).collect();
    let next = (offset + max < total).then(|| format!("{field}{}", offset + max));
    Ok((page, next))
}

fn descending(order: Option<&str>) -> Result<bool> {
    match order {
        None | Some("Descending") => Ok(true),
        Some("Ascending") => Ok(false),
        Some(other) => Err(Error::validation(format!(
            "SortOrder {} is not Ascending or Descending",
            quote(other)
        ))),
    }
}

fn list_jobs(jobs: &Jobs, request: ListJobsJson) -> Result<Value> {
    let after =
        |v: &Option<Value>, field: &str| v.as_ref().map(|v| timestamp_ms(field, v)).transpose();
    let (created_after, created_before) = (
        after(&request.creation_time_after, "CreationTimeAfter")?,
        after(&request.creation_time_before, "CreationTimeBefore")?,
    );
    let (modified_after, modified_before) = (
        after(&request.last_modified_time_after, "LastModifiedTimeAfter")?,
        after(&request.last_modified_time_before, "LastModifiedTimeBefore")?,
    );
    let mut all: Vec<JobRecord> = jobs
        .list()
        .into_iter()
        .filter(|r| {
            request
                .name_contains
                .as_ref()
                .is_none_or(|n| r.spec.name.contains(n.as_str()))
                && request
                    .status_equals
                    .as_ref()
                    .is_none_or(|s| status_name(r.status) == s)
                && created_after.is_none_or(|t| r.created_ms > t)
                && created_before.is_none_or(|t| r.created_ms < t)
                && modified_after.is_none_or(|t| r.modified_ms > t)
                && modified_before.is_none_or(|t| r.modified_ms < t)
        })
        .collect();
    match request.sort_by.as_deref() {
        None | Some("CreationTime") => all.sort_by_key(|r| (r.created_ms, r.spec.name.clone())),
        Some("Name") => all.sort_by(|a, b| a.spec.name.cmp(&b.spec.name)),
        Some("Status") => all.sort_by(|a, b| {
            status_name(a.status)
                .cmp(status_name(b.status))
                .then(a.spec.name.cmp(&b.spec.name))
        }),
        Some(other) => {
            return Err(Error::validation(format!(
                "SortBy {} is not one of Name, CreationTime, Status",
                quote(other)
            )));
        }
    }
    if descending(request.sort_order.as_deref())? {
        all.reverse();
    }
    let (page, next) = page(
        all,
        request.next_token.as_deref(),
        request.max_results,
        "jobs:",
    )?;
    let summaries: Vec<Value> = page
        .iter()
        .map(|r| {
            let mut s = json!({
                "AutoMLJobName": r.spec.name,
                "AutoMLJobArn": jobs.arn(&r.spec.name),
                "AutoMLJobStatus": status_name(r.status),
                "AutoMLJobSecondaryStatus": r.secondary_status,
                "CreationTime": epoch_seconds(r.created_ms),
                "LastModifiedTime": epoch_seconds(r.modified_ms),
            });
            if let Some(end) = r.ended_ms {
                s["EndTime"] = json!(epoch_seconds(end));
            }
            if let Some(reason) = &r.failure_reason {
                s["FailureReason"] = json!(reason);
            }
            s
        })
        .collect();
    let mut response = json!({ "AutoMLJobSummaries": summaries });
    if let Some(next) = next {
        response["NextToken"] = json!(next);
    }
    Ok(response)
}

fn list_candidates(record: &JobRecord, request: ListCandidatesJson) -> Result<Value> {
    let status_of = |c: &Candidate| match c.status {
        CandidateStatus::Completed => "Completed",
        CandidateStatus::Stopped => "Stopped",
        CandidateStatus::Failed => "Failed",
    };
    let mut candidates: Vec<&Candidate> = record
        .leaderboard
        .iter()
        .filter(|c| {
            request
                .status_equals
                .as_ref()
                .is_none_or(|s| status_of(c) == s)
                && request
                    .candidate_name_equals
                    .as_ref()
                    .is_none_or(|n| c.name == *n)
        })
        .collect();
    match request.sort_by.as_deref() {
        // The leaderboard is best first.
        None | Some("FinalObjectiveMetricValue") => {
            if !descending(request.sort_order.as_deref())? {
                candidates.reverse();
            }
        }
        Some("Status") | Some("CreationTime") => {
            candidates.sort_by(|a, b| status_of(a).cmp(status_of(b)).then(a.name.cmp(&b.name)));
            if descending(request.sort_order.as_deref())? {
                candidates.reverse();
            }
        }
        Some(other) => {
            return Err(Error::validation(format!(
                "SortBy {} is not one of CreationTime, Status, FinalObjectiveMetricValue",
                quote(other)
            )));
        }
    }
    let (page, next) = page(
        candidates,
        request.next_token.as_deref(),
        request.max_results,
        "candidates:",
    )?;
    let mut response =
        json!({ "Candidates": page.iter().map(|c| candidate_json(record, c)).collect::<Vec<_>>() });
    if let Some(next) = next {
        response["NextToken"] = json!(next);
    }
    Ok(response)
}

// --- request shapes ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NameJson {
    #[serde(rename = "AutoMLJobName")]
    auto_ml_job_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateJson {
    #[serde(rename = "AutoMLJobName")]
    auto_ml_job_name: Option<String>,
    #[serde(rename = "AutoMLJobInputDataConfig")]
    auto_ml_job_input_data_config: Option<Vec<ChannelJson>>,
    #[serde(rename = "AutoMLProblemTypeConfig")]
    auto_ml_problem_type_config: Option<ProblemConfigJson>,
    #[serde(rename = "AutoMLJobObjective")]
    auto_ml_job_objective: Option<ObjectiveJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChannelJson {
    channel_type: Option<String>,
    data_source: Option<DataSourceJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DataSourceJson {
    #[serde(rename = "S3DataSource")]
    s3_data_source: Option<S3DataSourceJson>,
}

#[derive(Debug, Deserialize)]
struct S3DataSourceJson {
    #[serde(rename = "S3Uri")]
    s3_uri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProblemConfigJson {
    tabular_job_config: Option<TabularJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TabularJson {
    target_attribute_name: Option<String>,
    problem_type: Option<String>,
    completion_criteria: Option<CriteriaJson>,
    #[serde(rename = "FeatureSpecificationS3Uri")]
    feature_specification_s3_uri: Option<String>,
    sample_weight_attribute_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CriteriaJson {
    max_candidates: Option<i64>,
    #[serde(rename = "MaxAutoMLJobRuntimeInSeconds")]
    max_auto_ml_job_runtime_in_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ObjectiveJson {
    metric_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListJobsJson {
    creation_time_after: Option<Value>,
    creation_time_before: Option<Value>,
    last_modified_time_after: Option<Value>,
    last_modified_time_before: Option<Value>,
    name_contains: Option<String>,
    status_equals: Option<String>,
    sort_order: Option<String>,
    sort_by: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListCandidatesJson {
    #[serde(rename = "AutoMLJobName")]
    auto_ml_job_name: Option<String>,
    status_equals: Option<String>,
    candidate_name_equals: Option<String>,
    sort_order: Option<String>,
    sort_by: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}
