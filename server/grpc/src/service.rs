//! `quiver.featurestore.v1.FeatureStore` over tonic. Each handler translates, calls the domain
//! operation (writes on the blocking pool, or through group commit for PutRecord), and records
//! the request in the metrics.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use prost::Message;
use quiver_proto::v1 as pb;
use quiver_proto::v1_server::feature_store_server::FeatureStore as FeatureStoreApi;
use quiver_proto::{Encoded, Undecoded};
use tonic::{Request, Response, Status};

use super::status::{ToStatus, status};
use super::{convert, decode, encode};
use crate::metrics::{self, MethodMetrics};
use quiver_auth::{Access, Caller, Features};
use quiver_core::group_commit::GroupCommit;
use quiver_core::{BatchGetEntry, FeatureStore, SharedFeatures, blocking};
use quiver_lineage::sources::SourceLineage;
use quiver_types::error::{Error, Result};
use quiver_types::model::TtlUpdate;

#[derive(Clone)]
pub struct GrpcService {
    store: Arc<FeatureStore>,
    /// PutRecord goes through group commit; other writes run on the blocking pool.
    puts: GroupCommit,
    access: Arc<Access>,
    /// Records the stream sources that write, in the lineage graph.
    sources: Option<Arc<SourceLineage>>,
}

impl GrpcService {
    pub fn new(store: Arc<FeatureStore>, puts: GroupCommit, access: Arc<Access>) -> Self {
        Self {
            store,
            puts,
            access,
            sources: None,
        }
    }

    /// Records in the lineage graph which streams feed which groups (PutSourceRecords'
    /// `source_uris`).
    pub fn with_source_lineage(mut self, sources: Arc<SourceLineage>) -> Self {
        self.sources = Some(sources);
        self
    }

    /// Records, off the write path, the source URIs of a write not recorded yet for `group`.
    fn record_sources(&self, source: &str, group: &str, uris: &[String]) {
        let Some(sources) = self.sources.clone() else {
            return;
        };
        let unseen = sources.unseen(group, uris);
        if unseen.is_empty() {
            return;
        }
        let (store, source, group) = (self.store.clone(), source.to_string(), group.to_string());
        tokio::task::spawn_blocking(move || {
            let Ok(described) = store.describe_feature_group(&group) else {
                return;
            };
            for uri in unseen {
                if let Err(e) = sources.record(&source, &group, &described, &uri) {
                    tracing::error!(source, uri, error = %e, "cannot record the stream source's lineage");
                }
            }
        });
    }

    /// Authorizes `action` on `group` (or on no group) for the request's caller; every handler
    /// calls this (or [`GrpcService::authorize_writes`]) before it does anything.
    fn authorize<T>(
        &self,
        request: &Request<T>,
        action: &str,
        group: Option<&str>,
        features: Features,
    ) -> Result<()> {
        let caller = caller(request);
        self.access
            .authorize_group(caller, action, group, features, |g| {
                self.store.feature_names(g)
            })
    }

    /// PutRecord on each group the records write, with the features written to it (listed
    /// only when a policy tests them: this runs on every write).
    fn authorize_writes<'a, T>(
        &self,
        request: &Request<T>,
        records: impl Iterator<Item = &'a pb::PutRecordRequest>,
    ) -> Result<()> {
        self.authorize_group_writes(
            request,
            records.map(|r| {
                let names = r.record.iter().map(|v| v.feature_name.as_str());
                (r.feature_group_name.as_str(), names)
            }),
        )
    }

    /// PutRecord on each (group, names of the features written) of `writes`, as every front
    /// door authorizes writes ([`Access::authorize_writes`]).
    fn authorize_group_writes<'a, T, N: Iterator<Item = &'a str>>(
        &self,
        request: &Request<T>,
        writes: impl Iterator<Item = (&'a str, N)>,
    ) -> Result<()> {
        self.access
            .authorize_writes(caller(request), writes, |g| self.store.feature_names(g))
    }

    /// An ingest source, as a resource: `arn:aws:sagemaker:<region>:<account>:ingest-source/<name>`.
    fn source_arn(&self, source: &str) -> String {
        let arns = self.access.arns();
        format!(
            "arn:aws:sagemaker:{}:{}:ingest-source/{source}",
            arns.region, arns.account_id
        )
    }
}

