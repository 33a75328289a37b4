//! SageMaker's ML Lineage Tracking operations on the control plane (`X-Amz-Target:
//! SageMaker.<Op>`), as botocore's service model shapes them: Create / Describe / List / Update
//! / Delete of artifacts, actions and contexts; AddAssociation, DeleteAssociation,
//! ListAssociations; QueryLineage; and the cross-account lineage groups, of which Quiver has
//! none. Each handler parses, authorizes `sagemaker:<Op>` on the entity's ARN, then calls
//! [`quiver_lineage::Lineage`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Api;
use super::control::timestamp_ms;
use super::wire::{epoch_seconds, parse_body};
use quiver_auth::Caller;
use quiver_lineage::Lineage;
use quiver_lineage::associations::{AssociationListQuery, AssociationSort};
use quiver_lineage::entities::{EntityListQuery, EntitySort};
use quiver_lineage::model::{
    Association, AssociationType, Entity, EntityKind, EntityUpdate, MetadataProperties, NewEntity,
    Source, SourceIdentity, Tag,
};
use quiver_lineage::query::{Direction, LineageQuery, QueryFilters};
use quiver_types::error::{Error, Result};

/// The kind of entity `operation` acts on, if it is `<prefix><Kind>` or `<prefix><Kind>s` for
/// an artifact, action or context (the handlers below take only these kinds: experiments,
/// trials and trial components have their own operations, `experiments.rs`).
fn kind_of(operation: &str, prefix: &str) -> Option<EntityKind> {
    let noun = operation.strip_prefix(prefix)?;
    EntityKind::LINEAGE
        .into_iter()
        .find(|k| noun == k.name() || noun.strip_suffix('s') == Some(k.name()))
}

/// Whether `operation` is one of the lineage operations.
pub(crate) fn is_lineage_operation(operation: &str) -> bool {
    super::experiments::is_experiment_operation(operation)
        || ["Create", "Describe", "List", "Update", "Delete"]
            .iter()
            .any(|p| kind_of(operation, p).is_some())
        || matches!(
            operation,
            "AddAssociation"
                | "DeleteAssociation"
                | "ListAssociations"
                | "QueryLineage"
                | "ListLineageGroups"
                | "DescribeLineageGroup"
                | "GetLineageGroupPolicy"
        )
}

/// Runs a lineage operation (see [`is_lineage_operation`]) off the async threads: the graph is
/// in RocksDB.
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
        api.lineage.clone(),
        "the lineage service, which this server runs without (--lineage false)",
        |api, caller, lineage, operation, body| {
            let handler = Handler {
                api,
                caller,
                operation,
                lineage,
                by: caller
                    .principal
                    .as_deref()
                    .map(|p| api.access.store().principal_arn(p)),
            };
            handler.run(body)
        },
    )
    .await
}

pub(crate) struct Handler<'a> {
    api: &'a Api,
    caller: &'a Caller,
    pub(crate) operation: &'a str,
    pub(crate) lineage: &'a Lineage,
    /// The caller's principal ARN, recorded as creator and modifier.
    pub(crate) by: Option<String>,
}

