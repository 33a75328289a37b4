//! The gRPC API called in process: the sink of the ingest workers that run inside the server
//! (`[[source]]` tables). They call the same handlers a remote client reaches, with the same
//! authorization, metrics and errors, but with no protobuf encoding, HTTP/2 or socket between
//! them and the store.

use std::collections::HashMap;

use futures::future::BoxFuture;
use quiver_ingest::sink::{Sink, positions_by_partition};
use quiver_proto::v1 as pb;
use quiver_proto::v1_server::feature_store_server::FeatureStore as FeatureStoreApi;
use tonic::{Request, Status};

use super::GrpcService;
use quiver_auth::Caller;

/// Calls [`GrpcService`]'s handlers as `principal` (none: the anonymous caller of a server
/// without authentication). The call does not cross the network: it counts as secure
/// transport and has no source address.
pub struct InProcess {
    service: GrpcService,
    principal: Option<String>,
}

impl InProcess {
    pub fn new(service: GrpcService, principal: Option<String>) -> Self {
        Self { service, principal }
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if self.principal.is_some() {
            request
                .extensions_mut()
                .insert(Caller::new(self.principal.clone(), None, true));
        }
        request
    }
}

impl Sink for InProcess {
    fn describe<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, Result<pb::DescribeFeatureGroupResponse, Status>> {
        let request = self.request(pb::DescribeFeatureGroupRequest {
            feature_group_name: group.to_string(),
        });
        Box::pin(async move {
            Ok(self
                .service
                .describe_feature_group(request)
                .await?
                .into_inner())
        })
    }

    fn positions<'a>(
        &'a self,
        source: &'a str,
    ) -> BoxFuture<'a, Result<HashMap<String, String>, Status>> {
        let request = self.request(pb::GetSourcePositionsRequest {
            source: source.to_string(),
        });
        Box::pin(async move {
            let positions = self.service.get_source_positions(request).await?;
            Ok(positions_by_partition(positions.into_inner()))
        })
    }

    fn put(
        &self,
        request: pb::PutSourceRecordsRequest,
    ) -> BoxFuture<'_, Result<pb::PutSourceRecordsResponse, Status>> {
        let request = self.request(request);
        Box::pin(async move { Ok(self.service.put_source_records(request).await?.into_inner()) })
    }
}
