//! The SageMaker Feature Store wire API on the HTTP listener, so that boto3 and the SageMaker
//! Python SDK work against Quiver by changing only `endpoint_url`:
//!
//! - [`control`]: the `sagemaker` JSON 1.1 control plane (`POST /`, `X-Amz-Target`);
//! - [`runtime`]: the `sagemaker-featurestore-runtime` REST-JSON operations;
//! - [`search`]: `Search` over feature groups and feature metadata;
//! - [`lineage`]: the ML Lineage Tracking operations, over [`quiver_lineage`];
//! - [`openlineage`]: OpenLineage's `POST /api/v1/lineage`, the other JSON API on this
//!   listener, onto the same graph;
//! - [`shapes`]: the JSON shapes of groups and features that several operations share;
//! - [`wire`]: errors, bodies and enums both share;
//! - [`auth`]: AWS Signature V4 (or the client certificate) of every request, with `--auth`;
//!   each handler authorizes what it parsed ([`Api::authorize`]), as the gRPC handlers do.
//!
//! This layer only translates: every rule lives in the domain ([`quiver_core`]), which
//! the gRPC API calls too.

pub mod auth;
pub mod automl;
pub mod control;
pub mod experiments;
pub mod lineage;
pub mod openlineage;
pub mod runtime;
pub mod search;
pub mod shapes;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::routing::post;

use quiver_auth::{Access, Caller, Features};
use quiver_automl::jobs::Jobs;
use quiver_core::FeatureStore;
use quiver_core::group_commit::GroupCommit;
use quiver_lineage::Lineage;
use quiver_lineage::ingests::IngestSessions;
use quiver_types::error::Result;

/// The services the SageMaker API serves besides the feature store; each `None` when the
/// server runs without it.
#[derive(Clone, Default)]
pub struct Services {
    pub lineage: Option<Arc<Lineage>>,
    /// Counts runtime writes into ingest sessions (with the lineage service).
    pub ingests: Option<Arc<IngestSessions>>,
    pub automl: Option<Arc<Jobs>>,
}

/// What the handlers of both APIs work with.
#[derive(Clone)]
pub struct Api {
    pub store: Arc<FeatureStore>,
    /// Group commit, for PutRecord.
    pub puts: GroupCommit,
    pub access: Arc<Access>,
    /// The lineage graph; `None` when the server runs without it.
    pub lineage: Option<Arc<Lineage>>,
    /// Where runtime writes are counted into ingest sessions, for the lineage graph.
    pub ingests: Option<Arc<IngestSessions>>,
    /// AutoML's jobs; `None` when the server runs without them.
    pub automl: Option<Arc<Jobs>>,
}

/// Runs an operation of an auxiliary service (lineage, AutoML) off the async threads, or,
/// when the server runs without the service (`service` is `None`), refuses it once the caller
/// is authorized on `*`, naming the flag (`off`, e.g. "the lineage service ... (--lineage false)").
pub(crate) async fn run_service_operation<S: Send + Sync + 'static>(
    api: &Api,
    caller: &Caller,
    operation: &str,
    body: &[u8],
    service: Option<Arc<S>>,
    off: &str,
    run: fn(&Api, &Caller, &S, &str, &[u8]) -> Result<serde_json::Value>,
) -> Result<serde_json::Value> {
    let Some(service) = service else {
        api.authorize_resource(caller, operation, "*")?;
        return Err(quiver_types::error::Error::validation(format!(
            "operation SageMaker.{operation} needs {off}"
        )));
    };
    let failed = format!("{operation} failed");
    let (api, caller, operation, body) = (
        api.clone(),
        caller.clone(),
        operation.to_string(),
        body.to_vec(),
    );
    tokio::task::spawn_blocking(move || run(&api, &caller, &service, &operation, &body))
        .await
        .map_err(|e| quiver_types::error::Error::internal(format!("{failed}: {e}")))?
}