/// The caller the authentication layer attached to the request; without authentication it
/// attaches none, and the request is the anonymous caller's (whom `Access::authorize` lets
/// through only when authentication is off).
pub fn caller<T>(request: &Request<T>) -> &Caller {
    request
        .extensions()
        .get::<Caller>()
        .unwrap_or_else(|| Caller::anonymous())
}

/// The named method's [`MethodMetrics`], registered on first use.
macro_rules! method {
    ($name:literal) => {{
        static METRICS: std::sync::LazyLock<MethodMetrics> =
            std::sync::LazyLock::new(|| MethodMetrics::new($name));
        &*METRICS
    }};
}

/// Times a handler and counts it by outcome.
async fn observe<T>(
    method: &MethodMetrics,
    handler: impl Future<Output = Result<T>>,
) -> Result<Response<T>, Status> {
    let started = Instant::now();
    let result = handler.await;
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(e) => e.to_status().code(),
    };
    method.record(code, started.elapsed());
    result.map(Response::new).map_err(status)
}

#[tonic::async_trait]
impl FeatureStoreApi for GrpcService {
    async fn create_feature_group(
        &self,
        request: Request<pb::CreateFeatureGroupRequest>,
    ) -> Result<Response<pb::CreateFeatureGroupResponse>, Status> {
        observe(method!("CreateFeatureGroup"), async {
            let group = request.get_ref().feature_group_name.as_str();
            self.authorize(
                &request,
                "sagemaker:CreateFeatureGroup",
                Some(group),
                Features::Unnamed,
            )?;
            let spec = convert::group_spec(request.into_inner())?;
            let group = blocking(&self.store, move |s| s.create_feature_group(spec)).await?;
            Ok(pb::CreateFeatureGroupResponse {
                feature_group_arn: group.arn.clone(),
            })
        })
        .await
    }

    async fn describe_feature_group(
        &self,
        request: Request<pb::DescribeFeatureGroupRequest>,
    ) -> Result<Response<pb::DescribeFeatureGroupResponse>, Status> {
        observe(method!("DescribeFeatureGroup"), async {
            let group = request.get_ref().feature_group_name.as_str();
            self.authorize(
                &request,
                "sagemaker:DescribeFeatureGroup",
                Some(group),
                Features::Unnamed,
            )?;
            let group = self
                .store
                .describe_feature_group(&request.get_ref().feature_group_name)?;
            Ok(convert::describe(&group, self.store.offline()))
        })
        .await
    }

    async fn list_feature_groups(
        &self,
        request: Request<pb::ListFeatureGroupsRequest>,
    ) -> Result<Response<pb::ListFeatureGroupsResponse>, Status> {
        observe(method!("ListFeatureGroups"), async {
            self.authorize(
                &request,
                "sagemaker:ListFeatureGroups",
                None,
                Features::Unnamed,
            )?;
            let query = convert::list_query(request.into_inner())?;
            let page = self.store.list_feature_groups(&query)?;
            Ok(pb::ListFeatureGroupsResponse {
                feature_group_summaries: page
                    .groups
                    .iter()
                    .map(|g| convert::summary(g, self.store.offline()))
                    .collect(),
                next_token: page.next_token.unwrap_or_default(),
            })
        })
        .await
    }

    async fn update_feature_group(
        &self,
        request: Request<pb::UpdateFeatureGroupRequest>,
    ) -> Result<Response<pb::UpdateFeatureGroupResponse>, Status> {
        observe(method!("UpdateFeatureGroup"), async {
            let group = request.get_ref().feature_group_name.as_str();
            self.authorize(
                &request,
                "sagemaker:UpdateFeatureGroup",
                Some(group),
                Features::Unnamed,
            )?;
            let req = request.into_inner();
            let additions = convert::feature_specs("FeatureAdditions", req.feature_additions)?;
            let ttl = match req.online_store_config {
                Some(c) if c.clear_ttl_duration => TtlUpdate::Clear,
                Some(pb::OnlineStoreConfigUpdate {
                    ttl_duration: Some(t),
                    ..
                }) => TtlUpdate::Set(convert::ttl("OnlineStoreConfig.TtlDuration", t)?),
                _ => TtlUpdate::Keep,
            };
            let name = req.feature_group_name;
            let group = blocking(&self.store, move |s| {
                s.update_feature_group(&name, additions, ttl)
            })
            .await?;
            Ok(pb::UpdateFeatureGroupResponse {
                feature_group_arn: group.arn.clone(),
            })
        })
        .await
    }

