//! Async Rust client for Quiver's gRPC API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), quiver_client::ClientError> {
//! use quiver_client::{Client, pb, value};
//! let client = Client::connect("http://127.0.0.1:7940").await?;
//! client.put_record(pb::PutRecordRequest {
//!     feature_group_name: "customers".into(),
//!     record: vec![value::string("customer_id", "c1"), value::fractional("event_time", 1.7e9)],
//!     ..Default::default()
//! }).await?;
//! let record = client.get_record(pb::GetRecordRequest {
//!     feature_group_name: "customers".into(),
//!     record_identifier_value_as_string: "c1".into(),
//!     ..Default::default()
//! }).await?;
//! # Ok(()) }
//! ```
//!
//! Every call is retried with exponential backoff while the server answers UNAVAILABLE (it is
//! starting, shutting down, or refusing writes for back-pressure). A retried PutRecord is safe
//! for the online store: the second attempt carries the same event time and is not newer.

use std::future::Future;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use quiver_proto::signing::{Credentials, Signed};
pub use quiver_proto::v1 as pb;
use quiver_proto::v1::auth_client::AuthClient;
use quiver_proto::v1::auto_ml_client::AutoMlClient;
use quiver_proto::v1::feature_store_client::FeatureStoreClient;
use quiver_proto::v1::lineage_client::LineageClient;
use quiver_proto::v1::prep_client::PrepClient;
use quiver_proto::v1::query_client::QueryClient;
use tonic::transport::{Channel, Endpoint};

/// The transport every call goes through: a channel that signs requests when the client has
/// credentials.
pub type Transport = Signed<Channel>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid endpoint '{endpoint}': {source}")]
    InvalidEndpoint {
        endpoint: String,
        source: tonic::transport::Error,
    },
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: tonic::transport::Error,
    },
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the query result is not a valid Arrow IPC stream: {0}")]
    Result(#[from] arrow::error::ArrowError),
}

impl ClientError {
    /// The gRPC status, when the server answered.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            ClientError::Status(s) => Some(s),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<tonic::Code> {
        self.status().map(tonic::Status::code)
    }
}

/// How UNAVAILABLE answers are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    inner: FeatureStoreClient<Transport>,
    queries: QueryClient<Transport>,
    admin: AuthClient<Transport>,
    lineage: LineageClient<Transport>,
    automl: AutoMlClient<Transport>,
    prep: PrepClient<Transport>,
    retry: RetryPolicy,
}

impl Client {
    /// Connects to `endpoint` (`http://host:port`; a bare `host:port` gets `http://`), signing
    /// requests with the credentials of the environment or profile file
    /// ([`Credentials::load`]) when there are any. An `https://` endpoint is reached over TLS
    /// with the settings of the environment (`quiver_proto::tls`: `QUIVER_CA_CERT`, and
    /// `QUIVER_CLIENT_CERT` / `QUIVER_CLIENT_KEY` for mutual TLS).
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, ClientError> {
        let credentials = Credentials::load().map_err(ClientError::Credentials)?;
        Self::connect_with(endpoint, credentials).await
    }

    /// Connects, signing every request with `credentials` (none: unsigned, for a server
    /// without authentication).
    pub async fn connect_with(
        endpoint: impl Into<String>,
        credentials: Option<Credentials>,
    ) -> Result<Self, ClientError> {
        let mut endpoint = endpoint.into();
        if !endpoint.contains("://") {
            endpoint = format!("http://{endpoint}");
        }
        let tls = quiver_proto::tls::for_endpoint(&endpoint).map_err(ClientError::Tls)?;
        let target = Endpoint::from_shared(endpoint.clone())
            .map_err(|source| ClientError::InvalidEndpoint {
                endpoint: endpoint.clone(),
                source,
            })?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .http2_adaptive_window(true);
        let channel = match tls {
            Some(tls) => tls.connect(&target).await,
            None => target.connect().await,
        }
        .map_err(|source| ClientError::Connect { endpoint, source })?;
        Ok(Self::from_channel(channel, credentials))
    }

