//! Where a worker's records go: the server's `PutSourceRecords`, which stores each batch with
//! the source positions it advances in one atomic write, and skips what an earlier write
//! already applied. A [`Sink`] is that API: [`Server`] reaches it over gRPC (the standalone
//! `quiver-ingest`); inside `quiver-server` the workers call the server's handlers in process,
//! with no encoding or transport between them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use quiver_proto::signing::{Credentials, Signed};
use quiver_proto::tls::{self, ClientTls};
use quiver_proto::v1 as pb;
use quiver_proto::v1::feature_store_client::FeatureStoreClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::error::{IngestError, Result};

/// What a worker needs of the server: the target group's description, a source's stored
/// positions, and the write of records with the positions they advance. Errors are gRPC
/// statuses, in process too, so [`retryable`] means the same for every sink.
pub trait Sink: Send + Sync + 'static {
    fn describe<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, Result<pb::DescribeFeatureGroupResponse, Status>>;

    /// The stored positions of `source`, by partition.
    fn positions<'a>(
        &'a self,
        source: &'a str,
    ) -> BoxFuture<'a, Result<HashMap<String, String>, Status>>;

    fn put(
        &self,
        request: pb::PutSourceRecordsRequest,
    ) -> BoxFuture<'_, Result<pb::PutSourceRecordsResponse, Status>>;
}

/// A sink shared by the workers of every source.
pub type SharedSink = Arc<dyn Sink>;

/// The Quiver server, over gRPC.
#[derive(Clone)]
pub struct Server {
    client: FeatureStoreClient<Signed<Channel>>,
}

impl Server {
    /// A client for `endpoint` (`http://host:port`) with the credentials of the environment or
    /// the profile file, if any (`quiver_proto::signing::Credentials::load`). It connects on
    /// first use, so a worker started before its server waits for it rather than failing.
    /// An `https://` endpoint is reached over TLS as `quiver_proto::tls` describes.
    pub fn new(endpoint: &str) -> Result<Self> {
        Self::with_credentials(
            endpoint,
            Credentials::load().map_err(IngestError::Config)?,
            tls::for_endpoint(endpoint).map_err(IngestError::Config)?,
        )
    }

    /// A client that signs its requests with `credentials` (none: unsigned), over TLS with
    /// `tls` (which an `https://` endpoint needs).
    pub fn with_credentials(
        endpoint: &str,
        credentials: Option<Credentials>,
        tls: Option<ClientTls>,
    ) -> Result<Self> {
        let target = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| IngestError::Config(format!("server endpoint {endpoint:?}: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let channel = match tls {
            Some(tls) => tls.connect_lazy(&target),
            None if endpoint.starts_with("https://") => {
                return Err(IngestError::Config(format!(
                    "server endpoint {endpoint:?}: https needs TLS settings"
                )));
            }
            None => target.connect_lazy(),
        };
        Ok(Self {
            client: FeatureStoreClient::new(Signed::new(channel, credentials))
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        })
    }
}

impl Sink for Server {
    fn describe<'a>(
        &'a self,
        group: &'a str,
    ) -> BoxFuture<'a, Result<pb::DescribeFeatureGroupResponse, Status>> {
        let request = pb::DescribeFeatureGroupRequest {
            feature_group_name: group.to_string(),
        };
        let mut client = self.client.clone();
        Box::pin(async move { Ok(client.describe_feature_group(request).await?.into_inner()) })
    }

    fn positions<'a>(
        &'a self,
        source: &'a str,
    ) -> BoxFuture<'a, Result<HashMap<String, String>, Status>> {
        let request = pb::GetSourcePositionsRequest {
            source: source.to_string(),
        };
        let mut client = self.client.clone();
        Box::pin(async move {
            let positions = client.get_source_positions(request).await?.into_inner();
            Ok(positions_by_partition(positions))
        })
    }

    fn put(
        &self,
        request: pb::PutSourceRecordsRequest,
    ) -> BoxFuture<'_, Result<pb::PutSourceRecordsResponse, Status>> {
        let mut client = self.client.clone();
        Box::pin(async move { Ok(client.put_source_records(request).await?.into_inner()) })
    }
}

/// A `GetSourcePositions` answer as a map from partition to position.
pub fn positions_by_partition(response: pb::GetSourcePositionsResponse) -> HashMap<String, String> {
    response
        .positions
        .into_iter()
        .map(|p| (p.partition, p.position))
        .collect()
}

/// Whether a failed call may succeed when tried again: the server unreachable, shutting down,
/// or refusing writes for now (the offline store behind). Anything else is a fault in the
/// request.
pub fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::ResourceExhausted
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::Unknown
            | Code::Cancelled
    )
}

/// Calls `call` until it succeeds or fails for good, waiting between tries (100 ms doubling to
/// 5 s): back-pressure when the server is down or behind. Nothing is dropped meanwhile.
pub async fn with_retries<T, F, Fut>(what: &str, mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mut wait = Duration::from_millis(100);
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(status) if retryable(&status) => {
                tracing::warn!(
                    code = ?status.code(),
                    message = status.message(),
                    "{what} failed; retrying in {wait:?}"
                );
                metrics::counter!("quiver_ingest_retries_total").increment(1);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(status) => return Err(status),
        }
    }
}