impl Handler<'_> {
    fn run(&self, body: &[u8]) -> Result<Value> {
        let operation = self.operation;
        if super::experiments::is_experiment_operation(operation) {
            return self.run_experiment_operation(body);
        }
        if let Some(kind) = kind_of(operation, "Create") {
            return self.create(kind, body);
        }
        if let Some(kind) = kind_of(operation, "Describe") {
            return self.describe(kind, body);
        }
        if let Some(kind) = kind_of(operation, "List") {
            return self.list(kind, body);
        }
        if let Some(kind) = kind_of(operation, "Update") {
            return self.update(kind, body);
        }
        if let Some(kind) = kind_of(operation, "Delete") {
            return self.delete(kind, body);
        }
        match operation {
            "AddAssociation" => self.add_association(body),
            "DeleteAssociation" => self.delete_association(body),
            "ListAssociations" => self.list_associations(body),
            "QueryLineage" => self.query(body),
            "ListLineageGroups" => {
                self.authorize("*")?;
                Ok(json!({ "LineageGroupSummaries": [] }))
            }
            _ => {
                let request: Value = parse_body(body)?;
                let name = request
                    .get("LineageGroupName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                self.authorize("*")?;
                Err(Error::not_found(format!(
                    "lineage group '{name}' does not exist (Quiver keeps one account's lineage, with no lineage groups)"
                )))
            }
        }
    }

    pub(crate) fn authorize(&self, resource: &str) -> Result<()> {
        self.api
            .authorize_resource(self.caller, self.operation, resource)
    }

    fn create(&self, kind: EntityKind, body: &[u8]) -> Result<Value> {
        let request: CreateRequest = parse_body(body)?;
        let name = match kind {
            EntityKind::Artifact => request.artifact_name,
            EntityKind::Action => request.action_name,
            _ => request.context_name,
        };
        let resource = match (&name, kind) {
            (Some(name), EntityKind::Action | EntityKind::Context) => {
                self.lineage.resource_arn(kind, name)
            }
            _ => self.lineage.any_of(kind),
        };
        self.authorize(&resource)?;
        let Some(source) = request.source else {
            return Err(Error::validation("Source is required"));
        };
        let entity_type = match kind {
            EntityKind::Artifact => request.artifact_type,
            EntityKind::Action => request.action_type,
            _ => request.context_type,
        }
        .ok_or_else(|| Error::validation(format!("{}Type is required", kind.name())))?;
        let entity = self.lineage.create(
            NewEntity {
                kind,
                name,
                source: source.into_domain(),
                entity_type,
                description: request.description,
                status: request.status,
                properties: request.properties.unwrap_or_default(),
                metadata: request.metadata_properties.unwrap_or_default(),
                tags: request.tags.unwrap_or_default(),
            },
            self.by.as_deref(),
        )?;
        Ok(json!({ format!("{}Arn", kind.name()): entity.arn }))
    }

    fn named(&self, kind: EntityKind, request: &NameRequest) -> Result<(String, String)> {
        let field = match kind {
            EntityKind::Artifact => "ArtifactArn",
            EntityKind::Action => "ActionName",
            _ => "ContextName",
        };
        let value = match kind {
            EntityKind::Artifact => &request.artifact_arn,
            EntityKind::Action => &request.action_name,
            _ => &request.context_name,
        };
        let value = value
            .clone()
            .ok_or_else(|| Error::validation(format!("{field} is required")))?;
        Ok((field.to_string(), value))
    }

    fn describe(&self, kind: EntityKind, body: &[u8]) -> Result<Value> {
        let request: NameRequest = parse_body(body)?;
        let (field, name) = self.named(kind, &request)?;
        self.authorize(&self.lineage.resource_arn(kind, &name))?;
        let entity = self.lineage.describe(kind, &field, &name)?;
        Ok(describe_json(&entity))
    }

    fn update(&self, kind: EntityKind, body: &[u8]) -> Result<Value> {
        let request: UpdateRequest = parse_body(body)?;
        let (field, name) = self.named(kind, &request.name)?;
        self.authorize(&self.lineage.resource_arn(kind, &name))?;
        let update = EntityUpdate {
            name: if kind == EntityKind::Artifact {
                request.name.artifact_name.clone()
            } else {
                None
            },
            description: request.description,
            status: request.status,
            properties: request.properties.unwrap_or_default(),
            properties_to_remove: request.properties_to_remove.unwrap_or_default(),
        };
        let entity = self
            .lineage
            .update(kind, &field, &name, update, self.by.as_deref())?;
        Ok(json!({ format!("{}Arn", kind.name()): entity.arn }))
    }

    fn delete(&self, kind: EntityKind, body: &[u8]) -> Result<Value> {
        let request: DeleteRequest = parse_body(body)?;
        let entity = match (kind, &request.name.artifact_arn, request.source) {
            (EntityKind::Artifact, None, Some(source)) => {
                self.authorize(&self.lineage.any_of(kind))?;
                self.lineage
                    .delete_artifact_by_source(&source.into_domain())?
            }
            (EntityKind::Artifact, Some(_), Some(_)) => {
                return Err(Error::validation(
                    "DeleteArtifact takes ArtifactArn or Source, not both",
                ));
            }
            (EntityKind::Artifact, None, None) => {
                return Err(Error::validation(
                    "DeleteArtifact needs ArtifactArn or Source",
                ));
            }
            _ => {
                let (field, name) = self.named(kind, &request.name)?;
                self.authorize(&self.lineage.resource_arn(kind, &name))?;
                self.lineage.delete(kind, &field, &name)?
            }
        };
        Ok(json!({ format!("{}Arn", kind.name()): entity.arn }))
    }

    fn list(&self, kind: EntityKind, body: &[u8]) -> Result<Value> {
        let request: ListRequest = parse_body(body)?;
        self.authorize("*")?;
        let type_field = format!("{}Type", kind.name());
        let entity_type = match kind {
            EntityKind::Artifact => request.artifact_type,
            EntityKind::Action => request.action_type,
            _ => request.context_type,
        };
        let sort_by = match request.sort_by.as_deref() {
            None => EntitySort::CreationTime,
            Some(text) => EntitySort::parse("SortBy", kind, text)?,
        };
        let page = self.lineage.list(&EntityListQuery {
            kind,
            source_uri: request.source_uri,
            entity_type,
            created_after_ms: timestamp(&request.created_after, "CreatedAfter")?,
            created_before_ms: timestamp(&request.created_before, "CreatedBefore")?,
            sort_by,
            descending: descending(request.sort_order.as_deref())?,
            max_results: request.max_results,
            next_token: request.next_token,
            within: None,
        })?;
        let summaries: Vec<Value> = page
            .items
            .iter()
            .map(|e| {
                let mut summary = json!({
                    format!("{}Arn", kind.name()): e.arn,
                    "Source": source_json(&e.source),
                    type_field.clone(): e.entity_type,
                    "CreationTime": epoch_seconds(e.created_ms),
                    "LastModifiedTime": epoch_seconds(e.modified_ms),
                });
                if let Some(name) = &e.name {
                    summary[format!("{}Name", kind.name())] = json!(name);
                }
                if let Some(status) = &e.status {
                    summary["Status"] = json!(status);
                }
                summary
            })
            .collect();
        let mut response = json!({ format!("{}Summaries", kind.name()): summaries });
        if let Some(token) = page.next_token {
            response["NextToken"] = json!(token);
        }
        Ok(response)
    }

    fn add_association(&self, body: &[u8]) -> Result<Value> {
        let request: AssociationRequest = parse_body(body)?;
        let (source, destination) = request.ends()?;
        self.authorize(&source)?;
        self.authorize(&destination)?;
        let association_type = request
            .association_type
            .as_deref()
            .map(|t| AssociationType::parse("AssociationType", t))
            .transpose()?;
        self.lineage.add_association(
            &source,
            &destination,
            association_type,
            self.by.as_deref(),
        )?;
        Ok(json!({ "SourceArn": source, "DestinationArn": destination }))
    }

    fn delete_association(&self, body: &[u8]) -> Result<Value> {
        let request: AssociationRequest = parse_body(body)?;
        let (source, destination) = request.ends()?;
        self.authorize(&source)?;
        self.authorize(&destination)?;
        self.lineage.delete_association(&source, &destination)?;
        Ok(json!({ "SourceArn": source, "DestinationArn": destination }))
    }

    fn list_associations(&self, body: &[u8]) -> Result<Value> {
        let request: ListAssociationsRequest = parse_body(body)?;
        self.authorize("*")?;
        let sort_by = request
            .sort_by
            .as_deref()
            .map(|text| AssociationSort::parse("SortBy", text))
            .transpose()?;
        let page = self.lineage.list_associations(&AssociationListQuery {
            source_arn: request.source_arn,
            destination_arn: request.destination_arn,
            source_type: request.source_type,
            destination_type: request.destination_type,
            association_type: request
                .association_type
                .as_deref()
                .map(|t| AssociationType::parse("AssociationType", t))
                .transpose()?,
            created_after_ms: timestamp(&request.created_after, "CreatedAfter")?,
            created_before_ms: timestamp(&request.created_before, "CreatedBefore")?,
            sort_by,
            descending: descending(request.sort_order.as_deref())?,
            max_results: request.max_results,
            next_token: request.next_token,
        })?;
        let summaries: Vec<Value> = page.items.iter().map(association_json).collect();
        let mut response = json!({ "AssociationSummaries": summaries });
        if let Some(token) = page.next_token {
            response["NextToken"] = json!(token);
        }
        Ok(response)
    }

    fn query(&self, body: &[u8]) -> Result<Value> {
        let request: QueryLineageRequest = parse_body(body)?;
        let start_arns = request.start_arns.unwrap_or_default();
        match start_arns.first() {
            Some(start) => self.authorize(start)?,
            None => self.authorize("*")?,
        }
        let direction = match request.direction.as_deref() {
            None => Direction::Both,
            Some(text) => Direction::parse("Direction", text)?,
        };
        let filters = request.filters.unwrap_or_default();
        let result = self.lineage.query(&LineageQuery {
            start_arns,
            direction,
            include_edges: request.include_edges.unwrap_or(false),
            filters: QueryFilters {
                types: filters.types.unwrap_or_default(),
                lineage_types: filters.lineage_types.unwrap_or_default(),
                created_before_ms: timestamp(&filters.created_before, "Filters.CreatedBefore")?,
                created_after_ms: timestamp(&filters.created_after, "Filters.CreatedAfter")?,
                modified_before_ms: timestamp(&filters.modified_before, "Filters.ModifiedBefore")?,
                modified_after_ms: timestamp(&filters.modified_after, "Filters.ModifiedAfter")?,
                properties: filters.properties.unwrap_or_default().into_iter().collect(),
            },
            max_depth: request.max_depth,
            max_results: request.max_results,
            next_token: request.next_token,
        })?;
        let include_source = request.include_source.unwrap_or(false);
        let vertices: Vec<Value> = result
            .vertices
            .iter()
            .map(|v| {
                let mut vertex = json!({
                    "Arn": v.arn,
                    "Type": v.entity_type,
                    "LineageType": v.lineage_type.name(),
                });
                if include_source {
                    vertex["Source"] = json!({ "SourceUri": v.source_uri });
                }
                vertex
            })
            .collect();
        let edges: Vec<Value> = result
            .edges
            .iter()
            .map(|e| {
                let mut edge =
                    json!({ "SourceArn": e.source_arn, "DestinationArn": e.destination_arn });
                if let Some(t) = e.association_type {
                    edge["AssociationType"] = json!(t.name());
                }
                edge
            })
            .collect();
        // The SDK reads both lists from every response, empty ones included.
        let mut response = json!({ "Vertices": vertices, "Edges": edges });
        if let Some(token) = result.next_token {
            response["NextToken"] = json!(token);
        }
        Ok(response)
    }
}

