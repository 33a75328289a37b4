//! The SageMaker Feature Store wire API on the HTTP listener, so that boto3 and the SageMaker
//! Python SDK work against Quiver by changing only `endpoint_url`:
//!
//! - [`control`]: the `sagemaker` JSON 1.1 control plane (`POST /`, `X-Amz-Target`);
//! - [`runtime`]: the `sagemaker-featurestore-runtime` REST-JSON operations;
//! - [`search`]: `Search` over feature groups and feature metadata;
//! - [`wire`]: errors, bodies and enums both share.
//!
//! This layer only translates: every rule lives in the domain ([`crate::feature_store`]), which
//! the gRPC API calls too.

pub mod control;
pub mod runtime;
pub mod search;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::routing::post;

use crate::auth::Access;
use crate::error::Error;
use crate::feature_store::FeatureStore;
use crate::group_commit::GroupCommit;

/// Both APIs' routes; merged into the HTTP listener's router.
pub fn router(store: Arc<FeatureStore>, puts: GroupCommit, access: Arc<Access>) -> Router {
    let routes = Router::new()
        .route("/", post(control::handle))
        .with_state(store.clone())
        .merge(runtime::router(store, puts));
    if access.enabled() {
        // Until these routes verify AWS Signature V4, an authenticated server does not serve
        // them at all: closed, not open.
        routes.layer(axum::middleware::from_fn(refuse_unsigned))
    } else {
        routes
    }
}

async fn refuse_unsigned(
    _request: axum::extract::Request,
    _next: axum::middleware::Next,
) -> axum::response::Response {
    axum::response::IntoResponse::into_response(wire::AwsError::control(Error::unauthenticated(
        "the SageMaker-compatible HTTP API does not verify AWS Signature V4 yet, so a server \
         with --auth refuses it; use the gRPC API (docs/security.md)",
    )))
}
