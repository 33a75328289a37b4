//! The lineage explorer: from any entity (or a feature group, which starts at its context), in
//! one direction or both, to a depth, with filters (QueryLineage), drawn as a graph you can pan,
//! zoom and click through (cytoscape, [`crate::assets`]) and listed in tables (which need no
//! script); and each entity's page (Describe{Artifact,Action,Context,...}).

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::{call, param, text};
use crate::Console;
use crate::gate::User;
use crate::layout::{self, Section};
use quiver_types::error::{Error, Result};

/// Most entities one view holds (QueryLineage pages of 50).
pub const MAX_VERTICES: usize = 500;
/// The depth a view starts with.
const DEFAULT_DEPTH: i64 = 3;
const LINEAGE_TYPES: [&str; 3] = ["Artifact", "Action", "Context"];

/// What the explorer's form asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// An entity's ARN, or a feature group's name.
    pub start: String,
    /// `Both`, `Ascendants` or `Descendants`.
    pub direction: String,
    pub depth: i64,
    /// Which lineage types are shown (all when none is chosen).
    pub lineage_types: Vec<String>,
    /// Entity types shown (`DataSet`, `Model`...), comma-separated; all when empty.
    pub types: String,
}

impl View {
    pub fn parse(query: Option<&str>) -> Self {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        let direction = match param(query, "direction").as_deref() {
            Some("Ascendants") => "Ascendants",
            Some("Descendants") => "Descendants",
            _ => "Both",
        };
        Self {
            start: param(query, "start").unwrap_or_default().trim().to_string(),
            direction: direction.into(),
            depth: param(query, "depth")
                .and_then(|d| d.parse().ok())
                .unwrap_or(DEFAULT_DEPTH),
            lineage_types: pairs
                .iter()
                .filter(|(k, v)| k == "lineage_type" && LINEAGE_TYPES.contains(&v.as_str()))
                .map(|(_, v)| v.clone())
                .collect(),
            types: param(query, "types").unwrap_or_default().trim().to_string(),
        }
    }

    /// The query string of this view (for the graph's JSON and links).
    pub fn query_string(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        out.append_pair("start", &self.start)
            .append_pair("direction", &self.direction)
            .append_pair("depth", &self.depth.to_string())
            .append_pair("types", &self.types);
        for t in &self.lineage_types {
            out.append_pair("lineage_type", t);
        }
        out.finish()
    }

    /// The QueryLineage request for `start_arn`, without paging.
    pub fn request(&self, start_arn: &str) -> Result<Value> {
        if !(0..=10).contains(&self.depth) {
            return Err(Error::validation(format!(
                "depth: {} is not between 0 and 10",
                self.depth
            )));
        }
        let mut filters = serde_json::Map::new();
        if !self.lineage_types.is_empty() {
            filters.insert("LineageTypes".into(), json!(self.lineage_types));
        }
        let types: Vec<&str> = self
            .types
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if !types.is_empty() {
            filters.insert("Types".into(), json!(types));
        }
        let mut request = json!({
            "StartArns": [start_arn],
            "Direction": self.direction,
            "MaxDepth": self.depth,
            "IncludeEdges": true,
            "MaxResults": 50,
        });
        if !filters.is_empty() {
            request["Filters"] = Value::Object(filters);
        }
        Ok(request)
    }
}

/// What a view found.
pub struct Graph {
    pub start_arn: String,
    pub vertices: Vec<Value>,
    pub edges: Vec<Value>,
    /// More entities were reachable than [`MAX_VERTICES`].
    pub truncated: bool,
}

/// The ARN a view starts at: the ARN given, or the context of the feature group named.
fn start_arn(console: &Console, start: &str) -> Result<String> {
    if start.starts_with("arn:") {
        return Ok(start.to_string());
    }
    let Some(lineage) = &console.api.lineage else {
        return Err(Error::validation(
            "the lineage service is off on this server (--lineage false)",
        ));
    };
    let group = console.api.store.registry().get(start).map_err(|_| {
        Error::not_found(format!(
            "start: {start:?} is neither an ARN nor the name of a feature group"
        ))
    })?;
    Ok(quiver_lineage::feature_groups::group_context_arn(
        lineage, &group,
    ))
}