pub(crate) fn timestamp(value: &Option<Value>, field: &str) -> Result<Option<i64>> {
    value.as_ref().map(|v| timestamp_ms(field, v)).transpose()
}

/// SageMaker's listings are newest first unless told otherwise.
pub(crate) fn descending(order: Option<&str>) -> Result<bool> {
    match order {
        None | Some("Descending") => Ok(true),
        Some("Ascending") => Ok(false),
        Some(other) => Err(Error::validation(format!(
            "SortOrder '{other}' is not one of Ascending, Descending"
        ))),
    }
}

pub(crate) fn user_context(principal_arn: &Option<String>) -> Value {
    match principal_arn {
        Some(arn) => json!({ "IamIdentity": { "Arn": arn } }),
        None => json!({}),
    }
}

fn source_json(source: &Source) -> Value {
    let mut json = json!({ "SourceUri": source.source_uri });
    if !source.source_types.is_empty() {
        json["SourceTypes"] = json!(
            source
                .source_types
                .iter()
                .map(|t| json!({ "SourceIdType": t.source_id_type, "Value": t.value }))
                .collect::<Vec<_>>()
        );
    }
    if let Some(t) = &source.source_type {
        json["SourceType"] = json!(t);
    }
    if let Some(id) = &source.source_id {
        json["SourceId"] = json!(id);
    }
    json
}

