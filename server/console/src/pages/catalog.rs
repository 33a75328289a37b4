//! The catalog: feature groups and features found by name, description, tag or parameter,
//! with SageMaker Search's own semantics (it runs `Search`): a text matches with `Contains` on
//! one property, a tag or parameter `key=value` with `Equals` on `Tags.key` / `Parameters.key`
//! (a bare `key`: the tag or parameter exists), all conditions together.

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::{call, param, text};
use crate::Console;
use crate::gate::User;
use crate::layout::{self, Section};
use quiver_types::error::{Error, Result};

const PAGE: usize = 50;

/// What the form asked for.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CatalogQuery {
    /// `groups` or `features`.
    pub kind: String,
    pub text: String,
    /// `name` or `description`.
    pub field: String,
    /// `key` or `key=value`: a tag of a group, a parameter of a feature.
    pub label: String,
    pub next: Option<String>,
}

impl CatalogQuery {
    pub fn parse(query: Option<&str>) -> Self {
        let get = |name| param(query, name).unwrap_or_default();
        let kind = match get("kind").as_str() {
            "features" => "features",
            _ => "groups",
        };
        let field = match get("field").as_str() {
            "description" => "description",
            _ => "name",
        };
        Self {
            kind: kind.into(),
            text: get("q").trim().to_string(),
            field: field.into(),
            label: get("label").trim().to_string(),
            next: param(query, "next").filter(|t| !t.is_empty()),
        }
    }

    fn features(&self) -> bool {
        self.kind == "features"
    }

    /// The Search request this asks for.
    pub fn search_request(&self) -> Result<Value> {
        let mut filters = Vec::new();
        if !self.text.is_empty() {
            let property = match (self.features(), self.field.as_str()) {
                (false, "name") => "FeatureGroupName",
                (true, "name") => "FeatureName",
                _ => "Description",
            };
            filters.push(json!({"Name": property, "Operator": "Contains", "Value": self.text}));
        }
        if !self.label.is_empty() {
            let prefix = if self.features() {
                "Parameters"
            } else {
                "Tags"
            };
            let filter = match self.label.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => json!({
                    "Name": format!("{prefix}.{}", key.trim()),
                    "Operator": "Equals",
                    "Value": value.trim(),
                }),
                Some(_) => {
                    return Err(Error::validation(format!(
                        "the {} filter {:?} has no key: write key or key=value",
                        if self.features() { "parameter" } else { "tag" },
                        self.label
                    )));
                }
                None => json!({"Name": format!("{prefix}.{}", self.label), "Operator": "Exists"}),
            };
            filters.push(filter);
        }
        let mut request = json!({
            "Resource": if self.features() { "FeatureMetadata" } else { "FeatureGroup" },
            "MaxResults": PAGE,
            "SortBy": if self.features() { "FeatureName" } else { "FeatureGroupName" },
            "SortOrder": "Ascending",
        });
        if !filters.is_empty() {
            request["SearchExpression"] = json!({ "Filters": filters });
        }
        if let Some(next) = &self.next {
            request["NextToken"] = next.clone().into();
        }
        Ok(request)
    }

    /// The query string of this search's page `next`.
    fn page_link(&self, next: &str) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        out.append_pair("kind", &self.kind)
            .append_pair("q", &self.text)
            .append_pair("field", &self.field)
            .append_pair("label", &self.label)
            .append_pair("next", next);
        format!("/console/catalog?{}", out.finish())
    }
}

pub async fn show(
    State(console): State<Console>,
    Extension(user): Extension<User>,
    RawQuery(query): RawQuery,
) -> Response {
    let asked = CatalogQuery::parse(query.as_deref());
    let found = match asked.search_request() {
        Ok(request) => call(&console, &user, "Search", request).await,
        Err(e) => Err(e),
    };
    let body = html! {
        p.lead { "Find feature groups by name, description or tag, and features by name, description or parameter." }
        (form(&asked))
        @match &found {
            Err(e) => { (layout::error_block(e)) }
            Ok(found) => { (results(&asked, found)) }
        }
    };
    let status = layout::status(&found);
    (
        status,
        layout::page(&user, Section::Catalog, "Catalog", body),
    )
        .into_response()
}

