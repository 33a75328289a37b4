//! OpenLineage's HTTP endpoint, `POST /api/v1/lineage` (the path Marquez serves and every
//! OpenLineage HTTP transport posts to): one run, job or dataset event per request, recorded in
//! the lineage graph ([`quiver_lineage::openlineage`]). Authorized as `quiver:PostLineageEvent`
//! on `*`; answered `201 Created` with what the event became.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Api;
use super::auth;
use super::wire::{AwsError, RUNTIME_CONTENT_TYPE, json_response, parse_body};
use quiver_auth::Caller;
use quiver_lineage::openlineage::Event;
use quiver_types::error::{Error, Result};

pub const PATH: &str = "/api/v1/lineage";

pub async fn post(
    State(api): State<Api>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Response {
    let caller = auth::caller(caller);
    match record(&api, &caller, &body).await {
        Ok(recorded) => json_response(StatusCode::CREATED, RUNTIME_CONTENT_TYPE, &recorded),
        Err(e) => AwsError::runtime(e).into_response(),
    }
}

async fn record(api: &Api, caller: &Caller, body: &[u8]) -> Result<serde_json::Value> {
    api.access
        .authorize(caller, "quiver:PostLineageEvent", "*", None)?;
    let Some(lineage) = api.lineage.clone() else {
        return Err(Error::validation(
            "this server runs without the lineage service (--lineage false)",
        ));
    };
    let event: Event = parse_body(body)?;
    let by = caller
        .principal
        .as_deref()
        .map(|p| api.access.store().principal_arn(p));
    let store = api.store.clone();
    let recorded = tokio::task::spawn_blocking(move || {
        // A dataset that is a feature group's offline table: by its catalog name
        // (`<database>.<table>`) or under its location.
        let group_of = |_namespace: &str, name: &str, uri: &str| {
            store.registry().all().into_iter().find(|g| {
                if !g.has_offline_store() {
                    return false;
                }
                let table = store.offline().catalog_table(g);
                let location = table.location.trim_end_matches('/');
                name.eq_ignore_ascii_case(&format!("{}.{}", table.database, table.table))
                    || uri == location
                    || uri.starts_with(&format!("{location}/"))
            })
        };
        lineage.record_openlineage(&event, &group_of, by.as_deref())
    })
    .await
    .map_err(|e| Error::internal(format!("lineage task failed: {e}")))??;
    Ok(serde_json::json!({
        "job": recorded.job,
        "run": recorded.run,
        "datasets": recorded.datasets,
        "columnEdges": recorded.column_edges,
    }))
}