/// DescribeArtifact, DescribeAction, DescribeContext.
fn describe_json(entity: &Entity) -> Value {
    let kind = entity.kind.name();
    let mut json = json!({
        format!("{kind}Arn"): entity.arn,
        "Source": source_json(&entity.source),
        format!("{kind}Type"): entity.entity_type,
        "Properties": entity.properties,
        "CreationTime": epoch_seconds(entity.created_ms),
        "CreatedBy": user_context(&entity.created_by),
        "LastModifiedTime": epoch_seconds(entity.modified_ms),
        "LastModifiedBy": user_context(&entity.modified_by),
    });
    if let Some(name) = &entity.name {
        json[format!("{kind}Name")] = json!(name);
    }
    if let Some(description) = &entity.description {
        json["Description"] = json!(description);
    }
    if let Some(status) = &entity.status {
        json["Status"] = json!(status);
    }
    if entity.kind != EntityKind::Context && !entity.metadata.is_empty() {
        json["MetadataProperties"] = json!(entity.metadata);
    }
    json
}

fn association_json(a: &Association) -> Value {
    let mut json = json!({
        "SourceArn": a.source_arn,
        "DestinationArn": a.destination_arn,
        "SourceType": a.source_type,
        "DestinationType": a.destination_type,
        "CreationTime": epoch_seconds(a.created_ms),
        "CreatedBy": user_context(&a.created_by),
    });
    if let Some(t) = a.association_type {
        json["AssociationType"] = json!(t.name());
    }
    if let Some(name) = &a.source_name {
        json["SourceName"] = json!(name);
    }
    if let Some(name) = &a.destination_name {
        json["DestinationName"] = json!(name);
    }
    json
}

