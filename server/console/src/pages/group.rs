//! A feature group's page: its settings as DescribeFeatureGroup gives them, its features with
//! their descriptions and parameters (editable: UpdateFeatureMetadata), and a record lookup
//! (GetRecord).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::{call, param, text};
use crate::Console;
use crate::gate::User;
use crate::layout::{self, Section};
use quiver_auth::Features;
use quiver_types::error::{Error, Result};
use quiver_types::model::record::{TextValue, value_as_text};
use quiver_types::model::{FeatureGroup, Value as FeatureValue};

fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

fn group_link(name: &str) -> String {
    format!("/console/groups/{}", layout::segment(name))
}

pub async fn show(
    State(console): State<Console>,
    Extension(user): Extension<User>,
    Path(name): Path<String>,
) -> Response {
    let described = call(
        &console,
        &user,
        "DescribeFeatureGroup",
        json!({ "FeatureGroupName": name }),
    )
    .await;
    let described = match described {
        Ok(described) => described,
        Err(e) => return layout::error_page(&user, Section::None, &name, &e),
    };
    // Descriptions and parameters are DescribeFeatureMetadata's to show.
    let metadata = console
        .api
        .authorize(
            &user.caller(),
            "sagemaker:DescribeFeatureMetadata",
            Some(&name),
            Features::All,
        )
        .and_then(|()| console.api.store.describe_feature_group(&name));
    let body = html! {
        @if let Some(description) = described.get("Description").and_then(Value::as_str) {
            p.lead { (description) }
        }
        (settings(&described))
        p {
            a href={ "/console/lineage?start=" (layout::segment(&name)) } { "Lineage" }
            " · "
            a href={ "/console/query?sql=" (layout::segment(&format!("SELECT * FROM \"{name}\" LIMIT 100"))) } { "Query its history" }
        }
        h2 { "Features" }
        (features(&user, &name, &described, metadata.as_deref()))
        h2 #lookup { "Look up a record" }
        (lookup_form(&name, &described))
        h2 #statistics { "Statistics" }
        (statistics_panel(&name, &described))
    };
    layout::page(&user, Section::None, &name, body).into_response()
}

fn settings(d: &Value) -> Markup {
    let online = &d["OnlineStoreConfig"];
    let offline = &d["OfflineStoreConfig"];
    let ttl = &online["TtlDuration"];
    html! {
        dl.settings {
            dt { "ARN" } dd { code { (text(d.get("FeatureGroupArn"))) } }
            dt { "Record identifier" } dd { code { (text(d.get("RecordIdentifierFeatureName"))) } }
            dt { "Event time" } dd { code { (text(d.get("EventTimeFeatureName"))) } }
            dt { "Status" } dd { (text(d.get("FeatureGroupStatus"))) }
            dt { "Created" } dd { (seconds(d.get("CreationTime"))) }
            @if d.get("LastModifiedTime").is_some() {
                dt { "Last modified" } dd { (seconds(d.get("LastModifiedTime"))) }
            }
            dt { "Online store" }
            dd {
                @if online["EnableOnlineStore"].as_bool() == Some(true) {
                    span.badge.on { "on" } " "
                    (text(online.get("StorageType")))
                    @if ttl.is_object() { ", records expire after " (text(ttl.get("Value"))) " " (text(ttl.get("Unit")).to_lowercase()) }
                    @else { ", records never expire" }
                    @if let Some(key) = online["SecurityConfig"]["KmsKeyId"].as_str() { ", encrypted with " code { (key) } }
                } @else { span.badge { "off" } }
            }
            dt { "Offline store" }
            dd {
                @if offline.is_object() {
                    span.badge.on { "on" } " "
                    (text(offline.get("TableFormat")))
                    " at " code { (text(offline["S3StorageConfig"].get("ResolvedOutputS3Uri").or(offline["S3StorageConfig"].get("S3Uri")))) }
                    @if let Some(table) = offline["DataCatalogConfig"]["TableName"].as_str() {
                        ", table " code { (text(offline["DataCatalogConfig"].get("Database"))) "." (table) }
                    }
                    @if let Some(status) = d["OfflineStoreStatus"]["Status"].as_str() { " (" (status) ")" }
                } @else { span.badge { "off" } }
            }
            @if let Some(tags) = d.get("Tags").and_then(Value::as_array).filter(|t| !t.is_empty()) {
                dt { "Tags" }
                dd.tags { @for tag in tags { span.badge { (text(tag.get("Key"))) "=" (text(tag.get("Value"))) } " " } }
            }
        }
    }
}