    pub fn from_channel(channel: Channel, credentials: Option<Credentials>) -> Self {
        let channel = Signed::new(channel, credentials);
        Self {
            inner: FeatureStoreClient::new(channel.clone())
                .max_decoding_message_size(64 * 1024 * 1024)
                .max_encoding_message_size(64 * 1024 * 1024),
            queries: QueryClient::new(channel.clone()).max_decoding_message_size(256 * 1024 * 1024),
            admin: AuthClient::new(channel.clone()),
            lineage: LineageClient::new(channel.clone()),
            automl: AutoMlClient::new(channel.clone()),
            prep: PrepClient::new(channel),
            retry: RetryPolicy::default(),
        }
    }

    /// The `Auth` administration service (principals, keys, groups, policies, simulator),
    /// as generated: each call takes and returns the protobuf messages.
    pub fn admin(&self) -> AuthClient<Transport> {
        self.admin.clone()
    }

    /// The `Lineage` service (the lineage graph: entities, associations, QueryLineage), as
    /// generated: each call takes and returns the protobuf messages.
    /// The Prep service's stub: data preparation recipes and runs (docs/data-prep.md).
    pub fn prep(&self) -> PrepClient<Transport> {
        self.prep.clone()
    }

    /// The AutoML service's stub (docs/automl.md).
    pub fn automl(&self) -> AutoMlClient<Transport> {
        self.automl.clone()
    }

    pub fn lineage(&self) -> LineageClient<Transport> {
        self.lineage.clone()
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    async fn call<Req, Resp, F, Fut>(&self, request: Req, f: F) -> Result<Resp, ClientError>
    where
        Req: Clone,
        F: Fn(FeatureStoreClient<Transport>, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let mut backoff = self.retry.initial_backoff;
        let mut attempt = 1;
        loop {
            match f(self.inner.clone(), request.clone()).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status)
                    if status.code() == tonic::Code::Unavailable
                        && attempt < self.retry.max_attempts =>
                {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.retry.max_backoff);
                    attempt += 1;
                }
                Err(status) => return Err(status.into()),
            }
        }
    }
}

/// One typed method per RPC.
macro_rules! rpcs {
    ($($method:ident($req:ty) -> $resp:ty;)*) => {
        impl Client {
            $(
                pub async fn $method(&self, request: $req) -> Result<$resp, ClientError> {
                    self.call(request, |mut c, r| async move { c.$method(r).await }).await
                }
            )*
        }
    };
}

rpcs! {
    create_feature_group(pb::CreateFeatureGroupRequest) -> pb::CreateFeatureGroupResponse;
    describe_feature_group(pb::DescribeFeatureGroupRequest) -> pb::DescribeFeatureGroupResponse;
    list_feature_groups(pb::ListFeatureGroupsRequest) -> pb::ListFeatureGroupsResponse;
    update_feature_group(pb::UpdateFeatureGroupRequest) -> pb::UpdateFeatureGroupResponse;
    delete_feature_group(pb::DeleteFeatureGroupRequest) -> pb::DeleteFeatureGroupResponse;
    update_feature_metadata(pb::UpdateFeatureMetadataRequest) -> pb::UpdateFeatureMetadataResponse;
    describe_feature_metadata(pb::DescribeFeatureMetadataRequest) -> pb::DescribeFeatureMetadataResponse;
    get_offline_store_catalog(pb::GetOfflineStoreCatalogRequest) -> pb::GetOfflineStoreCatalogResponse;
    put_record(pb::PutRecordRequest) -> pb::PutRecordResponse;
    put_records(pb::PutRecordsRequest) -> pb::PutRecordsResponse;
    get_record(pb::GetRecordRequest) -> pb::GetRecordResponse;
    batch_get_record(pb::BatchGetRecordRequest) -> pb::BatchGetRecordResponse;
    delete_record(pb::DeleteRecordRequest) -> pb::DeleteRecordResponse;
    put_source_records(pb::PutSourceRecordsRequest) -> pb::PutSourceRecordsResponse;
    get_source_positions(pb::GetSourcePositionsRequest) -> pb::GetSourcePositionsResponse;
}

