//! The home page: the store at a glance (groups, online records, rows waiting for the offline
//! store, health) and the feature groups, newest first, a page at a time (ListFeatureGroups).

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::json;

use super::{call, param, text};
use crate::Console;
use crate::gate::User;
use crate::layout::{self, Section};
use quiver_storage::db::{self, CF_RECORDS};
use quiver_storage::online::WriteFault;
use quiver_types::model::FeatureGroup;

/// Groups per page.
const PAGE: usize = 50;

pub async fn show(
    State(console): State<Console>,
    Extension(user): Extension<User>,
    RawQuery(query): RawQuery,
) -> Response {
    let mut request = json!({
        "MaxResults": PAGE,
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
    });
    if let Some(token) = param(query.as_deref(), "next").filter(|t| !t.is_empty()) {
        request["NextToken"] = token.into();
    }
    let listing = call(&console, &user, "ListFeatureGroups", request).await;
    let body = html! {
        (health(&console))
        h2 { "Feature groups" }
        @match &listing {
            Err(e) => { (layout::error_block(e)) }
            Ok(listing) => { (groups(&console, listing)) }
        }
    };
    layout::page(&user, Section::Home, "Feature store", body).into_response()
}

fn health(console: &Console) -> Markup {
    let store = &console.api.store;
    let online = store.online();
    let groups = store.registry().all().len() as u64;
    let records = db::int_property(online.db(), Some(CF_RECORDS), "rocksdb.estimate-num-keys");
    let staged = online.staging().pending_rows();
    let (state, detail) = match online.write_fault() {
        None => ("Healthy", "reads and writes are served"),
        Some(WriteFault::DiskFull) => (
            "Degraded: disk full",
            "writes are refused until space is freed on the data directory; reads go on",
        ),
        Some(WriteFault::Io) => (
            "Degraded: I/O error",
            "writes are refused until the server is restarted; reads go on (check the disk and the log)",
        ),
    };
    html! {
        section.cards aria-label="The store" {
            div.card { span.value { (layout::count(groups)) } span.label { "feature groups" } }
            div.card {
                span.value { (layout::count(records)) }
                span.label { "online records (RocksDB's estimate)" }
            }
            div.card {
                span.value { (layout::count(staged)) }
                span.label { "rows waiting for the offline store" }
            }
            div.card {
                span.value.ok[state == "Healthy"].bad[state != "Healthy"] { (state) }
                span.label { (detail) }
            }
        }
    }
}

fn groups(console: &Console, listing: &serde_json::Value) -> Markup {
    let summaries = listing["FeatureGroupSummaries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let registry = console.api.store.registry();
    html! {
        @if summaries.is_empty() {
            p.muted {
                "No feature groups yet. Create one with "
                code { "quiver feature-group create NAME --from data.csv --record-id ID --event-time TS" }
                " or boto3's create_feature_group (README, \"Load data\")."
            }
        } @else {
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { "Name" }
                        th scope="col" class="num" { "Features" }
                        th scope="col" { "Stores" }
                        th scope="col" { "Created" }
                        th scope="col" { "Description" }
                    } }
                    tbody {
                        @for summary in &summaries {
                            @let name = text(summary.get("FeatureGroupName"));
                            @let group = registry.get(&name).ok();
                            tr {
                                td { a href={ "/console/groups/" (layout::segment(&name)) } { (name) } }
                                td.num { (group.as_ref().map_or(0, |g| g.features.len())) }
                                td { (stores(group.as_deref())) }
                                td { (group.as_ref().map(|g| layout::time(g.creation_time_ms)).unwrap_or_default()) }
                                td { (group.as_ref().and_then(|g| g.description.clone()).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = listing["NextToken"].as_str().filter(|t| !t.is_empty()) {
                nav.pager aria-label="Pages" {
                    a.button.secondary href={ "/console/?next=" (layout::segment(next)) } { "Next page" }
                }
            }
        }
    }
}

/// Badges for a group's stores.
pub(crate) fn stores(group: Option<&FeatureGroup>) -> Markup {
    html! {
        @if let Some(group) = group {
            @if group.online.is_some() { span.badge.on { "online" } " " }
            @if group.offline.is_some() { span.badge.on { "offline" } }
        }
    }
}