/// An epoch-seconds JSON number as an ISO 8601 time.
fn seconds(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_f64)
        .map(|s| layout::time((s * 1000.0) as i64))
        .unwrap_or_default()
}

fn features(
    user: &User,
    group: &str,
    described: &Value,
    metadata: std::result::Result<&FeatureGroup, &Error>,
) -> Markup {
    let definitions = described["FeatureDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    html! {
        @if let Err(e) = metadata {
            div.note role="note" { "Descriptions and parameters are not shown: " (e.message()) }
        }
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "Feature" } th scope="col" { "Type" }
                    th scope="col" { "Description" } th scope="col" { "Parameters" }
                } }
                tbody {
                    @for definition in &definitions {
                        @let name = text(definition.get("FeatureName"));
                        @let feature = metadata.ok().and_then(|g| g.features.iter().find(|f| f.name == name));
                        tr {
                            td { code { (name) } }
                            td {
                                (text(definition.get("FeatureType")))
                                @if let Some(collection) = definition.get("CollectionType").and_then(Value::as_str) {
                                    " " (collection)
                                }
                            }
                            td {
                                @if let Some(feature) = feature {
                                    (description_form(user, group, &name, &feature.description, None))
                                }
                            }
                            td.tags {
                                @for (k, v) in feature.map(|f| &f.parameters).into_iter().flatten() {
                                    span.badge { (k) "=" (v) } " "
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A feature's description, editable in place.
fn description_form(
    user: &User,
    group: &str,
    feature: &str,
    description: &str,
    outcome: Option<Markup>,
) -> Markup {
    let action = format!(
        "{}/features/{}",
        group_link(group),
        layout::segment(feature)
    );
    html! {
        form.inline method="post" action=(action) hx-post=(action) hx-swap="outerHTML" {
            input type="hidden" name="csrf" value=(user.session.csrf);
            label.skip for={ "d-" (feature) } { "Description of " (feature) }
            input id={ "d-" (feature) } type="text" name="description" value=(description)
                maxlength="255" placeholder="no description";
            button.secondary type="submit" { "Save" }
            @if let Some(outcome) = outcome { (outcome) }
        }
    }
}

/// `POST /console/groups/{name}/features/{feature}`: UpdateFeatureMetadata's description.
pub async fn update_feature(
    State(console): State<Console>,
    Extension(user): Extension<User>,
    Path((group, feature)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let description = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "description")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let result = call(
        &console,
        &user,
        "UpdateFeatureMetadata",
        json!({
            "FeatureGroupName": group,
            "FeatureName": feature,
            "Description": description,
        }),
    )
    .await
    .and_then(|_| {
        let arn = console.api.access.arns().feature_group_arn(&group);
        console.api.access.record_change(
            &user.caller(),
            "console:UpdateFeatureMetadata",
            &arn,
            &format!("feature {feature:?}: description set to {description:?}"),
        )
    });
    if !is_htmx(&headers) {
        return match result {
            Ok(()) => (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, group_link(&group))],
            )
                .into_response(),
            Err(e) => layout::error_page(&user, Section::None, &group, &e),
        };
    }
    let (status, outcome) = match &result {
        Ok(()) => (StatusCode::OK, html! { span.ok role="status" { "Saved" } }),
        Err(e) => (
            layout::status_of(e),
            html! { span.bad role="alert" { (e.message()) } },
        ),
    };
    (
        status,
        description_form(&user, &group, &feature, &description, Some(outcome)),
    )
        .into_response()
}

/// The statistics, loaded once the page is shown (each is a scan of the offline history); a
/// link without script.
fn statistics_panel(group: &str, described: &Value) -> Markup {
    let action = format!("{}/statistics", group_link(group));
    html! {
        @if described["OfflineStoreConfig"].is_object() {
            div #stats hx-get=(action) hx-trigger="load" aria-live="polite" {
                p.muted { "Computing over the offline store… " a href=(action) { "open them on their own page" } }
            }
        } @else {
            p.muted { "Statistics are computed over the offline store, which this group does not have." }
        }
    }
}

fn lookup_form(group: &str, described: &Value) -> Markup {
    let action = format!("{}/record", group_link(group));
    let id_name = text(described.get("RecordIdentifierFeatureName"));
    html! {
        @if described["OnlineStoreConfig"]["EnableOnlineStore"].as_bool() == Some(true) {
            form.inline method="get" action=(action) hx-get=(action) hx-target="#record" {
                div {
                    label for="record-id" { "Record identifier (" (id_name) ")" }
                    input #record-id type="text" name="id" required spellcheck="false";
                }
                button type="submit" { "Look up" }
            }
            div #record aria-live="polite" {}
        } @else {
            p.muted { "This group has no online store: its records are in the offline store. "
                a href={ "/console/query?sql=" (layout::segment(&format!("SELECT * FROM \"{group}\" LIMIT 100"))) } { "Query them" } "." }
        }
    }
}

/// `GET /console/groups/{name}/record?id=`: GetRecord, as the API authorizes it.
pub async fn record(
    State(console): State<Console>,
    Extension(user): Extension<User>,
    Path(group): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let id = param(query.as_deref(), "id").unwrap_or_default();
    let found = lookup(&console, &user, &group, &id);
    let status = layout::status(&found);
    let block = html! {
        @match &found {
            Err(e) => { (layout::error_block(e)) }
            Ok(None) => { p role="status" { "No record " code { (id) } " in the online store (never written, deleted, or expired)." } }
            Ok(Some((values, expires))) => {
                p role="status" { "Record " code { (id) } @if let Some(at) = expires { ", expires " (layout::time(*at)) } }
                div.table-wrap { table {
                    thead { tr { th scope="col" { "Feature" } th scope="col" { "Value" } } }
                    tbody { @for (name, value) in values { tr { td { code { (name) } } td.mono { (display(value)) } } } }
                } }
            }
        }
    };
    if is_htmx(&headers) {
        return (status, block).into_response();
    }
    let body = html! { (block) p { a href=(group_link(&group)) { "Back to " (group) } } };
    (status, layout::page(&user, Section::None, &group, body)).into_response()
}

type Lookup = Option<(Vec<(String, FeatureValue)>, Option<i64>)>;

fn lookup(console: &Console, user: &User, group: &str, id: &str) -> Result<Lookup> {
    if id.is_empty() {
        return Err(Error::validation(
            "id: enter the record identifier to look up",
        ));
    }
    console.api.authorize(
        &user.caller(),
        "sagemaker:GetRecord",
        Some(group),
        Features::Named(&[]),
    )?;
    let Some(view) = console.api.store.get_record(group, id, &[])? else {
        return Ok(None);
    };
    Ok(Some((view.values()?, view.expires_at_ms)))
}

/// A feature value as text: as the runtime API's `ValueAsString`, a list as a JSON array of
/// those.
pub(crate) fn display(value: &FeatureValue) -> String {
    match value_as_text(value) {
        TextValue::Scalar(text) => text,
        TextValue::List(items) => serde_json::to_string(&items).unwrap_or_default(),
    }
}
