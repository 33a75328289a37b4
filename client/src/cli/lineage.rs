//! `quiver lineage ...`: the lineage graph on the server's `Lineage` service. `query` walks it
//! from an entity and prints the vertices and edges as tables, JSON, Graphviz DOT or Mermaid;
//! `list` and `describe` show entities (artifacts, actions, contexts, experiments, trials and
//! trial components, with their runs' parameters and metrics) and associations.

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use quiver_client::{Client, pb};
use serde_json::{Value, json};

use super::output::{Output, cell, format_iso8601_millis, print_json, print_table};

#[derive(Debug, Subcommand)]
pub enum LineageCommand {
    /// Walk the graph from an entity (an ARN, or an action's or context's name).
    Query {
        start: String,
        /// Which way to walk: descendants follow associations forwards, ascendants backwards,
        /// both walk both ways from every entity reached.
        #[arg(long, value_enum, default_value = "both")]
        direction: QueryDirection,
        /// How many associations deep (0 to 10).
        #[arg(long, default_value_t = 10)]
        depth: i32,
        /// Only entities of these types (ArtifactType, ActionType or ContextType, such as
        /// DataSet or Model; comma-separated).
        #[arg(long = "type", value_delimiter = ',')]
        types: Vec<String>,
        /// Only these kinds of entity: Artifact, Action, Context (comma-separated).
        #[arg(long = "lineage-type", value_delimiter = ',')]
        lineage_types: Vec<String>,
        /// How to print the result; by default as --output says.
        #[arg(long, value_enum)]
        format: Option<GraphFormat>,
    },
    /// List the entities of a kind, or the associations.
    List {
        #[arg(value_enum)]
        what: ListWhat,
        /// Only entities with this SourceUri.
        #[arg(long)]
        source_uri: Option<String>,
        /// Only entities of this type (ArtifactType, ActionType or ContextType).
        #[arg(long = "type")]
        entity_type: Option<String>,
        /// Associations from this ARN.
        #[arg(long)]
        source_arn: Option<String>,
        /// Associations to this ARN.
        #[arg(long)]
        destination_arn: Option<String>,
        /// Trials of this experiment; trial components in its trials.
        #[arg(long)]
        experiment: Option<String>,
        /// Trial components in this trial.
        #[arg(long)]
        trial: Option<String>,
        /// Trials holding this trial component.
        #[arg(long)]
        trial_component: Option<String>,
    },
    /// Show one entity (an ARN, or an action's or context's name; other kinds' names with
    /// --kind).
    Describe {
        name_or_arn: String,
        #[arg(long, value_enum)]
        kind: Option<EntityKindArg>,
    },
    /// Column lineage reported by OpenLineage producers: which input fields a dataset's
    /// columns are made from.
    Columns {
        /// The dataset's URI (`<namespace>/<name>` of OpenLineage).
        dataset: String,
        /// One column; all of them by default.
        #[arg(long)]
        column: Option<String>,
        /// How many levels up (1 to 10): 2 also shows what the input fields are made from.
        #[arg(long, default_value_t = 1)]
        depth: i32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum QueryDirection {
    Both,
    Ascendants,
    Descendants,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Table,
    Json,
    /// Graphviz: `quiver lineage query ... --format dot | dot -Tsvg > lineage.svg`.
    Dot,
    /// Mermaid, for Markdown pages that render it.
    Mermaid,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListWhat {
    Artifacts,
    Actions,
    Contexts,
    Experiments,
    Trials,
    TrialComponents,
    Associations,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EntityKindArg {
    Artifact,
    Action,
    Context,
    Experiment,
    Trial,
    TrialComponent,
}

impl EntityKindArg {
    fn pb(self) -> pb::LineageEntityKind {
        match self {
            Self::Artifact => pb::LineageEntityKind::Artifact,
            Self::Action => pb::LineageEntityKind::Action,
            Self::Context => pb::LineageEntityKind::Context,
            Self::Experiment => pb::LineageEntityKind::Experiment,
            Self::Trial => pb::LineageEntityKind::Trial,
            Self::TrialComponent => pb::LineageEntityKind::TrialComponent,
        }
    }
}

pub async fn run(client: &Client, out: Output, command: LineageCommand) -> Result<()> {
    let mut lineage = client.lineage();
    match command {
        LineageCommand::Query {
            start,
            direction,
            depth,
            types,
            lineage_types,
            format,
        } => {
            let start_arn = if start.starts_with("arn:") {
                start
            } else {
                lineage
                    .describe_entity(pb::DescribeLineageEntityRequest {
                        kind: pb::LineageEntityKind::Unspecified.into(),
                        name_or_arn: start.clone(),
                    })
                    .await
                    .with_context(|| format!("finding {start}"))?
                    .into_inner()
                    .arn
            };
            let direction = match direction {
                QueryDirection::Both => "Both",
                QueryDirection::Ascendants => "Ascendants",
                QueryDirection::Descendants => "Descendants",
            };
            let mut graph = Graph::default();
            let mut next_token = None;
            loop {
                let page = lineage
                    .query_lineage(pb::QueryLineageRequest {
                        start_arns: vec![start_arn.clone()],
                        direction: Some(direction.to_string()),
                        include_edges: true,
                        filters: Some(pb::LineageQueryFilters {
                            types: types.clone(),
                            lineage_types: lineage_types.clone(),
                            ..Default::default()
                        }),
                        max_depth: Some(depth),
                        max_results: None,
                        next_token: next_token.take(),
                    })
                    .await
                    .context("QueryLineage")?
                    .into_inner();
                graph.vertices.extend(page.vertices);
                graph.edges.extend(page.edges);
                match page.next_token {
                    Some(token) => next_token = Some(token),
                    None => break,
                }
            }
            let format = format.unwrap_or(match out {
                Output::Table => GraphFormat::Table,
                Output::Json => GraphFormat::Json,
            });
            match format {
                GraphFormat::Table => graph.print_tables(),
                GraphFormat::Json => print_json(&graph.to_json()),
                GraphFormat::Dot => print!("{}", graph.to_dot()),
                GraphFormat::Mermaid => print!("{}", graph.to_mermaid()),
            }
        }
        LineageCommand::List {
            what,
            source_uri,
            entity_type,
            source_arn,
            destination_arn,
            experiment,
            trial,
            trial_component,
        } => {
            let kind = match what {
                ListWhat::Artifacts => pb::LineageEntityKind::Artifact,
                ListWhat::Actions => pb::LineageEntityKind::Action,
                ListWhat::Contexts => pb::LineageEntityKind::Context,
                ListWhat::Experiments => pb::LineageEntityKind::Experiment,
                ListWhat::Trials => pb::LineageEntityKind::Trial,
                ListWhat::TrialComponents => pb::LineageEntityKind::TrialComponent,
                ListWhat::Associations => {
                    let mut all = Vec::new();
                    let mut next_token = None;
                    loop {
                        let page = lineage
                            .list_associations(pb::ListLineageAssociationsRequest {
                                source_arn: source_arn.clone(),
                                destination_arn: destination_arn.clone(),
                                max_results: Some(100),
                                next_token: next_token.take(),
                                ..Default::default()
                            })
                            .await
                            .context("ListAssociations")?
                            .into_inner();
                        all.extend(page.associations);
                        match page.next_token {
                            Some(token) => next_token = Some(token),
                            None => break,
                        }
                    }
                    print_associations(out, &all);
                    return Ok(());
                }
            };
            let mut all = Vec::new();
            let mut next_token = None;
            loop {
                let page = lineage
                    .list_entities(pb::ListLineageEntitiesRequest {
                        kind: kind.into(),
                        source_uri: source_uri.clone(),
                        entity_type: entity_type.clone(),
                        max_results: Some(100),
                        next_token: next_token.take(),
                        experiment_name: experiment.clone(),
                        trial_name: trial.clone(),
                        trial_component_name: trial_component.clone(),
                        ..Default::default()
                    })
                    .await
                    .context("listing lineage entities")?
                    .into_inner();
                all.extend(page.entities);
                match page.next_token {
                    Some(token) => next_token = Some(token),
                    None => break,
                }
            }
            let runs = matches!(
                what,
                ListWhat::Experiments | ListWhat::Trials | ListWhat::TrialComponents
            );
            match out {
                Output::Json => print_json(&Value::Array(all.iter().map(entity_json).collect())),
                Output::Table if runs => print_table(
                    &["NAME", "DISPLAY NAME", "STATUS", "CREATED", "ARN"],
                    &all.iter()
                        .map(|e| {
                            vec![
                                e.name.clone().unwrap_or_else(|| "-".into()),
                                e.experiment
                                    .as_ref()
                                    .and_then(|f| f.display_name.clone())
                                    .unwrap_or_else(|| "-".into()),
                                e.status.clone().unwrap_or_else(|| "-".into()),
                                format_iso8601_millis(e.creation_time_ms),
                                e.arn.clone(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
                Output::Table => print_table(
                    &["NAME", "TYPE", "SOURCE URI", "CREATED", "ARN"],
                    &all.iter()
                        .map(|e| {
                            vec![
                                e.name.clone().unwrap_or_else(|| "-".into()),
                                e.entity_type.clone(),
                                e.source
                                    .as_ref()
                                    .map(|s| s.source_uri.clone())
                                    .unwrap_or_default(),
                                format_iso8601_millis(e.creation_time_ms),
                                e.arn.clone(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        LineageCommand::Columns {
            dataset,
            column,
            depth,
        } => {
            let edges = lineage
                .column_lineage(pb::ColumnLineageRequest {
                    dataset_uri: dataset,
                    column,
                    depth: Some(depth),
                })
                .await
                .context("ColumnLineage")?
                .into_inner()
                .edges;
            match out {
                Output::Json => print_json(&Value::Array(
                    edges
                        .iter()
                        .map(|e| {
                            json!({
                                "output_dataset": e.output_dataset,
                                "output_column": e.output_column,
                                "input_dataset": e.input_dataset,
                                "input_field": e.input_field,
                                "transformation": e.transformation,
                            })
                        })
                        .collect(),
                )),
                Output::Table => print_table(
                    &[
                        "DATASET",
                        "COLUMN",
                        "FROM DATASET",
                        "FIELD",
                        "TRANSFORMATION",
                    ],
                    &edges
                        .iter()
                        .map(|e| {
                            vec![
                                e.output_dataset.clone(),
                                e.output_column.clone(),
                                e.input_dataset.clone(),
                                e.input_field.clone(),
                                e.transformation.clone().unwrap_or_else(|| "-".into()),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        LineageCommand::Describe { name_or_arn, kind } => {
            let entity = lineage
                .describe_entity(pb::DescribeLineageEntityRequest {
                    kind: kind
                        .map_or(pb::LineageEntityKind::Unspecified, EntityKindArg::pb)
                        .into(),
                    name_or_arn,
                })
                .await
                .context("DescribeEntity")?
                .into_inner();
            let json = entity_json(&entity);
            match out {
                Output::Json => print_json(&json),
                Output::Table => {
                    let rows: Vec<Vec<String>> = json
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| vec![k.clone(), cell(v)])
                        .collect();
                    print_table(&["FIELD", "VALUE"], &rows);
                }
            }
        }
    }
    Ok(())
}

fn kind_name(kind: i32) -> &'static str {
    match pb::LineageEntityKind::try_from(kind) {
        Ok(pb::LineageEntityKind::Artifact) => "Artifact",
        Ok(pb::LineageEntityKind::Action) => "Action",
        Ok(pb::LineageEntityKind::Context) => "Context",
        Ok(pb::LineageEntityKind::Experiment) => "Experiment",
        Ok(pb::LineageEntityKind::Trial) => "Trial",
        Ok(pb::LineageEntityKind::TrialComponent) => "TrialComponent",
        _ => "-",
    }
}

fn entity_json(e: &pb::LineageEntity) -> Value {
    let mut json = json!({
        "kind": kind_name(e.kind),
        "arn": e.arn,
        "name": e.name,
        "type": e.entity_type,
        "source_uri": e.source.as_ref().map(|s| s.source_uri.clone()),
        "description": e.description,
        "status": e.status,
        "properties": e.properties,
        "created": format_iso8601_millis(e.creation_time_ms),
        "created_by": e.created_by,
        "last_modified": format_iso8601_millis(e.last_modified_time_ms),
    });
    if let Some(f) = &e.experiment {
        let artifacts = |map: &std::collections::HashMap<String, pb::RunArtifact>| -> Value {
            map.iter()
                .map(|(k, a)| {
                    (
                        k.clone(),
                        json!({"media_type": a.media_type, "value": a.value}),
                    )
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        json["display_name"] = json!(f.display_name);
        json["experiment_name"] = json!(f.experiment_name);
        json["status_message"] = json!(f.status_message);
        json["start"] = json!(f.start_time_ms.map(format_iso8601_millis));
        json["end"] = json!(f.end_time_ms.map(format_iso8601_millis));
        json["parameters"] = f
            .parameters
            .iter()
            .map(|(k, p)| {
                let value = match &p.value {
                    Some(pb::run_parameter::Value::StringValue(s)) => json!(s),
                    Some(pb::run_parameter::Value::NumberValue(n)) => json!(n),
                    None => Value::Null,
                };
                (k.clone(), value)
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        json["input_artifacts"] = artifacts(&f.input_artifacts);
        json["output_artifacts"] = artifacts(&f.output_artifacts);
        json["metrics"] = f
            .metrics
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    json!({"count": m.count, "min": m.min, "max": m.max, "last": m.last, "avg": m.avg, "std_dev": m.std_dev}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    json
}

fn print_associations(out: Output, associations: &[pb::LineageAssociation]) {
    match out {
        Output::Json => print_json(&Value::Array(
            associations
                .iter()
                .map(|a| {
                    json!({
                        "source_arn": a.source_arn,
                        "destination_arn": a.destination_arn,
                        "association_type": a.association_type,
                        "source_type": a.source_type,
                        "destination_type": a.destination_type,
                        "created": format_iso8601_millis(a.creation_time_ms),
                    })
                })
                .collect(),
        )),
        Output::Table => print_table(
            &["SOURCE", "ASSOCIATION", "DESTINATION"],
            &associations
                .iter()
                .map(|a| {
                    vec![
                        format!("{} ({})", short(&a.source_arn), a.source_type),
                        a.association_type.clone().unwrap_or_else(|| "-".into()),
                        format!("{} ({})", short(&a.destination_arn), a.destination_type),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
}

/// An ARN's resource part: `context/orders-1712345678`.
fn short(arn: &str) -> &str {
    arn.splitn(6, ':').nth(5).unwrap_or(arn)
}

/// A QueryLineage result, all pages.
#[derive(Debug, Default)]
struct Graph {
    vertices: Vec<pb::LineageVertex>,
    edges: Vec<pb::LineageEdge>,
}

impl Graph {
    /// What a vertex is called in a drawing: an action's or context's name; an artifact's
    /// SourceUri (its ARN ends in a generated id).
    fn label(vertex: &pb::LineageVertex) -> String {
        let resource = short(&vertex.arn);
        let name = if vertex.lineage_type == "Artifact" && !vertex.source_uri.is_empty() {
            vertex.source_uri.as_str()
        } else {
            resource.split_once('/').map_or(resource, |(_, id)| id)
        };
        format!("{name}\n{} ({})", vertex.r#type, vertex.lineage_type)
    }

    fn print_tables(&self) {
        print_table(
            &["LINEAGE TYPE", "TYPE", "ENTITY", "SOURCE URI"],
            &self
                .vertices
                .iter()
                .map(|v| {
                    vec![
                        v.lineage_type.clone(),
                        v.r#type.clone(),
                        short(&v.arn).to_string(),
                        v.source_uri.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        );
        if !self.edges.is_empty() {
            println!();
            print_table(
                &["SOURCE", "ASSOCIATION", "DESTINATION"],
                &self
                    .edges
                    .iter()
                    .map(|e| {
                        vec![
                            short(&e.source_arn).to_string(),
                            e.association_type.clone().unwrap_or_else(|| "-".into()),
                            short(&e.destination_arn).to_string(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            );
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "vertices": self.vertices.iter().map(|v| json!({
                "arn": v.arn, "type": v.r#type, "lineage_type": v.lineage_type, "source_uri": v.source_uri,
            })).collect::<Vec<_>>(),
            "edges": self.edges.iter().map(|e| json!({
                "source_arn": e.source_arn, "destination_arn": e.destination_arn,
                "association_type": e.association_type,
            })).collect::<Vec<_>>(),
        })
    }

    /// Graphviz DOT: one box per vertex, labelled; one arrow per association.
    fn to_dot(&self) -> String {
        let quote = |text: &str| {
            let escaped = text
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("\"{escaped}\"")
        };
        let mut dot = String::from("digraph lineage {\n  rankdir=LR;\n  node [shape=box];\n");
        for v in &self.vertices {
            dot += &format!("  {} [label={}];\n", quote(&v.arn), quote(&Self::label(v)));
        }
        for e in &self.edges {
            let label = e.association_type.as_deref().unwrap_or("");
            dot += &format!(
                "  {} -> {} [label={}];\n",
                quote(&e.source_arn),
                quote(&e.destination_arn),
                quote(label)
            );
        }
        dot + "}\n"
    }

    /// Mermaid flowchart: vertices as `n<i>` with escaped labels (Mermaid ids cannot hold an
    /// ARN); an edge's end that is not among the vertices (filtered out) gets a node too.
    fn to_mermaid(&self) -> String {
        let mut ids: Vec<(String, String)> = self
            .vertices
            .iter()
            .map(|v| (v.arn.clone(), Self::label(v)))
            .collect();
        for e in &self.edges {
            for arn in [&e.source_arn, &e.destination_arn] {
                if !ids.iter().any(|(a, _)| a == arn) {
                    ids.push((arn.clone(), short(arn).to_string()));
                }
            }
        }
        let escape = |text: &str| {
            text.replace('"', "#quot;")
                .replace('<', "#lt;")
                .replace('>', "#gt;")
                .replace('\n', "<br/>")
        };
        let id = |arn: &str| ids.iter().position(|(a, _)| a == arn).unwrap_or(0);
        let mut out = String::from("graph LR\n");
        for (i, (_, label)) in ids.iter().enumerate() {
            out += &format!("  n{i}[\"{}\"]\n", escape(label));
        }
        for e in &self.edges {
            let arrow = match e.association_type.as_deref() {
                Some(t) => format!("-->|{t}|"),
                None => "-->".to_string(),
            };
            out += &format!(
                "  n{} {arrow} n{}\n",
                id(&e.source_arn),
                id(&e.destination_arn)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> Graph {
        let arn = |r: &str| format!("arn:aws:sagemaker:us-east-1:000000000000:{r}");
        Graph {
            vertices: vec![
                pb::LineageVertex {
                    arn: arn("artifact/0a1b"),
                    r#type: "DataSet".into(),
                    lineage_type: "Artifact".into(),
                    source_uri: "s3://b/\"q\".csv".into(),
                },
                pb::LineageVertex {
                    arn: arn("action/train"),
                    r#type: "TrainingJob".into(),
                    lineage_type: "Action".into(),
                    source_uri: "j".into(),
                },
            ],
            edges: vec![pb::LineageEdge {
                source_arn: arn("artifact/0a1b"),
                destination_arn: arn("action/train"),
                association_type: Some("ContributedTo".into()),
            }],
        }
    }

    #[test]
    fn dot_quotes_labels_and_draws_each_association() {
        let dot = graph().to_dot();
        assert!(dot.starts_with("digraph lineage {"), "{dot}");
        assert!(
            dot.contains(r#"[label="s3://b/\"q\".csv\nDataSet (Artifact)"]"#),
            "{dot}"
        );
        assert!(
            dot.contains(r#"[label="train\nTrainingJob (Action)"]"#),
            "{dot}"
        );
        assert!(
            dot.contains(r#""arn:aws:sagemaker:us-east-1:000000000000:artifact/0a1b" -> "arn:aws:sagemaker:us-east-1:000000000000:action/train" [label="ContributedTo"]"#),
            "{dot}"
        );
    }

    #[test]
    fn mermaid_uses_short_ids_and_escapes_labels() {
        let mermaid = graph().to_mermaid();
        assert_eq!(
            mermaid,
            "graph LR\n  n0[\"s3://b/#quot;q#quot;.csv<br/>DataSet (Artifact)\"]\n  n1[\"train<br/>TrainingJob (Action)\"]\n  n0 -->|ContributedTo| n1\n"
        );
    }
}
