//! `quiver.featurestore.v1.Lineage` over tonic: the lineage graph's operations, each authorized
//! as the SageMaker action it corresponds to (`sagemaker:CreateArtifact`, ...,
//! `sagemaker:QueryLineage`) on the entity's ARN, as the SageMaker API does.

use std::collections::BTreeMap;
use std::sync::Arc;

use quiver_proto::v1 as pb;
use quiver_proto::v1::lineage_server::Lineage as LineageApi;
use tonic::{Request, Response, Status};

use crate::lineage_experiments as experiments;
use crate::service::caller;
use crate::status::status;
use quiver_auth::{Access, Caller};
use quiver_lineage::Lineage;
use quiver_lineage::associations::{AssociationListQuery, AssociationSort};
use quiver_lineage::entities::{EntityListQuery, EntitySort};
use quiver_lineage::model::{
    Association, AssociationType, Entity, EntityKind, EntityUpdate, MetadataProperties, NewEntity,
    Source, SourceIdentity, Tag,
};
use quiver_lineage::query::{Direction, LineageQuery, QueryFilters};
use quiver_types::error::{Error, ErrorKind, Result};

#[derive(Clone)]
pub struct LineageService {
    lineage: Arc<Lineage>,
    access: Arc<Access>,
}

impl LineageService {
    pub fn new(lineage: Arc<Lineage>, access: Arc<Access>) -> Self {
        Self { lineage, access }
    }

    fn authorize(&self, caller: &Caller, operation: &str, resource: &str) -> Result<()> {
        self.access
            .authorize(caller, &format!("sagemaker:{operation}"), resource, None)
    }

    /// The caller's principal ARN, recorded as creator and modifier.
    fn by(&self, caller: &Caller) -> Option<String> {
        caller
            .principal
            .as_deref()
            .map(|p| self.access.store().principal_arn(p))
    }

    /// Runs `op` on a blocking thread: the graph is in RocksDB.
    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&LineageService) -> Result<T> + Send + 'static,
    ) -> Result<Response<T>, Status> {
        let service = self.clone();
        tokio::task::spawn_blocking(move || op(&service))
            .await
            .map_err(|e| status(Error::internal(format!("lineage task failed: {e}"))))?
            .map(Response::new)
            .map_err(status)
    }

    /// The kind a request names. Without one its action is unknown: the caller must then be
    /// allowed `quiver:<method>` on `*` to learn what is wrong with the request.
    fn required_kind(&self, caller: &Caller, method: &str, kind: i32) -> Result<EntityKind> {
        match kind_of(kind) {
            Ok(Some(kind)) => Ok(kind),
            other => {
                self.access
                    .authorize(caller, &format!("quiver:{method}"), "*", None)?;
                other?;
                Err(Error::validation(
                    "kind is required (ARTIFACT, ACTION, CONTEXT, EXPERIMENT, TRIAL or TRIAL_COMPONENT)",
                ))
            }
        }
    }

    /// AssociateTrialComponent / DisassociateTrialComponent, authorized on both ends.
    async fn membership(
        &self,
        operation: &'static str,
        request: Request<pb::TrialMembershipRequest>,
    ) -> Result<Response<pb::TrialMembershipResponse>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            for (kind, name) in [
                (EntityKind::TrialComponent, &r.trial_component),
                (EntityKind::Trial, &r.trial),
            ] {
                s.authorize(&caller, operation, &s.lineage.resource_arn(kind, name))?;
            }
            let (trial_component_arn, trial_arn) = if operation == "AssociateTrialComponent" {
                s.lineage
                    .associate_trial_component(&r.trial_component, &r.trial)?
            } else {
                s.lineage
                    .disassociate_trial_component(&r.trial_component, &r.trial)?
            };
            Ok(pb::TrialMembershipResponse {
                trial_component_arn,
                trial_arn,
            })
        })
        .await
    }

    /// `DescribeEntity` / `DeleteEntity`: the kind named, or for a bare name a context, else
    /// an action; `op` is `Describe` or `Delete`.
    fn find(
        &self,
        caller: &Caller,
        op: &str,
        kind: i32,
        name_or_arn: &str,
        run: impl Fn(EntityKind, &str) -> Result<Entity>,
    ) -> Result<Entity> {
        let named = match kind_of(kind) {
            Ok(named) => named,
            Err(_) => Some(self.required_kind(caller, &format!("{op}Entity"), kind)?),
        };
        let kinds: Vec<EntityKind> = match named {
            Some(kind) => vec![kind],
            None => match EntityKind::of_arn(name_or_arn) {
                Some(kind) => vec![kind],
                None if name_or_arn.starts_with("arn:") => {
                    return Err(Error::validation(format!(
                        "name_or_arn {} is not the ARN of an entity of the lineage graph",
                        quiver_types::error::quote(name_or_arn)
                    )));
                }
                None => vec![EntityKind::Context, EntityKind::Action],
            },
        };
        let mut last = None;
        for kind in kinds {
            self.authorize(
                caller,
                &format!("{op}{}", kind.name()),
                &self.lineage.resource_arn(kind, name_or_arn),
            )?;
            match run(kind, name_or_arn) {
                Err(e) if e.kind() == ErrorKind::NotFound => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| Error::not_found("no such lineage entity")))
    }
}