/// Runs the view's QueryLineage as `user`, page after page, up to [`MAX_VERTICES`].
pub async fn walk(console: &Console, user: &User, view: &View) -> Result<Graph> {
    let start_arn = start_arn(console, &view.start)?;
    let mut request = view.request(&start_arn)?;
    let mut graph = Graph {
        start_arn,
        vertices: Vec::new(),
        edges: Vec::new(),
        truncated: false,
    };
    loop {
        let page = call(console, user, "QueryLineage", request.clone()).await?;
        graph
            .vertices
            .extend(page["Vertices"].as_array().cloned().unwrap_or_default());
        if let Some(edges) = page["Edges"].as_array() {
            graph.edges.extend(edges.iter().cloned());
        }
        match page["NextToken"].as_str().filter(|t| !t.is_empty()) {
            Some(_) if graph.vertices.len() >= MAX_VERTICES => {
                graph.truncated = true;
                break;
            }
            Some(token) => request["NextToken"] = token.into(),
            None => break,
        }
    }
    graph
        .edges
        .sort_by_key(|e| (text(e.get("SourceArn")), text(e.get("DestinationArn"))));
    graph.edges.dedup();
    Ok(graph)
}

/// The last part of an ARN: a context's or action's name, an artifact's id.
pub fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// A vertex's label: its type and name (artifact ids shortened).
fn label(vertex: &Value) -> String {
    let arn = text(vertex.get("Arn"));
    let name = short(&arn);
    let name = if vertex["LineageType"] == "Artifact" && name.len() > 12 {
        &name[..12]
    } else {
        name
    };
    format!("{}\n{}", text(vertex.get("Type")), name)
}

pub fn entity_link(arn: &str) -> String {
    format!(
        "/console/lineage/entity?arn={}",
        form_urlencoded::byte_serialize(arn.as_bytes()).collect::<String>()
    )
}

/// `GET /console/lineage`.
pub async fn show(
    State(console): State<Console>,
    Extension(user): Extension<User>,
    RawQuery(query): RawQuery,
) -> Response {
    let view = View::parse(query.as_deref());
    let found = if view.start.is_empty() {
        None
    } else {
        Some(walk(&console, &user, &view).await)
    };
    let status = found.as_ref().map_or(StatusCode::OK, layout::status);
    let body = html! {
        p.lead { "Where data came from and what was made from it: feature groups, streams, files, datasets, jobs and models, as the lineage graph records them." }
        (form(&view))
        @match &found {
            None => { (starting_points(&console)) }
            Some(Err(e)) => { (layout::error_block(e)) }
            Some(Ok(graph)) => { (drawn(&view, graph)) }
        }
    };
    // The graph's scripts only where there is a graph.
    let scripts: &[&str] = match &found {
        Some(Ok(_)) => &crate::assets::LINEAGE_SCRIPTS,
        _ => &[],
    };
    let page = layout::page_with_scripts(&user, Section::Lineage, "Lineage", body, scripts);
    (status, page).into_response()
}

fn form(view: &View) -> Markup {
    html! {
        form.inline method="get" action="/console/lineage" {
            div {
                label for="start" { "Start from (a feature group or an ARN)" }
                input #start type="text" name="start" value=(view.start) required spellcheck="false" size="48";
            }
            div {
                label for="direction" { "Direction" }
                select #direction name="direction" {
                    @for (value, shown) in [("Both", "both ways"), ("Ascendants", "where it came from"), ("Descendants", "what was made from it")] {
                        option value=(value) selected[view.direction == value] { (shown) }
                    }
                }
            }
            div {
                label for="depth" { "Depth: " output #depth-shown for="depth" { (view.depth) } }
                input #depth type="range" name="depth" min="0" max="10" value=(view.depth);
            }
            fieldset.plain {
                legend { "Show" }
                @for t in LINEAGE_TYPES {
                    label.check {
                        input type="checkbox" name="lineage_type" value=(t)
                            checked[view.lineage_types.is_empty() || view.lineage_types.iter().any(|x| x == t)];
                        " " (t) "s"
                    }
                }
            }
            div {
                label for="types" { "Of types" }
                input #types type="text" name="types" value=(view.types) placeholder="e.g. DataSet, Model";
            }
            button type="submit" { "Explore" }
        }
    }
}

