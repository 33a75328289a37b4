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

use crate::feature_store::FeatureStore;
use crate::group_commit::GroupCommit;

/// Both APIs' routes; merged into the HTTP listener's router.
pub fn router(store: Arc<FeatureStore>, puts: GroupCommit) -> Router {
    Router::new()
        .route("/", post(control::handle))
        .with_state(store.clone())
        .merge(runtime::router(store, puts))
}