fn kind_of(kind: i32) -> Result<Option<EntityKind>> {
    match pb::LineageEntityKind::try_from(kind) {
        Ok(pb::LineageEntityKind::Unspecified) => Ok(None),
        Ok(pb::LineageEntityKind::Artifact) => Ok(Some(EntityKind::Artifact)),
        Ok(pb::LineageEntityKind::Action) => Ok(Some(EntityKind::Action)),
        Ok(pb::LineageEntityKind::Context) => Ok(Some(EntityKind::Context)),
        Ok(pb::LineageEntityKind::Experiment) => Ok(Some(EntityKind::Experiment)),
        Ok(pb::LineageEntityKind::Trial) => Ok(Some(EntityKind::Trial)),
        Ok(pb::LineageEntityKind::TrialComponent) => Ok(Some(EntityKind::TrialComponent)),
        Err(_) => Err(Error::validation(format!(
            "kind: {kind} is not a lineage entity kind"
        ))),
    }
}

fn kind_pb(kind: EntityKind) -> pb::LineageEntityKind {
    match kind {
        EntityKind::Artifact => pb::LineageEntityKind::Artifact,
        EntityKind::Action => pb::LineageEntityKind::Action,
        EntityKind::Context => pb::LineageEntityKind::Context,
        EntityKind::Experiment => pb::LineageEntityKind::Experiment,
        EntityKind::Trial => pb::LineageEntityKind::Trial,
        EntityKind::TrialComponent => pb::LineageEntityKind::TrialComponent,
    }
}