fn form(asked: &CatalogQuery) -> Markup {
    html! {
        form.inline method="get" action="/console/catalog" role="search" {
            div {
                label for="kind" { "Find" }
                select #kind name="kind" {
                    option value="groups" selected[!asked.features()] { "Feature groups" }
                    option value="features" selected[asked.features()] { "Features" }
                }
            }
            div {
                label for="field" { "whose" }
                select #field name="field" {
                    option value="name" selected[asked.field == "name"] { "name" }
                    option value="description" selected[asked.field == "description"] { "description" }
                }
            }
            div {
                label for="q" { "contains" }
                input #q type="search" name="q" value=(asked.text) placeholder="text";
            }
            div {
                label for="label" { "with tag / parameter" }
                input #label type="text" name="label" value=(asked.label) placeholder="key or key=value";
            }
            button type="submit" { "Search" }
        }
    }
}

fn results(asked: &CatalogQuery, found: &Value) -> Markup {
    let hits = found["Results"].as_array().cloned().unwrap_or_default();
    let total = found["TotalHits"]["Value"]
        .as_u64()
        .unwrap_or(hits.len() as u64);
    html! {
        p.muted role="status" { (layout::count(total)) @if total == 1 { " match" } @else { " matches" } }
        @if !hits.is_empty() {
            div.table-wrap {
                @if asked.features() {
                    table {
                        thead { tr {
                            th scope="col" { "Feature" } th scope="col" { "Group" }
                            th scope="col" { "Type" } th scope="col" { "Description" }
                            th scope="col" { "Parameters" }
                        } }
                        tbody {
                            @for hit in &hits {
                                @let f = &hit["FeatureMetadata"];
                                @let group = text(f.get("FeatureGroupName"));
                                tr {
                                    td { code { (text(f.get("FeatureName"))) } }
                                    td { a href={ "/console/groups/" (layout::segment(&group)) } { (group) } }
                                    td { (text(f.get("FeatureType"))) }
                                    td { (text(f.get("Description"))) }
                                    td.tags { (pairs(f.get("Parameters"))) }
                                }
                            }
                        }
                    }
                } @else {
                    table {
                        thead { tr {
                            th scope="col" { "Feature group" } th scope="col" class="num" { "Features" }
                            th scope="col" { "Description" } th scope="col" { "Tags" }
                        } }
                        tbody {
                            @for hit in &hits {
                                @let g = &hit["FeatureGroup"];
                                @let name = text(g.get("FeatureGroupName"));
                                tr {
                                    td { a href={ "/console/groups/" (layout::segment(&name)) } { (name) } }
                                    td.num { (g["FeatureDefinitions"].as_array().map_or(0, Vec::len)) }
                                    td { (text(g.get("Description"))) }
                                    td.tags { (pairs(g.get("Tags"))) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = found["NextToken"].as_str() {
            nav.pager aria-label="Pages" {
                a.button.secondary href=(asked.page_link(next)) { "Next page" }
            }
        }
    }
}

/// `[{Key, Value}]` as badges.
fn pairs(list: Option<&Value>) -> Markup {
    html! {
        @for pair in list.and_then(Value::as_array).into_iter().flatten() {
            span.badge { (text(pair.get("Key"))) "=" (text(pair.get("Value"))) } " "
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_a_sagemaker_search() {
        let asked = CatalogQuery::parse(Some("kind=groups&q=cust&field=name&label=team%3Drisk"));
        let request = asked.search_request().unwrap();
        assert_eq!(request["Resource"], "FeatureGroup");
        assert_eq!(
            request["SearchExpression"]["Filters"],
            json!([
                {"Name": "FeatureGroupName", "Operator": "Contains", "Value": "cust"},
                {"Name": "Tags.team", "Operator": "Equals", "Value": "risk"}
            ])
        );
        let asked = CatalogQuery::parse(Some("kind=features&q=spend&field=description&label=pii"));
        let request = asked.search_request().unwrap();
        assert_eq!(request["Resource"], "FeatureMetadata");
        assert_eq!(
            request["SearchExpression"]["Filters"],
            json!([
                {"Name": "Description", "Operator": "Contains", "Value": "spend"},
                {"Name": "Parameters.pii", "Operator": "Exists"}
            ])
        );
        let empty = CatalogQuery::parse(None).search_request().unwrap();
        assert!(empty.get("SearchExpression").is_none());
        let err = CatalogQuery::parse(Some("label=%3Dx"))
            .search_request()
            .unwrap_err();
        assert!(
            err.message().contains("tag filter \"=x\" has no key"),
            "{err}"
        );
    }
}