    async fn delete_feature_group(
        &self,
        request: Request<pb::DeleteFeatureGroupRequest>,
    ) -> Result<Response<pb::DeleteFeatureGroupResponse>, Status> {
        observe(method!("DeleteFeatureGroup"), async {
            let group = request.get_ref().feature_group_name.as_str();
            self.authorize(
                &request,
                "sagemaker:DeleteFeatureGroup",
                Some(group),
                Features::Unnamed,
            )?;
            let name = request.into_inner().feature_group_name;
            blocking(&self.store, move |s| s.delete_feature_group(&name)).await?;
            Ok(pb::DeleteFeatureGroupResponse {})
        })
        .await
    }

    async fn update_feature_metadata(
        &self,
        request: Request<pb::UpdateFeatureMetadataRequest>,
    ) -> Result<Response<pb::UpdateFeatureMetadataResponse>, Status> {
        observe(method!("UpdateFeatureMetadata"), async {
            let r = request.get_ref();
            let feature = [r.feature_name.clone()];
            self.authorize(
                &request,
                "sagemaker:UpdateFeatureMetadata",
                Some(&r.feature_group_name),
                Features::Named(&feature),
            )?;
            let req = request.into_inner();
            let additions = req
                .parameter_additions
                .into_iter()
                .map(|p| (p.key, p.value))
                .collect();
            blocking(&self.store, move |s| {
                s.update_feature_metadata(
                    &req.feature_group_name,
                    &req.feature_name,
                    req.description,
                    additions,
                    req.parameter_removals,
                )
            })
            .await?;
            Ok(pb::UpdateFeatureMetadataResponse {})
        })
        .await
    }

    async fn get_offline_store_catalog(
        &self,
        request: Request<pb::GetOfflineStoreCatalogRequest>,
    ) -> Result<Response<pb::GetOfflineStoreCatalogResponse>, Status> {
        observe(method!("GetOfflineStoreCatalog"), async {
            let group = request.get_ref().feature_group_name.as_str();
            self.authorize(
                &request,
                "quiver:GetOfflineStoreCatalog",
                Some(group),
                Features::Unnamed,
            )?;
            let req = request.get_ref();
            let format = convert::enum_value::<pb::CatalogFormat>("Format", req.format)?;
            let table = self.store.offline_catalog(&req.feature_group_name)?;
            let definition = match format {
                pb::CatalogFormat::Athena => table.athena_ddl(),
                pb::CatalogFormat::Glue | pb::CatalogFormat::Unspecified => {
                    serde_json::to_string_pretty(&table.glue_create_table_input())
                        .expect("JSON values always serialise")
                }
            };
            Ok(pb::GetOfflineStoreCatalogResponse {
                catalog: table.catalog,
                database: table.database,
                table_name: table.table,
                location: table.location,
                definition,
            })
        })
        .await
    }

