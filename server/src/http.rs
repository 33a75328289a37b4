//! The HTTP listener: the SageMaker-compatible API ([`quiver_sagemaker`]), the web console
//! ([`quiver_console`], with `console` on), `/metrics` (Prometheus text format) and `/healthz`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use quiver_auth::Access;
use quiver_core::FeatureStore;
use quiver_core::group_commit::GroupCommit;
use quiver_query::QueryEngine;

#[derive(Clone)]
struct HttpState {
    store: Arc<FeatureStore>,
    metrics: PrometheusHandle,
}

/// What the HTTP listener serves besides the feature store.
pub struct Served {
    pub services: quiver_sagemaker::Services,
    /// SQL over the offline store, for the console; `None`: no console.
    pub console: Option<Arc<QueryEngine>>,
}

pub fn router(
    store: Arc<FeatureStore>,
    puts: GroupCommit,
    metrics: PrometheusHandle,
    access: Arc<Access>,
    served: Served,
    max_body: usize,
) -> Router {
    let Served { services, console } = served;
    let mut router = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .with_state(HttpState {
            store: store.clone(),
            metrics,
        });
    if let Some(queries) = console {
        let api = quiver_sagemaker::Api {
            store: store.clone(),
            puts: puts.clone(),
            access: access.clone(),
            lineage: services.lineage.clone(),
            ingests: services.ingests.clone(),
            automl: services.automl.clone(),
        };
        router = router.merge(quiver_console::router(quiver_console::Console::new(
            api, queries,
        )));
    }
    router.merge(quiver_sagemaker::router(
        store, puts, access, services, max_body,
    ))
}

async fn metrics_text(State(state): State<HttpState>) -> impl IntoResponse {
    let body = crate::metrics::render(&state.metrics, &state.store);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Healthy when the database answers a read; degraded (still 200: reads are served) while
/// writes are refused for a full disk or after an I/O error.
async fn healthz(State(state): State<HttpState>) -> impl IntoResponse {
    use quiver_storage::online::WriteFault;
    let online = state.store.online();
    match online.db().property_value("rocksdb.num-running-flushes") {
        Ok(_) if online.write_fault() == Some(WriteFault::DiskFull) => (
            StatusCode::OK,
            "degraded: disk full on the data directory; writes are refused until space is freed, reads go on\n",
        ),
        Ok(_) if online.write_fault() == Some(WriteFault::Io) => (
            StatusCode::OK,
            "degraded: I/O error writing the data directory; writes are refused until the server is restarted, reads go on (check the disk and the log)\n",
        ),
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n"),
    }
}
