//! The HTTP listener: the SageMaker-compatible API ([`crate::sagemaker`]), `/metrics`
//! (Prometheus text format) and `/healthz`.

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

#[derive(Clone)]
struct HttpState {
    store: Arc<FeatureStore>,
    metrics: PrometheusHandle,
}

pub fn router(
    store: Arc<FeatureStore>,
    puts: GroupCommit,
    metrics: PrometheusHandle,
    access: Arc<Access>,
    services: quiver_sagemaker::Services,
    max_body: usize,
) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .with_state(HttpState {
            store: store.clone(),
            metrics,
        })
        .merge(quiver_sagemaker::router(
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