    async fn describe_feature_metadata(
        &self,
        request: Request<pb::DescribeFeatureMetadataRequest>,
    ) -> Result<Response<pb::DescribeFeatureMetadataResponse>, Status> {
        observe(method!("DescribeFeatureMetadata"), async {
            let r = request.get_ref();
            let feature = [r.feature_name.clone()];
            self.authorize(
                &request,
                "sagemaker:DescribeFeatureMetadata",
                Some(&r.feature_group_name),
                Features::Named(&feature),
            )?;
            let req = request.get_ref();
            let (group, ordinal) = self
                .store
                .describe_feature_metadata(&req.feature_group_name, &req.feature_name)?;
            let feature = &group.features[usize::from(ordinal)];
            Ok(pb::DescribeFeatureMetadataResponse {
                feature_group_arn: group.arn.clone(),
                feature_group_name: group.name.clone(),
                feature_name: feature.name.clone(),
                feature_type: convert::feature_type(feature.feature_type) as i32,
                collection_type: convert::collection_type(feature.collection) as i32,
                creation_time_unix_ms: feature.creation_time_ms,
                last_modified_time_unix_ms: feature.last_modified_time_ms,
                description: feature.description.clone(),
                parameters: feature
                    .parameters
                    .iter()
                    .map(|(key, value)| pb::FeatureParameter {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn put_record(
        &self,
        request: Request<Undecoded>,
    ) -> Result<Response<pb::PutRecordResponse>, Status> {
        observe(method!("PutRecord"), async {
            let bytes = &request.get_ref().0;
            // Read in place when plain (almost always); otherwise prost says what it means.
            let decoded;
            let put = match decode::put_record_request(bytes) {
                Some(put) => put,
                None => {
                    decoded = pb::PutRecordRequest::decode(bytes.clone()).map_err(|e| {
                        Error::validation(format!(
                            "the request is not a valid PutRecordRequest: {e}"
                        ))
                    })?;
                    decode::PutRecordRequest::of(&decoded)
                }
            };
            let names = put.record.iter().map(|(name, _)| *name);
            let group_name = put.feature_group_name;
            self.authorize_group_writes(&request, std::iter::once((group_name, names)))?;
            let record = put.record.into_iter();
            let put = convert::put_parts(record, &put.target_stores, put.ttl_duration)?;
            let outcome = self.puts.put_record(group_name, put).await?;
            metrics::record_writes(1);
            Ok(pb::PutRecordResponse {
                outcome: convert::outcome(outcome) as i32,
            })
        })
        .await
    }

    async fn put_records(
        &self,
        request: Request<pb::PutRecordsRequest>,
    ) -> Result<Response<pb::PutRecordsResponse>, Status> {
        observe(method!("PutRecords"), async {
            self.authorize_writes(&request, request.get_ref().records.iter())?;
            let puts = request
                .into_inner()
                .records
                .into_iter()
                .enumerate()
                .map(|(i, r)| convert::put_request(r).map_err(|e| e.at(format!("Records[{i}]"))))
                .collect::<Result<Vec<_>>>()?;
            let count = puts.len();
            let outcomes = blocking(&self.store, move |s| s.put_records(puts)).await?;
            metrics::record_writes(count);
            Ok(pb::PutRecordsResponse {
                outcomes: outcomes
                    .into_iter()
                    .map(|o| convert::outcome(o) as i32)
                    .collect(),
            })
        })
        .await
    }

    async fn put_source_records(
        &self,
        request: Request<pb::PutSourceRecordsRequest>,
    ) -> Result<Response<pb::PutSourceRecordsResponse>, Status> {
        observe(method!("PutSourceRecords"), async {
            let r = request.get_ref();
            let source = self.source_arn(&r.source);
            self.access
                .authorize(caller(&request), "quiver:PutSourceRecords", &source, None)?;
            // Records of their own, and those of the shared group and features.
            let shared = !r.feature_group_name.is_empty() || !r.feature_names.is_empty();
            if r.records.iter().any(|s| s.record.is_some()) || !shared {
                self.authorize_writes(
                    &request,
                    r.records.iter().filter_map(|s| s.record.as_ref()),
                )?;
            }
            if shared {
                let given = |k: usize| {
                    r.records
                        .iter()
                        .any(|s| s.values.get(k).is_some_and(|v| v.value.is_some()))
                };
                let names = r
                    .feature_names
                    .iter()
                    .enumerate()
                    .filter(move |(k, _)| given(*k))
                    .map(|(_, name)| name.as_str());
                self.authorize_group_writes(
                    &request,
                    std::iter::once((r.feature_group_name.as_str(), names)),
                )?;
            }
            let req = request.into_inner();
            let records = req
                .records
                .into_iter()
                .enumerate()
                .map(|(i, r)| convert::source_record(r).map_err(|e| e.at(format!("Records[{i}]"))))
                .collect::<Result<Vec<_>>>()?;
            let positions = req
                .positions
                .into_iter()
                .map(|p| (p.partition, p.position))
                .collect();
            // Kept only when the lineage service records stream sources.
            let lineage = self.sources.is_some().then(|| {
                (
                    req.source.clone(),
                    req.feature_group_name.clone(),
                    req.source_uris,
                )
            });
            let shared = shared.then_some(SharedFeatures {
                group: req.feature_group_name,
                features: req.feature_names,
            });
            let source = req.source;
            let written = blocking(&self.store, move |s| {
                s.put_source_records(&source, records, positions, shared)
            })
            .await?;
            if let Some((source, group, uris)) = lineage
                && !group.is_empty()
            {
                self.record_sources(&source, &group, &uris);
            }
            let applied = written
                .results
                .iter()
                .filter(|r| matches!(r, quiver_core::SourceRecordResult::Written(_)))
                .count();
            metrics::record_writes(applied);
            Ok(convert::source_write(written))
        })
        .await
    }

    async fn get_source_positions(
        &self,
        request: Request<pb::GetSourcePositionsRequest>,
    ) -> Result<Response<pb::GetSourcePositionsResponse>, Status> {
        observe(method!("GetSourcePositions"), async {
            let source = self.source_arn(&request.get_ref().source);
            self.access
                .authorize(caller(&request), "quiver:GetSourcePositions", &source, None)?;
            let positions = self.store.source_positions(&request.get_ref().source)?;
            Ok(pb::GetSourcePositionsResponse {
                positions: positions
                    .into_iter()
                    .map(convert::source_position)
                    .collect(),
            })
        })
        .await
    }

    async fn get_record(
        &self,
        request: Request<pb::GetRecordRequest>,
    ) -> Result<Response<Encoded>, Status> {
        observe(method!("GetRecord"), async {
            let r = request.get_ref();
            self.authorize(
                &request,
                "sagemaker:GetRecord",
                Some(&r.feature_group_name),
                Features::Named(&r.feature_names),
            )?;
            let req = request.get_ref();
            let view = self.store.get_record(
                &req.feature_group_name,
                &req.record_identifier_value_as_string,
                &req.feature_names,
            )?;
            encode::get_record_response(view.as_ref(), req.expiration_time_response)
        })
        .await
    }

    async fn batch_get_record(
        &self,
        request: Request<pb::BatchGetRecordRequest>,
    ) -> Result<Response<Encoded>, Status> {
        observe(method!("BatchGetRecord"), async {
            for entry in &request.get_ref().identifiers {
                self.authorize(
                    &request,
                    "sagemaker:BatchGetRecord",
                    Some(&entry.feature_group_name),
                    Features::Named(&entry.feature_names),
                )?;
            }
            if request.get_ref().identifiers.is_empty() {
                self.authorize(
                    &request,
                    "sagemaker:BatchGetRecord",
                    None,
                    Features::Unnamed,
                )?;
            }
            let req = request.into_inner();
            let entries: Vec<BatchGetEntry> = req
                .identifiers
                .into_iter()
                .map(|i| BatchGetEntry {
                    group_name: i.feature_group_name,
                    identifiers: i.record_identifiers_value_as_string,
                    feature_names: i.feature_names,
                })
                .collect();
            let items = self.store.batch_get_record(&entries)?;
            encode::batch_get_record_response(&items, req.expiration_time_response)
        })
        .await
    }

    async fn delete_record(
        &self,
        request: Request<pb::DeleteRecordRequest>,
    ) -> Result<Response<pb::DeleteRecordResponse>, Status> {
        observe(method!("DeleteRecord"), async {
            let group = request.get_ref().feature_group_name.as_str();
            self.authorize(
                &request,
                "sagemaker:DeleteRecord",
                Some(group),
                Features::Unnamed,
            )?;
            let req = request.into_inner();
            let mode = convert::deletion_mode(req.deletion_mode)?;
            let targets = convert::target_stores(&req.target_stores)?;
            blocking(&self.store, move |s| {
                s.delete_record(
                    &req.feature_group_name,
                    &req.record_identifier_value_as_string,
                    &req.event_time,
                    &targets,
                    mode,
                )
            })
            .await?;
            Ok(pb::DeleteRecordResponse {})
        })
        .await
    }
}