/// Without a start: the feature groups to start from.
fn starting_points(console: &Console) -> Markup {
    let mut names: Vec<String> = console
        .api
        .store
        .registry()
        .all()
        .iter()
        .map(|g| g.name.clone())
        .collect();
    names.sort();
    names.truncate(100);
    html! {
        @if names.is_empty() {
            p.muted { "No feature groups yet: the graph grows as groups are created, streams feed them and datasets and models are built from them." }
        } @else {
            h2 { "Start from a feature group" }
            ul.columns {
                @for name in &names {
                    li { a href={ "/console/lineage?start=" (layout::segment(name)) } { (name) } }
                }
            }
        }
    }
}

fn drawn(view: &View, graph: &Graph) -> Markup {
    let by_arn = |arn: &str| {
        graph
            .vertices
            .iter()
            .find(|v| v["Arn"] == arn)
            .map(|v| text(v.get("Type")))
            .unwrap_or_default()
    };
    html! {
        p role="status" {
            (graph.vertices.len()) " entities, " (graph.edges.len()) " associations"
            @if graph.truncated { " (the first " (MAX_VERTICES) "; lower the depth or filter to see the rest)" }
            " · from " a href=(entity_link(&graph.start_arn)) { code { (short(&graph.start_arn)) } }
        }
        div.graph-tools {
            button.secondary #zoom-in type="button" aria-label="Zoom in" { "+" }
            button.secondary #zoom-out type="button" aria-label="Zoom out" { "−" }
            button.secondary #zoom-fit type="button" { "Fit" }
        }
        div #graph role="img" aria-label="The lineage graph; the tables below list the same entities"
            data-src={ "/console/lineage/graph.json?" (view.query_string()) } {}
        h2 { "Entities" }
        div.table-wrap { table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Kind" } } }
            tbody { @for v in &graph.vertices {
                @let arn = text(v.get("Arn"));
                tr {
                    td { a href=(entity_link(&arn)) { (short(&arn)) } }
                    td { (text(v.get("Type"))) }
                    td { (text(v.get("LineageType"))) }
                }
            } }
        } }
        @if !graph.edges.is_empty() {
            h2 { "Associations" }
            div.table-wrap { table {
                thead { tr { th scope="col" { "From" } th scope="col" { "" } th scope="col" { "To" } } }
                tbody { @for e in &graph.edges {
                    @let (from, to) = (text(e.get("SourceArn")), text(e.get("DestinationArn")));
                    tr {
                        td { a href=(entity_link(&from)) { (short(&from)) } " " span.muted { (by_arn(&from)) } }
                        td { (text(e.get("AssociationType"))) }
                        td { a href=(entity_link(&to)) { (short(&to)) } " " span.muted { (by_arn(&to)) } }
                    }
                } }
            } }
        }
    }
}