impl Client {
    /// Runs one SQL statement over the offline store; the result's Arrow IPC stream, whole.
    pub async fn query_ipc(&self, sql: &str) -> Result<Vec<u8>, ClientError> {
        let request = pb::QueryRequest {
            sql: sql.to_string(),
        };
        let mut responses = self.queries.clone().query(request).await?.into_inner();
        let mut ipc = Vec::new();
        while let Some(response) = responses.next().await {
            ipc.extend_from_slice(&response?.arrow_ipc);
        }
        Ok(ipc)
    }

    /// Builds a training dataset (see `CreateDatasetRequest`); answers once it is written.
    pub async fn create_dataset(
        &self,
        request: pb::CreateDatasetRequest,
    ) -> Result<pb::CreateDatasetResponse, ClientError> {
        Ok(self
            .queries
            .clone()
            .create_dataset(request)
            .await?
            .into_inner())
    }

    /// Runs one SQL statement over the offline store: the result's schema and batches.
    pub async fn query(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), ClientError> {
        let ipc = self.query_ipc(sql).await?;
        let reader = StreamReader::try_new(std::io::Cursor::new(ipc), None)?;
        let schema = reader.schema();
        let batches = reader.collect::<Result<Vec<_>, _>>()?;
        Ok((schema, batches))
    }

    /// Every group matching `request`, following NextToken to the last page.
    pub async fn list_all_feature_groups(
        &self,
        mut request: pb::ListFeatureGroupsRequest,
    ) -> Result<Vec<pb::FeatureGroupSummary>, ClientError> {
        let mut all = Vec::new();
        loop {
            let page = self.list_feature_groups(request.clone()).await?;
            all.extend(page.feature_group_summaries);
            if page.next_token.is_empty() {
                return Ok(all);
            }
            request.next_token = page.next_token;
        }
    }
}

/// Builders for typed feature values.
pub mod value {
    use super::pb;
    use pb::feature_value::Value as V;

    fn named(name: &str, value: V) -> pb::FeatureValue {
        pb::FeatureValue {
            feature_name: name.to_string(),
            value: Some(value),
        }
    }

    pub fn integral(name: &str, v: i64) -> pb::FeatureValue {
        named(name, V::Integral(v))
    }

    pub fn fractional(name: &str, v: f64) -> pb::FeatureValue {
        named(name, V::Fractional(v))
    }

    pub fn string(name: &str, v: impl Into<String>) -> pb::FeatureValue {
        named(name, V::StringValue(v.into()))
    }

    pub fn integral_list(name: &str, values: Vec<i64>) -> pb::FeatureValue {
        named(name, V::IntegralList(pb::IntegralList { values }))
    }

    pub fn fractional_list(name: &str, values: Vec<f64>) -> pb::FeatureValue {
        named(name, V::FractionalList(pb::FractionalList { values }))
    }

    pub fn string_list(name: &str, values: Vec<String>) -> pb::FeatureValue {
        named(name, V::StringList(pb::StringList { values }))
    }

    /// The value as JSON (for display and tests).
    pub fn to_json(value: &pb::FeatureValue) -> serde_json::Value {
        use serde_json::json;
        match &value.value {
            None => serde_json::Value::Null,
            Some(V::Integral(n)) => json!(n),
            Some(V::Fractional(f)) => json!(f),
            Some(V::StringValue(s)) => json!(s),
            Some(V::IntegralList(l)) => json!(l.values),
            Some(V::FractionalList(l)) => json!(l.values),
            Some(V::StringList(l)) => json!(l.values),
        }
    }

    /// A record as a JSON object `{feature: value}`.
    pub fn record_to_json(record: &[pb::FeatureValue]) -> serde_json::Value {
        serde_json::Value::Object(
            record
                .iter()
                .map(|v| (v.feature_name.clone(), to_json(v)))
                .collect(),
        )
    }
}