fn entity_pb(e: Entity) -> pb::LineageEntity {
    let metadata: BTreeMap<String, String> = [
        ("CommitId", e.metadata.commit_id),
        ("Repository", e.metadata.repository),
        ("GeneratedBy", e.metadata.generated_by),
        ("ProjectId", e.metadata.project_id),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
    .collect();
    pb::LineageEntity {
        kind: kind_pb(e.kind).into(),
        arn: e.arn,
        name: e.name,
        source: Some(source_pb(e.source)),
        entity_type: e.entity_type,
        description: e.description,
        status: e.status,
        properties: e.properties.into_iter().collect(),
        metadata_properties: metadata.into_iter().collect(),
        tags: e.tags.into_iter().map(|t| (t.key, t.value)).collect(),
        creation_time_ms: e.created_ms,
        created_by: e.created_by,
        last_modified_time_ms: e.modified_ms,
        last_modified_by: e.modified_by,
        experiment: e.experiment.map(experiments::fields_pb),
    }
}

fn source_pb(s: Source) -> pb::LineageSource {
    pb::LineageSource {
        source_uri: s.source_uri,
        source_types: s
            .source_types
            .into_iter()
            .map(|t| pb::LineageSourceIdentity {
                source_id_type: t.source_id_type,
                value: t.value,
            })
            .collect(),
        source_type: s.source_type,
        source_id: s.source_id,
    }
}

fn source_of(s: Option<pb::LineageSource>) -> Result<Source> {
    let s = s.ok_or_else(|| Error::validation("source is required"))?;
    Ok(Source {
        source_uri: s.source_uri,
        source_types: s
            .source_types
            .into_iter()
            .map(|t| SourceIdentity {
                source_id_type: t.source_id_type,
                value: t.value,
            })
            .collect(),
        source_type: s.source_type,
        source_id: s.source_id,
    })
}

fn metadata_of(map: impl IntoIterator<Item = (String, String)>) -> Result<MetadataProperties> {
    let mut metadata = MetadataProperties::default();
    for (key, value) in map {
        let slot = match key.as_str() {
            "CommitId" => &mut metadata.commit_id,
            "Repository" => &mut metadata.repository,
            "GeneratedBy" => &mut metadata.generated_by,
            "ProjectId" => &mut metadata.project_id,
            other => {
                return Err(Error::validation(format!(
                    "metadata_properties: '{other}' is not CommitId, Repository, GeneratedBy or ProjectId"
                )));
            }
        };
        *slot = Some(value);
    }
    Ok(metadata)
}

fn association_type(text: Option<&str>) -> Result<Option<AssociationType>> {
    text.map(|t| AssociationType::parse("association_type", t))
        .transpose()
}

fn max(field: Option<i32>) -> Option<i64> {
    field.map(i64::from)
}

fn association_pb(a: Association) -> pb::LineageAssociation {
    pb::LineageAssociation {
        source_arn: a.source_arn,
        destination_arn: a.destination_arn,
        association_type: a.association_type.map(|t| t.name().to_string()),
        source_type: a.source_type,
        destination_type: a.destination_type,
        source_name: a.source_name,
        destination_name: a.destination_name,
        creation_time_ms: a.created_ms,
        created_by: a.created_by,
    }
}

#[tonic::async_trait]
impl LineageApi for LineageService {
    async fn create_entity(
        &self,
        request: Request<pb::CreateLineageEntityRequest>,
    ) -> Result<Response<pb::LineageEntity>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            let kind = s.required_kind(&caller, "CreateEntity", r.kind)?;
            let resource = match (&r.name, kind) {
                (_, EntityKind::Artifact) | (None, _) => s.lineage.any_of(kind),
                (Some(name), _) => s.lineage.resource_arn(kind, name),
            };
            s.authorize(&caller, &format!("Create{}", kind.name()), &resource)?;
            if EntityKind::EXPERIMENTS.contains(&kind) {
                let metadata = metadata_of(r.metadata_properties.clone())?;
                let by = s.by(&caller);
                return experiments::create(&s.lineage, kind, r, metadata, by.as_deref())
                    .map(entity_pb);
            }
            let new = NewEntity {
                kind,
                name: r.name,
                source: source_of(r.source)?,
                entity_type: r.entity_type,
                description: r.description,
                status: r.status,
                properties: r.properties.into_iter().collect(),
                metadata: metadata_of(r.metadata_properties)?,
                tags: r
                    .tags
                    .into_iter()
                    .map(|(key, value)| Tag { key, value })
                    .collect(),
            };
            s.lineage
                .create(new, s.by(&caller).as_deref())
                .map(entity_pb)
        })
        .await
    }

    async fn describe_entity(
        &self,
        request: Request<pb::DescribeLineageEntityRequest>,
    ) -> Result<Response<pb::LineageEntity>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            s.find(&caller, "Describe", r.kind, &r.name_or_arn, |kind, name| {
                s.lineage.describe(kind, "name_or_arn", name)
            })
            .map(entity_pb)
        })
        .await
    }

    async fn list_entities(
        &self,
        request: Request<pb::ListLineageEntitiesRequest>,
    ) -> Result<Response<pb::ListLineageEntitiesResponse>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            let kind = s.required_kind(&caller, "ListEntities", r.kind)?;
            s.authorize(&caller, &format!("List{}s", kind.name()), "*")?;
            let sort_by = match r.sort_by.as_deref() {
                None => EntitySort::CreationTime,
                Some(text) => EntitySort::parse("sort_by", kind, text)?,
            };
            if EntityKind::EXPERIMENTS.contains(&kind) {
                let page = experiments::list(&s.lineage, kind, r, sort_by)?;
                return Ok(pb::ListLineageEntitiesResponse {
                    entities: page.items.into_iter().map(entity_pb).collect(),
                    next_token: page.next_token,
                });
            }
            if r.experiment_name.is_some()
                || r.trial_name.is_some()
                || r.trial_component_name.is_some()
            {
                return Err(Error::validation(format!(
                    "experiment_name, trial_name and trial_component_name filter experiments' entities, not {}s",
                    kind.noun()
                )));
            }
            let page = s.lineage.list(&EntityListQuery {
                kind,
                source_uri: r.source_uri,
                entity_type: r.entity_type,
                created_after_ms: r.created_after_ms,
                created_before_ms: r.created_before_ms,
                sort_by,
                descending: !r.ascending,
                max_results: max(r.max_results),
                next_token: r.next_token,
                within: None,
            })?;
            Ok(pb::ListLineageEntitiesResponse {
                entities: page.items.into_iter().map(entity_pb).collect(),
                next_token: page.next_token,
            })
        })
        .await
    }

    async fn update_entity(
        &self,
        request: Request<pb::UpdateLineageEntityRequest>,
    ) -> Result<Response<pb::LineageEntity>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            let kind = match (kind_of(r.kind), EntityKind::of_arn(&r.name_or_arn)) {
                (Ok(Some(kind)), _) | (Ok(None), Some(kind)) => kind,
                _ => s.required_kind(&caller, "UpdateEntity", r.kind)?,
            };
            s.authorize(
                &caller,
                &format!("Update{}", kind.name()),
                &s.lineage.resource_arn(kind, &r.name_or_arn),
            )?;
            if EntityKind::EXPERIMENTS.contains(&kind) {
                let by = s.by(&caller);
                return experiments::update(&s.lineage, kind, r, by.as_deref()).map(entity_pb);
            }
            let update = EntityUpdate {
                name: r.new_name,
                description: r.description,
                status: r.status,
                properties: r.properties.into_iter().collect(),
                properties_to_remove: r.properties_to_remove,
            };
            s.lineage
                .update(
                    kind,
                    "name_or_arn",
                    &r.name_or_arn,
                    update,
                    s.by(&caller).as_deref(),
                )
                .map(entity_pb)
        })
        .await
    }

    async fn delete_entity(
        &self,
        request: Request<pb::DescribeLineageEntityRequest>,
    ) -> Result<Response<pb::LineageEntity>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            s.find(&caller, "Delete", r.kind, &r.name_or_arn, |kind, name| {
                s.lineage.delete(kind, "name_or_arn", name)
            })
            .map(entity_pb)
        })
        .await
    }

    async fn add_association(
        &self,
        request: Request<pb::LineageAssociationRequest>,
    ) -> Result<Response<pb::LineageAssociationResponse>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            s.authorize(&caller, "AddAssociation", &r.source_arn)?;
            s.authorize(&caller, "AddAssociation", &r.destination_arn)?;
            s.lineage.add_association(
                &r.source_arn,
                &r.destination_arn,
                association_type(r.association_type.as_deref())?,
                s.by(&caller).as_deref(),
            )?;
            Ok(pb::LineageAssociationResponse {
                source_arn: r.source_arn,
                destination_arn: r.destination_arn,
            })
        })
        .await
    }

    async fn delete_association(
        &self,
        request: Request<pb::LineageAssociationRequest>,
    ) -> Result<Response<pb::LineageAssociationResponse>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            s.authorize(&caller, "DeleteAssociation", &r.source_arn)?;
            s.authorize(&caller, "DeleteAssociation", &r.destination_arn)?;
            s.lineage
                .delete_association(&r.source_arn, &r.destination_arn)?;
            Ok(pb::LineageAssociationResponse {
                source_arn: r.source_arn,
                destination_arn: r.destination_arn,
            })
        })
        .await
    }

    async fn list_associations(
        &self,
        request: Request<pb::ListLineageAssociationsRequest>,
    ) -> Result<Response<pb::ListLineageAssociationsResponse>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            s.authorize(&caller, "ListAssociations", "*")?;
            let sort_by = r
                .sort_by
                .as_deref()
                .map(|text| AssociationSort::parse("sort_by", text))
                .transpose()?;
            let page = s.lineage.list_associations(&AssociationListQuery {
                source_arn: r.source_arn,
                destination_arn: r.destination_arn,
                source_type: r.source_type,
                destination_type: r.destination_type,
                association_type: association_type(r.association_type.as_deref())?,
                created_after_ms: r.created_after_ms,
                created_before_ms: r.created_before_ms,
                sort_by,
                descending: !r.ascending,
                max_results: max(r.max_results),
                next_token: r.next_token,
            })?;
            Ok(pb::ListLineageAssociationsResponse {
                associations: page.items.into_iter().map(association_pb).collect(),
                next_token: page.next_token,
            })
        })
        .await
    }

    async fn query_lineage(
        &self,
        request: Request<pb::QueryLineageRequest>,
    ) -> Result<Response<pb::QueryLineageResponse>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            match r.start_arns.first() {
                Some(start) => s.authorize(&caller, "QueryLineage", start)?,
                None => s.authorize(&caller, "QueryLineage", "*")?,
            }
            let direction = match r.direction.as_deref() {
                None => Direction::Both,
                Some(text) => Direction::parse("direction", text)?,
            };
            let filters = r.filters.unwrap_or_default();
            let result = s.lineage.query(&LineageQuery {
                start_arns: r.start_arns,
                direction,
                include_edges: r.include_edges,
                filters: QueryFilters {
                    types: filters.types,
                    lineage_types: filters.lineage_types,
                    created_before_ms: filters.created_before_ms,
                    created_after_ms: filters.created_after_ms,
                    modified_before_ms: filters.modified_before_ms,
                    modified_after_ms: filters.modified_after_ms,
                    properties: filters.properties.into_iter().collect(),
                },
                max_depth: max(r.max_depth),
                max_results: max(r.max_results),
                next_token: r.next_token,
            })?;
            Ok(pb::QueryLineageResponse {
                vertices: result
                    .vertices
                    .into_iter()
                    .map(|v| pb::LineageVertex {
                        arn: v.arn,
                        r#type: v.entity_type,
                        lineage_type: v.lineage_type.name().to_string(),
                        source_uri: v.source_uri,
                    })
                    .collect(),
                edges: result
                    .edges
                    .into_iter()
                    .map(|e| pb::LineageEdge {
                        source_arn: e.source_arn,
                        destination_arn: e.destination_arn,
                        association_type: e.association_type.map(|t| t.name().to_string()),
                    })
                    .collect(),
                next_token: result.next_token,
            })
        })
        .await
    }

    async fn column_lineage(
        &self,
        request: Request<pb::ColumnLineageRequest>,
    ) -> Result<Response<pb::ColumnLineageResponse>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            s.access
                .authorize(&caller, "quiver:ColumnLineage", "*", None)?;
            if r.dataset_uri.is_empty() {
                return Err(Error::validation("dataset_uri is required"));
            }
            let depth = match r.depth {
                None => 1,
                Some(d) if (1..=10).contains(&d) => d as usize,
                Some(d) => {
                    return Err(Error::validation(format!("depth {d} is not in 1..10")));
                }
            };
            let edges = s
                .lineage
                .column_lineage(&r.dataset_uri, r.column.as_deref(), depth)?;
            Ok(pb::ColumnLineageResponse {
                edges: edges
                    .into_iter()
                    .map(|e| pb::ColumnEdge {
                        output_dataset: e.output_dataset,
                        output_column: e.output_column,
                        input_dataset: e.input_dataset,
                        input_field: e.input_field,
                        transformation: e.transformation,
                    })
                    .collect(),
            })
        })
        .await
    }
    async fn associate_trial_component(
        &self,
        request: Request<pb::TrialMembershipRequest>,
    ) -> Result<Response<pb::TrialMembershipResponse>, Status> {
        self.membership("AssociateTrialComponent", request).await
    }

    async fn disassociate_trial_component(
        &self,
        request: Request<pb::TrialMembershipRequest>,
    ) -> Result<Response<pb::TrialMembershipResponse>, Status> {
        self.membership("DisassociateTrialComponent", request).await
    }

    async fn put_metrics(
        &self,
        request: Request<pb::PutMetricsRequest>,
    ) -> Result<Response<pb::PutMetricsResponse>, Status> {
        let caller = caller(&request).clone();
        let r = request.into_inner();
        self.blocking(move |s| {
            s.authorize(
                &caller,
                "BatchPutMetrics",
                &s.lineage
                    .resource_arn(EntityKind::TrialComponent, &r.trial_component),
            )?;
            experiments::put_metrics(&s.lineage, r)
        })
        .await
    }
}