/// `GET /console/lineage/graph.json`: the view as the graph script draws it.
pub async fn graph_json(
    State(console): State<Console>,
    Extension(user): Extension<User>,
    RawQuery(query): RawQuery,
) -> Response {
    let view = View::parse(query.as_deref());
    match walk(&console, &user, &view).await {
        Ok(graph) => {
            let nodes: Vec<Value> = graph
                .vertices
                .iter()
                .map(|v| {
                    let arn = text(v.get("Arn"));
                    json!({
                        "id": arn,
                        "label": label(v),
                        "kind": text(v.get("LineageType")),
                        "href": entity_link(&arn),
                        "start": arn == graph.start_arn,
                    })
                })
                .collect();
            let known = |arn: &str| nodes.iter().any(|n| n["id"] == arn);
            // Edges to entities filtered out of the view are not drawn.
            let edges: Vec<Value> = graph
                .edges
                .iter()
                .filter(|e| {
                    known(&text(e.get("SourceArn"))) && known(&text(e.get("DestinationArn")))
                })
                .map(|e| {
                    json!({
                        "source": text(e.get("SourceArn")),
                        "target": text(e.get("DestinationArn")),
                        "label": text(e.get("AssociationType")),
                    })
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({ "nodes": nodes, "edges": edges, "truncated": graph.truncated }),
            )
        }
        Err(e) => json_response(layout::status_of(&e), &json!({ "error": e.message() })),
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The Describe operation, its name field and the value naming the entity of `arn`.
fn describe_request(arn: &str) -> Result<(&'static str, Value)> {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or("");
    let (segment, id) = resource.split_once('/').unwrap_or(("", ""));
    let (operation, field, value) = match segment {
        "artifact" => ("DescribeArtifact", "ArtifactArn", arn),
        "action" => ("DescribeAction", "ActionName", arn),
        "context" => ("DescribeContext", "ContextName", arn),
        "experiment-trial-component" => ("DescribeTrialComponent", "TrialComponentName", id),
        "experiment-trial" => ("DescribeTrial", "TrialName", id),
        "experiment" => ("DescribeExperiment", "ExperimentName", id),
        _ => {
            return Err(Error::validation(format!(
                "arn: {arn:?} is not the ARN of a lineage entity (artifact, action, context, \
                 experiment, trial or trial component)"
            )));
        }
    };
    Ok((operation, json!({ field: value })))
}

/// `GET /console/lineage/entity?arn=`.
pub async fn entity(
    State(console): State<Console>,
    Extension(user): Extension<User>,
    RawQuery(query): RawQuery,
) -> Response {
    let arn = param(query.as_deref(), "arn").unwrap_or_default();
    let described = match describe_request(&arn) {
        Ok((operation, request)) => call(&console, &user, operation, request).await,
        Err(e) => Err(e),
    };
    let title = short(&arn).to_string();
    let described = match described {
        Ok(described) => described,
        Err(e) => return layout::error_page(&user, Section::Lineage, &title, &e),
    };
    let group = described["Properties"]["FeatureGroupName"].as_str();
    let body = html! {
        p {
            a.button href={ "/console/lineage?start=" (layout::segment(&arn)) } { "Explore from here" }
            @if let Some(group) = group {
                " " a.button.secondary href={ "/console/groups/" (layout::segment(group)) } { "Feature group " (group) }
            }
        }
        dl.settings {
            @for (key, value) in described.as_object().into_iter().flatten() {
                dt { (key) }
                dd { (field(key, value)) }
            }
        }
    };
    layout::page(&user, Section::Lineage, &title, body).into_response()
}

/// A Describe response's field, shown for people.
fn field(key: &str, value: &Value) -> Markup {
    html! {
        @match value {
            Value::Object(map) if key == "Properties" || key == "Parameters" => {
                @for (k, v) in map { span.badge { (k) "=" (text(Some(v))) } " " }
            }
            Value::String(s) if s.starts_with("arn:aws:sagemaker:") => { code { (s) } }
            Value::String(s) => { (s) }
            Value::Number(n) if key.ends_with("Time") => {
                (n.as_f64().map(|s| layout::time((s * 1000.0) as i64)).unwrap_or_default())
            }
            Value::Object(_) | Value::Array(_) => {
                pre { (serde_json::to_string_pretty(value).unwrap_or_default()) }
            }
            other => { (other.to_string()) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_a_query_lineage_request() {
        let view = View::parse(Some(
            "start=g&direction=Ascendants&depth=2&lineage_type=Artifact&lineage_type=Bogus&types=DataSet%2C+Model",
        ));
        assert_eq!(view.lineage_types, ["Artifact"]);
        let request = view.request("arn:x").unwrap();
        assert_eq!(
            request,
            json!({
                "StartArns": ["arn:x"], "Direction": "Ascendants", "MaxDepth": 2,
                "IncludeEdges": true, "MaxResults": 50,
                "Filters": {"LineageTypes": ["Artifact"], "Types": ["DataSet", "Model"]}
            })
        );
        assert_eq!(View::parse(Some(&view.query_string())), view);
        let deep = View::parse(Some("start=g&depth=11"))
            .request("arn:x")
            .unwrap_err();
        assert!(deep.message().contains("depth: 11 is not between 0 and 10"));
        assert_eq!(View::parse(None).depth, DEFAULT_DEPTH);
        assert_eq!(View::parse(None).direction, "Both");
    }

    #[test]
    fn each_entity_kind_has_its_describe_operation() {
        let arn = |s: &str| format!("arn:aws:sagemaker:us-east-1:000000000000:{s}");
        let (op, request) = describe_request(&arn("context/g-1700000000")).unwrap();
        assert_eq!(op, "DescribeContext");
        assert_eq!(request["ContextName"], arn("context/g-1700000000"));
        let (op, request) = describe_request(&arn("experiment-trial-component/run-1")).unwrap();
        assert_eq!(
            (op, request["TrialComponentName"].as_str()),
            ("DescribeTrialComponent", Some("run-1"))
        );
        let err = describe_request("not-an-arn").unwrap_err();
        assert!(err.message().contains("is not the ARN of a lineage entity"));
    }
}
