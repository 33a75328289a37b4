//! The SageMaker Feature Store wire API on the HTTP listener, so that boto3 and the SageMaker
//! Python SDK work against Quiver by changing only `endpoint_url`:
//!
//! - [`control`]: the `sagemaker` JSON 1.1 control plane (`POST /`, `X-Amz-Target`);
//! - [`runtime`]: the `sagemaker-featurestore-runtime` REST-JSON operations;
//! - [`search`]: `Search` over feature groups and feature metadata;
//! - [`wire`]: errors, bodies and enums both share;
//! - [`auth`]: AWS Signature V4 and authorization of every operation, with `--auth`.
//!
//! This layer only translates: every rule lives in the domain ([`crate::feature_store`]), which
//! the gRPC API calls too.

pub mod auth;
pub mod control;
pub mod runtime;
pub mod search;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::routing::post;

use crate::auth::Access;
use crate::feature_store::FeatureStore;
use crate::group_commit::GroupCommit;

/// Both APIs' routes; merged into the HTTP listener's router. With authentication on, every
/// request passes [`auth::authenticate`] first.
pub fn router(
    store: Arc<FeatureStore>,
    puts: GroupCommit,
    access: Arc<Access>,
    max_body: usize,
) -> Router {
    let routes = Router::new()
        .route("/", post(control::handle))
        .with_state(store.clone())
        .merge(runtime::router(store.clone(), puts));
    if access.enabled() {
        let state = auth::AuthState {
            access,
            store,
            max_body,
        };
        routes.layer(axum::middleware::from_fn_with_state(
            state,
            auth::authenticate,
        ))
    } else {
        routes
    }
}