impl Api {
    /// Authorizes `action` on `group` (a name or ARN; `None`: on no particular group) for
    /// `caller`, with the features the request reads or writes. Every handler calls this (or
    /// [`Api::authorize_writes`]) once it has parsed its request, before it does anything.
    pub fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        group: Option<&str>,
        features: Features,
    ) -> Result<()> {
        self.access
            .authorize_group(caller, action, group, features, |g| {
                self.store.feature_names(g)
            })
    }

    /// `sagemaker:<operation>` on `resource` (an ARN, or `*` for no particular resource): the
    /// lineage operations, whose resources are the entities' ARNs.
    pub(crate) fn authorize_resource(
        &self,
        caller: &Caller,
        operation: &str,
        resource: &str,
    ) -> Result<()> {
        self.access
            .authorize(caller, &format!("sagemaker:{operation}"), resource, None)
    }

    /// `sagemaker:PutRecord` on each (group, features written) of `writes`: the one
    /// authorization of writes, shared with the gRPC API.
    pub(crate) fn authorize_writes<'a, N: Iterator<Item = &'a str>>(
        &self,
        caller: &Caller,
        writes: impl Iterator<Item = (&'a str, N)>,
    ) -> Result<()> {
        self.access
            .authorize_writes(caller, writes, |g| self.store.feature_names(g))
    }
}

/// Both APIs' routes; merged into the HTTP listener's router. With authentication on, every
/// request passes [`auth::authenticate`] (its signature) first.
pub fn router(
    store: Arc<FeatureStore>,
    puts: GroupCommit,
    access: Arc<Access>,
    services: Services,
    max_body: usize,
) -> Router {
    let enabled = access.enabled();
    let api = Api {
        store,
        puts,
        access: access.clone(),
        lineage: services.lineage,
        ingests: services.ingests,
        automl: services.automl,
    };
    let routes = Router::new()
        .route("/", post(control::handle))
        .route(openlineage::PATH, post(openlineage::post))
        .route(
            experiments::METRICS_PATH,
            axum::routing::put(experiments::batch_put_metrics),
        )
        .merge(runtime::routes())
        .with_state(api)
        // Bodies arrive read whole, within `max_body`, from `read_body` below: the handlers'
        // extractors keep no limit of their own (axum's default is 2 MB).
        .layer(axum::extract::DefaultBodyLimit::disable());
    let routes = if enabled {
        let state = auth::AuthState { access, max_body };
        routes.layer(axum::middleware::from_fn_with_state(
            state,
            auth::authenticate,
        ))
    } else {
        routes
    };
    // Outermost: refused before any of the body is read.
    routes
        .layer(axum::middleware::from_fn_with_state(max_body, read_body))
        .layer(axum::middleware::from_fn_with_state(
            max_body,
            refuse_declared_oversize,
        ))
}

/// Reads every request's body whole, up to `max_body` (`max_request_mb`), whether or not its
/// length was declared; one too large or too slow is answered in the API's own error terms.
async fn read_body(
    axum::extract::State(max_body): axum::extract::State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, max_body).await {
        Ok(bytes) => {
            let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
            next.run(request).await
        }
        Err(e) => {
            crate::wire::AwsError::for_path(parts.uri.path(), crate::wire::body_error(&e, max_body))
                .into_response()
        }
    }
}

/// Refuses a request whose body is declared (Content-Length) larger than `max_body` before any
/// of it is read; the connection is then closed, its body unread.
async fn refuse_declared_oversize(
    axum::extract::State(max_body): axum::extract::State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match declared.filter(|n| *n > max_body as u64) {
        Some(declared) => {
            let e = quiver_types::error::Error::limit(format!(
                "the request body of {declared} bytes (Content-Length) is larger than the \
                 server's limit of {max_body} bytes (max_request_mb)"
            ));
            crate::wire::AwsError::for_path(request.uri().path(), e).into_response()
        }
        None => next.run(request).await,
    }
}