// --- request shapes ---------------------------------------------------------------------------

/// Artifacts' and actions' / contexts' sources in one shape; the lineage crate refuses the
/// members that do not belong to the kind.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SourceJson {
    source_uri: String,
    source_types: Option<Vec<SourceTypeJson>>,
    source_type: Option<String>,
    source_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SourceTypeJson {
    source_id_type: String,
    value: String,
}

impl SourceJson {
    fn into_domain(self) -> Source {
        Source {
            source_uri: self.source_uri,
            source_types: self
                .source_types
                .unwrap_or_default()
                .into_iter()
                .map(|t| SourceIdentity {
                    source_id_type: t.source_id_type,
                    value: t.value,
                })
                .collect(),
            source_type: self.source_type,
            source_id: self.source_id,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateRequest {
    artifact_name: Option<String>,
    action_name: Option<String>,
    context_name: Option<String>,
    source: Option<SourceJson>,
    artifact_type: Option<String>,
    action_type: Option<String>,
    context_type: Option<String>,
    description: Option<String>,
    status: Option<String>,
    properties: Option<BTreeMap<String, String>>,
    metadata_properties: Option<MetadataProperties>,
    tags: Option<Vec<Tag>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NameRequest {
    artifact_arn: Option<String>,
    /// UpdateArtifact's new name.
    artifact_name: Option<String>,
    action_name: Option<String>,
    context_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateRequest {
    #[serde(flatten)]
    name: NameRequest,
    description: Option<String>,
    status: Option<String>,
    properties: Option<BTreeMap<String, String>>,
    properties_to_remove: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteRequest {
    #[serde(flatten)]
    name: NameRequest,
    source: Option<SourceJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRequest {
    source_uri: Option<String>,
    artifact_type: Option<String>,
    action_type: Option<String>,
    context_type: Option<String>,
    created_after: Option<Value>,
    created_before: Option<Value>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssociationRequest {
    source_arn: Option<String>,
    destination_arn: Option<String>,
    association_type: Option<String>,
}

impl AssociationRequest {
    fn ends(&self) -> Result<(String, String)> {
        let source = self
            .source_arn
            .clone()
            .ok_or_else(|| Error::validation("SourceArn is required"))?;
        let destination = self
            .destination_arn
            .clone()
            .ok_or_else(|| Error::validation("DestinationArn is required"))?;
        Ok((source, destination))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListAssociationsRequest {
    source_arn: Option<String>,
    destination_arn: Option<String>,
    source_type: Option<String>,
    destination_type: Option<String>,
    association_type: Option<String>,
    created_after: Option<Value>,
    created_before: Option<Value>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FiltersJson {
    types: Option<Vec<String>>,
    lineage_types: Option<Vec<String>>,
    created_before: Option<Value>,
    created_after: Option<Value>,
    modified_before: Option<Value>,
    modified_after: Option<Value>,
    properties: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueryLineageRequest {
    start_arns: Option<Vec<String>>,
    direction: Option<String>,
    include_edges: Option<bool>,
    include_source: Option<bool>,
    filters: Option<FiltersJson>,
    max_depth: Option<i64>,
    max_results: Option<i64>,
    next_token: Option<String>,
}
