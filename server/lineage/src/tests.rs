use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;

use quiver_storage::db::{StorageOptions, open};
use quiver_storage::lineage_records::LineageRecords;
use quiver_types::error::ErrorKind;
use quiver_types::model::arn::ArnContext;
use quiver_types::time::ManualClock;

use crate::Lineage;
use crate::associations::{AssociationListQuery, AssociationSort};
use crate::entities::{EntityListQuery, EntitySort};
use crate::experiments::{
    ExperimentListQuery, ExperimentUpdate, MetricError, NewExperiment, NewTrial, NewTrialComponent,
};
use crate::model::*;
use crate::query::{Direction, LineageQuery, QueryFilters};

fn open_graph(dir: &Path, clock: Arc<ManualClock>, max_entities: u64) -> Lineage {
    let db = open(
        dir,
        &StorageOptions {
            block_cache_bytes: 8 << 20,
        },
    )
    .unwrap();
    Lineage::open(
        LineageRecords::new(db, false),
        ArnContext {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
        },
        clock,
        max_entities,
    )
    .unwrap()
}

fn new(kind: EntityKind, name: Option<&str>, uri: &str, entity_type: &str) -> NewEntity {
    NewEntity {
        kind,
        name: name.map(str::to_string),
        source: Source {
            source_uri: uri.into(),
            source_types: Vec::new(),
            source_type: None,
            source_id: None,
        },
        entity_type: entity_type.into(),
        description: None,
        status: None,
        properties: BTreeMap::new(),
        metadata: MetadataProperties::default(),
        tags: Vec::new(),
    }
}

fn list(kind: EntityKind) -> EntityListQuery {
    EntityListQuery {
        kind,
        source_uri: None,
        entity_type: None,
        created_after_ms: None,
        created_before_ms: None,
        sort_by: EntitySort::CreationTime,
        descending: false,
        max_results: None,
        next_token: None,
        within: None,
    }
}

#[test]
fn entities_are_created_described_updated_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let graph = open_graph(dir.path(), clock.clone(), 100);
    let action = graph
        .create(
            new(
                EntityKind::Action,
                Some("Train-1"),
                "s3://b/job",
                "TrainingJob",
            ),
            Some("alice"),
        )
        .unwrap();
    assert_eq!(
        action.arn,
        "arn:aws:sagemaker:us-east-1:123456789012:action/train-1"
    );
    // By name (any case) or ARN.
    assert_eq!(
        graph
            .describe(EntityKind::Action, "ActionName", "train-1")
            .unwrap(),
        action
    );
    assert_eq!(
        graph
            .describe(EntityKind::Action, "ActionName", &action.arn)
            .unwrap(),
        action
    );
    let err = graph
        .create(new(EntityKind::Action, Some("TRAIN-1"), "x", "t"), None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert!(
        err.message().contains("already exists"),
        "{}",
        err.message()
    );
    // An action's ARN is not a context's.
    let err = graph
        .describe(EntityKind::Context, "ContextName", &action.arn)
        .unwrap_err();
    assert!(
        err.message().contains("not of a context"),
        "{}",
        err.message()
    );

    let artifact = graph
        .create(
            new(EntityKind::Artifact, None, "s3://b/data.csv", "DataSet"),
            None,
        )
        .unwrap();
    assert_eq!(artifact.arn.rsplit('/').next().unwrap().len(), 32);

    clock.advance_ms(500);
    let mut update = EntityUpdate {
        status: Some("Completed".into()),
        ..Default::default()
    };
    update.properties.insert("rows".into(), "42".into());
    let updated = graph
        .update(
            EntityKind::Action,
            "ActionName",
            "train-1",
            update,
            Some("bob"),
        )
        .unwrap();
    assert_eq!(updated.status.as_deref(), Some("Completed"));
    assert_eq!(updated.modified_ms, 1_500);
    assert_eq!(updated.modified_by.as_deref(), Some("bob"));
    let err = graph
        .update(
            EntityKind::Action,
            "ActionName",
            "train-1",
            EntityUpdate {
                status: Some("Done".into()),
                ..Default::default()
            },
            None,
        )
        .unwrap_err();
    assert!(
        err.message().starts_with("Status 'Done'"),
        "{}",
        err.message()
    );

    // Thirty properties at most, counted after the update.
    let mut many = EntityUpdate::default();
    for i in 0..30 {
        many.properties.insert(format!("k{i}"), "v".into());
    }
    let err = graph
        .update(EntityKind::Action, "ActionName", "train-1", many, None)
        .unwrap_err();
    assert!(err.message().contains("at most 30"), "{}", err.message());

    graph
        .add_association(
            &artifact.arn,
            &action.arn,
            Some(AssociationType::ContributedTo),
            None,
        )
        .unwrap();
    assert_eq!(graph.entity_count(), 2);
    graph
        .delete(EntityKind::Action, "ActionName", "train-1")
        .unwrap();
    assert_eq!(graph.entity_count(), 1);
    // Its associations went with it.
    let page = graph
        .list_associations(&AssociationListQuery::default())
        .unwrap();
    assert!(page.items.is_empty());
    let err = graph
        .describe(EntityKind::Action, "ActionName", "train-1")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // The name is free again.
    graph
        .create(new(EntityKind::Action, Some("train-1"), "x", "t"), None)
        .unwrap();
}

