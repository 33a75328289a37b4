//! Quiver's web console, at `/console/` on the HTTP listener: the feature store for people who
//! write no code (docs/console.md). Pages are rendered on the server with maud; htmx (vendored,
//! [`assets`]) swaps parts of them for lookups and paging. No script or style comes from
//! anywhere else.
//!
//! - [`gate`]: the middleware in front of every page: TLS off this machine, the session, the
//!   origin and CSRF token of every form;
//! - [`session`]: sessions and their cookie; [`sign_in`]: signing in and out;
//! - [`layout`]: the page shell, errors, formatting;
//! - [`pages`]: one module per page.
//!
//! The console does nothing of its own to the store: each action is the SageMaker operation's
//! ([`quiver_sagemaker::control::dispatch`]) or the query engine's, called in process with the
//! signed-in principal as the caller, so the same policies decide and the same audit records.

pub mod assets;
pub mod gate;
pub mod layout;
pub mod pages;
pub mod session;
pub mod sign_in;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::response::Redirect;
use axum::routing::{get, post};

use quiver_query::QueryEngine;
use quiver_sagemaker::Api;

/// What the console's handlers work with.
#[derive(Clone)]
pub struct Console {
    /// The SageMaker API's handlers' state: the store, access, lineage, AutoML.
    pub api: Api,
    /// SQL over the offline store.
    pub queries: Arc<QueryEngine>,
    pub sessions: Arc<session::Sessions>,
}

impl Console {
    pub fn new(api: Api, queries: Arc<QueryEngine>) -> Self {
        Self {
            api,
            queries,
            sessions: Arc::new(session::Sessions::default()),
        }
    }
}

/// The console's routes, to be merged into the HTTP listener's router.
pub fn router(console: Console) -> Router {
    use pages::{catalog, group, home, lineage, query, statistics};
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(home::show))
        .route("/console/catalog", get(catalog::show))
        .route("/console/groups/{name}", get(group::show))
        .route("/console/groups/{name}/record", get(group::record))
        .route("/console/groups/{name}/statistics", get(statistics::show))
        .route(
            "/console/groups/{name}/features/{feature}",
            post(group::update_feature),
        )
        .route("/console/query", get(query::show))
        .route("/console/query/download", get(query::download))
        .route("/console/lineage", get(lineage::show))
        .route("/console/lineage/graph.json", get(lineage::graph_json))
        .route("/console/lineage/entity", get(lineage::entity))
        .route("/console/sign-in", get(sign_in::show).post(sign_in::submit))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/static/{file}", get(assets::file))
        .route(
            "/console/{*rest}",
            get(pages::not_found).post(pages::not_found),
        )
        .layer(middleware::from_fn_with_state(console.clone(), gate::gate))
        .with_state(console)
}