#[test]
fn artifacts_are_deleted_by_source_when_it_names_one() {
    let dir = tempfile::tempdir().unwrap();
    let graph = open_graph(dir.path(), ManualClock::new(0), 100);
    let a = graph
        .create(new(EntityKind::Artifact, None, "s3://b/a", "DataSet"), None)
        .unwrap();
    let source = a.source.clone();
    graph
        .create(new(EntityKind::Artifact, None, "s3://b/a", "DataSet"), None)
        .unwrap();
    let err = graph.delete_artifact_by_source(&source).unwrap_err();
    assert!(
        err.message().contains("names 2 artifacts"),
        "{}",
        err.message()
    );
    graph
        .delete(EntityKind::Artifact, "ArtifactArn", &a.arn)
        .unwrap();
    graph.delete_artifact_by_source(&source).unwrap();
    let err = graph.delete_artifact_by_source(&source).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn listings_filter_sort_and_page() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let graph = open_graph(dir.path(), clock.clone(), 1000);
    for i in 0..25 {
        clock.advance_ms(10);
        let t = if i % 2 == 0 { "Even" } else { "Odd" };
        graph
            .create(
                new(
                    EntityKind::Context,
                    Some(&format!("c{i:02}")),
                    &format!("uri{}", i % 5),
                    t,
                ),
                None,
            )
            .unwrap();
    }
    let mut query = list(EntityKind::Context);
    query.entity_type = Some("Even".into());
    query.sort_by = EntitySort::Name;
    query.descending = true;
    let mut names = Vec::new();
    loop {
        let page = graph.list(&query).unwrap();
        assert!(page.items.len() <= 10);
        names.extend(page.items.into_iter().map(|e| e.name.unwrap()));
        match page.next_token {
            Some(token) => query.next_token = Some(token),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25)
        .rev()
        .filter(|i| i % 2 == 0)
        .map(|i| format!("c{i:02}"))
        .collect();
    assert_eq!(names, expected);

    let mut query = list(EntityKind::Context);
    query.source_uri = Some("uri3".into());
    query.created_after_ms = Some(100);
    let page = graph.list(&query).unwrap();
    let names: Vec<_> = page.items.iter().map(|e| e.name.clone().unwrap()).collect();
    assert_eq!(names, ["c13", "c18", "c23"]);

    let mut query = list(EntityKind::Artifact);
    query.sort_by = EntitySort::Name;
    assert!(graph.list(&query).unwrap_err().message().contains("SortBy"));
    let mut query = list(EntityKind::Context);
    query.max_results = Some(101);
    assert!(
        graph
            .list(&query)
            .unwrap_err()
            .message()
            .starts_with("MaxResults")
    );
    query.max_results = None;
    query.next_token = Some("garbage".into());
    assert!(
        graph
            .list(&query)
            .unwrap_err()
            .message()
            .starts_with("NextToken")
    );
}

#[test]
fn associations_are_unique_per_pair_and_listed_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let graph = open_graph(dir.path(), clock.clone(), 100);
    let data = graph
        .create(new(EntityKind::Artifact, None, "s3://d", "DataSet"), None)
        .unwrap();
    let job = graph
        .create(
            new(EntityKind::Action, Some("job"), "j", "TrainingJob"),
            None,
        )
        .unwrap();
    let model = graph
        .create(new(EntityKind::Artifact, None, "s3://m", "Model"), None)
        .unwrap();
    graph
        .add_association(
            &data.arn,
            &job.arn,
            Some(AssociationType::ContributedTo),
            None,
        )
        .unwrap();
    clock.advance_ms(10);
    graph
        .add_association(
            &job.arn,
            &model.arn,
            Some(AssociationType::Produced),
            Some("alice"),
        )
        .unwrap();
    let err = graph
        .add_association(
            &data.arn,
            &job.arn,
            Some(AssociationType::DerivedFrom),
            None,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    let missing = "arn:aws:sagemaker:us-east-1:123456789012:context/nope";
    let err = graph
        .add_association(&data.arn, missing, None, None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.message().starts_with("DestinationArn"),
        "{}",
        err.message()
    );

    let by_destination = graph
        .list_associations(&AssociationListQuery {
            destination_arn: Some(model.arn.clone()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_destination.items.len(), 1);
    let only = &by_destination.items[0];
    assert_eq!(
        (only.source_type.as_str(), only.destination_type.as_str()),
        ("TrainingJob", "Model")
    );
    assert_eq!(only.source_name.as_deref(), Some("job"));
    assert_eq!(only.created_by.as_deref(), Some("alice"));

    let sorted = graph
        .list_associations(&AssociationListQuery {
            sort_by: Some(AssociationSort::SourceType),
            ..Default::default()
        })
        .unwrap();
    let types: Vec<_> = sorted
        .items
        .iter()
        .map(|a| a.source_type.as_str())
        .collect();
    assert_eq!(types, ["DataSet", "TrainingJob"]);
    let typed = graph
        .list_associations(&AssociationListQuery {
            association_type: Some(AssociationType::Produced),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(typed.items.len(), 1);

    graph.delete_association(&data.arn, &job.arn).unwrap();
    let err = graph.delete_association(&data.arn, &job.arn).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// A random graph of 1,200 entities and 3,000 associations, queried from many starts in every
/// direction and depth, against a walk written here over an in-memory copy.
#[test]
fn queries_match_a_reference_walk() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let graph = open_graph(dir.path(), clock.clone(), 10_000);
    let kinds = [
        EntityKind::Artifact,
        EntityKind::Action,
        EntityKind::Context,
    ];
    let mut arns = Vec::new();
    for i in 0..1_200 {
        clock.advance_ms(1);
        let kind = kinds[i % 3];
        let name = (kind != EntityKind::Artifact).then(|| format!("e{i}"));
        let mut entity = new(
            kind,
            name.as_deref(),
            &format!("uri{i}"),
            ["DataSet", "Job", "Endpoint"][i % 3],
        );
        entity
            .properties
            .insert("shard".into(), (i % 7).to_string());
        arns.push(graph.create(entity, None).unwrap().arn);
    }
    let mut edges: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    while edges.len() < 3_000 {
        let (a, b) = (next(1_200), next(1_200));
        if a != b && !edges.contains(&(a, b)) {
            graph
                .add_association(
                    &arns[a],
                    &arns[b],
                    Some(AssociationType::ContributedTo),
                    None,
                )
                .unwrap();
            edges.insert((a, b));
        }
    }
    let reference = |start: usize,
                     direction: Direction,
                     depth: u32|
     -> (HashSet<usize>, HashSet<(usize, usize)>) {
        let mut seen = HashSet::from([start]);
        let mut walked = HashSet::new();
        let mut level = vec![start];
        for _ in 0..depth {
            let mut next_level = Vec::new();
            for &v in &level {
                for &(a, b) in &edges {
                    let far = match direction {
                        Direction::Descendants if a == v => b,
                        Direction::Ascendants if b == v => a,
                        Direction::Both if a == v => b,
                        Direction::Both if b == v => a,
                        _ => continue,
                    };
                    walked.insert((a, b));
                    if seen.insert(far) {
                        next_level.push(far);
                    }
                }
            }
            level = next_level;
        }
        (seen, walked)
    };
    let position: std::collections::HashMap<&str, usize> = arns
        .iter()
        .enumerate()
        .map(|(i, a)| (a.as_str(), i))
        .collect();
    for start in [0, 17, 301, 999] {
        for direction in [
            Direction::Descendants,
            Direction::Ascendants,
            Direction::Both,
        ] {
            for depth in [0, 1, 2, 10] {
                let (expected, expected_edges) = reference(start, direction, depth);
                let mut query = LineageQuery {
                    start_arns: vec![arns[start].clone()],
                    direction,
                    include_edges: true,
                    max_depth: Some(i64::from(depth)),
                    ..Default::default()
                };
                let mut got = HashSet::new();
                let mut got_edges = HashSet::new();
                loop {
                    let result = graph.query(&query).unwrap();
                    assert!(result.vertices.len() <= 50);
                    for v in &result.vertices {
                        assert!(
                            got.insert(position[v.arn.as_str()]),
                            "a vertex returned twice"
                        );
                    }
                    for e in &result.edges {
                        got_edges.insert((
                            position[e.source_arn.as_str()],
                            position[e.destination_arn.as_str()],
                        ));
                    }
                    match result.next_token {
                        Some(token) => query.next_token = Some(token),
                        None => break,
                    }
                }
                assert_eq!(got, expected, "start {start} {direction:?} depth {depth}");
                assert_eq!(
                    got_edges, expected_edges,
                    "edges: start {start} {direction:?} depth {depth}"
                );
            }
        }
    }
    // Filters choose the vertices returned, not where the walk goes.
    let query = LineageQuery {
        start_arns: vec![arns[0].clone()],
        direction: Direction::Both,
        max_depth: Some(3),
        max_results: Some(50),
        filters: QueryFilters {
            lineage_types: vec!["Context".into()],
            properties: vec![("shard".into(), "2".into()), ("shard".into(), "5".into())],
            ..Default::default()
        },
        ..Default::default()
    };
    let (reachable, _) = reference(0, Direction::Both, 3);
    let expected: HashSet<usize> = reachable
        .into_iter()
        .filter(|i| i % 3 == 2 && (i % 7 == 2 || i % 7 == 5))
        .collect();
    let mut got = HashSet::new();
    let mut query = query;
    loop {
        let result = graph.query(&query).unwrap();
        assert!(result.edges.is_empty(), "IncludeEdges was not asked for");
        got.extend(result.vertices.iter().map(|v| position[v.arn.as_str()]));
        match result.next_token {
            Some(token) => query.next_token = Some(token),
            None => break,
        }
    }
    assert_eq!(got, expected);
}

#[test]
fn queries_refuse_what_the_model_forbids() {
    let dir = tempfile::tempdir().unwrap();
    let graph = open_graph(dir.path(), ManualClock::new(0), 100);
    let a = graph
        .create(new(EntityKind::Artifact, None, "u", "DataSet"), None)
        .unwrap();
    let cases: Vec<(LineageQuery, &str)> = vec![
        (
            LineageQuery {
                start_arns: vec![a.arn.clone(), a.arn.clone()],
                ..Default::default()
            },
            "StartArns has 2",
        ),
        (
            LineageQuery {
                start_arns: vec!["nope".into()],
                ..Default::default()
            },
            "StartArns[0]",
        ),
        (
            LineageQuery {
                start_arns: vec![a.arn.clone()],
                max_depth: Some(11),
                ..Default::default()
            },
            "MaxDepth 11",
        ),
        (
            LineageQuery {
                start_arns: vec![a.arn.clone()],
                max_results: Some(51),
                ..Default::default()
            },
            "MaxResults 51",
        ),
        (
            LineageQuery {
                start_arns: vec![a.arn.clone()],
                filters: QueryFilters {
                    lineage_types: vec!["Model".into()],
                    ..Default::default()
                },
                ..Default::default()
            },
            "Filters.LineageTypes[0]",
        ),
        (
            LineageQuery {
                start_arns: vec![a.arn.clone()],
                filters: QueryFilters {
                    types: vec!["t".into(); 6],
                    ..Default::default()
                },
                ..Default::default()
            },
            "Filters.Types has 6",
        ),
        (
            LineageQuery {
                start_arns: vec![a.arn.clone()],
                next_token: Some("x".into()),
                ..Default::default()
            },
            "NextToken",
        ),
    ];
    for (query, message) in cases {
        let err = graph.query(&query).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Validation);
        assert!(
            err.message().starts_with(message),
            "{} / {message}",
            err.message()
        );
    }
    let missing = "arn:aws:sagemaker:us-east-1:123456789012:artifact/0123";
    let err = graph
        .query(&LineageQuery {
            start_arns: vec![missing.into()],
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let empty = graph.query(&LineageQuery::default()).unwrap();
    assert!(empty.vertices.is_empty() && empty.edges.is_empty());
}

#[test]
fn the_graph_survives_a_restart_and_its_cap_holds() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let (a, b) = {
        let graph = open_graph(dir.path(), clock.clone(), 2);
        let a = graph
            .create(new(EntityKind::Context, Some("a"), "u", "T"), None)
            .unwrap();
        let b = graph
            .create(new(EntityKind::Context, Some("b"), "u", "T"), None)
            .unwrap();
        let err = graph
            .create(new(EntityKind::Context, Some("c"), "u", "T"), None)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LimitExceeded);
        graph.add_association(&a.arn, &b.arn, None, None).unwrap();
        (a, b)
    };
    let graph = open_graph(dir.path(), clock, 3);
    assert_eq!(graph.entity_count(), 2);
    assert_eq!(
        graph
            .describe(EntityKind::Context, "ContextName", "a")
            .unwrap(),
        a
    );
    let result = graph
        .query(&LineageQuery {
            start_arns: vec![a.arn.clone()],
            direction: Direction::Descendants,
            include_edges: true,
            ..Default::default()
        })
        .unwrap();
    let arns: Vec<_> = result.vertices.iter().map(|v| v.arn.clone()).collect();
    assert_eq!(arns, [a.arn.clone(), b.arn.clone()]);
    assert_eq!(result.edges.len(), 1);
    assert_eq!(result.edges[0].association_type, None);
}

#[test]
fn a_walk_past_its_limit_is_refused_with_what_narrows_it() {
    let dir = tempfile::tempdir().unwrap();
    let graph = open_graph(dir.path(), ManualClock::new(0), 100).with_max_walk(10);
    let mut previous: Option<String> = None;
    for i in 0..20 {
        let arn = graph
            .create(
                new(EntityKind::Context, Some(&format!("c{i}")), "u", "T"),
                None,
            )
            .unwrap()
            .arn;
        if let Some(p) = previous {
            graph.add_association(&p, &arn, None, None).unwrap();
        }
        previous = Some(arn);
    }
    let start = graph
        .describe(EntityKind::Context, "ContextName", "c0")
        .unwrap()
        .arn;
    let query = |depth| LineageQuery {
        start_arns: vec![start.clone()],
        direction: Direction::Descendants,
        max_depth: Some(depth),
        ..Default::default()
    };
    assert_eq!(graph.query(&query(5)).unwrap().vertices.len(), 6);
    let err = graph.query(&query(10)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert!(
        err.message().contains("more than 10 entities") && err.message().contains("MaxDepth"),
        "{}",
        err.message()
    );
}

fn list_runs(kind: EntityKind) -> ExperimentListQuery {
    ExperimentListQuery {
        kind,
        experiment_name: None,
        trial_name: None,
        trial_component_name: None,
        source_arn: None,
        created_after_ms: None,
        created_before_ms: None,
        sort_by: EntitySort::Name,
        descending: false,
        max_results: None,
        next_token: None,
    }
}

fn names(page: &Page<Entity>) -> Vec<String> {
    page.items.iter().filter_map(|e| e.name.clone()).collect()
}

#[test]
fn experiments_hold_trials_which_hold_trial_components() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let graph = open_graph(dir.path(), clock.clone(), 100);
    let experiment = graph
        .create_experiment(
            NewExperiment {
                name: "Churn".into(),
                description: Some("who leaves".into()),
                ..NewExperiment::default()
            },
            Some("arn:aws:iam::123456789012:user/ana"),
        )
        .unwrap();
    assert_eq!(
        experiment.arn,
        "arn:aws:sagemaker:us-east-1:123456789012:experiment/churn"
    );
    let missing = graph
        .create_trial(
            NewTrial {
                name: "t1".into(),
                experiment_name: "nope".into(),
                ..NewTrial::default()
            },
            None,
        )
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{}", missing.message());
    for trial in ["t1", "t2"] {
        graph
            .create_trial(
                NewTrial {
                    name: trial.into(),
                    experiment_name: "churn".into(),
                    ..NewTrial::default()
                },
                None,
            )
            .unwrap();
    }
    let run = graph
        .create_trial_component(
            NewTrialComponent {
                name: "run-1".into(),
                status: Some("InProgress".into()),
                start_ms: Some(1_000),
                parameters: [
                    ("lr".to_string(), ParameterValue::Number(0.1)),
                    ("algo".to_string(), ParameterValue::String("gbm".into())),
                ]
                .into(),
                input_artifacts: [(
                    "train".to_string(),
                    RunArtifact {
                        media_type: Some("text/csv".into()),
                        value: "s3://b/train.csv".into(),
                    },
                )]
                .into(),
                ..NewTrialComponent::default()
            },
            None,
        )
        .unwrap();
    graph.associate_trial_component("run-1", "t1").unwrap();
    graph.associate_trial_component("run-1", "t1").unwrap();
    graph.associate_trial_component(&run.arn, "t2").unwrap();

    let in_t1 = graph
        .list_experiment_entities(&ExperimentListQuery {
            trial_name: Some("t1".into()),
            ..list_runs(EntityKind::TrialComponent)
        })
        .unwrap();
    assert_eq!(names(&in_t1), ["run-1"]);
    let trials_of_run = graph
        .list_experiment_entities(&ExperimentListQuery {
            trial_component_name: Some("run-1".into()),
            ..list_runs(EntityKind::Trial)
        })
        .unwrap();
    assert_eq!(names(&trials_of_run), ["t1", "t2"]);
    let in_experiment = graph
        .list_experiment_entities(&ExperimentListQuery {
            experiment_name: Some("Churn".into()),
            ..list_runs(EntityKind::TrialComponent)
        })
        .unwrap();
    assert_eq!(names(&in_experiment), ["run-1"]);
    let bad_filter = graph
        .list_experiment_entities(&ExperimentListQuery {
            trial_name: Some("t1".into()),
            ..list_runs(EntityKind::Experiment)
        })
        .unwrap_err();
    assert!(
        bad_filter.message().starts_with("TrialName"),
        "{}",
        bad_filter.message()
    );

    // Updates merge maps and remove keys; the times stay in order.
    clock.advance_ms(1_000);
    let updated = graph
        .update_experiment_entity(
            EntityKind::TrialComponent,
            "TrialComponentName",
            "run-1",
            ExperimentUpdate {
                status: Some("Completed".into()),
                end_ms: Some(2_000),
                parameters: [("depth".to_string(), ParameterValue::Number(6.0))].into(),
                parameters_to_remove: vec!["algo".into()],
                ..ExperimentUpdate::default()
            },
            None,
        )
        .unwrap();
    let fields = updated.experiment.clone().unwrap();
    assert_eq!(updated.status.as_deref(), Some("Completed"));
    assert_eq!(
        fields.parameters.keys().collect::<Vec<_>>(),
        ["depth", "lr"]
    );
    assert_eq!(fields.end_ms, Some(2_000));
    let backwards = graph
        .update_experiment_entity(
            EntityKind::TrialComponent,
            "TrialComponentName",
            "run-1",
            ExperimentUpdate {
                end_ms: Some(10),
                ..ExperimentUpdate::default()
            },
            None,
        )
        .unwrap_err();
    assert!(
        backwards.message().starts_with("EndTime"),
        "{}",
        backwards.message()
    );
    let not_a_run = graph
        .update_experiment_entity(
            EntityKind::Trial,
            "TrialName",
            "t1",
            ExperimentUpdate {
                status: Some("Completed".into()),
                ..ExperimentUpdate::default()
            },
            None,
        )
        .unwrap_err();
    assert!(
        not_a_run.message().contains("trial component's"),
        "{}",
        not_a_run.message()
    );

    // Metrics: summaries kept without the values.
    let datum = |name: &str, ms: i64, value: f64| MetricDatum {
        name: name.into(),
        timestamp_ms: ms,
        step: None,
        value,
    };
    let errors = graph
        .put_metrics(
            "run-1",
            &[
                datum("loss", 3, 0.5),
                datum("loss", 1, 0.9),
                datum("loss", 2, 0.7),
                datum("", 2, 1.0),
                datum("auc", 2, f64::NAN),
            ],
        )
        .unwrap();
    assert_eq!(
        errors,
        [(3, MetricError::Validation), (4, MetricError::Validation)]
    );
    let run = graph
        .describe(EntityKind::TrialComponent, "TrialComponentName", "RUN-1")
        .unwrap();
    let loss = &run.experiment.unwrap().metrics["loss"];
    assert_eq!(
        (loss.count, loss.min, loss.max, loss.last),
        (3, 0.5, 0.9, 0.5)
    );
    assert!((loss.mean - 0.7).abs() < 1e-12);
    assert!((loss.std_dev() - 0.2).abs() < 1e-12);

    // A trial component is a vertex of QueryLineage and an end of associations; a trial is not.
    let data = graph
        .create(
            new(EntityKind::Artifact, None, "s3://b/train.csv", "DataSet"),
            None,
        )
        .unwrap();
    graph
        .add_association(
            &data.arn,
            &run.arn,
            Some(AssociationType::ContributedTo),
            None,
        )
        .unwrap();
    let t1_arn = graph.arn(EntityKind::Trial, "t1");
    let refused = graph
        .add_association(&data.arn, &t1_arn, None, None)
        .unwrap_err();
    assert!(
        refused.message().starts_with("DestinationArn"),
        "{}",
        refused.message()
    );
    let found = graph
        .query(&LineageQuery {
            start_arns: vec![data.arn.clone()],
            direction: Direction::Descendants,
            include_edges: false,
            filters: QueryFilters {
                lineage_types: vec!["TrialComponent".into()],
                ..QueryFilters::default()
            },
            max_depth: None,
            max_results: None,
            next_token: None,
        })
        .unwrap();
    assert_eq!(found.vertices.len(), 1);
    assert_eq!(found.vertices[0].lineage_type, EntityKind::TrialComponent);

    // Deletes refuse what is still held, naming what to do.
    for (kind, field, name, says) in [
        (EntityKind::Experiment, "ExperimentName", "churn", "trials"),
        (EntityKind::Trial, "TrialName", "t1", "disassociate"),
        (
            EntityKind::TrialComponent,
            "TrialComponentName",
            "run-1",
            "disassociate",
        ),
    ] {
        let err = graph.delete(kind, field, name).unwrap_err();
        assert!(err.message().contains(says), "{}", err.message());
    }
    for trial in ["t1", "t2"] {
        graph.disassociate_trial_component("run-1", trial).unwrap();
    }
    let again = graph
        .disassociate_trial_component("run-1", "t1")
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::NotFound);
    graph
        .delete(EntityKind::TrialComponent, "TrialComponentName", "run-1")
        .unwrap();
    for trial in ["t1", "t2"] {
        graph.delete(EntityKind::Trial, "TrialName", trial).unwrap();
    }
    graph
        .delete(EntityKind::Experiment, "ExperimentName", "churn")
        .unwrap();
    assert_eq!(graph.entity_count(), 1, "the data artifact is left");
}

#[test]
fn experiment_fields_are_validated_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let graph = open_graph(dir.path(), ManualClock::new(1_000), 100);
    let component = |f: fn(&mut NewTrialComponent)| {
        let mut new = NewTrialComponent {
            name: "run".into(),
            ..NewTrialComponent::default()
        };
        f(&mut new);
        graph
            .create_trial_component(new, None)
            .unwrap_err()
            .message()
            .to_string()
    };
    type Change = fn(&mut NewTrialComponent);
    let cases: [(Change, &str); 6] = [
        (|n| n.name = "bad_name".into(), "TrialComponentName"),
        (|n| n.status = Some("Done".into()), "Status.PrimaryStatus"),
        (|n| n.display_name = Some("-x".into()), "DisplayName"),
        (
            |n| {
                n.parameters = (0..301)
                    .map(|i| (format!("p{i}"), ParameterValue::Number(1.0)))
                    .collect()
            },
            "Parameters has 301",
        ),
        (
            |n| {
                n.output_artifacts = [(
                    "model".to_string(),
                    RunArtifact {
                        media_type: Some("csv".into()),
                        value: "s3://b/m".into(),
                    },
                )]
                .into()
            },
            "OutputArtifacts['model'].MediaType",
        ),
        (
            |n| n.parameters = [("x".to_string(), ParameterValue::String("v".repeat(2501)))].into(),
            "Parameters['x'].StringValue",
        ),
    ];
    for (change, field) in cases {
        let message = component(change);
        assert!(message.starts_with(field), "{field}: {message}");
    }
    let as_lineage = graph
        .create(new(EntityKind::Experiment, Some("e"), "", ""), None)
        .unwrap_err();
    assert!(
        as_lineage.message().contains("CreateExperiment"),
        "{}",
        as_lineage.message()
    );
}

#[test]
fn runtime_writes_are_grouped_into_ingest_sessions() {
    use crate::ingests::IngestSessions;
    use quiver_types::model::FeatureGroup;

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let graph = Arc::new(open_graph(dir.path(), clock.clone(), 100));
    use quiver_types::model::{Collection, FeatureGroupSpec, FeatureSpec, FeatureType};
    let feature = |name: &str| FeatureSpec {
        name: name.into(),
        feature_type: FeatureType::String,
        collection: Collection::Scalar,
    };
    let group = FeatureGroup::from_spec(
        FeatureGroupSpec {
            name: "orders_v1".into(),
            record_identifier_feature_name: "id".into(),
            event_time_feature_name: "ts".into(),
            features: vec![feature("id"), feature("ts")],
            online: None,
            offline: None,
            role_arn: None,
            description: None,
            tags: Vec::new(),
        },
        1,
        "arn:aws:sagemaker:us-east-1:123456789012:feature-group/orders_v1".into(),
        1_000,
    );
    let sessions = IngestSessions::new(graph.clone(), std::time::Duration::from_secs(60));
    let group_of = |name: &str| (name == "orders_v1").then(|| Arc::new(group.clone()));
    let arn_of = |p: &str| format!("arn:aws:iam::123456789012:user/{p}");
    for _ in 0..3 {
        sessions.observe("orders_v1", Some("ana"), "Boto3/1.35", 25);
        clock.advance_ms(1_000);
    }
    sessions.observe("orders_v1", None, "Boto3/1.35", 1);
    sessions.observe("gone", None, "Boto3/1.35", 1);
    assert_eq!(sessions.open_sessions(), 3);
    // Not idle yet: nothing recorded.
    assert!(
        sessions
            .flush(false, &group_of, &arn_of)
            .unwrap()
            .is_empty()
    );
    clock.advance_ms(60_000);
    let mut recorded = sessions.flush(false, &group_of, &arn_of).unwrap();
    recorded.sort_by_key(|r| r.rows);
    assert_eq!(
        recorded.iter().map(|r| r.rows).collect::<Vec<_>>(),
        [1, 75],
        "one action per caller; a deleted group's session is dropped"
    );
    assert_eq!(sessions.open_sessions(), 0);
    let action = graph.get(&recorded[1].action_arn).unwrap().unwrap();
    assert_eq!(action.entity_type, "BatchIngest");
    assert_eq!(action.properties["rows"], "75");
    assert_eq!(action.properties["requests"], "3");
    assert_eq!(
        action.created_by.as_deref(),
        Some("arn:aws:iam::123456789012:user/ana")
    );
    let context = crate::feature_groups::group_context_arn(&graph, &group);
    let up = graph
        .query(&LineageQuery {
            start_arns: vec![context],
            direction: Direction::Ascendants,
            include_edges: false,
            filters: QueryFilters {
                types: vec!["BatchIngest".into()],
                ..QueryFilters::default()
            },
            max_depth: Some(1),
            max_results: None,
            next_token: None,
        })
        .unwrap();
    assert_eq!(
        up.vertices.len(),
        2,
        "both sessions ContributedTo the group"
    );
    // At shutdown every open session is recorded, idle or not.
    sessions.observe("orders_v1", Some("ana"), "Boto3/1.35", 5);
    assert_eq!(sessions.flush(true, &group_of, &arn_of).unwrap().len(), 1);
}
